//! The fixture's metrics and their Prometheus text exposition (format 0.0.4).
//!
//! Hand-rolled rather than a client library: the set is fixed and small, and
//! e2e's tests want to know exactly which bytes come out. Series are kept in
//! `BTreeMap`s so the output order is stable from one scrape to the next.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the request-duration histogram, in seconds, with their
/// label text; `+Inf` is added when rendering.
const BUCKETS: [(f64, &str); 4] = [(0.005, "0.005"), (0.01, "0.01"), (0.1, "0.1"), (1.0, "1")];

/// Quantiles of the response-size summary.
const QUANTILES: [(f64, &str); 2] = [(0.5, "0.5"), (0.9, "0.9")];

/// The summary's quantiles are computed over this many latest observations,
/// so memory stays bounded however long the fixture runs.
const SUMMARY_WINDOW: usize = 1024;

#[derive(Default)]
struct Histogram {
    /// Cumulative: `buckets[i]` counts observations `<= BUCKETS[i]`.
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Summary {
    recent: VecDeque<f64>,
    sum: f64,
    count: u64,
}

impl Summary {
    fn observe(&mut self, v: f64) {
        if self.recent.len() == SUMMARY_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(v);
        self.sum += v;
        self.count += 1;
    }

    /// Nearest-rank quantile over the recent window.
    fn quantile(&self, q: f64) -> f64 {
        let mut sorted: Vec<f64> = self.recent.iter().copied().collect();
        if sorted.is_empty() {
            return f64::NAN;
        }
        sorted.sort_by(f64::total_cmp);
        let rank = (q * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }
}

#[derive(Default)]
struct Series {
    requests: BTreeMap<String, u64>,
    durations: BTreeMap<String, Histogram>,
    sizes: Summary,
    values: BTreeMap<String, f64>,
    custom: BTreeMap<String, f64>,
}

/// All of the fixture's state that shows in `/metrics` (and `/ready`).
pub struct Metrics {
    start: Instant,
    ready: AtomicBool,
    ticks: AtomicU64,
    series: Mutex<Series>,
}

impl Metrics {
    pub fn new(start: Instant) -> Self {
        Metrics {
            start,
            ready: AtomicBool::new(false),
            ticks: AtomicU64::new(0),
            series: Mutex::new(Series::default()),
        }
    }

    fn series(&self) -> std::sync::MutexGuard<'_, Series> {
        // A handler thread that panicked mid-update leaves plain numbers
        // behind, still fit to render: ignore the poison.
        self.series.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    pub fn tick(&self) {
        self.ticks.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one served request: its path, how long it took, body size.
    pub fn observe_request(&self, path: &str, seconds: f64, size: usize) {
        let mut s = self.series();
        *s.requests.entry(path.to_string()).or_default() += 1;
        let h = s.durations.entry(path.to_string()).or_default();
        for (i, (bound, _)) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                h.buckets[i] += 1;
            }
        }
        h.sum += seconds;
        h.count += 1;
        s.sizes.observe(size as f64);
    }

    pub fn set_value(&self, name: &str, value: f64) {
        self.series().values.insert(name.to_string(), value);
    }

    pub fn delete_value(&self, name: &str) {
        self.series().values.remove(name);
    }

    pub fn inc_custom(&self, name: &str, by: f64) {
        *self.series().custom.entry(name.to_string()).or_default() += by;
    }

