//! Fault suite, bad-input matrix and security defaults (issue 5): whatever happens to a run,
//! nothing it created is left, nothing it did not create is touched, and every error names the
//! thing at fault.
//!
//! The parent tests re-run this same binary as child processes (the `child_*` tests, ignored
//! unless asked for by name), end them in every way a run can end, and count what is left:
//! labelled containers, networks and volumes of the env, its directories under
//! `<tmp>/e2e-runs`, and watchdog processes.
//!
//! CI runs a short count (1 repetition per case). The full count, with the tables:
//!
//! ```sh
//! E2E_FAULT_REPS=100 cargo test --test faults -- --nocapture
//! ```
//!
//! The tables are also written to `target/e2e-faults/*.txt`; each child's output to
//! `target/e2e-faults/logs/`.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::docker;
use e2e::{Env, Error, Probe, StartOptions};

const BUSYBOX: &str = "busybox:1.35";

// ---------------------------------------------------------------------------------------------
// Children: the scenarios the parent runs in processes of their own.

e2e::workload! {
    /// Sleeps; ready once started.
    pub Sleeper {
        image: "busybox:1.35",
        command: ["sleep", "3600"],
    }

    /// Never ready: nothing listens on its port.
    pub NeverReady {
        image: "busybox:1.35",
        ports: { http: 80 },
        command: ["sleep", "3600"],
        readiness: tcp(http),
        readiness_timeout: "1h",
    }
}

/// Writes a line to the file `E2E_FAULT_MARK` names: how a child tells the parent where it is.
fn mark(what: &str) {
    if let Ok(path) = std::env::var("E2E_FAULT_MARK") {
        mark_to(Path::new(&path), what);
    }
}

fn mark_to(path: &Path, what: &str) {
    use std::io::Write;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros();
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    writeln!(f, "{what} {} {now}", std::process::id()).unwrap();
}

async fn forever() {
    mark("body");
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

#[e2e::test(env = "flt_ok")]
#[ignore]
async fn child_ok(_a: Sleeper, _b: Sleeper) -> e2e::Result<()> {
    mark("body");
    Ok(())
}

#[e2e::test(env = "flt_err")]
#[ignore]
async fn child_err(_a: Sleeper, _b: Sleeper) -> Result<(), String> {
    mark("body");
    Err("the body said no".into())
}

#[e2e::test(env = "flt_panic")]
#[ignore]
async fn child_panic(_a: Sleeper, _b: Sleeper) {
    mark("body");
    panic!("the body panicked");
}

#[e2e::test(env = "flt_timeout", timeout = "1s")]
#[ignore]
async fn child_timeout(_a: Sleeper, _b: Sleeper) {
    forever().await;
}

/// Per signal, three scenarios: many containers starting at once (the signal lands during
/// start), containers that never get ready (during readiness), and a running body.
macro_rules! signal_children {
    ($($start:ident $start_env:tt, $ready:ident $ready_env:tt, $body:ident $body_env:tt;)*) => {$(
        #[e2e::test(env = $start_env)]
        #[ignore]
        #[allow(clippy::too_many_arguments)] // eight workloads started at once: the signal lands during start
        async fn $start(_a: Sleeper, _b: Sleeper, _c: Sleeper, _d: Sleeper, _e: Sleeper, _f: Sleeper,
            _g: Sleeper, _h: Sleeper) {
            forever().await;
        }

        #[e2e::test(env = $ready_env)]
        #[ignore]
        async fn $ready(_a: NeverReady, _b: NeverReady, _c: NeverReady) {
            forever().await;
        }

        #[e2e::test(env = $body_env)]
        #[ignore]
        async fn $body(_a: Sleeper, _b: Sleeper) {
            forever().await;
        }
    )*};
}

signal_children! {
    child_int_start "flt_int_start", child_int_ready "flt_int_ready", child_int_body "flt_int_body";
    child_term_start "flt_term_start", child_term_ready "flt_term_ready", child_term_body "flt_term_body";
    child_kill_start "flt_kill_start", child_kill_ready "flt_kill_ready", child_kill_body "flt_kill_body";
}

/// An env partitioned and shaped (issue 14; loss, rate and delay, the last with a helper
/// container of its own) when its body ends: by itself, or by a signal.
#[e2e::test(env = "flt_part_ok")]
#[ignore]
async fn child_part_ok(a: Sleeper, b: Sleeper) -> e2e::Result<()> {
    let _cut = e2e::partition([&*a], [&*b]).await?;
    let delay = std::time::Duration::from_millis(20);
    b.set_network(e2e::Conditions::new().loss(0.1).rate(100_000).delay(delay)).await?;
    mark("body");
    Ok(())
}

#[e2e::test(env = "flt_part_kill")]
#[ignore]
async fn child_part_kill(a: Sleeper, b: Sleeper) -> e2e::Result<()> {
    let _cut = e2e::partition([&*a], [&*b]).await?;
    let _one_way = e2e::partition_one_way([&*b], [&*a]).await?;
    a.set_link(&b, e2e::Conditions::new().loss(0.5).delay(std::time::Duration::from_millis(30))).await?;
    forever().await;
    Ok(())
}

/// Shared envs (issue 13): two tests of one shared env, ending well or one of them badly, a
/// body ended by a signal, and a body held by several processes of one run.
#[e2e::test(env = "flt_sh_ok", shared)]
#[ignore]
async fn child_sh_ok_a(_a: Sleeper, _b: Sleeper) -> e2e::Result<()> {
    mark("body");
    Ok(())
}

#[e2e::test(env = "flt_sh_ok", shared)]
#[ignore]
async fn child_sh_ok_b(_a: Sleeper, _b: Sleeper) -> e2e::Result<()> {
    mark("body");
    Ok(())
}

#[e2e::test(env = "flt_sh_panic", shared)]
#[ignore]
async fn child_sh_panic_a(_a: Sleeper, _b: Sleeper) {
    mark("body");
}

#[e2e::test(env = "flt_sh_panic", shared)]
#[ignore]
async fn child_sh_panic_b(_a: Sleeper, _b: Sleeper) {
    mark("body");
    panic!("the shared body panicked");
}

#[e2e::test(env = "flt_sh_timeout", shared, timeout = "1s")]
#[ignore]
async fn child_sh_timeout_a(_a: Sleeper, _b: Sleeper) {
    forever().await;
}

#[e2e::test(env = "flt_sh_timeout", shared)]
#[ignore]
async fn child_sh_timeout_b(_a: Sleeper, _b: Sleeper) {
    mark("body");
}

macro_rules! shared_signal_children {
    ($($name:ident $env:tt;)*) => {$(
        #[e2e::test(env = $env, shared)]
        #[ignore]
        async fn $name(_a: Sleeper, _b: Sleeper) {
            forever().await;
        }
    )*};
}

shared_signal_children! {
    child_sh_int "flt_sh_int";
    child_sh_term "flt_sh_term";
    child_sh_kill "flt_sh_kill";
    child_sh_held "flt_sh_held";
}

/// Five ready containers in the env `E2E_FAULT_ENV`, checked to be its own.
#[test]
#[ignore]
fn child_five() {
    let env = std::env::var("E2E_FAULT_ENV").expect("E2E_FAULT_ENV is set");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(five_in_env(&env)).unwrap();
}

/// Uses the env `E2E_FAULT_ENV` for a while, marking when.
#[test]
#[ignore]
fn child_same_name() {
    let env = std::env::var("E2E_FAULT_ENV").expect("E2E_FAULT_ENV is set");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let marks = std::env::var("E2E_FAULT_MARK").expect("E2E_FAULT_MARK is set");
    rt.block_on(hold_env(&env, "proc", PathBuf::from(marks))).unwrap();
}

/// Creates the env `E2E_FAULT_ENV` (under whatever DOCKER_HOST or TMPDIR the parent set) and
/// prints the outcome for the parent.
#[test]
#[ignore]
fn child_create_env() {
    let env = std::env::var("E2E_FAULT_ENV").expect("E2E_FAULT_ENV is set");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        match Env::docker(&env).await {
            Ok(env) => {
                println!("E2E_FAULT_OUTCOME ok");
                env.close().await.unwrap();
            }
            Err(e) => {
                println!("E2E_FAULT_KIND {}", kind(&e));
                for line in e.to_string().lines() {
                    println!("E2E_FAULT_ERROR {line}");
                }
            }
        }
    });
}

