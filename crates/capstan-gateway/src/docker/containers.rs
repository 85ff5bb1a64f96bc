//! Engine API: containers, on the nodes that run them.
//!
//! A node's containers are the ones its engine holds that carry its id in
//! `com.capstan.node.id` (the tasks its agent runs) or in
//! `com.capstan.standalone.node` (containers made through this proxy);
//! anything else on that engine is not the cluster's and is never listed or
//! touched, even when several nodes share one engine. A task container is
//! in its service's collection, a standalone container in the collection
//! its access label names. Lists hold what the caller may
//! `container.view`; a container they may not view does not exist for
//! them (404), and each operation on one they may view is checked on its
//! own (403).

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, Request, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use capstan_core::rbac::{Resource, ACCESS_LABEL};
use capstan_core::{Availability, Node, NodeRole, NodeState, Service};
use capstan_manager::state::Consistency;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::engine::{self, NodeEngine};
use super::filters::Filters;
use super::{node_collection, place};
use crate::api::op;
use crate::auth::{op as op_named, Caller};
use crate::error::{ApiError, ApiResult};
use crate::extract::MAX_BODY;
use crate::AppState;

/// The node whose agent runs a task container.
pub const NODE_LABEL: &str = "com.capstan.node.id";
/// The service of a task container.
pub const SERVICE_LABEL: &str = "com.capstan.service.id";
/// The node a standalone container (or volume) made through the proxy is on.
pub const STANDALONE_LABEL: &str = "com.capstan.standalone.node";
/// Who made a standalone container or volume.
pub const OWNER_LABEL: &str = "com.docker.ucp.access.owner";
/// Labels under this prefix are Capstan's to set.
const RESERVED_PREFIX: &str = "com.capstan.";

/// The filters `GET /containers/json` understands: the engine's, and
/// `node` (classic Swarm's).
const LIST_FILTERS: &[&str] = &[
    "ancestor",
    "before",
    "expose",
    "exited",
    "health",
    "id",
    "isolation",
    "is-task",
    "label",
    "name",
    "network",
    "node",
    "publish",
    "since",
    "status",
    "volume",
];

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers/json", get(list))
        .route("/containers/create", post(create))
        .route("/containers/{id}", delete(remove).post(unsupported))
        .route(
            "/containers/{id}/{action}",
            get(action).post(action).head(action).put(action),
        )
        .route("/exec/{id}/{action}", get(exec_action).post(exec_action))
}

async fn unsupported(req: Request) -> Response {
    super::unsupported(req.method(), req.uri().path())
}

/// Whether a container with these labels is one of node `node`'s, and of
/// which kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Membership {
    /// A task container of a service (its id, when labelled).
    Task(Option<String>),
    /// Made through the proxy.
    Standalone,
}

/// The membership of a container (or volume) on `node`'s engine; `None`
/// when it is not the cluster's or is another node's.
pub fn membership(labels: &BTreeMap<String, String>, node: &str) -> Option<Membership> {
    if labels.get(NODE_LABEL).is_some_and(|n| n == node) {
        return Some(Membership::Task(labels.get(SERVICE_LABEL).cloned()));
    }
    labels
        .get(STANDALONE_LABEL)
        .is_some_and(|n| n == node)
        .then_some(Membership::Standalone)
}

/// The labels of an engine object (`Labels` of a summary, or of `Config`).
pub fn labels_of(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// A container of the cluster, as its node's engine lists it.
#[derive(Clone, Debug)]
pub struct Found {
    /// Index of its node in the engines searched.
    pub node: usize,
    /// Full id.
    pub id: String,
    /// Names without the leading `/`.
    pub names: Vec<String>,
    /// Its collection.
    pub collection: String,
    /// The engine's summary (`GET /containers/json` item).
    pub summary: Value,
}

/// Service id → collection, for task containers.
async fn service_collections(gw: &AppState) -> ApiResult<HashMap<String, String>> {
    Ok(gw
        .manager
        .list_all::<Service>(Consistency::Serializable)
        .await?
        .into_iter()
        .map(|(s, _)| {
            // A service without an access label is in `/`: only admins and
            // holders of grants on `/` see its containers.
            let path = super::collection_of(&s.spec.labels, "/");
            (s.id, path)
        })
        .collect())
}

/// The collection of a container of the cluster.
fn collection(
    membership: &Membership,
    labels: &BTreeMap<String, String>,
    services: &HashMap<String, String>,
) -> String {
    match membership {
        Membership::Standalone => super::collection_of(labels, "/"),
        Membership::Task(service) => service
            .as_ref()
            .and_then(|s| services.get(s))
            .cloned()
            .unwrap_or_else(|| "/".to_string()),
    }
}

/// The cluster's containers on these engines (`query`: the engine's list
/// parameters), and the nodes that did not answer.
pub async fn cluster_containers(
    gw: &AppState,
    version: &str,
    engines: &[NodeEngine],
    query: &str,
) -> ApiResult<(Vec<Found>, Vec<ApiError>)> {
    let path = format!("/containers/json?{query}");
    let answers = engine::fan_out(engines, |e| {
        engine::call_json(gw, e, version, Method::GET, &path, None)
    })
    .await;
    let services = service_collections(gw).await?;
    let mut found = Vec::new();
    let mut failed = Vec::new();
    for (index, (node, answer)) in answers.into_iter().enumerate() {
        let items = match answer {
            Ok(Value::Array(items)) => items,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(node = %node.hostname(), error = %e.message, "node left out of a container list");
                failed.push(e);
                continue;
            }
        };
        let node_id = node.id();
        for summary in items {
            let labels = labels_of(&summary["Labels"]);
            let Some(m) = membership(&labels, &node_id) else {
                continue;
            };
            found.push(Found {
                node: index,
                id: summary["Id"].as_str().unwrap_or_default().to_string(),
                names: names_of(&summary),
                collection: collection(&m, &labels, &services),
                summary,
            });
        }
    }
    Ok((found, failed))
}

