//! The durability watermark: values the engine is known to have made durable.
//!
//! The engine recovers a damaged or truncated file to an older, consistent
//! state without saying so (sled 0.34 does exactly that). Raft forbids such a
//! silent rollback: a node that forgets its vote or its log can elect a second
//! leader or lose committed writes. So, after a flush, we record in a small
//! file beside the engine (`WATERMARK`) a few counters that never decrease in
//! a healthy store; `open` refuses a store whose engine is behind them.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::schema::write_file_atomically;

/// Name of the watermark file in the store directory.
pub(crate) const WATERMARK_FILE: &str = "WATERMARK";

/// Counters that only ever grow in a healthy store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Watermark {
    /// Term of the saved vote.
    pub(crate) vote_term: u64,
    /// Index of the saved committed log id (0 when none).
    pub(crate) committed: u64,
    /// Index of the last log id applied to the state machine (0 when none).
    pub(crate) applied: u64,
    /// Index of the last purged log id (0 when none).
    pub(crate) purged: u64,
}

impl Watermark {
    /// Reads the watermark file of `dir`.
    pub(crate) fn load(dir: &Path) -> Result<Self, String> {
        let path = dir.join(WATERMARK_FILE);
        let bytes =
            std::fs::read(&path).map_err(|e| format!("{WATERMARK_FILE} cannot be read: {e}"))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("{WATERMARK_FILE} does not decode: {e}"))
    }

    /// Replaces the watermark file of `dir` atomically.
    pub(crate) fn store(&self, dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        write_file_atomically(dir, WATERMARK_FILE, &json)
    }

    /// Checks that `found` (read from the engine) has not gone back below
    /// `self` (recorded after an earlier flush).
    pub(crate) fn check(&self, found: &Watermark) -> Result<(), String> {
        let pairs = [
            ("vote term", self.vote_term, found.vote_term),
            ("committed index", self.committed, found.committed),
            ("applied index", self.applied, found.applied),
            ("purged index", self.purged, found.purged),
        ];
        for (what, recorded, actual) in pairs {
            if actual < recorded {
                return Err(format!(
                    "the database lost durable writes: its {what} is {actual} but {recorded} was \
                     flushed earlier (the database files were truncated or replaced)"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_behind_its_watermark_is_refused() {
        let recorded = Watermark {
            vote_term: 3,
            committed: 10,
            applied: 9,
            purged: 0,
        };
        assert_eq!(recorded.check(&recorded), Ok(()));
        let ahead = Watermark {
            committed: 12,
            applied: 12,
            ..recorded
        };
        assert_eq!(recorded.check(&ahead), Ok(()));
        let behind = Watermark {
            applied: 5,
            ..recorded
        };
        assert!(recorded
            .check(&behind)
            .unwrap_err()
            .contains("applied index is 5"));
    }

    #[test]
    fn round_trips_through_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = Watermark {
            vote_term: 1,
            committed: 2,
            applied: 3,
            purged: 4,
        };
        w.store(dir.path()).expect("store");
        assert_eq!(Watermark::load(dir.path()), Ok(w));
    }
}
