//! The one error type of the runtime.

use std::time::Duration;

pub use crate::engine::{EngineError, EngineErrorKind};

/// Two declarations of one runnable of a shared env: the first test's, and another's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declarations {
    /// The test that declared it first.
    pub first_test: String,
    /// Its definition there (ports and start options).
    pub first: String,
    /// The test declaring it again.
    pub test: String,
    /// Its definition there.
    pub this: String,
}

/// Result of the runtime's operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while running a scenario. Each variant names the thing at fault
/// (the env, the runnable, the image, the port, the probe) so the message alone says what broke.
///
/// `Debug` prints the same message as `Display`, so a test returning `Err` shows it readably.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Docker engine could not be reached.
    #[error(
        "cannot reach the Docker engine at {host}: {source}\n  \
         e2e runs its workloads on Docker: start the engine (for example `sudo systemctl start docker`) \
         or point DOCKER_HOST at a running one (unix:///var/run/docker.sock, tcp://host:2375)"
    )]
    DockerUnavailable {
        /// The address tried (`DOCKER_HOST` or the default socket).
        host: String,
        /// Why the connection failed.
        #[source]
        source: EngineError,
    },
    /// An engine call failed; `context` says which and on what, `source` what the engine
    /// answered (its [`EngineError::kind`] tells not found, conflict, unavailable...).
    #[error("{context}: {source}")]
    Engine {
        /// What was being done, naming the resource.
        context: String,
        /// The engine's answer.
        #[source]
        source: EngineError,
    },
    /// A name (of an env, a runnable, a port) is not usable.
    #[error("invalid {what} name {name:?}: {reason}")]
    InvalidName {
        /// What kind of name: "env", "runnable", "port".
        what: &'static str,
        /// The name given.
        name: String,
        /// Why it was refused.
        reason: String,
    },
    /// An `E2E_*` environment variable has a value the runtime does not accept.
    #[error("invalid value {value:?} for {variable}: accepted values are {accepted}")]
    InvalidSetting {
        /// The variable, e.g. `E2E_KEEP`.
        variable: &'static str,
        /// The value it has.
        value: String,
        /// The values it accepts.
        accepted: &'static str,
    },
    /// An image is missing locally and could not be pulled.
    #[error("image {image:?} is not present locally and could not be pulled: {detail}")]
    ImageNotFound {
        /// The image reference.
        image: String,
        /// The engine's answer to the pull.
        detail: String,
    },
    /// Building an image failed.
    #[error("building image {image:?} failed: {detail}")]
    ImageBuild {
        /// The tag being built.
        image: String,
        /// What failed (the builder's output or the I/O error).
        detail: String,
    },
    /// A port name that the runnable does not declare.
    #[error("runnable {runnable:?} has no port named {port:?} (known ports: {})", known.join(", "))]
    UnknownPort {
        /// The runnable.
        runnable: String,
        /// The port name asked for.
        port: String,
        /// The names it declares.
        known: Vec<String>,
    },
    /// The env was closed; nothing can be created or started in it.
    #[error("env {env:?} is closed: runnable {runnable:?} cannot be used")]
    EnvClosed {
        /// The env.
        env: String,
        /// The runnable the operation was on.
        runnable: String,
    },
    /// Two runnables with one name in an env.
    #[error("env {env:?} already has a runnable named {name:?}")]
    DuplicateRunnable {
        /// The env.
        env: String,
        /// The name used twice.
        name: String,
    },
    /// A runnable of a shared env declared differently by two tests.
    #[error(
        "runnable {runnable:?} of shared env {env:?} is declared differently by two tests:\n  \
         {} declares {}\n  {} declares {}\n  \
         tests of a shared env share a workload by its parameter name: name one of them otherwise",
        .declarations.first_test, .declarations.first, .declarations.test, .declarations.this
    )]
    SharedMismatch {
        /// The shared env.
        env: String,
        /// The runnable's name (the workload parameter's).
        runnable: String,
        /// The two declarations.
        declarations: Box<Declarations>,
    },
    /// Start on a runnable that is already started.
    #[error("runnable {runnable:?} is already started")]
    AlreadyStarted {
        /// The runnable.
        runnable: String,
    },
    /// An operation that needs a started runnable.
    #[error("runnable {runnable:?} is not started: cannot {operation}")]
    NotStarted {
        /// The runnable.
        runnable: String,
        /// What was asked of it.
        operation: &'static str,
    },
    /// A network fault (a partition, its heal) could not be put in place on a runnable.
    #[error("{operation} on runnable {runnable:?}: {reason}")]
    NetworkFault {
        /// What was being done: "partition [a] from [b, c]", "heal of partition ...".
        operation: String,
        /// The runnable whose network it was.
        runnable: String,
        /// Why: the helper's output, or what is missing.
        reason: String,
    },
    /// An operation that needs a running container found the runnable stopped (or killed) by
    /// the test.
    #[error("runnable {runnable:?} is stopped: cannot {operation} (start it again first)")]
    Stopped {
        /// The runnable.
        runnable: String,
        /// What was asked of it.
        operation: &'static str,
    },
    /// An operation that needs a running container found it stopped.
    #[error("runnable {runnable:?} is not running: cannot {operation}")]
    NotRunning {
        /// The runnable.
        runnable: String,
        /// What was asked of it.
        operation: &'static str,
    },
    /// The container exited while it was being waited on.
    #[error(
        "runnable {runnable:?} exited with code {exit_code} while waiting for it to be ready{}",
        format_tail(logs)
    )]
    Exited {
        /// The runnable.
        runnable: String,
        /// The container's exit code.
        exit_code: i64,
        /// Its last log lines.
        logs: Vec<String>,
    },
    /// The engine's event stream broke and could not be resumed while a runnable was waited on:
    /// its exit would go unseen.
    #[error("runnable {runnable:?}: cannot wait for it to be ready: {detail}")]
    EventsLost {
        /// The runnable.
        runnable: String,
        /// What happened to the stream.
        detail: String,
    },
    /// Readiness was not reached in time.
    #[error(
        "runnable {runnable:?} was not ready after {}: probe {probe} last failed with: {last_error}{}",
        humantime::format_duration(std::time::Duration::from_millis(waited.as_millis() as u64)), format_tail(logs)
    )]
    NotReady {
        /// The runnable.
        runnable: String,
        /// The probe, described.
        probe: String,
        /// How long it was waited on.
        waited: Duration,
        /// The probe's last failure.
        last_error: String,
        /// Its last log lines.
        logs: Vec<String>,
    },
    /// A file-system operation on the env's directories failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A workload name not in the catalog.
    #[error("no workload named {name:?} in the catalog (known: {})", known.join(", "))]
    UnknownWorkload {
        /// The name asked for.
        name: String,
        /// The names the catalog has.
        known: Vec<String>,
    },
    /// A metrics operation on a runnable without a metrics port.
    #[error(
        "runnable {runnable:?} is not instrumented: it has no metrics port \
         (name one with StartOptions::metrics(\"<port name>\"))"
    )]
    NotInstrumented {
        /// The runnable.
        runnable: String,
    },
    /// Fetching a runnable's metrics failed: no answer, or a status other than 2xx.
    #[error("runnable {runnable:?}: fetching metrics from {url} failed: {detail}")]
    MetricsFetch {
        /// The runnable.
        runnable: String,
        /// The URL fetched.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// A metric has no series (that the label matchers select).
    #[error(
        "runnable {runnable:?} exposes no series of metric {metric:?}{matchers} \
         (MetricsOptions::wait_missing_metrics() waits for it, skip_missing_metrics() counts it as 0)"
    )]
    MissingMetric {
        /// The runnable.
        runnable: String,
        /// The metric name.
        metric: String,
        /// The label matchers, as `{a="b",c=~"d"}`, or empty.
        matchers: String,
    },
    /// A label matcher that cannot be used (an invalid regex).
    #[error("invalid label matcher {matcher}: {reason}")]
    InvalidMatcher {
        /// The matcher, as `name=~"regex"`.
        matcher: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A metrics comparator given another number of metrics than it compares.
    #[error("comparator {comparator} compares {expected} metric(s) but was given {given}: pass exactly {expected} metric name(s)")]
    ComparatorArity {
        /// The comparator, as `equals(5)`.
        comparator: String,
        /// How many metrics it compares.
        expected: usize,
        /// How many it was given.
        given: usize,
    },
    /// A metrics wait reached its deadline: what it waited for and what it saw last.
    #[error("{0}")]
    MetricsWait(Box<WaitFailure>),
    /// Several operations failed (runnables started together, resources removed together):
    /// every failure, not only the first.
    #[error("{}", format_all(errors))]
    Many {
        /// The failures, in the order of the operations.
        errors: Vec<Error>,
    },
    /// A PromQL query against the env's monitoring failed or never gave the awaited result.
    #[error("query {query:?}: {detail}")]
    Query {
        /// The PromQL expression.
        query: String,
        /// What went wrong.
        detail: String,
    },
}

