//! Looking at and removing what the framework put on the engine, from outside a test run: the
//! envs there with their owners, and removal of one env, of dead runs' resources, or of every
//! resource of this machine's runs. `cargo e2e` (the `cargo-e2e` binary) is built on it.
//!
//! Everything goes by the framework's labels ([`crate::MANAGED_LABEL`], [`crate::ENV_LABEL`],
//! [`crate::OWNER_LABEL`]): nothing without them is ever listed or removed.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use crate::cleanup::netpool::POOL_ENV;
use crate::engine::{Engine, ResourceKind, Selector};
use crate::error::{Error, Result};
use crate::owner::{Owner, ENV_LABEL, OWNER_LABEL};

/// Who holds an env's resources, as far as this machine can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// A live test process of this machine.
    Running,
    /// A live keeper process of this machine: a shared env of a nextest run, or a warm env
    /// (`E2E_REUSE`, with `warm` true) that outlives runs until it is idle.
    Keeper {
        /// Whether it is a warm env.
        warm: bool,
    },
    /// Its process is gone: the env was kept (`E2E_KEEP`), or its run was killed with no
    /// watchdog left; the next run of the env name removes it, or `remove_dead`.
    Dead,
    /// A run of another machine sharing the engine: it cannot be checked from here.
    OtherMachine,
    /// An owner label this version does not understand.
    Unknown,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Holder::Running => "running",
            Holder::Keeper { warm: true } => "warm (its keeper holds it until idle)",
            Holder::Keeper { warm: false } => "shared (its keeper holds it for the run)",
            Holder::Dead => "dead (kept, or left: the next run of this env removes it)",
            Holder::OtherMachine => "another machine's",
            Holder::Unknown => "unknown owner",
        })
    }
}

/// One env of one run on the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvOnEngine {
    /// The env's name.
    pub env: String,
    /// The run's owner label: `<host>/<boot>/<pid>/<start>`.
    pub owner: String,
    /// The run's process id, when the label is understood.
    pub pid: Option<u32>,
    /// Who holds it.
    pub holder: Holder,
    /// How many containers it has.
    pub containers: usize,
    /// How many of them run.
    pub running: usize,
    /// How many networks it has.
    pub networks: usize,
    /// How many volumes it has.
    pub volumes: usize,
}

/// The envs on the engine `DOCKER_HOST` names (or the local one), one entry per env and run,
/// sorted by env name. The runs' pooled networks (env `_pool`) are listed too.
pub async fn envs() -> Result<Vec<EnvOnEngine>> {
    let engine = crate::engine::connect().await?;
    envs_on(&*engine).await
}

pub(crate) async fn envs_on(engine: &dyn Engine) -> Result<Vec<EnvOnEngine>> {
    let mut by: BTreeMap<(String, String), EnvOnEngine> = BTreeMap::new();
    let selector = Selector::managed();
    for kind in [ResourceKind::Container, ResourceKind::Network, ResourceKind::Volume] {
        let found = engine.list(kind, &selector).await.map_err(|e| Error::engine(format!("listing {kind}s"), e))?;
        let running: HashSet<String> = if kind == ResourceKind::Container {
            let mut up = HashSet::new();
            for c in &found {
                if engine.inspect_container(&c.id).await.map(|s| s.running).unwrap_or(false) {
                    up.insert(c.id.clone());
                }
            }
            up
        } else {
            HashSet::new()
        };
        for f in found {
            let env = f.labels.get(ENV_LABEL).cloned().unwrap_or_default();
            let owner = f.labels.get(OWNER_LABEL).cloned().unwrap_or_default();
            let entry = by.entry((env.clone(), owner.clone())).or_insert_with(|| {
                let parsed = Owner::parse(&owner);
                EnvOnEngine {
                    env,
                    pid: parsed.as_ref().map(Owner::pid),
                    holder: holder(parsed.as_ref()),
                    owner,
                    containers: 0,
                    running: 0,
                    networks: 0,
                    volumes: 0,
                }
            });
            match kind {
                ResourceKind::Container => {
                    entry.containers += 1;
                    entry.running += usize::from(running.contains(&f.id));
                }
                ResourceKind::Network => entry.networks += 1,
                ResourceKind::Volume => entry.volumes += 1,
            }
        }
    }
    Ok(by.into_values().collect())
}

