//! Engine API: nodes (`docker node ls/inspect/update/rm`). A node is in
//! its access label's collection, else `/System` (managers) or `/Shared`
//! (workers); `node.view` shows it, `node.update` changes or removes it.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use capstan_core::rbac::{Resource, ACCESS_LABEL};
use capstan_core::{ManagerStatus, Node, NodeRole};
use capstan_manager::cluster_api::ClusterApi;
use capstan_proto::v1::{self as pb, cluster_server::Cluster, swarm_server::Swarm};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::convert::{flag, require, resolve, rfc3339};
use super::filters::Filters;
use super::services::{out_of_sequence, required_version, swarm};
use super::{node_collection, place, status_error};
use crate::api::op;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiQuery, RawBody};
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/nodes", get(list))
        .route("/nodes/{id}", get(inspect).delete(remove))
        .route("/nodes/{id}/update", post(update))
}

/// A node with its store version and, for managers, its Raft standing.
type NodeView = (Node, u64, Option<ManagerStatus>);

/// Every node as this manager sees it (managers' states from their pings).
async fn all_nodes(gw: &AppState) -> ApiResult<Vec<NodeView>> {
    Ok(capstan_manager::membership::node_views(&gw.manager).await?)
}

fn may_view(caller: &Caller, n: &Node) -> bool {
    caller.may(op!("node.view"), Resource::Collection(&node_collection(n)))
}

/// The node `wanted` (id, hostname, id prefix, or `self`) among those the
/// caller may view.
async fn find_node(gw: &AppState, caller: &Caller, wanted: &str) -> ApiResult<NodeView> {
    let wanted = if wanted == "self" {
        gw.manager.node_id().to_string()
    } else {
        wanted.to_string()
    };
    let visible: Vec<(NodeView, u64)> = all_nodes(gw)
        .await?
        .into_iter()
        .filter(|(n, _, _)| may_view(caller, n))
        .map(|view| {
            let v = view.1;
            (view, v)
        })
        .collect();
    let (view, _) = resolve(
        &visible,
        &wanted,
        "node",
        |(n, _, _)| n.id.to_string(),
        |(n, _, _)| &n.hostname,
    )?;
    Ok(view.clone())
}

/// The host part of `host:port` (`[v6]:port` too).
fn host_of(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.parse::<u16>().is_ok() => host,
        _ => addr,
    }
}

/// The cluster's `TLSInfo`: the CA certificate, and its subject and public
/// key (DER, base64) as Swarm shows them.
pub fn tls_info(ca: &capstan_pki::ClusterCa) -> Value {
    use base64::Engine as _;
    let b64 = |der: &[u8]| base64::engine::general_purpose::STANDARD.encode(der);
    let (subject, public_key) = ca.issuer_der().unwrap_or_default();
    json!({
        "TrustRoot": ca.cert_pem(),
        "CertIssuerSubject": b64(&subject),
        "CertIssuerPublicKey": b64(&public_key),
    })
}

fn description(n: &Node, tls: &Value) -> Value {
    let d = n.description.clone().unwrap_or_default();
    let hostname = if d.hostname.is_empty() {
        &n.hostname
    } else {
        &d.hostname
    };
    let mut engine = Map::new();
    engine.insert("EngineVersion".into(), json!(d.engine_version));
    if !d.engine_labels.is_empty() {
        engine.insert("Labels".into(), json!(d.engine_labels));
    }
    let plugins: Vec<Value> = d
        .engine_plugins
        .iter()
        .map(|p| json!({"Type": p.kind, "Name": p.name}))
        .collect();
    engine.insert("Plugins".into(), json!(plugins));
    json!({
        "Hostname": hostname,
        "Platform": {"Architecture": d.arch, "OS": d.os},
        "Resources": {"NanoCPUs": d.resources.nano_cpus, "MemoryBytes": d.resources.memory_bytes},
        "Engine": engine,
        "TLSInfo": tls,
        // Beyond Docker's document (clients ignore it): the disk the node's
        // agent last reported, for the dashboard's charts.
        "Disk": {"FreeBytes": d.disk_free_bytes, "TotalBytes": d.disk_total_bytes},
    })
}

/// A node as the Engine's JSON.
pub fn node_to_engine(view: &NodeView, tls: &Value) -> Value {
    let (n, version, manager) = view;
    let mut out = Map::new();
    out.insert("ID".into(), json!(n.id.to_string()));
    out.insert("Version".into(), json!({"Index": version}));
    out.insert("CreatedAt".into(), json!(rfc3339(n.created_at)));
    out.insert("UpdatedAt".into(), json!(rfc3339(n.updated_at)));
    out.insert(
        "Spec".into(),
        json!({"Labels": n.labels, "Role": n.role.to_string(), "Availability": n.availability.to_string()}),
    );
    out.insert("Description".into(), description(n, tls));
    out.insert(
        "Status".into(),
        json!({"State": n.state.to_string(), "Addr": host_of(&n.addr)}),
    );
    if let Some(status) = manager {
        let mut m = Map::new();
        if *status == ManagerStatus::Leader {
            m.insert("Leader".into(), json!(true));
        }
        let reach = match status {
            ManagerStatus::Unreachable => "unreachable",
            ManagerStatus::Leader | ManagerStatus::Reachable => "reachable",
        };
        m.insert("Reachability".into(), json!(reach));
        m.insert("Addr".into(), json!(n.addr));
        out.insert("ManagerStatus".into(), Value::Object(m));
    }
    Value::Object(out)
}