/// Runnables named as the user's own unlabelled resources are (`flt_foreign-web`, the volume
/// `flt_foreign-data`): they run under names of their own; a SIGKILL then ends the run (see
/// `foreign` below).
#[e2e::test(env = "flt_foreign")]
#[ignore]
async fn child_foreign(env: &Env, _ok: Sleeper) {
    let web = env.runnable("web").init(StartOptions::new(BUSYBOX).command(["sleep", "3600"]));
    web.start().await.unwrap();
    assert_ne!(web.container_name(), "flt_foreign-web", "a name of the run's own");
    let vol = env.runnable("vol").init(StartOptions::new(BUSYBOX).command(["sleep", "3600"]).volume("data", "/data"));
    // The outcome is reported; the user's volume must survive either way.
    match vol.start().await {
        Ok(()) => mark("volume-start ok"),
        Err(e) => mark(&format!("volume-start err:{}", e.to_string().lines().next().unwrap_or("").replace(' ', "_"))),
    }
    forever().await;
}

async fn five_in_env(name: &str) -> e2e::Result<()> {
    let env = Env::docker(name).await?;
    let web = |i: usize| {
        env.runnable(&format!("r{i}")).with_ports([("http", 80)]).init(
            StartOptions::new(BUSYBOX)
                .command(["httpd", "-f", "-p", "80", "-h", "/"])
                .readiness(Probe::tcp("http"))
                .quiet(true),
        )
    };
    let rs: Vec<_> = (0..5).map(web).collect();
    e2e::start_and_wait_ready(&rs).await?;
    // Exactly its own five, running, with distinct endpoints.
    let mine = docker(&["ps", "--filter", &format!("label=dev.e2e.env={name}"), "--format", "{{.Names}} {{.State}}"]);
    let mut seen: Vec<_> = mine.lines().map(str::to_string).collect();
    seen.sort();
    let mut want: Vec<_> = rs.iter().map(|r| format!("{} running", r.container_name())).collect();
    want.sort();
    assert_eq!(seen, want, "env {name} sees other containers or misses its own");
    let mut endpoints = HashSet::new();
    for r in &rs {
        assert!(r.is_running().await?, "{}", r.name());
        assert!(endpoints.insert(r.endpoint("http")?), "{name}: two runnables on one endpoint");
    }
    env.close().await?;
    Ok(())
}

async fn hold_env(name: &str, who: &str, marks: PathBuf) -> e2e::Result<()> {
    let env = Env::docker(name).await?;
    mark_to(&marks, &format!("{who}-start"));
    let r = env.runnable("holder").init(StartOptions::new(BUSYBOX).command(["sleep", "3600"]).quiet(true));
    r.start().await?;
    assert!(r.is_running().await?);
    tokio::time::sleep(Duration::from_millis(300)).await;
    mark_to(&marks, &format!("{who}-end"));
    env.close().await
}

// ---------------------------------------------------------------------------------------------
// Counting what is left.

/// What one env (or one run) left behind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Left {
    containers: usize,
    networks: usize,
    volumes: usize,
    dirs: usize,
    watchdogs: usize,
}

impl Left {
    fn total(&self) -> usize {
        self.containers + self.networks + self.volumes + self.dirs + self.watchdogs
    }
    fn add(&mut self, o: Left) {
        self.containers += o.containers;
        self.networks += o.networks;
        self.volumes += o.volumes;
        self.dirs += o.dirs;
        self.watchdogs += o.watchdogs;
    }
}

fn count_lines(args: &[&str]) -> usize {
    docker(args).lines().filter(|l| !l.trim().is_empty()).count()
}

fn runs_dir() -> PathBuf {
    std::env::temp_dir().join("e2e-runs")
}

/// Labelled resources of `env`, its directories in any run, and, for a child `pid`, that run's
/// directory and the watchdogs still watching it.
fn left(env: &str, pid: Option<u32>) -> Left {
    let filter = format!("label=dev.e2e.env={env}");
    let mut dirs = 0;
    for run in std::fs::read_dir(runs_dir()).into_iter().flatten().flatten() {
        let name = run.file_name().to_string_lossy().into_owned();
        if run.path().join(env).exists() || pid.is_some_and(|p| name.starts_with(&format!("{p}."))) {
            dirs += 1;
        }
    }
    Left {
        containers: count_lines(&["ps", "-aq", "--filter", &filter]),
        // A run's networks are pooled (`dev.e2e.env=_pool`), so a child run's are counted by
        // its owner label.
        networks: count_lines(&["network", "ls", "-q", "--filter", &filter])
            + pid.map_or(0, common::pooled_networks_of),
        volumes: count_lines(&["volume", "ls", "-q", "--filter", &filter]),
        dirs,
        watchdogs: pid.map_or(0, watchdogs_of),
    }
}

/// The pooled networks of the run of `pid` that the engine will not remove, though no
/// container is attached: "has active endpoints" (its phantom). A network it does remove was a
/// real leftover, counted before this call; it is gone now.
fn phantom_networks_of(pid: u32) -> Vec<String> {
    let listed = docker(&[
        "network",
        "ls",
        "--filter",
        "label=dev.e2e.env=_pool",
        "--format",
        "{{.Name}} {{.Label \"dev.e2e.owner\"}}",
    ]);
    let needle = format!("/{pid}/");
    let mut phantoms = Vec::new();
    for (name, _) in listed.lines().filter_map(|l| l.split_once(' ')).filter(|(_, o)| o.contains(&needle)) {
        let attached = docker(&["network", "inspect", "-f", "{{len .Containers}}", name]);
        let rm = Command::new("docker").args(["network", "rm", name]).output().unwrap();
        if attached == "0" && !rm.status.success() && String::from_utf8_lossy(&rm.stderr).contains("active endpoints") {
            phantoms.push(name.to_string());
        }
    }
    phantoms
}

/// Watchdog processes watching the run of `pid`.
fn watchdogs_of(pid: u32) -> usize {
    let needle = format!("/{pid}/");
    let mut n = 0;
    for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(environ) = std::fs::read(p.path().join("environ")) else { continue };
        for var in environ.split(|b| *b == 0) {
            if let Some(owner) = var.strip_prefix(b"E2E_WATCHDOG_OWNER=") {
                if String::from_utf8_lossy(owner).contains(&needle) {
                    n += 1;
                }
            }
        }
    }
    n
}

