//! The executor: makes the local engine run exactly the tasks assigned to
//! this node, level-triggered like swarmkit's agent. Each reconcile reads
//! the assignments and the engine, takes one step per task (see
//! [`crate::plan`]), removes what is no longer assigned, and returns every
//! assigned task's status.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bollard::Docker;
use capstan_core::service::FileReference;
use capstan_core::{Network, NodeDescription, NodeId, Task, TaskState, TaskStatus};
use futures::future::join_all;
use futures::Stream;
use time::OffsetDateTime;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::engine::Engine;
use crate::error::AgentError;
use crate::logs::{LogOptions, LogPiece};
use crate::network::remove_unused;
use crate::observed::ContainerView;
use crate::plan::{decide, observe, Step, CONTAINER_GONE, UNHEALTHY};
use crate::prepare::{prepare, start_created, PrepareContext};
use crate::status::{Report, StatusBook};

/// How long a reconcile waits for the preparations it started (or found
/// running) before it reports them as preparing: long enough for a local
/// image, short enough that a slow pull does not hold up other reports.
const PREPARE_WAIT: Duration = Duration::from_secs(5);

/// A task given to this node, with what it needs that the task itself
/// does not carry. Its `Debug` output leaves out secret data and
/// credentials.
#[derive(Clone)]
pub struct Assignment {
    /// The task, with its spec and desired state.
    pub task: Task,
    /// The task's secrets (reference and plaintext), written under
    /// `/run/secrets` before the container starts.
    pub secrets: Vec<(FileReference, Vec<u8>)>,
    /// The task's configs (reference and content), written at their targets.
    pub configs: Vec<(FileReference, Vec<u8>)>,
    /// The cluster networks its spec names.
    pub networks: Vec<Network>,
    /// `X-Registry-Auth` for pulling its image: base64 of the JSON
    /// `{"username", "password", "serveraddress"}`.
    pub registry_auth: Option<String>,
}

impl fmt::Debug for Assignment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |files: &[(FileReference, Vec<u8>)]| -> Vec<String> {
            files.iter().map(|(r, _)| r.name.clone()).collect()
        };
        f.debug_struct("Assignment")
            .field("task", &self.task)
            .field("secrets", &names(&self.secrets))
            .field("configs", &names(&self.configs))
            .field("networks", &self.networks)
            .field(
                "registry_auth",
                &self.registry_auth.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Runs this node's tasks on the local Docker Engine. Clones share one
/// state (reported statuses, preparations in flight).
#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: PrepareContext,
    book: Mutex<StatusBook>,
    /// Preparations in flight, by task id. Aborted when their task is no
    /// longer wanted and when the last executor handle is dropped.
    preparations: Mutex<HashMap<String, JoinHandle<Result<(), AgentError>>>>,
    /// One reconcile at a time per executor.
    reconcile_lock: tokio::sync::Mutex<()>,
    /// Wakes [`Executor::changes`] when a preparation ends.
    changed: broadcast::Sender<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for (_, handle) in lock(&self.preparations).drain() {
            handle.abort();
        }
    }
}

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executor")
            .field("node", &self.inner.ctx.engine.node)
            .finish_non_exhaustive()
    }
}

/// Where a task's preparation stands.
enum Preparation {
    /// None is in flight.
    None,
    /// Still going after the wait.
    Pending,
    /// It ended.
    Done(Result<(), AgentError>),
}

impl Executor {
    /// Connects to the local engine: `DOCKER_HOST` when set, the unix
    /// socket otherwise, speaking the newest API version both sides know.
    /// `node_id` scopes every container, network and volume it touches.
    pub async fn connect(node_id: NodeId) -> Result<Executor, AgentError> {
        let host =
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
        let failed = |source| AgentError::Connect {
            host: host.clone(),
            source,
        };
        let docker = Docker::connect_with_defaults().map_err(failed)?;
        let docker = docker.negotiate_version().await.map_err(failed)?;
        let (changed, _) = broadcast::channel(16);
        Ok(Executor {
            inner: Arc::new(Inner {
                ctx: PrepareContext {
                    engine: Engine {
                        docker,
                        node: node_id,
                    },
                    network_lock: Arc::new(tokio::sync::Mutex::new(())),
                },
                book: Mutex::new(StatusBook::default()),
                preparations: Mutex::new(HashMap::new()),
                reconcile_lock: tokio::sync::Mutex::new(()),
                changed,
            }),
        })
    }

