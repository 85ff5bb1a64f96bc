//! The node description the agent reports: what `docker info` says about
//! the machine, and the free space of the engine's data root.

use std::collections::BTreeMap;
use std::path::Path;

use bollard::models::{PluginsInfo, SystemInfo, SystemVersion};
use bollard::Docker;
use capstan_core::service::Resources;
use capstan_core::{EngineBuild, EnginePlugin, NodeDescription};

use crate::error::AgentError;

/// Describes the engine's machine under `hostname`.
pub(crate) async fn describe(
    docker: &Docker,
    hostname: &str,
) -> Result<NodeDescription, AgentError> {
    let info = docker
        .info()
        .await
        .map_err(|source| AgentError::DescribeEngine { source })?;
    let mut description = from_info(&info, hostname);
    // An engine too old to say how it was built still describes the node.
    if let Ok(version) = docker.version().await {
        description.engine_build = engine_build(&version);
    }
    if let Some(root) = info.docker_root_dir.as_deref().filter(|r| !r.is_empty()) {
        let (free, total) = disk_space(Path::new(root)).await;
        description.disk_free_bytes = free;
        description.disk_total_bytes = total;
    }
    Ok(description)
}

/// The description from `docker info`, without disk space.
fn from_info(info: &SystemInfo, hostname: &str) -> NodeDescription {
    let positive = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok()).unwrap_or(0);
    NodeDescription {
        hostname: hostname.to_owned(),
        os: info.os_type.clone().unwrap_or_default(),
        arch: info.architecture.clone().unwrap_or_default(),
        resources: Resources {
            nano_cpus: positive(info.ncpu).saturating_mul(1_000_000_000),
            memory_bytes: positive(info.mem_total),
        },
        disk_free_bytes: 0,
        disk_total_bytes: 0,
        engine_version: info.server_version.clone().unwrap_or_default(),
        engine_labels: engine_labels(info.labels.as_deref().unwrap_or_default()),
        // The session fills it in: the proxy is not the engine's to describe.
        engine_proxy: String::new(),
        kernel_version: info.kernel_version.clone().unwrap_or_default(),
        engine_build: EngineBuild::default(),
        engine_plugins: info.plugins.as_ref().map(plugins).unwrap_or_default(),
        capstan_version: capstan_core::version::VERSION.to_owned(),
    }
}

/// The engine's plugins by type, in the order `docker info` lists them.
fn plugins(p: &PluginsInfo) -> Vec<EnginePlugin> {
    [
        ("Volume", &p.volume),
        ("Network", &p.network),
        ("Authorization", &p.authorization),
        ("Log", &p.log),
    ]
    .into_iter()
    .flat_map(|(kind, names)| {
        names.iter().flatten().map(move |name| EnginePlugin {
            kind: kind.to_owned(),
            name: name.clone(),
        })
    })
    .collect()
}

/// How the engine was built, from its `/version`.
fn engine_build(v: &SystemVersion) -> EngineBuild {
    EngineBuild {
        git_commit: v.git_commit.clone().unwrap_or_default(),
        go_version: v.go_version.clone().unwrap_or_default(),
        build_time: v.build_time.clone().unwrap_or_default(),
    }
}

/// `key=value` engine labels; a label without `=` has an empty value.
fn engine_labels(labels: &[String]) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (l.clone(), String::new()),
        })
        .collect()
}

/// Free and total bytes of the file system holding `path`, from `df`
/// (std has no statvfs and this crate forbids unsafe code). `(0, 0)` when
/// the path is not on this machine (a remote engine) or `df` fails.
pub async fn disk_space(path: &Path) -> (u64, u64) {
    if !path.exists() {
        return (0, 0);
    }
    let output = tokio::process::Command::new("df")
        .arg("-P")
        .arg("-k")
        .arg(path)
        .kill_on_drop(true)
        .output()
        .await;
    match output {
        Ok(out) if out.status.success() => {
            parse_df(&String::from_utf8_lossy(&out.stdout)).unwrap_or((0, 0))
        }
        _ => (0, 0),
    }
}

/// Reads `df -P -k` output: `Filesystem 1024-blocks Used Available Capacity
/// Mounted-on`, one line per file system after the header.
fn parse_df(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().nth(1)?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    // The file system name may hold spaces; count from the right.
    let n = fields.len();
    if n < 6 {
        return None;
    }
    let total: u64 = fields[n - 5].parse().ok()?;
    let available: u64 = fields[n - 3].parse().ok()?;
    Some((available.saturating_mul(1024), total.saturating_mul(1024)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_becomes_a_node_description() {
        let info = SystemInfo {
            os_type: Some("linux".into()),
            architecture: Some("x86_64".into()),
            ncpu: Some(2),
            mem_total: Some(8 << 30),
            server_version: Some("20.10.24".into()),
            labels: Some(vec!["zone=a".into(), "ssd".into(), "k=v=w".into()]),
            kernel_version: Some("6.1.0".into()),
            plugins: Some(PluginsInfo {
                volume: Some(vec!["local".into()]),
                network: Some(vec!["bridge".into(), "overlay".into()]),
                authorization: None,
                log: Some(vec!["json-file".into()]),
            }),
            ..Default::default()
        };
        let d = from_info(&info, "node01");
        assert_eq!(d.hostname, "node01");
        assert_eq!(d.os, "linux");
        assert_eq!(d.arch, "x86_64");
        assert_eq!(d.resources.nano_cpus, 2_000_000_000);
        assert_eq!(d.resources.memory_bytes, 8 << 30);
        assert_eq!(d.engine_version, "20.10.24");
        assert_eq!(d.engine_labels["zone"], "a");
        assert_eq!(d.engine_labels["ssd"], "");
        assert_eq!(d.engine_labels["k"], "v=w");
        assert_eq!(d.kernel_version, "6.1.0");
        let plugins: Vec<(&str, &str)> = d
            .engine_plugins
            .iter()
            .map(|p| (p.kind.as_str(), p.name.as_str()))
            .collect();
        assert_eq!(
            plugins,
            [
                ("Volume", "local"),
                ("Network", "bridge"),
                ("Network", "overlay"),
                ("Log", "json-file")
            ]
        );
        let build = engine_build(&SystemVersion {
            git_commit: Some("e6534b4".into()),
            go_version: Some("go1.24.3".into()),
            ..Default::default()
        });
        assert_eq!(build.git_commit, "e6534b4");
        assert_eq!(build.go_version, "go1.24.3");
        assert_eq!(build.build_time, "");

        let empty = from_info(&SystemInfo::default(), "h");
        assert_eq!(empty.resources, Resources::default());
        assert!(empty.engine_labels.is_empty());
    }

    #[test]
    fn df_output_is_parsed() {
        let text = "Filesystem     1024-blocks     Used Available Capacity Mounted on\n\
                    /dev/sda1        102400000 40000000  62400000      40% /\n";
        assert_eq!(
            parse_df(text),
            Some((62_400_000 * 1024, 102_400_000 * 1024))
        );
        assert_eq!(parse_df("Filesystem\n"), None);
        assert_eq!(parse_df("header\nmy disk 10 5 x 50% /\n"), None);
    }
}
