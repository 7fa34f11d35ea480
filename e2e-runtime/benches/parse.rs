//! Parsing and summing a 10,000-series exposition (issue 4: under 10 ms is the goal).
//!
//!     cargo bench -p e2e-runtime --bench parse
//!
//! A series is one sample line, as Prometheus counts them: 4,000 counter series, 3,000 gauge
//! series, 200 histograms of 10 buckets + `_sum` + `_count` (2,400) and 150 summaries of 2
//! quantiles + `_sum` + `_count` (600). Each iteration parses the text and sums metrics with a
//! label matcher: the whole parse (as `Runnable::metrics` does) and the partial one that
//! `sum_metrics` and the waits use. Plain `Instant` timing: no harness needed.

use std::hint::black_box;
use std::time::{Duration, Instant};

use e2e_runtime::{Exposition, Matcher, MetricsOptions};

#[path = "support/exposition.rs"]
mod exposition;
use exposition::exposition;

const ITERATIONS: usize = 200;

/// Times `f` over the iterations; prints and returns the median.
fn time<T>(what: &str, mut f: impl FnMut() -> T) -> Duration {
    black_box(f());
    let mut times: Vec<Duration> = (0..ITERATIONS)
        .map(|_| {
            let t = Instant::now();
            black_box(f());
            t.elapsed()
        })
        .collect();
    times.sort();
    let mean = times.iter().sum::<Duration>() / ITERATIONS as u32;
    let median = times[ITERATIONS / 2];
    println!(
        "{what:<58} median {median:>9.2?}  mean {mean:>9.2?}  min {:>9.2?}  max {:>9.2?}",
        times[0],
        times[ITERATIONS - 1]
    );
    median
}

fn main() {
    let text = exposition();
    let series = text.lines().filter(|l| !l.starts_with('#')).count();
    let options = MetricsOptions::new().matcher(Matcher::not_equal("code", "500"));
    let names = ["bench_requests_total", "bench_queue_depth", "bench_latency_seconds", "bench_size_bytes"];
    println!("{series} series, {} KiB, {ITERATIONS} iterations each", text.len() / 1024);

    let sum_all = |e: &Exposition| names.map(|n| e.sum(n, &options).expect("the metric is there"));
    let whole = sum_all(&Exposition::parse(text.as_str()));
    assert_eq!(whole, sum_all(&Exposition::parse_only(text.as_str(), names)));
    assert_eq!(whole[0], (0..4000).filter(|i| 200 + i % 5 != 500).map(|i| (i * 3) as f64).sum::<f64>());
    assert_eq!(whole[2], (0..200).map(|i| i as f64 + 0.25).sum::<f64>());

    time("whole parse (Runnable::metrics) + sum of the 4 families", || {
        sum_all(&Exposition::parse(black_box(text.as_str())))
    });
    time("parse_only + sum of the 4 families (wait / sum_metrics)", || {
        sum_all(&Exposition::parse_only(black_box(text.as_str()), names))
    });
    time("parse_only + sum of 1 counter family (a typical wait)", || {
        Exposition::parse_only(black_box(text.as_str()), [names[0]]).sum(names[0], &options)
    });
    time("parse_only + sum of 1 histogram family", || {
        Exposition::parse_only(black_box(text.as_str()), [names[2]]).sum(names[2], &options)
    });
}
