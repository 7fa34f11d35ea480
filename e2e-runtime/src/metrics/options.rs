//! The options of a metrics call: which series count, what a missing metric means, and how a
//! wait retries.

use std::time::Duration;

use super::matchers::Matcher;
use crate::error::Result;

/// First pause between two attempts of a wait.
pub(super) const BACKOFF_MIN: Duration = Duration::from_millis(5);
/// Longest pause between two attempts of a wait.
pub(super) const BACKOFF_MAX: Duration = Duration::from_millis(100);
/// How long a wait tries before it fails.
pub(super) const DEADLINE: Duration = Duration::from_secs(30);
/// How [`Runnable::sum_metrics`] and the waits select series, treat missing metrics, and retry.
///
/// By default: every series counts, a missing metric is an error, a histogram or summary counts
/// by its sum, and a wait retries from 5 ms apart up to 100 ms apart, for 30 s.
#[derive(Clone, Debug)]
pub struct MetricsOptions {
    matchers: Vec<Matcher>,
    pub(super) missing: Missing,
    pub(super) count: bool,
    pub(super) backoff: (Duration, Duration),
    pub(super) deadline: Duration,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_display_as_promql() {
        let m = MetricsOptions::new().matchers([
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
}