/// Waits until `env` left nothing (up to `patience`), returning what is left then.
fn settle(env: &str, pid: Option<u32>, patience: Duration) -> Left {
    let t = Instant::now();
    loop {
        let l = left(env, pid);
        if l.total() == 0 || t.elapsed() >= patience {
            return l;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs the env once more in this process: it sweeps what dead runs left under its name.
fn next_run(env: &str) -> e2e::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async { Env::docker(env).await?.close().await })
}

// ---------------------------------------------------------------------------------------------
// Running children.

fn reps() -> usize {
    std::env::var("E2E_FAULT_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(1).max(1)
}

/// `<target>/e2e-faults` (this binary is `<target>/<profile>/deps/<name>`).
fn out_dir() -> PathBuf {
    let dir = std::env::current_exe().unwrap().ancestors().nth(3).unwrap().join("e2e-faults");
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    dir
}

fn mark_file(tag: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("e2e-faults-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

fn marks(path: &Path) -> Vec<(String, u32, u128)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut p = l.split(' ');
            Some((p.next()?.to_string(), p.next()?.parse().ok()?, p.next()?.parse().ok()?))
        })
        .collect()
}

/// This binary, running one child test, in a process group of its own (like a test run that a
/// terminal or cargo-nextest signals as a whole), its output in a log file.
fn child(test: &str, tag: &str, vars: &[(&str, &str)]) -> (Command, PathBuf) {
    child_of(&["--exact", test, "--test-threads=1"], tag, vars)
}

/// This binary with the test harness's arguments `args` (a filter, `--exact`, threads), as
/// [`child`] runs it. The run-id variables are not inherited: a shared env is the process's
/// own unless the case gives it a run.
fn child_of(args: &[&str], tag: &str, vars: &[(&str, &str)]) -> (Command, PathBuf) {
    use std::os::unix::process::CommandExt;
    let log = out_dir().join("logs").join(format!("{tag}.log"));
    let file = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.arg("--ignored")
        .args(args)
        .arg("--nocapture")
        .env("RUST_BACKTRACE", "0")
        .env("E2E_QUIET", "1")
        .env_remove("E2E_KEEP")
        .env_remove("E2E_REUSE")
        .env_remove("E2E_RUN_ID")
        .env_remove("NEXTEST_RUN_ID")
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .process_group(0);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    (cmd, log)
}

fn wait_timeout(child: &mut Child, patience: Duration) -> Option<std::process::ExitStatus> {
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if t.elapsed() > patience {
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_for(what: &str, patience: Duration, mut cond: impl FnMut() -> bool) -> Result<(), String> {
    let t = Instant::now();
    while !cond() {
        if t.elapsed() > patience {
            return Err(format!("{what}: not within {patience:?}"));
        }
        std::thread::sleep(Duration::from_millis(15));
    }
    Ok(())
}

/// A row of the fault table.
#[derive(Debug, Default, Clone)]
struct Row {
    case: String,
    reps: usize,
    /// Left once the run ended (after the watchdog for SIGKILL).
    left: Left,
    /// Runs whose leftovers only the next run of the env removed.
    swept_by_next_run: usize,
    /// Repetitions that did not behave as expected (exit status, interference...).
    failures: Vec<String>,
    /// Pooled networks the engine kept as phantoms (see `phantom_networks_of`).
    phantoms: Vec<String>,
    took: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Start,
    Ready,
    Body,
}

/// One repetition of a child ended by a signal at a phase. Non-KILL runs have no watchdog, so
/// what is counted is what the process itself cleaned.
fn signal_rep(signal: i32, phase: Phase, test: &str, env: &str, rep: usize, row: &mut Row) {
    let tag = format!("{env}-{rep}");
    let marks_path = mark_file(&tag);
    let kill = signal == libc::SIGKILL;
    let mut vars = vec![("E2E_FAULT_MARK", marks_path.to_str().unwrap())];
    if !kill {
        vars.push(("E2E_NO_WATCHDOG", "1"));
    }
    let (mut cmd, log) = child(test, &tag, &vars);
    let mut proc = cmd.spawn().unwrap();
    let pid = proc.id();
    let filter = format!("label=dev.e2e.env={env}");
    // Spread the moment of the signal over the phase.
    let jitter = Duration::from_millis(40 * (rep % 6) as u64);
    let reached = match phase {
        Phase::Start => wait_for("a first container", Duration::from_secs(60), || {
            count_lines(&["ps", "-aq", "--filter", &filter]) >= 1
        }),
        Phase::Ready => wait_for("three running containers", Duration::from_secs(60), || {
            count_lines(&["ps", "-q", "--filter", &filter, "--filter", "status=running"]) == 3
        }),
        Phase::Body => {
            wait_for("the body", Duration::from_secs(60), || marks(&marks_path).iter().any(|m| m.0 == "body"))
        }
    };
    if let Err(e) = reached {
        row.failures.push(format!("rep {rep}: {e} (see {})", log.display()));
    }
    std::thread::sleep(jitter);
    if phase == Phase::Start && marks(&marks_path).iter().any(|m| m.0 == "body") {
        row.failures.push(format!("rep {rep}: the start was over before the signal"));
    }
    // Ctrl-C and SIGKILL reach the whole group, as from a terminal; SIGTERM the process.
    let target = if signal == libc::SIGTERM { pid as i32 } else { -(pid as i32) };
    unsafe { libc::kill(target, signal) };
    match wait_timeout(&mut proc, Duration::from_secs(60)) {
        None => row.failures.push(format!("rep {rep}: still running 60 s after the signal")),
        Some(s) if s.success() => row.failures.push(format!("rep {rep}: exited with success after a signal")),
        Some(_) => {}
    }
    finish_rep(env, pid, kill, rep, row);
    let _ = std::fs::remove_file(&marks_path);
}

/// Counts what the run of `pid` left in `env`; a leak is swept by the next run, and counted.
fn finish_rep(env: &str, pid: u32, watchdog: bool, rep: usize, row: &mut Row) {
    // The watchdog needs a moment; a process that cleaned up itself must have done it by now.
    let patience = if watchdog { Duration::from_secs(20) } else { Duration::from_millis(0) };
    let mut l = settle(env, Some(pid), patience);
    // A pooled network the engine refuses to remove though no container is attached is the
    // engine's phantom endpoint: reported as such, not as the framework's leak.
    let phantoms = phantom_networks_of(pid);
    l.networks -= phantoms.len().min(l.networks);
    for n in phantoms {
        row.phantoms.push(format!("rep {rep}: {env}: network {n}"));
    }
    if l.total() > 0 {
        eprintln!("[faults] {env} rep {rep}: left {l:?}");
        if let Err(e) = next_run(env) {
            row.failures.push(format!("rep {rep}: the next run of {env} failed: {e}"));
        }
        // Watchdogs and run dirs of a dead process: give them the patience too.
        let after = settle(env, Some(pid), Duration::from_secs(5));
        if after.total() == 0 {
            row.swept_by_next_run += 1;
        } else {
            row.failures.push(format!("rep {rep}: left {after:?} even after the next run"));
        }
    }
    row.left.add(l);
}

/// One repetition of a child that ends by itself (Ok, Err, panic, timeout).
fn outcome_rep(test: &str, env: &str, want_success: bool, want_msg: &str, rep: usize, row: &mut Row) {
    outcome_rep_of(&["--exact", test, "--test-threads=1"], env, want_success, want_msg, rep, row)
}

/// [`outcome_rep`] of the child run with the harness's arguments `args`.
fn outcome_rep_of(args: &[&str], env: &str, want_success: bool, want_msg: &str, rep: usize, row: &mut Row) {
    let tag = format!("{env}-{rep}");
    let (mut cmd, log) = child_of(args, &tag, &[("E2E_NO_WATCHDOG", "1")]);
    let mut proc = cmd.spawn().unwrap();
    let pid = proc.id();
    match wait_timeout(&mut proc, Duration::from_secs(120)) {
        None => row.failures.push(format!("rep {rep}: did not end")),
        Some(s) => {
            let out = std::fs::read_to_string(&log).unwrap_or_default();
            if s.success() != want_success {
                row.failures.push(format!("rep {rep}: exit {s} (see {})", log.display()));
            }
            if !out.contains(want_msg) {
                row.failures.push(format!("rep {rep}: no {want_msg:?} in {}", log.display()));
            }
        }
    }
    finish_rep(env, pid, false, rep, row);
}

fn run_case(case: &str, reps: usize, mut one: impl FnMut(usize, &mut Row)) -> Row {
    let mut row = Row { case: case.to_string(), reps, ..Default::default() };
    let t = Instant::now();
    for rep in 0..reps {
        one(rep, &mut row);
    }
    row.took = t.elapsed();
    eprintln!("[faults] {case}: {reps} reps, left {}, {:.1?}", row.left.total(), row.took);
    row
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap()
}

/// `(start, end)` intervals of each holder, by who.
fn overlaps(marks: &[(String, u32, u128)], prefix: &str) -> usize {
    let mut iv: BTreeMap<u32, (u128, u128)> = BTreeMap::new();
    for (what, pid, t) in marks {
        let Some(which) = what.strip_prefix(prefix) else { continue };
        let e = iv.entry(*pid).or_default();
        if which == "-start" {
            e.0 = *t
        } else {
            e.1 = *t
        }
    }
    let iv: Vec<_> = iv.into_values().collect();
    let mut n = 0;
    for i in 0..iv.len() {
        for j in i + 1..iv.len() {
            if iv[i].0 < iv[j].1 && iv[j].0 < iv[i].1 {
                n += 1;
            }
        }
    }
    n
}

fn parallel_in_process(rep: usize, row: &mut Row) {
    let names: Vec<String> = (0..8).map(|i| format!("flt_par{i}")).collect();
    let results = tokio_rt().block_on(async {
        let runs: Vec<_> = names.iter().cloned().map(|n| tokio::spawn(async move { five_in_env(&n).await })).collect();
        let mut results = Vec::new();
        for r in runs {
            results.push(r.await.unwrap());
        }
        results
    });
    for (n, r) in names.iter().zip(results) {
        if let Err(e) = r {
            row.failures.push(format!("rep {rep}: {n}: {e}"));
        }
    }
    for n in &names {
        let l = left(n, None);
        if l.total() > 0 {
            match next_run(n) {
                Ok(()) => row.swept_by_next_run += 1,
                Err(e) => row.failures.push(format!("rep {rep}: the next run of {n} failed: {e}")),
            }
        }
        row.left.add(l);
    }
}

fn parallel_processes(rep: usize, row: &mut Row) {
    let names: Vec<String> = (0..8).map(|i| format!("flt_proc{i}")).collect();
    let mut procs = Vec::new();
    for n in &names {
        let (mut cmd, log) = child("child_five", &format!("{n}-{rep}"), &[("E2E_FAULT_ENV", n)]);
        procs.push((n, cmd.spawn().unwrap(), log));
    }
    for (n, mut p, log) in procs {
        let pid = p.id();
        match wait_timeout(&mut p, Duration::from_secs(180)) {
            Some(s) if s.success() => {}
            other => row.failures.push(format!("rep {rep}: {n}: {other:?} (see {})", log.display())),
        }
        finish_rep(n, pid, true, rep, row);
    }
}

fn same_name_in_process(rep: usize, row: &mut Row) {
    let path = mark_file("same-in-process");
    let results = tokio_rt().block_on(async {
        let a = tokio::spawn(hold_env("flt_same", "a", path.clone()));
        let b = tokio::spawn(hold_env("flt_same", "b", path.clone()));
        (a.await.unwrap(), b.await.unwrap())
    });
    for r in [results.0, results.1] {
        if let Err(e) = r {
            row.failures.push(format!("rep {rep}: {e}"));
        }
    }
    let m = marks(&path);
    let mut iv: BTreeMap<&str, (u128, u128)> = BTreeMap::new();
    for (what, _, t) in &m {
        let (who, which) = what.split_once('-').unwrap();
        let e = iv.entry(who).or_default();
        if which == "start" {
            e.0 = *t
        } else {
            e.1 = *t
        }
    }
    match (iv.get("a"), iv.get("b")) {
        (Some(a), Some(b)) if a.0 < b.1 && b.0 < a.1 => {
            row.failures.push(format!("rep {rep}: both held flt_same at once"))
        }
        (Some(_), Some(_)) => {}
        _ => row.failures.push(format!("rep {rep}: a holder did not run: {m:?}")),
    }
    let _ = std::fs::remove_file(&path);
    let l = left("flt_same", None);
    row.left.add(l);
}

fn same_name_processes(rep: usize, row: &mut Row) {
    let path = mark_file(&format!("same-proc-{rep}"));
    let env = "flt_same_proc";
    let mut procs = Vec::new();
    for i in 0..2 {
        let (mut cmd, log) = child(
            "child_same_name",
            &format!("{env}-{rep}-{i}"),
            &[("E2E_FAULT_ENV", env), ("E2E_FAULT_MARK", path.to_str().unwrap())],
        );
        procs.push((cmd.spawn().unwrap(), log));
    }
    for (mut p, log) in procs {
        let pid = p.id();
        match wait_timeout(&mut p, Duration::from_secs(120)) {
            Some(s) if s.success() => {}
            other => row.failures.push(format!("rep {rep}: {other:?} (see {})", log.display())),
        }
        finish_rep(env, pid, true, rep, row);
    }
    let m = marks(&path);
    if m.iter().filter(|x| x.0 == "proc-end").count() != 2 {
        row.failures.push(format!("rep {rep}: both processes did not finish: {m:?}"));
    }
    if overlaps(&m, "proc") > 0 {
        row.failures.push(format!("rep {rep}: two processes held {env} at once"));
    }
    let _ = std::fs::remove_file(&path);
}

/// Unlabelled resources with the names the framework would use, around a run ended by SIGKILL.
fn foreign(rep: usize, row: &mut Row) {
    let env = "flt_foreign";
    let _ = Command::new("docker").args(["rm", "-f", "flt_foreign-web"]).output();
    let _ = Command::new("docker").args(["network", "rm", env]).output();
    let _ = Command::new("docker").args(["volume", "rm", "flt_foreign-data"]).output();
    docker(&["run", "-d", "--name", "flt_foreign-web", BUSYBOX, "sleep", "3600"]);
    docker(&["network", "create", env]);
    docker(&["volume", "create", "flt_foreign-data"]);
    let path = mark_file(&format!("foreign-{rep}"));
    let (mut cmd, log) =
        child("child_foreign::flt_foreign", &format!("{env}-{rep}"), &[("E2E_FAULT_MARK", path.to_str().unwrap())]);
    let mut proc = cmd.spawn().unwrap();
    let pid = proc.id();
    if let Err(e) = wait_for("the body", Duration::from_secs(60), || marks(&path).iter().any(|m| m.0 == "body")) {
        row.failures.push(format!("rep {rep}: {e} (see {})", log.display()));
    }
    unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
    let _ = proc.wait();
    finish_rep(env, pid, true, rep, row);
    if let Some(m) = marks(&path).iter().find(|m| m.0.starts_with("volume-start")) {
        if rep == 0 {
            eprintln!("[faults] foreign volume: {}", m.0);
        }
    }
    if docker(&["inspect", "-f", "{{.State.Running}}", "flt_foreign-web"]) != "true" {
        row.failures.push(format!("rep {rep}: the foreign container was stopped"));
    }
    if count_lines(&["network", "ls", "-q", "--filter", "name=^flt_foreign$"]) != 1 {
        row.failures.push(format!("rep {rep}: the foreign network is gone"));
    }
    if Command::new("docker")
        .args(["volume", "inspect", "flt_foreign-data"])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        row.failures.push(format!("rep {rep}: the foreign volume is gone"));
    }
    docker(&["rm", "-f", "flt_foreign-web"]);
    docker(&["network", "rm", env]);
    let _ = Command::new("docker").args(["volume", "rm", "flt_foreign-data"]).output();
    let _ = std::fs::remove_file(&path);
}

/// Processes `E2E_KEEPER_ENV` names as keepers of `env` (from their initial environment).
fn keepers_of(env: &str) -> usize {
    let needle = format!("E2E_KEEPER_ENV={env}");
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|p| {
            std::fs::read(p.path().join("environ"))
                .map(|e| e.split(|b| *b == 0).any(|v| v == needle.as_bytes()))
                .unwrap_or(false)
        })
        .count()
}

/// Three processes of one run (as cargo-nextest runs them) hold one shared env through its
/// keeper; all three are SIGKILLed in their bodies. The keeper must remove the env once no
/// lease is held, and end.
fn shared_holders_killed(rep: usize, row: &mut Row) {
    let env = "flt_sh_held";
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let run = format!("faults-{}-{rep}-{nanos}", std::process::id());
    let path = mark_file(&format!("sh-held-{rep}"));
    let mut procs = Vec::new();
    for i in 0..3 {
        let (mut cmd, log) = child(
            "child_sh_held::flt_sh_held",
            &format!("{env}-{rep}-{i}"),
            &[("E2E_RUN_ID", run.as_str()), ("E2E_FAULT_MARK", path.to_str().unwrap())],
        );
        procs.push((cmd.spawn().unwrap(), log));
    }
    if let Err(e) =
        wait_for("three bodies", Duration::from_secs(90), || marks(&path).iter().filter(|m| m.0 == "body").count() == 3)
    {
        let bodies = marks(&path).iter().filter(|m| m.0 == "body").count();
        // The keeper's own words (keeper.rs writes them beside its lease).
        let keeper_log: String = std::fs::read_dir(std::env::temp_dir().join("e2e-runs/shared"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|f| {
                f.file_name().to_string_lossy().starts_with(&run) && f.path().extension().is_some_and(|x| x == "log")
            })
            .filter_map(|f| std::fs::read_to_string(f.path()).ok())
            .collect();
        let tail: Vec<&str> = keeper_log.lines().rev().take(5).collect();
        row.failures.push(format!(
            "rep {rep}: {e}: {bodies} of 3 bodies; the keeper said {tail:?} (see {})",
            procs[0].1.display()
        ));
    }
    let running = count_lines(&["ps", "-q", "--filter", &format!("label=dev.e2e.env={env}")]);
    if running != 2 {
        row.failures.push(format!("rep {rep}: {running} containers for the 3 holders, not the env's 2"));
    }
    for (p, _) in &mut procs {
        unsafe { libc::kill(-(p.id() as i32), libc::SIGKILL) };
        let _ = p.wait();
    }
    // The keeper's grace (2 s), then its close; its own watchdog if it died too.
    let mut l = settle(env, None, Duration::from_secs(30));
    for (p, _) in &procs {
        l.add(settle(env, Some(p.id()), Duration::from_secs(5)));
    }
    // Its resources gone, the keeper ends (after its exit hook): give it a moment under load.
    let t = Instant::now();
    let mut keepers = keepers_of(env);
    while keepers > 0 && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(200));
        keepers = keepers_of(env);
    }
    if keepers > 0 {
        row.failures.push(format!("rep {rep}: {keepers} keeper(s) of {env} still running 10 s after its env was gone"));
    }
    if l.total() > 0 {
        eprintln!("[faults] {env} rep {rep}: left {l:?}");
        if let Err(e) = next_run(env) {
            row.failures.push(format!("rep {rep}: the next run of {env} failed: {e}"));
        }
        if settle(env, None, Duration::from_secs(5)).total() == 0 {
            row.swept_by_next_run += 1;
        } else {
            row.failures.push(format!("rep {rep}: left {l:?} even after the next run"));
        }
    }
    row.left.add(l);
    let _ = std::fs::remove_file(&path);
}

