//! Removing what test runs leave behind: this run's resources when its
//! harness is dropped, and those of crashed earlier runs when a new harness
//! starts.
//!
//! Architecture invariant: only resources carrying the testkit's owner label
//! are ever removed, and of those only the ones of this run or of a run whose
//! process is gone.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::docker::{docker, docker_output, lines};
use crate::run_id::{
    host_name, CREATED_LABEL, HOST_LABEL, OWNER, OWNER_LABEL, PID_LABEL, RUN_LABEL,
};

/// A run is judged crashed only when its process is gone and it is at least
/// this old, so a run that is just starting is never touched.
pub(crate) const CRASHED_RUN_MIN_AGE: Duration = Duration::from_secs(3 * 60);

/// Past this age a run is over even if it ran on another host (its pid
/// cannot be checked from here) or its pid was reused.
const ABANDONED_RUN_AGE: Duration = Duration::from_secs(24 * 3600);

/// The three kinds of docker objects a run creates, in removal order:
/// containers hold networks and volumes.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Container,
    Network,
    Volume,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Container, Kind::Network, Kind::Volume];

    fn list_args(self, filter: &str) -> Vec<String> {
        let mut args: Vec<String> = match self {
            Kind::Container => vec!["container", "ls", "-a", "-q", "--no-trunc"],
            Kind::Network => vec!["network", "ls", "-q", "--no-trunc"],
            Kind::Volume => vec!["volume", "ls", "-q"],
        }
        .into_iter()
        .map(str::to_owned)
        .collect();
        args.extend(["--filter".to_owned(), filter.to_owned()]);
        args
    }

    fn labels_args(self, ids: &[String]) -> Vec<String> {
        let (noun, format) = match self {
            Kind::Container => ("container", "{{json .Config.Labels}}"),
            Kind::Network => ("network", "{{json .Labels}}"),
            Kind::Volume => ("volume", "{{json .Labels}}"),
        };
        let mut args = vec![noun.to_owned(), "inspect".to_owned()];
        args.extend(["--format".to_owned(), format.to_owned()]);
        args.extend(ids.iter().cloned());
        args
    }

    fn remove_args(self, ids: &[String]) -> Vec<String> {
        let mut args: Vec<String> = match self {
            Kind::Container => vec!["container", "rm", "--force", "--volumes"],
            Kind::Network => vec!["network", "rm"],
            Kind::Volume => vec!["volume", "rm", "--force"],
        }
        .into_iter()
        .map(str::to_owned)
        .collect();
        args.extend(ids.iter().cloned());
        args
    }
}

/// Removes every container, network and volume matching `filter` (a docker
/// `--filter` value such as `label=capstan.test=<id>`). Returns what could
/// not be removed, as messages.
pub(crate) fn remove_matching(filter: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for kind in Kind::ALL {
        let ids = match docker(kind.list_args(filter)) {
            Ok(out) => lines(&out),
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        if ids.is_empty() {
            continue;
        }
        if let Kind::Network = kind {
            for id in &ids {
                detach_strangers(id);
            }
        }
        if let Err(e) = docker(kind.remove_args(&ids)) {
            problems.push(e.to_string());
        }
    }
    problems
}

/// Disconnects containers that are still on a network about to be removed
/// (e.g. workloads an agent under test started), without touching them
/// otherwise; docker refuses to remove a network with endpoints.
fn detach_strangers(network: &str) {
    let Ok(names) = docker([
        "network",
        "inspect",
        "--format",
        "{{range .Containers}}{{.Name}} {{end}}",
        network,
    ]) else {
        return;
    };
    for name in names.split_whitespace() {
        let _ = docker(["network", "disconnect", "--force", network, name]);
    }
}

/// What the labels say about the run that made a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RunLabels {
    run: String,
    pid: Option<u32>,
    host: Option<String>,
    created_unix: Option<u64>,
}

impl RunLabels {
    fn from_labels(labels: &HashMap<String, String>) -> Option<RunLabels> {
        if labels.get(OWNER_LABEL).map(String::as_str) != Some(OWNER) {
            return None;
        }
        Some(RunLabels {
            run: labels.get(RUN_LABEL)?.clone(),
            pid: labels.get(PID_LABEL).and_then(|p| p.parse().ok()),
            host: labels.get(HOST_LABEL).cloned(),
            created_unix: labels.get(CREATED_LABEL).and_then(|c| c.parse().ok()),
        })
    }

