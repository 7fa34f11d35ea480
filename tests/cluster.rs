//! Distributed-systems faults (issue 14): partial partitions between runnables, with a
//! 3-member etcd cluster (the leader cut from one follower, then from both) and with plain
//! containers (several partitions at once, one-way cuts, errors), on the real engine.

mod common;

use std::time::{Duration, Instant};

use e2e::db::{Etcd, EtcdCluster};
use e2e::{composite, equals, Env, Error, ExecOutput, Runnable, StartOptions};
const BUSYBOX: &str = "busybox:1.35";

/// `etcdctl` in `on`, against the member at `endpoint` (`host:port`), with short timeouts.
async fn ctl(on: &Runnable, endpoint: &str, args: &[&str]) -> e2e::Result<ExecOutput> {
    let mut cmd = vec![
        "etcdctl".to_string(),
        format!("--endpoints=http://{endpoint}"),
        "--dial-timeout=1s".into(),
        "--command-timeout=2s".into(),
    ];
    cmd.extend(args.iter().map(|a| a.to_string()));
    on.exec(cmd).await
}

/// Runs `attempt` until it says yes; fails the test after `patience`.
async fn eventually<F, Fut>(what: &str, patience: Duration, mut attempt: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t = Instant::now();
    while !attempt().await {
        assert!(t.elapsed() < patience, "{what}: not within {patience:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn client(r: &Runnable) -> String {
    r.internal_endpoint("client").unwrap().to_string()
}

/// Whether a write through `on` (its own client port) is committed.
async fn put(on: &Runnable, key: &str, value: &str) -> bool {
    ctl(on, "127.0.0.1:2379", &["put", key, value]).await.map(|o| o.success()).unwrap_or(false)
}

/// What a linearizable read through `on` finds under `key`.
async fn get(on: &Runnable, key: &str) -> Option<String> {
    let out = ctl(on, "127.0.0.1:2379", &["get", key, "--print-value-only"]).await.ok()?;
    out.success().then(|| out.stdout.trim().to_string())
}

#[e2e::test(env = "cl_etcd", timeout = "4m")]
async fn etcd_keeps_a_majority_through_partial_and_full_partitions_of_its_leader(env: &Env) -> e2e::Result<()> {
    let cluster = EtcdCluster::new(env, "etcd", 3);
    cluster.start_and_wait_ready().await?;
    assert_eq!(cluster.client_endpoints()?.len(), 3);
    let l = cluster.leader().await?;
    let followers = cluster.followers().await?;
    let (f1, f2) = (followers[0], followers[1]);
    assert!(f1.name() != l.name() && f2.name() != l.name());

    // The leader cut from one follower only: each still reaches the third member.
    let cut = e2e::partition([l], [f1]).await?;
    assert!(cut.describe().contains(l.name()), "{}", cut.describe());
    let across = ctl(f1, &client(l), &["endpoint", "health"]).await?;
    assert!(!across.success(), "the follower still reaches the leader across the cut: {across:?}");
    assert!(ctl(f1, &client(f2), &["endpoint", "health"]).await?.success(), "the follower lost the third");
    assert!(ctl(l, &client(f2), &["endpoint", "health"]).await?.success(), "the leader lost the third");
    // The member that reaches both keeps the cluster writable.
    eventually("a write through the member that reaches both", Duration::from_secs(30), || put(f2, "partial", "1"))
        .await;
    assert_eq!(get(f2, "partial").await.as_deref(), Some("1"));
    cut.heal().await?;
    eventually("the follower reaches the leader again", Duration::from_secs(15), || async {
        ctl(f1, &client(l), &["endpoint", "health"]).await.map(|o| o.success()).unwrap_or(false)
    })
    .await;
    eventually("the follower reads the write", Duration::from_secs(30), || async {
        get(f1, "partial").await.as_deref() == Some("1")
    })
    .await;

    // The leader cut from both: the two others elect one of them and take writes; the old
    // leader takes none.
    let l = cluster.leader().await?;
    let others = cluster.followers().await?;
    let cut = e2e::partition([l], others.iter().copied()).await?;
    let new = cluster.leader_among(others.iter().copied()).await?;
    eventually("a write through the majority", Duration::from_secs(30), || put(new, "majority", "2")).await;
    assert!(!put(l, "minority", "3").await, "the isolated old leader took a write");
    assert_eq!(get(others[0], "majority").await.as_deref(), Some("2"));
    assert_eq!(get(others[1], "majority").await.as_deref(), Some("2"));
    cut.heal().await?;
    eventually("the old leader reads the majority's write", Duration::from_secs(30), || async {
        get(l, "majority").await.as_deref() == Some("2")
    })
    .await;
    assert_eq!(get(l, "minority").await.as_deref(), Some(""), "the minority's write was never committed");
    // One leader again.
    composite(cluster.members()).wait_sum_metrics(equals(1.0), ["etcd_server_is_leader"]).await?;
    Ok(())
}

/// A sleeping busybox in the env.
fn sleeper(env: &Env, name: &str) -> Runnable {
    env.runnable(name).init(StartOptions::new(BUSYBOX).command(["sleep", "3600"]).quiet(true))
}

/// Whether `from` gets an answer to a ping of `to` within a second.
async fn pings(from: &Runnable, to: &Runnable) -> bool {
    from.exec(["ping", "-c", "1", "-W", "1", to.name()]).await.map(|o| o.success()).unwrap_or(false)
}

/// Echo requests `r` has received (its kernel's count).
async fn echoes_received(r: &Runnable) -> u64 {
    let snmp = r.exec(["cat", "/proc/net/snmp"]).await.unwrap().stdout;
    let mut icmp = snmp.lines().filter(|l| l.starts_with("Icmp:"));
    let (names, values) = (icmp.next().unwrap(), icmp.next().unwrap());
    let at = names.split_whitespace().position(|n| n == "InEchos").unwrap();
    values.split_whitespace().nth(at).unwrap().parse().unwrap()
}

#[e2e::test(env = "cl_many", timeout = "3m")]
async fn partitions_hold_together_heal_one_by_one_and_cut_one_way(env: &Env) -> e2e::Result<()> {
    let (a, b, c) = (sleeper(env, "a"), sleeper(env, "b"), sleeper(env, "c"));
    e2e::start_and_wait_ready([&a, &b, &c]).await?;
    assert!(pings(&a, &b).await && pings(&b, &c).await && pings(&a, &c).await, "the env network works");

    // Two at once: a|b and b|c; a and c still talk.
    let ab = e2e::partition([&a], [&b]).await?;
    let bc = e2e::partition([&b], [&c]).await?;
    assert!(!pings(&a, &b).await && !pings(&b, &a).await, "a and b talk across their cut");
    assert!(!pings(&b, &c).await && !pings(&c, &b).await, "b and c talk across their cut");
    assert!(pings(&a, &c).await && pings(&c, &a).await, "a and c lost each other");
    ab.heal().await?;
    assert!(pings(&a, &b).await && pings(&b, &a).await, "a and b still cut after their heal");
    assert!(!pings(&b, &c).await, "healing a|b healed b|c too");
    bc.heal().await?;
    assert!(pings(&b, &c).await, "b and c still cut after their heal");

    // One way, a to b: what a sends to b is lost, what b sends to a arrives (a's answers, to b,
    // are lost: b's ping fails though a received it).
    let one_way = e2e::partition_one_way([&a], [&b]).await?;
    assert!(!pings(&a, &b).await, "a reaches b across a one-way cut");
    let before = echoes_received(&a).await;
    assert!(!pings(&b, &a).await, "b got a's answer across the cut");
    assert!(echoes_received(&a).await > before, "b's echo request did not reach a");
    assert!(pings(&a, &c).await && pings(&b, &c).await, "the rest of the env was cut");
    one_way.heal().await?;
    assert!(pings(&a, &b).await && pings(&b, &a).await);
    Ok(())
}

#[e2e::test(env = "cl_bad", timeout = "2m")]
async fn a_partition_of_what_cannot_be_partitioned_is_an_error_naming_it(env: &Env) -> e2e::Result<()> {
    let a = sleeper(env, "a");
    let idle = sleeper(env, "idle");
    a.start().await?;
    let e = e2e::partition([&a], [&idle]).await.unwrap_err();
    assert!(matches!(e, Error::NotStarted { .. }) && e.to_string().contains("\"idle\""), "{e}");
    let e = e2e::partition([&a], Vec::<&Runnable>::new()).await.unwrap_err();
    assert!(e.to_string().contains("one group is empty") && e.to_string().contains("\"a\""), "{e}");
    let e = e2e::partition([&a], [&a]).await.unwrap_err();
    assert!(e.to_string().contains("in both groups"), "{e}");
    let other = Env::docker("cl_bad_other").await?;
    let elsewhere = sleeper(&other, "elsewhere");
    elsewhere.start().await?;
    let e = e2e::partition([&a], [&elsewhere]).await.unwrap_err();
    assert!(e.to_string().contains("\"elsewhere\"") && e.to_string().contains("cl_bad"), "{e}");
    other.close().await?;
    Ok(())
}

/// An env closed while partitioned (its partitions never healed) leaves nothing: no helper
/// container, nothing of the env.
#[test]
fn an_env_closed_while_partitioned_leaves_nothing() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let env = Env::docker("cl_closed").await?;
        let (a, b, c) = (sleeper(&env, "a"), sleeper(&env, "b"), sleeper(&env, "c"));
        e2e::start_and_wait_ready([&a, &b, &c]).await?;
        let _ab = e2e::partition([&a], [&b, &c]).await?;
        let _bc = e2e::partition_one_way([&b], [&c]).await?;
        assert!(!pings(&a, &b).await);
        env.close().await
    })
    .unwrap();
    common::assert_clean("cl_closed");
}

