use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::fixtures::{node, nodes, observed, service, t0, task};
use crate::service::{PortConfig, SpreadPreference};

/// `n` pending tasks of `svc`'s spec, ids `p1`...
fn pending_tasks(svc: &crate::service::Service, n: usize) -> Vec<Task> {
    (1..=n)
        .map(|i| task(&format!("p{i}"), svc, i as u64, None))
        .collect()
}

fn run(nodes: &[Node], existing: &[Task], pending: &[Task]) -> Vec<Decision> {
    let mut all = existing.to_vec();
    all.extend_from_slice(pending);
    let refs: Vec<&Task> = pending.iter().collect();
    schedule(&SchedulerInput { nodes, tasks: &all }, &refs)
}

/// Node ids (as numbers) of the assignments; `None` for a task left pending.
fn placements(decisions: &[Decision]) -> Vec<Option<u64>> {
    decisions
        .iter()
        .map(|d| match d {
            Decision::Assign { node_id, .. } => Some(node_id.0),
            Decision::NoSuitableNode { .. } => None,
        })
        .collect()
}

fn reasons(decisions: &[Decision]) -> Vec<&str> {
    decisions
        .iter()
        .filter_map(|d| match d {
            Decision::NoSuitableNode { reason, .. } => Some(reason.as_str()),
            Decision::Assign { .. } => None,
        })
        .collect()
}

#[test]
fn spreads_replicas_over_nodes_with_fewest_tasks_of_the_service() {
    let svc = service(6);
    let existing = vec![task("old", &svc, 9, Some(1))];
    let d = run(&nodes(3), &existing, &pending_tasks(&svc, 5));
    assert_eq!(
        placements(&d),
        [Some(2), Some(3), Some(1), Some(2), Some(3)]
    );
}

#[test]
fn ties_go_to_the_node_with_fewest_tasks_overall_then_lowest_id() {
    let svc = service(1);
    let mut other = service(1);
    other.id = "other".into();
    let existing = vec![task("o1", &other, 1, Some(1))];
    let d = run(&nodes(3), &existing, &pending_tasks(&svc, 1));
    assert_eq!(placements(&d), [Some(2)]);
}

#[test]
fn only_ready_active_nodes_take_tasks() {
    use crate::node::{Availability as A, NodeState as S};
    let cases = [
        (S::Ready, A::Active, true),
        (S::Ready, A::Pause, false),
        (S::Ready, A::Drain, false),
        (S::Down, A::Active, false),
        (S::Unknown, A::Active, false),
        (S::Disconnected, A::Active, false),
    ];
    for (state, availability, placed) in cases {
        let mut n = node(1, "n1");
        n.state = state;
        n.availability = availability;
        let d = run(&[n], &[], &pending_tasks(&service(1), 1));
        assert_eq!(
            placements(&d)[0].is_some(),
            placed,
            "{state} {availability}"
        );
        if !placed {
            assert_eq!(
                reasons(&d),
                ["no suitable node (1 node not available for new tasks)"]
            );
        }
    }
}

#[test]
fn constraints_select_nodes() {
    let mut svc = service(2);
    svc.spec.task.placement.constraints = vec!["node.labels.zone==b".into()];
    let mut ns = nodes(3);
    ns[2].labels.insert("zone".into(), "b".into());
    let d = run(&ns, &[], &pending_tasks(&svc, 2));
    assert_eq!(placements(&d), [Some(3), Some(3)]);
}

#[test]
fn a_bad_constraint_is_the_reason() {
    let mut svc = service(1);
    svc.spec.task.placement.constraints = vec!["node.zone==b".into()];
    let d = run(&nodes(2), &[], &pending_tasks(&svc, 2));
    let r = reasons(&d);
    assert_eq!(r.len(), 2);
    assert!(
        r[0].contains("invalid placement constraint \"node.zone==b\""),
        "{}",
        r[0]
    );
}

#[test]
fn reservations_use_up_capacity_including_earlier_placements() {
    let mut svc = service(3);
    svc.spec.task.resources.reservations = Resources {
        nano_cpus: 3_000_000_000,
        memory_bytes: 1 << 30,
    };
    let d = run(&nodes(2), &[], &pending_tasks(&svc, 3));
    assert_eq!(placements(&d), [Some(1), Some(2), None]);
    assert_eq!(
        reasons(&d),
        ["no suitable node (insufficient resources on 2 nodes)"]
    );
}

