//! Client side of the Raft transport: openraft's `RaftNetworkFactory` over
//! the `capstan.v1.Raft` gRPC service.
//!
//! Each RPC carries the JSON of openraft's request in `RaftPayload.data`; the
//! reply carries the JSON of `Result<Response, RaftError<..>>`. A remote
//! `RaftError` becomes openraft's `RemoteError`; a peer that cannot be
//! reached becomes `Unreachable`, so openraft backs off instead of hammering
//! it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use capstan_proto::v1::raft_client::RaftClient;
use capstan_proto::v1::RaftPayload;
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::Code;

use crate::types::{NodeId, TypeConfig};

/// Largest Raft RPC message, either way. A batch is at most
/// [`crate::MAX_BATCH_BYTES`] of values, about a third more once encoded, so
/// one entry always fits; larger append requests are split by openraft.
pub const MAX_RPC_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// How long establishing a connection to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Factory of connections to the other managers. Cheap to clone; clones
/// share the per-peer channel cache.
#[derive(Clone)]
pub struct Network {
    tls: Option<ClientTlsConfig>,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl Network {
    /// Connects to peers at `https://<addr>` with `tls` (mutual TLS between
    /// managers).
    pub fn new(tls: ClientTlsConfig) -> Self {
        Self::with_tls(Some(tls))
    }

    /// Connects over plain `http://`: for in-process tests only.
    pub fn insecure_for_tests() -> Self {
        Self::with_tls(None)
    }

    /// Connects with `tls` when given, in plain text otherwise.
    pub fn with_tls(tls: Option<ClientTlsConfig>) -> Self {
        Self {
            tls,
            channels: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The cached channel to `addr` ("host:port"), created lazily: it
    /// connects on first use and reconnects after failures by itself.
    fn channel(&self, addr: &str) -> Result<Channel, String> {
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(channel) = channels.get(addr) {
            return Ok(channel.clone());
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(|e| format!("peer address {addr:?} is not a valid host:port: {e}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_while_idle(true);
        if let Some(tls) = &self.tls {
            endpoint = endpoint
                .tls_config(tls.clone())
                .map_err(|e| format!("TLS configuration for peer {addr} is invalid: {e}"))?;
        }
        let channel = endpoint.connect_lazy();
        channels.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        PeerClient {
            target,
            node: node.clone(),
            channel: self.channel(&node.addr),
        }
    }
}

/// Connection to one peer, as handed to openraft.
pub struct PeerClient {
    target: NodeId,
    node: BasicNode,
    /// The channel, or why none could be made (reported as unreachable).
    channel: Result<Channel, String>,
}

#[derive(Clone, Copy)]
enum Rpc {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl PeerClient {
    async fn call<Resp, E>(&self, rpc: Rpc, data: Vec<u8>, option: &RPCOption) -> RpcResult<Resp, E>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let channel = self.channel.clone().map_err(|reason| {
            RPCError::Unreachable(Unreachable::new(&std::io::Error::other(reason)))
        })?;
        let mut client = RaftClient::new(channel)
            .max_decoding_message_size(MAX_RPC_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_RPC_MESSAGE_BYTES);
        let mut request = tonic::Request::new(RaftPayload { data });
        request.set_timeout(option.hard_ttl());
        let reply = match rpc {
            Rpc::AppendEntries => client.append_entries(request).await,
            Rpc::Vote => client.vote(request).await,
            Rpc::InstallSnapshot => client.install_snapshot(request).await,
        }
        .map_err(|status| status_error(&status))?;
        let result: Result<Resp, RaftError<NodeId, E>> =
            serde_json::from_slice(&reply.into_inner().data)
                .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                e,
            ))
        })
    }
}

fn encode<T: Serialize>(request: &T) -> Result<Vec<u8>, NetworkError> {
    serde_json::to_vec(request).map_err(|e| NetworkError::new(&e))
}

/// Maps a gRPC failure: the peer being down, slow or unreachable is
/// `Unreachable` (openraft backs off); anything else is a `NetworkError`.
fn status_error<E: std::error::Error>(
    status: &tonic::Status,
) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
            RPCError::Unreachable(Unreachable::new(status))
        }
        _ => RPCError::Network(NetworkError::new(status)),
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, openraft::error::Infallible> {
        let entries = rpc.entries.len();
        let data = encode(&rpc).map_err(RPCError::Network)?;
        if data.len() > MAX_RPC_MESSAGE_BYTES && entries > 1 {
            // Ask openraft to send fewer entries per request.
            let fit = (entries as u128 * MAX_RPC_MESSAGE_BYTES as u128 / data.len() as u128) as u64;
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(fit.max(1)),
            ));
        }
        self.call(Rpc::AppendEntries, data, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        let data = encode(&rpc).map_err(RPCError::Network)?;
        self.call(Rpc::InstallSnapshot, data, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, openraft::error::Infallible> {
        let data = encode(&rpc).map_err(RPCError::Network)?;
        self.call(Rpc::Vote, data, &option).await
    }

    fn backoff(&self) -> Backoff {
        // 100 ms, doubling up to 1.6 s: a restarted peer is picked up quickly,
        // a dead one is not hammered.
        Backoff::new((0u32..).map(|n| Duration::from_millis(100 << n.min(4))))
    }
}
