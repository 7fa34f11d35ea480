//! An engine reached over SSH, the docker CLI's way: one master connection of the system's ssh
//! client (with its configuration), shared by everything this process asks of that host.
//! - Each connection to the engine's API is `docker system dial-stdio` on the host, run over
//!   the master: the engine's socket as the command's standard input and output.
//! - Each port the engine publishes (on the host's loopback) is reached through a local port
//!   the master forwards to it, so only the SSH port of that host need be reachable.
//!
//! The master runs `cat` on the host with its input held by this process: however this
//! process ends, SIGKILL included, the input closes, `cat` ends and the master with it. The
//! dialled commands end with their ssh clients, which end with this process's pipes.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, FutureExt};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;

use super::{EngineError, EngineErrorKind, EngineResult};

/// The SSH connection of one engine, its master started on the first dial or forward.
#[derive(Debug)]
pub(super) struct Link {
    /// `ssh` arguments naming the host: `[-p <port>] [user@]host`.
    destination: Vec<String>,
    control: PathBuf,
    state: tokio::sync::Mutex<State>,
    /// What the last dialled command said on its standard error (why a dial came to nothing:
    /// no `docker` on the host, no access to its socket).
    said: std::sync::Mutex<String>,
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

impl Link {
    /// For the engine at `ssh://[user@]host[:port]`.
    pub fn new(address: &str) -> Link {
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
        Link { destination, control, state: tokio::sync::Mutex::new(State::default()), said: Default::default() }
    }

    /// A command through the master (or on a connection of its own when the master is gone).
    fn ssh(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.arg("-o").arg(format!("ControlPath={}", self.control.display()));
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        cmd
    }

    /// The local port that reaches `port` on the engine host's loopback.
    pub async fn forward(&self, port: u16) -> EngineResult<u16> {
        let mut state = self.state.lock().await;
        self.master(&mut state).await?;
        if let Some(local) = state.forwarded.get(&port) {
            return Ok(*local);
        }
        let mut last = String::new();
        // A port picked free may be taken before ssh binds it: try another.
        for _ in 0..5 {
            let local = free_port().map_err(|e| failed(format!("picking a local port: {e}")))?;
            match self.forward_from(local, port).await {
                Ok(()) => {
                    state.forwarded.insert(port, local);
                    return Ok(local);
                }
                Err(e) => last = e,
            }
        }
        Err(failed(format!("ssh could not forward a local port to {port} on {}: {last}", self.host())))
    }