#[derive(Deserialize, Default)]
struct ListQuery {
    filters: Option<String>,
}

fn node_matches(f: &Filters, n: &Node) -> bool {
    let engine_labels = n
        .description
        .as_ref()
        .map(|d| d.engine_labels.clone())
        .unwrap_or_default();
    let node_labels = Filters::parse(
        Some(&json!({"label": f.get("node.label")}).to_string()),
        &["label"],
    )
    .unwrap_or_default();
    f.id_matches(&n.id.to_string())
        && f.any("name", |x| n.hostname.starts_with(x))
        && f.any("role", |r| r == n.role.to_string())
        && f.any("membership", |m| m == "accepted")
        && f.labels_match(&engine_labels)
        && node_labels.labels_match(&n.labels)
}

/// `GET /nodes`: filters `id`, `label` (engine labels), `membership`,
/// `name`, `node.label`, `role`. A caller who may view no node at all is
/// refused (403), one who may view some sees those.
async fn list(
    State(gw): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<Value>>> {
    let filters = Filters::parse(
        q.filters.as_deref(),
        &["id", "label", "membership", "name", "node.label", "role"],
    )?;
    let all = all_nodes(&gw).await?;
    let visible: Vec<&NodeView> = all
        .iter()
        .filter(|(n, _, _)| may_view(&caller, n))
        .collect();
    if visible.is_empty() {
        if let Some((n, _, _)) = all.first() {
            caller.authorize(
                op!("node.view"),
                Resource::Collection(&node_collection(n)),
                "nodes",
            )?;
        }
    }
    let tls = tls_info(&gw.manager.ca);
    Ok(Json(
        visible
            .into_iter()
            .filter(|(n, _, _)| node_matches(&filters, n))
            .map(|view| node_to_engine(view, &tls))
            .collect(),
    ))
}

/// `GET /nodes/{id}`: by id, hostname, id prefix or `self`.
async fn inspect(
    State(gw): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let view = find_node(&gw, &caller, &id).await?;
    Ok(Json(node_to_engine(&view, &tls_info(&gw.manager.ca))))
}

/// An Engine `NodeSpec`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct NodeSpecJson {
    #[serde(default)]
    name: String,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    role: String,
    #[serde(default)]
    availability: String,
}

fn parse_node_spec(body: &[u8]) -> ApiResult<NodeSpecJson> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        ApiError::invalid(format!(
            "invalid node spec: Spec.{path}: {}",
            e.into_inner()
        ))
    })
}

/// The Swarm API request that turns `current` into `spec`.
fn node_change(current: &Node, spec: NodeSpecJson) -> ApiResult<pb::UpdateNodeRequest> {
    if !spec.name.is_empty() && spec.name != current.hostname {
        return Err(ApiError::invalid(
            "Spec.Name: nodes cannot be renamed in Capstan; leave Name empty",
        ));
    }
    let role = spec.role.to_ascii_lowercase();
    if !matches!(role.as_str(), "" | "manager" | "worker") {
        return Err(ApiError::invalid(format!(
            "Spec.Role: {:?} is not one of manager, worker",
            spec.role
        )));
    }
    let availability = spec.availability.to_ascii_lowercase();
    if !matches!(availability.as_str(), "" | "active" | "pause" | "drain") {
        return Err(ApiError::invalid(format!(
            "Spec.Availability: {:?} is not one of active, pause, drain",
            spec.availability
        )));
    }
    let labels = spec.labels.unwrap_or_default();
    if labels.keys().any(String::is_empty) {
        return Err(ApiError::invalid(
            "Spec.Labels: label keys must not be empty",
        ));
    }
    let remove_labels = current
        .labels
        .keys()
        .filter(|k| !labels.contains_key(*k))
        .cloned()
        .collect();
    let role_changed = !role.is_empty() && role != current.role.to_string();
    Ok(pb::UpdateNodeRequest {
        node: current.id.to_string(),
        availability,
        add_labels: labels.into_iter().collect(),
        remove_labels,
        role: if role_changed { role } else { String::new() },
    })
}

/// A node whose access label changes moves to another collection: the
/// caller needs `node.update` there too (and a named one must exist).
fn check_move(
    caller: &Caller,
    node: &Node,
    labels: &mut BTreeMap<String, String>,
    what: &str,
) -> ApiResult<()> {
    if labels.get(ACCESS_LABEL) == node.labels.get(ACCESS_LABEL) {
        return Ok(());
    }
    if labels.contains_key(ACCESS_LABEL) {
        return place(caller, labels, op!("node.update"), what).map(|_| ());
    }
    let mut moved = node.clone();
    moved.labels.clone_from(labels);
    require(caller, op!("node.update"), &node_collection(&moved), what)
}

