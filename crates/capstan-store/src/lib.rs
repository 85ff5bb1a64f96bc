//! capstan-store: the Raft-replicated state store of the managers.
//!
//! A Raft log, a state machine of versioned objects (`table`/`id` → bytes)
//! and snapshots, persisted on local disk, plus the Raft transport over gRPC.
//! The manager proposes [`Request`]s through [`Raft`], reads objects from the
//! [`StateMachineStore`] and watches its committed [`Change`]s.
//!
//! Architecture invariant: only the `engine` module names the embedded
//! database (sled); only `network` and `service` touch gRPC. Every write to
//! the state machine goes through the Raft log; nothing else mutates objects.
//!
//! Map of modules:
//! - `types`: the data model (requests, responses, objects, changes);
//! - `validate`: limits on names and values;
//! - `apply`: what a batch does, as a pure decision;
//! - `log_store`, `state_machine`, `snapshot`: openraft storage;
//! - `open`, `schema`, `watermark`, `store_dir`: the directory, its schema
//!   marker and corruption checks;
//! - `network`, `service`: the transport;
//! - `config`: Raft timing.

#![warn(missing_docs)]

mod apply;
mod codec;
mod config;
mod engine;
mod error;
mod log_store;
pub mod network;
mod objects;
mod open;
mod schema;
pub mod service;
mod snapshot;
mod state_machine;
mod store_dir;
mod types;
mod validate;
mod watermark;

pub use config::{
    raft_config, raft_config_with, RaftTiming, ELECTION_TIMEOUT_MS, HEARTBEAT_INTERVAL_MS,
    LOGS_KEPT_AFTER_SNAPSHOT, SNAPSHOT_EVERY_LOGS,
};
pub use engine::EngineError;
pub use error::StoreError;
pub use log_store::LogStore;
pub use open::open;
pub use state_machine::{StateMachineStore, WATCH_CAPACITY};
pub use types::{
    Action, Change, Conflict, Expect, NodeId, Op, Raft, Request, Response, StoredObject,
    TypeConfig, Written,
};
pub use validate::{
    validate_op, validate_request, MAX_BATCH_BYTES, MAX_NAME_BYTES, MAX_VALUE_BYTES,
};
