//! A cluster of `capstan` managers in containers on a private network, built
//! on `capstan-testkit`, plus the gRPC client the tests drive it with.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use capstan_manager::DataDir;
use capstan_proto::v1 as pb;
use capstan_proto::v1::cluster_client::ClusterClient;
use capstan_proto::v1::swarm_client::SwarmClient;
use capstan_testkit::{Container, ContainerSpec, ExecOutput, Harness, TestImage, TestNetwork};
use tonic::transport::Channel;

pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Password of the admin every test cluster is installed with.
pub const ADMIN_PASSWORD: &str = "test-admin-password";

/// The `capstan` binary under test (static, so it runs in a scratch image).
pub fn capstan_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_capstan"))
}

/// One manager container.
pub struct Member {
    pub name: String,
    pub container: Container,
}

/// A cluster of managers on one private network.
pub struct TestCluster {
    pub harness: Harness,
    pub net: TestNetwork,
    pub image: TestImage,
    pub members: Vec<Member>,
    certs: tempfile::TempDir,
    /// Managers keep /data on a tmpfs of this size instead of a volume.
    data_tmpfs: Option<String>,
}

/// Config every test node starts with: agents heartbeat every second, so a
/// lost node is down after three seconds.
const TEST_CONFIG: &str = r#"[agent]\nheartbeat_interval = "1s"\n"#;

fn manager_script(name: &str, first: bool) -> String {
    let cfg = "capstan --config /tmp/capstan.toml";
    // The container's address is a SAN too, so that clients outside the
    // network's DNS (the docker CLI on the test host) can verify the gateway.
    let san = "--san \"$(hostname -i | cut -d' ' -f1)\"";
    let start = if first {
        format!("exec {cfg} install --data-dir /data --host-address {name} {san} --admin-username admin")
    } else {
        format!("exec {cfg} join --data-dir /data --host-address {name} {san} manager1:2377")
    };
    format!(
        "printf '{TEST_CONFIG}' > /tmp/capstan.toml; if [ -f /data/node.toml ]; then exec {cfg} manager --data-dir /data; fi; {start}"
    )
}

fn worker_script(name: &str) -> String {
    format!(
        "if [ -f /data/node.toml ]; then exec capstan agent --data-dir /data; fi; exec capstan join --data-dir /data --host-address {name} manager1:2377"
    )
}

impl TestCluster {
    /// Starts `n` managers: `manager1` installs, the others join with the
    /// manager token; returns once every member is a reachable voter.
    pub async fn managers(n: usize) -> Result<TestCluster> {
        Self::start(n, None).await
    }

    /// Like [`TestCluster::managers`], with each manager's data directory
    /// on a tmpfs of `size` (e.g. `"200m"`), to fill it up.
    pub async fn managers_on_small_disks(n: usize, size: &str) -> Result<TestCluster> {
        Self::start(n, Some(size.to_string())).await
    }

    async fn start(n: usize, data_tmpfs: Option<String>) -> Result<TestCluster> {
        let harness = Harness::new()?;
        let image = TestImage::ensure(capstan_bin())?;
        let net = harness.network("cluster")?;
        let mut cluster = TestCluster {
            harness,
            net,
            image,
            members: vec![],
            certs: tempfile::tempdir()?,
            data_tmpfs,
        };
        cluster.start_member("manager1", None)?;
        cluster.wait_for_leader(0, Duration::from_secs(30)).await?;
        cluster.fetch_certs()?;
        if n > 1 {
            let token = cluster.capstan_ok(0, &["token", "manager", "--quiet"])?;
            for i in 2..=n {
                cluster.start_member(&format!("manager{i}"), Some(token.trim()))?;
            }
            cluster.wait_for_voters(n, Duration::from_secs(60)).await?;
        }
        Ok(cluster)
    }

