//! A fault-injecting proxy between the framework and the engine's API socket: a test tool of
//! this repository, not part of the crate. It listens on a unix socket of its own (a test
//! points `DOCKER_HOST=unix://<that socket>` at it) and forwards each request to the engine's
//! socket, unless a rule matching the request's method and path says otherwise: delay it,
//! answer a chosen status (before the engine sees the request, or after it acted), drop the
//! connection (before, or after the engine acted), or cut the answer's stream after a number
//! of bytes. A rule fires on its Nth matching call, or on each with a probability drawn from a
//! fixed seed.
//!
//! Each request gets a connection of its own to the engine (`Connection: close` is asked of
//! it), so a fault touches one call only. Upgraded connections (attach, exec start) are piped
//! both ways as they are.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// What a rule does to the call it fires on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Forwarded after this long.
    Delay(Duration),
    /// Answered with this status; the engine never sees the request.
    Status(u16),
    /// Forwarded, the engine's answer dropped and this status answered instead: the engine
    /// acted, the caller hears it failed.
    StatusAfter(u16),
    /// The connection closed with no answer; the engine never sees the request.
    Drop,
    /// Forwarded, and the connection closed once the engine starts answering: it acted.
    DropAfter,
    /// The answer cut after this many bytes of its body (a stream ends early).
    Cut(usize),
    /// An event stream cut after this many events (JSON objects, one a line).
    CutEvents(usize),
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Delay(d) => write!(f, "delay {d:?}"),
            Fault::Status(s) => write!(f, "{s} before"),
            Fault::StatusAfter(s) => write!(f, "{s} after"),
            Fault::Drop => f.write_str("drop before"),
            Fault::DropAfter => f.write_str("drop after"),
            Fault::Cut(n) => write!(f, "cut at {n} B"),
            Fault::CutEvents(n) => write!(f, "cut after {n} events"),
        }
    }
}

/// When a rule fires.
#[derive(Debug, Clone, Copy)]
pub enum Trigger {
    /// On the Nth matching call (1 is the first), once.
    Nth(u32),
    /// On each matching call with this probability, drawn from a generator seeded so.
    Chance { probability: f64, seed: u64 },
}

/// Which calls a rule applies to: a method (`*` for any), a path pattern (segments, `*` for any
/// one, `**` alone for any path; without the `/v1.xx` prefix and the query) and, optionally, text the request's body contains.
#[derive(Debug, Clone)]
pub struct Rule {
    pub method: &'static str,
    pub path: &'static str,
    pub body: Option<&'static str>,
    pub trigger: Trigger,
    pub fault: Fault,
}

#[derive(Debug)]
struct Armed {
    rule: Rule,
    seen: AtomicU32,
    fired: AtomicU32,
    random: Mutex<u64>,
}

/// A running proxy. It stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    socket: PathBuf,
    rules: Arc<Mutex<Vec<Arc<Armed>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Proxy {
    /// Starts a proxy on `socket` in front of the engine's socket `engine`.
    pub fn start(socket: &Path, engine: &Path) -> std::io::Result<Proxy> {
        let _ = std::fs::remove_file(socket);
        let listener = UnixListener::bind(socket)?;
        let rules: Arc<Mutex<Vec<Arc<Armed>>>> = Arc::default();
        let (engine, shared) = (engine.to_path_buf(), rules.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (engine, rules) = (engine.clone(), shared.clone());
                tokio::spawn(async move {
                    let _ = serve(client, &engine, &rules).await;
                });
            }
        });
        Ok(Proxy { socket: socket.to_path_buf(), rules, task })
    }

    /// `DOCKER_HOST` for the proxy.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Adds a rule.
    pub fn add(&self, rule: Rule) {
        let seed = match rule.trigger {
            Trigger::Chance { seed, .. } => seed,
            Trigger::Nth(_) => 0,
        };
        let armed = Armed { rule, seen: AtomicU32::new(0), fired: AtomicU32::new(0), random: Mutex::new(seed) };
        self.rules.lock().unwrap().push(Arc::new(armed));
    }

    /// How many times the rules fired, in all.
    pub fn fired(&self) -> u32 {
        self.rules.lock().unwrap().iter().map(|a| a.fired.load(Ordering::SeqCst)).sum()
    }
}

