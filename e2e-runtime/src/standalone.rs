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
//! Both return when the process gets Ctrl-C (SIGINT) or SIGTERM. The framework's own signal
//! handler removes the run's resources on those signals as well, whatever the program does
//! next, so an interrupted standalone run never leaves containers behind.

use std::convert::Infallible;
use std::net::SocketAddr;

use crate::env::Env;
use crate::error::{Error, Result};

/// Waits until the process is interrupted (Ctrl-C, or SIGTERM), saying so first. Then close the
/// env.
pub async fn run_until_interrupt(env: &Env) -> Result<()> {
    println!("env {:?} is up: press Ctrl-C to stop it and remove everything", env.name());
    interrupted().await;
    println!("interrupted: removing env {:?}", env.name());
    Ok(())
}

/// Serves a stop URL on 127.0.0.1 (a free port), prints it, and waits until it is requested
/// (any path, any method), or until the process is interrupted. Then close the env.
pub async fn run_until_endpoint_hit(env: &Env) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| Error::io("listening for the stop URL on 127.0.0.1", e))?;
    let addr = listener.local_addr().map_err(|e| Error::io("reading the stop URL's address", e))?;
    println!("env {:?} is up: to stop it and remove everything, open {} (or press Ctrl-C)", env.name(), stop_url(addr));
    let (hit, mut hit_rx) = tokio::sync::mpsc::channel::<()>(1);
    let server = tokio::spawn(serve_stop(listener, env.name().to_string(), hit));
    tokio::select! {
        _ = hit_rx.recv() => println!("stop URL requested: removing env {:?}", env.name()),
        _ = interrupted() => println!("interrupted: removing env {:?}", env.name()),
    }
    server.abort();
    Ok(())
}

/// Opens `url` in a browser where one can be opened (macOS, or a graphical session on other
/// systems). Returns whether it tried; print the URL either way.
pub fn open_in_browser(url: &str) -> bool {
    let graphical = cfg!(target_os = "macos")
        || std::env::var_os("DISPLAY").is_some()
        || std::env::var_os("WAYLAND_DISPLAY").is_some();
    graphical && open::that_detached(url).is_ok()
}

fn stop_url(addr: SocketAddr) -> String {
    format!("http://{addr}/stop")
}

/// Ctrl-C or SIGTERM.
async fn interrupted() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
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
        tokio::spawn(async move {
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
