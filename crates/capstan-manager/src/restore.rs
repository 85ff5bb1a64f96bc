//! Restoring a backup: a new one-manager cluster on this machine with every
//! object of the backup, the same cluster id and CA (so existing client
//! bundles and worker certificates stay valid), and new join tokens.
//!
//! Like install, it is two steps: [`restore`] checks the whole backup and
//! writes the data directory; the manager's first start
//! ([`finish_restore`]) initialises Raft and writes the objects through it.

use std::collections::BTreeSet;

use capstan_core::{decode, encode, ClusterInfo, Node, NodeRole, NodeState, Table, Task};
use capstan_pki::{ClusterCa, JoinToken};
use capstan_store::{Action, Expect, Op, StoredObject, MAX_BATCH_BYTES};
use time::OffsetDateTime;

use crate::backup::{Contents, Manifest};
use crate::bootstrap::{first_manager, write_first_manager, Site};
use crate::error::ManagerError;
use crate::paths::DataDir;
use crate::state::SharedState;
use crate::NodeConfig;

/// Writes a restored manager's data directory from an opened backup. Refuses
/// a directory that already holds a node; writes nothing when any check
/// fails.
pub fn restore(
    dir: &DataDir,
    site: &Site,
    manifest: &Manifest,
    contents: Contents,
) -> Result<NodeConfig, ManagerError> {
    if dir.is_installed() {
        return Err(ManagerError::AlreadyInstalled {
            path: dir.root().to_path_buf(),
        });
    }
    let ca = ClusterCa::from_pem(&contents.ca_cert_pem, &contents.ca_key_pem)?;
    if ca.cluster_id() != manifest.cluster_id {
        return Err(ManagerError::Invalid(format!(
            "the backup's CA belongs to cluster {}, its manifest names {}",
            ca.cluster_id(),
            manifest.cluster_id
        )));
    }
    let secret_key = crate::swarm::SecretKey::from_bytes(&contents.secret_key_bytes()?)?;
    let (config, node) = first_manager(site, &manifest.cluster_id, &ca)?;
    let objects = restored_objects(contents.objects, &node.record, &ca)?;
    let pending = serde_json::to_vec(&objects)
        .map_err(|e| ManagerError::Invalid(format!("encoding the restored objects: {e}")))?;
    write_first_manager(
        dir,
        &config,
        &ca,
        secret_key.bytes(),
        &node,
        (&dir.restore(), &pending),
    )?;
    Ok(config)
}

/// The backup's objects as the restored cluster holds them: its old
/// managers and their tasks gone (they are not members of the new Raft
/// group; services get new tasks), its workers marked down until their
/// agents report again, new join tokens, and this manager.
fn restored_objects(
    objects: Vec<StoredObject>,
    me: &Node,
    ca: &ClusterCa,
) -> Result<Vec<StoredObject>, ManagerError> {
    let now = OffsetDateTime::now_utc();
    let mut old_managers = BTreeSet::new();
    for o in objects.iter().filter(|o| o.table == Node::TABLE) {
        let node: Node = decode(&o.value)?;
        if node.role == NodeRole::Manager {
            old_managers.insert(node.id);
        }
    }
    let mut out = Vec::with_capacity(objects.len() + 1);
    let mut cluster_seen = false;
    for mut o in objects {
        match o.table.as_str() {
            Node::TABLE => {
                let mut node: Node = decode(&o.value)?;
                if old_managers.contains(&node.id) {
                    continue;
                }
                node.state = NodeState::Down;
                node.updated_at = now;
                o.value = encode(&node);
            }
            Task::TABLE => {
                let task: Task = decode(&o.value)?;
                if task.node_id.is_some_and(|n| old_managers.contains(&n)) {
                    continue;
                }
            }
            ClusterInfo::TABLE => {
                let mut info: ClusterInfo = decode(&o.value)?;
                let digest = ca.digest();
                info.ca_digest = digest.to_string();
                info.worker_secret = JoinToken::generate(digest.clone()).secret;
                info.manager_secret = JoinToken::generate(digest).secret;
                o.value = encode(&info);
                cluster_seen = true;
            }
            _ => {}
        }
        out.push(o);
    }
    if !cluster_seen {
        return Err(ManagerError::Invalid(
            "the backup holds no cluster record".into(),
        ));
    }
    out.push(StoredObject {
        table: Node::TABLE.into(),
        id: me.id(),
        version: 0,
        created_index: 0,
        value: encode(me),
    });
    Ok(out)
}

/// Initialises Raft on a restored manager and writes the backup's objects.
/// Safe to run again after a crash at any point: the writes are plain puts.
pub async fn finish_restore(state: &SharedState) -> Result<(), ManagerError> {
    let path = state.dir.restore();
    if !path.exists() {
        return Ok(());
    }
    let bytes = std::fs::read(&path).map_err(|e| ManagerError::file("read", &path, e))?;
    let objects: Vec<StoredObject> =
        serde_json::from_slice(&bytes).map_err(|e| ManagerError::BadConfig {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    crate::bootstrap::lead_alone(state).await?;
    let count = objects.len();
    let mut batch = Vec::new();
    let mut batch_bytes = 0;
    for o in objects {
        let size = o.value.len() + o.table.len() + o.id.len();
        if !batch.is_empty() && (batch_bytes + size > MAX_BATCH_BYTES / 2 || batch.len() >= 512) {
            state.write(std::mem::take(&mut batch), false).await?;
            batch_bytes = 0;
        }
        batch_bytes += size;
        batch.push(Op {
            table: o.table,
            id: o.id,
            action: Action::Put(o.value),
            expect: Expect::Any,
        });
    }
    if !batch.is_empty() {
        state.write(batch, false).await?;
    }
    std::fs::remove_file(&path).map_err(|e| ManagerError::file("remove", &path, e))?;
    tracing::info!(
        objects = count,
        "restore finished: the backup's objects are written"
    );
    Ok(())
}
