//! The DTR/MSR repository API under `/api/v0/`: repositories, tags, team
//! access and garbage collection, with the control plane's credentials
//! (Basic, or a control-plane session token as Bearer).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine as _;
use capstan_core::registry::{AccessLevel, DirectoryView, NamespaceKind};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::access::{access_level, basic_credentials};
use crate::error::{RegistryError, RegistryResult};
use crate::meta::{ManifestRecord, RepoRecord, TagRecord, Visibility};
use crate::names::{check_tag, RepoName};
use crate::trust::RepoTrust;
use crate::Registry;

type Reg = State<Arc<Registry>>;

/// The routes, nested under `/api/v0`.
pub fn routes() -> Router<Arc<Registry>> {
    Router::new()
        .route("/repositories", get(list_all))
        .route("/repositories/{ns}", get(list_ns).post(create))
        .route(
            "/repositories/{ns}/{repo}",
            get(get_repo).patch(patch_repo).delete(delete_repo),
        )
        .route("/repositories/{ns}/{repo}/tags", get(list_tags))
        .route(
            "/repositories/{ns}/{repo}/tags/{tag}",
            get(get_tag).delete(delete_tag),
        )
        .route(
            "/repositories/{ns}/{repo}/teamAccess",
            get(list_team_access),
        )
        .route(
            "/repositories/{ns}/{repo}/teamAccess/{team}",
            put(put_team_access).delete(delete_team_access),
        )
        .route("/gc", post(run_gc))
}

fn err(status: StatusCode, code: &'static str, message: impl Into<String>) -> RegistryError {
    RegistryError::new(status, code, message)
}

fn no_repo(name: &str) -> RegistryError {
    err(
        StatusCode::NOT_FOUND,
        "NO_SUCH_REPOSITORY",
        format!("repository {name} does not exist"),
    )
}

fn not_authorized(message: impl Into<String>) -> RegistryError {
    err(StatusCode::FORBIDDEN, "NOT_AUTHORIZED", message)
}

/// Extracts the `sub` of a control-plane session token without checking
/// it (the control plane checks it).
fn token_subject(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&raw).ok()?;
    v["sub"].as_str().map(str::to_string)
}

/// The caller: `None` for anonymous.
async fn who(reg: &Registry, headers: &HeaderMap) -> RegistryResult<Option<String>> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().unwrap_or_default();
    let creds = if let Some(token) = value.strip_prefix("Bearer ") {
        token_subject(token.trim()).map(|u| (u, token.trim().to_string()))
    } else {
        basic_credentials(headers)
    };
    let (user, secret) = creds.ok_or_else(|| {
        err(
            StatusCode::UNAUTHORIZED,
            "NOT_AUTHENTICATED",
            "send Basic credentials or a control-plane session token as Bearer",
        )
    })?;
    match reg.control.authenticate(&user, &secret, None).await? {
        Some(u) => Ok(Some(u.username)),
        None => Err(err(
            StatusCode::UNAUTHORIZED,
            "NOT_AUTHENTICATED",
            "invalid username, password or token",
        )),
    }
}

fn level(dir: &DirectoryView, user: Option<&str>, r: &RepoRecord) -> Option<AccessLevel> {
    access_level(dir, user, &r.namespace, Some(r))
}

fn body<T: DeserializeOwned>(bytes: &Bytes) -> RegistryResult<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        err(
            StatusCode::BAD_REQUEST,
            "INVALID_JSON",
            format!("invalid request body: {e}"),
        )
    })
}

