//! The replicated state machine: application objects, applied position,
//! membership, snapshots, and the watch stream of committed changes.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StoredMembership,
};
use tokio::sync::{broadcast, Mutex};

use crate::apply::{plan, Plan};
use crate::codec::{machine_keys, object_key, to_json, ObjectRecord};
use crate::engine::{Space, WriteBatch};
use crate::error::{self, StoreError};
use crate::objects;
use crate::snapshot::{self, SnapshotPayload};
use crate::store_dir::{Mark, StoreDir};
use crate::types::{Change, NodeId, Op, Request, Response, StoredObject, TypeConfig};

/// How many changes a watcher may fall behind before it gets `Lagged`.
pub const WATCH_CAPACITY: usize = 4096;

/// The state machine of one store directory. Cheap to clone; clones share
/// the directory, the watch channel and the write lock.
#[derive(Clone)]
pub struct StateMachineStore {
    dir: Arc<StoreDir>,
    shared: Arc<Shared>,
}

struct Shared {
    /// Serialises apply, snapshot build and snapshot install, so a snapshot
    /// sees objects and position from the same instant.
    write: Mutex<()>,
    /// Last applied index, for cheap reads (0 before anything is applied).
    applied: AtomicU64,
    changes: broadcast::Sender<Change>,
    snapshot_seq: AtomicU64,
}

impl StateMachineStore {
    pub(crate) fn load(dir: Arc<StoreDir>) -> Result<Self, StoreError> {
        let applied = dir.last_applied()?.map(|l| l.index).unwrap_or(0);
        let (changes, _) = broadcast::channel(WATCH_CAPACITY);
        Ok(Self {
            dir,
            shared: Arc::new(Shared {
                write: Mutex::new(()),
                applied: AtomicU64::new(applied),
                changes,
                snapshot_seq: AtomicU64::new(0),
            }),
        })
    }

    /// One object, or `None` if it does not exist. Reads local state: it may
    /// lag the leader (use Raft's linearizable read first when that matters).
    pub fn get(&self, table: &str, id: &str) -> Result<Option<StoredObject>, StoreError> {
        objects::get(&self.dir, table, id)
    }

    /// Objects of `table` whose id starts with `prefix`, ordered by id; at
    /// most `limit` of them (0 = all).
    pub fn list(
        &self,
        table: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<StoredObject>, StoreError> {
        objects::list(&self.dir, table, prefix, limit)
    }

    /// Every object with the applied index they are the state at: read
    /// under the apply lock, so no entry lands half-way through (what a
    /// backup holds).
    pub async fn export(&self) -> Result<(u64, Vec<StoredObject>), StoreError> {
        let _write = self.shared.write.lock().await;
        Ok((self.applied_index(), objects::all(&self.dir)?))
    }

    /// Index of the last log entry applied (0 before any).
    pub fn applied_index(&self) -> u64 {
        self.shared.applied.load(Ordering::Acquire)
    }

    /// A receiver of every change committed from now on, one [`Change`] per
    /// object, in log order. A receiver that falls more than
    /// [`WATCH_CAPACITY`] changes behind gets `RecvError::Lagged` and should
    /// re-list.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.shared.changes.subscribe()
    }

    fn publish(&self, changes: Vec<Change>) {
        for change in changes {
            // No receivers is fine: nobody is watching.
            let _ = self.shared.changes.send(change);
        }
    }

    /// Applies one entry: commits its effect together with the new position.
    fn apply_entry(
        &self,
        entry: &Entry<TypeConfig>,
    ) -> Result<(Response, Vec<Change>), StoreError> {
        let index = entry.log_id.index;
        let mut batch = WriteBatch::new();
        let mut changes = Vec::new();
        let response = match &entry.payload {
            EntryPayload::Blank => written_nothing(index),
            EntryPayload::Membership(membership) => {
                let stored = StoredMembership::new(Some(entry.log_id), membership.clone());
                batch.put(
                    Space::Machine,
                    machine_keys::LAST_MEMBERSHIP,
                    to_json("last membership", &stored)?,
                );
                written_nothing(index)
            }
            EntryPayload::Normal(request) => {
                self.plan_write(index, request, &mut batch, &mut changes)?
            }
        };
        batch.put(
            Space::Machine,
            machine_keys::LAST_APPLIED,
            to_json("last applied log id", &entry.log_id)?,
        );
        self.dir.commit(&batch, "applying a log entry")?;
        self.shared.applied.store(index, Ordering::Release);
        Ok((response, changes))
    }

