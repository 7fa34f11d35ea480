//! Engine calls tried again after a passing failure (engine::retry): what is repeated, what is
//! not, and that a creation whose answer was lost neither doubles nor leaks its resource.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::fake::Fake;
use crate::engine::retry::{Policy, Retrying};
use crate::engine::{ContainerSpec, Engine, EngineErrorKind, Labels, ResourceKind, Selector};
use crate::env::Env;
use crate::StartOptions;

fn quick() -> Policy {
    Policy { tries: 3, first_pause: Duration::from_millis(1) }
}

fn retrying() -> (Arc<Fake>, Retrying) {
    let fake = Fake::new();
    fake.image(super::IMAGE);
    let engine: Arc<dyn Engine> = fake.clone();
    (fake, Retrying::new(engine, quick()))
}

fn calls(fake: &Fake, op: &str) -> usize {
    fake.calls().iter().filter(|c| c.split(' ').next() == Some(op)).count()
}

fn spec(name: &str) -> ContainerSpec {
    let labels = Labels::from([
        (crate::owner::MANAGED_LABEL.to_string(), "true".to_string()),
        (crate::owner::RUNNABLE_LABEL.to_string(), name.to_string()),
    ]);
    ContainerSpec { name: name.into(), image: super::IMAGE.into(), labels, ..Default::default() }
}

#[tokio::test]
async fn a_broken_connection_is_tried_again() {
    let (fake, engine) = retrying();
    let id = engine.create_container(&spec("a")).await.unwrap();
    fake.fail_next("inspect_container", EngineErrorKind::Unavailable);
    assert_eq!(engine.inspect_container(&id).await.unwrap().name, "a");
    assert_eq!(calls(&fake, "inspect_container"), 2);
}

#[tokio::test]
async fn an_answer_about_the_request_is_not_tried_again() {
    let (fake, engine) = retrying();
    let e = engine.inspect_container("nothing").await.unwrap_err();
    assert_eq!(e.kind(), EngineErrorKind::NotFound);
    fake.fail_next("list", EngineErrorKind::BadRequest);
    assert!(engine.list(ResourceKind::Container, &Selector::managed()).await.is_err());
    assert_eq!((calls(&fake, "inspect_container"), calls(&fake, "list")), (1, 1));
}

#[tokio::test]
async fn a_failure_that_lasts_every_try_says_how_often_it_was_tried() {
    let (fake, engine) = retrying();
    for _ in 0..3 {
        fake.fail_next("list", EngineErrorKind::Unavailable);
    }
    let e = engine.list(ResourceKind::Network, &Selector::managed()).await.unwrap_err();
    assert_eq!(e.kind(), EngineErrorKind::Unavailable);
    assert!(e.message().contains("injected failure of list (tried 3 times; the engine at fake://"), "{e}");
    assert_eq!(calls(&fake, "list"), 3);
}

#[tokio::test]
async fn an_exec_runs_once_whatever_its_answer() {
    let (fake, engine) = retrying();
    let id = engine.create_container(&spec("a")).await.unwrap();
    engine.start_container(&id).await.unwrap();
    fake.fail_next("exec", EngineErrorKind::Unavailable);
    assert!(engine.exec(&id, &["true".into()], &mut |_| {}).await.is_err());
    assert_eq!(calls(&fake, "exec"), 1);
}

#[tokio::test]
async fn a_container_made_by_a_try_whose_answer_was_lost_is_the_result() {
    let (fake, engine) = retrying();
    fake.lose_next_answer("create_container");
    let id = engine.create_container(&spec("a")).await.unwrap();
    let made = fake.containers();
    assert_eq!(made.len(), 1, "made once: {made:?}");
    assert_eq!(engine.inspect_container(&id).await.unwrap().name, "a");
    // Without a failure first, a taken name is the conflict it is.
    let e = engine.create_container(&spec("a")).await.unwrap_err();
    assert_eq!(e.kind(), EngineErrorKind::Conflict, "{e}");
    // After one, a foreign container of that name (not ours by its labels) is a conflict too.
    fake.foreign_container("x", Labels::new(), false);
    fake.fail_next("create_container", EngineErrorKind::Unavailable);
    let e = engine.create_container(&spec("x")).await.unwrap_err();
    assert_eq!(e.kind(), EngineErrorKind::Conflict, "{e}");
}

#[tokio::test]
async fn a_network_made_by_a_try_whose_answer_was_lost_is_the_result() {
    let (fake, engine) = retrying();
    let labels = Labels::from([(crate::owner::MANAGED_LABEL.to_string(), "true".to_string())]);
    fake.lose_next_answer("create_network");
    let id = engine.create_network("n1", &labels).await.unwrap();
    assert_eq!(fake.networks(), ["n1"]);
    assert_eq!(id, "n-n1");
    assert_eq!(calls(&fake, "create_network"), 1, "found by its labels, not made again");
}

#[tokio::test]
async fn a_removal_whose_answer_was_lost_is_done() {
    let (fake, engine) = retrying();
    let id = engine.create_container(&spec("a")).await.unwrap();
    fake.lose_next_answer("remove_container");
    engine.remove_container(&id).await.unwrap();
    assert!(fake.containers().is_empty());
}

#[tokio::test]
async fn an_env_on_a_flaky_engine_runs_and_leaves_nothing() {
    let (fake, engine) = retrying();
    let env = Env::on(Arc::new(engine), "u_flaky").await.unwrap();
    fake.lose_next_answer("create_container");
    fake.fail_next("start_container", EngineErrorKind::Unavailable);
    fake.fail_next("inspect_container", EngineErrorKind::Unavailable);
    let r = env.runnable("svc").init(StartOptions::new(super::IMAGE));
    r.start_and_wait_ready().await.unwrap();
    assert!(r.is_running().await.unwrap());
    fake.lose_next_answer("remove_container");
    fake.fail_next("remove_network", EngineErrorKind::Unavailable);
    env.close().await.unwrap();
    assert!(fake.containers().is_empty(), "{:?}", fake.containers());
}
