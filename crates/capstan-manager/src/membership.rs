//! Manager membership: adding a joined manager, promotion, demotion and
//! removal, with the quorum rules `docker node` users expect.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use capstan_core::quorum::check_voter_removal;
use capstan_core::{encode, ManagerStatus, Node, NodeId, NodeRole, NodeState, Table};
use capstan_store::{Action, Expect, Op};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};
use time::OffsetDateTime;

use crate::error::ManagerError;
use crate::state::{Consistency, ManagerState};

/// How long a joining manager may take to catch up before it becomes a voter.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);

/// The voting managers in the current membership.
pub fn voters(state: &ManagerState) -> BTreeSet<NodeId> {
    state
        .raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .map(NodeId)
        .collect()
}

/// Every Raft member (voters and learners) with its address.
pub fn members(state: &ManagerState) -> BTreeMap<NodeId, String> {
    state
        .raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .nodes()
        .map(|(id, n)| (NodeId(*id), n.addr.clone()))
        .collect()
}

/// The members that answered pings lately (always including this node).
pub fn reachable(state: &ManagerState) -> BTreeSet<NodeId> {
    let now = Instant::now();
    members(state)
        .into_keys()
        .filter(|id| *id == state.node_id() || state.reach.is_reachable(id.0, now))
        .collect()
}

fn membership_error(e: RaftError<u64, ClientWriteError<u64, BasicNode>>) -> ManagerError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => ManagerError::Unavailable(
            "this manager lost leadership during the change; retry".into(),
        ),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
            ManagerError::Refused(format!("membership change refused: {c}"))
        }
        RaftError::Fatal(f) => ManagerError::Fatal(f.to_string()),
    }
}

/// Adds a joined manager: first as a learner that catches up, then as a
/// voter. Runs on the leader.
pub async fn register_manager(
    state: &ManagerState,
    id: NodeId,
    addr: String,
) -> Result<u64, ManagerError> {
    crate::config::parse_host_port(&addr).map_err(ManagerError::Invalid)?;
    if voters(state).contains(&id) {
        return Ok(state.sm.applied_index());
    }
    match state
        .get::<Node>(&id.to_string(), Consistency::Linearizable)
        .await?
    {
        Some((node, _)) if node.role == NodeRole::Manager => {}
        Some(_) => {
            return Err(ManagerError::Denied(format!(
                "node {id} joined as a worker; only managers become voters"
            )))
        }
        None => {
            return Err(ManagerError::NotFound(format!(
                "node {id} never joined this cluster"
            )))
        }
    }
    let add = state.raft.add_learner(id.0, BasicNode { addr }, true);
    tokio::time::timeout(CATCH_UP_TIMEOUT, add)
        .await
        .map_err(|_| {
            ManagerError::Unavailable(format!(
                "manager {id} did not catch up within {}s",
                CATCH_UP_TIMEOUT.as_secs()
            ))
        })?
        .map_err(membership_error)?;
    let resp = state
        .raft
        .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id.0])), true)
        .await
        .map_err(membership_error)?;
    tracing::info!(node = %id, "manager joined the voters");
    Ok(resp.log_id.index)
}

async fn node_record(state: &ManagerState, wanted: &str) -> Result<(Node, u64), ManagerError> {
    let nodes = state.list_all::<Node>(Consistency::Linearizable).await?;
    let list: Vec<Node> = nodes.iter().map(|(n, _)| n.clone()).collect();
    let node = Node::resolve(&list, wanted).map_err(ManagerError::NotFound)?;
    let version = nodes
        .iter()
        .find(|(n, _)| n.id == node.id)
        .map(|(_, v)| *v)
        .expect("resolved node comes from the same list");
    Ok((node.clone(), version))
}

async fn save_role(
    state: &ManagerState,
    mut node: Node,
    version: u64,
    role: NodeRole,
) -> Result<Node, ManagerError> {
    node.role = role;
    node.updated_at = OffsetDateTime::now_utc();
    state
        .write(
            vec![Op {
                table: Node::TABLE.into(),
                id: node.id(),
                action: Action::Put(encode(&node)),
                expect: Expect::Version(version),
            }],
            false,
        )
        .await?;
    Ok(node)
}

/// Promotes a node to manager or demotes it to worker. Runs on the leader.
pub async fn change_role(
    state: &ManagerState,
    wanted: &str,
    role: NodeRole,
) -> Result<Node, ManagerError> {
    let (node, version) = node_record(state, wanted).await?;
    let id = node.id;
    let in_raft = members(state).contains_key(&id);
    match role {
        NodeRole::Manager => {
            if voters(state).contains(&id) {
                return Ok(node);
            }
            if !in_raft {
                return Err(ManagerError::Refused(format!(
                    "node {} ({id}) runs no manager process: join it with the manager token (`capstan token manager`) to make it a manager",
                    node.hostname
                )));
            }
            state
                .raft
                .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id.0])), true)
                .await
                .map_err(membership_error)?;
        }
        NodeRole::Worker => {
            if voters(state).contains(&id) {
                check_voter_removal(&voters(state), &reachable(state), id)
                    .map_err(|e| ManagerError::Refused(e.to_string()))?;
                state
                    .raft
                    .change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id.0])), true)
                    .await
                    .map_err(membership_error)?;
            }
        }
    }
    if node.role == role {
        return Ok(node);
    }
    save_role(state, node, version, role).await
}

/// Removes a node from the cluster. Runs on the leader.
pub async fn remove(
    state: &ManagerState,
    wanted: &str,
    force: bool,
) -> Result<NodeId, ManagerError> {
    let (node, version) = node_record(state, wanted).await?;
    let id = node.id;
    if voters(state).contains(&id) {
        return Err(ManagerError::Refused(format!(
            "node {} ({id}) is a manager; demote it first with `capstan node demote {id}`",
            node.hostname
        )));
    }
    if node.state == NodeState::Ready && !force {
        return Err(ManagerError::Refused(format!(
            "node {} ({id}) is not down and can't be removed; stop it first or use --force",
            node.hostname
        )));
    }
    if members(state).contains_key(&id) {
        state
            .raft
            .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id.0])), true)
            .await
            .map_err(membership_error)?;
    }
    state
        .write(
            vec![Op {
                table: Node::TABLE.into(),
                id: node.id(),
                action: Action::Delete,
                expect: Expect::Version(version),
            }],
            false,
        )
        .await?;
    Ok(id)
}

/// Every node with its manager status and observed state as the local
/// manager sees them: a voter is ready while it answers pings.
pub async fn node_views(
    state: &ManagerState,
) -> Result<Vec<(Node, u64, Option<ManagerStatus>)>, ManagerError> {
    let leader = state.raft.metrics().borrow().current_leader;
    let voters = voters(state);
    let reachable = reachable(state);
    let nodes = state.list_all::<Node>(Consistency::Serializable).await?;
    Ok(nodes
        .into_iter()
        .map(|(mut node, version)| {
            let status = voters.contains(&node.id).then(|| {
                if Some(node.id.0) == leader {
                    ManagerStatus::Leader
                } else if reachable.contains(&node.id) {
                    ManagerStatus::Reachable
                } else {
                    ManagerStatus::Unreachable
                }
            });
            if node.role == NodeRole::Manager || status.is_some() {
                node.state = if reachable.contains(&node.id) {
                    NodeState::Ready
                } else {
                    NodeState::Down
                };
            }
            (node, version, status)
        })
        .collect())
}
