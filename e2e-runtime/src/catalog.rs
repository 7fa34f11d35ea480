//! The catalog of workloads declared with `e2e::workload!` and linked into this binary.
//!
//! ```no_run
//! for w in e2e_runtime::catalog::iter() {
//!     println!("{:<20} {:<45} {:?}", w.name, w.image, w.ports);
//! }
//! ```

use crate::env::Env;
use crate::error::{Error, Result};
use crate::runnable::Runnable;

/// What the catalog knows of a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkloadInfo {
    /// Its type name.
    pub name: &'static str,
    /// Its image.
    pub image: &'static str,
    /// Its named ports.
    pub ports: &'static [(&'static str, u16)],
    /// The port serving Prometheus metrics, if any.
    pub metrics_port: Option<&'static str>,
    /// Its doc comment.
    pub doc: &'static str,
    /// The module that declares it.
    pub module: &'static str,
}

/// Every workload declared with `workload!` in the crates linked into this binary.
#[doc(hidden)]
#[linkme::distributed_slice]
pub static CATALOG: [WorkloadInfo];

/// The workloads linked into this binary, sorted by name (then module).
pub fn iter() -> Vec<&'static WorkloadInfo> {
    let mut all: Vec<_> = CATALOG.iter().collect();
    all.sort_by_key(|w| (w.name, w.module));
    all
}

/// The workload of this name (`Redis`), or of this path (`e2e::db::Redis`) when several
/// modules declare one name; the error lists the known ones.
pub fn get(name: &str) -> Result<&'static WorkloadInfo> {
    let path = |w: &WorkloadInfo| format!("{}::{}", w.module, w.name);
    let found: Vec<_> = iter().into_iter().filter(|w| w.name == name || path(w) == name).collect();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(Error::UnknownWorkload {
            name: name.to_string(),
            known: iter().iter().map(|w| w.name.to_string()).collect(),
        }),
        many => Err(Error::UnknownWorkload {
            name: format!("{name} (ambiguous: say which)"),
            known: many.iter().map(|w| path(w)).collect(),
        }),
    }
}

/// A workload type: a runnable with its image, ports and readiness decided in advance. Declare
/// one with `e2e::workload!`; take it as a parameter of an `#[e2e::test]` to have it started and
/// ready before the test body runs.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a workload",
    label = "#[e2e::test] parameters are `&e2e::Env` or workload types",
    note = "declare workloads with `e2e::workload!`; a workload with parameters needs defaults for all of them to be a test parameter"
)]
pub trait Workload: Sized {
    /// Declares the workload in `env` under `name`, with its default parameters.
    fn declare(env: &Env, name: &str) -> Self;
    /// Its runnable.
    fn runnable(&self) -> &Runnable;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[linkme::distributed_slice(CATALOG)]
    static ZED: WorkloadInfo =
        WorkloadInfo { name: "Zed", image: "zed:1", ports: &[("http", 80)], metrics_port: None, doc: "", module: "t" };

    #[linkme::distributed_slice(CATALOG)]
    static ALPHA: WorkloadInfo = WorkloadInfo {
        name: "Alpha",
        image: "alpha:1",
        ports: &[],
        metrics_port: Some("http"),
        doc: "First.",
        module: "t",
    };

    #[test]
    fn lists_sorted_and_finds_by_name() {
        let names: Vec<_> = iter().iter().map(|w| w.name).collect();
        assert_eq!(names, ["Alpha", "Zed"]);
        assert_eq!(get("Zed").unwrap().image, "zed:1");
        assert_eq!(get("t::Alpha").unwrap().name, "Alpha");
        let e = get("Zedd").unwrap_err().to_string();
        assert!(e.contains("\"Zedd\"") && e.contains("Alpha, Zed"), "{e}");
    }
}
