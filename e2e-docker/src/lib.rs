//! The e2e framework's engine on Docker, through bollard: the only code of the framework that
//! names bollard. It implements the runtime's engine interface (`e2e_runtime::engine`) and adds
//! itself to the runtime's engine connectors; the `e2e` facade (package `e2e-framework`) links
//! it. Being a crate of its own, the runtime compiles beside bollard rather than after it.
//!
//! One file per resource; this one connects and turns bollard's errors into the engine's.
#![warn(missing_docs, missing_debug_implementations)]

use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;

use e2e_runtime::engine::{
    ContainerSpec, ContainerState, Engine, EngineError, EngineErrorKind, EngineResult, Event, Found, ImageBuild,
    ImageInfo, ImageRef, Labels, NetworkState, Output, ResourceKind, Selector, Usage,
};

mod archive;
mod containers;
mod events;
mod exec;
mod images;
mod inside;
mod networks;
mod resolve;
mod ssh;
mod volumes;

/// Docker's way in, for the runtime's `engine::connect`: the runtime finds it by linkme, so
/// whichever of the framework's code connects first needs no call into this crate.
#[linkme::distributed_slice(e2e_runtime::engine::CONNECTORS)]
static DOCKER: e2e_runtime::engine::Connect =
    || Box::pin(async { Docker::connect().await.map(|d| std::sync::Arc::new(d) as std::sync::Arc<dyn Engine>) });

/// A connected Docker engine. Its connections live on the tokio runtime it was connected on.
#[derive(Clone, Debug)]
pub(crate) struct Docker {
    api: bollard::Docker,
    address: String,
    /// Containers' own addresses are reachable from this process (a local engine on Linux).
    local: bool,
    /// A path of this process is the same path on the engine's host (a local engine, and this
    /// process not in a container).
    files: bool,
    /// The address by which this process reaches the engine's host, where ports are published.
    host: String,
    /// Over SSH, local ports forwarded to the ports published on the engine host's loopback.
    ssh: Option<std::sync::Arc<ssh::Link>>,
}

/// How long an engine call may take (bollard's own default).
const CALL_TIMEOUT_SECS: u64 = 120;

impl Docker {
    /// Connects to the engine the environment names, as the docker CLI resolves it (see
    /// [`resolve`]), and checks it answers. The error names every place tried.
    pub async fn connect() -> Result<Docker, (String, EngineError)> {
        let unavailable = |m: String| EngineError::new(EngineErrorKind::Unavailable, None, m);
        let candidates = resolve::candidates(&resolve::System)
            .map_err(|e| ("the Docker configuration".to_string(), unavailable(e)))?;
        let mut tried = Vec::new();
        for c in &candidates {
            match Docker::connect_to(c).await {
                Ok(d) => return Ok(d),
                Err(e) => tried.push(format!("{} ({}): {}", c.address, c.source, hint(&e))),
            }
        }
        let places = candidates.iter().map(|c| c.address.as_str()).collect::<Vec<_>>().join(", ");
        Err((places, unavailable(tried.join("; "))))
    }

