//! The Docker Engine API on the gateway port: the stock `docker` CLI,
//! pointed at a manager with a client bundle, drives the whole cluster.
//!
//! Swarm objects (services, tasks, nodes, secrets, configs, networks,
//! stacks) are answered from the store through the manager's Swarm API;
//! containers, images and volumes are routed to the engines of the nodes
//! through their agents' engine proxies ([`engine`]). Every call is
//! authorised by the one RBAC decision ([`Caller::authorize`]); lists hold
//! only what the caller may see. Errors answer the Docker way,
//! `{"message": "..."}` with `Content-Type: application/json`.

pub mod containers;
pub mod convert;
pub mod engine;
pub mod filters;
pub mod images;
pub mod nodes;
pub mod objects;
pub mod services;
pub mod system;
pub mod tasks;
pub mod volumes;

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use capstan_core::rbac::{resource_collection, Operation, Resource, ACCESS_LABEL};
use capstan_core::{Node, NodeRole};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::AppState;

/// The highest Engine API version the proxy speaks.
pub const API_VERSION: &str = "1.41";
/// The lowest it accepts.
pub const MIN_API_VERSION: &str = "1.24";

/// Marks a request that came in on a Docker path, with the API version the
/// client asked for (its `/v1.xx` prefix, or [`API_VERSION`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DockerRequest {
    /// `major.minor`.
    pub version: String,
}

/// The first path segments of the Engine API.
///
/// `/_ping` is not among them: unversioned, it is also the REST API's
/// liveness route, which answers the docker CLI's headers anyway.
const ENGINE_ROOTS: &[&str] = &[
    "build",
    "commit",
    "configs",
    "containers",
    "distribution",
    "events",
    "exec",
    "images",
    "info",
    "networks",
    "nodes",
    "plugins",
    "secrets",
    "services",
    "session",
    "swarm",
    "system",
    "tasks",
    "version",
    "volumes",
];

/// Whether `path` (without a version prefix) belongs to the Engine API.
pub fn is_engine_path(path: &str) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    ENGINE_ROOTS.contains(&first)
}

/// Splits a `/v1.41/...` path into the version and the rest. `None` when
/// the path has no version prefix.
fn split_version(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/v")?;
    let end = rest.find('/').unwrap_or(rest.len());
    let (version, tail) = rest.split_at(end);
    let mut parts = version.split('.');
    let numeric =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    (numeric(parts.next()) && numeric(parts.next()) && parts.next().is_none())
        .then_some((version, if tail.is_empty() { "/" } else { tail }))
}

fn version_tuple(v: &str) -> (u32, u32) {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Prepares a request before routing: strips a `/v1.xx` prefix (checking
/// the version) and marks Engine API requests with [`DockerRequest`].
/// Returns the answer itself when the version is out of range.
pub fn prepare(req: &mut Request<Body>) -> Option<Response> {
    let path = req.uri().path().to_string();
    let (version, rest) = match split_version(&path) {
        Some((v, rest)) => (v.to_string(), rest.to_string()),
        None if is_engine_path(&path) => (API_VERSION.to_string(), path.clone()),
        None => return None,
    };
    let asked = version_tuple(&version);
    if asked > version_tuple(API_VERSION) {
        return Some(
            ApiError::invalid(format!(
                "client version {version} is too new. Maximum supported API version is {API_VERSION}"
            ))
            .into_docker(),
        );
    }
    if asked < version_tuple(MIN_API_VERSION) {
        return Some(
            ApiError::invalid(format!(
                "client version {version} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
            ))
            .into_docker(),
        );
    }
    if rest != path {
        let pq = match req.uri().query() {
            Some(q) => format!("{rest}?{q}"),
            None => rest,
        };
        let mut parts = req.uri().clone().into_parts();
        match pq.parse() {
            Ok(pq) => parts.path_and_query = Some(pq),
            Err(_) => {
                return Some(ApiError::invalid("the request path is not valid").into_docker())
            }
        }
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    req.extensions_mut().insert(DockerRequest { version });
    None
}

impl ApiError {
    /// This error in the Engine API's shape: `{"message": "..."}`.
    pub fn into_docker(self) -> Response {
        docker_error(self.status, &self.message)
    }
}

/// An Engine API error answer.
pub fn docker_error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "message": message }).to_string();
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Rewrites the gateway's error answers (`{"errors":[{code,message}]}`)
/// on Engine API routes into the Docker shape.
pub async fn docker_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    if !(resp.status().is_client_error() || resp.status().is_server_error()) {
        return resp;
    }
    let status = resp.status();
    let (parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return docker_error(status, "the error answer could not be read");
    };
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
    if parsed.as_ref().is_some_and(|v| v.get("message").is_some()) {
        return Response::from_parts(parts, Body::from(bytes));
    }
    let message = parsed
        .as_ref()
        .and_then(|v| v["errors"][0]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string());
    let mut out = docker_error(status, &message);
    if let Some(retry) = parts.headers.get(header::RETRY_AFTER) {
        out.headers_mut().insert(header::RETRY_AFTER, retry.clone());
    }
    out
}

