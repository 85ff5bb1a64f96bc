//! Domain types and pure decisions of Capstan.
//!
//! Architecture invariant: this crate does no I/O, spawns nothing and never
//! reads a clock; time comes in as arguments. Every other crate converts its
//! wire types (protobuf, Docker JSON, Kubernetes JSON, SCIM) to these types at
//! its edge.

pub mod accounts;
pub mod audit;
pub mod bundle;
pub mod cluster;
pub mod cluster_config;
pub mod constraint;
pub mod ids;
pub mod license;
pub mod log_tail;
pub mod node;
pub mod orchestrator;
pub mod quorum;
pub mod rbac;
pub mod registry;
pub mod resource;
pub mod scheduler;
pub mod service;
pub mod table;
pub mod task;
pub mod user;
pub mod version;

#[cfg(test)]
mod fixtures;

pub use cluster::ClusterInfo;
pub use ids::NodeId;
pub use node::{
    Availability, EngineBuild, EnginePlugin, ManagerStatus, Node, NodeDescription, NodeRole,
    NodeState,
};
pub use resource::{Config, Network, Secret};
pub use service::{Service, ServiceMode, ServiceSpec, TaskSpec};
pub use table::{decode, encode, DecodeError, Table};
pub use task::{Task, TaskState, TaskStatus};
pub use user::User;
