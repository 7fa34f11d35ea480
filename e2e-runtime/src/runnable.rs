//! Runnables: a container in an env, from declaration to running and ready.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::watch;

use crate::endpoint::Endpoint;
use crate::engine::{ContainerSpec, Engine, EngineErrorKind, EngineResult, Limits, Mount, MountSource};
use crate::env::{Declared, Env, INTERNAL_SHARED_DIR};
use crate::error::{Error, Result};
use crate::logs::{LineSplitter, LogBuffer, TAIL_LINES};
use crate::owner::RUNNABLE_LABEL;
use crate::probe::{Probe, Target};

/// The shortest gap between two readiness checks of one runnable.
const MIN_CHECK_GAP: Duration = Duration::from_millis(1);
/// The longest: checks start 2 ms apart and back off to this.
const MAX_CHECK_GAP: Duration = Duration::from_millis(10);

/// How a runnable's container is started: image, command, environment, resources, readiness.
#[derive(Clone, Debug)]
pub struct StartOptions {
    image: String,
    command: Option<Vec<String>>,
    entrypoint: Option<Vec<String>>,
    env: Vec<(String, String)>,
    user: Option<String>,
    volumes: Vec<(String, String, bool)>,
    privileged: bool,
    cap_add: Vec<String>,
    memory: Option<u64>,
    cpus: Option<f64>,
    readiness: Option<Probe>,
    readiness_timeout: Duration,
    stop_timeout: Duration,
    init: bool,
    quiet: bool,
    publish: bool,
    metrics: Option<Metrics>,
}

/// Where a runnable serves its Prometheus metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metrics {
    /// The port name.
    pub port: String,
    /// The HTTP path (default `/metrics`).
    pub path: String,
    /// `http` (default) or `https`.
    pub scheme: String,
}

impl StartOptions {
    /// Options for a container of `image` with its own entrypoint and command.
    pub fn new(image: impl Into<String>) -> Self {
        StartOptions {
            image: image.into(),
            command: None,
            entrypoint: None,
            env: Vec::new(),
            user: None,
            volumes: Vec::new(),
            privileged: false,
            cap_add: Vec::new(),
            memory: None,
            cpus: None,
            readiness: None,
            readiness_timeout: Duration::from_secs(60),
            stop_timeout: Duration::from_secs(10),
            init: true,
            quiet: false,
            publish: false,
            metrics: None,
        }
    }

    /// The image.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// The command (arguments to the entrypoint), replacing the image's `CMD`.
    pub fn command<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.command = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// Replaces the image's entrypoint.
    pub fn entrypoint<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.entrypoint = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// Disables the image's entrypoint: the command runs as it is.
    pub fn no_entrypoint(mut self) -> Self {
        self.entrypoint = Some(vec![String::new()]);
        self
    }

    /// Sets an environment variable; variables keep the order they are given in.
    pub fn env_var(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The user (`uid`, `uid:gid` or a name) the container runs as.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Mounts `source` at `target`: an absolute host path is bind-mounted; any other name is a
    /// volume of this env (created, labelled and removed with it).
    pub fn volume(mut self, source: impl Into<String>, target: impl Into<String>) -> Self {
        self.volumes.push((source.into(), target.into(), false));
        self
    }

    /// Like [`StartOptions::volume`], read-only.
    pub fn volume_ro(mut self, source: impl Into<String>, target: impl Into<String>) -> Self {
        self.volumes.push((source.into(), target.into(), true));
        self
    }

    /// Runs the container privileged.
    pub fn privileged(mut self, privileged: bool) -> Self {
        self.privileged = privileged;
        self
    }

    /// Adds a Linux capability (for example `NET_ADMIN`).
    pub fn cap_add(mut self, capability: impl Into<String>) -> Self {
        self.cap_add.push(capability.into());
        self
    }

    /// Limits memory, in bytes.
    pub fn memory_bytes(mut self, bytes: u64) -> Self {
        self.memory = Some(bytes);
        self
    }

    /// Limits CPU, in cores (`0.5` is half a core).
    pub fn cpus(mut self, cores: f64) -> Self {
        self.cpus = Some(cores);
        self
    }

    /// What "ready" means; without a probe a runnable is ready once started.
    pub fn readiness(mut self, probe: Probe) -> Self {
        self.readiness = Some(probe);
        self
    }

    /// How long to wait for readiness (default 60 s).
    pub fn readiness_timeout(mut self, timeout: Duration) -> Self {
        self.readiness_timeout = timeout;
        self
    }

    /// How long a graceful stop waits before killing (default 10 s).
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = timeout;
        self
    }

    /// Runs an init process as PID 1 (on by default), so a program that ignores SIGTERM still
    /// stops at once and zombies are reaped.
    pub fn init(mut self, init: bool) -> Self {
        self.init = init;
        self
    }

    /// Instruments the runnable: it serves Prometheus metrics on this named port, at `/metrics`
    /// over `http` unless [`StartOptions::metrics_path`] and [`StartOptions::metrics_scheme`] say
    /// otherwise.
    pub fn metrics(mut self, port: impl Into<String>) -> Self {
        self.metrics_mut().port = port.into();
        self
    }

    /// The metrics path (with [`StartOptions::metrics`]).
    pub fn metrics_path(mut self, path: impl Into<String>) -> Self {
        self.metrics_mut().path = path.into();
        self
    }

    /// The metrics scheme, `http` or `https` (with [`StartOptions::metrics`]).
    pub fn metrics_scheme(mut self, scheme: impl Into<String>) -> Self {
        self.metrics_mut().scheme = scheme.into();
        self
    }

    fn metrics_mut(&mut self) -> &mut Metrics {
        self.metrics.get_or_insert_with(|| Metrics {
            port: String::new(),
            path: "/metrics".into(),
            scheme: "http".into(),
        })
    }

    /// Where the runnable serves metrics, if it is instrumented.
    pub fn metrics_endpoint(&self) -> Option<&Metrics> {
        self.metrics.as_ref()
    }

    /// Has the engine publish the ports on `127.0.0.1` (`docker run -p 127.0.0.1::<port>`), so
    /// that [`Runnable::endpoint`] addresses outlive this process. By default, with a local
    /// engine, this process serves those addresses itself, relaying to the container, which
    /// spares the engine a proxy process and NAT rules per port. `E2E_PUBLISH_PORTS=1` (and
    /// `E2E_KEEP`) turn publishing on for every runnable; a remote engine always publishes.
    pub fn publish_ports(mut self, publish: bool) -> Self {
        self.publish = publish;
        self
    }

