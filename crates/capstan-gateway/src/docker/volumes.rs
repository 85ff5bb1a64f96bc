//! Engine API: volumes, on the nodes that hold them.
//!
//! A node's volumes are those its engine holds labelled with its id: by
//! its agent (`com.capstan.node.id`, for services; in `/`) or by this proxy
//! (`com.capstan.standalone.node`, with the owner and the collection the
//! access label names). Others on the engine are not the cluster's.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use capstan_core::rbac::Resource;
use capstan_core::Node;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::containers::{
    self, flag, labels_of, membership, Membership, OWNER_LABEL, STANDALONE_LABEL,
};
use super::engine::{self, NodeEngine};
use super::filters::Filters;
use super::place;
use crate::api::op;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::MAX_BODY;
use crate::AppState;

/// The filters `GET /volumes` understands (the engine's).
const LIST_FILTERS: &[&str] = &["dangling", "driver", "label", "name"];

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/volumes", get(list))
        .route("/volumes/create", post(create))
        .route("/volumes/{name}", get(inspect).delete(remove))
}

/// A volume of the cluster, as its node's engine describes it.
#[derive(Clone, Debug)]
pub struct FoundVolume {
    /// Index of its node among the engines searched.
    pub node: usize,
    /// Its name.
    pub name: String,
    /// Its collection.
    pub collection: String,
    /// The engine's description.
    pub volume: Value,
}

/// The collection of a cluster volume: the access label of one made
/// through the proxy; `/` for the agents' (service volumes).
pub fn volume_collection(membership: &Membership, labels: &BTreeMap<String, String>) -> String {
    match membership {
        Membership::Standalone => super::collection_of(labels, "/"),
        Membership::Task(_) => "/".to_string(),
    }
}

/// The cluster's volumes on these engines (`filters`: the engine's JSON).
async fn cluster_volumes(
    gw: &AppState,
    version: &str,
    engines: &[NodeEngine],
    filters: &str,
) -> ApiResult<Vec<FoundVolume>> {
    let path = if filters.is_empty() {
        "/volumes".to_string()
    } else {
        format!("/volumes?filters={}", engine::encode_query_value(filters))
    };
    let answers = engine::fan_out(engines, |e| {
        engine::call_json(gw, e, version, Method::GET, &path, None)
    })
    .await;
    let mut found = Vec::new();
    for (index, (node, answer)) in answers.into_iter().enumerate() {
        let listed = match answer {
            Ok(v) => v,
            Err(e) if e.status == StatusCode::BAD_REQUEST => return Err(e),
            Err(e) => {
                tracing::warn!(node = %node.hostname(), error = %e.message, "node left out of a volume list");
                continue;
            }
        };
        let node_id = node.id();
        for volume in listed["Volumes"].as_array().cloned().unwrap_or_default() {
            let labels = labels_of(&volume["Labels"]);
            let Some(m) = membership(&labels, &node_id) else {
                continue;
            };
            found.push(FoundVolume {
                node: index,
                name: volume["Name"].as_str().unwrap_or_default().to_string(),
                collection: volume_collection(&m, &labels),
                volume,
            });
        }
    }
    Ok(found)
}

#[derive(Deserialize)]
struct ListQuery {
    filters: Option<String>,
}

/// `GET /volumes`: the volumes of every node the caller may view.
async fn list(
    State(gw): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
    req: Request,
) -> ApiResult<Json<Value>> {
    let filters = Filters::parse(q.filters.as_deref(), LIST_FILTERS)?;
    let version = engine::version_of(&req);
    let nodes = engine::nodes(&gw).await?;
    let engines = engine::reachable(&nodes);
    let raw = if filters.is_empty() {
        String::new()
    } else {
        filters.to_json()
    };
    let volumes: Vec<Value> = cluster_volumes(&gw, &version, &engines, &raw)
        .await?
        .into_iter()
        .filter(|v| caller.may(op!("volume.view"), Resource::Collection(&v.collection)))
        .map(|v| v.volume)
        .collect();
    Ok(Json(json!({"Volumes": volumes, "Warnings": []})))
}

/// A volume the caller may view, found by name across the nodes.
async fn locate(
    gw: &AppState,
    caller: &Caller,
    version: &str,
    name: &str,
) -> ApiResult<(NodeEngine, FoundVolume)> {
    let nodes = engine::nodes(gw).await?;
    let engines = engine::reachable(&nodes);
    let filter = json!({"name": [name]}).to_string();
    cluster_volumes(gw, version, &engines, &filter)
        .await?
        .into_iter()
        // The engine's name filter matches substrings.
        .find(|v| {
            v.name == name && caller.may(op!("volume.view"), Resource::Collection(&v.collection))
        })
        .map(|v| (engines[v.node].clone(), v))
        .ok_or_else(|| ApiError::not_found(format!("get {name}: no such volume")))
}

/// `GET /volumes/{name}`.
async fn inspect(
    State(gw): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    req: Request,
) -> ApiResult<Json<Value>> {
    let version = engine::version_of(&req);
    let (_, found) = locate(&gw, &caller, &version, &name).await?;
    Ok(Json(found.volume))
}

#[derive(Deserialize)]
struct RemoveQuery {
    force: Option<String>,
}

