//! The reconcile plan of a service: which tasks to create, stop and delete
//! so that its tasks match its spec — replicas or one per node, restart
//! policy, rolling update and rollback — with swarmkit's semantics.
//!
//! [`reconcile`] is level-triggered: it reads the service, its tasks and the
//! nodes, and returns [`Action`]s for the runtime to apply atomically.
//! Applying them and calling it again on the result yields nothing new
//! (at most a [`Action::RecheckAt`]). It never assigns nodes: new tasks are
//! left to the scheduler (global tasks name their node).
//!
//! A pass runs these steps in order, each seeing the decisions before it:
//! the update status (start), the slots (node failures and drains, finished
//! tasks and the restart policy, duplicates, missing tasks), the next batch
//! of the rolling update, and the history. Last, the update's failure
//! action is judged on the tasks as the pass leaves them; when it pauses or
//! rolls back, the pass is planned again from the changed service.

mod failure;
mod history;
mod pass;
mod restart;
mod slot;
mod update;

use time::OffsetDateTime;

use crate::node::Node;
use crate::service::{Service, ServiceMode};
use crate::task::{Task, TaskState};

use pass::Pass;

/// Finished tasks kept per slot (per node for global services), as
/// swarmkit's default task history. Tasks that count against a restart
/// policy's `max_attempts` are kept on top of these while they count.
pub const TASK_HISTORY_LIMIT: usize = 5;

/// Everything one reconcile pass of one service sees.
#[derive(Clone, Copy, Debug)]
pub struct ServiceView<'a> {
    /// The service.
    pub service: &'a Service,
    /// Every task of this service still in the store.
    pub tasks: &'a [Task],
    /// Every node of the cluster.
    pub nodes: &'a [Node],
    /// The time of the pass.
    pub now: OffsetDateTime,
}

/// One change the runtime makes to the store.
// Plans are short-lived and small; boxing the records would only make the
// runtime's matching clumsier.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Store a new task (status `New`, desired `Running`).
    CreateTask(Task),
    /// Change a task's desired state (e.g. `Shutdown` an old task).
    SetDesiredState {
        /// The task.
        task_id: String,
        /// Its new desired state.
        desired: TaskState,
    },
    /// Remove a task from the store: history beyond the limit, tasks of
    /// slots that are gone, tasks of removed services once finished.
    DeleteTask {
        /// The task.
        task_id: String,
    },
    /// Store the service (update status; a rollback also changes the spec).
    UpdateService(Service),
    /// Nothing more to do now, but call again at this time (restart delay,
    /// update delay, monitor window).
    RecheckAt(OffsetDateTime),
}

/// Plans one pass over one service; `new_id` gives the ids of new tasks.
pub fn reconcile(view: &ServiceView, new_id: &mut dyn FnMut() -> String) -> Vec<Action> {
    let mut service = view.service.clone();
    // A failure action changes the update status (and, for a rollback, the
    // spec); the pass is then planned again from the changed service. That
    // happens at most twice: update → rollback → rollback paused.
    for _ in 0..3 {
        let mut pass = Pass::new(view, service, &mut *new_id);
        update::begin(&mut pass, view.tasks);
        let base = pass.service.clone();
        plan(&mut pass, view);
        match failure::failure_action(&pass, &base, view.tasks) {
            Some(next) => service = next,
            None => return pass.into_actions(view.service),
        }
    }
    let mut pass = Pass::new(view, service, new_id);
    plan(&mut pass, view);
    pass.into_actions(view.service)
}

/// Everything after the update status: slots, the update's next batch,
/// history.
fn plan<'v>(pass: &mut Pass<'v, '_>, view: &ServiceView<'v>) {
    let global = pass.service.spec.mode == ServiceMode::Global;
    let slots = slot::group(view.tasks, global);
    match pass.service.spec.mode {
        ServiceMode::Replicated { replicas } => slot::plan_replicated(pass, &slots, replicas),
        ServiceMode::Global => slot::plan_global(pass, &slots),
    }
    update::roll(pass, &slots);
    history::prune(pass, &slots);
    history::drop_removed(pass, view.tasks);
}

/// For a service that was deleted: shuts down every task still desired
/// running, and deletes those that are over (finished, or never given to a
/// node).
pub fn reconcile_removed(tasks: &[Task]) -> Vec<Action> {
    let mut out = Vec::new();
    for t in tasks {
        let over = t.status.state.is_terminal()
            || (t.node_id.is_none() && t.status.state < TaskState::Assigned);
        if over {
            out.push(Action::DeleteTask {
                task_id: t.id.clone(),
            });
        } else if t.desired_state == TaskState::Running {
            out.push(Action::SetDesiredState {
                task_id: t.id.clone(),
                desired: TaskState::Shutdown,
            });
        }
    }
    out
}

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

#[cfg(test)]
mod properties;
