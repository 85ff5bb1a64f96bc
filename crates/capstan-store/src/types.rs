//! The store's data model: what is proposed through Raft, what the state
//! machine answers, and what it holds.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

/// Identifier of a manager node in the Raft group.
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// Openraft type configuration of the capstan store.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A running Raft node of the capstan store.
pub type Raft = openraft::Raft<TypeConfig>;

/// Application log entry. One atomic batch: either every op applies or none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Apply `ops` in one step if every op's expectation holds.
    Write {
        /// The operations, applied together. An object may appear only once.
        ops: Vec<Op>,
    },
    /// Independent writes proposed in one log entry (the leader gathers
    /// concurrent clients' writes this way). Each applies atomically or not
    /// at all, in order, seeing the writes before it, and gets its own
    /// response in [`Response::Batch`].
    Batch {
        /// The writes, each a [`Request::Write`]'s ops.
        writes: Vec<Vec<Op>>,
    },
}

/// One change to one object inside a [`Request::Write`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Object kind, e.g. `services`, `tasks`, `nodes`.
    pub table: String,
    /// Object identifier, unique within the table.
    pub id: String,
    /// What to do with the object.
    pub action: Action,
    /// Condition on the object's current state (optimistic concurrency).
    pub expect: Expect,
}

/// What an [`Op`] does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Create or replace the object's value.
    Put(#[serde(with = "base64_bytes")] Vec<u8>),
    /// Remove the object (a no-op when it does not exist).
    Delete,
}

/// The state an [`Op`] requires before it may apply, like swarmkit's
/// `Version.Index` check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expect {
    /// No condition.
    Any,
    /// The object must not exist.
    Absent,
    /// The object must exist with exactly this version.
    Version(u64),
}

/// The state machine's answer to one log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The batch applied (also the answer to blank and membership entries,
    /// with no objects).
    Written {
        /// Log index of the entry; the new version of every written object.
        index: u64,
        /// One item per op, in op order.
        objects: Vec<Written>,
    },
    /// An expectation did not hold; nothing was applied.
    Conflict(Conflict),
    /// The batch was invalid; nothing was applied.
    Rejected {
        /// What was wrong with the batch.
        reason: String,
    },
    /// The responses to the writes of a [`Request::Batch`], in order.
    Batch(Vec<Response>),
}

/// The outcome of one op of an applied batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    /// Table of the object.
    pub table: String,
    /// Id of the object.
    pub id: String,
    /// The object's new version (the entry's log index); for deletes, the log
    /// index of the delete.
    pub version: u64,
    /// True when the op was a delete.
    pub deleted: bool,
}

/// The first op of a batch whose expectation did not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// Table of the conflicting object.
    pub table: String,
    /// Id of the conflicting object.
    pub id: String,
    /// What the op expected.
    pub expected: Expect,
    /// The object's current version, `None` when absent.
    pub actual: Option<u64>,
}

/// An object as held by the state machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredObject {
    /// Table of the object.
    pub table: String,
    /// Id of the object.
    pub id: String,
    /// Log index of the entry that last wrote the object.
    pub version: u64,
    /// Log index of the entry that created the object.
    pub created_index: u64,
    /// The object's value, opaque to the store.
    #[serde(with = "base64_bytes")]
    pub value: Vec<u8>,
}

/// A committed change, broadcast after apply (the watch stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Log index of the entry (or installed snapshot) that made the change.
    pub log_index: u64,
    /// The object after the change; for deletes, its last value and version.
    pub object: StoredObject,
    /// True when the object was removed.
    pub deleted: bool,
}

/// Serde adapter writing byte vectors as base64 strings: a JSON array of
/// numbers would make log entries and RPCs about four times larger.
mod base64_bytes {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_travel_as_base64() {
        let op = Op {
            table: "services".into(),
            id: "web".into(),
            action: Action::Put(b"hello".to_vec()),
            expect: Expect::Version(7),
        };
        let json = serde_json::to_string(&op).expect("encode");
        assert!(json.contains("\"aGVsbG8=\""), "{json}");
        let back: Op = serde_json::from_str(&json).expect("decode");
        assert_eq!(back, op);
    }
}
