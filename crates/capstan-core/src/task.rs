//! Tasks: one scheduled unit of a service, and the state machine swarmkit
//! users know from `docker service ps`.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::NodeId;
use crate::service::TaskSpec;
use crate::table::Table;

/// A task's state. Observed states only move forward (in this order);
/// desired states are `Running`, `Shutdown` or `Remove`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Just created by the orchestrator.
    New,
    /// Waiting for a node (a reason says why).
    Pending,
    /// Given to a node.
    Assigned,
    /// The node's agent took it.
    Accepted,
    /// Pulling the image, making networks, volumes, files.
    Preparing,
    /// Container created.
    Ready,
    /// Container starting.
    Starting,
    /// Container running.
    Running,
    /// Exited 0.
    Complete,
    /// Stopped on request.
    Shutdown,
    /// Exited non-zero or could not start.
    Failed,
    /// The node could not run it at all (e.g. image not found).
    Rejected,
    /// To be removed from the store.
    Remove,
    /// Its node is gone.
    Orphaned,
}

impl TaskState {
    /// Whether the task will never run again.
    pub fn is_terminal(self) -> bool {
        self >= TaskState::Complete
    }

    /// Whether the agent has the task (assigned and not finished).
    pub fn is_active(self) -> bool {
        (TaskState::Assigned..TaskState::Complete).contains(&self)
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_value(self).expect("task states serialize");
        f.write_str(s.as_str().expect("task states serialize as strings"))
    }
}

/// A port a running task published on its node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedPort {
    /// Port on the node.
    pub published_port: u16,
    /// Port in the container.
    pub target_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
}

/// What the agent last reported about a task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    /// Observed state.
    pub state: TaskState,
    /// Human text (`docker service ps` CURRENT STATE detail).
    pub message: String,
    /// Error text when failed or rejected.
    #[serde(default)]
    pub err: String,
    /// When this status was observed.
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    /// The container running it.
    #[serde(default)]
    pub container_id: String,
    /// Exit code of a finished container.
    #[serde(default)]
    pub exit_code: Option<i64>,
    /// Ports published on the node.
    #[serde(default)]
    pub ports: Vec<PublishedPort>,
}

/// A task, stored in table `tasks` under its id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Random id.
    pub id: String,
    /// The service it belongs to.
    pub service_id: String,
    /// The service's name when the task was made (container names).
    pub service_name: String,
    /// Replica slot (1-based) for replicated services; 0 for global ones.
    pub slot: u64,
    /// The node it runs on, once scheduled (global tasks are made for one).
    pub node_id: Option<NodeId>,
    /// The spec it runs (copied from the service at creation).
    pub spec: TaskSpec,
    /// The service spec version it was made from.
    pub spec_version: u64,
    /// What the orchestrator wants.
    pub desired_state: TaskState,
    /// What the agent reported.
    pub status: TaskStatus,
    /// Restarts of this slot so far (restart policy accounting).
    #[serde(default)]
    pub attempt: u64,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Table for Task {
    const TABLE: &'static str = "tasks";
    fn id(&self) -> String {
        self.id.clone()
    }
}

impl Task {
    /// The container name Swarm users expect: `<service>.<slot>.<task id>`
    /// (`<service>.<node id>.<task id>` for global services).
    pub fn container_name(&self) -> String {
        match (self.slot, self.node_id) {
            (0, Some(node)) => format!("{}.{}.{}", self.service_name, node, self.id),
            (slot, _) => format!("{}.{}.{}", self.service_name, slot, self.id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_ordered_like_swarmkit() {
        assert!(TaskState::New < TaskState::Pending);
        assert!(TaskState::Running < TaskState::Complete);
        assert!(TaskState::Failed.is_terminal());
        assert!(!TaskState::Running.is_terminal());
        assert!(TaskState::Starting.is_active());
        assert!(!TaskState::Pending.is_active());
        assert_eq!(TaskState::Running.to_string(), "running");
    }
}
