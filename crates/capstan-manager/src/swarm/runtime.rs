//! The leader's swarm loop: heartbeats, then the orchestrator's plan for
//! every service, then the scheduler's placements, then assignments to the
//! agents. The decisions come from `capstan-core`; this only reads the
//! store, writes what was decided and waits for the next change.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use capstan_core::orchestrator::{self, Action as Plan, ServiceView};
use capstan_core::scheduler::{self, Decision, SchedulerInput};
use capstan_core::{encode, Node, Service, Table, Task, TaskState};
use capstan_store::{Action, Expect, Op};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::error::ManagerError;
use crate::state::{Consistency, SharedState};
use crate::swarm::{assignments, dispatcher};

/// The longest the loop sleeps without a change.
const IDLE_TICK: Duration = Duration::from_secs(1);
/// Writes are cut into batches of at most this many objects.
const BATCH: usize = 500;
/// Tables whose changes wake the loop.
const WATCHED: [&str; 6] = [
    "services", "tasks", "nodes", "secrets", "configs", "networks",
];

/// Random object ids, as long as Swarm's.
pub fn new_id() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rngs::OsRng;
    (0..25)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

/// Runs the loop while this manager leads, until cancelled.
pub async fn run(state: SharedState, cancel: CancellationToken) -> Result<(), ManagerError> {
    let mut changes = state.sm.subscribe();
    let mut metrics = state.raft.metrics();
    loop {
        // Wait for leadership.
        while !state.is_leader() {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                r = metrics.changed() => if r.is_err() { return Ok(()) },
            }
        }
        let leader_since = Instant::now();
        tracing::info!("swarm loop running on the leader");
        while state.is_leader() {
            let next = match pass(&state, leader_since).await {
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!(error = %e, "swarm pass failed; retrying");
                    Some(OffsetDateTime::now_utc() + Duration::from_millis(500))
                }
            };
            let sleep = next
                .map(|t| {
                    let d = t - OffsetDateTime::now_utc();
                    Duration::try_from(d)
                        .unwrap_or(Duration::ZERO)
                        .min(IDLE_TICK)
                })
                .unwrap_or(IDLE_TICK);
            let deadline = tokio::time::sleep(sleep);
            tokio::pin!(deadline);
            // Wait for a relevant change, a wake-up or the deadline; then
            // let a burst of changes settle briefly.
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = &mut deadline => break,
                    _ = state.swarm.wake.notified() => break,
                    c = changes.recv() => match c {
                        Ok(c) if WATCHED.contains(&c.object.table.as_str()) => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            // One pass sees them all: without draining, a
                            // burst of N changes would cost N passes.
                            drain(&mut changes);
                            break;
                        }
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
                    },
                }
            }
        }
        tracing::info!("swarm loop paused: no longer the leader");
    }
}

/// Discards the changes already queued: the next pass reads the state
/// they made.
fn drain(changes: &mut tokio::sync::broadcast::Receiver<capstan_store::Change>) {
    use tokio::sync::broadcast::error::TryRecvError;
    loop {
        match changes.try_recv() {
            Ok(_) | Err(TryRecvError::Lagged(_)) => {}
            Err(TryRecvError::Empty | TryRecvError::Closed) => return,
        }
    }
}

/// One pass; returns when the next pass is due at the latest.
async fn pass(
    state: &SharedState,
    leader_since: Instant,
) -> Result<Option<OffsetDateTime>, ManagerError> {
    dispatcher::watch_heartbeats(state, leader_since).await?;
    let next = orchestrate(state).await?;
    schedule(state).await?;
    assignments::push_all(state).await;
    Ok(next)
}

async fn load<T: Table>(state: &SharedState) -> Result<Vec<(T, u64)>, ManagerError> {
    state.list_all::<T>(Consistency::Serializable).await
}

/// The nodes that can run tasks: those whose agent has described them. A
/// manager without a local agent runs none.
async fn task_nodes(state: &SharedState) -> Result<Vec<Node>, ManagerError> {
    Ok(load::<Node>(state)
        .await?
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.description.is_some())
        .collect())
}