/// `DELETE /volumes/{name}`.
async fn remove(
    State(gw): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<RemoveQuery>,
    req: Request,
) -> ApiResult<Response> {
    let force = flag("force", q.force.as_deref())?;
    let version = engine::version_of(&req);
    let (engine, found) = locate(&gw, &caller, &version, &name).await?;
    caller.authorize(
        op!("volume.remove"),
        Resource::Collection(&found.collection),
        &format!("volume {name}"),
    )?;
    let path = format!(
        "/volumes/{}{}",
        engine::encode_query_value(&found.name),
        if force { "?force=1" } else { "" }
    );
    let out = engine::request(&version, Method::DELETE, &path, Body::empty())?;
    let (status, bytes) = engine::call(&gw, &engine, out).await?;
    if !status.is_success() {
        return Err(engine::engine_error(status, &bytes));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Parses a volume create body: a JSON object (empty means defaults).
pub fn parse_create(body: &[u8]) -> ApiResult<Map<String, Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::invalid(
            "the volume configuration must be a JSON object",
        )),
        Err(e) => Err(ApiError::invalid(format!(
            "the volume configuration is not valid JSON: {e}"
        ))),
    }
}

/// Checks the optional volume name (the engine's pattern).
fn volume_name(config: &Map<String, Value>) -> ApiResult<Option<String>> {
    match config.get("Name") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(n)) if n.is_empty() => Ok(None),
        Some(Value::String(n)) => {
            let mut chars = n.chars();
            let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
                && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if ok {
                Ok(Some(n.clone()))
            } else {
                Err(ApiError::invalid(format!(
                    "volume name {n:?} includes invalid characters, only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                )))
            }
        }
        Some(other) => Err(ApiError::invalid(format!(
            "Name must be a string, not {other}"
        ))),
    }
}

/// `POST /volumes/create`: places the volume on a node (the one that has
/// a volume of that name already, else as for containers) and creates it
/// there, labelled with its node, owner and collection.
async fn create(State(gw): State<AppState>, caller: Caller, req: Request) -> ApiResult<Response> {
    let version = engine::version_of(&req);
    let body = axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|_| crate::extract::too_large())?;
    let mut config = parse_create(&body)?;
    let name = volume_name(&config)?;
    let mut labels = containers::requested_labels(&config)?;
    let what = format!("volume {}", name.as_deref().unwrap_or("(unnamed)"));
    let collection = place(&caller, &mut labels, op!("volume.create"), &what)?;
    let has_options = config
        .get("DriverOpts")
        .and_then(Value::as_object)
        .is_some_and(|o| !o.is_empty());
    if has_options {
        caller.authorize(
            op!("volume.create.local-driver-options"),
            Resource::Collection(&collection),
            &what,
        )?;
    }
    let nodes = engine::nodes(&gw).await?;
    let target = match &name {
        Some(n) => existing_home(&gw, &caller, &version, &nodes, n).await?,
        None => None,
    };
    let target = match target {
        Some(t) => t,
        None => {
            let engines = engine::reachable(&nodes);
            let (found, _) =
                containers::cluster_containers(&gw, &version, &engines, "all=1").await?;
            let mut counts = std::collections::HashMap::new();
            for f in &found {
                *counts.entry(engines[f.node].id()).or_insert(0usize) += 1;
            }
            containers::pick_node(&caller, &nodes, &counts, None)?
        }
    };
    labels.insert(STANDALONE_LABEL.to_string(), target.id());
    labels.insert(OWNER_LABEL.to_string(), caller.username.clone());
    config.insert(
        "Labels".into(),
        Value::Object(
            labels
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        ),
    );
    let out = engine::json_request(
        &version,
        Method::POST,
        "/volumes/create",
        &Value::Object(config),
    )?;
    let (status, bytes) = engine::call(&gw, &target, out).await?;
    if !status.is_success() {
        return Err(engine::engine_error(status, &bytes));
    }
    caller.note_object(&format!("{what} on node {}", target.hostname()));
    Ok(engine::json_answer(status, bytes))
}

/// The node that already has a cluster volume named `name`: creating it
/// again there answers the existing volume, as the engine does. One the
/// caller may not see is a conflict.
async fn existing_home(
    gw: &AppState,
    caller: &Caller,
    version: &str,
    nodes: &[Node],
    name: &str,
) -> ApiResult<Option<NodeEngine>> {
    let engines = engine::reachable(nodes);
    let filter = json!({"name": [name]}).to_string();
    let Some(existing) = cluster_volumes(gw, version, &engines, &filter)
        .await?
        .into_iter()
        .find(|v| v.name == name)
    else {
        return Ok(None);
    };
    if !caller.may(
        op!("volume.view"),
        Resource::Collection(&existing.collection),
    ) {
        return Err(ApiError::conflict(format!(
            "volume name {name} is already in use in the cluster"
        )));
    }
    Ok(Some(engines[existing.node].clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_bodies_and_names_are_validated() {
        assert!(parse_create(b"").expect("empty").is_empty());
        assert!(parse_create(b"{not")
            .expect_err("syntax")
            .message
            .contains("not valid JSON"));
        assert!(parse_create(b"[]")
            .expect_err("array")
            .message
            .contains("JSON object"));
        let named = parse_create(br#"{"Name":"data-1"}"#).expect("named");
        assert_eq!(volume_name(&named).expect("ok"), Some("data-1".into()));
        let bad = parse_create(br#"{"Name":"a/b"}"#).expect("parses");
        assert!(volume_name(&bad)
            .expect_err("slash")
            .message
            .contains("a/b"));
        let typed = parse_create(br#"{"Name":3}"#).expect("parses");
        assert!(volume_name(&typed).is_err());
    }

    #[test]
    fn volume_collections() {
        let labels = BTreeMap::from([(
            capstan_core::rbac::ACCESS_LABEL.to_string(),
            "/Shared/Private/ann".to_string(),
        )]);
        assert_eq!(
            volume_collection(&Membership::Standalone, &labels),
            "/Shared/Private/ann"
        );
        assert_eq!(volume_collection(&Membership::Task(None), &labels), "/");
        assert_eq!(
            volume_collection(&Membership::Standalone, &BTreeMap::new()),
            "/"
        );
    }
}
