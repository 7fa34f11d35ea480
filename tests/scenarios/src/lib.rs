//! Workloads of the scenario tests.

e2e::workload! {
    /// A container that only sleeps.
    pub Sleeper {
        image: "busybox:1.35",
        command: ["sleep", "3600"],
    }
}

/// Appends `<label> <start|end> <unix micros>` to the file `E2E_SCENARIO_TIMES` names.
pub fn mark(label: &str, what: &str) {
    use std::io::Write;
    let Ok(path) = std::env::var("E2E_SCENARIO_TIMES") else { return };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros();
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    writeln!(f, "{label} {what} {now}").unwrap();
}

/// Marks the start and end of a test body that takes `ms` milliseconds.
pub async fn timed(label: &str, ms: u64) {
    mark(label, "start");
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    mark(label, "end");
}