/// The Engine API routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(system::routes())
        .merge(containers::routes())
        .merge(images::routes())
        .merge(volumes::routes())
        .merge(services::routes())
        .merge(tasks::routes())
        .merge(nodes::routes())
        .merge(objects::routes())
        .layer(axum::middleware::from_fn(docker_errors))
}

/// The answer to an Engine API path the proxy does not serve.
pub fn unsupported(method: &axum::http::Method, path: &str) -> Response {
    docker_error(
        StatusCode::NOT_FOUND,
        &format!("{method} {path} is not supported by the Capstan Docker API proxy"),
    )
}

/// A user's default collection: where what they create goes unless its
/// access label says otherwise.
pub fn default_collection(username: &str) -> String {
    format!("/Shared/Private/{username}")
}

/// The collection a resource with these labels is in; `default` when it
/// has no (valid) access label.
pub fn collection_of(labels: &BTreeMap<String, String>, default: &str) -> String {
    resource_collection(labels, default).unwrap_or_else(|_| default.to_string())
}

/// The collection of a node: its access label, else `/System` for
/// managers and `/Shared` for workers, as in MKE.
pub fn node_collection(node: &Node) -> String {
    let default = match node.role {
        NodeRole::Manager => "/System",
        NodeRole::Worker => "/Shared",
    };
    collection_of(&node.labels, default)
}

/// Places a resource the caller is creating: its access label names the
/// collection (the caller's default collection when absent; an invalid
/// label is refused), the label is written back in canonical form, and the
/// caller must be allowed `op` there. Returns the collection path.
pub fn place(
    caller: &Caller,
    labels: &mut BTreeMap<String, String>,
    op: Operation,
    what: &str,
) -> Result<String, ApiError> {
    let path = resource_collection(labels, &default_collection(&caller.username))
        .map_err(|e| ApiError::invalid(format!("label {ACCESS_LABEL}: {e}")))?;
    if caller.snap.tree.by_path(&path).is_none() {
        if path == default_collection(&caller.username) {
            // Made by the gateway's seed for every account, moments after a
            // cluster starts or an account appears.
            return Err(ApiError::unavailable(format!(
                "your private collection {path} is still being created; retry in a moment"
            )));
        }
        return Err(ApiError::invalid(format!(
            "label {ACCESS_LABEL} names collection {path}, which does not exist"
        )));
    }
    caller.authorize(op, Resource::Collection(&path), what)?;
    labels.insert(ACCESS_LABEL.to_string(), path.clone());
    Ok(path)
}

/// Converts a Swarm API status into the gateway's error.
pub fn status_error(status: tonic::Status) -> ApiError {
    ApiError::from(capstan_manager::ManagerError::Remote(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefixes_are_split() {
        assert_eq!(
            split_version("/v1.41/containers/json"),
            Some(("1.41", "/containers/json"))
        );
        assert_eq!(split_version("/v1.24/_ping"), Some(("1.24", "/_ping")));
        assert_eq!(split_version("/v1.41"), Some(("1.41", "/")));
        assert_eq!(split_version("/volumes"), None);
        assert_eq!(split_version("/v1/x"), None);
        assert_eq!(split_version("/v1.x/x"), None);
    }

    #[test]
    fn engine_paths_are_recognised() {
        assert!(is_engine_path("/containers/json"));
        assert!(is_engine_path("/info"));
        assert!(!is_engine_path("/accounts"));
        assert!(!is_engine_path("/api/clientbundle"));
    }

    fn prepared(path: &str) -> (Request<Body>, Option<Response>) {
        let mut req = Request::builder()
            .uri(path)
            .body(Body::empty())
            .expect("request");
        let out = prepare(&mut req);
        (req, out)
    }

    #[test]
    fn versions_outside_the_range_are_refused() {
        let (_, out) = prepared("/v1.99/info");
        assert_eq!(out.map(|r| r.status()), Some(StatusCode::BAD_REQUEST));
        let (_, out) = prepared("/v1.12/info");
        assert_eq!(out.map(|r| r.status()), Some(StatusCode::BAD_REQUEST));
        let (req, out) = prepared("/v1.41/containers/json?all=1");
        assert!(out.is_none());
        assert_eq!(req.uri().path(), "/containers/json");
        assert_eq!(req.uri().query(), Some("all=1"));
        assert_eq!(
            req.extensions()
                .get::<DockerRequest>()
                .map(|d| d.version.as_str()),
            Some("1.41")
        );
        let (req, _) = prepared("/accounts");
        assert!(req.extensions().get::<DockerRequest>().is_none());
    }
}
