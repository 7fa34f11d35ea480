//! Partial network partitions between runnables of an env (issue 14).
//!
//! A partition cuts the traffic between two groups of runnables while each keeps the rest of
//! the env network. It is made of nftables rules in the network namespace of each runnable of
//! the first group: drop what goes to the second group's addresses and, unless one-way, what
//! comes from them. Dropped, not refused: a connection across the cut hangs, as across a real
//! partition. The rules sit on the interface itself (the netdev egress and ingress hooks),
//! so a sender sees no error either: its packets just never arrive. The rules are put in place by a short-lived helper container that joins the
//! runnable's network namespace with `NET_ADMIN` and runs `nft`; the helper's image is built
//! from the host's own `nft` binary (and the libraries it links), so the user's images need
//! neither `nft` nor the capability. Each partition is a table of its own, so several can hold
//! at once and [`Partition::heal`] removes exactly its own. Rules live in the containers'
//! namespaces: they go with the containers when the env closes, whatever happened to the
//! handle.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::engine::{ContainerSpec, Engine};
use crate::error::{Error, Result};
use crate::runnable::Runnable;

/// The container's interface on the env network (its only one).
pub(crate) const DEVICE: &str = "eth0";

/// The helper image's tag.
const NFT_IMAGE: &str = "e2e-nft:helper";

/// Partitions made by this process: each one's table is `e2e_p<n>`.
static NEXT: AtomicU64 = AtomicU64::new(1);

/// Cuts the traffic between the runnables of `a` and those of `b`, both ways; each keeps the
/// rest of the env network (runnables or workloads). Every runnable must be started, and all in one env. Undone by
/// [`Partition::heal`], and by the env's close in any case.
///
/// ```no_run
/// # async fn f(a: &e2e_runtime::Runnable, b: &e2e_runtime::Runnable, c: &e2e_runtime::Runnable) -> e2e_runtime::Result<()> {
/// let cut = e2e_runtime::partition([a], [b, c]).await?; // a is alone; b and c still talk
/// // ...
/// cut.heal().await?;
/// # Ok(()) }
/// ```
pub async fn partition<'a, 'b, A: AsRef<Runnable> + 'a, B: AsRef<Runnable> + 'b>(
    a: impl IntoIterator<Item = &'a A>,
    b: impl IntoIterator<Item = &'b B>,
) -> Result<Partition> {
    Partition::make(a.into_iter().map(AsRef::as_ref).collect(), b.into_iter().map(AsRef::as_ref).collect(), false).await
}

/// Cuts what the runnables of `from` send to those of `to`, one way: packets from `to` still
/// arrive. (A TCP connection needs both ways: none opens across a one-way cut, in either
/// direction; datagrams from `to` still arrive.)
pub async fn partition_one_way<'a, 'b, A: AsRef<Runnable> + 'a, B: AsRef<Runnable> + 'b>(
    from: impl IntoIterator<Item = &'a A>,
    to: impl IntoIterator<Item = &'b B>,
) -> Result<Partition> {
    Partition::make(from.into_iter().map(AsRef::as_ref).collect(), to.into_iter().map(AsRef::as_ref).collect(), true)
        .await
}

/// A partition in place: [`Partition::heal`] undoes it. Dropping the handle leaves it in place
/// until the env closes.
#[derive(Debug)]
#[must_use = "a partition holds until heal() or the env's close"]
pub struct Partition {
    what: String,
    table: String,
    /// The runnables carrying the rules.
    sides: Vec<Runnable>,
    healed: bool,
}

