//! What every manager service shares: Raft, the applied state, the CA, and
//! the way to reach the leader.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use capstan_core::{decode, NodeId, Table};
use capstan_pki::ClusterCa;
use capstan_proto::v1::cluster_client::ClusterClient;
use capstan_proto::v1::{self as pb};
use capstan_store::{Op, Raft, Response as SmResponse, StateMachineStore, StoredObject, Written};
use openraft::error::{CheckIsLeaderError, RaftError};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::batcher::{BatchLoop, Outcome, WriteBatcher};
use crate::config::NodeConfig;
use crate::decoded::DecodedCache;
use crate::error::ManagerError;
use crate::paths::DataDir;
use crate::reachability::Reachability;
use crate::wire;

/// Metadata key set on a request one manager forwards to the leader, so that
/// a request is forwarded at most once.
pub const FORWARDED: &str = "x-capstan-forwarded";

/// How long a write may wait to be committed before the caller is told the
/// cluster may have lost quorum. The write is then unacknowledged: it may
/// still commit later, or never.
pub const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a linearizable read may wait for the leader to confirm its term.
const READ_INDEX_TIMEOUT: Duration = Duration::from_secs(3);

/// The consistency a read asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consistency {
    /// This manager's applied state, possibly behind the leader.
    Serializable,
    /// Reflects every write acknowledged before the read began.
    Linearizable,
}

/// A committed write.
#[derive(Clone, Debug)]
pub struct WriteOutcome {
    /// Log index of the entry.
    pub log_index: u64,
    /// What it wrote.
    pub objects: Vec<Written>,
}

/// Shared state of a running manager.
pub struct ManagerState {
    /// This node's configuration.
    pub config: NodeConfig,
    /// Its data directory.
    pub dir: DataDir,
    /// The Raft node.
    pub raft: Raft,
    /// Applied state.
    pub sm: StateMachineStore,
    /// The cluster CA (every manager can sign node certificates).
    pub ca: ClusterCa,
    /// TLS toward other managers, presenting this node's certificate.
    pub client_tls: ClientTlsConfig,
    /// Which managers answered pings lately.
    pub reach: Reachability,
    /// Swarm-mode components (dispatcher sessions, log routes, keys).
    pub swarm: crate::swarm::SwarmState,
    /// Refuses writes while the data disk is full.
    pub disk: crate::disk::DiskGuard,
    /// Gathers concurrent writes into shared Raft entries.
    batcher: WriteBatcher,
    peers: Mutex<HashMap<String, Channel>>,
    decoded: DecodedCache,
}

impl ManagerState {
    /// Assembles the state of a manager that is starting, and the loop that
    /// proposes its writes (to be run by the manager's supervisor).
    pub fn new(
        config: NodeConfig,
        dir: DataDir,
        raft: Raft,
        sm: StateMachineStore,
        ca: ClusterCa,
        client_tls: ClientTlsConfig,
        swarm: crate::swarm::SwarmState,
    ) -> (Self, BatchLoop) {
        let (batcher, batch_loop) = WriteBatcher::new();
        let disk =
            crate::disk::DiskGuard::new(dir.root().to_path_buf(), crate::disk::DEFAULT_RESERVE);
        let state = Self {
            config,
            dir,
            raft,
            sm,
            ca,
            client_tls,
            reach: Reachability::default(),
            disk,
            swarm,
            batcher,
            peers: Mutex::new(HashMap::new()),
            decoded: DecodedCache::default(),
        };
        (state, batch_loop)
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.config.node_id
    }

