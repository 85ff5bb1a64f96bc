//! The decision of what one write batch does, separate from the I/O that
//! carries it out: given the batch, its log index and the current objects,
//! decide to reject it, report a conflict, or apply a list of steps.

use crate::codec::ObjectRecord;
use crate::types::{Action, Change, Conflict, Expect, Op, StoredObject, Written};
use crate::validate::validate_ops;

/// What applying a batch amounts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// The batch is invalid; nothing changes.
    Rejected(String),
    /// An expectation failed (the first in op order); nothing changes.
    Conflict(Conflict),
    /// Every expectation holds: one step per op, in op order.
    Apply(Vec<Step>),
}

/// The effect of one op on one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Step {
    pub(crate) table: String,
    pub(crate) id: String,
    pub(crate) before: Option<ObjectRecord>,
    /// `None` when the op deletes the object.
    pub(crate) after: Option<ObjectRecord>,
}

/// Decides what one atomic write of `ops`, committed at log `index`, does.
/// `current` reads an object's state before the write.
pub(crate) fn plan<E>(
    index: u64,
    ops: &[Op],
    mut current: impl FnMut(&str, &str) -> Result<Option<ObjectRecord>, E>,
) -> Result<Plan, E> {
    if let Err(reason) = validate_ops(ops) {
        return Ok(Plan::Rejected(reason));
    }
    let mut steps = Vec::with_capacity(ops.len());
    for op in ops {
        let before = current(&op.table, &op.id)?;
        if let Some(conflict) = check_expectation(op, before.as_ref()) {
            return Ok(Plan::Conflict(conflict));
        }
        let after = match &op.action {
            Action::Put(value) => Some(ObjectRecord {
                version: index,
                created_index: before.as_ref().map_or(index, |b| b.created_index),
                value: value.clone(),
            }),
            Action::Delete => None,
        };
        steps.push(Step {
            table: op.table.clone(),
            id: op.id.clone(),
            before,
            after,
        });
    }
    Ok(Plan::Apply(steps))
}

fn check_expectation(op: &Op, before: Option<&ObjectRecord>) -> Option<Conflict> {
    let actual = before.map(|b| b.version);
    let holds = match op.expect {
        Expect::Any => true,
        Expect::Absent => actual.is_none(),
        Expect::Version(v) => actual == Some(v),
    };
    (!holds).then(|| Conflict {
        table: op.table.clone(),
        id: op.id.clone(),
        expected: op.expect,
        actual,
    })
}

impl Step {
    /// The step as reported to the proposer.
    pub(crate) fn written(&self, index: u64) -> Written {
        Written {
            table: self.table.clone(),
            id: self.id.clone(),
            version: index,
            deleted: self.after.is_none(),
        }
    }

