//! The suite of `tests/suite_e2e.rs` (20 tests of redis, memcached and the fixture service),
//! with one shared env: the services start once for the 20 tests (`cargo run --release --
//! shared`).

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
    // The bench's warm rerun: when each body starts (microseconds since the epoch).
    if let Ok(path) = std::env::var("E2E_BENCH_FIRST_BODY") {
        use std::io::Write;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros();
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
        f.write_all(format!("{now}\n").as_bytes()).unwrap();
    }
    assert_eq!(ask(&redis.redis_endpoint()?, b"PING\r\n").await, "+PONG\r\n");
    assert!(ask(&memcached.memcached_endpoint()?, b"version\r\n").await.starts_with("VERSION"));
    let metrics = reqwest::get(format!("http://{}/metrics", fixture.http_endpoint()?)).await.unwrap();
    assert_eq!(metrics.status(), 200);
    Ok(())
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {$(
        #[e2e::test(env = "suite_shared", shared)]
        async fn $name(redis: Redis, memcached: Memcached, fixture: Fixture) -> e2e::Result<()> {
            body(&redis, &memcached, &fixture).await
        }
    )*};
}

suite! { t01, t02, t03, t04, t05, t06, t07, t08, t09, t10, t11, t12, t13, t14, t15, t16, t17, t18, t19, t20 }
