//! Standalone use (issue 15): the stop URL on a port of one's choice, handed out before the
//! wait; SIGHUP ends a standalone run as SIGTERM does, and leaves nothing.

mod common;

use std::time::{Duration, Instant};

use e2e::standalone::{StopEndpoint, Stopped};
use e2e::{Env, StartOptions};

const BUSYBOX: &str = "busybox:1.35";

/// A port free right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_endpoint_on_a_chosen_port_hands_out_its_url_and_stops_when_requested() -> e2e::Result<()> {
    let env = Env::docker("sa_url").await?;
    env.runnable("idle").init(StartOptions::new(BUSYBOX).command(["sleep", "3600"])).start().await?;
    let port = free_port();
    let stop = StopEndpoint::bind(port).await?;
    assert_eq!(stop.port(), port);
    assert_eq!(stop.url(), format!("http://127.0.0.1:{port}/stop"));
    // The port is taken now: asking for it again says which.
    let taken = StopEndpoint::bind(port).await.unwrap_err().to_string();
    assert!(taken.contains(&format!("127.0.0.1:{port}")), "{taken}");
    let url = stop.url();
    let hit = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        reqwest::get(&url).await.unwrap().text().await.unwrap()
    });
    let t = Instant::now();
    assert_eq!(stop.wait(&env).await?, Stopped::Requested);
    assert!(t.elapsed() < Duration::from_secs(10));
    let answer = hit.await.unwrap();
    assert!(answer.contains("stopping env \"sa_url\""), "{answer}");
    env.close().await?;
    common::assert_clean("sa_url");
    Ok(())
}

/// The child: a standalone run that writes its stop URL to `$E2E_SA_URL_FILE`, then waits.
#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn child_standalone_waits() -> e2e::Result<()> {
    let env = Env::docker("sa_hup").await?;
    env.runnable("idle").init(StartOptions::new(BUSYBOX).command(["sleep", "3600"])).start().await?;
    let stop = StopEndpoint::bind(0).await?;
    std::fs::write(std::env::var("E2E_SA_URL_FILE").unwrap(), stop.url()).unwrap();
    stop.wait(&env).await?;
    env.close().await
}

#[test]
fn sighup_ends_a_standalone_run_and_removes_its_env() {
    let dir = tempfile_dir();
    let url_file = dir.join("url");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_standalone_waits", "--ignored", "--nocapture"])
        .env("E2E_SA_URL_FILE", &url_file)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !url_file.exists() {
        assert!(Instant::now() < deadline, "the child wrote no stop URL");
        assert!(child.try_wait().unwrap().is_none(), "the child ended before waiting");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!common::leftovers("sa_hup").is_empty(), "the child's env is up");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the child still runs 30 s after SIGHUP");
        std::thread::sleep(Duration::from_millis(100));
    };
    // Either the wait returned and the run closed its env and ended, or the framework's handler
    // removed the run's resources first and the process died of the signal.
    use std::os::unix::process::ExitStatusExt;
    assert!(status.success() || status.signal() == Some(libc::SIGHUP), "{status:?}");
    common::assert_clean("sa_hup");
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("e2e-standalone-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
