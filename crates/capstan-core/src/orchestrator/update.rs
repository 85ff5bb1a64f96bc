//! Rolling updates and rollbacks, as swarmkit's updater does them but
//! level-triggered: everything is read back from the service's update
//! status and the tasks on each pass.
//!
//! A task is *dirty* when it is live and its spec is not the service's; the
//! update replaces dirty tasks slot by slot, `parallelism` at a time, at
//! least `delay_ms` apart, in the configured order. How its failures are
//! judged is in the `failure` module.

use crate::service::{Service, ServiceMode, UpdateConfig, UpdateOrder, UpdateState, UpdateStatus};
use crate::task::{Task, TaskState};

use super::pass::Pass;
use super::restart::millis;
use super::slot::{node_fit, NodeFit, Slot, SlotKey};

/// First step of a pass: starts an update when tasks are dirty, or anew
/// when the spec changed since the update started.
pub(super) fn begin(pass: &mut Pass, tasks: &[Task]) {
    let dirty = tasks.iter().any(|t| is_dirty(pass, t));
    // A spec written after the update started is a new update (the API may
    // leave the old status in place).
    let restart = match &pass.service.update_status {
        None => dirty,
        Some(s) => {
            let superseded = pass.service.updated_at > s.started_at;
            match s.state {
                UpdateState::Updating | UpdateState::RollbackStarted => superseded,
                UpdateState::Completed | UpdateState::RollbackCompleted => dirty,
                UpdateState::Paused | UpdateState::RollbackPaused => dirty && superseded,
            }
        }
    };
    if restart {
        start(pass);
    }
}

/// A live task of an old spec that the update can replace: for a global
/// service, only on a node that may run a new task.
fn is_dirty(pass: &Pass, t: &Task) -> bool {
    let wanted = match pass.service.spec.mode {
        ServiceMode::Replicated { replicas } => (1..=replicas).contains(&t.slot),
        ServiceMode::Global => t
            .node_id
            .is_some_and(|id| node_fit(pass, id) == NodeFit::Eligible),
    };
    wanted && pass.is_live(t) && !pass.is_clean(t)
}

fn start(pass: &mut Pass) {
    // Never before the spec's own timestamp, or a manager whose clock is
    // behind would see its own update as superseded on every pass.
    let started_at = pass.now.max(pass.service.updated_at);
    pass.service.update_status = Some(UpdateStatus {
        state: UpdateState::Updating,
        started_at,
        completed_at: None,
        message: "update in progress".into(),
        last_batch_at: None,
    });
}

/// Whether the status is that of a rollback.
pub(super) fn is_rollback(status: &UpdateStatus) -> bool {
    matches!(
        status.state,
        UpdateState::RollbackStarted | UpdateState::RollbackPaused | UpdateState::RollbackCompleted
    )
}

/// The update config in force: `rollback` while rolling back.
pub(super) fn config(service: &Service, status: &UpdateStatus) -> UpdateConfig {
    if is_rollback(status) {
        service.spec.rollback.clone()
    } else {
        service.spec.update.clone()
    }
}

/// Replaces the next batch of dirty slots while an update or rollback runs,
/// and marks it done when nothing is dirty or in flight.
pub(super) fn roll<'v>(pass: &mut Pass<'v, '_>, slots: &[Slot<'v>]) {
    let Some(status) = pass.service.update_status.clone() else {
        return;
    };
    if !matches!(
        status.state,
        UpdateState::Updating | UpdateState::RollbackStarted
    ) {
        return;
    }
    let cfg = config(&pass.service, &status);
    let mut dirty: Vec<&Slot> = slots.iter().filter(|s| is_dirty_slot(pass, s)).collect();
    if dirty.is_empty() {
        complete_if_settled(pass, slots, &status, cfg.monitor_ms);
        return;
    }
    let in_flight = unsettled(pass, slots, cfg.monitor_ms, false);
    let allowed = match usize::try_from(cfg.parallelism) {
        Ok(0) | Err(_) => usize::MAX,
        Ok(p) => p.saturating_sub(in_flight),
    };
    if allowed == 0 || waits_for_delay(pass, &status, &cfg) {
        return;
    }
    // Tasks that are not running are probably broken anyway: replace first.
    dirty.sort_by_key(|s| (live_running(pass, s), s.key));
    for slot in dirty.into_iter().take(allowed) {
        replace(pass, slot, cfg.order);
    }
    if let Some(s) = pass.service.update_status.as_mut() {
        s.last_batch_at = Some(pass.now);
    }
    pass.recheck_at(pass.now.saturating_add(millis(cfg.delay_ms)));
}

