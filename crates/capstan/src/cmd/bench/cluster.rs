//! A three-manager Capstan cluster on loopback, made of child processes of
//! this very binary: `install --init-only` and `manager` for the first,
//! `join` for the other two, each with its own data directory and ports.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use capstan_manager::DataDir;
use capstan_proto::v1 as pb;
use capstan_proto::v1::cluster_client::ClusterClient;
use tonic::transport::Channel;

use super::process::{run_to_end, Ports, Process};
use super::suite::System;
use super::workload::KvClient;
use crate::cmd::kv::KV_TABLE;
use crate::cmd::node::status_error;

/// Managers in the benchmark cluster.
const MANAGERS: usize = 3;
/// How long a manager may take to start or join, and the cluster to count
/// a joined manager as a reachable voter.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The throwaway admin password of the benchmark cluster.
const ADMIN_PASSWORD: &str = "capstan-bench-admin";

/// One manager process and where it lives.
struct Manager {
    dir: PathBuf,
    addr: String,
    process: Process,
}

/// The running cluster; dropping it kills every manager.
pub struct CapstanCluster {
    managers: Vec<Manager>,
}

fn capstan(dir: &Path) -> anyhow::Result<Command> {
    let exe = std::env::current_exe().context("find the running capstan binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("--data-dir").arg(dir);
    // Only the flags given here shape the cluster: settings this run got
    // from the environment (log level, ports, ...) must not leak into it.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CAPSTAN_") {
            cmd.env_remove(key);
        }
    }
    Ok(cmd)
}

/// `--host-address ... --kube-apiserver-port ...` for a node on loopback.
fn net_args(cmd: &mut Command, swarm: u16, ports: &mut Ports) -> anyhow::Result<()> {
    cmd.args([
        "--host-address",
        "127.0.0.1",
        "--listen-address",
        "127.0.0.1",
    ])
    .args(["--swarm-port", &swarm.to_string()])
    .args(["--controller-port", &ports.free()?.to_string()])
    .args(["--kube-apiserver-port", &ports.free()?.to_string()]);
    Ok(())
}

impl CapstanCluster {
    /// Installs and starts the first manager, joins two more one after the
    /// other, and waits until the leader reports three reachable voters.
    pub async fn start(work: &Path, ports: &mut Ports) -> anyhow::Result<CapstanCluster> {
        let mut cluster = CapstanCluster { managers: vec![] };
        let first = work.join("manager1");
        let swarm = ports.free()?;
        let mut install = capstan(&first)?;
        install
            .args(["install", "--init-only", "--admin-username", "admin"])
            .env("CAPSTAN_ADMIN_PASSWORD", ADMIN_PASSWORD);
        net_args(&mut install, swarm, ports)?;
        run_to_end("capstan install", install, START_TIMEOUT).await?;
        let mut manager = capstan(&first)?;
        manager.arg("manager");
        cluster.launch(work, first, swarm, manager).await?;

        let mut token = capstan(&cluster.managers[0].dir)?;
        token.args(["token", "manager", "--quiet"]);
        let token = run_to_end("capstan token manager", token, START_TIMEOUT).await?;
        for i in 2..=MANAGERS {
            cluster.join(work, i, token.trim(), ports).await?;
            cluster.wait_for_voters(i, START_TIMEOUT).await?;
        }
        Ok(cluster)
    }

    /// Joins manager `i` through the first manager.
    async fn join(
        &mut self,
        work: &Path,
        i: usize,
        token: &str,
        ports: &mut Ports,
    ) -> anyhow::Result<()> {
        let dir = work.join(format!("manager{i}"));
        let swarm = ports.free()?;
        let mut join = capstan(&dir)?;
        join.args(["join", &self.managers[0].addr])
            .env("CAPSTAN_JOIN_TOKEN", token);
        net_args(&mut join, swarm, ports)?;
        self.launch(work, dir, swarm, join).await
    }

