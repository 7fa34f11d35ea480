//! A suite of 20 small integration tests written with testcontainers-rs 0.28, the way its users
//! write them: each test starts redis, memcached and the fixture service on its own network,
//! concurrently, talks to each once, and drops them (testcontainers removes them on drop).
//!
//! Needs testcontainers' cargo feature `http_wait_plain` for `WaitFor::http`.

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

async fn run(n: u32) {
    let network = format!("suite_tc_{n:02}_{}", std::process::id());

    let (redis, memcached, fixture) = tokio::join!(redis(&network), memcached(&network), fixture(&network));

    // redis: PING -> +PONG
    let (host, port) = address(&redis, REDIS_PORT).await;
    let mut stream = TcpStream::connect((host.as_str(), port)).await.expect("connect to redis");
    stream.write_all(b"PING\r\n").await.expect("send PING");
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).await.expect("redis reply");
    assert_eq!(&reply, b"+PONG\r\n");

    // memcached: version -> VERSION x.y.z
    let (host, port) = address(&memcached, MEMCACHED_PORT).await;
    let line = memcached_version(&host, port).await.expect("memcached reply");
    assert!(line.starts_with("VERSION"), "memcached answered {line:?}");

    // fixture: GET /metrics -> 200
    let (host, port) = address(&fixture, FIXTURE_PORT).await;
    let response = reqwest::get(format!("http://{host}:{port}/metrics")).await.expect("GET /metrics");
    assert_eq!(response.status(), 200);

    // redis, memcached and fixture are dropped here: testcontainers removes them, then the network.
}

macro_rules! suite {
    ($($name:ident = $n:literal),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                run($n).await;
            }
        )*
    };
}

suite! {
    suite_tc_01 = 1, suite_tc_02 = 2, suite_tc_03 = 3, suite_tc_04 = 4, suite_tc_05 = 5,
    suite_tc_06 = 6, suite_tc_07 = 7, suite_tc_08 = 8, suite_tc_09 = 9, suite_tc_10 = 10,
    suite_tc_11 = 11, suite_tc_12 = 12, suite_tc_13 = 13, suite_tc_14 = 14, suite_tc_15 = 15,
    suite_tc_16 = 16, suite_tc_17 = 17, suite_tc_18 = 18, suite_tc_19 = 19, suite_tc_20 = 20,
}
