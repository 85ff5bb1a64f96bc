//! Slots: the places a service keeps one task each — replica slots
//! `1..=replicas` for a replicated service, one slot per node for a global
//! one — and how each is kept filled.

use std::collections::{BTreeMap, HashSet};

use crate::constraint::{node_matches_all, parse_constraints, Constraint};
use crate::ids::NodeId;
use crate::node::{Availability, Node, NodeState};
use crate::task::{Task, TaskState};

use super::pass::Pass;
use super::restart::{decide, Restart};

/// Which slot a task belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum SlotKey {
    /// A replica slot (1-based; others are out of range).
    Replica(u64),
    /// The slot of a global service on a node.
    Node(NodeId),
    /// A global task without a node (never made by this orchestrator).
    Unplaced,
}

impl SlotKey {
    /// The slot of task `t` of a replicated or global service.
    pub(super) fn of(t: &Task, global: bool) -> Self {
        match (global, t.node_id) {
            (false, _) => SlotKey::Replica(t.slot),
            (true, Some(id)) => SlotKey::Node(id),
            (true, None) => SlotKey::Unplaced,
        }
    }

    /// The slot number and node a new task of this slot gets.
    pub(super) fn placement(self) -> (u64, Option<NodeId>) {
        match self {
            SlotKey::Replica(n) => (n, None),
            SlotKey::Node(id) => (0, Some(id)),
            SlotKey::Unplaced => (0, None),
        }
    }
}

/// The tasks of one slot, oldest first.
pub(super) struct Slot<'v> {
    pub(super) key: SlotKey,
    pub(super) tasks: Vec<&'v Task>,
}

/// Groups the tasks of a service into slots, in key order. Tasks desired
/// `Remove` belong to no slot.
pub(super) fn group(tasks: &[Task], global: bool) -> Vec<Slot<'_>> {
    let mut by_key: BTreeMap<SlotKey, Vec<&Task>> = BTreeMap::new();
    for t in tasks
        .iter()
        .filter(|t| t.desired_state != TaskState::Remove)
    {
        by_key.entry(SlotKey::of(t, global)).or_default().push(t);
    }
    by_key
        .into_iter()
        .map(|(key, mut tasks)| {
            tasks.sort_by(|a, b| {
                (a.created_at, a.attempt, &a.id).cmp(&(b.created_at, b.attempt, &b.id))
            });
            Slot { key, tasks }
        })
        .collect()
}

/// Keeps replica slots `1..=replicas` filled and empties the others.
pub(super) fn plan_replicated<'v>(pass: &mut Pass<'v, '_>, slots: &[Slot<'v>], replicas: u64) {
    let mut present = HashSet::new();
    for slot in slots {
        match slot.key {
            SlotKey::Replica(n) if (1..=replicas).contains(&n) => {
                present.insert(n);
                plan_replica_slot(pass, slot);
            }
            _ => retire(pass, slot),
        }
    }
    for n in (1..=replicas).filter(|n| !present.contains(n)) {
        pass.create(n, None, 0);
    }
}

fn plan_replica_slot<'v>(pass: &mut Pass<'v, '_>, slot: &Slot<'v>) {
    for &t in &slot.tasks {
        if pass.is_live(t) && must_leave_node(pass, t) {
            pass.set_desired(t, TaskState::Shutdown);
        }
    }
    settle_finished(pass, slot);
    keep_one(pass, slot);
    refill(pass, slot);
}

/// A replicated task leaves a node that is gone, down, disconnected or
/// drained, or whose labels no longer satisfy the task's constraints; its
/// slot is then refilled elsewhere in the same pass. A paused node keeps
/// its tasks.
fn must_leave_node(pass: &Pass, t: &Task) -> bool {
    let Some(id) = t.node_id else {
        return false;
    };
    let Some(node) = pass.nodes.get(&id) else {
        return true;
    };
    let constraints_hold = parse_constraints(&t.spec.placement.constraints)
        .map_or(true, |cs| node_matches_all(node, &cs));
    matches!(node.state, NodeState::Down | NodeState::Disconnected)
        || node.availability == Availability::Drain
        || !constraints_hold
}

/// How a global service stands on a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum NodeFit {
    /// Ready, active and matching: runs one task.
    Eligible,
    /// Keeps its task but gets no new one (paused, down, unknown; or the
    /// constraints do not parse).
    Keep,
    /// Gone, drained or no longer matching: its task is shut down.
    Evict,
}

/// How a global service stands on the node `id`.
pub(super) fn node_fit(pass: &Pass, id: NodeId) -> NodeFit {
    let Some(node) = pass.nodes.get(&id) else {
        return NodeFit::Evict;
    };
    fit_of(node, pass.constraints.as_deref())
}

