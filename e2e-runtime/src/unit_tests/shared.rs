//! Shared envs' declarations on the fake engine: one runnable per name and definition, started
//! once however many tests start it, and a mismatch reported by the second declaration.

use super::IMAGE;
use crate::engine::fake::Fake;
use crate::env::Env;
use crate::error::Error;
use crate::StartOptions;

#[tokio::test]
async fn a_declaration_repeated_alike_is_the_same_runnable_started_once() {
    let fake = Fake::new();
    fake.image(IMAGE);
    let env = Env::on_as(fake.clone(), "u_shared_same", true).await.unwrap();
    let declare = || env.runnable("db").with_ports([("sql", 5432)]).init(StartOptions::new(IMAGE));
    let (a, b) = (declare(), declare());
    assert!(a.is(&b), "the second test gets the first test's runnable");
    let sharing = a.sharing().expect("a shared env");
    let (la, lb) = ([&a], [&b]);
    let (ra, rb) = tokio::join!(crate::shared::start(sharing, &la), crate::shared::start(sharing, &lb));
    ra.unwrap();
    rb.unwrap();
    crate::shared::start(sharing, &[&a]).await.unwrap();
    assert_eq!(fake.containers().len(), 1, "one container for every start");
    assert!(a.is_running().await.unwrap());
    env.close().await.unwrap();
}

#[tokio::test]
async fn a_declaration_repeated_otherwise_fails_naming_both() {
    let fake = Fake::new();
    fake.image(IMAGE);
    let env = Env::on_as(fake.clone(), "u_shared_other", true).await.unwrap();
    let first = crate::registry::TEST
        .scope("t1".into(), async { env.runnable("db").init(StartOptions::new(IMAGE).command(["a"])) })
        .await;
    let second = crate::registry::TEST
        .scope("t2".into(), async { env.runnable("db").init(StartOptions::new(IMAGE).command(["b"])) })
        .await;
    assert!(!first.is(&second));
    let sharing = first.sharing().unwrap();
    crate::shared::start(sharing, &[&first]).await.unwrap();
    let e = crate::shared::start(sharing, &[&second]).await.unwrap_err();
    assert!(e.contains("runnable \"db\" of shared env \"u_shared_other\" is declared differently"), "{e}");
    assert!(e.contains("t1 declares") && e.contains("t2 declares"), "{e}");
    assert!(matches!(second.start().await, Err(Error::SharedMismatch { .. })));
    assert_eq!(fake.containers().len(), 1, "the mismatching one never starts");
    env.close().await.unwrap();
}

#[tokio::test]
async fn a_per_test_env_keeps_refusing_a_name_twice() {
    let (_fake, env) = super::env("u_shared_not").await;
    let _a = env.runnable("db").init(StartOptions::new(IMAGE));
    let b = env.runnable("db").init(StartOptions::new(IMAGE));
    assert!(matches!(b.start().await, Err(Error::DuplicateRunnable { .. })));
    env.close().await.unwrap();
}
