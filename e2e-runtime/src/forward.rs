//! Host endpoints served by this process: a listener on `127.0.0.1:<free port>` per port that
//! relays each connection to the container's own address.
//!
//! With a local engine the host reaches containers' addresses directly, so the engine's port
//! publishing (a `docker-proxy` process and NAT rules per port, about 0.1 s of engine CPU per
//! port to set up and tear down on a 2-core machine) is work a test pays for nothing. A relay
//! in the test process costs no engine work, binds loopback only, as publishing did, and lives
//! as long as the runnable's container, or the process. [`crate::StartOptions::publish_ports`]
//! and `E2E_PUBLISH_PORTS=1` ask the engine to publish instead, for addresses that must outlive
//! the process (`E2E_KEEP` implies it).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A relay from a loopback port to one container port. Stops accepting when dropped.
#[derive(Debug)]
pub(crate) struct Relay {
    port: u16,
    /// Where new connections go: changed when the container restarts or reconnects, so the
    /// host endpoint stays the same.
    target: Arc<Mutex<SocketAddr>>,
    task: JoinHandle<()>,
}

impl Relay {
    /// Listens on a free loopback port and relays every connection to `target`.
    pub(crate) async fn start(target: SocketAddr) -> std::io::Result<Relay> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let target = Arc::new(Mutex::new(target));
        let current = target.clone();
        let task = crate::task::spawn(async move {
            loop {
                let mut inbound = match listener.accept().await {
                    Ok((conn, _)) => conn,
                    // Out of file descriptors, say: don't spin.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let target = *current.lock().unwrap();
                crate::task::spawn(async move {
                    // Refused by the container: the client sees its connection closed, as
                    // with the engine's proxy.
                    let Ok(mut outbound) = TcpStream::connect(target).await else { return };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
            }
        });
        Ok(Relay { port, target, task })
    }

    /// Sends new connections to `target` from now on.
    pub(crate) fn retarget(&self, target: SocketAddr) {
        *self.target.lock().unwrap() = target;
    }

    /// The loopback port it listens on.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether the engine must publish ports itself: asked for by `E2E_PUBLISH_PORTS`, or implied
/// by `E2E_KEEP` (a kept env is used after this process is gone).
pub(crate) fn publish_by_engine_asked() -> bool {
    crate::settings::get().publish_by_engine()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn relays_both_ways_and_closes_when_the_target_refuses() {
        let echo = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let target = echo.local_addr().unwrap();
        crate::task::spawn(async move {
            let (mut c, _) = echo.accept().await.unwrap();
            let mut buf = [0; 5];
            c.read_exact(&mut buf).await.unwrap();
            c.write_all(&buf).await.unwrap();
        });
        let relay = Relay::start(target).await.unwrap();
        let mut c = TcpStream::connect(("127.0.0.1", relay.port())).await.unwrap();
        c.write_all(b"hello").await.unwrap();
        let mut buf = [0; 5];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");

        // A target nobody listens on: the connection is accepted, then closed.
        let closed = TcpListener::bind(("127.0.0.1", 0)).await.unwrap().local_addr().unwrap();
        let relay = Relay::start(closed).await.unwrap();
        let mut c = TcpStream::connect(("127.0.0.1", relay.port())).await.unwrap();
        assert_eq!(c.read(&mut buf).await.unwrap(), 0);

        // Retargeted: the same loopback port reaches the new target.
        let echo = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        relay.retarget(echo.local_addr().unwrap());
        let _c = TcpStream::connect(("127.0.0.1", relay.port())).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), echo.accept()).await.unwrap().unwrap();

        // Dropped: it no longer accepts.
        let port = relay.port();
        drop(relay);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err());
    }
}
