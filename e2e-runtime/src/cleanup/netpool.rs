//! Networks reused across the envs of one process.
//!
//! Creating and removing a bridge network costs the engine about 0.15 s of CPU on a 2-core
//! machine, and creating it sits on the path of every env's start. A suite of many small tests
//! pays that per test for nothing: once an env's containers are gone its network is empty, and
//! the next env of the process takes it. An env's network is therefore named
//! `e2e-<pid>-<n>` rather than after the env, and labelled `dev.e2e.env=_pool` (with the run's
//! owner label, as everything else).
//!
//! Cleanup keeps its guarantees: the process removes its idle networks when it exits (after the
//! background removals), a killed process's are removed by its watchdog or signal handler (by
//! owner label, like everything else), and a process that finds idle pool networks of a dead
//! run removes them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::engine::{Engine, EngineErrorKind, Labels, ResourceKind, Selector};
use crate::error::{Error, Result};
use crate::owner::{self, Owner, ENV_LABEL, MANAGED_LABEL, OWNER_LABEL};

/// The env label of pooled networks. Not a valid env name, so no env can claim it.
pub(crate) const POOL_ENV: &str = "_pool";

/// How long a removal retries the engine's "active endpoints" answer for a network that no
/// container is attached to any more (Docker 20.10 reports the endpoints of containers it has
/// just removed as active for a while).
pub(crate) const PHANTOM_GRACE: Duration = Duration::from_secs(5);

/// A network: id and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Network {
    pub id: String,
    pub name: String,
}

/// Idle networks of this process, by the address of their engine.
static IDLE: Mutex<Option<HashMap<String, Vec<Network>>>> = Mutex::new(None);

fn idle<T>(engine: &str, f: impl FnOnce(&mut Vec<Network>) -> T) -> T {
    let mut idle = IDLE.lock().unwrap();
    f(idle.get_or_insert_with(HashMap::new).entry(engine.to_string()).or_default())
}

/// The selector of run `owner`'s pooled networks.
pub(crate) fn pool_of(owner: &Owner) -> Selector {
    Selector::managed().env(POOL_ENV).owner(owner)
}