fn names_of(summary: &Value) -> Vec<String> {
    summary["Names"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|n| n.trim_start_matches('/').to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Why a container reference did not resolve.
#[derive(Debug, PartialEq, Eq)]
pub enum Unresolved {
    /// Nothing matches.
    NotFound,
    /// An id prefix matches several containers.
    Ambiguous,
}

/// Finds `wanted` among containers given as `(id, names)`, the engine's
/// way: a full id, then an exact name (with or without the leading `/`),
/// then a unique id prefix.
pub fn resolve(containers: &[(&str, &[String])], wanted: &str) -> Result<usize, Unresolved> {
    if wanted.is_empty() {
        return Err(Unresolved::NotFound);
    }
    if let Some(i) = containers.iter().position(|(id, _)| *id == wanted) {
        return Ok(i);
    }
    let name = wanted.strip_prefix('/').unwrap_or(wanted);
    if let Some(i) = containers
        .iter()
        .position(|(_, names)| names.iter().any(|n| n == name))
    {
        return Ok(i);
    }
    let mut by_prefix = containers
        .iter()
        .enumerate()
        .filter(|(_, (id, _))| id.starts_with(wanted));
    match (by_prefix.next(), by_prefix.next()) {
        (Some((i, _)), None) => Ok(i),
        (Some(_), Some(_)) => Err(Unresolved::Ambiguous),
        (None, _) => Err(Unresolved::NotFound),
    }
}

fn no_such_container(wanted: &str, failed: &[ApiError]) -> ApiError {
    let mut message = format!("No such container: {wanted}");
    if !failed.is_empty() {
        let why: Vec<&str> = failed.iter().map(|e| e.message.as_str()).collect();
        message.push_str(&format!(" (not every node answered: {})", why.join("; ")));
    }
    ApiError::not_found(message)
}

/// A container the caller may view, found by reference across the nodes.
pub struct Located {
    /// Its node's engine.
    pub engine: NodeEngine,
    /// The container.
    pub found: Found,
}

/// Finds the container `wanted` among those the caller may view.
pub async fn locate(
    gw: &AppState,
    caller: &Caller,
    version: &str,
    wanted: &str,
) -> ApiResult<Located> {
    let nodes = engine::nodes(gw).await?;
    let engines = engine::reachable(&nodes);
    let (found, failed) = cluster_containers(gw, version, &engines, "all=1").await?;
    let visible: Vec<Found> = found
        .into_iter()
        .filter(|f| caller.may(op!("container.view"), Resource::Collection(&f.collection)))
        .collect();
    let keys: Vec<(&str, &[String])> = visible
        .iter()
        .map(|f| (f.id.as_str(), f.names.as_slice()))
        .collect();
    match resolve(&keys, wanted) {
        Ok(i) => {
            let found = visible[i].clone();
            Ok(Located {
                engine: engines[found.node].clone(),
                found,
            })
        }
        Err(Unresolved::Ambiguous) => Err(ApiError::invalid(format!(
            "multiple IDs found with provided prefix: {wanted}"
        ))),
        Err(Unresolved::NotFound) => Err(no_such_container(wanted, &failed)),
    }
}

/// A boolean query parameter as the engine reads it.
pub fn flag(name: &str, value: Option<&str>) -> ApiResult<bool> {
    match value.map(str::trim) {
        None | Some("") => Ok(false),
        Some("1" | "true" | "True" | "TRUE") => Ok(true),
        Some("0" | "false" | "False" | "FALSE") => Ok(false),
        Some(other) => Err(ApiError::invalid(format!(
            "invalid value for {name}: {other:?} is not a boolean (use 1 or 0)"
        ))),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    all: Option<String>,
    limit: Option<String>,
    size: Option<String>,
    filters: Option<String>,
}

/// Whether `wanted` (a `node` filter value) names this node.
fn names_node(node: &Node, wanted: &str) -> bool {
    node.hostname == wanted || (!wanted.is_empty() && node.id.to_string().starts_with(wanted))
}

/// `GET /containers/json`: the containers of every node the caller may
/// see, newest first.
async fn list(
    State(gw): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
    req: Request,
) -> ApiResult<Response> {
    let version = engine::version_of(&req);
    let mut filters = Filters::parse(q.filters.as_deref(), LIST_FILTERS)?;
    let all = flag("all", q.all.as_deref())?;
    let size = flag("size", q.size.as_deref())?;
    let limit = match q.limit.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
        None => None,
        Some(l) => Some(l.parse::<i64>().map_err(|_| {
            ApiError::invalid(format!("invalid value for limit: {l:?} is not an integer"))
        })?),
    }
    .filter(|l| *l > 0);
    let wanted_nodes = filters.take("node");
    let nodes = engine::nodes(&gw).await?;
    let nodes: Vec<Node> = nodes
        .into_iter()
        .filter(|n| wanted_nodes.is_empty() || wanted_nodes.iter().any(|w| names_node(n, w)))
        .collect();
    let engines = engine::reachable(&nodes);
    let mut query = String::new();
    if all || limit.is_some() {
        query.push_str("all=1&");
    }
    if size {
        query.push_str("size=1&");
    }
    if !filters.is_empty() {
        query.push_str(&format!(
            "filters={}",
            engine::encode_query_value(&filters.to_json())
        ));
    }
    let (found, _) = cluster_containers(&gw, &version, &engines, &query).await?;
    let mut visible: Vec<Value> = found
        .into_iter()
        .filter(|f| caller.may(op!("container.view"), Resource::Collection(&f.collection)))
        .map(|f| f.summary)
        .collect();
    visible.sort_by_key(|s| std::cmp::Reverse(s["Created"].as_i64().unwrap_or(0)));
    if let Some(l) = limit {
        visible.truncate(usize::try_from(l).unwrap_or(usize::MAX));
    }
    Ok(axum::Json(Value::Array(visible)).into_response())
}

/// What a per-container call does with the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Forwarded; the answer streams back.
    Forward,
    /// Hijacked (attach).
    Hijack,
    /// Makes an exec instance, whose node is remembered.
    Exec,
}

/// The operation a call on a container needs, and how it is carried;
/// `None` for calls the proxy does not serve.
pub fn container_call(method: &Method, action: &str) -> Option<(&'static str, Kind)> {
    use Kind::{Exec, Forward, Hijack};
    Some(match (method.as_str(), action) {
        ("GET", "json" | "changes") => ("container.view", Forward),
        ("GET", "logs") => ("container.logs", Forward),
        ("GET", "top") => ("container.top", Forward),
        ("GET", "stats") => ("container.stats", Forward),
        ("GET", "export") => ("container.export", Forward),
        ("GET" | "HEAD", "archive") => ("container.filesystem-read", Forward),
        ("PUT", "archive") => ("container.filesystem-write", Forward),
        ("POST", "start") => ("container.start", Forward),
        ("POST", "stop") => ("container.stop", Forward),
        ("POST", "kill") => ("container.kill", Forward),
        ("POST", "restart") => ("container.restart", Forward),
        ("POST", "wait") => ("container.wait", Forward),
        ("POST", "pause") => ("container.pause", Forward),
        ("POST", "unpause") => ("container.unpause", Forward),
        ("POST", "rename") => ("container.rename", Forward),
        ("POST", "resize") => ("container.resize", Forward),
        ("POST", "attach") => ("container.attach", Hijack),
        ("POST", "exec") => ("container.exec", Exec),
        _ => return None,
    })
}

fn path_and_query(path: &str, req: &Request) -> String {
    match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    }
}

