//! Removing a run's resources: one env of one run, every env of a run, and what dead runs left
//! under an env name. Removal is by label, so it finds what a crashed creator never recorded.

use std::collections::HashSet;
use std::time::Duration;

use tokio::sync::watch;

use crate::cleanup::netpool::{self, Network, POOL_ENV};
use crate::engine::{Engine, ResourceKind, Selector};
use crate::error::{Error, Result};
use crate::owner::{self, Owner, ENV_LABEL, OWNER_LABEL};

/// Every failure of a removal, not only the first: one error naming them all.
#[derive(Debug, Default)]
pub(crate) struct Failures(Vec<Error>);

impl Failures {
    pub fn add(&mut self, result: Result<()>) {
        if let Err(e) = result {
            self.0.push(e);
        }
    }

    pub fn into_result(self) -> Result<()> {
        Error::all(self.0)
    }
}

/// Removes the containers, volumes and networks of run `owner` in env `env`, plus the network
/// `extra` when given (the env's pooled network, which carries no env label).
pub(crate) async fn remove_run(engine: &dyn Engine, env: &str, owner: &Owner, extra: Option<&str>) -> Result<()> {
    remove_run_on(engine, env, owner, extra, extra).await
}

/// [`remove_run`], the containers first detached from their network one at a time (see
/// [`detach`]): from `network` (the env's) when given, else from the networks they are on.
async fn remove_run_on(
    engine: &dyn Engine,
    env: &str,
    owner: &Owner,
    network: Option<&str>,
    extra: Option<&str>,
) -> Result<()> {
    let selector = Selector::managed().env(env).owner(owner);
    let containers =
        engine.list(ResourceKind::Container, &selector).await.map_err(|e| listing(ResourceKind::Container, e))?;
    let ids: Vec<&str> = containers.iter().map(|c| c.id.as_str()).collect();
    // How many containers are detached so far: a container's removal starts once it is, beside
    // the next one's detach (it has no endpoint left on the network to delete).
    let (progress, detached) = watch::channel(0usize);
    let detaching = async move {
        match network {
            Some(network) => detach(engine, network, &ids, Some(&progress)).await,
            None => {
                detach_from_theirs(engine, &ids).await;
                progress.send_replace(usize::MAX);
            }
        }
    };
    let removals = containers.iter().enumerate().map(|(i, c)| {
        let mut detached = detached.clone();
        async move {
            // A detach that ended early (its sender gone) lets every removal go.
            let _ = detached.wait_for(|n| *n > i).await;
            engine
                .remove_container(&c.id)
                .await
                .map_err(|e| Error::engine(format!("removing container {}", crate::engine::short_id(&c.id)), e))
        }
    });
    let ((), removed) = tokio::join!(detaching, crate::task::join_all(removals));
    let mut failures = Failures::default();
    for r in removed {
        failures.add(r);
    }
    let (volumes, networks) =
        tokio::join!(engine.list(ResourceKind::Volume, &selector), engine.list(ResourceKind::Network, &selector));
    for v in volumes.map_err(|e| listing(ResourceKind::Volume, e))? {
        failures.add(
            engine.remove_volume(&v.id).await.map_err(|e| Error::engine(format!("removing volume {:?}", v.id), e)),
        );
    }
    let mut networks: Vec<String> =
        networks.map_err(|e| listing(ResourceKind::Network, e))?.into_iter().map(|n| n.id).collect();
    if let Some(extra) = extra {
        if !networks.iter().any(|n| n == extra) {
            networks.push(extra.to_string());
        }
    }
    for n in networks {
        failures.add(netpool::remove_network(engine, &n, netpool::PHANTOM_GRACE).await);
    }
    failures.into_result()
}

/// Removes this run's env `env` and gives its network back to the process's pool (or removes
/// the network, if a container could not be removed: a later env must not meet it).
pub(crate) async fn remove_env(engine: &dyn Engine, env: &str, network: Network) -> Result<()> {
    match remove_run_on(engine, env, owner::current(), Some(&network.id), None).await {
        Ok(()) => {
            netpool::put_back(engine, network);
            Ok(())
        }
        Err(e) => {
            let _ = netpool::remove_network(engine, &network.id, netpool::PHANTOM_GRACE).await;
            Err(e)
        }
    }
}

