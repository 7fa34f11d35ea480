//! Standalone use: keep an env up for a person to look at, until they say stop.
//!
//! ```no_run
//! # async fn f() -> e2e_runtime::Result<()> {
//! let env = e2e_runtime::Env::docker("playground").await?;
//! // ... start runnables, print their addresses ...
//! e2e_runtime::standalone::run_until_endpoint_hit(&env).await?; // or run_until_interrupt
//! env.close().await
//! # }
//! ```
//!
//! Both return when the process gets Ctrl-C (SIGINT), SIGTERM or SIGHUP (its terminal gone).
//! The framework's own signal handler removes the run's resources on those signals as well,
//! whatever the program does next, so an interrupted standalone run never leaves containers
//! behind. [`StopEndpoint`] serves the stop URL on a port of your choice, and hands out its URL
//! before waiting.

use std::convert::Infallible;
use std::net::SocketAddr;

use crate::env::Env;
use crate::error::{Error, Result};

/// Waits until the process is interrupted (Ctrl-C, SIGTERM or SIGHUP), saying so first. Then
/// close the env.
pub async fn run_until_interrupt(env: &Env) -> Result<()> {
    println!("env {:?} is up: press Ctrl-C to stop it and remove everything", env.name());
    let signal = interrupted().await;
    println!("{signal}: removing env {:?}", env.name());
    Ok(())
}

/// Serves a stop URL on 127.0.0.1 (a free port), prints it, and waits until it is requested
/// (any path, any method), or until the process is interrupted. Then close the env.
/// [`StopEndpoint`] does the same on a port of your choice.
pub async fn run_until_endpoint_hit(env: &Env) -> Result<()> {
    StopEndpoint::bind(0).await?.wait(env).await.map(|_| ())
}

/// A stop URL on 127.0.0.1: bound first (its [`StopEndpoint::url`] can be handed to a script
/// or a person), then [`StopEndpoint::wait`]ed on.
///
/// ```no_run
/// # async fn f(env: &e2e_runtime::Env) -> e2e_runtime::Result<()> {
/// use e2e_runtime::standalone::StopEndpoint;
/// let stop = StopEndpoint::bind(8099).await?; // 0: any free port
/// std::fs::write("stop-url.txt", stop.url()).unwrap();
/// let why = stop.wait(env).await?; // Stopped::Requested, or Stopped::Signal("SIGHUP")...
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct StopEndpoint {
    listener: tokio::net::TcpListener,
    address: SocketAddr,
}

/// What ended a standalone wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The stop URL was requested.
    Requested,
    /// The process got this signal: `"SIGINT"`, `"SIGTERM"` or `"SIGHUP"`.
    Signal(&'static str),
}

impl StopEndpoint {
    /// Listens on `127.0.0.1:<port>` (`0`: a free port); a port in use is an error naming it.
    pub async fn bind(port: u16) -> Result<StopEndpoint> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| Error::io(format!("listening for the stop URL on 127.0.0.1:{port}"), e))?;
        let address = listener.local_addr().map_err(|e| Error::io("reading the stop URL's address", e))?;
        Ok(StopEndpoint { listener, address })
    }

    /// `http://127.0.0.1:<port>/stop` (any path and method stop it).
    pub fn url(&self) -> String {
        stop_url(self.address)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Prints the URL and waits until it is requested, or until the process is interrupted;
    /// says which. Then close the env.
    pub async fn wait(self, env: &Env) -> Result<Stopped> {
        println!("env {:?} is up: to stop it and remove everything, open {} (or press Ctrl-C)", env.name(), self.url());
        let (hit, mut hit_rx) = tokio::sync::mpsc::channel::<()>(1);
        let server = crate::task::spawn(serve_stop(self.listener, env.name().to_string(), hit));
        let stopped = tokio::select! {
            _ = hit_rx.recv() => {
                println!("stop URL requested: removing env {:?}", env.name());
                Stopped::Requested
            }
            signal = interrupted() => {
                println!("{signal}: removing env {:?}", env.name());
                Stopped::Signal(signal)
            }
        };
        server.abort();
        Ok(stopped)
    }
}

/// Opens `url` in a browser where one can be opened (macOS, or a graphical session on other
/// systems). Returns whether it tried; print the URL either way.
pub fn open_in_browser(url: &str) -> bool {
    let graphical = cfg!(target_os = "macos")
        || std::env::var_os("DISPLAY").is_some()
        || std::env::var_os("WAYLAND_DISPLAY").is_some();
    #[cfg(feature = "browser")]
    return graphical && open::that_detached(url).is_ok();
    #[cfg(not(feature = "browser"))]
    return {
        let _ = (graphical, url);
        false
    };
}

fn stop_url(addr: SocketAddr) -> String {
    format!("http://{addr}/stop")
}

/// Ctrl-C, SIGTERM or SIGHUP: its name.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let on = |kind: SignalKind| async move {
        match signal(kind) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = on(SignalKind::terminate()) => "SIGTERM",
        _ = on(SignalKind::hangup()) => "SIGHUP",
    }
}

/// Answers every request with a goodbye and reports the hit.
async fn serve_stop(listener: tokio::net::TcpListener, env: String, hit: tokio::sync::mpsc::Sender<()>) {
    use hyper::service::service_fn;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // A persistent error (out of file descriptors) must not spin the CPU.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let (env, hit) = (env.clone(), hit.clone());
        crate::task::spawn(async move {
            let service = service_fn(move |_req| {
                let (env, hit) = (env.clone(), hit.clone());
                async move {
                    let _ = hit.try_send(());
                    Ok::<_, Infallible>(
                        hyper::Response::builder()
                            .header("Content-Type", "text/plain; charset=utf-8")
                            .body(http_body_util::Full::new(bytes::Bytes::from(format!(
                                "stopping env {env:?}: its containers, network and directory are being removed\n"
                            ))))
                            .expect("a valid response"),
                    )
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stop_url_names_the_address() {
        assert_eq!(stop_url("127.0.0.1:4242".parse().unwrap()), "http://127.0.0.1:4242/stop");
    }
}