    /// The whole exposition. A family with no series yet is left out
    /// entirely, HELP and TYPE included, so "absent" means absent.
    pub fn render(&self) -> String {
        let s = self.series();
        let mut out = String::with_capacity(4096);

        if !s.requests.is_empty() {
            header(&mut out, "fixture_requests_total", "counter", "Requests served, by path.");
            for (path, n) in &s.requests {
                sample(&mut out, "fixture_requests_total", &[("path", path)], &n.to_string());
            }
        }

        if !s.durations.is_empty() {
            let name = "fixture_request_duration_seconds";
            header(&mut out, name, "histogram", "Time to handle a request, by path.");
            for (path, h) in &s.durations {
                for (i, (_, le)) in BUCKETS.iter().enumerate() {
                    let labels = [("path", path.as_str()), ("le", le)];
                    sample(&mut out, &format!("{name}_bucket"), &labels, &h.buckets[i].to_string());
                }
                let labels = [("path", path.as_str()), ("le", "+Inf")];
                sample(&mut out, &format!("{name}_bucket"), &labels, &h.count.to_string());
                sample(&mut out, &format!("{name}_sum"), &[("path", path)], &float(h.sum));
                sample(&mut out, &format!("{name}_count"), &[("path", path)], &h.count.to_string());
            }
        }

        if s.sizes.count > 0 {
            let name = "fixture_response_size_bytes";
            header(&mut out, name, "summary", "Size of response bodies.");
            for (q, label) in QUANTILES {
                sample(&mut out, name, &[("quantile", label)], &float(s.sizes.quantile(q)));
            }
            sample(&mut out, &format!("{name}_sum"), &[], &float(s.sizes.sum));
            sample(&mut out, &format!("{name}_count"), &[], &s.sizes.count.to_string());
        }

        header(&mut out, "fixture_ticks_total", "counter", "Ticks of a 100 ms clock since start.");
        let ticks = self.ticks.load(Ordering::Relaxed);
        sample(&mut out, "fixture_ticks_total", &[], &ticks.to_string());

        header(&mut out, "fixture_ready", "gauge", "1 once GET /ready answers 200, else 0.");
        sample(&mut out, "fixture_ready", &[], if self.is_ready() { "1" } else { "0" });

        header(&mut out, "fixture_uptime_seconds", "gauge", "Seconds since the process started.");
        sample(&mut out, "fixture_uptime_seconds", &[], &float(self.start.elapsed().as_secs_f64()));

        if !s.values.is_empty() {
            header(&mut out, "fixture_value", "gauge", "Values set through GET /set.");
            for (name, v) in &s.values {
                sample(&mut out, "fixture_value", &[("name", name)], &float(*v));
            }
        }

        if !s.custom.is_empty() {
            header(&mut out, "fixture_custom_total", "counter", "Counters incremented through GET /inc.");
            for (name, v) in &s.custom {
                sample(&mut out, "fixture_custom_total", &[("name", name)], &float(*v));
            }
        }

        header(&mut out, "fixture_untyped", "untyped", "A constant without a type.");
        sample(&mut out, "fixture_untyped", &[], "42");

        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: &str) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape_label(v));
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

/// Label values escape backslash, double quote and newline (format 0.0.4).
fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// Prometheus spells the special floats `NaN`, `+Inf`, `-Inf`; Rust's
/// `Display` prints the rest in a form Prometheus parses (no exponent).
fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Sample = (String, Vec<(String, String)>, f64);

