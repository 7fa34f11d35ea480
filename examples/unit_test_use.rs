//! Unit-test use: the seed scenario of efficientgo/e2e as an `#[e2e::test]`.
//!
//! Two Prometheus instances, each scraping itself, and a global view over both (Prometheus
//! federation stands in for the Thanos querier). The global view's configuration names the
//! two instances' addresses before anything is started; the test waits on metrics, queries
//! the global view for both instances' `up` series, stops one instance and sees the global view
//! lose it.
//!
//! This file is a test: `cargo test --workspace` runs it (the root Cargo.toml declares it with
//! `test = true`), and so does:
//!
//!     cargo test --example unit_test_use

fn main() {
    eprintln!("this example is a test: run it with `cargo test --example unit_test_use`");
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use e2e::db::Prometheus;
    use e2e::{equals, greater, Matcher, MetricsOptions};

    #[e2e::test(env = "e2e_example", timeout = "3m")]
    async fn global_view_over_two_prometheus(env: &e2e::Env) -> e2e::Result<()> {
        // 1. Declare two Prometheus. Each scrapes itself (job `myself`) and carries its name
        //    as the external label `prometheus`.
        let p1 = Prometheus::new(env, "prometheus-1");
        let p2 = Prometheus::new(env, "prometheus-2");

        // 2. Declare the global view and link it to both before any of them starts: their
        //    addresses inside the env network are known from their declaration.
        let global = Prometheus::new(env, "global");
        global.set_config(&federation_config(&[&p1, &p2])?).await?;

        // 3. Start all three in parallel; each is waited until `/-/ready` answers.
        e2e::start_and_wait_ready([&*p1, &*p2, &*global]).await?;

        // 4. Wait on metrics: both instances ingest samples, the global view has both targets.
        let appended = ["prometheus_tsdb_head_samples_appended_total"];
        let missing_is_pending = || MetricsOptions::new().wait_missing_metrics();
        e2e::composite([&*p1, &*p2]).wait_sum_metrics_with(greater(0.0), appended, missing_is_pending()).await?;
        let federate_targets = missing_is_pending().matcher(Matcher::equal("config", "federate"));
        global.wait_sum_metrics_with(equals(2.0), ["prometheus_sd_discovered_targets"], federate_targets).await?;

        // 5. Query the global view from the test: both instances' `up` series are there.
        let addr = global.http_endpoint()?;
        let both = wait_query(&addr, "up{job=\"myself\"}", |s| s == ["prometheus-1", "prometheus-2"]).await;
        println!("global view, up{{job=\"myself\"}}: {both:?}");
        println!("global view UI: http://{addr}/graph?g0.expr=up");

        // 6. Stop one instance: the global view loses its series.
        p1.stop().await?;
        let left = wait_query(&addr, "up{job=\"myself\"}", |s| s == ["prometheus-2"]).await;
        println!("after stopping prometheus-1: {left:?}");
        Ok(())
    }

    /// A Prometheus configuration federating the `myself` series of these instances. Samples
    /// take the time of the federation scrape (`honor_timestamps: false`): samples with
    /// explicit timestamps are never marked stale, so a stopped instance's series would linger
    /// for the 5 minutes of the query lookback.
    fn federation_config(instances: &[&Prometheus]) -> e2e::Result<String> {
        let mut targets = Vec::new();
        for p in instances {
            targets.push(format!("'{}'", p.http_internal_endpoint()?));
        }
        Ok(format!(
            "global:\n  external_labels:\n    prometheus: global\n\
             scrape_configs:\n  - job_name: federate\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    \
             honor_labels: true\n    honor_timestamps: false\n    metrics_path: /federate\n    params:\n      'match[]': ['{{job=\"myself\"}}']\n    \
             static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        ))
    }

    /// Runs an instant query on the Prometheus at `addr` until the sorted values of the
    /// `prometheus` label of its series satisfy `done` (30 s at most); returns them.
    async fn wait_query(addr: &str, promql: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = reqwest::Client::new();
        loop {
            let body = match client.get(format!("http://{addr}/api/v1/query")).query(&[("query", promql)]).send().await
            {
                Ok(resp) => resp.text().await.unwrap_or_default(),
                Err(e) => e.to_string(),
            };
            let parsed: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let mut names: Vec<String> = parsed["data"]["result"]
                .as_array()
                .map(|series| {
                    series.iter().filter_map(|s| s["metric"]["prometheus"].as_str().map(String::from)).collect()
                })
                .unwrap_or_default();
            names.sort();
            if done(&names) {
                return names;
            }
            assert!(Instant::now() < deadline, "query {promql:?}: no awaited result after 30 s; last: {body}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
