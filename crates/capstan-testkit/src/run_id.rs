//! The identity of one test process and the labels that mark what it made.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Label carrying the run id; every container, network and volume has it.
pub const RUN_LABEL: &str = "capstan.test";
/// Label marking a resource as the testkit's, so cleanup never touches others.
pub const OWNER_LABEL: &str = "capstan.test.owner";
/// Value of [`OWNER_LABEL`].
pub const OWNER: &str = "capstan-testkit";
/// Label with the pid of the test process, to tell a crashed run from a live one.
pub const PID_LABEL: &str = "capstan.test.pid";
/// Label with the host name of the test process: a pid means nothing elsewhere.
pub const HOST_LABEL: &str = "capstan.test.host";
/// Label with the unix time the run started.
pub const CREATED_LABEL: &str = "capstan.test.created";

/// A unique id per test process, `capstan-test-<pid>-<random>`.
///
/// It prefixes the names of everything the run creates and is the value of
/// [`RUN_LABEL`], so one `--filter label=capstan.test=<id>` finds it all.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunId {
    id: String,
    pid: u32,
    host: String,
    created_unix: u64,
}

impl RunId {
    /// A fresh id for this process.
    pub fn new() -> RunId {
        let pid = std::process::id();
        let created_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_secs();
        RunId {
            id: format!("capstan-test-{pid}-{:08x}", rand::random::<u32>()),
            pid,
            host: host_name(),
            created_unix,
        }
    }

    /// The id itself.
    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// `key=value` labels to put on every resource of this run.
    pub fn labels(&self) -> Vec<(&'static str, String)> {
        vec![
            (RUN_LABEL, self.id.clone()),
            (OWNER_LABEL, OWNER.to_owned()),
            (PID_LABEL, self.pid.to_string()),
            (HOST_LABEL, self.host.clone()),
            (CREATED_LABEL, self.created_unix.to_string()),
        ]
    }

    /// The labels as docker CLI arguments: `--label k=v` pairs.
    pub fn label_args(&self) -> Vec<String> {
        self.labels()
            .into_iter()
            .flat_map(|(k, v)| ["--label".to_owned(), format!("{k}={v}")])
            .collect()
    }

    /// The `--filter` value that selects exactly this run's resources.
    pub fn filter(&self) -> String {
        format!("label={RUN_LABEL}={}", self.id)
    }

    /// A docker object name unique to this run: `<run id>-<hint>`, with the
    /// hint reduced to the characters docker accepts in names.
    pub fn scoped_name(&self, hint: &str) -> String {
        let hint: String = hint
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        if hint.is_empty() {
            self.id.clone()
        } else {
            format!("{}-{hint}", self.id)
        }
    }
}

impl Default for RunId {
    fn default() -> Self {
        RunId::new()
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

/// This machine's host name, as the kernel reports it.
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_name_the_process() {
        let a = RunId::new();
        let b = RunId::new();
        assert_ne!(a, b);
        let prefix = format!("capstan-test-{}-", std::process::id());
        assert!(a.as_str().starts_with(&prefix), "{a}");
    }

    #[test]
    fn scoped_names_keep_only_docker_name_characters() {
        let run = RunId::new();
        assert_eq!(run.scoped_name("manager 1/α"), format!("{run}-manager-1--"));
        assert_eq!(run.scoped_name(""), run.to_string());
    }

    #[test]
    fn labels_mark_run_and_owner() {
        let run = RunId::new();
        let args = run.label_args();
        assert!(args.contains(&format!("capstan.test={run}")));
        assert!(args.contains(&"capstan.test.owner=capstan-testkit".to_owned()));
        assert_eq!(run.filter(), format!("label=capstan.test={run}"));
    }
}