/// The fraction of `n` pings from `from` to `to` left unanswered (busybox's summary).
async fn ping_loss(from: &Runnable, to: &Runnable, n: usize) -> f64 {
    let out = from.exec(["ping", "-q", "-c", &n.to_string(), "-i", "0.01", "-W", "1", to.name()]).await.unwrap();
    let line = out.stdout.lines().find(|l| l.contains("packets received")).unwrap_or_else(|| panic!("{out:?}"));
    let received: f64 = line.split(", ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    1.0 - received / n as f64
}

/// Seconds `from` takes to fetch file `file` from `to`'s httpd on port 8080.
async fn fetch_seconds(from: &Runnable, to: &Runnable, file: &str) -> f64 {
    let url = format!("http://{}:8080/{file}", to.name());
    let t = Instant::now();
    let out = from.exec(["wget", "-q", "-O", "/dev/null", &url]).await.unwrap();
    let took = t.elapsed().as_secs_f64();
    assert!(out.success(), "fetching {file}: {out:?}");
    took
}

#[e2e::test(env = "cl_cond", timeout = "3m")]
async fn loss_and_rate_are_what_was_asked_per_runnable_and_per_link(env: &Env) -> e2e::Result<()> {
    let (a, b, c) = (sleeper(env, "a"), sleeper(env, "b"), sleeper(env, "c"));
    e2e::start_and_wait_ready([&a, &b, &c]).await?;
    const N: usize = 400;
    assert_eq!(ping_loss(&a, &b, N).await, 0.0, "loss before any condition");

    // 30% of what a sends, to anyone.
    a.set_network(e2e::Conditions::new().loss(0.3)).await?;
    let (to_b, to_c) = (ping_loss(&a, &b, N).await, ping_loss(&a, &c, N).await);
    println!("measured: loss 0.30 asked, {to_b:.3} to b and {to_c:.3} to c over {N} pings each");
    assert!((to_b - 0.3).abs() < 0.1 && (to_c - 0.3).abs() < 0.1, "asked 0.3, measured {to_b} and {to_c}");
    // And 50% more on the link to b only, replaced at run time by 80%; c keeps a's 30%.
    a.set_link(&b, e2e::Conditions::new().loss(0.8)).await?;
    let (to_b, to_c) = (ping_loss(&a, &b, N).await, ping_loss(&a, &c, N).await);
    let want = 1.0 - 0.7 * 0.2;
    println!("measured: link loss 0.8 on top of 0.3 ({want:.2} expected), {to_b:.3} to b; {to_c:.3} to c");
    assert!((to_b - want).abs() < 0.1, "asked {want}, measured {to_b}");
    assert!((to_c - 0.3).abs() < 0.1, "the link to b changed c's: {to_c}");
    a.clear_network().await?;
    assert_eq!(ping_loss(&a, &b, N).await, 0.0, "loss after clear");
    assert_eq!(ping_loss(&a, &c, N).await, 0.0, "loss after clear");

    // A rate on what b sends: a fetches from b. The limiter's bucket holds a second's worth
    // (and a burst) when full, so the rate is measured between two sizes, each fetch starting
    // with a full bucket.
    b.exec(["sh", "-c", "mkdir -p /www && head -c 500000 /dev/zero > /www/small && head -c 1500000 /dev/zero > /www/large && httpd -p 8080 -h /www"])
        .await?;
    let free = fetch_seconds(&a, &b, "large").await;
    b.set_network(e2e::Conditions::new().rate(250_000)).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let small = fetch_seconds(&a, &b, "small").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let large = fetch_seconds(&a, &b, "large").await;
    let measured = 1_000_000.0 / (large - small);
    println!("measured: rate 250000 B/s asked, {measured:.0} B/s (0.5 MB in {small:.2} s, 1.5 MB in {large:.2} s; 1.5 MB free in {free:.3} s)");
    assert!((0.8..=1.2).contains(&(measured / 250_000.0)), "asked 250000 B/s, measured {measured:.0}");
    b.set_network(e2e::Conditions::new()).await?;
    let cleared = fetch_seconds(&a, &b, "large").await;
    assert!(cleared < large / 4.0, "still limited after clearing: {cleared} s");

    // Bad input names the runnable and the value.
    let e = a.set_network(e2e::Conditions::new().loss(2.0)).await.unwrap_err();
    assert!(e.to_string().contains("\"a\"") && e.to_string().contains("loss 2"), "{e}");
    Ok(())
}

/// The round trips of `n` pings from `from` to `to`, in milliseconds (busybox prints each).
async fn round_trips(from: &Runnable, to: &Runnable, n: usize) -> Vec<f64> {
    let out = from.exec(["ping", "-c", &n.to_string(), "-i", "0.05", "-W", "2", to.name()]).await.unwrap();
    let times: Vec<f64> = out
        .stdout
        .lines()
        .filter_map(|l| l.split("time=").nth(1))
        .map(|t| t.trim_end_matches(" ms").trim().parse().unwrap())
        .collect();
    assert_eq!(times.len(), n, "every ping answered: {out:?}");
    times
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn spread(v: &[f64]) -> f64 {
    let m = mean(v);
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64).sqrt()
}

/// The env's containers that are none of its runnables: the helpers.
fn helpers_of(env: &str, runnables: &[&str]) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args(["ps", "-a", "--format", "{{.Names}}", "--filter", &format!("label=dev.e2e.env={env}")])
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&out.stdout).into_owned();
    names
        .lines()
        .filter(|n| !runnables.iter().any(|r| n.starts_with(&format!("{env}-{r}-"))))
        .map(String::from)
        .collect()
}