/// Forwards the client's request to `path_and_query` on a node.
pub async fn forward(
    gw: &AppState,
    engine: &NodeEngine,
    req: Request,
    path_and_query: &str,
) -> ApiResult<Response> {
    let version = engine::version_of(&req);
    let (parts, body) = req.into_parts();
    let mut out = engine::request(&version, parts.method, path_and_query, body)?;
    engine::copy_headers(&parts.headers, out.headers_mut());
    Ok(engine::into_response(engine::send(gw, engine, out).await?))
}

/// `/containers/{id}/{action}`: resolves the container, checks the
/// operation, forwards to its node.
async fn action(
    State(gw): State<AppState>,
    caller: Caller,
    Path((id, action)): Path<(String, String)>,
    req: Request,
) -> ApiResult<Response> {
    let Some((op_name, kind)) = container_call(req.method(), &action) else {
        return Ok(super::unsupported(req.method(), req.uri().path()));
    };
    let version = engine::version_of(&req);
    let located = locate(&gw, &caller, &version, &id).await?;
    let what = format!("container {}", display_name(&located.found));
    caller.authorize(
        op_named(op_name),
        Resource::Collection(&located.found.collection),
        &what,
    )?;
    let target = path_and_query(&format!("/containers/{}/{action}", located.found.id), &req);
    match kind {
        Kind::Forward => forward(&gw, &located.engine, req, &target).await,
        Kind::Hijack => engine::hijack(&gw, &located.engine, req, &target).await,
        Kind::Exec => create_exec(&gw, &located, req, &target).await,
    }
}

