//! Identifiers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A node's identity: the Raft node id of a manager, and the name every
/// certificate, task and label uses. Shown and stored as 16 lowercase hex
/// digits (TOML and JSON readers cannot all hold a full u64).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u64);

impl Serialize for NodeId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A node id that is not 1 to 16 hex digits.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid node id {0:?}: expected up to 16 hex digits")]
pub struct InvalidNodeId(pub String);

impl FromStr for NodeId {
    type Err = InvalidNodeId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(InvalidNodeId(s.to_string()));
        }
        u64::from_str_radix(s, 16)
            .map(NodeId)
            .map_err(|_| InvalidNodeId(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_round_trips_through_text() {
        let id = NodeId(0x00ab_cdef_0123_4567);
        assert_eq!(id.to_string(), "00abcdef01234567");
        assert_eq!("00abcdef01234567".parse::<NodeId>(), Ok(id));
        let max = NodeId(u64::MAX);
        let json = serde_json::to_string(&max).unwrap();
        assert_eq!(json, "\"ffffffffffffffff\"");
        assert_eq!(serde_json::from_str::<NodeId>(&json).unwrap(), max);
    }

    #[test]
    fn node_id_rejects_bad_text() {
        for bad in ["", "xyz", "00abcdef012345678", "-1", " 1"] {
            assert!(bad.parse::<NodeId>().is_err(), "{bad:?} was accepted");
        }
    }
}
