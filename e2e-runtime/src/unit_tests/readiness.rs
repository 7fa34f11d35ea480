//! Readiness: probes run against the fake, exits seen through the engine's events, and what
//! happens when those events break.

use std::time::{Duration, Instant};

use super::env;
use crate::engine::fake::Behaviour;
use crate::error::Error;
use crate::{Probe, StartOptions};

fn behaviour(lines: &[&str], exits_with: Option<i64>, exec_codes: &[i64]) -> Behaviour {
    Behaviour {
        lines: lines.iter().map(|l| (false, l.to_string())).collect(),
        exits_with,
        exec_codes: exec_codes.iter().copied().collect(),
    }
}

#[tokio::test]
async fn a_command_probe_passes_once_the_command_succeeds() {
    let (fake, env) = env("u_cmd_probe").await;
    fake.image("fake/slow:1").behaviour("fake/slow:1", behaviour(&[], None, &[1, 1, 0]));
    let r = env.runnable("svc").init(StartOptions::new("fake/slow:1").readiness(Probe::cmd(["ready?"])));
    r.start_and_wait_ready().await.unwrap();
    let execs = fake.calls().iter().filter(|c| c.starts_with("exec")).count();
    assert_eq!(execs, 3, "two failures, then ready");
    env.close().await.unwrap();
}

#[tokio::test]
async fn a_log_probe_passes_on_the_matching_line_the_given_number_of_times() {
    let (fake, env) = env("u_log_probe").await;
    fake.image("fake/log:1").behaviour("fake/log:1", behaviour(&["starting", "ready to serve"], None, &[]));
    let probe = Probe::log("ready to serve").times(2);
    let r = env.runnable("svc").init(StartOptions::new("fake/log:1").readiness(probe).quiet(true));
    r.start().await.unwrap();
    let waiting = tokio::spawn({
        let r = r.clone();
        async move { r.wait_ready().await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished(), "one matching line of two");
    fake.print(&super::named("u_log_probe", "svc"), "ready to serve");
    tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap().unwrap();
    assert_eq!(r.logs_tail(5), ["starting", "ready to serve", "ready to serve"]);
    env.close().await.unwrap();
}

#[tokio::test]
async fn an_exit_during_readiness_fails_the_wait_at_once_with_code_and_logs() {
    let (fake, env) = env("u_exit_ready").await;
    fake.image("fake/crash:1").behaviour("fake/crash:1", behaviour(&["config is bad"], Some(3), &[]));
    let r = env.runnable("svc").init(
        StartOptions::new("fake/crash:1")
            .readiness(Probe::cmd(["ready?"]))
            .readiness_timeout(Duration::from_secs(30))
            .quiet(true),
    );
    let started = Instant::now();
    let e = r.start_and_wait_ready().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "not a timeout: {:?}", started.elapsed());
    match &e {
        Error::Exited { runnable, exit_code, logs } => {
            assert_eq!((runnable.as_str(), *exit_code), ("svc", 3));
            assert_eq!(logs, &["config is bad"]);
        }
        other => panic!("want Exited, got {other}"),
    }
    env.close().await.unwrap();
}

#[tokio::test]
async fn without_a_probe_a_failed_exit_is_still_an_error() {
    let (fake, env) = env("u_exit_noprobe").await;
    fake.image("fake/crash:2").behaviour("fake/crash:2", behaviour(&[], Some(2), &[]));
    let r = env.runnable("svc").init(StartOptions::new("fake/crash:2").quiet(true));
    r.start().await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(matches!(r.wait_ready().await.unwrap_err(), Error::Exited { exit_code: 2, .. }));
    env.close().await.unwrap();
}

#[tokio::test]
async fn a_probe_that_never_passes_times_out_naming_the_probe_and_its_last_error() {
    let (fake, env) = env("u_timeout").await;
    fake.image("fake/never:1").behaviour("fake/never:1", behaviour(&[], None, &[1; 1000]));
    let r = env.runnable("svc").init(
        StartOptions::new("fake/never:1")
            .readiness(Probe::cmd(["check"]))
            .readiness_timeout(Duration::from_millis(200))
            .quiet(true),
    );
    let e = r.start_and_wait_ready().await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::NotReady { .. }), "{msg}");
    assert!(msg.contains("cmd([\"check\"])") && msg.contains("exited with 1"), "{msg}");
    env.close().await.unwrap();
}