    /// The step as seen by watchers; `None` when nothing changed (deleting an
    /// object that did not exist).
    pub(crate) fn change(&self, index: u64) -> Option<Change> {
        let (record, deleted) = match (&self.after, &self.before) {
            (Some(after), _) => (after, false),
            (None, Some(before)) => (before, true),
            (None, None) => return None,
        };
        Some(Change {
            log_index: index,
            object: StoredObject {
                table: self.table.clone(),
                id: self.id.clone(),
                version: record.version,
                created_index: record.created_index,
                value: record.value.clone(),
            },
            deleted,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::convert::Infallible;

    use super::*;

    fn put(id: &str, expect: Expect) -> Op {
        Op {
            table: "services".into(),
            id: id.into(),
            action: Action::Put(format!("value of {id}").into_bytes()),
            expect,
        }
    }

    fn delete(id: &str, expect: Expect) -> Op {
        Op {
            table: "services".into(),
            id: id.into(),
            action: Action::Delete,
            expect,
        }
    }

    fn rec(version: u64, created_index: u64) -> ObjectRecord {
        ObjectRecord {
            version,
            created_index,
            value: b"old".to_vec(),
        }
    }

    /// Plans `ops` at index 10 against `existing` (id, version, created).
    fn run(existing: &[(&str, u64, u64)], ops: Vec<Op>) -> Plan {
        let state: BTreeMap<String, ObjectRecord> = existing
            .iter()
            .map(|(id, v, c)| (id.to_string(), rec(*v, *c)))
            .collect();
        plan::<Infallible>(10, &ops, |_, id| Ok(state.get(id).cloned())).expect("infallible")
    }

    fn conflict(id: &str, expected: Expect, actual: Option<u64>) -> Plan {
        Plan::Conflict(Conflict {
            table: "services".into(),
            id: id.into(),
            expected,
            actual,
        })
    }

    /// Objects present before the batch: (id, version, created_index).
    type Existing = Vec<(&'static str, u64, u64)>;

    #[test]
    fn expectations() {
        let cases: Vec<(&str, Existing, Op, Option<Plan>)> = vec![
            (
                "absent on new object applies",
                vec![],
                put("a", Expect::Absent),
                None,
            ),
            (
                "absent on existing object conflicts",
                vec![("a", 4, 2)],
                put("a", Expect::Absent),
                Some(conflict("a", Expect::Absent, Some(4))),
            ),
            (
                "matching version applies",
                vec![("a", 4, 2)],
                put("a", Expect::Version(4)),
                None,
            ),
            (
                "stale version conflicts",
                vec![("a", 4, 2)],
                put("a", Expect::Version(3)),
                Some(conflict("a", Expect::Version(3), Some(4))),
            ),
            (
                "version on missing object conflicts",
                vec![],
                put("a", Expect::Version(3)),
                Some(conflict("a", Expect::Version(3), None)),
            ),
            (
                "any always applies",
                vec![("a", 4, 2)],
                put("a", Expect::Any),
                None,
            ),
            (
                "delete with stale version conflicts",
                vec![("a", 4, 2)],
                delete("a", Expect::Version(1)),
                Some(conflict("a", Expect::Version(1), Some(4))),
            ),
        ];
        for (name, existing, op, want_conflict) in cases {
            let got = run(&existing, vec![op]);
            match want_conflict {
                Some(want) => assert_eq!(got, want, "{name}"),
                None => assert!(matches!(got, Plan::Apply(_)), "{name}: {got:?}"),
            }
        }
    }

    #[test]
    fn put_sets_version_to_index_and_keeps_created_index() {
        let Plan::Apply(steps) = run(
            &[("a", 4, 2)],
            vec![put("a", Expect::Version(4)), put("b", Expect::Absent)],
        ) else {
            panic!("expected apply");
        };
        let a = steps[0].after.as_ref().expect("put");
        assert_eq!((a.version, a.created_index), (10, 2));
        let b = steps[1].after.as_ref().expect("put");
        assert_eq!((b.version, b.created_index), (10, 10));
        assert_eq!(
            steps[1].written(10),
            Written {
                table: "services".into(),
                id: "b".into(),
                version: 10,
                deleted: false
            }
        );
    }

    #[test]
    fn first_conflict_in_op_order_is_reported_and_nothing_applies() {
        let got = run(
            &[("a", 4, 2), ("b", 5, 5)],
            vec![
                put("new", Expect::Absent),
                put("a", Expect::Version(1)),
                put("b", Expect::Version(1)),
            ],
        );
        assert_eq!(got, conflict("a", Expect::Version(1), Some(4)));
    }

    #[test]
    fn delete_reports_last_value_to_watchers() {
        let Plan::Apply(steps) = run(
            &[("a", 4, 2)],
            vec![delete("a", Expect::Any), delete("gone", Expect::Any)],
        ) else {
            panic!("expected apply");
        };
        let change = steps[0].change(10).expect("a change");
        assert!(change.deleted);
        assert_eq!(
            (
                change.log_index,
                change.object.version,
                change.object.created_index
            ),
            (10, 4, 2)
        );
        assert_eq!(change.object.value, b"old");
        assert!(steps[1].written(10).deleted);
        assert_eq!(
            steps[1].change(10),
            None,
            "deleting a missing object changes nothing"
        );
    }

    #[test]
    fn invalid_batches_are_rejected() {
        let got = run(&[], vec![put("", Expect::Any)]);
        assert!(matches!(got, Plan::Rejected(r) if r.contains("id is empty")));
    }
}
