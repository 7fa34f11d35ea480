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
    // One write per line: processes append to the file at once, and `writeln!` writes in pieces.
    f.write_all(format!("{label} {what} {now}\n").as_bytes()).unwrap();
}

/// Marks the start and end of a test body that takes `ms` milliseconds.
pub async fn timed(label: &str, ms: u64) {
    mark(label, "start");
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    mark(label, "end");
}

/// Marks the start, then waits (up to a minute) until `other` has started too: it can only
/// return if both bodies run at the same time, whatever the machine's load does to start times.
pub async fn meet(label: &str, other: &str) {
    mark(label, "start");
    let Ok(path) = std::env::var("E2E_SCENARIO_TIMES") else { return };
    let started = format!("{other} start ");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::fs::read_to_string(&path).unwrap_or_default().lines().any(|l| l.starts_with(&started)) {
        assert!(std::time::Instant::now() < deadline, "{other} never ran while {label} did");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    mark(label, "end");
}
