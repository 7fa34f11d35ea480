//! The environment: one Docker network, one shared directory and the runnables in them.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;

use crate::docker::{Client, Kind};
use crate::error::{Error, Result};
use crate::owner::{self, ENV_LABEL, MANAGED_LABEL, OWNER_LABEL};
use crate::runnable::RunnableBuilder;

/// Where containers see the env's shared directory.
pub(crate) const INTERNAL_SHARED_DIR: &str = "/shared";

/// An isolated environment on Docker: a user-defined bridge network, a shared host directory
/// mounted at `/shared` in every container, and the runnables declared in it. Every resource
/// carries the labels `dev.e2e.managed=true`, `dev.e2e.env=<name>` and `dev.e2e.owner=<run>`,
/// but the network, which later envs of the process reuse once it is empty: it is labelled
/// `dev.e2e.env=_pool` and named `e2e-<pid>-<n>`.
///
/// Only one env of a given name exists at a time on a machine: creating a second waits for the
/// first to close (across threads and processes). Creating an env removes what a dead run left
/// under its name. [`Env::close`] removes everything; it is idempotent. An env dropped without
/// `close` is removed by its `Drop`, with a warning.
#[derive(Clone, Debug)]
pub struct Env {
    pub(crate) inner: Arc<EnvInner>,
}

#[derive(Debug)]
pub(crate) struct EnvInner {
    pub name: String,
    pub client: Client,
    pub network_id: String,
    pub network_name: String,
    /// Host directory of this env (private to the user running the tests).
    root: PathBuf,
    /// `root/shared`, mounted into every container.
    pub shared: PathBuf,
    pub http: reqwest::Client,
    pub quiet: bool,
    closed: AtomicBool,
    close_done: tokio::sync::Mutex<bool>,
    /// Runnable names in use.
    names: Mutex<HashSet<String>>,
    /// Runnables declared, for diagnostics: name, container name, output.
    runnables: Mutex<Vec<(String, String, Arc<crate::logs::LogBuffer>)>>,
    /// Set by [`Env::keep`]: nothing is removed.
    kept: AtomicBool,
    /// Instrumented runnables running now, for monitoring's discovery.
    pub targets: Arc<crate::monitoring::Targets>,
    /// Container name → exit code of its last death (None while it runs), fed by engine events.
    exits: Arc<Mutex<HashMap<String, watch::Sender<Option<i64>>>>>,
    events: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The cross-process lock that makes this run the only user of the env name.
    lock: Mutex<Option<std::fs::File>>,
}

