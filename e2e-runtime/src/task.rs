//! Spawning, boxed. tokio generates its task machinery (the task's cell, harness and scheduler
//! hooks, for each of its two schedulers) once per type of future spawned; boxed, that type is
//! `BoxFuture<T>` whatever the future, so the machinery is generated once per output type instead
//! of once per spawn site. That is code a dependent's every cold build no longer compiles; the
//! price is one allocation per spawn.

use std::future::Future;

use futures_util::future::{BoxFuture, FutureExt};
use tokio::task::JoinHandle;

/// `tokio::spawn`, boxed.
pub(crate) fn spawn<T: Send + 'static>(task: impl Future<Output = T> + Send + 'static) -> JoinHandle<T> {
    tokio::spawn(task.boxed())
}

/// `Handle::spawn`, boxed.
pub(crate) fn spawn_on<T: Send + 'static>(
    rt: &tokio::runtime::Handle,
    task: impl Future<Output = T> + Send + 'static,
) -> JoinHandle<T> {
    rt.spawn(task.boxed())
}

/// `tokio::task::spawn_blocking`, boxed.
pub(crate) fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    tokio::task::spawn_blocking(Box::new(f) as Box<dyn FnOnce() -> T + Send>)
}

/// `join_all`, its futures boxed: its machinery is generated once per output type, as for
/// [`spawn`].
pub(crate) fn join_all<'a, T, F>(
    futures: impl IntoIterator<Item = F>,
) -> futures_util::future::JoinAll<BoxFuture<'a, T>>
where
    F: Future<Output = T> + Send + 'a,
{
    futures_util::future::join_all(futures.into_iter().map(FutureExt::boxed))
}

/// `try_join_all`, its futures boxed (as [`join_all`]).
pub(crate) fn try_join_all<'a, T, E, F>(
    futures: impl IntoIterator<Item = F>,
) -> futures_util::future::TryJoinAll<BoxFuture<'a, Result<T, E>>>
where
    F: Future<Output = Result<T, E>> + Send + 'a,
{
    futures_util::future::try_join_all(futures.into_iter().map(FutureExt::boxed))
}
