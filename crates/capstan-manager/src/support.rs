//! Support bundles: one zip with what support needs to understand a
//! cluster — every node's recent log, configuration, Raft state, node
//! descriptions, services and task states, recent task events and
//! versions — gathered over the cluster API from every reachable node at
//! once, each with its own timeout, with every secret value redacted.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use capstan_proto::v1::cluster_client::ClusterClient;
use capstan_proto::v1::{self as pb};
use serde_json::{json, Value};
use time::OffsetDateTime;
use tonic::transport::Channel;

use crate::error::ManagerError;

/// How long one node may take to answer.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(6);
/// How many task events the bundle lists.
const RECENT_EVENTS: usize = 500;
/// What replaces a secret value.
const REDACTED: &str = "<redacted>";

/// Object tables a bundle carries, redacted. Accounts, sessions, keys,
/// secrets and configs' data are never included.
const TABLES: &[(&str, &str)] = &[
    ("nodes", "cluster/nodes.json"),
    ("services", "cluster/services.json"),
    ("tasks", "cluster/tasks.json"),
    ("networks", "cluster/networks.json"),
    ("cluster_config", "cluster/config.json"),
    ("registries", "cluster/registries.json"),
];

/// Whether a field of this name holds a secret.
fn sensitive(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "passphrase",
        "secret",
        "token",
        "private",
        "credential",
        "registry_auth",
        "bind_pw",
    ]
    .iter()
    .any(|s| k.contains(s))
        || k == "key"
        || k.ends_with("_key")
        || k == "data"
}

/// `value` with every secret-looking field and every environment value
/// replaced: environment variables keep their names only, since people
/// put passwords there.
pub fn redact(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = if k.eq_ignore_ascii_case("env") {
                        redact_env(v)
                    } else if sensitive(&k) && !v.is_null() && !v.is_boolean() {
                        Value::String(REDACTED.into())
                    } else {
                        redact(v)
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(redact).collect()),
        other => other,
    }
}

fn redact_env(v: Value) -> Value {
    match v {
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => {
                        let name = s.split('=').next().unwrap_or_default();
                        Value::String(format!("{name}={REDACTED}"))
                    }
                    _ => Value::String(REDACTED.into()),
                })
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, _)| (k, Value::String(REDACTED.into())))
                .collect(),
        ),
        Value::Null => Value::Null,
        _ => Value::String(REDACTED.into()),
    }
}

