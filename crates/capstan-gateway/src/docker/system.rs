//! `GET /version`, `GET /info` and `GET /events`, answered as a swarm
//! manager's engine would, with a Capstan component.

use std::collections::BTreeMap;
use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use capstan_core::rbac::Resource;
use capstan_core::{
    decode, ClusterInfo, Config, Network, Node, NodeDescription, NodeRole, NodeState, Secret,
    Service, Table, Task, TaskState,
};
use capstan_manager::state::Consistency;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio_stream::wrappers::BroadcastStream;

use super::filters::Filters;
use super::{collection_of, default_collection, node_collection, API_VERSION, MIN_API_VERSION};
use crate::api::op;
use crate::auth::op as op_named;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// Capstan's version, shown as a component of `docker version`.
pub const CAPSTAN_VERSION: &str = capstan_core::version::VERSION;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/version", get(version))
        .route("/info", get(info))
        .route("/events", get(events))
        .route("/swarm", get(swarm))
}

/// The swarm's cluster object, as `/info` and `/swarm` show it.
fn cluster_object(gw: &AppState, created_at: OffsetDateTime) -> Value {
    json!({
        "ID": gw.cluster_id(),
        "Version": {"Index": gw.manager.sm.applied_index()},
        "CreatedAt": rfc3339(created_at),
        "UpdatedAt": rfc3339(OffsetDateTime::now_utc()),
        "Spec": {
            "Name": "default",
            "Labels": {},
            "Orchestration": {"TaskHistoryRetentionLimit": 5},
            "Raft": {"SnapshotInterval": 10000, "KeepOldSnapshots": 0, "LogEntriesForSlowFollowers": 500, "ElectionTick": 10, "HeartbeatTick": 1},
            "Dispatcher": {"HeartbeatPeriod": gw.manager.swarm.heartbeat_period.as_nanos() as u64},
            "CAConfig": {"NodeCertExpiry": u64::from(gw.manager.config.cert_ttl_days) * 86_400 * 1_000_000_000},
            "TaskDefaults": {},
            "EncryptionConfig": {"AutoLockManagers": false}
        },
        "TLSInfo": super::nodes::tls_info(&gw.manager.ca),
        "RootRotationInProgress": false,
        "DataPathPort": 4789,
        "DefaultAddrPool": [],
        "SubnetSize": 24
    })
}

/// `GET /swarm` (`docker swarm inspect`, `docker swarm join-token`): the
/// cluster with its join tokens and, beyond Docker's answer, the managers'
/// cluster addresses that `capstan join` takes. Join tokens let a machine
/// into the cluster, so only those who may change the cluster's
/// configuration see them.
async fn swarm(State(gw): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.authorize(
        op!("config.update"),
        Resource::Collection("/"),
        "join tokens",
    )?;
    let info = gw
        .manager
        .get::<ClusterInfo>(ClusterInfo::ID, Consistency::Linearizable)
        .await?
        .map(|(info, _)| info)
        .ok_or_else(|| ApiError::unavailable("the cluster record is not written yet; retry"))?;
    let tokens = capstan_manager::cluster_api::join_tokens(&gw.manager, &info);
    let mut cluster = cluster_object(&gw, info.created_at);
    cluster["JoinTokens"] = json!({"Worker": tokens.worker, "Manager": tokens.manager});
    cluster["ManagerAddrs"] = json!(tokens.manager_addrs);
    Ok(Json(cluster))
}

/// This manager's node's description, as its agent reported it: its
/// engine answers for the `Engine` parts of `/version` and `/info`.
async fn local_description(gw: &AppState) -> NodeDescription {
    let id = gw.manager.node_id().to_string();
    gw.manager
        .get::<Node>(&id, Consistency::Serializable)
        .await
        .ok()
        .flatten()
        .and_then(|(n, _)| n.description)
        .unwrap_or_default()
}

/// The engine version a description names, else Capstan's own.
fn engine_version(d: &NodeDescription) -> String {
    if d.engine_version.is_empty() {
        CAPSTAN_VERSION.to_string()
    } else {
        d.engine_version.clone()
    }
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

async fn version(State(gw): State<AppState>, _caller: Caller) -> Json<Value> {
    let d = local_description(&gw).await;
    let engine = engine_version(&d);
    let b = &d.engine_build;
    Json(json!({
        "Platform": {"Name": "Capstan"},
        "Components": [
            {
                "Name": "Engine",
                "Version": engine,
                "Details": {
                    "ApiVersion": API_VERSION,
                    "MinAPIVersion": MIN_API_VERSION,
                    "GitCommit": b.git_commit,
                    "GoVersion": b.go_version,
                    "Os": std::env::consts::OS,
                    "Arch": arch(),
                    "KernelVersion": d.kernel_version,
                    "BuildTime": b.build_time,
                    "Experimental": "false",
                }
            },
            {
                "Name": "Capstan",
                "Version": CAPSTAN_VERSION,
                "Details": {
                    "ApiVersion": API_VERSION,
                    "MinApiVersion": MIN_API_VERSION,
                    "Os": std::env::consts::OS,
                    "Arch": arch(),
                }
            }
        ],
        "Version": engine,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": b.git_commit,
        "GoVersion": b.go_version,
        "Os": std::env::consts::OS,
        "Arch": arch(),
        "KernelVersion": d.kernel_version,
        "Experimental": false,
        "BuildTime": b.build_time,
    }))
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "0001-01-01T00:00:00Z".into())
}

