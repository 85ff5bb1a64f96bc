//! Snapshot build on one store and install into another.

use capstan_store::Expect;
use openraft::storage::RaftStateMachine;
use openraft::RaftSnapshotBuilder;

use crate::support::{delete, fresh_store, put, write_entry};

#[tokio::test]
async fn snapshot_round_trip_into_a_fresh_store() {
    let (_tmp_a, _dir_a, _log_a, mut leader) = fresh_store();
    leader
        .apply([
            write_entry(
                2,
                vec![
                    put("services", "web", "w1", Expect::Absent),
                    put("services", "db", "d1", Expect::Absent),
                ],
            ),
            write_entry(3, vec![put("nodes", "n1", "ready", Expect::Absent)]),
            write_entry(
                4,
                vec![
                    put("services", "web", "w2", Expect::Version(2)),
                    delete("services", "db", Expect::Any),
                ],
            ),
        ])
        .await
        .expect("apply");

    let built = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("build snapshot");
    assert_eq!(built.meta.last_log_id.map(|l| l.index), Some(4));
    let current = leader
        .get_current_snapshot()
        .await
        .expect("read")
        .expect("a current snapshot");
    assert_eq!(current.meta, built.meta);

    // The follower holds stale state the snapshot must replace.
    let (_tmp_b, dir_b, log_b, mut follower) = fresh_store();
    follower
        .apply([write_entry(
            1,
            vec![
                put("services", "stale", "x", Expect::Absent),
                put("nodes", "n1", "old", Expect::Absent),
            ],
        )])
        .await
        .expect("apply");
    let mut watch = follower.subscribe();

    let mut receiving = follower.begin_receiving_snapshot().await.expect("begin");
    *receiving = *current.snapshot;
    follower
        .install_snapshot(&current.meta, receiving)
        .await
        .expect("install");

    assert_eq!(
        follower.list("services", "", 0).expect("list"),
        leader.list("services", "", 0).expect("list")
    );
    assert_eq!(
        follower.list("nodes", "", 0).expect("list"),
        leader.list("nodes", "", 0).expect("list")
    );
    assert_eq!(follower.get("services", "stale").expect("get"), None);
    let web = follower.get("services", "web").expect("get").expect("web");
    assert_eq!(
        (web.version, web.created_index, web.value.as_slice()),
        (4, 2, b"w2".as_slice())
    );
    assert_eq!(follower.applied_index(), 4);
    assert_eq!(
        follower.applied_state().await.expect("state"),
        leader.applied_state().await.expect("state")
    );
    let installed = follower
        .get_current_snapshot()
        .await
        .expect("read")
        .expect("current");
    assert_eq!(installed.meta, built.meta);

    // Watchers see the difference: n1 replaced, web added, stale removed.
    let mut seen = Vec::new();
    while let Ok(c) = watch.try_recv() {
        seen.push((c.object.table, c.object.id, c.deleted));
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("nodes".to_string(), "n1".to_string(), false),
            ("services".to_string(), "stale".to_string(), true),
            ("services".to_string(), "web".to_string(), false),
        ]
    );

    // The installed state is durable.
    drop((log_b, follower));
    let (_log, reopened) = capstan_store::open(&dir_b).expect("reopen");
    assert_eq!(reopened.applied_index(), 4);
    assert_eq!(
        reopened
            .get("services", "web")
            .expect("get")
            .expect("web")
            .value,
        b"w2"
    );
    assert_eq!(reopened.get("services", "stale").expect("get"), None);
}

#[tokio::test]
async fn a_garbled_snapshot_from_the_leader_is_refused() {
    let (_tmp, _dir, _log, mut sm) = fresh_store();
    sm.apply([write_entry(
        1,
        vec![put("services", "web", "w1", Expect::Absent)],
    )])
    .await
    .expect("apply");
    let mut snap = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("build");
    snap.snapshot.get_mut().truncate(10);

    let (_tmp_b, _dir_b, _log_b, mut other) = fresh_store();
    other
        .apply([write_entry(
            1,
            vec![put("services", "keep", "k", Expect::Absent)],
        )])
        .await
        .expect("apply");
    let err = other
        .install_snapshot(&snap.meta, snap.snapshot)
        .await
        .expect_err("garbled snapshot");
    assert!(err.to_string().contains("snapshot"), "{err}");
    assert!(
        other.get("services", "keep").expect("get").is_some(),
        "state untouched"
    );
}
