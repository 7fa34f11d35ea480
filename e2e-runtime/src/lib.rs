//! The runtime of e2e: Docker environments, runnables, readiness probes, logs and images.
//!
//! Most users depend on the `e2e` facade crate, which re-exports this one.
#![warn(missing_docs, missing_debug_implementations)]

pub mod catalog;
mod docker;
mod env;
mod error;
mod forward;
mod hooks;
pub mod image;
mod logs;
mod netpool;
pub mod metrics;
pub mod monitoring;
mod owner;
mod probe;
mod reaper;
mod runnable;
mod settings;
pub mod standalone;
#[doc(hidden)]
pub mod testing;

#[doc(hidden)]
pub use linkme as __linkme;

pub use catalog::Workload;
pub use env::Env;
pub use error::{Error, Result};
pub use owner::{ENV_LABEL, MANAGED_LABEL, OWNER_LABEL, RUNNABLE_LABEL};
pub use metrics::{between, composite, equals, equals_amongst_two, greater, greater_amongst_two, greater_or_equal, less, less_amongst_two, less_or_equal, Comparator, Composite, Exposition, Matcher, MetricsOptions};
pub use probe::Probe;
pub use runnable::{
    start_and_wait_ready, ExecOutput, FutureRunnable, Metrics, Runnable, RunnableBuilder, StartOptions,
};
