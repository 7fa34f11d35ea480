//! A test process inside a container, with the engine's socket mounted (docker outside of
//! docker, as CI jobs that run in a container do): the suite that must hold wherever the engine
//! is (tests/anywhere.rs) runs in a container on this machine's engine, and must pass there.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::{Env, StartOptions};

/// The `anywhere` test binary of this workspace, as cargo builds it now (cargo holds no lock
/// while tests run, and names the executable in its messages).
fn anywhere_binary() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["test", "--test", "anywhere", "--no-run", "--message-format", "json-render-diagnostics"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "building tests/anywhere.rs: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "anywhere")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo names the anywhere test binary")
}

/// The engine's local socket, which this test mounts into the container.
fn local_socket() -> String {
    match std::env::var("DOCKER_HOST") {
        Err(_) => "/var/run/docker.sock".to_string(),
        Ok(h) if h.is_empty() => "/var/run/docker.sock".to_string(),
        Ok(h) => h.strip_prefix("unix://").map(str::to_string).unwrap_or_else(|| {
            panic!("this test mounts the local engine's socket into a container; DOCKER_HOST={h} is not a local socket")
        }),
    }
}

/// Labelled containers, networks and volumes of envs whose name starts with `prefix`.
fn leftovers_of_envs(prefix: &str) -> Vec<String> {
    let mut left = Vec::new();
    for what in [&["ps", "-a"][..], &["network", "ls"], &["volume", "ls"]] {
        let mut args = what.to_vec();
        args.extend(["--filter", "label=dev.e2e.managed", "--format", "{{.Label \"dev.e2e.env\"}} {{.ID}}"]);
        let out = common::docker(&args);
        left.extend(out.lines().filter(|l| l.starts_with(prefix)).map(|l| format!("{} {l}", what[0])));
    }
    left
}

#[tokio::test(flavor = "multi_thread")]
async fn the_suite_that_holds_anywhere_passes_inside_a_container_with_the_socket_mounted() -> e2e::Result<()> {
    let socket = local_socket();
    let exe = anywhere_binary();
    let cli = String::from_utf8(Command::new("sh").args(["-c", "command -v docker"]).output().unwrap().stdout).unwrap();
    let cli = cli.trim().to_string();
    assert!(!cli.is_empty(), "the docker CLI (the suite's helpers use it) is not on PATH");
    // An image of the test binary and the libraries it links (the framework's own images from
    // host binaries), with the CLI (which the suite's helpers run) and the socket mounted. The
    // image it replaces, if any, goes: each build of the suite would leave one otherwise.
    const IMAGE: &str = "e2e-inside:test";
    let before = Command::new("docker").args(["image", "inspect", "-f", "{{.Id}}", IMAGE]).output().unwrap();
    let id = e2e::image::BinaryImage::new(IMAGE, &exe).quiet(true).build().await?;
    let before = String::from_utf8_lossy(&before.stdout).trim().to_string();
    if !before.is_empty() && before != id {
        let _ = Command::new("docker").args(["rmi", &before]).output();
    }
    let env = Env::docker("inside").await?;
    // Inside, the suite reaches the engine's host at its network's gateway, where the engine
    // publishes ports (not 127.0.0.1, nor the containers' own addresses, which a container on
    // another network cannot reach): its endpoints must say so.
    let gateway =
        common::docker(&["network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", env.network_name()]);
    let suite = env.runnable("suite").init(
        StartOptions::new(IMAGE)
            // Two machines are played with a UTS namespace, which a CI job's container may not
            // make; partitions and delays package the host's `nft` and iptables, which this
            // image lacks (it has the test binary only); everything else runs.
            .command(["--skip", "two_machines", "--skip", "partitions_", "--skip", "delays_", "--test-threads=2"])
            .volume_ro(cli.as_str(), "/usr/bin/docker")
            .volume(socket.as_str(), "/var/run/docker.sock")
            .env_var("PATH", "/usr/bin:/bin")
            .env_var("HOME", "/tmp")
            .env_var("E2E_TEST_EXPECT_HOST", gateway.as_str())
            .quiet(true),
    );
    suite.start().await?;
    let t = Instant::now();
    while suite.is_running().await? {
        assert!(t.elapsed() < Duration::from_secs(600), "the suite in the container did not end within 10 minutes");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let code = common::docker(&["inspect", "-f", "{{.State.ExitCode}}", suite.container_name()]);
    let output = suite.logs_tail(300).join("\n");
    assert_eq!(code, "0", "the suite failed inside the container:\n{output}");
    let summary = output.lines().find(|l| l.starts_with("test result: ok.")).unwrap_or_default();
    let passed: usize = summary.split_whitespace().nth(3).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(passed >= 8, "the suite ran in the container, and its tests passed there:\n{output}");
    println!("inside the container: {summary}");
    env.close().await?;
    common::assert_clean("inside");
    let left = leftovers_of_envs("any_");
    assert!(left.is_empty(), "the suite in the container left: {left:?}");
    Ok(())
}
