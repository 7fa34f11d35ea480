//! The one place that talks to the engine. Everything above it speaks in envs, runnables and
//! labels; a Kubernetes backend would replace this module, not the callers.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EventMessage, NetworkConnectRequest,
    NetworkCreateRequest, NetworkDisconnectRequest, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, EventsOptions, KillContainerOptions,
    ListContainersOptions, ListNetworksOptions, ListVolumesOptions, LogsOptions,
    RemoveContainerOptions, RemoveVolumeOptions, StopContainerOptions,
};
use futures_util::{Stream, StreamExt};

use crate::error::{status_of, Error, Result};
use crate::owner::MANAGED_LABEL;

/// A connected engine client. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Client {
    api: bollard::Docker,
    /// Containers' own addresses are reachable from this process (a local engine on Linux).
    local: bool,
}

/// What `list` finds: a resource's id (or name for volumes) and its labels.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub id: String,
    pub labels: HashMap<String, String>,
}

/// A container's state as the engine reports it.
#[derive(Debug, Clone, Default)]
pub(crate) struct State {
    pub running: bool,
    pub paused: bool,
    pub exit_code: Option<i64>,
    pub status: String,
    /// Port name in the engine's form ("9090/tcp") to the host port it is published on.
    pub host_ports: HashMap<String, u16>,
    /// The container's address on each network, by network name.
    pub addresses: HashMap<String, String>,
}

