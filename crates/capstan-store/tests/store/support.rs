//! Builders shared by the tests.

use std::path::PathBuf;

use capstan_store::{
    open, Action, Expect, LogStore, NodeId, Op, Request, StateMachineStore, TypeConfig,
};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use tempfile::TempDir;

/// A fresh store in its own temporary directory (kept alive by the TempDir).
pub fn fresh_store() -> (TempDir, PathBuf, LogStore, StateMachineStore) {
    let tmp = tempfile::tempdir().expect("create temp dir");
    let dir = tmp.path().join("raft");
    let (log, sm) = open(&dir).expect("open a fresh store");
    (tmp, dir, log, sm)
}

pub fn log_id(term: u64, index: u64) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

/// A normal log entry at `index` carrying `ops`.
pub fn write_entry(index: u64, ops: Vec<Op>) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(1, index),
        payload: EntryPayload::Normal(Request::Write { ops }),
    }
}

pub fn blank_entry(index: u64) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(1, index),
        payload: EntryPayload::Blank,
    }
}

pub fn put(table: &str, id: &str, value: &str, expect: Expect) -> Op {
    Op {
        table: table.into(),
        id: id.into(),
        action: Action::Put(value.as_bytes().to_vec()),
        expect,
    }
}

pub fn delete(table: &str, id: &str, expect: Expect) -> Op {
    Op {
        table: table.into(),
        id: id.into(),
        action: Action::Delete,
        expect,
    }
}
