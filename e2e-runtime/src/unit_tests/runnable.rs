//! Runnables: what they ask of the engine, their lifecycle and its state errors.

use super::{env, IMAGE};
use crate::engine::EngineErrorKind;
use crate::error::Error;
use crate::owner::{ENV_LABEL, MANAGED_LABEL, OWNER_LABEL, RUNNABLE_LABEL};
use crate::{Probe, StartOptions};

#[tokio::test]
async fn start_creates_the_container_the_options_describe() {
    let (fake, env) = env("u_spec").await;
    let r = env.runnable("svc").with_ports([("http", 8080)]).init(
        StartOptions::new(IMAGE)
            .command(["serve", "--port=8080"])
            .env_var("A", "1")
            .user("65534")
            .volume("data", "/data")
            .volume_ro("/etc/hosts", "/hosts")
            .memory_bytes(1 << 20)
            .cpus(0.5),
    );
    r.start().await.unwrap();
    let spec = fake.containers().remove(&super::named("u_spec", "svc")).expect("container <env>-<name>-<tag>");
    assert_eq!(spec.image, IMAGE);
    assert_eq!(spec.command.as_deref(), Some(&["serve".to_string(), "--port=8080".to_string()][..]));
    assert_eq!(spec.env, [("A".to_string(), "1".to_string())]);
    assert_eq!(spec.user.as_deref(), Some("65534"));
    assert_eq!(spec.ports, [8080]);
    assert_eq!(spec.aliases, ["svc", "u_spec-svc"], "the runnable's name and <env>-<name>, stable across runs");
    assert_eq!(spec.hostname.as_deref(), Some("svc"));
    assert_eq!(spec.network.as_deref(), Some(format!("n-{}", env.network_name()).as_str()));
    assert_eq!(spec.labels.get(MANAGED_LABEL).map(String::as_str), Some("true"));
    assert_eq!(spec.labels.get(ENV_LABEL).map(String::as_str), Some("u_spec"));
    assert_eq!(spec.labels.get(RUNNABLE_LABEL).map(String::as_str), Some("svc"));
    assert_eq!(spec.labels.get(OWNER_LABEL), Some(&crate::owner::current().to_string()));
    assert_eq!(spec.limits.memory_bytes, Some(1 << 20));
    assert_eq!(spec.limits.cpus, Some(0.5));
    let targets: Vec<_> = spec.mounts.iter().map(|m| (m.target.as_str(), m.read_only)).collect();
    assert_eq!(targets, [("/shared", false), ("/data", false), ("/hosts", true)]);
    assert!(
        fake.volumes().contains(&super::named("u_spec", "data")),
        "a named volume is the env's: {:?}",
        fake.volumes()
    );
    // A remote-like engine (containers unreachable) publishes the ports on loopback.
    assert_eq!(spec.publish_on.as_deref(), Some("127.0.0.1"));
    assert!(r.endpoint("http").unwrap().starts_with("127.0.0.1:"));
    env.close().await.unwrap();
}

#[tokio::test]
async fn operations_before_start_say_not_started() {
    let (_fake, env) = env("u_not_started").await;
    let r = env.runnable("svc").with_ports([("http", 80)]).init(StartOptions::new(IMAGE));
    for e in [
        r.stop().await.unwrap_err(),
        r.kill().await.unwrap_err(),
        r.pause().await.unwrap_err(),
        r.exec(["true"]).await.unwrap_err(),
        r.wait_ready().await.unwrap_err(),
        r.endpoint("http").unwrap_err(),
    ] {
        assert!(matches!(e, Error::NotStarted { ref runnable, .. } if runnable == "svc"), "{e}");
    }
    assert!(!r.is_running().await.unwrap());
    env.close().await.unwrap();
}

#[tokio::test]
async fn a_second_start_of_a_running_runnable_is_refused() {
    let (_fake, env) = env("u_twice").await;
    let r = env.runnable("svc").init(StartOptions::new(IMAGE));
    r.start().await.unwrap();
    assert!(matches!(r.start().await.unwrap_err(), Error::AlreadyStarted { .. }));
    assert!(r.is_running().await.unwrap());
    env.close().await.unwrap();
}

#[tokio::test]
async fn a_stopped_runnable_starts_afresh_in_a_new_container() {
    let (fake, env) = env("u_restart").await;
    let r = env.runnable("svc").init(StartOptions::new(IMAGE));
    r.start().await.unwrap();
    r.stop().await.unwrap();
    assert!(!r.is_running().await.unwrap());
    r.start().await.unwrap();
    assert!(r.is_running().await.unwrap());
    assert_eq!(fake.containers().len(), 1, "the old container is removed");
    let removed = fake.calls().iter().filter(|c| c.starts_with("remove_container")).count();
    assert_eq!(removed, 1);
    env.close().await.unwrap();
}

