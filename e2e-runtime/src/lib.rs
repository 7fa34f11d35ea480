//! The runtime of e2e: Docker environments, runnables, readiness probes, logs and images.
//!
//! Most users depend on the `e2e` facade crate, which re-exports this one.
//!
//! Where things are: `engine/` is the only door to the container engine (the interface; Docker's
//! implementation is the crate `e2e-docker`, the only user of bollard, which the `e2e` facade
//! links; `engine/fake` is the unit tests' engine); `env` and `runnable` hold the
//! scenario's state and speak to the engine through that door; `cleanup/` removes what runs
//! leave, however they end, without knowing of `Env`; `monitoring` learns of instrumented
//! runnables from the env's announcements; `owner` and `paths` say who owns a resource and
//! where a run keeps its files.
#![warn(missing_docs, missing_debug_implementations)]

pub mod admin;
pub mod catalog;
mod cleanup;
mod conditions;
mod delay;
mod endpoint;
/// The engine interface, for the crates that implement it (`e2e-docker`); not public API.
#[doc(hidden)]
pub mod engine;
mod env;
mod error;
mod forward;
mod http;
pub mod image;
mod keeper;
mod libs;
mod logs;
pub mod metrics;
#[cfg(feature = "monitoring")]
pub mod monitoring;
mod owner;
mod partition;
mod paths;
mod probe;
mod proxy;
mod registry;
mod runnable;
mod say;
mod settings;
mod shared;
pub mod standalone;
mod task;
#[doc(hidden)]
pub mod testing;

#[doc(hidden)]
pub use linkme as __linkme;

pub use catalog::Workload;
pub use conditions::Conditions;
pub use endpoint::Endpoint;
pub use env::Env;
pub use error::{Declarations, EngineError, EngineErrorKind, Error, Result};
pub use keeper::{SharedDeclaration, SHARED_DECLARATIONS};
pub use metrics::{
    between, composite, equals, equals_amongst_two, greater, greater_amongst_two, greater_or_equal, less,
    less_amongst_two, less_or_equal, Comparator, Composite, Exposition, Matcher, MetricsOptions,
};
pub use owner::{ENV_LABEL, MANAGED_LABEL, OWNER_LABEL, RUNNABLE_LABEL};
pub use partition::{partition, partition_one_way, Partition};
pub use probe::Probe;
pub use proxy::EnvProxy;
pub use runnable::{
    start_and_wait_ready, ExecOutput, FutureRunnable, Metrics, Runnable, RunnableBuilder, StartOptions,
};

#[cfg(test)]
mod unit_tests;