    /// Keeps the container's output out of the test output (it is still kept for errors).
    pub fn quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }
}

impl Env {
    /// Declares a runnable named `name` (its container is `<env>-<name>-<run tag>`, reached as
    /// `<env>-<name>` and `<name>` inside the env network). Problems with the
    /// name, or a closed env, are reported by every later call on it.
    pub fn runnable(&self, name: &str) -> RunnableBuilder {
        // In a shared env the name is claimed when the runnable is first declared: a test
        // declaring it again gets the same runnable.
        let problem = match self.inner.sharing {
            Some(_) => self.check_claimable(name).err(),
            None => self.claim(name).err(),
        };
        RunnableBuilder::new(self.clone(), name, problem)
    }
}

/// A runnable being declared: its name and named ports. Becomes a [`FutureRunnable`] (known
/// addresses, not yet configured) or, with [`StartOptions`], a [`Runnable`].
#[derive(Debug)]
pub struct RunnableBuilder {
    env: Env,
    name: String,
    ports: Vec<(String, u16)>,
    problem: Option<Error>,
}

impl RunnableBuilder {
    pub(crate) fn new(env: Env, name: &str, problem: Option<Error>) -> Self {
        RunnableBuilder { env, name: name.to_string(), ports: Vec::new(), problem }
    }

    /// Names the container ports the runnable serves on, as `(name, port)` pairs.
    pub fn with_ports<I, S>(mut self, ports: I) -> Self
    where
        I: IntoIterator<Item = (S, u16)>,
        S: Into<String>,
    {
        self.ports.extend(ports.into_iter().map(|(n, p)| (n.into(), p)));
        self
    }

    /// The runnable before its start options are known: its internal endpoints and directory
    /// can be handed to other runnables already.
    pub fn future(self) -> FutureRunnable {
        let container = self.env.engine_name(&self.name);
        let dir_rel = format!("data/{}", self.name);
        let exits = self.env.inner.exits.watch(&container);
        let logs = Arc::new(LogBuffer::default());
        let registered = self.problem.is_none().then(|| (self.env.clone(), self.name.clone(), container.clone()));
        let span = tracing::info_span!(
            target: "e2e",
            parent: &self.env.inner.span,
            "runnable",
            runnable = %self.name,
            env = %self.env.name(),
            image = tracing::field::Empty,
            container = tracing::field::Empty,
        );
        let future = FutureRunnable {
            inner: Arc::new(Inner {
                span,
                dir: self.env.shared_dir().join(&dir_rel),
                internal_dir: format!("{INTERNAL_SHARED_DIR}/{dir_rel}"),
                env: self.env,
                name: self.name,
                container,
                ports: self.ports,
                problem: self.problem,
                logs,
                files: Mutex::default(),
                exits,
                tasks: tokio::sync::Mutex::new(Tasks::default()),
                phase: Mutex::new(Phase::Declared),
            }),
        };
        if let Some((env, name, container)) = registered {
            let logs = future.inner.logs.clone();
            let handle: std::sync::Weak<dyn crate::env::Reachable> = Arc::downgrade(&future.inner) as _;
            env.register(Declared { name, container, logs, handle });
        }
        future
    }

    /// Configures the runnable.
    pub fn init(self, options: StartOptions) -> Runnable {
        match (self.env.inner.sharing.clone(), self.env.inner.adopt.clone()) {
            (Some(sharing), _) if self.problem.is_none() => {
                let definition = format!("ports {:?}, {:?}", self.ports, options);
                let (env, name) = (self.env.name().to_string(), self.name.clone());
                sharing.declare(&env, &name, definition, |problem| match problem {
                    Some(problem) => self.with_problem(problem).future().init(options),
                    None => self.claimed().future().init(options),
                })
            }
            (_, Some(adopt)) if self.problem.is_none() => {
                let found = adopt.get(&self.name).cloned();
                let r = self.future().init(options);
                if let Some(a) = found {
                    r.adopt(a);
                }
                r
            }
            _ => self.future().init(options),
        }
    }

    /// The builder, its runnable failing every call with `problem`.
    fn with_problem(mut self, problem: Error) -> Self {
        self.problem = Some(problem);
        self
    }

    /// The builder with its name claimed in the env (as [`Env::runnable`] does outside shared
    /// envs).
    fn claimed(mut self) -> Self {
        self.problem = self.env.claim(&self.name).err();
        self
    }
}

impl AsRef<Runnable> for Runnable {
    fn as_ref(&self) -> &Runnable {
        self
    }
}

/// A runnable whose addresses are known but whose start options are not yet given.
#[derive(Clone, Debug)]
pub struct FutureRunnable {
    inner: Arc<Inner>,
}

impl FutureRunnable {
    /// The runnable's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// `<env>-<name>:<port>`, the address of a named port inside the env network.
    pub fn internal_endpoint(&self, port: &str) -> Result<Endpoint> {
        self.inner.internal_endpoint(port)
    }

    /// The runnable's directory on the host (inside the env's shared directory).
    pub fn dir(&self) -> PathBuf {
        self.inner.dir.clone()
    }

    /// The runnable's directory as containers see it.
    pub fn internal_dir(&self) -> String {
        self.inner.internal_dir.clone()
    }

    /// Gives the start options.
    pub fn init(self, options: StartOptions) -> Runnable {
        self.inner.span.record("image", options.image());
        Runnable { inner: self.inner, options: Arc::new(options) }
    }
}

/// A configured runnable: start it, wait for it, reach it, exec in it, stop it. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Runnable {
    inner: Arc<Inner>,
    options: Arc<StartOptions>,
}

#[derive(Debug)]
struct Inner {
    env: Env,
    name: String,
    container: String,
    ports: Vec<(String, u16)>,
    /// A declaration error (bad or duplicate name, closed env), returned by every later call.
    problem: Option<Error>,
    dir: PathBuf,
    internal_dir: String,
    logs: Arc<LogBuffer>,
    /// Files given to `copy_to`: put into every container of the runnable before it runs.
    files: Mutex<Vec<(String, Vec<u8>)>>,
    exits: watch::Receiver<Option<i64>>,
    /// Serializes start and restart; holds what a container's life runs beside it.
    tasks: tokio::sync::Mutex<Tasks>,
    /// Where the runnable is in its life, behind one lock: readers never wait on a start.
    phase: Mutex<Phase>,
    /// Its tracing span, inside its env's: `image` recorded when configured, `container` when
    /// started.
    span: tracing::Span,
}

