//! Swarm-grade services on real Docker: agents run as containers that share
//! the host's engine through its socket, each with its own node id, and the
//! workloads are real containers of the static busybox image.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use capstan_core::service::{ServiceMode, UpdateState};
use capstan_core::{Service, ServiceSpec, Task, TaskState};
use capstan_proto::v1 as pb;
use common::{Result, TestCluster};
use serde_json::json;

/// A cluster of one manager and `workers` workers.
async fn cluster(workers: usize) -> Result<TestCluster> {
    cluster_of(1, workers).await
}

/// A cluster of `managers` managers and `workers` workers.
async fn cluster_of(managers: usize, workers: usize) -> Result<TestCluster> {
    let mut c = TestCluster::managers(managers).await?;
    for i in 1..=workers {
        c.add_worker(&format!("worker{i}")).await?;
    }
    Ok(c)
}

/// A replicated service spec running `sleep` in the test image.
fn sleeper(c: &TestCluster, name: &str, replicas: u64) -> ServiceSpec {
    serde_json::from_value(json!({
        "name": name,
        "mode": {"replicated": {"replicas": replicas}},
        "task": {
            "container": {"image": c.image.tag(), "command": ["sleep", "3600"], "stop_grace_period_ms": 1000},
            "restart": {"condition": "any", "delay_ms": 200, "max_attempts": null, "window_ms": 0}
        }
    }))
    .expect("a valid service spec")
}

async fn create(c: &TestCluster, spec: &ServiceSpec) -> Result<Service> {
    let mut s = c.swarm(c.live_manager()).await?;
    let resp = s
        .create_service(pb::CreateServiceRequest {
            spec: serde_json::to_vec(spec)?,
            registry_auth: String::new(),
            owner: String::new(),
        })
        .await?
        .into_inner();
    Ok(serde_json::from_slice(&resp.service)?)
}

async fn update(
    c: &TestCluster,
    name: &str,
    change: impl FnOnce(&mut ServiceSpec),
) -> Result<Service> {
    let mut s = c.swarm(c.live_manager()).await?;
    let current = s
        .get_service(pb::GetRequest { id: name.into() })
        .await?
        .into_inner();
    let service: Service = serde_json::from_slice(&current.service)?;
    let mut spec = service.spec.clone();
    change(&mut spec);
    let resp = s
        .update_service(pb::UpdateServiceRequest {
            service: name.into(),
            version: current.version,
            spec: serde_json::to_vec(&spec)?,
            rollback: false,
            registry_auth: String::new(),
        })
        .await?
        .into_inner();
    Ok(serde_json::from_slice(&resp.service)?)
}

async fn tasks(c: &TestCluster, service: &str) -> Result<Vec<Task>> {
    let mut s = c.swarm(c.live_manager()).await?;
    let resp = s
        .list_tasks(pb::ListTasksRequest {
            service: service.into(),
            node: String::new(),
            running_only: false,
        })
        .await?
        .into_inner();
    resp.objects
        .iter()
        .map(|o| Ok(serde_json::from_slice(o)?))
        .collect()
}

/// Tasks desired and observed running, counted per node hostname.
async fn running_per_node(c: &TestCluster, service: &str) -> Result<BTreeMap<String, usize>> {
    let nodes: serde_json::Value =
        serde_json::from_str(&c.capstan_ok(c.live_manager(), &["node", "ls", "--json"])?)?;
    let host = |id: &str| {
        nodes
            .as_array()
            .and_then(|a| a.iter().find(|n| n["ID"] == id))
            .map(|n| n["Hostname"].as_str().unwrap_or("").to_string())
    };
    let mut per = BTreeMap::new();
    for t in tasks(c, service).await? {
        if t.desired_state == TaskState::Running && t.status.state == TaskState::Running {
            let node = t.node_id.map(|n| n.to_string()).unwrap_or_default();
            *per.entry(host(&node).unwrap_or(node)).or_insert(0) += 1;
        }
    }
    Ok(per)
}

