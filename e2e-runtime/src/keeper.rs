//! Shared envs across the processes of one run (cargo-nextest runs each test in a process of
//! its own; `NEXTEST_RUN_ID`, or `E2E_RUN_ID`, names the run).
//!
//! One process per run, binary and env, the keeper, owns the env: it is this same test binary,
//! diverted before `main`, in a session of its own (so the signals nextest sends to a test's
//! process group do not reach it). It declares every shared workload the binary's tests name
//! for that env, starts them, writes a descriptor (containers, host ports), and keeps them
//! while any test process holds a lease: a shared `flock` on the lease file, which the kernel
//! releases however a holder ends, SIGKILL included. Once it can take the lock exclusively, and
//! still can after a grace period, it closes the env and exits. If the keeper itself dies, its
//! own watchdog removes the env, and the next test process starts a new keeper.
//!
//! A test process takes its lease first, then (under a setup lock) reads the descriptor,
//! starting a keeper if there is none or the last one is dead, and attaches to the env: its
//! runnables are handles on the keeper's containers.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::env::Env;
use crate::error::Error;
use crate::owner::Owner;

use crate::cleanup::watchdog::{KEEPER_ENV_VAR, KEEPER_FILES_VAR};

/// How long the keeper waits, once no test process holds a lease, before removing the env.
const GRACE: Duration = Duration::from_secs(2);

/// The workloads a shared test declares, listed by `#[e2e::test(..., shared)]`: the keeper
/// declares them all.
#[derive(Debug, Clone, Copy)]
pub struct SharedDeclaration {
    /// The env.
    pub env: &'static str,
    /// `module_path!()` of the test.
    pub test: &'static str,
    /// Declares the test's workloads in the env, returning their runnables.
    pub declare: fn(&Env) -> Vec<crate::runnable::Runnable>,
}

/// Every shared test's declaration in the binary.
#[linkme::distributed_slice]
pub static SHARED_DECLARATIONS: [SharedDeclaration];

/// The run this process is part of, when it says so: `E2E_RUN_ID`, else nextest's
/// `NEXTEST_RUN_ID`.
pub(crate) fn run_id() -> Option<String> {
    // Warm envs (`E2E_REUSE`) outlive runs: one keeper for all of them.
    if crate::settings::get().reuse.is_some() {
        return Some("warm".to_string());
    }
    let id = std::env::var("E2E_RUN_ID").ok().filter(|v| !v.is_empty());
    let id = id.or_else(|| std::env::var("NEXTEST_RUN_ID").ok().filter(|v| !v.is_empty()))?;
    Some(id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect())
}

/// The common path of the files of env `env` shared in run `run` by this binary.
fn files(run: &str, env: &str) -> crate::Result<PathBuf> {
    let dir = crate::paths::runs_dir()?.join("shared");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let exe = std::env::current_exe().ok();
    let bin = exe.as_ref().and_then(|p| p.file_name()).map_or("bin".into(), |n| n.to_string_lossy().into_owned());
    Ok(dir.join(format!("{run}-{bin}-{env}")))
}

fn with_ext(base: &Path, ext: &str) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(ext);
    PathBuf::from(s)
}

fn open(path: &Path) -> Result<std::fs::File, String> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| format!("opening {}: {e}", path.display()))
}

/// The leases this process holds, until it exits.
static LEASES: Mutex<Vec<std::fs::File>> = Mutex::new(Vec::new());

use crate::env::Adopted;

