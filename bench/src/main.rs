//! Side-by-side benchmark of the floor (raw bollard calls, in parallel), e2e and
//! testcontainers-rs 0.28, in one run, the contestants alternating round by round.
//!
//!     cd bench && cargo run --release                 # everything (about 15 minutes)
//!     cd bench && cargo run --release -- p real       # some scenarios
//!     E2E_BENCH_ROUNDS=3 cargo run --release -- suite # fewer rounds
//!     DOCKER_HOST=tcp://<remote engine> cargo run --release -- remote  # P on a remote engine
//!
//! Scenarios: `p`, `real`, `crash`, `suite`, `ready` (readiness latency), `close` (close of
//! 10 containers), `parse` (10,000-series exposition). Medians and ratios are printed at the
//! end of each scenario and all together at the end.

mod build;
mod floor;
mod fw;
mod specs;
mod tc;

#[path = "../../e2e-runtime/benches/support/exposition.rs"]
mod exposition;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub fn epoch_micros() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0)
}

const CONTESTANTS: [&str; 3] = ["floor", "e2e", "testcontainers"];

/// One measured value per round and contestant.
#[derive(Default)]
struct Samples {
    values: Vec<Vec<f64>>,
}

impl Samples {
    fn new(n: usize) -> Self {
        Samples { values: vec![vec![]; n] }
    }

    fn median(&self, i: usize) -> Option<f64> {
        let mut v = self.values[i].clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let m = v.len() / 2;
        Some(if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 })
    }
}

/// The table printed at the end.
struct Report {
    lines: Vec<String>,
}

impl Report {
    fn row(&mut self, line: String) {
        println!("{line}");
        self.lines.push(line);
    }
}

