//! Opening a store directory: create it when new, otherwise prove it intact
//! before serving anything from it.
//!
//! Layout of `<dir>`:
//! - `STORE`: schema marker text file, written last at creation;
//! - `WATERMARK`: durability watermark (see [`crate::watermark`]);
//! - `sled/`: the engine's files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::{LogId, SnapshotMeta};

use crate::codec::{from_json, log_index, raft_keys, snapshot_keys, to_json};
use crate::engine::{self, Engine, OpenFailure, Space, WriteBatch, ENGINE_DIR};
use crate::error::StoreError;
use crate::log_store::LogStore;
use crate::objects;
use crate::schema::{self, SchemaMarker, STORE_FILE};
use crate::state_machine::StateMachineStore;
use crate::store_dir::StoreDir;
use crate::types::{NodeId, TypeConfig};
use crate::watermark::{Watermark, WATERMARK_FILE};

/// Opens (or creates) the store under `dir`, e.g. `<data-dir>/raft`.
///
/// Refuses a corrupted or truncated directory with [`StoreError::Corrupt`]
/// naming the path and the reason: it never silently serves empty or
/// rolled-back state.
pub fn open(dir: &Path) -> Result<(LogStore, StateMachineStore), StoreError> {
    let store_dir = Arc::new(open_dir(dir)?);
    let machine = StateMachineStore::load(Arc::clone(&store_dir))?;
    Ok((LogStore::new(store_dir), machine))
}

fn open_dir(dir: &Path) -> Result<StoreDir, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        path: dir.to_path_buf(),
        reason,
    };
    let io = |action: &'static str, path: PathBuf| {
        move |source| StoreError::Io {
            action,
            path,
            source,
        }
    };

    let marker_path = dir.join(STORE_FILE);
    if marker_path.exists() {
        let text =
            std::fs::read_to_string(&marker_path).map_err(io("read", marker_path.clone()))?;
        let marker = SchemaMarker::from_file_text(&text).map_err(corrupt)?;
        schema::migrate(&marker).map_err(corrupt)?;
        return open_existing(dir);
    }

    let entries = list_dir(dir)?;
    if entries.is_empty() {
        return create(dir);
    }
    // No STORE file but something is there: only a creation interrupted
    // before its last step may be resumed; anything else is not ours.
    if !entries.iter().any(|name| name == ENGINE_DIR) {
        return Err(corrupt(format!(
            "directory is not empty ({}) but holds no capstan store ({STORE_FILE} is missing)",
            entries.join(", ")
        )));
    }
    let engine = open_engine(dir)?;
    match read_engine_marker(dir, engine.as_ref())? {
        Some(marker) => {
            schema::migrate(&marker).map_err(corrupt)?;
            tracing::warn!(path = %dir.display(), "resuming interrupted creation of the raft store");
            finish_creation(dir)?;
            drop(engine);
            // From here on it is an ordinary existing store: verify it fully.
            open_existing(dir)
        }
        None if engine.is_empty() => {
            tracing::warn!(path = %dir.display(), "restarting interrupted creation of the raft store");
            initialise(dir, engine)
        }
        None => Err(corrupt(format!(
            "the database holds data but no schema marker, and {STORE_FILE} is missing"
        ))),
    }
}

fn list_dir(dir: &Path) -> Result<Vec<String>, StoreError> {
    match std::fs::read_dir(dir) {
        Ok(read) => {
            let mut names = Vec::new();
            for entry in read {
                let entry = entry.map_err(|source| StoreError::Io {
                    action: "list",
                    path: dir.to_path_buf(),
                    source,
                })?;
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
            names.sort();
            Ok(names)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(StoreError::Io {
            action: "list",
            path: dir.to_path_buf(),
            source,
        }),
    }
}

fn create(dir: &Path) -> Result<StoreDir, StoreError> {
    std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
        action: "create",
        path: dir.to_path_buf(),
        source,
    })?;
    let engine = open_engine(dir)?;
    initialise(dir, engine)
}

/// Writes the schema marker into a new, empty engine.
fn initialise(dir: &Path, engine: Box<dyn Engine>) -> Result<StoreDir, StoreError> {
    let mut batch = WriteBatch::new();
    batch.put(
        Space::Raft,
        raft_keys::SCHEMA,
        to_json("schema marker", &SchemaMarker::current())?,
    );
    engine
        .commit(&batch)
        .map_err(StoreError::engine("writing the schema marker"))?;
    engine
        .flush()
        .map_err(StoreError::engine("flushing the schema marker"))?;
    finish_creation(dir)?;
    Ok(StoreDir::new(
        dir.to_path_buf(),
        engine,
        Watermark::default(),
    ))
}

/// Writes a zero watermark (unless one exists: never lower it) and, last,
/// the `STORE` file that declares the directory initialised.
fn finish_creation(dir: &Path) -> Result<(), StoreError> {
    let io = |action: &'static str| {
        move |source| StoreError::Io {
            action,
            path: dir.to_path_buf(),
            source,
        }
    };
    if !dir.join(WATERMARK_FILE).exists() {
        Watermark::default()
            .store(dir)
            .map_err(io("write the watermark in"))?;
    }
    let text = SchemaMarker::current().to_file_text();
    schema::write_file_atomically(dir, STORE_FILE, text.as_bytes())
        .map_err(io("write the marker file in"))
}

