//! A task's spec as Docker Engine container configuration, and the engine's
//! port map read back as published ports. Pure: no engine calls here.

use std::collections::{BTreeSet, HashMap};

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HostConfig, Mount, MountType,
    NetworkingConfig, PortBinding, PortMap, RestartPolicy, RestartPolicyNameEnum,
};
use capstan_core::service::{HealthCheck, MountKind, PortConfig};
use capstan_core::task::PublishedPort;
use capstan_core::{NodeId, Task};

use crate::labels::container_labels;

/// A cluster network as it exists on this node's engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LocalNetwork {
    /// The engine's id of the local bridge network.
    pub docker_id: String,
    /// Its name (the cluster network's name).
    pub name: String,
}

/// The body of `docker create` for `task`. The container joins the first of
/// `networks` at creation; the executor connects the others before start
/// (the engine takes only one network at creation before API 1.44).
pub(crate) fn container_config(
    node: NodeId,
    task: &Task,
    networks: &[LocalNetwork],
) -> ContainerCreateBody {
    let spec = &task.spec.container;
    let non_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let text = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let ports = &task.spec.ports;

    ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint: non_empty(&spec.command),
        cmd: non_empty(&spec.args),
        env: non_empty(&spec.env),
        user: text(&spec.user),
        working_dir: text(&spec.workdir),
        labels: Some(container_labels(node, task)),
        healthcheck: spec.healthcheck.as_ref().map(health_config),
        stop_timeout: Some(
            i64::try_from(spec.stop_grace_period_ms.div_ceil(1000)).unwrap_or(i64::MAX),
        ),
        exposed_ports: (!ports.is_empty()).then(|| ports.iter().map(port_key).collect()),
        host_config: Some(host_config(task, networks)),
        networking_config: networks.first().map(|first| endpoint_config(task, first)),
        ..Default::default()
    }
}

fn host_config(task: &Task, networks: &[LocalNetwork]) -> HostConfig {
    let limits = task.spec.resources.limits;
    let positive = |v: u64| (v > 0).then(|| i64::try_from(v).unwrap_or(i64::MAX));
    let mounts: Vec<Mount> = task.spec.container.mounts.iter().map(mount).collect();
    HostConfig {
        nano_cpus: positive(limits.nano_cpus),
        memory: positive(limits.memory_bytes),
        mounts: (!mounts.is_empty()).then_some(mounts),
        port_bindings: (!task.spec.ports.is_empty()).then(|| port_bindings(&task.spec.ports)),
        // The orchestrator replaces failed tasks; the engine never restarts one.
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::NO),
            maximum_retry_count: None,
        }),
        network_mode: networks.first().map(|n| n.docker_id.clone()),
        ..Default::default()
    }
}

/// The endpoint of the container's first network: the service name is an
/// alias, so tasks on the node find each other by service name.
fn endpoint_config(task: &Task, network: &LocalNetwork) -> NetworkingConfig {
    NetworkingConfig {
        endpoints_config: Some(HashMap::from([(
            network.docker_id.clone(),
            endpoint_settings(task),
        )])),
    }
}

/// Endpoint settings for any of the task's networks.
pub(crate) fn endpoint_settings(task: &Task) -> EndpointSettings {
    EndpointSettings {
        aliases: Some(vec![task.service_name.clone()]),
        ..Default::default()
    }
}

fn health_config(check: &HealthCheck) -> HealthConfig {
    let nanos =
        |ms: u64| (ms > 0).then(|| i64::try_from(ms.saturating_mul(1_000_000)).unwrap_or(i64::MAX));
    HealthConfig {
        test: Some(check.test.clone()),
        interval: nanos(check.interval_ms),
        timeout: nanos(check.timeout_ms),
        retries: (check.retries > 0).then(|| i64::try_from(check.retries).unwrap_or(i64::MAX)),
        start_period: nanos(check.start_period_ms),
        start_interval: None,
    }
}

fn mount(m: &capstan_core::service::Mount) -> Mount {
    Mount {
        typ: Some(match m.kind {
            MountKind::Volume => MountType::VOLUME,
            MountKind::Bind => MountType::BIND,
        }),
        // An empty volume source is an anonymous volume.
        source: (!m.source.is_empty()).then(|| m.source.clone()),
        target: Some(m.target.clone()),
        read_only: Some(m.read_only),
        ..Default::default()
    }
}

