//! A task's life on a real engine: it runs, fails, stops, is removed, and
//! survives an agent restart, as swarmkit's agent would have it.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{CreateContainerOptions, KillContainerOptions};
use capstan_agent::{Executor, NODE_LABEL, SERVICE_LABEL, TASK_LABEL};
use capstan_core::service::HealthCheck;
use capstan_core::TaskState;
use common::{assignment, TestNode};
use futures::StreamExt;

const SLEEP: &[&str] = &["sleep", "300"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_runs_in_a_labelled_container_named_like_swarm() {
    let n = TestNode::new().await;
    let task = n.task("web", SLEEP);
    let batch = [assignment(&task)];

    let status = n
        .reconcile_until(&batch, &task.id, TaskState::Running)
        .await;

    assert_eq!(status.message, "running");
    let c = n.inspect(&status.container_id).await;
    assert_eq!(
        c.name.as_deref(),
        Some(format!("/web.1.{}", task.id).as_str())
    );
    assert_eq!(c.state.and_then(|s| s.running), Some(true));
    let labels = c.config.and_then(|c| c.labels).expect("labels");
    assert_eq!(labels[NODE_LABEL], n.node.to_string());
    assert_eq!(labels[TASK_LABEL], task.id);
    assert_eq!(labels[SERVICE_LABEL], "svc-web");
    assert_eq!(labels["com.docker.swarm.service.name"], "web");
    assert_eq!(labels["com.docker.swarm.task.id"], task.id);
    assert_eq!(labels["com.docker.swarm.node.id"], n.node.to_string());
    for (key, value) in n.run_labels() {
        assert_eq!(labels[&key], value, "spec label {key}");
    }
    let restart = c
        .host_config
        .and_then(|h| h.restart_policy)
        .and_then(|r| r.name);
    assert_eq!(restart.map(|r| r.to_string()), Some("no".to_owned()));

    let again = n.executor.reconcile(&batch).await.expect("reconcile");
    assert_eq!(
        again,
        vec![(task.id.clone(), status)],
        "a second reconcile changes nothing"
    );
    assert_eq!(n.containers().await.len(), 1);
    n.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_container_fails_with_137_and_is_not_replaced() {
    let n = TestNode::new().await;
    let task = n.task("web", SLEEP);
    let batch = [assignment(&task)];
    let running = n
        .reconcile_until(&batch, &task.id, TaskState::Running)
        .await;
    let mut changes = Box::pin(n.executor.changes());

    let kill = KillContainerOptions {
        signal: "SIGKILL".into(),
    };
    n.docker
        .kill_container(&running.container_id, Some(kill))
        .await
        .expect("docker kill");
    tokio::time::timeout(Duration::from_secs(10), changes.next())
        .await
        .expect("changes() yields when the container dies")
        .expect("the change stream goes on");

    let failed = n.reconcile_until(&batch, &task.id, TaskState::Failed).await;
    assert_eq!(failed.exit_code, Some(137));
    assert_eq!(failed.err, "task: non-zero exit (137)");
    assert_eq!(failed.container_id, running.container_id);
    let after = n.executor.reconcile(&batch).await.expect("reconcile");
    assert_eq!(after[0].1.state, TaskState::Failed, "failed stays failed");
    assert_eq!(
        n.containers().await,
        vec![running.container_id.clone()],
        "no new container"
    );
    let c = n.inspect(&running.container_id).await;
    assert_eq!(
        c.state.and_then(|s| s.running),
        Some(false),
        "not restarted"
    );
    n.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desired_shutdown_stops_and_desired_remove_removes() {
    let n = TestNode::new().await;
    let mut task = n.task("web", SLEEP);
    let running = n
        .reconcile_until(&[assignment(&task)], &task.id, TaskState::Running)
        .await;

    task.desired_state = TaskState::Shutdown;
    let batch = [assignment(&task)];
    let shutdown = n
        .reconcile_until(&batch, &task.id, TaskState::Shutdown)
        .await;
    assert_eq!(shutdown.message, "shutdown");
    let c = n.inspect(&running.container_id).await;
    assert_eq!(c.state.and_then(|s| s.running), Some(false));
    let again = n.executor.reconcile(&batch).await.expect("reconcile");
    assert_eq!(
        again[0].1.state,
        TaskState::Shutdown,
        "a stopped task stays shut down"
    );

    task.desired_state = TaskState::Remove;
    let removed = n
        .executor
        .reconcile(&[assignment(&task)])
        .await
        .expect("reconcile");
    assert_eq!(removed[0].1.state, TaskState::Shutdown);
    assert!(
        n.containers().await.is_empty(),
        "desired remove removes the container"
    );
    n.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_of_unassigned_tasks_are_removed() {
    let n = TestNode::new().await;
    let kept = n.task("kept", SLEEP);
    let gone = n.task("gone", SLEEP);
    let both = [assignment(&kept), assignment(&gone)];
    n.reconcile_until(&both, &kept.id, TaskState::Running).await;
    n.reconcile_until(&both, &gone.id, TaskState::Running).await;
    assert_eq!(n.containers().await.len(), 2);

    let statuses = n
        .executor
        .reconcile(&[assignment(&kept)])
        .await
        .expect("reconcile");

    assert_eq!(statuses.len(), 1, "only assigned tasks are reported");
    let left = n.containers().await;
    assert_eq!(left.len(), 1);
    let c = n.inspect(&left[0]).await;
    let labels = c.config.and_then(|c| c.labels).expect("labels");
    assert_eq!(labels[TASK_LABEL], kept.id);
    n.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_adopts_the_running_container() {
    let n = TestNode::new().await;
    let mut task = n.task("web", SLEEP);
    let first = n
        .reconcile_until(&[assignment(&task)], &task.id, TaskState::Running)
        .await;

    // The new agent knows only what the manager holds: the last report.
    task.status = first.clone();
    let restarted = Executor::connect(n.node).await.expect("connect");
    let statuses = restarted
        .reconcile(&[assignment(&task)])
        .await
        .expect("reconcile");

    assert_eq!(statuses[0].1.state, TaskState::Running);
    assert_eq!(
        statuses[0].1.container_id, first.container_id,
        "same container"
    );
    assert_eq!(
        n.containers().await,
        vec![first.container_id.clone()],
        "no duplicate"
    );
    n.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_created_but_never_started_is_started() {
    let n = TestNode::new().await;
    let task = n.task("web", SLEEP);
    // What an agent that crashed between create and start leaves behind.
    let options = CreateContainerOptions {
        name: Some(task.container_name()),
        platform: String::new(),
    };
    let body = ContainerCreateBody {
        image: Some(n.image.clone()),
        cmd: Some(SLEEP.iter().map(|s| s.to_string()).collect()),
        labels: Some(HashMap::from([
            (NODE_LABEL.to_owned(), n.node.to_string()),
            (TASK_LABEL.to_owned(), task.id.clone()),
        ])),
        ..Default::default()
    };
    let created = n
        .docker
        .create_container(Some(options), body)
        .await
        .expect("docker create");

    let status = n
        .reconcile_until(&[assignment(&task)], &task.id, TaskState::Running)
        .await;

    assert_eq!(
        status.container_id, created.id,
        "the created container is adopted"
    );
    assert_eq!(n.containers().await.len(), 1);
    n.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_container_is_killed_and_fails() {
    let n = TestNode::new().await;
    let mut task = n.task("web", SLEEP);
    task.spec.container.healthcheck = Some(HealthCheck {
        test: vec!["CMD".into(), "false".into()],
        interval_ms: 500,
        timeout_ms: 500,
        retries: 1,
        start_period_ms: 0,
    });
    let batch = [assignment(&task)];

    let failed = n.reconcile_until(&batch, &task.id, TaskState::Failed).await;

    assert_eq!(failed.err, "unhealthy container");
    let c = n.inspect(&failed.container_id).await;
    assert_eq!(c.state.and_then(|s| s.running), Some(false), "killed");
    n.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_reconciling_at_once_make_one_container() {
    let n = TestNode::new().await;
    let task = n.task("web", SLEEP);
    let batch = [assignment(&task)];
    let other = Executor::connect(n.node).await.expect("connect");

    let (a, b) = tokio::join!(n.executor.reconcile(&batch), other.reconcile(&batch));
    a.expect("first reconcile");
    b.expect("second reconcile");
    let first = n
        .reconcile_until(&batch, &task.id, TaskState::Running)
        .await;
    let second = other.reconcile(&batch).await.expect("reconcile");

    assert_eq!(second[0].1.state, TaskState::Running, "{:?}", second[0].1);
    assert_eq!(second[0].1.container_id, first.container_id);
    assert_eq!(n.containers().await, vec![first.container_id.clone()]);
    n.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_that_cannot_start_fails_once() {
    let n = TestNode::new().await;
    let task = n.task("broken", &["/no/such/program"]);
    let batch = [assignment(&task)];

    let failed = n.reconcile_until(&batch, &task.id, TaskState::Failed).await;

    assert!(failed.err.contains("/no/such/program"), "{}", failed.err);
    let again = n.executor.reconcile(&batch).await.expect("reconcile");
    assert_eq!(again[0].1, failed, "no second start");
    assert_eq!(n.containers().await.len(), 1);
    n.finish().await;
}