#[e2e::test(env = "cl_delay", timeout = "3m")]
async fn delay_and_jitter_are_what_was_asked_per_runnable_and_per_link(env: &Env) -> e2e::Result<()> {
    let ms = Duration::from_millis;
    let (a, b, c) = (sleeper(env, "a"), sleeper(env, "b"), sleeper(env, "c"));
    e2e::start_and_wait_ready([&a, &b, &c]).await?;
    const N: usize = 40;
    let base = mean(&round_trips(&a, &b, N).await);
    assert!(base < 5.0, "round trip before any delay: {base} ms");

    // 100 ms on what a sends: a's round trips to anyone take it (the replies are not delayed).
    a.set_network(e2e::Conditions::new().delay(ms(100))).await?;
    let (to_b, to_c) = (round_trips(&a, &b, N).await, round_trips(&a, &c, N).await);
    println!(
        "measured: delay 100 ms asked, round trips {:.1} ms to b (min {:.1}, max {:.1}) and {:.1} ms to c, over {N} pings each ({base:.2} ms before)",
        mean(&to_b),
        to_b.iter().cloned().fold(f64::MAX, f64::min),
        to_b.iter().cloned().fold(0.0, f64::max),
        mean(&to_c)
    );
    for rtt in [mean(&to_b), mean(&to_c)] {
        assert!((99.0..110.0).contains(&rtt), "asked 100 ms, measured {rtt} ms");
    }
    // What b sends is not delayed: b's pings to c stay fast.
    assert!(mean(&round_trips(&b, &c, N).await) < 5.0);

    // Changed at run time: 50 ms with 20 ms of jitter.
    a.set_network(e2e::Conditions::new().delay(ms(50)).jitter(ms(20))).await?;
    let jittered = |v: Vec<f64>| {
        let (lo, hi) = (v.iter().cloned().fold(f64::MAX, f64::min), v.iter().cloned().fold(0.0, f64::max));
        (mean(&v), spread(&v), lo, hi)
    };
    let (mut m, mut sd, mut lo, mut hi) = jittered(round_trips(&a, &b, N).await);
    if hi > 75.0 {
        // A loaded host can release a held packet late (seen once in CI: 78.5 ms), never early:
        // measured once more, with the same bounds.
        println!("measured: a round trip of {hi:.1} ms with 50 ± 20 ms asked; measuring again");
        (m, sd, lo, hi) = jittered(round_trips(&a, &b, N).await);
    }
    println!("measured: delay 50 ms ± 20 ms asked, round trips {m:.1} ms, σ {sd:.1} ms (uniform ±20 has σ 11.5), min {lo:.1}, max {hi:.1}");
    assert!((45.0..58.0).contains(&m), "asked 50 ms on average, measured {m}");
    assert!((6.0..17.0).contains(&sd), "asked ±20 ms, measured σ {sd}");
    assert!(lo >= 29.0 && hi <= 75.0, "outside 50 ± 20 ms: {lo}..{hi}");

    // On one link only, on top of a's own: 30 ms more to c.
    a.set_network(e2e::Conditions::new().delay(ms(20))).await?;
    a.set_link(&c, e2e::Conditions::new().delay(ms(30))).await?;
    let (to_b, to_c) = (mean(&round_trips(&a, &b, N).await), mean(&round_trips(&a, &c, N).await));
    println!("measured: delay 20 ms, and 30 ms more on the link to c: {to_b:.1} ms to b, {to_c:.1} ms to c");
    assert!((19.0..28.0).contains(&to_b), "asked 20 ms to b, measured {to_b}");
    assert!((49.0..58.0).contains(&to_c), "asked 50 ms to c, measured {to_c}");
    // The link alone once a's own is cleared; with loss beside it (nftables, after the delay).
    a.set_network(e2e::Conditions::new()).await?;
    let to_b = mean(&round_trips(&a, &b, N).await);
    let to_c = mean(&round_trips(&a, &c, N).await);
    assert!(to_b < 5.0 && (29.0..38.0).contains(&to_c), "link only: {to_b} ms to b, {to_c} ms to c");
    assert_eq!(helpers_of("cl_delay", &["a", "b", "c"]).len(), 1, "one delay helper for a");

    a.clear_network().await?;
    let cleared = mean(&round_trips(&a, &c, N).await);
    assert!(cleared < 5.0, "still delayed after clear: {cleared} ms");
    assert!(helpers_of("cl_delay", &["a", "b", "c"]).is_empty(), "a helper is left after clear");

    // Bad input names the runnable and what is wrong.
    let e = a.set_network(e2e::Conditions::new().jitter(ms(5))).await.unwrap_err().to_string();
    assert!(e.contains("\"a\"") && e.contains("delay"), "{e}");
    Ok(())
}

