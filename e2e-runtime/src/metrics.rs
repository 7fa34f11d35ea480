//! Metrics: assert on the Prometheus metrics of instrumented runnables while a scenario runs.
//!
//! A runnable is instrumented when its [`StartOptions`](crate::StartOptions) name a metrics port
//! ([`StartOptions::metrics`](crate::StartOptions::metrics)). Its text exposition can then be
//! fetched and parsed ([`Runnable::metrics`]), summed by metric name ([`Runnable::sum_metrics`]),
//! and waited on until a [`Comparator`] holds ([`Runnable::wait_sum_metrics`]) or a metric is gone
//! ([`Runnable::wait_removed_metric`]). A [`Composite`] does the same over several runnables.
//!
//! How a metric sums, as in efficientgo/e2e:
//! - a metric is looked up by its family (base) name, so `http_request_duration_seconds` finds
//!   the histogram whose series are `http_request_duration_seconds_{bucket,sum,count}`;
//! - counters and gauges count by their value;
//! - histograms and summaries count by their `_sum`, or by their `_count` with
//!   [`MetricsOptions::count`];
//! - untyped series (declared `untyped`, or with no `# TYPE` line) count by their value, so a
//!   histogram's or summary's `_sum` and `_count` can also be named directly;
//! - the sum runs over every series of the family that the label matchers select.
//!
//! ```no_run
//! # async fn f(svc: &e2e_runtime::Runnable) -> e2e_runtime::Result<()> {
//! use e2e_runtime::{greater_or_equal, Matcher, MetricsOptions};
//! let only_ok = MetricsOptions::new().matcher(Matcher::regex("code", "2.."));
//! svc.wait_sum_metrics_with(greater_or_equal(10.0), ["http_requests_total"], only_ok).await?;
//! # Ok(()) }
//! ```
//!
//! The exposition is parsed by the `prometheus-parse` crate, with its limits: label pairs are split
//! on `,` and `=` and escapes are kept as they are, so a label value holding a comma, an equals
//! sign or an escaped quote does not match as written; a sample whose metric name holds a colon
//! (a recording rule's) is skipped.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use regex::Regex;

pub use crate::error::WaitFailure;
use crate::error::{Error, Result};
use crate::runnable::Runnable;

pub use prometheus_parse::{Labels, Sample, SampleType, Scrape, Value};

/// First pause between two attempts of a wait.
const BACKOFF_MIN: Duration = Duration::from_millis(5);
/// Longest pause between two attempts of a wait.
const BACKOFF_MAX: Duration = Duration::from_millis(100);
/// How long a wait tries before it fails.
const DEADLINE: Duration = Duration::from_secs(30);
/// The least time one scrape is given, even when the deadline is closer.
const MIN_ATTEMPT: Duration = Duration::from_millis(200);

// ---------------------------------------------------------------------------------------------
// Exposition

/// A parsed Prometheus text exposition: the raw text, its samples (parsed by `prometheus-parse`)
/// and the type each family declares.
pub struct Exposition {
    text: String,
    scrape: Scrape,
    types: HashMap<String, SampleType>,
}