fn print_fault_table(rows: &[Row]) -> String {
    let mut t = String::new();
    writeln!(t, "\nfault suite: E2E_FAULT_REPS={}", reps()).unwrap();
    writeln!(
        t,
        "{:<38} {:>5} {:>6} {:>5} {:>5} {:>5} {:>5} {:>5} {:>10} {:>8} {:>8} {:>8}",
        "case", "reps", "leaks", "ctr", "net", "vol", "dir", "wdog", "next-run", "failed", "phantom", "time"
    )
    .unwrap();
    for r in rows {
        writeln!(
            t,
            "{:<38} {:>5} {:>6} {:>5} {:>5} {:>5} {:>5} {:>5} {:>10} {:>8} {:>8} {:>7.1}s",
            r.case,
            r.reps,
            r.left.total(),
            r.left.containers,
            r.left.networks,
            r.left.volumes,
            r.left.dirs,
            r.left.watchdogs,
            r.swept_by_next_run,
            r.failures.len(),
            r.phantoms.len(),
            r.took.as_secs_f64()
        )
        .unwrap();
    }
    writeln!(
        t,
        "leaks: counted once the run ended (SIGINT/SIGTERM/Ok/Err/panic/timeout without the watchdog, \
        so what the process cleaned itself; SIGKILL after the watchdog, up to 20 s); next-run: runs whose leaks \
        only the next run of the env removed; phantom: pooled networks the engine refuses to remove \
        (\"has active endpoints\") with no container attached, its own fault, not counted as leaks."
    )
    .unwrap();
    for r in rows {
        for f in &r.failures {
            writeln!(t, "  {}: {f}", r.case).unwrap();
        }
        for p in &r.phantoms {
            writeln!(t, "  {}: the engine's phantom endpoint: {p}", r.case).unwrap();
        }
    }
    t
}

