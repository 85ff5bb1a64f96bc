//! The `Cluster` gRPC service: thin handlers that parse, forward to the
//! leader when needed, call the state or membership logic, and render.

use std::pin::Pin;

use capstan_core::{ClusterInfo, ManagerStatus, Node, NodeRole, Table};
use capstan_pki::JoinToken;
use capstan_proto::v1::{self as pb, cluster_server::Cluster};
use capstan_store::{Action, Expect, Op};
use futures::Stream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

use crate::auth::caller;
use crate::membership;
use crate::state::{forwarded_request, is_forwarded, Consistency, ManagerState, SharedState};
use crate::wire;

/// The cluster API served by every manager.
pub struct ClusterApi {
    state: SharedState,
}

impl ClusterApi {
    /// The API over a manager's state.
    pub fn new(state: SharedState) -> Self {
        Self { state }
    }
}

fn consistency(c: i32) -> Consistency {
    if c == pb::Consistency::Linearizable as i32 {
        Consistency::Linearizable
    } else {
        Consistency::Serializable
    }
}

/// Renders a node for the wire.
pub fn node_to_pb(node: &Node, version: u64, status: Option<ManagerStatus>) -> pb::NodeInfo {
    pb::NodeInfo {
        id: node.id.to_string(),
        hostname: node.hostname.clone(),
        role: node.role.to_string(),
        addr: node.addr.clone(),
        status: node.state.to_string(),
        availability: node.availability.to_string(),
        manager_status: status.map(|s| s.to_string()).unwrap_or_default(),
        version,
        created_at: rfc3339(node.created_at),
        updated_at: rfc3339(node.updated_at),
        labels: node.labels.clone().into_iter().collect(),
        cert_not_after: rfc3339(node.cert_not_after),
        capstan_version: node.capstan_version.clone(),
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Forwards a request to the leader when this manager is not it.
macro_rules! lead_or_forward {
    ($self:ident, $req:ident, $method:ident) => {
        if !$self.state.is_leader() {
            let mut leader = $self.state.leader_client(is_forwarded(&$req))?;
            return leader.$method(forwarded_request($req.into_inner())).await;
        }
    };
}

type BackupStream = Pin<Box<dyn Stream<Item = Result<pb::BackupChunk, Status>> + Send>>;
/// Size of the chunks a backup streams in.
const BACKUP_CHUNK: usize = 1 << 20;
/// How long the leader waits for an agent's log.
const AGENT_LOG_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(4);
type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Cluster for ClusterApi {
    async fn write(
        &self,
        req: Request<pb::WriteRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let forwarded = is_forwarded(&req);
        let ops = req
            .into_inner()
            .ops
            .into_iter()
            .map(wire::op_from_pb)
            .collect::<Result<Vec<_>, _>>()?;
        let outcome = self.state.write(ops, forwarded).await?;
        Ok(Response::new(wire::write_outcome_to_pb(outcome)))
    }

    async fn read(
        &self,
        req: Request<pb::ReadRequest>,
    ) -> Result<Response<pb::ReadResponse>, Status> {
        let forwarded = is_forwarded(&req);
        let r = req.into_inner();
        let object = self
            .state
            .read(&r.table, &r.id, consistency(r.consistency), forwarded)
            .await?;
        Ok(Response::new(pb::ReadResponse {
            object: object.map(wire::object_to_pb),
            applied_index: self.state.sm.applied_index(),
        }))
    }

    async fn list(
        &self,
        req: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let forwarded = is_forwarded(&req);
        let r = req.into_inner();
        let objects = self
            .state
            .list(
                &r.table,
                &r.prefix,
                r.limit as usize,
                consistency(r.consistency),
                forwarded,
            )
            .await?;
        Ok(Response::new(pb::ListResponse {
            objects: objects.into_iter().map(wire::object_to_pb).collect(),
            applied_index: self.state.sm.applied_index(),
        }))
    }

    type WatchStream = WatchStream;

    async fn watch(&self, req: Request<pb::WatchRequest>) -> Result<Response<WatchStream>, Status> {
        let tables = req.into_inner().tables;
        let stream =
            BroadcastStream::new(self.state.sm.subscribe()).filter_map(move |item| match item {
                Ok(change) if tables.is_empty() || tables.contains(&change.object.table) => {
                    Some(Ok(pb::WatchEvent {
                        log_index: change.log_index,
                        deleted: change.deleted,
                        object: Some(wire::object_to_pb(change.object)),
                    }))
                }
                Ok(_) => None,
                Err(BroadcastStreamRecvError::Lagged(n)) => Some(Err(Status::data_loss(format!(
                    "watch fell {n} changes behind; list again and start a new watch"
                )))),
            });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn status(
        &self,
        _req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let m = self.state.raft.metrics().borrow().clone();
        let reachable = membership::reachable(&self.state);
        let voters = membership::voters(&self.state);
        let nodes = self
            .state
            .list_all::<Node>(Consistency::Serializable)
            .await?;
        let hostname = |id: u64| {
            nodes
                .iter()
                .find(|(n, _)| n.id.0 == id)
                .map(|(n, _)| n.hostname.clone())
                .unwrap_or_default()
        };
        let members = membership::members(&self.state)
            .into_iter()
            .map(|(id, addr)| pb::MemberStatus {
                node_id: id.to_string(),
                hostname: hostname(id.0),
                addr,
                voter: voters.contains(&id),
                leader: m.current_leader == Some(id.0),
                reachable: reachable.contains(&id),
                matched_index: m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&id.0).cloned().flatten())
                    .map(|l| l.index)
                    .unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(pb::StatusResponse {
            node_id: self.state.node_id().to_string(),
            leader_id: m
                .current_leader
                .map(|l| capstan_core::NodeId(l).to_string())
                .unwrap_or_default(),
            term: m.current_term,
            commit_index: self.state.sm.applied_index(),
            applied_index: self.state.sm.applied_index(),
            last_log_index: m.last_log_index.unwrap_or_default(),
            state: format!("{:?}", m.state).to_lowercase(),
            members,
            cluster_id: self.state.config.cluster_id.clone(),
        }))
    }

    async fn list_nodes(
        &self,
        req: Request<pb::ListNodesRequest>,
    ) -> Result<Response<pb::ListNodesResponse>, Status> {
        // The leader's view of reachability is the authoritative one; a
        // manager that cannot reach it answers from its own view.
        if !self.state.is_leader() && !is_forwarded(&req) {
            if let Ok(mut leader) = self.state.leader_client(false) {
                if let Ok(resp) = leader
                    .list_nodes(forwarded_request(pb::ListNodesRequest {}))
                    .await
                {
                    return Ok(resp);
                }
            }
        }
        let nodes = membership::node_views(&self.state)
            .await?
            .iter()
            .map(|(n, v, s)| node_to_pb(n, *v, *s))
            .collect();
        Ok(Response::new(pb::ListNodesResponse { nodes }))
    }

    async fn change_node_role(
        &self,
        req: Request<pb::ChangeNodeRoleRequest>,
    ) -> Result<Response<pb::NodeResponse>, Status> {
        lead_or_forward!(self, req, change_node_role);
        let r = req.into_inner();
        let role: NodeRole = r.role.parse().map_err(Status::invalid_argument)?;
        let node = membership::change_role(&self.state, &r.node, role).await?;
        let status = (role == NodeRole::Manager).then_some(ManagerStatus::Reachable);
        Ok(Response::new(pb::NodeResponse {
            node: Some(node_to_pb(&node, 0, status)),
        }))
    }

    async fn remove_node(
        &self,
        req: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::RemoveNodeResponse>, Status> {
        lead_or_forward!(self, req, remove_node);
        let r = req.into_inner();
        let id = membership::remove(&self.state, &r.node, r.force).await?;
        Ok(Response::new(pb::RemoveNodeResponse {
            node_id: id.to_string(),
        }))
    }

    async fn join_tokens(
        &self,
        req: Request<pb::JoinTokensRequest>,
    ) -> Result<Response<pb::JoinTokensResponse>, Status> {
        let r = req.into_inner();
        let (mut info, version) = self
            .state
            .get::<ClusterInfo>(ClusterInfo::ID, Consistency::Linearizable)
            .await?
            .ok_or_else(|| Status::unavailable("the cluster record is not written yet; retry"))?;
        if r.rotate_worker || r.rotate_manager {
            let digest: capstan_pki::CaDigest =
                info.ca_digest.parse().map_err(|e: capstan_pki::PkiError| {
                    Status::internal(format!("stored CA digest: {e}"))
                })?;
            if r.rotate_worker {
                info.worker_secret = JoinToken::generate(digest.clone()).secret;
            }
            if r.rotate_manager {
                info.manager_secret = JoinToken::generate(digest).secret;
            }
            self.state
                .write(
                    vec![Op {
                        table: ClusterInfo::TABLE.into(),
                        id: ClusterInfo::ID.into(),
                        action: Action::Put(capstan_core::encode(&info)),
                        expect: Expect::Version(version),
                    }],
                    false,
                )
                .await?;
        }
        Ok(Response::new(join_tokens(&self.state, &info)))
    }

    async fn register_manager(
        &self,
        req: Request<pb::RegisterManagerRequest>,
    ) -> Result<Response<pb::RegisterManagerResponse>, Status> {
        // The identity check happens where the joined manager connected; a
        // forwarded request carries the forwarding manager's certificate.
        if !is_forwarded(&req) && caller(&req)?.subject_cn != req.get_ref().node_id {
            return Err(Status::permission_denied(
                "a manager can only register itself",
            ));
        }
        lead_or_forward!(self, req, register_manager);
        let r = req.into_inner();
        let id = r
            .node_id
            .parse()
            .map_err(|e| Status::invalid_argument(format!("node id: {e}")))?;
        let log_index = membership::register_manager(&self.state, id, r.advertise_addr).await?;
        Ok(Response::new(pb::RegisterManagerResponse { log_index }))
    }

    type BackupStream = BackupStream;

    async fn backup(
        &self,
        req: Request<pb::BackupRequest>,
    ) -> Result<Response<BackupStream>, Status> {
        // Confirmed current first: a follower's backup would otherwise miss
        // writes the leader already acknowledged.
        if let Some(mut leader) = self.state.read_barrier(is_forwarded(&req)).await? {
            let stream = leader
                .backup(forwarded_request(pb::BackupRequest {}))
                .await?
                .into_inner();
            return Ok(Response::new(Box::pin(stream)));
        }
        let (index, objects) = self
            .state
            .sm
            .export()
            .await
            .map_err(crate::ManagerError::from)?;
        let count = objects.len() as u64;
        let data = serde_json::to_vec(&objects)
            .map_err(|e| Status::internal(format!("encoding the objects: {e}")))?;
        let mut chunks: Vec<_> = data
            .chunks(BACKUP_CHUNK)
            .map(|c| {
                Ok(pb::BackupChunk {
                    applied_index: index,
                    objects: count,
                    data: c.to_vec(),
                })
            })
            .collect();
        if chunks.is_empty() {
            chunks.push(Ok(pb::BackupChunk {
                applied_index: index,
                objects: 0,
                data: b"[]".to_vec(),
            }));
        }
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }

    async fn diagnostics(
        &self,
        req: Request<pb::DiagnosticsRequest>,
    ) -> Result<Response<pb::DiagnosticsResponse>, Status> {
        let me = self.state.node_id().to_string();
        let asked = req.get_ref().node_id.clone();
        if asked.is_empty() || asked == me {
            let metrics = self.state.raft.metrics().borrow().clone();
            let path = self.state.dir.config();
            return Ok(Response::new(pb::DiagnosticsResponse {
                node_id: me,
                version: capstan_core::version::VERSION.into(),
                log: capstan_core::log_tail::global().contents().into_bytes(),
                node_config: std::fs::read_to_string(&path)
                    .map_err(|e| crate::ManagerError::file("read", path, e))?,
                raft: serde_json::to_string_pretty(&metrics).unwrap_or_default(),
            }));
        }
        let node: capstan_core::NodeId = asked
            .parse()
            .map_err(|e| Status::invalid_argument(format!("node_id: {e}")))?;
        // Agents hold their sessions with the leader.
        lead_or_forward!(self, req, diagnostics);
        let log = crate::swarm::logs::agent_log(&self.state, node, AGENT_LOG_TIMEOUT)
            .await
            .ok_or_else(|| {
                Status::unavailable(format!(
                    "node {asked} has no session with the leader or did not answer within {AGENT_LOG_TIMEOUT:?}"
                ))
            })?;
        Ok(Response::new(pb::DiagnosticsResponse {
            node_id: asked,
            log,
            ..Default::default()
        }))
    }

    async fn ping(
        &self,
        _req: Request<pb::PingRequest>,
    ) -> Result<Response<pb::PingResponse>, Status> {
        Ok(Response::new(pb::PingResponse {
            node_id: self.state.node_id().to_string(),
            term: self.state.raft.metrics().borrow().current_term,
            unix_ms: i64::try_from(
                time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000,
            )
            .unwrap_or_default(),
        }))
    }
}

/// The join tokens of the cluster record, with the cluster addresses of the
/// voting managers a node may join through.
pub fn join_tokens(state: &ManagerState, info: &ClusterInfo) -> pb::JoinTokensResponse {
    let token = |secret: &str| format!("CAPTKN-1-{}-{}", info.ca_digest, secret);
    let voters = membership::voters(state);
    pb::JoinTokensResponse {
        worker: token(&info.worker_secret),
        manager: token(&info.manager_secret),
        manager_addrs: membership::members(state)
            .into_iter()
            .filter(|(id, _)| voters.contains(id))
            .map(|(_, addr)| addr)
            .collect(),
    }
}
