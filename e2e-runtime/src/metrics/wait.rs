//! Metrics options and the one retry loop behind every wait.

use std::time::{Duration, Instant};

use super::comparators::Comparator;
use super::exposition::Exposition;
use super::matchers::Matcher;
use crate::error::{Error, Result, WaitFailure};
use crate::runnable::Runnable;

/// First pause between two attempts of a wait.
const BACKOFF_MIN: Duration = Duration::from_millis(5);
/// Longest pause between two attempts of a wait.
const BACKOFF_MAX: Duration = Duration::from_millis(100);
/// How long a wait tries before it fails.
const DEADLINE: Duration = Duration::from_secs(30);
/// The least time one scrape is given, even when the deadline is closer.
const MIN_ATTEMPT: Duration = Duration::from_millis(200);
/// How [`Runnable::sum_metrics`] and the waits select series, treat missing metrics, and retry.
///
/// By default: every series counts, a missing metric is an error, a histogram or summary counts
/// by its sum, and a wait retries from 5 ms apart up to 100 ms apart, for 30 s.
#[derive(Clone, Debug)]
pub struct MetricsOptions {
    matchers: Vec<Matcher>,
    pub(super) missing: Missing,
    pub(super) count: bool,
    backoff: (Duration, Duration),
    deadline: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Missing {
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

    /// Whether every matcher selects the series whose labels `label` looks up.
    pub(super) fn selects<'l>(&self, label: impl Fn(&str) -> Option<&'l str>) -> bool {
        self.matchers.iter().all(|m| m.matches(label(m.name()).unwrap_or("")))
    }

    pub(super) fn check(&self) -> Result<()> {
        self.matchers.iter().try_for_each(Matcher::check)
    }

    /// `{a="b",c=~"d"}`, or empty without matchers.
    pub(super) fn matchers_text(&self) -> String {
        if self.matchers.is_empty() {
            return String::new();
        }
        let all: Vec<String> = self.matchers.iter().map(Matcher::to_string).collect();
        format!("{{{}}}", all.join(","))
    }
}

/// The options of the short `wait_sum_metrics`: a metric not exposed yet is waited for.
pub(super) fn waiting() -> MetricsOptions {
    MetricsOptions::default().wait_missing_metrics()
}

/// Scrapes every runnable at once and adds their sums up.
pub(super) async fn sum_over(runnables: &[Runnable], names: &[String], options: &MetricsOptions) -> Result<Vec<f64>> {
    let each = runnables
        .iter()
        .map(|r| async move { Exposition::parse_only(r.scrape_text().await?, names).sums(names, options, r.name()) });
    let all = futures_util::future::try_join_all(each).await?;
    Ok((0..names.len()).map(|i| all.iter().map(|sums| sums[i]).sum()).collect())
}

/// What a wait waits for.
pub(super) enum Goal<'a> {
    Holds(&'a Comparator),
    Removed,
}

/// The one retry loop behind every wait. Its backoff lives here, so concurrent waits on one
/// runnable do not share it.
pub(super) async fn wait(runnables: &[Runnable], names: &[String], goal: Goal<'_>, options: &MetricsOptions) -> Result<()> {
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

    fn with(matchers: impl IntoIterator<Item = Matcher>) -> MetricsOptions {
        MetricsOptions::new().matchers(matchers)
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
}
