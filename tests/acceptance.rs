//! What `#[e2e::test]` generates, checked from outside: runs `cargo test` (and the test binary,
//! and `cargo nextest run`) on the crate in tests/scenarios against the real engine.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::leftovers;

/// The scenarios measure overlap in time: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios")
}

/// The workspace's target directory (this binary is `<target>/<profile>/deps/<name>`): sharing
/// it lets the scenarios reuse the dependencies already built.
fn target_dir() -> PathBuf {
    std::env::current_exe().unwrap().ancestors().nth(3).unwrap().to_path_buf()
}

fn cargo(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(args).current_dir(scenarios_dir()).env("CARGO_TARGET_DIR", target_dir()).env("RUST_BACKTRACE", "0");
    cmd
}

/// Builds the scenarios once; returns the test binary of tests/outcomes.rs.
fn outcomes_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // Same versions as the workspace, so its built dependencies are reused.
        std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock"), scenarios_dir().join("Cargo.lock"))
            .unwrap();
        let out = cargo(&["test", "--no-run", "--message-format=json"]).output().unwrap();
        assert!(out.status.success(), "building the scenarios: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|m| m["target"]["name"] == "outcomes" && m["executable"].is_string())
            .map(|m| PathBuf::from(m["executable"].as_str().unwrap()))
            .expect("cargo names the outcomes test binary")
    })
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn times_file(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("e2e-acceptance-{name}-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// `label -> (start, end)` in microseconds, from the marks the scenarios write.
fn intervals(path: &Path) -> HashMap<String, (u128, u128)> {
    let mut map: HashMap<String, (u128, u128)> = HashMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let parts: Vec<_> = line.split(' ').collect();
        let entry = map.entry(parts[0].to_string()).or_default();
        let t: u128 = parts[2].parse().unwrap();
        if parts[1] == "start" {
            entry.0 = t
        } else {
            entry.1 = t
        }
    }
    map
}

fn overlap(a: (u128, u128), b: (u128, u128)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

fn assert_no_leftovers(envs: &[&str]) {
    for env in envs {
        let left = leftovers(env);
        assert!(left.is_empty(), "env {env} left {left:?}");
    }
}

#[test]
fn every_outcome_is_reported_and_cleaned_up() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let times = times_file("outcomes");
    let out = Command::new(outcomes_bin())
        .args(["--test-threads=8"])
        .env("E2E_SCENARIO_TIMES", &times)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let log = text(&out);
    assert!(!out.status.success(), "some scenarios fail on purpose:\n{log}");
    for line in [
        "test passes::acc_ok ... ok",
        "test returns_err::acc_err ... FAILED",
        "test panics::acc_panic ... FAILED",
        "test times_out::acc_timeout ... FAILED",
        "test should_panic_works::acc_should_panic - should panic ... ok",
        "test ignored_works::acc_ignored ... ignored",
        "test serial_a::acc_serial ... ok",
        "test parallel_b::acc_par_b ... ok",
    ] {
        assert!(log.contains(line), "missing {line:?} in:\n{log}");
    }
    // Each failure says what happened, and what the env looked like.
    for msg in [
        "the body said no",
        "the body panicked",
        "test times_out::acc_timeout timed out after 1s in env \"acc_timeout\"",
        "==== e2e: test returns_err::acc_err failed; env \"acc_err\": 1 runnable(s)",
        "- sleeper [acc_err-sleeper-",
        "full logs: ",
    ] {
        assert!(log.contains(msg), "missing {msg:?} in:\n{log}");
    }
    assert!(
        log.lines().any(|l| l.starts_with("- sleeper [acc_err-sleeper-") && l.ends_with("]: running")),
        "the runnable, its container and its state: {log}"
    );
    let logs_dir = log.lines().find_map(|l| l.strip_prefix("full logs: ")).unwrap();
    assert!(Path::new(logs_dir).join("sleeper.log").exists(), "{logs_dir}");
    // Failures are the user's: named as libtest names the test, located at its `#[e2e::test]`.
    let dirs: Vec<_> = log.lines().filter_map(|l| l.strip_prefix("full logs: ")).collect();
    assert!(dirs.iter().any(|d| d.ends_with("e2e-logs/outcomes/returns_err::acc_err")), "{dirs:?}");
    for msg in [
        "e2e: test returns_err::acc_err failed at tests/outcomes.rs:12:1:\n\"the body said no\"",
        "e2e: test times_out::acc_timeout failed at tests/outcomes.rs:22:1:\ntest times_out::acc_timeout timed out",
    ] {
        assert!(log.contains(msg), "missing {msg:?} in:\n{log}");
    }
    for framework in ["e2e-runtime/src/", "e2e-docker/src/"] {
        assert!(!log.contains(framework), "a failure located in the framework:\n{log}");
    }

    // One env name at a time; different env names at once.
    let t = intervals(&times);
    assert!(!overlap(t["serial_a"], t["serial_b"]), "acc_serial ran twice at once: {t:?}");
    assert!(overlap(t["parallel_a"], t["parallel_b"]), "acc_par_a and acc_par_b did not overlap: {t:?}");
    assert_no_leftovers(&[
        "acc_ok",
        "acc_err",
        "acc_panic",
        "acc_timeout",
        "acc_should_panic",
        "acc_serial",
        "acc_par_a",
        "acc_par_b",
    ]);
}

/// An `Err` fails the test without a panic of the framework's, so with no backtrace of it either.
#[test]
fn an_err_has_no_framework_backtrace() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new(outcomes_bin())
        .args(["--exact", "returns_err::acc_err"])
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let log = text(&out);
    assert!(log.contains("test returns_err::acc_err ... FAILED"), "{log}");
    assert!(log.contains("failed at tests/outcomes.rs:12:1:\n\"the body said no\""), "{log}");
    for framework in ["e2e-runtime/src/", "e2e_runtime::", "e2e-docker/src/", "e2e_docker::", "stack backtrace"] {
        assert!(!log.contains(framework), "{framework:?} in:\n{log}");
    }
    assert_no_leftovers(&["acc_err"]);
}