fn holder(owner: Option<&Owner>) -> Holder {
    let Some(owner) = owner else { return Holder::Unknown };
    if owner.is_dead() {
        return Holder::Dead;
    }
    if !owner.is_of_this_machine() {
        return Holder::OtherMachine;
    }
    // A keeper is this same binary, started with the keeper's variables (still in its initial
    // environment, which /proc shows, after it took them out of its own).
    let environ = std::fs::read(format!("/proc/{}/environ", owner.pid())).unwrap_or_default();
    let keeper = environ
        .split(|b| *b == 0)
        .filter_map(|v| std::str::from_utf8(v).ok())
        .find_map(|v| v.strip_prefix(&format!("{}=", crate::cleanup::watchdog::KEEPER_FILES_VAR)).map(String::from));
    match keeper {
        Some(files) => {
            let name = std::path::Path::new(&files).file_name().map(|n| n.to_string_lossy().into_owned());
            Holder::Keeper { warm: name.is_some_and(|n| n.starts_with("warm-")) }
        }
        None => Holder::Running,
    }
}

/// Removes every resource of env `env` (every run's, live or not: the caller asked for that
/// env by name). Returns how many runs' resources it removed.
pub async fn remove_env(env: &str) -> Result<usize> {
    let engine = crate::engine::connect().await?;
    let runs: Vec<EnvOnEngine> = envs_on(&*engine).await?.into_iter().filter(|e| e.env == env).collect();
    if runs.is_empty() {
        return Err(Error::InvalidName {
            what: "env",
            name: env.to_string(),
            reason: "the engine has no resources of it".into(),
        });
    }
    remove(&*engine, &runs).await
}

/// Removes what dead runs of this machine left (kept envs included), every env. Returns how
/// many runs' envs it removed.
pub async fn remove_dead() -> Result<usize> {
    let engine = crate::engine::connect().await?;
    let runs: Vec<EnvOnEngine> = envs_on(&*engine).await?.into_iter().filter(|e| e.holder == Holder::Dead).collect();
    let n = remove(&*engine, &runs).await?;
    crate::paths::remove_dead_run_dirs();
    Ok(n)
}

/// Removes every resource of this machine's runs, live or dead (warm envs included); another
/// machine's are left alone. Returns how many runs' envs it removed.
pub async fn remove_this_machine() -> Result<usize> {
    let engine = crate::engine::connect().await?;
    let runs: Vec<EnvOnEngine> = envs_on(&*engine)
        .await?
        .into_iter()
        .filter(|e| !matches!(e.holder, Holder::OtherMachine | Holder::Unknown))
        .collect();
    remove(&*engine, &runs).await
}

/// Removes each run's env: the env's own resources first, its run's pooled networks last.
pub(crate) async fn remove(engine: &dyn Engine, runs: &[EnvOnEngine]) -> Result<usize> {
    let mut failures = crate::cleanup::removal::Failures::default();
    let (pools, envs): (Vec<&EnvOnEngine>, Vec<&EnvOnEngine>) = runs.iter().partition(|r| r.env == POOL_ENV);
    for run in envs.iter().chain(&pools) {
        let Some(owner) = Owner::parse(&run.owner) else { continue };
        failures.add(crate::cleanup::removal::remove_run(engine, &run.env, &owner, None).await);
    }
    // A network the engine refuses though no container is attached is its phantom endpoint:
    // nothing can remove it short of an engine restart, so it is said, not failed on.
    let (phantoms, others): (Vec<Error>, Vec<Error>) = match failures.into_result() {
        Ok(()) => (vec![], vec![]),
        Err(Error::Many { errors }) => errors.into_iter().partition(crate::cleanup::netpool::is_phantom),
        Err(e) => [e].into_iter().partition(crate::cleanup::netpool::is_phantom),
    };
    for p in &phantoms {
        crate::say::say!(warn, "left: {p}");
    }
    Error::all(others)?;
    Ok(envs.len())
}
