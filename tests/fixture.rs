//! The runtime driving the project's own fixture service, packed from its cargo-built binary.

mod common;

use std::time::{Duration, Instant};

use common::{assert_clean, fixture_image};
use e2e::{Env, Error, Probe, StartOptions};

#[tokio::test(flavor = "multi_thread")]
async fn http_readiness_waits_for_the_service() -> e2e::Result<()> {
    let image = fixture_image().await;
    let env = Env::docker("fx_ready").await?;
    let svc = env
        .runnable("svc")
        .with_ports([("http", 8080)])
        .init(StartOptions::new(image).command(["--ready-after=1s"]).readiness(Probe::http("http", "/ready")));
    let t = Instant::now();
    svc.start_and_wait_ready().await?;
    assert!(t.elapsed() >= Duration::from_millis(900), "ready after {:?}", t.elapsed());
    let body = reqwest::get(format!("http://{}/ready", svc.endpoint("http")?)).await.unwrap();
    assert_eq!(body.status(), 200);
    // The fixture's own log says when it became ready (its output is followed as a stream:
    // the line may arrive just after the probe's answer, seen once in CI under load).
    let seen = Instant::now();
    while !svc.logs_tail(10).iter().any(|l| l.starts_with("ready ")) {
        assert!(seen.elapsed() < Duration::from_secs(10), "{:?}", svc.logs_tail(10));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    env.close().await?;
    assert_clean("fx_ready");
    Ok(())
}

/// docker-proxy accepts on the published port before the service listens: the TCP probe dials
/// the container's own address, so it is not fooled.
#[tokio::test(flavor = "multi_thread")]
async fn tcp_probe_is_not_fooled_by_the_published_port() -> e2e::Result<()> {
    let image = fixture_image().await;
    let env = Env::docker("fx_tcp").await?;
    let svc = env
        .runnable("late")
        .with_ports([("http", 8080)])
        .init(StartOptions::new(image).command(["--listen-after=1500ms"]).readiness(Probe::tcp("http")));
    let t = Instant::now();
    svc.start_and_wait_ready().await?;
    assert!(t.elapsed() >= Duration::from_millis(1400), "ready after {:?}", t.elapsed());
    // The service said it listens (its output reaches the test a little after it is written).
    let said = Instant::now();
    while !svc.logs_tail(10).iter().any(|l| l.starts_with("listening on")) {
        assert!(said.elapsed() < Duration::from_secs(5), "{:?}", svc.logs_tail(10));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    env.close().await?;
    assert_clean("fx_tcp");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_codes_signals_and_logs_on_request() -> e2e::Result<()> {
    let image = fixture_image().await;
    let env = Env::docker("fx_exit").await?;
    let svc = env
        .runnable("svc")
        .with_ports([("http", 8080)])
        .init(StartOptions::new(image).readiness(Probe::http("http", "/ready")));
    svc.start_and_wait_ready().await?;
    let base = format!("http://{}", svc.endpoint("http")?);

    // Log lines on request reach the kept tail.
    reqwest::get(format!("{base}/log?line=hello+from+the+test&stream=stderr&count=2")).await.unwrap();
    let t = Instant::now();
    while svc.logs_tail(5).iter().filter(|l| *l == "hello from the test").count() < 2 {
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", svc.logs_tail(5));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Graceful stop: SIGTERM reaches the service, which exits 0.
    svc.stop().await?;
    assert!(!svc.is_running().await?);
    assert!(svc.logs_tail(5).iter().any(|l| l.contains("received SIGTERM")), "{:?}", svc.logs_tail(5));

    // An exit with a chosen code during readiness is reported with that code.
    let crash = env.runnable("crash").with_ports([("http", 8080)]).init(
        StartOptions::new(image)
            .command(["--ready-after=10s", "--exit-after=300ms", "--exit-code=7"])
            .readiness(Probe::http("http", "/ready")),
    );
    match crash.start_and_wait_ready().await {
        Err(Error::Exited { exit_code: 7, logs, .. }) => {
            assert!(logs.iter().any(|l| l.contains("exiting with code 7")), "{logs:?}")
        }
        other => panic!("want exit code 7, got {other:?}"),
    }
    env.close().await?;
    assert_clean("fx_exit");
    Ok(())
}

/// The binary's image runs as an arbitrary non-root user.
#[tokio::test(flavor = "multi_thread")]
async fn a_scratch_image_from_a_binary_runs_as_any_user() -> e2e::Result<()> {
    let image = fixture_image().await;
    let env = Env::docker("fx_user").await?;
    let svc = env.runnable("svc").with_ports([("http", 8080)]).init(
        StartOptions::new(image).user("12345:12345").readiness(Probe::http("http", "/health").body_contains("ok")),
    );
    svc.start_and_wait_ready().await?;
    let metrics =
        reqwest::get(format!("http://{}/metrics", svc.endpoint("http")?)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("fixture_ticks_total"), "{metrics}");
    env.close().await?;
    assert_clean("fx_user");
    Ok(())
}