fn display_name(found: &Found) -> String {
    found
        .names
        .first()
        .cloned()
        .unwrap_or_else(|| found.id.chars().take(12).collect())
}

/// `DELETE /containers/{id}`.
async fn remove(
    State(gw): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let version = engine::version_of(&req);
    let located = locate(&gw, &caller, &version, &id).await?;
    let what = format!("container {}", display_name(&located.found));
    caller.authorize(
        op!("container.remove"),
        Resource::Collection(&located.found.collection),
        &what,
    )?;
    let target = path_and_query(&format!("/containers/{}", located.found.id), &req);
    forward(&gw, &located.engine, req, &target).await
}

/// `POST /containers/{id}/exec`: forwards, and remembers the exec
/// instance's node.
async fn create_exec(
    gw: &AppState,
    located: &Located,
    req: Request,
    target: &str,
) -> ApiResult<Response> {
    let version = engine::version_of(&req);
    let (parts, body) = req.into_parts();
    let mut out = engine::request(&version, parts.method, target, body)?;
    engine::copy_headers(&parts.headers, out.headers_mut());
    let (status, bytes) = engine::call(gw, &located.engine, out).await?;
    if !status.is_success() {
        return Err(engine::engine_error(status, &bytes));
    }
    if let Some(id) = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v["Id"].as_str().map(str::to_string))
    {
        engine::remember_exec(
            &id,
            engine::ExecPlace {
                node: located.engine.id(),
                container: located.found.id.clone(),
                collection: located.found.collection.clone(),
            },
        );
    }
    Ok(engine::json_answer(status, bytes))
}

/// Where an exec instance runs, for a caller who may view its container:
/// remembered, else asked of every node (it may have been made through
/// another manager).
async fn find_exec(
    gw: &AppState,
    caller: &Caller,
    version: &str,
    id: &str,
) -> ApiResult<(NodeEngine, engine::ExecPlace)> {
    let nodes = engine::nodes(gw).await?;
    let no_such = || ApiError::not_found(format!("No such exec instance: {id}"));
    let place = match engine::exec_place(id) {
        Some(place) => place,
        None => {
            let engines = engine::reachable(&nodes);
            let path = format!("/exec/{id}/json");
            let answers = engine::fan_out(&engines, |e| {
                engine::call_json(gw, e, version, Method::GET, &path, None)
            })
            .await;
            let container = answers
                .into_iter()
                .find_map(|(_, a)| a.ok())
                .and_then(|v| v["ContainerID"].as_str().map(str::to_string))
                .ok_or_else(no_such)?;
            let located = locate(gw, caller, version, &container)
                .await
                .map_err(|_| no_such())?;
            let place = engine::ExecPlace {
                node: located.engine.id(),
                container: located.found.id,
                collection: located.found.collection,
            };
            engine::remember_exec(id, place.clone());
            place
        }
    };
    if !caller.may(
        op!("container.view"),
        Resource::Collection(&place.collection),
    ) {
        return Err(no_such());
    }
    let node = nodes
        .iter()
        .find(|n| n.id.to_string() == place.node)
        .ok_or_else(no_such)?;
    Ok((engine::engine_of(node)?, place))
}

/// Checks an exec id before it goes into an engine path: the engine's ids
/// are hex, and anything else could walk to another endpoint.
pub fn check_exec_id(id: &str) -> ApiResult<()> {
    if !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("No such exec instance: {id}")))
    }
}

/// `/exec/{id}/start|resize|json`.
async fn exec_action(
    State(gw): State<AppState>,
    caller: Caller,
    Path((id, action)): Path<(String, String)>,
    req: Request,
) -> ApiResult<Response> {
    let op_name = match (req.method().as_str(), action.as_str()) {
        ("POST", "start" | "resize") => "container.exec",
        ("GET", "json") => "container.view",
        _ => return Ok(super::unsupported(req.method(), req.uri().path())),
    };
    check_exec_id(&id)?;
    let version = engine::version_of(&req);
    let (engine, place) = find_exec(&gw, &caller, &version, &id).await?;
    let what = format!(
        "container {}",
        place.container.chars().take(12).collect::<String>()
    );
    caller.authorize(
        op_named(op_name),
        Resource::Collection(&place.collection),
        &what,
    )?;
    let target = path_and_query(&format!("/exec/{id}/{action}"), &req);
    if action == "start" {
        engine::hijack(&gw, &engine, req, &target).await
    } else {
        forward(&gw, &engine, req, &target).await
    }
}

#[derive(Deserialize)]
struct CreateQuery {
    name: Option<String>,
    platform: Option<String>,
}

