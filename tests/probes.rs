//! Readiness by the image's own HEALTHCHECK, and by a batch container's exit code (issue 15),
//! in `Probe` and in `workload!`, on the real engine.

mod common;

use std::time::{Duration, Instant};

use e2e::{Env, Error, Probe, StartOptions};

const BUSYBOX: &str = "busybox:1.35";

/// An image of busybox with a healthcheck every 500 ms: healthy once `/tmp/ok` exists.
const HEALTHY_WHEN_OK: &str = "e2e-test/health-ok:latest";
/// An image whose healthcheck always fails, after one try.
const NEVER_HEALTHY: &str = "e2e-test/health-never:latest";

/// Builds the two healthcheck images (once per test binary).
async fn health_images() {
    static BUILT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    BUILT
        .get_or_init(|| async {
            for (tag, check) in [
                (HEALTHY_WHEN_OK, "--interval=500ms --timeout=2s --retries=3 CMD test -f /tmp/ok"),
                (NEVER_HEALTHY, "--interval=500ms --timeout=2s --retries=1 CMD echo the disk is full && false"),
            ] {
                let dir = std::env::temp_dir().join(format!("e2e-probes-{}-{}", std::process::id(), tag.len()));
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join("Dockerfile"), format!("FROM {BUSYBOX}\nHEALTHCHECK {check}\n")).unwrap();
                e2e::image::build_dockerfile(tag, &dir, None).await.unwrap();
                let _ = std::fs::remove_dir_all(dir);
            }
        })
        .await;
}

e2e::workload! {
    /// A migration: a batch container that must exit with 0.
    Migration {
        image: "busybox:1.35",
        readiness: exit_code(0),
        command: ["sh", "-c", "sleep 1; echo migrated"],
    }

    /// A service whose image says when it is healthy.
    Checked {
        image: "e2e-test/health-ok:latest",
        readiness: healthy(),
        readiness_timeout: "30s",
        command: ["sh", "-c", "sleep 1; touch /tmp/ok; exec sleep 3600"],
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_images_healthcheck_decides_readiness() -> e2e::Result<()> {
    health_images().await;
    let env = Env::docker("pr_health").await?;
    // Healthy once the file is there (about a second, then a check).
    let ok = env.runnable("ok").init(
        StartOptions::new(HEALTHY_WHEN_OK)
            .command(["sh", "-c", "sleep 1; touch /tmp/ok; exec sleep 3600"])
            .readiness(Probe::healthy()),
    );
    let t = Instant::now();
    ok.start_and_wait_ready().await?;
    assert!(t.elapsed() >= Duration::from_secs(1), "ready before the file was there: {:?}", t.elapsed());

    // Unhealthy: fails at once, well before the readiness timeout, with what the check said.
    let sick = env.runnable("sick").init(
        StartOptions::new(NEVER_HEALTHY)
            .command(["sleep", "3600"])
            .readiness(Probe::healthy())
            .readiness_timeout(Duration::from_secs(60)),
    );
    let t = Instant::now();
    let e = sick.start_and_wait_ready().await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(20), "an unhealthy container waited {:?}", t.elapsed());
    assert!(matches!(e, Error::NotReady { .. }), "{e:?}");
    let message = e.to_string();
    assert!(
        message.contains("sick") && message.contains("unhealthy") && message.contains("the disk is full"),
        "{message}"
    );

    // No healthcheck at all: said at once.
    let none = env.runnable("none").init(
        StartOptions::new(BUSYBOX)
            .command(["sleep", "3600"])
            .readiness(Probe::healthy())
            .readiness_timeout(Duration::from_secs(60)),
    );
    let t = Instant::now();
    let e = none.start_and_wait_ready().await.unwrap_err().to_string();
    assert!(t.elapsed() < Duration::from_secs(10), "waited {:?}", t.elapsed());
    assert!(e.contains("none") && e.contains("no healthcheck") && e.contains("HEALTHCHECK"), "{e}");

    // In workload!: the same probe.
    let checked = Checked::new(&env, "checked");
    checked.start_and_wait_ready().await?;
    assert!(checked.is_running().await?);
    env.close().await?;
    common::assert_clean("pr_health");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_container_is_ready_when_it_exits_with_its_code() -> e2e::Result<()> {
    let env = Env::docker("pr_exit").await?;
    let job = |name: &str, code: i64, after: &str| {
        env.runnable(name).init(
            StartOptions::new(BUSYBOX)
                .command(["sh", "-c", &format!("sleep {after}; echo done; exit {code}")])
                .readiness(Probe::exit_code(code))
                .readiness_timeout(Duration::from_secs(30)),
        )
    };
    // Exits with the code awaited: ready (the exit is no failure), its output kept.
    let t = Instant::now();
    let three = job("three", 3, "1");
    three.start_and_wait_ready().await?;
    assert!(t.elapsed() >= Duration::from_secs(1));
    assert!(!three.is_running().await?);
    assert!(three.logs_tail(5).iter().any(|l| l.contains("done")), "{:?}", three.logs_tail(5));

    // Another code: fails at once, naming both.
    let wrong = env.runnable("wrong").init(
        StartOptions::new(BUSYBOX)
            .command(["sh", "-c", "exit 4"])
            .readiness(Probe::exit_code(0))
            .readiness_timeout(Duration::from_secs(60)),
    );
    let t = Instant::now();
    let e = wrong.start_and_wait_ready().await.unwrap_err().to_string();
    assert!(t.elapsed() < Duration::from_secs(10), "waited {:?}", t.elapsed());
    assert!(e.contains("wrong") && e.contains("exited with 4, not 0"), "{e}");

    // Still running at the timeout: not ready, saying it waits for the exit.
    let slow = env.runnable("slow").init(
        StartOptions::new(BUSYBOX)
            .command(["sleep", "3600"])
            .readiness(Probe::exit_code(0))
            .readiness_timeout(Duration::from_secs(2)),
    );
    let e = slow.start_and_wait_ready().await.unwrap_err().to_string();
    assert!(e.contains("still running") && e.contains("exit_code(0)"), "{e}");

    // In workload!.
    let migration = Migration::new(&env, "migration");
    migration.start_and_wait_ready().await?;
    assert!(migration.logs_tail(5).iter().any(|l| l.contains("migrated")));
    env.close().await?;
    common::assert_clean("pr_exit");
    Ok(())
}
