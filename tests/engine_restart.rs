//! The engine restarting under a running test (issue 16, item 3). It needs an engine it may
//! stop and start, never this machine's own: `.ci/run` runs it on its second engine
//! (../shared/engines/remote-engine.sh) with
//!
//!     DOCKER_HOST=tcp://10.213.0.2:2375 E2E_ENGINE_STOP='<command>' E2E_ENGINE_START='<command>' \
//!         cargo test --test engine_restart -- --ignored
//!
//! While the engine is down, a wait in flight fails at once with a clear error (not at its
//! timeout), and a call fails naming the engine; once it is back, the env closes and nothing
//! labelled is left on it.

mod common;

use std::time::{Duration, Instant};

use e2e::{Env, Probe, StartOptions};

fn shell(var: &str) {
    let command = std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: this test needs a command that stops and one that starts the engine DOCKER_HOST names (.ci/run sets them for its second engine)")
    });
    let status = std::process::Command::new("sh").args(["-c", &command]).status().expect("sh runs");
    assert!(status.success(), "{var} ({command}) failed: {status}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "stops and starts the engine: .ci/run runs it on its second engine (E2E_ENGINE_STOP, E2E_ENGINE_START)"]
async fn an_engine_restart_fails_waits_at_once_and_leaves_nothing() -> e2e::Result<()> {
    let host = std::env::var("DOCKER_HOST").unwrap_or_default();
    assert!(
        !host.is_empty() && !host.contains("/var/run/docker.sock"),
        "DOCKER_HOST is {host:?}: this test restarts the engine, so it must name a second one"
    );
    let env = Env::docker("restart").await?;
    let looping = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"];
    let svc =
        env.runnable("svc").init(StartOptions::new("busybox:1.35").command(looping).readiness(Probe::cmd(["true"])));
    svc.start_and_wait_ready().await?;
    // A wait in flight: a probe that never passes, with a long timeout.
    let late = env.runnable("late").init(
        StartOptions::new("busybox:1.35")
            .command(looping)
            .readiness(Probe::cmd(["false"]))
            .readiness_timeout(Duration::from_secs(120)),
    );
    late.start().await?;
    let waiting = tokio::spawn({
        let late = late.clone();
        async move { late.wait_ready().await }
    });

    let stopped = Instant::now();
    tokio::task::spawn_blocking(|| shell("E2E_ENGINE_STOP")).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("the wait in flight ends within 30 s of the engine going down, not at its 120 s timeout")
        .unwrap();
    let e = waited.expect_err("the wait cannot succeed: its probe never passes");
    println!("the wait ended {:?} after the engine went down: {e}", stopped.elapsed());
    let text = e.to_string();
    assert!(text.contains("\"late\""), "the error names the runnable: {text}");
    assert!(
        ["exited", "event stream", "unavailable", "connect"].iter().any(|w| text.to_lowercase().contains(w)),
        "the error says what happened: {text}"
    );

    // A call while it is down fails at once, naming what failed.
    let called = Instant::now();
    let e = svc.exec(["true"]).await.expect_err("no engine, no exec");
    println!("an exec failed {:?} after it was asked: {e}", called.elapsed());
    assert!(called.elapsed() < Duration::from_secs(10), "the exec failed only after {:?}", called.elapsed());
    assert!(e.to_string().contains("\"svc\""), "the error names the runnable: {e}");

    tokio::task::spawn_blocking(|| shell("E2E_ENGINE_START")).await.unwrap();
    // Back: the env closes, and nothing of it is left.
    env.close().await?;
    common::assert_clean("restart");
    Ok(())
}
