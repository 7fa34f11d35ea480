//! Readiness probes: what "ready" means for a runnable.

use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

use regex::Regex;

use futures_util::future::BoxFuture;

use crate::logs::LogBuffer;

/// Why a probe did not pass (yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProbeError {
    /// The runnable has no address for the port (yet).
    NoAddress { port: String },
    /// The request got no answer.
    Request { url: String, detail: String },
    /// The answer's status is not accepted.
    Status { url: String, got: u16, want: RangeInclusive<u16> },
    /// The answer's body lacks the text.
    Body { url: String, want: String },
    /// The TCP connection failed.
    Connect { address: String, detail: String },
    /// The command exited with another code than 0.
    Command { command: Vec<String>, exit_code: i64 },
    /// The command could not be run.
    Exec { detail: String },
    /// Not enough matching log lines yet.
    Log { pattern: String, seen: usize, times: usize },
    /// The log regex is invalid.
    Regex { detail: String },
    /// The healthcheck has not passed yet (`starting`).
    Starting { last_output: String },
    /// The healthcheck says `unhealthy`: final.
    Unhealthy { last_output: String },
    /// There is no healthcheck to wait for: final.
    NoHealthcheck,
    /// The health could not be read.
    Inspect { detail: String },
    /// Still running; an exit is awaited.
    Running { want: i64 },
    /// It exited with another code than the one awaited: final.
    ExitCode { got: i64, want: i64 },
}

impl ProbeError {
    /// Whether waiting longer cannot help: readiness fails at once.
    pub(crate) fn is_final(&self) -> bool {
        matches!(self, ProbeError::Unhealthy { .. } | ProbeError::NoHealthcheck | ProbeError::ExitCode { .. })
    }
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeError::NoAddress { port } => write!(f, "port {port:?} has no address"),
            ProbeError::Request { url, detail } => write!(f, "GET {url}: {detail}"),
            ProbeError::Status { url, got, want } => {
                write!(f, "GET {url} answered {got}, want {}..={}", want.start(), want.end())
            }
            ProbeError::Body { url, want } => write!(f, "GET {url} body does not contain {want:?}"),
            ProbeError::Connect { address, detail } => write!(f, "TCP connect to {address}: {detail}"),
            ProbeError::Command { command, exit_code } => write!(f, "{command:?} exited with {exit_code}"),
            ProbeError::Exec { detail } => f.write_str(detail),
            ProbeError::Log { pattern, seen, times } => {
                write!(f, "log line matching {pattern:?} seen {seen} of {times} times")
            }
            ProbeError::Regex { detail } => f.write_str(detail),
            ProbeError::Starting { last_output } if last_output.is_empty() => {
                f.write_str("the healthcheck has not passed yet (starting)")
            }
            ProbeError::Starting { last_output } => {
                write!(f, "the healthcheck has not passed yet (starting); last check said: {last_output}")
            }
            ProbeError::Unhealthy { last_output } => {
                write!(f, "the healthcheck says unhealthy; last check said: {last_output}")
            }
            ProbeError::NoHealthcheck => {
                f.write_str("the container has no healthcheck (its image declares no HEALTHCHECK)")
            }
            ProbeError::Inspect { detail } => write!(f, "reading the container's health: {detail}"),
            ProbeError::Running { want } => write!(f, "still running (ready when it exits with {want})"),
            ProbeError::ExitCode { got, want } => write!(f, "exited with {got}, not {want}"),
        }
    }
}

/// Runs a command inside the probed runnable's container: its exit code.
pub(crate) trait Exec: Sync {
    fn exec(&self, command: Vec<String>) -> BoxFuture<'_, Result<i64, String>>;
    /// The container's health (`None`: it has no healthcheck).
    fn health(&self) -> BoxFuture<'_, Result<Option<crate::engine::Health>, String>>;
}

/// How to tell that a runnable is ready. Built with [`Probe::http`], [`Probe::https`],
/// [`Probe::tcp`], [`Probe::cmd`], [`Probe::log`], [`Probe::healthy`], [`Probe::exit_code`] and
/// [`Probe::all_of`], then refined with
/// [`Probe::status`], [`Probe::body_contains`] (HTTP) and [`Probe::times`] (log).
///
/// Probes dial the container's own address on the env network when the engine is local (a
/// published host port accepts connections as soon as docker-proxy listens, before the service
/// does, so it would prove nothing), and the published host port otherwise.
#[derive(Clone, Debug)]
pub struct Probe {
    kind: Kind,
    /// A refinement applied to the wrong kind of probe, reported when the probe is used.
    misuse: Option<String>,
}

#[derive(Clone, Debug)]
enum Kind {
    Http { port: String, path: String, tls: bool, status: RangeInclusive<u16>, body: Option<String> },
    Tcp { port: String },
    Cmd { command: Vec<String> },
    Log { pattern: String, regex: Result<Regex, String>, times: usize },
    Healthy,
    ExitCode(i64),
    AllOf(Vec<Probe>),
}

impl Probe {
    fn new(kind: Kind) -> Self {
        Probe { kind, misuse: None }
    }