#[test]
fn fault_suite() {
    let n = reps();
    let rows = Arc::new(Mutex::new(Vec::<(usize, Row)>::new()));
    // Cases in a few lanes at once: each its own env names, so they cannot mix up.
    type Case = Box<dyn FnOnce() -> Row + Send>;
    let mut cases: Vec<Case> = Vec::new();
    let outcome = |name: &'static str, test: &'static str, env: &'static str, ok: bool, msg: &'static str| -> Case {
        Box::new(move || run_case(name, n, |rep, row| outcome_rep(test, env, ok, msg, rep, row)))
    };
    cases.push(outcome("Ok", "child_ok::flt_ok", "flt_ok", true, "test child_ok::flt_ok ... ok"));
    cases.push(outcome("Err", "child_err::flt_err", "flt_err", false, "the body said no"));
    cases.push(outcome("panic", "child_panic::flt_panic", "flt_panic", false, "the body panicked"));
    cases.push(outcome("timeout", "child_timeout::flt_timeout", "flt_timeout", false, "timed out after 1s"));
    for (sig, sname, short) in
        [(libc::SIGINT, "SIGINT", "int"), (libc::SIGTERM, "SIGTERM", "term"), (libc::SIGKILL, "SIGKILL", "kill")]
    {
        for (phase, pname) in [(Phase::Start, "start"), (Phase::Ready, "ready"), (Phase::Body, "body")] {
            let env = format!("flt_{short}_{pname}");
            let test = format!("child_{short}_{pname}::{env}");
            let case = format!(
                "{sname} during {}",
                match phase {
                    Phase::Start => "start (8 containers)",
                    Phase::Ready => "readiness",
                    Phase::Body => "body",
                }
            );
            cases.push(Box::new(move || run_case(&case, n, |rep, row| signal_rep(sig, phase, &test, &env, rep, row))));
        }
    }
    let shared = |name: &'static str, filter: &'static str, env: &'static str, ok: bool, msg: &'static str| -> Case {
        Box::new(move || {
            run_case(name, n, |rep, row| outcome_rep_of(&[filter, "--test-threads=2"], env, ok, msg, rep, row))
        })
    };
    cases.push(shared("shared env: 2 tests Ok", "child_sh_ok_", "flt_sh_ok", true, "test result: ok. 2 passed"));
    cases.push(shared(
        "shared env: 1 of 2 panics",
        "child_sh_panic_",
        "flt_sh_panic",
        false,
        "the shared body panicked",
    ));
    cases.push(shared(
        "shared env: 1 of 2 times out",
        "child_sh_timeout_",
        "flt_sh_timeout",
        false,
        "timed out after 1s",
    ));
    for (sig, sname, short) in
        [(libc::SIGINT, "SIGINT", "int"), (libc::SIGTERM, "SIGTERM", "term"), (libc::SIGKILL, "SIGKILL", "kill")]
    {
        let env = format!("flt_sh_{short}");
        let test = format!("child_sh_{short}::{env}");
        let case = format!("shared env: {sname} during body");
        cases
            .push(Box::new(move || run_case(&case, n, |rep, row| signal_rep(sig, Phase::Body, &test, &env, rep, row))));
    }
    cases.push(Box::new(move || run_case("shared env, 3 processes: SIGKILL all", n, shared_holders_killed)));
    cases.push(outcome(
        "partitioned + shaped: Ok",
        "child_part_ok::flt_part_ok",
        "flt_part_ok",
        true,
        "test child_part_ok::flt_part_ok ... ok",
    ));
    cases.push(Box::new(move || {
        run_case("partitioned + shaped: SIGKILL in body", n, |rep, row| {
            signal_rep(libc::SIGKILL, Phase::Body, "child_part_kill::flt_part_kill", "flt_part_kill", rep, row)
        })
    }));
    cases.push(Box::new(move || run_case("8 envs x 5 containers, 1 process", n, parallel_in_process)));
    cases.push(Box::new(move || run_case("8 envs x 5 containers, 8 processes", n, parallel_processes)));
    cases.push(Box::new(move || run_case("one env name twice, 1 process", n, same_name_in_process)));
    cases.push(Box::new(move || run_case("one env name twice, 2 processes", n, same_name_processes)));
    cases.push(Box::new(move || run_case("foreign resources + SIGKILL", n, foreign)));

    let total = cases.len();
    let queue = Arc::new(Mutex::new(cases.into_iter().enumerate().collect::<Vec<_>>()));
    let lanes: usize = std::env::var("E2E_FAULT_LANES").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let done = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..lanes)
        .map(|_| {
            let (queue, rows, done) = (queue.clone(), rows.clone(), done.clone());
            std::thread::spawn(move || loop {
                let next = queue.lock().unwrap().pop();
                let Some((i, case)) = next else { break };
                // A case that panics still gets its row, so the table is printed.
                let row = std::panic::catch_unwind(std::panic::AssertUnwindSafe(case)).unwrap_or_else(|p| Row {
                    case: format!("case #{i}"),
                    failures: vec![format!(
                        "panicked: {:?}",
                        p.downcast_ref::<String>().map(String::as_str).or(p.downcast_ref::<&str>().copied())
                    )],
                    ..Default::default()
                });
                rows.lock().unwrap().push((i, row));
                done.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a lane of the fault suite panicked");
    }
    assert_eq!(done.load(Ordering::SeqCst), total);
    let mut rows = std::mem::take(&mut *rows.lock().unwrap());
    rows.sort_by_key(|(i, _)| *i);
    let rows: Vec<Row> = rows.into_iter().map(|(_, r)| r).collect();
    let table = print_fault_table(&rows);
    eprintln!("{table}");
    std::fs::write(out_dir().join("faults.txt"), &table).unwrap();
    let leaks: usize = rows.iter().map(|r| r.left.total()).sum();
    let failures: usize = rows.iter().map(|r| r.failures.len()).sum();
    assert!(leaks == 0 && failures == 0, "{leaks} leaks, {failures} failures:{table}");
}

// ---------------------------------------------------------------------------------------------
// Bad input matrix.

fn kind(e: &Error) -> &'static str {
    match e {
        Error::DockerUnavailable { .. } => "DockerUnavailable",
        Error::Engine { .. } => "Engine",
        Error::InvalidName { .. } => "InvalidName",
        Error::ImageNotFound { .. } => "ImageNotFound",
        Error::UnknownPort { .. } => "UnknownPort",
        Error::EnvClosed { .. } => "EnvClosed",
        Error::DuplicateRunnable { .. } => "DuplicateRunnable",
        Error::NotStarted { .. } => "NotStarted",
        Error::NotRunning { .. } => "NotRunning",
        Error::Exited { .. } => "Exited",
        Error::NotReady { .. } => "NotReady",
        Error::Io { .. } => "Io",
        Error::MissingMetric { .. } => "MissingMetric",
        Error::MetricsFetch { .. } => "MetricsFetch",
        _ => "other",
    }
}

struct BadRow {
    case: &'static str,
    /// What the error must name.
    names: Vec<String>,
    outcome: std::result::Result<String, String>,
    usable: &'static str,
    left: Left,
}

/// `<kind>: <message>`, lines joined by a literal `\n` (the table shows the first).
fn first_line(e: &Error) -> String {
    format!("{}: {}", kind(e), e.to_string().lines().collect::<Vec<_>>().join("\\n"))
}

/// Starts a fresh runnable in `env`: the env still works.
async fn still_usable(env: &Env, name: &str) -> &'static str {
    let r = env.runnable(name).init(StartOptions::new(BUSYBOX).command(["sleep", "3600"]).quiet(true));
    match r.start().await {
        Ok(()) if r.is_running().await.unwrap_or(false) => "yes",
        _ => "NO",
    }
}

