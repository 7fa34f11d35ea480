//! The environment: one network, one shared directory and the runnables in them, on an engine.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;

use crate::cleanup::netpool::Network;
use crate::engine::{Engine, EngineErrorKind, Event, EventKind, Labels, Selector};
use crate::error::{Error, Result};
use crate::owner::{self, ENV_LABEL, MANAGED_LABEL, OWNER_LABEL};

/// Where containers see the env's shared directory.
pub(crate) const INTERNAL_SHARED_DIR: &str = "/shared";

/// An isolated environment on a container engine: a user-defined bridge network, a shared host
/// directory mounted at `/shared` in every container, and the runnables declared in it. Every
/// resource carries the labels `dev.e2e.managed=true`, `dev.e2e.env=<name>` and
/// `dev.e2e.owner=<run>`, but the network, which later envs of the process reuse once it is
/// empty: it is labelled `dev.e2e.env=_pool` and named `e2e-<pid>-<n>`.
///
/// Only one env of a given name exists at a time on a machine: creating a second waits for the
/// first to close (across threads and processes). Creating an env removes what a dead run left
/// under its name. [`Env::close`] removes everything; it is idempotent. An env dropped without
/// `close` is removed by its `Drop`, with a warning.
#[derive(Clone, Debug)]
pub struct Env {
    pub(crate) inner: Arc<EnvInner>,
}

/// Where an env is in its life. Kept: open, but nothing will remove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lifecycle {
    Open,
    Kept,
    Closing,
    Closed,
}

/// The env's lifecycle and what it holds until closed, behind one lock.
#[derive(Debug)]
struct Life {
    state: Lifecycle,
    /// The cross-process lock that makes this run the only user of the env name.
    lock: Option<std::fs::File>,
    /// The task following the engine's events.
    events: Option<tokio::task::JoinHandle<()>>,
}

/// Where a running runnable serves its metrics: what monitoring discovers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Instrumented {
    pub runnable: String,
    /// `<container>:<port>`, inside the env network.
    pub address: String,
    pub path: String,
    pub scheme: String,
}

/// The env's running instrumented runnables, by container name.
pub(crate) type InstrumentedSet = BTreeMap<String, Instrumented>;

/// A keeper's running container, as a process attached to its env adopts it (see
/// [`crate::keeper`]).
#[derive(Debug, Clone)]
pub(crate) struct Adopted {
    pub id: String,
    pub host_ports: HashMap<String, u16>,
    pub ip: Option<String>,
}

/// How long a close waits for the network changes in flight of its containers.
const NETWORK_SETTLE: Duration = Duration::from_secs(30);

/// The client of the env's HTTP probes and scrapes: any certificate, no proxy, 2 s per call.
fn probe_client() -> crate::http::Client {
    crate::http::Client::new(Duration::from_secs(2))
}

/// A runnable declared in the env, for diagnostics.
#[derive(Debug, Clone)]
pub(crate) struct Declared {
    pub name: String,
    pub container: String,
    pub logs: Arc<crate::logs::LogBuffer>,
    /// The runnable itself, while it lives (it holds the env: no cycle).
    pub handle: std::sync::Weak<dyn Reachable>,
}

/// What the env asks of a declared runnable to map the addresses its containers use to this
/// process's endpoints ([`Env::host_endpoint_of`]); the runnable implements it.
pub(crate) trait Reachable: std::fmt::Debug + Send + Sync {
    /// Whether the env network knows it as `host`.
    fn answers_to(&self, host: &str) -> bool;
    /// The host endpoint of its container port `port`.
    fn endpoint_of_port(&self, port: u16) -> Result<String>;
}

