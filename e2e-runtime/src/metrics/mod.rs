//! Metrics: assert on the Prometheus metrics of instrumented runnables while a scenario runs.
//!
//! A runnable is instrumented when its [`StartOptions`](crate::StartOptions) name a metrics port
//! ([`StartOptions::metrics`](crate::StartOptions::metrics)). Its text exposition can then be
//! fetched and parsed ([`Runnable::metrics`](crate::Runnable::metrics)), summed by metric name
//! ([`Runnable::sum_metrics`](crate::Runnable::sum_metrics)), and waited on until a
//! [`Comparator`] holds ([`Runnable::wait_sum_metrics`](crate::Runnable::wait_sum_metrics)) or a
//! metric is gone ([`Runnable::wait_removed_metric`](crate::Runnable::wait_removed_metric)). A
//! [`Composite`] does the same over several runnables.
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
//! (a recording rule's) is skipped. What it parsed is given in the framework's own types
//! ([`Series`], [`Value`], [`MetricType`], [`Family`]), so no parser type is part of this API.

mod comparators;
mod composite;
mod exposition;
mod matchers;
mod options;
mod scrape;
mod series;
mod wait;

pub use crate::error::WaitFailure;
pub use comparators::{
    between, equals, equals_amongst_two, greater, greater_amongst_two, greater_or_equal, less, less_amongst_two,
    less_or_equal, Comparator,
};
pub use composite::{composite, Composite};
pub use exposition::{Exposition, Family};
pub use matchers::Matcher;
pub use options::MetricsOptions;
pub use series::{Bucket, MetricType, Quantile, Series, Value};

/// The metric names of a call, owned.
fn to_names<I>(names: I) -> Vec<String>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    names.into_iter().map(|n| n.as_ref().to_string()).collect()
}