impl fmt::Debug for Exposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The whole text would drown a failing assertion's message.
        f.debug_struct("Exposition")
            .field("bytes", &self.text.len())
            .field("samples", &self.scrape.samples.len())
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
                types.insert(name.to_string(), SampleType::parse(kind));
                return true;
            }
            match wanted {
                None => true,
                Some(names) => !line.starts_with('#') && summed(sample_name(line), names, &types),
            }
        });
        let lines: Vec<&str> = lines.collect();
        let scrape = parse_in_parallel(&lines, &types);
        Exposition { text, scrape, types }
    }

    /// The exposition as it was served.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The samples as `prometheus-parse` reads them: a histogram's buckets (or a summary's
    /// quantiles) of one series are one sample named after the family; `_sum` and `_count` are
    /// untyped samples of their own.
    pub fn samples(&self) -> &[Sample] {
        &self.scrape.samples
    }

    /// The whole parse: samples and HELP texts.
    pub fn scrape(&self) -> &Scrape {
        &self.scrape
    }

    /// The type a family declares in its `# TYPE` line, if it has one.
    pub fn metric_type(&self, family: &str) -> Option<SampleType> {
        self.types.get(family).copied()
    }

    /// Every family, sorted by name.
    pub fn families(&self) -> Vec<Family<'_>> {
        let mut by_name: BTreeMap<&str, Vec<&Sample>> = BTreeMap::new();
        for s in &self.scrape.samples {
            by_name.entry(self.family_of(s)).or_default().push(s);
        }
        by_name.into_iter().map(|(name, samples)| self.family_with(name, samples)).collect()
    }

    /// One family by its base name, if the exposition has a sample of it.
    pub fn family(&self, name: &str) -> Option<Family<'_>> {
        let samples: Vec<&Sample> = self.scrape.samples.iter().filter(|s| self.family_of(s) == name).collect();
        let first = *samples.first()?;
        Some(self.family_with(self.family_of(first), samples))
    }

    fn family_with<'a>(&'a self, name: &'a str, samples: Vec<&'a Sample>) -> Family<'a> {
        Family {
            name,
            kind: self.metric_type(name).unwrap_or(SampleType::Untyped),
            help: self.scrape.docs.get(name).map(String::as_str),
            samples,
        }
    }

    /// The family a sample belongs to: `x_sum` and `x_count` belong to the histogram or
    /// summary `x`, every other sample to its own name.
    fn family_of<'a>(&self, s: &'a Sample) -> &'a str {
        if let Value::Counter(_) | Value::Gauge(_) | Value::Untyped(_) = s.value {
            for suffix in ["_sum", "_count", "_bucket"] {
                if let Some(base) = s.metric.strip_suffix(suffix) {
                    if self.is_aggregate(base) {
                        return base;
                    }
                }
            }
        }
        &s.metric
    }

    fn is_aggregate(&self, family: &str) -> bool {
        matches!(self.metric_type(family), Some(SampleType::Histogram | SampleType::Summary))
    }

    /// The sum over the series of metric `name` that the options' label matchers select, or
    /// `None` if none is there (see the [module docs](self) for how each type sums).
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
            let (Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v)) = s.value else { continue };
            if options.selects(&s.labels) {
                *sum.get_or_insert(0.0) += v;
            }
        }
        sum
    }

    /// The sum of each name, with missing metrics handled as the options say.
    fn sums(&self, names: &[String], options: &MetricsOptions, runnable: &str) -> Result<Vec<f64>> {
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
fn summed(metric: &str, names: &[String], types: &HashMap<String, SampleType>) -> bool {
    names.iter().any(|n| match metric.strip_prefix(n.as_str()) {
        Some("") => !matches!(types.get(n), Some(SampleType::Histogram | SampleType::Summary)),
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
fn parse_in_parallel(lines: &[&str], types: &HashMap<String, SampleType>) -> Scrape {
    let parse = |chunk: &[&str], type_line: Option<&str>| {
        let owned = type_line.into_iter().chain(chunk.iter().copied()).map(|l| Ok(l.to_string()));
        Scrape::parse(owned).expect("lines of a string always read")
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
    if threads < 2 || lines.len() < PARALLEL_FROM_LINES {
        return parse(lines, None);
    }
    let splittable = |line: &str| {
        line.starts_with('#')
            || !matches!(types.get(family_of(sample_name(line), types)), Some(SampleType::Histogram | SampleType::Summary))
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
fn family_of<'a>(sample: &'a str, types: &HashMap<String, SampleType>) -> &'a str {
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

/// A metric family of an [`Exposition`]: its name, type, help text and samples.
#[derive(Clone, Debug)]
pub struct Family<'a> {
    name: &'a str,
    kind: SampleType,
    help: Option<&'a str>,
    samples: Vec<&'a Sample>,
}

impl<'a> Family<'a> {
    /// The base name (`x` for a histogram's `x_bucket`, `x_sum` and `x_count`).
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The declared type; untyped when the exposition declares none.
    pub fn kind(&self) -> SampleType {
        self.kind
    }

    /// The `# HELP` text.
    pub fn help(&self) -> Option<&'a str> {
        self.help
    }

    /// Its samples, a histogram's or summary's `_sum` and `_count` included.
    pub fn samples(&self) -> &[&'a Sample] {
        &self.samples
    }
}

// ---------------------------------------------------------------------------------------------
// Label matchers

/// Selects series by one label, as a PromQL label matcher does. A series without the label
/// matches as if its value were empty. Regexes are anchored at both ends, as in Prometheus:
/// `Matcher::regex("code", "2..")` matches `200`, not `1200`.
#[derive(Clone, Debug)]
pub struct Matcher {
    name: String,
    op: MatchOp,
    value: String,
    regex: Option<std::result::Result<Regex, String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl Matcher {
    fn new(op: MatchOp, name: impl Into<String>, value: impl Into<String>) -> Self {
        let value = value.into();
        let regex = matches!(op, MatchOp::Regex | MatchOp::NotRegex)
            .then(|| Regex::new(&format!("^(?:{value})$")).map_err(|e| e.to_string()));
        Matcher { name: name.into(), op, value, regex }
    }

    /// `name="value"`: the label equals the value.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self::new(MatchOp::Equal, name, value)
    }

    /// `name!="value"`: the label differs from the value.
    pub fn not_equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self::new(MatchOp::NotEqual, name, value)
    }

    /// `name=~"regex"`: the whole label value matches the regex. An invalid regex is reported
    /// by the call that uses the matcher.
    pub fn regex(name: impl Into<String>, regex: impl Into<String>) -> Self {
        Self::new(MatchOp::Regex, name, regex)
    }

    /// `name!~"regex"`: the whole label value does not match the regex.
    pub fn not_regex(name: impl Into<String>, regex: impl Into<String>) -> Self {
        Self::new(MatchOp::NotRegex, name, regex)
    }

    /// The label name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether a label value (empty for a missing label) is selected. An invalid regex
    /// selects nothing.
    pub fn matches(&self, label_value: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => label_value == self.value,
            (MatchOp::NotEqual, _) => label_value != self.value,
            (MatchOp::Regex, Some(Ok(re))) => re.is_match(label_value),
            (MatchOp::NotRegex, Some(Ok(re))) => !re.is_match(label_value),
            _ => false,
        }
    }

    fn check(&self) -> Result<()> {
        match &self.regex {
            Some(Err(reason)) => Err(Error::InvalidMatcher { matcher: self.to_string(), reason: reason.clone() }),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        };
        write!(f, "{}{op}{:?}", self.name, self.value)
    }
}

// ---------------------------------------------------------------------------------------------
// Options

/// How [`Runnable::sum_metrics`] and the waits select series, treat missing metrics, and retry.
///
/// By default: every series counts, a missing metric is an error, a histogram or summary counts
/// by its sum, and a wait retries from 5 ms apart up to 100 ms apart, for 30 s.
#[derive(Clone, Debug)]
pub struct MetricsOptions {
    matchers: Vec<Matcher>,
    missing: Missing,
    count: bool,
    backoff: (Duration, Duration),
    deadline: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Missing {
    Fail,
    Wait,
    Skip,
}

impl Default for MetricsOptions {
    fn default() -> Self {
        MetricsOptions {
            matchers: Vec::new(),
            missing: Missing::Fail,
            count: false,
            backoff: (BACKOFF_MIN, BACKOFF_MAX),
            deadline: DEADLINE,
        }
    }
}

impl MetricsOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only series this matcher selects count; matchers add up (all must select a series).
    pub fn matcher(mut self, matcher: Matcher) -> Self {
        self.matchers.push(matcher);
        self
    }

    /// Adds several matchers at once.
    pub fn matchers(mut self, matchers: impl IntoIterator<Item = Matcher>) -> Self {
        self.matchers.extend(matchers);
        self
    }

    /// A wait goes on while a metric is missing, instead of failing at once. Replaces
    /// [`MetricsOptions::skip_missing_metrics`].
    pub fn wait_missing_metrics(mut self) -> Self {
        self.missing = Missing::Wait;
        self
    }

    /// A missing metric (or one without a selected series) counts as 0. Replaces
    /// [`MetricsOptions::wait_missing_metrics`].
    pub fn skip_missing_metrics(mut self) -> Self {
        self.missing = Missing::Skip;
        self
    }

    /// Histograms and summaries count by their `_count` instead of their `_sum`. Other types
    /// still count by their value.
    pub fn count(mut self) -> Self {
        self.count = true;
        self
    }

    /// The pause between two attempts of a wait: `min` first, growing up to `max`.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_millis(1));
        self.backoff = (min, max.max(min));
        self
    }

    /// How long a wait tries before it fails.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    fn selects(&self, labels: &Labels) -> bool {
        self.matchers.iter().all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
    }

    fn check(&self) -> Result<()> {
        self.matchers.iter().try_for_each(Matcher::check)
    }

    /// `{a="b",c=~"d"}`, or empty without matchers.
    fn matchers_text(&self) -> String {
        if self.matchers.is_empty() {
            return String::new();
        }
        let all: Vec<String> = self.matchers.iter().map(Matcher::to_string).collect();
        format!("{{{}}}", all.join(","))
    }
}