/// The request's head, as far as the proxy needs it.
struct Head {
    method: String,
    path: String,
    content_length: Option<usize>,
    upgrade: bool,
    /// The head with `Connection: close` (unless upgraded), ready to send on.
    forward: Vec<u8>,
}

fn parse_head(raw: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut lines = text.split("\r\n");
    let first = lines.next()?;
    let mut parts = first.split(' ');
    let (method, target) = (parts.next()?.to_string(), parts.next()?);
    let path = target.split('?').next().unwrap_or(target);
    // Without the API version prefix: `/v1.41/containers/create` is `/containers/create`.
    let path = match path.strip_prefix("/v").and_then(|p| p.split_once('/')) {
        Some((version, rest)) if version.chars().all(|c| c.is_ascii_digit() || c == '.') => format!("/{rest}"),
        _ => path.to_string(),
    };
    let (mut content_length, mut upgrade) = (None, false);
    let mut forward = format!("{first}\r\n");
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => content_length = value.trim().parse().ok(),
            "upgrade" => upgrade = true,
            "connection" => continue,
            _ => {}
        }
        forward.push_str(line);
        forward.push_str("\r\n");
    }
    forward.push_str(if upgrade { "Connection: Upgrade\r\n\r\n" } else { "Connection: close\r\n\r\n" });
    Some(Head { method, path, content_length, upgrade, forward: forward.into_bytes() })
}

fn path_matches(pattern: &str, path: &str) -> bool {
    if pattern == "**" {
        return true;
    }
    let (p, s): (Vec<_>, Vec<_>) = (pattern.split('/').collect(), path.split('/').collect());
    p.len() == s.len() && p.iter().zip(&s).all(|(p, s)| *p == "*" || p == s)
}

/// The fault that fires on this request, if any (each matching rule counts the call).
fn decide(rules: &Mutex<Vec<Arc<Armed>>>, head: &Head, body: &[u8]) -> Option<Fault> {
    let rules = rules.lock().unwrap().clone();
    let mut chosen = None;
    for armed in rules {
        let r = &armed.rule;
        if (r.method != "*" && r.method != head.method) || !path_matches(r.path, &head.path) {
            continue;
        }
        if r.body.is_some_and(|b| !String::from_utf8_lossy(body).contains(b)) {
            continue;
        }
        let n = armed.seen.fetch_add(1, Ordering::SeqCst) + 1;
        let fire = match r.trigger {
            Trigger::Nth(k) => n == k,
            Trigger::Chance { probability, .. } => next_unit(&mut armed.random.lock().unwrap()) < probability,
        };
        if fire && chosen.is_none() {
            armed.fired.fetch_add(1, Ordering::SeqCst);
            chosen = Some(r.fault);
        }
    }
    chosen
}