fn rounds(default: usize) -> usize {
    std::env::var("E2E_BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(default)
}

/// Runs `round(contestant, round)` for each contestant in each round, rotating who goes first,
/// and prints each value as it comes. Values are in `unit`s as `round` returns them.
async fn alternate<F, Fut>(what: &str, names: &[&str], n: usize, unit: &str, mut round: F) -> Samples
where
    F: FnMut(usize, usize) -> Fut,
    Fut: Future<Output = Result<f64, String>>,
{
    let mut samples = Samples::new(names.len());
    for r in 0..n {
        let mut line = format!("{what} round {}/{n}:", r + 1);
        for k in 0..names.len() {
            let c = (r + k) % names.len();
            match round(c, r).await {
                Ok(v) => {
                    line.push_str(&format!(" {}={v:.1}{unit}", names[c]));
                    samples.values[c].push(v);
                }
                Err(e) => {
                    println!("{what}: {} failed in round {}: {e}", names[c], r + 1);
                    line.push_str(&format!(" {}=FAILED", names[c]));
                }
            }
        }
        println!("{line}");
    }
    samples
}

/// `name: floor X, e2e Y (ratio), tc Z (ratio)` against the contestant at `base`.
fn summary(report: &mut Report, what: &str, names: &[&str], s: &Samples, unit: &str, base: usize, goal: &str) {
    let base_m = s.median(base);
    let mut line = format!("{what:<28}");
    for (i, name) in names.iter().enumerate() {
        match (s.median(i), base_m) {
            (Some(m), Some(b)) if i != base => line.push_str(&format!(" | {name} {m:.1}{unit} ({:.2}x)", m / b)),
            (Some(m), _) => line.push_str(&format!(" | {name} {m:.1}{unit}")),
            (None, _) => line.push_str(&format!(" | {name} failed")),
        }
    }
    if !goal.is_empty() {
        line.push_str(&format!(" | goal: {goal}"));
    }
    report.row(line);
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let all = ["p", "real", "crash", "ready", "close", "parse", "suite"];
    // `remote` needs DOCKER_HOST naming a remote engine; `shared` runs three suites; `build`
    // times cold builds of a user crate: asked for by name only.
    let known = [&all[..], &["remote", "shared", "build"]].concat();
    let wanted: Vec<&str> = if args.is_empty() { all.to_vec() } else { args.iter().map(String::as_str).collect() };
    if let Some(bad) = wanted.iter().find(|w| !known.contains(w)) {
        eprintln!("unknown scenario {bad:?}; the scenarios are {known:?}");
        std::process::exit(2);
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("bench/ is inside the repository").to_path_buf();
    // `build` needs no engine: cold builds of a user crate on e2e and on testcontainers.
    if wanted == ["build"] {
        let mut report = Report { lines: vec![] };
        build::run(&mut report, &repo, rounds(1));
        println!("\n{}", report.lines.join("\n"));
        return;
    }
    if let Err(e) = build_fixture_image(&repo).await {
        eprintln!("building the fixture image failed: {e}");
        std::process::exit(1);
    }
    let floor = match floor::Floor::connect().await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("the Docker engine does not answer: {e}");
            std::process::exit(1);
        }
    };
    let mut report = Report { lines: vec![] };
    let started = Instant::now();

    for scenario in wanted {
        match scenario {
            "p" | "real" => {
                let specs = if scenario == "p" { specs::p() } else { specs::real() };
                // The fourth contestant is the floor doing only the engine work e2e does (its
                // network made beforehand, no port published): e2e's own overhead is against it.
                let names = ["floor", "e2e", "testcontainers", "floor-same-work"];
                let s = alternate(scenario, &names, rounds(10), "ms", |c, _| {
                    let specs = specs.clone();
                    let floor = &floor;
                    async move {
                        let name = format!("bench_{scenario}_{c}");
                        let d = match c {
                            0 => floor.up_down(&specs, &name).await?,
                            1 => fw::up_down(&specs, &name).await?,
                            2 => tc::up_down(&specs, &name).await?,
                            _ => floor.up_down_same_work(&specs, &name).await?,
                        };
                        Ok(ms(d))
                    }
                })
                .await;
                let what = if scenario == "p" { "P (5 busybox httpd)" } else { "real (5 services)" };
                summary(&mut report, what, &names, &s, "ms", 0, "e2e <= 1.02x floor");
                let e2e_vs_same = Samples { values: vec![s.values[3].clone(), s.values[1].clone()] };
                summary(
                    &mut report,
                    &format!("{scenario}: e2e vs same work"),
                    &["floor-same-work", "e2e"],
                    &e2e_vs_same,
                    "ms",
                    0,
                    "",
                );
            }
            "shared" => shared(&mut report, &repo).await,
            "remote" => {
                if !floor.is_remote() {
                    eprintln!("the remote scenario needs DOCKER_HOST=tcp://<a remote engine>");
                    std::process::exit(2);
                }
                let specs = specs::p();
                let s = alternate("remote", &CONTESTANTS, rounds(10), "ms", |c, _| {
                    let specs = specs.clone();
                    let floor = &floor;
                    async move {
                        let name = format!("bench_remote_{c}");
                        let d = match c {
                            0 => floor.up_down(&specs, &name).await?,
                            1 => fw::up_down(&specs, &name).await?,
                            _ => tc::up_down(&specs, &name).await?,
                        };
                        Ok(ms(d))
                    }
                })
                .await;
                summary(&mut report, "P on a remote engine", &CONTESTANTS, &s, "ms", 0, "e2e <= 1.05x floor");
            }
            "crash" => {
                let spec = specs::crash();
                let messages = std::sync::Mutex::new(vec![None::<String>; 3]);
                let s = alternate("crash", &CONTESTANTS, rounds(3).min(10), "ms", |c, _| {
                    let spec = spec.clone();
                    let floor = &floor;
                    let messages = &messages;
                    async move {
                        let name = format!("bench_crash_{}", CONTESTANTS[c]);
                        let (d, msg) = match c {
                            0 => floor.crash(&spec, &name).await?,
                            1 => fw::crash(&spec, &name).await?,
                            _ => tc::crash(&spec, &name).await?,
                        };
                        messages.lock().unwrap()[c] = Some(msg);
                        Ok(ms(d))
                    }
                })
                .await;
                summary(&mut report, "crash (exit 3 at 0.3 s)", &CONTESTANTS, &s, "ms", 0, "e2e <= 1.05x floor");
                let messages = messages.into_inner().unwrap();
                for (name, msg) in CONTESTANTS.iter().zip(&messages) {
                    let msg = msg.as_deref().unwrap_or("(none)");
                    println!("  {name} reported: {}", msg.replace('\n', "\n    "));
                }
                let e2e = messages[1].as_deref().unwrap_or("");
                report.row(format!(
                    "{:<28} | e2e's error has the exit code: {} | the last log line: {}",
                    "crash report",
                    e2e.contains("exit code 3") || e2e.contains("code 3"),
                    e2e.contains("exiting with code 3")
                ));
            }
            "ready" => {
                let spec = specs::turns_ready();
                let s = alternate("ready", &CONTESTANTS, rounds(10), "ms", |c, _| {
                    let spec = spec.clone();
                    let floor = &floor;
                    async move {
                        let name = format!("bench_ready_{}", CONTESTANTS[c]);
                        let us = match c {
                            0 => floor.readiness(&spec, &name).await?,
                            1 => fw::readiness(&spec, &name).await?,
                            _ => tc::readiness(&spec, &name).await?,
                        };
                        Ok(us as f64 / 1000.0)
                    }
                })
                .await;
                summary(&mut report, "readiness noticed after", &CONTESTANTS, &s, "ms", 0, "e2e <= 10 ms");
            }
            "close" => {
                let specs = specs::ten();
                let names = ["floor", "e2e", "testcontainers", "floor-same-work"];
                let s = alternate("close", &names, rounds(10), "ms", |c, _| {
                    let specs = specs.clone();
                    let floor = &floor;
                    async move {
                        let name = format!("bench_close_{c}");
                        let d = match c {
                            0 => floor.close_ten(&specs, &name, false).await?,
                            1 => fw::close_ten(&specs, &name).await?,
                            2 => tc::close_ten(&specs, &name).await?,
                            _ => floor.close_ten(&specs, &name, true).await?,
                        };
                        Ok(ms(d))
                    }
                })
                .await;
                summary(&mut report, "close of 10 containers", &names, &s, "ms", 0, "e2e <= 1.1x floor");
                let e2e_vs_same = Samples { values: vec![s.values[3].clone(), s.values[1].clone()] };
                summary(&mut report, "close: e2e vs same work", &["floor-same-work", "e2e"], &e2e_vs_same, "ms", 0, "");
            }
            "parse" => parse(&mut report),
            "suite" => suite(&mut report, &repo).await,
            _ => unreachable!(),
        }
    }
    println!("\n==== e2e bench: medians, ratios to the first column (took {:.0?})", started.elapsed());
    for line in &report.lines {
        println!("{line}");
    }
}

