//! The audit log, the license, the cluster configuration and support
//! bundles.

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::Json;
use capstan_core::audit::AuditEntry;
use capstan_core::cluster_config::{parse_toml, to_toml, ClusterConfig};
use capstan_core::license::{parse_and_verify, status, trusted_keys, LicenseStatus, SignedLicense};
use capstan_core::rbac::Resource;
use capstan_core::{Node, Table};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use super::{commit, op, page_limit, put_op};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiQuery, RawBody, TextBody};
use crate::AppState;

/// A page of the audit log.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// First sequence number (default 1).
    pub start: Option<u64>,
    /// At most this many entries (1 to 1000, default 100).
    pub limit: Option<u32>,
}

/// Audit entries of the answering manager.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    /// Entries, oldest first.
    #[schema(value_type = Vec<Object>)]
    pub entries: Vec<AuditEntry>,
    /// `start` of the next page; 0 when this is the last.
    pub next_start: u64,
}

/// Pages through this manager's audit log (admins).
#[utoipa::path(get, path = "/api/audit", tag = "admin", params(AuditQuery), security(("bearer" = [])),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn audit(
    State(gw): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    caller.authorize(op!("audit.view"), Resource::Collection("/"), "audit log")?;
    let limit = page_limit(q.limit)?;
    let start = q.start.unwrap_or(1);
    let gw2 = gw.clone();
    let entries = super::blocking(move || gw2.audit.page(start, limit + 1))
        .await?
        .map_err(ApiError::internal)?;
    let mut entries = entries;
    let next_start = if entries.len() > limit {
        entries.pop().map(|e| e.seq).unwrap_or(0)
    } else {
        0
    };
    Ok(Json(AuditPage {
        entries,
        next_start,
    }))
}

/// License status.
#[derive(Serialize, ToSchema)]
pub struct LicenseView {
    /// `unlicensed`, `valid`, `expired` or `over-node-limit`.
    pub status: String,
    /// Whether licensed features (registry pushes) are on.
    pub licensed: bool,
    /// Licensee.
    pub licensee: Option<String>,
    /// Tier.
    pub tier: Option<String>,
    /// Expiry (RFC 3339).
    pub expires_at: Option<String>,
    /// Node limit.
    pub max_nodes: Option<u32>,
    /// Nodes in the cluster now.
    pub nodes: u32,
}

fn license_view(lic: Option<&SignedLicense>, nodes: u32) -> LicenseView {
    let st = status(lic, OffsetDateTime::now_utc(), nodes);
    let name = license_status_name(&st);
    let licensed = st.is_valid();
    let rfc = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    LicenseView {
        status: name.into(),
        licensed,
        licensee: lic.map(|l| l.license.licensee.clone()),
        tier: lic.map(|l| l.license.tier.clone()),
        expires_at: lic.map(|l| rfc(l.license.expires_at)),
        max_nodes: lic.map(|l| l.license.max_nodes),
        nodes,
    }
}

/// A license status's name in the API.
pub(crate) fn license_status_name(st: &LicenseStatus) -> &'static str {
    match st {
        LicenseStatus::Unlicensed => "unlicensed",
        LicenseStatus::Valid { .. } => "valid",
        LicenseStatus::Expired { .. } => "expired",
        LicenseStatus::OverNodeLimit { .. } => "over-node-limit",
    }
}

