//! Spread preferences (`--placement-pref spread=node.labels.zone`): nodes
//! are grouped by the value of each descriptor in turn, and a task goes to
//! the group that holds the fewest tasks of its service, like swarmkit's
//! decision tree. Nodes without the attribute form a group of their own.

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::constraint::node_attribute;
use crate::node::Node;
use crate::service::SpreadPreference;

/// Group membership and task counts of one service, level by level.
pub(super) struct Spread {
    /// `group_of[level][node]`: the node's group at that level. A group at
    /// level `l` lies inside one group of level `l - 1`.
    group_of: Vec<Vec<usize>>,
    /// `tasks[level][group]`: tasks of the service in that group.
    tasks: Vec<Vec<u64>>,
}

impl Spread {
    /// Groups `nodes` by `preferences`; `service_tasks[node]` is how many
    /// tasks of the service each node already has.
    pub(super) fn new(
        nodes: &[Node],
        preferences: &[SpreadPreference],
        service_tasks: &[u64],
    ) -> Self {
        let mut parent = vec![0usize; nodes.len()];
        let mut group_of = Vec::with_capacity(preferences.len());
        let mut tasks = Vec::with_capacity(preferences.len());
        for pref in preferences {
            let mut ids: HashMap<(usize, String), usize> = HashMap::new();
            let mut level = Vec::with_capacity(nodes.len());
            let mut counts = Vec::new();
            for (i, node) in nodes.iter().enumerate() {
                let value = node_attribute(node, &pref.spread_descriptor).unwrap_or_default();
                let next = ids.len();
                let g = *ids.entry((parent[i], value)).or_insert(next);
                if g == counts.len() {
                    counts.push(0);
                }
                counts[g] += service_tasks.get(i).copied().unwrap_or(0);
                level.push(g);
            }
            parent.clone_from(&level);
            group_of.push(level);
            tasks.push(counts);
        }
        Self { group_of, tasks }
    }

    /// Records one more task of the service on `node`.
    pub(super) fn add(&mut self, node: usize) {
        for (level, groups) in self.group_of.iter().enumerate() {
            self.tasks[level][groups[node]] += 1;
        }
    }

    /// Orders two nodes by the emptiness of their groups, outermost
    /// preference first.
    pub(super) fn compare(&self, a: usize, b: usize) -> Ordering {
        for (level, groups) in self.group_of.iter().enumerate() {
            let counts = &self.tasks[level];
            let order = counts[groups[a]].cmp(&counts[groups[b]]);
            if order != Ordering::Equal {
                return order;
            }
        }
        Ordering::Equal
    }
}
