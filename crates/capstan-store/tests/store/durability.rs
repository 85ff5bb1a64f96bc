//! What is written survives closing and reopening the store.

use capstan_store::{open, Expect, StoreError};
use openraft::storage::{RaftLogReader, RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{RaftSnapshotBuilder, Vote};

use crate::support::{fresh_store, log_id, put, write_entry};

#[tokio::test]
async fn log_vote_objects_and_snapshot_survive_reopen() {
    let (_tmp, dir, mut log, mut sm) = fresh_store();
    let vote = Vote::new(3, 2);
    log.save_vote(&vote).await.expect("save vote");
    let entries: Vec<_> = (1..=5)
        .map(|i| {
            write_entry(
                i,
                vec![put("services", &format!("s{i}"), "v", Expect::Absent)],
            )
        })
        .collect();
    log.blocking_append(entries.clone()).await.expect("append");
    log.save_committed(Some(log_id(1, 5)))
        .await
        .expect("save committed");
    sm.apply(entries.clone()).await.expect("apply");
    let snap = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("snapshot");
    log.purge(log_id(1, 2)).await.expect("purge");
    drop((log, sm));

    let (mut log, mut sm) = open(&dir).expect("reopen");
    assert_eq!(log.read_vote().await.expect("read vote"), Some(vote));
    assert_eq!(
        log.read_committed().await.expect("read committed"),
        Some(log_id(1, 5))
    );
    let state = log.get_log_state().await.expect("log state");
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 2)));
    assert_eq!(state.last_log_id, Some(log_id(1, 5)));
    let kept = log.try_get_log_entries(0..).await.expect("read log");
    assert_eq!(
        kept.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
        [3, 4, 5]
    );
    assert_eq!(kept[0].payload, entries[2].payload);

    assert_eq!(sm.applied_index(), 5);
    assert_eq!(sm.list("services", "s", 0).expect("list").len(), 5);
    let current = sm
        .get_current_snapshot()
        .await
        .expect("read")
        .expect("snapshot kept");
    assert_eq!(current.meta, snap.meta);
    assert_eq!(current.snapshot.into_inner(), snap.snapshot.into_inner());
}

#[tokio::test]
async fn truncated_log_stays_truncated() {
    let (_tmp, dir, mut log, _sm) = fresh_store();
    let entries: Vec<_> = (1..=4).map(|i| write_entry(i, vec![])).collect();
    log.blocking_append(entries).await.expect("append");
    log.truncate(log_id(1, 3)).await.expect("truncate");
    drop((log, _sm));

    let (mut log, _sm) = open(&dir).expect("reopen");
    let left = log.try_get_log_entries(0..).await.expect("read log");
    assert_eq!(
        left.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
        [1, 2]
    );
}

#[test]
fn a_store_cannot_be_opened_twice() {
    let (_tmp, dir, _log, _sm) = fresh_store();
    match open(&dir) {
        Err(StoreError::Locked { path }) => assert_eq!(path, dir),
        Err(other) => panic!("expected Locked, got {other}"),
        Ok(_) => panic!("expected Locked, the store opened twice"),
    }
}
