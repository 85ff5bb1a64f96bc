//! Domain types and pure decisions of Capstan.
//!
//! Architecture invariant: this crate does no I/O, spawns nothing and never
//! reads a clock; time comes in as arguments. Every other crate converts its
//! wire types (protobuf, Docker JSON, Kubernetes JSON, SCIM) to these types at
//! its edge.

pub mod cluster;
pub mod ids;
pub mod node;
pub mod quorum;
pub mod table;
pub mod user;

pub use cluster::ClusterInfo;
pub use ids::NodeId;
pub use node::{Availability, ManagerStatus, Node, NodeRole, NodeState};
pub use table::{decode, encode, DecodeError, Table};
pub use user::User;
