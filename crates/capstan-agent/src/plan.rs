//! The decision for one task: given what the orchestrator wants, what was
//! last reported and what the engine shows, the one step to take and the
//! status it shows. Pure, so swarmkit's agent semantics are tested here
//! without an engine.

use capstan_core::TaskState;

use crate::observed::{ContainerView, Health, RunState};
use crate::status::Report;

/// The error a container whose health check failed is reported with.
pub(crate) const UNHEALTHY: &str = "unhealthy container";
/// The error of a task whose container vanished after it ran.
pub(crate) const CONTAINER_GONE: &str = "task: the container was removed outside of Capstan";

/// What to do for one task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Make the container: image, networks, volumes, create, files, start.
    Prepare,
    /// Finish a container created but never started: networks, files, start.
    Start,
    /// Report what the container shows.
    Observe,
    /// Kill a container whose health check failed and report it failed.
    KillUnhealthy,
    /// Stop the live container (gracefully), then remove it if asked.
    Stop {
        /// Remove it too (desired state `Remove`).
        remove: bool,
    },
    /// Remove the stopped container.
    Remove,
    /// Report the known status unchanged (it is final).
    Keep,
    /// The container ran and is gone: report the task failed.
    Lost,
    /// No container and none wanted: report the task shut down.
    Shutdown,
}

/// Decides the step for a task that should be `desired`, was last known
/// `known`, and has `container` on the engine.
pub(crate) fn decide(
    desired: TaskState,
    known: TaskState,
    container: Option<&ContainerView>,
    has_healthcheck: bool,
) -> Step {
    let wanted = desired <= TaskState::Running;
    match (wanted, container) {
        (true, _) if known.is_terminal() => Step::Keep,
        (true, None) if known >= TaskState::Running => Step::Lost,
        (true, None) => Step::Prepare,
        (true, Some(c)) => match c.run {
            RunState::Created => Step::Start,
            RunState::Live if has_healthcheck && c.health == Health::Unhealthy => {
                Step::KillUnhealthy
            }
            RunState::Live | RunState::Stopped => Step::Observe,
        },
        (false, None) => Step::Shutdown,
        (false, Some(c)) => match c.run {
            RunState::Created | RunState::Live => Step::Stop {
                remove: desired == TaskState::Remove,
            },
            RunState::Stopped if desired == TaskState::Remove => Step::Remove,
            RunState::Stopped => Step::Observe,
        },
    }
}

/// The report for a container as it stands. `stopping` says the task is
/// wanted down: a non-zero exit then reads as the shutdown it most likely
/// was (a task that had failed on its own was already reported failed, and
/// terminal states stick).
pub(crate) fn observe(c: &ContainerView, stopping: bool) -> Report {
    let report = match c.run {
        RunState::Live => Report {
            ports: c.ports.clone(),
            ..Report::state(TaskState::Running)
        },
        RunState::Created if stopping => Report::state(TaskState::Shutdown),
        RunState::Created => Report::state(TaskState::Starting),
        RunState::Stopped if c.exit_code == 0 && c.error.is_empty() => Report {
            exit_code: Some(0),
            ..Report::state(TaskState::Complete)
        },
        RunState::Stopped if stopping => Report {
            exit_code: Some(c.exit_code),
            ..Report::state(TaskState::Shutdown)
        },
        RunState::Stopped => {
            let err = if c.exit_code != 0 {
                format!("task: non-zero exit ({})", c.exit_code)
            } else {
                c.error.clone()
            };
            Report {
                exit_code: Some(c.exit_code),
                ..Report::error(TaskState::Failed, err)
            }
        }
    };
    report.of_container(&c.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskState::*;

    fn container(run: RunState, health: Health, exit_code: i64) -> ContainerView {
        ContainerView {
            id: "c1".into(),
            task_id: "t1".into(),
            run,
            exit_code,
            error: String::new(),
            health,
            ports: Vec::new(),
            attached: Vec::new(),
        }
    }

    #[test]
    fn decisions_follow_swarmkit() {
        let created = container(RunState::Created, Health::Unknown, 0);
        let live = container(RunState::Live, Health::Fine, 0);
        let sick = container(RunState::Live, Health::Unhealthy, 0);
        let exited = container(RunState::Stopped, Health::Unknown, 137);
        // (desired, known, container, has healthcheck) → step
        let table: &[(TaskState, TaskState, Option<&ContainerView>, bool, Step)] = &[
            (Running, Assigned, None, false, Step::Prepare),
            (Running, Preparing, None, false, Step::Prepare),
            (Running, Running, None, false, Step::Lost),
            (Running, Failed, None, false, Step::Keep),
            (Running, Preparing, Some(&created), false, Step::Start),
            (Running, Rejected, Some(&created), false, Step::Keep),
            (Running, Running, Some(&live), false, Step::Observe),
            (Running, Running, Some(&sick), true, Step::KillUnhealthy),
            (Running, Running, Some(&sick), false, Step::Observe),
            (Running, Running, Some(&exited), false, Step::Observe),
            (Running, Failed, Some(&live), false, Step::Keep),
            (
                Shutdown,
                Running,
                Some(&live),
                false,
                Step::Stop { remove: false },
            ),
            (
                Shutdown,
                Preparing,
                Some(&created),
                false,
                Step::Stop { remove: false },
            ),
            (
                Remove,
                Running,
                Some(&live),
                false,
                Step::Stop { remove: true },
            ),
            (Remove, Failed, Some(&exited), false, Step::Remove),
            (Shutdown, Failed, Some(&exited), false, Step::Observe),
            (Shutdown, Assigned, None, false, Step::Shutdown),
            (
                Complete,
                Running,
                Some(&live),
                false,
                Step::Stop { remove: false },
            ),
        ];
        for (desired, known, c, health, step) in table {
            assert_eq!(
                decide(*desired, *known, *c, *health),
                *step,
                "desired {desired}, known {known}, container {:?}",
                c.map(|c| c.run)
            );
        }
    }

    #[test]
    fn exits_are_reported_like_swarm() {
        let exited = |code| container(RunState::Stopped, Health::Unknown, code);
        let failed = observe(&exited(137), false);
        assert_eq!(failed.state, Failed);
        assert_eq!(failed.err, "task: non-zero exit (137)");
        assert_eq!(failed.exit_code, Some(137));
        assert_eq!(failed.container_id, "c1");
        assert_eq!(observe(&exited(0), false).state, Complete);
        assert_eq!(observe(&exited(143), true).state, Shutdown);
        assert_eq!(observe(&exited(0), true).state, Complete);
        let live = container(RunState::Live, Health::Fine, 0);
        assert_eq!(observe(&live, false).state, Running);
        let mut broken = exited(0);
        broken.error = "OCI runtime create failed".into();
        assert_eq!(observe(&broken, false).err, "OCI runtime create failed");
    }
}
