//! The restart policy: whether, and when, a finished task is replaced.

use time::{Duration, OffsetDateTime};

use crate::service::{RestartCondition, RestartPolicy, Service};
use crate::task::{Task, TaskState};

/// What happens to a slot whose newest task finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Restart {
    /// Replace it now; the replacement carries this attempt number.
    Now {
        /// The replacement's `attempt`.
        attempt: u64,
    },
    /// Replace it at this time (restart delay).
    At(OffsetDateTime),
    /// Leave the slot empty.
    Never,
}

/// Decides for `finished`, the newest task of a slot, under its own restart
/// policy; `slot` holds every task of the slot (for counting attempts).
///
/// A slot the policy gave up on (condition `none`, `on-failure` after a
/// clean exit, or `max_attempts` reached) stays empty until the service's
/// spec changes: a task of an older spec version is replaced at once by one
/// of the current spec, as swarmkit does when a service is updated.
pub(super) fn decide(
    finished: &Task,
    slot: &[&Task],
    service: &Service,
    now: OffsetDateTime,
) -> Restart {
    let policy = &finished.spec.restart;
    if !wanted(policy, finished.status.state) || exhausted(policy, finished, slot, now) {
        return if finished.spec_version < service.spec_version {
            Restart::Now { attempt: 0 }
        } else {
            Restart::Never
        };
    }
    let at = finished
        .status
        .timestamp
        .saturating_add(millis(policy.delay_ms));
    if now < at {
        Restart::At(at)
    } else {
        Restart::Now {
            attempt: finished.attempt.saturating_add(1),
        }
    }
}

/// Whether the condition asks for a restart after a task ended in `state`.
fn wanted(policy: &RestartPolicy, state: TaskState) -> bool {
    match policy.condition {
        RestartCondition::None => false,
        RestartCondition::OnFailure => state != TaskState::Complete,
        RestartCondition::Any => true,
    }
}

/// Whether the slot already restarted `max_attempts` times within the
/// window.
fn exhausted(policy: &RestartPolicy, finished: &Task, slot: &[&Task], now: OffsetDateTime) -> bool {
    let Some(max) = policy.max_attempts else {
        return false;
    };
    let restarts = slot
        .iter()
        .filter(|t| counts_as_restart(t, finished, now))
        .count();
    restarts as u64 >= max
}

/// Whether `t`, an earlier task of the slot whose newest task is `newest`,
/// counts against `newest`'s `max_attempts`: it has the same spec version,
/// ended by itself (complete, failed, rejected) within the window, and so
/// was restarted once. Such tasks are kept out of history pruning, or the
/// count would drop.
pub(super) fn counts_as_restart(t: &Task, newest: &Task, now: OffsetDateTime) -> bool {
    let policy = &newest.spec.restart;
    let since = (policy.window_ms > 0).then(|| now.saturating_sub(millis(policy.window_ms)));
    policy.max_attempts.is_some()
        && t.id != newest.id
        && t.spec_version == newest.spec_version
        && ended_by_itself(t.status.state)
        && since.is_none_or(|s| t.status.timestamp > s)
}

fn ended_by_itself(state: TaskState) -> bool {
    matches!(
        state,
        TaskState::Complete | TaskState::Failed | TaskState::Rejected
    )
}

/// A duration given in configuration milliseconds (saturating).
pub(super) fn millis(ms: u64) -> Duration {
    Duration::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX))
}
