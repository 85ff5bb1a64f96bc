//! Task placement: which node runs each task that waits for one.
//!
//! Like swarmkit's scheduler, a node must pass every filter (ready and
//! active, placement constraints, free resources, free host ports, the
//! per-node replica limit); among the nodes that pass, spread preferences
//! come first, then the fewest tasks of the same service, then the fewest
//! tasks overall, then the lowest node id so that the result is
//! deterministic. Tasks of one service and spec are placed as a group, with
//! the node loads updated after each placement, so a call costs
//! O(tasks × nodes) and never compares tasks with each other.

mod load;
mod spread;

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use crate::constraint::{node_matches_all, parse_constraints};
use crate::ids::NodeId;
use crate::node::{Availability, Node, NodeState};
use crate::service::{Resources, TaskSpec};
use crate::task::{Task, TaskState};

use load::{holds_node, NodeLoad};
use spread::Spread;

/// What the scheduler sees of the cluster.
#[derive(Clone, Copy, Debug)]
pub struct SchedulerInput<'a> {
    /// Every node.
    pub nodes: &'a [Node],
    /// Every task not yet removed from the store, of all services: their
    /// reservations, host ports and counts make up the nodes' load.
    pub tasks: &'a [Task],
}

/// The scheduler's verdict on one task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Run the task on this node (for a task made for a node, its node
    /// passed the checks).
    Assign {
        /// The task.
        task_id: String,
        /// Where it runs.
        node_id: NodeId,
    },
    /// No node can take the task now; it stays pending with this reason
    /// (`docker service ps` shows it).
    NoSuitableNode {
        /// The task.
        task_id: String,
        /// Why, e.g. `no suitable node (scheduling constraints not satisfied
        /// on 3 nodes; insufficient resources on 1 node)`.
        reason: String,
    },
}

/// Whether a task waits for the scheduler: desired running and not yet
/// assigned (new or pending). A global task that was made for a node also
/// waits, so that the node is checked before the agent gets it.
pub fn needs_scheduling(task: &Task) -> bool {
    task.desired_state == TaskState::Running && task.status.state <= TaskState::Pending
}

/// Places every task in `pending` (see [`needs_scheduling`]; other tasks
/// get no decision). A task without a node gets the best node that passes
/// every filter; a task with a node (global services) is checked against
/// that node only. Decisions come back in the order of `pending`.
pub fn schedule(input: &SchedulerInput, pending: &[&Task]) -> Vec<Decision> {
    let pending_ids: HashSet<&str> = pending.iter().map(|t| t.id.as_str()).collect();
    let mut cluster = Cluster::new(input, &pending_ids);
    let mut out: Vec<Option<Decision>> = vec![None; pending.len()];
    let mut unplaced = Vec::new();
    let mut seen = HashSet::new();
    for (i, task) in pending.iter().enumerate() {
        if !needs_scheduling(task) || !seen.insert(task.id.as_str()) {
            continue;
        }
        match task.node_id {
            Some(node) => out[i] = Some(cluster.check_preset(task, node)),
            None => unplaced.push(i),
        }
    }
    for group in spec_groups(pending, &unplaced) {
        cluster.place_group(pending, &group, &mut out);
    }
    out.into_iter().flatten().collect()
}

/// Splits tasks (indexes into `tasks`) into groups of one service and one
/// spec, in order of first appearance.
fn spec_groups(tasks: &[&Task], members: &[usize]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut by_key: HashMap<(&str, u64), Vec<usize>> = HashMap::new();
    for &i in members {
        let t = tasks[i];
        let candidates = by_key
            .entry((t.service_id.as_str(), t.spec_version))
            .or_default();
        let found = candidates
            .iter()
            .copied()
            .find(|&g| tasks[groups[g][0]].spec == t.spec);
        match found {
            Some(g) => groups[g].push(i),
            None => {
                candidates.push(groups.len());
                groups.push(vec![i]);
            }
        }
    }
    groups
}

/// The filters a node must pass, in the order they are tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Filter {
    Unavailable,
    Constraints,
    Resources,
    HostPort,
    MaxReplicas,
}

