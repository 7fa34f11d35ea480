//! Parsing a Prometheus text exposition and summing its series by metric name.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::OnceLock;

use prometheus_parse::{Scrape, Value as Parsed};

use super::options::{MetricsOptions, Missing};
use super::series::{MetricType, Series};
use super::to_names;
use crate::error::{Error, Result};

/// A parsed Prometheus text exposition: the raw text, its series and the type each family
/// declares.
pub struct Exposition {
    text: String,
    // The parser's form, which the sums read; our own `Series` are made from it on first use,
    // so a wait, which only sums, never pays for them.
    scrape: Scrape,
    series: OnceLock<Vec<Series>>,
    types: HashMap<String, MetricType>,
}

impl fmt::Debug for Exposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The whole text would drown a failing assertion's message.
        f.debug_struct("Exposition")
            .field("bytes", &self.text.len())
            .field("series", &self.scrape.samples.len())
            .field("families", &self.types.len())
            .finish()
    }
}

impl Exposition {
    /// Parses a text exposition (format 0.0.4). Lines that are not HELP, TYPE or sample lines
    /// are skipped, as `prometheus-parse` does.
    pub fn parse(text: impl Into<String>) -> Exposition {
        Self::parse_lines(text.into(), None)
    }

    /// Parses only what summing these metrics needs: their series (a histogram's or summary's
    /// `_sum` and `_count`, not its buckets or quantiles) and the TYPE lines. [`Exposition::sum`]
    /// of these names gives what it gives on the whole parse, at a fraction of the cost on a
    /// large exposition; the waits parse this way.
    pub fn parse_only<I>(text: impl Into<String>, names: I) -> Exposition
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        Self::parse_lines(text.into(), Some(&to_names(names)))
    }

    fn parse_lines(text: String, wanted: Option<&[String]>) -> Exposition {
        let mut types = HashMap::new();
        // prometheus-parse keeps no record of the TYPE lines it reads: note them on the way, and
        // spare it (its regexes cost most of the time) the lines that are not wanted.
        let lines = text.lines().filter(|line| {
            if let Some((name, kind)) = type_line(line) {
                types.insert(name.to_string(), MetricType::from_word(kind));
                return true;
            }
            match wanted {
                None => true,
                Some(names) => !line.starts_with('#') && summed(sample_name(line), names, &types),
            }
        });
        let lines: Vec<&str> = lines.collect();
        let scrape = parse_in_parallel(&lines, &types);
        Exposition { text, scrape, series: OnceLock::new(), types }
    }

    /// The exposition as it was served.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Every series, in the order served (see [`Series`] for how a histogram's or summary's
    /// lines group).
    pub fn series(&self) -> &[Series] {
        self.series.get_or_init(|| self.scrape.samples.iter().map(Series::from_parsed).collect())
    }

    /// The type a family declares in its `# TYPE` line, if it has one.
    pub fn metric_type(&self, family: &str) -> Option<MetricType> {
        self.types.get(family).copied()
    }

    /// Every family, sorted by name.
    pub fn families(&self) -> Vec<Family<'_>> {
        let mut by_name: BTreeMap<&str, Vec<&Series>> = BTreeMap::new();
        for s in self.series() {
            by_name.entry(self.family_of(s)).or_default().push(s);
        }
        by_name.into_iter().map(|(name, series)| self.family_with(name, series)).collect()
    }

    /// One family by its base name, if the exposition has a sample of it.
    pub fn family(&self, name: &str) -> Option<Family<'_>> {
        let series: Vec<&Series> = self.series().iter().filter(|s| self.family_of(s) == name).collect();
        let first = *series.first()?;
        Some(self.family_with(self.family_of(first), series))
    }

    fn family_with<'a>(&'a self, name: &'a str, series: Vec<&'a Series>) -> Family<'a> {
        Family {
            name,
            kind: self.metric_type(name).unwrap_or(MetricType::Untyped),
            help: self.scrape.docs.get(name).map(String::as_str),
            series,
        }
    }

    /// The family a series belongs to: `x_sum` and `x_count` belong to the histogram or
    /// summary `x`, every other series to its own name.
    fn family_of<'a>(&self, s: &'a Series) -> &'a str {
        if s.value.scalar().is_some() {
            for suffix in ["_sum", "_count", "_bucket"] {
                if let Some(base) = s.name.strip_suffix(suffix) {
                    if self.is_aggregate(base) {
                        return base;
                    }
                }
            }
        }
        &s.name
    }

    fn is_aggregate(&self, family: &str) -> bool {
        self.metric_type(family).is_some_and(MetricType::is_aggregate)
    }

    /// The sum over the series of metric `name` that the options' label matchers select, or
    /// `None` if none is there (see the [module docs](crate::metrics) for how each type sums).
    pub fn sum(&self, name: &str, options: &MetricsOptions) -> Option<f64> {
        let suffixed;
        let target = if self.is_aggregate(name) {
            suffixed = format!("{name}{}", if options.count { "_count" } else { "_sum" });
            suffixed.as_str()
        } else {
            name
        };
        let mut sum = None;
        for s in &self.scrape.samples {
            if s.metric != target {
                continue;
            }
            let (Parsed::Counter(v) | Parsed::Gauge(v) | Parsed::Untyped(v)) = s.value else { continue };
            if options.selects(|label| s.labels.get(label)) {
                *sum.get_or_insert(0.0) += v;
            }
        }
        sum
    }

    /// The sum of each name, with missing metrics handled as the options say.
    pub(super) fn sums(&self, names: &[String], options: &MetricsOptions, runnable: &str) -> Result<Vec<f64>> {
        names
            .iter()
            .map(|name| match self.sum(name, options) {
                Some(v) => Ok(v),
                None if options.missing == Missing::Skip => Ok(0.0),
                None => Err(Error::MissingMetric {
                    runnable: runnable.to_string(),
                    metric: name.clone(),
                    matchers: options.matchers_text(),
                }),
            })
            .collect()
    }
}