    /// Whether the run that made this is over: the decision alone, with the
    /// facts passed in.
    fn is_crashed(
        &self,
        now_unix: u64,
        this_host: &str,
        pid_alive: impl Fn(u32) -> bool,
        min_age: Duration,
    ) -> bool {
        let Some(created) = self.created_unix else {
            return false;
        };
        let age = now_unix.saturating_sub(created);
        if age >= ABANDONED_RUN_AGE.as_secs() {
            return true;
        }
        let same_host = self.host.as_deref() == Some(this_host);
        match self.pid {
            Some(pid) if same_host => age >= min_age.as_secs() && !pid_alive(pid),
            _ => false,
        }
    }
}

/// Removes the resources of earlier runs whose process is gone. Best effort:
/// failures are returned as messages, never stop a new run.
pub(crate) fn remove_crashed_runs(current_run: &str, min_age: Duration) -> Vec<String> {
    let owner_filter = format!("label={OWNER_LABEL}={OWNER}");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let host = host_name();
    let mut crashed: Vec<String> = Vec::new();
    for kind in Kind::ALL {
        let Ok(out) = docker(kind.list_args(&owner_filter)) else {
            continue;
        };
        let ids = lines(&out);
        if ids.is_empty() {
            continue;
        }
        // Objects can vanish between listing and inspecting; read what came.
        let Ok((_, output)) = docker_output(kind.labels_args(&ids)) else {
            continue;
        };
        for line in lines(&String::from_utf8_lossy(&output.stdout)) {
            let Ok(labels) = serde_json::from_str::<HashMap<String, String>>(&line) else {
                continue;
            };
            let Some(run) = RunLabels::from_labels(&labels) else {
                continue;
            };
            if run.run != current_run
                && !crashed.contains(&run.run)
                && run.is_crashed(now, &host, pid_alive, min_age)
            {
                crashed.push(run.run);
            }
        }
    }
    crashed
        .iter()
        .flat_map(|run| remove_matching(&format!("label={RUN_LABEL}={run}")))
        .collect()
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn run(pid: u32, host: &str, created: u64) -> RunLabels {
        RunLabels {
            run: "capstan-test-1-0".to_owned(),
            pid: Some(pid),
            host: Some(host.to_owned()),
            created_unix: Some(created),
        }
    }

    const MIN: Duration = CRASHED_RUN_MIN_AGE;
    const NOW: u64 = 1_000_000;

    #[test]
    fn only_resources_owned_by_the_testkit_are_considered() {
        let other = labels(&[(RUN_LABEL, "x"), (OWNER_LABEL, "someone-else")]);
        assert_eq!(RunLabels::from_labels(&other), None);
        let ours = labels(&[
            (RUN_LABEL, "capstan-test-7-ab"),
            (OWNER_LABEL, OWNER),
            (PID_LABEL, "7"),
            (HOST_LABEL, "h"),
            (CREATED_LABEL, "42"),
        ]);
        assert_eq!(
            RunLabels::from_labels(&ours),
            Some(RunLabels {
                run: "capstan-test-7-ab".to_owned(),
                pid: Some(7),
                host: Some("h".to_owned()),
                created_unix: Some(42),
            })
        );
    }

    #[test]
    fn crash_decision_table() {
        let dead = |_| false;
        let alive = |_| true;
        let old = NOW - MIN.as_secs() - 1;
        let young = NOW - 10;
        let ancient = NOW - ABANDONED_RUN_AGE.as_secs();
        // (run, pid alive?, crashed?)
        let cases: [(RunLabels, bool, bool); 6] = [
            (run(7, "here", old), false, true),
            (run(7, "here", old), true, false),
            (run(7, "here", young), false, false),
            (run(7, "elsewhere", old), false, false),
            (run(7, "elsewhere", ancient), true, true),
            (run(7, "here", ancient), true, true),
        ];
        for (labels, is_alive, expected) in cases {
            let got = if is_alive {
                labels.is_crashed(NOW, "here", alive, MIN)
            } else {
                labels.is_crashed(NOW, "here", dead, MIN)
            };
            assert_eq!(got, expected, "{labels:?} alive={is_alive}");
        }
    }

    #[test]
    fn runs_without_a_creation_time_are_left_alone() {
        let mut labels = run(7, "here", 0);
        labels.created_unix = None;
        assert!(!labels.is_crashed(NOW, "here", |_| false, MIN));
    }
}