impl Env {
    /// Creates the env `name` on the Docker engine that `DOCKER_HOST` names (the local socket
    /// by default). Waits while another live run holds the same env name.
    pub async fn docker(name: &str) -> Result<Env> {
        validate_env_name(name)?;
        crate::settings::get().check()?;
        let client = Client::connect().await?;
        crate::hooks::install();
        let lock = lock_env_name(name).await?;
        sweep_dead(&client, name).await?;

        let root = runs_dir()?.join(owner::dir_name()).join(name);
        let shared = root.join("shared");
        make_dirs(&root, &shared)?;

        let exits: Arc<Mutex<HashMap<String, watch::Sender<Option<i64>>>>> = Arc::default();
        // A network this process used for an env that is closed, else a new one.
        let network = match crate::netpool::take(&client).await {
            Ok(n) => n,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&root);
                return Err(e);
            }
        };
        let (network_id, network_name) = (network.id, network.name);
        let targets = Arc::new(crate::monitoring::Targets::default());
        let events = tokio::spawn(watch_exits(client.clone(), name.to_string(), exits.clone(), targets.clone()));
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("a TLS backend is compiled in");
        let quiet = crate::settings::get().quiet;
        Ok(Env {
            inner: Arc::new(EnvInner {
                name: name.to_string(),
                client,
                network_id,
                network_name,
                root,
                shared,
                http,
                quiet,
                closed: AtomicBool::new(false),
                close_done: tokio::sync::Mutex::new(false),
                names: Mutex::default(),
                runnables: Mutex::default(),
                kept: AtomicBool::new(false),
                targets,
                exits,
                events: Mutex::new(Some(events)),
                lock: Mutex::new(Some(lock)),
            }),
        })
    }

    /// The env's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    fn network(&self) -> crate::netpool::Network {
        crate::netpool::Network { id: self.inner.network_id.clone(), name: self.inner.network_name.clone() }
    }

    /// The name of the env's Docker network: `e2e-<pid>-<n>`, as networks are reused by the
    /// process's later envs once empty.
    pub fn network_name(&self) -> &str {
        &self.inner.network_name
    }

    /// The shared directory on the host.
    pub fn shared_dir(&self) -> &Path {
        &self.inner.shared
    }

    /// The shared directory as containers see it (`/shared`).
    pub fn internal_shared_dir(&self) -> &'static str {
        INTERNAL_SHARED_DIR
    }

    /// Whether [`Env::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    /// Declares a runnable named `name` (its container is `<env>-<name>`). Problems with the
    /// name, or a closed env, are reported when it is started.
    pub fn runnable(&self, name: &str) -> RunnableBuilder {
        let problem = if self.is_closed() {
            Some(Error::EnvClosed { env: self.inner.name.clone(), runnable: name.to_string() })
        } else if let Err(e) = validate_name("runnable", name, 48) {
            Some(e)
        } else if !self.inner.names.lock().unwrap().insert(name.to_string()) {
            Some(Error::DuplicateRunnable { env: self.inner.name.clone(), name: name.to_string() })
        } else {
            None
        };
        RunnableBuilder::new(self.clone(), name, problem)
    }

    /// The host's address on the env network, where containers reach this process (only with a
    /// local engine).
    pub(crate) async fn gateway(&self) -> Option<String> {
        if !self.inner.client.local() {
            return None;
        }
        self.inner.client.gateway(&self.inner.network_id).await.ok().flatten()
    }

    /// Resource usage of every started runnable: (runnable, container, usage).
    pub(crate) async fn container_stats(&self) -> Vec<(String, String, crate::docker::Usage)> {
        let runnables = self.inner.runnables.lock().unwrap().clone();
        let reads = runnables.into_iter().map(|(name, container, _)| async move {
            let usage = self.inner.client.usage(&container).await.ok()?;
            Some((name, container, usage))
        });
        futures_util::future::join_all(reads).await.into_iter().flatten().collect()
    }

    /// Registers a runnable for diagnostics.
    pub(crate) fn register(&self, name: &str, container: &str, logs: Arc<crate::logs::LogBuffer>) {
        self.inner.runnables.lock().unwrap().push((name.to_string(), container.to_string(), logs));
    }

    /// Where the full output of a runnable's container is written, on the host.
    pub(crate) fn log_file(&self, runnable: &str) -> PathBuf {
        self.inner.root.join("logs").join(format!("{runnable}.log"))
    }

    /// A report of every runnable: its state, exit code and last log lines. What a failed test
    /// prints so it can be debugged without rerunning.
    pub async fn describe(&self) -> String {
        let runnables = self.inner.runnables.lock().unwrap().clone();
        let mut out = format!("env {:?}: {} runnable(s)\n", self.inner.name, runnables.len());
        for (name, container, logs) in runnables {
            let state = match self.inner.client.inspect(&container).await {
                Ok(s) if s.paused => "paused".to_string(),
                Ok(s) if s.running => "running".to_string(),
                Ok(s) => format!("{} (exit code {})", s.status, s.exit_code.unwrap_or(-1)),
                Err(_) => "not started".to_string(),
            };
            out.push_str(&format!("- {name} [{container}]: {state}\n"));
            for line in logs.tail(crate::logs::TAIL_LINES) {
                out.push_str(&format!("    | {line}\n"));
            }
        }
        out
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

    /// Leaves the env as it is for inspection: nothing is removed by close, drop or the
    /// watchdog; the next run with this env name removes it. Returns how to remove it by hand.
    pub fn keep(&self) -> String {
        self.inner.kept.store(true, Ordering::SeqCst);
        crate::hooks::keep(&self.inner.name);
        let filter = format!("--filter label={ENV_LABEL}={} --filter label={OWNER_LABEL}={}", self.inner.name, owner::current());
        format!(
            "env {:?} is kept: containers {}-*, network {}, directory {}\n  remove it with:\n    \
             docker rm -fv $(docker ps -aq {filter}); docker network rm $(docker network ls -q {filter}); \
             docker volume rm $(docker volume ls -q {filter}); rm -rf {}\n  \
             (or run any test of this env again: it removes what a finished run left)",
            self.inner.name,
            self.inner.name,
            self.inner.network_name,
            self.inner.shared.display(),
            self.inner.root.display()
        )
    }

    /// The exit watch of a container, registered before it starts so no death is missed.
    pub(crate) fn exit_watch(&self, container: &str) -> watch::Receiver<Option<i64>> {
        let mut exits = self.inner.exits.lock().unwrap();
        exits.entry(container.to_string()).or_insert_with(|| watch::channel(None).0).subscribe()
    }

    pub(crate) fn labels(&self) -> HashMap<String, String> {
        labels_of(&self.inner.name)
    }

    /// Kills and removes every container of the env (in parallel, with their volumes), then its
    /// named volumes, network and directory. Idempotent; runnables cannot start afterwards.
    pub async fn close(&self) -> Result<()> {
        let mut done = self.inner.close_done.lock().await;
        self.inner.closed.store(true, Ordering::SeqCst);
        if *done || self.inner.kept.load(Ordering::SeqCst) {
            if let Some(events) = self.inner.events.lock().unwrap().take() {
                events.abort();
            }
            self.inner.lock.lock().unwrap().take();
            return Ok(());
        }
        let result = remove_env(&self.inner.client, &self.inner.name, self.network()).await;
        if let Some(events) = self.inner.events.lock().unwrap().take() {
            events.abort();
        }
        let dir = remove_dir(&self.inner.root);
        self.inner.lock.lock().unwrap().take();
        *done = true;
        result.and(dir)
    }

    /// Closes the env without waiting for its removal: the process's background reaper removes
    /// it while the caller goes on. The env name stays taken until the removal is done, the
    /// process waits for pending removals when it exits, and a killed process's are removed by
    /// its watchdog. A failed removal is reported on stderr. `#[e2e::test]` closes envs this
    /// way, which takes teardown off the test's time.
    pub async fn close_in_background(&self) {
        let mut done = self.inner.close_done.lock().await;
        self.inner.closed.store(true, Ordering::SeqCst);
        if let Some(events) = self.inner.events.lock().unwrap().take() {
            events.abort();
        }
        if *done || self.inner.kept.load(Ordering::SeqCst) {
            self.inner.lock.lock().unwrap().take();
            return;
        }
        let job = crate::reaper::Job {
            env: self.inner.name.clone(),
            network: self.network(),
            root: self.inner.root.clone(),
            lock: self.inner.lock.lock().unwrap().take(),
        };
        if let Err(job) = crate::reaper::submit(job) {
            crate::reaper::remove(&self.inner.client, job).await;
        }
        *done = true;
    }
}

