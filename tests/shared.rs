//! Shared envs (`#[e2e::test(env = "...", shared)]`): one env and one started workload for every
//! test of the binary that names it, concurrent tests on it, a failing test's report, the
//! errors of mixed declarations, and teardown at exit and after SIGTERM and SIGKILL.
//!
//! The children are `#[ignore]`d tests of this binary, run in a process of their own by the
//! tests below, which look at the engine from outside.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e::Env;

e2e::workload! {
    /// A sleeper, shared.
    pub Box1 {
        image: "busybox:1.35",
        command: ["sleep", "3600"],
    }

    /// Another definition, under the same parameter name in a mismatching test.
    pub Box2 {
        image: "busybox:1.35",
        command: ["sleep", "7200"],
    }
}

/// How many tests of `sh_one` there are: each waits for all the others inside the one container.
const SHARERS: usize = 5;

async fn meet(env: &Env, b: &Box1, me: usize) -> e2e::Result<()> {
    assert!(["sh_one", "sh_across"].contains(&env.name()));
    b.exec(["touch", &format!("/tmp/here-{me}")]).await?;
    // Every test of the env is in this container at once, or none gets past here.
    let t = Instant::now();
    loop {
        let n = b.exec(["sh", "-c", "ls /tmp | grep -c '^here-'"]).await?.stdout.trim().parse::<usize>().unwrap_or(0);
        if n == SHARERS {
            return Ok(());
        }
        assert!(t.elapsed() < Duration::from_secs(60), "only {n} of {SHARERS} tests met in the shared container");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[e2e::test(env = "sh_one", shared)]
#[ignore]
async fn share_0(env: &Env, b: Box1) -> e2e::Result<()> {
    meet(env, &b, 0).await
}
#[e2e::test(env = "sh_one", shared)]
#[ignore]
async fn share_1(env: &Env, b: Box1) -> e2e::Result<()> {
    meet(env, &b, 1).await
}
#[e2e::test(env = "sh_one", shared)]
#[ignore]
async fn share_2(env: &Env, b: Box1) -> e2e::Result<()> {
    meet(env, &b, 2).await
}
#[e2e::test(env = "sh_one", shared)]
#[ignore]
async fn share_3(env: &Env, b: Box1) -> e2e::Result<()> {
    meet(env, &b, 3).await
}
#[e2e::test(env = "sh_one", shared)]
#[ignore]
async fn share_4(env: &Env, b: Box1) -> e2e::Result<()> {
    meet(env, &b, 4).await
}

// The same five, across processes (each run alone in a process of its own, as nextest does).
#[e2e::test(env = "sh_across", shared)]
#[ignore]
async fn across_0(env: &Env, b: Box1) -> e2e::Result<()> {
    meet(env, &b, 0).await
}
#[e2e::test(env = "sh_across", shared)]
#[ignore]
async fn across_1(env: &Env, b: Box1) -> e2e::Result<()> {
    meet(env, &b, 1).await
}
#[e2e::test(env = "sh_across", shared)]
#[ignore]
async fn across_2(env: &Env, b: Box1) -> e2e::Result<()> {
    meet(env, &b, 2).await
}
#[e2e::test(env = "sh_across", shared)]
#[ignore]
async fn across_3(env: &Env, b: Box1) -> e2e::Result<()> {
    meet(env, &b, 3).await
}
#[e2e::test(env = "sh_across", shared)]
#[ignore]
async fn across_4(env: &Env, b: Box1) -> e2e::Result<()> {
    meet(env, &b, 4).await
}

/// Holds a lease on the shared env of its run until it is ended.
#[e2e::test(env = "sh_held_across", shared)]
#[ignore]
async fn held_across(_b: Box1) {
    println!("E2E_SHARED_READY");
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

/// A sleeper whose command the variable `E2E_TEST_VARIANT` sets: a changed definition.
pub struct Variant(e2e::Runnable);

impl e2e::Workload for Variant {
    fn declare(env: &Env, name: &str) -> Self {
        let variant = std::env::var("E2E_TEST_VARIANT").unwrap_or_default();
        let seconds = if variant == "b" { "7200" } else { "3600" };
        Variant(env.runnable(name).init(e2e::StartOptions::new("busybox:1.35").command(["sleep", seconds])))
    }
    fn runnable(&self) -> &e2e::Runnable {
        &self.0
    }
}

#[e2e::test(env = "sh_warm", shared)]
#[ignore]
async fn warm(v: Variant) -> e2e::Result<()> {
    let seconds = if std::env::var("E2E_TEST_VARIANT").as_deref() == Ok("b") { "7200" } else { "3600" };
    let ps = v.0.exec(["ps"]).await?.stdout;
    assert!(ps.contains(&format!("sleep {seconds}")), "{ps}");
    Ok(())
}

/// Fails once the others have met: its report shows the shared env.
#[e2e::test(env = "sh_one", shared)]
#[ignore]
async fn share_fails(b: Box1) -> e2e::Result<()> {
    let t = Instant::now();
    while b.exec(["sh", "-c", "ls /tmp | grep -c '^here-'"]).await?.stdout.trim() != SHARERS.to_string() {
        assert!(t.elapsed() < Duration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(e2e::Error::Query { query: "the shared test".into(), detail: "fails on purpose".into() })
}

#[e2e::test(env = "sh_mismatch", shared)]
#[ignore]
async fn mismatch_a(_b: Box1) {}

#[e2e::test(env = "sh_mismatch", shared)]
#[ignore]
async fn mismatch_b(_b: Box2) {}

#[e2e::test(env = "sh_mixed", shared)]
#[ignore]
async fn mixed_shared(_b: Box1) {}

#[e2e::test(env = "sh_mixed")]
#[ignore]
async fn mixed_alone(_b: Box1) {}

#[e2e::test(env = "sh_ends", shared)]
#[ignore]
async fn ends_ok(_b: Box1) {}

#[e2e::test(env = "sh_ends", shared)]
#[ignore]
async fn ends_panic(_b: Box1) {
    panic!("the shared body panicked");
}

#[e2e::test(env = "sh_ends", shared, timeout = "2s")]
#[ignore]
async fn ends_timeout(_b: Box1) {
    tokio::time::sleep(Duration::from_secs(30)).await;
}

/// Holds the shared env until it is ended.
#[e2e::test(env = "sh_held", shared)]
#[ignore]
async fn held(_b: Box1) {
    println!("E2E_SHARED_READY");
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

/// Runs this binary's ignored tests that `filter` selects, in a process of its own.
fn children(filter: &str, threads: usize) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--ignored", filter, "--nocapture", &format!("--test-threads={threads}")])
        .env("E2E_QUIET", "1")
        .env_remove("E2E_KEEP")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

#[test]
fn the_tests_of_a_shared_env_share_one_container_at_once_and_it_goes_at_exit() {
    let since = common::docker(&["system", "info", "-f", "{{.SystemTime}}"]);
    let out = children("share_", SHARERS + 1).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let all = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("test result: FAILED. {SHARERS} passed; 1 failed")), "{all}");
    // One container start for the six tests, counted by the engine.
    assert_eq!(common::starts_since("sh_one", &since), 1, "{all}");
    // The failing test's report shows the shared env's runnable and where its logs are.
    assert!(stdout.contains("==== e2e: test share_fails::sh_one failed; env \"sh_one\": 1 runnable(s)"), "{all}");
    assert!(stdout.lines().any(|l| l.starts_with("- b [sh_one-b-") && l.ends_with("]: running")), "{all}");
    assert!(stdout.contains("full logs: "), "{all}");
    assert!(all.contains("fails on purpose"), "{all}");
    // Gone when the process exited, failed test or not.
    common::assert_clean("sh_one");
}

#[test]
fn a_shared_workload_declared_two_ways_is_an_error_naming_both() {
    let out = children("mismatch_", 1).output().unwrap();
    let all = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(all.contains("test result: FAILED. 1 passed; 1 failed"), "{all}");
    for part in [
        "runnable \"b\" of shared env \"sh_mismatch\"",
        "mismatch_a::sh_mismatch",
        "mismatch_b::sh_mismatch",
        "3600",
        "7200",
    ] {
        assert!(all.contains(part), "missing {part:?}:\n{all}");
    }
    common::assert_clean("sh_mismatch");
}

#[test]
fn a_shared_and_a_per_test_env_of_one_name_are_an_error() {
    let out = children("mixed_", 1).output().unwrap();
    let all = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(all.contains("test result: FAILED. 0 passed; 2 failed"), "{all}");
    assert!(
        all.contains("env \"sh_mixed\" is shared by mixed_shared::sh_mixed but not by mixed_alone::sh_mixed"),
        "{all}"
    );
    common::assert_clean("sh_mixed");
}

#[test]
fn a_shared_env_goes_at_exit_after_a_pass_a_panic_and_a_timeout() {
    let since = common::docker(&["system", "info", "-f", "{{.SystemTime}}"]);
    let out = children("ends_", 3).output().unwrap();
    let all = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(all.contains("test result: FAILED. 1 passed; 2 failed"), "{all}");
    assert!(all.contains("the shared body panicked"), "{all}");
    assert!(all.contains("test ends_timeout::sh_ends timed out after 2s"), "{all}");
    assert_eq!(common::starts_since("sh_ends", &since), 1, "{all}");
    common::assert_clean("sh_ends");
}

#[test]
fn a_shared_env_goes_when_its_process_is_interrupted_terminated_or_killed() {
    use std::io::BufRead;
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGKILL] {
        let mut child = children("held", 1).spawn().unwrap();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let ready = stdout.lines().map_while(Result::ok).any(|l| l.contains("E2E_SHARED_READY"));
        assert!(ready, "the child never got its shared env up");
        assert_eq!(common::docker(&["ps", "-q", "--filter", "label=dev.e2e.env=sh_held"]).lines().count(), 1);
        // SAFETY: a plain kill(2) of the child's pid.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        let pid = child.id();
        assert!(!child.wait().unwrap().success());
        let t = Instant::now();
        while (!common::leftovers("sh_held").is_empty() || common::pooled_networks_of(pid) > 0)
            && t.elapsed() < Duration::from_secs(30)
        {
            std::thread::sleep(Duration::from_millis(200));
        }
        common::assert_clean("sh_held");
        assert_eq!(common::pooled_networks_of(pid), 0, "signal {signal}: the pooled network is left");
    }
}

/// Runs test `name` of this binary alone in a process of its own, with the run's id, as
/// cargo-nextest runs each test.
fn as_nextest(run: &str, name: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--ignored", "--exact", name, "--nocapture"])
        .env("NEXTEST_RUN_ID", run)
        .env("E2E_QUIET", "1")
        .env_remove("E2E_KEEP")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn a_run_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("test-{}-{nanos}", std::process::id())
}

/// Waits (30 s at most) until env `env` has left nothing, and says so.
fn wait_clean(env: &str) {
    let t = Instant::now();
    while !common::leftovers(env).is_empty() && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(200));
    }
    common::assert_clean(env);
    // And nothing comes back: no keeper is left to start it again.
    std::thread::sleep(Duration::from_secs(4));
    common::assert_clean(env);
}

#[test]
fn the_processes_of_a_run_share_one_env_which_goes_after_the_last() {
    let run = a_run_id();
    let since = common::docker(&["system", "info", "-f", "{{.SystemTime}}"]);
    // Five processes at once, each its own test: they meet in one container, or time out.
    let children: Vec<_> =
        (0..SHARERS).map(|i| as_nextest(&run, &format!("across_{i}::sh_across")).spawn().unwrap()).collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let all = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && all.contains("test result: ok. 1 passed"), "{all}");
    }
    assert_eq!(common::starts_since("sh_across", &since), 1, "one container for the five processes");
    // The keeper removes it once the last lease has ended, after its grace period.
    wait_clean("sh_across");
}

