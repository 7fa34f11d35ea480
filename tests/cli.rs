//! `cargo e2e` (issue 15): the catalog, the envs on the engine with who holds them, and the
//! removal of one env, of dead runs' resources, and of everything of this machine's runs.

mod common;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e::{Env, StartOptions};

fn cli(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cargo-e2e")).args(args).output().expect("cargo-e2e runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The line of `cargo e2e envs` about env `env`.
fn line_of(listing: &str, env: &str) -> Option<String> {
    listing.lines().find(|l| l.split_whitespace().next() == Some(env)).map(String::from)
}

/// The child: an env with a container, held until the process ends.
#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn child_holds_an_env() -> e2e::Result<()> {
    let name = std::env::var("E2E_CLI_ENV").unwrap();
    let env = Env::docker(&name).await?;
    env.runnable("idle").init(StartOptions::new("busybox:1.35").command(["sleep", "3600"])).start().await?;
    println!("E2E_CLI_READY");
    tokio::time::sleep(Duration::from_secs(3600)).await;
    Ok(())
}

/// Starts the child on env `env` and waits for its env to be up.
fn child(env: &str, watchdog: bool) -> std::process::Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--ignored", "--exact", "child_holds_an_env", "--nocapture"])
        .env("E2E_CLI_ENV", env)
        .env("E2E_QUIET", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if !watchdog {
        cmd.env("E2E_NO_WATCHDOG", "1");
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    assert!(stdout.lines().map_while(Result::ok).any(|l| l.contains("E2E_CLI_READY")), "the child's env never came up");
    child
}

#[test]
fn the_catalog_is_listed() {
    let (ok, out) = cli(&["catalog"]);
    assert!(ok, "{out}");
    let redis = out.lines().find(|l| l.starts_with("Redis ")).unwrap_or_else(|| panic!("{out}"));
    assert!(redis.contains("redis:7.0.15") && redis.contains("redis 6379"), "{redis}");
    assert!(out
        .lines()
        .any(|l| l.starts_with("Etcd ") && l.contains("client 2379, peer 2380") && l.ends_with("client")));
}

#[test]
fn bad_usage_is_said_and_an_unknown_env_is_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_cargo-e2e")).args(["frobnicate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: cargo e2e"));
    // As cargo runs it: `cargo-e2e e2e <command>`.
    assert!(cli(&["e2e", "help"]).1.contains("rm --dead"));
    let (ok, out) = cli(&["rm", "cli_nosuch"]);
    assert!(!ok && out.contains("\"cli_nosuch\"") && out.contains("no resources"), "{out}");
}

#[test]
fn envs_are_listed_with_their_holders_and_removed_by_name_dead_run_or_machine() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    // A live env of this process; a dead run's (killed, no watchdog to clean up after it).
    let live: e2e::Result<Env> = rt.block_on(async {
        let env = Env::docker("cli_live").await?;
        env.runnable("idle").init(StartOptions::new("busybox:1.35").command(["sleep", "3600"])).start().await?;
        Ok(env)
    });
    let live = live.unwrap();
    let mut dead = child("cli_dead", false);
    dead.kill().unwrap();
    dead.wait().unwrap();

    let (ok, listing) = cli(&["envs"]);
    assert!(ok, "{listing}");
    let mine = line_of(&listing, "cli_live").unwrap_or_else(|| panic!("{listing}"));
    assert!(
        mine.contains(&std::process::id().to_string()) && mine.contains("running") && mine.contains("1/1"),
        "{mine}"
    );
    let gone = line_of(&listing, "cli_dead").unwrap_or_else(|| panic!("{listing}"));
    assert!(gone.contains("dead") && gone.contains("1/1"), "{gone}");

    // Dead runs only: the live env stays.
    let (ok, out) = cli(&["rm", "--dead"]);
    assert!(ok, "{out}");
    common::assert_clean("cli_dead");
    assert!(!common::leftovers("cli_live").is_empty(), "rm --dead removed a live env");

    // By name.
    let (ok, out) = cli(&["rm", "cli_live"]);
    assert!(ok && out.contains("removed env \"cli_live\""), "{out}");
    common::assert_clean("cli_live");
    rt.block_on(live.close()).ok();

    // Everything of this machine's runs, a live child's too.
    let mut alive = child("cli_all", true);
    assert!(line_of(&cli(&["envs"]).1, "cli_all").is_some_and(|l| l.contains("running")));
    let (ok, out) = cli(&["rm", "--all"]);
    assert!(ok, "{out}");
    common::assert_clean("cli_all");
    alive.kill().unwrap();
    alive.wait().unwrap();
    let t = Instant::now();
    while !common::leftovers("cli_all").is_empty() && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(200));
    }
    common::assert_clean("cli_all");
}
