//! Builders shared by the unit tests.

use capstan_core::service::ContainerSpec;
use capstan_core::{Task, TaskSpec, TaskState, TaskStatus};
use time::OffsetDateTime;

/// A replicated task of `service` in `slot`, running `busybox`, assigned.
pub(crate) fn task(id: &str, service: &str, slot: u64) -> Task {
    Task {
        id: id.into(),
        service_id: format!("svc-{service}"),
        service_name: service.into(),
        slot,
        node_id: None,
        spec: TaskSpec {
            container: ContainerSpec {
                image: "busybox".into(),
                stop_grace_period_ms: 10_000,
                ..Default::default()
            },
            ..Default::default()
        },
        spec_version: 1,
        desired_state: TaskState::Running,
        status: TaskStatus {
            state: TaskState::Assigned,
            message: "assigned".into(),
            err: String::new(),
            timestamp: OffsetDateTime::UNIX_EPOCH,
            container_id: String::new(),
            exit_code: None,
            ports: Vec::new(),
        },
        attempt: 0,
        created_at: OffsetDateTime::UNIX_EPOCH,
    }
}
