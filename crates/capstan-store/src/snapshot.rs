//! Snapshots: the whole state machine as one self-describing blob, how it is
//! kept as the "current snapshot", and how installing one replaces the
//! objects.

use std::cmp::Ordering;
use std::io::Cursor;

use openraft::{BasicNode, LogId, Snapshot, SnapshotMeta, StoredMembership};
use serde::{Deserialize, Serialize};

use crate::codec::{from_json, machine_keys, object_key, snapshot_keys, to_json};
use crate::engine::{Space, WriteBatch};
use crate::error::StoreError;
use crate::objects;
use crate::store_dir::StoreDir;
use crate::types::{Change, NodeId, StoredObject, TypeConfig};

/// Version of the snapshot blob layout.
const SNAPSHOT_FORMAT: u32 = 1;

/// The snapshot blob: every object plus the state machine's position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SnapshotPayload {
    pub(crate) format: u32,
    pub(crate) last_applied: Option<LogId<NodeId>>,
    pub(crate) last_membership: StoredMembership<NodeId, BasicNode>,
    pub(crate) objects: Vec<StoredObject>,
}

impl SnapshotPayload {
    /// Reads the whole state machine. The caller holds the state machine's
    /// write lock so the objects and the position agree.
    pub(crate) fn read(dir: &StoreDir) -> Result<Self, StoreError> {
        Ok(Self {
            format: SNAPSHOT_FORMAT,
            last_applied: dir.last_applied()?,
            last_membership: dir.last_membership()?,
            objects: objects::all(dir)?,
        })
    }

    pub(crate) fn encode(&self) -> Result<Vec<u8>, StoreError> {
        to_json("snapshot", self)
    }

    /// Parses a blob received from a leader.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let payload: Self =
            from_json("snapshot", bytes).map_err(|reason| StoreError::BadSnapshot { reason })?;
        if payload.format != SNAPSHOT_FORMAT {
            return Err(StoreError::BadSnapshot {
                reason: format!(
                    "snapshot format {} is not the {SNAPSHOT_FORMAT} this build reads",
                    payload.format
                ),
            });
        }
        if let Some(bad) = payload.objects.iter().find(|o| o.table.contains('\0')) {
            return Err(StoreError::BadSnapshot {
                reason: format!("object table {:?} contains NUL", bad.table),
            });
        }
        Ok(payload)
    }
}

/// Adds "make this the current snapshot" to `batch`.
pub(crate) fn save_current(
    batch: &mut WriteBatch,
    meta: &SnapshotMeta<NodeId, BasicNode>,
    data: &[u8],
) -> Result<(), StoreError> {
    batch.put(
        Space::Snapshot,
        snapshot_keys::META,
        to_json("snapshot meta", meta)?,
    );
    batch.put(Space::Snapshot, snapshot_keys::DATA, data.to_vec());
    Ok(())
}

/// The current snapshot, if one was built or installed.
pub(crate) fn current(dir: &StoreDir) -> Result<Option<Snapshot<TypeConfig>>, StoreError> {
    let Some(meta) = dir.get_json::<SnapshotMeta<NodeId, BasicNode>>(
        Space::Snapshot,
        snapshot_keys::META,
        "snapshot meta",
    )?
    else {
        return Ok(None);
    };
    let data = dir
        .engine()
        .get(Space::Snapshot, snapshot_keys::DATA)
        .map_err(StoreError::engine("reading the snapshot"))?
        .ok_or_else(|| dir.corrupt("the current snapshot has meta but no data"))?;
    Ok(Some(Snapshot {
        meta,
        snapshot: Box::new(Cursor::new(data)),
    }))
}

/// Adds to `batch` the writes that turn the current objects into exactly
/// `payload`'s, and its position; returns the changes watchers should see.
pub(crate) fn replace_state(
    dir: &StoreDir,
    batch: &mut WriteBatch,
    payload: SnapshotPayload,
) -> Result<Vec<Change>, StoreError> {
    let index = payload.last_applied.map(|l| l.index).unwrap_or(0);
    let mut incoming: Vec<(Vec<u8>, StoredObject)> = payload
        .objects
        .into_iter()
        .map(|o| (object_key(&o.table, &o.id), o))
        .collect();
    incoming.sort_by(|a, b| a.0.cmp(&b.0));
    let mut existing: Vec<(Vec<u8>, StoredObject)> = objects::all(dir)?
        .into_iter()
        .map(|o| (object_key(&o.table, &o.id), o))
        .collect();
    existing.sort_by(|a, b| a.0.cmp(&b.0));

    let mut changes = Vec::new();
    let mut old = existing.into_iter().peekable();
    let mut new = incoming.into_iter().peekable();
    loop {
        let order = match (old.peek(), new.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(o), Some(n)) => o.0.cmp(&n.0),
        };
        match order {
            Ordering::Less => {
                let Some((key, gone)) = old.next() else { break };
                batch.delete(Space::Objects, key);
                changes.push(Change {
                    log_index: index,
                    object: gone,
                    deleted: true,
                });
            }
            Ordering::Greater => {
                let Some((key, added)) = new.next() else {
                    break;
                };
                put_object(batch, key, &added);
                changes.push(Change {
                    log_index: index,
                    object: added,
                    deleted: false,
                });
            }
            Ordering::Equal => {
                let (Some((_, before)), Some((key, after))) = (old.next(), new.next()) else {
                    break;
                };
                if before != after {
                    put_object(batch, key, &after);
                    changes.push(Change {
                        log_index: index,
                        object: after,
                        deleted: false,
                    });
                }
            }
        }
    }

    match payload.last_applied {
        Some(id) => batch.put(
            Space::Machine,
            machine_keys::LAST_APPLIED,
            to_json("last applied log id", &id)?,
        ),
        None => batch.delete(Space::Machine, machine_keys::LAST_APPLIED),
    }
    batch.put(
        Space::Machine,
        machine_keys::LAST_MEMBERSHIP,
        to_json("last membership", &payload.last_membership)?,
    );
    Ok(changes)
}

fn put_object(batch: &mut WriteBatch, key: Vec<u8>, object: &StoredObject) {
    batch.put(Space::Objects, key, objects::to_record(object).encode());
}