#[tokio::test]
async fn a_duplicate_name_is_reported_on_every_call() {
    let (fake, env) = env("u_dup").await;
    let _first = env.runnable("svc").init(StartOptions::new(IMAGE));
    let second = env.runnable("svc").init(StartOptions::new(IMAGE));
    for _ in 0..2 {
        let e = second.start().await.unwrap_err();
        assert!(matches!(e, Error::DuplicateRunnable { ref name, .. } if name == "svc"), "{e}");
    }
    assert!(fake.containers().is_empty());
    env.close().await.unwrap();
}

#[tokio::test]
async fn a_bad_name_is_reported_on_every_call() {
    let (_fake, env) = env("u_bad_name").await;
    let r = env.runnable("no spaces").init(StartOptions::new(IMAGE));
    for _ in 0..2 {
        let e = r.start_and_wait_ready().await.unwrap_err();
        assert!(matches!(e, Error::InvalidName { what: "runnable", .. }), "{e}");
        assert!(e.to_string().contains("\"no spaces\""), "{e}");
    }
    env.close().await.unwrap();
}

#[tokio::test]
async fn a_closed_env_starts_nothing() {
    let (fake, env) = env("u_closed").await;
    let before = env.runnable("before").init(StartOptions::new(IMAGE));
    env.close().await.unwrap();
    let after = env.runnable("after").init(StartOptions::new(IMAGE));
    for r in [&before, &after] {
        let e = r.start().await.unwrap_err();
        assert!(matches!(e, Error::EnvClosed { .. }), "{e}");
    }
    assert!(fake.containers().is_empty());
}

#[tokio::test]
async fn ports_are_checked_by_name_and_known_before_start() {
    let (_fake, env) = env("u_ports").await;
    let f = env.runnable("svc").with_ports([("http", 8080), ("grpc", 9090)]).future();
    assert_eq!(f.internal_endpoint("grpc").unwrap(), "u_ports-svc:9090");
    let e = f.internal_endpoint("metrics").unwrap_err();
    assert!(e.to_string().contains("\"metrics\"") && e.to_string().contains("http, grpc"), "{e}");
    let r = f.init(StartOptions::new(IMAGE).readiness(Probe::http("admin", "/")));
    let e = r.start().await.unwrap_err();
    assert!(matches!(e, Error::UnknownPort { ref port, .. } if port == "admin"), "{e}");
    let r = env.runnable("m").with_ports([("http", 80)]).init(StartOptions::new(IMAGE).metrics("nope"));
    assert!(matches!(r.start().await.unwrap_err(), Error::UnknownPort { .. }));
    env.close().await.unwrap();
}

#[tokio::test]
async fn a_missing_image_is_pulled_then_created() {
    let (fake, env) = env("u_pull").await;
    fake.pullable("registry.local/app:2");
    let r = env.runnable("svc").init(StartOptions::new("registry.local/app:2").quiet(true));
    r.start().await.unwrap();
    assert_eq!(fake.pulls(), [("registry.local/app".to_string(), "2".to_string())]);
    let creates = fake.calls().iter().filter(|c| c.starts_with("create_container")).count();
    assert_eq!(creates, 2, "created, refused for the image, pulled, created again");
    env.close().await.unwrap();
}