const FILTERS: [Filter; 5] = [
    Filter::Unavailable,
    Filter::Constraints,
    Filter::Resources,
    Filter::HostPort,
    Filter::MaxReplicas,
];

impl Filter {
    fn explain(self, nodes: usize) -> String {
        let on = if nodes == 1 {
            "1 node".to_string()
        } else {
            format!("{nodes} nodes")
        };
        match self {
            Filter::Unavailable if nodes == 1 => "1 node not available for new tasks".into(),
            Filter::Unavailable => format!("{nodes} nodes not available for new tasks"),
            Filter::Constraints => format!("scheduling constraints not satisfied on {on}"),
            Filter::Resources => format!("insufficient resources on {on}"),
            Filter::HostPort => format!("host-mode port already in use on {on}"),
            Filter::MaxReplicas => format!("max replicas per node limit reached on {on}"),
        }
    }
}

/// How many nodes each filter turned down.
#[derive(Default)]
struct Rejections([usize; FILTERS.len()]);

impl Rejections {
    fn count(&mut self, f: Filter) {
        self.0[f as usize] += 1;
    }

    /// Swarm's wording: the filters that turned nodes down, most first.
    fn explain(&self) -> String {
        let mut failed: Vec<(usize, Filter)> = FILTERS
            .iter()
            .map(|&f| (self.0[f as usize], f))
            .filter(|(n, _)| *n > 0)
            .collect();
        if failed.is_empty() {
            return "no suitable node (no nodes in the cluster)".into();
        }
        failed.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
        let parts: Vec<String> = failed.iter().map(|(n, f)| f.explain(*n)).collect();
        format!("no suitable node ({})", parts.join("; "))
    }
}

/// Nodes with their load, updated as tasks are placed.
struct Cluster<'a> {
    nodes: &'a [Node],
    index: HashMap<NodeId, usize>,
    loads: Vec<NodeLoad>,
    available: Vec<bool>,
}

/// What one group's placement needs besides the cluster.
struct GroupState<'s> {
    service_id: &'s str,
    spec: &'s TaskSpec,
    /// Whether each node satisfies the group's constraints.
    matches: Vec<bool>,
    /// Tasks of the service on each node.
    service_tasks: Vec<u64>,
    spread: Spread,
}

