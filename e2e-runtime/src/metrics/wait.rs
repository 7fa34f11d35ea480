//! The one retry loop behind every wait.

use std::time::{Duration, Instant};

use super::comparators::Comparator;
use super::exposition::Exposition;
use super::options::{MetricsOptions, Missing};
use crate::error::{Error, Result, WaitFailure};
use crate::runnable::Runnable;

/// The least time one scrape is given, even when the deadline is closer.
const MIN_ATTEMPT: Duration = Duration::from_millis(200);
/// Scrapes every runnable at once and adds their sums up.
pub(super) async fn sum_over(runnables: &[Runnable], names: &[String], options: &MetricsOptions) -> Result<Vec<f64>> {
    let each = runnables
        .iter()
        .map(|r| async move { Exposition::parse_only(r.scrape_text().await?, names).sums(names, options, r.name()) });
    Ok(add_up(&crate::task::try_join_all(each).await?, names.len()))
}

/// The sum of each of `n` metrics over the runnables' sums.
fn add_up(per_runnable: &[Vec<f64>], n: usize) -> Vec<f64> {
    (0..n).map(|i| per_runnable.iter().map(|sums| sums[i]).sum()).collect()
}

/// What is left of a metric waited away: the sum over the runnables that still expose it, or
/// nothing once none does.
fn left(per_runnable: impl IntoIterator<Item = Option<f64>>) -> Vec<f64> {
    let left: Vec<f64> = per_runnable.into_iter().flatten().collect();
    if left.is_empty() {
        Vec::new()
    } else {
        vec![left.iter().sum()]
    }
}

/// What a wait waits for.
pub(super) enum Goal<'a> {
    Holds(&'a Comparator),
    Removed,
}

impl Goal<'_> {
    /// Whether what one attempt saw meets the goal: the sums for a comparator, what is
    /// [`left`] for a removal.
    fn met(&self, seen: &[f64]) -> Result<bool> {
        match self {
            Goal::Holds(c) => c.check(seen),
            Goal::Removed => Ok(seen.is_empty()),
        }
    }
}

impl std::fmt::Display for Goal<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Goal::Holds(c) => write!(f, "satisfy {c}"),
            Goal::Removed => f.write_str("be removed"),
        }
    }
}

/// How one attempt of a wait ended.
#[derive(Debug)]
enum Attempt {
    Scraped(Vec<f64>),
    Failed(Error),
    TimedOut(Duration),
}

/// What a wait does after an attempt.
#[derive(Debug)]
enum Next {
    Done,
    Retry,
    Fail(Error),
}

/// What a wait saw last, for its error at the deadline.
#[derive(Debug, Default)]
struct Seen {
    values: Option<Vec<f64>>,
    error: Option<String>,
}

impl Seen {
    /// The decision after one attempt, kept apart from the loop so it is tested without a
    /// container: met is done, a retried error or unmet goal is noted and retried, any other
    /// error ends the wait.
    fn after(&mut self, goal: &Goal<'_>, attempt: Attempt, missing: Missing) -> Next {
        match attempt {
            Attempt::Scraped(values) => match goal.met(&values) {
                Ok(true) => Next::Done,
                Ok(false) => {
                    self.values = Some(values);
                    Next::Retry
                }
                Err(e) => Next::Fail(e),
            },
            Attempt::Failed(Error::MissingMetric { runnable, metric, matchers }) if missing == Missing::Wait => {
                // Its own message suggests wait_missing_metrics(), which this wait already has.
                self.error = Some(format!("runnable {runnable:?} exposes no series of metric {metric:?}{matchers}"));
                Next::Retry
            }
            Attempt::Failed(e) if retried(&e) => {
                self.error = Some(e.to_string());
                Next::Retry
            }
            Attempt::Failed(e) => Next::Fail(e),
            Attempt::TimedOut(limit) => {
                self.error = Some(format!("a scrape took longer than {}", humantime::format_duration(limit)));
                Next::Retry
            }
        }
    }

    /// The error of a wait that reached its deadline.
    fn failure(
        self,
        runnables: &[String],
        names: &[String],
        options: &MetricsOptions,
        goal: &Goal<'_>,
        waited: Duration,
    ) -> Error {
        Error::MetricsWait(Box::new(WaitFailure {
            runnables: runnables.to_vec(),
            metrics: names.to_vec(),
            matchers: options.matchers_text(),
            goal: goal.to_string(),
            waited,
            last_values: self.values,
            last_error: self.error,
        }))
    }
}

/// The pauses between the attempts of one wait: from the options' least, doubling up to their
/// most, never past the deadline. Each wait has its own, so concurrent waits do not share it.
#[derive(Debug)]
struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    fn new((min, max): (Duration, Duration)) -> Self {
        Backoff { next: min, max }
    }

    /// The next pause, when `left` remains before the deadline.
    fn pause(&mut self, left: Duration) -> Duration {
        let pause = self.next.min(left);
        self.next = (self.next * 2).min(self.max);
        pause
    }
}

