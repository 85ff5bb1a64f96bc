//! The key-value engine under the store.
//!
//! Architecture invariant: this module (and its one implementation,
//! `sled_engine`) is the only place that knows which embedded database holds
//! our bytes. Everything above it speaks in [`Space`]s, byte keys and atomic
//! [`WriteBatch`]es, so replacing sled means writing one new `Engine` impl.

mod sled_engine;

use std::future::Future;
use std::ops::Bound;
use std::path::Path;
use std::pin::Pin;

pub(crate) use sled_engine::SledEngine;

/// A named keyspace. Each maps to one tree / column family in the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Space {
    /// Schema marker, vote, committed and last-purged log ids.
    Raft,
    /// Raft log entries keyed by big-endian index.
    Log,
    /// State-machine metadata: last applied log id and membership.
    Machine,
    /// Application objects keyed `table \0 id`.
    Objects,
    /// The current snapshot: its meta and its data.
    Snapshot,
}

impl Space {
    /// Every space, in a fixed order (used to open them all at start).
    pub(crate) const ALL: [Space; 5] = [
        Space::Raft,
        Space::Log,
        Space::Machine,
        Space::Objects,
        Space::Snapshot,
    ];

    /// The stable on-disk name of the space.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Space::Raft => "raft",
            Space::Log => "log",
            Space::Machine => "machine",
            Space::Objects => "objects",
            Space::Snapshot => "snapshot",
        }
    }
}

/// One key/value pair read from a space.
pub(crate) type Pair = (Vec<u8>, Vec<u8>);

/// An iterator over pairs in key order.
pub(crate) type PairIter<'a> = Box<dyn Iterator<Item = Result<Pair, EngineError>> + Send + 'a>;

/// A future returned by the engine (kept object-safe so stores hold `dyn Engine`).
pub(crate) type EngineFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Writes across one or more spaces that the engine applies all-or-nothing,
/// also across a crash.
#[derive(Debug, Default)]
pub(crate) struct WriteBatch {
    pub(crate) writes: Vec<Write>,
}

/// One write inside a [`WriteBatch`].
#[derive(Debug)]
pub(crate) enum Write {
    Put(Space, Vec<u8>, Vec<u8>),
    Delete(Space, Vec<u8>),
}

impl WriteBatch {
    /// An empty batch.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value` in `space`.
    pub(crate) fn put(&mut self, space: Space, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.writes
            .push(Write::Put(space, key.into(), value.into()));
    }

    /// Removes `key` from `space` (a no-op if absent).
    pub(crate) fn delete(&mut self, space: Space, key: impl Into<Vec<u8>>) {
        self.writes.push(Write::Delete(space, key.into()));
    }
}

/// The operations the store needs from an embedded ordered key-value engine.
pub(crate) trait Engine: Send + Sync + 'static {
    /// Reads one key.
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError>;

    /// Iterates keys within the bounds, ascending.
    fn range(&self, space: Space, from: Bound<Vec<u8>>, to: Bound<Vec<u8>>) -> PairIter<'_>;

    /// Iterates keys starting with `prefix`, ascending.
    fn scan_prefix(&self, space: Space, prefix: &[u8]) -> PairIter<'_>;

    /// The largest key in the space.
    fn last(&self, space: Space) -> Result<Option<Pair>, EngineError>;

    /// True when no space holds any key.
    fn is_empty(&self) -> bool;

    /// Applies every write of the batch atomically.
    fn commit(&self, batch: &WriteBatch) -> Result<(), EngineError>;

    /// Makes everything committed so far durable (blocking the calling thread).
    fn flush(&self) -> Result<(), EngineError>;

    /// Makes everything committed so far durable, without blocking the runtime.
    fn flush_async(&self) -> EngineFuture<'_, Result<(), EngineError>>;
}

/// Why the engine could not open its directory.
#[derive(Debug)]
pub(crate) enum OpenFailure {
    /// Another handle (this or another process) holds the engine's lock.
    Locked,
    /// The operating system refused access (permissions, missing parent...).
    Io(std::io::Error),
    /// The engine's files are damaged; the engine said or panicked with this.
    Damaged(String),
}

/// Opens the default engine in `dir`, creating it when absent.
///
/// sled releases its file lock from background threads that outlive the
/// handle for a moment, so a store closed and reopened in the same process
/// can briefly look locked; the open retries for [`LOCK_GRACE`] before it
/// reports [`OpenFailure::Locked`].
pub(crate) fn open_default(dir: &Path) -> Result<Box<dyn Engine>, OpenFailure> {
    let deadline = std::time::Instant::now() + LOCK_GRACE;
    loop {
        match SledEngine::open(dir) {
            Err(OpenFailure::Locked) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            other => return other.map(|engine| Box::new(engine) as Box<dyn Engine>),
        }
    }
}

/// How long an open waits for a just-released lock.
const LOCK_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Name of the engine's directory inside the store directory.
pub(crate) const ENGINE_DIR: &str = SledEngine::DIR_NAME;

/// A tag naming the engine and our encoding; recorded at creation and checked
/// at every open so data written by another engine is never misread.
pub(crate) const FORMAT: &str = SledEngine::FORMAT;

/// An error raised by the storage engine while reading or writing.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EngineError(Box<dyn std::error::Error + Send + Sync>);

impl EngineError {
    pub(crate) fn new(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(err))
    }
}
