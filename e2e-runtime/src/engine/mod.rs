//! The engine interface: everything the framework asks of a container engine, in the
//! framework's own words (container specs, states, events, label selectors, error kinds).
//!
//! The crate `e2e-docker` implements it on bollard and is the only code that names bollard; it
//! adds itself to [`CONNECTORS`], which is how the runtime finds it without depending on it
//! (so the runtime compiles beside bollard). `fake` (tests only) implements it in memory so the
//! runtime's logic is tested without an engine. A Kubernetes backend would be another
//! implementation, not a change to the callers.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;

mod error;
#[cfg(test)]
pub(crate) mod fake;
pub mod retry;

pub use error::error_chain;
pub use error::{EngineError, EngineErrorKind};

/// An id as the docker CLI shows it.
pub(crate) fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Labels of a resource, sorted so that specs and messages are stable.
pub type Labels = BTreeMap<String, String>;

/// A result of an engine call.
pub type EngineResult<T> = Result<T, EngineError>;

/// An engine implementation's way in: connects to the engine the environment names (for
/// Docker, `DOCKER_HOST` or the local socket) on the current tokio runtime and checks that it
/// answers; on failure, the places tried and why.
pub type Connect = fn() -> BoxFuture<'static, Result<Arc<dyn Engine>, (String, EngineError)>>;

/// The engine implementations linked into this program. The runtime does not depend on any:
/// `e2e-docker` adds Docker's here, and the `e2e` facade links it, so the runtime compiles
/// beside bollard instead of after it.
#[linkme::distributed_slice]
pub static CONNECTORS: [Connect];

/// Connects to the engine through the implementation linked in (Docker's), and makes its
/// calls retry what an engine under load fails transiently.
pub(crate) async fn connect() -> Result<Arc<dyn Engine>, Unreachable> {
    let Some(connect) = CONNECTORS.first() else {
        let m = "no engine implementation is linked into this program: depend on the e2e facade \
                 (package e2e-framework), which links Docker's (e2e-docker)";
        let error = EngineError::new(EngineErrorKind::Unavailable, None, m);
        return Err(Unreachable { address: "no engine".to_string(), error });
    };
    match connect().await {
        Ok(engine) => Ok(Arc::new(retry::Retrying::new(engine, retry::Policy::default()))),
        Err((address, error)) => Err(Unreachable { address, error }),
    }
}

/// No engine answered at `address`.
#[derive(Debug)]
pub(crate) struct Unreachable {
    pub address: String,
    pub error: EngineError,
}

/// A container engine. Calls are idempotent where the engine allows: removing what is gone
/// already succeeds.
#[async_trait::async_trait]
pub trait Engine: Send + Sync + fmt::Debug {
    /// Where the engine is, for messages (`unix:///var/run/docker.sock`, `tcp://host:2375`).
    fn address(&self) -> &str;
    /// Whether containers' own addresses can be dialled from this process.
    fn containers_reachable(&self) -> bool;
    /// The IP address by which this process reaches the engine's host: where it publishes
    /// ports (`127.0.0.1` for a local engine, the host of `tcp://host:2375` for a remote one).
    fn host_address(&self) -> &str;
    /// Whether a path of this process's host is the same path on the engine's host, so bind
    /// mounts share files with the test (a local engine), or not (a remote one).
    fn shares_host_files(&self) -> bool {
        self.containers_reachable()
    }
    /// The port of [`Engine::host_address`] by which this process reaches `port`, a port the
    /// engine published: the same port, or a local one forwarded to it (an engine over SSH).
    async fn reach_published(&self, port: u16) -> EngineResult<u16> {
        Ok(port)
    }
    /// Whether its connections live on the tokio runtime it was made on, so that work on
    /// another runtime (cleanup's) needs a client of its own.
    fn bound_to_runtime(&self) -> bool {
        true
    }