fn bad_row(
    case: &'static str,
    names: &[&str],
    r: std::result::Result<impl std::fmt::Debug, Error>,
    usable: &'static str,
) -> BadRow {
    BadRow {
        case,
        names: names.iter().map(|s| s.to_string()).collect(),
        outcome: match r {
            Ok(v) => Err(format!("no error: {v:?}")),
            Err(e) => Ok(first_line(&e)),
        },
        usable,
        left: Left::default(),
    }
}

/// One child process creating an env under a hostile process-wide setting.
fn create_env_in_child(env: &str, tag: &str, vars: &[(&str, &str)]) -> (String, Option<u32>) {
    let mut all = vec![("E2E_FAULT_ENV", env), ("E2E_NO_WATCHDOG", "1")];
    all.extend_from_slice(vars);
    let (mut cmd, log) = child("child_create_env", tag, &all);
    let mut p = cmd.spawn().unwrap();
    let pid = p.id();
    let _ = wait_timeout(&mut p, Duration::from_secs(60));
    let out = std::fs::read_to_string(&log).unwrap_or_default();
    // libtest prints `test <name> ... ` with no newline before the test's own output.
    let after = |l: &str, tag: &str| l.find(tag).map(|i| l[i + tag.len()..].to_string());
    let kind = out.lines().find_map(|l| after(l, "E2E_FAULT_KIND ")).unwrap_or("?".into());
    let error: Vec<String> = out.lines().filter_map(|l| after(l, "E2E_FAULT_ERROR ")).collect();
    match error.first() {
        Some(_) => (format!("{kind}: {}", error.join("\\n")), Some(pid)),
        None => (
            format!("NO ERROR ({})", out.lines().find(|l| l.starts_with("E2E_FAULT_OUTCOME")).unwrap_or("no outcome")),
            Some(pid),
        ),
    }
}

