//! The Docker API proxy on a real multi-node cluster: one manager and two
//! workers as containers on a private network (the workers' agents drive
//! this machine's engine), the stock `docker` CLI on the test host talking
//! to the manager's gateway. Containers live on the workers, so every
//! container call is routed to the node that runs it.

mod common;
#[path = "support/docker.rs"]
mod docker;
#[path = "support/gateway.rs"]
mod gateway;

use std::time::{Duration, Instant};

use common::{GatewayApi, Result, TestCluster, ADMIN_PASSWORD};
use docker::Docker;

/// Polls `check` every 300 ms until it returns `Some`, for up to `secs`.
async fn eventually<T>(secs: u64, what: &str, mut check: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_cli_drives_a_multi_node_cluster() -> Result<()> {
    let mut c = TestCluster::managers(1).await?;
    c.add_worker("worker1").await?;
    c.add_worker("worker2").await?;
    let ip = c.members[0].container.ip(&c.net)?;
    let ca = c.members[0]
        .container
        .exec_ok(&["cat", "/data/pki/ca.crt"])?;
    let token = GatewayApi::login(&format!("https://{ip}:443"), &ca, "admin", ADMIN_PASSWORD)
        .await?
        .token;
    let d = Docker::with_token_at(&format!("tcp://{ip}:443"), ca.as_bytes(), &token);
    let img = c.image.tag().to_string();

    // Every node, the leader marked, `*` on the manager the CLI talks to.
    let nodes = d.ok(&[
        "node",
        "ls",
        "--format",
        "{{.Hostname}}|{{.ManagerStatus}}|{{.Self}}",
    ]);
    let mut rows: Vec<&str> = nodes.lines().collect();
    rows.sort_unstable();
    assert_eq!(
        rows,
        ["manager1|Leader|true", "worker1||false", "worker2||false"],
        "docker node ls"
    );

    // A service spread over the two workers.
    d.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "spread",
        "--replicas",
        "4",
        &img,
        "sh",
        "-c",
        "echo hello from a task; sleep 300",
    ]);
    let placed = eventually(90, "4 running tasks of spread", || {
        let out = d.run(&[
            "service",
            "ps",
            "spread",
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Node}} {{.CurrentState}}",
        ]);
        let running: Vec<String> = out
            .stdout
            .lines()
            .filter(|l| l.contains("Running"))
            .map(|l| l.split(' ').next().unwrap_or_default().to_string())
            .collect();
        (running.len() == 4).then_some(running)
    })
    .await?;
    assert!(
        placed.iter().any(|n| n == "worker1") && placed.iter().any(|n| n == "worker2"),
        "the tasks were not spread over both workers: {placed:?}"
    );

    // Their containers, listed from both nodes' engines and read through
    // the engine proxy of the node that runs each.
    let ids = d.ok(&[
        "ps",
        "-q",
        "--filter",
        "label=com.docker.swarm.service.name=spread",
    ]);
    let ids: Vec<&str> = ids.lines().collect();
    assert_eq!(ids.len(), 4, "docker ps: {ids:?}");
    for id in &ids {
        let logs = eventually(30, "task logs", || {
            let r = d.run(&["logs", id]);
            (r.ok && r.stdout.contains("hello from a task")).then_some(())
        })
        .await;
        assert!(
            logs.is_ok(),
            "docker logs {id} never showed the task's output"
        );
    }

    // A standalone container goes to a worker; exec is routed there.
    d.ok(&["run", "-d", "--name", "solo", &img, "sleep", "300"]);
    let node = d.ok(&[
        "inspect",
        "--format",
        "{{index .Config.Labels \"com.capstan.standalone.node\"}}",
        "solo",
    ]);
    let worker_ids = d.ok(&[
        "node",
        "ls",
        "--filter",
        "role=worker",
        "--format",
        "{{.ID}}",
    ]);
    assert!(
        worker_ids.lines().any(|w| w.trim() == node.trim()),
        "solo runs on {node:?}, not on a worker ({worker_ids:?})"
    );
    assert_eq!(d.ok(&["exec", "solo", "echo", "routed"]).trim(), "routed");
    d.ok(&["rm", "-f", "solo"]);
    d.ok(&["service", "rm", "spread"]);
    eventually(60, "the service's containers to go", || {
        let r = d.run(&[
            "ps",
            "-aq",
            "--filter",
            "label=com.docker.swarm.service.name=spread",
        ]);
        (r.ok && r.stdout.trim().is_empty()).then_some(())
    })
    .await?;
    Ok(())
}
