//! openraft's storage conformance suite, run against our log store and
//! state machine.

use capstan_store::{open, LogStore, NodeId, StateMachineStore, TypeConfig};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{StorageError, StorageIOError};
use tempfile::TempDir;

struct SledStoreBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for SledStoreBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<NodeId>> {
        let tmp = tempfile::tempdir().map_err(|e| StorageIOError::write(&e))?;
        let (log, sm) = open(&tmp.path().join("raft")).map_err(|e| StorageIOError::write(&e))?;
        Ok((tmp, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    // The suite runs each case on its own runtime, so this is a plain test.
    Suite::test_all(SledStoreBuilder).expect("storage suite passes");
}
