//! What each node should run: its tasks, with the secrets, configs and
//! networks they use.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use capstan_core::{decode, Config, Network, NodeId, Secret, Table, Task, TaskState};
use capstan_proto::v1 as pb;

use crate::error::ManagerError;
use crate::state::SharedState;

/// The assignments of `node`, and a fingerprint of them.
pub fn compute(state: &SharedState, node: NodeId) -> Result<(pb::Assignments, u64), ManagerError> {
    let mut hasher = DefaultHasher::new();
    let mut out = Vec::new();
    for obj in state.sm.list(Task::TABLE, "", 0)? {
        let task: Task = decode(&obj.value)?;
        if task.node_id != Some(node) || task.desired_state == TaskState::Remove {
            continue;
        }
        (obj.id.as_str(), obj.version).hash(&mut hasher);
        let mut secrets = Vec::new();
        for r in &task.spec.container.secrets {
            if let Some(o) = state.sm.get(Secret::TABLE, &r.id)? {
                let secret: Secret = decode(&o.value)?;
                secrets.push(pb::FileData {
                    id: r.id.clone(),
                    data: state.swarm.secret_key.open(&secret.sealed)?,
                });
                o.version.hash(&mut hasher);
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
                o.version.hash(&mut hasher);
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
            Some(o) => {
                String::from_utf8_lossy(&state.swarm.secret_key.open(&o.value)?).into_owned()
            }
            None => String::new(),
        };
        out.push(pb::AssignedTask {
            task: obj.value,
            secrets,
            configs,
            networks,
            registry_auth,
        });
    }
    Ok((pb::Assignments { tasks: out }, hasher.finish().max(1)))
}

/// Table of per-service registry credentials (X-Registry-Auth), sealed like
/// secrets and kept apart from the service so that reads never return them.
pub const REGISTRY_AUTH_TABLE: &str = "registry_auth";

/// Sends `node` its assignments if they changed.
pub async fn push_to(state: &SharedState, node: NodeId) {
    match compute(state, node) {
        Ok((a, fp)) => state.swarm.sessions.send_assignments(node, fp, a),
        Err(e) => tracing::warn!(%node, error = %e, "could not compute assignments"),
    }
}

/// Sends every connected node its assignments if they changed.
pub async fn push_all(state: &SharedState) {
    for node in state.swarm.sessions.nodes() {
        push_to(state, node).await;
    }
}