    fn plan_write(
        &self,
        index: u64,
        request: &Request,
        batch: &mut WriteBatch,
        changes: &mut Vec<Change>,
    ) -> Result<Response, StoreError> {
        // Objects written earlier in this entry, which later writes of a
        // `Request::Batch` must see.
        let mut overlay: HashMap<(String, String), Option<ObjectRecord>> = HashMap::new();
        match request {
            Request::Write { ops } => self.plan_ops(index, ops, batch, changes, &mut overlay),
            Request::Batch { writes } => Ok(Response::Batch(
                writes
                    .iter()
                    .map(|ops| self.plan_ops(index, ops, batch, changes, &mut overlay))
                    .collect::<Result<_, _>>()?,
            )),
        }
    }

    fn plan_ops(
        &self,
        index: u64,
        ops: &[Op],
        batch: &mut WriteBatch,
        changes: &mut Vec<Change>,
        overlay: &mut HashMap<(String, String), Option<ObjectRecord>>,
    ) -> Result<Response, StoreError> {
        let decision = plan(index, ops, |table, id| {
            match overlay.get(&(table.to_string(), id.to_string())) {
                Some(record) => Ok(record.clone()),
                None => objects::get_record(&self.dir, table, id),
            }
        })?;
        Ok(match decision {
            Plan::Rejected(reason) => Response::Rejected { reason },
            Plan::Conflict(conflict) => Response::Conflict(conflict),
            Plan::Apply(steps) => {
                for step in &steps {
                    let key = object_key(&step.table, &step.id);
                    match &step.after {
                        Some(record) => batch.put(Space::Objects, key, record.encode()),
                        None => batch.delete(Space::Objects, key),
                    }
                    overlay.insert((step.table.clone(), step.id.clone()), step.after.clone());
                }
                changes.extend(steps.iter().filter_map(|s| s.change(index)));
                Response::Written {
                    index,
                    objects: steps.iter().map(|s| s.written(index)).collect(),
                }
            }
        })
    }

    async fn build(&self) -> Result<Snapshot<TypeConfig>, StoreError> {
        let (meta, data) = {
            let _write = self.shared.write.lock().await;
            let payload = SnapshotPayload::read(&self.dir)?;
            let data = payload.encode()?;
            let meta = SnapshotMeta {
                last_log_id: payload.last_applied,
                last_membership: payload.last_membership,
                snapshot_id: self.next_snapshot_id(payload.last_applied),
            };
            let mut batch = WriteBatch::new();
            snapshot::save_current(&mut batch, &meta, &data)?;
            self.dir.commit(&batch, "saving a snapshot")?;
            (meta, data)
        };
        // Openraft purges the log up to the snapshot next: it must be durable.
        self.dir.flush(Mark::Now).await?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }

    fn next_snapshot_id(&self, last: Option<LogId<NodeId>>) -> String {
        let seq = self.shared.snapshot_seq.fetch_add(1, Ordering::Relaxed);
        match last {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, seq),
            None => format!("none-{seq}"),
        }
    }

    async fn install(
        &self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        data: Vec<u8>,
    ) -> Result<(), StoreError> {
        let mut payload = SnapshotPayload::decode(&data)?;
        if payload.last_applied != meta.last_log_id {
            return Err(StoreError::BadSnapshot {
                reason: format!(
                    "snapshot data ends at {:?} but its meta says {:?}",
                    payload.last_applied, meta.last_log_id
                ),
            });
        }
        payload.last_membership = meta.last_membership.clone();
        let changes = {
            let _write = self.shared.write.lock().await;
            let mut batch = WriteBatch::new();
            let changes = snapshot::replace_state(&self.dir, &mut batch, payload)?;
            snapshot::save_current(&mut batch, meta, &data)?;
            // Objects, position and current snapshot change in one atomic step.
            self.dir.commit(&batch, "installing a snapshot")?;
            let index = meta.last_log_id.map(|l| l.index).unwrap_or(0);
            self.shared.applied.store(index, Ordering::Release);
            changes
        };
        self.dir.flush(Mark::Now).await?;
        self.publish(changes);
        Ok(())
    }
}

fn written_nothing(index: u64) -> Response {
    Response::Written {
        index,
        objects: Vec::new(),
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        self.build().await.map_err(error::write_snapshot)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>>
    {
        let applied = self.dir.last_applied().map_err(error::read_machine)?;
        let membership = self.dir.last_membership().map_err(error::read_machine)?;
        Ok((applied, membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut responses = Vec::new();
        let _write = self.shared.write.lock().await;
        for entry in entries {
            let (response, changes) = self.apply_entry(&entry).map_err(|e| {
                StorageError::from(openraft::StorageIOError::apply(entry.log_id, &e))
            })?;
            self.publish(changes);
            responses.push(response);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        self.install(meta, snapshot.into_inner())
            .await
            .map_err(error::write_snapshot)
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        snapshot::current(&self.dir).map_err(error::read_snapshot)
    }
}