fn open_existing(dir: &Path) -> Result<StoreDir, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        path: dir.to_path_buf(),
        reason,
    };
    let engine_dir = dir.join(ENGINE_DIR);
    if list_dir(&engine_dir)?.is_empty() {
        return Err(corrupt(format!(
            "{STORE_FILE} says the store was initialised but the database directory {} is missing or empty",
            engine_dir.display()
        )));
    }
    let recorded = Watermark::load(dir).map_err(corrupt)?;
    let engine = open_engine(dir)?;
    let marker = read_engine_marker(dir, engine.as_ref())?.ok_or_else(|| {
        corrupt(
            "the database has no schema marker (its files were truncated, replaced or wiped)"
                .into(),
        )
    })?;
    schema::migrate(&marker).map_err(corrupt)?;

    let store_dir = StoreDir::new(dir.to_path_buf(), engine, recorded);
    // Here any read failure means damaged files, whatever the engine calls it.
    verify(&store_dir, &recorded).map_err(|err| match err {
        StoreError::Engine { action, source } => {
            store_dir.corrupt(format!("the database cannot be read ({action}): {source}"))
        }
        other => other,
    })?;
    Ok(store_dir)
}

fn open_engine(dir: &Path) -> Result<Box<dyn Engine>, StoreError> {
    let engine_dir = dir.join(ENGINE_DIR);
    engine::open_default(&engine_dir).map_err(|failure| match failure {
        OpenFailure::Locked => StoreError::Locked {
            path: dir.to_path_buf(),
        },
        OpenFailure::Io(source) => StoreError::Io {
            action: "open the database in",
            path: engine_dir,
            source,
        },
        OpenFailure::Damaged(reason) => StoreError::Corrupt {
            path: dir.to_path_buf(),
            reason: format!("the database cannot be opened: {reason}"),
        },
    })
}

fn read_engine_marker(dir: &Path, engine: &dyn Engine) -> Result<Option<SchemaMarker>, StoreError> {
    let Some(bytes) = engine
        .get(Space::Raft, raft_keys::SCHEMA)
        .map_err(StoreError::engine("reading the schema marker"))?
    else {
        return Ok(None);
    };
    from_json("schema marker", &bytes)
        .map(Some)
        .map_err(|reason| StoreError::Corrupt {
            path: dir.to_path_buf(),
            reason,
        })
}

/// Reads back everything the store holds: decodes every metadata record, log
/// entry and object, and checks that they agree with each other and with the
/// watermark. This costs one pass over the data at start-up; in exchange a
/// damaged page is found now rather than when a reader first touches it.
fn verify(store_dir: &StoreDir, recorded: &Watermark) -> Result<(), StoreError> {
    // Each accessor decodes its record and reports failures as Corrupt.
    let observed = store_dir.observe()?;
    store_dir.last_membership()?;
    recorded
        .check(&observed)
        .map_err(|r| store_dir.corrupt(r))?;

    let last_purged = store_dir.last_purged()?;
    verify_log(store_dir, last_purged)?;

    let last_applied = store_dir.last_applied()?;
    if let Some(purged) = last_purged {
        if last_applied
            .as_ref()
            .is_none_or(|applied| applied.index < purged.index)
        {
            return Err(store_dir.corrupt(format!(
                "the log is purged up to index {} but the state machine only reached {:?}: \
                 state machine data was lost",
                purged.index,
                last_applied.map(|a| a.index)
            )));
        }
    }

    let engine = store_dir.engine();
    let meta = engine
        .get(Space::Snapshot, snapshot_keys::META)
        .map_err(StoreError::engine("reading the snapshot"))?;
    let has_data = engine
        .get(Space::Snapshot, snapshot_keys::DATA)
        .map_err(StoreError::engine("reading the snapshot"))?
        .is_some();
    match (meta, has_data) {
        (None, false) => {}
        (Some(bytes), true) => {
            let meta: SnapshotMeta<NodeId, openraft::BasicNode> =
                from_json("snapshot meta", &bytes).map_err(|r| store_dir.corrupt(r))?;
            let snap = meta.last_log_id.map(|l| l.index);
            if snap > last_applied.map(|l| l.index) {
                return Err(store_dir.corrupt(format!(
                    "the snapshot reaches index {snap:?} but the state machine only {:?}",
                    last_applied.map(|l| l.index)
                )));
            }
        }
        _ => return Err(store_dir.corrupt("the snapshot's meta and data are not both present")),
    }
    // Every object decodes (and every page holding one is readable).
    objects::for_each(store_dir, |_| Ok(()))?;
    Ok(())
}

