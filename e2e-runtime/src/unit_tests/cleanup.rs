//! Cleanup: closing envs, the network pool, sweeps of dead runs, removal of a whole run.

use std::collections::HashSet;
use std::time::Duration;

use super::{env, IMAGE};
use crate::cleanup::{netpool, removal};
use crate::engine::fake::Fake;
use crate::engine::{EngineErrorKind, Labels, ResourceKind};
use crate::env::Env;
use crate::error::Error;
use crate::owner::{self, Owner, ENV_LABEL, MANAGED_LABEL, OWNER_LABEL};
use crate::StartOptions;

fn labels(env: &str, owner: &str) -> Labels {
    Labels::from([
        (MANAGED_LABEL.to_string(), "true".to_string()),
        (ENV_LABEL.to_string(), env.to_string()),
        (OWNER_LABEL.to_string(), owner.to_string()),
    ])
}

/// An owner label of this host whose process is gone.
fn dead_owner() -> String {
    let me = owner::current().to_string();
    let (rest, _) = me.rsplit_once('/').unwrap();
    let (host, _) = rest.rsplit_once('/').unwrap();
    format!("{host}/99999999/1")
}

#[tokio::test]
async fn close_removes_containers_and_volumes_and_pools_the_network() {
    let (fake, env) = env("u_close").await;
    let a = env.runnable("a").init(StartOptions::new(IMAGE).volume("data", "/data"));
    let b = env.runnable("b").init(StartOptions::new(IMAGE));
    crate::start_and_wait_ready([&a, &b]).await.unwrap();
    assert_eq!(fake.containers().len(), 2);
    let network = env.network_name().to_string();
    let dir = env.shared_dir().to_path_buf();
    assert!(dir.exists());
    env.close().await.unwrap();
    assert!(fake.containers().is_empty() && fake.volumes().is_empty());
    assert!(!dir.exists(), "the env's directory is removed");
    assert_eq!(fake.networks(), std::slice::from_ref(&network), "the network stays, for the next env");
    assert!(netpool::idle_on(&*fake).iter().any(|n| n.name == network));
    // Idempotent.
    env.close().await.unwrap();
}