/// Parsing 10,000 series: prometheus-parse on its own (the floor) against the framework's whole
/// and partial parse. testcontainers has no metrics.
fn parse(report: &mut Report) {
    let text = exposition::exposition();
    let names = ["prometheus-parse", "e2e whole", "e2e partial+sum"];
    let mut s = Samples::new(3);
    let opts = e2e::MetricsOptions::new().matcher(e2e::Matcher::equal("code", "200"));
    for _ in 0..100 {
        for (i, v) in s.values.iter_mut().enumerate() {
            let t = Instant::now();
            match i {
                0 => {
                    let lines = text.lines().map(|l| Ok(l.to_string()));
                    std::hint::black_box(prometheus_parse::Scrape::parse(lines).expect("the exposition parses"));
                }
                1 => {
                    std::hint::black_box(e2e::Exposition::parse(text.clone()));
                }
                _ => {
                    let e = e2e::Exposition::parse_only(text.clone(), ["bench_requests_total"]);
                    std::hint::black_box(e.sum("bench_requests_total", &opts));
                }
            }
            v.push(ms(t.elapsed()));
        }
    }
    summary(report, "parse 10,000 series", &names, &s, "ms", 0, "");
}

/// Runs a suite binary (or command) in `bench/` with `E2E_QUIET=1` and `vars`; its wall time
/// in seconds, or what it said when it did not pass all 20 tests (`passed` is the text of its
/// summary that says so).
async fn run_suite(mut cmd: tokio::process::Command, vars: &[(&str, &str)], passed: &str) -> Result<f64, String> {
    cmd.env("E2E_QUIET", "1");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let t = Instant::now();
    let out = cmd.output().await.map_err(|e| format!("running {cmd:?}: {e}"))?;
    let took = t.elapsed();
    let all = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if !out.status.success() || !all.contains(passed) {
        return Err(format!("{cmd:?} failed:\n{all}"));
    }
    Ok(took.as_secs_f64())
}

/// The test binary `bin`, run in `bench`.
fn suite_cmd(bin: &Path, bench: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.current_dir(bench);
    cmd
}

/// The suite: 20 tests of 3 containers each, one `cargo test` process, e2e against
/// testcontainers (same services, same checks), run alternately.
async fn suite(report: &mut Report, repo: &Path) {
    let bench = repo.join("bench");
    let binaries = match test_binaries(&bench, ["suite_tc", "suite_e2e"]) {
        Ok(b) => b,
        Err(e) => {
            println!("suite: building the test binaries failed: {e}");
            return;
        }
    };
    let names = ["testcontainers", "e2e"];
    let s = alternate("suite", &names, rounds(10), "s", |c, _| {
        run_suite(suite_cmd(&binaries[c], &bench), &[], "20 passed")
    })
    .await;
    summary(report, "suite (20 tests x 3 containers)", &names, &s, "s", 0, "e2e <= 0.70x testcontainers");
}