#[test]
fn a_shared_env_of_a_run_goes_when_every_process_holding_it_is_killed() {
    use std::io::BufRead;
    let run = a_run_id();
    let mut children: Vec<_> =
        (0..3).map(|_| as_nextest(&run, "held_across::sh_held_across").spawn().unwrap()).collect();
    for child in &mut children {
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let ready = stdout.lines().map_while(Result::ok).any(|l| l.contains("E2E_SHARED_READY"));
        assert!(ready, "a holder never got the shared env");
    }
    let running = common::docker(&["ps", "-q", "--filter", "label=dev.e2e.env=sh_held_across"]);
    assert_eq!(running.lines().count(), 1, "one container for the three holders");
    for child in &mut children {
        // SAFETY: a plain kill(2) of the child's pid.
        assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGKILL) }, 0);
        let _ = child.wait();
    }
    wait_clean("sh_held_across");
}

/// Runs `warm` in a process of its own with `E2E_REUSE=<idle>` and the variant.
fn warm_run(idle: &str, variant: &str) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--ignored", "--exact", "warm::sh_warm", "--nocapture"])
        .env("E2E_REUSE", idle)
        .env("E2E_TEST_VARIANT", variant)
        .env("E2E_QUIET", "1")
        .env_remove("NEXTEST_RUN_ID")
        .env_remove("E2E_RUN_ID");
    let out = cmd.output().unwrap();
    let all = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && all.contains("test result: ok. 1 passed"), "{all}");
}

#[test]
fn a_warm_env_is_reused_recreated_when_changed_and_removed_when_idle() {
    let since = common::docker(&["system", "info", "-f", "{{.SystemTime}}"]);
    let running = || common::docker(&["ps", "-q", "--filter", "label=dev.e2e.env=sh_warm"]).lines().count();
    warm_run("8s", "a");
    assert_eq!(running(), 1, "the warm env outlives its run");
    warm_run("8s", "a");
    assert_eq!(common::starts_since("sh_warm", &since), 1, "the second run reused it");
    warm_run("8s", "b");
    assert_eq!(common::starts_since("sh_warm", &since), 2, "a changed definition recreated it");
    assert_eq!(running(), 1, "the old one went");
    // Idle for 8 s: removed, though no test runs again.
    let t = Instant::now();
    while !common::leftovers("sh_warm").is_empty() && t.elapsed() < Duration::from_secs(40) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(t.elapsed() >= Duration::from_secs(5), "removed before it was idle long: {:?}", t.elapsed());
    wait_clean("sh_warm");
}
