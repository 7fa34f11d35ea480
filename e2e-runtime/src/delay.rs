//! Added delay and jitter on what a runnable sends (issue 14), where the engine's kernel has
//! no `netem` queueing discipline (this project's CI kernel has none), and where it has one
//! alike: a helper container in the runnable's network namespace holds each packet it sends
//! for the delay, then lets it go.
//!
//! The helper queues the runnable's outgoing IPv4 packets to user space (an iptables rule with
//! the `NFQUEUE` target, in a chain `E2E_DELAY` of the `mangle` table's `OUTPUT`, with
//! `--queue-bypass`: were the helper gone, packets would pass undelayed, never be lost) and
//! accepts each once its time has come: the delay, plus a uniform draw in ±jitter (as netem's
//! default), plus the delay of the link to its destination. Packets may so be reordered, as
//! under netem with jitter. What the runnable sends on its interface is not tracked by its
//! namespace's conntrack while a delay holds (see `hook`): netem delays after conntrack, this
//! before, and a held first packet of a flow would have the next ones dropped. The helper's program is this very test binary, diverted before
//! `main` by an environment variable (as the keeper and the watchdog are), with the host's
//! iptables (`xtables-nft-multi`, the libraries it links and the extensions it loads)
//! beside it in the helper's image: the user's image needs nothing.
//!
//! Only what the runnable sends is delayed (netem is egress too): a round trip between two
//! runnables takes the delay of each that has one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use crate::engine::{ContainerSpec, Engine};

/// Set in the helper container: the delays to apply, as [`Plan::encode`] writes them.
const HELPER_VAR: &str = "E2E_DELAY_HELPER";
/// The line the helper prints once its queue and rules are in place.
const READY: &str = "e2e-delay: ready";
/// The netfilter queue (any number: it is the helper's network namespace's own).
const QUEUE: u16 = 7;
/// The iptables chain, in the `mangle` table.
const CHAIN: &str = "E2E_DELAY";
/// Where the helper image carries iptables and its extensions.
const IPTABLES_IN_IMAGE: &str = "/usr/sbin/xtables-nft-multi";
const EXTENSIONS_IN_IMAGE: &str = "/usr/lib/e2e-xtables";

/// A delay and its jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Delay {
    pub delay: Duration,
    pub jitter: Duration,
}

/// The delays of one runnable: on everything it sends, and on what goes to a peer (on top).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Plan {
    pub own: Option<Delay>,
    /// By peer IPv4 address.
    pub links: Vec<(String, Delay)>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.own.is_none() && self.links.is_empty()
    }

    /// `*=<delay µs>/<jitter µs>` and `<ip>=<delay µs>/<jitter µs>`, comma-separated.
    fn encode(&self) -> String {
        let one = |d: &Delay| format!("{}/{}", d.delay.as_micros(), d.jitter.as_micros());
        self.own
            .iter()
            .map(|d| format!("*={}", one(d)))
            .chain(self.links.iter().map(|(ip, d)| format!("{ip}={}", one(d))))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn decode(text: &str) -> Result<Plan, String> {
        let mut plan = Plan::default();
        for item in text.split(',').filter(|i| !i.is_empty()) {
            let bad = || format!("bad delay {item:?} in {HELPER_VAR}={text:?}");
            let (to, d) = item.split_once('=').ok_or_else(bad)?;
            let (delay, jitter) = d.split_once('/').ok_or_else(bad)?;
            let micros = |s: &str| s.parse::<u64>().map(Duration::from_micros).map_err(|_| bad());
            let d = Delay { delay: micros(delay)?, jitter: micros(jitter)? };
            if to == "*" {
                plan.own = Some(d);
            } else {
                to.parse::<std::net::Ipv4Addr>().map_err(|_| bad())?;
                plan.links.push((to.to_string(), d));
            }
        }
        Ok(plan)
    }

    /// The iptables rules of the chain: everything queued when the runnable has a delay of its
    /// own, else what goes to the delayed peers.
    fn rules(&self) -> Vec<Vec<String>> {
        let queue = |matching: Vec<String>| {
            let mut rule = vec!["-A".to_string(), CHAIN.to_string()];
            rule.extend(matching);
            rule.extend(["-j", "NFQUEUE", "--queue-num", &QUEUE.to_string(), "--queue-bypass"].map(String::from));
            rule
        };
        if self.own.is_some() {
            return vec![queue(Vec::new())];
        }
        self.links.iter().map(|(ip, _)| queue(vec!["-d".into(), ip.clone()])).collect()
    }

    /// How long a packet to `to` is held: the runnable's delay and its link's, each with its
    /// jitter drawn from `draw` (uniform in [0, 1)).
    fn hold(&self, to: Option<std::net::Ipv4Addr>, mut draw: impl FnMut() -> f64) -> Duration {
        let link = to.and_then(|to| self.links.iter().find(|(ip, _)| ip.parse() == Ok(to)).map(|(_, d)| *d));
        let mut total = 0f64;
        for d in self.own.iter().chain(link.iter()) {
            let jitter = d.jitter.as_secs_f64() * (2.0 * draw() - 1.0);
            total += (d.delay.as_secs_f64() + jitter).max(0.0);
        }
        Duration::from_secs_f64(total)
    }
}

