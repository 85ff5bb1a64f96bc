use super::sim::World;
use super::*;
use crate::fixtures::{
    at, desired, global_service, id_counter, nodes, observed, service, t0, task,
};
use crate::node::{Availability, NodeState};
use crate::service::{
    FailureAction, RestartCondition, UpdateConfig, UpdateOrder, UpdateState, UpdateStatus,
};
use crate::task::TaskState::{self, *};

/// A plan, summarised for comparison.
#[derive(Debug, Default, PartialEq)]
struct Plan {
    /// `(slot, node, attempt)` of each new task.
    created: Vec<(u64, Option<u64>, u64)>,
    /// Desired-state changes.
    desired: Vec<(String, TaskState)>,
    deleted: Vec<String>,
    service: Option<Service>,
    recheck: Option<OffsetDateTime>,
}

fn summarise(actions: Vec<Action>) -> Plan {
    let mut p = Plan::default();
    for a in actions {
        match a {
            Action::CreateTask(t) => p.created.push((t.slot, t.node_id.map(|n| n.0), t.attempt)),
            Action::SetDesiredState { task_id, desired } => p.desired.push((task_id, desired)),
            Action::DeleteTask { task_id } => p.deleted.push(task_id),
            Action::UpdateService(s) => p.service = Some(s),
            Action::RecheckAt(t) => p.recheck = Some(t),
        }
    }
    p
}

fn plan_at(svc: &Service, tasks: &[Task], ns: &[Node], now: OffsetDateTime) -> Plan {
    let view = ServiceView {
        service: svc,
        tasks,
        nodes: ns,
        now,
    };
    summarise(reconcile(&view, &mut id_counter()))
}

fn plan(svc: &Service, tasks: &[Task], ns: &[Node]) -> Plan {
    plan_at(svc, tasks, ns, t0())
}

fn shut(ids: &[&str]) -> Vec<(String, TaskState)> {
    ids.iter().map(|id| (id.to_string(), Shutdown)).collect()
}