/// A TOML document with every secret-looking value redacted (a node's
/// configuration file).
fn redact_toml(text: &str) -> String {
    text.lines()
        .map(|line| match line.split_once('=') {
            Some((key, _)) if sensitive(key.trim()) => format!("{} = \"{REDACTED}\"", key.trim()),
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn pretty(v: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(v).unwrap_or_default()
}

/// The records of a table as JSON values (each object's `value`).
async fn table(
    client: &mut ClusterClient<Channel>,
    name: &str,
) -> Result<Vec<Value>, ManagerError> {
    let objects = client
        .list(pb::ListRequest {
            table: name.into(),
            prefix: String::new(),
            consistency: pb::Consistency::Serializable.into(),
            limit: 0,
        })
        .await
        .map_err(ManagerError::Remote)?
        .into_inner()
        .objects;
    Ok(objects
        .into_iter()
        .filter_map(|o| serde_json::from_slice::<Value>(&o.value).ok())
        .map(|mut v| {
            // Records are the fields of the value beside the schema version.
            if let Some(map) = v.as_object_mut() {
                map.remove("schema");
            }
            v
        })
        .collect())
}

fn status_json(s: &pb::StatusResponse) -> Value {
    json!({
        "node_id": s.node_id,
        "leader_id": s.leader_id,
        "term": s.term,
        "commit_index": s.commit_index,
        "applied_index": s.applied_index,
        "last_log_index": s.last_log_index,
        "state": s.state,
        "cluster_id": s.cluster_id,
        "members": s.members.iter().map(|m| json!({
            "node_id": m.node_id,
            "hostname": m.hostname,
            "addr": m.addr,
            "voter": m.voter,
            "leader": m.leader,
            "reachable": m.reachable,
            "matched_index": m.matched_index,
        })).collect::<Vec<_>>(),
    })
}

/// One node of the bundle and what became of asking it.
struct NodeReport {
    id: String,
    hostname: String,
    role: String,
    answer: Result<pb::DiagnosticsResponse, String>,
}

/// Gathers a support bundle through `local` (a client of a manager of the
/// cluster), asking each manager directly (`peer` makes a client for a
/// manager's address) and each worker through the leader; `extra` files
/// (already free of secrets) are added as they are. Answers the zip.
pub async fn gather(
    mut local: ClusterClient<Channel>,
    peer: impl Fn(&str) -> Result<ClusterClient<Channel>, ManagerError>,
    extra: Vec<(String, Vec<u8>)>,
) -> Result<Vec<u8>, ManagerError> {
    let status = local
        .status(pb::StatusRequest {})
        .await
        .map_err(ManagerError::Remote)?
        .into_inner();
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    files.push(("cluster/status.json".into(), pretty(&status_json(&status))));
    let mut tables = BTreeMap::new();
    for (name, path) in TABLES {
        let records = table(&mut local, name).await?;
        files.push((
            path.to_string(),
            pretty(&redact(Value::Array(records.clone()))),
        ));
        tables.insert(*name, records);
    }
    files.push((
        "cluster/events.json".into(),
        pretty(&recent_events(&tables["tasks"])),
    ));

    let nodes = &tables["nodes"];
    let asks = nodes.iter().map(|node| {
        let id = node["id"].as_str().unwrap_or_default().to_string();
        let role = node["role"].as_str().unwrap_or_default().to_string();
        let addr = node["addr"].as_str().unwrap_or_default().to_string();
        let hostname = node["hostname"].as_str().unwrap_or_default().to_string();
        let manager = role == "manager";
        // A manager answers for itself; a worker's agent through the leader,
        // which `local` forwards to.
        let client = if manager {
            peer(&addr)
        } else {
            Ok(local.clone())
        };
        async move {
            let ask = async {
                let mut client = client.map_err(|e| e.to_string())?;
                let req = pb::DiagnosticsRequest {
                    node_id: if manager { String::new() } else { id.clone() },
                };
                client
                    .diagnostics(req)
                    .await
                    .map(|r| r.into_inner())
                    .map_err(|s| s.message().to_string())
            };
            let answer = match tokio::time::timeout(NODE_TIMEOUT, ask).await {
                Ok(a) => a,
                Err(_) => Err(format!("no answer within {NODE_TIMEOUT:?}")),
            };
            NodeReport {
                id,
                hostname,
                role,
                answer,
            }
        }
    });
    let reports = futures::future::join_all(asks).await;

    let mut manifest_nodes = Vec::new();
    let mut versions = BTreeMap::new();
    for (report, node) in reports.iter().zip(nodes) {
        let dir = format!("nodes/{}-{}", report.hostname, report.id);
        let description = &node["description"];
        let mut entry = json!({
            "id": report.id,
            "hostname": report.hostname,
            "role": report.role,
            "state": node["state"],
        });
        match &report.answer {
            Ok(d) => {
                entry["included"] = json!(true);
                files.push((format!("{dir}/capstan.log"), d.log.clone()));
                if !d.node_config.is_empty() {
                    files.push((
                        format!("{dir}/node.toml"),
                        redact_toml(&d.node_config).into_bytes(),
                    ));
                }
                if !d.raft.is_empty() {
                    files.push((format!("{dir}/raft.json"), d.raft.clone().into_bytes()));
                }
            }
            Err(e) => {
                entry["included"] = json!(false);
                entry["error"] = json!(e);
            }
        }
        if !description.is_null() {
            files.push((
                format!("{dir}/description.json"),
                pretty(&redact(description.clone())),
            ));
        }
        let capstan = match &report.answer {
            Ok(d) if !d.version.is_empty() => json!(d.version),
            _ => description["capstan_version"].clone(),
        };
        versions.insert(
            report.hostname.clone(),
            json!({
                "capstan": capstan,
                "engine": description["engine_version"],
                "kernel": description["kernel_version"],
                "os": description["os"],
            }),
        );
        manifest_nodes.push(entry);
    }
    let unreachable: Vec<&Value> = manifest_nodes
        .iter()
        .filter(|n| n["included"] == json!(false))
        .collect();
    let manifest = json!({
        "generated_at": OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        "capstan_version": capstan_core::version::VERSION,
        "cluster_id": status.cluster_id,
        "nodes": manifest_nodes,
        "unreachable": unreachable,
        "redacted": "secret values, passwords, tokens, keys and environment values are replaced by <redacted>; accounts, sessions, secrets and configs are not included",
    });
    files.insert(0, ("manifest.json".into(), pretty(&manifest)));
    files.push(("versions.json".into(), pretty(&json!(versions))));
    files.extend(extra);
    zip(files)
}

/// The most recent task state changes, newest first.
fn recent_events(tasks: &[Value]) -> Value {
    let mut events: Vec<Value> = tasks
        .iter()
        .map(|t| {
            json!({
                "time": t["status"]["timestamp"],
                "task": t["id"],
                "service": t["service_name"],
                "slot": t["slot"],
                "node": t["node_id"],
                "state": t["status"]["state"],
                "desired": t["desired_state"],
                "message": t["status"]["message"],
                "error": t["status"]["err"],
            })
        })
        .collect();
    // RFC 3339 UTC timestamps sort as text.
    events.sort_by(|a, b| b["time"].as_str().cmp(&a["time"].as_str()));
    events.truncate(RECENT_EVENTS);
    Value::Array(events)
}

fn zip(files: Vec<(String, Vec<u8>)>) -> Result<Vec<u8>, ManagerError> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o600);
    let failed = |e: &dyn std::fmt::Display| {
        ManagerError::file(
            "write",
            "the support bundle",
            std::io::Error::other(e.to_string()),
        )
    };
    for (name, data) in files {
        out.start_file(name, options).map_err(|e| failed(&e))?;
        out.write_all(&data).map_err(|e| failed(&e))?;
    }
    Ok(out.finish().map_err(|e| failed(&e))?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_environment_values_are_redacted() {
        let v = json!({
            "spec": {"task": {"env": ["DB_PASSWORD=hunter2", "MODE"], "image": "nginx"}},
            "ldap": {"reader_password": "pw", "url": "ldaps://x"},
            "token": "abc", "signing_key": "k", "enabled": true, "secrets": [{"id": "s"}],
        });
        let r = redact(v).to_string();
        for secret in ["hunter2", "\"pw\"", "abc", "\"k\""] {
            assert!(!r.contains(secret), "{secret} in {r}");
        }
        assert!(r.contains("DB_PASSWORD=<redacted>"), "{r}");
        assert!(
            r.contains("nginx") && r.contains("ldaps://x") && r.contains("true"),
            "{r}"
        );
        assert_eq!(
            redact_toml("node_id = \"1\"\nadmin_password = \"x\""),
            "node_id = \"1\"\nadmin_password = \"<redacted>\""
        );
    }
}