/// The metric name a sample line starts with.
fn sample_name(line: &str) -> &str {
    let line = line.trim_start();
    let end = line.find(|c: char| c == '{' || c.is_ascii_whitespace()).unwrap_or(line.len());
    &line[..end]
}

/// Whether a sample of this metric counts in the sum of one of the names: the metric itself,
/// or its `_sum` or `_count` (not the quantiles of a summary, which bear its name).
fn summed(metric: &str, names: &[String], types: &HashMap<String, MetricType>) -> bool {
    names.iter().any(|n| match metric.strip_prefix(n.as_str()) {
        Some("") => !types.get(n).is_some_and(|t| t.is_aggregate()),
        Some(rest) => rest == "_sum" || rest == "_count",
        None => false,
    })
}

/// Below this many lines one thread parses: threads cost more than they save.
const PARALLEL_FROM_LINES: usize = 2000;

/// Parses with prometheus-parse, whose line regexes cost most of the time, on several threads
/// for a large exposition. Chunks are cut only where no series is split (prometheus-parse
/// gathers a histogram's or summary's lines by label set): before a comment line, or before a
/// counter, gauge or untyped sample. Each chunk is preceded by the TYPE line of the family it
/// starts in, so its samples are typed as in one pass.
fn parse_in_parallel(lines: &[&str], types: &HashMap<String, MetricType>) -> Scrape {
    let parse = |chunk: &[&str], type_line: Option<&str>| {
        let owned = type_line.into_iter().chain(chunk.iter().copied()).map(|l| Ok(l.to_string()));
        Scrape::parse(owned).expect("lines of a string always read")
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
    if threads < 2 || lines.len() < PARALLEL_FROM_LINES {
        return parse(lines, None);
    }
    let splittable = |line: &str| {
        line.starts_with('#') || !types.get(family_of(sample_name(line), types)).is_some_and(|t| t.is_aggregate())
    };
    let mut cuts = vec![0];
    for k in 1..threads {
        let from = (lines.len() * k / threads).max(*cuts.last().unwrap() + 1);
        if let Some(i) = (from..lines.len()).find(|&i| splittable(lines[i])) {
            cuts.push(i);
        }
    }
    cuts.dedup();
    cuts.push(lines.len());
    let last_type_before = |i: usize| lines[..i].iter().rev().find(|l| type_line(l).is_some()).copied();
    let parts: Vec<Scrape> = std::thread::scope(|scope| {
        let handles: Vec<_> = cuts
            .windows(2)
            .map(|w| {
                let (from, to) = (w[0], w[1]);
                let type_line = if from == 0 { None } else { last_type_before(from) };
                scope.spawn(move || parse(&lines[from..to], type_line))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("parsing does not panic")).collect()
    });
    let mut whole = Scrape { docs: HashMap::new(), samples: Vec::new() };
    for part in parts {
        whole.docs.extend(part.docs);
        whole.samples.extend(part.samples);
    }
    whole
}

/// The family a sample line belongs to: its name, or the name without a `_sum`, `_count` or
/// `_bucket` suffix when that is a declared family.
fn family_of<'a>(sample: &'a str, types: &HashMap<String, MetricType>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = sample.strip_suffix(suffix) {
            if types.contains_key(base) {
                return base;
            }
        }
    }
    sample
}

