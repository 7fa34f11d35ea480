//! Container output: split into lines, printed with the runnable's name, and the tail kept for
//! error messages and log probes.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

/// How many lines of each container's output are kept in memory.
pub(crate) const KEEP_LINES: usize = 1000;
/// How many of them an error message shows.
pub(crate) const TAIL_LINES: usize = 20;

/// Splits a byte stream into lines per stream (stdout, stderr), holding partial lines back.
#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    partial: [Vec<u8>; 2],
}

impl LineSplitter {
    /// Feeds bytes of one stream; calls `on_line(is_stderr, line)` per complete line.
    pub fn push(&mut self, is_err: bool, bytes: &[u8], on_line: &mut impl FnMut(bool, &str)) {
        let buf = &mut self.partial[is_err as usize];
        buf.extend_from_slice(bytes);
        while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]);
            on_line(is_err, text.trim_end_matches('\r'));
        }
    }

    /// Emits what is left of unterminated lines.
    pub fn flush(&mut self, on_line: &mut impl FnMut(bool, &str)) {
        for (i, buf) in self.partial.iter_mut().enumerate() {
            if !buf.is_empty() {
                let text = String::from_utf8_lossy(buf).into_owned();
                buf.clear();
                on_line(i == 1, &text);
            }
        }
    }
}

/// The lines a container printed, kept bounded, with a wake-up for whoever waits on new ones.
#[derive(Debug, Default)]
pub(crate) struct LogBuffer {
    inner: Mutex<Lines>,
    pub changed: Notify,
}

#[derive(Debug, Default)]
struct Lines {
    lines: VecDeque<String>,
    /// Lines ever received; `total - lines.len()` is the number of the oldest kept.
    total: u64,
}

impl LogBuffer {
    pub fn push(&self, line: &str) {
        let mut l = self.inner.lock().unwrap();
        if l.lines.len() == KEEP_LINES {
            l.lines.pop_front();
        }
        l.lines.push_back(line.to_string());
        l.total += 1;
        drop(l);
        self.changed.notify_waiters();
    }

    /// How many lines were ever received.
    pub fn total(&self) -> u64 {
        self.inner.lock().unwrap().total
    }

    /// The last `n` lines.
    pub fn tail(&self, n: usize) -> Vec<String> {
        let l = self.inner.lock().unwrap();
        l.lines.iter().skip(l.lines.len().saturating_sub(n)).cloned().collect()
    }

    /// Lines numbered from `from` on (those still kept), and the number of the next line.
    pub fn since(&self, from: u64) -> (Vec<String>, u64) {
        let l = self.inner.lock().unwrap();
        let oldest = l.total - l.lines.len() as u64;
        let skip = from.saturating_sub(oldest) as usize;
        (l.lines.iter().skip(skip).cloned().collect(), l.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_across_chunks_and_streams() {
        let mut s = LineSplitter::default();
        let mut got = Vec::new();
        let mut on = |e: bool, l: &str| got.push((e, l.to_string()));
        s.push(false, b"hel", &mut on);
        s.push(true, b"err1\nerr", &mut on);
        s.push(false, b"lo\r\nworld\n", &mut on);
        s.flush(&mut on);
        assert_eq!(
            got,
            vec![
                (true, "err1".to_string()),
                (false, "hello".to_string()),
                (false, "world".to_string()),
                (true, "err".to_string())
            ]
        );
    }

    #[test]
    fn keeps_a_bounded_tail_and_counts_lines() {
        let b = LogBuffer::default();
        for i in 0..KEEP_LINES + 5 {
            b.push(&format!("line {i}"));
        }
        assert_eq!(b.tail(2), vec![format!("line {}", KEEP_LINES + 3), format!("line {}", KEEP_LINES + 4)]);
        let (lines, next) = b.since(KEEP_LINES as u64 + 3);
        assert_eq!(lines.len(), 2);
        assert_eq!(next, KEEP_LINES as u64 + 5);
        // Asking for lines already dropped gives what is kept.
        assert_eq!(b.since(0).0.len(), KEEP_LINES);
    }
}
