//! Capstan's worker agent: the executor that makes the node's Docker Engine
//! run exactly the tasks the managers assigned to it.
//!
//! The agent's session loop (talking to a manager) hands each batch of
//! [`Assignment`]s to [`Executor::reconcile`], reports the statuses it
//! returns, and reconciles again whenever [`Executor::changes`] yields or a
//! timer fires. The executor follows swarmkit's `agent/exec` semantics:
//! reported states only move forward, the engine never restarts a task (the
//! orchestrator makes a new one), and containers of tasks no longer
//! assigned are removed.
//!
//! ```no_run
//! # async fn example(batch: Vec<capstan_agent::Assignment>) -> Result<(), capstan_agent::AgentError> {
//! use capstan_agent::Executor;
//! use capstan_core::NodeId;
//!
//! let executor = Executor::connect(NodeId(0x2a)).await?;
//! for (task_id, status) in executor.reconcile(&batch).await? {
//!     println!("{task_id}: {} ({})", status.state, status.message);
//! }
//! # Ok(()) }
//! ```
//!
//! Architecture invariant: only this crate talks to the Docker Engine, and
//! it lists, changes or removes only engine objects labelled with its own
//! node id ([`NODE_LABEL`]). Docker's wire types stay inside; callers see
//! `capstan-core` types.

mod container_spec;
mod describe;
mod engine;
pub mod engine_proxy;
mod error;
mod events;
mod executor;
mod files;
mod image;
mod labels;
mod logs;
mod network;
mod observed;
mod plan;
mod prepare;
pub mod session;
mod status;
#[cfg(test)]
mod test_support;

pub use describe::disk_space;
pub use engine_proxy::{
    EngineProxy, EngineProxyConfig, EngineProxyError, EngineSocket, DEFAULT_ENGINE_PROXY_PORT,
};
pub use error::AgentError;
pub use executor::{Assignment, Executor};
pub use labels::{NETWORK_LABEL, NODE_LABEL, SERVICE_LABEL, TASK_LABEL};
pub use logs::{LogOptions, LogPiece};