fn repo_json(reg: &Registry, r: &RepoRecord) -> serde_json::Value {
    serde_json::json!({
        "id": r.id,
        "namespace": r.namespace,
        "namespaceType": r.namespace_type,
        "name": r.name,
        "shortDescription": r.short_description,
        "longDescription": r.long_description,
        "visibility": r.visibility,
        "scanOnPush": false,
        "immutableTags": r.immutable_tags,
        "enableManifestLists": true,
        "tagLimit": r.tag_limit,
        "pullCommand": format!("docker pull {}/{}", reg.config.public_host, r.full_name()),
    })
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The trust data of repository `full` (none when the name is not one).
fn repo_trust(reg: &Registry, full: &str) -> RepoTrust {
    match RepoName::parse(full) {
        Ok(name) => reg.trust.repository(&name),
        Err(_) => RepoTrust::default(),
    }
}

fn tag_json(
    reg: &Registry,
    repo: &str,
    tag: &str,
    t: &TagRecord,
    m: Option<&ManifestRecord>,
    trust: &RepoTrust,
) -> serde_json::Value {
    let platform = m
        .and_then(|m| m.platforms.first())
        .cloned()
        .unwrap_or_default();
    let trust = trust.tag(tag, &t.digest);
    serde_json::json!({
        "name": tag,
        "digest": t.digest,
        "author": t.pushed_by,
        "createdAt": rfc3339(t.created_at),
        "updatedAt": rfc3339(t.pushed_at),
        "hashMismatch": trust.hash_mismatch,
        "inNotary": trust.signed,
        "signers": trust.roles,
        "manifest": {
            "digest": t.digest,
            "mediaType": m.map(|m| m.media_type.clone()).unwrap_or_default(),
            "size": m.map(ManifestRecord::total_size).unwrap_or(0),
            "os": platform.os,
            "architecture": platform.architecture,
            "platforms": m.map(|m| m.platforms.clone()).unwrap_or_default(),
            "author": t.pushed_by,
            "createdAt": rfc3339(t.pushed_at),
        },
        "pullCommand": format!("docker pull {}/{repo}:{tag}", reg.config.public_host),
    })
}

async fn visible(
    reg: &Registry,
    headers: &HeaderMap,
    ns: Option<&str>,
) -> RegistryResult<Response> {
    let user = who(reg, headers).await?;
    let dir = reg.control.directory().await?;
    if let Some(ns) = ns {
        if dir.namespace_kind(ns).is_none() {
            return Err(err(
                StatusCode::NOT_FOUND,
                "NO_SUCH_ACCOUNT",
                format!("namespace {ns} is neither a user nor an organisation"),
            ));
        }
    }
    let list: Vec<_> = reg
        .meta
        .repos()?
        .into_iter()
        .filter(|r| ns.is_none_or(|n| r.namespace == n))
        .filter(|r| level(&dir, user.as_deref(), r).is_some())
        .map(|r| repo_json(reg, &r))
        .collect();
    Ok(Json(serde_json::json!({ "repositories": list })).into_response())
}

async fn list_all(State(reg): Reg, headers: HeaderMap) -> RegistryResult<Response> {
    visible(&reg, &headers, None).await
}

async fn list_ns(
    State(reg): Reg,
    headers: HeaderMap,
    Path(ns): Path<String>,
) -> RegistryResult<Response> {
    visible(&reg, &headers, Some(&ns)).await
}

/// A new repository.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewRepo {
    name: String,
    #[serde(default)]
    short_description: String,
    #[serde(default)]
    long_description: String,
    #[serde(default = "private")]
    visibility: String,
    #[serde(default)]
    immutable_tags: bool,
    #[serde(default)]
    tag_limit: u32,
    #[serde(default)]
    scan_on_push: bool,
    #[serde(default)]
    enable_manifest_lists: Option<bool>,
}

fn private() -> String {
    "private".into()
}

fn visibility(v: &str) -> RegistryResult<Visibility> {
    match v {
        "public" => Ok(Visibility::Public),
        "private" => Ok(Visibility::Private),
        other => Err(err(
            StatusCode::BAD_REQUEST,
            "INVALID_JSON",
            format!("visibility {other:?} must be public or private"),
        )),
    }
}

fn check_description(short: &str) -> RegistryResult<()> {
    if short.chars().count() > 140 {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "INVALID_JSON",
            "shortDescription is limited to 140 characters",
        ));
    }
    Ok(())
}

