//! The HTTP endpoints.
//!
//! `route` turns a method and URL into a `Reply` (plus its side effects on
//! the metrics and the logs); `serve` does the socket work around it, one
//! thread per request so that `/slow` never holds up `/ready` or `/metrics`.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use tiny_http::{Header, Method, Request, Response, Server};

use crate::config::parse_duration;
use crate::metrics::{self, Metrics};
use crate::out::{self, Stream};
use crate::query;

const TEXT: &str = "text/plain; charset=utf-8";

/// Long enough for the "exiting" answer to reach the client before the
/// process goes away, short enough not to slow tests down.
const DEFAULT_EXIT_DELAY: Duration = Duration::from_millis(50);

/// `/slow` without `for=`.
const DEFAULT_SLOW: Duration = Duration::from_secs(1);

/// A `/log` request prints at most this many lines, so a typo cannot flood
/// the test's log collector.
const MAX_LOG_COUNT: u64 = 100_000;

const INDEX: &str = "\
e2e-fixture: a deterministic service for e2e's own tests.
GET /ready                          503 \"not ready\" until --ready-after, then 200 \"ready\"
GET /health                         200 \"ok\"
GET /metrics, /metrics/alt          Prometheus text format 0.0.4
GET /set?name=N&value=V             set gauge fixture_value{name=\"N\"}; &delete=1 removes it
GET /inc?name=C&by=V                add V (default 1) to counter fixture_custom_total{name=\"C\"}
GET /log?line=T&stream=S&count=N    print T to stdout|stderr N times
GET /exit?code=N&after=D            answer, then exit with code N after D (default 50ms)
GET /status/N                       answer with HTTP status N (200..=599)
GET /slow?for=D                     sleep D (default 1s), then 200
";

/// What to answer, and what to do once the answer is out.
#[derive(Debug, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    pub then: Option<Then>,
}

#[derive(Debug, PartialEq)]
pub enum Then {
    Exit { code: i32, after: Duration },
}

impl Reply {
    fn text(status: u16, body: impl Into<String>) -> Self {
        Reply { status, content_type: TEXT, body: body.into(), then: None }
    }

    fn ok() -> Self {
        Self::text(200, "ok")
    }

    fn bad(message: impl std::fmt::Display) -> Self {
        Self::text(400, format!("bad request: {message}\n"))
    }
}

/// Accepts connections until the process exits.
pub fn serve(server: Server, metrics: Arc<Metrics>) {
    for request in server.incoming_requests() {
        let metrics = Arc::clone(&metrics);
        let spawned = thread::Builder::new().name("request".into()).spawn(move || handle(request, &metrics));
        if let Err(e) = spawned {
            // The request is dropped with the closure, which closes it.
            out::warn(&format!("cannot start a request thread: {e}"));
        }
    }
}

fn handle(request: Request, metrics: &Metrics) {
    let started = Instant::now();
    let url = request.url().to_string();
    let path = url.split_once('?').map_or(url.as_str(), |(p, _)| p).to_string();
    let reply = match request.method() {
        Method::Get | Method::Head => route(&url, metrics),
        _ => Reply::text(405, "method not allowed: use GET\n"),
    };

    let size = reply.body.len();
    let mut response = Response::from_string(reply.body)
        .with_status_code(reply.status)
        .with_header(header("Content-Type", reply.content_type));
    if reply.status == 405 {
        response.add_header(header("Allow", "GET, HEAD"));
    }
    if let Err(e) = request.respond(response) {
        out::warn(&format!("cannot answer {path}: {e}"));
    }
    metrics.observe_request(&path, started.elapsed().as_secs_f64(), size);

    match reply.then {
        None => {}
        Some(Then::Exit { code, after }) => {
            thread::sleep(after);
            out::say(&format!("exiting with code {code} as asked by /exit"));
            std::process::exit(code);
        }
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("static header is valid")
}

/// Answers one GET. `url` is the request target: path and optional query.
pub fn route(url: &str, metrics: &Metrics) -> Reply {
    let (path, raw_query) = url.split_once('?').unwrap_or((url, ""));
    let params = query::parse(raw_query);
    let param = |key: &str| params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());

    match path {
        "/" => Reply::text(200, INDEX),
        "/health" => Reply::ok(),
        "/ready" if metrics.is_ready() => Reply::text(200, "ready"),
        "/ready" => Reply::text(503, "not ready"),
        "/metrics" | "/metrics/alt" => {
            Reply { status: 200, content_type: metrics::CONTENT_TYPE, body: metrics.render(), then: None }
        }
        "/set" => set(param("name"), param("value"), param("delete"), metrics),
        "/inc" => inc(param("name"), param("by"), metrics),
        "/log" => log(param("line"), param("stream"), param("count")),
        "/exit" => exit(param("code"), param("after")),
        "/slow" => match param("for").map(parse_duration).unwrap_or(Ok(DEFAULT_SLOW)) {
            Ok(d) => {
                thread::sleep(d);
                Reply::ok()
            }
            Err(e) => Reply::bad(format!("for: {e}")),
        },
        _ => match path.strip_prefix("/status/") {
            Some(code) => status(code),
            None => Reply::text(404, "not found\n"),
        },
    }
}

fn set(name: Option<&str>, value: Option<&str>, delete: Option<&str>, metrics: &Metrics) -> Reply {
    let Some(name) = name else {
        return Reply::bad("missing name");
    };
    if delete == Some("1") || delete == Some("true") {
        metrics.delete_value(name);
        return Reply::ok();
    }
    let Some(value) = value else {
        return Reply::bad("missing value (or delete=1)");
    };
    match value.trim().parse::<f64>() {
        Ok(v) => {
            metrics.set_value(name, v);
            Reply::ok()
        }
        Err(_) => Reply::bad(format!("value {value:?} is not a number")),
    }
}

fn inc(name: Option<&str>, by: Option<&str>, metrics: &Metrics) -> Reply {
    let Some(name) = name else {
        return Reply::bad("missing name");
    };
    let by = match by.map(|b| b.trim().parse::<f64>()) {
        None => 1.0,
        // A counter never goes down, and NaN would poison it for good.
        Some(Ok(v)) if v.is_finite() && v >= 0.0 => v,
        _ => return Reply::bad(format!("by {:?} is not a finite number >= 0", by.unwrap_or(""))),
    };
    metrics.inc_custom(name, by);
    Reply::ok()
}

fn log(line: Option<&str>, stream: Option<&str>, count: Option<&str>) -> Reply {
    let Some(line) = line else {
        return Reply::bad("missing line");
    };
    let stream = match stream {
        None | Some("stdout") => Stream::Stdout,
        Some("stderr") => Stream::Stderr,
        Some(other) => return Reply::bad(format!("stream {other:?} is neither stdout nor stderr")),
    };
    let count = match count.map(|c| c.trim().parse::<u64>()) {
        None => 1,
        Some(Ok(n)) if n <= MAX_LOG_COUNT => n,
        _ => return Reply::bad(format!("count must be an integer from 0 to {MAX_LOG_COUNT}")),
    };
    out::lines(stream, line, count);
    Reply::ok()
}

fn exit(code: Option<&str>, after: Option<&str>) -> Reply {
    let code = match code.map(|c| c.trim().parse::<i32>()) {
        None => 0,
        Some(Ok(n)) if (0..=255).contains(&n) => n,
        _ => return Reply::bad("code must be an integer from 0 to 255"),
    };
    let after = match after.map(parse_duration) {
        None => DEFAULT_EXIT_DELAY,
        Some(Ok(d)) => d,
        Some(Err(e)) => return Reply::bad(format!("after: {e}")),
    };
    Reply { then: Some(Then::Exit { code, after }), ..Reply::text(200, "exiting") }
}

fn status(code: &str) -> Reply {
    // 1xx are interim answers that make clients wait for a final one.
    match code.parse::<u16>() {
        Ok(n) if (200..=599).contains(&n) => Reply::text(n, format!("status {n}\n")),
        _ => Reply::bad(format!("status {code:?} is not an integer from 200 to 599")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let m = Metrics::new(Instant::now());
        assert_eq!(route("/health", &m), Reply::ok());
        assert_eq!(route("/ready", &m).status, 503);
        m.set_ready();
        assert_eq!(route("/ready", &m), Reply::text(200, "ready"));
        assert_eq!(route("/nope", &m).status, 404);
        assert_eq!(route("/status/418", &m).status, 418);
        assert_eq!(route("/status/99", &m).status, 400);
        assert_eq!(route("/status/abc", &m).status, 400);
        assert!(route("/", &m).body.contains("/metrics"));
        let metrics = route("/metrics/alt", &m);
        assert_eq!(metrics.content_type, metrics::CONTENT_TYPE);
        assert!(metrics.body.contains("fixture_untyped 42\n"));
    }

    #[test]
    fn set_inc_and_their_errors() {
        let m = Metrics::new(Instant::now());
        assert_eq!(route("/set?name=a+b&value=2.5", &m), Reply::ok());
        assert!(m.render().contains("fixture_value{name=\"a b\"} 2.5\n"));
        assert_eq!(route("/set?name=a%20b&delete=1", &m), Reply::ok());
        assert!(!m.render().contains("fixture_value"));
        assert_eq!(route("/set?name=x&value=many", &m).status, 400);
        assert_eq!(route("/set?value=1", &m).status, 400);
        assert_eq!(route("/set?name=x", &m).status, 400);

        assert_eq!(route("/inc?name=c", &m), Reply::ok());
        assert_eq!(route("/inc?name=c&by=2", &m), Reply::ok());
        assert!(m.render().contains("fixture_custom_total{name=\"c\"} 3\n"));
        assert_eq!(route("/inc?name=c&by=-1", &m).status, 400);
        assert_eq!(route("/inc?name=c&by=NaN", &m).status, 400);
    }

    #[test]
    fn exit_and_log_validation() {
        let m = Metrics::new(Instant::now());
        let r = route("/exit?code=3&after=10ms", &m);
        assert_eq!(r.body, "exiting");
        assert_eq!(r.then, Some(Then::Exit { code: 3, after: Duration::from_millis(10) }));
        assert_eq!(route("/exit", &m).then, Some(Then::Exit { code: 0, after: DEFAULT_EXIT_DELAY }));
        assert_eq!(route("/exit?code=300", &m).status, 400);
        assert_eq!(route("/exit?after=soon", &m).status, 400);
        assert_eq!(route("/log?line=x&stream=nowhere", &m).status, 400);
        assert_eq!(route("/log?line=x&count=-1", &m).status, 400);
        assert_eq!(route("/log", &m).status, 400);
        assert_eq!(route("/slow?for=1ms", &m), Reply::ok());
        assert_eq!(route("/slow?for=x", &m).status, 400);
    }
}