impl Drop for EnvInner {
    fn drop(&mut self) {
        if *self.close_done.get_mut() || *self.kept.get_mut() {
            return;
        }
        eprintln!("e2e: env {:?} was dropped without close(): removing its resources now", self.name);
        if let Some(events) = self.events.get_mut().unwrap().take() {
            events.abort();
        }
        // The caller's runtime may be the one being dropped: clean up on a fresh one.
        let (name, network, root) = (self.name.clone(), self.network_id.clone(), self.root.clone());
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async {
                let client = Client::connect().await?;
                remove_run(&client, &name, owner::current(), &network).await
            })
            .map_err(|e| std::io::Error::other(e.to_string()))?;
            std::fs::remove_dir_all(&root)
        });
        if let Ok(Err(e)) = cleanup.join() {
            eprintln!("e2e: cleaning up env {:?} failed: {e}", self.name);
        }
    }
}

/// The labels of everything this run creates in env `name`.
fn labels_of(name: &str) -> HashMap<String, String> {
    HashMap::from([
        (MANAGED_LABEL.to_string(), "true".to_string()),
        (ENV_LABEL.to_string(), name.to_string()),
        (OWNER_LABEL.to_string(), owner::current().to_string()),
    ])
}

/// Removes this run's containers and volumes of env `env`, then gives its network back to the
/// process's pool (or removes it, if a container could not be removed).
pub(crate) async fn remove_env(client: &Client, env: &str, network: crate::netpool::Network) -> Result<()> {
    match remove_run(client, env, owner::current(), "").await {
        Ok(()) => {
            crate::netpool::put_back(network);
            Ok(())
        }
        Err(e) => {
            let _ = client.remove_network(&network.id).await;
            Err(e)
        }
    }
}

/// Removes the containers, volumes and network of one run of one env.
pub(crate) async fn remove_run(client: &Client, env: &str, owner: &str, network_id: &str) -> Result<()> {
    let labels = [format!("{ENV_LABEL}={env}"), format!("{OWNER_LABEL}={owner}")];
    let containers = client.list(Kind::Container, &labels).await?;
    let removals = containers.iter().map(|c| client.remove_container(&c.id));
    let mut result: Result<()> = futures_util::future::join_all(removals).await.into_iter().collect();
    let (volumes, networks) = tokio::join!(client.list(Kind::Volume, &labels), client.list(Kind::Network, &labels));
    for v in volumes? {
        result = result.and(client.remove_volume(&v.id).await);
    }
    let mut networks: Vec<String> = networks?.into_iter().map(|n| n.id).collect();
    if !network_id.is_empty() && !networks.iter().any(|n| n == network_id) {
        networks.push(network_id.to_string());
    }
    for n in networks {
        result = result.and(client.remove_network(&n).await);
    }
    result
}