/// Removes what dead runs left under env name `env` (any owner but this run), and every dead
/// run's directory. A live run's resources are never touched: one of another host sharing the
/// engine (or of a process of this host that kept its env) stays, and this run works beside
/// it under names of its own (they carry the run's tag).
pub(crate) async fn sweep_dead(engine: &dyn Engine, env: &str) -> Result<()> {
    let selector = &Selector::managed().env(env);
    let kinds = [ResourceKind::Container, ResourceKind::Volume, ResourceKind::Network];
    let lists = kinds.map(|kind| async move { engine.list(kind, selector).await.map_err(|e| listing(kind, e)) });
    let mut dead = HashSet::new();
    for found in crate::task::try_join_all(lists).await?.into_iter().flatten() {
        let label = found.labels.get(OWNER_LABEL).cloned().unwrap_or_default();
        // A label that does not parse (another version's) cannot be proved dead: left alone.
        if let Some(o) = Owner::parse(&label).filter(|o| o != owner::current() && o.is_dead()) {
            dead.insert(o);
        }
    }
    for o in dead {
        crate::say::say!(info, { env = env, owner = o }, "removing resources of env {env:?} left by dead run {o}");
        // What cannot be removed (an engine that keeps a phantom endpoint on a network) must not
        // make the env name unusable: this run works beside it, under other names.
        if let Err(e) = remove_run(engine, env, &o, None).await {
            crate::say::say!(warn, "could not remove everything dead run {o} left in env {env:?}: {e}");
        }
    }
    crate::paths::remove_dead_run_dirs();
    Ok(())
}

/// Removes every container, volume and network of run `owner` but those of the envs in `kept`,
/// and its directories. Creations still in flight (the run's other threads, or requests the
/// engine had not finished when the run died) land after a listing: it passes again after a
/// pause until a pass finds nothing. Returns how many envs it removed.
pub(crate) async fn remove_owned(engine: &dyn Engine, owner: &Owner, kept: &HashSet<String>) -> Result<usize> {
    const PASSES: usize = 10;
    let selector = Selector::managed().owner(owner);
    let mut removed = HashSet::new();
    let mut pool_left = false;
    let mut last = Ok(());
    for pass in 0..PASSES {
        let mut envs = HashSet::new();
        for kind in [ResourceKind::Container, ResourceKind::Volume, ResourceKind::Network] {
            for found in engine.list(kind, &selector).await.map_err(|e| listing(kind, e))? {
                if let Some(env) = found.labels.get(ENV_LABEL) {
                    if !kept.contains(env) && env != POOL_ENV {
                        envs.insert(env.clone());
                    }
                }
            }
        }
        if envs.is_empty() && !pool_left && pass > 0 {
            last = Ok(());
            break;
        }
        let mut failures = Failures::default();
        for env in envs {
            failures.add(remove_run(engine, &env, owner, None).await);
            removed.insert(env);
        }
        // Then the run's pooled networks that no container uses any more: one still in use
        // serves a kept env.
        let pool = netpool::remove_unused(engine, owner).await;
        pool_left = pool.is_err();
        failures.add(pool);
        last = failures.into_result();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    crate::paths::remove_run_dirs(owner, kept);
    last.map(|()| removed.len())
}

/// Disconnects `containers` from `network` one after another, each before its removal.
///
/// Docker 20.10 counts a network's endpoints in a counter kept apart from the endpoints, and
/// refuses to remove the network while it is above zero. Endpoint deletions on one network at
/// the same time (what removing an env's containers in parallel makes: each removal deletes its
/// endpoint) sometimes lose decrements on a loaded host, and the network can then never be
/// removed ("has active endpoints", none attached, until the engine restarts). One disconnect
/// at a time deletes the endpoints in turn; the removals, in parallel, start as soon as their
/// container is detached and have no endpoint left to delete. A container
/// that is gone or already detached needs nothing, and a disconnect that fails leaves that
/// container's endpoint to its removal, as before. `progress` counts the containers done.
async fn detach(engine: &dyn Engine, network: &str, containers: &[&str], progress: Option<&watch::Sender<usize>>) {
    for (i, c) in containers.iter().enumerate() {
        let _ = engine.disconnect_network(network, c).await;
        if let Some(p) = progress {
            p.send_replace(i + 1);
        }
    }
}

/// [`detach`] of running containers whose network is not known (a dead run's): from each
/// network they are on, networks in parallel.
async fn detach_from_theirs(engine: &dyn Engine, containers: &[&str]) {
    let states = crate::task::join_all(containers.iter().map(|c| engine.inspect_container(c))).await;
    let mut on: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
    for (c, state) in containers.iter().zip(states) {
        for network in state.into_iter().filter(|s| s.running).flat_map(|s| s.addresses.into_keys()) {
            on.entry(network).or_default().push(c);
        }
    }
    crate::task::join_all(on.iter().map(|(network, cs)| detach(engine, network, cs, None))).await;
}

fn listing(kind: ResourceKind, e: crate::engine::EngineError) -> Error {
    Error::engine(format!("listing the framework's {kind}s"), e)
}
