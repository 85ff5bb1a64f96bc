//! The peer the store benchmark compares with: a three-member etcd cluster
//! on loopback (the `etcd` binary on the PATH, Debian's `etcd-server`),
//! driven through its native v3 gRPC API (the subset in `proto/etcd`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use capstan_proto::etcd::kv_client::KvClient as EtcdKv;
use capstan_proto::etcd::maintenance_client::MaintenanceClient;
use capstan_proto::etcd::{PutRequest, RangeRequest, StatusRequest};
use tonic::transport::{Channel, Endpoint};

use super::process::{run_to_end, Ports, Process};
use super::suite::System;
use super::workload::KvClient;

/// Members of the etcd cluster.
const MEMBERS: usize = 3;
/// How long the cluster may take to elect a leader.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Finds `etcd` on the PATH, or says how to get it.
pub fn binary() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("etcd"))
        .find(|candidate| candidate.is_file())
        .context(
            "`etcd` is not on the PATH: the store benchmark compares Capstan with a \
             three-member etcd cluster; install etcd (Debian: `apt-get install etcd-server`) \
             or pass --no-peer to measure Capstan alone",
        )
}

struct Member {
    client_url: String,
    dir: PathBuf,
    id: u64,
    process: Process,
}

/// The running etcd cluster; dropping it kills every member.
pub struct EtcdCluster {
    members: Vec<Member>,
    version: String,
}

/// The command line of member `name`, per etcd's static bootstrap.
fn member_command(
    bin: &Path,
    name: &str,
    dir: &Path,
    client_port: u16,
    peer_port: u16,
    initial_cluster: &str,
) -> Command {
    let client = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let mut cmd = Command::new(bin);
    cmd.arg("--name")
        .arg(name)
        .arg("--data-dir")
        .arg(dir)
        .args(["--listen-client-urls", &client])
        .args(["--advertise-client-urls", &client])
        .args(["--listen-peer-urls", &peer])
        .args(["--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster", initial_cluster])
        .args(["--initial-cluster-token", "capstan-bench"])
        .args(["--initial-cluster-state", "new"])
        .args(["--logger", "zap", "--log-outputs", "stderr"]);
    // Settings from the environment would change what is measured.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ETCD_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

impl EtcdCluster {
    /// Starts three members with fresh data directories under `work` and
    /// waits until they agree on a leader.
    pub async fn start(bin: &Path, work: &Path, ports: &mut Ports) -> anyhow::Result<EtcdCluster> {
        let version = run_to_end(
            "etcd --version",
            {
                let mut c = Command::new(bin);
                c.arg("--version");
                c
            },
            Duration::from_secs(10),
        )
        .await?;
        let version = version
            .lines()
            .find_map(|l| l.strip_prefix("etcd Version:"))
            .unwrap_or("unknown")
            .trim()
            .to_string();
        let mut planned = Vec::new();
        for i in 1..=MEMBERS {
            planned.push((format!("etcd{i}"), ports.free()?, ports.free()?));
        }
        let initial_cluster = planned
            .iter()
            .map(|(name, _, peer)| format!("{name}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::new();
        for (name, client_port, peer_port) in planned {
            let dir = work.join(&name);
            let cmd = member_command(bin, &name, &dir, client_port, peer_port, &initial_cluster);
            let process = Process::spawn(&name, cmd, &work.join(format!("{name}.log")))?;
            members.push(Member {
                client_url: format!("http://127.0.0.1:{client_port}"),
                dir,
                id: 0,
                process,
            });
        }
        let mut cluster = EtcdCluster { members, version };
        cluster.wait_for_leader(START_TIMEOUT).await?;
        Ok(cluster)
    }

    async fn client(&self, member: usize) -> anyhow::Result<Channel> {
        let url = &self.members[member].client_url;
        Endpoint::from_shared(url.clone())?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(15))
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("connect to etcd{} at {url}", member + 1))
    }

    /// (this member's id, the leader's id) as `member` reports them.
    async fn status(&self, member: usize) -> anyhow::Result<(u64, u64)> {
        let mut c = MaintenanceClient::new(self.client(member).await?);
        let s = c
            .status(StatusRequest {})
            .await
            .with_context(|| format!("status of etcd{}", member + 1))?
            .into_inner();
        let id = s.header.map(|h| h.member_id).unwrap_or(0);
        Ok((id, s.leader))
    }

    async fn wait_for_leader(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut last = String::from("no status yet");
        while started.elapsed() < timeout {
            let mut leaders = Vec::new();
            for m in 0..self.members.len() {
                match self.status(m).await {
                    Ok((id, leader)) => {
                        self.members[m].id = id;
                        leaders.push(leader);
                    }
                    Err(e) => last = format!("{e:#}"),
                }
            }
            if leaders.len() == self.members.len()
                && leaders[0] != 0
                && leaders.iter().all(|l| *l == leaders[0])
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let logs = self
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| format!("--- etcd{}\n{}", i + 1, m.process.log_tail(10)))
            .collect::<Vec<_>>()
            .join("\n");
        bail!("etcd elected no leader within {timeout:?} ({last}); logs:\n{logs}")
    }
}

impl System for EtcdCluster {
    type Client = EtcdClient;

    fn name(&self) -> &'static str {
        "etcd"
    }

    fn version(&self) -> String {
        self.version.clone()
    }

    fn members(&self) -> usize {
        self.members.len()
    }

    async fn connect(&self, member: usize) -> anyhow::Result<EtcdClient> {
        Ok(EtcdClient(EtcdKv::new(self.client(member).await?)))
    }

    async fn leader(&self) -> anyhow::Result<usize> {
        let mut last = None;
        for member in 0..self.members.len() {
            match self.status(member).await {
                Ok((_, leader)) => {
                    if let Some(l) = self.members.iter().position(|m| m.id == leader) {
                        return Ok(l);
                    }
                    last = Some(anyhow::anyhow!("etcd{} knows no leader", member + 1));
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no etcd member answered")))
    }

    fn rss_bytes(&self, member: usize) -> anyhow::Result<u64> {
        self.members[member].process.rss_bytes()
    }

    fn data_dir(&self, member: usize) -> PathBuf {
        self.members[member].dir.clone()
    }

    fn kill(&mut self, member: usize) -> anyhow::Result<()> {
        self.members[member].process.kill()
    }
}

/// A connection to one etcd member's KV service. Reads are etcd's default
/// Range (serializable = false): linearizable.
#[derive(Clone)]
pub struct EtcdClient(EtcdKv<Channel>);

impl KvClient for EtcdClient {
    async fn put(&mut self, key: String, value: Vec<u8>) -> anyhow::Result<()> {
        let req = PutRequest {
            key: key.into_bytes(),
            value,
            ..Default::default()
        };
        self.0.put(req).await?;
        Ok(())
    }

    async fn get(&mut self, key: String) -> anyhow::Result<()> {
        let req = RangeRequest {
            key: key.clone().into_bytes(),
            ..Default::default()
        };
        let resp = self.0.range(req).await?.into_inner();
        if resp.kvs.is_empty() {
            bail!("key {key} is missing");
        }
        Ok(())
    }
}
