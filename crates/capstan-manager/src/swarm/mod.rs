//! Swarm-mode services on the managers: the dispatcher that talks to node
//! agents, the leader's orchestration loop (orchestrator and scheduler from
//! `capstan-core`, executed here), the user-facing Swarm API, log routing
//! and secret sealing.

pub mod api;
pub mod assignments;
pub mod dispatcher;
pub mod logs;
mod objects;
mod pull_ticket;
pub mod runtime;
pub mod sealing;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

pub use dispatcher::{DispatcherApi, Sessions};
pub use logs::LogRoutes;
pub use sealing::SecretKey;

/// What the swarm components of a manager share.
pub struct SwarmState {
    /// Connected agents.
    pub sessions: Arc<Sessions>,
    /// Open log requests.
    pub logs: Arc<LogRoutes>,
    /// How often agents heartbeat; three missed periods mark a node down.
    pub heartbeat_period: Duration,
    /// Seals secrets.
    pub secret_key: SecretKey,
    /// Wakes the leader's loop after a user change.
    pub wake: Arc<Notify>,
}

impl SwarmState {
    /// Swarm state with the given heartbeat period and key.
    pub fn new(heartbeat_period: Duration, secret_key: SecretKey) -> Self {
        Self {
            sessions: Arc::default(),
            logs: Arc::default(),
            heartbeat_period,
            secret_key,
            wake: Arc::default(),
        }
    }
}