/// Builds the bench's test binaries `names` (release) and returns their paths, in order.
fn test_binaries<const N: usize>(bench: &Path, names: [&str; N]) -> Result<[PathBuf; N], String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(bench).args(["test", "--release", "--no-run", "--message-format=json"]);
    for n in names {
        cmd.args(["--test", n]);
    }
    let out = cmd.output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let find = |name: &str| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .ok_or(format!("cargo named no executable for {name}"))
    };
    let mut found = Vec::new();
    for n in names {
        found.push(find(n)?);
    }
    Ok(found.try_into().expect("one path per name"))
}

/// Containers the label selects, as `docker ps -aq` lists them.
fn containers_labelled(label: &str) -> Vec<String> {
    let out = Command::new("docker").args(["ps", "-aq", "--filter", &format!("label={label}")]).output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect()).unwrap_or_default()
}

/// Removes containers `ids` with their anonymous volumes (redis declares `VOLUME /data`).
fn remove_containers(ids: Vec<String>) {
    if !ids.is_empty() {
        let mut rm = vec!["rm".to_string(), "-f".to_string(), "-v".to_string()];
        rm.extend(ids);
        let _ = Command::new("docker").args(&rm).output();
    }
}

/// The e2e containers still there once `patience` has passed (polled): what a run left behind.
async fn e2e_left_after(patience: Duration) -> Vec<String> {
    let t = Instant::now();
    loop {
        let ids = containers_labelled("dev.e2e.managed");
        if ids.is_empty() || t.elapsed() >= patience {
            return ids;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Shared envs (issue 13), three measurements, each alternating its contestants:
/// - the suite's 20 tests three ways, one `cargo test` process each: a per-test env, one
///   shared env, and testcontainers-rs with its containers in a `static`. After each run the
///   containers left on the engine are counted (testcontainers' statics are never dropped: its
///   containers are counted, then removed);
/// - the same 20 tests under `cargo nextest run` (a process per test), per-test against
///   shared. A shared env is removed by its keeper after the run (2 s of grace): what is still
///   there 30 s after the run is counted as left;
/// - a warm rerun: from spawning the shared suite's binary to the body of its first test, cold
///   (the env started by the run) against warm (`E2E_REUSE`, the env of an earlier run reused).
async fn shared(report: &mut Report, repo: &Path) {
    let bench = repo.join("bench");
    let binaries = match test_binaries(&bench, ["suite_e2e", "shared_e2e", "shared_tc"]) {
        Ok(b) => b,
        Err(e) => {
            println!("shared: building the test binaries failed: {e}");
            return;
        }
    };
    let names = ["e2e per-test", "e2e shared", "testcontainers static"];
    let left = std::sync::Mutex::new([0usize; 3]);
    let s = alternate("shared", &names, rounds(6), "s", |c, _| {
        let cmd = suite_cmd(&binaries[c], &bench);
        let left = &left;
        async move {
            let took = run_suite(cmd, &[], "20 passed").await?;
            let label = if c == 2 { "org.testcontainers.managed-by=testcontainers" } else { "dev.e2e.managed" };
            let ids = containers_labelled(label);
            left.lock().unwrap()[c] += ids.len();
            remove_containers(ids);
            Ok(took)
        }
    })
    .await;
    summary(report, "suite of 20, shared env", &names, &s, "s", 0, "shared <= 0.15x per-test");
    let left = *left.lock().unwrap();
    report.row(format!(
        "{:<28} | e2e per-test {} | e2e shared {} | testcontainers static {} (over {} runs each)",
        "containers left after runs",
        left[0],
        left[1],
        left[2],
        s.values.iter().map(Vec::len).max().unwrap_or(0)
    ));
    shared_nextest(report, &bench).await;
    warm_rerun(report, &bench, &binaries[1]).await;
}

/// The per-test and shared suites under `cargo nextest run`, alternately.
async fn shared_nextest(report: &mut Report, bench: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let nextest = |test: &str| {
        let mut cmd = tokio::process::Command::new(&cargo);
        cmd.current_dir(bench).args(["nextest", "run", "--release", "--cargo-quiet", "--test", test]);
        cmd
    };
    // Built (and nextest found) before anything is timed.
    for test in ["suite_e2e", "shared_e2e"] {
        let mut list = nextest(test);
        list.as_std_mut().args(["--no-run"]);
        match list.output().await {
            Ok(o) if o.status.success() => {}
            Ok(o) => return println!("shared: cargo nextest failed: {}", String::from_utf8_lossy(&o.stderr)),
            Err(e) => return println!("shared: cargo nextest is not installed ({e}): the nextest rows are skipped"),
        }
    }
    let names = ["e2e per-test", "e2e shared"];
    let left = std::sync::Mutex::new([0usize; 2]);
    let s = alternate("shared nextest", &names, rounds(6), "s", |c, _| {
        let mut cmd = nextest(["suite_e2e", "shared_e2e"][c]);
        cmd.arg("--no-fail-fast");
        let left = &left;
        async move {
            let took = run_suite(cmd, &[], "20 passed").await?;
            let ids = e2e_left_after(Duration::from_secs(30)).await;
            left.lock().unwrap()[c] += ids.len();
            remove_containers(ids);
            Ok(took)
        }
    })
    .await;
    summary(report, "suite of 20, cargo nextest", &names, &s, "s", 0, "shared <= 0.25x per-test");
    let left = *left.lock().unwrap();
    report.row(format!(
        "{:<28} | e2e per-test {} | e2e shared {} (30 s after each of {} runs)",
        "containers left, nextest",
        left[0],
        left[1],
        s.values.iter().map(Vec::len).max().unwrap_or(0)
    ));
}

/// From spawning the shared suite's binary to its first test's body, cold against warm.
async fn warm_rerun(report: &mut Report, bench: &Path, bin: &Path) {
    // The cold runs use a TMPDIR of their own: the warm keeper holds the env's name on this
    // machine while it lives, and a cold run of the same name would wait for it.
    let cold_tmp = std::env::temp_dir().join("e2e-bench-cold");
    let _ = std::fs::create_dir_all(&cold_tmp);
    let marks = std::env::temp_dir().join(format!("e2e-bench-first-body-{}", std::process::id()));
    let idle = "20s";
    let first_body = |warm: bool| {
        let cmd = suite_cmd(bin, bench);
        let marks = marks.clone();
        let cold_tmp = cold_tmp.clone();
        async move {
            let _ = std::fs::remove_file(&marks);
            let mut vars = vec![("E2E_BENCH_FIRST_BODY", marks.to_str().unwrap())];
            if warm {
                vars.push(("E2E_REUSE", idle));
            } else {
                vars.push(("TMPDIR", cold_tmp.to_str().unwrap()));
            }
            let spawned = epoch_micros();
            run_suite(cmd, &vars, "20 passed").await?;
            let text = std::fs::read_to_string(&marks).map_err(|e| format!("no first-body mark: {e}"))?;
            let first = text.lines().filter_map(|l| l.trim().parse::<u128>().ok()).min().ok_or("no first-body mark")?;
            Ok::<f64, String>(first.saturating_sub(spawned) as f64 / 1000.0)
        }
    };
    // The first warm run starts the warm env: not counted.
    if let Err(e) = first_body(true).await {
        return println!("shared: the warm-up run failed: {e}");
    }
    let names = ["cold", "warm"];
    let s = alternate("warm rerun", &names, rounds(6), "ms", |c, _| first_body(c == 1)).await;
    summary(report, "binary start to first body", &names, &s, "ms", 0, "warm <= 150 ms");
    // Nothing uses the warm env now: it must go once idle that long.
    let left = e2e_left_after(Duration::from_secs(20 + 20)).await;
    report.row(format!(
        "{:<28} | {} containers left 40 s after the last warm run (E2E_REUSE={idle})",
        "warm env after idle",
        left.len()
    ));
    remove_containers(left);
    let _ = std::fs::remove_file(&marks);
}

/// The fixture service's image, built from the workspace's binary (skipped when unchanged).
async fn build_fixture_image(repo: &Path) -> Result<(), String> {
    std::env::set_current_dir(repo).map_err(|e| e.to_string())?;
    let bin = e2e::image::cargo_bin("e2e-fixture", "e2e-fixture").map_err(|e| e.to_string())?;
    e2e::image::BinaryImage::new(specs::FIXTURE_IMAGE, bin).quiet(true).build().await.map_err(|e| e.to_string())?;
    Ok(())
}