#[e2e::test(env = "cl_peers", timeout = "3m")]
async fn advertised_member_addresses_are_reachable_through_host_endpoint_of(env: &Env) -> e2e::Result<()> {
    let cluster = EtcdCluster::new(env, "etcd", 3);
    cluster.start_and_wait_ready().await?;
    let m = cluster.members();
    // What a client discovers: the member list, as etcd advertises it.
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let list: serde_json::Value = http
        .post(format!("http://{}/v3/cluster/member/list", m[0].endpoint("client")?))
        .body("{}")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let urls: Vec<String> = list["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|member| member["clientURLs"][0].as_str().unwrap().to_string())
        .collect();
    assert_eq!(urls.len(), 3, "{list}");
    for url in &urls {
        // As advertised, the address is the env network's: this process cannot resolve it.
        assert!(http.get(format!("{url}/health")).send().await.is_err(), "{url} answered from the test process");
        let reachable = env.host_endpoint_of(&format!("{url}/health"))?;
        let health = http.get(&reachable).send().await.unwrap().text().await.unwrap();
        assert!(health.contains("\"health\":\"true\""), "{url} as {reachable}: {health}");
    }
    // Each form the network knows a member by.
    let one = env.host_endpoint_of("etcd1:2379")?;
    assert_eq!(one, m[1].endpoint("client")?);
    assert_eq!(env.host_endpoint_of("cl_peers-etcd1:2379")?, one);
    // Errors name the address and what is wrong.
    let e = env.host_endpoint_of("etcd1:9999").unwrap_err().to_string();
    assert!(e.contains("etcd1") && e.contains("9999") && e.contains("client (2379)"), "{e}");
    let e = env.host_endpoint_of("nobody:2379").unwrap_err().to_string();
    assert!(e.contains("nobody") && e.contains("etcd0, etcd1, etcd2"), "{e}");
    let e = env.host_endpoint_of("etcd1").unwrap_err().to_string();
    assert!(e.contains("\"etcd1\"") && e.contains("<host>:<port>"), "{e}");
    Ok(())
}

/// A client with proxy support, through the env's proxy (`socks5h://` or `http://`).
fn through(proxy: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(proxy).unwrap())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

#[e2e::test(env = "cl_proxy", timeout = "3m")]
async fn clients_follow_advertised_member_addresses_through_the_env_proxy(env: &Env) -> e2e::Result<()> {
    let cluster = EtcdCluster::new(env, "etcd", 3);
    cluster.start_and_wait_ready().await?;
    let m = cluster.members();
    let proxy = env.proxy().await?;
    let (socks, http) = (through(&proxy.socks5_url()), through(&proxy.http_url()));
    // The member list, asked of a member by its network name, through the proxy.
    let list: serde_json::Value =
        socks.post("http://etcd0:2379/v3/cluster/member/list").body("{}").send().await.unwrap().json().await.unwrap();
    let urls: Vec<String> = list["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|member| member["clientURLs"][0].as_str().unwrap().to_string())
        .collect();
    assert_eq!(urls.len(), 3, "{list}");
    let direct = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    for url in &urls {
        assert!(direct.get(format!("{url}/health")).send().await.is_err(), "{url} answered without the proxy");
        for (kind, client) in [("socks5", &socks), ("http", &http)] {
            let health = client.get(format!("{url}/health")).send().await.unwrap().text().await.unwrap();
            assert!(health.contains("\"health\":\"true\""), "{url} through {kind}: {health}");
        }
    }
    // A write through one member (HTTP proxy), read back through another (SOCKS5): the
    // gateway's JSON carries keys and values in base64 ("k" is "aw==", "v" is "dg==").
    let put =
        http.post(format!("{}/v3/kv/put", urls[2])).body(r#"{"key":"aw==","value":"dg=="}"#).send().await.unwrap();
    assert!(put.status().is_success(), "{:?}", put.text().await);
    let got: serde_json::Value = socks
        .post(format!("{}/v3/kv/range", urls[1]))
        .body(r#"{"key":"aw=="}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["kvs"][0]["value"], "dg==", "{got}");

    // HTTP CONNECT, as clients tunnel with it: the bytes after the 200 go to the member.
    let mut tunnel = tokio::net::TcpStream::connect(proxy.address()).await.unwrap();
    let member = format!("cl_proxy-{}:2379", m[1].name());
    let connect = format!("CONNECT {member} HTTP/1.1\r\nHost: {member}\r\n\r\n");
    tokio::io::AsyncWriteExt::write_all(&mut tunnel, connect.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    tokio::io::AsyncReadExt::read_exact(&mut tunnel, &mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200", "{}", String::from_utf8_lossy(&head));
    let mut rest = Vec::new();
    // The end of the proxy's answer, then the member's.
    let request = format!("GET /health HTTP/1.1\r\nHost: {member}\r\nConnection: close\r\n\r\n");
    tokio::io::AsyncWriteExt::write_all(&mut tunnel, request.as_bytes()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), tokio::io::AsyncReadExt::read_to_end(&mut tunnel, &mut rest))
        .await
        .expect("the member answers through the tunnel")
        .unwrap();
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.contains("\"health\":\"true\""), "{rest}");

    // An address outside the env goes as it is (a member's host endpoint, say).
    let host = format!("http://{}/health", m[0].endpoint("client")?);
    assert!(socks.get(&host).send().await.unwrap().status().is_success());
    // A member without such a port: the HTTP proxy answers 502 saying why; SOCKS5 refuses.
    let refused = http.get("http://etcd1:9999/health").send().await.unwrap();
    assert_eq!(refused.status(), 502);
    let why = refused.text().await.unwrap();
    assert!(why.contains("etcd1:9999") && why.contains("client (2379)") && why.contains("cl_proxy"), "{why}");
    assert!(socks.get("http://etcd1:9999/health").send().await.is_err());
    // Dropped, it stops.
    let address = proxy.address();
    drop(proxy);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(tokio::net::TcpStream::connect(address).await.is_err(), "the proxy still listens once dropped");
    Ok(())
}

#[e2e::test(env = "cl_replicas", timeout = "2m")]
async fn replicas_are_named_by_index_and_go_to_start_and_composite_as_they_are(env: &Env) -> e2e::Result<()> {
    // Two independent single-member etcds: each leads its own.
    let replicas = Etcd::replicas(env, "solo", 2);
    assert_eq!(replicas.iter().map(|r| r.name()).collect::<Vec<_>>(), ["solo0", "solo1"]);
    e2e::start_and_wait_ready(&replicas).await?;
    composite(&replicas).wait_sum_metrics(equals(2.0), ["etcd_server_is_leader"]).await?;
    // The deferred form hands out its addresses before it is configured.
    let ahead = Etcd::ahead(env, "later");
    let peer = ahead.peer_internal_endpoint()?;
    assert!(peer.starts_with("cl_replicas-later") && peer.ends_with(":2380"), "{peer}");
    let later = ahead.init_default();
    later.start_and_wait_ready().await?;
    assert_eq!(later.peer_internal_endpoint()?, peer);
    Ok(())
}