#[derive(Debug, Default)]
struct Tasks {
    logs_task: Option<tokio::task::JoinHandle<()>>,
    /// The relays serving the host endpoints, when the engine does not publish the ports.
    relays: Vec<crate::forward::Relay>,
}

/// A runnable's lifecycle.
#[derive(Debug, Clone)]
enum Phase {
    /// Declared (and maybe configured): no container yet.
    Declared,
    /// Its container is created, and starting or started.
    Started(Container),
    /// Its container was stopped or killed; a start makes a new one.
    Stopped(Container),
}

/// The current container of a runnable.
#[derive(Debug, Clone)]
struct Container {
    id: String,
    /// Port name → host port.
    host_ports: HashMap<String, u16>,
    /// The container's address on the env network.
    ip: Option<String>,
    /// The number of the first log line of the current container.
    logs_from: u64,
}

/// What a command run in a container printed, and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
    /// Its exit code.
    pub exit_code: i64,
}

impl ExecOutput {
    /// Whether it exited with 0.
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }
}

impl Inner {
    fn endpoint(&self, port: &str) -> Result<Endpoint> {
        self.port(port)?;
        let container = match &*self.phase.lock().unwrap() {
            Phase::Declared => {
                return Err(Error::NotStarted { runnable: self.name.clone(), operation: "get an endpoint" });
            }
            Phase::Stopped(_) => {
                return Err(Error::Stopped { runnable: self.name.clone(), operation: "get an endpoint" });
            }
            Phase::Started(c) => c.clone(),
        };
        match container.host_ports.get(port) {
            Some(p) => Ok(Endpoint::new(self.host_address(), *p)),
            None => Err(Error::NotRunning { runnable: self.name.clone(), operation: "get an endpoint" }),
        }
    }

    fn internal_endpoint(&self, port: &str) -> Result<Endpoint> {
        let p = self.port(port)?;
        Ok(Endpoint::new(self.internal_host(), p))
    }

    /// The names the container answers to on the env network: `<name>` and `<env>-<name>`.
    fn aliases(&self) -> Vec<String> {
        vec![self.name.clone(), self.internal_host()]
    }

    /// The name the runnable is reached by inside the env network, `<env>-<name>` (an alias:
    /// the container's own name carries the run's tag).
    fn internal_host(&self) -> String {
        format!("{}-{}", self.env.name(), self.name)
    }

    fn port(&self, name: &str) -> Result<u16> {
        self.ports.iter().find(|(n, _)| n == name).map(|(_, p)| *p).ok_or_else(|| Error::UnknownPort {
            runnable: self.name.clone(),
            port: name.to_string(),
            known: self.ports.iter().map(|(n, _)| n.clone()).collect(),
        })
    }

    /// Where this process reaches the ports the engine publishes (and where it publishes
    /// them): `E2E_HOST_ADDRESS`, else the engine's host.
    fn host_address(&self) -> String {
        let engine = self.engine();
        if engine.containers_reachable() {
            // A local engine: loopback, whatever the override says of remote ones.
            return "127.0.0.1".to_string();
        }
        crate::settings::get().host_address.clone().unwrap_or_else(|| engine.host_address().to_string())
    }

    /// The current container, started or stopped.
    fn container(&self) -> Option<Container> {
        match &*self.phase.lock().unwrap() {
            Phase::Declared => None,
            Phase::Started(c) | Phase::Stopped(c) => Some(c.clone()),
        }
    }

    fn set_phase(&self, phase: Phase) {
        *self.phase.lock().unwrap() = phase;
    }

    /// Changes the current container's record, if there is one.
    fn update(&self, f: impl FnOnce(&mut Container)) {
        if let Phase::Started(c) | Phase::Stopped(c) = &mut *self.phase.lock().unwrap() {
            f(c);
        }
    }

    /// Records that the container was stopped.
    fn stopped(&self) {
        let mut phase = self.phase.lock().unwrap();
        if let Phase::Started(c) = &*phase {
            *phase = Phase::Stopped(c.clone());
        }
    }

    fn engine(&self) -> &dyn Engine {
        &*self.env.inner.engine
    }

    /// An engine failure on this runnable, saying what was being done.
    fn failed(&self, doing: &str) -> impl FnOnce(crate::engine::EngineError) -> Error + '_ {
        let context = format!("{doing} runnable {:?} (container {})", self.name, self.container);
        move |e| Error::engine(context, e)
    }

    async fn running(&self, id: &str) -> Result<bool> {
        Ok(self.engine().inspect_container(id).await.map_err(self.failed("inspecting"))?.running)
    }

    fn id(&self, operation: &'static str) -> Result<String> {
        // After close the container is gone: say so, not the engine's "No such container".
        if self.env.is_closed() {
            return Err(Error::EnvClosed { env: self.env.name().to_string(), runnable: self.name.clone() });
        }
        self.container().map(|c| c.id).ok_or_else(|| Error::NotStarted { runnable: self.name.clone(), operation })
    }

    fn check_env(&self) -> Result<()> {
        if let Some(e) = &self.problem {
            return Err(e.declaration_copy());
        }
        if self.env.is_closed() {
            return Err(Error::EnvClosed { env: self.env.name().to_string(), runnable: self.name.clone() });
        }
        Ok(())
    }
}

