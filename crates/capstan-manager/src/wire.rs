//! Conversions between the cluster API's protobuf types and the store's.

use capstan_proto::v1 as pb;
use capstan_store::{Action, Expect, Op, StoredObject, Written};

use crate::error::ManagerError;
use crate::state::WriteOutcome;

/// A protobuf write op as a store op, naming what is missing.
pub fn op_from_pb(op: pb::WriteOp) -> Result<Op, ManagerError> {
    let action = match op.op {
        Some(pb::write_op::Op::Put(v)) => Action::Put(v),
        Some(pb::write_op::Op::Delete(true)) => Action::Delete,
        Some(pb::write_op::Op::Delete(false)) | None => {
            return Err(ManagerError::Invalid(format!(
                "write op on {}/{} has neither put nor delete",
                op.table, op.id
            )))
        }
    };
    let expect = if op.any_version {
        Expect::Any
    } else if op.expected_version == 0 {
        Expect::Absent
    } else {
        Expect::Version(op.expected_version)
    };
    Ok(Op {
        table: op.table,
        id: op.id,
        action,
        expect,
    })
}

/// A store op as a protobuf write op.
pub fn op_to_pb(op: &Op) -> pb::WriteOp {
    let (expected_version, any_version) = match op.expect {
        Expect::Any => (0, true),
        Expect::Absent => (0, false),
        Expect::Version(v) => (v, false),
    };
    pb::WriteOp {
        table: op.table.clone(),
        id: op.id.clone(),
        op: Some(match &op.action {
            Action::Put(v) => pb::write_op::Op::Put(v.clone()),
            Action::Delete => pb::write_op::Op::Delete(true),
        }),
        expected_version,
        any_version,
    }
}

/// Human text for an expectation, for conflict messages.
pub fn describe_expect(e: &Expect) -> String {
    match e {
        Expect::Any => "any version".into(),
        Expect::Absent => "no object".into(),
        Expect::Version(v) => format!("version {v}"),
    }
}

/// A stored object on the wire.
pub fn object_to_pb(o: StoredObject) -> pb::StoredObject {
    pb::StoredObject {
        table: o.table,
        id: o.id,
        version: o.version,
        value: o.value,
        created_index: o.created_index,
    }
}

/// A stored object off the wire.
pub fn object_from_pb(o: pb::StoredObject) -> StoredObject {
    StoredObject {
        table: o.table,
        id: o.id,
        version: o.version,
        created_index: o.created_index,
        value: o.value,
    }
}

/// A write's outcome on the wire.
pub fn write_outcome_to_pb(w: WriteOutcome) -> pb::WriteResponse {
    pb::WriteResponse {
        log_index: w.log_index,
        objects: w
            .objects
            .into_iter()
            .map(|o| pb::WrittenObject {
                table: o.table,
                id: o.id,
                version: o.version,
                deleted: o.deleted,
            })
            .collect(),
    }
}

/// A write's outcome off the wire.
pub fn write_outcome_from_pb(w: pb::WriteResponse) -> WriteOutcome {
    WriteOutcome {
        log_index: w.log_index,
        objects: w
            .objects
            .into_iter()
            .map(|o| Written {
                table: o.table,
                id: o.id,
                version: o.version,
                deleted: o.deleted,
            })
            .collect(),
    }
}