    async fn connect_to(c: &resolve::Candidate) -> Result<Docker, EngineError> {
        let version = bollard::API_DEFAULT_VERSION;
        let (scheme, rest) = c.address.split_once("://").unwrap_or(("tcp", &c.address));
        // Over SSH, the API's connections and the published ports share one master connection.
        let ssh = (scheme == "ssh").then(|| std::sync::Arc::new(ssh::Link::new(&c.address)));
        let api = match (scheme, &c.tls) {
            ("unix", _) => bollard::Docker::connect_with_unix(&c.address, CALL_TIMEOUT_SECS, version),
            #[cfg(feature = "tls")]
            ("tcp" | "http" | "https", Some(certs)) => bollard::Docker::connect_with_ssl(
                &c.address,
                &certs.join("key.pem"),
                &certs.join("cert.pem"),
                &certs.join("ca.pem"),
                CALL_TIMEOUT_SECS,
                version,
            ),
            #[cfg(not(feature = "tls"))]
            ("tcp" | "http" | "https", Some(certs)) => {
                let m = format!(
                    "{} asks for TLS (certificates in {}), but e2e is built without its `tls` feature",
                    c.address,
                    certs.display()
                );
                return Err(EngineError::new(EngineErrorKind::BadRequest, None, m));
            }
            ("tcp" | "http", None) => bollard::Docker::connect_with_http(&c.address, CALL_TIMEOUT_SECS, version),
            ("ssh", _) => {
                let dialer = ssh::Dialer(ssh.clone().expect("an ssh link for ssh://"));
                let client =
                    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(dialer);
                let transport = move |req: bollard::BollardRequest| {
                    let client = client.clone();
                    async move { client.request(req).await.map_err(bollard::errors::Error::from) }
                };
                bollard::Docker::connect_with_custom_transport(transport, Some(&c.address), CALL_TIMEOUT_SECS, version)
            }
            (other, _) => {
                let m = format!("unsupported scheme {other:?} (use unix://, tcp:// or ssh://)");
                return Err(EngineError::new(EngineErrorKind::BadRequest, None, m));
            }
        }
        .map_err(unavailable)?;
        // The engines met here refuse API versions above theirs (1.41 on Docker 20.10): agree
        // on the lower of the two.
        let timed_out = || EngineError::new(EngineErrorKind::Timeout, None, "no answer within 10 s");
        // A 500 or a dropped connection of a busy engine is tried again; no engine at all is
        // reported within half a second more.
        let explain = |e: EngineError| match &ssh {
            Some(link) => link.explain(e),
            None => e,
        };
        let api = e2e_runtime::engine::retry::repeatable(|| async {
            tokio::time::timeout(Duration::from_secs(10), api.clone().negotiate_version())
                .await
                .map_err(|_| timed_out())?
                .map_err(unavailable)
        })
        .await
        .map_err(explain)?;
        e2e_runtime::engine::retry::repeatable(|| async {
            tokio::time::timeout(Duration::from_secs(10), api.ping())
                .await
                .map_err(|_| timed_out())?
                .map_err(unavailable)
        })
        .await
        .map_err(explain)?;
        let linux = cfg!(target_os = "linux");
        let loopback = || "127.0.0.1".to_string();
        let (local, files, host) = match scheme {
            // In one of the engine's own containers (docker outside of docker), its paths and
            // usually its network are not the host's.
            "unix" if linux => match inside::detect(&api).await {
                None => (true, true, loopback()),
                Some(inside::Inside::HostNetwork) => (true, false, loopback()),
                Some(inside::Inside::Gateway(gateway)) => (false, false, gateway),
            },
            "unix" => (false, false, loopback()),
            // Over SSH the ports are published on the host's loopback and forwarded (unless the
            // runnable is told another address of the host, `E2E_HOST_ADDRESS`).
            "ssh" => (false, false, loopback()),
            _ => (false, false, host_address(rest).await?),
        };
        Ok(Docker { api, address: c.address.clone(), local, files, host, ssh })
    }
}

/// The IP address of the host part of `host[:port][/path]` (with `user@` for ssh), which is
/// where this process reaches the engine's published ports.
async fn host_address(rest: &str) -> Result<String, EngineError> {
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6).to_string(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h).to_string(),
    };
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(ip.to_string());
    }
    let resolved = tokio::net::lookup_host((host.as_str(), 0)).await.ok().and_then(|mut a| a.next());
    resolved.map(|a| a.ip().to_string()).ok_or_else(|| {
        EngineError::new(EngineErrorKind::Unavailable, None, format!("the engine's host {host:?} does not resolve"))
    })
}

/// The engine's answer, with what to do about the usual mistake.
fn hint(e: &EngineError) -> String {
    if e.message().contains("HTTP request to an HTTPS server") {
        return format!(
            "{e} (the engine speaks TLS: set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH to its client certificates)"
        );
    }
    e.to_string()
}

/// A failure to connect is the engine being unavailable, whatever bollard calls it.
fn unavailable(e: bollard::errors::Error) -> EngineError {
    let mut error = engine_error(e);
    if error.status().is_none() {
        error = EngineError::new(EngineErrorKind::Unavailable, None, error.message());
    }
    error
}

/// The engine's error, by kind.
pub(crate) fn engine_error(e: bollard::errors::Error) -> EngineError {
    use bollard::errors::Error as B;
    match e {
        B::DockerResponseServerError { status_code, message } => {
            let kind = match status_code {
                404 if message.contains("No such image") => EngineErrorKind::NoSuchImage,
                404 => EngineErrorKind::NotFound,
                409 => EngineErrorKind::Conflict,
                400 => EngineErrorKind::BadRequest,
                // Docker 20.10 answers 403 "has active endpoints" (sometimes for endpoints of
                // containers that are gone: a phantom).
                _ if message.contains("active endpoints") => EngineErrorKind::InUse,
                _ => EngineErrorKind::Other,
            };
            EngineError::new(kind, Some(status_code), message)
        }
        B::DockerStreamError { error } => EngineError::new(EngineErrorKind::Other, None, error),
        B::RequestTimeoutError => EngineError::new(EngineErrorKind::Timeout, None, "the engine did not answer in time"),
        e @ (B::IOError { .. }
        | B::HyperResponseError { .. }
        | B::HyperLegacyError { .. }
        | B::HttpClientError { .. }
        | B::SocketNotFoundError(_)) => EngineError::new(EngineErrorKind::Unavailable, None, error_chain(&e)),
        other => EngineError::new(EngineErrorKind::Other, None, error_chain(&other)),
    }
}

use e2e_runtime::engine::error_chain;