    // ---- containers
    /// Creates a container; `EngineErrorKind::NoSuchImage` when the image is absent.
    async fn create_container(&self, spec: &ContainerSpec) -> EngineResult<String>;
    async fn start_container(&self, id: &str) -> EngineResult<()>;
    async fn inspect_container(&self, id: &str) -> EngineResult<ContainerState>;
    /// Stops gracefully, killing after `timeout`; a stopped container is fine.
    async fn stop_container(&self, id: &str, timeout: Duration) -> EngineResult<()>;
    async fn kill_container(&self, id: &str, signal: &str) -> EngineResult<()>;
    async fn pause_container(&self, id: &str) -> EngineResult<()>;
    async fn unpause_container(&self, id: &str) -> EngineResult<()>;
    /// Kills and removes a container with its anonymous volumes; gone already is fine.
    async fn remove_container(&self, id: &str) -> EngineResult<()>;
    /// The container's output from its start, following it until it ends.
    fn logs(&self, id: &str) -> BoxStream<'static, EngineResult<Output>>;
    /// The same with each chunk's time (nanoseconds since the epoch) where the engine tells it,
    /// from after `after` on: how a broken stream is resumed without a gap or a repeat.
    fn logs_after(&self, id: &str, after: Option<i64>) -> BoxStream<'static, EngineResult<(Option<i64>, Output)>> {
        let _ = after;
        self.logs(id).map(|item| item.map(|out| (None, out))).boxed()
    }
    /// One reading of a container's resource usage.
    #[cfg_attr(not(feature = "monitoring"), allow(dead_code))]
    async fn usage(&self, id: &str) -> EngineResult<Usage>;
    /// Unpacks a tar archive into directory `dir` of the container (created or not, running or
    /// not).
    async fn put_archive(&self, id: &str, dir: &str, tar: Vec<u8>) -> EngineResult<()>;
    /// A path of the container (a file or a directory) as a tar archive.
    async fn get_archive(&self, id: &str, path: &str) -> EngineResult<Vec<u8>>;
    /// Runs `command` in the container, handing its output over as it comes; returns the exit
    /// code.
    async fn exec(&self, id: &str, command: &[String], output: &mut (dyn FnMut(Output) + Send)) -> EngineResult<i64>;

    // ---- networks
    async fn create_network(&self, name: &str, labels: &Labels) -> EngineResult<String>;
    /// Whether any network, the framework's or not, has this exact name.
    async fn network_exists(&self, name: &str) -> EngineResult<bool>;
    async fn inspect_network(&self, id: &str) -> EngineResult<NetworkState>;
    /// Removes a network; gone already is fine, `EngineErrorKind::InUse` while endpoints remain.
    async fn remove_network(&self, id: &str) -> EngineResult<()>;
    async fn connect_network(&self, network: &str, container: &str, aliases: &[String]) -> EngineResult<()>;
    async fn disconnect_network(&self, network: &str, container: &str) -> EngineResult<()>;

    // ---- volumes
    async fn create_volume(&self, name: &str, labels: &Labels) -> EngineResult<()>;
    /// Removes a volume; gone already is fine.
    async fn remove_volume(&self, name: &str) -> EngineResult<()>;

    // ---- listing and events
    /// The resources of a kind that the selector selects (always the framework's own).
    async fn list(&self, kind: ResourceKind, selector: &Selector) -> EngineResult<Vec<Found>>;
    /// Start and death events of the containers the selector selects, from now on (or from
    /// `since`, an event's `time_nanos`, to resume a broken stream without a gap).
    fn container_events(&self, selector: &Selector, since: Option<i64>) -> BoxStream<'static, EngineResult<Event>>;

    // ---- images
    /// The image's id and labels, `None` when the engine lacks it.
    async fn image(&self, reference: &str) -> EngineResult<Option<ImageInfo>>;
    /// Removes an image by id (not forced: an image a container uses stays, a conflict).
    async fn remove_image(&self, id: &str) -> EngineResult<()>;
    /// Pulls an image, handing over progress lines.
    async fn pull_image(
        &self,
        reference: &ImageRef,
        progress: &mut (dyn for<'s> FnMut(&'s str) + Send),
    ) -> EngineResult<()>;
    /// Builds an image from a tar context, handing over the builder's output lines.
    async fn build_image(
        &self,
        build: &ImageBuild,
        output: &mut (dyn for<'s> FnMut(&'s str) + Send),
    ) -> EngineResult<()>;
}

