//! The statuses the executor reports, and the book that keeps them moving
//! forward: a task never goes back to an earlier state, a terminal state is
//! final, and an unchanged observation is reported with its first
//! timestamp, so repeated reconciles return equal statuses.

use std::collections::{HashMap, HashSet};

use capstan_core::task::PublishedPort;
use capstan_core::{Task, TaskState, TaskStatus};
use time::OffsetDateTime;

/// An observation of a task, before it is stamped and settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Report {
    /// Observed state.
    pub state: TaskState,
    /// Why it failed or was rejected.
    pub err: String,
    /// Extra words for the message (e.g. a retried preparation).
    pub detail: String,
    /// The container, when there is one.
    pub container_id: String,
    /// Exit code of a finished container.
    pub exit_code: Option<i64>,
    /// Ports published on the node.
    pub ports: Vec<PublishedPort>,
}

impl Report {
    /// A report of `state` and nothing else.
    pub(crate) fn state(state: TaskState) -> Report {
        Report {
            state,
            err: String::new(),
            detail: String::new(),
            container_id: String::new(),
            exit_code: None,
            ports: Vec::new(),
        }
    }

    /// A failure or rejection with its error text.
    pub(crate) fn error(state: TaskState, err: impl Into<String>) -> Report {
        Report {
            err: err.into(),
            ..Report::state(state)
        }
    }

    /// The same report about container `id`.
    pub(crate) fn of_container(mut self, id: &str) -> Report {
        self.container_id = id.to_owned();
        self
    }

    fn into_status(self, now: OffsetDateTime) -> TaskStatus {
        TaskStatus {
            state: self.state,
            message: message(self.state, &self.err, &self.detail),
            err: self.err,
            timestamp: now,
            container_id: self.container_id,
            exit_code: self.exit_code,
            ports: self.ports,
        }
    }
}

/// The message `docker service ps` shows beside the state, in Swarm's words.
pub(crate) fn message(state: TaskState, err: &str, detail: &str) -> String {
    let word = match state {
        TaskState::New => "new",
        TaskState::Pending => "pending",
        TaskState::Assigned => "assigned",
        TaskState::Accepted => "accepted",
        TaskState::Preparing => "preparing",
        TaskState::Ready => "ready",
        TaskState::Starting => "starting",
        TaskState::Running => "running",
        TaskState::Complete => "finished",
        TaskState::Shutdown => "shutdown",
        TaskState::Failed => "failed",
        TaskState::Rejected => return format!("rejected: {err}"),
        TaskState::Remove => "removed",
        TaskState::Orphaned => "orphaned",
    };
    if detail.is_empty() {
        word.to_owned()
    } else {
        format!("{word} ({detail})")
    }
}

/// The last status reported per task, in memory. After an agent restart the
/// book is empty and the status the manager holds for the task (which the
/// previous agent reported) stands in for it.
#[derive(Debug, Default)]
pub(crate) struct StatusBook {
    last: HashMap<String, TaskStatus>,
}

impl StatusBook {
    /// The most advanced status known for `task`: ours, or the manager's.
    pub(crate) fn known(&self, task: &Task) -> TaskStatus {
        match self.last.get(&task.id) {
            Some(ours) if ours.state >= task.status.state => ours.clone(),
            _ => task.status.clone(),
        }
    }

    /// Turns an observation into the status to report, recording it.
    pub(crate) fn settle(
        &mut self,
        task: &Task,
        report: Report,
        now: OffsetDateTime,
    ) -> TaskStatus {
        let known = self.known(task);
        let stays = known.state.is_terminal()
            || report.state < known.state
            || same_observation(&known, &report);
        let settled = if stays {
            known
        } else {
            report.into_status(now)
        };
        self.last.insert(task.id.clone(), settled.clone());
        settled
    }

    /// Forgets tasks no longer assigned.
    pub(crate) fn retain(&mut self, assigned: &HashSet<&str>) {
        self.last.retain(|id, _| assigned.contains(id.as_str()));
    }
}

fn same_observation(known: &TaskStatus, report: &Report) -> bool {
    known.state == report.state
        && known.err == report.err
        && known.message == message(report.state, &report.err, &report.detail)
        && known.container_id == report.container_id
        && known.exit_code == report.exit_code
        && known.ports == report.ports
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::task;

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(seconds).expect("valid time")
    }

    #[test]
    fn messages_read_like_swarm() {
        assert_eq!(message(TaskState::Running, "", ""), "running");
        assert_eq!(message(TaskState::Complete, "", ""), "finished");
        assert_eq!(
            message(TaskState::Rejected, "No such image: x", ""),
            "rejected: No such image: x"
        );
        assert_eq!(
            message(TaskState::Preparing, "", "retrying: timeout"),
            "preparing (retrying: timeout)"
        );
    }

    #[test]
    fn states_only_move_forward_and_terminal_states_stick() {
        let t = task("t1", "web", 1);
        let mut book = StatusBook::default();
        let running = book.settle(
            &t,
            Report::state(TaskState::Running).of_container("c1"),
            at(1),
        );
        assert_eq!(running.state, TaskState::Running);
        let back = book.settle(&t, Report::state(TaskState::Preparing), at(2));
        assert_eq!(back, running, "went back to preparing");
        let failed = book.settle(
            &t,
            Report::error(TaskState::Failed, "task: non-zero exit (137)"),
            at(3),
        );
        assert_eq!(failed.state, TaskState::Failed);
        assert_eq!(failed.err, "task: non-zero exit (137)");
        for later in [TaskState::Running, TaskState::Shutdown, TaskState::Rejected] {
            assert_eq!(book.settle(&t, Report::state(later), at(4)), failed);
        }
    }

    #[test]
    fn an_unchanged_observation_keeps_its_timestamp() {
        let t = task("t1", "web", 1);
        let mut book = StatusBook::default();
        let first = book.settle(
            &t,
            Report::state(TaskState::Running).of_container("c1"),
            at(1),
        );
        let again = book.settle(
            &t,
            Report::state(TaskState::Running).of_container("c1"),
            at(9),
        );
        assert_eq!(again.timestamp, at(1));
        assert_eq!(first, again);
    }

    #[test]
    fn the_managers_status_stands_in_after_a_restart() {
        let mut t = task("t1", "web", 1);
        t.status.state = TaskState::Failed;
        t.status.err = "unhealthy container".into();
        let mut book = StatusBook::default();
        let settled = book.settle(&t, Report::state(TaskState::Running), at(5));
        assert_eq!(settled.state, TaskState::Failed);
        assert_eq!(settled.err, "unhealthy container");

        book.retain(&HashSet::new());
        assert!(book.last.is_empty());
    }
}