#[derive(Deserialize, Default)]
struct UpdateQuery {
    version: Option<String>,
}

/// `POST /nodes/{id}/update?version=N`: the node's whole spec (labels,
/// role, availability); moving it to another collection with the access
/// label needs `node.update` there too.
async fn update(
    State(gw): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<UpdateQuery>,
    RawBody(body): RawBody,
) -> ApiResult<StatusCode> {
    let version = required_version("node", q.version.as_deref())?;
    let mut spec = parse_node_spec(&body)?;
    let (node, stored, _) = find_node(&gw, &caller, &id).await?;
    let what = format!("node {}", node.hostname);
    let path = node_collection(&node);
    caller.authorize(op!("node.update"), Resource::Collection(&path), &what)?;
    if version != stored {
        return Err(out_of_sequence(&what, version, stored));
    }
    check_move(
        &caller,
        &node,
        spec.labels.get_or_insert_with(BTreeMap::new),
        &what,
    )?;
    let request = node_change(&node, spec)?;
    swarm(&gw)
        .update_node(tonic::Request::new(request))
        .await
        .map_err(status_error)?;
    Ok(StatusCode::OK)
}

#[derive(Deserialize, Default)]
struct RemoveQuery {
    force: Option<String>,
}

/// `DELETE /nodes/{id}[?force=1]`: a manager must be demoted first, and a
/// node that is up needs `force`.
async fn remove(
    State(gw): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<RemoveQuery>,
) -> ApiResult<StatusCode> {
    let force = flag("force", q.force.as_deref())?;
    let (node, _, _) = find_node(&gw, &caller, &id).await?;
    let what = format!("node {}", node.hostname);
    caller.authorize(
        op!("node.update"),
        Resource::Collection(&node_collection(&node)),
        &what,
    )?;
    if node.role == NodeRole::Manager && node.id == gw.manager.node_id() {
        return Err(ApiError::conflict(format!(
            "{what} is the manager serving this request; demote it from another manager first"
        )));
    }
    let request = pb::RemoveNodeRequest {
        node: node.id.to_string(),
        force,
    };
    ClusterApi::new(gw.manager.clone())
        .remove_node(tonic::Request::new(request))
        .await
        .map_err(status_error)?;
    Ok(StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_core::ids::NodeId;
    use capstan_core::{Availability, NodeState};
    use time::OffsetDateTime;

    fn node() -> Node {
        Node {
            id: NodeId(0xab),
            hostname: "master".into(),
            role: NodeRole::Manager,
            addr: "10.0.0.1:2377".into(),
            state: NodeState::Ready,
            availability: Availability::Active,
            labels: BTreeMap::from([("a".into(), "b".into())]),
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
            cert_not_after: OffsetDateTime::UNIX_EPOCH,
            description: None,
            capstan_version: String::new(),
        }
    }

    #[test]
    fn nodes_render_like_the_engine() {
        let v = node_to_engine(
            &(node(), 4, Some(ManagerStatus::Leader)),
            &json!({"TrustRoot": "PEM"}),
        );
        assert_eq!(v["Description"]["Hostname"], "master");
        assert_eq!(v["Status"]["State"], "ready");
        assert_eq!(v["Status"]["Addr"], "10.0.0.1");
        assert_eq!(v["Spec"]["Availability"], "active");
        assert_eq!(
            v["ManagerStatus"],
            json!({"Leader": true, "Reachability": "reachable", "Addr": "10.0.0.1:2377"})
        );
        let worker = node_to_engine(&(node(), 4, None), &json!({"TrustRoot": "PEM"}));
        assert!(worker.get("ManagerStatus").is_none());
        assert_eq!(host_of("[::1]:2377"), "::1");
        assert_eq!(host_of("node1"), "node1");
    }

    #[test]
    fn a_node_spec_becomes_label_changes() {
        let spec =
            parse_node_spec(br#"{"Labels":{"c":"d"},"Role":"manager","Availability":"drain"}"#)
                .expect("parses");
        let r = node_change(&node(), spec).expect("valid");
        assert_eq!(r.remove_labels, ["a"]);
        assert_eq!(r.add_labels.get("c").map(String::as_str), Some("d"));
        assert_eq!((r.role.as_str(), r.availability.as_str()), ("", "drain"));
        let bad = parse_node_spec(br#"{"Role":"boss"}"#).expect("parses");
        let e = node_change(&node(), bad).expect_err("bad role");
        assert!(e.message.starts_with("Spec.Role"), "{}", e.message);
        let e = parse_node_spec(br#"{"Labels":[1]}"#)
            .err()
            .expect("bad labels");
        assert!(e.message.contains("Spec.Labels"), "{}", e.message);
    }
}
