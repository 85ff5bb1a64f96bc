//! The dispatcher: one session per node agent, on the leader. It records the
//! node's description and heartbeats, stores the task states the agent
//! reports, and streams each node the full set of tasks it should run.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use capstan_core::{
    decode, encode, Node, NodeDescription, NodeId, NodeState, Table, Task, TaskStatus,
};
use capstan_proto::v1::{self as pb, dispatcher_server::Dispatcher};
use capstan_store::{Action, Expect, Op};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::caller;
use crate::error::ManagerError;
use crate::state::SharedState;
use crate::swarm::assignments;
use crate::swarm::logs::LogRoutes;

type Outbound = mpsc::Sender<Result<pb::DispatcherMessage, Status>>;

/// A live agent session.
struct Session {
    id: u64,
    tx: Outbound,
    last_seen: Instant,
    last_sent: u64,
}

/// The agents connected to this manager.
#[derive(Default)]
pub struct Sessions {
    inner: Mutex<HashMap<NodeId, Session>>,
    next: AtomicU64,
}

impl Sessions {
    fn register(&self, node: NodeId, tx: Outbound) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let session = Session {
            id,
            tx,
            last_seen: Instant::now(),
            last_sent: 0,
        };
        self.inner
            .lock()
            .expect("sessions lock")
            .insert(node, session);
        id
    }

    fn touch(&self, node: NodeId, session: u64) {
        if let Some(s) = self.inner.lock().expect("sessions lock").get_mut(&node) {
            if s.id == session {
                s.last_seen = Instant::now();
            }
        }
    }

    fn remove(&self, node: NodeId, session: u64) {
        let mut map = self.inner.lock().expect("sessions lock");
        if map.get(&node).is_some_and(|s| s.id == session) {
            map.remove(&node);
        }
    }

    /// When each connected node was last heard from.
    pub fn last_seen(&self) -> HashMap<NodeId, Instant> {
        self.inner
            .lock()
            .expect("sessions lock")
            .iter()
            .map(|(n, s)| (*n, s.last_seen))
            .collect()
    }

    /// Connected nodes.
    pub fn nodes(&self) -> Vec<NodeId> {
        self.inner
            .lock()
            .expect("sessions lock")
            .keys()
            .copied()
            .collect()
    }

    /// Sends a message to a node's agent, if connected.
    pub fn send(&self, node: NodeId, msg: pb::dispatcher_message::Msg) -> bool {
        let tx = self
            .inner
            .lock()
            .expect("sessions lock")
            .get(&node)
            .map(|s| s.tx.clone());
        match tx {
            Some(tx) => tx
                .try_send(Ok(pb::DispatcherMessage { msg: Some(msg) }))
                .is_ok(),
            None => false,
        }
    }

    /// Sends the node its assignments unless they are what it last got
    /// (`fingerprint` identifies the set).
    pub fn send_assignments(&self, node: NodeId, fingerprint: u64, a: pb::Assignments) {
        let tx = {
            let mut map = self.inner.lock().expect("sessions lock");
            match map.get_mut(&node) {
                Some(s) if s.last_sent != fingerprint => {
                    s.last_sent = fingerprint;
                    Some(s.tx.clone())
                }
                _ => None,
            }
        };
        if let Some(tx) = tx {
            let msg = pb::dispatcher_message::Msg::Assignments(a);
            if tx
                .try_send(Ok(pb::DispatcherMessage { msg: Some(msg) }))
                .is_err()
            {
                // The agent is slow or gone: make the next push resend.
                if let Some(s) = self.inner.lock().expect("sessions lock").get_mut(&node) {
                    s.last_sent = 0;
                }
            }
        }
    }
}

/// The dispatcher gRPC service.
pub struct DispatcherApi {
    state: SharedState,
}

impl DispatcherApi {
    /// The service over a manager's state.
    pub fn new(state: SharedState) -> Self {
        Self { state }
    }
}

type SessionStream = Pin<Box<dyn Stream<Item = Result<pb::DispatcherMessage, Status>> + Send>>;

