//! Ten tests of one shared env: tests/acceptance.rs runs them with `cargo nextest run`, each in
//! a process of its own, and counts the container starts.

use e2e_scenarios::Sleeper;

macro_rules! shared {
    ($($name:ident),* $(,)?) => {$(
        #[e2e::test(env = "acc_shared", shared)]
        async fn $name(env: &e2e::Env, sleeper: Sleeper) -> e2e::Result<()> {
            assert_eq!(env.name(), "acc_shared");
            assert!(sleeper.is_running().await?);
            assert!(sleeper.exec(["true"]).await?.success());
            // Long enough for a run's processes to overlap (tests/acceptance.rs counts them).
            e2e_scenarios::timed(stringify!($name), 300).await;
            Ok(())
        }
    )*};
}

shared! { s01, s02, s03, s04, s05, s06, s07, s08, s09, s10 }
