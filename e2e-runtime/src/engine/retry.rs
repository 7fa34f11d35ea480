//! Engine calls tried again when the engine's answer was a passing one: a busy CI host's
//! engine answers 500 now and then, or drops a connection mid-call. Only calls that are safe
//! to repeat are repeated (inspections, listings, stops, removals, creations that can tell a
//! resource the first try made); an exec, a build and the streams go through once (the event
//! stream resumes by itself, see `Env`'s watcher).
//!
//! A creation whose first try the engine carried out before failing (its answer lost) finds
//! the resource on the next try: a container's name conflicts, a network's name exists. The
//! resource with every label asked for is then the call's result, so it is neither
//! made twice nor left behind.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt};
use futures_util::stream::BoxStream;

use super::{
    ContainerSpec, ContainerState, Engine, EngineError, EngineErrorKind, EngineResult, Event, Found, ImageBuild,
    ImageInfo, ImageRef, Labels, NetworkState, Output, ResourceKind, Selector, Usage,
};

/// How often a call is tried, and the pause before the second try (doubled for each next).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    pub tries: u32,
    pub first_pause: Duration,
}

impl Default for Policy {
    /// Three tries, 0.1 s then 0.3 s apart: a passing fault is over, a down engine is reported
    /// within half a second more than one try.
    fn default() -> Self {
        Policy { tries: 3, first_pause: Duration::from_millis(100) }
    }
}

/// Whether an answer may be different on another try: the connection broke or the engine
/// failed inside (5xx). A timeout is not tried again (it took the whole call timeout already),
/// nor is anything the engine answered about the request itself.
pub(crate) fn passing(e: &EngineError) -> bool {
    match e.kind() {
        EngineErrorKind::Unavailable => true,
        EngineErrorKind::Other => e.status().is_some_and(|s| (500..600).contains(&s)),
        _ => false,
    }
}

/// An engine whose idempotent calls are tried again on a passing failure.
#[derive(Debug)]
pub(crate) struct Retrying<E = Arc<dyn Engine>> {
    inner: E,
    policy: Policy,
    /// The engine's address, named in an unavailable engine's error.
    address: Option<String>,
}

/// `call` tried again on passing failures, by the default policy: for the part of a call that
/// is safe to repeat (an exec's creation, not its start).
pub async fn repeatable<T, F, Fut>(call: F) -> EngineResult<T>
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = EngineResult<T>> + Send,
{
    Retrying { inner: (), policy: Policy::default(), address: None }.plain(&|| call().boxed()).await
}

impl Retrying {
    pub fn new(inner: Arc<dyn Engine>, policy: Policy) -> Self {
        let address = Some(inner.address().to_string());
        Retrying { inner, policy, address }
    }
}

impl<E> Retrying<E> {
    /// Runs `call` until it succeeds, fails for good, or has been tried `policy.tries` times.
    /// `after_failure` maps the answer of a try that followed a passing failure (the first
    /// try may have been carried out): a removal's "not found" is then success, for example.
    ///
    /// Generic in the answer only (the calls are boxed): its code is generated once per type
    /// of answer, not once per call, in every dependent's build.
    async fn again<'a, T>(
        &'a self,
        call: &'a (dyn Fn() -> BoxFuture<'a, EngineResult<T>> + Send + Sync),
        after_failure: &'a (dyn Fn(EngineError) -> EngineResult<T> + Send + Sync),
    ) -> EngineResult<T> {
        let mut pause = self.policy.first_pause;
        let mut n = 1;
        loop {
            let result = match call().await {
                Err(e) if n > 1 && !passing(&e) => after_failure(e),
                result => result,
            };
            match result {
                Err(e) if passing(&e) && n < self.policy.tries => {
                    n += 1;
                    tokio::time::sleep(pause).await;
                    pause *= 3;
                }
                Err(e) if n > 1 && passing(&e) => return Err(tried(e, n, self.address.as_deref())),
                other => return other,
            }
        }
    }

    /// [`Retrying::again`] with every answer taken as it is.
    async fn plain<'a, T>(
        &'a self,
        call: &'a (dyn Fn() -> BoxFuture<'a, EngineResult<T>> + Send + Sync),
    ) -> EngineResult<T> {
        self.again(call, &Err).await
    }
}

