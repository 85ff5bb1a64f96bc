//! A tiny cluster for tests: applies the orchestrator's actions as the
//! runtime would, places tasks with the real scheduler and plays the agents
//! (assigned tasks start running, stopped ones report shut down).

use time::{Duration, OffsetDateTime};

use super::{reconcile, Action, ServiceView};
use crate::node::{Node, NodeState};
use crate::scheduler::{needs_scheduling, schedule, Decision, SchedulerInput};
use crate::service::Service;
use crate::task::{Task, TaskState};

/// The store of one service and the cluster's nodes.
#[derive(Clone, Debug)]
pub(super) struct World {
    pub(super) service: Service,
    pub(super) tasks: Vec<Task>,
    pub(super) nodes: Vec<Node>,
    pub(super) now: OffsetDateTime,
    next_id: u64,
}

impl World {
    pub(super) fn new(
        service: Service,
        tasks: Vec<Task>,
        nodes: Vec<Node>,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            service,
            tasks,
            nodes,
            now,
            next_id: 0,
        }
    }

    /// One reconcile pass on the current state.
    pub(super) fn reconcile(&mut self) -> Vec<Action> {
        let mut n = self.next_id;
        let view = ServiceView {
            service: &self.service,
            tasks: &self.tasks,
            nodes: &self.nodes,
            now: self.now,
        };
        let actions = reconcile(&view, &mut || {
            n += 1;
            format!("t{n}")
        });
        self.next_id = n;
        actions
    }

    /// Writes the actions to the store, as the runtime does.
    pub(super) fn apply(&mut self, actions: &[Action]) {
        for a in actions {
            match a {
                Action::CreateTask(t) => self.tasks.push(t.clone()),
                Action::SetDesiredState { task_id, desired } => {
                    if let Some(t) = self.tasks.iter_mut().find(|t| &t.id == task_id) {
                        t.desired_state = *desired;
                    }
                }
                Action::DeleteTask { task_id } => self.tasks.retain(|t| &t.id != task_id),
                Action::UpdateService(s) => self.service = s.clone(),
                Action::RecheckAt(_) => {}
            }
        }
    }

    /// The scheduler places what waits; agents on ready nodes start what
    /// they were given and stop what should stop.
    pub(super) fn run_cluster(&mut self) {
        let pending: Vec<&Task> = self.tasks.iter().filter(|t| needs_scheduling(t)).collect();
        let decisions = schedule(
            &SchedulerInput {
                nodes: &self.nodes,
                tasks: &self.tasks,
            },
            &pending,
        );
        for d in decisions {
            match d {
                Decision::Assign { task_id, node_id } => self.report(&task_id, |t| {
                    t.node_id = Some(node_id);
                    t.status.state = TaskState::Assigned;
                }),
                Decision::NoSuitableNode { task_id, .. } => {
                    self.report(&task_id, |t| t.status.state = TaskState::Pending)
                }
            }
        }
        let now = self.now;
        for t in &mut self.tasks {
            let on_ready_node = t.node_id.is_some_and(|id| {
                self.nodes
                    .iter()
                    .any(|n| n.id == id && n.state == NodeState::Ready)
            });
            if !on_ready_node || t.status.state.is_terminal() {
                continue;
            }
            let next = if t.desired_state == TaskState::Running {
                TaskState::Running
            } else {
                TaskState::Shutdown
            };
            if t.status.state != next {
                t.status.state = next;
                t.status.timestamp = now;
            }
        }
    }

    fn report(&mut self, id: &str, change: impl FnOnce(&mut Task)) {
        let now = self.now;
        if let Some(t) = self.tasks.iter_mut().find(|t| t.id == id) {
            change(t);
            t.status.timestamp = now;
        }
    }

    /// Reconcile, apply, let the cluster run, then let `ms` pass.
    pub(super) fn step(&mut self, ms: i64) -> Vec<Action> {
        let actions = self.reconcile();
        self.apply(&actions);
        self.run_cluster();
        self.now += Duration::milliseconds(ms);
        actions
    }

    /// Tasks desired running and not finished.
    pub(super) fn live(&self) -> Vec<&Task> {
        self.tasks
            .iter()
            .filter(|t| t.desired_state == TaskState::Running && !t.status.state.is_terminal())
            .collect()
    }
}