fn protocol(p: &str) -> String {
    if p.is_empty() {
        "tcp".to_owned()
    } else {
        p.to_ascii_lowercase()
    }
}

fn port_key(p: &PortConfig) -> String {
    format!("{}/{}", p.target_port, protocol(&p.protocol))
}

fn port_bindings(ports: &[PortConfig]) -> PortMap {
    let mut map = PortMap::new();
    for p in ports {
        // An empty host port lets the engine pick a free one.
        let host_port = if p.published_port == 0 {
            String::new()
        } else {
            p.published_port.to_string()
        };
        map.entry(port_key(p))
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: None,
                host_port: Some(host_port),
            });
    }
    map
}

/// The ports the engine published, from an inspected container's port map
/// (`"80/tcp" → [{0.0.0.0, 49153}, {::, 49153}]` is one published port).
/// Entries the engine left unbound or wrote oddly are skipped.
pub(crate) fn published_ports(ports: Option<&PortMap>) -> Vec<PublishedPort> {
    let mut seen = BTreeSet::new();
    for (key, bindings) in ports.into_iter().flatten() {
        let (target, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        let Ok(target_port) = target.parse::<u16>() else {
            continue;
        };
        for binding in bindings.iter().flatten() {
            let published = binding
                .host_port
                .as_deref()
                .and_then(|p| p.parse::<u16>().ok());
            if let Some(published_port) = published.filter(|p| *p != 0) {
                seen.insert((target_port, proto.to_owned(), published_port));
            }
        }
    }
    seen.into_iter()
        .map(|(target_port, protocol, published_port)| PublishedPort {
            published_port,
            target_port,
            protocol,
        })
        .collect()
}

/// The reference to pull: the engine pulls every tag of a repository when
/// none is named, so an untagged reference gets `:latest`, as the docker
/// CLI does.
pub(crate) fn pull_reference(image: &str) -> String {
    if image.contains('@') {
        return image.to_owned();
    }
    let last_component = image.rsplit('/').next().unwrap_or(image);
    if last_component.contains(':') {
        image.to_owned()
    } else {
        format!("{image}:latest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::{NODE_LABEL, TASK_LABEL};
    use crate::test_support::task;
    use capstan_core::service::Mount as SpecMount;

    fn net(id: &str, name: &str) -> LocalNetwork {
        LocalNetwork {
            docker_id: id.into(),
            name: name.into(),
        }
    }

    #[test]
    fn spec_fields_reach_the_container_config() {
        let mut t = task("t1", "web", 1);
        let c = &mut t.spec.container;
        c.command = vec!["sh".into(), "-c".into()];
        c.args = vec!["echo hi".into()];
        c.env = vec!["A=1".into()];
        c.user = "nobody".into();
        c.workdir = "/tmp".into();
        c.stop_grace_period_ms = 2_500;
        c.healthcheck = Some(HealthCheck {
            test: vec!["CMD-SHELL".into(), "true".into()],
            interval_ms: 1_000,
            timeout_ms: 500,
            retries: 3,
            start_period_ms: 0,
        });
        t.spec.resources.limits.memory_bytes = 64 << 20;
        t.spec.resources.limits.nano_cpus = 500_000_000;

        let config = container_config(NodeId(7), &t, &[]);

        assert_eq!(config.image.as_deref(), Some("busybox"));
        assert_eq!(config.entrypoint, Some(vec!["sh".into(), "-c".into()]));
        assert_eq!(config.cmd, Some(vec!["echo hi".into()]));
        assert_eq!(config.env, Some(vec!["A=1".into()]));
        assert_eq!(config.user.as_deref(), Some("nobody"));
        assert_eq!(config.working_dir.as_deref(), Some("/tmp"));
        assert_eq!(config.stop_timeout, Some(3));
        let labels = config.labels.expect("labels");
        assert_eq!(labels[NODE_LABEL], "0000000000000007");
        assert_eq!(labels[TASK_LABEL], "t1");
        let health = config.healthcheck.expect("healthcheck");
        assert_eq!(health.interval, Some(1_000_000_000));
        assert_eq!(health.timeout, Some(500_000_000));
        assert_eq!(health.retries, Some(3));
        assert_eq!(health.start_period, None);
        let host = config.host_config.expect("host config");
        assert_eq!(host.memory, Some(64 << 20));
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(
            host.restart_policy.and_then(|r| r.name),
            Some(RestartPolicyNameEnum::NO)
        );
        assert_eq!(host.network_mode, None);
        assert!(config.networking_config.is_none());
    }

    #[test]
    fn an_empty_spec_keeps_the_images_defaults() {
        let config = container_config(NodeId(7), &task("t1", "web", 1), &[]);
        assert_eq!(config.entrypoint, None);
        assert_eq!(config.cmd, None);
        assert_eq!(config.env, None);
        assert_eq!(config.user, None);
        assert_eq!(config.working_dir, None);
        assert_eq!(config.exposed_ports, None);
        let host = config.host_config.expect("host config");
        assert_eq!(host.memory, None);
        assert_eq!(host.mounts, None);
        assert_eq!(host.port_bindings, None);
    }

    #[test]
    fn first_network_at_creation_with_the_service_alias() {
        let t = task("t1", "web", 1);
        let config = container_config(NodeId(7), &t, &[net("n1id", "front"), net("n2id", "back")]);
        let host = config.host_config.expect("host config");
        assert_eq!(host.network_mode.as_deref(), Some("n1id"));
        let endpoints = config
            .networking_config
            .and_then(|n| n.endpoints_config)
            .expect("endpoints");
        assert_eq!(endpoints.len(), 1);
        assert_eq!(endpoints["n1id"].aliases, Some(vec!["web".to_owned()]));
    }

    #[test]
    fn mounts_and_ports_map_to_host_config() {
        let mut t = task("t1", "web", 1);
        t.spec.container.mounts = vec![
            SpecMount {
                kind: MountKind::Volume,
                source: "data".into(),
                target: "/data".into(),
                read_only: false,
            },
            SpecMount {
                kind: MountKind::Bind,
                source: "/etc/hostname".into(),
                target: "/host-name".into(),
                read_only: true,
            },
        ];
        t.spec.ports = vec![
            PortConfig {
                target_port: 80,
                published_port: 0,
                protocol: "".into(),
            },
            PortConfig {
                target_port: 53,
                published_port: 5353,
                protocol: "UDP".into(),
            },
        ];
        let config = container_config(NodeId(7), &t, &[]);
        let mut exposed = config.exposed_ports.expect("exposed");
        exposed.sort();
        assert_eq!(exposed, vec!["53/udp".to_owned(), "80/tcp".to_owned()]);
        let host = config.host_config.expect("host config");
        let mounts = host.mounts.expect("mounts");
        assert_eq!(mounts[0].typ, Some(MountType::VOLUME));
        assert_eq!(mounts[0].source.as_deref(), Some("data"));
        assert_eq!(mounts[1].typ, Some(MountType::BIND));
        assert_eq!(mounts[1].read_only, Some(true));
        let bindings = host.port_bindings.expect("bindings");
        let any = bindings["80/tcp"].as_ref().expect("80");
        assert_eq!(any[0].host_port.as_deref(), Some(""));
        let fixed = bindings["53/udp"].as_ref().expect("53");
        assert_eq!(fixed[0].host_port.as_deref(), Some("5353"));
    }

    #[test]
    fn published_ports_are_read_back_once_per_port() {
        let binding = |ip: &str, port: &str| PortBinding {
            host_ip: Some(ip.into()),
            host_port: Some(port.into()),
        };
        let map = PortMap::from([
            (
                "80/tcp".to_owned(),
                Some(vec![binding("0.0.0.0", "49153"), binding("::", "49153")]),
            ),
            ("81/tcp".to_owned(), None),
            ("bad/tcp".to_owned(), Some(vec![binding("0.0.0.0", "1")])),
            ("82/udp".to_owned(), Some(vec![binding("0.0.0.0", "junk")])),
        ]);
        assert_eq!(
            published_ports(Some(&map)),
            vec![PublishedPort {
                published_port: 49153,
                target_port: 80,
                protocol: "tcp".into()
            }]
        );
        assert!(published_ports(None).is_empty());
    }

    #[test]
    fn untagged_references_pull_latest() {
        for (image, pulled) in [
            ("busybox", "busybox:latest"),
            ("nosuch/image:1", "nosuch/image:1"),
            ("registry:5000/team/app", "registry:5000/team/app:latest"),
            ("registry:5000/team/app:2", "registry:5000/team/app:2"),
            ("app@sha256:abcd", "app@sha256:abcd"),
        ] {
            assert_eq!(pull_reference(image), pulled, "{image}");
        }
    }
}