/// Removes what runs that are dead left: containers, volumes and networks under this env name
/// (any owner), and every dead run's directory. A live run's resources are never touched.
async fn sweep_dead(client: &Client, env: &str) -> Result<()> {
    let labels = [format!("{ENV_LABEL}={env}")];
    let mut dead_owners = HashSet::new();
    let lists = [Kind::Container, Kind::Volume, Kind::Network].map(|kind| client.list(kind, &labels));
    for found in futures_util::future::try_join_all(lists).await? {
        for found in found {
            let owner = found.labels.get(OWNER_LABEL).cloned().unwrap_or_default();
            if owner == owner::current() {
                continue;
            }
            if owner::is_dead(&owner) {
                dead_owners.insert(owner);
            } else {
                // Only possible for another host sharing the engine: this host's live runs of
                // this env name are excluded by the env lock.
                return Err(Error::EnvInUse { env: env.to_string(), owner });
            }
        }
    }
    for owner in dead_owners {
        eprintln!("e2e: removing resources of env {env:?} left by dead run {owner}");
        // What cannot be removed (an engine that keeps a phantom endpoint on a network) must not
        // make the env name unusable: this run works beside it, under other names.
        if let Err(e) = remove_run(client, env, &owner, "").await {
            eprintln!("e2e: could not remove everything dead run {owner} left in env {env:?}: {e}");
        }
    }
    if let Ok(dir) = runs_dir() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if owner::dir_is_dead(&name) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    Ok(())
}

/// Follows the engine's start/die events of this run's containers in `env`.
async fn watch_exits(
    client: Client,
    env: String,
    exits: Arc<Mutex<HashMap<String, watch::Sender<Option<i64>>>>>,
    targets: Arc<crate::monitoring::Targets>,
) {
    let labels = [format!("{ENV_LABEL}={env}"), format!("{OWNER_LABEL}={}", owner::current())];
    let mut events = Box::pin(client.container_events(&labels));
    while let Some(Ok(ev)) = events.next().await {
        let Some(actor) = ev.actor else { continue };
        let attrs = actor.attributes.unwrap_or_default();
        let Some(name) = attrs.get("name") else { continue };
        let state = match ev.action.as_deref() {
            Some("die") => {
                // A dead container is no target: monitoring forgets it.
                targets.set(name, None);
                Some(attrs.get("exitCode").and_then(|c| c.parse().ok()).unwrap_or(-1))
            }
            Some("start") => None,
            _ => continue,
        };
        let mut map = exits.lock().unwrap();
        map.entry(name.clone()).or_insert_with(|| watch::channel(None).0).send_replace(state);
    }
}

/// `<tmp>/e2e-runs`, shared by every user of the machine, one directory per run inside.
pub(crate) fn runs_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join("e2e-runs");
    if !dir.exists() {
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777));
    }
    Ok(dir)
}

fn make_dirs(root: &Path, shared: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(shared).map_err(|e| Error::io(format!("creating {}", shared.display()), e))?;
    // The run's directory is private to this user; the shared one inside it is open to the
    // containers' users, whatever uid they run as.
    let run_dir = root.parent().unwrap_or(root);
    for (dir, mode) in [(run_dir, 0o700), (root, 0o700), (shared, 0o777)] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(format!("setting permissions of {}", dir.display()), e))?;
    }
    Ok(())
}

pub(crate) fn remove_dir(root: &Path) -> Result<()> {
    match std::fs::remove_dir_all(root) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("removing {}", root.display()), e)),
    }
    // The run directory goes too once its last env is gone.
    if let Some(run_dir) = root.parent() {
        let _ = std::fs::remove_dir(run_dir);
    }
    Ok(())
}

/// Takes the machine-wide lock of an env name, waiting while another run holds it.
async fn lock_env_name(name: &str) -> Result<std::fs::File> {
    let dir = runs_dir()?.join("locks");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777));
    }
    let path = dir.join(format!("{name}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(format!("opening env lock {}", path.display()), e))?;
    match file.try_lock() {
        Ok(()) => return Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {}
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(format!("locking {}", path.display()), e)),
    }
    eprintln!("e2e: env {name:?} is in use by another test or process; waiting for it to close");
    tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .expect("the lock task does not panic")
        .map_err(|e| Error::io(format!("locking {}", path.display()), e))
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