/// Docker 20.10 loses decrements of a network's endpoint counter when endpoints of the network
/// are deleted at the same time, and the network can then never be removed: a close detaches
/// the containers from the env's network one at a time, each removed once it is detached.
#[tokio::test]
async fn close_detaches_containers_one_at_a_time_each_removed_once_detached() {
    let (fake, env) = env("u_detach").await;
    let rs: Vec<_> = (0..3).map(|i| env.runnable(&format!("r{i}")).init(StartOptions::new(IMAGE))).collect();
    crate::start_and_wait_ready(&rs).await.unwrap();
    // The first detach held: no other detach and no removal starts meanwhile.
    let release = fake.hold_next("disconnect_network");
    let closing = tokio::spawn({
        let env = env.clone();
        async move { env.close().await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let calls = fake.calls();
    assert!(!closing.is_finished(), "{calls:?}");
    assert!(
        !calls.iter().any(|c| c.starts_with("disconnect_network") || c.starts_with("remove_container")),
        "{calls:?}"
    );
    release.notify_one();
    closing.await.unwrap().unwrap();
    let calls = fake.calls();
    let removed: Vec<&str> = calls.iter().filter_map(|c| c.strip_prefix("remove_container ")).collect();
    assert_eq!(removed.len(), 3, "{calls:?}");
    for id in removed {
        let at = |prefix: &str| calls.iter().position(|c| c.starts_with(prefix) && c.ends_with(id));
        let (detach, removal) = (at("disconnect_network"), at("remove_container"));
        assert!(detach.is_some() && detach < removal, "{id} removed before its detach: {calls:?}");
    }
    assert!(fake.containers().is_empty());
}

/// A dead run's containers are detached from the networks they are on (found by inspection)
/// before their removal too.
#[tokio::test]
async fn a_dead_runs_running_containers_are_detached_before_removal() {
    let fake = Fake::new();
    fake.image(IMAGE);
    let dead = dead_owner();
    let net = fake.foreign(ResourceKind::Network, "e2e-99999999-x-1", labels(netpool::POOL_ENV, &dead));
    let running = fake.foreign_container("u_detach_dead-a", labels("u_detach_dead", &dead), true);
    fake.attach(&running, &net);
    let stopped = fake.foreign_container("u_detach_dead-b", labels("u_detach_dead", &dead), false);
    removal::sweep_dead(&*fake, "u_detach_dead").await.unwrap();
    let calls = fake.calls();
    let at = |call: &str| calls.iter().position(|c| c == call).unwrap_or_else(|| panic!("{call} in {calls:?}"));
    let detach = at(&format!("disconnect_network e2e-99999999-x-1 {running}"));
    assert!(detach < at(&format!("remove_container {running}")), "{calls:?}");
    assert!(!calls.iter().any(|c| c.starts_with("disconnect_network") && c.ends_with(&stopped)), "{calls:?}");
    assert!(fake.containers().is_empty());
}

#[tokio::test]
async fn the_next_env_of_the_process_takes_the_pooled_network() {
    let fake = Fake::new();
    fake.image(IMAGE);
    let first = Env::on(fake.clone(), "u_pool_a").await.unwrap();
    let network = first.network_name().to_string();
    first.close().await.unwrap();
    let second = Env::on(fake.clone(), "u_pool_b").await.unwrap();
    assert_eq!(second.network_name(), network);
    second.close().await.unwrap();
    let creates = fake.calls().iter().filter(|c| c.starts_with("create_network")).count();
    assert_eq!(creates, 1);
    netpool::remove_idle(&*fake).await.unwrap();
    assert!(fake.networks().is_empty());
}

#[tokio::test]
async fn a_failed_removal_is_reported_and_the_network_is_not_pooled() {
    let (fake, env) = env("u_close_fail").await;
    let a = env.runnable("a").init(StartOptions::new(IMAGE));
    let b = env.runnable("b").init(StartOptions::new(IMAGE));
    crate::start_and_wait_ready([&a, &b]).await.unwrap();
    fake.fail_next("remove_container", EngineErrorKind::Other);
    fake.fail_next("remove_container", EngineErrorKind::Unavailable);
    let e = env.close().await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Many { ref errors } if errors.len() == 2), "both failures: {msg}");
    assert!(netpool::idle_on(&*fake).is_empty(), "a network that may still hold a container is not reused");
}

#[tokio::test]
async fn a_dead_runs_leftovers_are_swept_by_the_next_env_of_its_name() {
    let fake = Fake::new();
    fake.image(IMAGE);
    let dead = dead_owner();
    fake.foreign_container("u_sweep-old", labels("u_sweep", &dead), true);
    fake.foreign(ResourceKind::Volume, "u_sweep-vol", labels("u_sweep", &dead));
    // Another env's and a foreign tool's resources are never touched.
    fake.foreign_container("other-x", labels("u_other", &dead), false);
    fake.foreign_container("u_sweep-mine", Labels::new(), false);
    let env = Env::on(fake.clone(), "u_sweep").await.unwrap();
    let names: Vec<String> = fake.containers().into_keys().collect();
    assert_eq!(names, ["other-x", "u_sweep-mine"]);
    assert!(fake.volumes().is_empty());
    env.close().await.unwrap();
}

#[tokio::test]
async fn a_live_run_of_another_host_is_left_alone_and_worked_beside() {
    let fake = Fake::new();
    fake.image(IMAGE);
    fake.foreign_container("u_in_use-x", labels("u_in_use", "elsewhere/abcd0123/42/7"), true);
    fake.foreign_container("u_in_use-y", labels("u_in_use", "a label of another version"), true);
    let env = Env::on(fake.clone(), "u_in_use").await.unwrap();
    let r = env.runnable("x").init(StartOptions::new(IMAGE));
    r.start().await.unwrap();
    assert_eq!(fake.containers().len(), 3);
    assert_ne!(r.container_name(), "u_in_use-x", "a name of its own");
    env.close().await.unwrap();
    let left: Vec<String> = fake.containers().into_keys().collect();
    assert_eq!(left, ["u_in_use-x", "u_in_use-y"], "left alone");
}

#[tokio::test]
async fn remove_owned_removes_every_env_of_a_run_but_the_kept_ones() {
    let fake = Fake::new();
    let dead = dead_owner();
    for env in ["u_ro_a", "u_ro_b", "u_ro_kept"] {
        fake.foreign_container(&format!("{env}-x"), labels(env, &dead), true);
    }
    let pool = Labels::from([
        (MANAGED_LABEL.to_string(), "true".to_string()),
        (ENV_LABEL.to_string(), netpool::POOL_ENV.to_string()),
        (OWNER_LABEL.to_string(), dead.clone()),
    ]);
    fake.foreign(ResourceKind::Network, "e2e-1-1", pool);
    let kept = HashSet::from(["u_ro_kept".to_string()]);
    let owner = Owner::parse(&dead).unwrap();
    let removed = removal::remove_owned(&*fake, &owner, &kept).await.unwrap();
    assert_eq!(removed, 2);
    assert_eq!(fake.containers().into_keys().collect::<Vec<_>>(), ["u_ro_kept-x"]);
    assert!(fake.networks().is_empty(), "the run's idle pooled network goes too");
}

#[tokio::test]
async fn removal_reports_every_failure_not_the_first() {
    let fake = Fake::new();
    let me = owner::current().to_string();
    for n in ["u_rm-a", "u_rm-b", "u_rm-c"] {
        fake.foreign_container(n, labels("u_rm", &me), true);
    }
    fake.fail_next("remove_container", EngineErrorKind::Other);
    fake.fail_next("remove_container", EngineErrorKind::Timeout);
    let e = removal::remove_run(&*fake, "u_rm", owner::current(), None).await.unwrap_err();
    assert!(matches!(e, Error::Many { ref errors } if errors.len() == 2), "{e}");
    assert_eq!(fake.containers().len(), 2, "the third was removed");
}

#[tokio::test]
async fn a_phantom_endpoint_is_retried_then_reported_as_what_it_is() {
    let fake = Fake::new();
    let id = fake.foreign(ResourceKind::Network, "u-phantom", Labels::new());
    fake.phantom_endpoint("u-phantom", 2);
    netpool::remove_network(&*fake, &id, Duration::from_secs(2)).await.unwrap();
    assert!(fake.networks().is_empty(), "retried through the phantom");

    let id = fake.foreign(ResourceKind::Network, "u-phantom2", Labels::new());
    fake.phantom_endpoint("u-phantom2", 1000);
    let e = netpool::remove_network(&*fake, &id, Duration::ZERO).await.unwrap_err();
    assert_eq!(e.engine_kind(), Some(EngineErrorKind::InUse));
    assert!(e.to_string().contains("phantom endpoint") && e.to_string().contains("no container is attached"), "{e}");
}

#[tokio::test]
async fn pooled_networks_in_use_are_left_to_their_env() {
    let (fake, env) = env("u_pool_busy").await;
    let r = env.runnable("a").init(StartOptions::new(IMAGE));
    r.start().await.unwrap();
    netpool::remove_unused(&*fake, owner::current()).await.unwrap();
    assert!(fake.networks().contains(&env.network_name().to_string()), "a container uses it");
    env.close().await.unwrap();
}

#[tokio::test]
async fn a_kept_env_is_removed_by_nothing() {
    let (fake, env) = env("u_kept").await;
    env.runnable("a").init(StartOptions::new(IMAGE)).start().await.unwrap();
    let how = env.keep();
    assert!(how.contains("docker rm -fv") && how.contains(env.network_name()), "{how}");
    env.close().await.unwrap();
    assert_eq!(fake.containers().len(), 1);
    drop(env);
    assert_eq!(fake.containers().len(), 1, "nor by drop");
}

#[tokio::test]
async fn close_in_background_frees_the_name_once_removed() {
    let (fake, env) = env("u_background").await;
    env.runnable("a").init(StartOptions::new(IMAGE)).start().await.unwrap();
    env.close_in_background().await;
    assert!(env.is_closed());
    // The name's lock is released by the removal: taking it again waits for it.
    let again = tokio::time::timeout(Duration::from_secs(10), Env::on(fake.clone(), "u_background")).await;
    let again = again.expect("the lock is released").unwrap();
    assert!(fake.containers().is_empty(), "gone before the name is free");
    again.close().await.unwrap();
}

#[tokio::test]
async fn describe_reports_state_exit_code_and_last_lines() {
    let (fake, env) = env("u_describe").await;
    let b = crate::engine::fake::Behaviour {
        lines: vec![(true, "boom".into())],
        exits_with: Some(4),
        ..Default::default()
    };
    fake.image("fake/d:1").behaviour("fake/d:1", b);
    let r = env.runnable("svc").init(StartOptions::new("fake/d:1").quiet(true));
    let idle = env.runnable("idle").init(StartOptions::new(IMAGE));
    r.start().await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let report = env.describe().await;
    assert!(report.contains("2 runnable(s)"), "{report}");
    let (svc, idle_c) = (super::named("u_describe", "svc"), super::named("u_describe", "idle"));
    assert!(report.contains(&format!("- svc [{svc}]: exited (exit code 4)\n    | boom")), "{report}");
    assert!(report.contains(&format!("- idle [{idle_c}]: not started")), "{report}");
    drop(idle);
    env.close().await.unwrap();
}

/// `cargo e2e rm --dead`: a dead run's pooled network the engine refuses though no container
/// is attached (its phantom endpoint) is said, not failed on; the rest of the run goes.
#[tokio::test]
async fn removing_dead_runs_says_but_does_not_fail_on_the_engines_phantom() {
    let fake = Fake::new();
    let dead = dead_owner();
    fake.foreign(ResourceKind::Network, "e2e-99999999-dead-1", labels(netpool::POOL_ENV, &dead));
    fake.phantom_endpoint("e2e-99999999-dead-1", 1_000);
    fake.foreign(ResourceKind::Volume, "u_admin_dead-data", labels("u_admin_dead", &dead));
    let runs: Vec<_> = crate::admin::envs_on(&*fake).await.unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    let removed = crate::admin::remove(&*fake, &runs).await.expect("a phantom is not a failure");
    assert_eq!(removed, 1, "the env's run");
    assert_eq!(fake.volumes(), Vec::<String>::new());
    assert_eq!(fake.networks(), ["e2e-99999999-dead-1"], "the phantom stays: only a restart clears it");
    // Anything else that fails still fails.
    fake.foreign(ResourceKind::Volume, "u_admin_dead-data", labels("u_admin_dead", &dead));
    fake.fail_next("remove_volume", EngineErrorKind::Conflict);
    let runs: Vec<_> = crate::admin::envs_on(&*fake).await.unwrap();
    assert!(crate::admin::remove(&*fake, &runs).await.is_err());
}
