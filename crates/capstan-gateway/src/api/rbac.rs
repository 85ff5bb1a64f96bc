//! `/roles`, `/collections`, `/collectionGrants` and the explained decision.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use capstan_core::rbac::{
    is_builtin_role, join_path, normalize_path, resource_collection, validate_collection_name,
    validate_role_name, Collection, Grant, Operation, OperationSet, Resource, ResourceSetKind,
    Role, ACCESS_LABEL,
};
use capstan_core::{decode, Config, Network, Node, Secret, Service, Table};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use super::{commit, create_op, delete_op, op, put_op};
use crate::auth::Caller;
use crate::directory::Snapshot;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};
use crate::AppState;

// ---------------------------------------------------------------- roles

/// A role: a named set of operations.
#[derive(Serialize, ToSchema)]
pub struct RoleView {
    /// Role id (built-ins: `none`, `viewonly`, `restrictedcontrol`,
    /// `scheduler`, `fullcontrol`).
    pub id: String,
    /// Name.
    pub name: String,
    /// Built-in roles cannot be changed or deleted.
    pub system_role: bool,
    /// Operation names, e.g. `container.view`.
    pub operations: Vec<String>,
    /// Description.
    pub description: String,
}

fn role_view(r: &Role) -> RoleView {
    RoleView {
        id: r.id.clone(),
        name: r.name.clone(),
        system_role: r.system_role,
        operations: r
            .operations
            .names()
            .into_iter()
            .map(str::to_string)
            .collect(),
        description: r.description.clone(),
    }
}

/// A new custom role, or its new definition.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleRequest {
    /// Name, unique among roles.
    pub name: String,
    /// Operation names; `<type>.*` and `*` expand to groups.
    pub operations: Vec<String>,
    /// Description.
    #[serde(default)]
    pub description: String,
}

fn role_or_404<'a>(snap: &'a Snapshot, id: &str) -> ApiResult<&'a Role> {
    snap.roles
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("role {id:?} does not exist")))
}

fn parse_role(snap: &Snapshot, req: RoleRequest, id: &str) -> ApiResult<Role> {
    validate_role_name(&req.name)?;
    if snap
        .roles
        .values()
        .any(|r| r.name == req.name && r.id != id)
    {
        return Err(ApiError::conflict(format!(
            "a role named {:?} already exists",
            req.name
        )));
    }
    if req.description.chars().count() > 1000 {
        return Err(ApiError::invalid(
            "description must be at most 1000 characters",
        ));
    }
    Ok(Role {
        id: id.to_string(),
        name: req.name,
        system_role: false,
        operations: OperationSet::from_names(&req.operations)?,
        description: req.description,
    })
}