fn strings(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// Running tasks `r1`.. of `svc` in slots 1..=n, round-robin over `nodes` 1..=m.
fn running(svc: &Service, n: u64, m: u64) -> Vec<Task> {
    (1..=n)
        .map(|i| task(&format!("r{i}"), svc, i, Some((i - 1) % m + 1)))
        .collect()
}

// ---- replicated services -------------------------------------------------

#[test]
fn creates_a_task_for_every_missing_slot() {
    let svc = service(3);
    let view = ServiceView {
        service: &svc,
        tasks: &[],
        nodes: &nodes(2),
        now: t0(),
    };
    let actions = reconcile(&view, &mut id_counter());
    assert_eq!(actions.len(), 3);
    let Action::CreateTask(t) = &actions[0] else {
        panic!("expected a new task, got {actions:?}");
    };
    assert_eq!((t.id.as_str(), t.slot, t.node_id), ("new-1", 1, None));
    assert_eq!(
        (t.service_id.as_str(), t.service_name.as_str()),
        ("svc", "web")
    );
    assert_eq!((t.spec.clone(), t.spec_version), (svc.spec.task.clone(), 1));
    assert_eq!((t.desired_state, t.status.state), (Running, New));
    assert_eq!(
        (t.status.message.as_str(), t.status.timestamp, t.created_at),
        ("created", t0(), t0())
    );
}

#[test]
fn scaling_sets_the_number_of_slots() {
    // (replicas, tasks running in slots 1..=n, expected plan)
    let cases: [(u64, u64, Plan); 3] = [
        (3, 3, Plan::default()),
        (
            4,
            2,
            Plan {
                created: vec![(3, None, 0), (4, None, 0)],
                ..Plan::default()
            },
        ),
        (
            2,
            4,
            Plan {
                desired: shut(&["r3", "r4"]),
                ..Plan::default()
            },
        ),
    ];
    for (replicas, have, want) in cases {
        let svc = service(replicas);
        let tasks = running(&svc, have, 2);
        assert_eq!(plan(&svc, &tasks, &nodes(2)), want, "{have} → {replicas}");
    }
}

#[test]
fn scaled_down_slots_lose_their_finished_tasks() {
    let svc = service(1);
    let tasks = vec![
        task("r1", &svc, 1, Some(1)),
        desired(
            observed(task("old", &svc, 2, Some(1)), Shutdown, t0()),
            Shutdown,
        ),
        desired(task("stopping", &svc, 3, Some(1)), Shutdown),
    ];
    let p = plan(&svc, &tasks, &nodes(1));
    assert_eq!(p.deleted, strings(&["old"]));
    assert!(p.desired.is_empty() && p.created.is_empty(), "{p:?}");
}

#[test]
fn tasks_leave_nodes_that_fail_or_drain() {
    // (node state, availability, moved?)
    let cases = [
        (NodeState::Down, Availability::Active, true),
        (NodeState::Disconnected, Availability::Active, true),
        (NodeState::Ready, Availability::Drain, true),
        (NodeState::Ready, Availability::Pause, false),
        (NodeState::Unknown, Availability::Active, false),
        (NodeState::Ready, Availability::Active, false),
    ];
    for (state, availability, moved) in cases {
        let svc = service(1);
        let mut ns = nodes(2);
        ns[0].state = state;
        ns[0].availability = availability;
        let t = task("r1", &svc, 1, Some(1));
        let want = if moved {
            Plan {
                desired: shut(&["r1"]),
                created: vec![(1, None, 1)],
                ..Plan::default()
            }
        } else {
            Plan::default()
        };
        assert_eq!(plan(&svc, &[t], &ns), want, "{state} {availability}");
    }
}

#[test]
fn a_task_whose_node_left_the_cluster_is_replaced() {
    let svc = service(1);
    let p = plan(&svc, &[task("r1", &svc, 1, Some(9))], &nodes(2));
    assert_eq!(p.desired, shut(&["r1"]));
    assert_eq!(p.created, [(1, None, 1)]);
}

#[test]
fn a_task_leaves_a_node_that_no_longer_satisfies_its_constraints() {
    let mut svc = service(1);
    svc.spec.task.placement.constraints = vec!["node.labels.zone==a".into()];
    let mut ns = nodes(1);
    let t = task("r1", &svc, 1, Some(1));
    assert_eq!(
        plan(&svc, std::slice::from_ref(&t), &ns).desired,
        shut(&["r1"])
    );
    ns[0].labels.insert("zone".into(), "a".into());
    assert_eq!(plan(&svc, &[t], &ns), Plan::default());
}

#[test]
fn keeps_one_live_task_per_slot() {
    let svc = service(1);
    let mut newer = task("b", &svc, 1, Some(2));
    newer.created_at = at(10);
    let pending = task("c", &svc, 1, None);
    let p = plan(
        &svc,
        &[task("a", &svc, 1, Some(1)), newer, pending],
        &nodes(2),
    );
    assert_eq!(p.desired, shut(&["a", "c"]));
    assert!(p.created.is_empty());
}

// ---- restart policy --------------------------------------------------------

fn with_restart(
    condition: RestartCondition,
    delay_ms: u64,
    max: Option<u64>,
    window_ms: u64,
) -> Service {
    let mut svc = service(1);
    let r = &mut svc.spec.task.restart;
    r.condition = condition;
    r.delay_ms = delay_ms;
    r.max_attempts = max;
    r.window_ms = window_ms;
    svc
}

#[test]
fn finished_tasks_are_restarted_as_the_policy_says() {
    use RestartCondition as C;
    // (condition, how the task ended, replaced?)
    let cases = [
        (C::Any, Complete, true),
        (C::Any, Failed, true),
        (C::Any, Shutdown, true),
        (C::OnFailure, Failed, true),
        (C::OnFailure, Rejected, true),
        (C::OnFailure, Complete, false),
        (C::None, Failed, false),
        (C::None, Complete, false),
    ];
    for (condition, end, replaced) in cases {
        let svc = with_restart(condition, 0, None, 0);
        let mut t = observed(task("r1", &svc, 1, Some(1)), end, t0());
        t.attempt = 2;
        let p = plan(&svc, std::slice::from_ref(&t), &nodes(1));
        let created = if replaced { vec![(1, None, 3)] } else { vec![] };
        assert_eq!(
            (p.desired, p.created),
            (shut(&["r1"]), created),
            "{condition:?} {end}"
        );
        // Once shut down, the same holds: no second replacement.
        let again = plan(&svc, &[desired(t, Shutdown)], &nodes(1));
        assert_eq!(
            again.created.len(),
            usize::from(replaced),
            "{condition:?} {end}"
        );
    }
}

#[test]
fn a_restart_waits_for_its_delay() {
    let svc = with_restart(RestartCondition::Any, 5_000, None, 0);
    let t = observed(task("r1", &svc, 1, Some(1)), Failed, at(1_000));
    let early = plan_at(&svc, std::slice::from_ref(&t), &nodes(1), at(2_000));
    assert_eq!(early.desired, shut(&["r1"]));
    assert_eq!((early.created.len(), early.recheck), (0, Some(at(6_000))));
    let later = plan_at(&svc, &[desired(t, Shutdown)], &nodes(1), at(6_000));
    assert_eq!((later.created, later.recheck), (vec![(1, None, 1)], None));
}

/// Slot 1's history: failures at the given times (ms), newest last.
fn failures(svc: &Service, times: &[i64]) -> Vec<Task> {
    times
        .iter()
        .enumerate()
        .map(|(i, &ms)| {
            let mut t = observed(task(&format!("f{i}"), svc, 1, Some(1)), Failed, at(ms));
            t.created_at = at(ms - 1);
            t.attempt = i as u64;
            t
        })
        .map(|t| desired(t, Shutdown))
        .collect()
}

#[test]
fn max_attempts_counts_restarts_within_the_window() {
    // (max attempts, window ms, failure times, replaced?)
    let cases: [(u64, u64, &[i64], bool); 5] = [
        (2, 0, &[100, 200], true),
        (2, 0, &[100, 200, 300], false),
        (1, 0, &[100], true),
        (2, 1_000, &[100, 200, 5_000], true),
        (2, 1_000, &[4_500, 4_800, 5_000], false),
    ];
    for (max, window, times, replaced) in cases {
        let svc = with_restart(RestartCondition::Any, 0, Some(max), window);
        let p = plan_at(&svc, &failures(&svc, times), &nodes(1), at(5_000));
        assert_eq!(
            p.created.len(),
            usize::from(replaced),
            "max {max} window {window} {times:?}"
        );
    }
}

#[test]
fn a_slot_given_up_on_comes_back_with_a_new_spec() {
    let mut svc = with_restart(RestartCondition::None, 0, None, 0);
    let t = desired(
        observed(task("r1", &svc, 1, Some(1)), Complete, t0()),
        Shutdown,
    );
    assert_eq!(
        plan(&svc, std::slice::from_ref(&t), &nodes(1)),
        Plan::default()
    );
    svc.spec_version = 2;
    assert_eq!(plan(&svc, &[t], &nodes(1)).created, [(1, None, 0)]);
}

// ---- history ---------------------------------------------------------------

#[test]
fn keeps_the_newest_finished_tasks_of_each_slot() {
    let svc = service(2);
    let mut tasks = failures(&svc, &[100, 200, 300, 400, 500, 600, 700]);
    tasks.push(task("live", &svc, 1, Some(1)));
    tasks.extend(failures(&svc, &[100, 200]).into_iter().map(|mut t| {
        t.id = format!("{}-slot2", t.id);
        t.slot = 2;
        t
    }));
    tasks.push(task("live2", &svc, 2, Some(1)));
    let p = plan_at(&svc, &tasks, &nodes(1), at(1_000));
    assert_eq!(p.deleted, strings(&["f0", "f1"]));
}

#[test]
fn a_task_that_just_finished_counts_toward_history_at_once() {
    let svc = service(1);
    let mut tasks = failures(&svc, &[100, 200, 300, 400, 500]);
    tasks.push(observed(task("last", &svc, 1, Some(1)), Failed, at(600)));
    tasks[5].created_at = at(599);
    let p = plan_at(&svc, &tasks, &nodes(1), at(1_000));
    assert_eq!(p.deleted, strings(&["f0"]));
    assert_eq!(p.desired, shut(&["last"]));
    assert_eq!(p.created, [(1, None, 1)]);
}

// ---- global services -------------------------------------------------------

#[test]
fn a_global_service_runs_one_task_on_each_eligible_node() {
    let mut svc = global_service();
    svc.spec.task.placement.constraints = vec!["node.labels.gpu!=no".into()];
    let mut ns = nodes(6);
    ns[1].availability = Availability::Pause;
    ns[2].availability = Availability::Drain;
    ns[3].state = NodeState::Down;
    ns[4].labels.insert("gpu".into(), "no".into());
    let p = plan(&svc, &[], &ns);
    assert_eq!(p.created, [(0, Some(1), 0), (0, Some(6), 0)]);
}

#[test]
fn global_tasks_leave_drained_removed_or_unmatched_nodes_only() {
    let mut svc = global_service();
    svc.spec.task.placement.constraints = vec!["node.labels.gpu!=no".into()];
    let mut ns = nodes(6);
    ns[1].availability = Availability::Pause;
    ns[2].availability = Availability::Drain;
    ns[3].state = NodeState::Down;
    ns[4].labels.insert("gpu".into(), "no".into());
    let tasks: Vec<Task> = (1..=7)
        .map(|n| task(&format!("g{n}"), &svc, 0, Some(n)))
        .collect();
    let p = plan(&svc, &tasks, &ns);
    assert_eq!(p.desired, shut(&["g3", "g5"]));
    // Node 7 left the cluster: no agent will ever stop its task.
    assert_eq!(p.deleted, strings(&["g7"]));
    assert!(p.created.is_empty(), "{p:?}");
}

#[test]
fn a_finished_global_task_restarts_only_where_new_tasks_may_run() {
    let svc = global_service();
    let mut ns = nodes(2);
    ns[1].availability = Availability::Pause;
    let tasks = vec![
        observed(task("g1", &svc, 0, Some(1)), Failed, t0()),
        observed(task("g2", &svc, 0, Some(2)), Failed, t0()),
    ];
    let p = plan(&svc, &tasks, &ns);
    assert_eq!(p.desired, shut(&["g1", "g2"]));
    assert_eq!(p.created, [(0, Some(1), 1)]);
}

// ---- rolling updates -------------------------------------------------------

/// `svc` at spec version 2 with image `nginx:2`, its tasks still on version 1.
fn updated(mut svc: Service, update: UpdateConfig) -> (Service, Vec<Task>) {
    let tasks = running(&svc, replicas(&svc), 3);
    svc.previous_spec = Some(svc.spec.clone());
    svc.spec.task.container.image = "nginx:2".into();
    svc.spec.update = update;
    svc.spec_version = 2;
    svc.updated_at = t0();
    (svc, tasks)
}

fn replicas(svc: &Service) -> u64 {
    match svc.spec.mode {
        ServiceMode::Replicated { replicas } => replicas,
        ServiceMode::Global => 0,
    }
}

fn update_config(
    parallelism: u64,
    order: UpdateOrder,
    failure_action: FailureAction,
) -> UpdateConfig {
    UpdateConfig {
        parallelism,
        delay_ms: 0,
        failure_action,
        monitor_ms: 0,
        max_failure_ratio: 0.0,
        order,
    }
}

fn state_of(p: &Plan) -> Option<UpdateState> {
    p.service
        .as_ref()
        .and_then(|s| s.update_status.as_ref())
        .map(|u| u.state)
}

#[test]
fn an_update_starts_with_its_first_batch() {
    let (svc, tasks) = updated(
        service(3),
        update_config(2, UpdateOrder::StopFirst, FailureAction::Pause),
    );
    let p = plan_at(&svc, &tasks, &nodes(3), at(10));
    let status = p.service.as_ref().and_then(|s| s.update_status.clone());
    assert_eq!(
        status,
        Some(UpdateStatus {
            state: UpdateState::Updating,
            started_at: at(10),
            completed_at: None,
            message: "update in progress".into(),
            last_batch_at: Some(at(10)),
        })
    );
    assert_eq!(p.desired, shut(&["r1", "r2"]));
    assert_eq!(p.created, [(1, None, 0), (2, None, 0)]);
}

#[test]
fn start_first_stops_the_old_task_once_the_new_one_runs() {
    let (svc, tasks) = updated(
        service(1),
        update_config(1, UpdateOrder::StartFirst, FailureAction::Pause),
    );
    let mut w = World::new(svc, tasks, nodes(2), t0());
    let first = summarise(w.reconcile());
    assert_eq!((first.desired.len(), first.created.len()), (0, 1));
    let created = w.reconcile();
    w.apply(&created);
    // Not yet running: both stay.
    assert!(summarise(w.reconcile()).desired.is_empty());
    w.run_cluster();
    let next = summarise(w.reconcile());
    assert_eq!(next.desired, shut(&["r1"]));
    assert_eq!(state_of(&next), Some(UpdateState::Completed));
}

#[test]
fn a_batch_waits_for_the_previous_one_and_the_delay() {
    let mut cfg = update_config(1, UpdateOrder::StopFirst, FailureAction::Pause);
    cfg.delay_ms = 1_000;
    cfg.monitor_ms = 500;
    let (svc, tasks) = updated(service(2), cfg);
    let mut w = World::new(svc, tasks, nodes(2), t0());
    let p = summarise(w.step(0));
    assert_eq!(p.created.len(), 1);
    // Running now, but inside the monitor window: wait for it.
    let p = summarise(w.reconcile());
    assert_eq!((p.created.len(), p.recheck), (0, Some(at(500))));
    w.now = at(600);
    // Monitor over, but the delay since the batch runs to 1000.
    let p = summarise(w.reconcile());
    assert_eq!((p.created.len(), p.recheck), (0, Some(at(1_000))));
    w.now = at(1_000);
    let p = summarise(w.reconcile());
    assert_eq!(p.created, [(2, None, 0)]);
}

#[test]
fn an_update_completes_when_every_task_runs_the_new_spec() {
    let (svc, tasks) = updated(
        service(3),
        update_config(1, UpdateOrder::StopFirst, FailureAction::Pause),
    );
    let mut w = World::new(svc, tasks, nodes(3), t0());
    for _ in 0..10 {
        w.step(1_000);
    }
    let status = w.service.update_status.clone().expect("an update ran");
    assert_eq!(status.state, UpdateState::Completed);
    assert_eq!(status.message, "update completed");
    assert!(status.completed_at.is_some());
    assert!(w.live().iter().all(|t| t.spec.container.image == "nginx:2"));
    assert_eq!(w.live().len(), 3);
}

/// Runs an update whose new tasks all fail: returns the world after `steps`.
fn failing_update(action: FailureAction, ratio: f64, steps: usize) -> World {
    let mut cfg = update_config(1, UpdateOrder::StopFirst, action);
    cfg.max_failure_ratio = ratio;
    let (mut svc, tasks) = updated(service(3), cfg);
    svc.spec.rollback = update_config(0, UpdateOrder::StopFirst, FailureAction::Pause);
    let mut w = World::new(svc, tasks, nodes(3), t0());
    for _ in 0..steps {
        w.step(1_000);
        for t in &mut w.tasks {
            if t.spec.container.image == "nginx:2" && t.status.state == Running {
                t.status.state = Failed;
            }
        }
    }
    w
}

#[test]
fn a_failing_update_pauses() {
    let w = failing_update(FailureAction::Pause, 0.0, 6);
    let status = w.service.update_status.clone().expect("an update ran");
    assert_eq!(status.state, UpdateState::Paused);
    assert!(
        status
            .message
            .starts_with("update paused due to failure or early termination of task t"),
        "{}",
        status.message
    );
    // Only the first batch was replaced.
    let old = w
        .live()
        .iter()
        .filter(|t| t.spec.container.image == "nginx:1")
        .count();
    assert_eq!(old, 2);
}

#[test]
fn continue_keeps_updating_despite_failures() {
    let w = failing_update(FailureAction::Continue, 0.0, 8);
    let status = w.service.update_status.clone().expect("an update ran");
    // Every slot was updated; the new tasks keep failing, so not "completed".
    assert_eq!(status.state, UpdateState::Updating);
    let on_old = w
        .tasks
        .iter()
        .filter(|t| t.spec.container.image == "nginx:1");
    assert!(
        on_old.clone().all(|t| t.desired_state == Shutdown),
        "{:?}",
        on_old.collect::<Vec<_>>()
    );
}

#[test]
fn failures_within_the_ratio_are_tolerated() {
    let (svc, mut tasks) = updated(
        service(3),
        update_config(0, UpdateOrder::StopFirst, FailureAction::Pause),
    );
    let mut svc = svc;
    svc.spec.update.max_failure_ratio = 0.5;
    svc.update_status = Some(UpdateStatus {
        state: UpdateState::Updating,
        started_at: t0(),
        completed_at: None,
        message: String::new(),
        last_batch_at: Some(t0()),
    });
    // Three new tasks, one failed: 1/3 <= 0.5.
    tasks.clear();
    for i in 1..=3 {
        let mut t = task(&format!("n{i}"), &svc, i, Some(i));
        t.created_at = at(1);
        tasks.push(t);
    }
    tasks[0] = observed(tasks[0].clone(), Failed, at(5));
    let p = plan_at(&svc, &tasks, &nodes(3), at(10));
    assert_ne!(state_of(&p), Some(UpdateState::Paused));
    tasks[1] = observed(tasks[1].clone(), Rejected, at(6));
    let p = plan_at(&svc, &tasks, &nodes(3), at(10));
    assert_eq!(state_of(&p), Some(UpdateState::Paused));
}

#[test]
fn a_failing_update_rolls_back_to_the_previous_spec() {
    let w = failing_update(FailureAction::Rollback, 0.0, 8);
    let status = w.service.update_status.clone().expect("an update ran");
    assert_eq!(status.state, UpdateState::RollbackCompleted, "{status:?}");
    assert_eq!(w.service.spec.task.container.image, "nginx:1");
    let previous = w
        .service
        .previous_spec
        .as_ref()
        .expect("the failed spec is kept");
    assert_eq!(previous.task.container.image, "nginx:2");
    assert_eq!(w.service.spec_version, 3);
    let live = w.live();
    assert_eq!(live.len(), 3);
    assert!(live.iter().all(|t| t.spec.container.image == "nginx:1"));
}

#[test]
fn the_rollback_itself_starts_with_the_failed_spec_as_previous() {
    let (mut svc, mut tasks) = updated(
        service(2),
        update_config(1, UpdateOrder::StopFirst, FailureAction::Rollback),
    );
    svc.update_status = Some(UpdateStatus {
        state: UpdateState::Updating,
        started_at: t0(),
        completed_at: None,
        message: String::new(),
        last_batch_at: Some(t0()),
    });
    let mut failed = observed(task("n1", &svc, 1, Some(1)), Failed, at(5));
    failed.created_at = at(1);
    tasks[0] = desired(tasks[0].clone(), Shutdown);
    tasks.push(failed);
    let p = plan_at(&svc, &tasks, &nodes(2), at(10));
    let s = p.service.expect("rolled back");
    let status = s.update_status.expect("status");
    assert_eq!(
        (status.state, status.started_at),
        (UpdateState::RollbackStarted, at(10))
    );
    assert_eq!(
        status.message,
        "update rolled back due to failure or early termination of task n1"
    );
    assert_eq!((s.spec_version, s.updated_at), (3, at(10)));
    assert_eq!(s.spec.task.container.image, "nginx:1");
    // The failed slot is refilled with the old spec right away.
    assert_eq!(p.created, [(1, None, 1)]);
}

#[test]
fn a_failing_rollback_pauses() {
    let (mut svc, mut tasks) = updated(
        service(2),
        update_config(1, UpdateOrder::StopFirst, FailureAction::Pause),
    );
    svc.update_status = Some(UpdateStatus {
        state: UpdateState::RollbackStarted,
        started_at: t0(),
        completed_at: None,
        message: "manually requested rollback".into(),
        last_batch_at: None,
    });
    let mut failed = observed(task("n1", &svc, 1, Some(1)), Failed, at(5));
    failed.created_at = at(1);
    tasks.push(failed);
    let p = plan_at(&svc, &tasks, &nodes(2), at(10));
    let status = p.service.and_then(|s| s.update_status).expect("status");
    assert_eq!(status.state, UpdateState::RollbackPaused);
    assert!(
        status.message.starts_with("rollback paused due to"),
        "{}",
        status.message
    );
}

#[test]
fn a_manual_rollback_uses_the_rollback_config() {
    let (mut svc, tasks) = updated(
        service(3),
        update_config(1, UpdateOrder::StopFirst, FailureAction::Pause),
    );
    svc.spec.rollback = update_config(0, UpdateOrder::StopFirst, FailureAction::Pause);
    svc.update_status = Some(UpdateStatus {
        state: UpdateState::RollbackStarted,
        started_at: t0(),
        completed_at: None,
        message: "manually requested rollback".into(),
        last_batch_at: None,
    });
    let p = plan(&svc, &tasks, &nodes(3));
    assert_eq!(p.created.len(), 3, "parallelism 0 replaces all at once");
}

#[test]
fn a_paused_update_resumes_when_the_spec_changes_again() {
    let (mut svc, tasks) = updated(
        service(2),
        update_config(1, UpdateOrder::StopFirst, FailureAction::Pause),
    );
    svc.update_status = Some(UpdateStatus {
        state: UpdateState::Paused,
        started_at: t0(),
        completed_at: None,
        message: "update paused".into(),
        last_batch_at: Some(t0()),
    });
    assert_eq!(plan_at(&svc, &tasks, &nodes(2), at(10)), Plan::default());
    svc.updated_at = at(5);
    svc.spec_version = 3;
    let p = plan_at(&svc, &tasks, &nodes(2), at(10));
    assert_eq!(state_of(&p), Some(UpdateState::Updating));
    assert_eq!(p.created.len(), 1);
}

#[test]
fn a_global_update_replaces_tasks_on_their_nodes() {
    let mut svc = global_service();
    let tasks: Vec<Task> = (1..=2)
        .map(|n| task(&format!("g{n}"), &svc, 0, Some(n)))
        .collect();
    svc.spec.task.container.image = "nginx:2".into();
    svc.spec.update = update_config(0, UpdateOrder::StopFirst, FailureAction::Pause);
    svc.spec_version = 2;
    let mut ns = nodes(3);
    ns[1].state = NodeState::Down;
    let p = plan(&svc, &tasks, &ns);
    // Node 2 is down: its task waits for it; node 3 gets its first task.
    assert_eq!(p.desired, shut(&["g1"]));
    assert_eq!(p.created, [(0, Some(3), 0), (0, Some(1), 0)]);
}

// ---- idempotence and removed services -----------------------------------

#[test]
fn a_second_pass_after_applying_changes_nothing() {
    let (svc, tasks) = updated(
        service(4),
        update_config(2, UpdateOrder::StartFirst, FailureAction::Pause),
    );
    let mut ns = nodes(3);
    ns[0].state = NodeState::Down;
    let mut w = World::new(svc, tasks, ns, t0());
    let first = w.reconcile();
    assert!(!first.is_empty());
    w.apply(&first);
    let second = w.reconcile();
    assert!(
        second.iter().all(|a| matches!(a, Action::RecheckAt(_))),
        "{second:?}"
    );
}

#[test]
fn tasks_of_a_removed_service_stop_then_go() {
    let svc = service(3);
    let tasks = vec![
        task("run", &svc, 1, Some(1)),
        observed(task("done", &svc, 2, Some(1)), Failed, t0()),
        task("waiting", &svc, 3, None),
        desired(task("stopping", &svc, 4, Some(1)), Shutdown),
    ];
    let p = summarise(reconcile_removed(&tasks));
    assert_eq!(p.desired, shut(&["run"]));
    assert_eq!(p.deleted, strings(&["done", "waiting"]));
}

#[test]
fn tasks_desired_remove_are_deleted_once_over() {
    let svc = service(1);
    let tasks = vec![
        task("r1", &svc, 1, Some(1)),
        desired(
            observed(task("gone", &svc, 1, Some(1)), Shutdown, t0()),
            Remove,
        ),
        desired(task("going", &svc, 1, Some(1)), Remove),
    ];
    let p = plan(&svc, &tasks, &nodes(1));
    assert_eq!(p.deleted, strings(&["gone"]));
    assert!(p.desired.is_empty() && p.created.is_empty());
}

#[test]
fn history_per_node_for_global_services() {
    let svc = global_service();
    let mut tasks: Vec<Task> = Vec::new();
    for i in 0..7 {
        let mut t = desired(
            observed(task(&format!("h{i}"), &svc, 0, Some(1)), Failed, at(i)),
            Shutdown,
        );
        t.created_at = at(i);
        tasks.push(t);
    }
    tasks.push(task("live", &svc, 0, Some(1)));
    let p = plan_at(&svc, &tasks, &nodes(1), at(100));
    assert_eq!(p.deleted, strings(&["h0", "h1"]));
    assert!(p.created.is_empty(), "{p:?}");
}

// ---- regressions found by the properties -----------------------------------

#[test]
fn history_keeps_the_failures_that_count_against_max_attempts() {
    let svc = with_restart(RestartCondition::Any, 0, Some(3), 0);
    let mut tasks = failures(&svc, &[100, 200]);
    for i in 0..5 {
        let mut t = desired(
            observed(
                task(&format!("s{i}"), &svc, 1, Some(1)),
                Shutdown,
                at(300 + i),
            ),
            Shutdown,
        );
        t.created_at = at(300 + i);
        tasks.push(t);
    }
    let mut last = observed(task("last", &svc, 1, Some(1)), Failed, at(900));
    last.created_at = at(800);
    last.attempt = 2;
    tasks.push(last);
    let p = plan_at(&svc, &tasks, &nodes(1), at(1_000));
    // Six finished tasks that do not count: the oldest goes; f0 and f1 stay.
    assert_eq!(p.deleted, strings(&["s0"]));
    assert_eq!(p.created, [(1, None, 3)]);
}

#[test]
fn a_rollback_is_not_complete_while_an_old_task_runs_beside_its_replacement() {
    let mut svc = service(1);
    let failed_spec = {
        let mut s = svc.spec.clone();
        s.task.container.image = "nginx:2".into();
        s
    };
    svc.previous_spec = Some(failed_spec.clone());
    svc.spec_version = 3;
    svc.update_status = Some(UpdateStatus {
        state: UpdateState::RollbackStarted,
        started_at: t0(),
        completed_at: None,
        message: String::new(),
        last_batch_at: None,
    });
    let mut back = observed(task("back", &svc, 1, Some(1)), Assigned, t0());
    back.spec_version = 1;
    let mut bad = task("bad", &svc, 1, Some(1));
    bad.spec = failed_spec.task;
    bad.spec_version = 2;
    let p = plan(&svc, &[back, bad], &nodes(1));
    assert_eq!(p, Plan::default());
}

#[test]
fn a_pass_that_deletes_unplaceable_tasks_does_not_count_them_as_running() {
    let mut svc = global_service();
    svc.update_status = Some(UpdateStatus {
        state: UpdateState::Updating,
        started_at: t0(),
        completed_at: None,
        message: String::new(),
        last_batch_at: None,
    });
    let stray = task("stray", &svc, 0, None);
    let p = plan(&svc, &[stray], &[]);
    assert_eq!(p.deleted, strings(&["stray"]));
    assert_eq!(state_of(&p), Some(UpdateState::Completed));
}