/// Everything needed to create a container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub env: Vec<(String, String)>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub labels: Labels,
    pub mounts: Vec<Mount>,
    /// Container ports (TCP) it serves on.
    pub ports: Vec<u16>,
    /// Publish every port on this host address, on a port the engine picks.
    pub publish_on: Option<String>,
    /// The network (id) it joins, under these aliases.
    pub network: Option<String>,
    pub aliases: Vec<String>,
    /// Joins the network namespace of this container (id) instead of a network: a helper
    /// that acts on that container's network (see [`crate::partition`]).
    pub network_of: Option<String>,
    pub init: bool,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub limits: Limits,
}

/// Resource limits of a container.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    pub memory_bytes: Option<u64>,
    pub cpus: Option<f64>,
}

/// A mount into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: MountSource,
    pub target: String,
    pub read_only: bool,
}

/// What is mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSource {
    /// A path on the engine's host.
    Host(String),
    /// A named volume.
    Volume(String),
}

/// A container's state as the engine reports it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerState {
    pub name: String,
    pub running: bool,
    pub paused: bool,
    pub exit_code: Option<i64>,
    /// The engine's word for it: created, running, exited...
    pub status: String,
    pub labels: Labels,
    /// Container port to the host port it is published on.
    pub host_ports: HashMap<u16, u16>,
    /// The container's address on each network, by network name.
    pub addresses: HashMap<String, String>,
    /// Its health, when its image (or its configuration) has a healthcheck.
    pub health: Option<Health>,
}

/// A container's health, by its healthcheck.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    /// What the last check printed.
    pub last_output: String,
}

/// A network's state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetworkState {
    /// How many containers are attached.
    pub containers: usize,
    /// The host's address on it.
    pub gateway: Option<String>,
}

/// A chunk of a container's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub stderr: bool,
    pub bytes: bytes::Bytes,
}

/// A container's resource usage.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[cfg_attr(not(feature = "monitoring"), allow(dead_code))]
pub struct Usage {
    pub cpu_seconds: f64,
    pub memory_bytes: f64,
    pub rx_bytes: f64,
    pub tx_bytes: f64,
}

/// An image present on the engine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageInfo {
    pub id: String,
    pub labels: Labels,
}

/// An image build.
#[derive(Debug, Clone)]
pub struct ImageBuild {
    pub tag: String,
    /// A tar of the build context.
    pub context: Vec<u8>,
    /// The Dockerfile's path inside the context.
    pub dockerfile: String,
    pub labels: Labels,
}

/// A container event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The container's name.
    pub container: String,
    pub kind: EventKind,
    /// When, in nanoseconds since the epoch (resume point of a broken stream).
    pub time_nanos: i64,
}

/// What happened to a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Started,
    Died { exit_code: i64 },
}

/// Resource kinds the framework creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    Container,
    Network,
    Volume,
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResourceKind::Container => "container",
            ResourceKind::Network => "network",
            ResourceKind::Volume => "volume",
        })
    }
}

/// What `list` finds: a resource's id (the name, for volumes) and its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub id: String,
    pub labels: Labels,
}

/// A label selector: resources carrying every one of these labels (a value of `None` asks
/// only for the key). It always includes the framework's managed label, so nothing else is
/// ever selected.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Selector {
    labels: Vec<(String, Option<String>)>,
}

impl Selector {
    /// The framework's resources.
    pub fn managed() -> Self {
        Selector { labels: vec![(crate::owner::MANAGED_LABEL.to_string(), Some("true".to_string()))] }
    }

