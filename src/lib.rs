//! # e2e
//!
//! Run complex workload scenarios in isolation on Docker, from Rust: integration and
//! end-to-end tests, benchmarks, and hand-driven standalone setups.
//!
//! An [`Env`] is a private Docker network and a shared directory; runnables declared in it
//! are containers with named ports, readiness probes, logs streamed to the test output, exec,
//! and faults (stop, kill, pause, disconnect). Everything the framework creates is labelled
//! `dev.e2e.managed=true` and removed by [`Env::close`].
//!
//! ```no_run
//! # async fn scenario() -> e2e::Result<()> {
//! let env = e2e::Env::docker("e2e_example").await?;
//! let prom = env
//!     .runnable("prometheus")
//!     .with_ports([("http", 9090)])
//!     .init(e2e::StartOptions::new("prom/prometheus:v2.42.0")
//!         .readiness(e2e::Probe::http("http", "/-/ready")));
//! e2e::start_and_wait_ready([&prom]).await?;
//! println!("Prometheus UI: http://{}", prom.endpoint("http")?);
//! env.close().await?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

extern crate self as e2e;

pub use e2e_runtime::{
    admin, catalog, image, partition, partition_one_way, start_and_wait_ready, Conditions, Declarations, Endpoint,
    EngineError, EngineErrorKind, Env, EnvProxy, Error, ExecOutput, FutureRunnable, Metrics, Partition, Probe, Result,
    Runnable, RunnableBuilder, StartOptions, Workload, ENV_LABEL, MANAGED_LABEL, OWNER_LABEL, RUNNABLE_LABEL,
};
pub use e2e_runtime::{
    between, composite, equals, equals_amongst_two, greater, greater_amongst_two, greater_or_equal, less,
    less_amongst_two, less_or_equal, metrics, Comparator, Composite, Exposition, Matcher, MetricsOptions,
};

pub mod db;
#[cfg(feature = "monitoring")]
pub use e2e_runtime::monitoring;
pub use e2e_runtime::standalone::{self, run_until_endpoint_hit, run_until_interrupt};

#[doc = include_str!("docs/test.md")]
pub use e2e_macros::test;
#[doc = include_str!("docs/workload.md")]
pub use e2e_macros::workload;

/// Used by the code the macros generate; not public API.
#[doc(hidden)]
pub mod __private {
    // The engine on Docker: named so that it is linked; the runtime finds it by its connector.
    pub use e2e_docker as engine_docker;
    pub use e2e_runtime::__linkme as linkme;
    pub use e2e_runtime::catalog::CATALOG;
    pub use e2e_runtime::testing::{run_test, start_workloads, TestReturn, TestSpec, TESTS};
    pub use e2e_runtime::{SharedDeclaration, SHARED_DECLARATIONS};
}