    async fn launch(
        &mut self,
        work: &Path,
        dir: PathBuf,
        swarm: u16,
        cmd: Command,
    ) -> anyhow::Result<()> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "manager".into());
        let mut process = Process::spawn(&name, cmd, &work.join(format!("{name}.log")))?;
        process.wait_for_line("is running", START_TIMEOUT).await?;
        self.managers.push(Manager {
            dir,
            addr: format!("127.0.0.1:{swarm}"),
            process,
        });
        Ok(())
    }

    async fn client(&self, member: usize) -> anyhow::Result<ClusterClient<Channel>> {
        let m = &self.managers[member];
        capstan_manager::client::connect(&DataDir::new(&m.dir), Some(&m.addr))
            .await
            .with_context(|| format!("connect to manager{} at {}", member + 1, m.addr))
    }

    async fn status(&self, member: usize) -> anyhow::Result<pb::StatusResponse> {
        let mut c = self.client(member).await?;
        let s = c.status(pb::StatusRequest {}).await.map_err(status_error)?;
        Ok(s.into_inner())
    }

    /// The member whose address the leader has, as `member` reports it.
    fn leader_in(&self, s: &pb::StatusResponse) -> Option<usize> {
        let addr = &s
            .members
            .iter()
            .find(|m| !s.leader_id.is_empty() && m.node_id == s.leader_id)?
            .addr;
        self.managers.iter().position(|m| &m.addr == addr)
    }

    /// Waits until the leader counts `n` reachable voters.
    async fn wait_for_voters(&self, n: usize, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut last = String::from("no status yet");
        while started.elapsed() < timeout {
            match self.leader().await {
                Ok(l) => match self.status(l).await {
                    Ok(s) => {
                        let voters = s.members.iter().filter(|m| m.voter && m.reachable).count();
                        if voters == n {
                            return Ok(());
                        }
                        last = format!("{voters} reachable voters");
                    }
                    Err(e) => last = format!("{e:#}"),
                },
                Err(e) => last = format!("{e:#}"),
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        bail!(
            "the cluster did not reach {n} reachable voters within {timeout:?} ({last}); manager logs:\n{}",
            self.logs()
        )
    }

    fn logs(&self) -> String {
        self.managers
            .iter()
            .enumerate()
            .map(|(i, m)| format!("--- manager{}\n{}", i + 1, m.process.log_tail(20)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl System for CapstanCluster {
    type Client = CapstanClient;

    fn name(&self) -> &'static str {
        "capstan"
    }

    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }

    fn members(&self) -> usize {
        self.managers.len()
    }

    async fn connect(&self, member: usize) -> anyhow::Result<CapstanClient> {
        Ok(CapstanClient(self.client(member).await?))
    }

    async fn leader(&self) -> anyhow::Result<usize> {
        let mut last = None;
        for member in 0..self.managers.len() {
            match self.status(member).await {
                Ok(s) => match self.leader_in(&s) {
                    Some(l) => return Ok(l),
                    None => last = Some(anyhow::anyhow!("manager{} sees no leader", member + 1)),
                },
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no manager answered")))
    }

    fn rss_bytes(&self, member: usize) -> anyhow::Result<u64> {
        self.managers[member].process.rss_bytes()
    }

    fn data_dir(&self, member: usize) -> PathBuf {
        self.managers[member].dir.clone()
    }

    fn kill(&mut self, member: usize) -> anyhow::Result<()> {
        self.managers[member].process.kill()
    }
}

/// A connection to one manager's cluster API, with that manager's
/// certificate.
#[derive(Clone)]
pub struct CapstanClient(ClusterClient<Channel>);

impl KvClient for CapstanClient {
    async fn put(&mut self, key: String, value: Vec<u8>) -> anyhow::Result<()> {
        self.0
            .write(pb::WriteRequest {
                ops: vec![pb::WriteOp {
                    table: KV_TABLE.into(),
                    id: key,
                    op: Some(pb::write_op::Op::Put(value)),
                    expected_version: 0,
                    any_version: true,
                }],
            })
            .await
            .map_err(status_error)?;
        Ok(())
    }

    async fn get(&mut self, key: String) -> anyhow::Result<()> {
        let resp = self
            .0
            .read(pb::ReadRequest {
                table: KV_TABLE.into(),
                id: key.clone(),
                consistency: pb::Consistency::Linearizable.into(),
            })
            .await
            .map_err(status_error)?;
        if resp.into_inner().object.is_none() {
            bail!("key {key} is missing");
        }
        Ok(())
    }
}