fn fit_of(node: &Node, constraints: Option<&[Constraint]>) -> NodeFit {
    if node.availability == Availability::Drain {
        return NodeFit::Evict;
    }
    match constraints {
        None => NodeFit::Keep,
        Some(cs) if !node_matches_all(node, cs) => NodeFit::Evict,
        Some(_) if node.state == NodeState::Ready && node.availability == Availability::Active => {
            NodeFit::Eligible
        }
        Some(_) => NodeFit::Keep,
    }
}

/// Keeps one task on every eligible node.
pub(super) fn plan_global<'v>(pass: &mut Pass<'v, '_>, slots: &[Slot<'v>]) {
    let mut present = HashSet::new();
    for slot in slots {
        let SlotKey::Node(id) = slot.key else {
            retire(pass, slot);
            continue;
        };
        present.insert(id);
        match node_fit(pass, id) {
            NodeFit::Evict => retire(pass, slot),
            fit => {
                settle_finished(pass, slot);
                keep_one(pass, slot);
                if fit == NodeFit::Eligible {
                    refill(pass, slot);
                }
            }
        }
    }
    let missing: Vec<NodeId> = pass
        .node_list
        .iter()
        .filter(|n| !present.contains(&n.id))
        .filter(|n| fit_of(n, pass.constraints.as_deref()) == NodeFit::Eligible)
        .map(|n| n.id)
        .collect();
    for id in missing {
        pass.create(0, Some(id), 0);
    }
}

/// Empties a slot that is no longer wanted: live tasks are shut down,
/// finished ones deleted.
fn retire<'v>(pass: &mut Pass<'v, '_>, slot: &Slot<'v>) {
    for &t in &slot.tasks {
        if is_done(pass, t) {
            pass.delete(t);
        } else if pass.desired(t) == TaskState::Running {
            pass.set_desired(t, TaskState::Shutdown);
        }
    }
}

/// Tasks that ended while desired running are marked shut down; whether
/// they are replaced is the restart policy's call ([`refill`]).
fn settle_finished<'v>(pass: &mut Pass<'v, '_>, slot: &Slot<'v>) {
    for &t in &slot.tasks {
        if pass.desired(t) == TaskState::Running && t.status.state.is_terminal() {
            pass.set_desired(t, TaskState::Shutdown);
        }
    }
}

/// At most one live task per slot: prefer the current spec, then running,
/// then the newest. While a start-first update's new task is not yet
/// running, the old running task stays beside it.
fn keep_one<'v>(pass: &mut Pass<'v, '_>, slot: &Slot<'v>) {
    let live: Vec<&'v Task> = slot
        .tasks
        .iter()
        .copied()
        .filter(|t| pass.is_live(t))
        .collect();
    if live.len() < 2 {
        return;
    }
    let running = |t: &Task| t.status.state == TaskState::Running;
    let rank = |t: &'v Task| {
        (
            pass.is_clean(t),
            running(t),
            t.created_at,
            t.attempt,
            t.id.as_str(),
        )
    };
    let Some(keeper) = live.iter().copied().max_by_key(|t| rank(t)) else {
        return;
    };
    let companion = if pass.is_clean(keeper) && !running(keeper) {
        live.iter()
            .copied()
            .filter(|t| !pass.is_clean(t) && running(t))
            .max_by_key(|t| rank(t))
    } else {
        None
    };
    for t in live {
        let kept = std::ptr::eq(t, keeper) || companion.is_some_and(|c| std::ptr::eq(t, c));
        if !kept {
            pass.set_desired(t, TaskState::Shutdown);
        }
    }
}

/// Gives a slot without a live task a new one, as its newest task allows:
/// none yet or one that was moved off its node → now; one that finished →
/// per its restart policy.
fn refill<'v>(pass: &mut Pass<'v, '_>, slot: &Slot<'v>) {
    if slot.tasks.iter().any(|t| pass.is_live(t)) {
        return;
    }
    let (number, node) = slot.key.placement();
    let Some(&newest) = slot.tasks.last() else {
        pass.create(number, node, 0);
        return;
    };
    if !newest.status.state.is_terminal() {
        pass.create(number, node, newest.attempt.saturating_add(1));
        return;
    }
    match decide(newest, &slot.tasks, &pass.service, pass.now) {
        Restart::Now { attempt } => pass.create(number, node, attempt),
        Restart::At(at) => {
            pass.recheck_at(at);
            pass.waiting_restart = true;
        }
        Restart::Never => {}
    }
}

/// Whether a task that is no longer wanted is over: observed finished, never
/// given to a node, or on a node that left the cluster (no agent will ever
/// report it finished).
pub(super) fn is_done(pass: &Pass, t: &Task) -> bool {
    t.status.state.is_terminal()
        || match t.node_id {
            None => t.status.state < TaskState::Assigned,
            Some(id) => !pass.nodes.contains_key(&id),
        }
}
