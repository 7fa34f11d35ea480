//! Metric assertions against the project's fixture service on the real engine: every
//! comparator and option, each holding and failing; histograms and summaries; label matchers;
//! missing and removed metrics; paths and schemes; restarts; composites.

mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use common::{assert_clean, fixture_image};
use e2e::{
    between, equals, equals_amongst_two, greater, greater_amongst_two, greater_or_equal, less, less_amongst_two,
    less_or_equal, Env, Error, Matcher, MetricsOptions, Probe, Runnable, StartOptions,
};

/// An instrumented fixture: metrics on its `http` port at `/metrics`.
fn fixture(env: &Env, name: &str, image: &str) -> Runnable {
    fixture_with(env, name, StartOptions::new(image).metrics("http"))
}

fn fixture_with(env: &Env, name: &str, options: StartOptions) -> Runnable {
    env.runnable(name).with_ports([("http", 8080)]).init(options.readiness(Probe::http("http", "/ready")))
}

/// Drives the fixture: `/set?...`, `/inc?...`, `/health`.
async fn get(r: &Runnable, path_and_query: &str) {
    let url = format!("http://{}{path_and_query}", r.endpoint("http").unwrap());
    let resp = reqwest::get(&url).await.unwrap();
    assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
}

/// Options of a wait meant to fail: a short deadline.
fn short() -> MetricsOptions {
    MetricsOptions::new().deadline(Duration::from_millis(400))
}

/// The message of a wait that reached its deadline.
async fn timed_out(wait: impl Future<Output = e2e::Result<()>>) -> String {
    match wait.await {
        Err(e @ Error::MetricsWait { .. }) => e.to_string(),
        other => panic!("want a wait that times out, got {other:?}"),
    }
}

