//! One test host: a container, what it is started with, and the failures a
//! test can inflict on it (crash, stop, freeze, partition, reboot).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use crate::docker::{docker, docker_output};
use crate::error::{Error, Result};
use crate::network::TestNetwork;

/// What to start a container with; [`crate::Harness::run`] adds the name
/// prefix, the run's labels and cleanup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    /// Short name such as `manager1`; the container is `<run id>-<hint>`.
    pub name_hint: String,
    /// Host name inside the container, also its alias on the network;
    /// defaults to the name hint.
    pub hostname: Option<String>,
    /// Image tag, usually [`crate::TestImage::tag`].
    pub image: String,
    /// Command and arguments; the testkit images have no default command.
    pub cmd: Vec<String>,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// A size-limited tmpfs, `(path, size)` such as `("/data", "16m")`: a
    /// small disk that fills up.
    pub tmpfs: Option<(String, String)>,
    /// `(source, container path)`: a source starting with `/` is a host path
    /// (e.g. `/var/run/docker.sock`), any other is a volume named for this
    /// run, created with the run's labels and removed with them.
    pub volumes: Vec<(String, String)>,
    /// Network to attach to at start, by name ([`TestNetwork::name`]).
    pub network: Option<String>,
    /// Run `docker-init` as PID 1 so signals reach the command and
    /// `docker stop` is prompt; on by default.
    pub init: bool,
    /// Further `docker run` arguments, placed before the image.
    pub extra_args: Vec<String>,
}

impl Default for ContainerSpec {
    fn default() -> Self {
        ContainerSpec {
            name_hint: String::new(),
            hostname: None,
            image: String::new(),
            cmd: Vec::new(),
            env: Vec::new(),
            tmpfs: None,
            volumes: Vec::new(),
            network: None,
            init: true,
            extra_args: Vec::new(),
        }
    }
}

impl ContainerSpec {
    /// A spec for `image` named after `name_hint`, to be completed with the
    /// builder methods below.
    pub fn new(name_hint: impl Into<String>, image: impl Into<String>) -> ContainerSpec {
        ContainerSpec {
            name_hint: name_hint.into(),
            image: image.into(),
            ..ContainerSpec::default()
        }
    }

    /// Sets the command, e.g. `["sleep", "300"]`.
    pub fn cmd<I, S>(mut self, cmd: I) -> ContainerSpec
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.cmd = cmd.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the host name.
    pub fn hostname(mut self, hostname: impl Into<String>) -> ContainerSpec {
        self.hostname = Some(hostname.into());
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> ContainerSpec {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Mounts a tmpfs of `size` (docker syntax: `16m`) at `path`.
    pub fn tmpfs(mut self, path: impl Into<String>, size: impl Into<String>) -> ContainerSpec {
        self.tmpfs = Some((path.into(), size.into()));
        self
    }

    /// Mounts a host path or a run-scoped named volume at `container_path`.
    pub fn volume(
        mut self,
        source: impl Into<String>,
        container_path: impl Into<String>,
    ) -> ContainerSpec {
        self.volumes.push((source.into(), container_path.into()));
        self
    }

    /// Attaches the container to `network` at start.
    pub fn network(mut self, network: &TestNetwork) -> ContainerSpec {
        self.network = Some(network.name.clone());
        self
    }

    /// Adds raw `docker run` arguments.
    pub fn extra_args<I, S>(mut self, args: I) -> ContainerSpec
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The host name the container gets.
    pub(crate) fn effective_hostname(&self) -> String {
        self.hostname
            .clone()
            .unwrap_or_else(|| self.name_hint.clone())
    }
}

/// What a command run with [`Container::exec`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code; `None` if killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl ExecOutput {
    /// Whether the command exited zero.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// A running (or stopped) test container. Cheap to clone; the
/// [`crate::Harness`] that started it removes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// The docker container name, `<run id>-<hint>`.
    pub name: String,
    /// Its host name, which is also its alias on every network it joins.
    pub hostname: String,
}

impl Container {
    /// Its IPv4 address on `net`; fails if it is not attached to `net`.
    /// An address can change across [`Container::disconnect`] and
    /// [`Container::connect`]: address peers by host name where possible.
    pub fn ip(&self, net: &TestNetwork) -> Result<IpAddr> {
        let json = docker([
            "container",
            "inspect",
            "--format",
            "{{json .NetworkSettings.Networks}}",
            &self.name,
        ])?;
        let unexpected = |detail: &str| Error::UnexpectedOutput {
            command: format!("docker container inspect {}", self.name),
            detail: detail.to_owned(),
            output: json.clone(),
        };
        let networks: HashMap<String, serde_json::Value> =
            serde_json::from_str(&json).map_err(|e| unexpected(&e.to_string()))?;
        let address = networks
            .get(&net.name)
            .and_then(|n| n.get("IPAddress"))
            .and_then(serde_json::Value::as_str)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| Error::NotOnNetwork {
                container: self.name.clone(),
                network: net.name.clone(),
            })?;
        address
            .parse()
            .map_err(|_| unexpected("an IPAddress that is not an IP address"))
    }

