//! The most recent log output of this process, kept in memory (bounded) so
//! a support bundle can carry every node's recent logs without reading
//! files or journals.

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};

/// How much log text a process keeps.
pub const LOG_TAIL_BYTES: usize = 1 << 20;

/// A bounded tail of text: the oldest pieces go first once it is full.
#[derive(Debug)]
pub struct LogTail {
    limit: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    pieces: VecDeque<String>,
    bytes: usize,
}

impl LogTail {
    /// An empty tail keeping at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            inner: Mutex::default(),
        }
    }

    /// Appends `text` (one formatted log event), dropping the oldest text
    /// beyond the limit.
    pub fn push(&self, text: &str) {
        let mut text = text.to_string();
        if text.len() > self.limit {
            let mut cut = text.len() - self.limit;
            while !text.is_char_boundary(cut) {
                cut += 1;
            }
            text.drain(..cut);
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.bytes += text.len();
        inner.pieces.push_back(text);
        while inner.bytes > self.limit {
            match inner.pieces.pop_front() {
                Some(old) => inner.bytes -= old.len(),
                None => break,
            }
        }
    }

    /// Everything kept, oldest first.
    pub fn contents(&self) -> String {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::with_capacity(inner.bytes);
        for piece in &inner.pieces {
            out.push_str(piece);
        }
        out
    }
}

/// The tail of this process's log, filled by the binary's log writer.
pub fn global() -> &'static LogTail {
    static TAIL: OnceLock<LogTail> = OnceLock::new();
    TAIL.get_or_init(|| LogTail::new(LOG_TAIL_BYTES))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_text_within_the_limit() {
        let tail = LogTail::new(10);
        tail.push("aaaa\n");
        tail.push("bbbb\n");
        assert_eq!(tail.contents(), "aaaa\nbbbb\n");
        tail.push("cc\n");
        assert_eq!(tail.contents(), "bbbb\ncc\n");
        tail.push("0123456789abc");
        assert_eq!(tail.contents(), "3456789abc");
        tail.push("é");
        assert!(tail.contents().len() <= 10);
    }
}
