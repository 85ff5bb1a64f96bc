//! The failure action of an update or rollback: when too many of its tasks
//! fail, pause it or roll back to the previous spec.
//!
//! A task of the update fails when it is observed failed or rejected, or
//! when it exits within `monitor_ms` of its creation.

use time::OffsetDateTime;

use crate::service::{FailureAction, Service, UpdateState, UpdateStatus};
use crate::task::{Task, TaskState};

use super::pass::Pass;
use super::restart::millis;
use super::update::{config, is_rollback};

/// Whether `t` was made for the current update: its spec and spec version.
fn is_update_task(service: &Service, t: &Task) -> bool {
    t.spec_version == service.spec_version && t.spec == service.spec.task
}

/// A task of the update that failed, was rejected, or stopped by itself
/// within the monitor window.
fn is_failure(t: &Task, monitor_ms: u64) -> bool {
    match t.status.state {
        TaskState::Failed | TaskState::Rejected => true,
        TaskState::Complete => t.status.timestamp < t.created_at.saturating_add(millis(monitor_ms)),
        _ => false,
    }
}

/// The service after the failure action, when the running update's or
/// rollback's failed tasks exceed `max_failure_ratio` of its tasks.
///
/// Only the tasks the update made count (attempt 0: not restarts nor
/// replacements after a node failure), as swarmkit's updater watches only
/// its own tasks. It judges them as the pass leaves them (tasks it deletes
/// do not count, tasks it creates do), so that the next pass, which sees
/// exactly those, reaches the same verdict. `base` is the service as the pass
/// started it, before any batch was recorded.
pub(super) fn failure_action(pass: &Pass, base: &Service, tasks: &[Task]) -> Option<Service> {
    let status = base.update_status.as_ref()?;
    if !matches!(
        status.state,
        UpdateState::Updating | UpdateState::RollbackStarted
    ) {
        return None;
    }
    let cfg = config(base, status);
    if cfg.failure_action == FailureAction::Continue {
        return None;
    }
    let ours: Vec<&Task> = tasks
        .iter()
        .filter(|t| !pass.is_deleted(t))
        .chain(pass.created())
        .filter(|t| is_update_task(base, t) && t.attempt == 0)
        .collect();
    let first = ours
        .iter()
        .filter(|t| is_failure(t, cfg.monitor_ms))
        .min_by(|a, b| (a.status.timestamp, &a.id).cmp(&(b.status.timestamp, &b.id)))?;
    let failed = ours
        .iter()
        .filter(|t| is_failure(t, cfg.monitor_ms))
        .count();
    if failed as f64 / ours.len() as f64 <= cfg.max_failure_ratio {
        return None;
    }
    let why = format!("due to failure or early termination of task {}", first.id);
    let mut next = base.clone();
    match (is_rollback(status), cfg.failure_action) {
        (true, _) => stop(
            &mut next,
            UpdateState::RollbackPaused,
            format!("rollback paused {why}"),
        ),
        (false, FailureAction::Rollback) => roll_back(&mut next, pass.now, why),
        (false, _) => stop(
            &mut next,
            UpdateState::Paused,
            format!("update paused {why}"),
        ),
    }
    Some(next)
}

fn stop(service: &mut Service, state: UpdateState, message: String) {
    if let Some(s) = service.update_status.as_mut() {
        s.state = state;
        s.message = message;
    }
}

/// Goes back to the previous spec (a new spec version), remembering the
/// failed one as the previous spec.
fn roll_back(service: &mut Service, now: OffsetDateTime, why: String) {
    let Some(previous) = service.previous_spec.take() else {
        let message = format!("update paused {why}; there is no previous spec to roll back to");
        return stop(service, UpdateState::Paused, message);
    };
    service.previous_spec = Some(std::mem::replace(&mut service.spec, previous));
    service.spec_version = service.spec_version.saturating_add(1);
    // Not before the last spec change, so it does not look superseded.
    service.updated_at = now.max(service.updated_at);
    service.update_status = Some(UpdateStatus {
        state: UpdateState::RollbackStarted,
        started_at: service.updated_at,
        completed_at: None,
        message: format!("update rolled back {why}"),
        last_batch_at: None,
    });
}
