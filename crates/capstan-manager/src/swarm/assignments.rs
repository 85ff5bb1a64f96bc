//! What each node should run: its tasks, with the secrets, configs and
//! networks they use.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use capstan_core::{decode, Config, Network, NodeId, Secret, Table, Task, TaskState};
use capstan_proto::v1 as pb;

use super::pull_ticket::Tickets;
use crate::error::ManagerError;
use crate::state::SharedState;

/// Table of per-service registry credentials (X-Registry-Auth), sealed like
/// secrets and kept apart from the service so that reads never return them.
pub const REGISTRY_AUTH_TABLE: &str = "registry_auth";

/// The assignments of each node in `nodes`, with a fingerprint of each, from
/// one scan of the tasks table.
pub fn compute(
    state: &SharedState,
    nodes: &HashSet<NodeId>,
) -> Result<HashMap<NodeId, (pb::Assignments, u64)>, ManagerError> {
    let mut out: HashMap<NodeId, (Vec<pb::AssignedTask>, DefaultHasher)> = nodes
        .iter()
        .map(|n| (*n, (Vec::new(), DefaultHasher::new())))
        .collect();
    let tickets = Tickets::load(state)?;
    for obj in state.sm.list(Task::TABLE, "", 0)? {
        let task: Task = decode(&obj.value)?;
        let Some(node) = task.node_id else { continue };
        let Some((tasks, hasher)) = out.get_mut(&node) else {
            continue;
        };
        if task.desired_state == TaskState::Remove {
            continue;
        }
        (obj.id.as_str(), obj.version).hash(hasher);
        tasks.push(assigned_task(state, &tickets, &task, obj.value, hasher)?);
    }
    Ok(out
        .into_iter()
        .map(|(n, (tasks, h))| (n, (pb::Assignments { tasks }, h.finish().max(1))))
        .collect())
}

/// One task with the data it needs on the node.
fn assigned_task(
    state: &SharedState,
    tickets: &Tickets,
    task: &Task,
    raw: Vec<u8>,
    hasher: &mut DefaultHasher,
) -> Result<pb::AssignedTask, ManagerError> {
    let mut secrets = Vec::new();
    for r in &task.spec.container.secrets {
        if let Some(o) = state.sm.get(Secret::TABLE, &r.id)? {
            let secret: Secret = decode(&o.value)?;
            secrets.push(pb::FileData {
                id: r.id.clone(),
                data: state.swarm.secret_key.open(&secret.sealed)?,
            });
            o.version.hash(hasher);
        }
    }
    let mut configs = Vec::new();
    for r in &task.spec.container.configs {
        if let Some(o) = state.sm.get(Config::TABLE, &r.id)? {
            let config: Config = decode(&o.value)?;
            configs.push(pb::FileData {
                id: r.id.clone(),
                data: config.data,
            });
            o.version.hash(hasher);
        }
    }
    let mut networks = Vec::new();
    for id in &task.spec.networks {
        if let Some(o) = state.sm.get(Network::TABLE, id)? {
            decode::<Network>(&o.value)?;
            networks.push(o.value);
        }
    }
    let registry_auth = match state.sm.get(REGISTRY_AUTH_TABLE, &task.service_id)? {
        Some(o) => String::from_utf8_lossy(&state.swarm.secret_key.open(&o.value)?).into_owned(),
        // An image of this cluster's registry is pulled with the owner's rights.
        None => tickets.auth_for(state, task)?.unwrap_or_default(),
    };
    Ok(pb::AssignedTask {
        task: raw,
        secrets,
        configs,
        networks,
        registry_auth,
    })
}

/// Sends each of `nodes` its assignments if they changed.
async fn push(state: &SharedState, nodes: HashSet<NodeId>) {
    match compute(state, &nodes) {
        Ok(all) => {
            for (node, (a, fp)) in all {
                state.swarm.sessions.send_assignments(node, fp, a);
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not compute assignments"),
    }
}

/// Sends `node` its assignments if they changed.
pub async fn push_to(state: &SharedState, node: NodeId) {
    push(state, HashSet::from([node])).await;
}

/// Sends every connected node its assignments if they changed.
pub async fn push_all(state: &SharedState) {
    push(state, state.swarm.sessions.nodes().into_iter().collect()).await;
}