// ---------------------------------------------------------------------------------------------
// Comparators

/// What a wait expects of the sums of its metrics, one sum per metric name, in order. Made by
/// [`equals`], [`greater`], [`greater_or_equal`], [`less`], [`less_or_equal`], [`between`],
/// [`equals_amongst_two`], [`greater_amongst_two`], [`less_amongst_two`], or
/// [`Comparator::new`].
#[derive(Clone)]
pub struct Comparator {
    description: String,
    arity: usize,
    holds: Holds,
}

type Holds = Arc<dyn Fn(&[f64]) -> bool + Send + Sync>;

impl Comparator {
    /// A comparator of `arity` sums; `description` names it in messages.
    pub fn new(
        description: impl Into<String>,
        arity: usize,
        holds: impl Fn(&[f64]) -> bool + Send + Sync + 'static,
    ) -> Self {
        Comparator { description: description.into(), arity, holds: Arc::new(holds) }
    }

    /// How many sums it compares.
    pub fn arity(&self) -> usize {
        self.arity
    }

    /// Whether it holds for these sums; an error if there are not as many as it compares.
    pub fn check(&self, sums: &[f64]) -> Result<bool> {
        self.check_arity(sums.len())?;
        Ok((self.holds)(sums))
    }

    fn check_arity(&self, given: usize) -> Result<()> {
        if given == self.arity {
            return Ok(());
        }
        Err(Error::ComparatorArity { comparator: self.description.clone(), expected: self.arity, given })
    }

