//! Scenarios that must hold wherever the engine is: `cargo test` runs them on the local engine,
//! and `.ci/run` runs them again with `DOCKER_HOST` naming a remote engine (plain TCP, then
//! TLS), whose containers' addresses are not routable from here and whose published ports are
//! on its own interfaces.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{assert_clean, docker};
use e2e::{Env, Error, Probe, StartOptions};

const BUSYBOX: &str = "busybox:1.35";

/// `GET /` on a host endpoint, from this process.
fn get(endpoint: &str) -> std::io::Result<String> {
    let mut s = std::net::TcpStream::connect(endpoint)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

fn httpd(after: &str) -> StartOptions {
    StartOptions::new(BUSYBOX).command([
        "sh",
        "-c",
        &format!("mkdir -p /www && echo hello-e2e > /www/index.html && {after} exec httpd -f -p 80 -h /www"),
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_endpoints_exec_and_logs_work_where_the_engine_is() -> e2e::Result<()> {
    let env = Env::docker("any_basics").await?;
    let http = env.runnable("http").with_ports([("http", 80)]).init(httpd("").readiness(Probe::http("http", "/")));
    let cmd = env.runnable("cmd").init(
        StartOptions::new(BUSYBOX)
            .command(["sh", "-c", "sleep 0.5; touch /ready; sleep 3600"])
            .readiness(Probe::cmd(["test", "-f", "/ready"])),
    );
    let log = env.runnable("log").init(
        StartOptions::new(BUSYBOX)
            .command(["sh", "-c", "sleep 0.3; echo now serving; sleep 3600"])
            .readiness(Probe::log("now serving")),
    );
    e2e::start_and_wait_ready([&http, &cmd, &log]).await?;

    let endpoint = http.endpoint("http")?;
    // Run in a container by tests/inside.rs, the suite is told where the engine's host is.
    if let Ok(host) = std::env::var("E2E_TEST_EXPECT_HOST") {
        assert!(endpoint.starts_with(&format!("{host}:")), "the endpoint {endpoint} is not on {host}");
    }
    // Over SSH the engine publishes on its host's loopback, reached through forwarded ports.
    let over_ssh = std::env::var("DOCKER_HOST").is_ok_and(|h| h.starts_with("ssh://"));
    if over_ssh && std::env::var_os("E2E_HOST_ADDRESS").is_none() {
        assert!(endpoint.starts_with("127.0.0.1:"), "{endpoint} is not a forwarded local port");
        let bound = docker(&[
            "inspect",
            "-f",
            "{{(index (index .NetworkSettings.Ports \"80/tcp\") 0).HostIp}}",
            http.container_name(),
        ]);
        assert_eq!(bound, "127.0.0.1", "published on the engine host's loopback only");
    }
    let body = get(&endpoint).map_err(|e| Error::Query { query: endpoint.to_string(), detail: e.to_string() })?;
    assert!(body.contains("hello-e2e"), "the test reaches the host endpoint {endpoint}: {body}");
    let out = cmd.exec(["sh", "-c", "echo out; echo err >&2; exit 3"]).await?;
    assert_eq!((out.stdout.as_str(), out.stderr.as_str(), out.exit_code), ("out\n", "err\n", 3));
    assert!(log.logs_tail(5).iter().any(|l| l == "now serving"));
    // One runnable reaches another by its internal endpoint.
    let url = format!("http://{}/", http.internal_endpoint("http")?);
    assert!(cmd.exec(["wget", "-qO-", &url]).await?.stdout.contains("hello-e2e"));
    env.close().await?;
    assert_clean("any_basics");
    Ok(())
}

/// A TCP probe is not fooled by the engine's proxy accepting a connection before the service
/// listens (on a remote engine the probe can only dial the published port).
#[tokio::test(flavor = "multi_thread")]
async fn a_tcp_probe_waits_for_a_service_that_listens_late() -> e2e::Result<()> {
    let env = Env::docker("any_late").await?;
    let late = env
        .runnable("late")
        .with_ports([("http", 80)])
        .init(httpd("sleep 2;").readiness(Probe::tcp("http")).publish_ports(true));
    let started = Instant::now();
    late.start_and_wait_ready().await?;
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1500), "ready after {waited:?}, before the service listened");
    let endpoint = late.endpoint("http")?;
    let body = get(&endpoint).map_err(|e| Error::Query { query: endpoint.to_string(), detail: e.to_string() })?;
    assert!(body.contains("hello-e2e"), "served as soon as it was ready: {body}");
    env.close().await?;
    assert_clean("any_late");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exit_during_readiness_is_reported_at_once() -> e2e::Result<()> {
    let env = Env::docker("any_exit").await?;
    let r = env.runnable("crash").with_ports([("http", 80)]).init(
        StartOptions::new(BUSYBOX)
            .command(["sh", "-c", "echo bad config; sleep 0.3; exit 3"])
            .readiness(Probe::http("http", "/"))
            .readiness_timeout(Duration::from_secs(60)),
    );
    let started = Instant::now();
    let e = r.start_and_wait_ready().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(15), "not a timeout: {:?}", started.elapsed());
    match &e {
        Error::Exited { exit_code: 3, logs, .. } => assert!(logs.iter().any(|l| l == "bad config"), "{e}"),
        other => panic!("want the exit, got {other}"),
    }
    env.close().await?;
    assert_clean("any_exit");
    Ok(())
}

#[test]
fn the_engine_under_test_is_the_one_docker_host_names() {
    // The CLI and the framework agree on the engine: what one creates the other sees.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let env = Env::docker("any_same_engine").await.unwrap();
        let r = env.runnable("a").init(StartOptions::new(BUSYBOX).command(["sleep", "3600"]));
        r.start().await.unwrap();
        let seen = docker(&["ps", "--filter", "label=dev.e2e.env=any_same_engine", "--format", "{{.Names}}"]);
        assert_eq!(seen, r.container_name());
        env.close().await.unwrap();
    });
    assert_clean("any_same_engine");
}

