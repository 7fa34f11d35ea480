//! Who owns a resource: the run (process) that created it, and whether that run is still alive.
//!
//! Every resource carries an owner label `<hostname>/<boot id>/<pid>/<process start time>`.
//! A run on the same host (same hostname and boot) is alive when a process with that pid exists
//! and started at that time; pid reuse after death gives another start time. A run on another
//! host (a shared remote engine) cannot be checked and so is always treated as alive.

use std::sync::OnceLock;

/// Label every resource of the framework carries.
pub const MANAGED_LABEL: &str = "dev.e2e.managed";
/// Label naming the env of a resource.
pub const ENV_LABEL: &str = "dev.e2e.env";
/// Label naming the run that created a resource.
pub const OWNER_LABEL: &str = "dev.e2e.owner";
/// Label naming the runnable of a container.
pub const RUNNABLE_LABEL: &str = "dev.e2e.runnable";

/// This process's owner id.
pub fn current() -> &'static str {
    static OWNER: OnceLock<String> = OnceLock::new();
    OWNER.get_or_init(|| {
        let pid = std::process::id();
        format!("{}/{}", host_id(), pid_and_start(pid).unwrap_or_else(|| format!("{pid}/0")))
    })
}

fn host_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into());
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().chars().take(8).collect::<String>())
        .unwrap_or_else(|_| "noboot".into());
    format!("{host}/{boot}")
}

/// `<pid>/<start time in clock ticks since boot>` of a live process.
fn pid_and_start(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    // Field 22 (starttime) is the 20th after the command name.
    let start = rest.split_whitespace().nth(19)?;
    Some(format!("{pid}/{start}"))
}

/// Whether the run with this owner id is known to be dead. `false` when it is alive or
/// cannot be checked (another host, or an id this version does not understand).
pub fn is_dead(owner: &str) -> bool {
    let Some((host, rest)) = owner.rsplit_once('/').and_then(|(a, start)| {
        let (host, pid) = a.rsplit_once('/')?;
        Some((host, (pid, start)))
    }) else {
        return false;
    };
    if host != host_id() {
        return false;
    }
    let (pid, start) = rest;
    let Ok(pid) = pid.parse::<u32>() else { return false };
    match pid_and_start(pid) {
        None => true,
        Some(live) => live != format!("{pid}/{start}"),
    }
}

/// This run's directory name under the runs directory: `<pid>.<start time>`.
pub fn dir_name() -> String {
    let pid = std::process::id();
    pid_and_start(pid).unwrap_or_else(|| format!("{pid}/0")).replace('/', ".")
}

/// Whether a run directory named by [`dir_name`] belongs to a dead run of this host.
pub fn dir_is_dead(name: &str) -> bool {
    let Some((pid, start)) = name.split_once('.') else { return false };
    is_dead(&format!("{}/{pid}/{start}", host_id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive() {
        assert!(!is_dead(current()));
        assert!(current().contains(&format!("/{}/", std::process::id())));
    }

    #[test]
    fn a_gone_process_is_dead() {
        let me = current();
        let (prefix, _) = me.rsplit_once('/').unwrap();
        let (host, _) = prefix.rsplit_once('/').unwrap();
        // pid_max is at most 2^22: this pid cannot exist.
        assert!(is_dead(&format!("{host}/99999999/1")));
        // Our pid with another start time is a dead, reused pid.
        assert!(is_dead(&format!("{host}/{}/1", std::process::id())));
    }

    #[test]
    fn other_hosts_and_garbage_are_not_dead() {
        assert!(!is_dead("elsewhere/abcd1234/1/1"));
        assert!(!is_dead("garbage"));
    }
}