    fn one(description: String, holds: impl Fn(f64) -> bool + Send + Sync + 'static) -> Self {
        Self::new(description, 1, move |s| holds(s[0]))
    }

    fn two(description: &str, holds: impl Fn(f64, f64) -> bool + Send + Sync + 'static) -> Self {
        Self::new(description, 2, move |s| holds(s[0], s[1]))
    }
}

impl fmt::Debug for Comparator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Comparator").field("description", &self.description).field("arity", &self.arity).finish()
    }
}

impl fmt::Display for Comparator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description)
    }
}

/// Equality where NaN equals NaN, so a wait for a NaN gauge can succeed.
fn same(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

/// The one sum equals `value` (NaN equals NaN).
pub fn equals(value: f64) -> Comparator {
    Comparator::one(format!("equals({value})"), move |v| same(v, value))
}

/// The one sum is greater than `value`.
pub fn greater(value: f64) -> Comparator {
    Comparator::one(format!("greater({value})"), move |v| v > value)
}

/// The one sum is greater than or equal to `value`.
pub fn greater_or_equal(value: f64) -> Comparator {
    Comparator::one(format!("greater_or_equal({value})"), move |v| v >= value)
}

/// The one sum is less than `value`.
pub fn less(value: f64) -> Comparator {
    Comparator::one(format!("less({value})"), move |v| v < value)
}

/// The one sum is less than or equal to `value`.
pub fn less_or_equal(value: f64) -> Comparator {
    Comparator::one(format!("less_or_equal({value})"), move |v| v <= value)
}

/// The one sum lies strictly between the bounds: `lower < sum < upper`.
pub fn between(lower: f64, upper: f64) -> Comparator {
    Comparator::one(format!("between({lower}, {upper})"), move |v| lower < v && v < upper)
}

/// The first of two sums equals the second (NaN equals NaN). Two metrics are rarely updated
/// atomically: a scrape may see one changed and not yet the other.
pub fn equals_amongst_two() -> Comparator {
    Comparator::two("equals_amongst_two", same)
}

/// The first of two sums is greater than the second.
pub fn greater_amongst_two() -> Comparator {
    Comparator::two("greater_amongst_two", |a, b| a > b)
}

/// The first of two sums is less than the second.
pub fn less_amongst_two() -> Comparator {
    Comparator::two("less_amongst_two", |a, b| a < b)
}

// ---------------------------------------------------------------------------------------------
// Runnables

impl Runnable {
    /// Fetches and parses the runnable's metrics, from its metrics port with the configured
    /// scheme and path (HTTPS without checking the certificate). An error if the runnable is not
    /// instrumented, not started, or does not answer with a 2xx status.
    pub async fn metrics(&self) -> Result<Exposition> {
        Ok(Exposition::parse(self.scrape_text().await?))
    }

    async fn scrape_text(&self) -> Result<String> {
        let m = self
            .options()
            .metrics_endpoint()
            .ok_or_else(|| Error::NotInstrumented { runnable: self.name().to_string() })?;
        if m.scheme != "http" && m.scheme != "https" {
            return Err(Error::InvalidName {
                what: "metrics scheme",
                name: m.scheme.clone(),
                reason: "use http or https".into(),
            });
        }
        let addr = self.endpoint(&m.port)?;
        let slash = if m.path.starts_with('/') { "" } else { "/" };
        let url = format!("{}://{addr}{slash}{}", m.scheme, m.path);
        let failed =
            |detail: String| Error::MetricsFetch { runnable: self.name().to_string(), url: url.clone(), detail };
        let resp = self
            .http()
            .get(&url)
            // The text format, not protobuf or OpenMetrics, whatever the server prefers.
            .header(reqwest::header::ACCEPT, "text/plain;version=0.0.4")
            .send()
            .await
            .map_err(|e| failed(crate::error::error_chain(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(failed(format!("answered {status}")));
        }
        resp.text().await.map_err(|e| failed(format!("reading the body: {}", crate::error::error_chain(&e))))
    }

    /// The sum of each metric, in the order of `names` (see the [module docs](crate::metrics)
    /// for how each type sums). A missing metric is an error unless the options skip it.
    pub async fn sum_metrics_with<I>(&self, names: I, options: &MetricsOptions) -> Result<Vec<f64>>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        options.check()?;
        sum_over(std::slice::from_ref(self), &to_names(names), options).await
    }

    /// Waits until the comparator holds for the sums of these metrics. Scrape failures (a
    /// runnable not yet started, stopped or restarting) are retried until the deadline; so is a
    /// missing metric with [`MetricsOptions::wait_missing_metrics`]. The error after the
    /// deadline names the runnable, the metrics, the matchers, the last sums and the last
    /// error.
    pub async fn wait_sum_metrics_with<I>(&self, comparator: Comparator, names: I, options: MetricsOptions) -> Result<()>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        wait(std::slice::from_ref(self), &to_names(names), Goal::Holds(&comparator), &options).await
    }

    /// Waits until the runnable no longer exposes a series of the metric that the options'
    /// matchers select. Scrape failures are retried until the deadline.
    pub async fn wait_removed_metric_with(&self, name: &str, options: MetricsOptions) -> Result<()> {
        wait(std::slice::from_ref(self), &[name.to_string()], Goal::Removed, &options).await
    }

    /// [`sum_metrics_with`](Self::sum_metrics_with) with the default options.
    pub async fn sum_metrics<I>(&self, names: I) -> Result<Vec<f64>>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.sum_metrics_with(names, &MetricsOptions::default()).await
    }

    /// [`wait_sum_metrics_with`](Self::wait_sum_metrics_with) with the default options, except
    /// that a metric not exposed yet is waited for (a counter often has no series until its
    /// first increment): a wait is meant to wait.
    pub async fn wait_sum_metrics<I>(&self, comparator: Comparator, names: I) -> Result<()>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.wait_sum_metrics_with(comparator, names, waiting()).await
    }

    /// [`wait_removed_metric_with`](Self::wait_removed_metric_with) with the default options.
    pub async fn wait_removed_metric(&self, name: &str) -> Result<()> {
        self.wait_removed_metric_with(name, MetricsOptions::default()).await
    }
}

