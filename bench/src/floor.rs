//! The floor: the same engine calls the framework makes, issued directly with bollard, in
//! parallel, with nothing else around them. No framework can be faster than this on the same
//! engine; the ratios are taken against it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkCreateRequest, NetworkingConfig, PortBinding,
};
use bollard::query_parameters::{CreateContainerOptions, EventsOptions, LogsOptions, RemoveContainerOptions};
use bollard::Docker;
use futures_util::{future, StreamExt};

use crate::specs::{Ready, Spec};

/// Polling period of readiness checks (the framework's shortest is 2 ms, backing off).
const POLL: Duration = Duration::from_millis(5);

pub struct Floor {
    docker: Docker,
    http: reqwest::Client,
    /// A remote engine's host address (from `DOCKER_HOST=tcp://...`): ports are published
    /// there and dialled there, as the containers' own addresses are not routable.
    remote: Option<String>,
}

/// A started container: id and the address its port is dialled at.
struct Started {
    id: String,
    addr: String,
}

impl Floor {
    pub async fn connect() -> Result<Floor, String> {
        let docker = Docker::connect_with_defaults().map_err(|e| e.to_string())?;
        let docker = docker.negotiate_version().await.map_err(|e| e.to_string())?;
        let http =
            reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(2)).build().map_err(|e| e.to_string())?;
        let remote = match std::env::var("DOCKER_HOST").ok().as_deref().and_then(|h| h.strip_prefix("tcp://")) {
            Some(rest) => {
                let host = rest.split('/').next().unwrap_or(rest);
                let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
                let ip = tokio::net::lookup_host((host, 0)).await.map_err(|e| format!("resolving {host}: {e}"))?;
                Some(ip.map(|a| a.ip().to_string()).next().ok_or_else(|| format!("{host} does not resolve"))?)
            }
            None => None,
        };
        Ok(Floor { docker, http, remote })
    }

    /// Whether the engine is a remote one (`DOCKER_HOST=tcp://...`).
    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
    }

    async fn network(&self, name: &str) -> Result<String, String> {
        let req = NetworkCreateRequest { name: name.to_string(), driver: Some("bridge".into()), ..Default::default() };
        self.docker.create_network(req).await.map(|r| r.id).map_err(|e| format!("creating network {name}: {e}"))
    }

    async fn remove_network(&self, id: &str) -> Result<(), String> {
        self.docker.remove_network(id).await.map_err(|e| format!("removing network {id}: {e}"))
    }

    /// Creates and starts one container on `network`, its port published on 127.0.0.1 if asked
    /// (on a remote engine: always, on its host's address).
    async fn start(&self, network: &str, spec: &Spec, publish: bool) -> Result<Started, String> {
        let port = format!("{}/tcp", spec.port);
        let publish = publish || self.remote.is_some();
        let host_ip = self.remote.clone().unwrap_or_else(|| "127.0.0.1".into());
        let binding = PortBinding { host_ip: Some(host_ip), host_port: Some(String::new()) };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: (!spec.cmd.is_empty()).then(|| spec.cmd.clone()),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            exposed_ports: Some(vec![port.clone()]),
            host_config: Some(HostConfig {
                port_bindings: publish.then(|| HashMap::from([(port.clone(), Some(vec![binding]))])),
                network_mode: Some(network.to_string()),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    network.to_string(),
                    EndpointSettings { aliases: Some(vec![spec.name.to_string()]), ..Default::default() },
                )])),
            }),
            ..Default::default()
        };
        let name = format!("{network}-{}", spec.name);
        let opts = CreateContainerOptions { name: Some(name.clone()), ..Default::default() };
        let id = self.docker.create_container(Some(opts), body).await.map_err(|e| format!("creating {name}: {e}"))?.id;
        self.docker.start_container(&id, None).await.map_err(|e| format!("starting {name}: {e}"))?;
        let inspect = self.docker.inspect_container(&id, None).await.map_err(|e| format!("inspecting {name}: {e}"))?;
        let settings = inspect.network_settings.unwrap_or_default();
        let addr = match &self.remote {
            Some(host) => {
                let published = settings.ports.as_ref().and_then(|p| p.get(&port).cloned().flatten());
                let host_port = published.and_then(|b| b.into_iter().find_map(|b| b.host_port));
                format!("{host}:{}", host_port.ok_or_else(|| format!("{name} has no published port"))?)
            }
            None => {
                let ip = settings.networks.and_then(|n| n.get(network).and_then(|e| e.ip_address.clone()));
                format!("{}:{}", ip.ok_or_else(|| format!("{name} has no address on {network}"))?, spec.port)
            }
        };
        Ok(Started { id, addr })
    }

    /// Waits until one container is ready, as its spec says.
    async fn ready(&self, c: &Started, spec: &Spec) -> Result<(), String> {
        let addr = c.addr.clone();
        match &spec.ready {
            Ready::Http { path, body } => loop {
                if let Ok(resp) = self.http.get(format!("http://{addr}{path}")).send().await {
                    if resp.status().is_success() {
                        match body {
                            None => return Ok(()),
                            Some(want) if resp.text().await.is_ok_and(|t| t.contains(want)) => return Ok(()),
                            Some(_) => {}
                        }
                    }
                }
                tokio::time::sleep(POLL).await;
            },
            Ready::Tcp => loop {
                if tokio::net::TcpStream::connect(&addr).await.is_ok() {
                    return Ok(());
                }
                tokio::time::sleep(POLL).await;
            },
            Ready::Log { line, times } => {
                let opts =
                    LogsOptions { follow: true, stdout: true, stderr: true, tail: "all".into(), ..Default::default() };
                let mut logs = self.docker.logs(&c.id, Some(opts));
                let (mut seen, mut text) = (0, String::new());
                while let Some(chunk) = logs.next().await {
                    let chunk = chunk.map_err(|e| e.to_string())?;
                    text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
                    while let Some(end) = text.find('\n') {
                        seen += usize::from(text[..end].contains(line));
                        text.drain(..=end);
                    }
                    if seen >= *times {
                        return Ok(());
                    }
                }
                Err(format!("{} stopped before logging {line:?}", spec.name))
            }
        }
    }

    async fn remove(&self, ids: impl IntoIterator<Item = &String>) -> Result<(), String> {
        let opts = RemoveContainerOptions { force: true, v: true, link: false };
        let removals = ids.into_iter().map(|id| self.docker.remove_container(id, Some(opts.clone())));
        future::join_all(removals).await.into_iter().collect::<Result<(), _>>().map_err(|e| e.to_string())
    }

    async fn start_all(&self, network: &str, specs: &[Spec], publish: bool) -> (Vec<String>, Result<(), String>) {
        let started = future::join_all(specs.iter().map(|s| async move {
            let c = self.start(network, s, publish).await?;
            let ready = self.ready(&c, s).await;
            Ok::<_, String>((c.id, ready))
        }))
        .await;
        let mut ids = vec![];
        let mut result = Ok(());
        for s in started {
            match s {
                Ok((id, ready)) => {
                    ids.push(id);
                    result = result.and(ready);
                }
                Err(e) => result = Err(e),
            }
        }
        (ids, result)
    }

    /// Network, containers started and ready, everything removed.
    pub async fn up_down(&self, specs: &[Spec], network: &str) -> Result<Duration, String> {
        let t = Instant::now();
        let net = self.network(network).await?;
        let (ids, ready) = self.start_all(network, specs, true).await;
        let removed = self.remove(&ids).await;
        let net_removed = self.remove_network(&net).await;
        ready.and(removed).and(net_removed)?;
        Ok(t.elapsed())
    }

    /// The same engine work as e2e does since it reuses networks and relays ports itself: the
    /// network exists beforehand (untimed), no port is published.
    pub async fn up_down_same_work(&self, specs: &[Spec], network: &str) -> Result<Duration, String> {
        let net = self.network(network).await?;
        let t = Instant::now();
        let (ids, ready) = self.start_all(network, specs, false).await;
        let readied = t.elapsed();
        let removed = self.remove(&ids).await;
        let took = t.elapsed();
        if std::env::var_os("E2E_BENCH_PHASES").is_some() {
            println!("  floor-same-work phases: started and ready {readied:.1?}, removed {:.1?}", took - readied);
        }
        let net_removed = self.remove_network(&net).await;
        ready.and(removed).and(net_removed)?;
        Ok(took)
    }

    /// From create to the report of the container's death (its exit code and last lines),
    /// watching the engine's `die` event while probing.
    pub async fn crash(&self, spec: &Spec, network: &str) -> Result<(Duration, String), String> {
        let net = self.network(network).await?;
        let name = format!("{network}-{}", spec.name);
        let t = Instant::now();
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("event".to_string(), vec!["die".to_string()]),
            ("container".to_string(), vec![name.clone()]),
        ]);
        let mut events = self.docker.events(Some(EventsOptions { filters: Some(filters), ..Default::default() }));
        let outcome = async {
            let c = self.start(network, spec, true).await?;
            let died = async {
                let ev = events.next().await.ok_or("the event stream ended")?.map_err(|e| e.to_string())?;
                let code =
                    ev.actor.and_then(|a| a.attributes).and_then(|a| a.get("exitCode").cloned()).unwrap_or_default();
                let opts = LogsOptions { stdout: true, stderr: true, tail: "20".into(), ..Default::default() };
                let lines: Vec<String> = self
                    .docker
                    .logs(&c.id, Some(opts))
                    .filter_map(|l| async move { l.ok().map(|l| l.to_string()) })
                    .collect()
                    .await;
                Ok::<_, String>(format!("{name} exited with code {code}; last lines: {}", lines.concat()))
            };
            tokio::select! {
                died = died => Ok((t.elapsed(), died?, c.id)),
                _ = self.ready(&c, spec) => Err(format!("{name} became ready")),
            }
        }
        .await;
        let id = outcome.as_ref().map(|o| o.2.clone()).unwrap_or(name);
        let _ = self.remove([&id]).await;
        let _ = self.remove_network(&net).await;
        outcome.map(|(d, msg, _)| (d, msg))
    }

    /// Microseconds from the service logging `ready <µs>` to this loop noticing it.
    pub async fn readiness(&self, spec: &Spec, network: &str) -> Result<i128, String> {
        let net = self.network(network).await?;
        let outcome = async {
            let c = self.start(network, spec, true).await?;
            let ready = self.ready(&c, spec).await;
            let noticed = crate::epoch_micros();
            let opts = LogsOptions { stdout: true, stderr: true, tail: "all".into(), ..Default::default() };
            let lines: Vec<String> = self
                .docker
                .logs(&c.id, Some(opts))
                .filter_map(|l| async move { l.ok().map(|l| l.to_string()) })
                .collect()
                .await;
            let lines: Vec<String> = lines.concat().lines().map(str::to_string).collect();
            let result = ready.and_then(|()| {
                let at = crate::specs::ready_instant(&lines).ok_or("no `ready` line")?;
                Ok(noticed as i128 - at as i128)
            });
            let _ = self.remove([&c.id]).await;
            result
        }
        .await;
        let _ = self.remove_network(&net).await;
        outcome
    }

    /// Removal of 10 ready containers and their network, in parallel. With `same_work`, only
    /// the engine work e2e does: no port was published and the network stays (untimed removal).
    pub async fn close_ten(&self, specs: &[Spec], network: &str, same_work: bool) -> Result<Duration, String> {
        let net = self.network(network).await?;
        let (ids, ready) = self.start_all(network, specs, !same_work).await;
        let t = Instant::now();
        let removed = self.remove(&ids).await;
        let mut took = t.elapsed();
        let net_removed = self.remove_network(&net).await;
        if !same_work {
            took = t.elapsed();
        }
        ready.and(removed).and(net_removed)?;
        Ok(took)
    }
}
