//! The framework's own types for what an exposition holds, so that no type of the parser it
//! uses appears in the public API.

use std::collections::BTreeMap;

/// The type a metric family declares in its `# TYPE` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MetricType {
    /// `counter`.
    Counter,
    /// `gauge`.
    Gauge,
    /// `histogram`: series of buckets, with `_sum` and `_count`.
    Histogram,
    /// `summary`: series of quantiles, with `_sum` and `_count`.
    Summary,
    /// `untyped`, a word the format does not know, or no `# TYPE` line at all.
    Untyped,
}

impl MetricType {
    /// The type a `# TYPE` line names with this word.
    pub(super) fn from_word(word: &str) -> MetricType {
        match word {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "summary" => MetricType::Summary,
            _ => MetricType::Untyped,
        }
    }

    /// Whether its family sums by `_sum` (or `_count`) rather than by its own series.
    pub(super) fn is_aggregate(self) -> bool {
        matches!(self, MetricType::Histogram | MetricType::Summary)
    }
}

/// The value of a [`Series`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// A counter's value.
    Counter(f64),
    /// A gauge's value.
    Gauge(f64),
    /// An untyped series' value; a histogram's or summary's `_sum` and `_count` are untyped.
    Untyped(f64),
    /// A histogram's cumulative buckets, in the order they were served.
    Histogram(Vec<Bucket>),
    /// A summary's quantiles, in the order they were served.
    Summary(Vec<Quantile>),
}

impl Value {
    /// The number of a counter, gauge or untyped value; `None` for buckets or quantiles.
    pub fn scalar(&self) -> Option<f64> {
        match self {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(*v),
            Value::Histogram(_) | Value::Summary(_) => None,
        }
    }
}

/// One bucket of a histogram series: how many observations were at most `upper_bound`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Bucket {
    /// The bucket's `le` label (`f64::INFINITY` for `+Inf`).
    pub upper_bound: f64,
    /// The cumulative count of observations up to the bound.
    pub count: f64,
}

/// One quantile of a summary series.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Quantile {
    /// The `quantile` label, between 0 and 1.
    pub quantile: f64,
    /// The observed value at that quantile.
    pub value: f64,
}

/// One series of an [`Exposition`](super::Exposition): a metric name, its labels and its value.
/// A histogram's buckets (or a summary's quantiles) with one label set are one series named
/// after the family, without the `le` (or `quantile`) label; its `_sum` and `_count` are
/// untyped series of their own.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Series {
    /// The metric name, as served (`x_sum` for a histogram's sum).
    pub name: String,
    /// The labels, sorted by name.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: Value,
}

impl Series {
    /// Our series for a sample as the parser reads it.
    pub(super) fn from_parsed(s: &prometheus_parse::Sample) -> Series {
        use prometheus_parse::Value as Parsed;
        let value = match &s.value {
            Parsed::Counter(v) => Value::Counter(*v),
            Parsed::Gauge(v) => Value::Gauge(*v),
            Parsed::Untyped(v) => Value::Untyped(*v),
            Parsed::Histogram(b) => {
                Value::Histogram(b.iter().map(|b| Bucket { upper_bound: b.less_than, count: b.count }).collect())
            }
            Parsed::Summary(q) => {
                Value::Summary(q.iter().map(|q| Quantile { quantile: q.quantile, value: q.count }).collect())
            }
        };
        let labels = s.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        Series { name: s.metric.clone(), labels, value }
    }
}