async fn require_auth(reg: &Registry, headers: &HeaderMap) -> RegistryResult<String> {
    who(reg, headers).await?.ok_or_else(|| {
        err(
            StatusCode::UNAUTHORIZED,
            "NOT_AUTHENTICATED",
            "log in: send Basic credentials or a control-plane session token",
        )
    })
}

async fn create(
    State(reg): Reg,
    headers: HeaderMap,
    Path(ns): Path<String>,
    bytes: Bytes,
) -> RegistryResult<Response> {
    let user = require_auth(&reg, &headers).await?;
    let req: NewRepo = body(&bytes)?;
    let name = RepoName::parse(&format!("{ns}/{}", req.name)).map_err(|e| {
        err(
            StatusCode::BAD_REQUEST,
            "INVALID_REPOSITORY_NAME",
            e.message,
        )
    })?;
    check_description(&req.short_description)?;
    if req.scan_on_push {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "INVALID_JSON",
            "scanOnPush: image scanning is not available in this registry",
        ));
    }
    let _ = req.enable_manifest_lists;
    let dir = reg.control.directory().await?;
    let kind = dir.namespace_kind(&ns).ok_or_else(|| {
        err(
            StatusCode::NOT_FOUND,
            "NO_SUCH_ACCOUNT",
            format!("namespace {ns} is neither a user nor an organisation"),
        )
    })?;
    if !dir.administers(&user, &ns) {
        return Err(not_authorized(format!(
            "{user} may not create repositories in {ns}: only its owners and admins may"
        )));
    }
    let record = RepoRecord {
        id: uuid::Uuid::new_v4().to_string(),
        namespace: ns.clone(),
        namespace_type: kind,
        name: req.name,
        short_description: req.short_description,
        long_description: req.long_description,
        visibility: visibility(&req.visibility)?,
        immutable_tags: req.immutable_tags,
        tag_limit: req.tag_limit,
        team_access: BTreeMap::new(),
        created_at: OffsetDateTime::now_utc(),
    };
    if !reg.meta.create_repo(&record)? {
        return Err(err(
            StatusCode::CONFLICT,
            "REPOSITORY_EXISTS",
            format!("repository {name} already exists"),
        ));
    }
    reg.meta.flush().await?;
    Ok((StatusCode::CREATED, Json(repo_json(&reg, &record))).into_response())
}

/// The repository, when the caller may see it (else 404) and has at least
/// `want` in it (else 403 saying they may not `what`).
async fn open(
    reg: &Registry,
    headers: &HeaderMap,
    (ns, repo): (&str, &str),
    want: AccessLevel,
    what: &str,
) -> RegistryResult<RepoRecord> {
    let user = who(reg, headers).await?;
    let full = format!("{ns}/{repo}");
    let record = reg.meta.repo(&full)?.ok_or_else(|| no_repo(&full))?;
    let dir = reg.control.directory().await?;
    let lvl = level(&dir, user.as_deref(), &record).ok_or_else(|| no_repo(&full))?;
    if lvl < want {
        return Err(not_authorized(format!(
            "{} may not {what}: it needs {} access",
            user.as_deref().unwrap_or("an anonymous user"),
            want.as_str()
        )));
    }
    Ok(record)
}

async fn get_repo(
    State(reg): Reg,
    headers: HeaderMap,
    Path((ns, repo)): Path<(String, String)>,
) -> RegistryResult<Response> {
    let record = open(
        &reg,
        &headers,
        (&ns, &repo),
        AccessLevel::ReadOnly,
        "read it",
    )
    .await?;
    let mut v = repo_json(&reg, &record);
    v["storageBytes"] = serde_json::json!(crate::gc::storage_usage(&reg, &record.full_name())?);
    Ok(Json(v).into_response())
}