/// Lists roles.
#[utoipa::path(get, path = "/roles", tag = "rbac", security(("bearer" = [])),
    responses((status = 200, body = Vec<RoleView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_roles(caller: Caller) -> ApiResult<Json<Vec<RoleView>>> {
    caller.authorize(op!("role.view"), Resource::Collection("/"), "roles")?;
    Ok(Json(caller.snap.roles.values().map(role_view).collect()))
}

/// Creates a custom role.
#[utoipa::path(post, path = "/roles", tag = "rbac", security(("bearer" = [])), request_body = RoleRequest,
    responses((status = 201, body = RoleView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_role(
    State(gw): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<RoleRequest>,
) -> ApiResult<(StatusCode, Json<RoleView>)> {
    caller.authorize(
        op!("role.create"),
        Resource::Collection("/"),
        &format!("role {}", req.name),
    )?;
    let role = parse_role(&caller.snap, req, &uuid::Uuid::new_v4().to_string())?;
    commit(&gw, vec![create_op(&role)]).await?;
    Ok((StatusCode::CREATED, Json(role_view(&role))))
}

/// One role.
#[utoipa::path(get, path = "/roles/{id}", tag = "rbac", security(("bearer" = [])),
    params(("id" = String, Path, description = "Role id")),
    responses((status = 200, body = RoleView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_role(caller: Caller, Path(id): Path<String>) -> ApiResult<Json<RoleView>> {
    caller.authorize(
        op!("role.view"),
        Resource::Collection("/"),
        &format!("role {id}"),
    )?;
    Ok(Json(role_view(role_or_404(&caller.snap, &id)?)))
}

/// Redefines a custom role (built-ins are immutable).
#[utoipa::path(put, path = "/roles/{id}", tag = "rbac", security(("bearer" = [])), request_body = RoleRequest,
    params(("id" = String, Path, description = "Role id")),
    responses((status = 200, body = RoleView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update_role(
    State(gw): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RoleRequest>,
) -> ApiResult<Json<RoleView>> {
    caller.authorize(
        op!("role.create"),
        Resource::Collection("/"),
        &format!("role {id}"),
    )?;
    role_or_404(&caller.snap, &id)?;
    if is_builtin_role(&id) {
        return Err(ApiError::forbidden(format!(
            "{id} is a built-in role and cannot be changed"
        )));
    }
    let role = parse_role(&caller.snap, req, &id)?;
    commit(&gw, vec![put_op(&role)]).await?;
    Ok(Json(role_view(&role)))
}

/// Deletes a custom role that no grant uses.
#[utoipa::path(delete, path = "/roles/{id}", tag = "rbac", security(("bearer" = [])),
    params(("id" = String, Path, description = "Role id")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_role(
    State(gw): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.authorize(
        op!("role.delete"),
        Resource::Collection("/"),
        &format!("role {id}"),
    )?;
    role_or_404(&caller.snap, &id)?;
    if is_builtin_role(&id) {
        return Err(ApiError::forbidden(format!(
            "{id} is a built-in role and cannot be deleted"
        )));
    }
    let used = caller
        .snap
        .grants
        .iter()
        .filter(|g| g.role_id == id)
        .count();
    if used > 0 {
        return Err(ApiError::conflict(format!(
            "role {id} is used by {used} grant(s); revoke them first"
        )));
    }
    commit(&gw, vec![delete_op(Role::TABLE, &id)]).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------- collections

/// A collection: a node of the resource tree.
#[derive(Serialize, ToSchema)]
pub struct CollectionView {
    /// Collection id (built-ins: `swarm`, `system`, `shared`, `private`, `legacy`).
    pub id: String,
    /// Name (the last segment of the path).
    pub name: String,
    /// Full path, e.g. `/Shared/Private/alice`.
    pub path: String,
    /// Parent id; empty for `/`.
    pub parent_id: String,
    /// Ids from the root down to the parent.
    pub parent_ids: Vec<String>,
    /// Built-in collections cannot be moved or deleted.
    pub builtin: bool,
    /// When it was made (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

fn collection_view(snap: &Snapshot, c: &Collection) -> CollectionView {
    let mut parent_ids = Vec::new();
    let mut cur = c.parent_id.clone();
    while !cur.is_empty() {
        parent_ids.push(cur.clone());
        cur = snap
            .tree
            .by_id(&cur)
            .map(|p| p.parent_id.clone())
            .unwrap_or_default();
    }
    parent_ids.reverse();
    CollectionView {
        id: c.id.clone(),
        name: c.name.clone(),
        path: c.path.clone(),
        parent_id: c.parent_id.clone(),
        parent_ids,
        builtin: capstan_core::rbac::is_builtin_collection(&c.id),
        created_at: c.created_at,
    }
}

fn collection_or_404<'a>(snap: &'a Snapshot, id: &str) -> ApiResult<&'a Collection> {
    snap.tree
        .by_id(id)
        .ok_or_else(|| ApiError::not_found(format!("collection {id:?} does not exist")))
}

/// The collection `id` for a caller about to do `op` on it: a caller who
/// could not see it even if it existed (no `op` on `/`) learns nothing
/// about whether it does (403, not 404).
fn collection_for<'a>(caller: &'a Caller, id: &str, op: Operation) -> ApiResult<&'a Collection> {
    match caller.snap.tree.by_id(id) {
        Some(c) => Ok(c),
        None => {
            caller.authorize(op, Resource::Collection("/"), &format!("collection {id}"))?;
            Err(ApiError::not_found(format!(
                "collection {id:?} does not exist"
            )))
        }
    }
}

/// Paging of collections.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CollectionQuery {
    /// Skip this many.
    pub offset: Option<u32>,
    /// At most this many (1 to 1000, default all).
    pub limit: Option<u32>,
}

/// Lists the collections the caller may see.
#[utoipa::path(get, path = "/collections", tag = "rbac", params(CollectionQuery), security(("bearer" = [])),
    responses((status = 200, body = Vec<CollectionView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_collections(
    caller: Caller,
    ApiQuery(q): ApiQuery<CollectionQuery>,
) -> ApiResult<Json<Vec<CollectionView>>> {
    let limit = match q.limit {
        None => usize::MAX,
        Some(_) => super::page_limit(q.limit)?,
    };
    let view = op!("collection.view");
    let snap = &caller.snap;
    let out = snap
        .tree
        .iter()
        .filter(|c| caller.may(view, Resource::Collection(&c.path)))
        .skip(q.offset.unwrap_or(0) as usize)
        .take(limit)
        .map(|c| collection_view(snap, c))
        .collect();
    Ok(Json(out))
}

/// A new collection.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCollection {
    /// Name of the new collection (one path segment).
    pub name: String,
    /// Id of its parent collection.
    pub parent_id: String,
}

/// Creates a collection under a parent.
#[utoipa::path(post, path = "/collections", tag = "rbac", security(("bearer" = [])), request_body = CreateCollection,
    responses((status = 201, body = CollectionView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_collection(
    State(gw): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateCollection>,
) -> ApiResult<(StatusCode, Json<CollectionView>)> {
    let snap = caller.snap.clone();
    let parent = collection_for(&caller, &req.parent_id, op!("collection.create"))?;
    caller.authorize(
        op!("collection.create"),
        Resource::Collection(&parent.path),
        &format!("collection {}", parent.path),
    )?;
    validate_collection_name(&req.name)?;
    snap.tree.check_create(&req.parent_id, &req.name)?;
    let c = Collection {
        id: uuid::Uuid::new_v4().to_string(),
        name: req.name.clone(),
        path: join_path(&parent.path, &req.name),
        parent_id: parent.id.clone(),
        created_at: OffsetDateTime::now_utc(),
    };
    caller.note_object(&format!("collection {}", c.path));
    commit(&gw, vec![create_op(&c)]).await?;
    let snap = gw.directory.get();
    Ok((StatusCode::CREATED, Json(collection_view(&snap, &c))))
}

/// One collection.
#[utoipa::path(get, path = "/collections/{id}", tag = "rbac", security(("bearer" = [])),
    params(("id" = String, Path, description = "Collection id")),
    responses((status = 200, body = CollectionView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_collection(
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<CollectionView>> {
    let c = collection_for(&caller, &id, op!("collection.view"))?;
    caller.authorize(
        op!("collection.view"),
        Resource::Collection(&c.path),
        &format!("collection {}", c.path),
    )?;
    Ok(Json(collection_view(&caller.snap, c)))
}

/// The child collections of a collection (those the caller may see).
#[utoipa::path(get, path = "/collections/{id}/children", tag = "rbac", security(("bearer" = [])),
    params(("id" = String, Path, description = "Collection id")),
    responses((status = 200, body = Vec<CollectionView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn collection_children(
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<CollectionView>>> {
    let snap = &caller.snap;
    let c = collection_for(&caller, &id, op!("collection.view"))?;
    caller.authorize(
        op!("collection.view"),
        Resource::Collection(&c.path),
        &format!("collection {}", c.path),
    )?;
    let view = op!("collection.view");
    Ok(Json(
        snap.tree
            .children(&id)
            .into_iter()
            .filter(|c| caller.may(view, Resource::Collection(&c.path)))
            .map(|c| collection_view(snap, c))
            .collect(),
    ))
}

/// Renames or moves a collection.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCollection {
    /// New name.
    pub name: Option<String>,
    /// New parent id (a move keeps the collection's grants).
    pub parent_id: Option<String>,
}

/// Renames or moves a collection with its subtree; grants stay attached.
#[utoipa::path(patch, path = "/collections/{id}", tag = "rbac", security(("bearer" = [])), request_body = UpdateCollection,
    params(("id" = String, Path, description = "Collection id")),
    responses((status = 200, body = CollectionView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update_collection(
    State(gw): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateCollection>,
) -> ApiResult<Json<CollectionView>> {
    let snap = caller.snap.clone();
    let c = collection_for(&caller, &id, op!("collection.update"))?;
    caller.authorize(
        op!("collection.update"),
        Resource::Collection(&c.path),
        &format!("collection {}", c.path),
    )?;
    let parent_id = req.parent_id.unwrap_or_else(|| c.parent_id.clone());
    if parent_id != c.parent_id {
        let parent = collection_for(&caller, &parent_id, op!("collection.create"))?;
        caller.authorize(
            op!("collection.create"),
            Resource::Collection(&parent.path),
            &format!("collection {}", parent.path),
        )?;
    }
    if let Some(n) = &req.name {
        validate_collection_name(n)?;
    }
    let changed = snap
        .tree
        .plan_update(&id, req.name.as_deref(), &parent_id)?;
    let ops = changed.iter().map(put_op).collect();
    commit(&gw, ops).await?;
    let snap = gw.directory.get();
    let c = collection_or_404(&snap, &id)?;
    Ok(Json(collection_view(&snap, c)))
}

/// Counts the resources labelled into a collection.
fn resources_in(gw: &AppState, path: &str) -> usize {
    fn labelled<T: Table>(
        gw: &AppState,
        path: &str,
        labels: impl Fn(&T) -> Option<&String>,
    ) -> usize {
        gw.manager
            .sm
            .list(T::TABLE, "", 0)
            .unwrap_or_default()
            .iter()
            .filter_map(|o| decode::<T>(&o.value).ok())
            .filter(|v| {
                labels(v).is_some_and(|l| {
                    resource_collection(
                        &BTreeMap::from([(ACCESS_LABEL.to_string(), l.clone())]),
                        "/",
                    )
                    .is_ok_and(|p| p == path)
                })
            })
            .count()
    }
    labelled::<Service>(gw, path, |s| s.spec.labels.get(ACCESS_LABEL))
        + labelled::<Secret>(gw, path, |s| s.labels.get(ACCESS_LABEL))
        + labelled::<Config>(gw, path, |s| s.labels.get(ACCESS_LABEL))
        + labelled::<Network>(gw, path, |s| s.labels.get(ACCESS_LABEL))
        + labelled::<Node>(gw, path, |s| s.labels.get(ACCESS_LABEL))
}

/// Deletes an empty collection (no children, no resources) and its grants.
#[utoipa::path(delete, path = "/collections/{id}", tag = "rbac", security(("bearer" = [])),
    params(("id" = String, Path, description = "Collection id")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_collection(
    State(gw): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let snap = caller.snap.clone();
    let c = collection_for(&caller, &id, op!("collection.delete"))?;
    caller.authorize(
        op!("collection.delete"),
        Resource::Collection(&c.path),
        &format!("collection {}", c.path),
    )?;
    let gw2 = gw.clone();
    snap.tree
        .check_delete(&id, |path| resources_in(&gw2, path) > 0)?;
    let mut ops = vec![delete_op(Collection::TABLE, &id)];
    ops.extend(
        snap.grants
            .iter()
            .filter(|g| g.kind == ResourceSetKind::Collection && g.object_id == id)
            .map(|g| delete_op(Grant::TABLE, &g.id())),
    );
    commit(&gw, ops).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------- grants

/// A grant: a subject holds a role on a resource set.
#[derive(Serialize, ToSchema)]
pub struct GrantView {
    /// User, organisation or team id.
    #[serde(rename = "subjectID")]
    pub subject_id: String,
    /// Collection id, or Kubernetes namespace name.
    #[serde(rename = "objectID")]
    pub object_id: String,
    /// Role id.
    #[serde(rename = "roleID")]
    pub role_id: String,
    /// `collection` or `namespace`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The subject's name (username, org, or org/team).
    #[serde(rename = "subjectName")]
    pub subject_name: String,
    /// The collection's path, or `namespace:<name>`.
    #[serde(rename = "objectPath")]
    pub object_path: String,
}

/// A list of grants.
#[derive(Serialize, ToSchema)]
pub struct GrantList {
    /// The grants.
    pub grants: Vec<GrantView>,
}

fn kind_name(k: ResourceSetKind) -> &'static str {
    match k {
        ResourceSetKind::Collection => "collection",
        ResourceSetKind::Namespace => "namespace",
    }
}

fn object_path(snap: &Snapshot, g: &Grant) -> String {
    match g.kind {
        ResourceSetKind::Collection => snap
            .tree
            .by_id(&g.object_id)
            .map(|c| c.path.clone())
            .unwrap_or_default(),
        ResourceSetKind::Namespace => format!("namespace:{}", g.object_id),
    }
}

fn grant_resource<'a>(kind: ResourceSetKind, path: &'a str, object_id: &'a str) -> Resource<'a> {
    match kind {
        ResourceSetKind::Collection => Resource::Collection(path),
        ResourceSetKind::Namespace => Resource::Namespace(object_id),
    }
}

/// Filters for grants.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GrantQuery {
    /// Only grants to this subject id.
    #[serde(rename = "subjectID")]
    #[param(rename = "subjectID")]
    pub subject_id: Option<String>,
    /// Only grants on this collection id or namespace.
    #[serde(rename = "objectID")]
    #[param(rename = "objectID")]
    pub object_id: Option<String>,
}

/// Lists grants: the caller's own, and those on resource sets where the
/// caller may view grants.
#[utoipa::path(get, path = "/collectionGrants", tag = "rbac", params(GrantQuery), security(("bearer" = [])),
    responses((status = 200, body = GrantList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_grants(
    caller: Caller,
    ApiQuery(q): ApiQuery<GrantQuery>,
) -> ApiResult<Json<GrantList>> {
    let snap = &caller.snap;
    let view = op!("grant.view");
    let mine = |g: &Grant| {
        g.subject_id == caller.principal.user_id
            || caller.principal.memberships.contains(&g.subject_id)
    };
    let grants = snap
        .grants
        .iter()
        .filter(|g| q.subject_id.as_ref().is_none_or(|s| *s == g.subject_id))
        .filter(|g| q.object_id.as_ref().is_none_or(|o| *o == g.object_id))
        .filter(|g| {
            let path = object_path(snap, g);
            mine(g) || caller.may(view, grant_resource(g.kind, &path, &g.object_id))
        })
        .map(|g| GrantView {
            subject_id: g.subject_id.clone(),
            object_id: g.object_id.clone(),
            role_id: g.role_id.clone(),
            kind: kind_name(g.kind).into(),
            subject_name: snap.subject_name(&g.subject_id).unwrap_or_default(),
            object_path: object_path(snap, g),
        })
        .collect();
    Ok(Json(GrantList { grants }))
}

/// The resource-set type of a grant.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GrantTypeQuery {
    /// `collection` (default) or `namespace`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
}

fn parse_kind(k: Option<&str>) -> ApiResult<ResourceSetKind> {
    match k.unwrap_or("collection") {
        "collection" => Ok(ResourceSetKind::Collection),
        "namespace" => Ok(ResourceSetKind::Namespace),
        other => Err(ApiError::invalid(format!(
            "unknown grant type {other:?}: use collection or namespace"
        ))),
    }
}

/// Checks a Kubernetes namespace name (a DNS-1123 label).
fn validate_namespace(ns: &str) -> ApiResult<()> {
    let ok = !ns.is_empty()
        && ns.len() <= 63
        && ns
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !ns.starts_with('-')
        && !ns.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "namespace {ns:?} is not a valid Kubernetes namespace name (lower-case letters, digits and '-', at most 63)"
        )))
    }
}

/// Grants a role on a collection or namespace to a user, organisation or
/// team.
#[utoipa::path(put, path = "/collectionGrants/{subject_id}/{object_id}/{role_id}", tag = "rbac", security(("bearer" = [])),
    params(("subject_id" = String, Path, description = "User, organisation or team id"),
           ("object_id" = String, Path, description = "Collection id or namespace name"),
           ("role_id" = String, Path, description = "Role id"), GrantTypeQuery),
    responses((status = 201, body = GrantView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn put_grant(
    State(gw): State<AppState>,
    caller: Caller,
    Path((subject_id, object_id, role_id)): Path<(String, String, String)>,
    ApiQuery(q): ApiQuery<GrantTypeQuery>,
) -> ApiResult<(StatusCode, Json<GrantView>)> {
    let kind = parse_kind(q.kind.as_deref())?;
    let snap = caller.snap.clone();
    let path = match kind {
        ResourceSetKind::Collection => collection_for(&caller, &object_id, op!("grant.create"))?
            .path
            .clone(),
        ResourceSetKind::Namespace => {
            validate_namespace(&object_id)?;
            format!("namespace:{object_id}")
        }
    };
    caller.authorize(
        op!("grant.create"),
        grant_resource(kind, &path, &object_id),
        &format!("grants on {path}"),
    )?;
    let subject_name = snap.subject_name(&subject_id).ok_or_else(|| {
        ApiError::not_found(format!(
            "no user, organization or team has id {subject_id:?}"
        ))
    })?;
    role_or_404(&snap, &role_id)?;
    let grant = Grant {
        subject_id,
        object_id,
        role_id,
        kind,
    };
    commit(&gw, vec![put_op(&grant)]).await?;
    Ok((
        StatusCode::CREATED,
        Json(GrantView {
            subject_id: grant.subject_id,
            object_id: grant.object_id,
            role_id: grant.role_id,
            kind: kind_name(kind).into(),
            subject_name,
            object_path: path,
        }),
    ))
}

/// Revokes a grant.
#[utoipa::path(delete, path = "/collectionGrants/{subject_id}/{object_id}/{role_id}", tag = "rbac", security(("bearer" = [])),
    params(("subject_id" = String, Path, description = "User, organisation or team id"),
           ("object_id" = String, Path, description = "Collection id or namespace name"),
           ("role_id" = String, Path, description = "Role id"), GrantTypeQuery),
    responses((status = 204, description = "Revoked"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_grant(
    State(gw): State<AppState>,
    caller: Caller,
    Path((subject_id, object_id, role_id)): Path<(String, String, String)>,
    ApiQuery(q): ApiQuery<GrantTypeQuery>,
) -> ApiResult<StatusCode> {
    let kind = parse_kind(q.kind.as_deref())?;
    let snap = caller.snap.clone();
    let grant = Grant {
        subject_id,
        object_id,
        role_id,
        kind,
    };
    let path = object_path(&snap, &grant);
    caller.authorize(
        op!("grant.delete"),
        grant_resource(kind, &path, &grant.object_id),
        &format!("grants on {path}"),
    )?;
    if !snap.grants.iter().any(|g| g.id() == grant.id()) {
        return Err(ApiError::not_found("no such grant"));
    }
    commit(&gw, vec![delete_op(Grant::TABLE, &grant.id())]).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------- explain

/// What to explain.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExplainQuery {
    /// Username or user id.
    pub subject: String,
    /// Operation name, e.g. `service.create`.
    pub operation: String,
    /// Collection path (`/Shared/dev`), collection id, or `namespace:<name>`.
    pub resource: String,
}

/// A grant that allowed the operation.
#[derive(Serialize, ToSchema)]
pub struct ExplainGrant {
    /// Subject of the grant (the user, or one of their teams or orgs).
    pub subject_id: String,
    /// Its name.
    pub subject_name: String,
    /// Role id.
    pub role_id: String,
    /// Role name.
    pub role_name: String,
    /// Where the grant sits.
    pub object_id: String,
    /// Its path.
    pub object_path: String,
}

/// The decision and why.
#[derive(Serialize, ToSchema)]
pub struct Explanation {
    /// Whether the operation is allowed.
    pub allowed: bool,
    /// `admin`, `inactive`, `granted`, `org-owner`, `self-service`,
    /// `no-grant` or `unknown-collection`.
    pub reason: String,
    /// The user decided about.
    pub subject: String,
    /// The operation.
    pub operation: String,
    /// The resource as resolved.
    pub resource: String,
    /// Collection paths searched, most specific first.
    pub path: Vec<String>,
    /// The grants that allowed it (empty on deny).
    pub grants: Vec<ExplainGrant>,
}

/// Explains an authorisation decision: allow or deny, with the grants,
/// roles and collection path that decided it.
#[utoipa::path(get, path = "/api/authz/explain", tag = "rbac", params(ExplainQuery), security(("bearer" = [])),
    responses((status = 200, body = Explanation), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn explain(
    caller: Caller,
    ApiQuery(q): ApiQuery<ExplainQuery>,
) -> ApiResult<Json<Explanation>> {
    caller.authorize(
        op!("authz.explain"),
        Resource::Collection("/"),
        "authorization decisions",
    )?;
    let snap = &caller.snap;
    let username = if snap.users.contains_key(&q.subject) {
        q.subject.clone()
    } else {
        snap.user_ids
            .get(&q.subject)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("user {:?} does not exist", q.subject)))?
    };
    let principal = snap
        .principal(&username)
        .ok_or_else(|| ApiError::not_found(format!("user {username:?} does not exist")))?;
    let operation = Operation::parse(&q.operation)?;
    let resolved: String;
    let resource = if let Some(ns) = q.resource.strip_prefix("namespace:") {
        validate_namespace(ns)?;
        resolved = q.resource.clone();
        Resource::Namespace(ns)
    } else if q.resource.starts_with('/') {
        resolved = normalize_path(&q.resource)?;
        Resource::Collection(&resolved)
    } else {
        resolved = collection_or_404(snap, &q.resource)?.path.clone();
        Resource::Collection(&resolved)
    };
    let d = snap.authorizer.decide(principal, operation, resource);
    let names: BTreeMap<String, String> = d
        .grants
        .iter()
        .map(|g| {
            (
                g.subject_id.clone(),
                snap.subject_name(&g.subject_id).unwrap_or_default(),
            )
        })
        .collect();
    Ok(Json(Explanation {
        allowed: d.allowed,
        reason: reason_name(&d.reason).into(),
        subject: username,
        operation: operation.name().into(),
        resource: resolved.clone(),
        path: d.path,
        grants: d
            .grants
            .into_iter()
            .map(|g| ExplainGrant {
                subject_name: names.get(&g.subject_id).cloned().unwrap_or_default(),
                subject_id: g.subject_id,
                role_id: g.role_id,
                role_name: g.role_name,
                object_id: g.object_id,
                object_path: g.object_path,
            })
            .collect(),
    }))
}

fn reason_name(r: &capstan_core::rbac::Reason) -> &'static str {
    use capstan_core::rbac::Reason;
    match r {
        Reason::Admin => "admin",
        Reason::Inactive => "inactive",
        Reason::Granted => "granted",
        Reason::OrgOwner => "org-owner",
        Reason::SelfService => "self-service",
        Reason::NoGrant => "no-grant",
        Reason::UnknownCollection => "unknown-collection",
    }
}

// ---------------------------------------------------------------- matrix

/// One user's row of the access matrix.
#[derive(Serialize, ToSchema)]
pub struct MatrixRow {
    /// Username.
    pub username: String,
    /// Admins may do everything everywhere, whatever their grants.
    pub admin: bool,
    /// Inactive accounts may do nothing.
    pub active: bool,
    /// For each collection of `collections`, in order, the names of the
    /// roles the user holds there (granted to them, their teams or orgs,
    /// on it or an ancestor).
    pub roles: Vec<Vec<String>>,
}

/// Users × collections → the roles that decide there.
#[derive(Serialize, ToSchema)]
pub struct AccessMatrix {
    /// Collection paths, in tree order.
    pub collections: Vec<String>,
    /// One row per user of this page, by username.
    pub users: Vec<MatrixRow>,
    /// Users in all.
    pub total: usize,
}

/// A page of the access matrix.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MatrixQuery {
    /// Users to skip, by username order (default 0).
    pub start: Option<usize>,
    /// At most this many users (1 to 500, default 50).
    pub limit: Option<usize>,
}

/// The access matrix: every user against every collection, with the roles
/// they hold there; `/api/authz/explain` says why for one operation.
#[utoipa::path(get, path = "/api/authz/matrix", tag = "rbac", params(MatrixQuery), security(("bearer" = [])),
    responses((status = 200, body = AccessMatrix), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn matrix(
    caller: Caller,
    ApiQuery(q): ApiQuery<MatrixQuery>,
) -> ApiResult<Json<AccessMatrix>> {
    caller.authorize(
        op!("authz.explain"),
        Resource::Collection("/"),
        "authorization decisions",
    )?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit={limit} is out of range: 1 to 500"
        )));
    }
    let snap = &caller.snap;
    let mut collections = Vec::new();
    let mut users = Vec::with_capacity(limit);
    for username in snap.users.keys().skip(q.start.unwrap_or(0)).take(limit) {
        let Some(principal) = snap.principal(username) else {
            continue;
        };
        let row = snap.authorizer.effective_roles(principal);
        if collections.is_empty() {
            collections = row.iter().map(|(path, _)| path.to_string()).collect();
        }
        users.push(MatrixRow {
            username: username.clone(),
            admin: principal.admin,
            active: principal.active,
            roles: row
                .into_iter()
                .map(|(_, roles)| roles.into_iter().map(str::to_string).collect())
                .collect(),
        });
    }
    Ok(Json(AccessMatrix {
        collections,
        users,
        total: snap.users.len(),
    }))
}
