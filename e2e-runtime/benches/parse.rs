//! Parsing and summing a 10,000-series exposition (issue 4: under 10 ms is the goal).
//!
//!     cargo bench -p e2e-runtime --bench parse
//!
//! A series is one sample line, as Prometheus counts them: 4,000 counter series, 3,000 gauge
//! series, 200 histograms of 10 buckets + `_sum` + `_count` (2,400) and 150 summaries of 2
//! quantiles + `_sum` + `_count` (600). Each iteration parses the text and sums metrics with a
//! label matcher: the whole parse (as `Runnable::metrics` does) and the partial one that
//! `sum_metrics` and the waits use. Plain `Instant` timing: no harness needed.

use std::fmt::Write;
use std::hint::black_box;
use std::time::{Duration, Instant};

use e2e_runtime::{Exposition, Matcher, MetricsOptions};

const ITERATIONS: usize = 200;

fn exposition() -> String {
    let mut s = String::new();
    s.push_str("# HELP bench_requests_total Requests.\n# TYPE bench_requests_total counter\n");
    for i in 0..4000 {
        let _ = writeln!(s, "bench_requests_total{{code=\"{}\",path=\"/api/v1/item/{i}\"}} {}", 200 + i % 5, i * 3);
    }
    s.push_str("# HELP bench_queue_depth Depth.\n# TYPE bench_queue_depth gauge\n");
    for i in 0..3000 {
        let _ = writeln!(s, "bench_queue_depth{{queue=\"q{i}\",shard=\"{}\"}} {}.5", i % 16, i);
    }
    s.push_str("# HELP bench_latency_seconds Latency.\n# TYPE bench_latency_seconds histogram\n");
    let bounds = ["0.001", "0.005", "0.01", "0.05", "0.1", "0.5", "1", "5", "10", "+Inf"];
    for i in 0..200 {
        for (b, le) in bounds.iter().enumerate() {
            let _ = writeln!(s, "bench_latency_seconds_bucket{{handler=\"h{i}\",le=\"{le}\"}} {}", b * 10);
        }
        let _ = writeln!(s, "bench_latency_seconds_sum{{handler=\"h{i}\"}} {}.25", i);
        let _ = writeln!(s, "bench_latency_seconds_count{{handler=\"h{i}\"}} 90");
    }
    s.push_str("# HELP bench_size_bytes Size.\n# TYPE bench_size_bytes summary\n");
    for i in 0..150 {
        for q in ["0.5", "0.9"] {
            let _ = writeln!(s, "bench_size_bytes{{client=\"c{i}\",quantile=\"{q}\"}} 100");
        }
        let _ = writeln!(s, "bench_size_bytes_sum{{client=\"c{i}\"}} 1000");
        let _ = writeln!(s, "bench_size_bytes_count{{client=\"c{i}\"}} 10");
    }
    s
}

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