#[test]
fn reservations_are_held_until_a_task_is_observed_finished() {
    let mut svc = service(1);
    svc.spec.task.resources.reservations.memory_bytes = 6 << 30;
    let stopping = crate::fixtures::desired(task("s", &svc, 1, Some(1)), TaskState::Shutdown);
    let done = observed(task("d", &svc, 2, Some(2)), TaskState::Failed, t0());
    let d = run(&nodes(2), &[stopping, done], &pending_tasks(&svc, 1));
    assert_eq!(placements(&d), [Some(2)]);
}

#[test]
fn a_node_without_a_description_takes_only_tasks_that_reserve_nothing() {
    let mut n = node(1, "n1");
    n.description = None;
    let plain = service(1);
    let mut heavy = service(1);
    heavy.id = "heavy".into();
    heavy.spec.task.resources.reservations.nano_cpus = 1;
    let d = run(
        &[n],
        &[],
        &[task("a", &plain, 1, None), task("b", &heavy, 1, None)],
    );
    assert_eq!(placements(&d), [Some(1), None]);
}

#[test]
fn max_replicas_per_node_limits_each_node() {
    let mut svc = service(5);
    svc.spec.task.placement.max_replicas_per_node = 2;
    let d = run(&nodes(2), &[], &pending_tasks(&svc, 5));
    assert_eq!(placements(&d), [Some(1), Some(2), Some(1), Some(2), None]);
    assert_eq!(
        reasons(&d),
        ["no suitable node (max replicas per node limit reached on 2 nodes)"]
    );
}

#[test]
fn a_host_port_is_used_once_per_node() {
    let mut svc = service(3);
    svc.spec.task.ports = vec![PortConfig {
        target_port: 80,
        published_port: 8080,
        protocol: "tcp".into(),
    }];
    let d = run(&nodes(2), &[], &pending_tasks(&svc, 3));
    assert_eq!(placements(&d), [Some(1), Some(2), None]);
    assert_eq!(
        reasons(&d),
        ["no suitable node (host-mode port already in use on 2 nodes)"]
    );
}

#[test]
fn the_reason_counts_nodes_per_filter_most_first() {
    let mut svc = service(1);
    svc.spec.task.placement.constraints = vec!["node.role==manager".into()];
    svc.spec.task.resources.reservations.nano_cpus = 8_000_000_000;
    let mut ns = nodes(5);
    ns[0].role = crate::node::NodeRole::Manager;
    ns[1].availability = crate::node::Availability::Drain;
    let d = run(&ns, &[], &pending_tasks(&svc, 1));
    assert_eq!(
        reasons(&d),
        [
            "no suitable node (scheduling constraints not satisfied on 3 nodes; \
          1 node not available for new tasks; insufficient resources on 1 node)"
        ]
    );
    assert_eq!(
        reasons(&run(&[], &[], &pending_tasks(&svc, 1))),
        ["no suitable node (no nodes in the cluster)"]
    );
}

#[test]
fn spread_balances_label_groups_before_nodes() {
    let mut svc = service(6);
    svc.spec.task.placement.preferences = vec![SpreadPreference {
        spread_descriptor: "node.labels.zone".into(),
    }];
    // Zone a has three nodes, zone b one; node 5 has no zone label.
    let mut ns = nodes(5);
    for (i, zone) in [(0, "a"), (1, "a"), (2, "a"), (3, "b")] {
        ns[i].labels.insert("zone".into(), zone.into());
    }
    let d = run(&ns, &[], &pending_tasks(&svc, 6));
    let mut per_zone: BTreeMap<&str, usize> = BTreeMap::new();
    for n in placements(&d).into_iter().flatten() {
        let zone = match n {
            1..=3 => "a",
            4 => "b",
            _ => "none",
        };
        *per_zone.entry(zone).or_default() += 1;
    }
    assert_eq!(per_zone, BTreeMap::from([("a", 2), ("b", 2), ("none", 2)]));
}

#[test]
fn a_task_made_for_a_node_is_checked_on_that_node_only() {
    let svc = crate::fixtures::global_service();
    let mut ns = nodes(3);
    ns[1].availability = crate::node::Availability::Drain;
    let pending = vec![
        observed(task("g1", &svc, 0, Some(1)), TaskState::New, t0()),
        observed(task("g2", &svc, 0, Some(2)), TaskState::New, t0()),
        observed(task("g9", &svc, 0, Some(9)), TaskState::New, t0()),
    ];
    let d = run(&ns, &[], &pending);
    assert_eq!(placements(&d), [Some(1), None, None]);
    assert_eq!(
        reasons(&d),
        [
            "no suitable node (1 node not available for new tasks)",
            "no suitable node (node 0000000000000009 is not in the cluster)"
        ]
    );
}