/// Several instrumented runnables seen as one service (replicas, shards): their metrics sum
/// across all of them. A metric counts as missing if one runnable lacks it.
#[derive(Clone, Debug)]
pub struct Composite {
    runnables: Vec<Runnable>,
}

/// A [`Composite`] over these runnables.
pub fn composite<'a>(runnables: impl IntoIterator<Item = &'a Runnable>) -> Composite {
    Composite::new(runnables)
}

impl Composite {
    /// A composite over these runnables.
    pub fn new<'a>(runnables: impl IntoIterator<Item = &'a Runnable>) -> Self {
        Composite { runnables: runnables.into_iter().cloned().collect() }
    }

    /// Its runnables.
    pub fn runnables(&self) -> &[Runnable] {
        &self.runnables
    }

    /// The sum of each metric over every runnable, in the order of `names`.
    pub async fn sum_metrics_with<I>(&self, names: I, options: &MetricsOptions) -> Result<Vec<f64>>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        options.check()?;
        sum_over(&self.runnables, &to_names(names), options).await
    }

    /// Like [`Runnable::wait_sum_metrics_with`], on sums over every runnable.
    pub async fn wait_sum_metrics_with<I>(&self, comparator: Comparator, names: I, options: MetricsOptions) -> Result<()>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        wait(&self.runnables, &to_names(names), Goal::Holds(&comparator), &options).await
    }

    /// Waits until no runnable exposes a selected series of the metric.
    pub async fn wait_removed_metric_with(&self, name: &str, options: MetricsOptions) -> Result<()> {
        wait(&self.runnables, &[name.to_string()], Goal::Removed, &options).await
    }

    /// [`sum_metrics_with`](Self::sum_metrics_with) with the default options.
    pub async fn sum_metrics<I>(&self, names: I) -> Result<Vec<f64>>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.sum_metrics_with(names, &MetricsOptions::default()).await
    }

    /// [`wait_sum_metrics_with`](Self::wait_sum_metrics_with) with the default options, except
    /// that a metric not exposed yet is waited for (a counter often has no series until its
    /// first increment): a wait is meant to wait.
    pub async fn wait_sum_metrics<I>(&self, comparator: Comparator, names: I) -> Result<()>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.wait_sum_metrics_with(comparator, names, waiting()).await
    }

    /// [`wait_removed_metric_with`](Self::wait_removed_metric_with) with the default options.
    pub async fn wait_removed_metric(&self, name: &str) -> Result<()> {
        self.wait_removed_metric_with(name, MetricsOptions::default()).await
    }
}

