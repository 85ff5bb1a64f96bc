//! The labels that tie engine objects to Capstan: every container, network
//! and volume the executor makes carries its node's id, and it only ever
//! lists, touches or removes objects that carry it.

use std::collections::HashMap;

use capstan_core::{NodeId, Task};

/// The node whose agent owns a container, network or volume.
pub const NODE_LABEL: &str = "com.capstan.node.id";
/// The task a container runs.
pub const TASK_LABEL: &str = "com.capstan.task.id";
/// The service of that task.
pub const SERVICE_LABEL: &str = "com.capstan.service.id";
/// The cluster network a local network realises.
pub const NETWORK_LABEL: &str = "com.capstan.network.id";

/// Docker Swarm's labels, set too so that tools written for Swarm
/// (`docker ps --filter label=com.docker.swarm.service.name=web`) work.
const SWARM_SERVICE_ID: &str = "com.docker.swarm.service.id";
const SWARM_SERVICE_NAME: &str = "com.docker.swarm.service.name";
const SWARM_TASK_ID: &str = "com.docker.swarm.task.id";
const SWARM_TASK_NAME: &str = "com.docker.swarm.task.name";
const SWARM_NODE_ID: &str = "com.docker.swarm.node.id";

/// The labels of a task's container: the spec's own, then ours, which win
/// so that a spec cannot pass its container off as another node's.
pub(crate) fn container_labels(node: NodeId, task: &Task) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = task
        .spec
        .container
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let node = node.to_string();
    let ours = [
        (NODE_LABEL, node.clone()),
        (TASK_LABEL, task.id.clone()),
        (SERVICE_LABEL, task.service_id.clone()),
        (SWARM_NODE_ID, node),
        (SWARM_SERVICE_ID, task.service_id.clone()),
        (SWARM_SERVICE_NAME, task.service_name.clone()),
        (SWARM_TASK_ID, task.id.clone()),
        (SWARM_TASK_NAME, task.container_name()),
    ];
    for (key, value) in ours {
        labels.insert(key.to_owned(), value);
    }
    labels
}

/// `label=<NODE_LABEL>=<node>`, the filter every listing uses.
pub(crate) fn node_filter(node: NodeId) -> String {
    format!("{NODE_LABEL}={node}")
}

/// Whether an object's labels say it belongs to `node`.
pub(crate) fn owned_by(labels: Option<&HashMap<String, String>>, node: NodeId) -> bool {
    labels
        .and_then(|l| l.get(NODE_LABEL))
        .is_some_and(|v| *v == node.to_string())
}

/// The filters of a listing restricted to `node`, plus `extra` labels.
pub(crate) fn filters(node: NodeId, extra: &[String]) -> HashMap<String, Vec<String>> {
    let mut labels = vec![node_filter(node)];
    labels.extend(extra.iter().cloned());
    HashMap::from([("label".to_owned(), labels)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::task;

    #[test]
    fn our_labels_win_over_the_specs() {
        let mut t = task("t1", "web", 2);
        t.spec
            .container
            .labels
            .insert(NODE_LABEL.into(), "someone-else".into());
        t.spec
            .container
            .labels
            .insert("tier".into(), "front".into());
        let labels = container_labels(NodeId(0xab), &t);
        assert_eq!(labels[NODE_LABEL], "00000000000000ab");
        assert_eq!(labels["tier"], "front");
        assert_eq!(labels[TASK_LABEL], "t1");
        assert_eq!(labels[SERVICE_LABEL], "svc-web");
        assert_eq!(labels["com.docker.swarm.service.name"], "web");
        assert_eq!(labels["com.docker.swarm.task.name"], "web.2.t1");
        assert!(owned_by(Some(&labels), NodeId(0xab)));
        assert!(!owned_by(Some(&labels), NodeId(0xac)));
        assert!(!owned_by(None, NodeId(0xab)));
    }
}