impl Retrying {
    /// A creation tried again: before each next try, and on a name conflict, the resource the
    /// failed try may have made is looked for by its labels and taken as the result (the
    /// engine allows two networks of one name; a container's name conflicts).
    async fn create<F, Fut>(&self, kind: ResourceKind, labels: &Labels, make: F) -> EngineResult<String>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = EngineResult<String>>,
    {
        let mut last = match make().await {
            Err(e) if passing(&e) => e,
            other => return other,
        };
        let mut pause = self.policy.first_pause;
        let selector = selector_of(labels);
        for _ in 1..self.policy.tries {
            tokio::time::sleep(pause).await;
            pause *= 3;
            match self.inner.list(kind, &selector).await {
                Ok(found) => {
                    if let Some(id) = labelled(found, labels) {
                        return Ok(id);
                    }
                }
                Err(e) if passing(&e) => {
                    last = e;
                    continue;
                }
                Err(e) => return Err(e),
            }
            match make().await {
                Err(e) if passing(&e) => last = e,
                Err(e) if e.kind() == EngineErrorKind::Conflict => {
                    let found = self.plain(&|| self.inner.list(kind, &selector)).await?;
                    return labelled(found, labels).ok_or(e);
                }
                other => return other,
            }
        }
        Err(tried(last, self.policy.tries, self.address.as_deref()))
    }
}

fn selector_of(labels: &Labels) -> Selector {
    labels.iter().fold(Selector::managed(), |s, (k, v)| s.with(k, v.as_str()))
}

/// The id of the resource found with every one of these labels (the engine adds an image's
/// labels to its containers' own; ours name the owner, the env and the runnable, so only the
/// resource asked for carries them all).
fn labelled(found: Vec<Found>, labels: &Labels) -> Option<String> {
    found.into_iter().find(|f| labels.iter().all(|(k, v)| f.labels.get(k) == Some(v))).map(|f| f.id)
}

/// A passing failure that lasted every try, saying so (and, when the engine could not be
/// reached, where it was looked for).
fn tried(e: EngineError, tries: u32, address: Option<&str>) -> EngineError {
    let message = match address {
        Some(a) if e.kind() == EngineErrorKind::Unavailable => {
            format!("{} (tried {tries} times; the engine at {a})", e.message())
        }
        _ => format!("{} (tried {tries} times)", e.message()),
    };
    EngineError::new(e.kind(), e.status(), message)
}

/// After a failed try, an answer that says the first try did it already.
fn done_if(kinds: &'static [EngineErrorKind]) -> impl Fn(EngineError) -> EngineResult<()> {
    move |e| if kinds.contains(&e.kind()) || e.status() == Some(304) { Ok(()) } else { Err(e) }
}

#[async_trait::async_trait]
impl Engine for Retrying {
    fn address(&self) -> &str {
        self.inner.address()
    }
    fn containers_reachable(&self) -> bool {
        self.inner.containers_reachable()
    }
    fn host_address(&self) -> &str {
        self.inner.host_address()
    }
    fn shares_host_files(&self) -> bool {
        self.inner.shares_host_files()
    }
    async fn reach_published(&self, port: u16) -> EngineResult<u16> {
        self.inner.reach_published(port).await
    }
    fn bound_to_runtime(&self) -> bool {
        self.inner.bound_to_runtime()
    }

