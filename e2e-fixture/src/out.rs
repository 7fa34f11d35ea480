//! Line output to stdout and stderr.
//!
//! Docker attaches a pipe to stdout, and e2e's tests wait for exact lines, so
//! each line is written whole under the stream's lock and flushed at once.
//! Write errors (a closed pipe) are ignored: the fixture must keep serving
//! even when nobody reads its logs.

use std::io::{self, Write};

/// Which stream a line goes to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Writes `line` followed by a newline, `count` times, then flushes.
pub fn lines(stream: Stream, line: &str, count: u64) {
    fn write_all(mut w: impl Write, line: &str, count: u64) {
        for _ in 0..count {
            if writeln!(w, "{line}").is_err() {
                return;
            }
        }
        let _ = w.flush();
    }
    match stream {
        Stream::Stdout => write_all(io::stdout().lock(), line, count),
        Stream::Stderr => write_all(io::stderr().lock(), line, count),
    }
}

/// One line to stdout.
pub fn say(line: &str) {
    lines(Stream::Stdout, line, 1);
}

/// One line to stderr.
pub fn warn(line: &str) {
    lines(Stream::Stderr, line, 1);
}