/// Gone already counts as done.
fn gone_is_ok(result: Result<(), bollard::errors::Error>) -> EngineResult<()> {
    match result.map_err(engine_error) {
        Err(e) if e.kind() == EngineErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// bollard's label filter for a selector.
fn label_filters(selector: &Selector) -> std::collections::HashMap<String, Vec<String>> {
    std::collections::HashMap::from([("label".to_string(), selector.terms().collect())])
}

fn labels_of(labels: Option<std::collections::HashMap<String, String>>) -> Labels {
    labels.unwrap_or_default().into_iter().collect()
}

#[async_trait::async_trait]
impl Engine for Docker {
    fn address(&self) -> &str {
        &self.address
    }
    fn containers_reachable(&self) -> bool {
        self.local
    }
    fn shares_host_files(&self) -> bool {
        self.files
    }
    async fn reach_published(&self, port: u16) -> EngineResult<u16> {
        match &self.ssh {
            Some(f) => f.forward(port).await,
            None => Ok(port),
        }
    }
    fn host_address(&self) -> &str {
        &self.host
    }
    async fn create_container(&self, spec: &ContainerSpec) -> EngineResult<String> {
        self.create(spec).await
    }
    async fn start_container(&self, id: &str) -> EngineResult<()> {
        self.api.start_container(id, None).await.map_err(engine_error)
    }
    async fn inspect_container(&self, id: &str) -> EngineResult<ContainerState> {
        self.inspect(id).await
    }
    async fn stop_container(&self, id: &str, timeout: Duration) -> EngineResult<()> {
        self.stop(id, timeout).await
    }
    async fn kill_container(&self, id: &str, signal: &str) -> EngineResult<()> {
        self.kill(id, signal).await
    }
    async fn pause_container(&self, id: &str) -> EngineResult<()> {
        self.api.pause_container(id).await.map_err(engine_error)
    }
    async fn unpause_container(&self, id: &str) -> EngineResult<()> {
        self.api.unpause_container(id).await.map_err(engine_error)
    }
    async fn remove_container(&self, id: &str) -> EngineResult<()> {
        self.remove(id).await
    }
    fn logs(&self, id: &str) -> BoxStream<'static, EngineResult<Output>> {
        self.follow_logs(id, None).map(|item| item.map(|(_, out)| out)).boxed()
    }
    fn logs_after(&self, id: &str, after: Option<i64>) -> BoxStream<'static, EngineResult<(Option<i64>, Output)>> {
        self.follow_logs(id, after)
    }
    async fn put_archive(&self, id: &str, dir: &str, tar: Vec<u8>) -> EngineResult<()> {
        Docker::put_archive(self, id, dir, tar).await
    }
    async fn get_archive(&self, id: &str, path: &str) -> EngineResult<Vec<u8>> {
        Docker::get_archive(self, id, path).await
    }
    async fn usage(&self, id: &str) -> EngineResult<Usage> {
        self.stats(id).await
    }
    async fn exec(&self, id: &str, command: &[String], output: &mut (dyn FnMut(Output) + Send)) -> EngineResult<i64> {
        self.run(id, command, output).await
    }
    async fn create_network(&self, name: &str, labels: &Labels) -> EngineResult<String> {
        self.new_network(name, labels).await
    }
    async fn network_exists(&self, name: &str) -> EngineResult<bool> {
        self.network_named(name).await
    }
    async fn inspect_network(&self, id: &str) -> EngineResult<NetworkState> {
        self.network_state(id).await
    }
    async fn remove_network(&self, id: &str) -> EngineResult<()> {
        gone_is_ok(self.api.remove_network(id).await)
    }
    async fn connect_network(&self, network: &str, container: &str, aliases: &[String]) -> EngineResult<()> {
        self.attach(network, container, aliases).await
    }
    async fn disconnect_network(&self, network: &str, container: &str) -> EngineResult<()> {
        self.detach(network, container).await
    }
    async fn create_volume(&self, name: &str, labels: &Labels) -> EngineResult<()> {
        self.new_volume(name, labels).await
    }
    async fn remove_volume(&self, name: &str) -> EngineResult<()> {
        self.drop_volume(name).await
    }
    async fn list(&self, kind: ResourceKind, selector: &Selector) -> EngineResult<Vec<Found>> {
        match kind {
            ResourceKind::Container => self.list_containers(selector).await,
            ResourceKind::Network => self.list_networks(selector).await,
            ResourceKind::Volume => self.list_volumes(selector).await,
        }
    }
    fn container_events(&self, selector: &Selector, since: Option<i64>) -> BoxStream<'static, EngineResult<Event>> {
        self.events(selector, since)
    }
    async fn image(&self, reference: &str) -> EngineResult<Option<ImageInfo>> {
        self.image_info(reference).await
    }
    async fn remove_image(&self, id: &str) -> EngineResult<()> {
        self.remove_image_id(id).await
    }
    async fn pull_image(
        &self,
        reference: &ImageRef,
        progress: &mut (dyn for<'s> FnMut(&'s str) + Send),
    ) -> EngineResult<()> {
        self.pull(reference, progress).await
    }
    async fn build_image(
        &self,
        build: &ImageBuild,
        output: &mut (dyn for<'s> FnMut(&'s str) + Send),
    ) -> EngineResult<()> {
        self.build(build, output).await
    }
}