#[tokio::test]
async fn an_image_named_by_digest_is_pulled_by_its_digest() {
    let (fake, env) = env("u_digest").await;
    let digest = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let image = format!("redis@{digest}");
    fake.pullable(&image);
    env.runnable("r").init(StartOptions::new(&image).quiet(true)).start().await.unwrap();
    assert_eq!(fake.pulls(), [("redis".to_string(), digest.to_string())], "not redis:latest");
    env.close().await.unwrap();
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_is_named() {
    let (_fake, env) = env("u_no_image").await;
    let e = env.runnable("svc").init(StartOptions::new("nowhere/none:1").quiet(true)).start().await.unwrap_err();
    assert!(matches!(e, Error::ImageNotFound { ref image, .. } if image == "nowhere/none:1"), "{e}");
    env.close().await.unwrap();
}

#[tokio::test]
async fn a_name_taken_by_a_foreign_container_is_a_conflict_that_says_so() {
    let (fake, env) = env("u_conflict").await;
    fake.foreign_container(&super::named("u_conflict", "svc"), Default::default(), true);
    let e = env.runnable("svc").init(StartOptions::new(IMAGE)).start().await.unwrap_err();
    assert_eq!(e.engine_kind(), Some(EngineErrorKind::Conflict), "{e}");
    assert!(e.to_string().contains("already exists"), "{e}");
    // The report does not pass the foreign container off as this runnable.
    let report = env.describe().await;
    assert!(report.contains(&format!("svc [{}]: not started", super::named("u_conflict", "svc"))), "{report}");
    env.close().await.unwrap();
    assert_eq!(fake.containers().len(), 1, "the foreign container is never touched");
}

#[tokio::test]
async fn exec_returns_output_and_exit_code_and_needs_a_running_container() {
    let (fake, env) = env("u_exec").await;
    let mut b = crate::engine::fake::Behaviour::default();
    b.exec_codes.push_back(3);
    fake.image("fake/exec:1").behaviour("fake/exec:1", b);
    let r = env.runnable("svc").init(StartOptions::new("fake/exec:1").quiet(true));
    r.start().await.unwrap();
    let out = r.exec(["sh", "-c", "exit 3"]).await.unwrap();
    assert_eq!((out.exit_code, out.stdout.as_str(), out.success()), (3, "ran sh -c exit 3\n", false));
    r.stop().await.unwrap();
    assert!(matches!(r.exec(["true"]).await.unwrap_err(), Error::NotRunning { operation: "exec", .. }));
    assert!(matches!(r.signal("SIGHUP").await.unwrap_err(), Error::NotRunning { .. }));
    env.close().await.unwrap();
}

#[tokio::test]
async fn engine_failures_name_the_operation_and_the_runnable() {
    let (fake, env) = env("u_engine_fail").await;
    let r = env.runnable("svc").init(StartOptions::new(IMAGE));
    fake.fail_next("start_container", EngineErrorKind::Other);
    let e = r.start().await.unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("starting runnable \"svc\"") && msg.contains("injected failure of start_container"), "{msg}");
    env.close().await.unwrap();
}

#[tokio::test]
async fn pause_and_network_partition_reach_the_engine() {
    let (fake, env) = env("u_faults").await;
    let r = env.runnable("svc").init(StartOptions::new(IMAGE));
    r.start().await.unwrap();
    r.pause().await.unwrap();
    r.unpause().await.unwrap();
    r.disconnect().await.unwrap();
    r.reconnect().await.unwrap();
    let calls = fake.calls();
    for op in ["pause_container", "unpause_container", "disconnect_network", "connect_network"] {
        assert!(calls.iter().any(|c| c.starts_with(op)), "{op} in {calls:?}");
    }
    env.close().await.unwrap();
}

/// Docker 20.10 removing a container while it disconnects it leaves a phantom endpoint on the
/// network: a close waits for a disconnect its caller stopped waiting for (a timeout), and
/// removes only after the engine has carried it out.
#[tokio::test]
async fn close_waits_for_a_disconnect_its_caller_gave_up_on() {
    let (fake, env) = env("u_settle").await;
    let r = env.runnable("svc").init(StartOptions::new(IMAGE));
    r.start().await.unwrap();
    let release = fake.hold_next("disconnect_network");
    let gave_up = tokio::time::timeout(std::time::Duration::from_millis(50), r.disconnect()).await;
    assert!(gave_up.is_err(), "the held disconnect answered: {gave_up:?}");
    let closing = tokio::spawn({
        let env = env.clone();
        async move { env.close().await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let calls = fake.calls();
    assert!(!closing.is_finished(), "close did not wait for the disconnect: {calls:?}");
    assert!(!calls.iter().any(|c| c.starts_with("remove_container")), "removed during the disconnect: {calls:?}");
    release.notify_one();
    closing.await.unwrap().unwrap();
    let calls = fake.calls();
    let at = |op: &str| calls.iter().position(|c| c.starts_with(op)).unwrap_or_else(|| panic!("{op} in {calls:?}"));
    assert!(at("disconnect_network") < at("remove_container"), "{calls:?}");
    // After close, a change is refused before it reaches the engine.
    assert!(matches!(r.reconnect().await.unwrap_err(), Error::EnvClosed { .. }));
    assert_eq!(fake.calls().iter().filter(|c| c.starts_with("connect_network")).count(), 0);
}

#[tokio::test]
async fn a_killed_runnable_is_stopped_and_starts_again() {
    let (fake, env) = env("u_kill").await;
    let r = env.runnable("svc").with_ports([("http", 80)]).init(StartOptions::new(IMAGE));
    r.start().await.unwrap();
    let first = r.endpoint("http").unwrap();
    r.kill().await.unwrap();
    assert!(!r.is_running().await.unwrap());
    assert!(matches!(r.kill().await.unwrap_err(), Error::NotRunning { .. }), "a stopped runnable cannot be killed");
    r.start().await.unwrap();
    assert!(r.is_running().await.unwrap());
    assert!(r.endpoint("http").is_ok());
    assert_ne!(first, "", "{first}");
    assert_eq!(fake.containers().len(), 1);
    env.close().await.unwrap();
}