#[tokio::test(flavor = "multi_thread")]
async fn files_reach_the_containers_and_come_back_on_any_engine() -> e2e::Result<()> {
    let env = Env::docker("any_files").await?;
    let writer = env.runnable("writer").init(StartOptions::new(BUSYBOX).command(["sleep", "3600"]));
    let reader = env.runnable("reader").init(StartOptions::new(BUSYBOX).command(["sleep", "3600"]));
    // Before start: a config file by copy_to, and one written into the runnable's directory.
    writer.copy_to("/etc/app/config.yml", "port: 80\n").await?;
    std::fs::create_dir_all(writer.dir()).map_err(|e| Error::Query { query: "dir".into(), detail: e.to_string() })?;
    std::fs::write(writer.dir().join("seed.txt"), "from the test\n").unwrap();
    e2e::start_and_wait_ready([&writer, &reader]).await?;
    assert_eq!(writer.exec(["cat", "/etc/app/config.yml"]).await?.stdout, "port: 80\n");
    let seed = format!("{}/seed.txt", writer.internal_dir());
    assert_eq!(writer.exec(["cat", &seed]).await?.stdout, "from the test\n");
    // After start, both ways.
    writer.copy_to("/tmp/late.txt", "late\n").await?;
    assert_eq!(writer.exec(["cat", "/tmp/late.txt"]).await?.stdout, "late\n");
    writer.exec(["sh", "-c", "echo made inside > /tmp/out.txt"]).await?;
    assert_eq!(writer.copy_from("/tmp/out.txt").await?, b"made inside\n");
    // What the container writes into its directory reaches the test after download_dir.
    let report = format!("{}/report.txt", writer.internal_dir());
    writer.exec(["sh", "-c", &format!("echo done > {report}")]).await?;
    let dir = writer.download_dir().await?;
    assert_eq!(std::fs::read_to_string(dir.join("report.txt")).unwrap(), "done\n");
    // The shared directory is one for the env's containers.
    writer.exec(["sh", "-c", "echo hello neighbour > /shared/note.txt"]).await?;
    assert_eq!(reader.exec(["cat", "/shared/note.txt"]).await?.stdout, "hello neighbour\n");
    env.close().await?;
    assert_clean("any_files");
    Ok(())
}