/// The keeper's env `env` of run `run`, attached to (its keeper started if need be), with this
/// process's lease on it.
pub(crate) async fn attach(env: &'static str, run: &str) -> Result<Env, String> {
    let base = files(run, env).map_err(|e| e.to_string())?;
    let (lease_path, setup_path, descriptor) =
        (with_ext(&base, ".lease"), with_ext(&base, ".setup"), with_ext(&base, ".json"));
    let b = base.clone();
    let mine = definition(env).await?;
    let last = with_ext(&base, ".last");
    let found = crate::task::blocking(move || -> Result<serde_json::Value, String> {
        // The lease first: from now on the keeper keeps the env.
        let lease = open(&lease_path)?;
        lease.lock_shared().map_err(|e| format!("taking a lease on {}: {e}", lease_path.display()))?;
        LEASES.lock().unwrap().push(lease);
        // The keeper's idle time counts from the last use.
        let _ = std::fs::write(&last, b"");
        let setup = open(&setup_path)?;
        setup.lock().map_err(|e| format!("locking {}: {e}", setup_path.display()))?;
        if let Some(d) = read_live(&descriptor) {
            if d["definition"].as_str() == Some(mine.as_str()) {
                return Ok(d);
            }
            // Declared otherwise now (a warm env of an earlier build): its keeper goes, with it.
            stop_keeper(&d);
        }
        let _ = std::fs::remove_file(&descriptor);
        let mut keeper =
            spawn_keeper(env, &b).map_err(|e| format!("starting the keeper of shared env {env:?}: {e}"))?;
        let started = Instant::now();
        loop {
            if let Some(d) = read_live(&descriptor) {
                return Ok(d);
            }
            if let Ok(Some(status)) = keeper.try_wait() {
                return Err(format!("the keeper of shared env {env:?} ended ({status}) before its env was up"));
            }
            if started.elapsed() > Duration::from_secs(600) {
                return Err(format!("the keeper of shared env {env:?} did not have it up within 10 minutes"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .map_err(|e| e.to_string())??;
    if let Some(e) = found["error"].as_str() {
        return Err(e.to_string());
    }
    let keeper = found["owner"].as_str().and_then(Owner::parse).ok_or("a descriptor without its keeper")?;
    let adopted = found["runnables"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(name, r)| {
                    let host_ports = r["host_ports"]
                        .as_object()
                        .map(|p| p.iter().filter_map(|(k, v)| Some((k.clone(), v.as_u64()? as u16))).collect())
                        .unwrap_or_default();
                    let adopted = Adopted {
                        id: r["id"].as_str().unwrap_or_default().to_string(),
                        host_ports,
                        ip: r["ip"].as_str().map(str::to_string),
                    };
                    (name.clone(), adopted)
                })
                .collect()
        })
        .unwrap_or_default();
    let network = crate::cleanup::netpool::Network {
        id: found["network_id"].as_str().unwrap_or_default().to_string(),
        name: found["network"].as_str().unwrap_or_default().to_string(),
    };
    let root = PathBuf::from(found["root"].as_str().unwrap_or_default());
    Env::attach(env, &keeper, network, root, adopted)
        .await
        .map_err(|e| format!("attaching to shared env {env:?}: {e:?}"))
}

/// What the binary's shared tests declare for env `env` (ports and start options of each
/// runnable), as a hash: a keeper serves the processes whose declarations are its own.
async fn definition(env: &'static str) -> Result<String, String> {
    let dry = Env::attach(
        env,
        crate::owner::current(),
        crate::cleanup::netpool::Network { id: String::new(), name: String::new() },
        std::env::temp_dir(),
        HashMap::new(),
    )
    .await
    .map_err(|e| format!("shared env {env:?}: {e:?}"))?;
    let mut seen = HashMap::new();
    for d in SHARED_DECLARATIONS.iter().filter(|d| d.env == env) {
        for r in (d.declare)(&dry) {
            seen.entry(r.name().to_string()).or_insert_with(|| r.definition());
        }
    }
    Ok(hash_of(&seen))
}

fn hash_of(definitions: &HashMap<String, String>) -> String {
    let mut sorted: Vec<_> = definitions.iter().collect();
    sorted.sort();
    // FNV-1a: the same on every build, unlike the standard library's hasher.
    let mut h: u64 = 0xcbf29ce484222325;
    for (name, def) in sorted {
        for b in name.bytes().chain([0]).chain(def.bytes()).chain([0]) {
            h = (h ^ b as u64).wrapping_mul(0x100000001b3);
        }
    }
    format!("{h:016x}")
}

/// Ends a keeper (SIGTERM: its signal handler removes its env) and waits until it is gone.
fn stop_keeper(d: &serde_json::Value) {
    let Some(keeper) = d["owner"].as_str().and_then(Owner::parse) else { return };
    // SAFETY: a plain kill(2).
    unsafe { libc::kill(keeper.pid() as i32, libc::SIGTERM) };
    let t = Instant::now();
    while !keeper.is_dead() && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The descriptor at `path`, if there is one and its keeper lives.
fn read_live(path: &Path) -> Option<serde_json::Value> {
    let d: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    let keeper = Owner::parse(d["owner"].as_str()?)?;
    (!keeper.is_dead()).then_some(d)
}

fn spawn_keeper(env: &str, base: &Path) -> std::io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    // What the keeper says (waiting for its env's name, a failure) goes to `<base>.log`, for
    // whoever wonders why a shared env is slow to come.
    let log = std::fs::OpenOptions::new().create(true).append(true).open(with_ext(base, ".log"))?;
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.env(KEEPER_ENV_VAR, env)
        .env(KEEPER_FILES_VAR, base)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Before `main`: if this process is a keeper, keep and never return.
#[ctor::ctor(unsafe)]
fn keeper_entry() {
    let (Some(env), Some(base)) = (std::env::var_os(KEEPER_ENV_VAR), std::env::var_os(KEEPER_FILES_VAR)) else {
        return;
    };
    // Not inherited by what this process starts (its watchdog is this same binary too, and
    // would become a keeper in turn).
    // Before `main`: no other thread runs yet.
    std::env::remove_var(KEEPER_ENV_VAR);
    std::env::remove_var(KEEPER_FILES_VAR);
    let env = env.to_string_lossy().into_owned();
    let base = PathBuf::from(base);
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime can be built");
    let code = rt.block_on(keep(Box::leak(env.into_boxed_str()), base));
    std::process::exit(code);
}

async fn keep(name: &'static str, base: PathBuf) -> i32 {
    let descriptor = with_ext(&base, ".json");
    let write = |d: serde_json::Value| {
        let tmp = with_ext(&base, ".json.tmp");
        let text = serde_json::to_string(&d).expect("JSON");
        let written = std::fs::File::create(&tmp).and_then(|mut f| f.write_all(text.as_bytes()));
        let _ = written.and_then(|()| std::fs::rename(&tmp, &descriptor));
    };
    let owner = crate::owner::current().to_string();
    let env = match Env::docker_shared(name).await {
        Ok(env) => env,
        Err(e) => {
            write(serde_json::json!({ "owner": owner, "error": format!("creating shared env {name:?}: {e:?}") }));
            return 1;
        }
    };
    let mut runnables = Vec::new();
    for d in SHARED_DECLARATIONS.iter().filter(|d| d.env == name) {
        let declared =
            crate::registry::TEST.scope(format!("{}::{name}", test_path(d.test)), async { (d.declare)(&env) });
        for r in declared.await {
            if !runnables.iter().any(|o: &crate::runnable::Runnable| o.is(&r)) {
                runnables.push(r);
            }
        }
    }
    let refs: Vec<&crate::runnable::Runnable> = runnables.iter().collect();
    let started = match env.sharing() {
        Some(sharing) => crate::shared::start(sharing, &refs).await,
        None => Err("the env is not shared".to_string()),
    };
    if let Err(e) = started {
        write(serde_json::json!({ "owner": owner, "error": e }));
        let _ = env.close().await;
        return 1;
    }
    let definitions: HashMap<String, String> =
        runnables.iter().map(|r| (r.name().to_string(), r.definition())).collect();
    let mut described = serde_json::Map::new();
    for r in &runnables {
        if let Some((id, host_ports, ip)) = r.record() {
            described.insert(r.name().to_string(), serde_json::json!({ "id": id, "host_ports": host_ports, "ip": ip }));
        }
    }
    write(serde_json::json!({
        "owner": owner,
        "definition": hash_of(&definitions),
        "network": env.network_name(),
        "network_id": env.network_id(),
        "root": env.root_dir(),
        "runnables": described,
    }));
    // Keep while any test process holds a lease; then, after the grace period, close.
    let lease_path = with_ext(&base, ".lease");
    let last = with_ext(&base, ".last");
    let grace = crate::settings::get().reuse.unwrap_or(GRACE);
    let kept = crate::task::blocking(move || -> std::io::Result<std::fs::File> {
        let lease = open(&lease_path).map_err(std::io::Error::other)?;
        let used = || std::fs::metadata(&last).and_then(|m| m.modified()).ok();
        loop {
            lease.lock()?;
            lease.unlock()?;
            let before = used();
            std::thread::sleep(grace);
            match lease.try_lock() {
                // Idle all along: no lease now, and none taken meanwhile.
                Ok(()) if used() == before => return Ok(lease),
                Ok(()) => lease.unlock()?,
                Err(std::fs::TryLockError::WouldBlock) => continue,
                Err(std::fs::TryLockError::Error(e)) => return Err(e),
            }
        }
    })
    .await;
    // Held while the env goes: a test process coming now waits, then starts a new keeper.
    let _lease = kept;
    let _ = std::fs::remove_file(&descriptor);
    let closed = env.close().await;
    if closed.is_err() {
        1
    } else {
        0
    }
}

/// `<module path>::<fn>` of a test's `module_path!()`, without the crate.
fn test_path(module: &str) -> &str {
    module.split_once("::").map_or(module, |(_, p)| p)
}