/// Every entry decodes, sits under its own index, and the indexes run
/// without gaps from just after the purge point.
fn verify_log(store_dir: &StoreDir, last_purged: Option<LogId<NodeId>>) -> Result<(), StoreError> {
    let mut expected = last_purged.map(|p| p.index + 1);
    let all = store_dir.engine().range(
        Space::Log,
        std::ops::Bound::Unbounded,
        std::ops::Bound::Unbounded,
    );
    for item in all {
        let (key, value) = item.map_err(StoreError::engine("reading the log"))?;
        let index = log_index(&key).map_err(|r| store_dir.corrupt(r))?;
        let entry: openraft::Entry<TypeConfig> =
            from_json(&format!("log entry {index}"), &value).map_err(|r| store_dir.corrupt(r))?;
        if entry.log_id.index != index {
            return Err(store_dir.corrupt(format!(
                "log entry stored under index {index} carries index {}",
                entry.log_id.index
            )));
        }
        if let Some(want) = expected {
            if index != want {
                return Err(store_dir.corrupt(format!(
                    "the log jumps to index {index} where {want} was expected (entries are missing)"
                )));
            }
        }
        expected = Some(index + 1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{log_key, object_key};
    use crate::types::Request;

    fn entry_json(index: u64) -> Vec<u8> {
        let entry = openraft::Entry::<TypeConfig> {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
            payload: openraft::EntryPayload::Normal(Request::Write { ops: vec![] }),
        };
        serde_json::to_vec(&entry).expect("encode entry")
    }

    /// Creates a store, lets `damage` write raw records into its engine,
    /// closes it, and returns the reason `open` refuses it.
    fn refused_after(damage: impl FnOnce(&mut WriteBatch)) -> String {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("raft");
        {
            let store_dir = open_dir(&dir).expect("create");
            let mut batch = WriteBatch::new();
            damage(&mut batch);
            store_dir.commit(&batch, "damaging").expect("commit");
        }
        match open(&dir) {
            Err(StoreError::Corrupt { path, reason }) => {
                assert_eq!(path, dir);
                reason
            }
            Err(other) => panic!("expected Corrupt, got {other}"),
            Ok(_) => panic!("a damaged store opened"),
        }
    }

    /// Raw writes that damage a store.
    type Damage = Box<dyn FnOnce(&mut WriteBatch)>;

    #[test]
    fn undecodable_or_misplaced_records_are_refused() {
        let cases: Vec<(&str, Damage, &str)> = vec![
            (
                "garbled log entry",
                Box::new(|b| {
                    b.put(Space::Log, log_key(1), entry_json(1));
                    b.put(Space::Log, log_key(2), b"{not json".to_vec());
                }),
                "log entry 2 does not decode",
            ),
            (
                "gap in the log",
                Box::new(|b| {
                    for i in [1, 2, 4] {
                        b.put(Space::Log, log_key(i), entry_json(i));
                    }
                }),
                "jumps to index 4",
            ),
            (
                "entry under the wrong index",
                Box::new(|b| b.put(Space::Log, log_key(7), entry_json(8))),
                "carries index 8",
            ),
            (
                "short log key",
                Box::new(|b| b.put(Space::Log, b"abc".to_vec(), entry_json(1))),
                "instead of 8",
            ),
            (
                "garbled vote",
                Box::new(|b| b.put(Space::Raft, raft_keys::VOTE, b"[]".to_vec())),
                "saved vote",
            ),
            (
                "garbled object",
                Box::new(|b| b.put(Space::Objects, object_key("services", "web"), vec![7, 7])),
                "services/web",
            ),
            (
                "missing schema marker",
                Box::new(|b| b.delete(Space::Raft, raft_keys::SCHEMA)),
                "no schema marker",
            ),
            (
                "newer schema marker",
                Box::new(|b| {
                    let marker = SchemaMarker {
                        schema_version: 2,
                        format: crate::engine::FORMAT.into(),
                    };
                    b.put(
                        Space::Raft,
                        raft_keys::SCHEMA,
                        serde_json::to_vec(&marker).expect("encode"),
                    );
                }),
                "newer",
            ),
            (
                "half a snapshot",
                Box::new(|b| b.put(Space::Snapshot, snapshot_keys::DATA, b"{}".to_vec())),
                "not both present",
            ),
        ];
        for (case, damage, expected) in cases {
            let reason = refused_after(damage);
            assert!(reason.contains(expected), "{case}: {reason}");
        }
    }

    #[test]
    fn interrupted_creation_is_resumed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("raft");
        // Crash after the engine and its marker were written, before STORE.
        drop(open_dir(&dir).expect("create"));
        std::fs::remove_file(dir.join(STORE_FILE)).expect("remove STORE");
        drop(open(&dir).expect("creation resumed"));
        assert!(dir.join(STORE_FILE).exists());

        // Crash right after the engine was created, before its marker.
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("raft");
        std::fs::create_dir_all(&dir).expect("mkdir");
        drop(open_engine(&dir).expect("engine"));
        drop(open(&dir).expect("creation restarted"));
        drop(open(&dir).expect("and the store reopens"));
    }
}
