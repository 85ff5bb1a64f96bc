//! The `Join` gRPC service: admits a node that presents a valid join token,
//! signs its certificate and records it. Reachable without a client
//! certificate; nothing is written before the token is verified.

use capstan_core::{encode, Availability, ClusterInfo, Node, NodeId, NodeRole, NodeState, Table};
use capstan_pki::{JoinToken, NodeIdentity};
use capstan_proto::v1::{self as pb, join_server::Join};
use capstan_store::{Action, Expect, Op};
use time::OffsetDateTime;
use tonic::{Request, Response, Status};

use crate::config::{parse_host_port, validate_host};
use crate::membership;
use crate::state::{Consistency, SharedState};

/// The join service of a manager.
pub struct JoinApi {
    state: SharedState,
}

impl JoinApi {
    /// The service over a manager's state.
    pub fn new(state: SharedState) -> Self {
        Self { state }
    }
}

/// Maps a join token's secret to the role it grants.
fn role_for(token: &JoinToken, info: &ClusterInfo) -> Result<NodeRole, Status> {
    if token.ca_digest.to_string() != info.ca_digest {
        return Err(Status::permission_denied(
            "join token belongs to another cluster: its CA digest does not match this cluster's CA",
        ));
    }
    if token.secret_matches(&info.manager_secret) {
        Ok(NodeRole::Manager)
    } else if token.secret_matches(&info.worker_secret) {
        Ok(NodeRole::Worker)
    } else {
        Err(Status::permission_denied(
            "join token is invalid or was rotated; ask a manager for the current one with `capstan token worker` or `capstan token manager`",
        ))
    }
}

fn validate_request(r: &pb::JoinRequest) -> Result<(String, u16), Status> {
    validate_host(&r.hostname).map_err(|e| Status::invalid_argument(format!("hostname: {e}")))?;
    for san in &r.sans {
        validate_host(san).map_err(|e| Status::invalid_argument(format!("san: {e}")))?;
    }
    if r.sans.len() > 32 {
        return Err(Status::invalid_argument(
            "at most 32 extra SANs may be requested",
        ));
    }
    parse_host_port(&r.advertise_addr)
        .map_err(|e| Status::invalid_argument(format!("advertise address: {e}")))
}

#[tonic::async_trait]
impl Join for JoinApi {
    async fn join(
        &self,
        req: Request<pb::JoinRequest>,
    ) -> Result<Response<pb::JoinResponse>, Status> {
        let r = req.into_inner();
        let token: JoinToken = r
            .token
            .parse()
            .map_err(|e: capstan_pki::PkiError| Status::invalid_argument(e.to_string()))?;
        let (info, _) = self
            .state
            .get::<ClusterInfo>(ClusterInfo::ID, Consistency::Linearizable)
            .await?
            .ok_or_else(|| Status::unavailable("the cluster is still starting; retry"))?;
        let role = role_for(&token, &info)?;
        let (host, _) = validate_request(&r)?;
        capstan_core::version::compatible(capstan_core::version::VERSION, &r.version)
            .map_err(Status::failed_precondition)?;

        let id = NodeId(rand::random::<u64>().max(1));
        let mut hosts = vec![host, r.hostname.clone()];
        hosts.extend(r.sans.iter().cloned());
        hosts.dedup();
        let identity = NodeIdentity {
            node_id: id.to_string(),
            role: match role {
                NodeRole::Manager => capstan_pki::NodeRole::Manager,
                NodeRole::Worker => capstan_pki::NodeRole::Worker,
            },
            cluster_id: info.cluster_id.clone(),
            hosts,
        };
        let cert = self
            .state
            .ca
            .sign_node_csr(&r.csr_pem, &identity, self.state.config.cert_ttl())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;

        let now = OffsetDateTime::now_utc();
        let node = Node {
            id,
            hostname: r.hostname.clone(),
            role,
            addr: r.advertise_addr.clone(),
            state: NodeState::Unknown,
            availability: Availability::Active,
            labels: Default::default(),
            created_at: now,
            updated_at: now,
            cert_not_after: cert.not_after,
            description: None,
            capstan_version: r.version.clone(),
        };
        self.state
            .write(
                vec![Op {
                    table: Node::TABLE.into(),
                    id: node.id(),
                    action: Action::Put(encode(&node)),
                    expect: Expect::Absent,
                }],
                false,
            )
            .await?;
        tracing::info!(node = %id, hostname = %r.hostname, %role, "node admitted");

        let voters = membership::voters(&self.state);
        Ok(Response::new(pb::JoinResponse {
            node_id: id.to_string(),
            role: role.to_string(),
            cert_pem: cert.cert_pem,
            ca_cert_pem: self.state.ca.cert_pem().to_string(),
            ca_key_pem: if role == NodeRole::Manager {
                self.state.ca.key_pem().to_string()
            } else {
                String::new()
            },
            secret_key: if role == NodeRole::Manager {
                self.state.swarm.secret_key.bytes().to_vec()
            } else {
                Vec::new()
            },
            cluster_id: info.cluster_id,
            manager_addrs: membership::members(&self.state)
                .into_iter()
                .filter(|(id, _)| voters.contains(id))
                .map(|(_, a)| a)
                .collect(),
        }))
    }
}
