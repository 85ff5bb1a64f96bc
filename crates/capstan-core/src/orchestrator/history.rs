//! Task history: finished tasks stay visible in `docker service ps` up to a
//! limit per slot; older ones are deleted.

use crate::task::{Task, TaskState};

use super::pass::Pass;
use super::restart::counts_as_restart;
use super::slot::{is_done, Slot};
use super::TASK_HISTORY_LIMIT;

/// Deletes the oldest finished tasks of each slot beyond
/// [`TASK_HISTORY_LIMIT`]. Only tasks no longer desired running are
/// candidates (a task that finished in this pass counts once this pass has
/// shut it down), and tasks that count against the restart policy's
/// `max_attempts` are kept while they count.
pub(super) fn prune<'v>(pass: &mut Pass<'v, '_>, slots: &[Slot<'v>]) {
    for slot in slots {
        let Some(&newest) = slot.tasks.last() else {
            continue;
        };
        let done: Vec<&Task> = slot
            .tasks
            .iter()
            .copied()
            .filter(|t| !pass.is_deleted(t) && pass.desired(t) != TaskState::Running)
            .filter(|t| is_done(pass, t) && !counts_as_restart(t, newest, pass.now))
            .collect();
        let excess = done.len().saturating_sub(TASK_HISTORY_LIMIT);
        for &t in &done[..excess] {
            pass.delete(t);
        }
    }
}

/// Deletes tasks desired `Remove` once they are over.
pub(super) fn drop_removed<'v>(pass: &mut Pass<'v, '_>, tasks: &'v [Task]) {
    for t in tasks {
        if t.desired_state == TaskState::Remove && is_done(pass, t) {
            pass.delete(t);
        }
    }
}
