//! Background teardown: envs handed over here are removed while the process goes on, so a test
//! does not wait for its containers to be removed and the next test starts meanwhile.
//!
//! The guarantee that nothing is left behind is kept:
//! - the env name stays taken (its lock is held) until its removal is done, so a later env of
//!   the same name never meets its containers;
//! - the process waits for every pending removal when it exits (the `atexit` hook of
//!   [`crate::hooks`], which runs when `main` returns or `std::process::exit` is called, as the
//!   test harness does);
//! - a process killed meanwhile has its resources removed by the watchdog, and SIGINT/SIGTERM
//!   by the signal handler, as before.

use std::path::PathBuf;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use crate::docker::Client;

/// How long the process waits at exit for pending removals.
const EXIT_WAIT: Duration = Duration::from_secs(120);

/// One env to remove.
pub(crate) struct Job {
    pub env: String,
    pub network: crate::netpool::Network,
    pub root: PathBuf,
    /// The env name's lock, released once the env is gone.
    pub lock: Option<std::fs::File>,
}

/// Removals handed over and not finished yet.
static PENDING: Mutex<usize> = Mutex::new(0);
static IDLE: Condvar = Condvar::new();

/// Hands `job` to the reaper thread (started on first use). Gives the job back if the thread
/// cannot be started: the caller then removes the env itself.
pub(crate) fn submit(job: Job) -> Result<(), Job> {
    static REAPER: OnceLock<Option<UnboundedSender<Job>>> = OnceLock::new();
    let Some(tx) = REAPER.get_or_init(start) else { return Err(job) };
    *PENDING.lock().unwrap() += 1;
    tx.send(job).map_err(|e| {
        finished();
        e.0
    })
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
        eprintln!("e2e: {left} env removal(s) still running after {EXIT_WAIT:?} at exit; the watchdog finishes them");
    }
}

/// Starts the reaper thread: a runtime of its own (a test's runtime ends with the test), one
/// engine connection, every job a task of its own so removals overlap.
fn start() -> Option<UnboundedSender<Job>> {
    let (tx, mut rx) = unbounded_channel::<Job>();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("e2e: no background teardown ({e}): envs are removed in the foreground");
            return None;
        }
    };
    let spawned = std::thread::Builder::new().name("e2e-reaper".into()).spawn(move || {
        rt.block_on(async move {
            let mut client: Option<Client> = None;
            while let Some(job) = rx.recv().await {
                if client.is_none() {
                    client = Client::connect().await.map_err(|e| eprintln!("e2e: removing env {:?}: {e}", job.env)).ok();
                }
                let Some(client) = client.clone() else {
                    // No engine: the watchdog (or the next run of this env name) removes it.
                    finished();
                    continue;
                };
                tokio::spawn(async move {
                    remove(&client, job).await;
                    finished();
                });
            }
        })
    });
    if let Err(e) = spawned {
        eprintln!("e2e: no background teardown ({e}): envs are removed in the foreground");
        return None;
    }
    Some(tx)
}

/// Removes the job's env and directory, reporting a failure on stderr, then frees its name.
pub(crate) async fn remove(client: &Client, job: Job) {
    let removed = crate::env::remove_env(client, &job.env, job.network.clone()).await;
    let dir = crate::env::remove_dir(&job.root);
    if let Err(e) = removed.and(dir) {
        eprintln!("e2e: removing env {:?} in the background failed: {e}", job.env);
    }
    drop(job.lock);
}