    /// Splits a sample line into name, label pairs and value, or explains
    /// why it is not one. A deliberately strict reader of format 0.0.4.
    fn parse_sample(line: &str) -> Result<Sample, String> {
        let name_end = line.find(['{', ' ']).ok_or("no value")?;
        let name = &line[..name_end];
        let name_ok = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        if !name_ok {
            return Err(format!("bad metric name {name:?}"));
        }
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(mut r) = rest.strip_prefix('{') {
            loop {
                let eq = r.find('=').ok_or("label without =")?;
                let key = &r[..eq];
                if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(format!("bad label name {key:?}"));
                }
                r = r[eq + 1..].strip_prefix('"').ok_or("label value not quoted")?;
                // Walk the quoted value, honouring escapes.
                let mut value = String::new();
                let mut chars = r.char_indices();
                let end = loop {
                    match chars.next() {
                        None => return Err("unterminated label value".into()),
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, c @ ('\\' | '"'))) => value.push(c),
                            _ => return Err("bad escape".into()),
                        },
                        Some((i, '"')) => break i,
                        Some((_, '\n')) => return Err("raw newline in label value".into()),
                        Some((_, c)) => value.push(c),
                    }
                };
                labels.push((key.to_string(), value));
                r = &r[end + 1..];
                if let Some(next) = r.strip_prefix(',') {
                    r = next;
                } else if let Some(after) = r.strip_prefix('}') {
                    rest = after;
                    break;
                } else {
                    return Err(format!("unexpected {r:?} after a label"));
                }
            }
        }
        let value = rest.strip_prefix(' ').ok_or("no space before value")?;
        Ok((name.to_string(), labels, parse_value(value)?))
    }

    fn parse_value(v: &str) -> Result<f64, String> {
        match v {
            "+Inf" => Ok(f64::INFINITY),
            "-Inf" => Ok(f64::NEG_INFINITY),
            "NaN" => Ok(f64::NAN),
            _ if v.chars().any(|c| c.is_ascii_alphabetic()) => Err(format!("bad value {v:?}")),
            _ => v.parse().map_err(|_| format!("bad value {v:?}")),
        }
    }

    /// Checks every line of an exposition and returns its samples.
    fn check(text: &str) -> Vec<Sample> {
        assert!(text.ends_with('\n'), "exposition ends with a newline");
        let mut typed: BTreeMap<String, String> = BTreeMap::new();
        let mut samples = Vec::new();
        for line in text.lines() {
            if let Some(c) = line.strip_prefix("# ") {
                let mut parts = c.splitn(3, ' ');
                let kw = parts.next().unwrap();
                let name = parts.next().expect("comment names a metric");
                let rest = parts.next().expect("comment has text");
                match kw {
                    "HELP" => {}
                    "TYPE" => {
                        assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&rest), "{line}");
                        assert!(typed.insert(name.to_string(), rest.to_string()).is_none(), "TYPE twice: {line}");
                    }
                    _ => panic!("unexpected comment {line:?}"),
                }
                continue;
            }
            let parsed = parse_sample(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
            // Every sample belongs to a family whose TYPE came first.
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    let base = parsed.0.strip_suffix(suffix)?;
                    typed.get(base).filter(|k| *k == "histogram" || *k == "summary").map(|_| base)
                })
                .unwrap_or(&parsed.0);
            assert!(typed.contains_key(family), "sample before its TYPE: {line}");
            samples.push(parsed);
        }
        samples
    }

    fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Option<&'a f64> {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && l.len() == labels.len()
                    && labels.iter().all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| v)
    }

    #[test]
    fn fresh_exposition_has_only_always_present_families() {
        let m = Metrics::new(Instant::now());
        let text = m.render();
        let samples = check(&text);
        assert_eq!(find(&samples, "fixture_ready", &[]), Some(&0.0));
        assert_eq!(find(&samples, "fixture_untyped", &[]), Some(&42.0));
        assert!(text.contains("# TYPE fixture_untyped untyped\n"));
        assert!(find(&samples, "fixture_ticks_total", &[]).is_some());
        assert!(find(&samples, "fixture_uptime_seconds", &[]).is_some());
        assert!(!text.contains("fixture_value"));
        assert!(!text.contains("fixture_custom_total"));
        assert!(!text.contains("fixture_requests_total"));
    }

    #[test]
    fn exposition_after_activity() {
        let m = Metrics::new(Instant::now());
        m.set_ready();
        m.tick();
        m.tick();
        m.observe_request("/ready", 0.002, 5);
        m.observe_request("/ready", 0.05, 5);
        m.observe_request("/slow", 2.0, 2);
        m.set_value("temp", 21.5);
        m.set_value("odd \"name\"\\\n", f64::INFINITY);
        m.set_value("gone", 1.0);
        m.delete_value("gone");
        m.inc_custom("jobs", 1.0);
        m.inc_custom("jobs", 2.5);

        let text = m.render();
        let s = check(&text);
        assert_eq!(find(&s, "fixture_ready", &[]), Some(&1.0));
        assert_eq!(find(&s, "fixture_ticks_total", &[]), Some(&2.0));
        assert_eq!(find(&s, "fixture_requests_total", &[("path", "/ready")]), Some(&2.0));
        assert_eq!(find(&s, "fixture_requests_total", &[("path", "/slow")]), Some(&1.0));

        let bucket = |path, le| find(&s, "fixture_request_duration_seconds_bucket", &[("path", path), ("le", le)]);
        assert_eq!(bucket("/ready", "0.005"), Some(&1.0));
        assert_eq!(bucket("/ready", "0.01"), Some(&1.0));
        assert_eq!(bucket("/ready", "0.1"), Some(&2.0));
        assert_eq!(bucket("/ready", "1"), Some(&2.0));
        assert_eq!(bucket("/ready", "+Inf"), Some(&2.0));
        assert_eq!(bucket("/slow", "1"), Some(&0.0));
        assert_eq!(bucket("/slow", "+Inf"), Some(&1.0));
        assert_eq!(find(&s, "fixture_request_duration_seconds_count", &[("path", "/slow")]), Some(&1.0));
        assert_eq!(find(&s, "fixture_request_duration_seconds_sum", &[("path", "/slow")]), Some(&2.0));

        assert_eq!(find(&s, "fixture_response_size_bytes", &[("quantile", "0.5")]), Some(&5.0));
        assert_eq!(find(&s, "fixture_response_size_bytes", &[("quantile", "0.9")]), Some(&5.0));
        assert_eq!(find(&s, "fixture_response_size_bytes_sum", &[]), Some(&12.0));
        assert_eq!(find(&s, "fixture_response_size_bytes_count", &[]), Some(&3.0));

        assert_eq!(find(&s, "fixture_value", &[("name", "temp")]), Some(&21.5));
        assert_eq!(find(&s, "fixture_value", &[("name", "odd \"name\"\\\n")]), Some(&f64::INFINITY));
        assert_eq!(find(&s, "fixture_value", &[("name", "gone")]), None);
        assert_eq!(find(&s, "fixture_custom_total", &[("name", "jobs")]), Some(&3.5));
    }

    #[test]
    fn floats_and_quantiles() {
        assert_eq!(float(0.1), "0.1");
        assert_eq!(float(1.0), "1");
        assert_eq!(float(f64::NAN), "NaN");
        assert_eq!(float(f64::NEG_INFINITY), "-Inf");
        let mut s = Summary::default();
        for v in 1..=10 {
            s.observe(v as f64);
        }
        assert_eq!(s.quantile(0.5), 5.0);
        assert_eq!(s.quantile(0.9), 9.0);
        for _ in 0..SUMMARY_WINDOW {
            s.observe(100.0);
        }
        assert_eq!(s.recent.len(), SUMMARY_WINDOW);
        assert_eq!(s.quantile(0.5), 100.0);
        assert_eq!(s.count, 10 + SUMMARY_WINDOW as u64);
    }
}
