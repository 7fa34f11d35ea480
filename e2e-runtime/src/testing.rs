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
    /// `module_path!()` of the generated test: `<crate>::<module path>::<fn>`.
    pub test: &'static str,
    /// The time allowed to the body (workload start included; waiting for the env name is not).
    pub timeout: Option<Duration>,
    /// Whether the env is shared by the binary's tests that name it (`shared`).
    pub shared: bool,
}

/// Every `#[e2e::test]` of the binary, so that a test can tell whether another one names its
/// env differently (shared there, not here).
#[linkme::distributed_slice]
pub static TESTS: [TestSpec];

/// The error of a test whose env another test of the binary names shared where it does not (or
/// the other way round): they would mix.
fn sharing_conflict(spec: &TestSpec) -> Option<String> {
    let other = TESTS.iter().find(|t| t.env == spec.env && t.shared != spec.shared)?;
    let (shared, alone) = if spec.shared { (spec, other) } else { (other, spec) };
    Some(format!(
        "env {:?} is shared by {} but not by {}: a shared env is one env for all the tests that name it, \
         so every test of that env says `shared`, or none does",
        spec.env,
        shared.name(),
        alone.name()
    ))
}

impl TestSpec {
    /// The test's name as libtest prints and filters it: `<module path>::<fn>::<env>`, without
    /// the crate.
    pub fn name(&self) -> String {
        let path = self.test.split_once("::").map_or("", |(_, path)| path);
        format!("{path}::{}", self.env)
    }

    /// The crate (the test binary) the test is in.
    fn krate(&self) -> &str {
        self.test.split("::").next().unwrap_or(self.test)
    }
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

/// Starts the test's workloads in parallel and waits until all are ready. In a shared env each
/// is started once, by the first test that needs it; the others wait for it to be ready.
pub async fn start_workloads(runnables: &[&Runnable]) -> Result<(), String> {
    if let Some(sharing) = runnables.first().and_then(|r| r.sharing()) {
        return crate::shared::start(sharing, runnables).await;
    }
    if runnables.first().is_some_and(|r| r.in_attached_env()) {
        // The keeper started them all, and waited until they were ready.
        return match runnables.iter().find(|r| !r.adopted()) {
            Some(r) => Err(format!("runnable {:?} is not in the keeper's shared env", r.name())),
            None => Ok(()),
        };
    }
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
///
/// `#[track_caller]`: a failure is reported at the user's test (where the attribute put this
/// call), not here.
#[track_caller]
pub fn run_test(spec: TestSpec, body: impl FnOnce(Env) -> TestBody) {
    // Generic only here: the rest is compiled once, in the runtime, rather than again in the
    // user's crate for each test.
    run_boxed(spec, Box::new(body), std::panic::Location::caller())
}

fn run_boxed(spec: TestSpec, body: Box<dyn FnOnce(Env) -> TestBody + '_>, at: &'static std::panic::Location<'static>) {
    // A runtime per test: its threads inherit the test's output capture, so container logs
    // land in this test's output.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime can be built");
    let span = tracing::info_span!(target: "e2e", "test", test = %spec.name(), env = spec.env);
    let outcome = rt.block_on(tracing::Instrument::instrument(
        async move {
            if let Some(conflict) = sharing_conflict(&spec) {
                return Outcome::Failed(conflict);
            }
            let env = if spec.shared {
                let env = match crate::keeper::run_id() {
                    Some(run) => crate::keeper::attach(spec.env, &run).await,
                    None => crate::shared::env(spec.env).await,
                };
                match env {
                    Ok(env) => env,
                    Err(e) => return Outcome::Failed(e),
                }
            } else {
                match Env::docker(spec.env).await {
                    Ok(env) => env,
                    Err(e) => return Outcome::Failed(format!("creating env {:?}: {e:?}", spec.env)),
                }
            };
            // The test's name, for messages about shared declarations.
            let run = crate::registry::TEST.scope(spec.name(), AssertUnwindSafe(body(env.clone())).catch_unwind());
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
        },
        span,
    ));
    drop(rt);
    match outcome {
        Outcome::Passed => {}
        Outcome::Failed(msg) => fail(&spec, at, msg),
        Outcome::Panicked(p) => std::panic::resume_unwind(p),
        Outcome::TimedOut(t) => fail(
            &spec,
            at,
            format!("test {} timed out after {} in env {:?}", spec.name(), humantime::format_duration(t), spec.env),
        ),
    }
}

/// Fails the test with `msg`, located at the user's test. Not `panic!`: the panic hook would add
/// a backtrace of the framework, which says nothing about an error that the body returned or
/// that setting the env up met. The payload is the message, for `#[should_panic(expected)]`.
fn fail(spec: &TestSpec, at: &std::panic::Location<'_>, msg: String) -> ! {
    // Always on stderr (the test's failure output), and as an event for a subscriber.
    tracing::error!(target: "e2e", test = %spec.name(), at = %at, "{msg}");
    eprintln!("e2e: test {} failed at {at}:\n{msg}", spec.name());
    std::panic::resume_unwind(Box::new(msg))
}

struct TimeoutMarker(Duration);

/// Reports a failure and tears the env down (or keeps it).
async fn finish(spec: &TestSpec, env: &Env, outcome: Outcome) -> Outcome {
    let failed = !matches!(outcome, Outcome::Passed);
    if failed {
        let mut report = format!("\n==== e2e: test {} failed; ", spec.name());
        report.push_str(&env.describe().await);
        match env.save_logs(&logs_dir(spec)) {
            Ok(dir) => report.push_str(&format!("full logs: {}\n", dir.display())),
            Err(e) => report.push_str(&format!("could not save the full logs: {e}\n")),
        }
        println!("{report}");
    }
    if spec.shared {
        // Closed (or kept, after a failure, as E2E_KEEP says) when the process exits.
        if failed {
            crate::shared::failed(spec.env);
        }
        return outcome;
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

/// `<target>/e2e-logs/<crate>/<test name>`, next to the test binary's profile directory: the
/// name libtest prints, under the crate, as two test binaries may hold tests of the same name.
fn logs_dir(spec: &TestSpec) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).or_else(|| {
        // The test binary is <target>/<profile>/deps/<name>.
        std::env::current_exe().ok()?.ancestors().nth(3).map(PathBuf::from)
    });
    let base = target.unwrap_or_else(std::env::temp_dir);
    base.join("e2e-logs").join(spec.krate()).join(spec.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tests_are_named_as_libtest_names_them() {
        let spec = |test| TestSpec { env: "e2e_example", test, timeout: None, shared: false };
        assert_eq!(spec("unit_test_use::global_view").name(), "global_view::e2e_example");
        assert_eq!(spec("my_crate::a::b::t").name(), "a::b::t::e2e_example");
        assert_eq!(spec("my_crate::a::b::t").krate(), "my_crate");
        assert!(logs_dir(&spec("outcomes::returns_err")).ends_with("e2e-logs/outcomes/returns_err::e2e_example"));
    }
}