#[test]
fn bad_input_matrix() {
    let rt = tokio_rt();
    let mut rows: Vec<BadRow> = Vec::new();
    let env_name = "flt_bad";
    rt.block_on(async {
        // Invalid env name: refused before anything exists; a valid name still works.
        let r = Env::docker("bad name!").await;
        rows.push(bad_row("invalid env name", &["bad name!"], r.map(|_| ()), "-"));

        let env = Env::docker(env_name).await.unwrap();
        let sleeper = || StartOptions::new(BUSYBOX).command(["sleep", "3600"]).quiet(true);

        let web = env.runnable("web").with_ports([("http", 80)]).init(sleeper());
        web.start().await.unwrap();
        let r = web.endpoint("htttp");
        let usable = if web.endpoint("http").is_ok() { still_usable(&env, "after-port").await } else { "NO" };
        rows.push(bad_row("unknown port name", &["htttp", "web", "http"], r, usable));

        let r = env.runnable("missing").init(StartOptions::new("e2e-test/no-such-image:v0")).start().await;
        rows.push(bad_row(
            "missing image",
            &["e2e-test/no-such-image:v0"],
            r,
            still_usable(&env, "after-missing").await,
        ));

        // busybox's own command is `sh`, which exits at once without a terminal.
        let r = env
            .runnable("exits")
            .init(StartOptions::new(BUSYBOX).readiness(Probe::cmd(["true"])))
            .start_and_wait_ready()
            .await;
        rows.push(bad_row("image that exits at once", &["exits", "code 0"], r, still_usable(&env, "after-exit").await));
        let quiet_exit = env.runnable("exits-np").init(StartOptions::new(BUSYBOX));
        let r = quiet_exit.start_and_wait_ready().await;
        rows.push(bad_row("image that exits at once, no probe", &["exits-np"], r, "-"));

        let r = env
            .runnable("no-cmd")
            .init(StartOptions::new(BUSYBOX).command(["/no/such/binary"]).readiness(Probe::cmd(["true"])))
            .start_and_wait_ready()
            .await;
        rows.push(bad_row("command not found (init on)", &["no-cmd", "/no/such/binary"], r, "-"));
        let r = env
            .runnable("no-cmd2")
            .init(StartOptions::new(BUSYBOX).command(["/no/such/binary"]).init(false))
            .start()
            .await;
        rows.push(bad_row(
            "command not found (init off)",
            &["no-cmd2", "/no/such/binary"],
            r,
            still_usable(&env, "after-cmd").await,
        ));

        let r = env
            .runnable("closed-port")
            .with_ports([("http", 8080)])
            .init(sleeper().readiness(Probe::tcp("http")).readiness_timeout(Duration::from_secs(1)))
            .start_and_wait_ready()
            .await;
        rows.push(bad_row(
            "readiness on a port that never opens",
            &["closed-port", "tcp(http)"],
            r,
            still_usable(&env, "after-ready").await,
        ));

        let metrics = env.runnable("metrics").with_ports([("http", 80)]).init(
            StartOptions::new(BUSYBOX)
                .command(["sh", "-c", "mkdir -p /www && echo 'up 1' > /www/metrics && exec httpd -f -p 80 -h /www"])
                .metrics("http")
                .readiness(Probe::http("http", "/metrics"))
                .quiet(true),
        );
        metrics.start_and_wait_ready().await.unwrap();
        let r = metrics.sum_metrics(["never_there_total"]).await;
        rows.push(bad_row("metric that never appears (no wait)", &["never_there_total", "metrics"], r, "-"));
        let r = metrics
            .wait_sum_metrics_with(
                e2e::greater(0.0),
                ["never_there_total"],
                e2e::MetricsOptions::new().wait_missing_metrics().deadline(Duration::from_secs(1)),
            )
            .await;
        let usable = if metrics.sum_metrics(["up"]).await.map(|v| v == [1.0]).unwrap_or(false) { "yes" } else { "NO" };
        rows.push(bad_row("metric that never appears (wait 1s)", &["never_there_total", "metrics"], r, usable));

        let _first = env.runnable("twice").init(sleeper());
        let second = env.runnable("twice").init(sleeper());
        let r = second.start().await;
        let usable =
            if _first.start().await.is_ok() && _first.is_running().await.unwrap_or(false) { "yes" } else { "NO" };
        rows.push(bad_row("two runnables with one name", &["twice"], r, usable));

        let before = env.runnable("before-close").init(sleeper());
        before.start().await.unwrap();
        env.close().await.unwrap();
        let r = env.runnable("late").init(sleeper()).start().await;
        rows.push(bad_row("closed env: new runnable", &[env_name, "late"], r, "-"));
        let r = before.start().await;
        rows.push(bad_row("closed env: start again", &[env_name, "before-close"], r, "-"));
        let r = before.exec(["true"]).await;
        rows.push(bad_row("closed env: exec", &["before-close"], r, "-"));
        let r = before.stop().await;
        rows.push(bad_row("closed env: stop", &["before-close"], r, "-"));
        let r = before.is_running().await;
        rows.push(bad_row("closed env: is_running", &["before-close"], r, "-"));
    });
    // Only `invalid env name` precedes the env; the rest share it: all cleaned by close.
    let env_left = left(env_name, None);
    for row in rows.iter_mut() {
        row.left = env_left;
    }
    let invalid_left = left("bad name!", None);
    rows[0].left = invalid_left;

    // Process-wide settings, each in a child process.
    let (msg, pid) = create_env_in_child("flt_unreach", "unreachable-tcp", &[("DOCKER_HOST", "tcp://127.0.0.1:1")]);
    rows.push(BadRow {
        case: "Docker unreachable (tcp://127.0.0.1:1)",
        names: vec!["tcp://127.0.0.1:1".into(), "DOCKER_HOST".into()],
        outcome: Ok(msg),
        usable: "-",
        left: left("flt_unreach", pid),
    });
    let (msg, pid) =
        create_env_in_child("flt_unreach", "unreachable-unix", &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")]);
    rows.push(BadRow {
        case: "Docker unreachable (missing socket)",
        names: vec!["/nonexistent/docker.sock".into()],
        outcome: Ok(msg),
        usable: "-",
        left: left("flt_unreach", pid),
    });

    // A temp dir that cannot be written to, even by root: immutable (chattr +i), or 0555 for a user.
    let ro = std::env::temp_dir().join(format!("e2e-faults-ro-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&ro);
    let immutable = unsafe { libc::geteuid() } == 0
        && Command::new("chattr").arg("+i").arg(&ro).status().map(|s| s.success()).unwrap_or(false);
    if !immutable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let writable = std::fs::File::create(ro.join("probe")).is_ok();
    let (msg, pid) = create_env_in_child("flt_rodir", "readonly-tmpdir", &[("TMPDIR", ro.to_str().unwrap())]);
    rows.push(BadRow {
        case: if writable {
            "shared dir not writable (SKIPPED: dir writable)"
        } else {
            "shared dir not writable (TMPDIR)"
        },
        names: vec![ro.display().to_string()],
        outcome: Ok(msg),
        usable: "-",
        left: left("flt_rodir", pid),
    });
    if immutable {
        let _ = Command::new("chattr").arg("-i").arg(&ro).status();
    }
    let _ = std::fs::remove_dir_all(&ro);
    // TMPDIR naming a file: its runs dir cannot be a directory.
    let file = std::env::temp_dir().join(format!("e2e-faults-file-{}", std::process::id()));
    std::fs::write(&file, "").unwrap();
    let (msg, pid) = create_env_in_child("flt_rodir", "file-tmpdir", &[("TMPDIR", file.to_str().unwrap())]);
    rows.push(BadRow {
        case: "shared dir not creatable (TMPDIR a file)",
        names: vec![file.display().to_string()],
        outcome: Ok(msg),
        usable: "-",
        left: left("flt_rodir", pid),
    });
    let _ = std::fs::remove_file(&file);

    // The table.
    let mut t = String::new();
    writeln!(t, "\nbad input matrix").unwrap();
    writeln!(t, "{:<40} {:<6} {:<7} {:<6} error (first line)", "case", "names", "usable", "leaks").unwrap();
    let mut bad = Vec::new();
    for r in &rows {
        let (text, named) = match &r.outcome {
            Ok(msg) => (msg.clone(), r.names.iter().all(|n| msg.contains(n.as_str()))),
            Err(msg) => (msg.clone(), false),
        };
        let expected_no_error = r.case.ends_with("no probe") || r.case.contains("is_running");
        let ok = (named || (expected_no_error && r.outcome.is_err())) && r.usable != "NO" && r.left.total() == 0;
        if !ok && !r.case.contains("SKIPPED") {
            bad.push(r.case);
        }
        let first = text.split("\\n").next().unwrap_or("");
        writeln!(
            t,
            "{:<40} {:<6} {:<7} {:<6} {}",
            r.case,
            if expected_no_error {
                "-"
            } else if named {
                "yes"
            } else {
                "no"
            },
            r.usable,
            r.left.total(),
            first
        )
        .unwrap();
    }
    eprintln!("{t}");
    std::fs::write(out_dir().join("bad-input.txt"), &t).unwrap();
    assert!(bad.is_empty(), "cases without a clear error, or losing or leaving something: {bad:?}{t}");
}

// ---------------------------------------------------------------------------------------------
// Security defaults.

#[test]
fn security_host_endpoints_are_on_loopback_only() {
    tokio_rt().block_on(async {
        let env = Env::docker("flt_sec_ports").await.unwrap();
        let web = |name: &str, publish: bool| {
            env.runnable(name).with_ports([("http", 80), ("other", 81)]).init(
                StartOptions::new(BUSYBOX)
                    .command(["httpd", "-f", "-p", "80", "-h", "/"])
                    .readiness(Probe::tcp("http"))
                    .publish_ports(publish)
                    .quiet(true),
            )
        };
        // Served by this process (the default with a local engine), and published by the engine.
        let (relayed, published) = (web("relayed", false), web("published", true));
        e2e::start_and_wait_ready([&relayed, &published]).await.unwrap();
        for (r, want) in [(&relayed, 0), (&published, 2)] {
            let ports = docker(&["inspect", "-f", "{{json .NetworkSettings.Ports}}", r.container_name()]);
            let ports: serde_json::Value = serde_json::from_str(&ports).unwrap();
            let mut bindings = 0;
            for (port, binds) in ports.as_object().unwrap() {
                for b in binds.as_array().unwrap_or(&Vec::new()) {
                    assert_eq!(b["HostIp"], "127.0.0.1", "{port} published on {b}");
                    bindings += 1;
                }
            }
            assert_eq!(bindings, want, "{}: {ports}", r.name());

            let endpoint = r.endpoint("http").unwrap();
            assert!(endpoint.starts_with("127.0.0.1:"), "{endpoint}");
            let reached =
                std::net::TcpStream::connect_timeout(&endpoint.parse().unwrap(), Duration::from_secs(2)).is_ok();
            assert!(reached, "{}: {endpoint} does not answer", r.name());
            // Not reachable on the host's other addresses (`hostname -I`: every one but loopback).
            let host_port = endpoint.rsplit_once(':').unwrap().1.to_string();
            let out = Command::new("hostname").arg("-I").output().map(|o| o.stdout).unwrap_or_default();
            let addrs: Vec<std::net::IpAddr> =
                String::from_utf8_lossy(&out).split_whitespace().filter_map(|a| a.parse().ok()).collect();
            if addrs.is_empty() {
                eprintln!("security: `hostname -I` lists no address: only the inspected bindings were checked");
            }
            for ip in addrs {
                let addr = std::net::SocketAddr::new(ip, host_port.parse().unwrap());
                let reached = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok();
                assert!(!reached, "{}: the host endpoint answers on {addr}", r.name());
            }
        }
        env.close().await.unwrap();
    });
}

#[test]
fn security_nothing_privileged_unless_asked() {
    tokio_rt().block_on(async {
        let env = Env::docker("flt_sec_priv").await.unwrap();
        let plain = env.runnable("plain").with_ports([("http", 80)]).init(StartOptions::new(BUSYBOX).command(["sleep", "3600"]).quiet(true));
        let asked = env.runnable("asked").init(StartOptions::new(BUSYBOX).command(["sleep", "3600"]).privileged(true).quiet(true));
        plain.start().await.unwrap();
        // The engine here may refuse to run it (no capabilities to grant): what counts is that
        // the container was created privileged.
        let _ = asked.start().await;
        let fmt = "{{.HostConfig.Privileged}} {{.HostConfig.CapAdd}} {{.HostConfig.PidMode}}|{{.HostConfig.IpcMode}} \
                   {{.HostConfig.UsernsMode}}|{{len .HostConfig.Devices}} {{.HostConfig.SecurityOpt}} {{.HostConfig.NetworkMode}}";
        let got = docker(&["inspect", "-f", fmt, plain.container_name()]);
        let network_id = docker(&["network", "inspect", "-f", "{{.Id}}", env.network_name()]);
        assert_eq!(got, format!("false [] |private |0 [] {network_id}"), "plain container");
        // Binds: the shared dir only (no docker socket, no host root).
        let binds = docker(&["inspect", "-f", "{{json .HostConfig.Binds}}", plain.container_name()]);
        assert_eq!(binds, format!("[\"{}:/shared\"]", env.shared_dir().display()));
        let got = docker(&["inspect", "-f", "{{.HostConfig.Privileged}}", asked.container_name()]);
        assert_eq!(got, "true", "privileged when asked");
        env.close().await.unwrap();
    });
}

#[test]
fn security_directory_modes() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    tokio_rt().block_on(async {
        let env = Env::docker("flt_sec_dirs").await.unwrap();
        let r = env.runnable("w").init(StartOptions::new(BUSYBOX).command(["sleep", "3600"]).quiet(true));
        r.start().await.unwrap();
        let shared = env.shared_dir().to_path_buf();
        let env_dir = shared.parent().unwrap().to_path_buf();
        let run_dir = env_dir.parent().unwrap().to_path_buf();
        let runs = run_dir.parent().unwrap().to_path_buf();
        assert_eq!(runs, runs_dir());
        let uid = unsafe { libc::geteuid() };
        let mode = |p: &Path| {
            let m = std::fs::symlink_metadata(p).unwrap();
            assert!(m.file_type().is_dir(), "{} is not a plain directory", p.display());
            (m.permissions().mode() & 0o7777, m.uid())
        };
        // The runs dir is shared by the machine's users, sticky: nobody removes another's run.
        assert_eq!(mode(&runs).0, 0o1777, "{}", runs.display());
        assert_eq!(mode(&runs.join("locks")).0, 0o1777, "locks dir");
        // The run and env dirs are private to this user...
        assert_eq!(mode(&run_dir), (0o700, uid), "{}", run_dir.display());
        assert_eq!(mode(&env_dir), (0o700, uid), "{}", env_dir.display());
        // ...so the shared dir, open to whatever uid the containers run as, is reachable only
        // through them.
        assert_eq!(mode(&shared).0, 0o777, "{}", shared.display());
        assert_eq!(mode(&r.dir()).0, 0o777, "{}", r.dir().display());
        // Logs stay private too (inside the 0700 env dir), and are not world-writable.
        for entry in std::fs::read_dir(env_dir.join("logs")).into_iter().flatten().flatten() {
            assert_eq!(entry.metadata().unwrap().permissions().mode() & 0o002, 0, "{}", entry.path().display());
        }
        env.close().await.unwrap();
        // The run dir goes with the process's last env (other tests of this process may hold one).
        assert!(!env_dir.exists(), "{} left", env_dir.display());
    });
}

/// The framework only removes its own run's resources, or a dead run's, and never anything
/// without its labels, another env's, or a live run's.
#[test]
fn security_only_own_or_dead_resources_are_removed() {
    let env_name = "flt_sec_owner";
    let dead = common::dead_owner();
    let host_owner = {
        // PID 1 is alive: a live run of this host (not an e2e one, but its label says so).
        let stat = std::fs::read_to_string("/proc/1/stat").unwrap();
        let start = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().nth(19).unwrap().to_string();
        let (prefix, _) = dead.rsplit_once('/').unwrap();
        let (host, _) = prefix.rsplit_once('/').unwrap();
        format!("{host}/1/{start}")
    };
    let run = |name: &str, labels: &[String]| {
        let _ = Command::new("docker").args(["rm", "-f", name]).output();
        let mut args = vec!["run".to_string(), "-d".into(), "--name".into(), name.into()];
        for l in labels {
            args.extend(["--label".to_string(), l.clone()]);
        }
        args.extend([BUSYBOX.to_string(), "sleep".into(), "3600".into()]);
        docker(&args.iter().map(String::as_str).collect::<Vec<_>>());
    };
    let l = |k: &str, v: &str| format!("{k}={v}");
    // Dead run of this env: swept. Dead run of another env: untouched by this env.
    run("flt_sec_owner-dead", &[l("dev.e2e.managed", "true"), l("dev.e2e.env", env_name), l("dev.e2e.owner", &dead)]);
    run(
        "flt_sec_other-dead",
        &[l("dev.e2e.managed", "true"), l("dev.e2e.env", "flt_sec_other"), l("dev.e2e.owner", &dead)],
    );
    // Unlabelled and partially labelled containers with colliding names: untouched.
    run("flt_sec_owner-foreign", &[]);
    run("flt_sec_owner-managed-only", &[l("dev.e2e.managed", "true")]);
    let mine = tokio_rt().block_on(async {
        let env = Env::docker(env_name).await.unwrap();
        let r = env.runnable("mine").init(StartOptions::new(BUSYBOX).command(["sleep", "3600"]).quiet(true));
        r.start().await.unwrap();
        env.close().await.unwrap();
        r.container_name().to_string()
    });
    let exists = |name: &str| Command::new("docker").args(["inspect", name]).output().unwrap().status.success();
    assert!(!exists("flt_sec_owner-dead"), "a dead run's container of this env was not swept");
    assert!(exists("flt_sec_other-dead"), "another env's container was removed");
    assert!(exists("flt_sec_owner-foreign"), "an unlabelled container was removed");
    assert!(exists("flt_sec_owner-managed-only"), "a container without env/owner labels was removed");
    assert!(!exists(&mine), "its own container was left");

    // A live run's resources (pid 1 here) are never swept: this run works beside them, under
    // names of its own, and closing it leaves them.
    run(
        "flt_sec_owner-live",
        &[l("dev.e2e.managed", "true"), l("dev.e2e.env", env_name), l("dev.e2e.owner", &host_owner)],
    );
    tokio_rt().block_on(async {
        let env = Env::docker(env_name).await.unwrap();
        let r = env.runnable("live").init(StartOptions::new(BUSYBOX).command(["sleep", "3600"]).quiet(true));
        r.start().await.unwrap();
        assert_ne!(r.container_name(), "flt_sec_owner-live");
        env.close().await.unwrap();
    });
    assert!(exists("flt_sec_owner-live"), "a live run's container was removed");

    for name in ["flt_sec_other-dead", "flt_sec_owner-foreign", "flt_sec_owner-managed-only", "flt_sec_owner-live"] {
        docker(&["rm", "-f", name]);
    }
    // The other env's dead leftovers go with its next run.
    next_run("flt_sec_other").unwrap();
    assert_eq!(left(env_name, None).total() + left("flt_sec_other", None).total(), 0);
}