    /// Runs a command in the container. A non-zero exit is not an error
    /// here: look at [`ExecOutput::code`], or use [`Container::exec_ok`].
    pub fn exec(&self, cmd: &[&str]) -> Result<ExecOutput> {
        let mut args = vec!["exec", self.name.as_str()];
        args.extend_from_slice(cmd);
        let (_, output) = docker_output(&args)?;
        Ok(ExecOutput {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Runs a command in the container and returns its stdout, failing with
    /// its stderr if it exits non-zero.
    pub fn exec_ok(&self, cmd: &[&str]) -> Result<String> {
        let output = self.exec(cmd)?;
        if output.success() {
            return Ok(output.stdout);
        }
        Err(Error::CommandFailed {
            command: format!("docker exec {} {}", self.name, cmd.join(" ")),
            status: output
                .code
                .map_or_else(|| "killed by a signal".to_owned(), |c| format!("exit {c}")),
            stderr: output.stderr.trim().to_owned(),
        })
    }

    /// Everything the container wrote: stdout, then stderr.
    pub fn logs(&self) -> Result<String> {
        self.logs_tail(None)
    }

    /// The last `lines` lines of stdout and of stderr, or all with `None`.
    pub fn logs_tail(&self, lines: Option<usize>) -> Result<String> {
        let tail = lines.map_or_else(|| "all".to_owned(), |n| n.to_string());
        let (command, output) = docker_output(["logs", "--tail", &tail, &self.name])?;
        if !output.status.success() {
            return Err(Error::CommandFailed {
                command,
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        let mut logs = String::from_utf8_lossy(&output.stdout).into_owned();
        logs.push_str(&String::from_utf8_lossy(&output.stderr));
        Ok(logs)
    }

    /// Crash: SIGKILL to every process, no chance to flush or say goodbye.
    pub fn kill(&self) -> Result<()> {
        self.lifecycle("kill")
    }

    /// Clean stop: SIGTERM, then SIGKILL after docker's grace period.
    pub fn stop(&self) -> Result<()> {
        self.lifecycle("stop")
    }

    /// Starts a stopped or killed container with its disk as it was.
    pub fn start(&self) -> Result<()> {
        self.lifecycle("start")
    }

    /// Reboot keeping the disk.
    pub fn restart(&self) -> Result<()> {
        self.lifecycle("restart")
    }

    /// Freezes every process: heartbeats stop while sockets stay open.
    pub fn pause(&self) -> Result<()> {
        self.lifecycle("pause")
    }

    /// Thaws a paused container.
    pub fn unpause(&self) -> Result<()> {
        self.lifecycle("unpause")
    }

    /// Cuts the container off `net` (a partition).
    pub fn disconnect(&self, net: &TestNetwork) -> Result<()> {
        docker(["network", "disconnect", &net.name, &self.name]).map(drop)
    }

    /// Reattaches the container to `net` (healing a partition), with its
    /// host name as alias again.
    pub fn connect(&self, net: &TestNetwork) -> Result<()> {
        docker([
            "network",
            "connect",
            "--alias",
            &self.hostname,
            &net.name,
            &self.name,
        ])
        .map(drop)
    }

    /// Copies `container_path` out of the container to `host_path`.
    pub fn cp_from(&self, container_path: &str, host_path: &Path) -> Result<()> {
        let source = format!("{}:{container_path}", self.name);
        docker([
            std::ffi::OsStr::new("cp"),
            source.as_ref(),
            host_path.as_os_str(),
        ])
        .map(drop)
    }

    /// Whether its processes are running (a paused container counts as
    /// running, as docker reports it).
    pub fn is_running(&self) -> Result<bool> {
        Ok(self.inspect_state("{{.State.Running}}")? == "true")
    }

    /// Docker's state word: `created`, `running`, `paused`, `restarting`,
    /// `exited` or `dead`.
    pub fn status(&self) -> Result<String> {
        self.inspect_state("{{.State.Status}}")
    }

    fn inspect_state(&self, format: &str) -> Result<String> {
        docker(["container", "inspect", "--format", format, &self.name])
    }

    fn lifecycle(&self, verb: &str) -> Result<()> {
        docker([verb, &self.name]).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_fills_the_spec_like_a_literal() {
        let net = TestNetwork {
            name: "run-net".to_owned(),
            subnet: "172.30.0.0/16".to_owned(),
        };
        let built = ContainerSpec::new("manager1", "capstan-test/node:abc")
            .cmd(["capstan", "manager"])
            .env("RUST_LOG", "debug")
            .tmpfs("/data", "16m")
            .volume("state", "/var/lib/capstan")
            .network(&net);
        let literal = ContainerSpec {
            name_hint: "manager1".to_owned(),
            image: "capstan-test/node:abc".to_owned(),
            cmd: vec!["capstan".to_owned(), "manager".to_owned()],
            env: vec![("RUST_LOG".to_owned(), "debug".to_owned())],
            tmpfs: Some(("/data".to_owned(), "16m".to_owned())),
            volumes: vec![("state".to_owned(), "/var/lib/capstan".to_owned())],
            network: Some("run-net".to_owned()),
            ..ContainerSpec::default()
        };
        assert_eq!(built, literal);
        assert!(built.init);
        assert_eq!(built.effective_hostname(), "manager1");
    }
}