/// Records a node's description and marks it ready.
async fn node_connected(
    state: &SharedState,
    node: NodeId,
    description: NodeDescription,
) -> Result<(), ManagerError> {
    for _ in 0..5 {
        let Some((mut n, version)) = state
            .get::<Node>(&node.to_string(), crate::state::Consistency::Serializable)
            .await?
        else {
            return Err(ManagerError::Denied(format!(
                "node {node} is not part of this cluster (removed?); join it again"
            )));
        };
        n.description = Some(description.clone());
        if !description.capstan_version.is_empty() {
            n.capstan_version = description.capstan_version.clone();
        }
        n.state = NodeState::Ready;
        n.updated_at = time::OffsetDateTime::now_utc();
        let op = Op {
            table: Node::TABLE.into(),
            id: n.id(),
            action: Action::Put(encode(&n)),
            expect: Expect::Version(version),
        };
        match state.write(vec![op], false).await {
            Ok(_) => return Ok(()),
            Err(ManagerError::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ManagerError::Unavailable(format!(
        "node {node} record keeps changing; retry"
    )))
}

/// Stores the task states an agent reported: only for tasks of its node, and
/// only moving forward.
pub async fn record_statuses(
    state: &SharedState,
    node: NodeId,
    reports: Vec<pb::TaskStatusReport>,
) -> Result<(), ManagerError> {
    let mut ops = Vec::new();
    for r in reports {
        let status: TaskStatus = serde_json::from_slice(&r.status)
            .map_err(|e| ManagerError::Invalid(format!("task {} status: {e}", r.task_id)))?;
        let Some(obj) = state.sm.get(Task::TABLE, &r.task_id)? else {
            continue;
        };
        let mut task: Task = decode(&obj.value)?;
        if task.node_id != Some(node) {
            tracing::warn!(task = %task.id, %node, "agent reported a task of another node; ignored");
            continue;
        }
        if status.state < task.status.state
            || (status.state == task.status.state
                && status.message == task.status.message
                && status.ports == task.status.ports)
        {
            continue;
        }
        task.status = status;
        ops.push(Op {
            table: Task::TABLE.into(),
            id: task.id.clone(),
            action: Action::Put(encode(&task)),
            expect: Expect::Version(obj.version),
        });
    }
    if ops.is_empty() {
        return Ok(());
    }
    match state.write(ops, false).await {
        Ok(_) | Err(ManagerError::Conflict(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

#[tonic::async_trait]
impl Dispatcher for DispatcherApi {
    type SessionStream = SessionStream;

    async fn session(
        &self,
        req: Request<Streaming<pb::AgentMessage>>,
    ) -> Result<Response<SessionStream>, Status> {
        let node: NodeId = caller(&req)?
            .subject_cn
            .parse()
            .map_err(|e| Status::invalid_argument(format!("node certificate: {e}")))?;
        if !self.state.is_leader() {
            let leader = self
                .state
                .leader()
                .map(|(_, addr)| addr)
                .unwrap_or_default();
            return Err(Status::failed_precondition(format!(
                "not the leader; leader is {leader}"
            )));
        }
        let mut inbound = req.into_inner();
        let first = inbound.message().await?.ok_or_else(|| {
            Status::invalid_argument("session closed before the node description")
        })?;
        let description: NodeDescription = match first.msg {
            Some(pb::agent_message::Msg::Description(d)) => serde_json::from_slice(&d)
                .map_err(|e| Status::invalid_argument(format!("node description: {e}")))?,
            _ => {
                return Err(Status::invalid_argument(
                    "the first session message must be the node description",
                ))
            }
        };
        // An agent too old or too new for this cluster is refused, naming
        // both versions (an agent that reports none predates the check).
        if !description.capstan_version.is_empty() {
            capstan_core::version::compatible(
                capstan_core::version::VERSION,
                &description.capstan_version,
            )
            .map_err(Status::failed_precondition)?;
        }
        node_connected(&self.state, node, description).await?;

        let (tx, rx) = mpsc::channel(256);
        let sessions = self.state.swarm.sessions.clone();
        let session = sessions.register(node, tx.clone());
        let info = pb::SessionInfo {
            node_id: node.to_string(),
            heartbeat_period_ms: self.state.swarm.heartbeat_period.as_millis() as u64,
            managers: crate::membership::members(&self.state)
                .into_values()
                .collect(),
        };
        let _ = tx
            .send(Ok(pb::DispatcherMessage {
                msg: Some(pb::dispatcher_message::Msg::Session(info)),
            }))
            .await;
        assignments::push_to(&self.state, node).await;
        tracing::info!(%node, session, "agent session started");

        let state = self.state.clone();
        let routes: Arc<LogRoutes> = self.state.swarm.logs.clone();
        tokio::spawn(async move {
            loop {
                let msg = match inbound.message().await {
                    Ok(Some(m)) => m,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::info!(%node, error = %e.message(), "agent session broke");
                        break;
                    }
                };
                sessions.touch(node, session);
                match msg.msg {
                    Some(pb::agent_message::Msg::Heartbeat(_)) | None => {}
                    Some(pb::agent_message::Msg::Description(d)) => {
                        if let Ok(desc) = serde_json::from_slice(&d) {
                            if let Err(e) = node_connected(&state, node, desc).await {
                                tracing::warn!(%node, error = %e, "could not record node description");
                            }
                        }
                    }
                    Some(pb::agent_message::Msg::Statuses(s)) => {
                        if let Err(e) = record_statuses(&state, node, s.reports).await {
                            tracing::warn!(%node, error = %e, "could not record task statuses");
                        }
                    }
                    Some(pb::agent_message::Msg::Log(chunk)) => routes.deliver(chunk),
                }
            }
            sessions.remove(node, session);
            tracing::info!(%node, session, "agent session ended");
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Marks nodes whose agents stopped heartbeating as down (and back ready
/// when they return). Runs on the leader; after gaining leadership it waits
/// one down-period so that agents can reconnect first.
pub async fn watch_heartbeats(
    state: &SharedState,
    leader_since: Instant,
) -> Result<(), ManagerError> {
    let down_after = state.swarm.heartbeat_period * 3;
    if leader_since.elapsed() < down_after {
        return Ok(());
    }
    let seen = state.swarm.sessions.last_seen();
    let now = Instant::now();
    let nodes = state
        .list_all::<Node>(crate::state::Consistency::Serializable)
        .await?;
    let mut ops = Vec::new();
    for (mut node, version) in nodes {
        // Only nodes that run an agent are judged by heartbeats.
        if node.description.is_none() {
            continue;
        }
        let alive = seen
            .get(&node.id)
            .is_some_and(|t| now.saturating_duration_since(*t) < down_after);
        let wanted = if alive {
            NodeState::Ready
        } else {
            NodeState::Down
        };
        if node.state != wanted {
            tracing::info!(node = %node.id, hostname = %node.hostname, state = %wanted, "node state changed");
            node.state = wanted;
            node.updated_at = time::OffsetDateTime::now_utc();
            ops.push(Op {
                table: Node::TABLE.into(),
                id: node.id(),
                action: Action::Put(encode(&node)),
                expect: Expect::Version(version),
            });
        }
    }
    if !ops.is_empty() {
        match state.write(ops, false).await {
            Ok(_) | Err(ManagerError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Default agent heartbeat period.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);
