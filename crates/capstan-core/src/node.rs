//! Nodes: the machines of the cluster, as Swarm users know them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::NodeId;
use crate::service::Resources;
use crate::table::Table;

/// Whether a node takes part in Raft (manager) or only runs tasks (worker).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    /// Runs a Raft member, the cluster API and the gateway.
    Manager,
    /// Runs only the agent.
    Worker,
}

/// The observed state of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Not heard from yet.
    Unknown,
    /// Heartbeating (workers) or replicating (managers).
    Ready,
    /// Missed its heartbeats.
    Down,
    /// Left cleanly.
    Disconnected,
}

/// Whether the scheduler may place tasks on a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    /// New tasks may be placed here.
    Active,
    /// No new tasks; running ones stay.
    Pause,
    /// No tasks; running ones move elsewhere.
    Drain,
}

/// A manager's standing in the Raft group, as `docker node ls` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ManagerStatus {
    /// The current Raft leader.
    Leader,
    /// A voter the leader hears from.
    Reachable,
    /// A voter the leader does not hear from.
    Unreachable,
}

macro_rules! text_enum {
    ($t:ty, $what:literal, $($v:ident => $s:literal),+) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self { $(Self::$v => $s),+ })
            }
        }
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s.to_ascii_lowercase().as_str() {
                    $($s => Ok(Self::$v),)+
                    _ => Err(format!(concat!("invalid ", $what, " {:?}: expected one of {}"), s, [$($s),+].join(", "))),
                }
            }
        }
    };
}
text_enum!(NodeRole, "node role", Manager => "manager", Worker => "worker");
text_enum!(NodeState, "node state", Unknown => "unknown", Ready => "ready", Down => "down", Disconnected => "disconnected");
text_enum!(Availability, "availability", Active => "active", Pause => "pause", Drain => "drain");
text_enum!(ManagerStatus, "manager status", Leader => "leader", Reachable => "reachable", Unreachable => "unreachable");

/// A node of the cluster, stored in table `nodes` under its id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// The node's id (also its certificate's common name).
    pub id: NodeId,
    /// The hostname the node reported when it joined.
    pub hostname: String,
    /// Manager or worker.
    pub role: NodeRole,
    /// `host:port` of the node's swarm port (managers) or its address (workers).
    pub addr: String,
    /// Observed state.
    pub state: NodeState,
    /// Scheduling availability set by an operator.
    pub availability: Availability,
    /// Operator-set labels (`node.labels.*` in constraints).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// When the node joined.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change of this record.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Expiry of the node's current certificate.
    #[serde(with = "time::serde::rfc3339")]
    pub cert_not_after: OffsetDateTime,
    /// What the node's agent reported about the machine (absent until its
    /// first session).
    #[serde(default)]
    pub description: Option<NodeDescription>,
    /// The Capstan version the node runs (set when it joins, and by the
    /// node itself when it starts or its agent connects after an upgrade).
    #[serde(default)]
    pub capstan_version: String,
}

/// A machine as its agent describes it (`docker node inspect` Description).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct NodeDescription {
    /// Host name.
    pub hostname: String,
    /// `linux`.
    pub os: String,
    /// `x86_64`, `aarch64`.
    pub arch: String,
    /// CPUs and memory of the machine.
    pub resources: Resources,
    /// Free bytes on the Docker data root's file system.
    #[serde(default)]
    pub disk_free_bytes: u64,
    /// Total bytes of that file system.
    #[serde(default)]
    pub disk_total_bytes: u64,
    /// Docker Engine version.
    pub engine_version: String,
    /// Docker Engine labels (`engine.labels.*` in constraints).
    #[serde(default)]
    pub engine_labels: BTreeMap<String, String>,
    /// `host:port` of the node's engine proxy, through which the managers'
    /// gateways reach its Docker engine; empty when the agent runs none.
    #[serde(default)]
    pub engine_proxy: String,
    /// The kernel the engine runs on (`uname -r`).
    #[serde(default)]
    pub kernel_version: String,
    /// How the engine was built, as its `/version` says.
    #[serde(default)]
    pub engine_build: EngineBuild,
    /// The engine's plugins, as its `/info` lists them.
    #[serde(default)]
    pub engine_plugins: Vec<EnginePlugin>,
    /// The version of the node's capstan agent.
    #[serde(default)]
    pub capstan_version: String,
}

