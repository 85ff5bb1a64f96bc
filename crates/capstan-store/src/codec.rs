//! Byte layout of keys and records. Version 1 of the on-disk schema.
//!
//! - log: key = index as 8 bytes big-endian (so key order is index order),
//!   value = JSON of `openraft::Entry<TypeConfig>`;
//! - raft / machine / snapshot meta: fixed ASCII keys, JSON values;
//! - objects: key = `table \0 id` (neither may contain NUL), value =
//!   [`ObjectRecord`] in a small binary layout so reads never parse JSON.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::StoreError;

/// Keys in the raft space.
pub(crate) mod raft_keys {
    pub(crate) const SCHEMA: &[u8] = b"schema";
    pub(crate) const VOTE: &[u8] = b"vote";
    pub(crate) const COMMITTED: &[u8] = b"committed";
    pub(crate) const LAST_PURGED: &[u8] = b"last_purged";
}

/// Keys in the machine space.
pub(crate) mod machine_keys {
    pub(crate) const LAST_APPLIED: &[u8] = b"last_applied";
    pub(crate) const LAST_MEMBERSHIP: &[u8] = b"last_membership";
}

/// Keys in the snapshot space.
pub(crate) mod snapshot_keys {
    pub(crate) const META: &[u8] = b"meta";
    pub(crate) const DATA: &[u8] = b"data";
}

/// Key of the log entry at `index`.
pub(crate) fn log_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// Index encoded in a log key.
pub(crate) fn log_index(key: &[u8]) -> Result<u64, String> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| format!("log key has {} bytes instead of 8", key.len()))?;
    Ok(u64::from_be_bytes(bytes))
}

/// Key of an object.
pub(crate) fn object_key(table: &str, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(table.len() + 1 + id.len());
    key.extend_from_slice(table.as_bytes());
    key.push(0);
    key.extend_from_slice(id.as_bytes());
    key
}

/// Splits an object key into table and id.
pub(crate) fn split_object_key(key: &[u8]) -> Result<(String, String), String> {
    let nul = key
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| "object key has no table/id separator".to_string())?;
    let table =
        std::str::from_utf8(&key[..nul]).map_err(|e| format!("object table is not UTF-8: {e}"))?;
    let id =
        std::str::from_utf8(&key[nul + 1..]).map_err(|e| format!("object id is not UTF-8: {e}"))?;
    Ok((table.to_string(), id.to_string()))
}

/// An object's stored state, without its table and id (those are the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjectRecord {
    pub(crate) version: u64,
    pub(crate) created_index: u64,
    pub(crate) value: Vec<u8>,
}

const RECORD_TAG: u8 = 1;
const RECORD_HEADER: usize = 1 + 8 + 8;

impl ObjectRecord {
    /// `[tag=1][version u64 BE][created_index u64 BE][value...]`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RECORD_HEADER + self.value.len());
        out.push(RECORD_TAG);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.created_index.to_be_bytes());
        out.extend_from_slice(&self.value);
        out
    }

    /// Parses [`ObjectRecord::encode`]'s layout.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < RECORD_HEADER {
            return Err(format!(
                "object record has {} bytes, less than its header",
                bytes.len()
            ));
        }
        if bytes[0] != RECORD_TAG {
            return Err(format!("object record has unknown tag {}", bytes[0]));
        }
        let word = |at: usize| -> u64 {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_be_bytes(b)
        };
        Ok(Self {
            version: word(1),
            created_index: word(9),
            value: bytes[RECORD_HEADER..].to_vec(),
        })
    }
}

/// Serialises a record as JSON.
pub(crate) fn to_json<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Encode {
        what,
        reason: e.to_string(),
    })
}

/// Parses a JSON record; the error names what failed to decode.
pub(crate) fn from_json<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("{what} does not decode: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_sort_by_index() {
        assert!(log_key(255) < log_key(256));
        assert_eq!(log_index(&log_key(42)), Ok(42));
        assert!(log_index(b"short").is_err());
    }

    #[test]
    fn object_keys_round_trip() {
        let key = object_key("services", "web/1");
        assert_eq!(
            split_object_key(&key),
            Ok(("services".into(), "web/1".into()))
        );
        assert!(split_object_key(b"no-separator").is_err());
    }

    #[test]
    fn object_records_round_trip_and_reject_garbage() {
        let rec = ObjectRecord {
            version: 9,
            created_index: 3,
            value: b"v".to_vec(),
        };
        assert_eq!(ObjectRecord::decode(&rec.encode()), Ok(rec));
        assert!(ObjectRecord::decode(&[1, 2, 3]).is_err());
        let mut wrong_tag = ObjectRecord {
            version: 1,
            created_index: 1,
            value: vec![],
        }
        .encode();
        wrong_tag[0] = 9;
        assert!(ObjectRecord::decode(&wrong_tag).is_err());
    }
}