    /// Ready when the container's healthcheck (its image's `HEALTHCHECK`) says `healthy`; fails at
    /// once when it says `unhealthy`, or when there is no healthcheck.
    pub fn healthy() -> Self {
        Probe::new(Kind::Healthy)
    }

    /// Ready when the container has exited with `code` (a batch job, a migration); fails at
    /// once when it exits with another. An exit is then no failure of readiness.
    pub fn exit_code(code: i64) -> Self {
        Probe::new(Kind::ExitCode(code))
    }

    /// Whether the probe waits for the container's exit (an exit is then not a failure).
    pub(crate) fn expects_exit(&self) -> bool {
        match &self.kind {
            Kind::ExitCode(_) => true,
            Kind::AllOf(ps) => ps.iter().any(Probe::expects_exit),
            _ => false,
        }
    }

    /// Ready when `GET http://<port>/<path>` answers a status in 200..=299 (see [`Probe::status`]).
    pub fn http(port: impl Into<String>, path: impl Into<String>) -> Self {
        Self::new(Kind::Http { port: port.into(), path: path.into(), tls: false, status: 200..=299, body: None })
    }

    /// Like [`Probe::http`] over HTTPS, without checking the certificate.
    pub fn https(port: impl Into<String>, path: impl Into<String>) -> Self {
        Self::new(Kind::Http { port: port.into(), path: path.into(), tls: true, status: 200..=299, body: None })
    }

    /// Ready when a TCP connection to the port succeeds.
    pub fn tcp(port: impl Into<String>) -> Self {
        Self::new(Kind::Tcp { port: port.into() })
    }

    /// Ready when this command, run inside the container, exits with 0.
    pub fn cmd<I, S>(command: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::new(Kind::Cmd { command: command.into_iter().map(Into::into).collect() })
    }

    /// Ready when a line of the container's stdout or stderr matches this regex (once, or the
    /// number of times given to [`Probe::times`]).
    pub fn log(regex: &str) -> Self {
        Self::new(Kind::Log {
            pattern: regex.to_string(),
            regex: Regex::new(regex).map_err(|e| e.to_string()),
            times: 1,
        })
    }

    /// Ready when every one of these probes is.
    pub fn all_of(probes: impl IntoIterator<Item = Probe>) -> Self {
        Self::new(Kind::AllOf(probes.into_iter().collect()))
    }

    /// The HTTP statuses that count as ready (HTTP probes only).
    pub fn status(mut self, accepted: RangeInclusive<u16>) -> Self {
        match &mut self.kind {
            Kind::Http { status, .. } => *status = accepted,
            _ => self.misuse = Some(format!("status() applies to HTTP probes, not to {self}")),
        }
        self
    }

    /// Text the HTTP answer's body must contain (HTTP probes only).
    pub fn body_contains(mut self, text: impl Into<String>) -> Self {
        match &mut self.kind {
            Kind::Http { body, .. } => *body = Some(text.into()),
            _ => self.misuse = Some(format!("body_contains() applies to HTTP probes, not to {self}")),
        }
        self
    }

    /// How many matching lines a log probe needs (log probes only).
    pub fn times(mut self, n: usize) -> Self {
        match &mut self.kind {
            Kind::Log { times, .. } => *times = n.max(1),
            _ => self.misuse = Some(format!("times() applies to log probes, not to {self}")),
        }
        self
    }

    /// Port names the probe dials, to check them against the runnable's ports before start.
    pub(crate) fn ports(&self) -> Vec<&str> {
        match &self.kind {
            Kind::Http { port, .. } | Kind::Tcp { port } => vec![port.as_str()],
            Kind::AllOf(ps) => ps.iter().flat_map(|p| p.ports()).collect(),
            _ => vec![],
        }
    }

    /// A mistake in the probe's definition, found before it is ever run.
    pub(crate) fn invalid(&self) -> Option<String> {
        if let Some(m) = &self.misuse {
            return Some(m.clone());
        }
        match &self.kind {
            Kind::Log { pattern, regex: Err(e), .. } => Some(format!("invalid log regex {pattern:?}: {e}")),
            Kind::AllOf(ps) => ps.iter().find_map(|p| p.invalid()),
            _ => None,
        }
    }