/// A Docker engine's build, as its `/version` reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineBuild {
    /// Source commit.
    #[serde(default)]
    pub git_commit: String,
    /// Go toolchain it was built with.
    #[serde(default)]
    pub go_version: String,
    /// When it was built.
    #[serde(default)]
    pub build_time: String,
}

/// One engine plugin: its type (`Volume`, `Network`, `Log`,
/// `Authorization`) and name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnginePlugin {
    /// `Volume`, `Network`, `Log` or `Authorization`.
    pub kind: String,
    /// The plugin's name (`local`, `bridge`, `json-file`, …).
    pub name: String,
}

impl Table for Node {
    const TABLE: &'static str = "nodes";
    fn id(&self) -> String {
        self.id.to_string()
    }
}

impl Node {
    /// Finds a node by id, unique id prefix or hostname, the way `docker node`
    /// commands accept any of them.
    pub fn resolve<'a>(nodes: &'a [Node], wanted: &str) -> Result<&'a Node, String> {
        if wanted.is_empty() {
            return Err("no node named: give a node id, id prefix or hostname".into());
        }
        if let Some(n) = nodes
            .iter()
            .find(|n| n.id.to_string() == wanted || n.hostname == wanted)
        {
            return Ok(n);
        }
        let by_prefix: Vec<&Node> = nodes
            .iter()
            .filter(|n| n.id.to_string().starts_with(wanted))
            .collect();
        match by_prefix.as_slice() {
            [one] => Ok(one),
            [] => Err(format!("no node {wanted:?} in this cluster")),
            _ => Err(format!(
                "node prefix {wanted:?} is ambiguous: it matches {} nodes",
                by_prefix.len()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{decode, encode};

    fn node(id: u64, hostname: &str) -> Node {
        let t = OffsetDateTime::UNIX_EPOCH;
        Node {
            id: NodeId(id),
            hostname: hostname.into(),
            role: NodeRole::Worker,
            addr: "node:2377".into(),
            state: NodeState::Ready,
            availability: Availability::Active,
            labels: BTreeMap::new(),
            created_at: t,
            updated_at: t,
            cert_not_after: t,
            description: None,
            capstan_version: String::new(),
        }
    }

    #[test]
    fn resolves_by_id_prefix_and_hostname() {
        let nodes = vec![node(0xab00, "master"), node(0xac00, "node01")];
        assert_eq!(Node::resolve(&nodes, "node01").unwrap().id, NodeId(0xac00));
        assert_eq!(
            Node::resolve(&nodes, "000000000000ab").unwrap().hostname,
            "master"
        );
        assert!(Node::resolve(&nodes, "000000000000a")
            .unwrap_err()
            .contains("ambiguous"));
        assert!(Node::resolve(&nodes, "node09")
            .unwrap_err()
            .contains("no node"));
    }

    #[test]
    fn node_record_round_trips_and_refuses_newer_schema() {
        let n = node(7, "master");
        let bytes = encode(&n);
        assert_eq!(decode::<Node>(&bytes).unwrap(), n);
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["schema"] = 99.into();
        let err = decode::<Node>(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(err.to_string().contains("newer"), "{err}");
    }

    #[test]
    fn text_enums_parse_and_reject() {
        assert_eq!("Manager".parse::<NodeRole>(), Ok(NodeRole::Manager));
        assert!("boss"
            .parse::<NodeRole>()
            .unwrap_err()
            .contains("manager, worker"));
        assert_eq!("drain".parse::<Availability>(), Ok(Availability::Drain));
    }
}