/// A setting with a value it does not accept fails the test, saying which and why, at the test.
#[test]
fn a_bad_setting_fails_the_test_by_name() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new(outcomes_bin())
        .args(["--exact", "passes::acc_ok"])
        .env("E2E_KEEP", "yes")
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let log = text(&out);
    assert!(log.contains("test passes::acc_ok ... FAILED"), "{log}");
    let msg = "e2e: test passes::acc_ok failed at tests/outcomes.rs:5:1:\ncreating env \"acc_ok\": \
               invalid value \"yes\" for E2E_KEEP: accepted values are never, on-failure, always";
    assert!(log.contains(msg), "missing {msg:?} in:\n{log}");
    assert!(!log.contains("e2e-runtime/src/") && !log.contains("e2e-docker/src/"), "{log}");
    assert_no_leftovers(&["acc_ok"]);
}

#[test]
fn cargo_test_env_runs_exactly_that_envs_tests() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    outcomes_bin();
    let out = cargo(&["test", "--test", "outcomes", "acc_ok"]).output().unwrap();
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("test passes::acc_ok ... ok"), "{log}");
    assert!(log.contains("test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 10 filtered out"), "{log}");

    let out = cargo(&["test", "--test", "outcomes", "--", "--list"]).output().unwrap();
    let log = text(&out);
    for line in ["passes::acc_ok: test", "serial_a::acc_serial: test", "hangs::acc_hang: test"] {
        assert!(log.contains(line), "missing {line:?} in:\n{log}");
    }
    assert_no_leftovers(&["acc_ok"]);
}