fn assert_has(message: &str, parts: &[&str]) {
    for p in parts {
        assert!(message.contains(p), "{p:?} not in: {message}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_comparator_holds_or_fails_naming_what_it_saw() -> e2e::Result<()> {
    let image = fixture_image().await;
    let env = Env::docker("mx_cmp").await?;
    let svc = fixture(&env, "svc", image);
    svc.start_and_wait_ready().await?;
    get(&svc, "/set?name=a&value=5").await;
    get(&svc, "/set?name=b&value=3").await;
    let value = ["fixture_value"];
    assert_eq!(svc.sum_metrics_with(value, &MetricsOptions::new()).await?, [8.0]);

    for c in [equals(8.0), greater(7.0), greater_or_equal(8.0), less(9.0), less_or_equal(8.0), between(7.0, 9.0)] {
        svc.wait_sum_metrics_with(c, value, MetricsOptions::new()).await?;
    }
    for c in [equals(9.0), greater(8.0), greater_or_equal(8.5), less(8.0), less_or_equal(7.5), between(8.0, 9.0)] {
        let what = c.to_string();
        let t = Instant::now();
        let m = timed_out(svc.wait_sum_metrics_with(c, value, short())).await;
        assert!(t.elapsed() >= Duration::from_millis(400) && t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert_has(
            &m,
            &[r#"runnable "svc""#, r#"metric "fixture_value""#, &format!("to satisfy {what}"), "last values: [8]"],
        );
    }

    // Two metrics: fixture_value (8) against fixture_custom_total.
    let two = ["fixture_value", "fixture_custom_total"];
    get(&svc, "/inc?name=c&by=8").await;
    svc.wait_sum_metrics_with(equals_amongst_two(), two, MetricsOptions::new()).await?;
    for c in [greater_amongst_two(), less_amongst_two()] {
        let m = timed_out(svc.wait_sum_metrics_with(c, two, short())).await;
        assert_has(&m, &[r#"metrics "fixture_value", "fixture_custom_total""#, "last values: [8, 8]"]);
    }
    get(&svc, "/inc?name=c&by=1").await;
    svc.wait_sum_metrics_with(less_amongst_two(), two, MetricsOptions::new()).await?;
    svc.wait_sum_metrics_with(greater_amongst_two(), ["fixture_custom_total", "fixture_value"], MetricsOptions::new())
        .await?;
    let m = timed_out(svc.wait_sum_metrics_with(equals_amongst_two(), two, short())).await;
    assert_has(&m, &["to satisfy equals_amongst_two", "last values: [8, 9]"]);

    // The wrong number of metrics is an error at once, naming how many were expected.
    let t = Instant::now();
    match svc.wait_sum_metrics_with(equals(1.0), two, MetricsOptions::new()).await {
        Err(e @ Error::ComparatorArity { expected: 1, given: 2, .. }) => {
            assert_has(&e.to_string(), &["equals(1) compares 1 metric(s) but was given 2"])
        }
        other => panic!("{other:?}"),
    }
    match svc.wait_sum_metrics_with(less_amongst_two(), value, MetricsOptions::new()).await {
        Err(Error::ComparatorArity { expected: 2, given: 1, .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

    // Each type by its value: untyped, counter, gauge.
    svc.wait_sum_metrics_with(equals(42.0), ["fixture_untyped"], MetricsOptions::new()).await?;
    svc.wait_sum_metrics_with(greater_or_equal(3.0), ["fixture_ticks_total"], MetricsOptions::new()).await?;
    svc.wait_sum_metrics_with(equals(1.0), ["fixture_ready"], MetricsOptions::new()).await?;

    // NaN equals NaN.
    get(&svc, "/set?name=n&value=NaN").await;
    let nan = MetricsOptions::new().matcher(Matcher::equal("name", "n"));
    svc.wait_sum_metrics_with(equals(f64::NAN), value, nan.clone()).await?;
    let m = timed_out(svc.wait_sum_metrics_with(equals(0.0), value, nan.deadline(Duration::from_millis(300)))).await;
    assert_has(&m, &["last values: [NaN]", r#"{name="n"}"#]);

    env.close().await?;
    assert_clean("mx_cmp");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn histograms_and_summaries_sum_their_sum_or_their_count() -> e2e::Result<()> {
    let image = fixture_image().await;
    let env = Env::docker("mx_hist").await?;
    let svc = fixture(&env, "svc", image);
    svc.start_and_wait_ready().await?;
    for _ in 0..3 {
        get(&svc, "/health").await;
    }
    let histogram = ["fixture_request_duration_seconds"];
    let health = MetricsOptions::new().matcher(Matcher::equal("path", "/health"));

    // The histogram's count of /health requests, by its base name.
    svc.wait_sum_metrics_with(equals(3.0), histogram, health.clone().count()).await?;
    assert_eq!(svc.sum_metrics_with(histogram, &health.clone().count()).await?, [3.0]);
    let m = timed_out(svc.wait_sum_metrics_with(
        equals(4.0),
        histogram,
        health.clone().count().deadline(Duration::from_millis(300)),
    ))
    .await;
    assert_has(&m, &[r#"{path="/health"}"#, "last values: [3]"]);

    // Its sum: what the exposition's _sum line says (no /health request since).
    let sum = svc.sum_metrics_with(histogram, &health).await?[0];
    let e = svc.metrics().await?;
    assert_eq!(Some(sum), line_value(e.text(), r#"fixture_request_duration_seconds_sum{path="/health"}"#));
    assert!(sum > 0.0 && sum < 3.0, "{sum}");
    svc.wait_sum_metrics_with(between(0.0, 3.0), histogram, health.clone()).await?;
    timed_out(svc.wait_sum_metrics_with(
        greater(3.0),
        histogram,
        short().matchers([Matcher::equal("path", "/health")]),
    ))
    .await;

    // The summary of response sizes (every request, scrapes included) by sum and count.
    let summary = ["fixture_response_size_bytes"];
    assert_eq!(e.sum(summary[0], &MetricsOptions::new()), line_value(e.text(), "fixture_response_size_bytes_sum"));
    assert_eq!(
        e.sum(summary[0], &MetricsOptions::new().count()),
        line_value(e.text(), "fixture_response_size_bytes_count")
    );
    svc.wait_sum_metrics_with(greater_or_equal(4.0), summary, MetricsOptions::new().count()).await?;
    svc.wait_sum_metrics_with(greater(100.0), summary, MetricsOptions::new()).await?;
    let m = timed_out(svc.wait_sum_metrics_with(less(1.0), summary, short().count())).await;
    assert_has(&m, &[r#"metric "fixture_response_size_bytes""#, "to satisfy less(1)"]);
    timed_out(svc.wait_sum_metrics_with(less(1.0), summary, short())).await;

    // The parsed families know their types and help.
    let h = e.family(histogram[0]).expect("the histogram is there");
    assert_eq!(h.kind(), e2e::metrics::MetricType::Histogram);
    assert_eq!(h.help(), Some("Time to handle a request, by path."));
    assert_eq!(e.family(summary[0]).unwrap().kind(), e2e::metrics::MetricType::Summary);
    assert_eq!(e.family("fixture_untyped").unwrap().kind(), e2e::metrics::MetricType::Untyped);
    assert_eq!(e.family("fixture_ticks_total").unwrap().kind(), e2e::metrics::MetricType::Counter);
    assert!(e.families().iter().any(|f| f.name() == "fixture_uptime_seconds"));

    env.close().await?;
    assert_clean("mx_hist");
    Ok(())
}

/// The value of the exposition line that starts with `series `.
fn line_value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn label_matchers_of_all_four_kinds() -> e2e::Result<()> {
    let image = fixture_image().await;
    let env = Env::docker("mx_labels").await?;
    let svc = fixture(&env, "svc", image);
    svc.start_and_wait_ready().await?;
    for (name, value) in [("a", 1), ("b", 2), ("c", 4), ("ab", 8)] {
        get(&svc, &format!("/set?name={name}&value={value}")).await;
    }
    let sum = |matchers: Vec<Matcher>| {
        let svc = svc.clone();
        async move { svc.sum_metrics_with(["fixture_value"], &MetricsOptions::new().matchers(matchers)).await }
    };
    assert_eq!(sum(vec![Matcher::equal("name", "a")]).await?, [1.0]);
    assert_eq!(sum(vec![Matcher::not_equal("name", "a")]).await?, [14.0]);
    assert_eq!(sum(vec![Matcher::regex("name", "a|b")]).await?, [3.0], "anchored: not ab");
    assert_eq!(sum(vec![Matcher::regex("name", "a.*")]).await?, [9.0]);
    assert_eq!(sum(vec![Matcher::not_regex("name", "a|b")]).await?, [12.0]);
    assert_eq!(sum(vec![Matcher::regex("name", "a.*"), Matcher::not_equal("name", "a")]).await?, [8.0]);
    assert_eq!(sum(vec![Matcher::equal("zone", "")]).await?, [15.0], "a missing label is empty");

    // Matchers that select nothing: the metric is missing, and the message shows the matchers.
    for (m, text) in [
        (Matcher::equal("name", "zzz"), r#"{name="zzz"}"#),
        (Matcher::not_equal("zone", ""), r#"{zone!="""#),
        (Matcher::regex("name", "b."), r#"{name=~"b."}"#),
        (Matcher::not_regex("name", ".*"), r#"{name!~".*"}"#),
    ] {
        match sum(vec![m]).await {
            Err(e @ Error::MissingMetric { .. }) => assert_has(&e.to_string(), &[r#""fixture_value""#, text]),
            other => panic!("{text}: {other:?}"),
        }
    }

    // In waits: holds with each kind, fails naming the matchers.
    for (m, want) in [
        (Matcher::equal("name", "c"), 4.0),
        (Matcher::not_equal("name", "c"), 11.0),
        (Matcher::regex("name", "[bc]"), 6.0),
        (Matcher::not_regex("name", "[bc]"), 9.0),
    ] {
        svc.wait_sum_metrics_with(equals(want), ["fixture_value"], MetricsOptions::new().matcher(m)).await?;
    }
    let m = timed_out(svc.wait_sum_metrics_with(
        equals(100.0),
        ["fixture_value"],
        short().matcher(Matcher::regex("name", "a|b")).matcher(Matcher::not_equal("name", "b")),
    ))
    .await;
    assert_has(&m, &[r#"{name=~"a|b",name!="b"}"#, "last values: [1]"]);

    match sum(vec![Matcher::regex("name", "(")]).await {
        Err(e @ Error::InvalidMatcher { .. }) => assert_has(&e.to_string(), &[r#"name=~"(""#]),
        other => panic!("{other:?}"),
    }

    env.close().await?;
    assert_clean("mx_labels");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_metrics_fail_are_waited_for_or_count_as_zero() -> e2e::Result<()> {
    let image = fixture_image().await;
    let env = Env::docker("mx_missing").await?;
    let svc = fixture(&env, "svc", image);
    svc.start_and_wait_ready().await?;
    let value = ["fixture_value"];

    match svc.sum_metrics_with(value, &MetricsOptions::new()).await {
        Err(e @ Error::MissingMetric { .. }) => {
            assert_has(&e.to_string(), &[r#"runnable "svc""#, r#""fixture_value""#, "wait_missing_metrics()"])
        }
        other => panic!("{other:?}"),
    }
    let skip = MetricsOptions::new().skip_missing_metrics();
    assert_eq!(svc.sum_metrics_with(["fixture_value", "fixture_untyped"], &skip).await?, [0.0, 42.0]);

    // Without an option, a wait fails at once on a missing metric.
    let t = Instant::now();
    match svc.wait_sum_metrics_with(equals(3.0), value, MetricsOptions::new()).await {
        Err(Error::MissingMetric { metric, .. }) => assert_eq!(metric, "fixture_value"),
        other => panic!("{other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

    // Skipped, it counts as 0.
    svc.wait_sum_metrics_with(equals(0.0), value, skip.clone()).await?;
    let m = timed_out(svc.wait_sum_metrics_with(equals(3.0), value, skip.deadline(Duration::from_millis(300)))).await;
    assert_has(&m, &["last values: [0]"]);

    // Waited for, it passes once the test sets it.
    let setter = svc.clone();
    let later = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(600)).await;
        get(&setter, "/set?name=late&value=3").await;
    });
    let t = Instant::now();
    svc.wait_sum_metrics_with(equals(3.0), value, MetricsOptions::new().wait_missing_metrics()).await?;
    assert!(t.elapsed() >= Duration::from_millis(550), "passed after {:?}", t.elapsed());
    later.await.unwrap();

    // Waited for in vain, the message says it was missing.
    let t = Instant::now();
    let m = timed_out(svc.wait_sum_metrics_with(
        greater(0.0),
        ["fixture_custom_total"],
        short().wait_missing_metrics().deadline(Duration::from_millis(500)),
    ))
    .await;
    assert!(t.elapsed() >= Duration::from_millis(500), "{:?}", t.elapsed());
    assert_has(
        &m,
        &[
            r#"runnable "svc": waited"#,
            "to satisfy greater(0)",
            "last values: none",
            r#"last error: runnable "svc" exposes no series of metric "fixture_custom_total""#,
        ],
    );

    env.close().await?;
    assert_clean("mx_missing");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_removed_metric_passes_once_the_series_is_gone() -> e2e::Result<()> {
    let image = fixture_image().await;
    let env = Env::docker("mx_removed").await?;
    let svc = fixture(&env, "svc", image);
    svc.start_and_wait_ready().await?;
    get(&svc, "/set?name=keep&value=1").await;
    get(&svc, "/set?name=gone&value=2").await;

    let deleter = svc.clone();
    let later = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        get(&deleter, "/set?name=gone&delete=1").await;
    });
    let t = Instant::now();
    let gone = MetricsOptions::new().matcher(Matcher::equal("name", "gone"));
    svc.wait_removed_metric_with("fixture_value", gone).await?;
    assert!(t.elapsed() >= Duration::from_millis(350), "removed after {:?}", t.elapsed());
    later.await.unwrap();
    assert_eq!(svc.sum_metrics_with(["fixture_value"], &MetricsOptions::new()).await?, [1.0]);

    // Still there: the message says so, with the value.
    let m = timed_out(svc.wait_removed_metric_with("fixture_value", short())).await;
    assert_has(&m, &[r#"metric "fixture_value" to be removed"#, "last values: [1]"]);
    // Never there: removed at once.
    svc.wait_removed_metric_with("fixture_custom_total", MetricsOptions::new()).await?;

    env.close().await?;
    assert_clean("mx_removed");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_path_and_scheme_are_honoured() -> e2e::Result<()> {
    let image = fixture_image().await;
    let env = Env::docker("mx_path").await?;
    let alt = fixture_with(&env, "alt", StartOptions::new(image).metrics("http").metrics_path("/metrics/alt"));
    let wrong = fixture_with(&env, "wrong", StartOptions::new(image).metrics("http").metrics_path("nope"));
    let tls = fixture_with(&env, "tls", StartOptions::new(image).metrics("http").metrics_scheme("https"));
    e2e::start_and_wait_ready([&alt, &wrong, &tls]).await?;

    // Only /metrics/alt is scraped.
    assert_eq!(alt.sum_metrics_with(["fixture_untyped"], &MetricsOptions::new()).await?, [42.0]);
    let requests = |path: &str| MetricsOptions::new().matcher(Matcher::equal("path", path));
    // The fixture counts a request after answering it (in the request's own thread): the
    // series of the first scrape may come a moment after the second scrape is answered.
    let scraped = requests("/metrics/alt").wait_missing_metrics();
    alt.wait_sum_metrics_with(greater_or_equal(1.0), ["fixture_requests_total"], scraped).await?;
    let plain = requests("/metrics").skip_missing_metrics();
    assert_eq!(alt.sum_metrics_with(["fixture_requests_total"], &plain).await?, [0.0]);
    let e = alt.metrics().await?;
    assert!(e.text().contains("fixture_untyped 42\n"), "{}", e.text());

    // A path the service does not serve: the status and the URL, at once or after a wait.
    match wrong.sum_metrics_with(["fixture_untyped"], &MetricsOptions::new()).await {
        Err(e @ Error::MetricsFetch { .. }) => {
            assert_has(&e.to_string(), &[r#"runnable "wrong""#, "/nope failed", "404"])
        }
        other => panic!("{other:?}"),
    }
    let m = timed_out(wrong.wait_sum_metrics_with(equals(42.0), ["fixture_untyped"], short())).await;
    assert_has(
        &m,
        &["last values: none", "last error: runnable \"wrong\": fetching metrics from http://127.0.0.1:", "404"],
    );

    // HTTPS to a plain HTTP port fails in the TLS handshake.
    match tls.metrics().await {
        Err(Error::MetricsFetch { url, .. }) => assert!(url.starts_with("https://127.0.0.1:"), "{url}"),
        other => panic!("{other:?}"),
    }

    // Not instrumented, not started.
    let bare = env.runnable("bare").with_ports([("http", 8080)]).init(StartOptions::new(image));
    match bare.metrics().await {
        Err(e @ Error::NotInstrumented { .. }) => assert_has(&e.to_string(), &[r#""bare""#, "StartOptions::metrics"]),
        other => panic!("{other:?}"),
    }
    let idle = fixture(&env, "idle", image);
    assert!(matches!(idle.metrics().await, Err(Error::NotStarted { .. })));
    let m = timed_out(idle.wait_sum_metrics_with(equals(42.0), ["fixture_untyped"], short())).await;
    assert_has(&m, &[r#"runnable "idle""#, "is not started"]);

    env.close().await?;
    assert_clean("mx_path");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wait_survives_the_service_restarting() -> e2e::Result<()> {
    let image = fixture_image().await;
    let env = Env::docker("mx_restart").await?;
    let svc = fixture(&env, "svc", image);
    svc.start_and_wait_ready().await?;

    // 25 ticks take 2.5 s: the first process is stopped well before.
    let waiter = svc.clone();
    let ticks = tokio::spawn(async move {
        waiter.wait_sum_metrics_with(greater_or_equal(25.0), ["fixture_ticks_total"], MetricsOptions::new()).await
    });
    // A second wait on the same runnable, with its own backoff, meanwhile.
    let waiter = svc.clone();
    let ready = tokio::spawn(async move {
        let slow = MetricsOptions::new().backoff(Duration::from_millis(200), Duration::from_millis(200));
        waiter.wait_sum_metrics_with(greater_or_equal(1.0), ["fixture_custom_total"], slow.wait_missing_metrics()).await
    });

    tokio::time::sleep(Duration::from_millis(300)).await;
    svc.stop().await?;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!ticks.is_finished() && !ready.is_finished());
    // Counted from before the new process can exist: its 25 ticks take 2.5 s from there.
    let restarted = Instant::now();
    svc.start_and_wait_ready().await?;
    get(&svc, "/inc?name=after_restart").await;

    ticks.await.unwrap()?;
    ready.await.unwrap()?;
    // The ticks that satisfied it are the new process's own.
    assert!(restarted.elapsed() >= Duration::from_secs(2), "passed {:?} after the restart", restarted.elapsed());

    env.close().await?;
    assert_clean("mx_restart");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_composite_sums_over_replicas() -> e2e::Result<()> {
    let image = fixture_image().await;
    let env = Env::docker("mx_composite").await?;
    let (r1, r2) = (fixture(&env, "replica-1", image), fixture(&env, "replica-2", image));
    e2e::start_and_wait_ready([&r1, &r2]).await?;
    get(&r1, "/set?name=x&value=2").await;
    get(&r2, "/set?name=x&value=3").await;
    let both = e2e::composite([&r1, &r2]);
    assert_eq!(both.runnables().len(), 2);

    assert_eq!(both.sum_metrics_with(["fixture_value", "fixture_untyped"], &MetricsOptions::new()).await?, [5.0, 84.0]);
    both.wait_sum_metrics_with(equals(5.0), ["fixture_value"], MetricsOptions::new()).await?;
    both.wait_sum_metrics_with(less_amongst_two(), ["fixture_value", "fixture_untyped"], MetricsOptions::new()).await?;
    let m = timed_out(both.wait_sum_metrics_with(greater(5.0), ["fixture_value"], short())).await;
    assert_has(&m, &[r#"runnables "replica-1", "replica-2""#, "last values: [5]"]);

    // Missing on one replica: an error naming it, unless skipped.
    get(&r1, "/inc?name=only_one&by=4").await;
    match both.sum_metrics_with(["fixture_custom_total"], &MetricsOptions::new()).await {
        Err(Error::MissingMetric { runnable, .. }) => assert_eq!(runnable, "replica-2"),
        other => panic!("{other:?}"),
    }
    let skip = MetricsOptions::new().skip_missing_metrics();
    assert_eq!(both.sum_metrics_with(["fixture_custom_total"], &skip).await?, [4.0]);

    // Removed from both.
    get(&r1, "/set?name=x&delete=1").await;
    timed_out(both.wait_removed_metric_with("fixture_value", short())).await;
    get(&r2, "/set?name=x&delete=1").await;
    e2e::Composite::new([&r1, &r2]).wait_removed_metric_with("fixture_value", MetricsOptions::new()).await?;

    env.close().await?;
    assert_clean("mx_composite");
    Ok(())
}