/// Changes to a repository.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RepoPatch {
    short_description: Option<String>,
    long_description: Option<String>,
    visibility: Option<String>,
    immutable_tags: Option<bool>,
    tag_limit: Option<u32>,
    scan_on_push: Option<bool>,
    enable_manifest_lists: Option<bool>,
}

async fn patch_repo(
    State(reg): Reg,
    headers: HeaderMap,
    Path((ns, repo)): Path<(String, String)>,
    bytes: Bytes,
) -> RegistryResult<Response> {
    let mut record = open(
        &reg,
        &headers,
        (&ns, &repo),
        AccessLevel::Admin,
        "edit the repository",
    )
    .await?;
    let p: RepoPatch = body(&bytes)?;
    if p.scan_on_push == Some(true) {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "INVALID_JSON",
            "scanOnPush: image scanning is not available in this registry",
        ));
    }
    let _ = p.enable_manifest_lists;
    if let Some(s) = p.short_description {
        check_description(&s)?;
        record.short_description = s;
    }
    if let Some(s) = p.long_description {
        record.long_description = s;
    }
    if let Some(v) = p.visibility {
        record.visibility = visibility(&v)?;
    }
    if let Some(b) = p.immutable_tags {
        record.immutable_tags = b;
    }
    if let Some(n) = p.tag_limit {
        record.tag_limit = n;
    }
    reg.meta.put_repo(&record)?;
    crate::gc::enforce_retention(&reg, &record.full_name())?;
    reg.meta.flush().await?;
    Ok(Json(repo_json(&reg, &record)).into_response())
}

async fn delete_repo(
    State(reg): Reg,
    headers: HeaderMap,
    Path((ns, repo)): Path<(String, String)>,
) -> RegistryResult<Response> {
    let record = open(
        &reg,
        &headers,
        (&ns, &repo),
        AccessLevel::Admin,
        "delete the repository",
    )
    .await?;
    reg.meta.delete_repo(&record.full_name())?;
    if let Ok(name) = RepoName::parse(&record.full_name()) {
        reg.trust.forget_repository(&name).await?;
    }
    reg.meta.flush().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_tags(
    State(reg): Reg,
    headers: HeaderMap,
    Path((ns, repo)): Path<(String, String)>,
) -> RegistryResult<Response> {
    let record = open(
        &reg,
        &headers,
        (&ns, &repo),
        AccessLevel::ReadOnly,
        "read it",
    )
    .await?;
    let full = record.full_name();
    let trust = repo_trust(&reg, &full);
    let mut out = Vec::new();
    for (tag, t) in reg.meta.tags(&full)? {
        let m = reg.meta.manifest(&full, &t.digest)?;
        out.push(tag_json(&reg, &full, &tag, &t, m.as_ref(), &trust));
    }
    Ok(Json(out).into_response())
}

async fn get_tag(
    State(reg): Reg,
    headers: HeaderMap,
    Path((ns, repo, tag)): Path<(String, String, String)>,
) -> RegistryResult<Response> {
    let record = open(
        &reg,
        &headers,
        (&ns, &repo),
        AccessLevel::ReadOnly,
        "read it",
    )
    .await?;
    let full = record.full_name();
    let t = reg.meta.tag(&full, &tag)?.ok_or_else(|| {
        err(
            StatusCode::NOT_FOUND,
            "NO_SUCH_TAG",
            format!("tag {tag} of {full} does not exist"),
        )
    })?;
    let m = reg.meta.manifest(&full, &t.digest)?;
    let trust = repo_trust(&reg, &full);
    Ok(Json(tag_json(&reg, &full, &tag, &t, m.as_ref(), &trust)).into_response())
}

async fn delete_tag(
    State(reg): Reg,
    headers: HeaderMap,
    Path((ns, repo, tag)): Path<(String, String, String)>,
) -> RegistryResult<Response> {
    let record = open(
        &reg,
        &headers,
        (&ns, &repo),
        AccessLevel::ReadWrite,
        "delete tags",
    )
    .await?;
    check_tag(&tag)?;
    if !reg.meta.delete_tag(&record.full_name(), &tag)? {
        return Err(err(
            StatusCode::NOT_FOUND,
            "NO_SUCH_TAG",
            format!("tag {tag} of {} does not exist", record.full_name()),
        ));
    }
    reg.meta.flush().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn team_access_json(r: &RepoRecord) -> serde_json::Value {
    let list: Vec<_> = r
        .team_access
        .iter()
        .map(|(team, lvl)| serde_json::json!({ "team": { "name": team, "orgName": r.namespace }, "accessLevel": lvl.as_str() }))
        .collect();
    serde_json::json!({ "repository": { "namespace": r.namespace, "name": r.name }, "teamAccessList": list })
}

async fn list_team_access(
    State(reg): Reg,
    headers: HeaderMap,
    Path((ns, repo)): Path<(String, String)>,
) -> RegistryResult<Response> {
    let record = open(
        &reg,
        &headers,
        (&ns, &repo),
        AccessLevel::Admin,
        "view the repository's access",
    )
    .await?;
    Ok(Json(team_access_json(&record)).into_response())
}

/// A team's access level.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TeamAccess {
    access_level: String,
}

async fn team_target(
    reg: &Registry,
    headers: &HeaderMap,
    ns: &str,
    repo: &str,
    team: &str,
) -> RegistryResult<RepoRecord> {
    let record = open(
        reg,
        headers,
        (ns, repo),
        AccessLevel::Admin,
        "manage the repository's access",
    )
    .await?;
    if record.namespace_type != NamespaceKind::Organization {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "INVALID_JSON",
            format!(
                "{} belongs to a user: only organisation repositories give teams access",
                record.full_name()
            ),
        ));
    }
    let dir = reg.control.directory().await?;
    let exists = dir.orgs.get(ns).is_some_and(|o| o.teams.contains_key(team));
    if !exists {
        return Err(err(
            StatusCode::NOT_FOUND,
            "NO_SUCH_TEAM",
            format!("organisation {ns} has no team {team}"),
        ));
    }
    Ok(record)
}