    /// Starts a worker whose agent drives the host's Docker engine (through
    /// its socket) and waits until its node is ready. Containers the agent
    /// makes are removed with the cluster.
    pub async fn add_worker(&mut self, name: &str) -> Result<usize> {
        let token = self.capstan_ok(self.live_manager(), &["token", "worker", "--quiet"])?;
        let spec = ContainerSpec::new(name, self.image.tag())
            .hostname(name)
            .network(&self.net)
            .extra_args(self.member_hosts())
            .volume(format!("data-{name}"), "/data")
            .volume("/var/run/docker.sock", "/var/run/docker.sock")
            .env("CAPSTAN_JOIN_TOKEN", token.trim())
            .cmd(["sh", "-c", &worker_script(name)]);
        let container = self.harness.run(spec)?;
        self.members.push(Member {
            name: name.to_string(),
            container,
        });
        let index = self.members.len() - 1;
        let start = Instant::now();
        loop {
            if let Some(node) = self.node(name)? {
                if let Some(id) = node["ID"].as_str() {
                    self.harness
                        .sweep_label(format!("com.capstan.node.id={id}"));
                }
                if node["Status"] == "ready" {
                    return Ok(index);
                }
            }
            if start.elapsed() > Duration::from_secs(60) {
                return Err(
                    format!("worker {name} never became ready:\n{}", self.all_logs()).into(),
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// `--add-host name:ip` for every running member, so a new worker
    /// finds the managers by name from its first instant, without waiting
    /// for Docker's embedded DNS to answer for them (which a busy engine
    /// was seen not to do for over 20 s).
    fn member_hosts(&self) -> Vec<String> {
        self.members
            .iter()
            .filter_map(|m| {
                let ip = m.container.ip(&self.net).ok()?;
                Some(format!("--add-host={}:{ip}", m.name))
            })
            .collect()
    }

    /// A manager whose container runs, to ask when others may be down.
    pub fn live_manager(&self) -> usize {
        self.members
            .iter()
            .position(|m| {
                m.name.starts_with("manager") && m.container.is_running().unwrap_or(false)
            })
            .unwrap_or(0)
    }

    /// `node ls --json` entry of the node with this hostname.
    pub fn node(&self, hostname: &str) -> Result<Option<serde_json::Value>> {
        let any = self.live_manager();
        let leader = self.leader_seen_by(any).unwrap_or(any);
        let nodes: serde_json::Value =
            serde_json::from_str(&self.capstan_ok(leader, &["node", "ls", "--json"])?)?;
        Ok(nodes
            .as_array()
            .and_then(|a| a.iter().find(|n| n["Hostname"] == hostname).cloned()))
    }

    fn start_member(&mut self, name: &str, token: Option<&str>) -> Result<()> {
        let mut spec = ContainerSpec::new(name, self.image.tag())
            .hostname(name)
            .network(&self.net)
            .env("CAPSTAN_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .cmd(["sh", "-c", &manager_script(name, token.is_none())]);
        if let Some(t) = token {
            spec = spec.env("CAPSTAN_JOIN_TOKEN", t);
        }
        spec = match &self.data_tmpfs {
            Some(size) => spec.tmpfs("/data", size.clone()),
            None => spec.volume(format!("data-{name}"), "/data"),
        };
        let container = self.harness.run(spec)?;
        self.members.push(Member {
            name: name.to_string(),
            container,
        });
        Ok(())
    }

    /// Runs `capstan <args>` inside member `i`.
    pub fn capstan(&self, i: usize, args: &[&str]) -> Result<ExecOutput> {
        let mut cmd = vec!["capstan", "--data-dir", "/data"];
        cmd.extend_from_slice(args);
        Ok(self.members[i].container.exec(&cmd)?)
    }

    /// Runs `capstan <args>` inside member `i` and returns stdout, failing
    /// with stderr if it exits non-zero.
    pub fn capstan_ok(&self, i: usize, args: &[&str]) -> Result<String> {
        let out = self.capstan(i, args)?;
        if !out.success() {
            return Err(format!(
                "capstan {args:?} on {} failed: {}{}",
                self.members[i].name, out.stdout, out.stderr
            )
            .into());
        }
        Ok(out.stdout)
    }

    /// `capstan status --json` of member `i`.
    pub fn status(&self, i: usize) -> Result<serde_json::Value> {
        Ok(serde_json::from_str(
            &self.capstan_ok(i, &["status", "--json"])?,
        )?)
    }

    /// The index of the member member `i` believes leads.
    pub fn leader_seen_by(&self, i: usize) -> Option<usize> {
        let s = self.status(i).ok()?;
        let leader = s["leader_id"].as_str()?.to_string();
        let members = s["members"].as_array()?;
        let hostname = members
            .iter()
            .find(|m| m["node_id"].as_str() == Some(leader.as_str()))?["hostname"]
            .as_str()?
            .to_string();
        self.members.iter().position(|m| m.name == hostname)
    }

    /// Waits until member `i` sees a leader, returning its index.
    pub async fn wait_for_leader(&self, i: usize, timeout: Duration) -> Result<usize> {
        let start = Instant::now();
        loop {
            if let Some(l) = self.leader_seen_by(i) {
                return Ok(l);
            }
            if start.elapsed() > timeout {
                return Err(format!(
                    "{} saw no leader within {timeout:?}; logs:\n{}",
                    self.members[i].name,
                    self.members[i]
                        .container
                        .logs_tail(Some(40))
                        .unwrap_or_default()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the leader reports `n` reachable voters.
    pub async fn wait_for_voters(&self, n: usize, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        let mut last = String::new();
        loop {
            if let Some(l) = self.leader_seen_by(0) {
                if let Ok(s) = self.status(l) {
                    let voters = s["members"]
                        .as_array()
                        .map(|m| {
                            m.iter()
                                .filter(|m| m["voter"] == true && m["reachable"] == true)
                                .count()
                        })
                        .unwrap_or(0);
                    if voters == n {
                        return Ok(());
                    }
                    last = s.to_string();
                }
            }
            if start.elapsed() > timeout {
                let logs: Vec<String> = self
                    .members
                    .iter()
                    .map(|m| {
                        format!(
                            "--- {}\n{}",
                            m.name,
                            m.container.logs_tail(Some(30)).unwrap_or_default()
                        )
                    })
                    .collect();
                return Err(format!(
                    "no {n} reachable voters within {timeout:?}; last status {last}\n{}",
                    logs.join("\n")
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Copies a manager identity out of manager1 so the test can call the
    /// cluster API from the host, as a manager node would.
    fn fetch_certs(&self) -> Result<()> {
        // Read through the container (`docker cp` cannot see a tmpfs).
        let c = &self.members[0].container;
        std::fs::create_dir_all(self.certs.path().join("pki"))?;
        for file in ["pki/ca.crt", "pki/node.crt", "pki/node.key", "node.toml"] {
            let text = c.exec_ok(&["cat", &format!("/data/{file}")])?;
            std::fs::write(self.certs.path().join(file), text)?;
        }
        Ok(())
    }

    /// The `host:port` of member `i`'s swarm port as the host reaches it.
    pub fn addr(&self, i: usize) -> Result<String> {
        Ok(format!("{}:2377", self.members[i].container.ip(&self.net)?))
    }

    /// A cluster API client of member `i`.
    pub async fn client(&self, i: usize) -> Result<ClusterClient<Channel>> {
        let dir = DataDir::new(self.certs.path());
        Ok(capstan_manager::client::connect(&dir, Some(&self.addr(i)?)).await?)
    }

    /// A Swarm API client of member `i`.
    pub async fn swarm(&self, i: usize) -> Result<SwarmClient<Channel>> {
        let dir = DataDir::new(self.certs.path());
        let channel = capstan_manager::client::channel(&dir, Some(&self.addr(i)?)).await?;
        Ok(SwarmClient::new(channel).max_decoding_message_size(64 << 20))
    }

    /// Puts `key = value` through member `i`; returns the new version.
    pub async fn put(&self, i: usize, key: &str, value: &str) -> Result<u64> {
        let mut c = self.client(i).await?;
        let resp = c.write(put_request(key, value)).await?.into_inner();
        Ok(resp.objects.first().map(|o| o.version).unwrap_or_default())
    }

    /// Reads `key` through member `i`.
    pub async fn get(
        &self,
        i: usize,
        key: &str,
        linearizable: bool,
    ) -> Result<Option<(String, u64)>> {
        let mut c = self.client(i).await?;
        let resp = c.read(read_request(key, linearizable)).await?.into_inner();
        Ok(resp
            .object
            .map(|o| (String::from_utf8_lossy(&o.value).into_owned(), o.version)))
    }

    /// Logs of every member, for failure messages.
    pub fn all_logs(&self) -> String {
        self.members
            .iter()
            .map(|m| {
                format!(
                    "--- {}\n{}",
                    m.name,
                    m.container.logs_tail(Some(60)).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A put of `key` in the `kv` table, any version.
pub fn put_request(key: &str, value: &str) -> pb::WriteRequest {
    pb::WriteRequest {
        ops: vec![pb::WriteOp {
            table: "kv".into(),
            id: key.into(),
            op: Some(pb::write_op::Op::Put(value.as_bytes().to_vec())),
            expected_version: 0,
            any_version: true,
        }],
    }
}

/// A read of `key` in the `kv` table.
pub fn read_request(key: &str, linearizable: bool) -> pb::ReadRequest {
    pb::ReadRequest {
        table: "kv".into(),
        id: key.into(),
        consistency: if linearizable {
            pb::Consistency::Linearizable.into()
        } else {
            pb::Consistency::Serializable.into()
        },
    }
}

/// A logged-in HTTPS client of a manager's gateway.
pub struct GatewayApi {
    pub client: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl GatewayApi {
    /// Logs in at `base` (`https://ip:port`), trusting `ca_pem`, retrying
    /// for up to a minute while the gateway starts.
    pub async fn login(base: &str, ca_pem: &str, user: &str, password: &str) -> Result<GatewayApi> {
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes())?)
            .timeout(Duration::from_secs(30))
            .build()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let resp = client
                .post(format!("{base}/auth/login"))
                .json(&serde_json::json!({"username": user, "password": password}))
                .send()
                .await;
            if let Ok(r) = resp {
                if r.status().is_success() {
                    let v: serde_json::Value = r.json().await?;
                    let token = v["auth_token"].as_str().ok_or("no auth_token")?.to_string();
                    return Ok(GatewayApi {
                        client,
                        base: base.to_string(),
                        token,
                    });
                }
            }
            if Instant::now() > deadline {
                return Err(format!("{base} never accepted {user}'s login").into());
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// The gateway of member `i` of `cluster`, logged in as the admin.
    pub async fn admin_of(cluster: &TestCluster, i: usize) -> Result<GatewayApi> {
        let ca = cluster.members[i]
            .container
            .exec_ok(&["cat", "/data/pki/ca.crt"])?;
        let ip = cluster.members[i].container.ip(&cluster.net)?;
        Self::login(&format!("https://{ip}:443"), &ca, "admin", ADMIN_PASSWORD).await
    }

    /// POSTs JSON with the session token.
    pub async fn post(&self, path: &str, body: serde_json::Value) -> Result<reqwest::Response> {
        Ok(self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?)
    }
}
