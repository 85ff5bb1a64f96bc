//! The manager role: installing a cluster, admitting nodes, Raft membership,
//! and the cluster gRPC API on the swarm port.
//!
//! Architecture invariant: the manager owns no storage format (that is
//! `capstan-store`) and no certificate format (that is `capstan-pki`); it
//! wires them together and decides membership. Every write goes through
//! [`state::ManagerState::write`], which forwards to the leader.

pub mod auth;
pub mod backup;
pub mod batcher;
pub mod bootstrap;
pub mod client;
pub mod cluster_api;
pub mod config;
mod decoded;
pub mod disk;
pub mod error;
pub mod join_api;
pub mod membership;
pub mod paths;
pub mod reachability;
pub mod restore;
pub mod server;
pub mod state;
pub mod supervisor;
pub mod support;
pub mod swarm;
pub mod wire;

pub use config::NodeConfig;
pub use error::ManagerError;
pub use paths::DataDir;
