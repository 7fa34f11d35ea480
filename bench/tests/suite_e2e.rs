//! The suite of the side-by-side benchmark, written with e2e: 20 tests, each with its own env of
//! redis, memcached and the fixture service, and a short body. `tests/suite_tc.rs` is the same
//! suite written with testcontainers-rs. The bench (`cargo run --release -- suite`) builds the
//! fixture image `e2e-fixture:bench` first.

use e2e::db::{Memcached, Redis};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

e2e::workload! {
    /// The fixture service, ready when `/ready` answers 200.
    pub Fixture {
        image: "e2e-fixture:bench",
        ports: { http: 8080 },
        readiness: http(http, "/ready"),
    }
}

/// Sends `request` and returns the first reply.
async fn ask(addr: &str, request: &[u8]) -> String {
    let mut conn = TcpStream::connect(addr).await.expect("the service accepts connections");
    conn.write_all(request).await.unwrap();
    let mut buf = vec![0; 256];
    let n = conn.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

async fn body(redis: &Redis, memcached: &Memcached, fixture: &Fixture) -> e2e::Result<()> {
    assert_eq!(ask(&redis.redis_endpoint()?, b"PING\r\n").await, "+PONG\r\n");
    assert!(ask(&memcached.memcached_endpoint()?, b"version\r\n").await.starts_with("VERSION"));
    let metrics = reqwest::get(format!("http://{}/metrics", fixture.http_endpoint()?)).await.unwrap();
    assert_eq!(metrics.status(), 200);
    Ok(())
}

macro_rules! suite {
    ($($name:ident $env:literal),* $(,)?) => {$(
        #[e2e::test(env = $env)]
        async fn $name(redis: Redis, memcached: Memcached, fixture: Fixture) -> e2e::Result<()> {
            body(&redis, &memcached, &fixture).await
        }
    )*};
}

suite! {
    t01 "suite_e2e_01", t02 "suite_e2e_02", t03 "suite_e2e_03", t04 "suite_e2e_04", t05 "suite_e2e_05",
    t06 "suite_e2e_06", t07 "suite_e2e_07", t08 "suite_e2e_08", t09 "suite_e2e_09", t10 "suite_e2e_10",
    t11 "suite_e2e_11", t12 "suite_e2e_12", t13 "suite_e2e_13", t14 "suite_e2e_14", t15 "suite_e2e_15",
    t16 "suite_e2e_16", t17 "suite_e2e_17", t18 "suite_e2e_18", t19 "suite_e2e_19", t20 "suite_e2e_20",
}
