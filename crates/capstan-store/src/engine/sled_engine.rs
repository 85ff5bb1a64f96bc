//! [`Engine`] on sled 0.34: one sled tree per [`Space`].

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::ops::Bound;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use super::{
    Engine, EngineError, EngineFuture, OpenFailure, Pair, PairIter, Space, Write, WriteBatch,
};

/// sled database with one tree per space.
pub(crate) struct SledEngine {
    db: sled::Db,
    trees: BTreeMap<Space, sled::Tree>,
}

impl SledEngine {
    pub(crate) const DIR_NAME: &'static str = "sled";
    pub(crate) const FORMAT: &'static str = "sled-0.34/capstan-v1";

    /// Opens (creating if needed) the database in `dir`.
    ///
    /// sled 0.34 panics instead of returning an error on some damaged files,
    /// so the open is guarded and a panic is reported as [`OpenFailure::Damaged`].
    pub(crate) fn open(dir: &Path) -> Result<Self, OpenFailure> {
        let attempt = catch_unwind(AssertUnwindSafe(|| Self::open_unguarded(dir)));
        match attempt {
            Ok(result) => result,
            Err(panic) => Err(OpenFailure::Damaged(format!(
                "the storage engine crashed while reading its files: {}",
                panic_message(&panic)
            ))),
        }
    }

    fn open_unguarded(dir: &Path) -> Result<Self, OpenFailure> {
        let db = sled::Config::new().path(dir).open().map_err(classify)?;
        let mut trees = BTreeMap::new();
        for space in Space::ALL {
            let tree = db.open_tree(space.name()).map_err(classify)?;
            trees.insert(space, tree);
        }
        Ok(Self { db, trees })
    }

    fn tree(&self, space: Space) -> &sled::Tree {
        // Every space is opened in `open`, so the lookup cannot miss.
        &self.trees[&space]
    }
}

fn classify(err: sled::Error) -> OpenFailure {
    match err {
        sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
            OpenFailure::Locked
        }
        sled::Error::Io(io)
            if matches!(io.kind(), ErrorKind::PermissionDenied | ErrorKind::NotFound) =>
        {
            OpenFailure::Io(io)
        }
        other => OpenFailure::Damaged(other.to_string()),
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

fn pair(item: sled::Result<(sled::IVec, sled::IVec)>) -> Result<Pair, EngineError> {
    item.map(|(k, v)| (k.to_vec(), v.to_vec()))
        .map_err(EngineError::new)
}

impl Engine for SledEngine {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        let value = self.tree(space).get(key).map_err(EngineError::new)?;
        Ok(value.map(|v| v.to_vec()))
    }

    fn range(&self, space: Space, from: Bound<Vec<u8>>, to: Bound<Vec<u8>>) -> PairIter<'_> {
        Box::new(self.tree(space).range((from, to)).map(pair))
    }

    fn scan_prefix(&self, space: Space, prefix: &[u8]) -> PairIter<'_> {
        Box::new(self.tree(space).scan_prefix(prefix).map(pair))
    }

    fn last(&self, space: Space) -> Result<Option<Pair>, EngineError> {
        self.tree(space)
            .last()
            .map_err(EngineError::new)
            .map(|o| o.map(|(k, v)| (k.to_vec(), v.to_vec())))
    }

    fn is_empty(&self) -> bool {
        self.trees.values().all(|t| t.is_empty())
    }

    fn commit(&self, batch: &WriteBatch) -> Result<(), EngineError> {
        let mut per_space: BTreeMap<Space, sled::Batch> = BTreeMap::new();
        for write in &batch.writes {
            match write {
                Write::Put(space, key, value) => per_space
                    .entry(*space)
                    .or_default()
                    .insert(key.as_slice(), value.as_slice()),
                Write::Delete(space, key) => {
                    per_space.entry(*space).or_default().remove(key.as_slice())
                }
            }
        }
        match per_space.len() {
            0 => Ok(()),
            1 => {
                let (space, one) = per_space.into_iter().next().expect("length checked above");
                // A single-tree batch is atomic in sled, also across a crash.
                self.tree(space).apply_batch(one).map_err(EngineError::new)
            }
            _ => {
                let trees: Vec<sled::Tree> =
                    per_space.keys().map(|s| self.tree(*s).clone()).collect();
                let batches: Vec<sled::Batch> = per_space.into_values().collect();
                let result: Result<(), TransactionError<()>> =
                    trees.as_slice().transaction(|views| {
                        for (view, one) in views.iter().zip(&batches) {
                            view.apply_batch(one)?;
                        }
                        Ok::<(), ConflictableTransactionError<()>>(())
                    });
                result.map_err(|e| match e {
                    TransactionError::Storage(e) => EngineError::new(e),
                    TransactionError::Abort(()) => {
                        EngineError::new(std::io::Error::other("transaction aborted"))
                    }
                })
            }
        }
    }

    fn flush(&self) -> Result<(), EngineError> {
        self.db.flush().map(|_| ()).map_err(EngineError::new)
    }

    fn flush_async(&self) -> EngineFuture<'_, Result<(), EngineError>> {
        Box::pin(async move {
            self.db
                .flush_async()
                .await
                .map(|_| ())
                .map_err(EngineError::new)
        })
    }
}