/// Whether `delay_ms` since the last batch has yet to pass (then asks to
/// look again when it has).
fn waits_for_delay(pass: &mut Pass, status: &UpdateStatus, cfg: &UpdateConfig) -> bool {
    let Some(last) = status.last_batch_at else {
        return false;
    };
    let next = last.saturating_add(millis(cfg.delay_ms));
    pass.recheck_at(next);
    pass.now < next
}

/// A slot whose live tasks are all of an old spec, on a node the update
/// may use.
fn is_dirty_slot(pass: &Pass, slot: &Slot) -> bool {
    let eligible = match slot.key {
        SlotKey::Node(id) => node_fit(pass, id) == NodeFit::Eligible,
        SlotKey::Replica(_) => true,
        SlotKey::Unplaced => false,
    };
    let mut live = slot.tasks.iter().filter(|t| pass.is_live(t)).peekable();
    eligible && live.peek().is_some() && live.all(|t| !pass.is_clean(t))
}

fn live_running(pass: &Pass, slot: &Slot) -> bool {
    slot.tasks
        .iter()
        .any(|t| pass.is_live(t) && t.status.state == TaskState::Running)
}

/// Live tasks of the current spec that have not yet run for `monitor_ms`
/// (after a rollback, tasks that never left the old spec count too); asks
/// to look again when the earliest monitor window ends. `restarts` says
/// whether replacements made by the restart policy or for a node failure
/// (attempt > 0) count: they do for completion, not for parallelism — as
/// in swarmkit, the updater waits only for the tasks it made, so a task
/// that keeps failing under `continue` does not hold the update back.
fn unsettled(pass: &mut Pass, slots: &[Slot], monitor_ms: u64, restarts: bool) -> usize {
    let counts = |t: &Task| restarts || t.attempt == 0;
    let mut count = pass.created().iter().filter(|t| counts(t)).count();
    let mut ends = Vec::new();
    for t in slots.iter().flat_map(|s| s.tasks.iter()) {
        if !pass.is_live(t) || !pass.is_clean(t) || !counts(t) {
            continue;
        }
        let end = t.status.timestamp.saturating_add(millis(monitor_ms));
        if t.status.state != TaskState::Running {
            count += 1;
        } else if pass.now < end {
            count += 1;
            ends.push(end);
        }
    }
    for end in ends {
        pass.recheck_at(end);
    }
    count
}

/// Starts the replacement of a dirty slot's task: stop-first shuts the old
/// task down now; start-first leaves a running one until the new one runs
/// (see `keep_one` in the slot module).
fn replace<'v>(pass: &mut Pass<'v, '_>, slot: &Slot<'v>, order: UpdateOrder) {
    for &t in &slot.tasks {
        let keep = order == UpdateOrder::StartFirst && t.status.state == TaskState::Running;
        if pass.is_live(t) && !keep {
            pass.set_desired(t, TaskState::Shutdown);
        }
    }
    let (number, node) = slot.key.placement();
    pass.create(number, node, 0);
}

/// Marks the update or rollback done once no old task is left, every new
/// task has run for `monitor_ms` and no slot waits for a restart.
fn complete_if_settled(pass: &mut Pass, slots: &[Slot], status: &UpdateStatus, monitor_ms: u64) {
    // An old task may still run beside its start-first replacement.
    let old_left = slots
        .iter()
        .flat_map(|s| s.tasks.iter())
        .any(|t| is_dirty(pass, t));
    let settled = unsettled(pass, slots, monitor_ms, true) == 0;
    if !settled || old_left || pass.waiting_restart {
        return;
    }
    let (state, message) = if is_rollback(status) {
        (UpdateState::RollbackCompleted, "rollback completed")
    } else {
        (UpdateState::Completed, "update completed")
    };
    let now = pass.now;
    if let Some(s) = pass.service.update_status.as_mut() {
        s.state = state;
        s.message = message.into();
        s.completed_at = Some(now);
    }
}
