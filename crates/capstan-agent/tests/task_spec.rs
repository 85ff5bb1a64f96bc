//! What a task's spec becomes on a real engine: command, environment,
//! limits, ports, networks, secret and config files, and the rejection of
//! an image the node cannot get.

mod common;

use std::collections::HashMap;

use bollard::query_parameters::{ListNetworksOptions, ListVolumesOptions};
use capstan_agent::{NETWORK_LABEL, NODE_LABEL};
use capstan_core::service::{FileReference, Mount, MountKind, PortConfig};
use capstan_core::{Network, TaskState};
use common::{assignment, TestNode};
use time::OffsetDateTime;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_args_env_and_workdir_reach_the_container() {
    let n = TestNode::new().await;
    let mut task = n.task("echo", &["sh", "-c"]);
    let c = &mut task.spec.container;
    c.args = vec!["echo \"$GREETING from $(pwd) as $(id -u)\"; sleep 300".into()];
    c.env = vec!["GREETING=hello".into()];
    c.workdir = "/tmp".into();
    c.user = "65534".into();

    n.reconcile_until(&[assignment(&task)], &task.id, TaskState::Running)
        .await;

    n.logs_containing(&task.id, "hello from /tmp as 65534")
        .await;
    n.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_reach_the_host_config() {
    let n = TestNode::new().await;
    let mut task = n.task("limited", &["sleep", "300"]);
    task.spec.resources.limits.memory_bytes = 64 << 20;
    task.spec.resources.limits.nano_cpus = 500_000_000;

    let status = n
        .reconcile_until(&[assignment(&task)], &task.id, TaskState::Running)
        .await;

    let host = n
        .inspect(&status.container_id)
        .await
        .host_config
        .expect("host config");
    assert_eq!(host.memory, Some(64 << 20));
    assert_eq!(host.nano_cpus, Some(500_000_000));
    n.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_published_as_zero_is_reported_with_the_engines_choice() {
    let n = TestNode::new().await;
    let mut task = n.task("http", &["httpd", "-f", "-p", "8080"]);
    task.spec.ports = vec![PortConfig {
        target_port: 8080,
        published_port: 0,
        protocol: "tcp".into(),
    }];

    let status = n
        .reconcile_until(&[assignment(&task)], &task.id, TaskState::Running)
        .await;

    assert_eq!(status.ports.len(), 1, "{:?}", status.ports);
    let port = &status.ports[0];
    assert_eq!((port.target_port, port.protocol.as_str()), (8080, "tcp"));
    assert_ne!(port.published_port, 0);
    n.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_configs_are_files_in_the_container() {
    let n = TestNode::new().await;
    let task = n.task(
        "files",
        &[
            "sh",
            "-c",
            "echo \"secret=$(cat /run/secrets/db_pw) mode=$(stat -c %a /run/secrets/db_pw) \
             config=$(cat /etc/app/app.conf) mode=$(stat -c %a /etc/app/app.conf)\"; sleep 300",
        ],
    );
    let file = |name: &str, target: &str, mode| FileReference {
        id: format!("{name}-id"),
        name: name.into(),
        target: target.into(),
        mode,
    };
    let mut a = assignment(&task);
    a.secrets = vec![(file("db_pw", "db_pw", 0o400), b"hunter2".to_vec())];
    a.configs = vec![(file("app", "/etc/app/app.conf", 0o644), b"port=80".to_vec())];

    n.reconcile_until(&[a], &task.id, TaskState::Running).await;

    n.logs_containing(&task.id, "secret=hunter2 mode=400 config=port=80 mode=644")
        .await;
    n.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_image_is_rejected_with_the_engines_words() {
    let n = TestNode::new().await;
    let mut task = n.task("ghost", &["sleep", "300"]);
    task.spec.container.image = "nosuch/image:1".into();

    let status = n
        .reconcile_until(&[assignment(&task)], &task.id, TaskState::Rejected)
        .await;

    assert!(
        status
            .err
            .starts_with("No such image: nosuch/image:1 (pull: "),
        "{}",
        status.err
    );
    assert_eq!(status.message, format!("rejected: {}", status.err));
    assert!(
        n.containers().await.is_empty(),
        "no container for a rejected task"
    );
    n.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn networks_and_volumes_are_made_for_the_task_and_networks_go_with_it() {
    let n = TestNode::new().await;
    let network = |hint: &str| Network {
        id: format!("{hint}-{}", n.node),
        name: format!("capstan-test-{}-{hint}", n.node),
        driver: "overlay".into(),
        attachable: false,
        labels: n.run_labels(),
        created_at: OffsetDateTime::UNIX_EPOCH,
    };
    let (front, back) = (network("front"), network("back"));
    let volume = format!("capstan-test-{}-data", n.node);
    let mut task = n.task("db", &["sleep", "300"]);
    task.spec.networks = vec![front.id.clone(), back.id.clone()];
    task.spec.container.mounts = vec![Mount {
        kind: MountKind::Volume,
        source: volume.clone(),
        target: "/data".into(),
        read_only: false,
    }];
    let mut a = assignment(&task);
    a.networks = vec![back.clone(), front.clone()];

    let status = n.reconcile_until(&[a], &task.id, TaskState::Running).await;

    let c = n.inspect(&status.container_id).await;
    let attached = c
        .network_settings
        .and_then(|s| s.networks)
        .expect("networks");
    for net in [&front, &back] {
        let endpoint = attached.get(&net.name).expect("attached to each network");
        let aliases = endpoint.aliases.clone().unwrap_or_default();
        assert!(aliases.contains(&"db".to_owned()), "{aliases:?}");
    }
    let mut expected = vec![
        (front.name.clone(), front.id.clone()),
        (back.name.clone(), back.id.clone()),
    ];
    expected.sort();
    assert_eq!(node_networks(&n).await, expected);
    let volumes = n
        .docker
        .list_volumes(Some(ListVolumesOptions {
            filters: Some(HashMap::from([(
                "label".to_owned(),
                vec![format!("{NODE_LABEL}={}", n.node)],
            )])),
        }))
        .await
        .expect("volumes are listed")
        .volumes
        .unwrap_or_default();
    assert_eq!(
        volumes.iter().map(|v| v.name.clone()).collect::<Vec<_>>(),
        vec![volume]
    );

    n.executor.reconcile(&[]).await.expect("reconcile");
    assert!(n.containers().await.is_empty());
    assert!(
        node_networks(&n).await.is_empty(),
        "the unused network is removed"
    );
    n.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_is_described_from_docker_info() {
    let n = TestNode::new().await;

    let d = n.executor.describe("node01").await.expect("describe");

    assert_eq!(d.hostname, "node01");
    assert_eq!(d.os, "linux");
    assert!(!d.arch.is_empty());
    assert!(d.resources.nano_cpus >= 1_000_000_000, "{d:?}");
    assert!(d.resources.memory_bytes > 0, "{d:?}");
    assert!(!d.engine_version.is_empty());
    // The engine runs on this machine, so its data root is readable here.
    assert!(d.disk_total_bytes > 0, "{d:?}");
    assert!(d.disk_total_bytes >= d.disk_free_bytes, "{d:?}");
    n.finish().await;
}

/// (name, cluster network id) of the networks labelled with the node,
/// sorted.
async fn node_networks(n: &TestNode) -> Vec<(String, String)> {
    let mut networks = listed_networks(n).await;
    networks.sort();
    networks
}

async fn listed_networks(n: &TestNode) -> Vec<(String, String)> {
    let options = ListNetworksOptions {
        filters: Some(HashMap::from([(
            "label".to_owned(),
            vec![format!("{NODE_LABEL}={}", n.node)],
        )])),
    };
    n.docker
        .list_networks(Some(options))
        .await
        .expect("networks are listed")
        .into_iter()
        .map(|net| {
            let id = net
                .labels
                .and_then(|l| l.get(NETWORK_LABEL).cloned())
                .unwrap_or_default();
            (net.name.unwrap_or_default(), id)
        })
        .collect::<Vec<_>>()
}