/// `(name, type)` of a `# TYPE name type` line.
fn type_line(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?.trim_start().strip_prefix("TYPE")?;
    let mut words = rest.split_whitespace();
    Some((words.next()?, words.next()?))
}

/// A metric family of an [`Exposition`]: its name, type, help text and series.
#[derive(Clone, Debug)]
pub struct Family<'a> {
    name: &'a str,
    kind: MetricType,
    help: Option<&'a str>,
    series: Vec<&'a Series>,
}

impl<'a> Family<'a> {
    /// The base name (`x` for a histogram's `x_bucket`, `x_sum` and `x_count`).
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The declared type; untyped when the exposition declares none.
    pub fn kind(&self) -> MetricType {
        self.kind
    }

    /// The `# HELP` text.
    pub fn help(&self) -> Option<&'a str> {
        self.help
    }

    /// Its series, a histogram's or summary's `_sum` and `_count` included.
    pub fn series(&self) -> &[&'a Series] {
        &self.series
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Bucket, Matcher, Quantile, Value};

    const TEXT: &str = r#"# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{code="200",path="/a"} 3
http_requests_total{code="200",path="/b"} 4
http_requests_total{code="500",path="/a"} 1
http_requests_total{code="1200",path="/a"} 100
# TYPE temperature gauge
temperature{room="x"} 21.5
temperature{room="y"} -1.5
# TYPE broken gauge
broken NaN
# HELP latency_seconds Latency.
# TYPE latency_seconds histogram
latency_seconds_bucket{path="/a",le="0.1"} 1
latency_seconds_bucket{path="/a",le="+Inf"} 2
latency_seconds_sum{path="/a"} 0.75
latency_seconds_count{path="/a"} 2
latency_seconds_bucket{path="/b",le="0.1"} 5
latency_seconds_bucket{path="/b",le="+Inf"} 5
latency_seconds_sum{path="/b"} 0.25
latency_seconds_count{path="/b"} 5
# TYPE size_bytes summary
size_bytes{quantile="0.5"} 10
size_bytes{quantile="0.9"} 20
size_bytes_sum 300
size_bytes_count 12
# TYPE bare_summary summary
bare_summary_sum 7
bare_summary_count 2
# TYPE constant untyped
constant 42
no_type_line{a="1"} 5
no_type_line{a="2"} 6
"#;

    fn sum(name: &str, options: &MetricsOptions) -> Option<f64> {
        Exposition::parse(TEXT).sum(name, options)
    }

    fn with(matchers: impl IntoIterator<Item = Matcher>) -> MetricsOptions {
        MetricsOptions::new().matchers(matchers)
    }

    #[test]
    fn each_type_sums_as_efficientgo_e2e_does() {
        let all = MetricsOptions::new();
        assert_eq!(sum("http_requests_total", &all), Some(108.0));
        assert_eq!(sum("temperature", &all), Some(20.0));
        assert!(sum("broken", &all).unwrap().is_nan());
        assert_eq!(sum("latency_seconds", &all), Some(1.0), "a histogram by its sum");
        assert_eq!(sum("latency_seconds", &all.clone().count()), Some(7.0), "or its count");
        assert_eq!(sum("size_bytes", &all), Some(300.0), "a summary by its sum");
        assert_eq!(sum("size_bytes", &all.clone().count()), Some(12.0), "or its count");
        assert_eq!(sum("bare_summary", &all), Some(7.0), "a summary without quantiles");
        assert_eq!(sum("bare_summary", &all.clone().count()), Some(2.0));
        assert_eq!(sum("constant", &all), Some(42.0), "untyped by value");
        assert_eq!(sum("no_type_line", &all), Some(11.0), "no TYPE line: untyped");
        assert_eq!(sum("latency_seconds_count", &all), Some(7.0), "_count named directly");
        assert_eq!(sum("temperature", &all.clone().count()), Some(20.0), "count leaves gauges alone");
        assert_eq!(sum("nope", &all), None);
        assert_eq!(sum("latency_seconds_bucket", &all), None);
    }

    #[test]
    fn a_partial_parse_sums_alike() {
        let names = ["http_requests_total", "latency_seconds", "size_bytes", "bare_summary", "constant", "nope"];
        let whole = Exposition::parse(TEXT);
        for opts in [MetricsOptions::new(), MetricsOptions::new().count(), with([Matcher::equal("path", "/a")])] {
            for name in names {
                let part = Exposition::parse_only(TEXT, [name]);
                let (a, b) = (whole.sum(name, &opts), part.sum(name, &opts));
                assert_eq!(a, b, "{name} {opts:?}");
            }
        }
        let part = Exposition::parse_only(TEXT, ["size_bytes", "temperature"]);
        let kept: Vec<&str> = part.series().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(kept, ["temperature", "temperature", "size_bytes_sum", "size_bytes_count"]);
        assert_eq!(sample_name("  a_b{x=\"1\"} 2"), "a_b");
        assert_eq!(sample_name("a\t2"), "a");
    }

    #[test]
    fn label_matchers_select_series() {
        let eq = |n, v| Matcher::equal(n, v);
        assert_eq!(sum("http_requests_total", &with([eq("path", "/a")])), Some(104.0));
        assert_eq!(sum("http_requests_total", &with([eq("path", "/a"), eq("code", "200")])), Some(3.0));
        assert_eq!(sum("http_requests_total", &with([Matcher::not_equal("code", "200")])), Some(101.0));
        // Anchored: "2.." does not select "1200".
        assert_eq!(sum("http_requests_total", &with([Matcher::regex("code", "2..")])), Some(7.0));
        assert_eq!(sum("http_requests_total", &with([Matcher::regex("code", "2..|5..")])), Some(8.0));
        assert_eq!(sum("http_requests_total", &with([Matcher::not_regex("code", "2..")])), Some(101.0));
        assert_eq!(sum("latency_seconds", &with([eq("path", "/b")])), Some(0.25));
        assert_eq!(sum("latency_seconds", &with([eq("path", "/b")]).count()), Some(5.0));
        // A missing label matches as the empty value.
        assert_eq!(sum("temperature", &with([eq("floor", "")])), Some(20.0));
        assert_eq!(sum("temperature", &with([Matcher::regex("floor", ".+")])), None);
        assert_eq!(sum("temperature", &with([eq("room", "z")])), None, "nothing selected is missing");

        let bad = Matcher::regex("code", "(");
        assert!(!bad.matches("("));
        let e = with([bad]).check().unwrap_err();
        assert!(matches!(e, Error::InvalidMatcher { .. }), "{e}");
        assert!(e.to_string().contains(r#"code=~"(""#), "{e}");
    }

    #[test]
    fn missing_metrics_fail_or_count_as_zero() {
        let e = Exposition::parse(TEXT);
        let names = ["temperature".to_string(), "nope".to_string()];
        let opts = with([Matcher::equal("room", "x")]);
        match e.sums(&names, &opts, "svc") {
            Err(Error::MissingMetric { runnable, metric, matchers }) => {
                assert_eq!((runnable.as_str(), metric.as_str(), matchers.as_str()), ("svc", "nope", r#"{room="x"}"#))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(e.sums(&names, &opts.clone().skip_missing_metrics(), "svc").unwrap(), vec![21.5, 0.0]);
        // The last of wait/skip wins.
        assert!(e.sums(&names, &opts.skip_missing_metrics().wait_missing_metrics(), "svc").is_err());
    }

    #[test]
    fn families_group_by_base_name() {
        let e = Exposition::parse(TEXT);
        let names: Vec<&str> = e.families().iter().map(|f| f.name()).collect();
        assert_eq!(
            names,
            [
                "bare_summary",
                "broken",
                "constant",
                "http_requests_total",
                "latency_seconds",
                "no_type_line",
                "size_bytes",
                "temperature"
            ]
        );
        let h = e.family("latency_seconds").unwrap();
        assert_eq!(h.kind(), MetricType::Histogram);
        assert_eq!(h.help(), Some("Latency."));
        // Two series of buckets, two _sum and two _count.
        assert_eq!(h.series().len(), 6);
        assert_eq!(e.family("size_bytes").unwrap().kind(), MetricType::Summary);
        assert_eq!(e.family("no_type_line").unwrap().kind(), MetricType::Untyped);
        assert_eq!(e.metric_type("temperature"), Some(MetricType::Gauge));
        assert!(e.family("latency_seconds_sum").is_none());
        assert!(e.text().starts_with("# HELP http_requests_total"));
        assert!(format!("{e:?}").len() < 100, "Debug stays short");
    }

    #[test]
    fn a_large_exposition_parses_the_same_on_several_threads() {
        use std::fmt::Write;
        let mut text = String::from("# TYPE big_total counter\n");
        for i in 0..3000 {
            let _ = writeln!(text, "big_total{{i=\"{i}\"}} 1");
        }
        text.push_str("# TYPE lat_seconds histogram\n");
        for i in 0..300 {
            for le in ["0.1", "1", "+Inf"] {
                let _ = writeln!(text, "lat_seconds_bucket{{h=\"{i}\",le=\"{le}\"}} 2");
            }
            let _ = writeln!(text, "lat_seconds_sum{{h=\"{i}\"}} 0.5\nlat_seconds_count{{h=\"{i}\"}} 2");
        }
        text.push_str("# TYPE depth gauge\n");
        for i in 0..2000 {
            let _ = writeln!(text, "depth{{q=\"{i}\"}} 2");
        }
        let e = Exposition::parse(text.as_str());
        let o = MetricsOptions::new();
        assert_eq!(e.sum("big_total", &o), Some(3000.0));
        assert_eq!(e.sum("lat_seconds", &o), Some(150.0));
        assert_eq!(e.sum("lat_seconds", &o.clone().count()), Some(600.0));
        assert_eq!(e.sum("depth", &o), Some(4000.0));
        // Every histogram whole: 3 buckets each, none split between threads.
        let histograms: Vec<_> = e.series().iter().filter(|s| s.name == "lat_seconds").collect();
        assert_eq!(histograms.len(), 300);
        assert!(histograms.iter().all(|s| matches!(&s.value, Value::Histogram(b) if b.len() == 3)));
        assert_eq!(e.metric_type("depth"), Some(MetricType::Gauge));
        assert!(e.series().iter().filter(|s| s.name == "depth").all(|s| matches!(s.value, Value::Gauge(_))));
    }

    #[test]
    fn type_lines() {
        assert_eq!(type_line("# TYPE a_b counter"), Some(("a_b", "counter")));
        assert_eq!(type_line("#  TYPE a  gauge "), Some(("a", "gauge")));
        assert_eq!(type_line("# HELP a counter"), None);
        assert_eq!(type_line("a 1"), None);
    }

    #[test]
    fn series_are_the_frameworks_own_types() {
        let e = Exposition::parse(TEXT);
        let find = |name: &str, label: (&str, &str)| {
            e.series().iter().find(|s| s.name == name && s.labels.get(label.0).map(String::as_str) == Some(label.1))
        };
        let c = find("http_requests_total", ("code", "500")).unwrap();
        assert_eq!(c.value, Value::Counter(1.0));
        let labels: Vec<(&str, &str)> = c.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(labels, [("code", "500"), ("path", "/a")], "labels sorted by name");

        let h = find("latency_seconds", ("path", "/a")).unwrap();
        assert!(!h.labels.contains_key("le"), "the bucket bound is in the value, not the labels");
        let buckets = vec![Bucket { upper_bound: 0.1, count: 1.0 }, Bucket { upper_bound: f64::INFINITY, count: 2.0 }];
        assert_eq!(h.value, Value::Histogram(buckets));
        assert_eq!(h.value.scalar(), None);
        assert_eq!(find("latency_seconds_sum", ("path", "/a")).unwrap().value, Value::Untyped(0.75));

        let q = e.series().iter().find(|s| s.name == "size_bytes").unwrap();
        let quantiles = vec![Quantile { quantile: 0.5, value: 10.0 }, Quantile { quantile: 0.9, value: 20.0 }];
        assert_eq!(q.value, Value::Summary(quantiles));
        assert!(q.labels.is_empty());
        let t = find("temperature", ("room", "y")).unwrap();
        assert_eq!((t.value.clone(), t.value.scalar()), (Value::Gauge(-1.5), Some(-1.5)));
        assert_eq!(e.series().len(), Exposition::parse(TEXT).scrape.samples.len(), "one series per parsed sample");
    }

    #[test]
    fn type_words_read_as_prometheus_reads_them() {
        let words = ["counter", "gauge", "histogram", "summary", "untyped", "info", ""];
        let types: Vec<MetricType> = words.into_iter().map(MetricType::from_word).collect();
        use MetricType::*;
        assert_eq!(types, [Counter, Gauge, Histogram, Summary, Untyped, Untyped, Untyped]);
        let aggregate: Vec<bool> = types.iter().map(|t| t.is_aggregate()).collect();
        assert_eq!(aggregate, [false, false, true, true, false, false, false]);
        let e = Exposition::parse("# TYPE odd stateset\nodd 1\n");
        assert_eq!(e.metric_type("odd"), Some(Untyped));
        assert_eq!(e.metric_type("missing"), None);
    }

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn sums_follow_the_order_of_the_names() {
        let e = Exposition::parse(TEXT);
        let three = names(&["size_bytes", "http_requests_total", "latency_seconds"]);
        assert_eq!(e.sums(&three, &MetricsOptions::new(), "svc").unwrap(), [300.0, 108.0, 1.0]);
        assert_eq!(e.sums(&three, &MetricsOptions::new().count(), "svc").unwrap(), [12.0, 108.0, 7.0]);
        let part = Exposition::parse_only(TEXT, &three);
        assert_eq!(part.sums(&three, &MetricsOptions::new().count(), "svc").unwrap(), [12.0, 108.0, 7.0]);
        assert_eq!(e.sums(&[], &MetricsOptions::new(), "svc").unwrap(), Vec::<f64>::new());
    }

    #[test]
    fn a_name_is_a_whole_metric_name_not_a_prefix() {
        let all = MetricsOptions::new();
        for e in [Exposition::parse(TEXT), Exposition::parse_only(TEXT, ["http_requests", "latency", "size"])] {
            assert_eq!(e.sum("http_requests", &all), None);
            assert_eq!(e.sum("latency", &all), None);
            assert_eq!(e.sum("size", &all.clone().count()), None);
        }
        // A histogram's or summary's own series can be named, and select by labels too.
        assert_eq!(sum("latency_seconds_sum", &with([Matcher::equal("path", "/b")])), Some(0.25));
        assert_eq!(sum("size_bytes_sum", &MetricsOptions::new()), Some(300.0));
        assert_eq!(sum("size_bytes_count", &MetricsOptions::new().count()), Some(12.0), "count changes no direct name");
    }

    #[test]
    fn bucket_and_quantile_labels_do_not_select_a_sum_or_count() {
        // `_sum` and `_count` carry no `le` or `quantile`: such a matcher sees the empty value.
        assert_eq!(sum("latency_seconds", &with([Matcher::equal("le", "0.1")])), None);
        assert_eq!(sum("size_bytes", &with([Matcher::equal("quantile", "0.5")]).count()), None);
        assert_eq!(sum("size_bytes", &with([Matcher::equal("quantile", "")])), Some(300.0));
        assert_eq!(sum("latency_seconds", &with([Matcher::not_equal("path", "/a")]).count()), Some(5.0));
        assert_eq!(sum("latency_seconds", &with([Matcher::regex("path", "/.")])), Some(1.0));
    }

    #[test]
    fn skipped_metrics_count_as_zero_in_a_whole_or_partial_parse() {
        let wanted = names(&["http_requests_total", "latency_seconds", "nope"]);
        let skip = with([Matcher::equal("path", "/b")]).skip_missing_metrics();
        for e in [Exposition::parse(TEXT), Exposition::parse_only(TEXT, &wanted)] {
            assert_eq!(e.sums(&wanted, &skip, "svc").unwrap(), [4.0, 0.25, 0.0]);
            // A metric there but with no series selected is missing too.
            let none = with([Matcher::equal("path", "/c")]).skip_missing_metrics();
            assert_eq!(e.sums(&wanted, &none, "svc").unwrap(), [0.0, 0.0, 0.0]);
            let e = e.sums(&wanted, &with([Matcher::equal("path", "/c")]), "svc").unwrap_err();
            assert!(matches!(&e, Error::MissingMetric { metric, .. } if metric == "http_requests_total"), "{e}");
        }
    }

    #[test]
    fn odd_expositions_sum_what_they_have() {
        let empty = Exposition::parse("");
        assert_eq!(empty.sum("x", &MetricsOptions::new()), None);
        assert!(empty.families().is_empty() && empty.series().is_empty() && empty.family("x").is_none());
        // A histogram served without its _sum and _count has nothing to sum.
        let buckets_only = "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 3\n";
        let e = Exposition::parse(buckets_only);
        assert_eq!((e.sum("h", &MetricsOptions::new()), e.sum("h", &MetricsOptions::new().count())), (None, None));
        assert_eq!(e.family("h").unwrap().series().len(), 1);
        // A NaN series makes the sum NaN, a comment or garbage line is skipped.
        let e = Exposition::parse("# a comment\nx{a=\"1\"} 1\nx{a=\"2\"} NaN\nnot a sample line\ny 2\n");
        assert!(e.sum("x", &MetricsOptions::new()).unwrap().is_nan());
        assert_eq!(e.sum("x", &with([Matcher::equal("a", "1")])), Some(1.0));
        assert_eq!(e.sum("y", &MetricsOptions::new()), Some(2.0));
    }
}