impl Runnable {
    /// The runnable's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Takes the keeper's running container as this runnable's (an env attached to a keeper's),
    /// following its output.
    fn adopt(&self, a: crate::env::Adopted) {
        let inner = &self.inner;
        let container =
            Container { id: a.id.clone(), host_ports: a.host_ports, ip: a.ip, logs_from: inner.logs.total() };
        inner.set_phase(Phase::Started(container));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let task = crate::task::spawn_on(
                &rt,
                follow_logs(
                    inner.span.clone(),
                    inner.env.inner.engine.clone(),
                    a.id,
                    inner.name.clone(),
                    inner.logs.clone(),
                    inner.env.log_file(&inner.name),
                    true,
                ),
            );
            if let Ok(mut tasks) = inner.tasks.try_lock() {
                tasks.logs_task = Some(task);
            }
        }
    }

    /// Whether it is a keeper's container, adopted (see [`crate::keeper`]).
    pub(crate) fn adopted(&self) -> bool {
        self.inner.env.inner.adopt.is_some() && self.inner.container().is_some()
    }

    /// Whether it is declared in an env attached to a keeper's.
    pub(crate) fn in_attached_env(&self) -> bool {
        self.inner.env.inner.adopt.is_some()
    }

    /// What defines it: its ports and start options.
    pub(crate) fn definition(&self) -> String {
        format!("ports {:?}, {:?}", self.inner.ports, self.options)
    }

    /// Its container's id, host ports and address, once started.
    pub(crate) fn record(&self) -> Option<(String, HashMap<String, u16>, Option<String>)> {
        let c = self.inner.container()?;
        Some((c.id, c.host_ports, c.ip))
    }

    /// The env it is declared in.
    pub(crate) fn env_of(&self) -> &Env {
        &self.inner.env
    }

    /// Its container's id and its address on the env network, for `operation`, once started.
    pub(crate) fn on_network(&self, operation: &'static str) -> Result<(String, String)> {
        let id = self.inner.id(operation)?;
        let ip = self.inner.container().and_then(|c| c.ip);
        let ip = ip.ok_or_else(|| Error::NotRunning { runnable: self.inner.name.clone(), operation })?;
        Ok((id, ip))
    }

    /// Whether `other` is this runnable (a clone of it), not another with the same name.
    pub(crate) fn is(&self, other: &Runnable) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The declarations of its env, if the env is shared.
    pub(crate) fn sharing(&self) -> Option<&crate::registry::Registry> {
        self.inner.env.inner.sharing.as_deref()
    }

    /// Its container's name, `<env>-<name>-<run tag>`: unique to this run, so two runs sharing
    /// an engine under one env name do not collide.
    pub fn container_name(&self) -> &str {
        &self.inner.container
    }

    /// Its start options.
    pub fn options(&self) -> &StartOptions {
        &self.options
    }

    /// The env's HTTP client, shared by probes and metrics.
    pub(crate) fn http(&self) -> &crate::http::Client {
        &self.inner.env.inner.http
    }

    /// `<env>-<name>:<port>`, the address of a named port inside the env network.
    pub fn internal_endpoint(&self, port: &str) -> Result<Endpoint> {
        self.inner.internal_endpoint(port)
    }

    /// `127.0.0.1:<host port>`, the address of a named port for this process. Only once started.
    /// Served by this process unless the engine publishes the port
    /// ([`StartOptions::publish_ports`]).
    pub fn endpoint(&self, port: &str) -> Result<Endpoint> {
        self.inner.endpoint(port)
    }

    /// The runnable's directory on the host (inside the env's shared directory).
    pub fn dir(&self) -> PathBuf {
        self.inner.dir.clone()
    }

    /// The runnable's directory as containers see it.
    pub fn internal_dir(&self) -> String {
        self.inner.internal_dir.clone()
    }

    /// Writes `content` to the absolute `path` inside the container, its parent directories
    /// made. Before start, the file is put into the container once it is created, before it
    /// runs (a config file); after, at once. Either way every later container of the runnable
    /// (after a stop and start) has it too. Works on any engine, through its archive API.
    pub async fn copy_to(&self, path: &str, content: impl Into<Vec<u8>>) -> Result<()> {
        let content = content.into();
        let tar = tar_of(&self.inner.name, &[(path.to_string(), content.clone())])?;
        {
            // The last content written to a path is the one later containers get.
            let mut files = self.inner.files.lock().unwrap();
            files.retain(|(p, _)| p != path);
            files.push((path.to_string(), content));
        }
        if let Some(c) = self.inner.container() {
            let failed = self.inner.failed(&format!("copying {path} into"));
            self.inner.engine().put_archive(&c.id, "/", tar).await.map_err(failed)?;
        }
        Ok(())
    }

    /// The content of the file at `path` inside the container (started or stopped).
    pub async fn copy_from(&self, path: &str) -> Result<Vec<u8>> {
        let id = self.inner.id("copy a file from")?;
        let failed = self.inner.failed(&format!("copying {path} from"));
        let tar = self.inner.engine().get_archive(&id, path).await.map_err(failed)?;
        let bad = |detail: String| {
            Error::io(format!("reading {path} of runnable {:?}", self.inner.name), std::io::Error::other(detail))
        };
        let mut archive = tar::Archive::new(&tar[..]);
        for entry in archive.entries().map_err(|e| bad(e.to_string()))? {
            let mut entry = entry.map_err(|e| bad(e.to_string()))?;
            if entry.header().entry_type().is_file() {
                let mut content = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut content).map_err(|e| bad(e.to_string()))?;
                return Ok(content);
            }
        }
        Err(bad("it is not a file".to_string()))
    }

    /// Copies the runnable's directory as the container sees it ([`Runnable::internal_dir`])
    /// into [`Runnable::dir`] on this host, and returns that. With a local engine the two are
    /// one directory (a bind mount) and this only checks the container is there; with a remote
    /// one it is how files the container wrote reach the test.
    pub async fn download_dir(&self) -> Result<PathBuf> {
        let id = self.inner.id("download its directory")?;
        if self.inner.engine().shares_host_files() {
            return Ok(self.inner.dir.clone());
        }
        let failed = self.inner.failed(&format!("copying {} from", self.inner.internal_dir));
        let tar = self.inner.engine().get_archive(&id, &self.inner.internal_dir).await.map_err(failed)?;
        // The archive holds the directory itself: unpack it beside `dir`, whose name it has.
        let parent = self.inner.dir.parent().unwrap_or(&self.inner.dir).to_path_buf();
        let unpacked = tar::Archive::new(&tar[..]).unpack(&parent);
        unpacked.map_err(|e| Error::io(format!("unpacking into {}", parent.display()), e))?;
        Ok(self.inner.dir.clone())
    }

    /// The last lines its container printed (stdout and stderr, interleaved as received).
    pub fn logs_tail(&self, lines: usize) -> Vec<String> {
        self.inner.logs.tail(lines)
    }

    /// Creates and starts the container (pulling the image only if it is missing). A runnable
    /// that was stopped starts afresh, in a new container; one that runs is an error.
    pub async fn start(&self) -> Result<()> {
        let inner = &self.inner;
        inner.check_env()?;
        let mut tasks = inner.tasks.lock().await;
        let env = &inner.env;
        let engine = inner.engine();
        if let Some(previous) = inner.container() {
            if engine.inspect_container(&previous.id).await.map(|s| s.running).unwrap_or(false) {
                return Err(Error::AlreadyStarted { runnable: inner.name.clone() });
            }
            engine.remove_container(&previous.id).await.map_err(inner.failed("removing the previous container of"))?;
            if let Some(t) = tasks.logs_task.take() {
                t.abort();
            }
            inner.set_phase(Phase::Declared);
        }
        if let Some(probe) = &self.options.readiness {
            if let Some(problem) = probe.invalid() {
                return Err(Error::InvalidName { what: "readiness probe", name: probe.to_string(), reason: problem });
            }
            for port in probe.ports() {
                inner.port(port)?;
            }
        }
        if let Some(m) = &self.options.metrics {
            inner.port(&m.port)?;
        }
        let quiet = self.options.quiet || env.inner.quiet;
        crate::paths::make_open_dir(&inner.dir)?;

        let spec = self.spec().await?;
        let id = self.create(&spec, quiet).await?;
        self.put_files(&id).await?;
        let container =
            Container { id: id.clone(), host_ports: HashMap::new(), ip: None, logs_from: inner.logs.total() };
        inner.set_phase(Phase::Started(container));
        engine.start_container(&id).await.map_err(inner.failed("starting"))?;
        inner.span.record("container", spec.name.as_str());
        tracing::debug!(target: "e2e", parent: &inner.span, container = %spec.name, image = %spec.image, "started");
        tasks.logs_task = Some(crate::task::spawn(follow_logs(
            inner.span.clone(),
            env.inner.engine.clone(),
            id.clone(),
            inner.name.clone(),
            inner.logs.clone(),
            env.log_file(&inner.name),
            quiet,
        )));
        let st = engine.inspect_container(&id).await.map_err(inner.failed("inspecting"))?;
        let ip = st.addresses.get(&env.inner.network.name).cloned();
        let host_ports = if self.engine_publishes() {
            let mut reached = HashMap::new();
            for (name, port) in &inner.ports {
                if let Some(published) = st.host_ports.get(port) {
                    // A host address of the user's is reached directly, not through a forward.
                    let local = match crate::settings::get().host_address {
                        Some(_) => *published,
                        None => engine.reach_published(*published).await.map_err(inner.failed("reaching a port of"))?,
                    };
                    reached.insert(name.clone(), local);
                }
            }
            reached
        } else {
            self.relay_ports(&mut tasks, ip.as_deref()).await?
        };
        inner.update(|c| {
            c.host_ports = host_ports;
            c.ip = ip;
        });
        env.set_instrumented(&inner.container, self.instrumented());
        Ok(())
    }

    /// Where it serves metrics inside the env network, if it is instrumented.
    fn instrumented(&self) -> Option<crate::env::Instrumented> {
        let m = self.options.metrics_endpoint()?;
        let port = self.inner.port(&m.port).ok()?;
        Some(crate::env::Instrumented {
            runnable: self.inner.name.clone(),
            address: format!("{}:{port}", self.inner.internal_host()),
            path: m.path.clone(),
            scheme: m.scheme.clone(),
        })
    }

    /// Whether the engine publishes the ports, rather than relays of this process.
    fn engine_publishes(&self) -> bool {
        self.options.publish || !self.inner.engine().containers_reachable() || crate::forward::publish_by_engine_asked()
    }

    /// Points a relay per port at the container at `ip` (the ones of a previous container are
    /// kept, so host endpoints survive a restart); returns port name → loopback port.
    async fn relay_ports(&self, tasks: &mut Tasks, ip: Option<&str>) -> Result<HashMap<String, u16>> {
        let Some(ip) = ip else { return Ok(HashMap::new()) };
        let mut ports = HashMap::new();
        for (i, (name, port)) in self.inner.ports.iter().enumerate() {
            let target = format!("{ip}:{port}").parse().map_err(|_| {
                Error::io(
                    format!("relaying port {name:?}"),
                    std::io::Error::other(format!("bad container address {ip}")),
                )
            })?;
            match tasks.relays.get(i) {
                Some(relay) => relay.retarget(target),
                None => tasks.relays.push(crate::forward::Relay::start(target).await.map_err(|e| {
                    Error::io(format!("listening on 127.0.0.1 for port {name:?} of {}", self.inner.name), e)
                })?),
            }
            ports.insert(name.clone(), tasks.relays[i].port());
        }
        Ok(ports)
    }

    /// Puts into a created container what it must hold before it runs: the files given to
    /// `copy_to` and, when the engine's host does not share this host's files, what the test
    /// wrote into the runnable's directory.
    async fn put_files(&self, id: &str) -> Result<()> {
        let inner = &self.inner;
        let engine = inner.engine();
        if !engine.shares_host_files() {
            let mut tar = tar::Builder::new(Vec::new());
            tar.append_dir_all(inner.internal_dir.trim_start_matches('/'), &inner.dir)
                .map_err(|e| Error::io(format!("packing {}", inner.dir.display()), e))?;
            let tar = tar.into_inner().map_err(|e| Error::io(format!("packing {}", inner.dir.display()), e))?;
            engine.put_archive(id, "/", tar).await.map_err(inner.failed("copying its directory into"))?;
        }
        let files = inner.files.lock().unwrap().clone();
        if !files.is_empty() {
            engine
                .put_archive(id, "/", tar_of(&inner.name, &files)?)
                .await
                .map_err(inner.failed("copying files into"))?;
        }
        Ok(())
    }

    /// Creates the container; when the engine lacks its image, pulls it (with progress unless
    /// `quiet`) and creates it then. Asking first would cost every start a round trip.
    async fn create(&self, spec: &ContainerSpec, quiet: bool) -> Result<String> {
        let engine = self.inner.engine();
        let created = match engine.create_container(spec).await {
            Err(e) if e.kind() == EngineErrorKind::NoSuchImage => {
                crate::image::pull(engine, &spec.image, quiet).await?;
                engine.create_container(spec).await
            }
            other => other,
        };
        created.map_err(|e| {
            let context = match e.kind() {
                EngineErrorKind::Conflict => format!(
                    "creating container {:?}: a container with this name already exists and \
                     belongs to no dead e2e run (remove it or use another env name)",
                    spec.name
                ),
                _ => format!(
                    "creating container {:?} of runnable {:?} (image {:?})",
                    spec.name, self.inner.name, spec.image
                ),
            };
            Error::engine(context, e)
        })
    }

    /// The env's volume `<env>-<name>-<run tag>`, made if it is not there yet (labelled with
    /// the env, removed with it).
    async fn env_volume(&self, name: &str) -> Result<MountSource> {
        let env = &self.inner.env;
        let name = env.engine_name(name);
        let made = self.inner.engine().create_volume(&name, &env.labels()).await;
        made.map_err(|e| Error::engine(format!("creating volume {name:?}"), e))?;
        Ok(MountSource::Volume(name))
    }

    /// The container's spec: the start options, the env's network, directory and labels.
    async fn spec(&self) -> Result<ContainerSpec> {
        let (inner, o) = (&self.inner, &*self.options);
        let env = &inner.env;
        let mut labels = env.labels();
        labels.insert(RUNNABLE_LABEL.to_string(), inner.name.clone());
        // A remote engine's host does not have this process's files: the shared directory is
        // then a volume of the env, filled through the archive API (see `put_files`).
        let shared = if inner.engine().shares_host_files() {
            MountSource::Host(env.shared_dir().display().to_string())
        } else {
            self.env_volume("shared").await?
        };
        let mut mounts = vec![Mount { source: shared, target: INTERNAL_SHARED_DIR.to_string(), read_only: false }];
        for (source, target, read_only) in &o.volumes {
            let source = if source.starts_with('/') {
                MountSource::Host(source.clone())
            } else {
                self.env_volume(source).await?
            };
            mounts.push(Mount { source, target: target.clone(), read_only: *read_only });
        }
        Ok(ContainerSpec {
            name: inner.container.clone(),
            image: o.image.clone(),
            command: o.command.clone(),
            entrypoint: o.entrypoint.clone(),
            env: o.env.clone(),
            user: o.user.clone(),
            hostname: Some(inner.name.clone()),
            labels,
            mounts,
            ports: inner.ports.iter().map(|(_, p)| *p).collect(),
            publish_on: self.engine_publishes().then(|| self.inner.host_address()),
            network: Some(env.inner.network.id.clone()),
            aliases: inner.aliases(),
            network_of: None,
            init: o.init,
            privileged: o.privileged,
            cap_add: o.cap_add.clone(),
            limits: Limits { memory_bytes: o.memory, cpus: o.cpus },
        })
    }

    /// Waits until the readiness probe passes. Fails at once, with the exit code and the last
    /// log lines, if the container exits meanwhile (unless the probe awaits that exit,
    /// [`Probe::exit_code`]), or when the probe says waiting cannot help (an unhealthy
    /// healthcheck, another exit code); fails after the readiness timeout naming the probe and
    /// its last error.
    pub async fn wait_ready(&self) -> Result<()> {
        let inner = &self.inner;
        inner.id("wait until ready")?;
        let Some(probe) = &self.options.readiness else {
            // Without a probe a runnable is ready once started, unless it already failed.
            let exited = *inner.exits.borrow();
            return match exited {
                Some(code) if code != 0 => Err(self.exited(code).await),
                _ => Ok(()),
            };
        };
        let mut exits = inner.exits.clone();
        let mut lost = inner.env.inner.exits.lost();
        let started = Instant::now();
        let deadline = started + self.options.readiness_timeout;
        let Some(container) = inner.container() else {
            return Err(Error::NotStarted { runnable: inner.name.clone(), operation: "wait until ready" });
        };
        let addresses = self.probe_addresses(&container);
        let exit_of = inner.exits.clone();
        let target = Target {
            addresses: &addresses,
            http: &inner.env.inner.http,
            logs: &inner.logs,
            logs_from: container.logs_from,
            exec: self,
            exits: &exit_of,
            published: !inner.engine().containers_reachable(),
        };
        // A probe that awaits the exit (a batch job) checks it itself.
        let exit_is_failure = !probe.expects_exit();
        let mut backoff = Duration::from_millis(2);
        let mut last_error;
        loop {
            // Copied out first: the guard must not live across the await (the future stays Send).
            let exited = *exits.borrow_and_update();
            if let (Some(code), true) = (exited, exit_is_failure) {
                return Err(self.exited(code).await);
            }
            // Without the engine's events an exit would go unseen: say so rather than time out.
            let events_lost = lost.borrow_and_update().clone();
            if let Some(why) = events_lost {
                return Err(Error::EventsLost { runnable: inner.name.clone(), detail: why });
            }
            match probe.check(&target).await {
                Ok(()) => {
                    let waited = started.elapsed();
                    tracing::debug!(target: "e2e", parent: &inner.span, probe = %probe, ?waited, "ready");
                    return Ok(());
                }
                // Waiting longer cannot help (unhealthy, another exit code): say so now.
                Err(e) if e.is_final() => {
                    return Err(Error::NotReady {
                        runnable: inner.name.clone(),
                        probe: probe.to_string(),
                        waited: started.elapsed(),
                        last_error: e.to_string(),
                        logs: inner.logs.tail(TAIL_LINES),
                    });
                }
                Err(e) => last_error = e.to_string(),
            }
            if Instant::now() >= deadline {
                return Err(Error::NotReady {
                    runnable: inner.name.clone(),
                    probe: probe.to_string(),
                    waited: started.elapsed(),
                    last_error,
                    logs: inner.logs.tail(TAIL_LINES),
                });
            }
            // A new log line wakes every probe, not only log probes: services tend to say so
            // when they turn ready, and this notices it within a millisecond or two instead of
            // a polling period. At most one check per millisecond, however chatty the service.
            let log_line = inner.logs.changed.notified();
            tokio::time::sleep(MIN_CHECK_GAP).await;
            tokio::select! {
                _ = tokio::time::sleep(backoff.min(deadline.saturating_duration_since(Instant::now()))) => {}
                _ = exits.changed() => {}
                _ = lost.changed() => {}
                _ = log_line => {}
            }
            backoff = (backoff * 3 / 2).min(MAX_CHECK_GAP);
        }
    }

    /// Addresses probes dial: the container's own when reachable, else the published port.
    fn probe_addresses(&self, container: &Container) -> HashMap<String, String> {
        let direct = self.inner.engine().containers_reachable();
        self.inner
            .ports
            .iter()
            .filter_map(|(name, port)| {
                let addr = match (&container.ip, direct) {
                    (Some(ip), true) => format!("{ip}:{port}"),
                    _ => format!("{}:{}", self.inner.host_address(), container.host_ports.get(name)?),
                };
                Some((name.clone(), addr))
            })
            .collect()
    }

    /// The error for a container that died: waits briefly for its last output to arrive.
    async fn exited(&self, code: i64) -> Error {
        let task = self.inner.tasks.try_lock().ok().and_then(|mut t| t.logs_task.take());
        if let Some(task) = task {
            let _ = tokio::time::timeout(Duration::from_millis(500), task).await;
        }
        Error::Exited { runnable: self.inner.name.clone(), exit_code: code, logs: self.inner.logs.tail(TAIL_LINES) }
    }

    /// Starts and waits until ready.
    pub async fn start_and_wait_ready(&self) -> Result<()> {
        self.start().await?;
        self.wait_ready().await
    }

    /// Whether the container runs now, as the engine says. `false` before start.
    pub async fn is_running(&self) -> Result<bool> {
        match self.inner.container() {
            None => Ok(false),
            Some(_) if self.inner.env.is_closed() => Ok(false),
            Some(c) => self.inner.running(&c.id).await,
        }
    }

    /// Runs a command in the running container; its output goes to the test output, prefixed.
    pub async fn exec<I, S>(&self, command: I) -> Result<ExecOutput>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.exec_inner(command.into_iter().map(Into::into).collect(), self.options.quiet || self.inner.env.inner.quiet)
            .await
    }

    pub(crate) async fn exec_quiet(&self, command: Vec<String>) -> Result<ExecOutput> {
        self.exec_inner(command, true).await
    }

    async fn exec_inner(&self, command: Vec<String>, quiet: bool) -> Result<ExecOutput> {
        let id = self.inner.id("exec")?;
        if !self.inner.running(&id).await? {
            return Err(Error::NotRunning { runnable: self.inner.name.clone(), operation: "exec" });
        }
        let name = &self.inner.name;
        let span = &self.inner.span;
        let mut on_line = |is_err: bool, line: &str| crate::say::output(span, name, " exec", is_err, line, quiet);
        let (mut stdout, mut stderr, mut lines) = (String::new(), String::new(), LineSplitter::default());
        let exit_code = self
            .inner
            .engine()
            .exec(&id, &command, &mut |out| {
                let text = String::from_utf8_lossy(&out.bytes);
                if out.stderr {
                    stderr.push_str(&text)
                } else {
                    stdout.push_str(&text)
                }
                lines.push(out.stderr, &out.bytes, &mut on_line);
            })
            .await
            .map_err(self.inner.failed(&format!("running {command:?} in")))?;
        lines.flush(&mut on_line);
        Ok(ExecOutput { stdout, stderr, exit_code })
    }

    /// Stops the container gracefully: SIGTERM (or the image's stop signal), then SIGKILL after
    /// the stop timeout.
    pub async fn stop(&self) -> Result<()> {
        let id = self.inner.id("stop")?;
        self.inner.env.set_instrumented(&self.inner.container, None);
        self.inner
            .engine()
            .stop_container(&id, self.options.stop_timeout)
            .await
            .map_err(self.inner.failed("stopping"))?;
        self.inner.stopped();
        Ok(())
    }

    /// Kills the container with SIGKILL.
    pub async fn kill(&self) -> Result<()> {
        self.signal("SIGKILL").await?;
        self.inner.stopped();
        Ok(())
    }

    /// Sends a signal (`"SIGTERM"`, `"SIGHUP"`, `"9"`...) to the container's main process.
    pub async fn signal(&self, signal: &str) -> Result<()> {
        let id = self.inner.id("send a signal")?;
        if !self.inner.running(&id).await? {
            return Err(Error::NotRunning { runnable: self.inner.name.clone(), operation: "send a signal" });
        }
        self.inner
            .engine()
            .kill_container(&id, signal)
            .await
            .map_err(self.inner.failed(&format!("sending {signal} to")))
    }

    /// Freezes every process of the container.
    pub async fn pause(&self) -> Result<()> {
        let id = self.inner.id("pause")?;
        self.inner.engine().pause_container(&id).await.map_err(self.inner.failed("pausing"))
    }

    /// Thaws a paused container.
    pub async fn unpause(&self) -> Result<()> {
        let id = self.inner.id("unpause")?;
        self.inner.engine().unpause_container(&id).await.map_err(self.inner.failed("unpausing"))
    }

    /// Cuts the container off the env network (a network partition).
    pub async fn disconnect(&self) -> Result<()> {
        self.change_endpoint("disconnect", "disconnecting from the network", |engine, network, id, _| {
            Box::pin(async move { engine.disconnect_network(&network, &id).await })
        })
        .await
    }

    /// Reconnects the container to the env network, under the same names.
    pub async fn reconnect(&self) -> Result<()> {
        self.change_endpoint("reconnect", "reconnecting to the network", |engine, network, id, aliases| {
            Box::pin(async move { engine.connect_network(&network, &id, &aliases).await })
        })
        .await?;
        let id = self.inner.id("reconnect")?;
        let (engine, network) = (self.inner.engine(), &self.inner.env.inner.network);
        let state = engine.inspect_container(&id).await.map_err(self.inner.failed("inspecting"))?;
        let ip = state.addresses.get(&network.name).cloned();
        if !self.engine_publishes() {
            // The engine may give it another address: the host endpoints follow.
            let mut tasks = self.inner.tasks.lock().await;
            self.relay_ports(&mut tasks, ip.as_deref()).await?;
        }
        self.inner.update(|c| c.ip = ip);
        Ok(())
    }
}

