//! Containers: create from a spec, inspect into a state, stop, kill, remove, logs, stats, list.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointSettings, HostConfig, NetworkingConfig, PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptions, KillContainerOptions, ListContainersOptions, LogsOptions, RemoveContainerOptions,
    StatsOptions, StopContainerOptions,
};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;

use super::{engine_error, gone_is_ok, label_filters, labels_of, Docker};
use e2e_runtime::engine::{
    ContainerSpec, ContainerState, EngineError, EngineErrorKind, EngineResult, Found, Health, MountSource, Output,
    Selector, Usage,
};

impl Docker {
    pub(super) async fn create(&self, spec: &ContainerSpec) -> EngineResult<String> {
        let opts = CreateContainerOptions { name: Some(spec.name.clone()), ..Default::default() };
        let created = self.api.create_container(Some(opts), body(spec)).await.map_err(engine_error)?;
        Ok(created.id)
    }

    pub(super) async fn inspect(&self, id: &str) -> EngineResult<ContainerState> {
        let c = self.api.inspect_container(id, None).await.map_err(engine_error)?;
        Ok(state_of(c))
    }

    pub(super) async fn stop(&self, id: &str, timeout: Duration) -> EngineResult<()> {
        let opts = StopContainerOptions { t: Some(timeout.as_secs().max(1) as i32), signal: None };
        match self.api.stop_container(id, Some(opts)).await {
            // 304: stopped already.
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            other => other.map_err(engine_error),
        }
    }

    pub(super) async fn kill(&self, id: &str, signal: &str) -> EngineResult<()> {
        let opts = KillContainerOptions { signal: signal.to_string() };
        self.api.kill_container(id, Some(opts)).await.map_err(engine_error)
    }

    pub(super) async fn remove(&self, id: &str) -> EngineResult<()> {
        let opts = RemoveContainerOptions { force: true, v: true, link: false };
        match gone_is_ok(self.api.remove_container(id, Some(opts)).await) {
            // "removal already in progress": another closer got there first.
            Err(e) if e.kind() == EngineErrorKind::Conflict => Ok(()),
            other => other,
        }
    }

    /// The container's output with the engine's timestamps (taken off each chunk), from the
    /// second of `after` on, less what is not after it.
    pub(super) fn follow_logs(
        &self,
        id: &str,
        after: Option<i64>,
    ) -> BoxStream<'static, EngineResult<(Option<i64>, Output)>> {
        let since = after.map_or(0, |t| i32::try_from(t.div_euclid(1_000_000_000)).unwrap_or(0));
        let opts = LogsOptions {
            follow: true,
            stdout: true,
            stderr: true,
            tail: "all".into(),
            timestamps: true,
            since,
            ..Default::default()
        };
        self.api
            .logs(id, Some(opts))
            .filter_map(move |item| async move {
                use bollard::container::LogOutput;
                let (stderr, message) = match item {
                    Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => (false, message),
                    Ok(LogOutput::StdErr { message }) => (true, message),
                    Ok(LogOutput::StdIn { .. }) => return None,
                    Err(e) => return Some(Err(engine_error(e))),
                };
                let (time, bytes) = split_timestamp(message);
                if let (Some(t), Some(a)) = (time, after) {
                    if t <= a {
                        return None;
                    }
                }
                Some(Ok((time, Output { stderr, bytes })))
            })
            .boxed()
    }

    pub(super) async fn stats(&self, id: &str) -> EngineResult<Usage> {
        let opts = StatsOptions { stream: false, one_shot: true };
        let stats = self
            .api
            .stats(id, Some(opts))
            .next()
            .await
            .ok_or_else(|| EngineError::new(EngineErrorKind::Other, None, "the engine sent no stats"))?
            .map_err(engine_error)?;
        let cpu = stats.cpu_stats.and_then(|c| c.cpu_usage).and_then(|u| u.total_usage).unwrap_or(0);
        let memory = stats.memory_stats.and_then(|m| m.usage).unwrap_or(0);
        let (rx, tx) = stats
            .networks
            .unwrap_or_default()
            .values()
            .fold((0, 0), |(rx, tx), n| (rx + n.rx_bytes.unwrap_or(0), tx + n.tx_bytes.unwrap_or(0)));
        Ok(Usage {
            cpu_seconds: cpu as f64 / 1e9,
            memory_bytes: memory as f64,
            rx_bytes: rx as f64,
            tx_bytes: tx as f64,
        })
    }

    pub(super) async fn list_containers(&self, selector: &Selector) -> EngineResult<Vec<Found>> {
        let opts = ListContainersOptions { all: true, filters: Some(label_filters(selector)), ..Default::default() };
        let found = self.api.list_containers(Some(opts)).await.map_err(engine_error)?;
        Ok(found.into_iter().map(|c| Found { id: c.id.unwrap_or_default(), labels: labels_of(c.labels) }).collect())
    }
}