/// Every wait: scrapes the runnables until the goal is met, the deadline passes, or an error
/// that no retry mends.
pub(super) async fn wait(
    runnables: &[Runnable],
    names: &[String],
    goal: Goal<'_>,
    options: &MetricsOptions,
) -> Result<()> {
    let who: Vec<String> = runnables.iter().map(|r| r.name().to_string()).collect();
    retry(&who, names, &goal, options, || attempt(runnables, names, &goal, options)).await
}

/// The one retry loop behind every wait, over any attempt (a scrape of the runnables, or a
/// test's stand-in).
async fn retry<F, Fut>(
    runnables: &[String],
    names: &[String],
    goal: &Goal<'_>,
    options: &MetricsOptions,
    mut attempt: F,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<f64>>>,
{
    options.check()?;
    if let Goal::Holds(c) = goal {
        c.check_arity(names.len())?;
    }
    let started = Instant::now();
    let deadline = started + options.deadline;
    let mut backoff = Backoff::new(options.backoff);
    let mut seen = Seen::default();
    loop {
        let limit = deadline.saturating_duration_since(Instant::now()).max(MIN_ATTEMPT);
        let outcome = match tokio::time::timeout(limit, attempt()).await {
            Ok(Ok(values)) => Attempt::Scraped(values),
            Ok(Err(e)) => Attempt::Failed(e),
            Err(_) => Attempt::TimedOut(limit),
        };
        match seen.after(goal, outcome, options.missing) {
            Next::Done => return Ok(()),
            Next::Fail(e) => return Err(e),
            Next::Retry => {}
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(seen.failure(runnables, names, options, goal, now - started));
        }
        tokio::time::sleep(backoff.pause(deadline - now)).await;
    }
}

/// One scrape of every runnable: the sums for a comparator, what is [`left`] for a removal.
async fn attempt(
    runnables: &[Runnable],
    names: &[String],
    goal: &Goal<'_>,
    options: &MetricsOptions,
) -> Result<Vec<f64>> {
    match goal {
        Goal::Holds(_) => sum_over(runnables, names, options).await,
        Goal::Removed => {
            let each = runnables.iter().map(|r| async move {
                Ok::<_, Error>(Exposition::parse_only(r.scrape_text().await?, names).sum(&names[0], options))
            });
            Ok(left(crate::task::try_join_all(each).await?))
        }
    }
}

/// Whether a wait goes on after this error: the runnable may yet be started (again), or answer.
fn retried(e: &Error) -> bool {
    matches!(
        e,
        Error::MetricsFetch { .. } | Error::NotStarted { .. } | Error::NotRunning { .. } | Error::Stopped { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{between, equals, equals_amongst_two, greater, Matcher};

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

    fn fetch_failed() -> Error {
        let (runnable, url) = ("svc".to_string(), "http://x/metrics".to_string());
        Error::MetricsFetch { runnable, url, detail: "connection refused".into() }
    }

    fn missing() -> Error {
        Error::MissingMetric { runnable: "svc".into(), metric: "m".into(), matchers: String::new() }
    }

    #[test]
    fn an_attempt_meeting_the_goal_is_done_and_one_short_of_it_is_retried() {
        let (c, mut seen) = (greater(3.0), Seen::default());
        assert!(matches!(seen.after(&Goal::Holds(&c), Attempt::Scraped(vec![2.0]), Missing::Fail), Next::Retry));
        assert_eq!(seen.values, Some(vec![2.0]), "the unmet sums are kept for the error");
        assert!(matches!(seen.after(&Goal::Holds(&c), Attempt::Scraped(vec![4.0]), Missing::Fail), Next::Done));
        assert_eq!(seen.error, None);
    }

    #[test]
    fn a_removal_is_done_once_nothing_is_left() {
        let mut seen = Seen::default();
        assert!(matches!(seen.after(&Goal::Removed, Attempt::Scraped(vec![7.0]), Missing::Fail), Next::Retry));
        assert_eq!(seen.values, Some(vec![7.0]));
        assert!(matches!(seen.after(&Goal::Removed, Attempt::Scraped(vec![]), Missing::Fail), Next::Done));
    }

    #[test]
    fn scrape_failures_and_timeouts_are_retried_and_noted() {
        let (c, mut seen) = (equals(1.0), Seen::default());
        for e in [fetch_failed(), Error::NotStarted { runnable: "svc".into(), operation: "scrape" }] {
            let text = e.to_string();
            assert!(matches!(seen.after(&Goal::Holds(&c), Attempt::Failed(e), Missing::Fail), Next::Retry));
            assert_eq!(seen.error.as_deref(), Some(text.as_str()));
        }
        let e = Error::NotRunning { runnable: "svc".into(), operation: "scrape" };
        assert!(matches!(seen.after(&Goal::Removed, Attempt::Failed(e), Missing::Fail), Next::Retry));
        // Stopped by the test: it may be started again while the wait lasts.
        let e = Error::Stopped { runnable: "svc".into(), operation: "get an endpoint" };
        assert!(matches!(seen.after(&Goal::Holds(&c), Attempt::Failed(e), Missing::Fail), Next::Retry));
        let timed_out = Attempt::TimedOut(Duration::from_millis(200));
        assert!(matches!(seen.after(&Goal::Holds(&c), timed_out, Missing::Fail), Next::Retry));
        assert_eq!(seen.error.as_deref(), Some("a scrape took longer than 200ms"));
        assert_eq!(seen.values, None, "no sums seen yet");
    }

    #[test]
    fn other_errors_end_the_wait_at_once() {
        let (c, mut seen) = (equals(1.0), Seen::default());
        let e = Error::NotInstrumented { runnable: "svc".into() };
        let next = seen.after(&Goal::Holds(&c), Attempt::Failed(e), Missing::Wait);
        assert!(matches!(next, Next::Fail(Error::NotInstrumented { .. })), "{next:?}");
        // A comparator given the wrong number of sums is a mistake no retry mends.
        let two = equals_amongst_two();
        let next = seen.after(&Goal::Holds(&two), Attempt::Scraped(vec![1.0]), Missing::Fail);
        assert!(matches!(next, Next::Fail(Error::ComparatorArity { .. })), "{next:?}");
        assert_eq!((seen.values, seen.error), (None, None));
    }

    #[test]
    fn a_missing_metric_fails_unless_the_wait_waits_for_it() {
        let c = equals(1.0);
        let mut seen = Seen::default();
        let next = seen.after(&Goal::Holds(&c), Attempt::Failed(missing()), Missing::Fail);
        assert!(matches!(next, Next::Fail(Error::MissingMetric { .. })), "{next:?}");
        assert!(matches!(seen.after(&Goal::Holds(&c), Attempt::Failed(missing()), Missing::Skip), Next::Fail(_)));
        assert!(matches!(seen.after(&Goal::Holds(&c), Attempt::Failed(missing()), Missing::Wait), Next::Retry));
        let noted = seen.error.unwrap();
        assert_eq!(noted, r#"runnable "svc" exposes no series of metric "m""#);
        assert!(!noted.contains("wait_missing_metrics"), "no advice to do what the wait does");
    }

    #[test]
    fn backoff_doubles_up_to_its_most_and_never_passes_the_deadline() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(MetricsOptions::new().backoff);
        let pauses: Vec<u64> = (0..7).map(|_| b.pause(ms(1000)).as_millis() as u64).collect();
        assert_eq!(pauses, [5, 10, 20, 40, 80, 100, 100]);
        let mut b = Backoff::new((ms(30), ms(50)));
        assert_eq!(b.pause(ms(10)), ms(10), "cut at the deadline");
        assert_eq!(b.pause(ms(1000)), ms(50), "but it grew all the same");
        let mut b = Backoff::new(MetricsOptions::new().backoff(ms(0), ms(0)).backoff);
        assert_eq!((b.pause(ms(5)), b.pause(ms(5))), (ms(1), ms(1)), "never a busy loop");
    }

    #[test]
    fn sums_add_up_over_runnables_and_what_is_left_of_a_removal() {
        assert_eq!(add_up(&[vec![1.0, 2.0], vec![10.0, 20.0], vec![0.5, 0.0]], 2), [11.5, 22.0]);
        assert_eq!(add_up(&[vec![3.0]], 1), [3.0]);
        assert_eq!(left([Some(1.0), None, Some(2.5)]), [3.5]);
        assert_eq!(left([None, None]), Vec::<f64>::new());
        assert_eq!(left([Some(0.0)]), [0.0], "a series valued 0 is still there");
    }

    #[test]
    fn goals_describe_themselves_in_the_error() {
        let c = between(1.0, 2.0);
        assert_eq!(Goal::Holds(&c).to_string(), "satisfy between(1, 2)");
        assert_eq!(Goal::Removed.to_string(), "be removed");
        let seen = Seen { values: None, error: Some("boom".into()) };
        let options = MetricsOptions::new().matcher(Matcher::equal("x", "1"));
        let e = seen.failure(&["a".into()], &["m".into()], &options, &Goal::Removed, Duration::from_millis(20));
        assert_eq!(
            e.to_string(),
            r#"runnable "a": waited 20ms for metric "m"{x="1"} to be removed; last values: none; last error: boom"#
        );
    }

    /// Runs the retry loop on canned attempt results (the last one repeats), as a wait on
    /// runnables named `svc` would; returns its result and how many attempts it made.
    fn run(
        goal: Goal<'_>,
        names: &[&str],
        options: MetricsOptions,
        script: Vec<Result<Vec<f64>>>,
    ) -> (Result<()>, usize) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let script = std::cell::RefCell::new(std::collections::VecDeque::from(script));
        let tries = std::cell::Cell::new(0);
        let attempt = || {
            tries.set(tries.get() + 1);
            let mut s = script.borrow_mut();
            let next = if s.len() > 1 { s.pop_front().unwrap() } else { clone(s.front().unwrap()) };
            async move { next }
        };
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let result = rt.block_on(retry(&["svc".to_string()], &names, &goal, &options, attempt));
        (result, tries.get())
    }

    fn clone(r: &Result<Vec<f64>>) -> Result<Vec<f64>> {
        match r {
            Ok(v) => Ok(v.clone()),
            Err(Error::MissingMetric { .. }) => Err(missing()),
            Err(Error::NotInstrumented { runnable }) => Err(Error::NotInstrumented { runnable: runnable.clone() }),
            Err(_) => Err(fetch_failed()),
        }
    }

    fn quick() -> MetricsOptions {
        let ms = Duration::from_millis;
        MetricsOptions::new().backoff(ms(1), ms(2)).deadline(ms(60))
    }

    #[test]
    fn the_wait_loop_retries_until_the_goal_is_met() {
        let c = greater(3.0);
        let script = vec![Err(fetch_failed()), Ok(vec![1.0]), Err(missing()), Ok(vec![5.0])];
        let (result, tries) = run(Goal::Holds(&c), &["m"], quick().wait_missing_metrics(), script);
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(tries, 4);
        let (result, tries) = run(Goal::Removed, &["m"], quick(), vec![Ok(vec![2.0]), Ok(vec![])]);
        assert!(result.is_ok() && tries == 2, "{result:?} after {tries}");
    }

    #[test]
    fn the_wait_loop_fails_at_the_deadline_with_what_it_saw_last() {
        let c = greater(3.0);
        let (result, tries) = run(Goal::Holds(&c), &["m"], quick(), vec![Ok(vec![1.0]), Err(fetch_failed())]);
        let Err(Error::MetricsWait(f)) = result else { panic!("{result:?}") };
        assert!(tries > 2, "it kept trying: {tries}");
        assert_eq!((f.runnables.as_slice(), f.metrics.as_slice()), (&["svc".to_string()][..], &["m".to_string()][..]));
        assert_eq!(f.goal, "satisfy greater(3)");
        assert_eq!(f.last_values, Some(vec![1.0]), "the last sums seen, even before a later failure");
        assert!(f.last_error.as_deref().unwrap().contains("connection refused"), "{f:?}");
        assert!(f.waited >= Duration::from_millis(60), "{:?}", f.waited);
    }

    #[test]
    fn the_wait_loop_stops_at_once_on_what_no_retry_mends() {
        let c = equals(1.0);
        let (result, tries) = run(Goal::Holds(&c), &["m"], quick(), vec![Err(missing())]);
        assert!(matches!(result, Err(Error::MissingMetric { .. })) && tries == 1, "{result:?}");
        let not_instrumented = Err(Error::NotInstrumented { runnable: "svc".into() });
        let (result, tries) = run(Goal::Holds(&c), &["m"], quick(), vec![not_instrumented]);
        assert!(matches!(result, Err(Error::NotInstrumented { .. })) && tries == 1, "{result:?}");
    }

    #[test]
    fn the_wait_loop_checks_its_arguments_before_scraping() {
        let (result, tries) = run(Goal::Holds(&equals_amongst_two()), &["m"], quick(), vec![Ok(vec![1.0])]);
        let arity = matches!(result, Err(Error::ComparatorArity { expected: 2, given: 1, .. }));
        assert!(arity && tries == 0, "{result:?}");
        let bad = quick().matcher(Matcher::regex("code", "[0-9"));
        let (result, tries) = run(Goal::Removed, &["m"], bad, vec![Ok(vec![])]);
        assert!(matches!(result, Err(Error::InvalidMatcher { .. })) && tries == 0, "{result:?}");
    }

    #[test]
    fn an_attempt_slower_than_the_deadline_is_cut_and_noted() {
        let names = ["m".to_string()];
        let c = equals(1.0);
        let options = quick().deadline(Duration::from_millis(1));
        let slow = || async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(vec![1.0])
        };
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let started = Instant::now();
        let result = rt.block_on(retry(&["svc".to_string()], &names, &Goal::Holds(&c), &options, slow));
        let Err(Error::MetricsWait(f)) = result else { panic!("{result:?}") };
        assert_eq!(f.last_error.as_deref(), Some("a scrape took longer than 200ms"), "given at least MIN_ATTEMPT");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
