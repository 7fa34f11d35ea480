//! A proxy into an env's network for the test process: clients with proxy support (SOCKS5 with
//! remote names, HTTP, HTTP `CONNECT`) reach what the containers call `<name>:<port>` or
//! `<env>-<name>:<port>` (the addresses a cluster advertises) as they are. Each connection goes
//! to [`Env::host_endpoint_of`]'s endpoint for it, so it works on any engine the ports are
//! reachable from; an address no runnable of the env answers to is connected to directly, so a
//! client can send everything through it.
//!
//! SOCKS5 is written here (CONNECT without authentication, RFC 1928, is a few dozen lines, and the
//! server side has to resolve names itself); HTTP goes through hyper, already a dependency.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Weak;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::env::{Env, EnvInner};
use crate::error::{Error, Result};

/// How long connecting to a target may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A running proxy into an env's network, on `127.0.0.1`; it stops when dropped, and refuses
/// new connections once its env is gone. One port serves SOCKS5 and HTTP.
///
/// ```no_run
/// # async fn f(env: &e2e_runtime::Env) -> e2e_runtime::Result<()> {
/// let proxy = env.proxy().await?;
/// let client = reqwest::Client::builder()
///     .proxy(reqwest::Proxy::all(proxy.socks5_url()).unwrap())
///     .build()
///     .unwrap();
/// // What the containers call etcd1:2379, as etcd's member list advertises it.
/// let health = client.get("http://etcd1:2379/health").send().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct EnvProxy {
    address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl EnvProxy {
    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Its SOCKS5 URL with names resolved by the proxy (`socks5h://127.0.0.1:<port>`), as
    /// reqwest, curl and most clients with SOCKS support take it.
    pub fn socks5_url(&self) -> String {
        format!("socks5h://{}", self.address)
    }

    /// Its HTTP proxy URL (`http://127.0.0.1:<port>`): plain HTTP requests and `CONNECT`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for EnvProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Env {
    /// Starts a proxy into this env's network (SOCKS5 and HTTP on one port of `127.0.0.1`), for
    /// clients that follow the addresses a cluster advertises. See [`EnvProxy`].
    pub async fn proxy(&self) -> Result<EnvProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| Error::Io { context: format!("starting the proxy of env {:?}", self.name()), source: e })?;
        let address =
            listener.local_addr().map_err(|e| Error::Io { context: "the proxy's address".into(), source: e })?;
        let env = std::sync::Arc::downgrade(&self.inner);
        let task = crate::task::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let env = env.clone();
                crate::task::spawn(async move { serve(env, conn).await });
            }
        });
        Ok(EnvProxy { address, task })
    }
}

/// Where `host:port` goes: the host endpoint of a runnable that answers to `host`, else
/// `host:port` itself. The error says why it cannot be reached.
fn target(env: &Weak<EnvInner>, host: &str, port: u16) -> std::result::Result<String, String> {
    let inner = env.upgrade().ok_or_else(|| "its env is gone".to_string())?;
    let env = Env { inner };
    match env.in_network(host, port) {
        Some(Ok(endpoint)) => Ok(endpoint),
        Some(Err(e)) => Err(e.to_string()),
        None if host.contains(':') => Ok(format!("[{host}]:{port}")),
        None => Ok(format!("{host}:{port}")),
    }
}

/// Connects to where `host:port` goes; the error names the address, and what it became.
async fn connect(env: &Weak<EnvInner>, host: &str, port: u16) -> std::result::Result<TcpStream, String> {
    let to = target(env, host, port).map_err(|e| format!("{host}:{port}: {e}"))?;
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&to)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(format!("{host}:{port} (as {to}): {e}")),
        Err(_) => Err(format!("{host}:{port} (as {to}): no connection within {CONNECT_TIMEOUT:?}")),
    }
}

fn env_name(env: &Weak<EnvInner>) -> String {
    env.upgrade().map_or_else(|| "(gone)".to_string(), |e| e.name.clone())
}

async fn serve(env: Weak<EnvInner>, conn: TcpStream) {
    let mut first = [0u8; 1];
    match conn.peek(&mut first).await {
        Ok(1) if first[0] == 5 => {
            if let Err(e) = socks5(&env, conn).await {
                crate::say::say!(warn, { env = env_name(&env) }, "proxy of env {:?}: {e}", env_name(&env));
            }
        }
        Ok(1) => {
            let service = hyper::service::service_fn(move |req| {
                let env = env.clone();
                async move { Ok::<_, hyper::Error>(http(env, req).await) }
            });
            // A client that goes away mid-request is its own business.
            let _ = hyper::server::conn::http1::Builder::new()
                .preserve_header_case(true)
                .serve_connection(TokioIo::new(conn), service)
                .with_upgrades()
                .await;
        }
        _ => {}
    }
}

