//! One reconcile pass in progress: what was decided so far, so that later
//! steps of the same pass see earlier decisions (a task shut down for a
//! node failure no longer counts as live when its slot is refilled).

use std::collections::{HashMap, HashSet};

use time::OffsetDateTime;

use super::{Action, ServiceView};
use crate::constraint::{parse_constraints, Constraint};
use crate::ids::NodeId;
use crate::node::Node;
use crate::service::Service;
use crate::task::{Task, TaskState, TaskStatus};

/// The decisions of one pass over one service.
pub(super) struct Pass<'v, 'f> {
    /// The time of the pass.
    pub(super) now: OffsetDateTime,
    /// The service as this pass leaves it (update status, rollback).
    pub(super) service: Service,
    /// Every node by id.
    pub(super) nodes: HashMap<NodeId, &'v Node>,
    /// Every node, in id order.
    pub(super) node_list: Vec<&'v Node>,
    /// The service's constraints; `None` when they do not parse (the
    /// scheduler reports that; the orchestrator then moves nothing).
    pub(super) constraints: Option<Vec<Constraint>>,
    /// A slot waits for its restart delay, so the update is not done.
    pub(super) waiting_restart: bool,
    desired: Vec<(&'v str, TaskState)>,
    changed: HashMap<&'v str, TaskState>,
    created: Vec<Task>,
    deleted: Vec<&'v str>,
    deleted_set: HashSet<&'v str>,
    recheck: Option<OffsetDateTime>,
    new_id: &'f mut dyn FnMut() -> String,
}

impl<'v, 'f> Pass<'v, 'f> {
    /// Starts a pass over `view` that may change `service` (the view's
    /// service, or the same after a failure action).
    pub(super) fn new(
        view: &ServiceView<'v>,
        service: Service,
        new_id: &'f mut dyn FnMut() -> String,
    ) -> Self {
        let mut node_list: Vec<&Node> = view.nodes.iter().collect();
        node_list.sort_by_key(|n| n.id);
        Self {
            now: view.now,
            constraints: parse_constraints(&service.spec.task.placement.constraints).ok(),
            service,
            nodes: view.nodes.iter().map(|n| (n.id, n)).collect(),
            node_list,
            waiting_restart: false,
            desired: Vec::new(),
            changed: HashMap::new(),
            created: Vec::new(),
            deleted: Vec::new(),
            deleted_set: HashSet::new(),
            recheck: None,
            new_id,
        }
    }

    /// The task's desired state once this pass's decisions apply.
    pub(super) fn desired(&self, t: &Task) -> TaskState {
        self.changed
            .get(t.id.as_str())
            .copied()
            .unwrap_or(t.desired_state)
    }

    /// Desired running, not finished and not deleted: the task holds its
    /// slot.
    pub(super) fn is_live(&self, t: &Task) -> bool {
        self.desired(t) == TaskState::Running
            && !t.status.state.is_terminal()
            && !self.is_deleted(t)
    }

    /// The task runs the service's current spec.
    pub(super) fn is_clean(&self, t: &Task) -> bool {
        t.spec == self.service.spec.task
    }

    /// Asks for another desired state (no-op when it already is).
    pub(super) fn set_desired(&mut self, t: &'v Task, state: TaskState) {
        if self.desired(t) == state || self.deleted_set.contains(t.id.as_str()) {
            return;
        }
        if self.changed.insert(&t.id, state).is_none() {
            self.desired.push((&t.id, state));
        }
    }

    /// Deletes a task from the store (any desired-state change for it is
    /// dropped).
    pub(super) fn delete(&mut self, t: &'v Task) {
        if self.deleted_set.insert(&t.id) {
            self.deleted.push(&t.id);
        }
    }

    /// Whether this pass deletes the task.
    pub(super) fn is_deleted(&self, t: &Task) -> bool {
        self.deleted_set.contains(t.id.as_str())
    }

    /// Creates a task of the current spec for `slot` (0 for global tasks,
    /// which name their `node` instead).
    pub(super) fn create(&mut self, slot: u64, node: Option<NodeId>, attempt: u64) {
        let s = &self.service;
        self.created.push(Task {
            id: (self.new_id)(),
            service_id: s.id.clone(),
            service_name: s.spec.name.clone(),
            slot,
            node_id: node,
            spec: s.spec.task.clone(),
            spec_version: s.spec_version,
            desired_state: TaskState::Running,
            status: TaskStatus {
                state: TaskState::New,
                message: "created".into(),
                err: String::new(),
                timestamp: self.now,
                container_id: String::new(),
                exit_code: None,
                ports: Vec::new(),
            },
            attempt,
            created_at: self.now,
        });
    }

    /// The tasks this pass creates.
    pub(super) fn created(&self) -> &[Task] {
        &self.created
    }

    /// Asks to be called again at `at` (the earliest such time wins).
    pub(super) fn recheck_at(&mut self, at: OffsetDateTime) {
        if at > self.now {
            self.recheck = Some(self.recheck.map_or(at, |r| r.min(at)));
        }
    }

    /// The plan: the service change first, then desired states, new tasks,
    /// deletions and the next time to look again.
    pub(super) fn into_actions(self, original: &Service) -> Vec<Action> {
        let mut out = Vec::new();
        if self.service != *original {
            out.push(Action::UpdateService(self.service));
        }
        for (id, desired) in self.desired {
            if !self.deleted_set.contains(id) {
                out.push(Action::SetDesiredState {
                    task_id: id.to_string(),
                    desired,
                });
            }
        }
        out.extend(self.created.into_iter().map(Action::CreateTask));
        out.extend(self.deleted.into_iter().map(|id| Action::DeleteTask {
            task_id: id.to_string(),
        }));
        out.extend(self.recheck.map(Action::RecheckAt));
        out
    }
}
