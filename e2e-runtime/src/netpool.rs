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

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use crate::docker::{Client, Kind};
use crate::error::Result;
use crate::owner::{self, ENV_LABEL, MANAGED_LABEL, OWNER_LABEL};

/// The env label of pooled networks. Not a valid env name, so no env can claim it.
pub(crate) const POOL_ENV: &str = "_pool";

/// A network: id and name.
#[derive(Debug, Clone)]
pub(crate) struct Network {
    pub id: String,
    pub name: String,
}

/// Idle networks of this process.
static IDLE: Mutex<Vec<Network>> = Mutex::new(Vec::new());

/// A network for a new env: an idle one of this process, else a new one.
pub(crate) async fn take(client: &Client) -> Result<Network> {
    if let Some(n) = IDLE.lock().unwrap().pop() {
        return Ok(n);
    }
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT.get_or_init(|| sweep_dead(client)).await;

    static NEXT: AtomicU32 = AtomicU32::new(1);
    let labels = HashMap::from([
        (MANAGED_LABEL.to_string(), "true".to_string()),
        (ENV_LABEL.to_string(), POOL_ENV.to_string()),
        (OWNER_LABEL.to_string(), owner::current().to_string()),
    ]);
    loop {
        let name = format!("e2e-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        // A foreign network of that name (a pid reused since): the engine resolves networks
        // by name too, so take another.
        if client.network_name_taken(&name).await? {
            continue;
        }
        let id = client.create_network(&name, labels.clone()).await?;
        return Ok(Network { id, name });
    }
}

/// Gives back the network of a closed env, whose containers are all removed.
pub(crate) fn put_back(network: Network) {
    IDLE.lock().unwrap().push(network);
}

/// Removes the idle networks of this process (they would otherwise stay until the watchdog).
pub(crate) async fn remove_idle(client: &Client) -> Result<()> {
    let idle: Vec<Network> = std::mem::take(&mut *IDLE.lock().unwrap());
    let removals = idle.iter().map(|n| client.remove_network(&n.id));
    futures_util::future::join_all(removals).await.into_iter().collect()
}

/// Removes the pooled networks of run `owner` that no container uses, one attempt each (the
/// callers pass again, or leave it to a later run).
pub(crate) async fn remove_unused(client: &Client, owner: &str) -> Result<()> {
    let labels = [format!("{ENV_LABEL}={POOL_ENV}"), format!("{OWNER_LABEL}={owner}")];
    let mut result = Ok(());
    for n in client.list(Kind::Network, &labels).await? {
        if !client.network_in_use(&n.id).await.unwrap_or(true) {
            result = result.and(client.remove_network_once(&n.id).await);
        }
    }
    result
}

/// At exit (after the background removals, which give networks back): removes the idle ones.
pub(crate) fn remove_idle_at_exit() {
    if IDLE.lock().unwrap().is_empty() {
        return;
    }
    let done = std::thread::spawn(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        rt.block_on(async {
            let client = Client::connect().await?;
            remove_idle(&client).await
        })
        .map_err(|e| e.to_string())
    })
    .join();
    if let Ok(Err(e)) = done {
        eprintln!("e2e: removing this run's idle networks at exit failed ({e}); the watchdog removes them");
    }
}

/// Removes the pool networks of dead runs that no container uses any more. One still in use
/// belongs to a kept env (or is being swept by its env's next run): it is left for later.
async fn sweep_dead(client: &Client) {
    let labels = [format!("{ENV_LABEL}={POOL_ENV}")];
    let Ok(found) = client.list(Kind::Network, &labels).await else { return };
    let owners: std::collections::HashSet<String> =
        found.into_iter().filter_map(|n| n.labels.get(OWNER_LABEL).cloned()).collect();
    for owner in owners {
        if owner != owner::current() && owner::is_dead(&owner) {
            match remove_unused(client, &owner).await {
                // The engine's phantom endpoint: nothing to do but leave it to a later run.
                Err(e) if crate::docker::is_active_endpoints(&e) => {}
                Err(e) => eprintln!("e2e: could not remove the networks dead run {owner} left: {e}"),
                Ok(()) => {}
            }
        }
    }
}
