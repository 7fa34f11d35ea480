//! Background teardown: envs handed over here are removed while the process goes on, so a test
//! does not wait for its containers to be removed and the next test starts meanwhile.
//!
//! The guarantee that nothing is left behind is kept:
//! - the env name stays taken (its lock is held) until its removal is done, so a later env of
//!   the same name never meets its containers;
//! - the process waits for every pending removal when it exits (the exit hook of
//!   [`crate::cleanup::signals`], which runs when `main` returns or `std::process::exit` is
//!   called, as the test harness does);
//! - a process killed meanwhile has its resources removed by the watchdog, and SIGINT/SIGTERM
//!   by the signal handler, as before.

use std::path::PathBuf;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::cleanup::netpool::Network;
use crate::engine::Engine;

/// How long the process waits at exit for pending removals.
const EXIT_WAIT: Duration = Duration::from_secs(120);

/// One env to remove.
#[derive(Debug)]
pub(crate) struct Job {
    /// The engine the env is on.
    pub engine: std::sync::Arc<dyn Engine>,
    pub env: String,
    pub network: Network,
    pub root: PathBuf,
    /// The env name's lock, released once the env is gone.
    pub lock: Option<std::fs::File>,
}

/// Removals handed over and not finished yet.
static PENDING: Mutex<usize> = Mutex::new(0);
static IDLE: Condvar = Condvar::new();

/// Hands `job` to the cleanup session, where it runs as a task of its own so removals overlap.
/// Gives the job back if the session cannot run it: the caller then removes the env itself.
pub(crate) fn submit(job: Job) -> Result<(), Job> {
    *PENDING.lock().unwrap() += 1;
    let job = std::sync::Arc::new(Mutex::new(Some(job)));
    let handed = job.clone();
    let on = job.lock().unwrap().as_ref().map(|j| j.engine.clone());
    let spawned = crate::cleanup::session::spawn(on, move |engine| async move {
        let Some(job) = handed.lock().unwrap().take() else { return };
        match engine {
            Ok(engine) => remove(&*engine, job).await,
            // No engine: the watchdog (or the next run of this env name) removes it.
            Err(e) => crate::say::say!(warn, "removing env {:?}: {e}", job.env),
        }
        finished();
    });
    if spawned.is_err() {
        finished();
        if let Some(job) = job.lock().unwrap().take() {
            return Err(job);
        }
    }
    Ok(())
}

/// Waits until no removal is pending, at most `limit`. Returns how many are still pending.
pub(crate) fn wait_idle(limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    let mut pending = PENDING.lock().unwrap();
    while *pending > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        pending = IDLE.wait_timeout(pending, left).unwrap().0;
    }
    *pending
}

fn finished() {
    let mut pending = PENDING.lock().unwrap();
    *pending -= 1;
    if *pending == 0 {
        IDLE.notify_all();
    }
}

/// At exit: waits for the pending removals.
pub(crate) fn wait_at_exit() {
    if *PENDING.lock().unwrap() == 0 {
        return;
    }
    let left = wait_idle(EXIT_WAIT);
    if left > 0 {
        crate::say::say!(
            warn,
            "{left} env removal(s) still running after {EXIT_WAIT:?} at exit; the watchdog finishes them"
        );
    }
}

/// Removes the job's env and directory, reporting a failure on stderr, then frees its name.
pub(crate) async fn remove(engine: &dyn Engine, job: Job) {
    let removed = crate::cleanup::removal::remove_env(engine, &job.env, job.network.clone()).await;
    let dir = crate::paths::remove_env_dir(&job.root);
    if let Err(e) = removed.and(dir) {
        crate::say::say!(warn, "removing env {:?} in the background failed: {e}", job.env);
    }
    drop(job.lock);
}
