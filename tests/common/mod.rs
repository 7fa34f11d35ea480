//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::process::Command;

/// Labelled containers, networks and volumes of an env that are still there.
pub fn leftovers(env: &str) -> Vec<String> {
    let filter = format!("label=dev.e2e.env={env}");
    let mut left = Vec::new();
    for (what, args) in [
        ("container", vec!["ps", "-a", "-q", "--filter", &filter]),
        ("network", vec!["network", "ls", "-q", "--filter", &filter]),
        ("volume", vec!["volume", "ls", "-q", "--filter", &filter]),
    ] {
        let out = Command::new("docker").args(&args).output().expect("the docker CLI runs");
        assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        for id in String::from_utf8_lossy(&out.stdout).lines() {
            left.push(format!("{what} {id}"));
        }
    }
    left
}

/// Asserts the env left nothing behind.
pub fn assert_clean(env: &str) {
    let left = leftovers(env);
    assert!(left.is_empty(), "env {env} left: {left:?}");
}

/// The owner label a dead process of this host would have had.
pub fn dead_owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string();
    let boot: String =
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap().trim().chars().take(8).collect();
    format!("{host}/{boot}/99999999/1")
}

/// For a test program without libtest's harness: answers cargo-nextest's listing (`--list
/// --format terse`, then `--ignored`) as the one test `name`. True when it answered, and the
/// program should end.
pub fn answered_nextest_list(name: &str) -> bool {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--list") {
        return false;
    }
    if !args.iter().any(|a| a == "--ignored") {
        println!("{name}: test");
    }
    true
}

/// Runs the docker CLI, asserting success, returning stdout.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("the docker CLI runs");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The fixture service's image, built from the cargo-built binary (once per test binary).
pub async fn fixture_image() -> &'static str {
    static BUILT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    const TAG: &str = "e2e-fixture:test";
    BUILT
        .get_or_init(|| async {
            let bin = e2e::image::cargo_bin("e2e-fixture", "e2e-fixture").expect("the fixture builds");
            e2e::image::BinaryImage::new(TAG, bin).quiet(true).build().await.expect("the fixture image builds");
        })
        .await;
    TAG
}

/// Pooled networks (`dev.e2e.env=_pool`) of the run of process `pid`, by their owner label
/// (`<host>/<boot>/<pid>/<start>`).
pub fn pooled_networks_of(pid: u32) -> usize {
    let owners =
        docker(&["network", "ls", "--filter", "label=dev.e2e.env=_pool", "--format", "{{.Label \"dev.e2e.owner\"}}"]);
    let needle = format!("/{pid}/");
    owners.lines().filter(|o| o.contains(&needle)).count()
}

/// The containers of env `env` that the engine started since `since` (RFC 3339), by its events.
pub fn starts_since(env: &str, since: &str) -> usize {
    let until = docker(&["system", "info", "-f", "{{.SystemTime}}"]);
    let events = docker(&[
        "events",
        "--since",
        since,
        "--until",
        &until,
        "--filter",
        &format!("label=dev.e2e.env={env}"),
        "--filter",
        "type=container",
        "--filter",
        "event=start",
        "--format",
        "{{.Actor.Attributes.name}}",
    ]);
    events.lines().count()
}