/// A change of a container's endpoint on the env network, given the engine, the network's id,
/// the container's id and its aliases.
type EndpointChange =
    fn(Arc<dyn Engine>, String, String, Vec<String>) -> futures_util::future::BoxFuture<'static, EngineResult<()>>;

impl Runnable {
    /// Carries out an endpoint change to its end even when the caller stops waiting for it, and
    /// holds the env's `network_changes` meanwhile: the env's close waits for it, since the
    /// engine removing a container while it changes the container's endpoint leaves a phantom
    /// endpoint on the network.
    async fn change_endpoint(&self, operation: &'static str, doing: &str, change: EndpointChange) -> Result<()> {
        let changing = self.inner.env.inner.network_changes.clone().read_owned().await;
        // After the hold: a close that began before it is seen here, and one that begins after
        // it waits for the change.
        let id = self.inner.id(operation)?;
        let engine = self.inner.env.inner.engine.clone();
        let (network, aliases) = (self.inner.env.inner.network.id.clone(), self.inner.aliases());
        let call = crate::task::spawn(async move {
            let result = change(engine, network, id, aliases).await;
            drop(changing);
            result
        });
        match call.await {
            Ok(result) => result.map_err(self.inner.failed(doing)),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(Error::io(format!("{doing} runnable {:?}", self.inner.name), std::io::Error::other(e))),
        }
    }
}