/// Waits until the per-node running counts satisfy `ok`.
async fn wait_running(
    c: &TestCluster,
    service: &str,
    timeout: Duration,
    ok: impl Fn(&BTreeMap<String, usize>) -> bool,
) -> Result<BTreeMap<String, usize>> {
    let start = Instant::now();
    let mut last = BTreeMap::new();
    while start.elapsed() < timeout {
        last = running_per_node(c, service).await?;
        if ok(&last) {
            return Ok(last);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let listing: Vec<String> = tasks(c, service)
        .await?
        .iter()
        .map(|t| {
            format!(
                "{} slot {} node {:?} desired {} state {} {} {}",
                t.id,
                t.slot,
                t.node_id,
                t.desired_state,
                t.status.state,
                t.status.message,
                t.status.err
            )
        })
        .collect();
    Err(format!(
        "service {service}: running per node {last:?} never satisfied the test\n{}\n{}",
        listing.join("\n"),
        c.all_logs()
    )
    .into())
}

/// Running containers of a service on the host's engine.
fn containers(service: &Service) -> Result<Vec<String>> {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &format!("label=com.capstan.service.id={}", service.id),
        ])
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect())
}

fn total(m: &BTreeMap<String, usize>) -> usize {
    m.values().sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_spread_scale_and_are_restarted_after_a_kill() -> Result<()> {
    let c = cluster(3).await?;
    let web = create(&c, &sleeper(&c, "web", 6)).await?;
    let per = wait_running(&c, "web", Duration::from_secs(90), |m| total(m) == 6).await?;
    assert_eq!(per.len(), 3, "6 replicas over 3 workers: {per:?}");
    assert!(per.values().all(|n| *n == 2), "{per:?}");
    assert_eq!(containers(&web)?.len(), 6);

    update(&c, "web", |s| {
        s.mode = ServiceMode::Replicated { replicas: 12 }
    })
    .await?;
    let per = wait_running(&c, "web", Duration::from_secs(90), |m| total(m) == 12).await?;
    assert!(per.values().all(|n| *n == 4), "{per:?}");
    update(&c, "web", |s| {
        s.mode = ServiceMode::Replicated { replicas: 2 }
    })
    .await?;
    wait_running(&c, "web", Duration::from_secs(90), |m| total(m) == 2).await?;
    let start = Instant::now();
    while containers(&web)?.len() != 2 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "scaled-down containers still run"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // A container killed behind the agent's back is replaced by the policy.
    let victim = containers(&web)?.remove(0);
    std::process::Command::new("docker")
        .args(["kill", &victim])
        .output()?;
    let start = Instant::now();
    loop {
        let all = tasks(&c, "web").await?;
        let failed = all.iter().any(|t| {
            t.status.container_id.starts_with(&victim) && t.status.state == TaskState::Failed
        });
        let running = all
            .iter()
            .filter(|t| {
                t.desired_state == TaskState::Running && t.status.state == TaskState::Running
            })
            .count();
        if failed && running == 2 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "killed task not replaced: {all:#?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(!containers(&web)?.contains(&victim));
    assert_eq!(containers(&web)?.len(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_global_service_runs_once_per_node_and_follows_new_nodes() -> Result<()> {
    let mut c = cluster(2).await?;
    let mut spec = sleeper(&c, "agent-like", 0);
    spec.mode = ServiceMode::Global;
    create(&c, &spec).await?;
    let per = wait_running(&c, "agent-like", Duration::from_secs(90), |m| total(m) == 2).await?;
    assert!(per.values().all(|n| *n == 1), "{per:?}");
    c.add_worker("worker3").await?;
    let per = wait_running(&c, "agent-like", Duration::from_secs(90), |m| total(m) == 3).await?;
    assert_eq!(per.get("worker3"), Some(&1), "{per:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn constraints_drain_and_pause_steer_placement() -> Result<()> {
    let c = cluster(2).await?;
    // A constraint no node satisfies leaves tasks pending, with the reason.
    let mut nowhere = sleeper(&c, "nowhere", 2);
    nowhere.task.placement.constraints = vec!["node.labels.zone==mars".into()];
    create(&c, &nowhere).await?;
    let start = Instant::now();
    loop {
        let all = tasks(&c, "nowhere").await?;
        if all.len() == 2
            && all.iter().all(|t| {
                t.status.state == TaskState::Pending && t.status.message.contains("constraint")
            })
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "tasks not pending with a reason: {all:#?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Labelling a node satisfies it.
    let mut s = c.swarm(c.live_manager()).await?;
    s.update_node(pb::UpdateNodeRequest {
        node: "worker2".into(),
        add_labels: [("zone".to_string(), "mars".to_string())].into(),
        ..Default::default()
    })
    .await?;
    let per = wait_running(&c, "nowhere", Duration::from_secs(60), |m| total(m) == 2).await?;
    assert_eq!(per.get("worker2"), Some(&2), "{per:?}");

    // Drain moves tasks away; pause keeps running ones but takes no new ones.
    create(&c, &sleeper(&c, "movable", 4)).await?;
    wait_running(&c, "movable", Duration::from_secs(60), |m| total(m) == 4).await?;
    s.update_node(pb::UpdateNodeRequest {
        node: "worker1".into(),
        availability: "drain".into(),
        ..Default::default()
    })
    .await?;
    let per = wait_running(&c, "movable", Duration::from_secs(60), |m| {
        total(m) == 4 && !m.contains_key("worker1")
    })
    .await?;
    assert_eq!(per.get("worker2"), Some(&4));
    s.update_node(pb::UpdateNodeRequest {
        node: "worker1".into(),
        availability: "active".into(),
        ..Default::default()
    })
    .await?;
    s.update_node(pb::UpdateNodeRequest {
        node: "worker2".into(),
        availability: "pause".into(),
        ..Default::default()
    })
    .await?;
    update(&c, "movable", |s| {
        s.mode = ServiceMode::Replicated { replicas: 6 }
    })
    .await?;
    let per = wait_running(&c, "movable", Duration::from_secs(60), |m| total(m) == 6).await?;
    assert_eq!(
        per.get("worker2"),
        Some(&4),
        "paused node kept its tasks and got none: {per:?}"
    );
    assert_eq!(per.get("worker1"), Some(&2), "{per:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_node_goes_down_and_a_frozen_one_duplicates_nothing() -> Result<()> {
    let c = cluster(3).await?;
    let web = create(&c, &sleeper(&c, "web", 3)).await?;
    let per = wait_running(&c, "web", Duration::from_secs(90), |m| total(m) == 3).await?;
    assert_eq!(per.len(), 3);
    let worker = |name: &str| {
        c.members
            .iter()
            .find(|m| m.name == name)
            .expect("worker")
            .container
            .clone()
    };

    // Stopping an agent: its node turns down and its task comes back elsewhere.
    worker("worker3").stop()?;
    let start = Instant::now();
    while c.node("worker3")?.map(|n| n["Status"] == "down") != Some(true) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "worker3 never went down"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wait_running(&c, "web", Duration::from_secs(60), |m| {
        total(m) == 3 && !m.contains_key("worker3")
    })
    .await?;
    worker("worker3").start()?;

    // Freezing an agent for longer than the down period, then thawing it:
    // in the end exactly three containers run, none twice.
    worker("worker2").pause()?;
    tokio::time::sleep(Duration::from_secs(6)).await;
    worker("worker2").unpause()?;
    let start = Instant::now();
    loop {
        let per = running_per_node(&c, "web").await?;
        let running = containers(&web)?;
        if total(&per) == 3
            && running.len() == 3
            && c.node("worker2")?.map(|n| n["Status"] == "ready") == Some(true)
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "after the thaw: {per:?}, {} containers",
            running.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_rolling_update_rolls_back_by_itself() -> Result<()> {
    let c = cluster(2).await?;
    let mut spec = sleeper(&c, "api", 4);
    spec.update = serde_json::from_value(json!({
        "parallelism": 2, "delay_ms": 0, "failure_action": "rollback", "monitor_ms": 3000,
        "max_failure_ratio": 0.0, "order": "stop-first"
    }))?;
    create(&c, &spec).await?;
    wait_running(&c, "api", Duration::from_secs(60), |m| total(m) == 4).await?;
    // The new command does not exist in the image: every new task fails.
    update(&c, "api", |s| {
        s.task.container.command = vec!["/no/such/binary".into()]
    })
    .await?;
    let start = Instant::now();
    loop {
        let mut s = c.swarm(c.live_manager()).await?;
        let svc: Service = serde_json::from_slice(
            &s.get_service(pb::GetRequest { id: "api".into() })
                .await?
                .into_inner()
                .service,
        )?;
        let state = svc.update_status.as_ref().map(|u| u.state);
        if state == Some(UpdateState::RollbackCompleted) {
            assert_eq!(svc.spec.task.container.command, vec!["sleep", "3600"]);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no automatic rollback: {:?}",
            svc.update_status
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let per = wait_running(&c, "api", Duration::from_secs(60), |m| total(m) == 4).await?;
    assert_eq!(total(&per), 4);
    for t in tasks(&c, "api").await? {
        if t.desired_state == TaskState::Running {
            assert_eq!(
                t.spec.container.command,
                vec!["sleep", "3600"],
                "task {} runs the broken spec",
                t.id
            );
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_reach_the_container_only_and_bad_images_are_rejected() -> Result<()> {
    let c = cluster(1).await?;
    let mut s = c.swarm(c.live_manager()).await?;
    let secret_value = "s3cr3t-value-for-the-db";
    s.create_secret(pb::CreateDataObjectRequest {
        name: "db_password".into(),
        data: secret_value.into(),
        labels: Default::default(),
    })
    .await?;
    let mut spec = sleeper(&c, "db", 1);
    spec.task.container.secrets = vec![serde_json::from_value(
        json!({"id": "", "name": "db_password", "target": "db_password", "mode": 0o400}),
    )?];
    let db = create(&c, &spec).await?;
    wait_running(&c, "db", Duration::from_secs(60), |m| total(m) == 1).await?;
    let container = containers(&db)?.remove(0);
    let out = std::process::Command::new("docker")
        .args(["exec", &container, "cat", "/run/secrets/db_password"])
        .output()?;
    assert_eq!(String::from_utf8_lossy(&out.stdout), secret_value);

    // No API read returns it: secret list, service inspect, task list, events.
    let listed = s
        .list_secrets(pb::ListObjectsRequest::default())
        .await?
        .into_inner();
    let service = s
        .get_service(pb::GetRequest { id: "db".into() })
        .await?
        .into_inner();
    let task_list = s
        .list_tasks(pb::ListTasksRequest {
            service: "db".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut blobs: Vec<Vec<u8>> = listed.objects;
    blobs.push(service.service);
    blobs.extend(task_list.objects);
    for b in &blobs {
        assert!(
            !String::from_utf8_lossy(b).contains(secret_value),
            "an API read returned the secret"
        );
    }
    for m in &c.members {
        assert!(
            !m.container.logs()?.contains(secret_value),
            "{} logged the secret",
            m.name
        );
    }
    // Nor the Raft log on disk, where it is sealed.
    let raft = c.members[0]
        .container
        .exec(&["sh", "-c", "cat /data/raft/sled/* 2>/dev/null"])?;
    assert!(
        !raft.stdout.contains(secret_value),
        "the secret is stored in clear"
    );

    // An image that cannot be found rejects the task with the engine's words.
    let mut bad = sleeper(&c, "ghost", 1);
    bad.task.container.image = "nosuch/image:1".into();
    create(&c, &bad).await?;
    let start = Instant::now();
    loop {
        let all = tasks(&c, "ghost").await?;
        if let Some(t) = all.iter().find(|t| t.status.state == TaskState::Rejected) {
            assert!(t.status.err.contains("nosuch/image:1"), "{}", t.status.err);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no rejected task: {all:#?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manager_failover_during_a_rolling_update_loses_and_duplicates_nothing() -> Result<()> {
    let c = cluster_of(3, 2).await?;
    let mut spec = sleeper(&c, "web", 4);
    spec.update = serde_json::from_value(json!({
        "parallelism": 1, "delay_ms": 1000, "failure_action": "pause", "monitor_ms": 1000,
        "max_failure_ratio": 0.0, "order": "stop-first"
    }))?;
    let web = create(&c, &spec).await?;
    wait_running(&c, "web", Duration::from_secs(60), |m| total(m) == 4).await?;
    update(&c, "web", |s| {
        s.task.container.env = vec!["VERSION=2".into()]
    })
    .await?;
    // Let the update start, then kill the leader in the middle of it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let leader = c
        .wait_for_leader(c.live_manager(), Duration::from_secs(10))
        .await?;
    c.members[leader].container.kill()?;
    let start = Instant::now();
    loop {
        let all = tasks(&c, "web").await.unwrap_or_default();
        let live: Vec<&Task> = all
            .iter()
            .filter(|t| t.desired_state == TaskState::Running)
            .collect();
        let mut slots: Vec<u64> = live.iter().map(|t| t.slot).collect();
        slots.sort_unstable();
        slots.dedup();
        let done = live.len() == 4
            && slots.len() == 4
            && live.iter().all(|t| {
                t.status.state == TaskState::Running && t.spec.container.env == ["VERSION=2"]
            });
        if done {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "update did not finish after failover: {all:#?}\n{}",
            c.all_logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let start = Instant::now();
    while containers(&web)?.len() != 4 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{} containers run, not 4",
            containers(&web)?.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_stacks_and_events_work_through_the_api() -> Result<()> {
    let c = cluster(2).await?;
    let mut s = c.swarm(0).await?;
    let mut events = s
        .events(pb::EventsRequest {
            types: vec!["service".into()],
        })
        .await?
        .into_inner();

    // Two services and a config in stack "shop", one service outside it.
    let stack = |spec: &mut ServiceSpec| {
        spec.labels
            .insert("com.docker.stack.namespace".into(), "shop".into());
    };
    let mut talker = sleeper(&c, "shop_talker", 2);
    talker.task.container.command = vec![
        "sh".into(),
        "-c".into(),
        "echo hello from $(hostname); sleep 3600".into(),
    ];
    stack(&mut talker);
    let mut db = sleeper(&c, "shop_db", 1);
    stack(&mut db);
    create(&c, &talker).await?;
    create(&c, &db).await?;
    create(&c, &sleeper(&c, "other", 1)).await?;
    s.create_config(pb::CreateDataObjectRequest {
        name: "shop_settings".into(),
        data: b"colour=blue".to_vec(),
        labels: [("com.docker.stack.namespace".to_string(), "shop".to_string())].into(),
    })
    .await?;
    wait_running(&c, "shop_talker", Duration::from_secs(60), |m| {
        total(m) == 2
    })
    .await?;

    // The create events arrived, in order.
    let mut created = Vec::new();
    while created.len() < 3 {
        let e = tokio::time::timeout(Duration::from_secs(10), events.message())
            .await??
            .expect("event stream open");
        if e.action == "create" {
            let svc: Service = serde_json::from_slice(&e.object)?;
            created.push(svc.spec.name);
        }
    }
    assert_eq!(created, ["shop_talker", "shop_db", "other"]);

    // Service logs gather both tasks' output from their nodes.
    let mut lines = String::new();
    let start = Instant::now();
    while lines.matches("hello from").count() < 2 {
        lines.clear();
        let mut stream = s
            .service_logs(pb::LogsRequest {
                target: "shop_talker".into(),
                tail: "all".into(),
                ..Default::default()
            })
            .await?
            .into_inner();
        while let Some(line) =
            tokio::time::timeout(Duration::from_secs(10), stream.message()).await??
        {
            lines.push_str(&String::from_utf8_lossy(&line.data));
        }
        assert!(start.elapsed() < Duration::from_secs(30), "logs: {lines:?}");
    }

    // The stack lists and goes away as one; the other service stays.
    let stacks = s
        .list_stacks(pb::ListObjectsRequest::default())
        .await?
        .into_inner()
        .stacks;
    assert_eq!(stacks.len(), 1);
    assert_eq!((stacks[0].name.as_str(), stacks[0].services), ("shop", 2));
    let removed = s
        .remove_stack(pb::RemoveRequest { id: "shop".into() })
        .await?
        .into_inner()
        .removed;
    assert_eq!(removed.len(), 3, "two services and a config: {removed:?}");
    let names: Vec<String> = s
        .list_services(pb::ListObjectsRequest::default())
        .await?
        .into_inner()
        .objects
        .iter()
        .map(|o| serde_json::from_slice::<Service>(o).map(|s| s.spec.name))
        .collect::<std::result::Result<_, _>>()?;
    assert_eq!(names, ["other"]);
    assert!(s
        .list_configs(pb::ListObjectsRequest::default())
        .await?
        .into_inner()
        .objects
        .is_empty());
    // The stack's tasks shut down.
    let start = Instant::now();
    loop {
        let mut all = s
            .list_tasks(pb::ListTasksRequest::default())
            .await?
            .into_inner()
            .objects;
        all.retain(|o| String::from_utf8_lossy(o).contains("shop_"));
        let running = all
            .iter()
            .filter_map(|o| serde_json::from_slice::<Task>(o).ok())
            .filter(|t| t.status.state == TaskState::Running)
            .count();
        if running == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{running} stack tasks still run"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}