/// One SOCKS5 CONNECT without authentication (RFC 1928). A refusal is answered with its reply
/// code and returned, naming the address, to be printed.
async fn socks5(env: &Weak<EnvInner>, mut conn: TcpStream) -> std::result::Result<(), String> {
    let io = |e: std::io::Error| format!("a SOCKS5 client went away: {e}");
    let mut head = [0u8; 2];
    conn.read_exact(&mut head).await.map_err(io)?;
    let mut methods = vec![0u8; head[1] as usize];
    conn.read_exact(&mut methods).await.map_err(io)?;
    if !methods.contains(&0) {
        conn.write_all(&[5, 0xff]).await.map_err(io)?;
        return Err("a SOCKS5 client wants authentication; the proxy takes none".into());
    }
    conn.write_all(&[5, 0]).await.map_err(io)?;
    let mut request = [0u8; 4];
    conn.read_exact(&mut request).await.map_err(io)?;
    let host = match request[3] {
        1 => {
            let mut ip = [0u8; 4];
            conn.read_exact(&mut ip).await.map_err(io)?;
            Ipv4Addr::from(ip).to_string()
        }
        3 => {
            let mut len = [0u8; 1];
            conn.read_exact(&mut len).await.map_err(io)?;
            let mut name = vec![0u8; len[0] as usize];
            conn.read_exact(&mut name).await.map_err(io)?;
            String::from_utf8_lossy(&name).into_owned()
        }
        4 => {
            let mut ip = [0u8; 16];
            conn.read_exact(&mut ip).await.map_err(io)?;
            Ipv6Addr::from(ip).to_string()
        }
        other => {
            reply(&mut conn, 8).await;
            return Err(format!("a SOCKS5 client sent address type {other}"));
        }
    };
    let mut port = [0u8; 2];
    conn.read_exact(&mut port).await.map_err(io)?;
    let port = u16::from_be_bytes(port);
    if request[1] != 1 {
        reply(&mut conn, 7).await;
        return Err(format!("SOCKS5 command {} for {host}:{port}: only CONNECT is served", request[1]));
    }
    let mut upstream = match connect(env, &host, port).await {
        Ok(upstream) => upstream,
        Err(e) => {
            // 4: host unreachable.
            reply(&mut conn, 4).await;
            return Err(format!("cannot reach {e}"));
        }
    };
    reply(&mut conn, 0).await;
    let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
    Ok(())
}

/// A SOCKS5 reply with `code`, bound address 0.0.0.0:0 (clients do not use it for CONNECT).
async fn reply(conn: &mut TcpStream, code: u8) {
    let _ = conn.write_all(&[5, code, 0, 1, 0, 0, 0, 0, 0, 0]).await;
}

type Body = BoxBody<Bytes, hyper::Error>;

/// A `502 Bad Gateway` that says why, for the client and on stderr.
fn bad_gateway(env: &Weak<EnvInner>, why: String) -> Response<Body> {
    let message = format!("proxy of env {:?}: cannot reach {why}", env_name(env));
    crate::say::say!(warn, { env = env_name(env) }, "{message}");
    let message = format!("e2e: {message}");
    let mut response = Response::new(Full::new(Bytes::from(message + "\n")).map_err(|never| match never {}).boxed());
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}

/// An HTTP proxy request: `CONNECT host:port` becomes a tunnel; a request for an absolute
/// `http://` URL is sent on (origin-form, on a connection of its own) and its answer returned.
async fn http(env: Weak<EnvInner>, mut req: Request<hyper::body::Incoming>) -> Response<Body> {
    let uri = req.uri().clone();
    let Some(host) = uri.host().map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string()) else {
        return bad_gateway(&env, format!("{uri}: the request names no host (is this an HTTP proxy request?)"));
    };
    if req.method() == Method::CONNECT {
        let Some(port) = uri.port_u16() else {
            return bad_gateway(&env, format!("{uri}: CONNECT needs <host>:<port>"));
        };
        let mut upstream = match connect(&env, &host, port).await {
            Ok(upstream) => upstream,
            Err(e) => return bad_gateway(&env, e),
        };
        crate::task::spawn(async move {
            if let Ok(upgraded) = hyper::upgrade::on(req).await {
                let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(upgraded), &mut upstream).await;
            }
        });
        return Response::new(Full::new(Bytes::new()).map_err(|never| match never {}).boxed());
    }
    if uri.scheme_str() != Some("http") {
        return bad_gateway(&env, format!("{uri}: only http:// URLs are sent on (https goes through CONNECT)"));
    }
    let port = uri.port_u16().unwrap_or(80);
    let upstream = match connect(&env, &host, port).await {
        Ok(upstream) => upstream,
        Err(e) => return bad_gateway(&env, e),
    };
    let (mut sender, connection) = match hyper::client::conn::http1::handshake(TokioIo::new(upstream)).await {
        Ok(pair) => pair,
        Err(e) => return bad_gateway(&env, format!("{host}:{port}: {e}")),
    };
    crate::task::spawn(connection);
    *req.uri_mut() = uri.path_and_query().map_or("/", |p| p.as_str()).parse().expect("a path is a URI");
    req.headers_mut().remove("proxy-connection");
    req.headers_mut().remove("proxy-authorization");
    match sender.send_request(req).await {
        Ok(response) => response.map(|body| body.boxed()),
        Err(e) => bad_gateway(&env, format!("{host}:{port}: {e}")),
    }
}