/// The options of the short `wait_sum_metrics`: a metric not exposed yet is waited for.
fn waiting() -> MetricsOptions {
    MetricsOptions::default().wait_missing_metrics()
}

fn to_names<I>(names: I) -> Vec<String>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    names.into_iter().map(|n| n.as_ref().to_string()).collect()
}

/// Scrapes every runnable at once and adds their sums up.
async fn sum_over(runnables: &[Runnable], names: &[String], options: &MetricsOptions) -> Result<Vec<f64>> {
    let each = runnables
        .iter()
        .map(|r| async move { Exposition::parse_only(r.scrape_text().await?, names).sums(names, options, r.name()) });
    let all = futures_util::future::try_join_all(each).await?;
    Ok((0..names.len()).map(|i| all.iter().map(|sums| sums[i]).sum()).collect())
}

/// What a wait waits for.
enum Goal<'a> {
    Holds(&'a Comparator),
    Removed,
}

/// The one retry loop behind every wait. Its backoff lives here, so concurrent waits on one
/// runnable do not share it.
async fn wait(runnables: &[Runnable], names: &[String], goal: Goal<'_>, options: &MetricsOptions) -> Result<()> {
    options.check()?;
    if let Goal::Holds(c) = goal {
        c.check_arity(names.len())?;
    }
    let started = Instant::now();
    let deadline = started + options.deadline;
    let mut pause = options.backoff.0;
    let (mut last_values, mut last_error) = (None, None);
    loop {
        let limit = deadline.saturating_duration_since(Instant::now()).max(MIN_ATTEMPT);
        match tokio::time::timeout(limit, attempt(runnables, names, &goal, options)).await {
            Ok(Ok(None)) => return Ok(()),
            Ok(Ok(Some(values))) => last_values = Some(values),
            Ok(Err(Error::MissingMetric { runnable, metric, matchers })) if options.missing == Missing::Wait => {
                // Its own message suggests wait_missing_metrics(), which this wait already has.
                last_error = Some(format!("runnable {runnable:?} exposes no series of metric {metric:?}{matchers}"))
            }
            Ok(Err(e)) if retried(&e) => last_error = Some(e.to_string()),
            Ok(Err(e)) => return Err(e),
            Err(_) => last_error = Some(format!("a scrape took longer than {}", humantime::format_duration(limit))),
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::MetricsWait(Box::new(WaitFailure {
                runnables: runnables.iter().map(|r| r.name().to_string()).collect(),
                metrics: names.to_vec(),
                matchers: options.matchers_text(),
                goal: match goal {
                    Goal::Holds(c) => format!("satisfy {c}"),
                    Goal::Removed => "be removed".into(),
                },
                waited: now - started,
                last_values,
                last_error,
            })));
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(options.backoff.1);
    }
}