/// Turns the orchestrator's plan into store operations (desired-state
/// changes are made by [`desired_state_ops`], which needs the task records).
fn plan_ops(
    plan: Vec<Plan>,
    versions: &HashMap<String, u64>,
    service_version: Option<u64>,
    next: &mut Option<OffsetDateTime>,
) -> Vec<Op> {
    let mut ops = Vec::new();
    for p in plan {
        match p {
            Plan::CreateTask(t) => ops.push(Op {
                table: Task::TABLE.into(),
                id: t.id.clone(),
                action: Action::Put(encode(&t)),
                expect: Expect::Absent,
            }),
            Plan::SetDesiredState { .. } => {}
            Plan::DeleteTask { task_id } => ops.push(Op {
                table: Task::TABLE.into(),
                expect: versions
                    .get(&task_id)
                    .map_or(Expect::Any, |v| Expect::Version(*v)),
                id: task_id,
                action: Action::Delete,
            }),
            Plan::UpdateService(s) => ops.push(Op {
                table: Service::TABLE.into(),
                id: s.id.clone(),
                action: Action::Put(encode(&s)),
                expect: service_version.map_or(Expect::Any, Expect::Version),
            }),
            Plan::RecheckAt(t) => {
                *next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
    }
    ops
}

async fn orchestrate(state: &SharedState) -> Result<Option<OffsetDateTime>, ManagerError> {
    let services = load::<Service>(state).await?;
    let tasks = load::<Task>(state).await?;
    let nodes = task_nodes(state).await?;
    let versions: HashMap<String, u64> = tasks.iter().map(|(t, v)| (t.id.clone(), *v)).collect();
    let mut by_service: HashMap<&str, Vec<Task>> = HashMap::new();
    for (t, _) in &tasks {
        by_service
            .entry(t.service_id.as_str())
            .or_default()
            .push(t.clone());
    }
    let now = OffsetDateTime::now_utc();
    let mut next = None;
    for (service, version) in &services {
        let own = by_service.remove(service.id.as_str()).unwrap_or_default();
        let view = ServiceView {
            service,
            tasks: &own,
            nodes: &nodes,
            now,
        };
        let plan = orchestrator::reconcile(&view, &mut new_id);
        let ops = desired_state_ops(&plan, &own, &versions);
        let mut ops_all = plan_ops(plan, &versions, Some(*version), &mut next);
        ops_all.extend(ops);
        write_batches(state, ops_all).await?;
    }
    // Tasks whose service is gone.
    for (_, own) in by_service {
        let plan = orchestrator::reconcile_removed(&own);
        let ops = desired_state_ops(&plan, &own, &versions);
        let mut ops_all = plan_ops(plan, &versions, None, &mut next);
        ops_all.extend(ops);
        write_batches(state, ops_all).await?;
    }
    Ok(next)
}

/// The desired-state changes of a plan, as updates of the full task records.
fn desired_state_ops(plan: &[Plan], tasks: &[Task], versions: &HashMap<String, u64>) -> Vec<Op> {
    plan.iter()
        .filter_map(|p| match p {
            Plan::SetDesiredState { task_id, desired } => {
                let mut t = tasks.iter().find(|t| &t.id == task_id)?.clone();
                t.desired_state = *desired;
                Some(Op {
                    table: Task::TABLE.into(),
                    id: t.id.clone(),
                    action: Action::Put(encode(&t)),
                    expect: versions
                        .get(task_id)
                        .map_or(Expect::Any, |v| Expect::Version(*v)),
                })
            }
            _ => None,
        })
        .collect()
}

async fn schedule(state: &SharedState) -> Result<(), ManagerError> {
    let tasks = load::<Task>(state).await?;
    let pending: Vec<&(Task, u64)> = tasks
        .iter()
        .filter(|(t, _)| scheduler::needs_scheduling(t))
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    let nodes = task_nodes(state).await?;
    let all: Vec<Task> = tasks.iter().map(|(t, _)| t.clone()).collect();
    let input = SchedulerInput {
        nodes: &nodes,
        tasks: &all,
    };
    let pending_refs: Vec<&Task> = pending.iter().map(|(t, _)| t).collect();
    let decisions = scheduler::schedule(&input, &pending_refs);
    let now = OffsetDateTime::now_utc();
    let mut ops = Vec::new();
    for d in decisions {
        let (task_id, node, message) = match d {
            Decision::Assign { task_id, node_id } => {
                (task_id, Some(node_id), "assigned".to_string())
            }
            Decision::NoSuitableNode { task_id, reason } => (task_id, None, reason),
        };
        let Some((task, version)) = pending.iter().find(|(t, _)| t.id == task_id) else {
            continue;
        };
        let mut task = task.clone();
        match node {
            Some(n) => {
                task.node_id = Some(n);
                task.status.state = TaskState::Assigned;
            }
            None => {
                if task.status.state == TaskState::Pending && task.status.message == message {
                    continue;
                }
                task.status.state = TaskState::Pending;
            }
        }
        task.status.message = message;
        task.status.timestamp = now;
        ops.push(Op {
            table: Task::TABLE.into(),
            id: task.id.clone(),
            action: Action::Put(encode(&task)),
            expect: Expect::Version(*version),
        });
    }
    write_batches(state, ops).await
}

async fn write_batches(state: &SharedState, ops: Vec<Op>) -> Result<(), ManagerError> {
    let mut ops = ops;
    while !ops.is_empty() {
        let rest = ops.split_off(ops.len().min(BATCH));
        match state.write(ops, false).await {
            // Someone else changed an object: the next pass sees it.
            Ok(_) | Err(ManagerError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
        ops = rest;
    }
    Ok(())
}