impl crate::env::Reachable for Inner {
    /// Whether the env network knows it as `host`: its name, `<env>-<name>`, its container's
    /// name or its address there.
    fn answers_to(&self, host: &str) -> bool {
        host == self.name
            || host == self.container
            || host == format!("{}-{}", self.env.name(), self.name)
            || self.container().and_then(|c| c.ip).is_some_and(|ip| ip == host)
    }

    /// The host endpoint of its container port `port`.
    fn endpoint_of_port(&self, port: u16) -> Result<String> {
        let Some((name, _)) = self.ports.iter().find(|(_, p)| *p == port) else {
            return Err(Error::UnknownPort {
                runnable: self.name.clone(),
                port: port.to_string(),
                known: self.ports.iter().map(|(n, p)| format!("{n} ({p})")).collect(),
            });
        };
        self.endpoint(name).map(String::from)
    }
}

/// A tar archive of files at absolute paths, to unpack at `/`.
fn tar_of(runnable: &str, files: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let relative = path
            .strip_prefix('/')
            .filter(|p| !p.is_empty() && !p.split('/').any(|c| c == ".." || c == "." || c.is_empty()));
        let Some(relative) = relative else {
            return Err(Error::InvalidName {
                what: "file path",
                name: path.clone(),
                reason: format!("a path in runnable {runnable:?} must be absolute, with no empty, `.` or `..` part"),
            });
        };
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, relative, &content[..]).map_err(|e| Error::io(format!("packing {path}"), e))?;
    }
    tar.into_inner().map_err(|e| Error::io("packing files", e))
}

