//! `capstan bench schedule`: how fast services become tasks on nodes.
//!
//! 1. Simulated: one manager and 100 in-process agents (real joins, real
//!    dispatcher sessions, no containers: they report each assigned task
//!    running at once); a 10,000-replica service; tasks assigned per second
//!    and the time until every task is assigned and running.
//! 2. Real Docker: `capstan up` (manager and local agent) runs 100 replicas
//!    of a busybox image imported for the benchmark; then the same engine in
//!    swarm mode runs the same service; the two times and their ratio.
//!    The engine leaves swarm mode at the end, however the benchmark ends.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use capstan_core::{NodeDescription, TaskState, TaskStatus};
use capstan_manager::bootstrap::{self, JoinOptions};
use capstan_manager::DataDir;
use capstan_proto::v1::{
    self as pb, dispatcher_client::DispatcherClient, swarm_client::SwarmClient,
};
use serde_json::json;
use tokio::process::Command as AsyncCommand;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use super::process::{Ports, Process};
use super::stats;

/// Simulated nodes.
const SIM_NODES: usize = 100;
/// Replicas of the simulated service.
const SIM_REPLICAS: u64 = 10_000;
/// Replicas of the real service.
const REAL_REPLICAS: u64 = 100;
/// Image both orchestrators run in the real phase.
pub(super) const IMAGE: &str = "capstan-bench/busybox:1";

