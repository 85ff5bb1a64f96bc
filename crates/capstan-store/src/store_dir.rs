//! An opened store directory: the engine, its path, typed access to the
//! raft and machine metadata records, and durable flushing.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::{BasicNode, LogId, StoredMembership, Vote};
use serde::de::DeserializeOwned;

use crate::codec::{from_json, machine_keys, raft_keys};
use crate::engine::{Engine, Space, WriteBatch};
use crate::error::StoreError;
use crate::types::NodeId;
use crate::watermark::Watermark;

/// How often, at most, a routine log flush also rewrites the watermark file.
const WATERMARK_INTERVAL: Duration = Duration::from_secs(1);

/// Shared by the log store and the state machine of one store directory.
pub(crate) struct StoreDir {
    path: PathBuf,
    engine: Box<dyn Engine>,
    mark: Arc<Mutex<MarkState>>,
}

#[derive(Default)]
struct MarkState {
    recorded: Watermark,
    written_at: Option<Instant>,
}

/// Whether a flush must also record the watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    /// Always (vote changes, snapshots): these must never roll back unseen.
    Now,
    /// At most every [`WATERMARK_INTERVAL`] (log appends).
    Periodically,
}

impl StoreDir {
    pub(crate) fn new(path: PathBuf, engine: Box<dyn Engine>, recorded: Watermark) -> Self {
        let mark = MarkState {
            recorded,
            written_at: None,
        };
        Self {
            path,
            engine,
            mark: Arc::new(Mutex::new(mark)),
        }
    }

    /// The engine.
    pub(crate) fn engine(&self) -> &dyn Engine {
        self.engine.as_ref()
    }

    /// A [`StoreError::Corrupt`] for this directory.
    pub(crate) fn corrupt(&self, reason: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    /// Commits a batch atomically.
    pub(crate) fn commit(
        &self,
        batch: &WriteBatch,
        action: &'static str,
    ) -> Result<(), StoreError> {
        self.engine
            .commit(batch)
            .map_err(StoreError::engine(action))
    }

    /// Reads and decodes a JSON record; a record that does not decode means
    /// the store is corrupt.
    pub(crate) fn get_json<T: DeserializeOwned>(
        &self,
        space: Space,
        key: &[u8],
        what: &str,
    ) -> Result<Option<T>, StoreError> {
        let Some(bytes) = self
            .engine
            .get(space, key)
            .map_err(StoreError::engine("reading metadata"))?
        else {
            return Ok(None);
        };
        from_json(what, &bytes)
            .map(Some)
            .map_err(|reason| self.corrupt(reason))
    }

    pub(crate) fn vote(&self) -> Result<Option<Vote<NodeId>>, StoreError> {
        self.get_json(Space::Raft, raft_keys::VOTE, "saved vote")
    }

    pub(crate) fn committed(&self) -> Result<Option<LogId<NodeId>>, StoreError> {
        self.get_json(Space::Raft, raft_keys::COMMITTED, "committed log id")
    }

    pub(crate) fn last_purged(&self) -> Result<Option<LogId<NodeId>>, StoreError> {
        self.get_json(Space::Raft, raft_keys::LAST_PURGED, "last purged log id")
    }

    pub(crate) fn last_applied(&self) -> Result<Option<LogId<NodeId>>, StoreError> {
        self.get_json(
            Space::Machine,
            machine_keys::LAST_APPLIED,
            "last applied log id",
        )
    }

    pub(crate) fn last_membership(
        &self,
    ) -> Result<StoredMembership<NodeId, BasicNode>, StoreError> {
        let found = self.get_json(
            Space::Machine,
            machine_keys::LAST_MEMBERSHIP,
            "last membership",
        )?;
        Ok(found.unwrap_or_default())
    }

    /// The never-decreasing counters as the engine holds them now.
    pub(crate) fn observe(&self) -> Result<Watermark, StoreError> {
        let index = |id: Option<LogId<NodeId>>| id.map(|id| id.index).unwrap_or(0);
        Ok(Watermark {
            vote_term: self.vote()?.map(|v| v.leader_id().term).unwrap_or(0),
            committed: index(self.committed()?),
            applied: index(self.last_applied()?),
            purged: index(self.last_purged()?),
        })
    }

    /// Makes everything committed so far durable, then (per `mark`) records
    /// the watermark.
    pub(crate) async fn flush(&self, mark: Mark) -> Result<(), StoreError> {
        // Values read before the flush starts are covered by it.
        let observed = self.observe()?;
        self.engine
            .flush_async()
            .await
            .map_err(StoreError::engine("flushing to disk"))?;
        let due = {
            let state = self.lock_mark();
            mark == Mark::Now
                || state
                    .written_at
                    .is_none_or(|at| at.elapsed() >= WATERMARK_INTERVAL)
        };
        if due {
            let path = self.path.clone();
            let state = Arc::clone(&self.mark);
            tokio::task::spawn_blocking(move || record(&state, &path, observed))
                .await
                .map_err(|e| StoreError::Io {
                    action: "record the watermark in",
                    path: self.path.clone(),
                    source: std::io::Error::other(e),
                })??;
        }
        Ok(())
    }

    fn lock_mark(&self) -> std::sync::MutexGuard<'_, MarkState> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.mark
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Writes `max(recorded, observed)` to the watermark file, serialised by the
/// lock so that concurrent writers never interleave.
fn record(state: &Mutex<MarkState>, path: &Path, observed: Watermark) -> Result<(), StoreError> {
    let mut state = state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let merged = Watermark {
        vote_term: state.recorded.vote_term.max(observed.vote_term),
        committed: state.recorded.committed.max(observed.committed),
        applied: state.recorded.applied.max(observed.applied),
        purged: state.recorded.purged.max(observed.purged),
    };
    merged.store(path).map_err(|source| StoreError::Io {
        action: "record the watermark in",
        path: path.to_path_buf(),
        source,
    })?;
    state.recorded = merged;
    state.written_at = Some(Instant::now());
    Ok(())
}

impl Drop for StoreDir {
    /// On close, flush and record the final watermark, so that damage done to
    /// the files while the store is closed is detected at the next open.
    fn drop(&mut self) {
        let result = self.observe().and_then(|observed| {
            self.engine
                .flush()
                .map_err(StoreError::engine("flushing on close"))?;
            record(&self.mark, &self.path, observed)
        });
        if let Err(err) = result {
            tracing::error!(path = %self.path.display(), error = %err, "closing raft store");
        }
    }
}
