//! Apply semantics through `RaftStateMachine::apply`.

use std::collections::BTreeSet;

use capstan_store::{Change, Conflict, Expect, Response, Written};
use openraft::storage::RaftStateMachine;
use openraft::{BasicNode, Entry, EntryPayload, Membership};

use crate::support::{blank_entry, delete, fresh_store, log_id, put, write_entry};

fn written(index: u64, objects: &[(&str, &str, bool)]) -> Response {
    Response::Written {
        index,
        objects: objects
            .iter()
            .map(|(table, id, deleted)| Written {
                table: table.to_string(),
                id: id.to_string(),
                version: index,
                deleted: *deleted,
            })
            .collect(),
    }
}

#[tokio::test]
async fn versions_expectations_and_atomic_batches() {
    let (_tmp, _dir, _log, mut sm) = fresh_store();
    let mut watch = sm.subscribe();

    // index 5: create two objects in one batch.
    let got = sm
        .apply([write_entry(
            5,
            vec![
                put("services", "web", "v1", Expect::Absent),
                put("services", "db", "d1", Expect::Absent),
            ],
        )])
        .await
        .expect("apply");
    assert_eq!(
        got,
        vec![written(
            5,
            &[("services", "web", false), ("services", "db", false)]
        )]
    );
    let web = sm.get("services", "web").expect("get").expect("web exists");
    assert_eq!(
        (web.version, web.created_index, web.value.as_slice()),
        (5, 5, b"v1".as_slice())
    );

    // index 6: Absent on an existing object conflicts; nothing changes.
    let got = sm
        .apply([write_entry(
            6,
            vec![put("services", "web", "v2", Expect::Absent)],
        )])
        .await
        .expect("apply");
    assert_eq!(
        got,
        vec![Response::Conflict(Conflict {
            table: "services".into(),
            id: "web".into(),
            expected: Expect::Absent,
            actual: Some(5)
        })]
    );
    assert_eq!(
        sm.get("services", "web").expect("get").expect("web").value,
        b"v1"
    );
    assert_eq!(
        sm.applied_index(),
        6,
        "a conflicting entry is still applied"
    );

    // index 7: a batch whose second op is stale applies nothing at all.
    let got = sm
        .apply([write_entry(
            7,
            vec![
                put("services", "cache", "c1", Expect::Absent),
                put("services", "web", "v2", Expect::Version(4)),
            ],
        )])
        .await
        .expect("apply");
    assert_eq!(
        got,
        vec![Response::Conflict(Conflict {
            table: "services".into(),
            id: "web".into(),
            expected: Expect::Version(4),
            actual: Some(5)
        })]
    );
    assert_eq!(
        sm.get("services", "cache").expect("get"),
        None,
        "first op of a conflicting batch must not apply"
    );

    // index 8: the right version updates; created_index stays.
    let got = sm
        .apply([write_entry(
            8,
            vec![put("services", "web", "v2", Expect::Version(5))],
        )])
        .await
        .expect("apply");
    assert_eq!(got, vec![written(8, &[("services", "web", false)])]);
    let web = sm.get("services", "web").expect("get").expect("web");
    assert_eq!(
        (web.version, web.created_index, web.value.as_slice()),
        (8, 5, b"v2".as_slice())
    );

    // index 9: delete with the right version.
    let got = sm
        .apply([write_entry(
            9,
            vec![delete("services", "web", Expect::Version(8))],
        )])
        .await
        .expect("apply");
    assert_eq!(got, vec![written(9, &[("services", "web", true)])]);
    assert_eq!(sm.get("services", "web").expect("get"), None);

    // Watchers saw exactly the applied changes, in order.
    let mut seen: Vec<Change> = Vec::new();
    while let Ok(change) = watch.try_recv() {
        seen.push(change);
    }
    let summary: Vec<(u64, &str, u64, bool)> = seen
        .iter()
        .map(|c| {
            (
                c.log_index,
                c.object.id.as_str(),
                c.object.version,
                c.deleted,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (5, "web", 5, false),
            (5, "db", 5, false),
            (8, "web", 8, false),
            (9, "web", 8, true)
        ]
    );
    assert_eq!(
        seen[3].object.value, b"v2",
        "a delete carries the last value"
    );
}

#[tokio::test]
async fn invalid_batches_are_rejected_but_applied() {
    let (_tmp, _dir, _log, mut sm) = fresh_store();
    let got = sm
        .apply([write_entry(
            3,
            vec![put("services", "a\0b", "x", Expect::Any)],
        )])
        .await
        .expect("apply");
    assert!(
        matches!(&got[0], Response::Rejected { reason } if reason.contains("control character")),
        "{got:?}"
    );
    assert_eq!(sm.applied_index(), 3);
    assert_eq!(sm.list("services", "", 0).expect("list"), vec![]);
}

#[tokio::test]
async fn blank_and_membership_entries_only_move_the_position() {
    let (_tmp, _dir, _log, mut sm) = fresh_store();
    let members: BTreeSet<u64> = [1, 2, 3].into_iter().collect();
    let membership = Membership::<u64, BasicNode>::new(vec![members], None);
    let entries: Vec<Entry<_>> = vec![
        blank_entry(1),
        Entry {
            log_id: log_id(1, 2),
            payload: EntryPayload::Membership(membership.clone()),
        },
    ];
    let got = sm.apply(entries).await.expect("apply");
    assert_eq!(got, vec![written(1, &[]), written(2, &[])]);
    let (applied, stored) = sm.applied_state().await.expect("applied state");
    assert_eq!(applied, Some(log_id(1, 2)));
    assert_eq!(stored.membership(), &membership);
    assert_eq!(stored.log_id(), &Some(log_id(1, 2)));
    assert!(sm.list("services", "", 0).expect("list").is_empty());
}

#[tokio::test]
async fn list_is_ordered_by_id_with_prefix_and_limit() {
    let (_tmp, _dir, _log, mut sm) = fresh_store();
    let ops = ["web-2", "web-10", "db-1", "web-1"]
        .iter()
        .map(|id| put("tasks", id, id, Expect::Absent))
        .chain([put("tasksx", "web-3", "other table", Expect::Absent)])
        .collect();
    sm.apply([write_entry(4, ops)]).await.expect("apply");

    let ids =
        |objs: Vec<capstan_store::StoredObject>| objs.into_iter().map(|o| o.id).collect::<Vec<_>>();
    assert_eq!(
        ids(sm.list("tasks", "", 0).expect("list")),
        ["db-1", "web-1", "web-10", "web-2"]
    );
    assert_eq!(
        ids(sm.list("tasks", "web-", 0).expect("list")),
        ["web-1", "web-10", "web-2"]
    );
    assert_eq!(
        ids(sm.list("tasks", "web-", 2).expect("list")),
        ["web-1", "web-10"]
    );
    assert_eq!(ids(sm.list("tasksx", "", 0).expect("list")), ["web-3"]);
    assert!(sm.list("nodes", "", 0).expect("list").is_empty());
}

#[tokio::test]
async fn a_batch_entry_applies_each_write_on_its_own_in_order() {
    let (_tmp, _dir, _log, mut sm) = fresh_store();
    let writes = vec![
        // Creates web.
        vec![put("kv", "web", "v1", Expect::Absent)],
        // Sees the first write: web exists now, so Absent conflicts.
        vec![put("kv", "web", "again", Expect::Absent)],
        // Also sees it: version 7 is the entry's index.
        vec![put("kv", "web", "v2", Expect::Version(7))],
        // Invalid on its own (same object twice): rejected, the rest stand.
        vec![
            put("kv", "db", "d", Expect::Any),
            put("kv", "db", "d", Expect::Any),
        ],
        vec![delete("kv", "gone", Expect::Any)],
    ];
    let entry = Entry {
        log_id: log_id(1, 7),
        payload: EntryPayload::Normal(capstan_store::Request::Batch { writes }),
    };
    let got = sm.apply([entry]).await.expect("apply");
    let Response::Batch(responses) = &got[0] else {
        panic!("a batch entry answers with Response::Batch: {got:?}");
    };
    assert_eq!(responses.len(), 5);
    assert_eq!(responses[0], written(7, &[("kv", "web", false)]));
    assert!(
        matches!(
            &responses[1],
            Response::Conflict(Conflict {
                actual: Some(7),
                ..
            })
        ),
        "{:?}",
        responses[1]
    );
    assert_eq!(responses[2], written(7, &[("kv", "web", false)]));
    assert!(
        matches!(&responses[3], Response::Rejected { .. }),
        "{:?}",
        responses[3]
    );
    assert_eq!(responses[4], written(7, &[("kv", "gone", true)]));
    let web = sm.get("kv", "web").expect("get").expect("web exists");
    assert_eq!(web.value, b"v2");
    assert!(sm.get("kv", "db").expect("get").is_none());
    assert_eq!(sm.applied_index(), 7);
}