/// Parses a container create body: a JSON object with a non-empty `Image`.
pub fn parse_create(body: &[u8]) -> ApiResult<Map<String, Value>> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(format!(
            "the container configuration is not valid JSON: {e}"
        ))
    })?;
    let Value::Object(config) = value else {
        return Err(ApiError::invalid(
            "the container configuration must be a JSON object",
        ));
    };
    match config.get("Image") {
        Some(Value::String(i)) if !i.trim().is_empty() => Ok(config),
        Some(Value::String(_)) | None | Some(Value::Null) => Err(ApiError::invalid(
            "the container configuration has no Image: name the image to run",
        )),
        Some(other) => Err(ApiError::invalid(format!(
            "the container configuration's Image must be a string, not {other}"
        ))),
    }
}

/// Checks a container name the engine's way.
pub fn check_name(name: &str) -> ApiResult<()> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let mut chars = bare.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && bare.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )))
    }
}

/// Takes classic Swarm's `constraint:node==<name>` out of `Env`: the node
/// the container is pinned to.
pub fn take_node_constraint(config: &mut Map<String, Value>) -> ApiResult<Option<String>> {
    let Some(Value::Array(env)) = config.get_mut("Env") else {
        return Ok(None);
    };
    let mut pinned = None;
    let mut kept = Vec::with_capacity(env.len());
    for entry in env.drain(..) {
        let Some(text) = entry.as_str() else {
            kept.push(entry);
            continue;
        };
        let Some(rule) = text.strip_prefix("constraint:") else {
            kept.push(entry);
            continue;
        };
        match rule.strip_prefix("node==").map(str::trim) {
            Some(node) if !node.is_empty() => pinned = Some(node.to_string()),
            _ => {
                return Err(ApiError::invalid(format!(
                    "unsupported constraint {text:?}: only constraint:node==<node name or id> is understood"
                )))
            }
        }
    }
    *env = kept;
    Ok(pinned)
}

/// The operations a create body needs beyond `container.create`.
pub fn sub_operations(config: &Map<String, Value>) -> Vec<&'static str> {
    let empty = Value::Null;
    let host = config.get("HostConfig").unwrap_or(&empty);
    let is_host = |key: &str| host[key].as_str() == Some("host");
    let mut ops = Vec::new();
    if host["Privileged"].as_bool() == Some(true) {
        ops.push("container.create.privileged");
    }
    let bind_from_host = host["Binds"].as_array().is_some_and(|binds| {
        binds
            .iter()
            .filter_map(Value::as_str)
            .any(|b| b.starts_with('/'))
    }) || host["Mounts"].as_array().is_some_and(|mounts| {
        mounts.iter().any(|m| {
            m["Type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case("bind"))
        })
    });
    if bind_from_host {
        ops.push("container.create.host-bind-mounts");
    }
    if is_host("NetworkMode") {
        ops.push("container.create.host-networking");
    }
    if is_host("PidMode") {
        ops.push("container.create.pid-mode");
    }
    if is_host("IpcMode") {
        ops.push("container.create.ipc-mode");
    }
    if is_host("UsernsMode") {
        ops.push("container.create.userns-mode");
    }
    if host["CapAdd"].as_array().is_some_and(|c| !c.is_empty()) {
        ops.push("container.create.kernel-capabilities");
    }
    ops
}

/// The labels a create body asks for; Capstan's own are refused.
pub fn requested_labels(config: &Map<String, Value>) -> ApiResult<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    match config.get("Labels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let Some(v) = v.as_str() else {
                    return Err(ApiError::invalid(format!(
                        "label {k}: the value must be a string, not {v}"
                    )));
                };
                labels.insert(k.clone(), v.to_string());
            }
        }
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "Labels must be an object of strings, not {other}"
            )))
        }
    }
    if let Some(k) = labels.keys().find(|k| k.starts_with(RESERVED_PREFIX)) {
        return Err(ApiError::invalid(format!(
            "label {k}: labels under {RESERVED_PREFIX} are reserved for Capstan"
        )));
    }
    Ok(labels)
}

/// A node as a candidate for a new container or volume.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// Node id.
    pub id: String,
    /// Ready, active, with an engine proxy.
    pub usable: bool,
    /// The caller may schedule on it.
    pub allowed: bool,
    /// Cluster containers on it now.
    pub containers: usize,
}

/// The usable, allowed node with the fewest containers (ties by id).
pub fn choose(candidates: &[Candidate]) -> Option<usize> {
    candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.usable && c.allowed)
        .min_by(|(_, a), (_, b)| {
            a.containers
                .cmp(&b.containers)
                .then_with(|| a.id.cmp(&b.id))
        })
        .map(|(i, _)| i)
}

/// Ready, active, and reachable through an engine proxy.
fn usable(node: &Node) -> bool {
    node.state == NodeState::Ready
        && node.availability == Availability::Active
        && node
            .description
            .as_ref()
            .is_some_and(|d| !d.engine_proxy.is_empty())
}

/// Whether the caller may put new containers on `node`. Managers are in
/// `/System`, where users hold no grants; a cluster without any worker
/// would then run nothing for them, so there every node is open (MKE's
/// single-node installs behave the same way).
fn may_schedule(caller: &Caller, node: &Node, has_workers: bool) -> bool {
    (!has_workers && node.role == NodeRole::Manager)
        || caller.may(
            op!("node.schedule"),
            Resource::Collection(&node_collection(node)),
        )
}