/// The helper container delaying each container's packets, by container id.
fn helpers() -> &'static Mutex<HashMap<String, String>> {
    static HELPERS: std::sync::OnceLock<Mutex<HashMap<String, String>>> = std::sync::OnceLock::new();
    HELPERS.get_or_init(Default::default)
}

/// Puts `plan` in place for container `id` of `env`: the helper in place is replaced (its rules
/// removed as it stops), none is left for an empty plan.
pub(crate) async fn apply(env: &crate::env::Env, id: &str, plan: &Plan) -> Result<(), String> {
    let engine = env.inner.engine.clone();
    let old = helpers().lock().unwrap().remove(id);
    if let Some(old) = old {
        // SIGTERM: it removes its rules and lets go of what it holds.
        let _ = engine.stop_container(&old, Duration::from_secs(5)).await;
        let _ = engine.remove_container(&old).await;
    }
    if plan.is_empty() {
        return Ok(());
    }
    let image = ensure_image(&*engine).await?;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = env.engine_name(&format!("delay{}-{n}", std::process::id()));
    let spec = ContainerSpec {
        name: name.clone(),
        image,
        env: vec![(HELPER_VAR.to_string(), plan.encode())],
        labels: env.labels(),
        network_of: Some(id.to_string()),
        cap_add: vec!["NET_ADMIN".to_string()],
        ..Default::default()
    };
    let helper = engine.create_container(&spec).await.map_err(|e| format!("creating the delay helper {name}: {e}"))?;
    helpers().lock().unwrap().insert(id.to_string(), helper.clone());
    let started = async {
        engine.start_container(&helper).await.map_err(|e| format!("starting the delay helper {name}: {e}"))?;
        wait_ready(&*engine, &helper, &name).await
    };
    if let Err(e) = started.await {
        helpers().lock().unwrap().remove(id);
        let _ = engine.remove_container(&helper).await;
        return Err(e);
    }
    Ok(())
}

/// Waits for the helper's ready line (30 s at most); its output is the error if it ends first.
async fn wait_ready(engine: &dyn Engine, helper: &str, name: &str) -> Result<(), String> {
    use futures_util::StreamExt;
    let mut logs = engine.logs(helper);
    let mut out = String::new();
    let read = async {
        while let Some(Ok(chunk)) = logs.next().await {
            out.push_str(&String::from_utf8_lossy(&chunk.bytes));
            if out.contains(READY) {
                return true;
            }
        }
        false
    };
    match tokio::time::timeout(Duration::from_secs(30), read).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!("the delay helper {name} ended: {}", out.trim())),
        Err(_) => Err(format!("the delay helper {name} was not ready within 30 s: {}", out.trim())),
    }
}

/// Builds the helper image for this test binary (once per process; skipped when unchanged),
/// and returns its tag: `e2e-delay:<binary name>`, so a rebuilt binary replaces its own.
async fn ensure_image(engine: &dyn Engine) -> Result<String, String> {
    static BUILT: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    BUILT
        .get_or_try_init(|| async {
            if !cfg!(target_os = "linux") {
                return Err("added delay runs this test binary in a Linux helper container: \
                            it needs a test binary built for Linux"
                    .to_string());
            }
            let exe = std::env::current_exe().map_err(|e| format!("finding this test binary: {e}"))?;
            let stem = exe.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let stem: String = stem
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c.to_ascii_lowercase() } else { '_' })
                .take(100)
                .collect();
            let tag = format!("e2e-delay:{}", stem.trim_start_matches(['-', '_']));
            let mut image = crate::image::BinaryImage::new(&tag, &exe).quiet(true);
            for (host, in_image) in iptables_files()? {
                image = image.file(host, in_image);
            }
            image = image.env("XTABLES_LIBDIR", EXTENSIONS_IN_IMAGE);
            image
                .build_on(engine)
                .await
                .map(|_| tag.clone())
                .map_err(|e| format!("building the delay helper image {tag}: {e}"))
        })
        .await
        .cloned()
}