/// The messages of several errors, one per line.
fn format_all(errors: &[Error]) -> String {
    let mut s = format!("{} operations failed:", errors.len());
    for e in errors {
        for (i, line) in e.to_string().lines().enumerate() {
            s.push_str(if i == 0 { "\n  - " } else { "\n    " });
            s.push_str(line);
        }
    }
    s
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)?;
        // Display already shows the direct source; show what lies beneath it.
        let mut source = std::error::Error::source(self).and_then(|s| s.source());
        while let Some(s) = source {
            write!(f, "\n  caused by: {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

fn format_tail(logs: &[String]) -> String {
    if logs.is_empty() {
        return "\n  (no log lines)".to_string();
    }
    let mut s = format!("\n  last {} log lines:", logs.len());
    for l in logs {
        s.push_str("\n  | ");
        s.push_str(l);
    }
    s
}

impl From<crate::engine::Unreachable> for Error {
    fn from(u: crate::engine::Unreachable) -> Self {
        Error::DockerUnavailable { host: u.address, source: u.error }
    }
}

/// What a metrics wait that reached its deadline waited for and saw last
/// ([`Error::MetricsWait`]); kept here, beside the error that carries it, so errors need
/// nothing of the metrics module.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WaitFailure {
    /// The runnables scraped (several for a composite).
    pub runnables: Vec<String>,
    /// The metric names.
    pub metrics: Vec<String>,
    /// The label matchers, as `{a="b",c=~"d"}`, or empty.
    pub matchers: String,
    /// What was waited for, as `satisfy greater(5)` or `be removed`.
    pub goal: String,
    /// How long it was waited for.
    pub waited: Duration,
    /// The sums of the last successful scrape, if any.
    pub last_values: Option<Vec<f64>>,
    /// The last error met while scraping, if any.
    pub last_error: Option<String>,
}

impl std::fmt::Display for WaitFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let quoted = |names: &[String]| names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ");
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        let waited = humantime::format_duration(Duration::from_millis(self.waited.as_millis() as u64));
        let values = match &self.last_values {
            Some(v) => format!("[{}]", v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ")),
            None => "none".into(),
        };
        write!(
            f,
            "runnable{} {}: waited {waited} for metric{} {}{} to {}; last values: {values}; last error: {}",
            plural(self.runnables.len()),
            quoted(&self.runnables),
            plural(self.metrics.len()),
            quoted(&self.metrics),
            self.matchers,
            self.goal,
            self.last_error.as_deref().unwrap_or("none"),
        )
    }
}