    /// The node this executor runs tasks for.
    pub fn node_id(&self) -> NodeId {
        self.engine().node
    }

    /// The node as the engine describes it (`docker info`), under `hostname`.
    pub async fn describe(&self, hostname: &str) -> Result<NodeDescription, AgentError> {
        crate::describe::describe(&self.engine().docker, hostname).await
    }

    /// Makes the engine match `assigned` and returns the status of every
    /// assigned task, in order. Level-triggered and safe to repeat: it
    /// starts what should run, reports what ran, stops what should stop,
    /// removes this node's containers of tasks no longer assigned and the
    /// networks nothing assigned uses. After an agent restart it adopts the
    /// containers it finds by their labels. Fails only when the engine
    /// cannot list this node's containers; a task the engine refuses to run
    /// is reported rejected or failed instead.
    pub async fn reconcile(
        &self,
        assigned: &[Assignment],
    ) -> Result<Vec<(String, TaskStatus)>, AgentError> {
        let _one_at_a_time = self.inner.reconcile_lock.lock().await;
        let existing = self.engine().list(&[]).await?;
        let deadline = Instant::now() + PREPARE_WAIT;
        let statuses = join_all(assigned.iter().map(|a| self.converge(a, deadline))).await;

        let ids: HashSet<&str> = assigned.iter().map(|a| a.task.id.as_str()).collect();
        lock(&self.inner.preparations).retain(|id, handle| {
            let keep = ids.contains(id.as_str());
            if !keep {
                handle.abort();
            }
            keep
        });
        let orphans = existing
            .iter()
            .filter(|c| !ids.contains(c.task_id.as_str()));
        join_all(orphans.map(|c| async move {
            tracing::info!(container = %c.id, task = %c.task_id, "removing container of a task no longer assigned");
            if let Err(e) = self.engine().stop_and_remove(&c.id).await {
                tracing::warn!(error = %e, "orphan container not removed");
            }
        }))
        .await;

        let in_use: HashSet<&str> = assigned
            .iter()
            .filter(|a| a.task.desired_state <= TaskState::Running)
            .flat_map(|a| a.task.spec.networks.iter().map(String::as_str))
            .collect();
        {
            let _networks = self.inner.ctx.network_lock.lock().await;
            if let Err(e) = remove_unused(self.engine(), &in_use).await {
                tracing::warn!(error = %e, "unused networks not removed");
            }
        }
        self.book().retain(&ids);
        Ok(statuses)
    }