/// A network for a new env: an idle one of this process, else a new one.
pub(crate) async fn take(engine: &dyn Engine) -> Result<Network> {
    if let Some(n) = idle(engine.address(), |idle| idle.pop()) {
        return Ok(n);
    }
    // Once per engine and process: what dead runs left in the pool.
    static SWEPT: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let first = SWEPT.lock().unwrap().get_or_insert_with(HashSet::new).insert(engine.address().to_string());
    if first {
        sweep_dead(engine).await;
    }

    static NEXT: AtomicU32 = AtomicU32::new(1);
    let labels = Labels::from([
        (MANAGED_LABEL.to_string(), "true".to_string()),
        (ENV_LABEL.to_string(), POOL_ENV.to_string()),
        (OWNER_LABEL.to_string(), owner::current().to_string()),
    ]);
    loop {
        let (pid, tag) = (std::process::id(), owner::current().tag());
        let name = format!("e2e-{pid}-{tag}-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        // A foreign network of that name (a pid reused since): the engine resolves networks
        // by name too, so take another.
        let taken =
            engine.network_exists(&name).await.map_err(|e| Error::engine(format!("looking up network {name:?}"), e))?;
        if taken {
            continue;
        }
        let id = engine
            .create_network(&name, &labels)
            .await
            .map_err(|e| Error::engine(format!("creating network {name:?}"), e))?;
        return Ok(Network { id, name });
    }
}

/// Whether this process holds idle networks, on any engine.
pub(crate) fn has_idle() -> bool {
    IDLE.lock().unwrap().as_ref().is_some_and(|m| m.values().any(|v| !v.is_empty()))
}

/// Gives back the network of a closed env, whose containers are all removed.
pub(crate) fn put_back(engine: &dyn Engine, network: Network) {
    idle(engine.address(), |idle| idle.push(network));
}

/// The idle networks of this process on an engine.
#[cfg(test)]
pub(crate) fn idle_on(engine: &dyn Engine) -> Vec<Network> {
    idle(engine.address(), |idle| idle.clone())
}

/// Removes a network. The engine's "active endpoints" answer for a network no container is
/// attached to is retried for `grace`; after that it is reported as the phantom it is.
pub(crate) async fn remove_network(engine: &dyn Engine, id: &str, grace: Duration) -> Result<()> {
    let deadline = Instant::now() + grace;
    loop {
        let Err(e) = engine.remove_network(id).await else { return Ok(()) };
        let what = || format!("removing network {}", crate::engine::short_id(id));
        if e.kind() != EngineErrorKind::InUse {
            return Err(Error::engine(what(), e));
        }
        let attached = engine.inspect_network(id).await.map(|n| n.containers).unwrap_or(0);
        if Instant::now() >= deadline {
            let context = if attached == 0 {
                format!("{}: {PHANTOM}", what())
            } else {
                format!("{}: {attached} container(s) still attached", what())
            };
            return Err(Error::engine(context, e));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How a network the engine refuses to remove though no container is attached is reported.
const PHANTOM: &str = "the engine reports active endpoints but no container is attached (a phantom endpoint of the engine; it clears when the engine restarts)";

/// Whether an error is a network that no container is attached to and that the engine still
/// refuses to remove: its phantom endpoint, which no call of ours can clear.
pub(crate) fn is_phantom(e: &Error) -> bool {
    matches!(e, Error::Engine { context, .. } if context.ends_with(PHANTOM)) && is_in_use(e)
}

/// Whether an error is the engine refusing to remove a network that it says is in use.
pub(crate) fn is_in_use(e: &Error) -> bool {
    e.engine_kind() == Some(EngineErrorKind::InUse)
}

/// Removes the idle networks of this process (they would otherwise stay until the watchdog).
pub(crate) async fn remove_idle(engine: &dyn Engine) -> Result<()> {
    let idle: Vec<Network> = idle(engine.address(), std::mem::take);
    let removals = idle.iter().map(|n| remove_network(engine, &n.id, PHANTOM_GRACE));
    Error::all(crate::task::join_all(removals).await.into_iter().filter_map(|r| r.err()).collect())
}

/// Removes the pooled networks of run `owner` that no container uses, one attempt each (the
/// callers pass again, or leave it to a later run).
pub(crate) async fn remove_unused(engine: &dyn Engine, owner: &Owner) -> Result<()> {
    let found = engine
        .list(ResourceKind::Network, &pool_of(owner))
        .await
        .map_err(|e| Error::engine(format!("listing the pooled networks of run {owner}"), e))?;
    let mut errors = Vec::new();
    for n in found {
        let in_use = engine.inspect_network(&n.id).await.map(|s| s.containers > 0).unwrap_or(true);
        if !in_use {
            if let Err(e) = remove_network(engine, &n.id, Duration::ZERO).await {
                errors.push(e);
            }
        }
    }
    Error::all(errors)
}

/// Removes the pool networks of dead runs that no container uses any more. One still in use
/// belongs to a kept env (or is being swept by its env's next run): it is left for later.
pub(crate) async fn sweep_dead(engine: &dyn Engine) {
    let selector = Selector::managed().env(POOL_ENV);
    let Ok(found) = engine.list(ResourceKind::Network, &selector).await else { return };
    let owners: HashSet<Owner> = found.iter().filter_map(|n| Owner::parse(n.labels.get(OWNER_LABEL)?)).collect();
    for o in owners {
        if &o != owner::current() && o.is_dead() {
            match remove_unused(engine, &o).await {
                // The engine's phantom endpoint: nothing to do but leave it to a later run.
                Err(e) if is_in_use(&e) => {}
                Err(e) => crate::say::say!(warn, "could not remove the networks dead run {o} left: {e}"),
                Ok(()) => {}
            }
        }
    }
}