/// The catalog's Prometheus with a configuration of the test's, before start and reloaded after.
#[tokio::test(flavor = "multi_thread")]
async fn a_catalog_prometheus_runs_its_configuration_on_any_engine() -> e2e::Result<()> {
    let env = Env::docker("any_prometheus").await?;
    let p = e2e::db::Prometheus::new(&env, "p");
    p.set_config(&e2e::db::Prometheus::default_config("p").replace("job_name: myself", "job_name: first")).await?;
    p.start_and_wait_ready().await?;
    let wait = |job: &'static str| {
        let opts = e2e::MetricsOptions::new().wait_missing_metrics().matcher(e2e::Matcher::equal("scrape_job", job));
        p.wait_sum_metrics_with(e2e::equals(1.0), ["prometheus_target_scrape_pool_targets"], opts)
    };
    wait("first").await?;
    p.set_config(&e2e::db::Prometheus::default_config("p").replace("job_name: myself", "job_name: second")).await?;
    wait("second").await?;
    env.close().await?;
    assert_clean("any_prometheus");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// However a test process ends, its resources go from the engine it used.

/// A child test: declares two sleepers, says so on stdout, then waits to be ended.
#[e2e::test(env = "any_child")]
#[ignore]
async fn child_holds_an_env(env: &Env) -> e2e::Result<()> {
    let a = env.runnable("a").init(StartOptions::new(BUSYBOX).command(["sleep", "3600"]).quiet(true));
    let b = env.runnable("b").init(StartOptions::new(BUSYBOX).command(["sleep", "3600"]).quiet(true));
    e2e::start_and_wait_ready([&a, &b]).await?;
    println!("E2E_CHILD_READY");
    if std::env::var_os("E2E_CHILD_PANICS").is_some() {
        panic!("the body panicked");
    }
    tokio::time::sleep(Duration::from_secs(3600)).await;
    Ok(())
}

/// Runs `child_holds_an_env` in a process of its own (same engine), ends it as `end` says once
/// its env is up, and waits until nothing labelled with its env is left on the engine.
fn end_child_and_count(end: &str) {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let errors = std::env::temp_dir().join(format!("e2e-any-child-{}-{end}.stderr", std::process::id()));
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--ignored", "--exact", "child_holds_an_env::any_child", "--nocapture", "--test-threads=1"])
        .env("E2E_QUIET", "1")
        .env_remove("E2E_KEEP")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&errors).unwrap());
    if end == "panic" {
        cmd.env("E2E_CHILD_PANICS", "1");
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let ready = stdout.lines().map_while(Result::ok).any(|l| l.contains("E2E_CHILD_READY"));
    if !ready {
        let _ = child.wait();
        let said = std::fs::read_to_string(&errors).unwrap_or_default();
        let tail: Vec<&str> = said.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect();
        panic!("the child ({end}) never got its env up; it said:\n{}", tail.join("\n"));
    }
    let _ = std::fs::remove_file(&errors);
    let containers = || docker(&["ps", "-aq", "--filter", "label=dev.e2e.env=any_child"]).lines().count();
    assert_eq!(containers(), 2, "the child's two containers run");
    match end {
        "panic" => {}
        signal => {
            let signal = if signal == "TERM" { libc::SIGTERM } else { libc::SIGKILL };
            // SAFETY: a plain kill(2) of the child's pid.
            assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0, "signalling the child");
        }
    }
    let pid = child.id();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child ended by {end}: {status:?}");
    // The test runner (panic), the signal handler (TERM) or the watchdog (KILL) removes it all,
    // the child's pooled network included.
    let pooled = || common::pooled_networks_of(pid);
    let t = Instant::now();
    while (!common::leftovers("any_child").is_empty() || pooled() > 0) && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_clean("any_child");
    assert_eq!(pooled(), 0, "the child's pooled network is left ({end})");
}

