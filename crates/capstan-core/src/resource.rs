//! Secrets, configs and networks: the cluster objects services refer to.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::table::Table;

/// A secret, stored in table `secrets`. `data` is sealed with the cluster's
/// secret key before it enters the Raft log; it is opened only to hand it to
/// the agent that runs a task using it, and never returned by reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Secret {
    /// Random id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Sealed bytes (nonce and ciphertext).
    pub sealed: Vec<u8>,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Table for Secret {
    const TABLE: &'static str = "secrets";
    fn id(&self) -> String {
        self.id.clone()
    }
}

/// A config, stored in table `configs` (not secret: readable by those who
/// may view it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Random id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Content.
    pub data: Vec<u8>,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Table for Config {
    const TABLE: &'static str = "configs";
    fn id(&self) -> String {
        self.id.clone()
    }
}

/// A cluster network, stored in table `networks`. Each node that runs a task
/// attached to it creates a local Docker bridge network of the same name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// Random id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Requested driver (`overlay` is realised as a per-node bridge).
    pub driver: String,
    /// Standalone containers may attach.
    #[serde(default)]
    pub attachable: bool,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Table for Network {
    const TABLE: &'static str = "networks";
    fn id(&self) -> String {
        self.id.clone()
    }
}