    async fn create_container(&self, spec: &ContainerSpec) -> EngineResult<String> {
        self.create(ResourceKind::Container, &spec.labels, || self.inner.create_container(spec)).await
    }
    async fn start_container(&self, id: &str) -> EngineResult<()> {
        // Started by the failed try: 304.
        self.again(&|| self.inner.start_container(id), &done_if(&[])).await
    }
    async fn inspect_container(&self, id: &str) -> EngineResult<ContainerState> {
        self.plain(&|| self.inner.inspect_container(id)).await
    }
    async fn stop_container(&self, id: &str, timeout: Duration) -> EngineResult<()> {
        self.again(&|| self.inner.stop_container(id, timeout), &done_if(&[])).await
    }
    async fn kill_container(&self, id: &str, signal: &str) -> EngineResult<()> {
        // Killed by the failed try: "is not running" (409).
        self.again(&|| self.inner.kill_container(id, signal), &done_if(&[EngineErrorKind::Conflict])).await
    }
    async fn pause_container(&self, id: &str) -> EngineResult<()> {
        self.again(&|| self.inner.pause_container(id), &done_if(&[EngineErrorKind::Conflict])).await
    }
    async fn unpause_container(&self, id: &str) -> EngineResult<()> {
        self.again(&|| self.inner.unpause_container(id), &done_if(&[EngineErrorKind::Conflict])).await
    }
    async fn remove_container(&self, id: &str) -> EngineResult<()> {
        self.again(&|| self.inner.remove_container(id), &done_if(&[EngineErrorKind::NotFound])).await
    }
    fn logs(&self, id: &str) -> BoxStream<'static, EngineResult<Output>> {
        self.inner.logs(id)
    }
    fn logs_after(&self, id: &str, after: Option<i64>) -> BoxStream<'static, EngineResult<(Option<i64>, Output)>> {
        self.inner.logs_after(id, after)
    }
    async fn usage(&self, id: &str) -> EngineResult<Usage> {
        self.plain(&|| self.inner.usage(id)).await
    }
    async fn put_archive(&self, id: &str, dir: &str, tar: Vec<u8>) -> EngineResult<()> {
        // The same files unpacked twice are the same files.
        self.plain(&|| self.inner.put_archive(id, dir, tar.clone())).await
    }
    async fn get_archive(&self, id: &str, path: &str) -> EngineResult<Vec<u8>> {
        self.plain(&|| self.inner.get_archive(id, path)).await
    }
    async fn exec(&self, id: &str, command: &[String], output: &mut (dyn FnMut(Output) + Send)) -> EngineResult<i64> {
        // Once: the command may have run.
        self.inner.exec(id, command, output).await
    }

    async fn create_network(&self, name: &str, labels: &Labels) -> EngineResult<String> {
        self.create(ResourceKind::Network, labels, || self.inner.create_network(name, labels)).await
    }
    async fn network_exists(&self, name: &str) -> EngineResult<bool> {
        self.plain(&|| self.inner.network_exists(name)).await
    }
    async fn inspect_network(&self, id: &str) -> EngineResult<NetworkState> {
        self.plain(&|| self.inner.inspect_network(id)).await
    }
    async fn remove_network(&self, id: &str) -> EngineResult<()> {
        self.again(&|| self.inner.remove_network(id), &done_if(&[EngineErrorKind::NotFound])).await
    }
    async fn connect_network(&self, network: &str, container: &str, aliases: &[String]) -> EngineResult<()> {
        // Connected by the failed try: "already exists in network" (403 or 409).
        let already = |e: EngineError| if e.message().contains("already exists") { Ok(()) } else { Err(e) };
        self.again(&|| self.inner.connect_network(network, container, aliases), &already).await
    }
    async fn disconnect_network(&self, network: &str, container: &str) -> EngineResult<()> {
        let gone = |e: EngineError| if e.message().contains("is not connected") { Ok(()) } else { Err(e) };
        self.again(&|| self.inner.disconnect_network(network, container), &gone).await
    }

    async fn create_volume(&self, name: &str, labels: &Labels) -> EngineResult<()> {
        // The engine answers a volume's creation with the existing volume of that name.
        self.plain(&|| self.inner.create_volume(name, labels)).await
    }
    async fn remove_volume(&self, name: &str) -> EngineResult<()> {
        self.again(&|| self.inner.remove_volume(name), &done_if(&[EngineErrorKind::NotFound])).await
    }

    async fn list(&self, kind: ResourceKind, selector: &Selector) -> EngineResult<Vec<Found>> {
        self.plain(&|| self.inner.list(kind, selector)).await
    }
    fn container_events(&self, selector: &Selector, since: Option<i64>) -> BoxStream<'static, EngineResult<Event>> {
        self.inner.container_events(selector, since)
    }

    async fn image(&self, reference: &str) -> EngineResult<Option<ImageInfo>> {
        self.plain(&|| self.inner.image(reference)).await
    }
    async fn remove_image(&self, id: &str) -> EngineResult<()> {
        self.again(&|| self.inner.remove_image(id), &done_if(&[EngineErrorKind::NotFound])).await
    }
    async fn pull_image(
        &self,
        reference: &ImageRef,
        progress: &mut (dyn for<'s> FnMut(&'s str) + Send),
    ) -> EngineResult<()> {
        self.inner.pull_image(reference, progress).await
    }
    async fn build_image(
        &self,
        build: &ImageBuild,
        output: &mut (dyn for<'s> FnMut(&'s str) + Send),
    ) -> EngineResult<()> {
        self.inner.build_image(build, output).await
    }
}
