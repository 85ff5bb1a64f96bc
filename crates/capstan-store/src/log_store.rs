//! The Raft log, vote and commit point, persisted in the engine.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, StorageError, Vote};

use crate::codec::{from_json, log_index, log_key, raft_keys, to_json};
use crate::engine::{Space, WriteBatch};
use crate::error::{self, StoreError};
use crate::store_dir::{Mark, StoreDir};
use crate::types::{NodeId, TypeConfig};

/// The Raft log storage of one store directory. Cheap to clone; clones share
/// the directory.
#[derive(Clone)]
pub struct LogStore {
    dir: Arc<StoreDir>,
}

impl LogStore {
    pub(crate) fn new(dir: Arc<StoreDir>) -> Self {
        Self { dir }
    }

    fn entries(
        &self,
        from: Bound<u64>,
        to: Bound<u64>,
    ) -> Result<Vec<Entry<TypeConfig>>, StoreError> {
        let key = |b: Bound<u64>| match b {
            Bound::Included(i) => Bound::Included(log_key(i).to_vec()),
            Bound::Excluded(i) => Bound::Excluded(log_key(i).to_vec()),
            Bound::Unbounded => Bound::Unbounded,
        };
        let mut out = Vec::new();
        for item in self.dir.engine().range(Space::Log, key(from), key(to)) {
            let (_, value) = item.map_err(StoreError::engine("reading the log"))?;
            out.push(self.decode_entry(&value)?);
        }
        Ok(out)
    }

    fn decode_entry(&self, bytes: &[u8]) -> Result<Entry<TypeConfig>, StoreError> {
        from_json("log entry", bytes).map_err(|r| self.dir.corrupt(r))
    }

    fn log_state(&self) -> Result<LogState<TypeConfig>, StoreError> {
        let last_purged_log_id = self.dir.last_purged()?;
        let last = self
            .dir
            .engine()
            .last(Space::Log)
            .map_err(StoreError::engine("reading the log"))?;
        let last_log_id = match last {
            Some((_, value)) => Some(self.decode_entry(&value)?.log_id),
            None => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    /// Keys of log entries with index in `range`.
    fn keys_in(&self, from: Bound<u64>, to: Bound<u64>) -> Result<Vec<Vec<u8>>, StoreError> {
        let key = |b: Bound<u64>| b.map(|i| log_key(i).to_vec());
        let mut keys = Vec::new();
        for item in self.dir.engine().range(Space::Log, key(from), key(to)) {
            let (k, _) = item.map_err(StoreError::engine("reading the log"))?;
            log_index(&k).map_err(|r| self.dir.corrupt(r))?;
            keys.push(k);
        }
        Ok(keys)
    }

    fn append_entries(
        &self,
        entries: impl IntoIterator<Item = Entry<TypeConfig>>,
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::new();
        for entry in entries {
            batch.put(
                Space::Log,
                log_key(entry.log_id.index),
                to_json("log entry", &entry)?,
            );
        }
        self.dir.commit(&batch, "appending to the log")
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        self.entries(range.start_bound().cloned(), range.end_bound().cloned())
            .map_err(error::read_logs)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        self.log_state().map_err(error::read_logs)
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut batch = WriteBatch::new();
        batch.put(
            Space::Raft,
            raft_keys::VOTE,
            to_json("vote", vote).map_err(error::write_vote)?,
        );
        self.dir
            .commit(&batch, "saving the vote")
            .map_err(error::write_vote)?;
        // A vote must be durable before it is acted upon.
        self.dir.flush(Mark::Now).await.map_err(error::write_vote)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        self.dir.vote().map_err(error::read_vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        // Once committed, always committed: an older commit point stays true,
        // so "none" never erases one (and the watermark never sees it drop).
        let Some(id) = committed else {
            return Ok(());
        };
        let mut batch = WriteBatch::new();
        batch.put(
            Space::Raft,
            raft_keys::COMMITTED,
            to_json("committed log id", &id).map_err(error::write_logs)?,
        );
        // Not flushed: a lost commit point is recomputed from the cluster.
        self.dir
            .commit(&batch, "saving the commit point")
            .map_err(error::write_logs)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        self.dir.committed().map_err(error::read_logs)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        self.append_entries(entries).map_err(error::write_logs)?;
        // Openraft counts the entries as persisted only once the callback
        // fires, so it fires after the flush, with the flush's outcome.
        match self.dir.flush(Mark::Periodically).await {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(err) => {
                callback.log_io_completed(Err(std::io::Error::other(err.to_string())));
                Err(error::write_logs(err))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut batch = WriteBatch::new();
        for key in self
            .keys_in(Bound::Included(log_id.index), Bound::Unbounded)
            .map_err(error::write_logs)?
        {
            batch.delete(Space::Log, key);
        }
        self.dir
            .commit(&batch, "truncating the log")
            .map_err(error::write_logs)?;
        // Removed entries must not come back after a crash: they conflict
        // with the leader's log.
        self.dir
            .flush(Mark::Periodically)
            .await
            .map_err(error::write_logs)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut batch = WriteBatch::new();
        batch.put(
            Space::Raft,
            raft_keys::LAST_PURGED,
            to_json("last purged log id", &log_id).map_err(error::write_logs)?,
        );
        for key in self
            .keys_in(Bound::Unbounded, Bound::Included(log_id.index))
            .map_err(error::write_logs)?
        {
            batch.delete(Space::Log, key);
        }
        // The purge point and the deletions land together, so the log never
        // has a gap after the purge point.
        self.dir
            .commit(&batch, "purging the log")
            .map_err(error::write_logs)
    }
}
