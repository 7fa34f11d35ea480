//! Benchmark use: redis and memcached run in an env started once, outside the measured loops,
//! and removed after them. Each loop times request/response round trips from this process to
//! the service's published port.
//!
//!     cargo bench --bench cache
//!     E2E_BENCH_ITERATIONS=20000 cargo bench --bench cache

use std::time::{Duration, Instant};

use e2e::db::{Memcached, Redis};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::main]
async fn main() -> e2e::Result<()> {
    let iterations: usize = std::env::var("E2E_BENCH_ITERATIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(5_000);

    // Set-up, not measured: the env and both services, started in parallel and ready.
    let setup = Instant::now();
    let env = e2e::Env::docker("e2e_bench").await?;
    let (redis, memcached) = (Redis::new(&env, "redis"), Memcached::new(&env, "memcached"));
    let started = e2e::start_and_wait_ready([&*redis, &*memcached]).await;
    println!("env {:?} ready in {:?}", env.name(), setup.elapsed());

    let result = match started {
        Ok(()) => run(&redis, &memcached, iterations).await,
        Err(e) => Err(e),
    };
    // Tear-down, not measured, whatever the loops did.
    env.close().await?;
    result
}

async fn run(redis: &Redis, memcached: &Memcached, iterations: usize) -> e2e::Result<()> {
    let mut conn = TcpStream::connect(redis.redis_endpoint()?.as_str()).await.expect("redis accepts connections");
    conn.set_nodelay(true).unwrap();
    bench("redis SET", iterations, &mut conn, b"SET bench:key hello\r\n", b"+OK\r\n").await;
    bench("redis GET", iterations, &mut conn, b"GET bench:key\r\n", b"$5\r\nhello\r\n").await;

    let mut conn =
        TcpStream::connect(memcached.memcached_endpoint()?.as_str()).await.expect("memcached accepts connections");
    conn.set_nodelay(true).unwrap();
    bench("memcached set", iterations, &mut conn, b"set bench 0 0 5\r\nhello\r\n", b"STORED\r\n").await;
    bench("memcached get", iterations, &mut conn, b"get bench\r\n", b"VALUE bench 0 5\r\nhello\r\nEND\r\n").await;
    Ok(())
}

/// Times `iterations` round trips of `request`, each answered by exactly `response`, after a
/// short warm-up; prints the mean, median, 99th percentile and throughput.
async fn bench(name: &str, iterations: usize, conn: &mut TcpStream, request: &[u8], response: &[u8]) {
    let mut buf = vec![0u8; response.len()];
    let mut round_trip = async |conn: &mut TcpStream| {
        conn.write_all(request).await.expect("the request is sent");
        conn.read_exact(&mut buf).await.expect("the response arrives");
        assert_eq!(buf, response, "{name}: unexpected response {:?}", String::from_utf8_lossy(&buf));
    };
    for _ in 0..iterations.div_ceil(10) {
        round_trip(conn).await;
    }
    let mut samples = Vec::with_capacity(iterations);
    let total = Instant::now();
    for _ in 0..iterations {
        let t = Instant::now();
        round_trip(conn).await;
        samples.push(t.elapsed());
    }
    let total = total.elapsed();
    samples.sort();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    println!(
        "{name:<14} {iterations:>7} iterations  mean {:>9.1?}  p50 {:>9.1?}  p99 {:>9.1?}  {:>8.0} ops/s",
        total / iterations as u32,
        pick(0.5),
        pick(0.99),
        iterations as f64 / total.as_secs_f64().max(Duration::from_nanos(1).as_secs_f64())
    );
}
