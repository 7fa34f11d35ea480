//! The testcontainers-rs 0.28 contestant: the same scenarios as the other contestants, written the
//! way a user of testcontainers writes them (`GenericImage` + `ImageExt` + `AsyncRunner`, readiness
//! through `WaitFor` wherever testcontainers offers it, removal by dropping the containers).
//!
//! Needs testcontainers' cargo feature `http_wait_plain` for `WaitFor::http` (not on by default).
//!
//! Removal: `ContainerAsync`'s `Drop` force-removes the container (`rm -f -v`) before `drop`
//! returns (on a multi-thread runtime through `block_in_place`, on a current-thread runtime through
//! testcontainers' own drop-worker thread), and the network that `with_network` created goes away
//! with the last container that used it. So "dropped" means "gone from the engine".

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use testcontainers::{
    core::{
        wait::{HttpWaitStrategy, LogWaitStrategy},
        IntoContainerPort, WaitFor,
    },
    runners::AsyncRunner,
    ContainerAsync, ContainerRequest, GenericImage, ImageExt,
};

use crate::specs::{self, Ready, Spec};

/// `Ready::Tcp` has no testcontainers wait strategy: we poll ourselves at this pace...
const TCP_POLL: Duration = Duration::from_millis(10);
/// ...for at most as long as testcontainers' default startup timeout.
const TCP_TIMEOUT: Duration = Duration::from_secs(60);

type Container = ContainerAsync<GenericImage>;

/// The container request for one spec, with testcontainers' readiness condition where it has one.
fn request(spec: &Spec, network: &str) -> ContainerRequest<GenericImage> {
    let (repo, tag) = spec.image_parts();
    let mut image = GenericImage::new(repo, tag).with_exposed_port(spec.port.tcp());
    match &spec.ready {
        Ready::Http { path, body } => image = image.with_wait_for(http_ready(spec.port, path, *body)),
        // postgres logs on stderr, redis on stdout: look at both; `with_times` counts occurrences.
        Ready::Log { line, times } => {
            image = image.with_wait_for(WaitFor::log(LogWaitStrategy::stdout_or_stderr(line).with_times(*times)))
        }
        Ready::Tcp => {}
    }
    let mut request = image.with_network(network);
    if !spec.cmd.is_empty() {
        request = request.with_cmd(spec.cmd.iter().cloned());
    }
    for (key, value) in &spec.env {
        request = request.with_env_var(*key, *value);
    }
    request
}

/// `GET <path>` on the mapped port answers 2xx (and, when asked, its body contains `body`).
/// testcontainers' default poll interval (100 ms) is kept.
fn http_ready(port: u16, path: &str, body: Option<&'static str>) -> WaitFor {
    WaitFor::http(HttpWaitStrategy::new(path).with_port(port.tcp()).with_response_matcher_async(
        move |response| async move {
            if !response.status().is_success() {
                return false;
            }
            match body {
                None => true,
                Some(wanted) => response.text().await.map(|text| text.contains(wanted)).unwrap_or(false),
            }
        },
    ))
}

/// Polls a TCP connect to the container's own address every 10 ms until one is accepted (the
/// mapped host port would accept at once: docker-proxy listens there before the service does).
async fn tcp_ready(container: &Container, port: u16) -> Result<(), String> {
    let ip = container.get_bridge_ip_address().await.map_err(|e| format!("container address: {e}"))?;
    let deadline = Instant::now() + TCP_TIMEOUT;
    loop {
        if tokio::net::TcpStream::connect((ip, port)).await.is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("no TCP connection to {ip}:{port} within {TCP_TIMEOUT:?}"));
        }
        tokio::time::sleep(TCP_POLL).await;
    }
}

/// Starts one container and waits until it is ready. On a failed wait the container is dropped,
/// which removes it.
async fn start_ready(spec: &Spec, network: &str) -> Result<Container, String> {
    let container = request(spec, network).start().await.map_err(|e| format!("{}: {e}", spec.name))?;
    if let Ready::Tcp = spec.ready {
        tcp_ready(&container, spec.port).await.map_err(|e| format!("{}: {e}", spec.name))?;
    }
    Ok(container)
}

/// Starts all specs concurrently. All or nothing: if one fails, the ones that started are dropped
/// (removed) before the error is returned.
async fn start_all(specs: &[Spec], network: &str) -> Result<Vec<Container>, String> {
    let results = join_all(specs.iter().map(|spec| start_ready(spec, network))).await;
    let mut containers = Vec::with_capacity(results.len());
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(container) => containers.push(container),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(containers)
    } else {
        drop(containers);
        Err(errors.join("; "))
    }
}

/// All of `specs` up and ready on the network `network`, then all removed with the network.
pub async fn up_down(specs: &[Spec], network: &str) -> Result<Duration, String> {
    let started = Instant::now();
    let containers = start_all(specs, network).await?;
    drop(containers);
    Ok(started.elapsed())
}

/// Starts the crashing spec with its HTTP readiness and testcontainers' default startup timeout:
/// the time from calling `start` to its error, and the error's text.
pub async fn crash(spec: &Spec, network: &str) -> Result<(Duration, String), String> {
    let request = request(spec, network);
    let started = Instant::now();
    match request.start().await {
        Ok(container) => {
            drop(container);
            Err(format!("{} started, but it was expected to fail", spec.name))
        }
        Err(e) => Ok((started.elapsed(), e.to_string())),
    }
}

/// µs from the fixture's own `ready <µs>` instant to the instant `start()` returned it ready.
pub async fn readiness(spec: &Spec, network: &str) -> Result<i128, String> {
    let container = request(spec, network).start().await.map_err(|e| format!("{}: {e}", spec.name))?;
    let noticed = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|e| e.to_string())?.as_micros() as i128;
    // The engine may hand the line on a moment after the service answered 200: look a few times.
    let deadline = Instant::now() + Duration::from_secs(5);
    let ready = loop {
        let stdout = container.stdout_to_vec().await.map_err(|e| format!("{}: stdout: {e}", spec.name))?;
        let lines: Vec<String> = String::from_utf8_lossy(&stdout).lines().map(str::to_string).collect();
        if let Some(ready) = specs::ready_instant(&lines) {
            break ready as i128;
        }
        if Instant::now() >= deadline {
            return Err(format!("{}: no `ready <µs>` line in its stdout: {lines:?}", spec.name));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    drop(container);
    Ok(noticed - ready)
}

/// Starts the specs (untimed) and returns how long dropping them all takes, their network included.
pub async fn close_ten(specs: &[Spec], network: &str) -> Result<Duration, String> {
    let containers = start_all(specs, network).await?;
    let started = Instant::now();
    drop(containers);
    Ok(started.elapsed())
}