impl<'a> Cluster<'a> {
    fn new(input: &SchedulerInput<'a>, pending: &HashSet<&str>) -> Self {
        let index: HashMap<NodeId, usize> = input
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id, i))
            .collect();
        let mut loads: Vec<NodeLoad> = input.nodes.iter().map(|_| NodeLoad::default()).collect();
        for t in input.tasks {
            if pending.contains(t.id.as_str()) || !holds_node(t) {
                continue;
            }
            if let Some(&i) = t.node_id.as_ref().and_then(|n| index.get(n)) {
                loads[i].add(t);
            }
        }
        let available = input
            .nodes
            .iter()
            .map(|n| n.state == NodeState::Ready && n.availability == Availability::Active)
            .collect();
        Self {
            nodes: input.nodes,
            index,
            loads,
            available,
        }
    }

    fn capacity(&self, i: usize) -> Resources {
        self.nodes[i]
            .description
            .as_ref()
            .map(|d| d.resources)
            .unwrap_or_default()
    }

    /// The first filter node `i` fails for a task of `spec` whose
    /// constraints it `matches` and that has `service_tasks` tasks of the
    /// same service there; `limit` is the per-node replica limit, if any.
    fn rejects(
        &self,
        i: usize,
        spec: &TaskSpec,
        matches: bool,
        service_tasks: u64,
        limit: Option<u64>,
    ) -> Option<Filter> {
        let load = &self.loads[i];
        if !self.available[i] {
            Some(Filter::Unavailable)
        } else if !matches {
            Some(Filter::Constraints)
        } else if !load.fits(self.capacity(i), spec.resources.reservations) {
            Some(Filter::Resources)
        } else if !load.ports_free(spec) {
            Some(Filter::HostPort)
        } else if limit.is_some_and(|max| service_tasks >= max) {
            Some(Filter::MaxReplicas)
        } else {
            None
        }
    }

    /// Ranks two nodes that both pass: spread, then tasks of the service,
    /// then all tasks, then node id.
    fn compare(&self, a: usize, b: usize, g: &GroupState) -> Ordering {
        g.spread
            .compare(a, b)
            .then(g.service_tasks[a].cmp(&g.service_tasks[b]))
            .then(self.loads[a].active.cmp(&self.loads[b].active))
            .then(self.nodes[a].id.cmp(&self.nodes[b].id))
    }

    /// The best node for the group's next task, or why there is none.
    fn best_node(&self, g: &GroupState) -> Result<usize, Rejections> {
        let mut best: Option<usize> = None;
        let mut rejections = Rejections::default();
        for i in 0..self.nodes.len() {
            let max = g.spec.placement.max_replicas_per_node;
            let limit = (max > 0).then_some(max);
            if let Some(f) = self.rejects(i, g.spec, g.matches[i], g.service_tasks[i], limit) {
                rejections.count(f);
            } else if best.is_none_or(|b| self.compare(i, b, g) == Ordering::Less) {
                best = Some(i);
            }
        }
        best.ok_or(rejections)
    }

    fn group_state<'s>(&self, task: &'s Task) -> Result<GroupState<'s>, String> {
        let constraints = parse_constraints(&task.spec.placement.constraints)?;
        let matches = self
            .nodes
            .iter()
            .map(|n| node_matches_all(n, &constraints))
            .collect();
        let service_tasks: Vec<u64> = self
            .loads
            .iter()
            .map(|l| l.by_service.get(&task.service_id).copied().unwrap_or(0))
            .collect();
        let spread = Spread::new(self.nodes, &task.spec.placement.preferences, &service_tasks);
        Ok(GroupState {
            service_id: &task.service_id,
            spec: &task.spec,
            matches,
            service_tasks,
            spread,
        })
    }

    /// Takes node `i` for one task of the group.
    fn assign(&mut self, i: usize, g: &mut GroupState) {
        self.loads[i].take(g.spec, g.service_id, true);
        g.service_tasks[i] += 1;
        g.spread.add(i);
    }

    /// Places the tasks `members` (indexes into `tasks`) of one group. Once
    /// a task finds no node the rest cannot either (placing only adds
    /// load), so they get the same reason without another search.
    fn place_group(&mut self, tasks: &[&Task], members: &[usize], out: &mut [Option<Decision>]) {
        let Some(&first) = members.first() else {
            return;
        };
        let mut g = match self.group_state(tasks[first]) {
            Ok(g) => g,
            Err(e) => {
                for &m in members {
                    out[m] = Some(no_node(tasks[m], e.clone()));
                }
                return;
            }
        };
        let mut failure: Option<String> = None;
        for &m in members {
            let task = tasks[m];
            let reason = match &failure {
                Some(r) => r.clone(),
                None => match self.best_node(&g) {
                    Ok(i) => {
                        self.assign(i, &mut g);
                        out[m] = Some(assign(task, self.nodes[i].id));
                        continue;
                    }
                    Err(r) => r.explain(),
                },
            };
            out[m] = Some(no_node(task, reason.clone()));
            failure = Some(reason);
        }
    }

    /// Checks the node a task was made for (the replica limit does not
    /// apply: such tasks belong to global services).
    fn check_preset(&mut self, task: &Task, node: NodeId) -> Decision {
        let Some(&i) = self.index.get(&node) else {
            return no_node(
                task,
                format!("no suitable node (node {node} is not in the cluster)"),
            );
        };
        let matches = match parse_constraints(&task.spec.placement.constraints) {
            Ok(cs) => node_matches_all(&self.nodes[i], &cs),
            Err(e) => return no_node(task, e),
        };
        if let Some(f) = self.rejects(i, &task.spec, matches, 0, None) {
            return no_node(task, format!("no suitable node ({})", f.explain(1)));
        }
        self.loads[i].take(&task.spec, &task.service_id, true);
        assign(task, node)
    }
}

fn assign(task: &Task, node_id: NodeId) -> Decision {
    Decision::Assign {
        task_id: task.id.clone(),
        node_id,
    }
}

fn no_node(task: &Task, reason: String) -> Decision {
    Decision::NoSuitableNode {
        task_id: task.id.clone(),
        reason,
    }
}

#[cfg(test)]
mod tests;
