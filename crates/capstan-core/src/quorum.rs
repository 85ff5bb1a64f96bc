//! Quorum arithmetic for manager membership changes.

use std::collections::BTreeSet;

use crate::ids::NodeId;

/// Why a membership change was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QuorumError {
    /// The node is not a voting manager.
    #[error("node {0} is not a voting manager")]
    NotAVoter(NodeId),
    /// Removing the last manager would leave no cluster.
    #[error("node {0} is the last manager; a cluster needs at least one")]
    LastManager(NodeId),
    /// The remaining managers that are reachable would not form a majority.
    #[error("removing manager {node} would lose quorum: {reachable_after} of the {voters_after} remaining managers are reachable and {needed} are needed; bring managers back or add one first")]
    WouldLoseQuorum {
        /// The manager to remove.
        node: NodeId,
        /// Reachable voters after the change.
        reachable_after: usize,
        /// Voters after the change.
        voters_after: usize,
        /// The majority of `voters_after`.
        needed: usize,
    },
}

/// The smallest majority of `n` voters.
pub fn majority(n: usize) -> usize {
    n / 2 + 1
}

/// Decides whether the voter `node` may leave the voter set `voters`, given
/// which voters the leader currently reaches. The change must leave a set
/// whose reachable members are still a majority, so the cluster keeps
/// accepting writes afterwards.
pub fn check_voter_removal(
    voters: &BTreeSet<NodeId>,
    reachable: &BTreeSet<NodeId>,
    node: NodeId,
) -> Result<(), QuorumError> {
    if !voters.contains(&node) {
        return Err(QuorumError::NotAVoter(node));
    }
    if voters.len() == 1 {
        return Err(QuorumError::LastManager(node));
    }
    let voters_after = voters.len() - 1;
    let reachable_after = voters
        .iter()
        .filter(|v| **v != node && reachable.contains(v))
        .count();
    let needed = majority(voters_after);
    if reachable_after < needed {
        return Err(QuorumError::WouldLoseQuorum {
            node,
            reachable_after,
            voters_after,
            needed,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[u64]) -> BTreeSet<NodeId> {
        v.iter().map(|i| NodeId(*i)).collect()
    }

    #[test]
    fn voter_removal_table() {
        // (voters, reachable, removing, allowed)
        let cases: &[(&[u64], &[u64], u64, bool)] = &[
            (&[1, 2, 3], &[1, 2, 3], 3, true),
            (&[1, 2, 3], &[1, 2], 3, true),
            (&[1, 2, 3], &[1], 2, false),
            (&[1, 2, 3, 4, 5], &[1, 2, 3], 4, true),
            (&[1, 2, 3, 4, 5], &[1, 2, 3], 3, false),
            (&[1, 2], &[1], 2, true),
            (&[1, 2], &[2], 2, false),
        ];
        for (voters, reachable, node, allowed) in cases {
            let got = check_voter_removal(&ids(voters), &ids(reachable), NodeId(*node));
            assert_eq!(
                got.is_ok(),
                *allowed,
                "{voters:?} {reachable:?} -{node}: {got:?}"
            );
        }
    }

    #[test]
    fn last_and_unknown_managers() {
        assert_eq!(
            check_voter_removal(&ids(&[1]), &ids(&[1]), NodeId(1)),
            Err(QuorumError::LastManager(NodeId(1)))
        );
        assert_eq!(
            check_voter_removal(&ids(&[1, 2]), &ids(&[1, 2]), NodeId(9)),
            Err(QuorumError::NotAVoter(NodeId(9)))
        );
    }

    #[test]
    fn majorities() {
        assert_eq!([1, 2, 3, 4, 5].map(majority), [1, 2, 2, 3, 3]);
    }
}
