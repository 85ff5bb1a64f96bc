//! Properties of `reconcile` over random services, tasks and nodes.

use std::collections::BTreeMap;

use proptest::prelude::*;
use time::Duration;

use super::sim::World;
use super::*;
use crate::fixtures::{at, node, service, t0};
use crate::ids::NodeId;
use crate::node::{Availability, NodeState};
use crate::service::{
    FailureAction, RestartCondition, RestartPolicy, UpdateConfig, UpdateOrder, UpdateState,
    UpdateStatus,
};

/// The random ingredients of one service's world.
#[derive(Clone, Debug)]
struct Scenario {
    global: bool,
    replicas: u64,
    /// Whether the current spec is the second image (tasks on the first are
    /// dirty).
    updated: bool,
    restart: RestartPolicy,
    update: UpdateConfig,
    status: Option<(UpdateState, i64, Option<i64>)>,
    constrained: bool,
    nodes: Vec<(NodeState, Availability, bool)>,
    tasks: Vec<TaskSeed>,
}

#[derive(Clone, Debug)]
struct TaskSeed {
    slot: u64,
    node: Option<u64>,
    new_spec: bool,
    desired: TaskState,
    state: TaskState,
    age_ms: i64,
    attempt: u64,
}

fn arb_state() -> impl Strategy<Value = TaskState> {
    use TaskState::*;
    prop::sample::select(vec![
        New, Pending, Assigned, Accepted, Preparing, Ready, Starting, Running, Running, Running,
        Complete, Shutdown, Failed, Rejected, Orphaned,
    ])
}

fn arb_task() -> impl Strategy<Value = TaskSeed> {
    let desired = prop_oneof![
        6 => Just(TaskState::Running),
        3 => Just(TaskState::Shutdown),
        1 => Just(TaskState::Remove),
    ];
    (
        0..6u64,
        prop::option::of(1..6u64),
        any::<bool>(),
        desired,
        arb_state(),
        0..20_000i64,
        0..3u64,
    )
        .prop_map(
            |(slot, node, new_spec, desired, state, age_ms, attempt)| TaskSeed {
                slot,
                node,
                new_spec,
                desired,
                state,
                age_ms,
                attempt,
            },
        )
}

fn arb_restart() -> impl Strategy<Value = RestartPolicy> {
    let condition = prop::sample::select(vec![
        RestartCondition::Any,
        RestartCondition::OnFailure,
        RestartCondition::None,
    ]);
    (
        condition,
        prop::sample::select(vec![0u64, 2_000]),
        prop::option::of(1..3u64),
        prop::sample::select(vec![0u64, 10_000]),
    )
        .prop_map(
            |(condition, delay_ms, max_attempts, window_ms)| RestartPolicy {
                condition,
                delay_ms,
                max_attempts,
                window_ms,
            },
        )
}

fn arb_update() -> impl Strategy<Value = UpdateConfig> {
    let action = prop::sample::select(vec![
        FailureAction::Pause,
        FailureAction::Continue,
        FailureAction::Rollback,
    ]);
    let order = prop::sample::select(vec![UpdateOrder::StopFirst, UpdateOrder::StartFirst]);
    (
        0..3u64,
        prop::sample::select(vec![0u64, 1_000]),
        action,
        prop::sample::select(vec![0u64, 500]),
        prop::sample::select(vec![0.0, 0.5]),
        order,
    )
        .prop_map(
            |(parallelism, delay_ms, failure_action, monitor_ms, max_failure_ratio, order)| {
                UpdateConfig {
                    parallelism,
                    delay_ms,
                    failure_action,
                    monitor_ms,
                    max_failure_ratio,
                    order,
                }
            },
        )
}

fn arb_status() -> impl Strategy<Value = Option<(UpdateState, i64, Option<i64>)>> {
    let state = prop::sample::select(vec![
        UpdateState::Updating,
        UpdateState::Paused,
        UpdateState::Completed,
        UpdateState::RollbackStarted,
        UpdateState::RollbackPaused,
        UpdateState::RollbackCompleted,
    ]);
    prop::option::of((state, 0..20_000i64, prop::option::of(0..20_000i64)))
}