#[derive(Debug)]
pub(crate) struct EnvInner {
    pub name: String,
    pub engine: Arc<dyn Engine>,
    pub network: Network,
    /// Host directory of this env (private to the user running the tests).
    root: PathBuf,
    /// `root/shared`, mounted into every container.
    pub shared: PathBuf,
    pub http: crate::http::Client,
    /// The env's tracing span (inside the test's, when a test made it).
    pub span: tracing::Span,
    pub quiet: bool,
    life: Mutex<Life>,
    /// Serializes closes: a second waits for the first.
    close_gate: tokio::sync::Mutex<()>,
    /// Changes of a container's endpoint on the env network (disconnect, reconnect) hold it for
    /// reading until the engine has answered; a close takes it for writing before any removal.
    /// Docker 20.10 removing a container while it disconnects it leaves the network an
    /// endpoint no container holds (a phantom: the network cannot be removed until the engine
    /// restarts), which a test that stops waiting for `disconnect()` (a timeout, a panic in
    /// another task) would provoke.
    pub network_changes: Arc<tokio::sync::RwLock<()>>,
    /// Runnable names in use, and the runnables declared under them.
    declared: Mutex<(HashSet<String>, Vec<Declared>)>,
    /// Instrumented runnables running now: listeners (monitoring) subscribe to it.
    instrumented: Arc<watch::Sender<InstrumentedSet>>,
    pub exits: Arc<Exits>,
    /// For a shared env (`#[e2e::test(..., shared)]`), its runnables by declaration.
    pub sharing: Option<Arc<crate::registry::Registry>>,
    /// The tag of the run whose names the env's resources carry (this one's, or a keeper's).
    tag: String,
    /// In an env attached to a keeper's: the keeper's containers, by runnable.
    pub adopt: Option<HashMap<String, Adopted>>,
}

/// Container name → exit code of its last death (None while it runs), fed by engine events;
/// and why the events stopped, if they did.
#[derive(Debug)]
pub(crate) struct Exits {
    map: Mutex<HashMap<String, watch::Sender<Option<i64>>>>,
    lost: watch::Sender<Option<String>>,
}

impl Default for Exits {
    fn default() -> Self {
        Exits { map: Mutex::default(), lost: watch::Sender::new(None) }
    }
}

impl Exits {
    /// The exit watch of a container, registered before it starts so no death is missed.
    pub fn watch(&self, container: &str) -> watch::Receiver<Option<i64>> {
        let mut map = self.map.lock().unwrap();
        map.entry(container.to_string()).or_insert_with(|| watch::channel(None).0).subscribe()
    }

    fn set(&self, container: &str, exit: Option<i64>) {
        let mut map = self.map.lock().unwrap();
        map.entry(container.to_string()).or_insert_with(|| watch::channel(None).0).send_replace(exit);
    }

    fn containers(&self) -> Vec<String> {
        self.map.lock().unwrap().keys().cloned().collect()
    }

    /// Why the engine's events are not followed any more, if they are not: deaths go unseen.
    pub fn lost(&self) -> watch::Receiver<Option<String>> {
        self.lost.subscribe()
    }
}

impl Env {
    /// Creates the env `name` on the Docker engine that `DOCKER_HOST` names (the local socket
    /// by default). Waits while another live run holds the same env name.
    pub async fn docker(name: &str) -> Result<Env> {
        Env::docker_as(name, false).await
    }

    /// The env of the tests that share it (see [`crate::shared`]): a runnable declared again
    /// the same way is the one declared first, and its containers' output is not printed as it
    /// comes (it belongs to no one test; failure reports show its last lines).
    pub(crate) async fn docker_shared(name: &str) -> Result<Env> {
        Env::docker_as(name, true).await
    }

    async fn docker_as(name: &str, shared: bool) -> Result<Env> {
        validate_env_name(name)?;
        crate::settings::get().check()?;
        let engine = crate::engine::connect().await?;
        crate::cleanup::install();
        Env::on_as(engine, name, shared).await
    }

    /// Creates the env `name` on `engine`.
    #[cfg(test)]
    pub(crate) async fn on(engine: Arc<dyn Engine>, name: &str) -> Result<Env> {
        Env::on_as(engine, name, false).await
    }

