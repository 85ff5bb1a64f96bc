//! Health, identity, the CA, metrics and the OpenAPI document.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::Json;
use capstan_core::rbac::Resource;
use serde::Serialize;
use utoipa::ToSchema;

use super::accounts::AccountView;
use super::op;
use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::AppState;

/// Liveness: answers `OK` without authentication, with the headers the
/// docker CLI reads before anything else (API version, swarm role).
#[utoipa::path(get, path = "/_ping", tag = "system",
    responses((status = 200, description = "The gateway is up", body = String, content_type = "text/plain")))]
pub async fn ping() -> impl axum::response::IntoResponse {
    (
        [
            ("Api-Version", crate::docker::API_VERSION),
            ("Ostype", "linux"),
            ("Docker-Experimental", "false"),
            ("Swarm", "active/manager"),
            ("Cache-Control", "no-cache, no-store, must-revalidate"),
            ("Pragma", "no-cache"),
        ],
        "OK",
    )
}

/// Who is asking, and where: the caller's account, this cluster and this
/// manager.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdView {
    /// The caller's account (MKE's `/id` answer).
    #[serde(flatten)]
    pub account: AccountView,
    /// The cluster.
    pub cluster: ClusterIdentity,
    /// The manager that answered.
    pub node: NodeIdentity,
}

/// Cluster identity.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterIdentity {
    /// Cluster id.
    pub id: String,
    /// SHA-256 digest of the cluster CA certificate.
    pub ca_digest: String,
}

/// The answering manager.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeIdentity {
    /// Node id.
    pub id: String,
    /// Hostname.
    pub hostname: String,
    /// Address other nodes reach it at.
    pub address: String,
    /// Whether it leads the Raft group now.
    pub leader: bool,
}

/// The caller's account with the cluster's and this manager's identity.
#[utoipa::path(get, path = "/id", tag = "system", security(("bearer" = [])),
    responses((status = 200, body = IdView), (status = 401, body = ErrorBody)))]
pub async fn id(State(gw): State<AppState>, caller: Caller) -> ApiResult<Json<IdView>> {
    caller.authorize(
        op!("account.view"),
        Resource::Account(&caller.principal.user_id),
        &caller.username,
    )?;
    let user = caller
        .snap
        .users
        .get(&caller.username)
        .ok_or_else(|| crate::ApiError::unauthorized("this account no longer exists"))?;
    let m = &gw.manager;
    Ok(Json(IdView {
        account: AccountView::user(user),
        cluster: ClusterIdentity {
            id: gw.cluster_id().to_string(),
            ca_digest: m.ca.digest().to_string(),
        },
        node: NodeIdentity {
            id: m.node_id().to_string(),
            hostname: m.config.hostname.clone(),
            address: m.config.host_address.clone(),
            leader: m.is_leader(),
        },
    }))
}

/// The cluster CA certificate (PEM), for clients to trust the gateway.
#[utoipa::path(get, path = "/ca", tag = "system",
    responses((status = 200, description = "PEM certificate", body = String, content_type = "application/x-pem-file")))]
pub async fn ca(State(gw): State<AppState>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "application/x-pem-file")],
        gw.manager.ca.cert_pem().to_string(),
    )
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "system",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
pub async fn openapi() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], super::openapi_json())
}

/// Prometheus metrics: Raft, nodes and tasks by state, request counts and
/// latencies by route and status.
#[utoipa::path(get, path = "/metrics", tag = "system", security(("bearer" = [])),
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn metrics(State(gw): State<AppState>, caller: Caller) -> ApiResult<impl IntoResponse> {
    caller.authorize(op!("metrics.view"), Resource::Collection("/"), "metrics")?;
    Ok((
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        gw.metrics.render(&gw.manager),
    ))
}