async fn info(State(gw): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let nodes = gw
        .manager
        .list_all::<Node>(Consistency::Serializable)
        .await?;
    let tasks = gw
        .manager
        .list_all::<Task>(Consistency::Serializable)
        .await?;
    let services = gw
        .manager
        .list_all::<Service>(Consistency::Serializable)
        .await?;
    let me = gw.manager.node_id().to_string();
    let this = nodes
        .iter()
        .map(|(n, _)| n)
        .find(|n| n.id.to_string() == me);
    let (ncpu, mem) = nodes
        .iter()
        .filter_map(|(n, _)| n.description.as_ref())
        .fold((0u64, 0u64), |(c, m), d| {
            (
                c + d.resources.nano_cpus / 1_000_000_000,
                m + d.resources.memory_bytes,
            )
        });
    // Containers the caller may see: those of tasks of services in
    // collections where they hold container.view.
    let visible: std::collections::HashSet<&str> = services
        .iter()
        .filter(|(s, _)| {
            let path = collection_of(&s.spec.labels, &default_collection(&caller.username));
            caller.may(op!("container.view"), Resource::Collection(&path))
        })
        .map(|(s, _)| s.id.as_str())
        .collect();
    let containers: Vec<&Task> = tasks
        .iter()
        .map(|(t, _)| t)
        .filter(|t| visible.contains(t.service_id.as_str()) && !t.status.container_id.is_empty())
        .collect();
    let running = containers
        .iter()
        .filter(|t| t.status.state == TaskState::Running)
        .count();
    let managers: Vec<&Node> = nodes
        .iter()
        .map(|(n, _)| n)
        .filter(|n| n.role == NodeRole::Manager)
        .collect();
    let remote: Vec<Value> = managers
        .iter()
        .map(|n| json!({"NodeID": n.id.to_string(), "Addr": n.addr}))
        .collect();
    let hostname = this.map_or_else(
        || gw.manager.config.hostname.clone(),
        |n| n.hostname.clone(),
    );
    let d = local_description(&gw).await;
    Ok(Json(json!({
        "ID": me,
        "Containers": containers.len(),
        "ContainersRunning": running,
        "ContainersPaused": 0,
        "ContainersStopped": containers.len() - running,
        "Images": 0,
        "Driver": "capstan",
        "DriverStatus": [],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "overlay"], "Authorization": null, "Log": ["json-file"]},
        "MemoryLimit": true,
        "SwapLimit": false,
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "CPUShares": true,
        "CPUSet": true,
        "PidsLimit": true,
        "IPv4Forwarding": true,
        "Debug": false,
        "NFd": 0,
        "NGoroutines": 0,
        "SystemTime": rfc3339(OffsetDateTime::now_utc()),
        "LoggingDriver": "json-file",
        "CgroupDriver": "",
        "NEventsListener": 0,
        "KernelVersion": d.kernel_version,
        "OperatingSystem": format!("Capstan {CAPSTAN_VERSION}"),
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": null,
        "NCPU": ncpu,
        "MemTotal": mem,
        "DockerRootDir": "",
        "HttpProxy": "",
        "HttpsProxy": "",
        "NoProxy": "",
        "Name": hostname,
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": engine_version(&d),
        "Runtimes": {},
        "DefaultRuntime": "runc",
        "LiveRestoreEnabled": false,
        "Isolation": "",
        "InitBinary": "",
        "SecurityOptions": [],
        "Warnings": [],
        "Swarm": {
            "NodeID": me,
            "NodeAddr": gw.manager.config.host_address,
            "LocalNodeState": "active",
            "ControlAvailable": true,
            "Error": "",
            "RemoteManagers": remote,
            "Nodes": nodes.len(),
            "Managers": managers.len(),
            "Cluster": cluster_object(&gw, this.map_or(OffsetDateTime::UNIX_EPOCH, |n| n.created_at)),
        },
        "ready_nodes": nodes.iter().filter(|(n, _)| n.state == NodeState::Ready).count(),
    })))
}