    /// Runs the probe once: `Ok` when ready, else why not.
    pub(crate) async fn check(&self, target: &Target<'_>) -> Result<(), ProbeError> {
        match &self.kind {
            Kind::Http { port, path, tls, status, body } => {
                let addr = target.address(port)?;
                let scheme = if *tls { "https" } else { "http" };
                let path = path.strip_prefix('/').unwrap_or(path);
                let url = format!("{scheme}://{addr}/{path}");
                let resp = match target.http().get(&url, &[]).await {
                    Ok(resp) => resp,
                    Err(e) => return Err(ProbeError::Request { url, detail: e.0 }),
                };
                let code = resp.status().as_u16();
                if !status.contains(&code) {
                    return Err(ProbeError::Status { url, got: code, want: status.clone() });
                }
                if let Some(want) = body {
                    let text = match resp.text().await {
                        Ok(text) => text,
                        Err(e) => return Err(ProbeError::Request { url, detail: format!("reading body: {e}") }),
                    };
                    if !text.contains(want.as_str()) {
                        return Err(ProbeError::Body { url, want: want.clone() });
                    }
                }
                Ok(())
            }
            Kind::Tcp { port } => {
                let addr = target.address(port)?;
                let stream =
                    match tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(&addr)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => return Err(ProbeError::Connect { address: addr, detail: e.to_string() }),
                        Err(_) => return Err(ProbeError::Connect { address: addr, detail: "timed out".into() }),
                    };
                if target.published {
                    proxied_service_answers(stream, &addr).await?;
                }
                Ok(())
            }
            Kind::Cmd { command } => match target.exec.exec(command.clone()).await {
                Ok(0) => Ok(()),
                Ok(code) => Err(ProbeError::Command { command: command.clone(), exit_code: code }),
                Err(detail) => Err(ProbeError::Exec { detail }),
            },
            Kind::Log { regex, times, pattern } => {
                let regex = regex.as_ref().map_err(|e| ProbeError::Regex { detail: e.clone() })?;
                // Only this container's lines: a restarted runnable keeps its older ones.
                let (lines, _) = target.logs().since(target.logs_from);
                let seen = lines.iter().filter(|l| regex.is_match(l)).count();
                if seen >= *times {
                    Ok(())
                } else {
                    Err(ProbeError::Log { pattern: pattern.clone(), seen, times: *times })
                }
            }
            Kind::Healthy => match target.exec.health().await {
                Ok(None) => Err(ProbeError::NoHealthcheck),
                Ok(Some(h)) if h.status == "healthy" => Ok(()),
                Ok(Some(h)) if h.status == "unhealthy" => Err(ProbeError::Unhealthy { last_output: h.last_output }),
                Ok(Some(h)) => Err(ProbeError::Starting { last_output: h.last_output }),
                Err(detail) => Err(ProbeError::Inspect { detail }),
            },
            Kind::ExitCode(want) => match *target.exits.borrow() {
                None => Err(ProbeError::Running { want: *want }),
                Some(got) if got == *want => Ok(()),
                Some(got) => Err(ProbeError::ExitCode { got, want: *want }),
            },
            Kind::AllOf(ps) => {
                for p in ps {
                    Box::pin(p.check(target)).await?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Http { port, path, tls, .. } => {
                write!(f, "{}({port}, {path:?})", if *tls { "https" } else { "http" })
            }
            Kind::Tcp { port } => write!(f, "tcp({port})"),
            Kind::Cmd { command } => write!(f, "cmd({command:?})"),
            Kind::Log { pattern, times, .. } => write!(f, "log({pattern:?}, {times} times)"),
            Kind::Healthy => write!(f, "healthy()"),
            Kind::ExitCode(code) => write!(f, "exit_code({code})"),
            Kind::AllOf(ps) => {
                write!(f, "all_of(")?;
                for (i, p) in ps.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{p}")?;
                }
                write!(f, ")")
            }
        }
    }
}

/// What a probe needs from the runnable it checks.
pub(crate) struct Target<'a> {
    /// `host:port` to dial, by port name.
    pub addresses: &'a std::collections::HashMap<String, String>,
    /// The env's HTTP client.
    pub http: &'a crate::http::Client,
    /// The container's output so far.
    pub logs: &'a LogBuffer,
    /// The number of the first line this container printed.
    pub logs_from: u64,
    /// The runnable, for commands run inside it.
    pub exec: &'a dyn Exec,
    /// Its container's exit code once it has exited.
    pub exits: &'a tokio::sync::watch::Receiver<Option<i64>>,
    /// The addresses are published ports, which a proxy of the engine may serve (docker-proxy
    /// on the engine's loopback, a VM's port forwarder), not the containers' own.
    pub published: bool,
}

/// How long a connection through a port proxy must stay open to count as the service's.
const PROXY_GRACE: Duration = Duration::from_millis(100);

/// A port proxy accepts at once and, when the service does not listen yet, closes the
/// connection as soon as its own dial is refused: an end of stream within a moment is that,
/// while a service keeps the connection open (or speaks first).
async fn proxied_service_answers(mut stream: tokio::net::TcpStream, addr: &str) -> Result<(), ProbeError> {
    use tokio::io::AsyncReadExt;
    let mut byte = [0u8; 1];
    match tokio::time::timeout(PROXY_GRACE, stream.read(&mut byte)).await {
        Err(_) | Ok(Ok(1..)) => Ok(()),
        Ok(Ok(0)) => Err(ProbeError::Connect {
            address: addr.to_string(),
            detail: "accepted, then closed at once: the engine's port proxy answered, not the service".into(),
        }),
        Ok(Err(e)) => Err(ProbeError::Connect { address: addr.to_string(), detail: format!("accepted, then {e}") }),
    }
}

impl Target<'_> {
    fn address(&self, port: &str) -> Result<String, ProbeError> {
        self.addresses.get(port).cloned().ok_or_else(|| ProbeError::NoAddress { port: port.to_string() })
    }

    fn http(&self) -> &crate::http::Client {
        self.http
    }

    fn logs(&self) -> &LogBuffer {
        self.logs
    }
}
