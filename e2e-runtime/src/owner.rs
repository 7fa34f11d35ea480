//! Who owns a resource: the run (process) that created it, and whether that run is still alive.
//!
//! Every resource carries an owner label `<hostname>/<boot id>/<pid>/<process start time>`.
//! A run on the same host (same hostname and boot) is alive when a process with that pid exists
//! and started at that time; pid reuse after death gives another start time. A run on another
//! host (a shared remote engine) cannot be checked and so is always treated as alive.

use std::fmt;
use std::sync::OnceLock;

/// Label every resource of the framework carries.
pub const MANAGED_LABEL: &str = "dev.e2e.managed";
/// Label naming the env of a resource.
pub const ENV_LABEL: &str = "dev.e2e.env";
/// Label naming the run that created a resource.
pub const OWNER_LABEL: &str = "dev.e2e.owner";
/// Label naming the runnable of a container.
pub const RUNNABLE_LABEL: &str = "dev.e2e.runnable";

/// A run: the host (name and boot) and the process (pid and start time) that created a
/// resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Owner {
    /// `<hostname>/<boot id prefix>`; may itself hold no `/` only if the label was foreign.
    host: String,
    pid: u32,
    /// Start time in clock ticks since boot.
    start: u64,
}

impl Owner {
    /// Parses an owner label; `None` for a label this version does not understand.
    pub fn parse(label: &str) -> Option<Owner> {
        let (rest, start) = label.rsplit_once('/')?;
        let (host, pid) = rest.rsplit_once('/')?;
        if host.is_empty() {
            return None;
        }
        Some(Owner { host: host.to_string(), pid: pid.parse().ok()?, start: start.parse().ok()? })
    }

    /// A short tag of the run (8 hex digits of a hash of its label), part of the names of its
    /// containers, volumes and networks: two runs sharing an engine (two machines, or two CI
    /// jobs in containers on one host) never collide on a name, even under the same env name.
    pub fn tag(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.to_string().hash(&mut h);
        format!("{:08x}", h.finish() as u32)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// This run's directory name under the runs directory: `<pid>.<start time>`.
    pub fn dir_name(&self) -> String {
        format!("{}.{}", self.pid, self.start)
    }

    /// The run of this host whose directory is named so, if the name is one.
    pub fn from_dir_name(name: &str) -> Option<Owner> {
        let (pid, start) = name.split_once('.')?;
        Some(Owner { host: host_id().to_string(), pid: pid.parse().ok()?, start: start.parse().ok()? })
    }

    /// Whether the run is of this machine (this host, since its last boot).
    pub fn is_of_this_machine(&self) -> bool {
        self.host == host_id()
    }

    /// Whether the run is known to be dead: on this host, and its process gone (or its pid
    /// reused). `false` when it lives or cannot be checked (another host).
    pub fn is_dead(&self) -> bool {
        if self.host != host_id() {
            return false;
        }
        match start_time(self.pid) {
            None => true,
            Some(start) => start != self.start,
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.host, self.pid, self.start)
    }
}

/// This process's run.
pub(crate) fn current() -> &'static Owner {
    static OWNER: OnceLock<Owner> = OnceLock::new();
    OWNER.get_or_init(|| {
        let pid = std::process::id();
        Owner { host: host_id().to_string(), pid, start: start_time(pid).unwrap_or(0) }
    })
}

fn host_id() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown-host".into());
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().chars().take(8).collect::<String>())
            .unwrap_or_else(|_| "noboot".into());
        format!("{host}/{boot}")
    })
}

/// The start time (clock ticks since boot) of a live process.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    // Field 22 (starttime) is the 20th after the command name.
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A label this version does not understand is never dead.
    fn is_dead(label: &str) -> bool {
        Owner::parse(label).is_some_and(|o| o.is_dead())
    }

    #[test]
    fn this_process_is_alive() {
        assert!(!current().is_dead());
        assert!(current().to_string().contains(&format!("/{}/", std::process::id())));
        assert_eq!(Owner::parse(&current().to_string()).as_ref(), Some(current()));
    }

    #[test]
    fn a_gone_process_is_dead() {
        let host = host_id();
        // pid_max is at most 2^22: this pid cannot exist.
        assert!(is_dead(&format!("{host}/99999999/1")));
        // Our pid with another start time is a dead, reused pid.
        assert!(is_dead(&format!("{host}/{}/1", std::process::id())));
    }

    #[test]
    fn other_hosts_and_garbage_are_not_dead() {
        assert!(!is_dead("elsewhere/abcd1234/1/1"));
        assert!(!is_dead("garbage"));
        assert!(!is_dead("a/b/notapid/1"));
        assert_eq!(Owner::parse("/1/2"), None);
    }

    #[test]
    fn runs_have_distinct_tags() {
        let a = Owner::parse("one/abcd1234/42/7").unwrap();
        let b = Owner::parse("two/abcd1234/42/7").unwrap();
        assert_ne!(a.tag(), b.tag());
        assert_eq!(a.tag(), a.clone().tag());
        assert_eq!(current().tag().len(), 8);
    }

    #[test]
    fn directory_names_round_trip() {
        let me = current();
        assert_eq!(Owner::from_dir_name(&me.dir_name()).as_ref(), Some(me));
        assert_eq!(Owner::from_dir_name("locks"), None);
        assert!(Owner::from_dir_name("99999999.1").unwrap().is_dead());
    }
}
