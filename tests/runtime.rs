//! The runtime against the real engine: envs, runnables, probes, faults, errors, cleanup.

mod common;

use std::time::{Duration, Instant};

use common::{assert_clean, dead_owner, docker};
use e2e::{Env, Error, Probe, StartOptions};

const BUSYBOX: &str = "busybox:1.35";
const PROMETHEUS: &str = "prom/prometheus:v2.42.0";

fn sleeper() -> StartOptions {
    StartOptions::new(BUSYBOX).command(["sleep", "3600"])
}

/// efficientgo/e2e's own scenario: two Prometheus started together, one reaching the other,
/// the API from the test, a batch container driven by exec, then close.
#[tokio::test(flavor = "multi_thread")]
async fn two_prometheus_and_a_batch_container() -> e2e::Result<()> {
    let env = Env::docker("rt_prometheus").await?;
    let prom = |name: &str| {
        env.runnable(name)
            .with_ports([("http", 9090)])
            .init(StartOptions::new(PROMETHEUS).readiness(Probe::http("http", "/-/ready")))
    };
    let (p1, p2) = (prom("prometheus-1"), prom("prometheus-2"));
    e2e::start_and_wait_ready([&p1, &p2]).await?;

    // One reaches the other through its in-network endpoint.
    let url = format!("http://{}/api/v1/status/buildinfo", p2.internal_endpoint("http")?);
    let out = p1.exec(["wget", "-qO-", &url]).await?;
    assert!(out.success(), "{out:?}");
    assert!(out.stdout.contains("\"status\":\"success\""), "{}", out.stdout);

    // The test reaches both through their host endpoints.
    for p in [&p1, &p2] {
        let endpoint = p.endpoint("http")?;
        assert!(endpoint.starts_with("127.0.0.1:"), "{endpoint}");
        let body =
            reqwest::get(format!("http://{endpoint}/api/v1/query?query=up")).await.unwrap().text().await.unwrap();
        assert!(body.contains("\"status\":\"success\""), "{body}");
    }

    match p1.start().await {
        Err(Error::AlreadyStarted { runnable }) => assert_eq!(runnable, "prometheus-1"),
        other => panic!("starting a running runnable: {other:?}"),
    }

    let batch = env.runnable("batch").init(sleeper());
    batch.start_and_wait_ready().await?;
    for i in 0..3 {
        let out = batch.exec(["sh", "-c", &format!("echo run {i} >> /tmp/runs; wc -l < /tmp/runs")]).await?;
        assert_eq!(out.stdout.trim(), (i + 1).to_string());
    }

    env.close().await?;
    env.close().await?; // idempotent
    assert!(!p1.is_running().await.unwrap_or(false));
    let late = env.runnable("late").init(sleeper());
    match late.start().await {
        Err(e @ Error::EnvClosed { .. }) => assert!(e.to_string().contains("rt_prometheus"), "{e}"),
        other => panic!("a runnable after close: {other:?}"),
    }
    assert_clean("rt_prometheus");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn not_started_runnables_refuse_operations() -> e2e::Result<()> {
    let env = Env::docker("rt_not_started").await?;
    let r = env.runnable("idle").with_ports([("http", 80)]).init(sleeper());
    assert!(!r.is_running().await?);
    assert!(matches!(r.endpoint("http"), Err(Error::NotStarted { .. })), "{:?}", r.endpoint("http"));
    let e = r.exec(["true"]).await.unwrap_err();
    assert!(matches!(e, Error::NotStarted { .. }), "{e}");
    assert!(e.to_string().contains("\"idle\""), "{e}");
    assert!(matches!(r.wait_ready().await, Err(Error::NotStarted { .. })));
    // The in-network endpoint is known before start.
    assert_eq!(r.internal_endpoint("http")?, "rt_not_started-idle:80");
    env.close().await?;
    assert_clean("rt_not_started");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_names_the_thing_at_fault() -> e2e::Result<()> {
    match Env::docker("bad name!").await {
        Err(e @ Error::InvalidName { .. }) => assert!(e.to_string().contains("bad name!"), "{e}"),
        other => panic!("invalid env name: {other:?}"),
    }
    let env = Env::docker("rt_bad_input").await?;

    let r = env.runnable("web").with_ports([("http", 80), ("grpc", 9000)]).init(sleeper());
    let e = r.internal_endpoint("htttp").unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("htttp") && msg.contains("http, grpc") && msg.contains("\"web\""), "{msg}");

    let missing = env.runnable("missing").init(StartOptions::new("e2e-test/no-such-image:v0"));
    let e = missing.start().await.unwrap_err();
    assert!(matches!(e, Error::ImageNotFound { .. }), "{e}");
    assert!(e.to_string().contains("e2e-test/no-such-image:v0"), "{e}");

    let probe_port =
        env.runnable("probe-port").with_ports([("http", 80)]).init(sleeper().readiness(Probe::http("metrics", "/")));
    let e = probe_port.start().await.unwrap_err();
    assert!(e.to_string().contains("\"metrics\"") && e.to_string().contains("known ports: http"), "{e}");

    // The init process reports the missing command and exits: the wait fails with its words.
    let no_cmd = env
        .runnable("no-cmd")
        .init(StartOptions::new(BUSYBOX).command(["/no/such/binary"]).readiness(Probe::cmd(["true"])));
    let e = no_cmd.start_and_wait_ready().await.unwrap_err();
    assert!(matches!(e, Error::Exited { .. }) && e.to_string().contains("/no/such/binary"), "{e}");
    // Without the init process the engine itself refuses to start it.
    let no_cmd = env.runnable("no-cmd-2").init(StartOptions::new(BUSYBOX).command(["/no/such/binary"]).init(false));
    let e = no_cmd.start().await.unwrap_err();
    assert!(e.to_string().contains("/no/such/binary") && e.to_string().contains("no-cmd-2"), "{e}");

    let _first = env.runnable("twice").init(sleeper());
    let second = env.runnable("twice").init(sleeper());
    match second.start().await {
        Err(e @ Error::DuplicateRunnable { .. }) => assert!(e.to_string().contains("twice"), "{e}"),
        other => panic!("duplicate runnable: {other:?}"),
    }

    let bad_regex = env.runnable("bad-regex").init(sleeper().readiness(Probe::log("(unclosed")));
    let e = bad_regex.start().await.unwrap_err();
    assert!(e.to_string().contains("(unclosed"), "{e}");

    env.close().await?;
    assert_clean("rt_bad_input");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_that_exits_fails_the_wait_at_once() -> e2e::Result<()> {
    let env = Env::docker("rt_exits").await?;
    let crash = env.runnable("crash").with_ports([("http", 80)]).init(
        StartOptions::new(BUSYBOX)
            .command(["sh", "-c", "echo starting up; sleep 0.3; echo 'fatal: out of cheese' >&2; exit 3"])
            .readiness(Probe::http("http", "/")),
    );
    let t = Instant::now();
    let e = crash.start_and_wait_ready().await.unwrap_err();
    let waited = t.elapsed();
    match &e {
        Error::Exited { runnable, exit_code, logs } => {
            assert_eq!(runnable, "crash");
            assert_eq!(*exit_code, 3);
            assert!(logs.iter().any(|l| l.contains("out of cheese")), "{logs:?}");
        }
        other => panic!("want Exited, got {other}"),
    }
    assert!(e.to_string().contains("exited with code 3"), "{e}");
    // Noticed from the engine's die event, not after the 60 s readiness timeout.
    assert!(waited < Duration::from_secs(5), "noticed after {waited:?}");
    env.close().await?;
    assert_clean("rt_exits");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_timeout_names_the_probe_and_last_error() -> e2e::Result<()> {
    let env = Env::docker("rt_timeout").await?;
    let r = env
        .runnable("closed-port")
        .with_ports([("http", 8080)])
        .init(sleeper().readiness(Probe::tcp("http")).readiness_timeout(Duration::from_millis(700)));
    let e = r.start_and_wait_ready().await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::NotReady { .. }), "{msg}");
    assert!(msg.contains("\"closed-port\"") && msg.contains("tcp(http)") && msg.contains("TCP connect to"), "{msg}");
    env.close().await?;
    assert_clean("rt_timeout");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_of_every_kind() -> e2e::Result<()> {
    let env = Env::docker("rt_probes").await?;
    let script = "sleep 0.2; echo tick; echo tick; mkdir -p /www && echo hello-body > /www/index.html; \
                  echo tick; touch /tmp/ready; exec httpd -f -p 80 -h /www";
    let opts = || StartOptions::new(BUSYBOX).command(["sh", "-c", script]);
    let probes = [
        ("http", Probe::http("http", "/index.html")),
        ("status", Probe::http("http", "/missing").status(404..=404)),
        ("body", Probe::http("http", "/").body_contains("hello-body")),
        ("tcp", Probe::tcp("http")),
        ("cmd", Probe::cmd(["test", "-f", "/tmp/ready"])),
        ("log", Probe::log("^tick$").times(3)),
        ("all", Probe::all_of([Probe::log("tick"), Probe::http("http", "/")])),
    ];
    let runnables: Vec<_> = probes
        .into_iter()
        .map(|(name, p)| env.runnable(name).with_ports([("http", 80)]).init(opts().readiness(p)))
        .collect();
    e2e::start_and_wait_ready(&runnables).await?;
    for r in &runnables {
        assert!(r.is_running().await?, "{}", r.name());
    }
    // A body that never matches times out, and says what it saw.
    let never = env.runnable("never").with_ports([("http", 80)]).init(
        opts().readiness(Probe::http("http", "/").body_contains("nope")).readiness_timeout(Duration::from_secs(2)),
    );
    let e = never.start_and_wait_ready().await.unwrap_err();
    assert!(e.to_string().contains("does not contain \"nope\""), "{e}");
    // A refinement on the wrong kind of probe is refused before start.
    let wrong = env.runnable("wrong").init(sleeper().readiness(Probe::tcp("x").times(2)));
    assert!(wrong.start().await.unwrap_err().to_string().contains("times() applies to log probes"));
    env.close().await?;
    assert_clean("rt_probes");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_kill_pause_and_restart() -> e2e::Result<()> {
    let env = Env::docker("rt_lifecycle").await?;
    // busybox httpd ignores SIGTERM as PID 1; the init process makes stop fast anyway.
    let web = env
        .runnable("web")
        .with_ports([("http", 80)])
        .init(StartOptions::new(BUSYBOX).command(["httpd", "-f", "-p", "80", "-h", "/"]).readiness(Probe::tcp("http")));
    web.start_and_wait_ready().await?;
    assert!(web.is_running().await?);
    let t = Instant::now();
    web.stop().await?;
    let stop_took = t.elapsed();
    assert!(!web.is_running().await?);
    assert!(stop_took < Duration::from_secs(5), "stop took {stop_took:?}");
    assert!(matches!(web.exec(["true"]).await, Err(Error::NotRunning { .. })));
    // Its host endpoint is gone with it: an error naming the state, not a stale address.
    let e = web.endpoint("http").unwrap_err();
    assert!(matches!(e, Error::Stopped { .. }) && e.to_string().contains("\"web\" is stopped"), "{e}");
    // Its internal endpoint is its declaration's: still known.
    assert_eq!(web.internal_endpoint("http")?, "rt_lifecycle-web:80");

    // A stopped runnable starts again, afresh.
    web.start_and_wait_ready().await?;
    assert!(web.is_running().await?);
    let endpoint = web.endpoint("http")?;
    assert_eq!((endpoint.host(), endpoint.url("http")), ("127.0.0.1", format!("http://127.0.0.1:{}", endpoint.port())));
    assert_eq!(endpoint.socket_addr()?.port(), endpoint.port());
    std::net::TcpStream::connect(&endpoint).expect("an Endpoint is a std ToSocketAddrs");

    web.pause().await?;
    let client = reqwest::Client::builder().timeout(Duration::from_millis(500)).build().unwrap();
    let url = format!("http://{}/", web.endpoint("http")?);
    assert!(client.get(&url).send().await.is_err(), "a paused container answered");
    web.unpause().await?;
    assert!(client.get(&url).send().await.is_ok());

    web.kill().await?;
    // The engine reports the death a moment later.
    let t = Instant::now();
    while web.is_running().await? {
        assert!(t.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    env.close().await?;
    assert_clean("rt_lifecycle");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn disconnect_and_reconnect() -> e2e::Result<()> {
    let env = Env::docker("rt_network").await?;
    let web = env
        .runnable("web")
        .with_ports([("http", 80)])
        .init(StartOptions::new(BUSYBOX).command(["httpd", "-f", "-p", "80", "-h", "/"]).readiness(Probe::tcp("http")));
    let client = env.runnable("client").init(sleeper());
    e2e::start_and_wait_ready([&web, &client]).await?;
    let reach = |target: String| {
        let client = client.clone();
        let (host, port) = target.split_once(':').map(|(h, p)| (h.to_string(), p.to_string())).unwrap();
        async move { client.exec(["sh", "-c", &format!("nc -w 1 {host} {port} </dev/null")]).await }
    };
    let target = web.internal_endpoint("http")?.to_string();
    assert!(reach(target.clone()).await?.success(), "reachable before disconnect");
    // The short name is an alias on the env network too.
    assert!(reach("web:80".into()).await?.success());
    web.disconnect().await?;
    assert!(!reach(target.clone()).await?.success(), "reachable while disconnected");
    let endpoint = web.endpoint("http")?;
    web.reconnect().await?;
    assert!(reach(target).await?.success(), "reachable after reconnect");
    // The host endpoint is the same and reaches the container wherever the engine put it back.
    assert_eq!(web.endpoint("http")?, endpoint);
    let status = reqwest::get(format!("http://{endpoint}/")).await.map(|r| r.status().as_u16());
    assert!(matches!(status, Ok(200 | 404)), "{status:?}");
    env.close().await?;
    assert_clean("rt_network");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn options_reach_the_container() -> e2e::Result<()> {
    let env = Env::docker("rt_options").await?;
    let r = env.runnable("opts").with_ports([("http", 80)]).init(
        StartOptions::new(BUSYBOX)
            .entrypoint(["sh", "-c"])
            .command(["echo \"$ZED $ALPHA\" > /tmp/env; id -u > /tmp/uid; sleep 3600"])
            .env_var("ZED", "last-declared-first")
            .env_var("ALPHA", "second")
            .user("65534:65534")
            .volume("data", "/data")
            .volume_ro(env.shared_dir().to_str().unwrap(), "/ro")
            .memory_bytes(64 << 20)
            .cpus(0.5)
            .cap_add("NET_ADMIN")
            .publish_ports(true)
            .readiness(Probe::cmd(["test", "-s", "/tmp/uid"])),
    );
    r.start_and_wait_ready().await?;
    assert_eq!(r.exec(["cat", "/tmp/env"]).await?.stdout.trim(), "last-declared-first second");
    assert_eq!(r.exec(["cat", "/tmp/uid"]).await?.stdout.trim(), "65534");
    let env_order = r.exec(["sh", "-c", "cat /proc/1/environ | tr '\\0' '\\n' | grep -E '^(ZED|ALPHA)='"]).await?;
    // PID 1 is the init process; its environment is the container's, in declared order.
    assert_eq!(env_order.stdout, "ZED=last-declared-first\nALPHA=second\n");

    // The shared dir is writable by a non-root container and seen by the host.
    let out = r.exec(["sh", "-c", &format!("echo from-container > {}/note", r.internal_dir())]).await?;
    assert!(out.success(), "{out:?}");
    assert_eq!(std::fs::read_to_string(r.dir().join("note")).unwrap(), "from-container\n");
    assert_eq!(r.internal_dir(), "/shared/data/opts");
    // Read-only bind mount.
    assert!(!r.exec(["touch", "/ro/x"]).await?.success());

    let id = docker(&["ps", "-q", "--filter", &format!("name=^{}$", r.container_name())]);
    let inspect = docker(&["inspect", "--format",
        "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.CapAdd}} {{.HostConfig.Init}} {{.HostConfig.Privileged}} {{(index (index .HostConfig.PortBindings \"80/tcp\") 0).HostIp}}", &id]);
    assert_eq!(inspect, "67108864 500000000 [NET_ADMIN] true false 127.0.0.1");
    // The named volume belongs to the env.
    let volume = docker(&["volume", "ls", "-q", "--filter", "label=dev.e2e.env=rt_options"]);
    assert!(volume.starts_with("rt_options-data-") && !volume.contains('\n'), "{volume}");

    // The entrypoint can be disabled.
    let plain = env.runnable("plain").init(StartOptions::new(PROMETHEUS).no_entrypoint().command(["sleep", "3600"]));
    plain.start().await?;
    assert!(plain.exec(["true"]).await?.success());

    let shared = env.shared_dir().to_path_buf();
    env.close().await?;
    assert!(!shared.exists(), "{} left", shared.display());
    assert_clean("rt_options");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_are_kept_for_diagnostics() -> e2e::Result<()> {
    let env = Env::docker("rt_logs").await?;
    let r = env.runnable("talker").init(
        StartOptions::new(BUSYBOX)
            .command(["sh", "-c", "for i in 1 2 3 4 5; do echo line $i; done; echo oops >&2; echo done; sleep 3600"])
            .readiness(Probe::all_of([Probe::log("^done$"), Probe::log("^oops$")])),
    );
    r.start_and_wait_ready().await?;
    // stdout and stderr are separate streams: their relative order is as received.
    let tail = r.logs_tail(7);
    assert_eq!(tail.len(), 7);
    assert!(tail.contains(&"oops".to_string()), "{tail:?}");
    let stdout: Vec<_> = tail.iter().filter(|l| *l != "oops").cloned().collect();
    assert_eq!(stdout, ["line 1", "line 2", "line 3", "line 4", "line 5", "done"]);
    env.close().await?;
    assert_clean("rt_logs");
    Ok(())
}

/// A dead run's leftovers are swept when the env name is used again; resources without the
/// framework's labels, even with colliding names, are never touched.
#[tokio::test(flavor = "multi_thread")]
async fn dead_runs_are_swept_and_foreign_resources_untouched() -> e2e::Result<()> {
    let env_name = "rt_sweep";
    let owner = dead_owner();
    let labels = ["--label", "dev.e2e.managed=true", "--label", "dev.e2e.env=rt_sweep"];
    let owner_label = format!("dev.e2e.owner={owner}");
    let mut args = vec!["network", "create"];
    args.extend(labels);
    args.extend(["--label", &owner_label, "rt_sweep_dead_net"]);
    docker(&args);
    let mut args = vec!["run", "-d", "--name", "rt_sweep-dead"];
    args.extend(labels);
    args.extend(["--label", &owner_label, BUSYBOX, "sleep", "3600"]);
    docker(&args);
    // Foreign, unlabelled, with the names the framework would use.
    let _ = std::process::Command::new("docker").args(["rm", "-f", "rt_sweep-web"]).output();
    docker(&["run", "-d", "--name", "rt_sweep-web", BUSYBOX, "sleep", "3600"]);
    let _ = std::process::Command::new("docker").args(["network", "rm", "rt_sweep"]).output();
    docker(&["network", "create", "rt_sweep"]);

    let env = Env::docker(env_name).await?;
    assert_eq!(docker(&["ps", "-aq", "--filter", &format!("label={owner_label}")]), "");
    assert_eq!(docker(&["network", "ls", "-q", "--filter", &format!("label={owner_label}")]), "");

    // A runnable named as the foreign container runs under a name of the run's own, and the
    // foreign one is left alone.
    let web = env.runnable("web").init(sleeper());
    web.start().await?;
    assert_ne!(web.container_name(), "rt_sweep-web");
    let ok = env.runnable("ok").init(sleeper());
    ok.start().await?;
    env.close().await?;

    assert_eq!(docker(&["inspect", "-f", "{{.State.Running}}", "rt_sweep-web"]), "true");
    assert_eq!(docker(&["network", "ls", "-q", "--filter", "name=^rt_sweep$"]).lines().count(), 1);
    docker(&["rm", "-f", "rt_sweep-web"]);
    docker(&["network", "rm", "rt_sweep"]);
    assert_clean(env_name);
    Ok(())
}

/// A run on another host sharing the engine is never treated as dead.
#[tokio::test(flavor = "multi_thread")]
async fn resources_of_another_live_host_are_left_alone() -> e2e::Result<()> {
    let owner_label = "dev.e2e.owner=other-host/12345678/1/1";
    docker(&[
        "network",
        "create",
        "--label",
        "dev.e2e.managed=true",
        "--label",
        "dev.e2e.env=rt_other_host",
        "--label",
        owner_label,
        "rt_other_host_net",
    ]);
    // This run works beside it, under names of its own, and closing it leaves the other's.
    let env = Env::docker("rt_other_host").await?;
    let r = env.runnable("sleeper").init(sleeper());
    r.start_and_wait_ready().await?;
    env.close().await?;
    assert_eq!(docker(&["network", "ls", "-q", "--filter", &format!("label={owner_label}")]).lines().count(), 1);
    docker(&["network", "rm", "rt_other_host_net"]);
    assert_clean("rt_other_host");
    Ok(())
}

/// Two users of one env name never overlap: the second waits for the first to close.
#[tokio::test(flavor = "multi_thread")]
async fn one_env_name_is_used_by_one_run_at_a_time() -> e2e::Result<()> {
    let first = Env::docker("rt_serial").await?;
    let waiter = tokio::spawn(async {
        let t = Instant::now();
        let env = Env::docker("rt_serial").await?;
        let waited = t.elapsed();
        env.close().await?;
        Ok::<_, Error>(waited)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiter.is_finished(), "the second env did not wait");
    first.close().await?;
    let waited = waiter.await.unwrap()?;
    assert!(waited >= Duration::from_millis(400), "{waited:?}");
    assert_clean("rt_serial");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_an_env_without_close_removes_it() -> e2e::Result<()> {
    let env = Env::docker("rt_drop").await?;
    let r = env.runnable("r").init(sleeper());
    r.start().await?;
    drop(r);
    drop(env);
    assert_clean("rt_drop");
    Ok(())
}

/// HTTPS readiness without certificate checks, against Prometheus serving a self-signed cert.
#[cfg(feature = "tls")]
#[tokio::test(flavor = "multi_thread")]
async fn https_probe_accepts_self_signed_certificates() -> e2e::Result<()> {
    let env = Env::docker("rt_https").await?;
    let prom = env.runnable("prometheus").with_ports([("https", 9090)]).future();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::create_dir_all(prom.dir()).unwrap();
    std::fs::write(prom.dir().join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(prom.dir().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let dir = prom.internal_dir();
    std::fs::write(
        prom.dir().join("web.yml"),
        format!("tls_server_config:\n  cert_file: {dir}/cert.pem\n  key_file: {dir}/key.pem\n"),
    )
    .unwrap();
    // The files are read by the container's user (nobody).
    for f in ["cert.pem", "key.pem", "web.yml"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(prom.dir().join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let prom = prom.init(
        StartOptions::new(PROMETHEUS)
            .command([
                "--config.file=/etc/prometheus/prometheus.yml".to_string(),
                "--storage.tsdb.path=/prometheus".to_string(),
                format!("--web.config.file={dir}/web.yml"),
            ])
            .readiness(Probe::https("https", "/-/ready")),
    );
    prom.start_and_wait_ready().await?;
    // Plain HTTP to the same port is refused as not ready.
    let http = env.runnable("plain").with_ports([("https", 9090)]).init(
        StartOptions::new(PROMETHEUS)
            .command([
                "--config.file=/etc/prometheus/prometheus.yml".to_string(),
                "--storage.tsdb.path=/prometheus".to_string(),
                format!("--web.config.file={dir}/web.yml"),
            ])
            .readiness(Probe::http("https", "/-/ready"))
            .readiness_timeout(Duration::from_secs(3)),
    );
    let e = http.start_and_wait_ready().await.unwrap_err();
    assert!(matches!(e, Error::NotReady { .. }), "{e}");
    env.close().await?;
    assert_clean("rt_https");
    Ok(())
}

/// An image missing locally is pulled, with progress, from a registry run in the env itself.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_image_is_pulled() -> e2e::Result<()> {
    let env = Env::docker("rt_pull").await?;
    let registry = env
        .runnable("registry")
        .with_ports([("http", 5000)])
        .init(StartOptions::new("registry:2.8.2").readiness(Probe::http("http", "/v2/")));
    registry.start_and_wait_ready().await?;
    // The engine trusts registries on loopback without TLS.
    let image = format!("{}/e2e-test/pulled:v1", registry.endpoint("http")?.replace("127.0.0.1", "localhost"));
    docker(&["tag", BUSYBOX, &image]);
    docker(&["push", &image]);
    docker(&["rmi", &image]);

    let pulled = env.runnable("pulled").init(StartOptions::new(&image).command(["sleep", "3600"]));
    pulled.start().await?;
    assert!(pulled.is_running().await?);
    // Present now under its name: the next start will not pull.
    assert!(docker(&["image", "inspect", "-f", "{{.RepoTags}}", &image]).contains(&image));
    env.close().await?;
    docker(&["rmi", &image]);
    assert_clean("rt_pull");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_envs_network_waits_for_the_next_env() -> e2e::Result<()> {
    let first = Env::docker("rt_pool_first").await?;
    let network = first.network_name().to_string();
    assert!(network.starts_with(&format!("e2e-{}-", std::process::id())), "{network}");
    let r = first.runnable("sleeper").init(sleeper());
    r.start_and_wait_ready().await?;
    first.close().await?;
    assert_clean("rt_pool_first");
    // Emptied and kept for the process's next env, under the run's labels.
    let labels = docker(&[
        "network",
        "inspect",
        "-f",
        "{{len .Containers}} {{index .Labels \"dev.e2e.env\"}} {{index .Labels \"dev.e2e.owner\"}}",
        &network,
    ]);
    let (attached_and_env, owner) = labels.rsplit_once(' ').unwrap();
    assert_eq!(attached_and_env, "0 _pool");
    assert!(owner.contains(&format!("/{}/", std::process::id())), "{owner}");

    // The next env works on whichever network it gets, a reused one included.
    let second = Env::docker("rt_pool_second").await?;
    let r = second.runnable("sleeper").init(sleeper());
    r.start_and_wait_ready().await?;
    assert!(r.exec(["true"]).await?.success());
    second.close().await?;
    assert_clean("rt_pool_second");
    Ok(())
}

/// An image's declared volumes (redis: `VOLUME /data`) are anonymous volumes of its container:
/// they go with it when the env closes, or the engine keeps them forever, dangling.
#[tokio::test(flavor = "multi_thread")]
async fn anonymous_volumes_go_with_their_containers() -> e2e::Result<()> {
    let env = Env::docker("rt_anon_volume").await?;
    let redis = e2e::db::Redis::new(&env, "redis");
    redis.start_and_wait_ready().await?;
    let volume = docker(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{if eq .Destination \"/data\"}}{{.Name}}{{end}}{{end}}",
        redis.container_name(),
    ]);
    assert!(!volume.is_empty(), "redis's /data is an anonymous volume");
    env.close().await?;
    let gone = std::process::Command::new("docker").args(["volume", "inspect", &volume]).output().unwrap();
    assert!(!gone.status.success(), "the anonymous volume {volume} outlived its container");
    Ok(())
}