impl Error {
    pub(crate) fn engine(context: impl Into<String>, source: EngineError) -> Self {
        Error::Engine { context: context.into(), source }
    }

    /// The engine's error kind, when an engine call failed.
    pub fn engine_kind(&self) -> Option<EngineErrorKind> {
        match self {
            Error::Engine { source, .. } | Error::DockerUnavailable { source, .. } => Some(source.kind()),
            _ => None,
        }
    }

    /// A copy of a declaration error (a bad or duplicate name, a closed env), which every call
    /// on the runnable returns.
    pub(crate) fn declaration_copy(&self) -> Error {
        match self {
            Error::InvalidName { what, name, reason } => {
                Error::InvalidName { what, name: name.clone(), reason: reason.clone() }
            }
            Error::DuplicateRunnable { env, name } => Error::DuplicateRunnable { env: env.clone(), name: name.clone() },
            Error::EnvClosed { env, runnable } => Error::EnvClosed { env: env.clone(), runnable: runnable.clone() },
            Error::SharedMismatch { env, runnable, declarations } => Error::SharedMismatch {
                env: env.clone(),
                runnable: runnable.clone(),
                declarations: declarations.clone(),
            },
            other => Error::InvalidName { what: "runnable", name: String::new(), reason: other.to_string() },
        }
    }

    /// `Ok` for no errors, the error itself for one, [`Error::Many`] for more.
    pub(crate) fn all(mut errors: Vec<Error>) -> Result<()> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(Error::Many { errors }),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }
}
