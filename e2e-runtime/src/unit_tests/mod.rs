//! Unit tests of the runtime's logic on the in-memory engine (`engine::fake`): no Docker.
//! The suites against the real engine (tests/ of the workspace) stay the proof that it works
//! there; these pin down the decisions the runtime takes in between.

use std::sync::Arc;

use crate::engine::fake::Fake;
use crate::env::Env;

mod cleanup;
mod errors;
mod files;
mod fuzz;
mod monitoring;
mod readiness;
mod retry;
mod runnable;
mod shared;

/// An image every fake env can run.
const IMAGE: &str = "fake/service:1";

/// The engine's name of resource `what` of env `env` of this run: `<env>-<what>-<run tag>`.
fn named(env: &str, what: &str) -> String {
    format!("{env}-{what}-{}", crate::owner::current().tag())
}

/// A fake engine with [`IMAGE`], and an env on it. Env names are machine-wide (a lock file):
/// each test names its own.
async fn env(name: &str) -> (Arc<Fake>, Env) {
    let fake = Fake::new();
    fake.image(IMAGE);
    let env = Env::on(fake.clone(), name).await.expect("an env on the fake engine");
    (fake, env)
}