impl crate::probe::Exec for Runnable {
    fn exec(&self, command: Vec<String>) -> futures_util::future::BoxFuture<'_, std::result::Result<i64, String>> {
        Box::pin(async move { self.exec_quiet(command).await.map(|o| o.exit_code).map_err(|e| e.to_string()) })
    }
    fn health(
        &self,
    ) -> futures_util::future::BoxFuture<'_, std::result::Result<Option<crate::engine::Health>, String>> {
        Box::pin(async move {
            let id = self.inner.id("read its health").map_err(|e| e.to_string())?;
            let state = self.inner.engine().inspect_container(&id).await.map_err(|e| e.to_string())?;
            Ok(state.health)
        })
    }
}

/// Streams a container's output into its log buffer and, unless quiet, the test output.
/// Every line also goes to `file`, whole, for the record kept on failure.
async fn follow_logs(
    span: tracing::Span,
    engine: Arc<dyn Engine>,
    id: String,
    name: String,
    logs: Arc<LogBuffer>,
    file: PathBuf,
    quiet: bool,
) {
    use std::io::Write;
    let mut lines = LineSplitter::default();
    let mut record = file
        .parent()
        .and_then(|dir| std::fs::create_dir_all(dir).ok())
        .and_then(|()| std::fs::OpenOptions::new().create(true).append(true).open(&file).ok());
    let mut on_line = |is_err: bool, line: &str| {
        let stream = if is_err { " (stderr)" } else { "" };
        crate::say::output(&span, &name, "", is_err, line, quiet);
        if let Some(f) = &mut record {
            let _ = writeln!(f, "{}{stream}: {line}", humantime::format_rfc3339_millis(std::time::SystemTime::now()));
        }
        logs.push(line);
    };
    // A stream that breaks while the container runs (the engine dropped it) is resumed after
    // the last chunk's time, so no line is lost or repeated; one without times is resumed only
    // if nothing came yet.
    let (mut after, mut received, mut breaks) = (None, false, 0u32);
    loop {
        let mut stream = engine.logs_after(&id, after);
        let mut why = "the engine ended it".to_string();
        while let Some(item) = stream.next().await {
            match item {
                Ok((time, out)) => {
                    (received, breaks) = (true, 0);
                    after = time.or(after);
                    lines.push(out.stderr, &out.bytes, &mut on_line);
                }
                Err(e) => {
                    why = e.to_string();
                    break;
                }
            }
        }
        let running = engine.inspect_container(&id).await.is_ok_and(|s| s.running);
        if !running || (received && after.is_none()) {
            break;
        }
        breaks += 1;
        if breaks > 5 {
            crate::say::say!(warn, { runnable = name }, "stopped following the output of runnable {name:?}: its stream broke {breaks} times in a row, last: {why}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100 << breaks)).await;
    }
    lines.flush(&mut on_line);
}

/// Starts all these runnables and waits until each is ready, in parallel. Once every one has
/// finished starting or failed, every failure is returned: the error itself for one,
/// [`Error::Many`] for several.
///
/// It takes runnables or workloads (anything that is [`AsRef<Runnable>`]): `[&a, &b]`, or a
/// vector of them by reference (`&Etcd::replicas(&env, "etcd", 3)`).
pub async fn start_and_wait_ready<'a, I, R>(runnables: I) -> Result<()>
where
    I: IntoIterator<Item = &'a R>,
    R: AsRef<Runnable> + 'a,
{
    let all = runnables.into_iter().map(|r| r.as_ref().start_and_wait_ready());
    Error::all(crate::task::join_all(all).await.into_iter().filter_map(|r| r.err()).collect())
}
