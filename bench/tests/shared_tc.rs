//! The suite of `tests/suite_tc.rs` written the way testcontainers-rs users share containers
//! between tests: in a `static`, started once on a runtime that outlives every test (a test's
//! own runtime ends with it, and the container's client with it). Statics are never dropped,
//! so the containers are never removed: the bench counts what is left, then removes it.

use std::time::{Duration, Instant};

use testcontainers::{
    core::{wait::HttpWaitStrategy, IntoContainerPort, WaitFor},
    runners::AsyncRunner,
    ContainerAsync, GenericImage, ImageExt,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

const REDIS_PORT: u16 = 6379;
const MEMCACHED_PORT: u16 = 11211;
const FIXTURE_PORT: u16 = 8080;

/// The mapped `host:port` of a container's port, as testcontainers reports it.
async fn address(container: &ContainerAsync<GenericImage>, port: u16) -> (String, u16) {
    let host = container.get_host().await.expect("docker host").to_string();
    let host_port = container.get_host_port_ipv4(port).await.expect("mapped port");
    (host, host_port)
}

/// testcontainers has no TCP wait strategy, and a TCP connect to the mapped port succeeds
/// before memcached listens (docker-proxy accepts it): ask memcached its version every 10 ms
/// until it answers.
async fn wait_for_memcached(container: &ContainerAsync<GenericImage>) {
    let (host, host_port) = address(container, MEMCACHED_PORT).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(line) = memcached_version(&host, host_port).await {
            if line.starts_with("VERSION") {
                return;
            }
        }
        assert!(Instant::now() < deadline, "memcached at {host}:{host_port} never answered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends `version` and returns memcached's answer.
async fn memcached_version(host: &str, port: u16) -> std::io::Result<String> {
    let mut stream = BufReader::new(TcpStream::connect((host, port)).await?);
    stream.get_mut().write_all(b"version\r\n").await?;
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    Ok(line)
}

async fn redis(network: &str) -> ContainerAsync<GenericImage> {
    GenericImage::new("redis", "7.0.15")
        .with_exposed_port(REDIS_PORT.tcp())
        .with_wait_for(WaitFor::message_on_stdout("Ready to accept connections"))
        .with_network(network)
        .start()
        .await
        .expect("redis started")
}

async fn memcached(network: &str) -> ContainerAsync<GenericImage> {
    let container = GenericImage::new("memcached", "1.6.18")
        .with_exposed_port(MEMCACHED_PORT.tcp())
        .with_network(network)
        .start()
        .await
        .expect("memcached started");
    wait_for_memcached(&container).await;
    container
}

async fn fixture(network: &str) -> ContainerAsync<GenericImage> {
    GenericImage::new("e2e-fixture", "bench")
        .with_exposed_port(FIXTURE_PORT.tcp())
        .with_wait_for(WaitFor::http(
            HttpWaitStrategy::new("/ready").with_port(FIXTURE_PORT.tcp()).with_expected_status_code(200u16),
        ))
        .with_network(network)
        .start()
        .await
        .expect("fixture started")
}

/// The three services and their mapped addresses, started once for the whole binary.
struct Services {
    _containers: Vec<ContainerAsync<GenericImage>>,
    redis: (String, u16),
    memcached: (String, u16),
    fixture: (String, u16),
}

static SERVICES: std::sync::OnceLock<Services> = std::sync::OnceLock::new();

fn services() -> &'static Services {
    SERVICES.get_or_init(|| {
        // The runtime the containers' client lives on, leaked with them.
        let rt: &'static tokio::runtime::Runtime = Box::leak(Box::new(tokio::runtime::Runtime::new().unwrap()));
        std::thread::scope(|s| {
            s.spawn(|| {
                rt.block_on(async {
                    let network = format!("shared_tc_{}", std::process::id());
                    let (r, m, f) = tokio::join!(redis(&network), memcached(&network), fixture(&network));
                    let (redis, memcached, fixture) = (
                        address(&r, REDIS_PORT).await,
                        address(&m, MEMCACHED_PORT).await,
                        address(&f, FIXTURE_PORT).await,
                    );
                    Services { _containers: vec![r, m, f], redis, memcached, fixture }
                })
            })
            .join()
            .unwrap()
        })
    })
}

async fn run() {
    let s = tokio::task::spawn_blocking(services).await.unwrap();
    let mut stream = TcpStream::connect((s.redis.0.as_str(), s.redis.1)).await.expect("connect to redis");
    stream.write_all(b"PING\r\n").await.expect("send PING");
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).await.expect("redis reply");
    assert_eq!(&reply, b"+PONG\r\n");
    let line = memcached_version(&s.memcached.0, s.memcached.1).await.expect("memcached reply");
    assert!(line.starts_with("VERSION"), "memcached answered {line:?}");
    let response = reqwest::get(format!("http://{}:{}/metrics", s.fixture.0, s.fixture.1)).await.expect("GET /metrics");
    assert_eq!(response.status(), 200);
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                run().await;
            }
        )*
    };
}

suite! { t01, t02, t03, t04, t05, t06, t07, t08, t09, t10, t11, t12, t13, t14, t15, t16, t17, t18, t19, t20 }