/// Picks the node for a new container or volume: `pinned` (a hostname or
/// node id) when given, else the allowed node with the fewest containers.
pub fn pick_node(
    caller: &Caller,
    nodes: &[Node],
    counts: &HashMap<String, usize>,
    pinned: Option<&str>,
) -> ApiResult<NodeEngine> {
    let has_workers = nodes.iter().any(|n| n.role == NodeRole::Worker);
    if let Some(wanted) = pinned {
        let node = Node::resolve(nodes, wanted)
            .map_err(|e| ApiError::invalid(format!("constraint node=={wanted}: {e}")))?;
        if !may_schedule(caller, node, has_workers) {
            caller.authorize(
                op!("node.schedule"),
                Resource::Collection(&node_collection(node)),
                &format!("node {}", node.hostname),
            )?;
        }
        if !usable(node) {
            return Err(ApiError::unavailable(format!(
                "node {} cannot take new containers: it is {} and {}{}",
                node.hostname,
                node.state,
                node.availability,
                if engine::engine_of(node).is_err() {
                    ", with no engine proxy"
                } else {
                    ""
                }
            )));
        }
        return engine::engine_of(node);
    }
    let candidates: Vec<Candidate> = nodes
        .iter()
        .map(|n| Candidate {
            id: n.id.to_string(),
            usable: usable(n),
            allowed: may_schedule(caller, n, has_workers),
            containers: counts.get(&n.id.to_string()).copied().unwrap_or(0),
        })
        .collect();
    if let Some(i) = choose(&candidates) {
        return engine::engine_of(&nodes[i]);
    }
    // Nothing fits: a denial when some node is usable but not allowed
    // (audited like any other), else the cluster has no room.
    if let Some(n) = nodes.iter().find(|n| usable(n)) {
        caller.authorize(
            op!("node.schedule"),
            Resource::Collection(&node_collection(n)),
            "any node",
        )?;
    }
    Err(ApiError::unavailable(
        "no node is ready to run containers: none is ready and active with a running agent",
    ))
}

/// Cluster containers per node id, and whether `name` is taken.
fn counts_and_names(
    found: &[Found],
    engines: &[NodeEngine],
) -> (HashMap<String, usize>, Vec<String>) {
    let mut counts = HashMap::new();
    let mut names = Vec::new();
    for f in found {
        *counts.entry(engines[f.node].id()).or_insert(0) += 1;
        names.extend(f.names.iter().cloned());
    }
    (counts, names)
}

/// `POST /containers/create`: places the container on a node, labels it
/// with its node, owner and collection, and creates it there.
async fn create(
    State(gw): State<AppState>,
    caller: Caller,
    Query(q): Query<CreateQuery>,
    req: Request,
) -> ApiResult<Response> {
    let version = engine::version_of(&req);
    let body = axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|_| crate::extract::too_large())?;
    let mut config = parse_create(&body)?;
    let name = q.name.as_deref().map(str::trim).filter(|n| !n.is_empty());
    if let Some(n) = name {
        check_name(n)?;
    }
    let pinned = take_node_constraint(&mut config)?;
    let mut labels = requested_labels(&config)?;
    let image = config["Image"].as_str().unwrap_or_default().to_string();
    let what = format!("container {}", name.unwrap_or(&image));
    let collection = place(&caller, &mut labels, op!("container.create"), &what)?;
    for sub in sub_operations(&config) {
        caller.authorize(op_named(sub), Resource::Collection(&collection), &what)?;
    }
    if let Some(signed) = crate::trust::check_image(&gw, &caller, &image).await? {
        config.insert("Image".into(), Value::String(signed));
    }
    let nodes = engine::nodes(&gw).await?;
    let engines = engine::reachable(&nodes);
    let (found, _) = cluster_containers(&gw, &version, &engines, "all=1").await?;
    let (counts, taken) = counts_and_names(&found, &engines);
    if let Some(n) = name {
        let bare = n.trim_start_matches('/');
        if taken.iter().any(|t| t == bare) {
            return Err(ApiError::conflict(format!(
                "Conflict. The container name \"/{bare}\" is already in use. You have to remove (or rename) that container to be able to reuse that name."
            )));
        }
    }
    let target = pick_node(&caller, &nodes, &counts, pinned.as_deref())?;
    labels.insert(STANDALONE_LABEL.to_string(), target.id());
    labels.insert(OWNER_LABEL.to_string(), caller.username.clone());
    debug_assert!(labels.contains_key(ACCESS_LABEL));
    config.insert(
        "Labels".into(),
        Value::Object(
            labels
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        ),
    );
    let mut query = Vec::new();
    if let Some(n) = name {
        query.push(format!("name={}", engine::encode_query_value(n)));
    }
    if let Some(p) = q.platform.as_deref().filter(|p| !p.is_empty()) {
        query.push(format!("platform={}", engine::encode_query_value(p)));
    }
    let path = if query.is_empty() {
        "/containers/create".to_string()
    } else {
        format!("/containers/create?{}", query.join("&"))
    };
    let out = engine::json_request(&version, Method::POST, &path, &Value::Object(config))?;
    let (status, bytes) = engine::call(&gw, &target, out).await?;
    if !status.is_success() {
        return Err(engine::engine_error(status, &bytes));
    }
    if let Some(id) = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v["Id"].as_str().map(str::to_string))
    {
        caller.note_object(&format!("container {id} on node {}", target.hostname()));
    }
    Ok(engine::json_answer(status, bytes))
}

