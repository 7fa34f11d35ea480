//! `build`: the cold `cargo build --tests` of a one-test user crate on e2e (default features;
//! `default-features = false`; and that with `lean-idna`, the feature that only lightens the
//! build) against the same crate on testcontainers-rs 0.28: wall time and the number of crates
//! compiled, medians of `E2E_BENCH_ROUNDS` rounds (default 1), each round building them in turn
//! from an empty target directory. Dependencies are fetched before (untimed): the figure is
//! compilation, not the network.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const E2E_TEST: &str = r#"#[e2e::test(env = "user")]
async fn starts_a_container(env: &e2e::Env) -> e2e::Result<()> {
    let r = env.runnable("box").init(e2e::StartOptions::new("busybox:1.35").command(["sleep", "5"]));
    r.start().await
}
"#;

const TC_TEST: &str = r#"use testcontainers::{runners::AsyncRunner, GenericImage, ImageExt};

#[tokio::test]
async fn starts_a_container() {
    let _c = GenericImage::new("busybox", "1.35").with_cmd(["sleep", "5"]).start().await.unwrap();
}
"#;

struct Contestant {
    name: &'static str,
    dependencies: String,
    test: &'static str,
}

fn crate_dir(root: &Path, c: &Contestant) -> PathBuf {
    let dir = root.join(c.name);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{}\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n[workspace]\n\n[dev-dependencies]\n{}",
            c.name, c.dependencies
        ),
    )
    .unwrap();
    std::fs::write(dir.join("src/lib.rs"), "").unwrap();
    std::fs::write(dir.join("tests/user.rs"), c.test).unwrap();
    dir
}

/// One cold build: seconds and crates compiled.
fn cold_build(dir: &Path) -> (f64, usize) {
    let target = dir.join("target");
    let _ = std::fs::remove_dir_all(&target);
    let t = Instant::now();
    let out = Command::new("cargo")
        .args(["build", "--tests", "--offline"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("cargo runs");
    let took = t.elapsed().as_secs_f64();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "building {}: {log}", dir.display());
    (took, log.lines().filter(|l| l.trim_start().starts_with("Compiling ")).count())
}

/// The median; of an even count, the mean of the middle two (not the upper one).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n.is_multiple_of(2) {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    } else {
        v[n / 2]
    }
}

pub fn run(report: &mut super::Report, repo: &Path, rounds: usize) {
    let root = std::env::temp_dir().join(format!("e2e-bench-build-{}", std::process::id()));
    let e2e = |extra: &str| {
        format!(
            "e2e = {{ package = \"e2e-framework\", path = {:?}{extra} }}\ntokio = {{ version = \"1\", features = [\"macros\", \"rt-multi-thread\"] }}\n",
            repo.display().to_string()
        )
    };
    let contestants = [
        Contestant { name: "user-e2e", dependencies: e2e(""), test: E2E_TEST },
        Contestant {
            name: "user-tc",
            dependencies:
                "testcontainers = \"0.28\"\ntokio = { version = \"1\", features = [\"macros\", \"rt-multi-thread\"] }\n"
                    .into(),
            test: TC_TEST,
        },
        Contestant { name: "user-e2e-minimal", dependencies: e2e(", default-features = false"), test: E2E_TEST },
        Contestant {
            name: "user-e2e-minimal-lean",
            dependencies: e2e(", default-features = false, features = [\"lean-idna\"]"),
            test: E2E_TEST,
        },
    ];
    let dirs: Vec<PathBuf> = contestants.iter().map(|c| crate_dir(&root, c)).collect();
    for dir in &dirs {
        let fetched = Command::new("cargo").arg("fetch").current_dir(dir).status().expect("cargo runs");
        assert!(fetched.success(), "fetching the dependencies of {}", dir.display());
    }
    let mut times = vec![Vec::new(); contestants.len()];
    let mut crates = vec![0; contestants.len()];
    for round in 0..rounds {
        for (i, dir) in dirs.iter().enumerate() {
            let (t, n) = cold_build(dir);
            println!("build round {round}: {} {t:.1} s, {n} crates", contestants[i].name);
            times[i].push(t);
            crates[i] = n;
        }
        // The machine's speed drifts between rounds: the ratio within a round is the steadier figure.
        println!("build round {round}: e2e / testcontainers {:.2}x", times[0][round] / times[1][round]);
    }
    let t: Vec<f64> = times.into_iter().map(median).collect();
    report.row(format!(
        "| cold `cargo build --tests`, one-test user crate | e2e {:.1} s, {} crates | testcontainers 0.28 {:.1} s, {} crates | e2e / testcontainers: {:.2}x time, {:.2}x crates |",
        t[0], crates[0], t[1], crates[1], t[0] / t[1], crates[0] as f64 / crates[1] as f64
    ));
    for (i, label) in [(2, "same, e2e with default-features = false"), (3, "same, with `lean-idna` only")] {
        report.row(format!(
            "| {label} | {:.1} s, {} crates | | {:.2}x time, {:.2}x crates |",
            t[i],
            crates[i],
            t[i] / t[1],
            crates[i] as f64 / crates[1] as f64
        ));
    }
    let _ = std::fs::remove_dir_all(&root);
}
