//! The watchdog: a process that outlives a run killed outright (SIGKILL, OOM) and removes what
//! it left. It holds the read end of a pipe whose write end only the run has; its end of file
//! is the run's death, which cannot be missed. It runs in its own session (`setsid`), so the
//! signal a terminal or cargo-nextest sends to the whole process group does not reach it. It
//! is this same executable, diverted before `main` by a `ctor` hook.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::Mutex;

use crate::owner::{self, Owner};

/// Set in a keeper's environment (see `keeper`): the env it keeps, and its files' common path.
/// A watchdog never inherits them, or it would become a keeper in turn.
pub(crate) const KEEPER_ENV_VAR: &str = "E2E_KEEPER_ENV";
pub(crate) const KEEPER_FILES_VAR: &str = "E2E_KEEPER_FILES";

/// Set in the watchdog's environment: the owner id of the run it watches.
const WATCHDOG_VAR: &str = "E2E_WATCHDOG_OWNER";

static PIPE: Mutex<Option<ChildStdin>> = Mutex::new(None);
/// The envs kept by this run, which no cleanup removes.
static KEPT: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Starts the watchdog of this run.
pub(crate) fn spawn() -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.env(WATCHDOG_VAR, owner::current().to_string())
        // A keeper's watchdog must not be a keeper too.
        .env_remove(KEEPER_ENV_VAR)
        .env_remove(KEEPER_FILES_VAR)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
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
    *PIPE.lock().unwrap() = child.stdin;
    // The child is never waited on: it must outlive us, and init reaps it.
    Ok(())
}

/// Marks env `env` kept: neither the signal handler nor the watchdog removes it.
pub(crate) fn keep(env: &str) {
    KEPT.lock().unwrap().push(env.to_string());
    if let Some(pipe) = PIPE.lock().unwrap().as_mut() {
        let _ = writeln!(pipe, "keep {env}");
        let _ = pipe.flush();
    }
}

/// The envs this run keeps.
pub(crate) fn kept() -> HashSet<String> {
    KEPT.lock().unwrap().iter().cloned().collect()
}

/// Before `main`: if this process is a watchdog, watch and never return.
#[ctor::ctor(unsafe)]
fn watchdog_entry() {
    let Some(label) = std::env::var_os(WATCHDOG_VAR) else { return };
    let Some(watched) = Owner::parse(&label.to_string_lossy()) else { std::process::exit(2) };
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
    let _ = crate::cleanup::session::block_on(None, move |engine| {
        Box::pin(async move { crate::cleanup::removal::remove_owned(&*engine, &watched, &kept).await })
    });
    std::process::exit(0);
}