#[tokio::test]
async fn a_death_while_the_event_stream_was_broken_is_still_seen() {
    let (fake, env) = env("u_events_gap").await;
    let r = env.runnable("svc").init(
        StartOptions::new(super::IMAGE)
            .readiness(Probe::log("never printed"))
            .readiness_timeout(Duration::from_secs(30))
            .quiet(true),
    );
    r.start().await.unwrap();
    let waiting = tokio::spawn({
        let r = r.clone();
        async move { r.wait_ready().await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    // The stream breaks, and the container dies before it is resumed: its event is lost.
    fake.break_events();
    fake.exit(&super::named("u_events_gap", "svc"), 9, true);
    let e = tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("no timeout").unwrap().unwrap_err();
    assert!(matches!(e, Error::Exited { exit_code: 9, .. }), "{e}");
    let resumed = fake.calls().iter().filter(|c| c.starts_with("container_events")).count();
    assert!(resumed >= 2, "the stream was resumed: {:?}", fake.calls());
    env.close().await.unwrap();
}

#[tokio::test]
async fn an_event_stream_that_cannot_be_resumed_fails_waits_clearly() {
    let (fake, env) = env("u_events_lost").await;
    let r = env.runnable("svc").init(
        StartOptions::new(super::IMAGE)
            .readiness(Probe::log("never printed"))
            .readiness_timeout(Duration::from_secs(60))
            .quiet(true),
    );
    r.start().await.unwrap();
    for _ in 0..10 {
        fake.fail_next("container_events", crate::engine::EngineErrorKind::Unavailable);
    }
    fake.break_events();
    let started = Instant::now();
    let e = tokio::time::timeout(Duration::from_secs(20), r.wait_ready()).await.expect("no timeout").unwrap_err();
    assert!(matches!(e, Error::EventsLost { .. }), "{e}");
    assert!(e.to_string().contains("event stream"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(20));
    env.close().await.unwrap();
}

#[test]
fn probe_misuse_and_bad_regexes_are_found_before_running() {
    assert!(Probe::tcp("p").status(200..=200).invalid().unwrap().contains("HTTP probes"));
    assert!(Probe::http("p", "/").times(2).invalid().unwrap().contains("log probes"));
    assert!(Probe::log("(").invalid().unwrap().contains("invalid log regex"));
    assert!(Probe::all_of([Probe::tcp("a"), Probe::log("[")]).invalid().is_some());
    assert!(Probe::http("p", "/").body_contains("ok").invalid().is_none());
}

#[test]
fn probes_describe_themselves_and_the_ports_they_dial() {
    let p = Probe::all_of([
        Probe::http("web", "/ready"),
        Probe::tcp("db"),
        Probe::cmd(["true"]),
        Probe::log("up").times(3),
    ]);
    assert_eq!(p.to_string(), "all_of(http(web, \"/ready\"), tcp(db), cmd([\"true\"]), log(\"up\", 3 times))");
    assert_eq!(p.ports(), ["web", "db"]);
    assert_eq!(Probe::https("s", "/").to_string(), "https(s, \"/\")");
}

#[tokio::test]
async fn a_bad_probe_is_refused_at_start() {
    let (fake, env) = env("u_bad_probe").await;
    let r = env.runnable("svc").init(StartOptions::new(super::IMAGE).readiness(Probe::log("(")));
    let e = r.start().await.unwrap_err();
    assert!(matches!(e, Error::InvalidName { what: "readiness probe", .. }), "{e}");
    assert!(fake.containers().is_empty());
    env.close().await.unwrap();
}

/// What a probe dials, for probes run without a runnable.
struct NoExec;

impl crate::probe::Exec for NoExec {
    fn exec(&self, _command: Vec<String>) -> futures_util::future::BoxFuture<'_, std::result::Result<i64, String>> {
        Box::pin(async { Err("no container".to_string()) })
    }
    fn health(
        &self,
    ) -> futures_util::future::BoxFuture<'_, std::result::Result<Option<crate::engine::Health>, String>> {
        Box::pin(async { Err("no container".to_string()) })
    }
}

async fn tcp_probe_on(addr: std::net::SocketAddr, published: bool) -> Result<(), crate::probe::ProbeError> {
    let addresses = std::collections::HashMap::from([("p".to_string(), addr.to_string())]);
    let http = crate::http::Client::new(std::time::Duration::from_secs(2));
    let logs = crate::logs::LogBuffer::default();
    let (_exit, exits) = tokio::sync::watch::channel(None);
    let target = crate::probe::Target {
        addresses: &addresses,
        http: &http,
        logs: &logs,
        logs_from: 0,
        exec: &NoExec,
        exits: &exits,
        published,
    };
    Probe::tcp("p").check(&target).await
}

#[tokio::test]
async fn a_tcp_probe_through_a_port_proxy_is_not_fooled_by_its_early_accept() {
    // A proxy whose service does not listen yet: it accepts, then closes at once.
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = proxy.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((conn, _)) = proxy.accept().await {
            drop(conn);
        }
    });
    let e = tcp_probe_on(addr, true).await.unwrap_err();
    assert!(e.to_string().contains("port proxy"), "{e}");
    // The container's own address (no proxy in between): a connection is enough.
    assert!(tcp_probe_on(addr, false).await.is_ok());

    // A service behind it: the connection stays open.
    let service = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = service.local_addr().unwrap();
    tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((conn, _)) = service.accept().await {
            open.push(conn);
        }
    });
    tcp_probe_on(addr, true).await.unwrap();
}
