//! Grants: a subject holds a role on a resource set.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::collection::COLLECTION_SHARED;
use super::role::{ROLE_RESTRICTED_CONTROL, ROLE_SCHEDULER};
use super::RbacError;
use crate::table::Table;

/// What a grant's object is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceSetKind {
    /// A Swarm collection (by id), and so its whole subtree.
    #[default]
    Collection,
    /// A Kubernetes namespace (by name).
    Namespace,
}

impl ResourceSetKind {
    /// `collection` or `namespace`, as in the API's `?type=`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceSetKind::Collection => "collection",
            ResourceSetKind::Namespace => "namespace",
        }
    }
}

impl fmt::Display for ResourceSetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ResourceSetKind {
    type Err = RbacError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "collection" => Ok(ResourceSetKind::Collection),
            "namespace" => Ok(ResourceSetKind::Namespace),
            other => Err(RbacError::UnknownKind {
                kind: other.to_string(),
            }),
        }
    }
}

/// A grant, stored in table `grants`: `subject_id` (a user, team or org
/// id) holds `role_id` on the resource set `object_id`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Grant {
    /// The user, team or org the grant is for.
    pub subject_id: String,
    /// A collection id for collection grants, a namespace name for
    /// namespace grants.
    pub object_id: String,
    /// The role granted.
    pub role_id: String,
    /// Whether `object_id` is a collection or a namespace.
    #[serde(default)]
    pub kind: ResourceSetKind,
}

impl Table for Grant {
    const TABLE: &'static str = "grants";
    fn id(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.subject_id, self.kind, self.object_id, self.role_id
        )
    }
}

/// The grants a new user gets, as in MKE: Restricted Control on their
/// private collection (`private-<username>`) and Scheduler on `/Shared`.
pub fn default_grants(user_id: &str, username: &str) -> Vec<Grant> {
    let grant = |object_id: String, role_id: &str| Grant {
        subject_id: user_id.to_string(),
        object_id,
        role_id: role_id.to_string(),
        kind: ResourceSetKind::Collection,
    };
    vec![
        grant(format!("private-{username}"), ROLE_RESTRICTED_CONTROL),
        grant(COLLECTION_SHARED.to_string(), ROLE_SCHEDULER),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{decode, encode};

    #[test]
    fn defaults_for_a_new_user() {
        let grants = default_grants("u-42", "analista");
        let ids: Vec<String> = grants.iter().map(Table::id).collect();
        assert_eq!(
            ids,
            [
                "u-42|collection|private-analista|restrictedcontrol",
                "u-42|collection|shared|scheduler"
            ]
        );
    }

    #[test]
    fn grants_round_trip_through_the_store() {
        let grant = Grant {
            subject_id: "team-ops".into(),
            object_id: "kube-system".into(),
            role_id: "viewonly".into(),
            kind: ResourceSetKind::Namespace,
        };
        let bytes = encode(&grant);
        assert!(String::from_utf8_lossy(&bytes).contains(r#""kind":"namespace""#));
        assert_eq!(decode::<Grant>(&bytes).expect("decode"), grant);
        assert_eq!(grant.id(), "team-ops|namespace|kube-system|viewonly");
        let old: Grant =
            decode(br#"{"schema":1,"subject_id":"u","object_id":"swarm","role_id":"none"}"#)
                .expect("kind defaults to collection");
        assert_eq!(old.kind, ResourceSetKind::Collection);
        assert_eq!(Grant::TABLE, "grants");
    }

    #[test]
    fn kinds_parse() {
        assert_eq!("namespace".parse(), Ok(ResourceSetKind::Namespace));
        assert_eq!("collection".parse(), Ok(ResourceSetKind::Collection));
        let err = "Namespace"
            .parse::<ResourceSetKind>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"Namespace\""), "{err}");
    }
}
