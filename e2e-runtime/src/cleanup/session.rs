//! The process-wide cleanup session: one background runtime and one engine client, serving
//! every removal that cannot run on the caller's runtime (the reaper, `Drop`, the signal
//! handler, the exit hook, the watchdog). A test's own runtime ends with the test, and an
//! engine client's connections live on the runtime they were made on: hence a runtime of
//! cleanup's own, made once.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use futures_util::future::BoxFuture;

use crate::engine::Engine;
use crate::error::{Error, Result};

struct Session {
    rt: tokio::runtime::Runtime,
    engine: tokio::sync::OnceCell<Arc<dyn Engine>>,
}

fn session() -> Result<&'static Session> {
    static SESSION: OnceLock<std::result::Result<Session, String>> = OnceLock::new();
    let made = SESSION.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("e2e-cleanup")
            .enable_all()
            .build()
            .map(|rt| Session { rt, engine: tokio::sync::OnceCell::new() })
            .map_err(|e| e.to_string())
    });
    made.as_ref().map_err(|e| Error::io("starting the cleanup runtime", std::io::Error::other(e.clone())))
}

/// Makes the session's runtime, if it is not made yet.
pub(crate) fn start() -> Result<()> {
    session().map(|_| ())
}

/// The session's engine, connected on first use (a failed connection is retried next time).
async fn engine(s: &'static Session) -> Result<Arc<dyn Engine>> {
    s.engine.get_or_try_init(|| async { Ok::<_, Error>(crate::engine::connect().await?) }).await.cloned()
}

/// The engine to use on the session's runtime for work on `engine`: the session's own client
/// when `engine`'s connections are bound to another runtime, else `engine` itself.
async fn engine_for(s: &'static Session, engine: Option<Arc<dyn Engine>>) -> Result<Arc<dyn Engine>> {
    match engine {
        Some(e) if !e.bound_to_runtime() => Ok(e),
        _ => self::engine(s).await,
    }
}

/// Runs `job` on the session's runtime with its engine, in the background.
/// `on` is the engine the work is for (`None`: the one `DOCKER_HOST` names).
pub(crate) fn spawn<F, Fut>(on: Option<Arc<dyn Engine>>, job: F) -> Result<()>
where
    F: FnOnce(Result<Arc<dyn Engine>>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let s = session()?;
    crate::task::spawn_on(s.rt.handle(), async move { job(engine_for(s, on).await).await });
    Ok(())
}

/// Runs `job` on the session's runtime with its engine and blocks this thread until it is done.
/// Usable from any thread, a tokio worker of another runtime included.
pub(crate) fn block_on<T: Send + 'static>(
    on: Option<Arc<dyn Engine>>,
    job: impl FnOnce(Arc<dyn Engine>) -> BoxFuture<'static, Result<T>> + Send + 'static,
) -> Result<T> {
    let s = session()?;
    let (tx, rx) = std::sync::mpsc::channel();
    crate::task::spawn_on(s.rt.handle(), async move {
        let result = match engine_for(s, on).await {
            Ok(engine) => job(engine).await,
            Err(e) => Err(e),
        };
        let _ = tx.send(result);
    });
    rx.recv().unwrap_or_else(|_| Err(Error::io("cleanup", std::io::Error::other("the cleanup runtime stopped"))))
}
