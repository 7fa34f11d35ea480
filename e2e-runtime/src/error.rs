//! The one error type of the runtime.

use std::time::Duration;

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
        source: bollard::errors::Error,
    },
    /// An engine call failed; `context` says which and on what.
    #[error("{context}: {source}")]
    Docker {
        /// What was being done, naming the resource.
        context: String,
        /// The engine's answer.
        #[source]
        source: bollard::errors::Error,
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
    /// An operation that needs a running container found it stopped.
    #[error("runnable {runnable:?} is not running: cannot {operation}")]
    NotRunning {
        /// The runnable.
        runnable: String,
        /// What was asked of it.
        operation: &'static str,
    },
    /// The container exited while it was being waited on.
    #[error("runnable {runnable:?} exited with code {exit_code} while waiting for it to be ready{}", format_tail(logs))]
    Exited {
        /// The runnable.
        runnable: String,
        /// The container's exit code.
        exit_code: i64,
        /// Its last log lines.
        logs: Vec<String>,
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
    /// An env name is held by a run that the framework cannot prove dead.
    #[error("env {env:?} is in use by another live run ({owner}); its resources are left alone")]
    EnvInUse {
        /// The env.
        env: String,
        /// The other run's owner label.
        owner: String,
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
    MetricsWait(Box<crate::metrics::WaitFailure>),
    /// A PromQL query against the env's monitoring failed or never gave the awaited result.
    #[error("query {query:?}: {detail}")]
    Query {
        /// The PromQL expression.
        query: String,
        /// What went wrong.
        detail: String,
    },
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

impl Error {
    pub(crate) fn docker(context: impl Into<String>, source: bollard::errors::Error) -> Self {
        Error::Docker { context: context.into(), source }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }
}

/// An error with the whole chain of its causes: reqwest's message alone ("error sending
/// request") hides the reason.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// The HTTP status code of an engine error, if it is one.
pub(crate) fn status_of(e: &bollard::errors::Error) -> Option<u16> {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}