    /// Asks the master to forward `local` to `port` on the host's loopback.
    async fn forward_from(&self, local: u16, port: u16) -> Result<(), String> {
        let spec = format!("127.0.0.1:{local}:127.0.0.1:{port}");
        match self.ssh().args(["-O", "forward", "-L", &spec]).args(&self.destination).output().await {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_string()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn host(&self) -> &str {
        self.destination.last().map(String::as_str).unwrap_or_default()
    }

    /// A new connection to the engine's API: `docker system dial-stdio` on the host.
    pub async fn dial(self: Arc<Self>) -> io::Result<DialStdio> {
        {
            let mut state = self.state.lock().await;
            self.master(&mut state).await.map_err(|e| io::Error::new(io::ErrorKind::ConnectionRefused, e))?;
        }
        let mut child = self
            .ssh()
            .args(&self.destination)
            .args(["docker", "system", "dial-stdio"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let (Some(stdin), Some(stdout), Some(mut stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(io::Error::other("ssh gave no pipes"));
        };
        let link = self.clone();
        tokio::spawn(async move {
            let mut said = String::new();
            if stderr.read_to_string(&mut said).await.is_ok() && !said.trim().is_empty() {
                *link.said.lock().unwrap_or_else(|p| p.into_inner()) = said.trim().to_string();
            }
        });
        Ok(DialStdio { _child: child, stdin: Some(TokioIo::new(stdin)), stdout: TokioIo::new(stdout) })
    }

    /// `e` with what the host's ssh commands said, if anything.
    pub fn explain(&self, e: EngineError) -> EngineError {
        let said = self.said.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if said.is_empty() {
            return e;
        }
        EngineError::new(
            e.kind(),
            e.status(),
            format!("{} (ssh {} docker system dial-stdio: {said})", e.message(), self.host()),
        )
    }

    /// Starts the master, or starts it again if it ended (the connection dropped, the host's
    /// sshd restarted): the forwards it held come back on the same local ports, so endpoints
    /// handed out before still answer (from this process's next engine call or forward on).
    async fn master(&self, state: &mut State) -> EngineResult<()> {
        let ended = match state.master.as_mut().map(std::process::Child::try_wait) {
            Some(Ok(None)) => return Ok(()),
            Some(_) => true,
            None => false,
        };
        state.master = Some(self.start_master().await?);
        if ended {
            let forwarded = std::mem::take(&mut state.forwarded);
            for (port, local) in forwarded {
                // A local port taken meanwhile is forwarded anew when next asked for.
                if self.forward_from(local, port).await.is_ok() {
                    state.forwarded.insert(port, local);
                }
            }
        }
        Ok(())
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
            .map_err(|e| failed(format!("running ssh to {}: {e}", self.host())))?;
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
                return Err(failed(format!("ssh to {} ended ({status}): {}", self.host(), err.trim())));
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(format!("ssh to {}: no connection within 20 s", self.host())));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Some(mut master) = self.state.get_mut().master.take() {
            let _ = master.kill();
            let _ = master.wait();
        }
        let _ = std::fs::remove_file(&self.control);
    }
}

/// hyper's way to the engine: each connection it opens is a dial.
#[derive(Clone, Debug)]
pub(super) struct Dialer(pub Arc<Link>);

impl tower_service::Service<hyper::Uri> for Dialer {
    type Response = DialStdio;
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<DialStdio>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: hyper::Uri) -> Self::Future {
        self.0.clone().dial().boxed()
    }
}

/// One connection to the engine: the dialled command's output to read, its input to write.
/// Dropped, the ssh client is killed and the command on the host ends.
#[derive(Debug)]
pub(super) struct DialStdio {
    _child: tokio::process::Child,
    /// None once shut down: closing it is the end of the request stream for the engine.
    stdin: Option<TokioIo<tokio::process::ChildStdin>>,
    stdout: TokioIo<tokio::process::ChildStdout>,
}

impl DialStdio {
    fn stdin(&mut self) -> io::Result<Pin<&mut TokioIo<tokio::process::ChildStdin>>> {
        self.stdin.as_mut().map(Pin::new).ok_or_else(|| io::ErrorKind::BrokenPipe.into())
    }
}

impl hyper::rt::Read for DialStdio {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        hyper::rt::Read::poll_read(Pin::new(&mut self.get_mut().stdout), cx, buf)
    }
}

impl hyper::rt::Write for DialStdio {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        hyper::rt::Write::poll_write(self.get_mut().stdin()?, cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        hyper::rt::Write::poll_flush(self.get_mut().stdin()?, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().stdin = None;
        Poll::Ready(Ok(()))
    }
}

impl hyper_util::client::legacy::connect::Connection for DialStdio {
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        hyper_util::client::legacy::connect::Connected::new()
    }
}

/// A port of 127.0.0.1 free now.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::Link;
    use e2e_runtime::engine::{EngineError, EngineErrorKind};

    #[test]
    fn the_destination_is_the_ssh_clients() {
        assert_eq!(Link::new("ssh://root@10.0.0.2").destination, ["root@10.0.0.2"]);
        assert_eq!(Link::new("ssh://me@build:2222").destination, ["-p", "2222", "me@build"]);
        assert_eq!(Link::new("ssh://build").destination, ["build"]);
    }

    #[test]
    fn a_failed_dial_is_explained_by_what_the_host_said() {
        let link = Link::new("ssh://me@build:2222");
        let e = || EngineError::new(EngineErrorKind::Unavailable, None, "connection closed");
        assert_eq!(link.explain(e()).message(), "connection closed", "nothing said, nothing added");
        *link.said.lock().unwrap() = "bash: docker: command not found".to_string();
        let explained = link.explain(e());
        assert_eq!(explained.kind(), EngineErrorKind::Unavailable);
        assert_eq!(
            explained.message(),
            "connection closed (ssh me@build docker system dial-stdio: bash: docker: command not found)"
        );
    }
}