/// Runs both phases and prints the JSON report.
pub async fn run(work: &Path, ports: &mut Ports, skip_docker: bool) -> anyhow::Result<()> {
    let simulated = simulated(work, ports).await?;
    let docker = if skip_docker {
        None
    } else {
        Some(real_docker(work, ports).await?)
    };
    let report = json!({
        "benchmark": "schedule",
        "simulated": simulated,
        "docker": docker,
        "targets": {
            "simulated_tasks_assigned_per_s_at_least_5000": simulated["tasks_assigned_per_s"].as_f64().map(|v| v >= 5000.0),
            "docker_within_1_2x_of_swarm": docker.as_ref().and_then(|d| d["ratio_capstan_over_swarm"].as_f64()).map(|r| r <= 1.2),
        },
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

pub(super) async fn start_manager(
    dir: &Path,
    ports: &mut Ports,
    up: bool,
) -> anyhow::Result<(Process, DataDir)> {
    let data = DataDir::new(dir.join("data"));
    let exe = std::env::current_exe().context("find the capstan binary")?;
    let (swarm, controller, kube) = (ports.free()?, ports.free()?, ports.free()?);
    let mut cmd = tokio::process::Command::new(&exe);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .arg("--data-dir")
        .arg(data.root());
    let marker = if up {
        cmd.args([
            "up",
            "--swarm-port",
            &swarm.to_string(),
            "--controller-port",
            &controller.to_string(),
        ])
        .args(["--kube-apiserver-port", &kube.to_string()])
        .env("CAPSTAN_ENGINE_PROXY_PORT", ports.free()?.to_string());
        "try:"
    } else {
        let mut install = std::process::Command::new(&exe);
        install
            .arg("--data-dir")
            .arg(data.root())
            .args([
                "install",
                "--init-only",
                "--admin-username",
                "admin",
                "--admin-password",
                "benchmark-only",
            ])
            .args([
                "--host-address",
                "127.0.0.1",
                "--listen-address",
                "127.0.0.1",
            ])
            .args([
                "--swarm-port",
                &swarm.to_string(),
                "--controller-port",
                &controller.to_string(),
            ])
            .args(["--kube-apiserver-port", &kube.to_string()]);
        let out = install.output().context("run capstan install")?;
        if !out.status.success() {
            bail!(
                "capstan install failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        cmd.arg("manager");
        "is running"
    };
    let mut process = Process::spawn("manager", cmd.into_std(), &dir.join("manager.log"))?;
    process
        .wait_for_line(marker, Duration::from_secs(60))
        .await?;
    Ok((process, data))
}

pub(super) async fn swarm_client(data: &DataDir) -> anyhow::Result<SwarmClient<Channel>> {
    let channel = capstan_manager::client::channel(data, None).await?;
    Ok(SwarmClient::new(channel).max_decoding_message_size(256 << 20))
}

pub(super) async fn create_service(
    client: &mut SwarmClient<Channel>,
    name: &str,
    replicas: u64,
) -> anyhow::Result<()> {
    let spec = json!({
        "name": name,
        "mode": {"replicated": {"replicas": replicas}},
        "task": {"container": {"image": IMAGE, "command": ["sleep", "3600"], "stop_grace_period_ms": 1000}}
    });
    client
        .create_service(pb::CreateServiceRequest {
            spec: serde_json::to_vec(&spec)?,
            registry_auth: String::new(),
            owner: String::new(),
        })
        .await
        .context("create the benchmark service")?;
    Ok(())
}

/// One simulated agent: joins, keeps a session, reports every assigned task
/// running, and records which tasks it was given.
async fn fake_agent(
    data: DataDir,
    manager: String,
    assigned: Arc<Mutex<HashSet<String>>>,
    running_tx: mpsc::UnboundedSender<usize>,
) -> anyhow::Result<()> {
    let read = |p: std::path::PathBuf| {
        std::fs::read_to_string(&p).with_context(|| format!("read {}", p.display()))
    };
    let tls = capstan_pki::client_tls(
        &read(data.ca_cert())?,
        Some((&read(data.node_cert())?, &read(data.node_key())?)),
    );
    let channel = capstan_manager::state::endpoint(&manager, &tls)?
        .connect()
        .await?;
    let (tx, rx) = mpsc::channel(64);
    let description = NodeDescription {
        hostname: "sim".into(),
        os: "linux".into(),
        arch: "x86_64".into(),
        resources: capstan_core::service::Resources {
            nano_cpus: 64_000_000_000,
            memory_bytes: 256 << 30,
        },
        engine_version: "simulated".into(),
        ..Default::default()
    };
    tx.send(pb::AgentMessage {
        msg: Some(pb::agent_message::Msg::Description(serde_json::to_vec(
            &description,
        )?)),
    })
    .await?;
    let mut inbound = DispatcherClient::new(channel)
        .max_decoding_message_size(256 << 20)
        .session(ReceiverStream::new(rx))
        .await?
        .into_inner();
    let mut reported: HashSet<String> = HashSet::new();
    let mut beat = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = beat.tick() => {
                let _ = tx.send(pb::AgentMessage { msg: Some(pb::agent_message::Msg::Heartbeat(pb::Heartbeat {})) }).await;
            }
            msg = inbound.message() => {
                let Some(msg) = msg? else { return Ok(()) };
                let Some(pb::dispatcher_message::Msg::Assignments(a)) = msg.msg else { continue };
                let mut reports = Vec::new();
                for t in a.tasks {
                    let task: capstan_core::Task = serde_json::from_slice(&t.task)?;
                    assigned.lock().expect("assigned lock").insert(task.id.clone());
                    if task.desired_state == TaskState::Running && reported.insert(task.id.clone()) {
                        let status = TaskStatus {
                            state: TaskState::Running,
                            message: "running".into(),
                            err: String::new(),
                            timestamp: time::OffsetDateTime::now_utc(),
                            container_id: format!("sim-{}", task.id),
                            exit_code: None,
                            ports: vec![],
                        };
                        reports.push(pb::TaskStatusReport { task_id: task.id, status: serde_json::to_vec(&status)? });
                    }
                }
                let n = reports.len();
                if n > 0 {
                    tx.send(pb::AgentMessage { msg: Some(pb::agent_message::Msg::Statuses(pb::TaskStatuses { reports })) }).await?;
                    let _ = running_tx.send(n);
                }
            }
        }
    }
}

/// Joins `count` simulated nodes (in-process agents, see [`fake_agent`])
/// to the manager of `data` and waits until every one is ready.
pub(super) async fn simulated_nodes(
    dir: &Path,
    data: &DataDir,
    count: usize,
    assigned: &Arc<Mutex<HashSet<String>>>,
    running_tx: &mpsc::UnboundedSender<usize>,
) -> anyhow::Result<tokio::task::JoinSet<anyhow::Result<()>>> {
    let config = capstan_manager::NodeConfig::load(&data.config())?;
    let manager_addr = config.advertise_addr();
    let mut cluster = capstan_manager::client::connect(data, None).await?;
    let token = cluster
        .join_tokens(pb::JoinTokensRequest::default())
        .await?
        .into_inner()
        .worker;
    let mut agents = tokio::task::JoinSet::new();
    for i in 0..count {
        let node = DataDir::new(dir.join(format!("node{i:03}")));
        bootstrap::join(JoinOptions {
            data_dir: node.clone(),
            token: token.clone(),
            manager: manager_addr.clone(),
            host_address: "127.0.0.1".into(),
            hostname: format!("sim{i:03}"),
            sans: vec![],
            listen_address: "127.0.0.1".into(),
            swarm_port: 1,
            controller_port: 2,
            kube_apiserver_port: 3,
        })
        .await
        .with_context(|| format!("join simulated node {i}"))?;
        agents.spawn(fake_agent(
            node,
            manager_addr.clone(),
            assigned.clone(),
            running_tx.clone(),
        ));
    }
    let start = Instant::now();
    loop {
        let nodes = cluster
            .list_nodes(pb::ListNodesRequest {})
            .await?
            .into_inner()
            .nodes;
        let ready = nodes
            .iter()
            .filter(|n| n.role == "worker" && n.status == "ready")
            .count();
        if ready == count {
            return Ok(agents);
        }
        if start.elapsed() > Duration::from_secs(120) {
            bail!("only {ready} of {count} simulated nodes became ready");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn simulated(work: &Path, ports: &mut Ports) -> anyhow::Result<serde_json::Value> {
    let dir = work.join("simulated");
    std::fs::create_dir_all(&dir)?;
    eprintln!("bench: simulated: starting a manager and {SIM_NODES} in-process agents");
    let (_manager, data) = start_manager(&dir, ports, false).await?;
    let assigned = Arc::new(Mutex::new(HashSet::new()));
    let (running_tx, mut running_rx) = mpsc::unbounded_channel();
    let mut agents = simulated_nodes(&dir, &data, SIM_NODES, &assigned, &running_tx).await?;

    eprintln!("bench: simulated: creating a {SIM_REPLICAS}-replica service");
    let mut swarm = swarm_client(&data).await?;
    let t0 = Instant::now();
    create_service(&mut swarm, "simulated", SIM_REPLICAS).await?;
    let mut all_assigned = None;
    let mut running = 0usize;
    while running < SIM_REPLICAS as usize {
        if t0.elapsed() > Duration::from_secs(600) {
            bail!("after 600 s only {running} of {SIM_REPLICAS} simulated tasks run");
        }
        if all_assigned.is_none()
            && assigned.lock().expect("assigned lock").len() >= SIM_REPLICAS as usize
        {
            all_assigned = Some(t0.elapsed());
        }
        tokio::select! {
            Some(n) = running_rx.recv() => running += n,
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            Some(done) = agents.join_next() => {
                done.context("a simulated agent panicked")?.context("a simulated agent failed")?;
            }
        }
    }
    let all_running = t0.elapsed();
    let all_assigned = all_assigned.unwrap_or(all_running);
    agents.abort_all();
    eprintln!(
        "bench: simulated: {SIM_REPLICAS} tasks assigned in {:.2} s, running in {:.2} s",
        all_assigned.as_secs_f64(),
        all_running.as_secs_f64()
    );
    Ok(json!({
        "nodes": SIM_NODES,
        "replicas": SIM_REPLICAS,
        "seconds_until_all_assigned": stats::round(all_assigned.as_secs_f64(), 3),
        "tasks_assigned_per_s": stats::round(SIM_REPLICAS as f64 / all_assigned.as_secs_f64(), 1),
        "seconds_until_all_running": stats::round(all_running.as_secs_f64(), 3),
        "note": "assigned = delivered to the agents in their assignments; running = reported by them",
    }))
}

pub(super) async fn docker(args: &[&str]) -> anyhow::Result<String> {
    let out = AsyncCommand::new("docker")
        .args(args)
        .output()
        .await
        .with_context(|| format!("run docker {args:?}"))?;
    if !out.status.success() {
        bail!(
            "docker {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Imports a busybox image (from Debian's busybox-static) for both runs.
pub(super) async fn ensure_image(work: &Path) -> anyhow::Result<()> {
    if docker(&["image", "inspect", IMAGE]).await.is_ok() {
        return Ok(());
    }
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() {
        bail!("/bin/busybox is missing: apt-get install busybox-static (the benchmark's image is made from it)");
    }
    let root = work.join("rootfs");
    std::fs::create_dir_all(root.join("bin"))?;
    std::fs::copy(busybox, root.join("bin/busybox"))?;
    for tool in ["sh", "sleep"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(tool))?;
    }
    let script = format!(
        "tar -C '{}' -c . | docker import --change 'ENV PATH=/bin' - {IMAGE}",
        root.display()
    );
    let out = AsyncCommand::new("sh")
        .args(["-c", &script])
        .output()
        .await?;
    if !out.status.success() {
        bail!(
            "import the benchmark image: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Leaves swarm mode when dropped, however the benchmark ends, and removes
/// the `docker_gwbridge` network that `swarm init` made (if it made it).
pub(super) struct SwarmGuard {
    pub(super) remove_gwbridge: bool,
}

impl Drop for SwarmGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["swarm", "leave", "--force"])
            .output();
        if self.remove_gwbridge {
            let _ = std::process::Command::new("docker")
                .args(["network", "rm", "docker_gwbridge"])
                .output();
        }
    }
}

async fn real_docker(work: &Path, ports: &mut Ports) -> anyhow::Result<serde_json::Value> {
    let state = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]).await?;
    if state != "inactive" {
        bail!("the Docker engine is already in swarm mode ({state}); the benchmark needs it to start outside");
    }
    ensure_image(work).await?;

    eprintln!("bench: docker: capstan up with its local agent, {REAL_REPLICAS} replicas");
    let dir = work.join("docker");
    std::fs::create_dir_all(&dir)?;
    let capstan_seconds = {
        let (mut manager, data) = start_manager(&dir, ports, true).await?;
        let node = capstan_manager::NodeConfig::load(&data.config())?.node_id;
        let mut swarm = swarm_client(&data).await?;
        let result = timed_capstan(&mut swarm).await;
        let _ = swarm
            .remove_service(pb::RemoveRequest { id: "bench".into() })
            .await;
        let label = format!("label=com.capstan.node.id={node}");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60)
            && !docker(&["ps", "-q", "--filter", &label]).await?.is_empty()
        {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        manager.kill()?;
        let left = docker(&["ps", "-aq", "--filter", &label]).await?;
        for id in left.lines() {
            let _ = docker(&["rm", "-f", id]).await;
        }
        result?
    };

    eprintln!("bench: docker: the same service on Docker Swarm");
    let swarm_seconds = {
        let had_gwbridge = docker(&["network", "inspect", "docker_gwbridge"])
            .await
            .is_ok();
        docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]).await?;
        let _guard = SwarmGuard {
            remove_gwbridge: !had_gwbridge,
        };
        let t0 = Instant::now();
        docker(&[
            "service",
            "create",
            "--detach",
            "--name",
            "capstan-bench",
            "--replicas",
            &REAL_REPLICAS.to_string(),
            IMAGE,
            "sleep",
            "3600",
        ])
        .await?;
        let want = format!("{REAL_REPLICAS}/{REAL_REPLICAS}");
        loop {
            let replicas = docker(&[
                "service",
                "ls",
                "--filter",
                "name=capstan-bench",
                "--format",
                "{{.Replicas}}",
            ])
            .await?;
            if replicas == want {
                break;
            }
            if t0.elapsed() > Duration::from_secs(600) {
                bail!("swarm ran {replicas} after 600 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let seconds = t0.elapsed().as_secs_f64();
        let _ = docker(&["service", "rm", "capstan-bench"]).await;
        seconds
    };
    eprintln!("bench: docker: capstan {capstan_seconds:.2} s, swarm {swarm_seconds:.2} s");
    Ok(json!({
        "replicas": REAL_REPLICAS,
        "image": IMAGE,
        "capstan_seconds_until_all_running": stats::round(capstan_seconds, 3),
        "swarm_seconds_until_all_running": stats::round(swarm_seconds, 3),
        "ratio_capstan_over_swarm": stats::round(capstan_seconds / swarm_seconds, 3),
        "note": "from the create request to every replica running (capstan: agent-reported task state; swarm: docker service ls REPLICAS)",
    }))
}

async fn timed_capstan(swarm: &mut SwarmClient<Channel>) -> anyhow::Result<f64> {
    let t0 = Instant::now();
    create_service(swarm, "bench", REAL_REPLICAS).await?;
    loop {
        let tasks = swarm
            .list_tasks(pb::ListTasksRequest {
                service: "bench".into(),
                node: String::new(),
                running_only: true,
            })
            .await?
            .into_inner()
            .objects;
        let running = tasks
            .iter()
            .filter_map(|o| serde_json::from_slice::<capstan_core::Task>(o).ok())
            .filter(|t| t.status.state == TaskState::Running)
            .count();
        if running as u64 >= REAL_REPLICAS {
            return Ok(t0.elapsed().as_secs_f64());
        }
        if t0.elapsed() > Duration::from_secs(600) {
            bail!("capstan ran {running} of {REAL_REPLICAS} replicas after 600 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
