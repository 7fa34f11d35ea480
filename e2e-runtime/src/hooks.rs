//! Process-level cleanup: what happens when the test process is interrupted or killed.
//!
//! - SIGINT / SIGTERM: a handler thread removes every resource of this run, then the process
//!   dies of the signal as it would have.
//! - SIGKILL (or any death): a watchdog process, started with the first env, holds the read end
//!   of a pipe whose write end only this process has. Its end of file means this process is
//!   gone; the watchdog then removes what the run left. It runs in its own session, so the
//!   signal a terminal or cargo-nextest sends to the whole process group does not reach it.
//!   The watchdog is this same executable, diverted before `main` by a `ctor` hook.
//! - If even the watchdog dies, the next env of the same name sweeps what dead runs left.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Mutex, Once};

use crate::docker::{Client, Kind};
use crate::owner::{self, ENV_LABEL, OWNER_LABEL};

/// Set in the watchdog's environment: the owner id of the run it watches.
const WATCHDOG_VAR: &str = "E2E_WATCHDOG_OWNER";

static WATCHDOG: Mutex<Option<ChildStdin>> = Mutex::new(None);

/// Installs the signal handler and starts the watchdog, once per process.
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        install_signal_handler();
        // SAFETY: registering a plain `extern "C"` function.
        unsafe { libc::atexit(at_exit) };
        if !crate::settings::get().no_watchdog {
            if let Err(e) = spawn_watchdog() {
                eprintln!("e2e: could not start the cleanup watchdog ({e}); a killed run is cleaned up by the next one");
            }
        }
    });
}

/// When the process exits normally: the background removals finish, then the networks they
/// gave back to the pool are removed.
extern "C" fn at_exit() {
    crate::reaper::wait_at_exit();
    crate::netpool::remove_idle_at_exit();
}

/// Tells the watchdog to leave this env alone.
pub(crate) fn keep(env: &str) {
    if let Some(pipe) = WATCHDOG.lock().unwrap().as_mut() {
        let _ = writeln!(pipe, "keep {env}");
        let _ = pipe.flush();
    }
}

fn install_signal_handler() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = match signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("e2e: cannot handle SIGINT/SIGTERM ({e}); the watchdog will clean up instead");
            return;
        }
    };
    std::thread::Builder::new()
        .name("e2e-signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                let name = if signal == SIGINT { "SIGINT" } else { "SIGTERM" };
                eprintln!("e2e: {name} received: removing this run's containers, networks and volumes");
                let kept = HashSet::new();
                match remove_owned(owner::current(), &kept) {
                    Ok(n) => eprintln!("e2e: removed the resources of {n} env(s)"),
                    Err(e) => eprintln!("e2e: cleanup after {name} failed: {e}"),
                }
                // Die of the signal, as the process would have without us.
                let _ = signal_hook::low_level::emulate_default_handler(signal);
                std::process::exit(128 + signal);
            }
        })
        .expect("a thread can be spawned");
}

fn spawn_watchdog() -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.env(WATCHDOG_VAR, owner::current()).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    *WATCHDOG.lock().unwrap() = child.stdin;
    // The child is never waited on: it must outlive us, and init reaps it.
    Ok(())
}

/// Before `main`: if this process is a watchdog, watch and never return.
#[ctor::ctor(unsafe)]
fn watchdog_entry() {
    let Some(owner) = std::env::var_os(WATCHDOG_VAR) else { return };
    let owner = owner.to_string_lossy().into_owned();
    let mut kept = HashSet::new();
    // Lines are instructions; the end of file is the death of the watched process.
    for line in std::io::stdin().lock().lines() {
        match line {
            Ok(l) => {
                if let Some(env) = l.strip_prefix("keep ") {
                    kept.insert(env.to_string());
                }
            }
            Err(_) => break,
        }
    }
    let _ = remove_owned(&owner, &kept);
    std::process::exit(0);
}

/// Removes every container, volume and network of `owner` (but those of kept envs) and its
/// directories, on a runtime of its own: callers are a signal thread and the watchdog.
fn remove_owned(owner: &str, kept: &HashSet<String>) -> Result<usize, String> {
    let owner = owner.to_string();
    let kept = kept.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        let removed = rt.block_on(async {
            let client = Client::connect().await.map_err(|e| e.to_string())?;
            let labels = [format!("{OWNER_LABEL}={owner}")];
            let mut removed = HashSet::new();
            // Creations still in flight (the run's other threads, or requests the engine had
            // not finished when the run died) land after a listing: pass again after a pause
            // until a pass finds nothing.
            let mut pool_left = false;
            for pass in 0..10 {
                let mut envs = HashSet::new();
                for kind in [Kind::Container, Kind::Volume, Kind::Network] {
                    for found in client.list(kind, &labels).await.map_err(|e| e.to_string())? {
                        if let Some(env) = found.labels.get(ENV_LABEL) {
                            if !kept.contains(env) && env != crate::netpool::POOL_ENV {
                                envs.insert(env.clone());
                            }
                        }
                    }
                }
                if envs.is_empty() && !pool_left && pass > 0 {
                    break;
                }
                let mut last_error = None;
                for env in envs {
                    if let Err(e) = crate::env::remove_run(&client, &env, &owner, "").await {
                        last_error = Some(e.to_string());
                    }
                    removed.insert(env);
                }
                // Then the run's pooled networks that no container uses any more: one still in
                // use serves a kept env.
                pool_left = false;
                if let Err(e) = crate::netpool::remove_unused(&client, &owner).await {
                    pool_left = true;
                    last_error = Some(e.to_string());
                }
                if pass == 9 {
                    if let Some(e) = last_error {
                        return Err(e);
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Ok::<_, String>(removed.len())
        })?;
        if let Ok(runs) = crate::env::runs_dir() {
            if let Some((_, rest)) = owner.split_once('/').and_then(|(_, r)| r.split_once('/')) {
                let run_dir = runs.join(rest.replace('/', "."));
                for entry in std::fs::read_dir(&run_dir).into_iter().flatten().flatten() {
                    if !kept.contains(&*entry.file_name().to_string_lossy()) {
                        let _ = std::fs::remove_dir_all(entry.path());
                    }
                }
                let _ = std::fs::remove_dir(&run_dir);
            }
        }
        Ok(removed)
    })
    .join()
    .map_err(|_| "the cleanup thread panicked".to_string())?
}