/// The engine's create body for a spec.
fn body(spec: &ContainerSpec) -> ContainerCreateBody {
    let binds = spec
        .mounts
        .iter()
        .map(|m| {
            let source = match &m.source {
                MountSource::Host(path) => path,
                MountSource::Volume(name) => name,
            };
            format!("{source}:{}{}", m.target, if m.read_only { ":ro" } else { "" })
        })
        .collect();
    let port_bindings = spec.publish_on.as_ref().map(|host_ip| {
        spec.ports
            .iter()
            .map(|p| {
                let binding = PortBinding { host_ip: Some(host_ip.clone()), host_port: Some(String::new()) };
                (format!("{p}/tcp"), Some(vec![binding]))
            })
            .collect()
    });
    let host_config = HostConfig {
        binds: Some(binds),
        port_bindings,
        network_mode: spec.network_of.as_ref().map(|id| format!("container:{id}")).or(spec.network.clone()),
        init: Some(spec.init),
        privileged: Some(spec.privileged),
        cap_add: (!spec.cap_add.is_empty()).then(|| spec.cap_add.clone()),
        memory: spec.limits.memory_bytes.map(|m| m as i64),
        nano_cpus: spec.limits.cpus.map(|c| (c * 1e9) as i64),
        ..Default::default()
    };
    let networking_config = spec.network.as_ref().filter(|_| spec.network_of.is_none()).map(|network| {
        let endpoint = EndpointSettings { aliases: Some(spec.aliases.clone()), ..Default::default() };
        NetworkingConfig { endpoints_config: Some(HashMap::from([(network.clone(), endpoint)])) }
    });
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: spec.command.clone(),
        entrypoint: spec.entrypoint.clone(),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        user: spec.user.clone(),
        labels: Some(spec.labels.clone().into_iter().collect()),
        hostname: spec.hostname.clone(),
        exposed_ports: Some(spec.ports.iter().map(|p| format!("{p}/tcp")).collect()),
        host_config: Some(host_config),
        networking_config,
        ..Default::default()
    }
}

fn state_of(c: ContainerInspectResponse) -> ContainerState {
    let st = c.state.unwrap_or_default();
    let mut host_ports = HashMap::new();
    let mut addresses = HashMap::new();
    if let Some(ns) = c.network_settings {
        for (port, bindings) in ns.ports.unwrap_or_default() {
            let Some(port) = port.strip_suffix("/tcp").and_then(|p| p.parse::<u16>().ok()) else { continue };
            let published =
                bindings.unwrap_or_default().into_iter().find_map(|b| b.host_port.and_then(|p| p.parse::<u16>().ok()));
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
    let health = st.health.and_then(|h| {
        let status = h.status.map(|s| s.to_string()).filter(|s| !s.is_empty() && s != "none")?;
        let last_output = h.log.and_then(|l| l.last().and_then(|r| r.output.clone())).unwrap_or_default();
        Some(Health { status, last_output: last_output.trim().to_string() })
    });
    ContainerState {
        name: c.name.unwrap_or_default().trim_start_matches('/').to_string(),
        running: st.running.unwrap_or(false),
        paused: st.paused.unwrap_or(false),
        exit_code: st.exit_code,
        status: st.status.map(|s| s.to_string()).unwrap_or_default(),
        labels: labels_of(c.config.and_then(|c| c.labels)),
        host_ports,
        addresses,
        health,
    }
}

/// A chunk of output the engine prefixed with its RFC 3339 time: the time in nanoseconds since
/// the epoch, and the chunk without it (as it was, if it has none).
fn split_timestamp(message: bytes::Bytes) -> (Option<i64>, bytes::Bytes) {
    let Some(space) = message.iter().take(40).position(|b| *b == b' ') else { return (None, message) };
    let time = std::str::from_utf8(&message[..space]).ok().and_then(|s| humantime::parse_rfc3339(s).ok());
    match time.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()) {
        Some(d) => (Some(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)), message.slice(space + 1..)),
        None => (None, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_come_off_the_chunks() {
        let (t, rest) = split_timestamp(bytes::Bytes::from_static(b"2026-12-03T06:50:00.123456789Z hello world\n"));
        assert_eq!(t, Some(1_796_280_600_123_456_789));
        assert_eq!(&rest[..], b"hello world\n");
        let (t, rest) = split_timestamp(bytes::Bytes::from_static(b"no time here\n"));
        assert_eq!((t, &rest[..]), (None, &b"no time here\n"[..]));
    }
}