#[cfg(test)]
mod tests {
    use capstan_core::rbac::Operation;

    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn references_resolve_like_the_engine() {
        let a = names(&["web"]);
        let b = names(&["db"]);
        let c = names(&["abc"]);
        let set: Vec<(&str, &[String])> = vec![
            ("abc123", a.as_slice()),
            ("abd456", b.as_slice()),
            ("ffe789", c.as_slice()),
        ];
        assert_eq!(resolve(&set, "abc123"), Ok(0));
        assert_eq!(resolve(&set, "web"), Ok(0));
        assert_eq!(resolve(&set, "/db"), Ok(1));
        assert_eq!(resolve(&set, "ffe"), Ok(2));
        // A name wins over an id prefix.
        assert_eq!(resolve(&set, "abc"), Ok(2));
        assert_eq!(resolve(&set, "ab"), Err(Unresolved::Ambiguous));
        assert_eq!(resolve(&set, "zzz"), Err(Unresolved::NotFound));
        assert_eq!(resolve(&set, ""), Err(Unresolved::NotFound));
    }

    #[test]
    fn membership_needs_this_nodes_label() {
        let task = BTreeMap::from([
            (NODE_LABEL.to_string(), "n1".to_string()),
            (SERVICE_LABEL.to_string(), "s1".to_string()),
        ]);
        assert_eq!(
            membership(&task, "n1"),
            Some(Membership::Task(Some("s1".into())))
        );
        assert_eq!(membership(&task, "n2"), None);
        let standalone = BTreeMap::from([(STANDALONE_LABEL.to_string(), "n2".to_string())]);
        assert_eq!(membership(&standalone, "n2"), Some(Membership::Standalone));
        assert_eq!(membership(&standalone, "n1"), None);
        assert_eq!(membership(&BTreeMap::new(), "n1"), None);
    }

    #[test]
    fn collections_follow_services_and_access_labels() {
        let services = HashMap::from([("s1".to_string(), "/Shared/team".to_string())]);
        let none = BTreeMap::new();
        assert_eq!(
            collection(&Membership::Task(Some("s1".into())), &none, &services),
            "/Shared/team"
        );
        assert_eq!(
            collection(&Membership::Task(Some("gone".into())), &none, &services),
            "/"
        );
        assert_eq!(collection(&Membership::Task(None), &none, &services), "/");
        let labelled =
            BTreeMap::from([(ACCESS_LABEL.to_string(), "/Shared/Private/bob".to_string())]);
        assert_eq!(
            collection(&Membership::Standalone, &labelled, &services),
            "/Shared/Private/bob"
        );
        assert_eq!(collection(&Membership::Standalone, &none, &services), "/");
    }

    fn cand(id: &str, usable: bool, allowed: bool, containers: usize) -> Candidate {
        Candidate {
            id: id.into(),
            usable,
            allowed,
            containers,
        }
    }

    #[test]
    fn the_least_busy_allowed_node_is_chosen() {
        let c = [
            cand("n1", true, true, 3),
            cand("n2", true, true, 1),
            cand("n3", true, false, 0),
            cand("n4", false, true, 0),
            cand("n0", true, true, 1),
        ];
        assert_eq!(choose(&c), Some(4), "fewest containers, ties by id");
        assert_eq!(choose(&c[..3]), Some(1));
        assert_eq!(
            choose(&[cand("n3", true, false, 0), cand("n4", false, true, 0)]),
            None
        );
        assert_eq!(choose(&[]), None);
    }

