//! Shared envs: `#[e2e::test(env = "pg", shared)]`. Every test of the binary that names the
//! same shared env gets the same env, and the same started runnable for the same declaration:
//! the first test to declare a runnable starts it, the others wait until it is ready.
//!
//! The env and its runnables live on a runtime of their own, for the whole process (a test's
//! runtime ends with the test, and with it the tasks it spawned: log followers, relays, the
//! event watcher). It is closed when the process exits (the exit hook), and like any env of
//! the run by the signal handler, the watchdog or the next run's sweep otherwise.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::env::Env;
use crate::registry::Registry;
use crate::runnable::Runnable;

/// The runtime shared envs live on.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("e2e-shared")
            .enable_all()
            .build()
            .expect("a tokio runtime can be built")
    })
}

type EnvCell = Arc<tokio::sync::OnceCell<Result<Env, String>>>;

/// The shared envs of this process, by name, and whether a test of each failed.
fn envs() -> &'static Mutex<HashMap<String, (EnvCell, bool)>> {
    static ENVS: OnceLock<Mutex<HashMap<String, (EnvCell, bool)>>> = OnceLock::new();
    ENVS.get_or_init(Mutex::default)
}

/// The shared env `name`, made by the first test that asks (on the shared runtime).
pub(crate) async fn env(name: &'static str) -> Result<Env, String> {
    crate::cleanup::signals::at_exit_first(close_all);
    let cell = envs().lock().unwrap().entry(name.to_string()).or_default().0.clone();
    cell.get_or_init(|| async move {
        let made = crate::task::spawn_on(runtime().handle(), async move { Env::docker_shared(name).await });
        match made.await {
            Ok(Ok(env)) => Ok(env),
            Ok(Err(e)) => Err(format!("creating shared env {name:?}: {e:?}")),
            Err(e) => Err(format!("creating shared env {name:?}: {e}")),
        }
    })
    .await
    .clone()
}

/// Records that a test of shared env `name` failed: `E2E_KEEP=on-failure` then keeps it.
pub(crate) fn failed(name: &str) {
    if let Some(entry) = envs().lock().unwrap().get_mut(name) {
        entry.1 = true;
    }
}

/// At exit: closes (or keeps, as `E2E_KEEP` says) every shared env.
fn close_all() {
    let envs: Vec<(Env, bool)> = envs()
        .lock()
        .unwrap()
        .values()
        .filter_map(|(cell, failed)| Some((cell.get()?.as_ref().ok()?.clone(), *failed)))
        .collect();
    if envs.is_empty() {
        return;
    }
    let keep = crate::settings::get().keep;
    runtime().block_on(async move {
        for (env, failed) in envs {
            use crate::settings::Keep;
            if keep == Keep::Always || (keep == Keep::OnFailure && failed) {
                crate::say::say!(warn, "{}", env.keep());
                let _ = env.close().await;
            } else if let Err(e) = env.close().await {
                crate::say::say!(warn, "closing shared env {:?} at exit failed: {e}", env.name());
            }
        }
    });
}

/// Starts the runnables of a shared env (each once, by the first test that needs it, on the
/// shared runtime) and waits until all are ready.
pub(crate) async fn start(registry: &Registry, runnables: &[&Runnable]) -> Result<(), String> {
    let starts = runnables.iter().map(|r| {
        let r = (*r).clone();
        let cell = registry.started(r.name(), |stored: &Runnable| stored.is(&r));
        async move {
            let Some(cell) = cell else {
                // Not the shared one (a mismatching declaration): starting it reports why.
                return r.start_and_wait_ready().await.map_err(|e| format!("{e:?}"));
            };
            cell.get_or_init(|| async move {
                let started = crate::task::spawn_on(runtime().handle(), async move { r.start_and_wait_ready().await });
                match started.await {
                    Ok(result) => result.map_err(|e| format!("{e:?}")),
                    Err(e) => Err(format!("starting {e}")),
                }
            })
            .await
            .clone()
        }
    });
    let results = crate::task::join_all(starts).await;
    results.into_iter().collect::<Result<Vec<()>, String>>().map(|_| ())
}