async fn put_team_access(
    State(reg): Reg,
    headers: HeaderMap,
    Path((ns, repo, team)): Path<(String, String, String)>,
    bytes: Bytes,
) -> RegistryResult<Response> {
    let req: TeamAccess = body(&bytes)?;
    let lvl = AccessLevel::parse(&req.access_level).ok_or_else(|| {
        err(
            StatusCode::BAD_REQUEST,
            "INVALID_JSON",
            format!(
                "accessLevel {:?} must be read-only, read-write or admin",
                req.access_level
            ),
        )
    })?;
    let mut record = team_target(&reg, &headers, &ns, &repo, &team).await?;
    record.team_access.insert(team.clone(), lvl);
    reg.meta.put_repo(&record)?;
    reg.meta.flush().await?;
    Ok(Json(serde_json::json!({ "team": { "name": team, "orgName": ns }, "accessLevel": lvl.as_str(), "repository": repo_json(&reg, &record) })).into_response())
}

async fn delete_team_access(
    State(reg): Reg,
    headers: HeaderMap,
    Path((ns, repo, team)): Path<(String, String, String)>,
) -> RegistryResult<Response> {
    let mut record = team_target(&reg, &headers, &ns, &repo, &team).await?;
    record.team_access.remove(&team);
    reg.meta.put_repo(&record)?;
    reg.meta.flush().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn run_gc(State(reg): Reg, headers: HeaderMap) -> RegistryResult<Response> {
    let user = require_auth(&reg, &headers).await?;
    let dir = reg.control.directory().await?;
    if !dir.active_user(&user).is_some_and(|u| u.admin) {
        return Err(not_authorized(format!(
            "{user} may not run garbage collection: admins only"
        )));
    }
    let report = crate::gc::collect(&reg).await?;
    Ok(Json(report).into_response())
}