#[test]
fn tasks_that_do_not_wait_get_no_decision() {
    let svc = service(2);
    let running = task("r", &svc, 1, Some(1));
    let stopped = crate::fixtures::desired(task("s", &svc, 2, None), TaskState::Shutdown);
    let waiting = task("w", &svc, 3, None);
    let d = run(&nodes(1), &[], &[running, stopped, waiting]);
    assert_eq!(
        d,
        [Decision::Assign {
            task_id: "w".into(),
            node_id: NodeId(1)
        }]
    );
}

#[test]
fn ten_thousand_tasks_over_a_hundred_nodes_are_all_placed() {
    let svc = service(10_000);
    let d = run(&nodes(100), &[], &pending_tasks(&svc, 10_000));
    assert_eq!(d.len(), 10_000);
    let mut per_node = vec![0u32; 101];
    for n in placements(&d) {
        per_node[n.expect("every task placed") as usize] += 1;
    }
    assert!(per_node[1..].iter().all(|&c| c == 100), "{per_node:?}");
}

/// A random cluster: node states, labels and capacities.
fn arb_nodes() -> impl Strategy<Value = Vec<Node>> {
    use crate::node::{Availability as A, NodeState as S};
    let one = (
        prop_oneof![4 => Just(S::Ready), 1 => Just(S::Down), 1 => Just(S::Unknown)],
        prop_oneof![4 => Just(A::Active), 1 => Just(A::Pause), 1 => Just(A::Drain)],
        prop::option::of(0..3u8),
        1..8u64,
        1..16u64,
    );
    prop::collection::vec(one, 0..12).prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(i, (state, availability, zone, cpus, gib))| {
                let mut n = node(i as u64 + 1, &format!("n{}", i + 1));
                n.state = state;
                n.availability = availability;
                if let Some(z) = zone {
                    n.labels.insert("zone".into(), format!("z{z}"));
                }
                if let Some(d) = n.description.as_mut() {
                    d.resources = Resources {
                        nano_cpus: cpus * 1_000_000_000,
                        memory_bytes: gib << 30,
                    };
                }
                n
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// (c) No placement breaks a filter: node ready and active,
    /// constraints, capacity, replica limit.
    #[test]
    fn placements_respect_every_filter(
        ns in arb_nodes(),
        count in 0..40usize,
        cpus in 0..3u64,
        max_per_node in 0..4u64,
        constrained in any::<bool>(),
    ) {
        let mut svc = service(count as u64);
        svc.spec.task.resources.reservations.nano_cpus = cpus * 1_000_000_000;
        svc.spec.task.placement.max_replicas_per_node = max_per_node;
        if constrained {
            svc.spec.task.placement.constraints = vec!["node.labels.zone!=z0".into()];
        }
        let d = run(&ns, &[], &pending_tasks(&svc, count));
        prop_assert_eq!(d.len(), count);
        let mut per_node: BTreeMap<u64, u64> = BTreeMap::new();
        for n in placements(&d).into_iter().flatten() {
            *per_node.entry(n).or_default() += 1;
        }
        for (id, tasks) in per_node {
            let n = ns.iter().find(|n| n.id.0 == id).expect("placed on a known node");
            prop_assert_eq!(n.state, NodeState::Ready);
            prop_assert_eq!(n.availability, Availability::Active);
            prop_assert!(!constrained || n.labels.get("zone").map(String::as_str) != Some("z0"));
            let capacity = n.description.as_ref().map(|d| d.resources.nano_cpus).unwrap_or(0);
            prop_assert!(tasks * cpus * 1_000_000_000 <= capacity);
            prop_assert!(max_per_node == 0 || tasks <= max_per_node);
        }
    }

    /// (d) Spread over a label with room everywhere: the groups' counts
    /// differ by at most one.
    #[test]
    fn spread_keeps_groups_within_one(
        zones in prop::collection::vec(0..4u8, 1..12),
        count in 0..60usize,
    ) {
        let mut svc = service(count as u64);
        svc.spec.task.placement.preferences = vec![SpreadPreference {
            spread_descriptor: "node.labels.zone".into(),
        }];
        let mut ns = nodes(zones.len() as u64);
        for (n, z) in ns.iter_mut().zip(&zones) {
            n.labels.insert("zone".into(), format!("z{z}"));
        }
        let d = run(&ns, &[], &pending_tasks(&svc, count));
        let mut per_zone: BTreeMap<u8, usize> = zones.iter().map(|z| (*z, 0)).collect();
        for id in placements(&d).into_iter().map(|n| n.expect("room everywhere")) {
            *per_zone.entry(zones[id as usize - 1]).or_default() += 1;
        }
        let min = per_zone.values().min().copied().unwrap_or(0);
        let max = per_zone.values().max().copied().unwrap_or(0);
        prop_assert!(max - min <= 1, "{:?}", per_zone);
    }
}
