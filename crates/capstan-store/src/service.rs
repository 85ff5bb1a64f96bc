//! Server side of the Raft transport: the `capstan.v1.Raft` gRPC service
//! handing peers' requests to the local Raft node.

use capstan_proto::v1::raft_server::{Raft as RaftRpc, RaftServer};
use capstan_proto::v1::RaftPayload;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status};

use crate::network::MAX_RPC_MESSAGE_BYTES;
use crate::types::Raft;

/// The Raft transport service of one node.
#[derive(Clone)]
pub struct RaftService {
    raft: Raft,
}

impl RaftService {
    /// Serves peers' Raft RPCs on behalf of `raft`.
    pub fn new(raft: Raft) -> Self {
        Self { raft }
    }

    /// The tonic server for this service, with message limits raised to
    /// [`MAX_RPC_MESSAGE_BYTES`] (the 4 MiB default is smaller than one
    /// full batch). Use this rather than `RaftServer::new`.
    pub fn into_server(self) -> RaftServer<Self> {
        RaftServer::new(self)
            .max_decoding_message_size(MAX_RPC_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_RPC_MESSAGE_BYTES)
    }
}

fn decode<T: DeserializeOwned>(what: &str, request: Request<RaftPayload>) -> Result<T, Status> {
    serde_json::from_slice(&request.into_inner().data).map_err(|e| {
        Status::invalid_argument(format!(
            "{what} payload does not decode ({e}); check that all managers run the same capstan version"
        ))
    })
}

fn encode<T: Serialize>(result: &T) -> Result<Response<RaftPayload>, Status> {
    let data = serde_json::to_vec(result)
        .map_err(|e| Status::internal(format!("encoding the raft reply: {e}")))?;
    Ok(Response::new(RaftPayload { data }))
}

#[tonic::async_trait]
impl RaftRpc for RaftService {
    async fn append_entries(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let rpc = decode("AppendEntries", request)?;
        encode(&self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let rpc = decode("Vote", request)?;
        encode(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let rpc = decode("InstallSnapshot", request)?;
        encode(&self.raft.install_snapshot(rpc).await)
    }
}
