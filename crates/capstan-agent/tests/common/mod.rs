//! The fixture of the executor's tests: a node with a random id on the
//! local engine, the busybox workload image, task builders, and cleanup of
//! everything labelled with the node's id, even when a test fails.

#![allow(dead_code)] // Each test binary uses a different part.

use std::collections::BTreeMap;
use std::time::Duration;

use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::ListContainersOptions;
use bollard::Docker;
use capstan_agent::{Assignment, Executor, NODE_LABEL};
use capstan_core::service::ContainerSpec;
use capstan_core::{NodeId, Task, TaskSpec, TaskState, TaskStatus};
use capstan_testkit::{wait_for_async, Harness, Probe, TestImage};
use rand::Rng;
use time::OffsetDateTime;

/// How long a task may take to reach a state.
pub const SETTLE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(250);

/// One agent's node on the local engine.
pub struct TestNode {
    /// Its executor.
    pub executor: Executor,
    /// Its random id: no other test sees its containers.
    pub node: NodeId,
    /// The busybox workload image.
    pub image: String,
    /// A client of the same engine, to check what the executor did.
    pub docker: Docker,
    /// Removes every container, network and volume labelled with the node
    /// on drop (after the executor's own `remove_all`).
    harness: Harness,
}

impl TestNode {
    /// A fresh node.
    pub async fn new() -> TestNode {
        let harness = Harness::new().expect("the docker engine answers");
        let node = NodeId(rand::thread_rng().gen());
        harness.sweep_label(format!("{NODE_LABEL}={node}"));
        let image = TestImage::busybox_only()
            .expect("the busybox image builds")
            .tag()
            .to_owned();
        let executor = Executor::connect(node)
            .await
            .expect("the executor connects");
        let docker = Docker::connect_with_defaults()
            .expect("a docker client")
            .negotiate_version()
            .await
            .expect("the engine answers /version");
        TestNode {
            executor,
            node,
            image,
            docker,
            harness,
        }
    }

    /// A replicated task of `service` (slot 1) running `command` in the
    /// busybox image, assigned to this node.
    pub fn task(&self, service: &str, command: &[&str]) -> Task {
        let id: String = rand::thread_rng()
            .sample_iter(rand::distributions::Alphanumeric)
            .take(25)
            .map(|c| char::from(c).to_ascii_lowercase())
            .collect();
        Task {
            id,
            service_id: format!("svc-{service}"),
            service_name: service.to_owned(),
            slot: 1,
            node_id: Some(self.node),
            spec: TaskSpec {
                container: ContainerSpec {
                    image: self.image.clone(),
                    command: command.iter().map(|s| s.to_string()).collect(),
                    // busybox as PID 1 ignores SIGTERM: keep stops short.
                    stop_grace_period_ms: 1_000,
                    labels: self.run_labels(),
                    ..Default::default()
                },
                ..Default::default()
            },
            spec_version: 1,
            desired_state: TaskState::Running,
            status: TaskStatus {
                state: TaskState::Assigned,
                message: "assigned".into(),
                err: String::new(),
                timestamp: OffsetDateTime::UNIX_EPOCH,
                container_id: String::new(),
                exit_code: None,
                ports: Vec::new(),
            },
            attempt: 0,
            created_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    /// Reconciles until the task reaches `state` (or any terminal state,
    /// which then fails the test unless it is the one awaited).
    pub async fn reconcile_until(
        &self,
        assigned: &[Assignment],
        task_id: &str,
        state: TaskState,
    ) -> TaskStatus {
        let status = wait_for_async(
            &format!("task {task_id} to be {state}"),
            SETTLE,
            POLL,
            async || -> Result<Probe<TaskStatus>, capstan_agent::AgentError> {
                let statuses = self.executor.reconcile(assigned).await?;
                let (_, status) = statuses
                    .into_iter()
                    .find(|(id, _)| id == task_id)
                    .expect("every assigned task has a status");
                if status.state == state || status.state.is_terminal() {
                    Ok(Probe::Ready(status))
                } else {
                    Ok(Probe::NotYet(format!("{status:?}")))
                }
            },
        )
        .await
        .expect("the task settles");
        assert_eq!(status.state, state, "{status:?}");
        status
    }

    /// The test run's labels: a later run removes the containers and
    /// networks that carry them should this test's process die before its
    /// cleanup.
    pub fn run_labels(&self) -> BTreeMap<String, String> {
        self.harness
            .run_id()
            .labels()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
    }

    /// The ids of this node's containers (all states).
    pub async fn containers(&self) -> Vec<String> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(std::collections::HashMap::from([(
                "label".to_owned(),
                vec![format!("{NODE_LABEL}={}", self.node)],
            )])),
            ..Default::default()
        };
        self.docker
            .list_containers(Some(options))
            .await
            .expect("containers are listed")
            .into_iter()
            .filter_map(|c| c.id)
            .collect()
    }

    /// `docker inspect` of a container.
    pub async fn inspect(&self, container: &str) -> ContainerInspectResponse {
        self.docker
            .inspect_container(container, None)
            .await
            .expect("the container is inspected")
    }

    /// Everything the container printed so far, read through the
    /// executor's log stream, once it contains `expected`.
    pub async fn logs_containing(&self, task_id: &str, expected: &str) -> String {
        use futures::TryStreamExt;
        wait_for_async(
            &format!("the logs of task {task_id} to contain {expected:?}"),
            SETTLE,
            POLL,
            async || -> Result<Probe<String>, capstan_agent::AgentError> {
                let pieces: Vec<capstan_agent::LogPiece> = self
                    .executor
                    .logs(task_id, capstan_agent::LogOptions::default())
                    .try_collect()
                    .await?;
                let text: String = pieces
                    .iter()
                    .map(|p| String::from_utf8_lossy(&p.data).into_owned())
                    .collect();
                Ok(if text.contains(expected) {
                    Probe::Ready(text)
                } else {
                    Probe::NotYet(text)
                })
            },
        )
        .await
        .expect("the logs show the expected text")
    }

    /// Removes everything the node made and checks nothing is left.
    pub async fn finish(self) {
        self.executor
            .remove_all()
            .await
            .expect("remove_all succeeds");
        assert!(self.containers().await.is_empty(), "containers left behind");
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        // The executor's own cleanup first (it needs the runtime: tests run
        // on the multi-threaded one); the harness then sweeps the label.
        let executor = self.executor.clone();
        let removed = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(executor.remove_all())
        });
        if let Err(e) = removed {
            eprintln!("remove_all failed during cleanup: {e}");
        }
    }
}

/// The assignment of a task with nothing extra.
pub fn assignment(task: &Task) -> Assignment {
    Assignment {
        task: task.clone(),
        secrets: Vec::new(),
        configs: Vec::new(),
        networks: Vec::new(),
        registry_auth: None,
    }
}