pub(crate) fn node_count(gw: &AppState) -> u32 {
    gw.manager
        .sm
        .list(Node::TABLE, "", 0)
        .map(|l| u32::try_from(l.len()).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

/// The license and whether it is in force.
#[utoipa::path(get, path = "/api/license", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = LicenseView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn get_license(
    State(gw): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<LicenseView>> {
    caller.authorize(op!("license.view"), Resource::Collection("/"), "license")?;
    Ok(Json(license_view(
        caller.snap.license.as_ref(),
        node_count(&gw),
    )))
}

/// Installs a license file (signed JSON). An invalid signature, an unknown
/// key or a malformed document is refused and changes nothing.
#[utoipa::path(put, path = "/api/license", tag = "admin", security(("bearer" = [])),
    request_body(content = Object, description = "The license file", content_type = "application/json"),
    responses((status = 200, body = LicenseView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn put_license(
    State(gw): State<AppState>,
    caller: Caller,
    RawBody(body): RawBody,
) -> ApiResult<Json<LicenseView>> {
    caller.authorize(op!("license.update"), Resource::Collection("/"), "license")?;
    let keys = trusted_keys();
    let lic = parse_and_verify(&body, &keys)
        .map_err(|e| ApiError::bad_request("INVALID_LICENSE", e.to_string()))?;
    commit(&gw, vec![put_op(&lic)]).await?;
    Ok(Json(license_view(Some(&lic), node_count(&gw))))
}

/// The cluster configuration as TOML.
#[utoipa::path(get, path = "/api/ucp/config-toml", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "TOML document", body = String, content_type = "application/toml"),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn get_config(caller: Caller) -> ApiResult<impl IntoResponse> {
    caller.authorize(
        op!("config.view"),
        Resource::Collection("/"),
        "cluster configuration",
    )?;
    Ok((
        [(CONTENT_TYPE, "application/toml")],
        to_toml(&caller.snap.config),
    ))
}

/// Result of a configuration change.
#[derive(Serialize, ToSchema)]
pub struct ConfigApplied {
    /// Always true: a rejected document answers 400.
    pub applied: bool,
}

/// Replaces the cluster configuration. The document is validated first; a
/// bad one answers 400 naming the line and key and changes nothing.
#[utoipa::path(put, path = "/api/ucp/config-toml", tag = "admin", security(("bearer" = [])),
    request_body(content = String, description = "TOML document", content_type = "text/plain"),
    responses((status = 200, body = ConfigApplied), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn put_config(
    State(gw): State<AppState>,
    caller: Caller,
    TextBody(doc): TextBody,
) -> ApiResult<Json<ConfigApplied>> {
    caller.authorize(
        op!("config.update"),
        Resource::Collection("/"),
        "cluster configuration",
    )?;
    let config: ClusterConfig =
        parse_toml(&doc).map_err(|e| ApiError::bad_request("INVALID_CONFIG", e.to_string()))?;
    commit(&gw, vec![put_op(&config)]).await?;
    Ok(Json(ConfigApplied { applied: true }))
}

/// A support bundle of the whole cluster (admins: `config.update` on `/`):
/// a zip with every reachable node's recent log, configuration and Raft
/// state, node descriptions, services, task states and recent task events,
/// versions and this gateway's metrics, with every secret value redacted.
/// Nodes that do not answer within a few seconds are listed in
/// `manifest.json` instead of waited for.
#[utoipa::path(post, path = "/api/support", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "The support bundle", body = super::clientbundle::BundleZip, content_type = "application/zip"),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn support(State(gw): State<AppState>, caller: Caller) -> ApiResult<impl IntoResponse> {
    caller.authorize(
        op!("config.update"),
        Resource::Collection("/"),
        "support bundle",
    )?;
    let state = &gw.manager;
    let local = state.peer(&state.config.advertise_addr())?;
    let metrics = gw.metrics.render(&gw.manager).into_bytes();
    let zip = capstan_manager::support::gather(
        local,
        |addr| state.peer(addr),
        vec![("metrics.txt".into(), metrics)],
    )
    .await?;
    let name = format!(
        "attachment; filename=\"capstan-support-{}-{}.zip\"",
        state.config.cluster_id,
        OffsetDateTime::now_utc().unix_timestamp()
    );
    Ok((
        [
            (CONTENT_TYPE, "application/zip".to_string()),
            (CONTENT_DISPOSITION, name),
            (CACHE_CONTROL, "no-store".to_string()),
        ],
        zip,
    ))
}
