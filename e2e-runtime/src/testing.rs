//! What `#[e2e::test]` expands to calls into here. Not public API: used by generated code.

use std::fmt::Debug;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use futures_util::FutureExt;

use crate::env::Env;
use crate::runnable::Runnable;
use crate::settings::Keep;

/// The test, as the attribute describes it.
#[derive(Debug, Clone, Copy)]
pub struct TestSpec {
    /// The env name.
    pub env: &'static str,
    /// The test's path (`module::function`).
    pub test: &'static str,
    /// The time allowed to the body (workload start included; waiting for the env name is not).
    pub timeout: Option<Duration>,
}

/// The body: declares and starts the workloads, then runs the user's function.
pub type TestBody = Pin<Box<dyn Future<Output = Result<(), String>>>>;

/// What a test function may return: `()` or any `Result` whose error is `Debug`.
pub trait TestReturn {
    /// `Err` with the message to fail with.
    fn into_outcome(self) -> Result<(), String>;
}

impl TestReturn for () {
    fn into_outcome(self) -> Result<(), String> {
        Ok(())
    }
}

impl<T, E: Debug> TestReturn for Result<T, E> {
    fn into_outcome(self) -> Result<(), String> {
        self.map(|_| ()).map_err(|e| format!("{e:?}"))
    }
}

/// Starts the test's workloads in parallel and waits until all are ready.
pub async fn start_workloads(runnables: &[&Runnable]) -> Result<(), String> {
    crate::runnable::start_and_wait_ready(runnables.iter().copied()).await.map_err(|e| format!("{e:?}"))
}

enum Outcome {
    Passed,
    Failed(String),
    Panicked(Box<dyn std::any::Any + Send>),
    TimedOut(Duration),
}

/// Runs one test: builds its runtime, creates the env, runs the body under the timeout and
/// `catch_unwind`, reports on failure, tears the env down whatever happened, then passes or
/// fails the test with the body's own outcome (a panic is resumed as it was).
pub fn run_test(spec: TestSpec, body: impl FnOnce(Env) -> TestBody) {
    // A runtime per test: its threads inherit the test's output capture, so container logs
    // land in this test's output.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime can be built");
    let outcome = rt.block_on(async move {
        let env = match Env::docker(spec.env).await {
            Ok(env) => env,
            Err(e) => return Outcome::Failed(format!("creating env {:?}: {e:?}", spec.env)),
        };
        let run = AssertUnwindSafe(body(env.clone())).catch_unwind();
        let outcome = match spec.timeout {
            Some(t) => match tokio::time::timeout(t, run).await {
                Ok(r) => r,
                Err(_) => Err(Box::new(TimeoutMarker(t)) as Box<dyn std::any::Any + Send>),
            },
            None => run.await,
        };
        let outcome = match outcome {
            Ok(Ok(())) => Outcome::Passed,
            Ok(Err(msg)) => Outcome::Failed(msg),
            Err(p) => match p.downcast::<TimeoutMarker>() {
                Ok(t) => Outcome::TimedOut(t.0),
                Err(p) => Outcome::Panicked(p),
            },
        };
        finish(&spec, &env, outcome).await
    });
    drop(rt);
    match outcome {
        Outcome::Passed => {}
        Outcome::Failed(msg) => panic!("{msg}"),
        Outcome::Panicked(p) => std::panic::resume_unwind(p),
        Outcome::TimedOut(t) => panic!(
            "test {} timed out after {} in env {:?}",
            spec.test,
            humantime::format_duration(t),
            spec.env
        ),
    }
}

struct TimeoutMarker(Duration);

/// Reports a failure and tears the env down (or keeps it).
async fn finish(spec: &TestSpec, env: &Env, outcome: Outcome) -> Outcome {
    let failed = !matches!(outcome, Outcome::Passed);
    if failed {
        let mut report = format!("\n==== e2e: test {} failed; ", spec.test);
        report.push_str(&env.describe().await);
        match env.save_logs(&logs_dir(spec)) {
            Ok(dir) => report.push_str(&format!("full logs: {}\n", dir.display())),
            Err(e) => report.push_str(&format!("could not save the full logs: {e}\n")),
        }
        println!("{report}");
    }
    let keep = crate::settings::get().keep;
    if keep == Keep::Always || (keep == Keep::OnFailure && failed) {
        println!("e2e: {}", env.keep());
        let _ = env.close().await;
        return outcome;
    }
    // Teardown is off the test's time: the removal runs in the background while the next tests
    // start, and the process waits for it at exit.
    env.close_in_background().await;
    outcome
}

/// `<target>/e2e-logs/<test path>`: next to the test binary's profile directory.
fn logs_dir(spec: &TestSpec) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).or_else(|| {
        // The test binary is <target>/<profile>/deps/<name>.
        std::env::current_exe().ok()?.ancestors().nth(3).map(PathBuf::from)
    });
    let base = target.unwrap_or_else(std::env::temp_dir);
    base.join("e2e-logs").join(spec.test.replace("::", "."))
}