    pub(crate) async fn on_as(engine: Arc<dyn Engine>, name: &str, sharing: bool) -> Result<Env> {
        validate_env_name(name)?;
        let lock = crate::paths::lock_env_name(name).await?;
        crate::cleanup::removal::sweep_dead(&*engine, name).await?;

        let root = crate::paths::env_dir(owner::current(), name)?;
        let shared = root.join("shared");
        crate::paths::make_env_dirs(&root, &shared)?;
        // A network this process used for an env that is closed, else a new one.
        let network = match crate::cleanup::netpool::take(&*engine).await {
            Ok(n) => n,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&root);
                return Err(e);
            }
        };
        let exits = Arc::new(Exits::default());
        let instrumented = Arc::new(watch::Sender::new(InstrumentedSet::new()));
        // Subscribed before any container of the env can start, so no death is missed.
        let first = engine.container_events(&Selector::managed().env(name).owner(owner::current()), None);
        let events = crate::task::spawn(follow_events(
            engine.clone(),
            name.to_string(),
            first,
            exits.clone(),
            instrumented.clone(),
        ));
        let http = probe_client();
        let quiet = crate::settings::get().quiet || sharing;
        let span = tracing::info_span!(target: "e2e", "env", env = %name, network = %network.name);
        tracing::debug!(target: "e2e", parent: &span, "env created");
        Ok(Env {
            inner: Arc::new(EnvInner {
                name: name.to_string(),
                engine,
                network,
                root,
                shared,
                http,
                span,
                quiet,
                life: Mutex::new(Life { state: Lifecycle::Open, lock: Some(lock), events: Some(events) }),
                close_gate: tokio::sync::Mutex::new(()),
                network_changes: Arc::default(),
                declared: Mutex::default(),
                instrumented,
                exits,
                sharing: sharing.then(Arc::default),
                tag: owner::current().tag(),
                adopt: None,
            }),
        })
    }

    /// The keeper's env `name` (see [`crate::keeper`]), attached to: its runnables are the
    /// keeper's containers, and closing it leaves them to the keeper.
    pub(crate) async fn attach(
        name: &str,
        keeper: &owner::Owner,
        network: crate::cleanup::netpool::Network,
        root: PathBuf,
        adopt: HashMap<String, Adopted>,
    ) -> Result<Env> {
        validate_env_name(name)?;
        crate::settings::get().check()?;
        let engine = crate::engine::connect().await?;
        let http = probe_client();
        let span = tracing::info_span!(target: "e2e", "env", env = %name, network = %network.name);
        Ok(Env {
            inner: Arc::new(EnvInner {
                name: name.to_string(),
                engine,
                network,
                shared: root.join("shared"),
                root,
                http,
                span,
                quiet: true,
                // Kept: neither close nor drop removes anything; the keeper does.
                life: Mutex::new(Life { state: Lifecycle::Kept, lock: None, events: None }),
                close_gate: tokio::sync::Mutex::new(()),
                network_changes: Arc::default(),
                declared: Mutex::default(),
                instrumented: Arc::new(watch::Sender::new(InstrumentedSet::new())),
                exits: Arc::new(Exits::default()),
                sharing: None,
                tag: keeper.tag(),
                adopt: Some(adopt),
            }),
        })
    }

    /// The declarations of a shared env.
    pub(crate) fn sharing(&self) -> Option<&crate::registry::Registry> {
        self.inner.sharing.as_deref()
    }

    /// The id of the env's network.
    pub(crate) fn network_id(&self) -> &str {
        &self.inner.network.id
    }

    /// The env's directory on this host.
    pub(crate) fn root_dir(&self) -> &Path {
        &self.inner.root
    }

    /// The endpoint this process reaches for an address that containers of the env use
    /// (`<name>:<port>`, `<env>-<name>:<port>`, the container's name or address): what a
    /// cluster advertises to its clients (etcd's member list, Redis Cluster's slots, NATS
    /// routes), made usable from the test. A URL keeps its scheme and path:
    /// `http://etcd1:2379/health` becomes `http://127.0.0.1:<port>/health`.
    ///
    /// ```no_run
    /// # fn f(env: &e2e_runtime::Env) -> e2e_runtime::Result<()> {
    /// let url = env.host_endpoint_of("http://etcd1:2379")?; // "http://127.0.0.1:49153"
    /// # Ok(()) }
    /// ```
    pub fn host_endpoint_of(&self, address: &str) -> Result<String> {
        let bad = |reason: String| Error::InvalidName { what: "address", name: address.to_string(), reason };
        let (scheme, rest) = match address.split_once("://") {
            Some((scheme, rest)) => (format!("{scheme}://"), rest),
            None => (String::new(), address),
        };
        let (host_port, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
        let (host, port) = host_port
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
            .ok_or_else(|| bad("it is not <host>:<port> (or a URL with both)".into()))?;
        match self.in_network(host, port) {
            Some(endpoint) => Ok(format!("{scheme}{}{path}", endpoint?)),
            None => Err(bad(format!(
                "no runnable of env {:?} answers to {host:?} (its runnables: {})",
                self.inner.name,
                self.inner.declared.lock().unwrap().1.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// The host endpoint of `host:port` when a runnable of the env answers to `host` (an error
    /// when that runnable has no such port or is not running); `None` when none does.
    pub(crate) fn in_network(&self, host: &str, port: u16) -> Option<Result<String>> {
        let declared = self.inner.declared.lock().unwrap().1.clone();
        let found = declared.iter().filter_map(|d| d.handle.upgrade()).find(|r| r.answers_to(host))?;
        Some(found.endpoint_of_port(port))
    }

    /// The env's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The name of the env's network: `e2e-<pid>-<run tag>-<n>`, as networks are reused by
    /// the process's later envs once empty.
    pub fn network_name(&self) -> &str {
        &self.inner.network.name
    }

    /// The engine's name for a resource `what` of this env: `<env>-<what>-<run tag>`.
    pub(crate) fn engine_name(&self, what: &str) -> String {
        format!("{}-{what}-{}", self.inner.name, self.inner.tag)
    }

    /// The shared directory on the host.
    pub fn shared_dir(&self) -> &Path {
        &self.inner.shared
    }

    /// The shared directory as containers see it (`/shared`).
    pub fn internal_shared_dir(&self) -> &'static str {
        INTERNAL_SHARED_DIR
    }

    fn state(&self) -> Lifecycle {
        self.inner.life.lock().unwrap().state
    }

    /// Whether [`Env::close`] was called.
    pub fn is_closed(&self) -> bool {
        matches!(self.state(), Lifecycle::Closing | Lifecycle::Closed)
    }

    /// Claims a runnable name; the error says why it cannot be used.
    pub(crate) fn claim(&self, name: &str) -> Result<()> {
        self.check_claimable(name)?;
        if !self.inner.declared.lock().unwrap().0.insert(name.to_string()) {
            return Err(Error::DuplicateRunnable { env: self.inner.name.clone(), name: name.to_string() });
        }
        Ok(())
    }

    /// Whether a runnable could be declared under `name`: the env is open and the name valid.
    pub(crate) fn check_claimable(&self, name: &str) -> Result<()> {
        if self.is_closed() {
            return Err(Error::EnvClosed { env: self.inner.name.clone(), runnable: name.to_string() });
        }
        validate_name("runnable", name, 48)
    }

    /// Whether the env's shared directory is a bind mount of [`Env::shared_dir`] (a local
    /// engine), so a file written there is seen inside at once; else files go by copies.
    #[cfg_attr(not(feature = "monitoring"), allow(dead_code))]
    pub(crate) fn shares_host_files(&self) -> bool {
        self.inner.engine.shares_host_files()
    }

    /// The host's address on the env network, where containers reach this process (only when
    /// containers are reachable from it, as with a local engine).
    #[cfg_attr(not(feature = "monitoring"), allow(dead_code))]
    pub(crate) async fn gateway(&self) -> Option<String> {
        if !self.inner.engine.containers_reachable() {
            return None;
        }
        self.inner.engine.inspect_network(&self.inner.network.id).await.ok()?.gateway
    }

    /// Resource usage of every declared runnable that has a container.
    #[cfg_attr(not(feature = "monitoring"), allow(dead_code))]
    pub(crate) async fn container_stats(&self) -> Vec<(Declared, crate::engine::Usage)> {
        let declared = self.inner.declared.lock().unwrap().1.clone();
        let reads = declared.into_iter().map(|d| async move {
            let usage = self.inner.engine.usage(&d.container).await.ok()?;
            Some((d, usage))
        });
        crate::task::join_all(reads).await.into_iter().flatten().collect()
    }

    /// Records that a runnable's container serves metrics now (or no longer, with `None`).
    pub(crate) fn set_instrumented(&self, container: &str, serving: Option<Instrumented>) {
        set_instrumented(&self.inner.instrumented, container, serving);
    }

    /// The env's running instrumented runnables, now and as they change.
    #[cfg_attr(not(feature = "monitoring"), allow(dead_code))]
    pub(crate) fn watch_instrumented(&self) -> watch::Receiver<InstrumentedSet> {
        self.inner.instrumented.subscribe()
    }

    /// Registers a runnable for diagnostics.
    pub(crate) fn register(&self, declared: Declared) {
        self.inner.declared.lock().unwrap().1.push(declared);
    }

    /// Where the full output of a runnable's container is written, on the host.
    pub(crate) fn log_file(&self, runnable: &str) -> PathBuf {
        self.inner.root.join("logs").join(format!("{runnable}.log"))
    }

    /// A report of every runnable: its state, exit code and last log lines. What a failed test
    /// prints so it can be debugged without rerunning.
    pub async fn describe(&self) -> String {
        let declared = self.inner.declared.lock().unwrap().1.clone();
        let mut out = format!("env {:?}: {} runnable(s)\n", self.inner.name, declared.len());
        for d in declared {
            let state = match self.inner.engine.inspect_container(&d.container).await {
                // A container of that name that is not this run's (the name was taken): the
                // runnable itself never started.
                Ok(s) if !self.owns(&s.labels) => {
                    "not started (its container name is taken by a container of another run)".to_string()
                }
                Ok(s) if s.paused => "paused".to_string(),
                Ok(s) if s.running => "running".to_string(),
                Ok(s) => format!("{} (exit code {})", s.status, s.exit_code.unwrap_or(-1)),
                Err(e) if e.kind() == EngineErrorKind::NotFound => "not started".to_string(),
                Err(e) => format!("unknown (the engine answered: {e})"),
            };
            out.push_str(&format!("- {} [{}]: {state}\n", d.name, d.container));
            for line in d.logs.tail(crate::logs::TAIL_LINES) {
                out.push_str(&format!("    | {line}\n"));
            }
        }
        out
    }

    /// Whether a resource with these labels is this run's, in this env.
    fn owns(&self, labels: &Labels) -> bool {
        Selector::managed().env(&self.inner.name).owner(owner::current()).selects(labels)
    }

    /// Copies every runnable's full output into `dir` (as `<runnable>.log`), returning `dir`.
    pub fn save_logs(&self, dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let src = self.inner.root.join("logs");
        for entry in std::fs::read_dir(&src).into_iter().flatten().flatten() {
            let to = dir.join(entry.file_name());
            std::fs::copy(entry.path(), &to).map_err(|e| Error::io(format!("copying logs to {}", to.display()), e))?;
        }
        Ok(dir.to_path_buf())
    }

    /// Leaves the env as it is for inspection: nothing is removed by close, drop, the signal
    /// handler or the watchdog; the next run with this env name removes it. Returns how to
    /// remove it by hand.
    pub fn keep(&self) -> String {
        {
            let mut life = self.inner.life.lock().unwrap();
            if life.state == Lifecycle::Open {
                life.state = Lifecycle::Kept;
            }
        }
        crate::cleanup::watchdog::keep(&self.inner.name);
        let filter = Selector::managed().env(&self.inner.name).owner(owner::current());
        format!(
            "env {:?} is kept: containers {}-*, network {}, directory {}\n  remove it with:\n    \
             docker rm -fv $(docker ps -aq {filter}); docker volume rm $(docker volume ls -q {filter}); \
             docker network rm {}; rm -rf {}\n  \
             (or run any test of this env again: it removes what a finished run left)",
            self.inner.name,
            self.inner.name,
            self.inner.network.name,
            self.inner.shared.display(),
            self.inner.network.name,
            self.inner.root.display()
        )
    }

    /// The labels of everything this run creates in the env.
    pub(crate) fn labels(&self) -> Labels {
        labels_of(&self.inner.name)
    }

    /// Moves the env from open (or kept) to closing, stopping its event task and handing over
    /// its name lock. `None` if it was closed already; `Some((kept, lock))` otherwise.
    fn begin_close(&self) -> Option<(bool, Option<std::fs::File>)> {
        let mut life = self.inner.life.lock().unwrap();
        let kept = match life.state {
            Lifecycle::Closed => return None,
            Lifecycle::Kept => true,
            Lifecycle::Open | Lifecycle::Closing => false,
        };
        life.state = if kept { Lifecycle::Closed } else { Lifecycle::Closing };
        if let Some(events) = life.events.take() {
            events.abort();
        }
        Some((kept, life.lock.take()))
    }

    fn closed(&self) {
        self.inner.life.lock().unwrap().state = Lifecycle::Closed;
    }

    /// Waits for the endpoint changes the engine is still carrying out (see
    /// `EnvInner::network_changes`), at most [`NETWORK_SETTLE`]. Called once the env is
    /// closing: no change starts after it.
    async fn settle_network_changes(&self) {
        if tokio::time::timeout(NETWORK_SETTLE, self.inner.network_changes.write()).await.is_err() {
            crate::say::say!(
                warn,
                { env = self.inner.name },
                "env {:?}: a network change of one of its containers did not end within {}s; removing anyway",
                self.inner.name,
                NETWORK_SETTLE.as_secs()
            );
        }
    }

    /// Kills and removes every container of the env (in parallel, with their volumes, after
    /// detaching them from the env's network one at a time: Docker 20.10 can otherwise lose
    /// count of the network's endpoints), then its named volumes, network and directory.
    /// Idempotent; runnables cannot start afterwards.
    pub async fn close(&self) -> Result<()> {
        let _gate = self.inner.close_gate.lock().await;
        let Some((kept, lock)) = self.begin_close() else { return Ok(()) };
        if kept {
            return Ok(());
        }
        self.settle_network_changes().await;
        let engine = &*self.inner.engine;
        let result = crate::cleanup::removal::remove_env(engine, &self.inner.name, self.inner.network.clone()).await;
        let dir = crate::paths::remove_env_dir(&self.inner.root);
        self.closed();
        drop(lock);
        tracing::debug!(target: "e2e", parent: &self.inner.span, removed = result.is_ok(), "env closed");
        result.and(dir)
    }

    /// Closes the env without waiting for its removal: the process's background reaper removes
    /// it while the caller goes on. The env name stays taken until the removal is done, the
    /// process waits for pending removals when it exits, and a killed process's are removed by
    /// its watchdog. A failed removal is reported on stderr. `#[e2e::test]` closes envs this
    /// way, which takes teardown off the test's time.
    pub async fn close_in_background(&self) {
        let _gate = self.inner.close_gate.lock().await;
        let Some((kept, lock)) = self.begin_close() else { return };
        if kept {
            return;
        }
        self.settle_network_changes().await;
        tracing::debug!(target: "e2e", parent: &self.inner.span, "env closing in the background");
        let job = crate::cleanup::reaper::Job {
            engine: self.inner.engine.clone(),
            env: self.inner.name.clone(),
            network: self.inner.network.clone(),
            root: self.inner.root.clone(),
            lock,
        };
        if let Err(job) = crate::cleanup::reaper::submit(job) {
            crate::cleanup::reaper::remove(&*self.inner.engine, job).await;
        }
        self.closed();
    }
}

impl Drop for EnvInner {
    fn drop(&mut self) {
        let life = self.life.get_mut().unwrap();
        if matches!(life.state, Lifecycle::Kept | Lifecycle::Closed) {
            return;
        }
        crate::say::say!(
            warn,
            { env = self.name },
            "env {:?} was dropped without close(): removing its resources now",
            self.name
        );
        if let Some(events) = life.events.take() {
            events.abort();
        }
        // The caller's runtime may be the one being dropped: clean up on the cleanup session's.
        let (name, network) = (self.name.clone(), self.network.id.clone());
        let removed = crate::cleanup::session::block_on(Some(self.engine.clone()), move |engine| {
            Box::pin(async move {
                crate::cleanup::removal::remove_run(&*engine, &name, owner::current(), Some(&network)).await
            })
        });
        if let Err(e) = removed.and(crate::paths::remove_env_dir(&self.root)) {
            crate::say::say!(warn, { env = self.name }, "cleaning up env {:?} failed: {e}", self.name);
        }
    }
}

/// The labels of everything this run creates in env `name`.
fn labels_of(name: &str) -> Labels {
    Labels::from([
        (MANAGED_LABEL.to_string(), "true".to_string()),
        (ENV_LABEL.to_string(), name.to_string()),
        (OWNER_LABEL.to_string(), owner::current().to_string()),
    ])
}

/// How many times in a row the event stream may fail to resume before waits are told.
const EVENT_RETRIES: u32 = 5;

/// Follows the engine's start/die events of this run's containers in `env`. A stream that ends
/// or fails is resumed from its last event, and the state of every watched container is read
/// again, so no death goes unseen; if it cannot be resumed, waits are told why.
async fn follow_events(
    engine: Arc<dyn Engine>,
    env: String,
    first: futures_util::stream::BoxStream<'static, crate::engine::EngineResult<Event>>,
    exits: Arc<Exits>,
    instrumented: Arc<watch::Sender<InstrumentedSet>>,
) {
    let selector = Selector::managed().env(&env).owner(owner::current());
    let mut since = None;
    let mut failures = 0u32;
    let mut first = Some(first);
    loop {
        let mut stream = first.take().unwrap_or_else(|| engine.container_events(&selector, since));
        if failures > 0 {
            reconcile(&*engine, &exits, &instrumented).await;
        }
        let mut why = "the engine ended the event stream".to_string();
        while let Some(item) = stream.next().await {
            match item {
                Ok(event) => {
                    if failures > 0 {
                        failures = 0;
                        exits.lost.send_replace(None);
                    }
                    since = Some(event.time_nanos);
                    apply(&exits, &instrumented, &event);
                }
                Err(e) => {
                    why = e.to_string();
                    break;
                }
            }
        }
        failures += 1;
        if failures >= EVENT_RETRIES {
            exits
                .lost
                .send_replace(Some(format!("the engine's event stream failed {failures} times in a row, last: {why}")));
        }
        tokio::time::sleep(Duration::from_millis(50 << failures.min(5))).await;
    }
}

fn set_instrumented(set: &watch::Sender<InstrumentedSet>, container: &str, serving: Option<Instrumented>) {
    set.send_if_modified(|set| match serving {
        Some(s) => set.insert(container.to_string(), s.clone()) != Some(s),
        None => set.remove(container).is_some(),
    });
}

fn apply(exits: &Exits, instrumented: &watch::Sender<InstrumentedSet>, event: &Event) {
    match event.kind {
        EventKind::Died { exit_code } => {
            // A dead container serves no metrics.
            set_instrumented(instrumented, &event.container, None);
            exits.set(&event.container, Some(exit_code));
        }
        EventKind::Started => exits.set(&event.container, None),
    }
}

/// After a gap in the events: what the engine says of every watched container now.
async fn reconcile(engine: &dyn Engine, exits: &Exits, instrumented: &watch::Sender<InstrumentedSet>) {
    for container in exits.containers() {
        if let Ok(state) = engine.inspect_container(&container).await {
            if !state.running && matches!(state.status.as_str(), "exited" | "dead") {
                let event = Event {
                    container,
                    kind: EventKind::Died { exit_code: state.exit_code.unwrap_or(-1) },
                    time_nanos: 0,
                };
                apply(exits, instrumented, &event);
            }
        }
    }
}

/// The rule `#[e2e::test]` checks at compile time (an env name also names the test).
pub(crate) fn validate_env_name(name: &str) -> Result<()> {
    match e2e_names::env_name_problem(name) {
        Some(reason) => Err(Error::InvalidName { what: "env", name: name.to_string(), reason }),
        None => Ok(()),
    }
}

fn validate_name(what: &'static str, name: &str, max: usize) -> Result<()> {
    let bad = |reason: String| Err(Error::InvalidName { what, name: name.to_string(), reason });
    if name.is_empty() {
        return bad("it is empty".into());
    }
    if name.len() > max {
        return bad(format!("it has {} characters, at most {max} are allowed", name.len()));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return bad("it must start with a letter or a digit".into());
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))) {
        return bad(format!("{c:?} is not allowed (use letters, digits, '_', '-', '.')"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn env_names_follow_the_shared_rule() {
        // The same list the macro is tested on; refused before the engine is asked.
        for (name, why) in e2e_names::cases::BAD {
            match Env::docker(name).await {
                Err(e @ Error::InvalidName { .. }) => {
                    assert!(e.to_string().starts_with(&format!("invalid env name {name:?}: {why}; ")), "{e}")
                }
                other => panic!("{name:?}: {other:?}"),
            }
        }
        for name in e2e_names::cases::GOOD {
            assert!(validate_env_name(name).is_ok(), "{name:?}");
        }
    }
}
