//! What each node already carries: reservations, host ports and task
//! counts, kept up to date as the scheduler assigns tasks.

use std::collections::{HashMap, HashSet};

use crate::service::{Resources, TaskSpec};
use crate::task::{Task, TaskState};

/// The load of one node.
#[derive(Debug, Default)]
pub(super) struct NodeLoad {
    /// Reservations of the tasks placed here that have not finished.
    reserved: Resources,
    /// Host ports in use, as `(port, protocol)`.
    ports: HashSet<(u16, String)>,
    /// Tasks here that are desired running.
    pub(super) active: u64,
    /// The same, per service id.
    pub(super) by_service: HashMap<String, u64>,
}

impl NodeLoad {
    /// Counts a task that is on this node. Reservations and ports stay taken
    /// until the task is observed finished (its container may still run
    /// after it was asked to stop); the task counts as active only while it
    /// is desired running, as in swarmkit.
    pub(super) fn add(&mut self, task: &Task) {
        let active = task.desired_state <= TaskState::Running;
        self.take(&task.spec, &task.service_id, active);
    }

    /// Counts a task of `service_id` with `spec` on this node.
    pub(super) fn take(&mut self, spec: &TaskSpec, service_id: &str, active: bool) {
        self.reserved = add_resources(self.reserved, spec.resources.reservations);
        for port in host_ports(spec) {
            self.ports.insert(port);
        }
        if active {
            self.active += 1;
            match self.by_service.get_mut(service_id) {
                Some(n) => *n += 1,
                None => {
                    self.by_service.insert(service_id.to_string(), 1);
                }
            }
        }
    }

    /// Whether `want` fits beside what is reserved, on a machine of `capacity`.
    /// A task that reserves nothing fits anywhere.
    pub(super) fn fits(&self, capacity: Resources, want: Resources) -> bool {
        if want == Resources::default() {
            return true;
        }
        let total = add_resources(self.reserved, want);
        total.nano_cpus <= capacity.nano_cpus && total.memory_bytes <= capacity.memory_bytes
    }

    /// Whether none of the spec's host ports is taken here.
    pub(super) fn ports_free(&self, spec: &TaskSpec) -> bool {
        host_ports(spec).all(|p| !self.ports.contains(&p))
    }
}

fn add_resources(a: Resources, b: Resources) -> Resources {
    Resources {
        nano_cpus: a.nano_cpus.saturating_add(b.nano_cpus),
        memory_bytes: a.memory_bytes.saturating_add(b.memory_bytes),
    }
}

/// Ports published on the node itself (`published_port` 0 lets Docker pick
/// a free one, so it cannot conflict). An empty protocol means tcp.
fn host_ports(spec: &TaskSpec) -> impl Iterator<Item = (u16, String)> + '_ {
    spec.ports
        .iter()
        .filter(|p| p.published_port != 0)
        .map(|p| {
            let protocol = if p.protocol.is_empty() {
                "tcp".to_string()
            } else {
                p.protocol.to_ascii_lowercase()
            };
            (p.published_port, protocol)
        })
}

/// Whether a task that is on a node still holds its reservations there.
pub(super) fn holds_node(task: &Task) -> bool {
    task.node_id.is_some() && !task.status.state.is_terminal()
}