    fn config(json: Value) -> Map<String, Value> {
        match json {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn sub_operations_are_detected() {
        let plain = config(
            serde_json::json!({"Image": "busybox", "HostConfig": {"Binds": ["data:/data"], "NetworkMode": "bridge", "CapAdd": []}}),
        );
        assert!(sub_operations(&plain).is_empty());
        let all = config(serde_json::json!({"Image": "busybox", "HostConfig": {
            "Privileged": true, "Binds": ["/etc:/host-etc:ro"], "NetworkMode": "host",
            "PidMode": "host", "IpcMode": "host", "UsernsMode": "host", "CapAdd": ["NET_ADMIN"]
        }}));
        assert_eq!(
            sub_operations(&all),
            vec![
                "container.create.privileged",
                "container.create.host-bind-mounts",
                "container.create.host-networking",
                "container.create.pid-mode",
                "container.create.ipc-mode",
                "container.create.userns-mode",
                "container.create.kernel-capabilities",
            ]
        );
        let mounts = config(
            serde_json::json!({"Image": "x", "HostConfig": {"Mounts": [{"Type": "bind", "Source": "/", "Target": "/h"}]}}),
        );
        assert_eq!(
            sub_operations(&mounts),
            vec!["container.create.host-bind-mounts"]
        );
        let volume = config(
            serde_json::json!({"Image": "x", "HostConfig": {"Mounts": [{"Type": "volume", "Source": "v", "Target": "/v"}]}}),
        );
        assert!(sub_operations(&volume).is_empty());
        // Every name is in the catalogue.
        for op in sub_operations(&all) {
            Operation::parse(op).expect(op);
        }
    }

    #[test]
    fn create_bodies_are_validated() {
        assert!(parse_create(br#"{"Image":"busybox"}"#).is_ok());
        let e = parse_create(b"{not json").expect_err("syntax");
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
        let e = parse_create(b"[1]").expect_err("array");
        assert!(e.message.contains("JSON object"), "{}", e.message);
        let e = parse_create(br#"{"Image":""}"#).expect_err("empty");
        assert!(e.message.contains("no Image"), "{}", e.message);
        let e = parse_create(br#"{"Cmd":["sh"]}"#).expect_err("missing");
        assert!(e.message.contains("no Image"), "{}", e.message);
        let e = parse_create(br#"{"Image":5}"#).expect_err("type");
        assert!(e.message.contains("must be a string"), "{}", e.message);
    }

    #[test]
    fn names_and_labels_are_checked() {
        assert!(check_name("web").is_ok());
        assert!(check_name("/web-1.a_b").is_ok());
        for bad in ["-web", "a", "we b", "x/y", ""] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        let ok = config(serde_json::json!({"Image": "x", "Labels": {"a": "b"}}));
        assert_eq!(requested_labels(&ok).expect("labels")["a"], "b");
        let forged = config(serde_json::json!({"Image": "x", "Labels": {NODE_LABEL: "n1"}}));
        let e = requested_labels(&forged).expect_err("reserved");
        assert!(e.message.contains(NODE_LABEL), "{}", e.message);
        let bad = config(serde_json::json!({"Image": "x", "Labels": {"a": 1}}));
        assert!(requested_labels(&bad).is_err());
    }

    #[test]
    fn node_constraints_are_taken_from_env() {
        let mut c =
            config(serde_json::json!({"Image": "x", "Env": ["A=1", "constraint:node==node02"]}));
        assert_eq!(
            take_node_constraint(&mut c).expect("ok"),
            Some("node02".into())
        );
        assert_eq!(c["Env"], serde_json::json!(["A=1"]));
        let mut none = config(serde_json::json!({"Image": "x"}));
        assert_eq!(take_node_constraint(&mut none).expect("ok"), None);
        let mut bad = config(serde_json::json!({"Image": "x", "Env": ["constraint:region==eu"]}));
        assert!(take_node_constraint(&mut bad).is_err());
    }

    #[test]
    fn calls_map_to_operations() {
        assert_eq!(
            container_call(&Method::GET, "logs"),
            Some(("container.logs", Kind::Forward))
        );
        assert_eq!(
            container_call(&Method::POST, "attach"),
            Some(("container.attach", Kind::Hijack))
        );
        assert_eq!(
            container_call(&Method::POST, "exec"),
            Some(("container.exec", Kind::Exec))
        );
        assert_eq!(container_call(&Method::POST, "update"), None);
        assert_eq!(container_call(&Method::GET, "start"), None);
        for (method, action) in [
            (Method::GET, "json"),
            (Method::GET, "changes"),
            (Method::GET, "logs"),
            (Method::GET, "top"),
            (Method::GET, "stats"),
            (Method::GET, "export"),
            (Method::GET, "archive"),
            (Method::PUT, "archive"),
            (Method::POST, "start"),
            (Method::POST, "stop"),
            (Method::POST, "kill"),
            (Method::POST, "restart"),
            (Method::POST, "wait"),
            (Method::POST, "pause"),
            (Method::POST, "unpause"),
            (Method::POST, "rename"),
            (Method::POST, "resize"),
            (Method::POST, "attach"),
            (Method::POST, "exec"),
        ] {
            let (op, _) = container_call(&method, action).expect(action);
            Operation::parse(op).expect(op);
        }
    }

    #[test]
    fn exec_ids_cannot_walk_the_engine_api() {
        assert!(check_exec_id("4f3c2a").is_ok());
        for bad in ["", "../containers/x", "a?b=c", "a/b", "a%2Fb"] {
            assert!(check_exec_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_parse_like_the_engine() {
        assert!(flag("all", Some("1")).expect("1"));
        assert!(flag("all", Some("true")).expect("true"));
        assert!(!flag("all", Some("0")).expect("0"));
        assert!(!flag("all", None).expect("none"));
        let e = flag("all", Some("yes")).expect_err("yes");
        assert!(e.message.contains("all"), "{}", e.message);
    }
}
