//! The cluster object: identity and join secrets.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::table::Table;

/// The single record describing the cluster, in table `cluster` under id
/// [`ClusterInfo::ID`]. Join secrets live here so that every manager can
/// admit nodes and rotation is one replicated write.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// Random cluster id (certificate organisation).
    pub cluster_id: String,
    /// Lowercase hex SHA-256 of the root CA certificate.
    pub ca_digest: String,
    /// Secret part of the worker join token.
    pub worker_secret: String,
    /// Secret part of the manager join token.
    pub manager_secret: String,
    /// When the cluster was installed.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl ClusterInfo {
    /// The id of the one cluster record.
    pub const ID: &'static str = "cluster";
}

impl Table for ClusterInfo {
    const TABLE: &'static str = "cluster";
    fn id(&self) -> String {
        Self::ID.to_string()
    }
}