fn arb_nodes() -> impl Strategy<Value = Vec<(NodeState, Availability, bool)>> {
    let state = prop::sample::select(vec![
        NodeState::Ready,
        NodeState::Ready,
        NodeState::Down,
        NodeState::Unknown,
        NodeState::Disconnected,
    ]);
    let availability = prop::sample::select(vec![
        Availability::Active,
        Availability::Active,
        Availability::Pause,
        Availability::Drain,
    ]);
    prop::collection::vec((state, availability, any::<bool>()), 0..6)
}

fn arb_scenario() -> impl Strategy<Value = Scenario> {
    (
        (
            any::<bool>(),
            0..5u64,
            any::<bool>(),
            arb_restart(),
            arb_update(),
            arb_status(),
            any::<bool>(),
        ),
        arb_nodes(),
        prop::collection::vec(arb_task(), 0..14),
    )
        .prop_map(
            |((global, replicas, updated, restart, update, status, constrained), nodes, tasks)| {
                Scenario {
                    global,
                    replicas,
                    updated,
                    restart,
                    update,
                    status,
                    constrained,
                    nodes,
                    tasks,
                }
            },
        )
}

/// Builds the world a scenario describes, at `t0() + 20 s`.
fn world(s: &Scenario) -> World {
    let now = at(20_000);
    let mut svc = service(s.replicas);
    if s.global {
        svc.spec.mode = ServiceMode::Global;
    }
    svc.spec.task.restart = s.restart.clone();
    if s.constrained {
        svc.spec.task.placement.constraints = vec!["node.labels.zone!=z0".into()];
    }
    svc.spec.update = s.update.clone();
    svc.spec.rollback = s.update.clone();
    let old = svc.spec.clone();
    let mut new = old.clone();
    new.task.container.image = "nginx:2".into();
    new.task.restart = s.restart.clone();
    if s.updated {
        svc.spec = new.clone();
        svc.previous_spec = Some(old.clone());
        svc.spec_version = 2;
    }
    svc.updated_at = at(10_000);
    svc.update_status = s.status.map(|(state, started, batch)| UpdateStatus {
        state,
        started_at: at(started),
        completed_at: None,
        message: String::new(),
        last_batch_at: batch.map(at),
    });
    let nodes = s
        .nodes
        .iter()
        .enumerate()
        .map(|(i, (state, availability, zone0))| {
            let mut n = node(i as u64 + 1, &format!("n{}", i + 1));
            n.state = *state;
            n.availability = *availability;
            n.labels
                .insert("zone".into(), if *zone0 { "z0" } else { "z1" }.into());
            n
        })
        .collect();
    let tasks = s
        .tasks
        .iter()
        .enumerate()
        .map(|(i, seed)| make_task(&svc, &old, &new, i, seed, now))
        .collect();
    World::new(svc, tasks, nodes, now)
}

fn make_task(
    svc: &Service,
    old: &crate::service::ServiceSpec,
    new: &crate::service::ServiceSpec,
    i: usize,
    seed: &TaskSeed,
    now: OffsetDateTime,
) -> Task {
    let mut t = crate::fixtures::task(&format!("x{i}"), svc, seed.slot, seed.node);
    let (spec, version) = if seed.new_spec { (new, 2) } else { (old, 1) };
    t.spec = spec.task.clone();
    t.spec_version = version;
    if svc.spec.mode == ServiceMode::Global {
        t.slot = 0;
    }
    t.desired_state = seed.desired;
    // Only the scheduler gives a replicated task a node, and then it is
    // at least assigned; a task without a node is at most pending.
    let global = svc.spec.mode == ServiceMode::Global;
    t.status.state = match seed.node {
        None => seed.state.min(TaskState::Pending),
        Some(_) if !global => seed.state.max(TaskState::Assigned),
        Some(_) => seed.state,
    };
    t.status.timestamp = now - Duration::milliseconds(seed.age_ms);
    t.created_at = t.status.timestamp - Duration::milliseconds(100);
    t.attempt = seed.attempt;
    t
}

fn only_rechecks(actions: &[Action]) -> bool {
    actions.iter().all(|a| matches!(a, Action::RecheckAt(_)))
}