impl Client {
    /// Connects as `DOCKER_HOST` says (the local socket by default) and checks the engine
    /// answers, with a clear error when it does not.
    pub async fn connect() -> Result<Client> {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string());
        let unavailable = |source| Error::DockerUnavailable { host: host.clone(), source };
        let api = bollard::Docker::connect_with_defaults().map_err(unavailable)?;
        // The engines these tests meet refuse API versions above theirs (1.41 on Docker 20.10):
        // agree on the lower of the two.
        let api = tokio::time::timeout(Duration::from_secs(10), api.negotiate_version())
            .await
            .map_err(|_| unavailable(bollard::errors::Error::RequestTimeoutError))?
            .map_err(unavailable)?;
        tokio::time::timeout(Duration::from_secs(10), api.ping())
            .await
            .map_err(|_| unavailable(bollard::errors::Error::RequestTimeoutError))?
            .map_err(unavailable)?;
        let local = cfg!(target_os = "linux") && host.starts_with("unix://");
        Ok(Client { api, local })
    }

    /// The raw API, for the image builder.
    pub fn api(&self) -> &bollard::Docker {
        &self.api
    }

    /// Whether containers' own addresses can be dialled from this process.
    pub fn local(&self) -> bool {
        self.local
    }

    // ------------------------------------------------------------------ images

    /// Makes sure `image` is present, pulling it (with progress lines) only when missing.
    pub async fn ensure_image(&self, image: &str, quiet: bool) -> Result<()> {
        match self.api.inspect_image(image).await {
            Ok(_) => return Ok(()),
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => return Err(Error::docker(format!("inspecting image {image:?}"), e)),
        }
        let (repo, tag) = split_tag(image);
        if !quiet {
            println!("e2e: pulling image {image} (not present locally)");
        }
        let opts = CreateImageOptions {
            from_image: Some(repo.to_string()),
            tag: Some(tag.to_string()),
            ..Default::default()
        };
        let mut progress = self.api.create_image(Some(opts), None, None);
        let mut last = String::new();
        while let Some(item) = progress.next().await {
            match item {
                Ok(info) => {
                    if let Some(err) = info.error_detail.and_then(|d| d.message) {
                        return Err(Error::ImageNotFound { image: image.into(), detail: err });
                    }
                    let line = format!(
                        "{} {}",
                        info.status.unwrap_or_default(),
                        info.id.unwrap_or_default()
                    );
                    if !quiet && line != last {
                        println!("e2e: pull {image}: {line}");
                        last = line;
                    }
                }
                Err(e) => {
                    return Err(Error::ImageNotFound { image: image.into(), detail: engine_message(&e) })
                }
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------ networks

    pub async fn create_network(&self, name: &str, labels: HashMap<String, String>) -> Result<String> {
        let req = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            labels: Some(labels),
            ..Default::default()
        };
        let resp = self
            .api
            .create_network(req)
            .await
            .map_err(|e| Error::docker(format!("creating network {name:?}"), e))?;
        Ok(resp.id)
    }

    /// Whether any network, the framework's or not, has this exact name.
    pub async fn network_name_taken(&self, name: &str) -> Result<bool> {
        let filters = HashMap::from([("name".to_string(), vec![format!("^{name}$")])]);
        let found = self
            .api
            .list_networks(Some(ListNetworksOptions { filters: Some(filters) }))
            .await
            .map_err(|e| Error::docker(format!("looking up network {name:?}"), e))?;
        Ok(found.iter().any(|n| n.name.as_deref() == Some(name)))
    }

    pub async fn remove_network(&self, id: &str) -> Result<()> {
        // Under load the engine (20.10) can report endpoints of containers it has just removed
        // as still active for a while: retry that answer for a few seconds.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match self.remove_network_once(id).await {
                Err(e) if is_active_endpoints(&e) && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    }

    /// One attempt, for callers that retry in their own way (or not at all).
    pub async fn remove_network_once(&self, id: &str) -> Result<()> {
        match self.api.remove_network(id).await {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            Err(e) => Err(Error::docker(format!("removing network {id}"), e)),
        }
    }

    pub async fn connect_network(&self, network: &str, container: &str, aliases: Vec<String>) -> Result<()> {
        let req = NetworkConnectRequest {
            container: container.to_string(),
            endpoint_config: Some(bollard::models::EndpointSettings {
                aliases: Some(aliases),
                ..Default::default()
            }),
        };
        self.api
            .connect_network(network, req)
            .await
            .map_err(|e| Error::docker(format!("connecting {container} to the network"), e))
    }

    pub async fn disconnect_network(&self, network: &str, container: &str) -> Result<()> {
        let req = NetworkDisconnectRequest { container: container.to_string(), force: Some(true) };
        self.api
            .disconnect_network(network, req)
            .await
            .map_err(|e| Error::docker(format!("disconnecting {container} from the network"), e))
    }

    async fn inspect_network(&self, network: &str) -> Result<bollard::models::NetworkInspect> {
        self.api
            .inspect_network(network, None)
            .await
            .map_err(|e| Error::docker(format!("inspecting network {network}"), e))
    }

    /// Whether containers are attached to the network.
    pub async fn network_in_use(&self, network: &str) -> Result<bool> {
        Ok(self.inspect_network(network).await?.containers.is_some_and(|c| !c.is_empty()))
    }

    /// The gateway address of a network: the host's address on it.
    pub async fn gateway(&self, network: &str) -> Result<Option<String>> {
        let n = self.inspect_network(network).await?;
        Ok(n.ipam.and_then(|i| i.config).unwrap_or_default().into_iter().find_map(|c| c.gateway))
    }

    // ------------------------------------------------------------------ volumes

    pub async fn create_volume(&self, name: &str, labels: HashMap<String, String>) -> Result<()> {
        let req = VolumeCreateRequest { name: Some(name.to_string()), labels: Some(labels), ..Default::default() };
        self.api
            .create_volume(req)
            .await
            .map(|_| ())
            .map_err(|e| Error::docker(format!("creating volume {name:?}"), e))
    }

    pub async fn remove_volume(&self, name: &str) -> Result<()> {
        match self.api.remove_volume(name, Some(RemoveVolumeOptions { force: true })).await {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            Err(e) => Err(Error::docker(format!("removing volume {name:?}"), e)),
        }
    }

    // ------------------------------------------------------------------ listing

    /// Containers, networks and volumes carrying all these labels (`key=value` or `key`),
    /// always restricted to the framework's own.
    pub async fn list(&self, kind: Kind, labels: &[String]) -> Result<Vec<Found>> {
        let mut label_filter = vec![format!("{MANAGED_LABEL}=true")];
        label_filter.extend(labels.iter().cloned());
        let filters = HashMap::from([("label".to_string(), label_filter)]);
        let ctx = || format!("listing {kind:?}s");
        Ok(match kind {
            Kind::Container => self
                .api
                .list_containers(Some(ListContainersOptions { all: true, filters: Some(filters), ..Default::default() }))
                .await
                .map_err(|e| Error::docker(ctx(), e))?
                .into_iter()
                .map(|c| Found { id: c.id.unwrap_or_default(), labels: c.labels.unwrap_or_default() })
                .collect(),
            Kind::Network => self
                .api
                .list_networks(Some(ListNetworksOptions { filters: Some(filters) }))
                .await
                .map_err(|e| Error::docker(ctx(), e))?
                .into_iter()
                .map(|n| Found { id: n.id.unwrap_or_default(), labels: n.labels.unwrap_or_default() })
                .collect(),
            Kind::Volume => self
                .api
                .list_volumes(Some(ListVolumesOptions { filters: Some(filters) }))
                .await
                .map_err(|e| Error::docker(ctx(), e))?
                .volumes
                .unwrap_or_default()
                .into_iter()
                .map(|v| Found { id: v.name, labels: v.labels })
                .collect(),
        })
    }

    // ------------------------------------------------------------------ containers

    /// Creates the container; when the engine lacks its image, pulls it (with progress unless
    /// `quiet`) and creates it then. Asking first would cost every start a round trip.
    pub async fn create_container(&self, name: &str, body: ContainerCreateBody, quiet: bool) -> Result<String> {
        let opts = CreateContainerOptions { name: Some(name.to_string()), ..Default::default() };
        let image = body.image.clone().unwrap_or_default();
        let created = match self.api.create_container(Some(opts.clone()), body.clone()).await {
            Err(e) if status_of(&e) == Some(404) && engine_message(&e).contains("No such image") => {
                self.ensure_image(&image, quiet).await?;
                self.api.create_container(Some(opts), body).await
            }
            other => other,
        };
        match created {
            Ok(r) => Ok(r.id),
            Err(e) if status_of(&e) == Some(409) => Err(Error::docker(
                format!(
                    "creating container {name:?}: a container with this name already exists and \
                     belongs to no dead e2e run (remove it or use another env name)"
                ),
                e,
            )),
            Err(e) => Err(Error::docker(format!("creating container {name:?}"), e)),
        }
    }

    pub async fn start_container(&self, id: &str, name: &str) -> Result<()> {
        self.api
            .start_container(id, None)
            .await
            .map_err(|e| Error::docker(format!("starting container {name:?}"), e))
    }

    pub async fn inspect(&self, id: &str) -> Result<State> {
        let c = self
            .api
            .inspect_container(id, None)
            .await
            .map_err(|e| Error::docker(format!("inspecting container {id}"), e))?;
        Ok(state_of(c))
    }

    pub async fn stop(&self, id: &str, timeout: Duration) -> Result<()> {
        let opts = StopContainerOptions { t: Some(timeout.as_secs().max(1) as i32), signal: None };
        match self.api.stop_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(304) => Ok(()),
            Err(e) => Err(Error::docker(format!("stopping container {id}"), e)),
        }
    }

    pub async fn kill(&self, id: &str, signal: &str) -> Result<()> {
        let opts = KillContainerOptions { signal: signal.to_string() };
        self.api
            .kill_container(id, Some(opts))
            .await
            .map_err(|e| Error::docker(format!("sending {signal} to container {id}"), e))
    }

    pub async fn pause(&self, id: &str) -> Result<()> {
        self.api.pause_container(id).await.map_err(|e| Error::docker(format!("pausing container {id}"), e))
    }

    pub async fn unpause(&self, id: &str) -> Result<()> {
        self.api.unpause_container(id).await.map_err(|e| Error::docker(format!("unpausing container {id}"), e))
    }

    /// Kills and removes a container with its anonymous volumes; gone already is fine.
    pub async fn remove_container(&self, id: &str) -> Result<()> {
        let opts = RemoveContainerOptions { force: true, v: true, link: false };
        match self.api.remove_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if matches!(status_of(&e), Some(404)) => Ok(()),
            // "removal already in progress": another closer got there first.
            Err(e) if matches!(status_of(&e), Some(409)) => Ok(()),
            Err(e) => Err(Error::docker(format!("removing container {id}"), e)),
        }
    }

    /// The container's output from its start, following it until it ends.
    pub fn logs(&self, id: &str) -> impl Stream<Item = Result<(bool, bytes::Bytes), bollard::errors::Error>> {
        let opts = LogsOptions { follow: true, stdout: true, stderr: true, tail: "all".into(), ..Default::default() };
        self.api.logs(id, Some(opts)).filter_map(|item| async move {
            match item {
                Ok(bollard::container::LogOutput::StdOut { message })
                | Ok(bollard::container::LogOutput::Console { message }) => Some(Ok((false, message))),
                Ok(bollard::container::LogOutput::StdErr { message }) => Some(Ok((true, message))),
                Ok(bollard::container::LogOutput::StdIn { .. }) => None,
                Err(e) => Some(Err(e)),
            }
        })
    }

    /// Container events (start, die) of the containers carrying these labels.
    pub fn container_events(&self, labels: &[String]) -> impl Stream<Item = Result<EventMessage, bollard::errors::Error>> {
        let mut label_filter = vec![format!("{MANAGED_LABEL}=true")];
        label_filter.extend(labels.iter().cloned());
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("event".to_string(), vec!["start".to_string(), "die".to_string()]),
            ("label".to_string(), label_filter),
        ]);
        self.api.events(Some(EventsOptions { filters: Some(filters), ..Default::default() }))
    }

    /// One reading of a container's resource usage.
    pub async fn usage(&self, id: &str) -> Result<Usage> {
        let opts = bollard::query_parameters::StatsOptions { stream: false, one_shot: true };
        let stats = self
            .api
            .stats(id, Some(opts))
            .next()
            .await
            .ok_or_else(|| Error::io(format!("reading stats of {id}"), std::io::ErrorKind::UnexpectedEof.into()))?
            .map_err(|e| Error::docker(format!("reading stats of {id}"), e))?;
        let cpu = stats.cpu_stats.and_then(|c| c.cpu_usage).and_then(|u| u.total_usage).unwrap_or(0);
        let memory = stats.memory_stats.and_then(|m| m.usage).unwrap_or(0);
        let (rx, tx) = stats
            .networks
            .unwrap_or_default()
            .values()
            .fold((0, 0), |(rx, tx), n| (rx + n.rx_bytes.unwrap_or(0), tx + n.tx_bytes.unwrap_or(0)));
        Ok(Usage { cpu_seconds: cpu as f64 / 1e9, memory_bytes: memory as f64, rx_bytes: rx as f64, tx_bytes: tx as f64 })
    }

    // ------------------------------------------------------------------ exec

    /// Runs `cmd` in the container; returns stdout, stderr and the exit code. Each output line
    /// goes to `on_line` (stderr flag, line) as it arrives.
    pub async fn exec(
        &self,
        id: &str,
        cmd: Vec<String>,
        mut on_line: impl FnMut(bool, &str) + Send,
    ) -> Result<(String, String, i64)> {
        use bollard::exec::{CreateExecOptions, StartExecResults};
        let what = || format!("running {:?} in container {id}", cmd);
        let created = self
            .api
            .create_exec(
                id,
                CreateExecOptions {
                    cmd: Some(cmd.clone()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| Error::docker(what(), e))?;
        let (mut out, mut err) = (String::new(), String::new());
        if let StartExecResults::Attached { mut output, .. } =
            self.api.start_exec(&created.id, None).await.map_err(|e| Error::docker(what(), e))?
        {
            let mut lines = crate::logs::LineSplitter::default();
            while let Some(chunk) = output.next().await {
                let (is_err, bytes) = match chunk.map_err(|e| Error::docker(what(), e))? {
                    bollard::container::LogOutput::StdErr { message } => (true, message),
                    bollard::container::LogOutput::StdOut { message }
                    | bollard::container::LogOutput::Console { message } => (false, message),
                    _ => continue,
                };
                let text = String::from_utf8_lossy(&bytes);
                if is_err { err.push_str(&text) } else { out.push_str(&text) }
                lines.push(is_err, &bytes, &mut on_line);
            }
            lines.flush(&mut on_line);
        }
        // The exit code can lag the end of the output by a moment.
        for _ in 0..100 {
            let info = self.api.inspect_exec(&created.id).await.map_err(|e| Error::docker(what(), e))?;
            if info.running != Some(true) {
                return Ok((out, err, info.exit_code.unwrap_or(-1)));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok((out, err, -1))
    }
}

/// A container's resource usage, as the engine's stats give it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Usage {
    pub cpu_seconds: f64,
    pub memory_bytes: f64,
    pub rx_bytes: f64,
    pub tx_bytes: f64,
}

/// Resource kinds the framework creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Container,
    Network,
    Volume,
}

fn state_of(c: ContainerInspectResponse) -> State {
    let st = c.state.unwrap_or_default();
    let mut host_ports = HashMap::new();
    let mut addresses = HashMap::new();
    if let Some(ns) = c.network_settings {
        for (port, bindings) in ns.ports.unwrap_or_default() {
            let published = bindings
                .unwrap_or_default()
                .into_iter()
                .filter_map(|b| b.host_port.and_then(|p| p.parse::<u16>().ok()))
                .next();
            if let Some(p) = published {
                host_ports.insert(port, p);
            }
        }
        for (net, ep) in ns.networks.unwrap_or_default() {
            if let Some(ip) = ep.ip_address.filter(|ip| !ip.is_empty()) {
                addresses.insert(net, ip);
            }
        }
    }
    State {
        running: st.running.unwrap_or(false),
        paused: st.paused.unwrap_or(false),
        exit_code: st.exit_code,
        status: st.status.map(|s| s.to_string()).unwrap_or_default(),
        host_ports,
        addresses,
    }
}

/// `repo[:tag]` → (repo, tag), leaving a registry's `host:port/` alone.
fn split_tag(image: &str) -> (&str, &str) {
    let image = image.split('@').next().unwrap_or(image);
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    }
}

/// The engine's own message, without the client's wrapping.
/// The engine refused to remove a network that (it says) containers still use. Docker 20.10
/// sometimes keeps such a phantom endpoint after the container is gone, until it restarts.
pub(crate) fn is_active_endpoints(e: &Error) -> bool {
    e.to_string().contains("active endpoints")
}

pub(crate) fn engine_message(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::split_tag;

    #[test]
    fn splits_tags() {
        assert_eq!(split_tag("redis:7"), ("redis", "7"));
        assert_eq!(split_tag("redis"), ("redis", "latest"));
        assert_eq!(split_tag("localhost:5000/app"), ("localhost:5000/app", "latest"));
        assert_eq!(split_tag("localhost:5000/app:v1"), ("localhost:5000/app", "v1"));
        assert_eq!(split_tag("quay.io/prometheus/prometheus:v2.42.0"), ("quay.io/prometheus/prometheus", "v2.42.0"));
    }
}