/// cargo-nextest runs every test in its own process: the env lock still serializes them.
#[test]
fn nextest_processes_sharing_an_env_name_are_serialized() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    outcomes_bin();
    let times = times_file("nextest");
    let out = cargo(&["nextest", "run", "--test", "outcomes", "--test-threads=4", "-E", "test(/serial|parallel/)"])
        .env("E2E_SCENARIO_TIMES", &times)
        .output()
        .expect("cargo-nextest is installed");
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("4 tests run: 4 passed"), "{log}");
    let t = intervals(&times);
    assert!(!overlap(t["serial_a"], t["serial_b"]), "acc_serial ran twice at once: {t:?}");
    assert!(overlap(t["parallel_a"], t["parallel_b"]), "different envs did not overlap: {t:?}");
    assert_no_leftovers(&["acc_serial", "acc_par_a", "acc_par_b"]);
}

/// A shared env serves every process of a nextest run: ten tests in ten processes, one
/// container start, nothing left once the last is done.
#[test]
fn nextest_processes_of_a_run_share_one_shared_env() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    outcomes_bin();
    let since = common::docker(&["system", "info", "-f", "{{.SystemTime}}"]);
    let out = cargo(&["nextest", "run", "--test", "shared", "--test-threads=10"]).output().expect("cargo-nextest runs");
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("10 tests run: 10 passed"), "{log}");
    let starts = common::starts_since("acc_shared", &since);
    assert_eq!(starts, 1, "one container start for ten processes");
    // The keeper removes the env once the last process's lease has ended, after its grace.
    let t = Instant::now();
    while !leftovers("acc_shared").is_empty() && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_no_leftovers(&["acc_shared"]);
}

/// The most intervals that hold at one moment.
fn most_at_once(t: &HashMap<String, (u128, u128)>) -> usize {
    t.values().map(|a| t.values().filter(|b| b.0 <= a.0 && a.0 < b.1).count()).max().unwrap_or(0)
}

/// The tests a nextest run passed (`PASS [ 0.512s] e2e-scenarios::shared s01::acc_shared`).
fn passed(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.trim_start().starts_with("PASS"))
        .filter_map(|l| l.split_whitespace().last().map(String::from))
        .collect()
}

/// The README's nextest settings (tests/scenarios/.config/nextest.toml): the test group caps
/// how many e2e tests run at once; an archive run in partitions, as CI machines would, runs
/// every test exactly once and leaves nothing.
#[test]
fn nextest_groups_cap_e2e_tests_and_partitions_run_each_test_once() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    outcomes_bin();
    let out = cargo(&["nextest", "show-config", "test-groups"]).output().expect("cargo-nextest runs");
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("docker") && log.contains("max threads = 4") && log.contains("s01::acc_shared"), "{log}");

    // This repository's own settings (.config/nextest.toml) put its heavy suites in a group.
    let out = Command::new(env!("CARGO"))
        .args(["nextest", "show-config", "test-groups", "--workspace"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .expect("cargo-nextest runs");
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("docker-heavy") && log.contains("max threads = 2") && log.contains("fault_suite"), "{log}");

    // Ten tests, room for ten processes: the group lets four run at once.
    let times = times_file("nextest-group");
    let out = cargo(&["nextest", "run", "--test", "shared", "--test-threads=10"])
        .env("E2E_SCENARIO_TIMES", &times)
        .output()
        .expect("cargo-nextest runs");
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    let at_once = most_at_once(&intervals(&times));
    assert!((2..=4).contains(&at_once), "{at_once} bodies at once (the group allows 4): {log}");

    // One archive, two partitions (two CI machines): each test once.
    let archive = std::env::temp_dir().join(format!("e2e-acceptance-{}.tar.zst", std::process::id()));
    let out = cargo(&["nextest", "archive", "--test", "shared", "--archive-file", archive.to_str().unwrap()])
        .output()
        .expect("cargo-nextest archives");
    assert!(out.status.success(), "{}", text(&out));
    let mut seen = Vec::new();
    for part in ["count:1/2", "count:2/2"] {
        let remap = scenarios_dir();
        let out = cargo(&[
            "nextest",
            "run",
            "--archive-file",
            archive.to_str().unwrap(),
            "--workspace-remap",
            remap.to_str().unwrap(),
            "--partition",
            part,
        ])
        .output()
        .expect("cargo-nextest runs an archive");
        let log = text(&out);
        assert!(out.status.success(), "partition {part}: {log}");
        let ran = passed(&log);
        assert!(!ran.is_empty() && ran.len() < 10, "partition {part} ran {ran:?}");
        seen.extend(ran);
        // The keeper of this machine's run removes the env once its last lease ends.
        let t = Instant::now();
        while !leftovers("acc_shared").is_empty() && t.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_no_leftovers(&["acc_shared"]);
    }
    let _ = std::fs::remove_file(&archive);
    seen.sort();
    let names: Vec<String> = (1..=10).map(|i| format!("s{i:02}::acc_shared")).collect();
    assert_eq!(seen, names, "every test exactly once across the partitions");
}

