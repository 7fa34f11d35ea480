//! Monitoring: Prometheus in the env discovering instrumented runnables as they come and go,
//! container resource metrics, and PromQL from the test. (The `monitoring` feature's.)
#![cfg(feature = "monitoring")]

mod common;

use std::time::Duration;

use common::{assert_clean, fixture_image};
use e2e::{monitoring, Env, Probe, StartOptions};

fn service(env: &Env, name: &str, image: &str) -> e2e::Runnable {
    env.runnable(name)
        .with_ports([("http", 8080)])
        .init(StartOptions::new(image).metrics("http").readiness(Probe::http("http", "/ready")))
}

#[tokio::test(flavor = "multi_thread")]
async fn discovers_runnables_as_they_start_and_stop() -> e2e::Result<()> {
    let image = fixture_image().await;
    let env = Env::docker("mon_discovery").await?;
    let early = service(&env, "early", image);
    early.start_and_wait_ready().await?;

    let mon = monitoring::start(&env).await?;
    let late = service(&env, "late", image);
    late.start_and_wait_ready().await?;

    // Both instrumented runnables, the one started before monitoring and the one after, are
    // scraped; so is Prometheus itself.
    let up = "up{job=\"e2e\"} == 1";
    let both = |s: &[monitoring::Sample]| {
        let mut names: Vec<_> = s.iter().map(|s| s.metric["runnable"].as_str()).collect();
        names.sort();
        names == ["early", "late", "monitoring"]
    };
    mon.wait_query(up, Duration::from_secs(30), both).await?;

    // The fixture's own series arrive, labelled by runnable.
    let ticks = mon
        .wait_query("fixture_ticks_total{runnable=\"late\"}", Duration::from_secs(30), |s| {
            s.len() == 1 && s[0].value > 0.0
        })
        .await?;
    assert_eq!(ticks[0].metric["container"], late.container_name());

    // A stopped runnable is forgotten.
    late.stop().await?;
    mon.wait_query("up{job=\"e2e\"}", Duration::from_secs(30), |s| {
        s.iter().all(|s| s.metric["runnable"] != "late") && s.len() == 2
    })
    .await?;
    // So is one that dies by itself.
    reqwest::get(format!("http://{}/exit?code=3", early.endpoint("http")?)).await.unwrap();
    mon.wait_query("up{job=\"e2e\"}", Duration::from_secs(30), |s| s.len() == 1).await?;

    // Resource metrics of the containers, without cadvisor.
    let memory = mon
        .wait_query("container_memory_usage_bytes{runnable=\"monitoring\"}", Duration::from_secs(30), |s| {
            s.len() == 1 && s[0].value > 0.0
        })
        .await?;
    assert_eq!(memory[0].metric["name"], mon.prometheus().container_name());
    mon.wait_query("container_cpu_usage_seconds_total{runnable=\"monitoring\"} > 0", Duration::from_secs(30), |s| {
        s.len() == 1
    })
    .await?;

    // The test process's own usage, as job `test_process`, with no cgroup to set up.
    let pid = std::process::id().to_string();
    for (series, at_least) in
        [("process_threads", 2.0), ("process_open_fds", 3.0), ("process_resident_memory_bytes", 1e6)]
    {
        let query = format!("{series}{{job=\"test_process\"}}");
        let got = mon.wait_query(&query, Duration::from_secs(30), |s| s.len() == 1 && s[0].value >= at_least).await?;
        assert_eq!(got[0].metric["pid"], pid, "{series}");
    }
    mon.wait_query("process_cpu_seconds_total{job=\"test_process\"} > 0", Duration::from_secs(30), |s| s.len() == 1)
        .await?;

    // A bad query says what is wrong with it.
    let e = mon.query("up{").await.unwrap_err().to_string();
    assert!(e.contains("up{") && e.contains("bad_data"), "{e}");
    assert!(mon.open_ui()?.starts_with("http://127.0.0.1:"));
    drop(mon);
    env.close().await?;
    assert_clean("mon_discovery");
    Ok(())
}
