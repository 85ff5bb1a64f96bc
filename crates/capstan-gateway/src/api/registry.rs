//! The control plane's side of the image registry: registering a registry
//! (admins), and the two calls a registry makes with its node certificate —
//! the accounts and license it decides with, and checking credentials.

use std::net::{IpAddr, Ipv4Addr};

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::{Extension, Json};
use capstan_core::license::status;
use capstan_core::rbac::Resource;
use capstan_core::registry::{
    AnnounceAnswer, AnnounceRequest, AuthenticateRequest, AuthenticatedUser, DirectoryOrg,
    DirectoryUser, DirectoryView, RegisterRequest, RegistryRecord, PULL_TICKET_SESSION,
};
use capstan_core::{decode, Node, Table};
use capstan_pki::PeerKind;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{commit, op, put_op};
use crate::auth::Caller;
use crate::directory::Snapshot;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::server::ConnInfo;
use crate::AppState;

/// The registries installed in the cluster (admins).
#[utoipa::path(get, path = "/api/registries", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<Object>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(gw): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<RegistryRecord>>> {
    caller.authorize(op!("config.view"), Resource::Collection("/"), "registries")?;
    let rows = gw
        .manager
        .sm
        .list(RegistryRecord::TABLE, "", 0)
        .map_err(ApiError::internal)?;
    Ok(Json(
        rows.iter()
            .filter_map(|o| decode::<RegistryRecord>(&o.value).ok())
            .collect(),
    ))
}

/// What Admin Settings > Registry shows: the command that installs a
/// registry on a joined node, with this control plane's URL and CA.
#[derive(Serialize, ToSchema)]
pub struct InstallCommand {
    /// The control plane's URL, as the caller reached it.
    pub ucp_url: String,
    /// The cluster CA (PEM).
    pub ucp_ca: String,
    /// The command to run on the registry node.
    pub command: String,
}

/// The registry install command, ready to copy (admins).
#[utoipa::path(get, path = "/api/registries/install", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = InstallCommand), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn install_command(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult<Json<InstallCommand>> {
    caller.authorize(op!("config.view"), Resource::Collection("/"), "registries")?;
    let ucp_url = super::clientbundle::Endpoint::of_request(&gw, &headers, &uri).gateway_url();
    let ucp_ca = gw.manager.ca.cert_pem().trim_end().to_string();
    let command = format!(
        "capstan registry install --ucp-url {ucp_url} --ucp-ca \"{ucp_ca}\" --ucp-username {}",
        caller.username
    );
    Ok(Json(InstallCommand {
        ucp_url,
        ucp_ca,
        command,
    }))
}