    /// The logs of the task's container.
    pub fn logs(
        &self,
        task_id: &str,
        opts: LogOptions,
    ) -> impl Stream<Item = Result<LogPiece, AgentError>> + Send + 'static {
        crate::logs::logs(self.engine().clone(), task_id.to_owned(), opts)
    }

    /// Yields whenever one of this node's task containers starts, dies, is
    /// destroyed or changes health, and when a preparation ends, so the
    /// caller can reconcile at once. It sees what happens from the moment it
    /// is called, even before it is first polled, and survives engine
    /// restarts (yielding once after reconnecting, as events may have been
    /// missed).
    pub fn changes(&self) -> impl Stream<Item = ()> + Send + 'static {
        crate::events::changes(self.engine().clone(), self.inner.changed.subscribe())
    }

    /// Removes every container of this node, and the networks it made
    /// (for node removal and tests). Volumes keep their data and stay.
    pub async fn remove_all(&self) -> Result<(), AgentError> {
        let _one_at_a_time = self.inner.reconcile_lock.lock().await;
        for (_, handle) in lock(&self.inner.preparations).drain() {
            handle.abort();
        }
        let containers = self.engine().list(&[]).await?;
        let removals = join_all(containers.iter().map(|c| self.engine().remove(&c.id))).await;
        removals.into_iter().collect::<Result<Vec<()>, _>>()?;
        {
            let _networks = self.inner.ctx.network_lock.lock().await;
            remove_unused(self.engine(), &HashSet::new()).await?;
        }
        self.book().retain(&HashSet::new());
        Ok(())
    }

    /// One task's step and its settled status. An engine that does not
    /// answer leaves the task's known status as it was.
    async fn converge(&self, a: &Assignment, deadline: Instant) -> (String, TaskStatus) {
        let task = &a.task;
        let status = match self.step(a, deadline).await {
            Ok(report) => self.book().settle(task, report, OffsetDateTime::now_utc()),
            Err(e) => {
                tracing::warn!(task = %task.id, error = %e, "task not reconciled; will retry");
                self.book().known(task)
            }
        };
        (task.id.clone(), status)
    }

    async fn step(&self, a: &Assignment, deadline: Instant) -> Result<Report, AgentError> {
        let task = &a.task;
        let stopping = task.desired_state > TaskState::Running;
        if stopping {
            if let Some(handle) = lock(&self.inner.preparations).remove(&task.id) {
                handle.abort();
            }
        } else {
            match self.await_preparation(&task.id, deadline).await {
                Preparation::None | Preparation::Done(Ok(())) => {}
                Preparation::Pending => return Ok(Report::state(TaskState::Preparing)),
                Preparation::Done(Err(e)) => return Ok(setback(&e)),
            }
        }

        let known = self.book().known(task).state;
        let container = self
            .engine()
            .inspect(&task.id, &task.container_name())
            .await?;
        let has_healthcheck = task
            .spec
            .container
            .healthcheck
            .as_ref()
            .is_some_and(|h| h.test.first().is_some_and(|t| t != "NONE"));
        let step = decide(
            task.desired_state,
            known,
            container.as_ref(),
            has_healthcheck,
        );
        match (step, container) {
            (Step::Prepare, _) => {
                self.start_preparation(a);
                match self.await_preparation(&task.id, deadline).await {
                    Preparation::Pending => Ok(Report::state(TaskState::Preparing)),
                    Preparation::Done(Err(e)) => Ok(setback(&e)),
                    Preparation::None | Preparation::Done(Ok(())) => self.observe_now(task).await,
                }
            }
            (Step::Start, Some(c)) => {
                match start_created(&self.inner.ctx, a, &c.id, &c.attached).await {
                    Ok(()) => self.observe_now(task).await,
                    Err(e) => Ok(setback(&e).of_container(&c.id)),
                }
            }
            (Step::Observe, Some(c)) => Ok(observe(&c, stopping)),
            (Step::KillUnhealthy, Some(c)) => {
                tracing::info!(task = %task.id, container = %c.id, "killing unhealthy container");
                self.engine().kill(&c.id).await?;
                Ok(Report::error(TaskState::Failed, UNHEALTHY).of_container(&c.id))
            }
            (Step::Stop { remove }, Some(c)) => {
                let grace = Duration::from_millis(task.spec.container.stop_grace_period_ms);
                self.engine().stop(&c.id, Some(grace)).await?;
                if remove {
                    self.engine().remove(&c.id).await?;
                }
                Ok(Report::state(TaskState::Shutdown).of_container(&c.id))
            }
            (Step::Remove, Some(c)) => {
                self.engine().remove(&c.id).await?;
                Ok(observe(&c, true))
            }
            (Step::Lost, _) => Ok(Report::error(TaskState::Failed, CONTAINER_GONE)),
            (Step::Shutdown, _) => Ok(Report::state(TaskState::Shutdown)),
            // Keep, and steps that need a container when there is none
            // (decide never pairs them): the known status stands.
            _ => Ok(Report::state(known)),
        }
    }

    /// Reports the container as it is now (after a start).
    async fn observe_now(&self, task: &Task) -> Result<Report, AgentError> {
        let container: Option<ContainerView> = self
            .engine()
            .inspect(&task.id, &task.container_name())
            .await?;
        Ok(match container {
            Some(c) => observe(&c, false),
            None => Report::state(TaskState::Preparing),
        })
    }

    fn start_preparation(&self, a: &Assignment) {
        let ctx = self.inner.ctx.clone();
        let changed = self.inner.changed.clone();
        let assignment = a.clone();
        let span = tracing::info_span!("prepare", task = %a.task.id);
        let handle = tokio::spawn(
            async move {
                let result = prepare(ctx, assignment).await;
                if let Err(e) = &result {
                    tracing::warn!(error = %e, "preparation failed");
                }
                // No receiver is fine: nobody watches for changes.
                let _ = changed.send(());
                result
            }
            .instrument(span),
        );
        if let Some(previous) = lock(&self.inner.preparations).insert(a.task.id.clone(), handle) {
            previous.abort();
        }
    }

    /// Waits until `deadline` for the task's preparation to end.
    async fn await_preparation(&self, task_id: &str, deadline: Instant) -> Preparation {
        let Some(mut handle) = lock(&self.inner.preparations).remove(task_id) else {
            return Preparation::None;
        };
        match tokio::time::timeout_at(deadline, &mut handle).await {
            Err(_still_going) => {
                lock(&self.inner.preparations).insert(task_id.to_owned(), handle);
                Preparation::Pending
            }
            Ok(Ok(result)) => Preparation::Done(result),
            Ok(Err(join_error)) => Preparation::Done(Err(AgentError::Preparation {
                task: task_id.to_owned(),
                reason: join_error.to_string(),
            })),
        }
    }

    fn engine(&self) -> &Engine {
        &self.inner.ctx.engine
    }

    fn book(&self) -> MutexGuard<'_, StatusBook> {
        lock(&self.inner.book)
    }
}