#[derive(Deserialize)]
struct EventsQuery {
    filters: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

/// A point in time as the CLI sends it: Unix seconds, with optional
/// fractional nanoseconds (`1700000000.000000001`).
fn parse_instant(what: &str, raw: &str) -> Result<OffsetDateTime, ApiError> {
    let (secs, frac) = raw.split_once('.').unwrap_or((raw, "0"));
    let secs: i64 = secs
        .parse()
        .map_err(|_| ApiError::invalid(format!("invalid {what} {raw:?}: expected Unix seconds")))?;
    let nanos: i64 = format!("{frac:0<9}")[..9]
        .parse()
        .map_err(|_| ApiError::invalid(format!("invalid {what} {raw:?}: expected Unix seconds")))?;
    OffsetDateTime::from_unix_timestamp(secs)
        .map(|t| t + time::Duration::nanoseconds(nanos))
        .map_err(|_| ApiError::invalid(format!("invalid {what} {raw:?}: out of range")))
}

/// Which Docker event type a table's changes are, and the operation that
/// lets a caller see the object.
fn kind_of(table: &str) -> Option<(&'static str, &'static str)> {
    Some(match table {
        t if t == Service::TABLE => ("service", "service.view"),
        t if t == Node::TABLE => ("node", "node.view"),
        t if t == Secret::TABLE => ("secret", "secret.view"),
        t if t == Config::TABLE => ("config", "swarm-config.view"),
        t if t == Network::TABLE => ("network", "network.view"),
        _ => return None,
    })
}

/// The name and labels of a changed object, for the event's attributes and
/// the visibility check.
fn name_and_labels(
    kind: &str,
    value: &[u8],
) -> Option<(String, BTreeMap<String, String>, Option<String>)> {
    Some(match kind {
        "service" => {
            let s: Service = decode(value).ok()?;
            (s.spec.name, s.spec.labels, None)
        }
        "node" => {
            let n: Node = decode(value).ok()?;
            let path = node_collection(&n);
            (n.hostname, n.labels, Some(path))
        }
        "secret" => {
            let s: Secret = decode(value).ok()?;
            (s.name, s.labels, None)
        }
        "config" => {
            let c: Config = decode(value).ok()?;
            (c.name, c.labels, None)
        }
        "network" => {
            let n: Network = decode(value).ok()?;
            (n.name, n.labels, None)
        }
        _ => return None,
    })
}

/// `GET /events`: the cluster's swarm events (services, nodes, secrets,
/// configs, networks) from now on, as newline-delimited JSON, filtered by
/// `type`, `event`, `scope`, `label`, `name` and `id`, and by what the
/// caller may see. `until` ends the stream; `since` in the past is accepted
/// but only changes from now on are sent.
async fn events(
    State(gw): State<AppState>,
    caller: Caller,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Response> {
    let filters = Filters::parse(
        q.filters.as_deref(),
        &[
            "type",
            "event",
            "scope",
            "label",
            "name",
            "id",
            "container",
            "image",
            "node",
            "service",
            "network",
            "secret",
            "config",
        ],
    )?;
    if let Some(since) = &q.since {
        parse_instant("since", since)?;
    }
    let until = q
        .until
        .as_deref()
        .map(|u| parse_instant("until", u))
        .transpose()?;
    let default = default_collection(&caller.username);
    let ends = until.map(|u| {
        let left = (u - OffsetDateTime::now_utc()).max(time::Duration::ZERO);
        std::time::Duration::try_from(left).unwrap_or_default()
    });
    let deadline = async move {
        match ends {
            Some(d) => tokio::time::sleep(d).await,
            None => futures::future::pending().await,
        }
    };
    let stream = BroadcastStream::new(gw.manager.sm.subscribe())
        .take_until(deadline)
        .filter_map(move |change| {
            let out = (|| {
                let change = change.ok()?;
                let (kind, view_op) = kind_of(&change.object.table)?;
                let (name, labels, fixed_path) = name_and_labels(kind, &change.object.value)?;
                let path = fixed_path.unwrap_or_else(|| collection_of(&labels, &default));
                if !caller.may(op_named(view_op), Resource::Collection(&path)) {
                    return None;
                }
                let action = if change.deleted {
                    "remove"
                } else if change.object.created_index == change.log_index {
                    "create"
                } else {
                    "update"
                };
                let id = change.object.id.clone();
                let pass = filters.any("type", |t| t == kind)
                    && filters.any("event", |e| e == action)
                    && filters.any("scope", |s| s == "swarm")
                    && filters.labels_match(&labels)
                    && filters.any("name", |n| n == name)
                    && filters.any("id", |i| i == id)
                    && filters.any(kind, |v| v == id || v == name);
                if !pass {
                    return None;
                }
                let now = OffsetDateTime::now_utc();
                let mut attributes = serde_json::Map::new();
                attributes.insert("name".into(), Value::String(name));
                let event = json!({
                    "Type": kind,
                    "Action": action,
                    "Actor": {"ID": id, "Attributes": attributes},
                    "scope": "swarm",
                    "time": now.unix_timestamp(),
                    "timeNano": now.unix_timestamp_nanos() as i64,
                });
                let mut line = event.to_string();
                line.push('\n');
                Some(Ok::<_, Infallible>(Bytes::from(line)))
            })();
            futures::future::ready(out)
        });
    let mut resp = Body::from_stream(stream).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_parse_like_the_cli_sends_them() {
        let t = parse_instant("since", "1700000000.5").expect("fractional");
        assert_eq!(t.unix_timestamp(), 1_700_000_000);
        assert_eq!(t.nanosecond(), 500_000_000);
        assert!(parse_instant("since", "yesterday").is_err());
    }
}
