//! The 10,000-series exposition that the parse benchmarks measure (also used by the
//! side-by-side benchmark in `bench/`).

use std::fmt::Write;

/// 4,000 counter series, 3,000 gauge series, 200 histograms of 10 buckets + `_sum` + `_count`
/// (2,400) and 150 summaries of 2 quantiles + `_sum` + `_count` (600).
pub fn exposition() -> String {
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