impl Partition {
    async fn make(a: Vec<&Runnable>, b: Vec<&Runnable>, one_way: bool) -> Result<Partition> {
        let names = |g: &[&Runnable]| g.iter().map(|r| r.name().to_string()).collect::<Vec<_>>().join(", ");
        let what = format!("partition [{}] {} [{}]", names(&a), if one_way { "one way to" } else { "from" }, names(&b));
        let fault = |runnable: &str, reason: String| Error::NetworkFault {
            operation: what.clone(),
            runnable: runnable.to_string(),
            reason,
        };
        let Some(first) = a.first().or(b.first()) else {
            return Err(fault("(none)", "both groups are empty".into()));
        };
        if a.is_empty() || b.is_empty() {
            return Err(fault(first.name(), "one group is empty: a partition cuts a group from another".into()));
        }
        let env = first.env_of().clone();
        let mut seen = HashSet::new();
        for r in a.iter().chain(&b) {
            if r.env_of().name() != env.name() || r.env_of().network_id() != env.network_id() {
                return Err(fault(r.name(), format!("it is not in env {:?} as {:?} is", env.name(), first.name())));
            }
            if !seen.insert(r.name().to_string()) {
                return Err(fault(r.name(), "it is in both groups (or twice in one)".into()));
            }
        }
        let mut targets = Vec::new();
        for r in &a {
            targets.push((*r, r.on_network("be partitioned")?));
        }
        let mut peers = Vec::new();
        for r in &b {
            peers.push(r.on_network("be partitioned")?.1);
        }
        let table = format!("e2e_p{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let set = peers.join(", ");
        let mut script = format!(
            "add table netdev {table} ; \
             add chain netdev {table} out {{ type filter hook egress device {DEVICE} priority -10 ; }} ; \
             add rule netdev {table} out ip daddr {{ {set} }} drop"
        );
        if !one_way {
            script.push_str(&format!(
                " ; add chain netdev {table} in {{ type filter hook ingress device {DEVICE} priority -10 ; }} ; \
                 add rule netdev {table} in ip saddr {{ {set} }} drop"
            ));
        }
        let engine = env.inner.engine.clone();
        ensure_image(&*engine).await.map_err(|reason| fault(first.name(), reason))?;
        let runs = targets.iter().map(|(r, (id, _))| {
            let (engine, env, script) = (engine.clone(), env.clone(), script.clone());
            async move { nft(&*engine, &env, id, &script).await.map_err(|reason| (r.name().to_string(), reason)) }
        });
        let results = crate::task::join_all(runs).await;
        let failed: Vec<Error> =
            results.into_iter().filter_map(|r| r.err()).map(|(n, reason)| fault(&n, reason)).collect();
        let partition = Partition {
            what: what.clone(),
            table,
            sides: targets.iter().map(|(r, _)| (*r).clone()).collect(),
            healed: false,
        };
        if !failed.is_empty() {
            // What was put in place on the others is taken back: all or nothing.
            let _ = partition.undo().await;
            return Err(Error::all(failed).unwrap_err());
        }
        Ok(partition)
    }

    /// What it cuts: `partition [a] from [b, c]`.
    pub fn describe(&self) -> &str {
        &self.what
    }

    /// Undoes the partition: traffic flows again between the two groups (a runnable stopped
    /// or removed since needs nothing undone).
    pub async fn heal(mut self) -> Result<()> {
        self.healed = true;
        self.undo().await
    }

    async fn undo(&self) -> Result<()> {
        let script = format!("delete table netdev {}", self.table);
        let runs = self.sides.iter().map(|r| {
            let script = script.clone();
            async move {
                // A container no longer running has no rules left to remove.
                let Ok((id, _)) = r.on_network("be healed") else { return Ok(()) };
                if !r.is_running().await.unwrap_or(false) {
                    return Ok(());
                }
                let env = r.env_of();
                nft(&*env.inner.engine, env, &id, &script).await.map_err(|reason| Error::NetworkFault {
                    operation: format!("heal of {}", self.what),
                    runnable: r.name().to_string(),
                    reason,
                })
            }
        });
        Error::all(crate::task::join_all(runs).await.into_iter().filter_map(|r| r.err()).collect())
    }
}

/// Builds the helper image from the host's `nft` (once per content: skipped when unchanged).
pub(crate) async fn ensure_image(engine: &dyn Engine) -> std::result::Result<(), String> {
    static BUILT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    BUILT
        .get_or_try_init(|| async {
            let nft = nft_binary()?;
            crate::image::BinaryImage::new(NFT_IMAGE, &nft)
                .quiet(true)
                .build_on(engine)
                .await
                .map(|_| ())
                .map_err(|e| format!("building the helper image {NFT_IMAGE} from {}: {e}", nft.display()))
        })
        .await
        .map(|_| ())
}

/// The host's `nft`: `E2E_NFT`, else the first on `PATH`, `/usr/sbin` or `/sbin`.
fn nft_binary() -> std::result::Result<std::path::PathBuf, String> {
    if let Some(path) = &crate::settings::get().nft {
        return if path.is_file() {
            Ok(path.clone())
        } else {
            Err(format!("E2E_NFT names {}, which is not a file", path.display()))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/sbin".into(), "/sbin".into()]);
    for dir in dirs {
        let candidate = dir.join("nft");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err("network faults need the nftables command `nft` on this host, packaged into a helper image \
         (install the nftables package, or set E2E_NFT to an nft binary for the engine's architecture)"
        .into())
}

/// Runs `nft <script>` in the network namespace of container `id`, in a helper container of
/// the env (labelled as its resources, so a sweep removes one left by a killed process).
pub(crate) async fn nft(
    engine: &dyn Engine,
    env: &crate::env::Env,
    id: &str,
    script: &str,
) -> std::result::Result<(), String> {
    static HELPERS: AtomicU64 = AtomicU64::new(1);
    let name = env.engine_name(&format!("nft{}-{}", std::process::id(), HELPERS.fetch_add(1, Ordering::Relaxed)));
    let spec = ContainerSpec {
        name: name.clone(),
        image: NFT_IMAGE.to_string(),
        command: Some(vec![script.to_string()]),
        labels: env.labels(),
        network_of: Some(id.to_string()),
        cap_add: vec!["NET_ADMIN".to_string()],
        ..Default::default()
    };
    let helper = engine.create_container(&spec).await.map_err(|e| format!("creating the helper {name}: {e}"))?;
    let outcome = run_to_end(engine, &helper).await;
    let _ = engine.remove_container(&helper).await;
    outcome
}

async fn run_to_end(engine: &dyn Engine, helper: &str) -> std::result::Result<(), String> {
    use futures_util::StreamExt;
    engine.start_container(helper).await.map_err(|e| format!("starting the helper: {e}"))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let code = loop {
        let state = engine.inspect_container(helper).await.map_err(|e| format!("inspecting the helper: {e}"))?;
        if !state.running && state.exit_code.is_some() && state.status != "created" {
            break state.exit_code.unwrap_or(-1);
        }
        if tokio::time::Instant::now() > deadline {
            return Err("the helper did not finish within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    if code == 0 {
        return Ok(());
    }
    let mut out = String::new();
    let mut logs = engine.logs(helper);
    while let Some(Ok(chunk)) = logs.next().await {
        out.push_str(&String::from_utf8_lossy(&chunk.bytes));
    }
    Err(format!("nft exited with code {code}: {}", out.trim()))
}