/// A renamed dependency (`my_e2e = { package = "e2e-framework", .. }`): both macros take
/// `crate = "my_e2e"`, and the crate in tests/renamed builds and passes with no `e2e` in scope.
#[test]
fn macros_work_under_a_renamed_dependency() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/renamed");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let out = Command::new(env!("CARGO"))
        .args(["test", "--test", "renamed"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("test a_renamed_dependency_works::ren_ok ... ok"), "{log}");
    assert_no_leftovers(&["ren_ok"]);
}

/// Interrupt a run mid-scenario; nothing it created may remain.
fn interrupted_run_leaves_nothing(signal: i32, whole_group: bool) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let times = times_file(&format!("signal-{signal}"));
    let mut child = {
        use std::os::unix::process::CommandExt;
        Command::new(outcomes_bin())
            .args(["--ignored", "--exact", "hangs::acc_hang"])
            .env("E2E_SCENARIO_TIMES", &times)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap()
    };
    let t = Instant::now();
    while !intervals(&times).contains_key("hangs") {
        assert!(t.elapsed() < Duration::from_secs(60), "the scenario never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(leftovers("acc_hang").iter().filter(|l| l.starts_with("container")).count(), 2);
    let pid = child.id() as i32;
    // A terminal's Ctrl-C reaches the whole process group.
    let target = if whole_group { -pid } else { pid };
    assert_eq!(unsafe { libc::kill(target, signal) }, 0);
    let status = child.wait().unwrap();
    assert!(!status.success());
    let t = Instant::now();
    loop {
        let left = leftovers("acc_hang");
        if left.is_empty() {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "signal {signal}: left {left:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sigint_to_the_process_group_cleans_up() {
    interrupted_run_leaves_nothing(libc::SIGINT, true);
}

#[test]
fn sigterm_cleans_up() {
    interrupted_run_leaves_nothing(libc::SIGTERM, false);
}

#[test]
fn sigkill_is_cleaned_up_by_the_watchdog() {
    interrupted_run_leaves_nothing(libc::SIGKILL, true);
}

/// E2E_KEEP=on-failure keeps a failed env and says how to remove it; the next run of the env
/// removes it.
#[test]
fn a_kept_env_survives_until_the_next_run() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let run = |keep: bool| {
        let mut cmd = Command::new(outcomes_bin());
        cmd.args(["--exact", "returns_err::acc_err"]).env("RUST_BACKTRACE", "0");
        if keep {
            cmd.env("E2E_KEEP", "on-failure");
        }
        cmd.output().unwrap()
    };
    let log = text(&run(true));
    assert!(log.contains("env \"acc_err\" is kept") && log.contains("docker rm -fv"), "{log}");
    let network = log.split("network ").nth(1).and_then(|rest| rest.split(',').next()).unwrap().to_string();
    let network_exists =
        || Command::new("docker").args(["network", "inspect", &network]).output().unwrap().status.success();
    // The watchdog was told to leave it too: its container, and its network (a pooled one).
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(leftovers("acc_err").len(), 1, "{:?}", leftovers("acc_err"));
    assert!(network_exists(), "the kept env's network {network} was removed");
    let log = text(&run(false));
    assert!(log.contains("left by dead run"), "{log}");
    assert_no_leftovers(&["acc_err"]);
    assert!(!network_exists(), "the kept env's network {network} is left");
}
