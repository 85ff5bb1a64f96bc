//! Limits on what may be proposed. The manager checks them before proposing;
//! the state machine checks them again at apply so that every replica rejects
//! the same entries.

use std::collections::BTreeSet;

use crate::types::{Action, Op, Request};

/// Longest table or id, in bytes (a DNS name's limit).
pub const MAX_NAME_BYTES: usize = 253;
/// Largest value of one object, in bytes.
pub const MAX_VALUE_BYTES: usize = 4 * 1024 * 1024;
/// Largest sum of values in one batch, in bytes; keeps one log entry well
/// under the RPC message limit.
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// Checks one op: table and id non-empty, at most [`MAX_NAME_BYTES`], without
/// NUL or control characters; a put's value at most [`MAX_VALUE_BYTES`].
pub fn validate_op(op: &Op) -> Result<(), String> {
    validate_name("table", &op.table)?;
    validate_name("id", &op.id)?;
    if let Action::Put(value) = &op.action {
        if value.len() > MAX_VALUE_BYTES {
            return Err(format!(
                "value of {}/{} is {} bytes, more than the {} byte limit; store large data outside the cluster store",
                op.table,
                op.id,
                value.len(),
                MAX_VALUE_BYTES
            ));
        }
    }
    Ok(())
}

/// Checks a whole request: every op valid, no object named twice, values
/// together at most [`MAX_BATCH_BYTES`] (for a [`Request::Batch`], in each
/// of its writes).
pub fn validate_request(request: &Request) -> Result<(), String> {
    match request {
        Request::Write { ops } => validate_ops(ops),
        Request::Batch { writes } => writes.iter().try_for_each(|ops| validate_ops(ops)),
    }
}

/// Checks the ops of one atomic write.
pub fn validate_ops(ops: &[Op]) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    let mut total = 0usize;
    for op in ops {
        validate_op(op)?;
        if !seen.insert((op.table.as_str(), op.id.as_str())) {
            return Err(format!(
                "{}/{} appears more than once in one batch; merge the ops into one",
                op.table, op.id
            ));
        }
        if let Action::Put(value) = &op.action {
            total += value.len();
        }
    }
    if total > MAX_BATCH_BYTES {
        return Err(format!(
            "batch carries {total} bytes of values, more than the {MAX_BATCH_BYTES} byte limit; split it into smaller batches"
        ));
    }
    Ok(())
}

fn validate_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!(
            "{what} is empty; every object needs a table and an id"
        ));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "{what} {:?}... is {} bytes, more than the {MAX_NAME_BYTES} byte limit",
            name.chars().take(32).collect::<String>(),
            name.len()
        ));
    }
    if let Some(bad) = name.chars().find(|c| c.is_control()) {
        return Err(format!(
            "{what} {name:?} contains the control character {:?}; use printable characters only",
            bad
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Expect;

    fn op(table: &str, id: &str, value_len: usize) -> Op {
        Op {
            table: table.into(),
            id: id.into(),
            action: Action::Put(vec![0; value_len]),
            expect: Expect::Any,
        }
    }

    #[test]
    fn op_limits() {
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        let at_limit = "x".repeat(MAX_NAME_BYTES);
        let cases: &[(Op, bool)] = &[
            (op("services", "web", 10), true),
            (op(&at_limit, &at_limit, 0), true),
            (op("services", "web", MAX_VALUE_BYTES), true),
            (op("", "web", 0), false),
            (op("services", "", 0), false),
            (op(&long, "web", 0), false),
            (op("services", &long, 0), false),
            (op("ser\0vices", "web", 0), false),
            (op("services", "we\nb", 0), false),
            (op("services", "we\u{7f}b", 0), false),
            (op("services", "web", MAX_VALUE_BYTES + 1), false),
        ];
        for (op, ok) in cases {
            assert_eq!(
                validate_op(op).is_ok(),
                *ok,
                "{}/{} len {:?}",
                op.table,
                op.id,
                op.action
            );
        }
    }

    #[test]
    fn request_limits() {
        let dup = Request::Write {
            ops: vec![op("t", "a", 1), op("t", "a", 1)],
        };
        assert!(validate_request(&dup)
            .unwrap_err()
            .contains("more than once"));

        let big = Request::Write {
            ops: (0..5)
                .map(|i| op("t", &i.to_string(), MAX_VALUE_BYTES))
                .collect(),
        };
        assert!(validate_request(&big).unwrap_err().contains("split it"));

        let fine = Request::Write {
            ops: vec![op("t", "a", 1), op("u", "a", 1)],
        };
        assert_eq!(validate_request(&fine), Ok(()));
    }
}
