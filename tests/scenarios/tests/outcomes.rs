//! One test per way a test can end. Several fail on purpose: tests/acceptance.rs checks how.

use e2e_scenarios::{meet, timed, Sleeper};

#[e2e::test(env = "acc_ok")]
async fn passes(env: &e2e::Env, sleeper: Sleeper) -> e2e::Result<()> {
    assert!(sleeper.is_running().await?);
    assert_eq!(env.name(), "acc_ok");
    Ok(())
}

#[e2e::test(env = "acc_err")]
async fn returns_err(_sleeper: Sleeper) -> Result<(), String> {
    Err("the body said no".to_string())
}

#[e2e::test(env = "acc_panic")]
async fn panics(_sleeper: Sleeper) {
    panic!("the body panicked");
}

#[e2e::test(env = "acc_timeout", timeout = "1s")]
async fn times_out(_sleeper: Sleeper) {
    tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
}

#[e2e::test(env = "acc_should_panic")]
#[should_panic(expected = "an expected failure")]
async fn should_panic_works(_sleeper: Sleeper) {
    panic!("an expected failure");
}

#[e2e::test(env = "acc_ignored")]
#[ignore]
async fn ignored_works() {
    panic!("an ignored test ran");
}

#[e2e::test(env = "acc_serial")]
async fn serial_a(_sleeper: Sleeper) {
    timed("serial_a", 1000).await;
}

#[e2e::test(env = "acc_serial")]
async fn serial_b(_sleeper: Sleeper) {
    timed("serial_b", 1000).await;
}

#[e2e::test(env = "acc_par_a")]
async fn parallel_a(_sleeper: Sleeper) {
    meet("parallel_a", "parallel_b").await;
}

#[e2e::test(env = "acc_par_b")]
async fn parallel_b(_sleeper: Sleeper) {
    meet("parallel_b", "parallel_a").await;
}

/// Runs until it is interrupted; only run on purpose (`--ignored`).
#[e2e::test(env = "acc_hang")]
#[ignore]
async fn hangs(_first: Sleeper, _second: Sleeper) {
    e2e_scenarios::mark("hangs", "start");
    tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
}