    /// Whether this node currently believes it is the leader.
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().current_leader == Some(self.node_id().0)
    }

    /// The leader's id and swarm address as this node knows them.
    pub fn leader(&self) -> Option<(NodeId, String)> {
        let m = self.raft.metrics().borrow().clone();
        let id = m.current_leader?;
        let node = m.membership_config.membership().get_node(&id)?.clone();
        Some((NodeId(id), node.addr))
    }

    /// A (lazily connected) channel to another manager's swarm port.
    pub fn peer_channel(&self, addr: &str) -> Result<Channel, ManagerError> {
        let mut peers = self.peers.lock().expect("peer cache lock poisoned");
        if let Some(c) = peers.get(addr) {
            return Ok(c.clone());
        }
        let channel = endpoint(addr, &self.client_tls)?.connect_lazy();
        peers.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }

    /// A client of another manager's cluster API.
    pub fn peer(&self, addr: &str) -> Result<ClusterClient<Channel>, ManagerError> {
        Ok(ClusterClient::new(self.peer_channel(addr)?))
    }

    /// A client of the leader, for requests this node must forward. Refuses
    /// when the request was itself forwarded here (no forwarding chains).
    pub fn leader_client(&self, forwarded: bool) -> Result<ClusterClient<Channel>, ManagerError> {
        Ok(ClusterClient::new(self.leader_channel(forwarded)?))
    }

    /// A channel to the leader, for requests this node must forward.
    pub fn leader_channel(&self, forwarded: bool) -> Result<Channel, ManagerError> {
        if forwarded {
            return Err(ManagerError::Unavailable(
                "leadership is changing; retry in a moment".into(),
            ));
        }
        match self.leader() {
            Some((id, _)) if id == self.node_id() => Err(ManagerError::Unavailable(
                "this manager just became leader; retry".into(),
            )),
            Some((_, addr)) => self.peer_channel(&addr),
            None => Err(no_leader()),
        }
    }

    /// Proposes a batch of operations and waits until it is committed and
    /// applied, forwarding to the leader when this node is not it.
    pub async fn write(&self, ops: Vec<Op>, forwarded: bool) -> Result<WriteOutcome, ManagerError> {
        for op in &ops {
            capstan_store::validate_op(op).map_err(ManagerError::Invalid)?;
        }
        if ops.is_empty() {
            return Err(ManagerError::Invalid(
                "a write needs at least one operation".into(),
            ));
        }
        // This manager's disk; a forwarded write meets the leader's too.
        self.disk.check()?;
        match self.batcher.submit(ops.clone()).await {
            Outcome::Applied(SmResponse::Written { index, objects }) => Ok(WriteOutcome {
                log_index: index,
                objects,
            }),
            Outcome::Applied(SmResponse::Conflict(c)) => Err(ManagerError::Conflict(format!(
                "version conflict on {}/{}: expected {}, found {}",
                c.table,
                c.id,
                wire::describe_expect(&c.expected),
                c.actual
                    .map(|v| format!("version {v}"))
                    .unwrap_or_else(|| "no object".into())
            ))),
            Outcome::Applied(SmResponse::Rejected { reason }) => Err(ManagerError::Invalid(reason)),
            Outcome::Applied(SmResponse::Batch(_)) => Err(ManagerError::Fatal(
                "a single write was answered as a batch".into(),
            )),
            Outcome::NotLeader(addr) => {
                let addr = addr.ok_or_else(no_leader)?;
                if forwarded {
                    return Err(ManagerError::Unavailable(
                        "leadership is changing; retry in a moment".into(),
                    ));
                }
                let mut client = self.peer(&addr)?;
                let req = forwarded_request(pb::WriteRequest {
                    ops: ops.iter().map(wire::op_to_pb).collect(),
                });
                let resp = client.write(req).await.map_err(ManagerError::Remote)?;
                Ok(wire::write_outcome_from_pb(resp.into_inner()))
            }
            Outcome::Failed(e) => Err(e),
        }
    }

    /// Makes a following local read linearizable, or says which leader to
    /// ask instead.
    pub(crate) async fn read_barrier(
        &self,
        forwarded: bool,
    ) -> Result<Option<ClusterClient<Channel>>, ManagerError> {
        let check = tokio::time::timeout(READ_INDEX_TIMEOUT, self.raft.ensure_linearizable())
            .await
            .map_err(|_| {
                ManagerError::Unavailable(
                    "cannot confirm leadership with a quorum of managers; linearizable reads are unavailable".into(),
                )
            })?;
        match check {
            Ok(_) => Ok(None),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                if forwarded {
                    return Err(ManagerError::Unavailable(
                        "leadership is changing; retry in a moment".into(),
                    ));
                }
                let addr = f.leader_node.map(|n| n.addr).ok_or_else(no_leader)?;
                Ok(Some(self.peer(&addr)?))
            }
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(q))) => Err(
                ManagerError::Unavailable(format!("cannot confirm leadership: {q}")),
            ),
            Err(RaftError::Fatal(f)) => Err(ManagerError::Fatal(f.to_string())),
        }
    }

    /// Reads one object.
    pub async fn read(
        &self,
        table: &str,
        id: &str,
        consistency: Consistency,
        forwarded: bool,
    ) -> Result<Option<StoredObject>, ManagerError> {
        if consistency == Consistency::Linearizable {
            if let Some(mut leader) = self.read_barrier(forwarded).await? {
                let req = forwarded_request(pb::ReadRequest {
                    table: table.into(),
                    id: id.into(),
                    consistency: pb::Consistency::Linearizable.into(),
                });
                let resp = leader.read(req).await.map_err(ManagerError::Remote)?;
                return Ok(resp.into_inner().object.map(wire::object_from_pb));
            }
        }
        Ok(self.sm.get(table, id)?)
    }

    /// Lists the objects of a table whose id starts with `prefix`.
    pub async fn list(
        &self,
        table: &str,
        prefix: &str,
        limit: usize,
        consistency: Consistency,
        forwarded: bool,
    ) -> Result<Vec<StoredObject>, ManagerError> {
        if consistency == Consistency::Linearizable {
            if let Some(mut leader) = self.read_barrier(forwarded).await? {
                let req = forwarded_request(pb::ListRequest {
                    table: table.into(),
                    prefix: prefix.into(),
                    consistency: pb::Consistency::Linearizable.into(),
                    limit: u32::try_from(limit).unwrap_or(u32::MAX),
                });
                let resp = leader.list(req).await.map_err(ManagerError::Remote)?;
                return Ok(resp
                    .into_inner()
                    .objects
                    .into_iter()
                    .map(wire::object_from_pb)
                    .collect());
            }
        }
        Ok(self.sm.list(table, prefix, limit)?)
    }

    /// Reads and decodes one typed object with its version.
    pub async fn get<T: Table>(
        &self,
        id: &str,
        consistency: Consistency,
    ) -> Result<Option<(T, u64)>, ManagerError> {
        match self.read(T::TABLE, id, consistency, false).await? {
            Some(o) => Ok(Some((decode::<T>(&o.value)?, o.version))),
            None => Ok(None),
        }
    }

    /// Lists and decodes a whole typed table.
    ///
    /// Records decoded by an earlier list at the same version are reused.
    pub async fn list_all<T: Table>(
        &self,
        consistency: Consistency,
    ) -> Result<Vec<(T, u64)>, ManagerError> {
        let objects = self.list(T::TABLE, "", 0, consistency, false).await?;
        Ok(self.decoded.decode_all::<T>(&objects)?)
    }

    /// [`Self::list_all`] with each record shared with the decoded cache
    /// instead of copied: for reads of large tables (every task) that
    /// change nothing.
    pub async fn list_all_shared<T: Table>(
        &self,
        consistency: Consistency,
    ) -> Result<Vec<(Arc<T>, u64)>, ManagerError> {
        let objects = self.list(T::TABLE, "", 0, consistency, false).await?;
        Ok(self.decoded.decode_all_shared::<T>(&objects)?)
    }
}

fn no_leader() -> ManagerError {
    ManagerError::Unavailable(
        "no leader is elected: the managers may have lost quorum; retry when a majority is up"
            .into(),
    )
}

/// A gRPC endpoint toward a manager's swarm port.
pub fn endpoint(addr: &str, tls: &ClientTlsConfig) -> Result<Endpoint, ManagerError> {
    let transport = |source| ManagerError::Transport {
        addr: addr.to_string(),
        source,
    };
    Ok(Endpoint::from_shared(format!("https://{addr}"))
        .map_err(transport)?
        .tls_config(tls.clone())
        .map_err(transport)?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(15))
        .tcp_nodelay(true))
}

/// Wraps a message as a request forwarded by this manager.
pub fn forwarded_request<T>(msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut()
        .insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
    req
}

/// Whether a request reached this manager by forwarding.
pub fn is_forwarded<T>(req: &tonic::Request<T>) -> bool {
    req.metadata().contains_key(FORWARDED)
}

/// Shared handle.
pub type SharedState = Arc<ManagerState>;