/// The host's iptables (nft flavour), the libraries it links and the extensions the rules
/// load, with their paths in the image.
fn iptables_files() -> Result<Vec<(PathBuf, String)>, String> {
    let binary = iptables_binary()?;
    let mut files = vec![(binary.clone(), IPTABLES_IN_IMAGE.to_string())];
    let bytes = std::fs::read(&binary).map_err(|e| format!("reading {}: {e}", binary.display()))?;
    let linked = crate::libs::linked(&binary, &bytes)?;
    let loader = linked.interpreter.filter(|i| !linked.libraries.contains(i));
    for lib in linked.libraries.iter().chain(&loader) {
        files.push((lib.clone(), lib.to_string_lossy().into_owned()));
    }
    let dir = extensions_dir()?;
    for ext in ["libxt_NFQUEUE.so", "libxt_CT.so", "libxt_standard.so"] {
        files.push((dir.join(ext), format!("{EXTENSIONS_IN_IMAGE}/{ext}")));
    }
    Ok(files)
}

/// `E2E_IPTABLES`, else `xtables-nft-multi` on `PATH`, `/usr/sbin` or `/sbin`.
fn iptables_binary() -> Result<PathBuf, String> {
    if let Some(path) = &crate::settings::get().iptables {
        return if path.is_file() {
            Ok(path.clone())
        } else {
            Err(format!("E2E_IPTABLES names {}, which is not a file", path.display()))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/sbin".into(), "/sbin".into()]);
    for dir in dirs {
        let candidate = dir.join("xtables-nft-multi");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err("added delay needs iptables (nft flavour: `xtables-nft-multi`) on this host, packaged into a \
         helper image (install the iptables package, or set E2E_IPTABLES to an xtables-nft-multi binary \
         for the engine's architecture)"
        .into())
}

/// Where the host's iptables extensions are: `XTABLES_LIBDIR`, else the usual places.
fn extensions_dir() -> Result<PathBuf, String> {
    let from_env = std::env::var_os("XTABLES_LIBDIR").map(PathBuf::from);
    let arch = format!("/usr/lib/{}-linux-gnu/xtables", std::env::consts::ARCH);
    let candidates = from_env
        .into_iter()
        .chain([arch.as_str(), "/usr/lib/xtables", "/usr/lib64/xtables", "/lib/xtables"].map(PathBuf::from));
    let mut tried = Vec::new();
    for dir in candidates {
        if dir.join("libxt_NFQUEUE.so").is_file() {
            return Ok(dir);
        }
        tried.push(dir.display().to_string());
    }
    Err(format!("added delay needs iptables' NFQUEUE extension (libxt_NFQUEUE.so); not in {}", tried.join(", ")))
}

/// Before `main`: if this process is a delay helper, delay and never return.
#[ctor::ctor(unsafe)]
fn helper_entry() {
    let Some(plan) = std::env::var_os(HELPER_VAR) else { return };
    let code = match Plan::decode(&plan.to_string_lossy()) {
        Ok(plan) => helper::run(&plan),
        Err(e) => {
            eprintln!("e2e-delay: {e}");
            2
        }
    };
    std::process::exit(code);
}

#[cfg(target_os = "linux")]
mod helper {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::{Plan, CHAIN, IPTABLES_IN_IMAGE, QUEUE, READY};

    fn iptables(table: &str, args: &[String]) -> Result<(), String> {
        let out = std::process::Command::new(IPTABLES_IN_IMAGE)
            .arg("iptables")
            .args(["-w", "-t", table])
            .args(args)
            .output()
            .map_err(|e| format!("running {IPTABLES_IN_IMAGE}: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        Err(format!("iptables -t {table} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }

    fn strs(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    /// Takes the chains away (what an earlier helper left too).
    fn unhook() {
        for table in ["mangle", "raw"] {
            while iptables(table, &strs(&["-D", "OUTPUT", "-o", "eth0", "-j", CHAIN])).is_ok() {}
            let _ = iptables(table, &strs(&["-F", CHAIN]));
            let _ = iptables(table, &strs(&["-X", CHAIN]));
        }
    }

    /// The queue rules in `mangle`; and in `raw`, what goes out untracked by conntrack: a packet
    /// held before its flow's entry is confirmed would make the next ones of that flow clash
    /// with it and be dropped (netem holds packets after conntrack, so it has no such loss).
    fn hook(plan: &Plan) -> Result<(), String> {
        unhook();
        iptables("raw", &strs(&["-N", CHAIN]))?;
        iptables("raw", &strs(&["-A", CHAIN, "-j", "CT", "--notrack"]))?;
        iptables("raw", &strs(&["-A", "OUTPUT", "-o", "eth0", "-j", CHAIN]))?;
        iptables("mangle", &strs(&["-N", CHAIN]))?;
        for rule in plan.rules() {
            iptables("mangle", &rule)?;
        }
        iptables("mangle", &strs(&["-A", "OUTPUT", "-o", "eth0", "-j", CHAIN]))
    }

    pub(super) fn run(plan: &Plan) -> i32 {
        let stop = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            let _ = signal_hook::flag::register(signal, stop.clone());
        }
        let queue = (|| {
            let mut q = nfq::Queue::open()?;
            q.bind(QUEUE)?;
            // The IPv4 header is enough: its destination is at bytes 16..20.
            q.set_copy_range(QUEUE, 20)?;
            q.set_queue_max_len(QUEUE, 10_000)?;
            q.set_nonblocking(true);
            Ok::<_, std::io::Error>(q)
        })();
        let mut queue = match queue {
            Ok(q) => q,
            Err(e) => {
                eprintln!("e2e-delay: opening netfilter queue {QUEUE}: {e}");
                return 1;
            }
        };
        if let Err(e) = hook(plan) {
            eprintln!("e2e-delay: {e}");
            unhook();
            return 1;
        }
        println!("{READY}");
        // xorshift64*: the jitter's draws need no more.
        let mut state =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1;
        let mut draw = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut held: BTreeMap<(Instant, u64), nfq::Message> = BTreeMap::new();
        let mut seq = 0u64;
        while !stop.load(Ordering::Relaxed) {
            loop {
                match queue.recv() {
                    Ok(mut msg) => {
                        let payload = msg.get_payload();
                        let to = (payload.len() >= 20 && payload[0] >> 4 == 4)
                            .then(|| std::net::Ipv4Addr::new(payload[16], payload[17], payload[18], payload[19]));
                        msg.set_verdict(nfq::Verdict::Accept);
                        seq += 1;
                        held.insert((Instant::now() + plan.hold(to, &mut draw), seq), msg);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => break,
                    Err(e) => {
                        eprintln!("e2e-delay: reading the queue: {e}");
                        break;
                    }
                }
            }
            let now = Instant::now();
            while let Some(entry) = held.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                let _ = queue.verdict(entry.remove());
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        // Rules first, so nothing more is queued; then what is held goes.
        unhook();
        for (_, msg) in std::mem::take(&mut held) {
            let _ = queue.verdict(msg);
        }
        0
    }
}

#[cfg(not(target_os = "linux"))]
mod helper {
    pub(super) fn run(_: &super::Plan) -> i32 {
        eprintln!("e2e-delay: the delay helper runs on Linux only");
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_goes_through_its_variable_and_back() {
        let plan = Plan {
            own: Some(Delay { delay: Duration::from_millis(100), jitter: Duration::from_millis(20) }),
            links: vec![("10.0.0.3".into(), Delay { delay: Duration::from_millis(5), jitter: Duration::ZERO })],
        };
        assert_eq!(plan.encode(), "*=100000/20000,10.0.0.3=5000/0");
        assert_eq!(Plan::decode(&plan.encode()).unwrap(), plan);
        assert!(Plan::decode("*=1").unwrap_err().contains("*=1"));
        assert!(Plan::decode("host=1/0").unwrap_err().contains("host=1/0"));
        assert_eq!(Plan::decode("").unwrap(), Plan::default());
    }

    #[test]
    fn holds_add_the_link_to_the_runnable_and_jitter_spreads_them() {
        let plan = Plan::decode("*=100000/20000,10.0.0.3=5000/0").unwrap();
        let peer = Some("10.0.0.3".parse().unwrap());
        assert_eq!(plan.hold(peer, || 0.5), Duration::from_millis(105));
        assert_eq!(plan.hold(None, || 0.0), Duration::from_millis(80));
        assert_eq!(plan.hold(Some("10.0.0.4".parse().unwrap()), || 0.999_999_5).as_millis(), 119);
        // Links only: only what goes to them is queued.
        let links = Plan::decode("10.0.0.3=5000/0").unwrap();
        assert_eq!(links.rules(), vec![strs("-A E2E_DELAY -d 10.0.0.3 -j NFQUEUE --queue-num 7 --queue-bypass")]);
        assert_eq!(plan.rules(), vec![strs("-A E2E_DELAY -j NFQUEUE --queue-num 7 --queue-bypass")]);
        assert_eq!(links.hold(None, || 0.5), Duration::ZERO);
    }

    fn strs(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }
}