/// One try: `None` once the goal is met, else the sums seen.
async fn attempt(
    runnables: &[Runnable],
    names: &[String],
    goal: &Goal<'_>,
    options: &MetricsOptions,
) -> Result<Option<Vec<f64>>> {
    match goal {
        Goal::Holds(c) => {
            let sums = sum_over(runnables, names, options).await?;
            Ok((!c.check(&sums)?).then_some(sums))
        }
        Goal::Removed => {
            let each = runnables.iter().map(|r| async move {
                Ok::<_, Error>(Exposition::parse_only(r.scrape_text().await?, names).sum(&names[0], options))
            });
            let left: Vec<f64> = futures_util::future::try_join_all(each).await?.into_iter().flatten().collect();
            Ok((!left.is_empty()).then(|| vec![left.iter().sum()]))
        }
    }
}

/// Whether a wait goes on after this error: the runnable may yet be started, or answer.
fn retried(e: &Error) -> bool {
    matches!(e, Error::MetricsFetch { .. } | Error::NotStarted { .. } | Error::NotRunning { .. })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let kept: Vec<&str> = part.samples().iter().map(|s| s.metric.as_str()).collect();
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
    fn matchers_display_as_promql() {
        let m = with([
            Matcher::equal("a", "1"),
            Matcher::not_equal("b", "2"),
            Matcher::regex("c", "x\"y"),
            Matcher::not_regex("d", ".*"),
        ]);
        assert_eq!(m.matchers_text(), r#"{a="1",b!="2",c=~"x\"y",d!~".*"}"#);
        assert_eq!(MetricsOptions::new().matchers_text(), "");
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
        assert_eq!(h.kind(), SampleType::Histogram);
        assert_eq!(h.help(), Some("Latency."));
        // Two series of buckets, two _sum and two _count.
        assert_eq!(h.samples().len(), 6);
        assert_eq!(e.family("size_bytes").unwrap().kind(), SampleType::Summary);
        assert_eq!(e.family("no_type_line").unwrap().kind(), SampleType::Untyped);
        assert_eq!(e.metric_type("temperature"), Some(SampleType::Gauge));
        assert!(e.family("latency_seconds_sum").is_none());
        assert!(e.text().starts_with("# HELP http_requests_total"));
        assert!(format!("{e:?}").len() < 100, "Debug stays short");
    }

    #[test]
    fn comparators() {
        let holds = |c: Comparator, sums: &[f64]| c.check(sums).unwrap();
        assert!(holds(equals(2.0), &[2.0]) && !holds(equals(2.0), &[2.5]));
        assert!(holds(equals(f64::NAN), &[f64::NAN]), "NaN equals NaN");
        assert!(!holds(equals(1.0), &[f64::NAN]));
        assert!(holds(greater(1.0), &[2.0]) && !holds(greater(2.0), &[2.0]));
        assert!(holds(greater_or_equal(2.0), &[2.0]) && !holds(greater_or_equal(2.1), &[2.0]));
        assert!(holds(less(3.0), &[2.0]) && !holds(less(2.0), &[2.0]));
        assert!(holds(less_or_equal(2.0), &[2.0]) && !holds(less_or_equal(1.9), &[2.0]));
        assert!(holds(between(1.0, 3.0), &[2.0]));
        assert!(!holds(between(2.0, 3.0), &[2.0]) && !holds(between(1.0, 2.0), &[2.0]), "bounds excluded");
        assert!(!holds(greater(0.0), &[f64::NAN]) && !holds(less(0.0), &[f64::NAN]));
        assert!(holds(equals_amongst_two(), &[1.0, 1.0]) && !holds(equals_amongst_two(), &[1.0, 2.0]));
        assert!(holds(equals_amongst_two(), &[f64::NAN, f64::NAN]));
        assert!(holds(greater_amongst_two(), &[2.0, 1.0]) && !holds(greater_amongst_two(), &[1.0, 1.0]));
        assert!(holds(less_amongst_two(), &[1.0, 2.0]) && !holds(less_amongst_two(), &[1.0, 1.0]));
        let custom = Comparator::new("sum is 3", 2, |s| s[0] + s[1] == 3.0);
        assert!(holds(custom.clone(), &[1.0, 2.0]));
        assert_eq!(custom.to_string(), "sum is 3");
        assert_eq!(between(1.0, 2.5).to_string(), "between(1, 2.5)");
    }

    #[test]
    fn comparators_given_the_wrong_number_of_sums_are_errors() {
        for (c, sums) in [(equals(1.0), vec![]), (greater(1.0), vec![1.0, 2.0]), (equals_amongst_two(), vec![1.0])] {
            match c.check(&sums) {
                Err(Error::ComparatorArity { expected, given, .. }) => {
                    assert_eq!((expected, given), (c.arity(), sums.len()))
                }
                other => panic!("{c}: {other:?}"),
            }
        }
        let e = less_amongst_two().check(&[1.0]).unwrap_err().to_string();
        assert!(e.contains("less_amongst_two compares 2 metric(s) but was given 1"), "{e}");
    }

    #[test]
    fn options_keep_sane_backoffs() {
        let o = MetricsOptions::new().backoff(Duration::ZERO, Duration::ZERO).deadline(Duration::from_secs(1));
        assert_eq!(o.backoff, (Duration::from_millis(1), Duration::from_millis(1)));
        assert_eq!(o.deadline, Duration::from_secs(1));
        let d = MetricsOptions::default();
        assert_eq!((d.backoff, d.deadline), ((BACKOFF_MIN, BACKOFF_MAX), DEADLINE));
    }

    #[test]
    fn wait_errors_say_what_was_seen() {
        let e = Error::MetricsWait(Box::new(WaitFailure {
            runnables: vec!["a".into(), "b".into()],
            metrics: vec!["m".into()],
            matchers: r#"{x="1"}"#.into(),
            goal: "satisfy greater(5)".into(),
            waited: Duration::from_micros(1_500_300),
            last_values: Some(vec![3.0, 0.5]),
            last_error: Some("connection refused".into()),
        }));
        assert_eq!(
            e.to_string(),
            r#"runnables "a", "b": waited 1s 500ms for metric "m"{x="1"} to satisfy greater(5); last values: [3, 0.5]; last error: connection refused"#
        );
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
        let histograms: Vec<_> = e.samples().iter().filter(|s| s.metric == "lat_seconds").collect();
        assert_eq!(histograms.len(), 300);
        assert!(histograms.iter().all(|s| matches!(&s.value, Value::Histogram(b) if b.len() == 3)));
        assert_eq!(e.metric_type("depth"), Some(SampleType::Gauge));
        assert!(e.samples().iter().filter(|s| s.metric == "depth").all(|s| matches!(s.value, Value::Gauge(_))));
    }

    #[test]
    fn type_lines() {
        assert_eq!(type_line("# TYPE a_b counter"), Some(("a_b", "counter")));
        assert_eq!(type_line("#  TYPE a  gauge "), Some(("a", "gauge")));
        assert_eq!(type_line("# HELP a counter"), None);
        assert_eq!(type_line("a 1"), None);
    }
}
