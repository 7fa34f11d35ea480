//! The metrics methods of a runnable and of a composite of several: both are those of
//! [`Targets`], so each exists once.

use super::comparators::Comparator;
use super::options::{waiting, MetricsOptions};
use super::to_names;
use super::wait::{sum_over, wait, Goal};
use crate::error::Result;
use crate::runnable::Runnable;

/// The runnables one metrics call scrapes: a runnable alone, or a composite's.
#[derive(Clone, Copy)]
struct Targets<'a>(&'a [Runnable]);

impl Targets<'_> {
    async fn sum_metrics_with(self, names: &[String], options: &MetricsOptions) -> Result<Vec<f64>> {
        options.check()?;
        sum_over(self.0, names, options).await
    }

    async fn wait_sum_metrics_with(
        self,
        comparator: &Comparator,
        names: &[String],
        options: &MetricsOptions,
    ) -> Result<()> {
        wait(self.0, names, Goal::Holds(comparator), options).await
    }

    async fn wait_removed_metric_with(self, name: &str, options: &MetricsOptions) -> Result<()> {
        wait(self.0, &[name.to_string()], Goal::Removed, options).await
    }

    async fn sum_metrics(self, names: &[String]) -> Result<Vec<f64>> {
        self.sum_metrics_with(names, &MetricsOptions::default()).await
    }

    async fn wait_sum_metrics(self, comparator: &Comparator, names: &[String]) -> Result<()> {
        self.wait_sum_metrics_with(comparator, names, &waiting()).await
    }

    async fn wait_removed_metric(self, name: &str) -> Result<()> {
        self.wait_removed_metric_with(name, &MetricsOptions::default()).await
    }
}

impl Runnable {
    fn metrics_targets(&self) -> Targets<'_> {
        Targets(std::slice::from_ref(self))
    }

    /// The sum of each metric, in the order of `names` (see the [module docs](crate::metrics)
    /// for how each type sums). A missing metric is an error unless the options skip it.
    pub async fn sum_metrics_with<I>(&self, names: I, options: &MetricsOptions) -> Result<Vec<f64>>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.metrics_targets().sum_metrics_with(&to_names(names), options).await
    }

    /// Waits until the comparator holds for the sums of these metrics. Scrape failures (a
    /// runnable not yet started, stopped or restarting) are retried until the deadline; so is a
    /// missing metric with [`MetricsOptions::wait_missing_metrics`]. The error after the
    /// deadline names the runnable, the metrics, the matchers, the last sums and the last
    /// error.
    pub async fn wait_sum_metrics_with<I>(
        &self,
        comparator: Comparator,
        names: I,
        options: MetricsOptions,
    ) -> Result<()>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.metrics_targets().wait_sum_metrics_with(&comparator, &to_names(names), &options).await
    }

    /// Waits until the runnable no longer exposes a series of the metric that the options'
    /// matchers select. Scrape failures are retried until the deadline.
    pub async fn wait_removed_metric_with(&self, name: &str, options: MetricsOptions) -> Result<()> {
        self.metrics_targets().wait_removed_metric_with(name, &options).await
    }

    /// [`sum_metrics_with`](Self::sum_metrics_with) with the default options.
    pub async fn sum_metrics<I>(&self, names: I) -> Result<Vec<f64>>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.metrics_targets().sum_metrics(&to_names(names)).await
    }

    /// [`wait_sum_metrics_with`](Self::wait_sum_metrics_with) with the default options, except
    /// that a metric not exposed yet is waited for (a counter often has no series until its
    /// first increment): a wait is meant to wait.
    pub async fn wait_sum_metrics<I>(&self, comparator: Comparator, names: I) -> Result<()>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.metrics_targets().wait_sum_metrics(&comparator, &to_names(names)).await
    }

    /// [`wait_removed_metric_with`](Self::wait_removed_metric_with) with the default options.
    pub async fn wait_removed_metric(&self, name: &str) -> Result<()> {
        self.metrics_targets().wait_removed_metric(name).await
    }
}

/// Several instrumented runnables seen as one service (replicas, shards): their metrics sum
/// across all of them. A metric counts as missing if one runnable lacks it.
#[derive(Clone, Debug)]
pub struct Composite {
    runnables: Vec<Runnable>,
}

/// A [`Composite`] over these runnables.
/// (runnables, or workloads: anything that is [`AsRef<Runnable>`]).
pub fn composite<'a, R: AsRef<Runnable> + 'a>(runnables: impl IntoIterator<Item = &'a R>) -> Composite {
    Composite::new(runnables)
}

impl Composite {
    /// A composite over these runnables.
    pub fn new<'a, R: AsRef<Runnable> + 'a>(runnables: impl IntoIterator<Item = &'a R>) -> Self {
        Composite { runnables: runnables.into_iter().map(|r| r.as_ref().clone()).collect() }
    }

    /// Its runnables.
    pub fn runnables(&self) -> &[Runnable] {
        &self.runnables
    }

    fn metrics_targets(&self) -> Targets<'_> {
        Targets(&self.runnables)
    }

    /// The sum of each metric over every runnable, in the order of `names`.
    pub async fn sum_metrics_with<I>(&self, names: I, options: &MetricsOptions) -> Result<Vec<f64>>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.metrics_targets().sum_metrics_with(&to_names(names), options).await
    }

    /// Like [`Runnable::wait_sum_metrics_with`], on sums over every runnable.
    pub async fn wait_sum_metrics_with<I>(
        &self,
        comparator: Comparator,
        names: I,
        options: MetricsOptions,
    ) -> Result<()>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.metrics_targets().wait_sum_metrics_with(&comparator, &to_names(names), &options).await
    }

    /// Waits until no runnable exposes a selected series of the metric.
    pub async fn wait_removed_metric_with(&self, name: &str, options: MetricsOptions) -> Result<()> {
        self.metrics_targets().wait_removed_metric_with(name, &options).await
    }

    /// [`sum_metrics_with`](Self::sum_metrics_with) with the default options.
    pub async fn sum_metrics<I>(&self, names: I) -> Result<Vec<f64>>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.metrics_targets().sum_metrics(&to_names(names)).await
    }

    /// [`wait_sum_metrics_with`](Self::wait_sum_metrics_with) with the default options, except
    /// that a metric not exposed yet is waited for.
    pub async fn wait_sum_metrics<I>(&self, comparator: Comparator, names: I) -> Result<()>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.metrics_targets().wait_sum_metrics(&comparator, &to_names(names)).await
    }

    /// [`wait_removed_metric_with`](Self::wait_removed_metric_with) with the default options.
    pub async fn wait_removed_metric(&self, name: &str) -> Result<()> {
        self.metrics_targets().wait_removed_metric(name).await
    }
}
