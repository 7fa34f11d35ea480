//! Ports of an engine reached over SSH. The engine publishes them on its host's loopback, and
//! OpenSSH's connection sharing forwards a local port of this process to each: one master
//! connection (the system's ssh client, with its configuration, as bollard's transport uses),
//! so only the SSH port of that host need be reachable from the test.
//!
//! The master runs `cat` on the host with its input held by this process: however this
//! process ends, SIGKILL included, the input closes, `cat` ends and the master with it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::{EngineError, EngineErrorKind, EngineResult};

/// The forwarder of one engine, its master started on the first forward.
#[derive(Debug)]
pub(super) struct Forwarder {
    /// `ssh` arguments naming the host: `[-p <port>] [user@]host`.
    destination: Vec<String>,
    control: PathBuf,
    state: tokio::sync::Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    master: Option<std::process::Child>,
    /// Engine-host port -> local port.
    forwarded: HashMap<u16, u16>,
}

fn failed(m: String) -> EngineError {
    EngineError::new(EngineErrorKind::Unavailable, None, m)
}

impl Forwarder {
    /// For the engine at `ssh://[user@]host[:port]`.
    pub fn new(address: &str) -> Forwarder {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let rest = address.strip_prefix("ssh://").unwrap_or(address);
        let authority = rest.split('/').next().unwrap_or(rest);
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (host, port) = match hostport.strip_prefix('[') {
            Some(v6) => match v6.split_once("]:") {
                Some((h, p)) => (h, Some(p)),
                None => (v6.trim_end_matches(']'), None),
            },
            None => match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            },
        };
        let mut destination = Vec::new();
        if let Some(p) = port {
            destination.extend(["-p".to_string(), p.to_string()]);
        }
        destination.push(match user {
            Some(u) => format!("{u}@{host}"),
            None => host.to_string(),
        });
        // A socket path must be short (108 bytes): the temporary directory, by pid and count.
        let n = N.fetch_add(1, Ordering::Relaxed);
        let control = std::env::temp_dir().join(format!("e2e-ssh-{}-{n}.sock", std::process::id()));
        Forwarder { destination, control, state: tokio::sync::Mutex::new(State::default()) }
    }

    fn ssh(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.arg("-o").arg(format!("ControlPath={}", self.control.display()));
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        cmd
    }

    /// The local port that reaches `port` on the engine host's loopback.
    pub async fn forward(&self, port: u16) -> EngineResult<u16> {
        let mut state = self.state.lock().await;
        if let Some(local) = state.forwarded.get(&port) {
            return Ok(*local);
        }
        if state.master.is_none() {
            state.master = Some(self.start_master().await?);
        }
        let mut last = String::new();
        // A port picked free may be taken before ssh binds it: try another.
        for _ in 0..5 {
            let local = free_port().map_err(|e| failed(format!("picking a local port: {e}")))?;
            let spec = format!("127.0.0.1:{local}:127.0.0.1:{port}");
            let out = self.ssh().args(["-O", "forward", "-L", &spec]).args(&self.destination).output().await;
            match out {
                Ok(o) if o.status.success() => {
                    state.forwarded.insert(port, local);
                    return Ok(local);
                }
                Ok(o) => last = String::from_utf8_lossy(&o.stderr).trim().to_string(),
                Err(e) => last = e.to_string(),
            }
        }
        Err(failed(format!("ssh could not forward a local port to {port} on {}: {last}", self.host())))
    }

    fn host(&self) -> &str {
        self.destination.last().map(String::as_str).unwrap_or_default()
    }

    async fn start_master(&self) -> EngineResult<std::process::Child> {
        let _ = std::fs::remove_file(&self.control);
        let mut child = std::process::Command::new("ssh")
            .args(["-o", "ControlMaster=yes", "-o", "ControlPersist=no", "-o", "BatchMode=yes"])
            .arg("-o")
            .arg(format!("ControlPath={}", self.control.display()))
            .args(&self.destination)
            .arg("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed(format!("running ssh for port forwarding to {}: {e}", self.host())))?;
        let started = Instant::now();
        loop {
            let check = self.ssh().args(["-O", "check"]).args(&self.destination).output().await;
            if check.is_ok_and(|o| o.status.success()) {
                return Ok(child);
            }
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                return Err(failed(format!(
                    "ssh to {} for port forwarding ended ({status}): {}",
                    self.host(),
                    err.trim()
                )));
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(format!("ssh to {} for port forwarding: no connection within 20 s", self.host())));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        if let Some(mut master) = self.state.get_mut().master.take() {
            let _ = master.kill();
            let _ = master.wait();
        }
        let _ = std::fs::remove_file(&self.control);
    }
}

/// A port of 127.0.0.1 free now.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::Forwarder;

    #[test]
    fn the_destination_is_the_ssh_clients() {
        assert_eq!(Forwarder::new("ssh://root@10.0.0.2").destination, ["root@10.0.0.2"]);
        assert_eq!(Forwarder::new("ssh://me@build:2222").destination, ["-p", "2222", "me@build"]);
        assert_eq!(Forwarder::new("ssh://build").destination, ["build"]);
    }
}