    /// Also carrying `key=value`.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.labels.push((key.to_string(), Some(value.into())));
        self
    }

    /// Those of env `env`.
    pub fn env(self, env: &str) -> Self {
        self.with(crate::owner::ENV_LABEL, env)
    }

    /// Those of run `owner`.
    pub(crate) fn owner(self, owner: &crate::owner::Owner) -> Self {
        self.with(crate::owner::OWNER_LABEL, owner.to_string())
    }

    /// The `key=value` (or `key`) terms, the managed label first.
    pub fn terms(&self) -> impl Iterator<Item = String> + '_ {
        self.labels.iter().map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => k.clone(),
        })
    }

    /// Whether a resource with these labels is selected.
    pub fn selects(&self, labels: &Labels) -> bool {
        self.labels.iter().all(|(k, v)| match (labels.get(k), v) {
            (Some(have), Some(want)) => have == want,
            (Some(_), None) => true,
            (None, _) => false,
        })
    }
}

/// `docker` command-line filters for this selector, for instructions to a user.
impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let terms: Vec<String> = self.terms().map(|t| format!("--filter label={t}")).collect();
        f.write_str(&terms.join(" "))
    }
}

/// An image reference split as the engine pulls it: `repo` and a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    /// `repo[:tag][@digest]`, leaving a registry's `host:port/` alone.
    pub fn parse(reference: &str) -> ImageRef {
        let (name, digest) = match reference.split_once('@') {
            Some((name, digest)) => (name, Some(digest.to_string())),
            None => (reference, None),
        };
        let (repository, tag) = match name.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), Some(tag.to_string())),
            _ => (name.to_string(), None),
        };
        ImageRef { repository, tag, digest }
    }

    /// What to ask the engine for beside the repository: the digest if there is one (it pins
    /// the image), else the tag, else `latest`.
    pub fn pull_tag(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or("latest")
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_split_into_repository_tag_and_digest() {
        let r = |s: &str| {
            let r = ImageRef::parse(s);
            (r.repository.clone(), r.pull_tag().to_string())
        };
        assert_eq!(r("redis:7"), ("redis".into(), "7".into()));
        assert_eq!(r("redis"), ("redis".into(), "latest".into()));
        assert_eq!(r("localhost:5000/app"), ("localhost:5000/app".into(), "latest".into()));
        assert_eq!(r("localhost:5000/app:v1"), ("localhost:5000/app".into(), "v1".into()));
        assert_eq!(
            r("quay.io/prometheus/prometheus:v2.42.0"),
            ("quay.io/prometheus/prometheus".into(), "v2.42.0".into())
        );
    }

    #[test]
    fn a_digest_is_pulled_as_the_digest_not_latest() {
        let d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let r = ImageRef::parse(&format!("redis@{d}"));
        assert_eq!((r.repository.as_str(), r.pull_tag()), ("redis", d));
        let r = ImageRef::parse(&format!("localhost:5000/redis:7@{d}"));
        assert_eq!((r.repository.as_str(), r.tag.as_deref(), r.pull_tag()), ("localhost:5000/redis", Some("7"), d));
        assert_eq!(r.to_string(), format!("localhost:5000/redis:7@{d}"));
    }

    #[test]
    fn selectors_always_select_the_framework_only() {
        let s = Selector::managed().env("a");
        assert_eq!(s.terms().collect::<Vec<_>>(), ["dev.e2e.managed=true", "dev.e2e.env=a"]);
        let mut labels = Labels::new();
        labels.insert("dev.e2e.env".into(), "a".into());
        assert!(!s.selects(&labels), "a resource without the managed label is never selected");
        labels.insert("dev.e2e.managed".into(), "true".into());
        assert!(s.selects(&labels));
        labels.insert("dev.e2e.env".into(), "b".into());
        assert!(!s.selects(&labels));
        assert_eq!(s.to_string(), "--filter label=dev.e2e.managed=true --filter label=dev.e2e.env=a");
    }
}