/// splitmix64, as a number in [0, 1).
fn next_unit(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

fn answer(status: u16, what: &str) -> Vec<u8> {
    let body = format!("{{\"message\":\"injected by the fault proxy: {status} on {what}\"}}");
    format!(
        "HTTP/1.1 {status} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn serve(mut client: UnixStream, engine: &Path, rules: &Mutex<Vec<Arc<Armed>>>) -> std::io::Result<()> {
    // The head, and whatever of the body came with it.
    let mut buf = Vec::with_capacity(4096);
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = client.read(&mut chunk).await?;
        if n == 0 || buf.len() > 1 << 20 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let Some(head) = parse_head(&buf[..end]) else { return Ok(()) };
    let mut body = buf[end..].to_vec();
    // A small body is read whole, for rules that look into it.
    if let Some(len) = head.content_length.filter(|l| *l <= 1 << 20) {
        while body.len() < len {
            let mut chunk = vec![0u8; len - body.len()];
            let n = client.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    let what = format!("{} {}", head.method, head.path);
    let fault = decide(rules, &head, &body);
    match fault {
        Some(Fault::Status(s)) => return client.write_all(&answer(s, &what)).await,
        Some(Fault::Drop) => return Ok(()),
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        _ => {}
    }
    let mut backend = UnixStream::connect(engine).await?;
    backend.write_all(&head.forward).await?;
    backend.write_all(&body).await?;
    let (mut client_read, mut client_write) = client.into_split();
    let (mut backend_read, mut backend_write) = backend.into_split();
    // The rest of the request (a large or chunked body, an upgraded stream) as it comes.
    let upstream = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_read, &mut backend_write).await;
        let _ = backend_write.shutdown().await;
    });
    let result = match fault {
        Some(Fault::StatusAfter(s)) => {
            let mut sink = Vec::new();
            let _ = backend_read.read_to_end(&mut sink).await;
            client_write.write_all(&answer(s, &what)).await
        }
        Some(Fault::DropAfter) => {
            let mut first = [0u8; 1];
            let _ = backend_read.read(&mut first).await;
            Ok(())
        }
        Some(Fault::CutEvents(n)) => {
            // Each event is a JSON object ended by a newline (within the chunked framing).
            let mut events = 0;
            let mut chunk = [0u8; 8192];
            loop {
                let got = backend_read.read(&mut chunk).await?;
                if got == 0 {
                    break Ok(());
                }
                let ends: Vec<usize> =
                    chunk[..got].windows(2).enumerate().filter(|(_, w)| w == b"}\n").map(|(i, _)| i + 2).collect();
                match ends.get(n.saturating_sub(events + 1)) {
                    Some(&end) if events + ends.len() >= n => {
                        client_write.write_all(&chunk[..end]).await?;
                        break Ok(());
                    }
                    _ => {
                        events += ends.len();
                        client_write.write_all(&chunk[..got]).await?;
                    }
                }
            }
        }
        Some(Fault::Cut(n)) => {
            let mut seen = Vec::new();
            let mut body_start = None;
            let mut chunk = [0u8; 8192];
            loop {
                let got = backend_read.read(&mut chunk).await?;
                if got == 0 {
                    break Ok(());
                }
                let before = seen.len();
                seen.extend_from_slice(&chunk[..got]);
                if body_start.is_none() {
                    body_start = seen.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
                }
                let limit = body_start.map(|s| s + n);
                match limit {
                    Some(limit) if seen.len() >= limit => {
                        client_write.write_all(&seen[before..limit.max(before)]).await?;
                        break Ok(());
                    }
                    _ => client_write.write_all(&chunk[..got]).await?,
                }
            }
        }
        _ => {
            let _ = head.upgrade;
            tokio::io::copy(&mut backend_read, &mut client_write).await.map(|_| ())
        }
    };
    upstream.abort();
    result
}

/// The proxy's own checks (this program has no test harness): its parsing and its draws.
pub fn self_check() {
    heads_lose_their_version_prefix_and_keep_alive();
    chance_is_the_same_for_a_seed();
}

fn heads_lose_their_version_prefix_and_keep_alive() {
    let h = parse_head(b"POST /v1.41/containers/create?name=x HTTP/1.1\r\nHost: d\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n").unwrap();
    assert_eq!((h.method.as_str(), h.path.as_str(), h.content_length), ("POST", "/containers/create", Some(2)));
    let text = String::from_utf8(h.forward).unwrap();
    assert!(text.ends_with("Connection: close\r\n\r\n") && !text.contains("keep-alive"), "{text}");
    assert!(path_matches("/containers/*/start", "/containers/abc/start"));
    assert!(!path_matches("/containers/*", "/containers/abc/start"));
}

fn chance_is_the_same_for_a_seed() {
    let draw = |seed| {
        let mut s = seed;
        (0..1000).filter(|_| next_unit(&mut s) < 0.3).count()
    };
    assert_eq!(draw(7), draw(7));
    assert!((250..350).contains(&draw(7)), "{}", draw(7));
}
