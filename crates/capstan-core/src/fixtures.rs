//! Small builders of nodes, services and tasks for the unit tests of the
//! scheduler and the orchestrator.

use std::collections::BTreeMap;

use time::{Duration, OffsetDateTime};

use crate::ids::NodeId;
use crate::node::{Availability, Node, NodeDescription, NodeRole, NodeState};
use crate::service::{
    ContainerSpec, Resources, RestartPolicy, Service, ServiceMode, ServiceSpec, TaskSpec,
    UpdateConfig,
};
use crate::task::{Task, TaskState, TaskStatus};

/// The tests' epoch: a fixed, readable instant.
pub fn t0() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + Duration::days(20_000)
}

/// `t0()` plus `ms` milliseconds.
pub fn at(ms: i64) -> OffsetDateTime {
    t0() + Duration::milliseconds(ms)
}

/// A ready, active worker with 4 CPUs and 8 GiB, running linux on x86_64.
pub fn node(id: u64, hostname: &str) -> Node {
    Node {
        id: NodeId(id),
        hostname: hostname.into(),
        role: NodeRole::Worker,
        addr: format!("{hostname}:2377"),
        state: NodeState::Ready,
        availability: Availability::Active,
        labels: BTreeMap::new(),
        created_at: t0(),
        updated_at: t0(),
        cert_not_after: t0(),
        description: Some(NodeDescription {
            hostname: hostname.into(),
            os: "linux".into(),
            arch: "x86_64".into(),
            resources: Resources {
                nano_cpus: 4_000_000_000,
                memory_bytes: 8 << 30,
            },
            engine_version: "27.0.0".into(),
            ..NodeDescription::default()
        }),
        capstan_version: String::new(),
    }
}

/// `n` ready nodes with ids 1..=n and hostnames `n1`...
pub fn nodes(n: u64) -> Vec<Node> {
    (1..=n).map(|i| node(i, &format!("n{i}"))).collect()
}

/// A task spec running `image` that restarts immediately on any exit.
pub fn task_spec(image: &str) -> TaskSpec {
    TaskSpec {
        container: ContainerSpec {
            image: image.into(),
            ..ContainerSpec::default()
        },
        restart: RestartPolicy {
            delay_ms: 0,
            ..RestartPolicy::default()
        },
        ..TaskSpec::default()
    }
}

/// A replicated service `web` (id `svc`) of `replicas` tasks of `nginx:1`,
/// spec version 1, updated one task at a time with no monitor window.
pub fn service(replicas: u64) -> Service {
    Service {
        id: "svc".into(),
        spec: ServiceSpec {
            name: "web".into(),
            labels: BTreeMap::new(),
            mode: ServiceMode::Replicated { replicas },
            task: task_spec("nginx:1"),
            update: UpdateConfig {
                monitor_ms: 0,
                ..UpdateConfig::default()
            },
            rollback: UpdateConfig {
                monitor_ms: 0,
                ..UpdateConfig::default()
            },
        },
        previous_spec: None,
        spec_version: 1,
        owner: None,
        update_status: None,
        created_at: t0(),
        updated_at: t0(),
    }
}

/// A global service `agent` (id `svc`).
pub fn global_service() -> Service {
    let mut s = service(0);
    s.spec.name = "agent".into();
    s.spec.mode = ServiceMode::Global;
    s
}

/// A task of `service` in `slot`, running on `node` (or pending when `None`),
/// with the service's current spec, created and last reported at `t0()`.
pub fn task(id: &str, service: &Service, slot: u64, node: Option<u64>) -> Task {
    Task {
        id: id.into(),
        service_id: service.id.clone(),
        service_name: service.spec.name.clone(),
        slot,
        node_id: node.map(NodeId),
        spec: service.spec.task.clone(),
        spec_version: service.spec_version,
        desired_state: TaskState::Running,
        status: TaskStatus {
            state: if node.is_some() {
                TaskState::Running
            } else {
                TaskState::Pending
            },
            message: String::new(),
            err: String::new(),
            timestamp: t0(),
            container_id: String::new(),
            exit_code: None,
            ports: Vec::new(),
        },
        attempt: 0,
        created_at: t0(),
    }
}

/// The same task, observed in `state` at `when`.
pub fn observed(mut t: Task, state: TaskState, when: OffsetDateTime) -> Task {
    t.status.state = state;
    t.status.timestamp = when;
    t
}

/// The same task with another desired state.
pub fn desired(mut t: Task, state: TaskState) -> Task {
    t.desired_state = state;
    t
}

/// Ids counting up from `new-1`.
pub fn id_counter() -> impl FnMut() -> String {
    let mut n = 0;
    move || {
        n += 1;
        format!("new-{n}")
    }
}