/// The report of a preparation or start that failed: the engine's refusal
/// rejects the task (or fails it, when the container would not start); an
/// engine that did not answer leaves it preparing, to be retried.
fn setback(e: &AgentError) -> Report {
    match e.engine_refusal() {
        Some(err) if matches!(e, AgentError::StartContainer { .. }) => {
            Report::error(TaskState::Failed, err)
        }
        Some(err) => Report::error(TaskState::Rejected, err),
        None => Report {
            detail: format!("retrying: {e}"),
            ..Report::state(TaskState::Preparing)
        },
    }
}

/// Locks a mutex; a panic elsewhere while it was held leaves nothing
/// half-updated in these maps, so a poisoned lock is used as is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::task;

    #[test]
    fn debug_output_leaves_out_secrets_and_credentials() {
        let reference = FileReference {
            id: "s1".into(),
            name: "db_pw".into(),
            target: "db_pw".into(),
            mode: 0o400,
        };
        let a = Assignment {
            task: task("t1", "web", 1),
            secrets: vec![(reference, b"hunter2".to_vec())],
            configs: Vec::new(),
            networks: Vec::new(),
            registry_auth: Some("c2VjcmV0LWF1dGg=".into()),
        };
        let shown = format!("{a:?}");
        assert!(shown.contains("db_pw"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("104, 117"), "secret bytes leaked: {shown}");
        assert!(!shown.contains("c2VjcmV0"), "{shown}");
    }

    #[test]
    fn refusals_reject_start_failures_fail_and_outages_retry() {
        let refused = |message: &str| bollard::errors::Error::DockerResponseServerError {
            status_code: 400,
            message: message.into(),
        };
        let create = AgentError::CreateContainer {
            task: "t1".into(),
            source: refused("invalid mount"),
        };
        assert_eq!(setback(&create).state, TaskState::Rejected);
        let start = AgentError::StartContainer {
            task: "t1".into(),
            source: refused("exec: \"nope\": executable file not found"),
        };
        let report = setback(&start);
        assert_eq!(report.state, TaskState::Failed);
        assert!(report.err.contains("executable file not found"));
        let outage = AgentError::StartContainer {
            task: "t1".into(),
            source: bollard::errors::Error::RequestTimeoutError,
        };
        let report = setback(&outage);
        assert_eq!(report.state, TaskState::Preparing);
        assert!(report.detail.starts_with("retrying: "), "{}", report.detail);
    }
}
