//! The crate's one error type, and its conversion at the openraft boundary.

use std::path::PathBuf;

use openraft::{StorageError, StorageIOError};

use crate::engine::EngineError;
use crate::types::NodeId;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store directory holds damaged, truncated or foreign data.
    #[error(
        "raft store at {} is corrupt: {reason}. Refusing to serve partial or empty state; \
         restore the directory from a backup, or move it aside and re-join this manager to \
         the cluster so that it receives a snapshot from the leader",
        .path.display()
    )]
    Corrupt {
        /// The store directory.
        path: PathBuf,
        /// What was found to be wrong.
        reason: String,
    },

    /// The store is already open, in this process or another one.
    #[error(
        "raft store at {} is already in use (its database lock is held); stop the other \
         capstan process using this data directory, or give this one its own --data-dir",
        .path.display()
    )]
    Locked {
        /// The store directory.
        path: PathBuf,
    },

    /// A file-system operation on the store directory failed.
    #[error(
        "cannot {action} {}: {source}; check that the data directory exists, is writable by \
         this user and that the disk is not full",
        .path.display()
    )]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },

    /// The storage engine failed while reading or writing.
    #[error(
        "storage engine failed while {action}: {source}; check free disk space and the health \
         of the disk holding the data directory"
    )]
    Engine {
        /// What was being done.
        action: &'static str,
        /// The engine's error.
        #[source]
        source: EngineError,
    },

    /// A value could not be serialised (a bug, not an operator problem).
    #[error("could not encode {what}: {reason}; this is a bug in capstan-store, please report it")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The encoder's message.
        reason: String,
    },

    /// A snapshot received from the leader could not be decoded.
    #[error(
        "snapshot received from the leader is invalid: {reason}; the leader will resend it, \
         check that all managers run the same capstan version"
    )]
    BadSnapshot {
        /// What was wrong with it.
        reason: String,
    },
}

impl StoreError {
    /// Wraps an engine error with what was being done.
    pub(crate) fn engine(action: &'static str) -> impl FnOnce(EngineError) -> StoreError {
        move |source| StoreError::Engine { action, source }
    }
}

/// Converts into openraft's error for log reads.
pub(crate) fn read_logs(err: StoreError) -> StorageError<NodeId> {
    StorageIOError::read_logs(&err).into()
}

/// Converts into openraft's error for log writes.
pub(crate) fn write_logs(err: StoreError) -> StorageError<NodeId> {
    StorageIOError::write_logs(&err).into()
}

/// Converts into openraft's error for vote reads.
pub(crate) fn read_vote(err: StoreError) -> StorageError<NodeId> {
    StorageIOError::read_vote(&err).into()
}

/// Converts into openraft's error for vote writes.
pub(crate) fn write_vote(err: StoreError) -> StorageError<NodeId> {
    StorageIOError::write_vote(&err).into()
}

/// Converts into openraft's error for state-machine reads.
pub(crate) fn read_machine(err: StoreError) -> StorageError<NodeId> {
    StorageIOError::read_state_machine(&err).into()
}

/// Converts into openraft's error for snapshot reads.
pub(crate) fn read_snapshot(err: StoreError) -> StorageError<NodeId> {
    StorageIOError::read_snapshot(None, &err).into()
}

/// Converts into openraft's error for snapshot writes.
pub(crate) fn write_snapshot(err: StoreError) -> StorageError<NodeId> {
    StorageIOError::write_snapshot(None, &err).into()
}