/// Live tasks per slot key (slot number, or node for global services).
fn live_per_slot(w: &World) -> BTreeMap<(u64, Option<NodeId>), Vec<&Task>> {
    let global = w.service.spec.mode == ServiceMode::Global;
    let mut out: BTreeMap<_, Vec<&Task>> = BTreeMap::new();
    for t in w.live() {
        let key = if global {
            (0, t.node_id)
        } else {
            (t.slot, None)
        };
        out.entry(key).or_default().push(t);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// (a) Once a pass's actions are applied, the next pass on the same
    /// state has nothing to add; and no slot holds two live tasks unless a
    /// start-first update is under way (new task not yet running beside the
    /// old running one).
    #[test]
    fn reconcile_is_idempotent_once_applied(s in arb_scenario()) {
        let mut w = world(&s);
        let first = w.reconcile();
        w.apply(&first);
        let second = w.reconcile();
        prop_assert!(only_rechecks(&second), "first {:#?}\nsecond {:#?}", first, second);
        for (slot, live) in live_per_slot(&w) {
            if live.len() > 1 {
                let clean = |t: &&Task| t.spec == w.service.spec.task;
                let new_waiting = live.iter().filter(|t| clean(t) && t.status.state != TaskState::Running).count();
                let old_running = live.iter().filter(|t| !clean(t) && t.status.state == TaskState::Running).count();
                prop_assert_eq!((live.len(), new_waiting, old_running), (2, 1, 1), "slot {:?}", slot);
            }
        }
        for a in &first {
            if let Action::CreateTask(t) = a {
                prop_assert_eq!(t.node_id.is_some(), s.global, "only global tasks name a node");
            }
        }
    }

    /// (a, continued) The same holds at every step of a cluster's life in
    /// which tasks keep failing and time passes.
    #[test]
    fn reconcile_stays_idempotent_while_tasks_fail(
        s in arb_scenario(),
        steps in prop::collection::vec((any::<u16>(), 0..3_000i64), 1..8),
    ) {
        let mut w = world(&s);
        for (failures, ms) in steps {
            let actions = w.reconcile();
            w.apply(&actions);
            let again = w.reconcile();
            prop_assert!(only_rechecks(&again), "after {:#?}\nagain {:#?}", actions, again);
            w.run_cluster();
            let now = w.now;
            for (i, t) in w.tasks.iter_mut().enumerate() {
                if t.status.state == TaskState::Running && failures & (1 << (i % 16)) != 0 {
                    t.status.state = TaskState::Failed;
                    t.status.timestamp = now;
                }
            }
            w.now += Duration::milliseconds(ms);
        }
    }

    /// (b) A replicated service whose tasks do not fail settles with
    /// exactly `replicas` live tasks, one per slot 1..=replicas.
    #[test]
    fn a_replicated_service_settles_at_its_replica_count(
        s in arb_scenario(),
        ready in 1..4u64,
        delay_ms in prop::sample::select(vec![0u64, 1_500]),
    ) {
        let mut s = s;
        s.global = false;
        s.constrained = false;
        s.restart = RestartPolicy { condition: RestartCondition::Any, delay_ms, max_attempts: None, window_ms: 0 };
        let mut w = world(&s);
        // "Unknown" only lasts until a node's first heartbeat or its timeout.
        for n in &mut w.nodes {
            if n.state == NodeState::Unknown {
                n.state = NodeState::Down;
            }
        }
        w.nodes.extend((1..=ready).map(|i| node(100 + i, &format!("ready{i}"))));
        for _ in 0..40 {
            w.step(1_000);
        }
        let slots: Vec<u64> = live_per_slot(&w)
            .into_iter()
            .map(|((slot, _), live)| {
                assert_eq!(live.len(), 1, "slot {slot}: {live:#?}");
                slot
            })
            .collect();
        prop_assert_eq!(slots, (1..=s.replicas).collect::<Vec<_>>());
        prop_assert!(only_rechecks(&w.reconcile()));
    }
}

#[test]
fn the_world_builder_makes_what_it_says() {
    let s = Scenario {
        global: false,
        replicas: 2,
        updated: true,
        restart: RestartPolicy::default(),
        update: UpdateConfig::default(),
        status: None,
        constrained: false,
        nodes: vec![(NodeState::Ready, Availability::Active, false)],
        tasks: vec![],
    };
    let w = world(&s);
    assert_eq!(w.service.spec_version, 2);
    assert_eq!(w.now, t0() + Duration::seconds(20));
    assert_eq!(w.nodes.len(), 1);
    assert_ne!(
        Some(&w.service.spec.task),
        w.service.previous_spec.as_ref().map(|p| &p.task)
    );
}
