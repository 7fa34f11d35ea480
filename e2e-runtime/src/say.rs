//! What the framework says: `tracing` events when a subscriber is installed (target `e2e`, with
//! fields such as `env`, `runnable`, `container`, `image`; container output on its own target,
//! `e2e::output`), else the same text as plain lines, as without tracing: `e2e: ...` on stderr,
//! and `<runnable>: <line>` for container output.
//!
//! Spans: `test` (by `#[e2e::test]`, fields `test`, `env`), `env` (`env`, `network`) and
//! `runnable` (`runnable`, `env`, `image`, `container` once started), each inside the one
//! before, so a subscriber shows every event where it happened.

/// Whether a subscriber takes the events (a global one, or this thread's default).
pub(crate) fn subscribed() -> bool {
    tracing::dispatcher::get_default(|d| !d.is::<tracing::subscriber::NoSubscriber>())
}

/// `say!(warn, "text {}", x)` or `say!(warn, { env = name }, "text {}", x)`: an event at that
/// level on target `e2e` with those fields, or `e2e: text` on stderr when nothing subscribes.
macro_rules! say {
    ($level:ident, { $($key:ident = $value:expr),* $(,)? }, $($arg:tt)+) => {{
        let message = format!($($arg)+);
        if $crate::say::subscribed() {
            tracing::$level!(target: "e2e", $($key = %$value,)* "{message}");
        } else {
            eprintln!("e2e: {message}");
        }
    }};
    ($level:ident, $($arg:tt)+) => { $crate::say::say!($level, {}, $($arg)+) };
}
pub(crate) use say;

/// A line of a runnable's output (its container's, or of a command run in it): an event on
/// target `e2e::output` in the runnable's span, or `<name>[ (stderr)]: <line>` on stdout when
/// nothing subscribes (unless quiet; a quiet runnable's lines are `trace` events).
pub(crate) fn output(span: &tracing::Span, name: &str, what: &str, is_err: bool, line: &str, quiet: bool) {
    if subscribed() {
        let stream = if is_err { "stderr" } else { "stdout" };
        if quiet {
            tracing::trace!(target: "e2e::output", parent: span, runnable = name, stream, what, "{line}");
        } else {
            tracing::info!(target: "e2e::output", parent: span, runnable = name, stream, what, "{line}");
        }
    } else if !quiet {
        let stream = if is_err { " (stderr)" } else { "" };
        println!("{name}{what}{stream}: {line}");
    }
}