/// Registers a registry running on a node of the cluster (what
/// `capstan registry install` does with the admin's credentials). The
/// node's certificate may then read the directory the registry decides with.
#[utoipa::path(post, path = "/api/registries", tag = "admin", security(("bearer" = [])),
    request_body(content = Object, description = "`{\"node_id\", \"url\"}`"),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn register(
    State(gw): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> ApiResult<Json<RegistryRecord>> {
    caller.authorize(
        op!("config.update"),
        Resource::Collection("/"),
        "registries",
    )?;
    let url = check_url(&req.url)?;
    let known = gw
        .manager
        .sm
        .get(Node::TABLE, &req.node_id)
        .map_err(ApiError::internal)?
        .is_some();
    if !known {
        return Err(ApiError::not_found(format!(
            "node {} is not a node of this cluster; join it first",
            req.node_id
        )));
    }
    let record = RegistryRecord {
        node_id: req.node_id,
        url,
        registered_by: caller.username.clone(),
        registered_at: OffsetDateTime::now_utc(),
    };
    caller.note_object(&format!("registry on node {}", record.node_id));
    commit(&gw, vec![put_op(&record)]).await?;
    Ok(Json(record))
}

/// `POST /api/registry/announce`: a registry tells where it serves and
/// gets its server certificate for that name; a manager's registry
/// (`capstan up`) registers itself this way, an installed one (a worker)
/// may only announce the URL an admin registered for it.
pub async fn announce(
    State(gw): State<AppState>,
    conn: Option<Extension<ConnInfo>>,
    ApiJson(req): ApiJson<AnnounceRequest>,
) -> ApiResult<Json<AnnounceAnswer>> {
    let node = registry_node(&gw, conn.as_deref())?;
    let url = check_url(&req.url)?;
    let existing = gw
        .manager
        .sm
        .get(RegistryRecord::TABLE, &node)
        .map_err(ApiError::internal)?
        .and_then(|o| decode::<RegistryRecord>(&o.value).ok());
    let role = match conn
        .as_deref()
        .and_then(|c| c.client.as_ref())
        .map(|c| c.kind)
    {
        Some(PeerKind::Manager) => capstan_pki::NodeRole::Manager,
        _ => capstan_pki::NodeRole::Worker,
    };
    if role == capstan_pki::NodeRole::Worker && existing.as_ref().is_none_or(|r| r.url != url) {
        return Err(ApiError::forbidden(format!(
            "access denied: node {node} is registered for another registry URL; register {url} with capstan registry install"
        )));
    }
    let record = match existing.filter(|r| r.url == url) {
        Some(r) => r,
        None => {
            let record = RegistryRecord {
                node_id: node.clone(),
                url: url.clone(),
                registered_by: format!("node {node}"),
                registered_at: OffsetDateTime::now_utc(),
            };
            commit(&gw, vec![put_op(&record)]).await?;
            record
        }
    };
    let certificate = match &req.csr {
        None => None,
        Some(csr) => {
            let host = capstan_core::registry::url_host(&url);
            let host = host
                .rsplit_once(':')
                .filter(|(_, p)| p.parse::<u16>().is_ok())
                .map_or(host, |(h, _)| h);
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let identity = capstan_pki::NodeIdentity {
                node_id: node.clone(),
                role,
                cluster_id: gw.cluster_id().to_string(),
                hosts: vec![host.to_string()],
            };
            let issued = gw
                .manager
                .ca
                .sign_node_csr(csr, &identity, gw.manager.config.cert_ttl())
                .map_err(|e| ApiError::invalid(format!("cannot sign the registry's CSR: {e}")))?;
            Some(issued.cert_pem)
        }
    };
    Ok(Json(AnnounceAnswer {
        registry: record,
        certificate,
    }))
}

fn check_url(url: &str) -> ApiResult<String> {
    let url = url.trim_end_matches('/');
    let host = url.strip_prefix("https://").ok_or_else(|| {
        ApiError::invalid(format!("registry url {url:?} must start with https://"))
    })?;
    if host.is_empty() || host.contains(['/', '?', '#', ' ', '@']) {
        return Err(ApiError::invalid(format!(
            "registry url {url:?} must be https://host[:port] with no path"
        )));
    }
    Ok(url.to_string())
}

/// Admits a registry's own node certificate: any manager of the cluster,
/// or a worker with a registry registered on it.
fn registry_node(gw: &AppState, conn: Option<&ConnInfo>) -> ApiResult<String> {
    let id = conn
        .and_then(|c| c.client.as_ref())
        .filter(|id| id.cluster_id == gw.cluster_id())
        .ok_or_else(|| {
            ApiError::unauthorized("this call is for registries: present the node's certificate")
        })?;
    match id.kind {
        PeerKind::Manager => Ok(id.subject_cn.clone()),
        PeerKind::Worker
            if gw
                .manager
                .sm
                .get(RegistryRecord::TABLE, &id.subject_cn)
                .map_err(ApiError::internal)?
                .is_some() =>
        {
            Ok(id.subject_cn.clone())
        }
        _ => Err(ApiError::forbidden(format!(
            "access denied: {} is not a registry node of this cluster",
            id.subject_cn
        ))),
    }
}

/// The accounts and license a registry decides with.
pub(crate) fn directory_view(snap: &Snapshot, nodes: u32) -> DirectoryView {
    let st = status(snap.license.as_ref(), OffsetDateTime::now_utc(), nodes);
    let mut view = DirectoryView {
        licensed: st.is_valid(),
        license_status: super::admin::license_status_name(&st).into(),
        ..DirectoryView::default()
    };
    for u in snap.users.values() {
        view.users.insert(
            u.username.clone(),
            DirectoryUser {
                id: u.id.clone(),
                admin: u.admin,
                active: u.active,
            },
        );
    }
    for name in snap.orgs.keys() {
        view.orgs.insert(name.clone(), DirectoryOrg::default());
    }
    for m in snap.org_members.values() {
        if let Some(org) = view.orgs.get_mut(&m.org) {
            org.members.insert(m.user.clone());
            if m.owner {
                org.owners.insert(m.user.clone());
            }
        }
    }
    for t in snap.teams.values() {
        if let Some(org) = view.orgs.get_mut(&t.org) {
            org.teams.entry(t.name.clone()).or_default();
        }
    }
    for m in snap.team_members.values() {
        if let Some(team) = view
            .orgs
            .get_mut(&m.org)
            .and_then(|o| o.teams.get_mut(&m.team))
        {
            team.insert(m.user.clone());
        }
    }
    view
}

/// `GET /api/registry/directory`: for registry nodes only.
pub async fn directory(
    State(gw): State<AppState>,
    conn: Option<Extension<ConnInfo>>,
) -> ApiResult<Json<DirectoryView>> {
    registry_node(&gw, conn.as_deref())?;
    let snap = gw.directory.get();
    Ok(Json(directory_view(&snap, super::admin::node_count(&gw))))
}

/// `POST /api/registry/authenticate`: checks a user's password or session
/// token for a registry node, under the login rate limit.
pub async fn authenticate(
    State(gw): State<AppState>,
    conn: Option<Extension<ConnInfo>>,
    ApiJson(req): ApiJson<AuthenticateRequest>,
) -> ApiResult<Json<AuthenticatedUser>> {
    registry_node(&gw, conn.as_deref())?;
    let snap = gw.directory.get();
    let answer = |u: &capstan_core::User| AuthenticatedUser {
        username: u.username.clone(),
        id: u.id.clone(),
        admin: u.admin,
    };
    // A session token of this user works as a password (what the
    // scheduler hands agents, and what scripts that logged in hold).
    if let Some(claims) = gw.tokens.verify(&req.password, gw.cluster_id()) {
        // A pull ticket has no session record; its expiry is its life.
        let live = claims.sid == PULL_TICKET_SESSION
            || snap
                .sessions
                .get(&format!("{}/{}", claims.sub, claims.sid))
                .is_some_and(|s| s.expires_at > OffsetDateTime::now_utc());
        return match snap.users.get(&claims.sub) {
            Some(u) if live && u.active && claims.sub == req.username => Ok(Json(answer(u))),
            _ => Err(ApiError::unauthorized(
                "the session token is invalid, has expired or is not this user's",
            )),
        };
    }
    let source = req
        .source
        .as_deref()
        .and_then(|s| s.parse::<IpAddr>().ok())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let user = super::auth::check_password(&gw, &snap, &req.username, req.password, source).await?;
    Ok(Json(answer(&user)))
}
