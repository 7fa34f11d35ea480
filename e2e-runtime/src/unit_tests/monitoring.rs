//! What monitoring learns from the env: instrumented runnables as they start, stop and die.

use std::time::Duration;

use super::{env, IMAGE};
use crate::StartOptions;

#[tokio::test]
async fn instrumented_runnables_are_announced_while_they_run() {
    let (fake, env) = env("u_mon").await;
    let watch = env.watch_instrumented();
    let m = env
        .runnable("m")
        .with_ports([("http", 9090)])
        .init(StartOptions::new(IMAGE).metrics("http").metrics_path("/m"));
    let plain = env.runnable("plain").with_ports([("http", 80)]).init(StartOptions::new(IMAGE));
    crate::start_and_wait_ready([&m, &plain]).await.unwrap();
    {
        let set = watch.borrow();
        let t = set.get(&super::named("u_mon", "m")).expect("announced on start");
        assert_eq!(
            (t.runnable.as_str(), t.address.as_str(), t.path.as_str(), t.scheme.as_str()),
            ("m", "u_mon-m:9090", "/m", "http")
        );
        assert_eq!(set.len(), 1, "a runnable without a metrics port is no target");
    }
    m.stop().await.unwrap();
    assert!(watch.borrow().is_empty(), "withdrawn on stop");
    m.start().await.unwrap();
    assert_eq!(watch.borrow().len(), 1);
    fake.exit(&super::named("u_mon", "m"), 1, false);
    tokio::time::timeout(Duration::from_secs(5), async {
        while !watch.borrow().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("withdrawn when it dies");
    env.close().await.unwrap();
}

#[tokio::test]
async fn container_stats_cover_every_runnable_with_a_container() {
    let (_fake, env) = env("u_stats").await;
    let a = env.runnable("a").init(StartOptions::new(IMAGE));
    let _b = env.runnable("b").init(StartOptions::new(IMAGE));
    a.start().await.unwrap();
    let stats = env.container_stats().await;
    let names: Vec<_> = stats.iter().map(|(d, u)| (d.name.as_str(), u.cpu_seconds)).collect();
    assert_eq!(names, [("a", 1.5)]);
    env.close().await.unwrap();
}