/// One after the other: the three children share one env name.
#[test]
fn a_test_process_that_panics_is_terminated_or_is_killed_leaves_nothing_on_the_engine() {
    for end in ["panic", "TERM", "KILL"] {
        end_child_and_count(end);
    }
}

// ---------------------------------------------------------------------------------------------
// Two machines sharing one engine under one env name (two CI jobs on one docker-in-docker
// service, two developers on one build host): each run has names of its own, and neither run's
// start or close touches the other's resources.

/// Waits (up to a minute) for the file `name` in the sync directory, and returns its content.
fn wait_for_file(sync: &std::path::Path, name: &str) -> String {
    let path = sync.join(name);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(60) {
        if let Ok(s) = std::fs::read_to_string(&path) {
            if !s.is_empty() {
                return s;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{} never came", path.display());
}

/// Writes `content` as the file `name` of the sync directory, at once (write then rename).
fn write_file(sync: &std::path::Path, name: &str, content: &str) {
    let tmp = sync.join(format!(".{name}"));
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, sync.join(name)).unwrap();
}

/// A child, run as machine `a` or `b` (`E2E_TWO_ME`): starts `web` in env `any_two`, meets the
/// other machine's run, then `a` closes first and `b` checks its own env still works.
#[e2e::test(env = "any_two")]
#[ignore]
async fn child_on_another_machine(env: &Env) -> e2e::Result<()> {
    let sync = std::path::PathBuf::from(std::env::var("E2E_TWO_SYNC").expect("run by the parent test"));
    let me = std::env::var("E2E_TWO_ME").expect("run by the parent test");
    let other = if me == "a" { "b" } else { "a" };
    let web = env.runnable("web").with_ports([("http", 80)]).init(httpd("").readiness(Probe::http("http", "/")));
    web.start_and_wait_ready().await?;
    write_file(&sync, &format!("up-{me}"), web.container_name());
    let theirs = wait_for_file(&sync, &format!("up-{other}"));
    assert_ne!(theirs, web.container_name(), "each run's container has a name of its own");
    let running = || docker(&["ps", "-q", "--filter", "label=dev.e2e.env=any_two"]).lines().count();
    assert_eq!(running(), 2, "both machines' `web` run side by side");
    write_file(&sync, &format!("counted-{me}"), "2");
    let endpoint = web.endpoint("http")?;
    assert!(get(&endpoint).unwrap().contains("hello-e2e"), "{me} reaches its own web at {endpoint}");
    if me == "a" {
        // Not before b has seen both running.
        wait_for_file(&sync, "counted-b");
        env.close().await?;
        write_file(&sync, "closed-a", "closed");
    } else {
        wait_for_file(&sync, "closed-a");
        assert_eq!(running(), 1, "a's close removed a's web only");
        assert!(get(&endpoint).unwrap().contains("hello-e2e"), "b's web still serves after a closed");
        assert_eq!(web.exec(["true"]).await?.exit_code, 0);
        let url = format!("http://{}/", web.internal_endpoint("http")?);
        assert!(web.exec(["wget", "-qO-", &url]).await?.stdout.contains("hello-e2e"), "its alias is its own");
    }
    Ok(())
}

/// Runs `child_on_another_machine` as machine `machine`: its own hostname (a UTS namespace, so
/// its owner label names another host) and its own `TMPDIR` (so its own env-name locks).
fn as_another_machine(machine: &str, sync: &std::path::Path) -> std::process::Child {
    use std::os::unix::fs::MetadataExt;
    let tmp = sync.join(format!("tmp-{machine}"));
    std::fs::create_dir_all(&tmp).unwrap();
    let out = std::fs::File::create(sync.join(format!("out-{machine}"))).unwrap();
    let mut cmd = std::process::Command::new("unshare");
    if std::fs::metadata("/proc/self").unwrap().uid() != 0 {
        cmd.arg("--map-root-user"); // a user namespace of its own, in which it may set a hostname
    }
    cmd.args(["--uts", "--fork", "sh", "-c", r#"hostname "$0" && exec "$@""#])
        .arg(format!("machine-{machine}"))
        .arg(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child_on_another_machine::any_two", "--nocapture", "--test-threads=1"])
        .env("TMPDIR", &tmp)
        .env("E2E_TWO_SYNC", sync)
        .env("E2E_TWO_ME", machine)
        .env("E2E_QUIET", "1")
        .env_remove("E2E_KEEP")
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    cmd.spawn().expect("unshare (util-linux) runs")
}

#[test]
fn two_machines_share_one_engine_under_one_env_name() {
    let sync = std::env::temp_dir().join(format!("e2e-two-machines-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&sync);
    std::fs::create_dir_all(&sync).unwrap();
    let mut children = [("a", as_another_machine("a", &sync)), ("b", as_another_machine("b", &sync))];
    let t = Instant::now();
    for (machine, child) in &mut children {
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if t.elapsed() > Duration::from_secs(120) {
                let _ = child.kill();
                break child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let out = std::fs::read_to_string(sync.join(format!("out-{machine}"))).unwrap_or_default();
        assert!(status.success(), "machine {machine} failed ({status}):\n{out}");
    }
    assert_clean("any_two");
    for (_, child) in &children {
        assert_eq!(common::pooled_networks_of(child.id()), 0, "a machine's pooled network is left");
    }
    let _ = std::fs::remove_dir_all(&sync);
}

/// Monitoring on any engine: Prometheus discovers the instrumented runnables started before
/// and after it, forgets a stopped one, and has the containers' resource metrics.
#[cfg(feature = "monitoring")]
#[tokio::test(flavor = "multi_thread")]
async fn monitoring_discovers_runnables_and_has_container_metrics_on_any_engine() -> e2e::Result<()> {
    let env = Env::docker("any_monitoring").await?;
    let instrumented = |name: &str, value: u32| {
        let serve = format!("echo 'any_value {value}' > /www/metrics &&");
        env.runnable(name)
            .with_ports([("http", 80)])
            .init(httpd(&serve).metrics("http").readiness(Probe::http("http", "/")).quiet(true))
    };
    let early = instrumented("early", 1);
    early.start_and_wait_ready().await?;
    let mon = e2e::monitoring::start(&env).await?;
    let late = instrumented("late", 2);
    late.start_and_wait_ready().await?;
    let total = |s: &[e2e::monitoring::Sample]| s.iter().map(|s| s.value).sum::<f64>();
    mon.wait_query("any_value", Duration::from_secs(60), |s| s.len() == 2 && total(s) == 3.0).await?;
    let memory = "container_memory_usage_bytes{job=\"containers\", runnable=\"late\"} > 0";
    mon.wait_query(memory, Duration::from_secs(60), |s| s.len() == 1).await?;
    // And the test process's own, however Prometheus gets them (scraped, or sent).
    let threads = "process_threads{job=\"test_process\"} > 1";
    let got = mon.wait_query(threads, Duration::from_secs(60), |s| s.len() == 1).await?;
    assert_eq!(got[0].metric["pid"], std::process::id().to_string());
    late.stop().await?;
    mon.wait_query("up{job=\"e2e\"} == 1", Duration::from_secs(60), |s| {
        let mut names: Vec<_> = s.iter().map(|s| s.metric["runnable"].as_str()).collect();
        names.sort();
        names == ["early", "monitoring"]
    })
    .await?;
    drop(mon);
    env.close().await?;
    assert_clean("any_monitoring");
    Ok(())
}

/// Whether `from` fetches `to`'s page within 3 s (busybox wget; its own `-T` crashes in the
/// stand-in image).
async fn fetches(from: &e2e::Runnable, to: &e2e::Runnable) -> bool {
    let url = format!("http://{}/", to.name());
    from.exec(["timeout", "3", "wget", "-q", "-O", "-", &url])
        .await
        .map(|o| o.stdout.contains("hello-e2e"))
        .unwrap_or(false)
}

/// Partitions (their helper image built on the engine under test) and advertised addresses
/// mapped to host endpoints, wherever the engine is.
#[tokio::test(flavor = "multi_thread")]
async fn partitions_and_peer_addresses_work_on_any_engine() -> e2e::Result<()> {
    let env = Env::docker("any_cut").await?;
    let rs: Vec<e2e::Runnable> = ["a", "b", "c"]
        .iter()
        .map(|n| env.runnable(n).with_ports([("http", 80)]).init(httpd("").readiness(Probe::http("http", "/"))))
        .collect();
    e2e::start_and_wait_ready(&rs).await?;
    let (a, b, c) = (&rs[0], &rs[1], &rs[2]);
    assert!(fetches(a, b).await && fetches(a, c).await, "the env network works");
    let cut = e2e::partition([a], [b]).await?;
    assert!(!fetches(a, b).await && !fetches(b, a).await, "a and b talk across the cut");
    assert!(fetches(a, c).await && fetches(c, b).await, "the rest of the env was cut");
    // The test process still reaches every member, by the names the containers use.
    for r in &rs {
        let url = env.host_endpoint_of(&format!("{}:80", r.name()))?;
        assert_eq!(url, r.endpoint("http")?);
        assert!(get(&url).unwrap().contains("hello-e2e"), "{} by {url}", r.name());
    }
    cut.heal().await?;
    assert!(fetches(a, b).await && fetches(b, a).await, "still cut after the heal");
    env.close().await?;
    assert_clean("any_cut");
    Ok(())
}

/// The env proxy (SOCKS5 and HTTP) takes the names the containers use to each one's host
/// endpoint, wherever the engine is: a real client (reqwest) sent through it.
#[tokio::test(flavor = "multi_thread")]
async fn an_env_proxy_reaches_runnables_by_their_network_names_on_any_engine() -> e2e::Result<()> {
    let env = Env::docker("any_proxy").await?;
    let rs: Vec<e2e::Runnable> = ["a", "b"]
        .iter()
        .map(|n| env.runnable(n).with_ports([("http", 80)]).init(httpd("").readiness(Probe::http("http", "/"))))
        .collect();
    e2e::start_and_wait_ready(&rs).await?;
    let proxy = env.proxy().await?;
    for url in [proxy.socks5_url(), proxy.http_url()] {
        let client = reqwest::Client::builder()
            .proxy(reqwest::Proxy::all(&url).unwrap())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        for name in ["a".to_string(), "any_proxy-b".to_string(), rs[1].container_name().to_string()] {
            let page = client.get(format!("http://{name}/")).send().await;
            let page = page.unwrap_or_else(|e| panic!("{name} through {url}: {e:?}")).text().await.unwrap();
            assert!(page.contains("hello-e2e"), "{name} through {url}: {page}");
        }
    }
    drop(proxy);
    env.close().await?;
    assert_clean("any_proxy");
    Ok(())
}

/// Added delay on any engine: its helper image (this test binary and the host's iptables) is
/// built on the engine under test, and a round trip takes the delay.
#[tokio::test(flavor = "multi_thread")]
async fn delays_work_on_any_engine() -> e2e::Result<()> {
    let env = Env::docker("any_delay").await?;
    let sleeper = |n: &str| env.runnable(n).init(StartOptions::new(BUSYBOX).command(["sleep", "3600"]));
    let (a, b) = (sleeper("a"), sleeper("b"));
    e2e::start_and_wait_ready([&a, &b]).await?;
    let rtt = |out: e2e::ExecOutput| -> f64 {
        let line =
            out.stdout.lines().find(|l| l.contains("min/avg/max")).unwrap_or_else(|| panic!("{out:?}")).to_string();
        line.split(" = ").nth(1).unwrap().split('/').nth(1).unwrap().parse().unwrap()
    };
    let ping = ["ping", "-q", "-c", "10", "-i", "0.05", "b"];
    assert!(rtt(a.exec(ping).await?) < 5.0);
    a.set_network(e2e::Conditions::new().delay(Duration::from_millis(60))).await?;
    let delayed = rtt(a.exec(ping).await?);
    assert!((59.0..70.0).contains(&delayed), "asked 60 ms, measured {delayed} ms");
    a.clear_network().await?;
    assert!(rtt(a.exec(ping).await?) < 5.0);
    env.close().await?;
    assert_clean("any_delay");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Over SSH everything to the engine goes through one ssh connection of the test process (its
// master): the API's connections and the forwarded ports. When it drops, it comes back.

fn over_ssh() -> bool {
    std::env::var("DOCKER_HOST").is_ok_and(|h| h.starts_with("ssh://"))
}

/// The live ssh masters this process runs: its children asking for `ControlMaster=yes`.
fn ssh_masters() -> Vec<i32> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // `pid (comm) state ppid ...`
        let Some((_, fields)) = stat.rsplit_once(") ") else { continue };
        let mut fields = fields.split(' ');
        let (state, ppid) = (fields.next(), fields.next());
        let cmdline =
            String::from_utf8_lossy(&std::fs::read(entry.path().join("cmdline")).unwrap_or_default()).into_owned();
        if ppid == Some(me.as_str()) && state != Some("Z") && cmdline.contains("ControlMaster=yes") {
            found.push(pid);
        }
    }
    found
}

/// A child test: over SSH, its master is killed under a running env; the engine's API and the
/// endpoint handed out before work again. On other engines there is no master at all.
#[e2e::test(env = "any_ssh_drop")]
#[ignore]
async fn child_loses_its_ssh_master(env: &Env) -> e2e::Result<()> {
    let http = env.runnable("http").with_ports([("http", 80)]).init(httpd("").readiness(Probe::http("http", "/")));
    http.start_and_wait_ready().await?;
    let endpoint = http.endpoint("http")?.to_string();
    assert!(get(&endpoint).is_ok_and(|b| b.contains("hello-e2e")), "{endpoint} answers");
    let masters = ssh_masters();
    if !over_ssh() {
        assert!(masters.is_empty(), "no ssh for {:?}: {masters:?}", std::env::var("DOCKER_HOST"));
        return env.close().await;
    }
    assert_eq!(masters.len(), 1, "one ssh connection carries everything: {masters:?}");
    // SAFETY: a plain kill(2) of a child process of this one.
    assert_eq!(unsafe { libc::kill(masters[0], libc::SIGKILL) }, 0);
    let t = Instant::now();
    while get(&endpoint).is_ok_and(|b| b.contains("hello-e2e")) && t.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!get(&endpoint).is_ok_and(|b| b.contains("hello-e2e")), "the forward ended with the master");
    // The next engine call dials again, on a new master that forwards the same local port.
    let out = http.exec(["echo", "back"]).await?;
    assert_eq!(out.stdout, "back\n");
    let again = ssh_masters();
    assert!(again.len() == 1 && again != masters, "a new master: {again:?} (was {masters:?})");
    assert_eq!(http.endpoint("http")?.to_string(), endpoint, "the endpoint is unchanged");
    let body = get(&endpoint).map_err(|e| Error::Query { query: endpoint.clone(), detail: e.to_string() })?;
    assert!(body.contains("hello-e2e"), "{endpoint} answers again: {body}");
    env.close().await
}

/// Runs `child_loses_its_ssh_master` in a process of its own: killing the master there leaves
/// this process's tests alone.
#[test]
fn a_dropped_ssh_connection_comes_back_with_its_forwarded_ports() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child_loses_its_ssh_master::any_ssh_drop", "--nocapture", "--test-threads=1"])
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.contains("1 passed"), "the child failed:\n{said}");
    assert_clean("any_ssh_drop");
}
