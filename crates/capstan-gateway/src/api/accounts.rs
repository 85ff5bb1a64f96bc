//! `/accounts`: users, organisations, teams and memberships, in MKE's
//! (eNZi's) shapes.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use capstan_core::accounts::{
    validate_team_name, Org, OrgMember, Session, Team, TeamMember, DEFAULT_ORG,
};
use capstan_core::rbac::{
    default_grants, private_collection, Collection, Grant, Operation, Resource,
};
use capstan_core::user::{validate_password, validate_username};
use capstan_core::{Table, User};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use super::{blocking, commit, create_op, delete_op, op, page_limit, put_op, AccountName};
use crate::auth::Caller;
use crate::directory::Snapshot;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{optional_json, ApiJson, ApiQuery, RawBody};
use crate::AppState;

/// A user or an organisation.
#[derive(Serialize, ToSchema, Clone)]
#[serde(rename_all = "camelCase")]
pub struct AccountView {
    /// Account id.
    pub id: String,
    /// Name (username or org name).
    pub name: String,
    /// Display name.
    pub full_name: String,
    /// Whether this is an organisation.
    pub is_org: bool,
    /// Admins bypass grants (users only).
    pub is_admin: bool,
    /// Inactive users cannot log in.
    pub is_active: bool,
    /// Imported from LDAP/SCIM (not yet: always false).
    pub is_imported: bool,
    /// When it was made (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl AccountView {
    /// A user's view.
    pub fn user(u: &User) -> Self {
        Self {
            id: u.id.clone(),
            name: u.username.clone(),
            full_name: u.full_name.clone(),
            is_org: false,
            is_admin: u.admin,
            is_active: u.active,
            is_imported: false,
            created_at: u.created_at,
        }
    }

    fn org(o: &Org) -> Self {
        Self {
            id: o.id.clone(),
            name: o.name.clone(),
            full_name: o.full_name.clone(),
            is_org: true,
            is_admin: false,
            is_active: true,
            is_imported: false,
            created_at: o.created_at,
        }
    }
}

/// A page of accounts.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountList {
    /// The accounts.
    pub accounts: Vec<AccountView>,
    /// Name to pass as `start` for the next page; empty on the last page.
    pub next_page_start: String,
}

/// Which accounts to list.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `all` (default), `users`, `orgs`, `admins`, `non-admins`,
    /// `active-users`, `inactive-users`.
    pub filter: Option<String>,
    /// Name to start at (from `nextPageStart`).
    pub start: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<u32>,
}

/// A new user or organisation.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateAccount {
    /// Username or organisation name.
    pub name: String,
    /// Password (users only, required for them).
    pub password: Option<String>,
    /// Display name.
    #[serde(default)]
    pub full_name: String,
    /// Make an organisation instead of a user.
    #[serde(default)]
    pub is_org: bool,
    /// Make the user an admin.
    #[serde(default)]
    pub is_admin: bool,
    /// Whether the user may log in (default true).
    pub is_active: Option<bool>,
    /// MKE's "search LDAP for this user"; refused until LDAP is configured.
    #[serde(default)]
    pub search_ldap: bool,
}

/// Changes to an account. Users may change their own name and password
/// (with `oldPassword`); admins may change anything.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateAccount {
    /// Display name.
    pub full_name: Option<String>,
    /// Admin flag (admins only).
    pub is_admin: Option<bool>,
    /// Active flag (admins only).
    pub is_active: Option<bool>,
    /// New password; ends every session of the user.
    pub password: Option<String>,
    /// Current password, required when users change their own.
    pub old_password: Option<String>,
}

fn user_or_404<'a>(snap: &'a Snapshot, name: &str) -> ApiResult<&'a User> {
    snap.users
        .get(name)
        .ok_or_else(|| ApiError::not_found(format!("user {name:?} does not exist")))
}

/// The organisation `name`, once the caller may do `op` in it (`object`
/// names what for the audit log). A caller who could not act on it even if
/// it existed (no `op` on `/`) learns nothing about whether it does (403,
/// not 404).
fn org_for<'a>(caller: &'a Caller, name: &str, op: Operation, object: &str) -> ApiResult<&'a Org> {
    match caller.snap.orgs.get(name) {
        Some(o) => {
            caller.authorize(op, Resource::Org(&o.id), object)?;
            Ok(o)
        }
        None => {
            caller.authorize(op, Resource::Collection("/"), object)?;
            Err(ApiError::not_found(format!(
                "organization {name:?} does not exist"
            )))
        }
    }
}

fn team_or_404<'a>(snap: &'a Snapshot, org: &str, team: &str) -> ApiResult<&'a Team> {
    snap.teams.get(&format!("{org}/{team}")).ok_or_else(|| {
        ApiError::not_found(format!(
            "team {team:?} does not exist in organization {org:?}"
        ))
    })
}

/// Lists users and organisations (those the caller may see).
#[utoipa::path(get, path = "/accounts", tag = "accounts", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = AccountList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list(
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<AccountList>> {
    let limit = page_limit(q.limit)?;
    let filter = q.filter.as_deref().unwrap_or("all");
    let keep_user: fn(&User) -> bool = match filter {
        "all" | "users" => |_| true,
        "orgs" => |_| false,
        "admins" => |u| u.admin,
        "non-admins" => |u| !u.admin,
        "active-users" => |u| u.active,
        "inactive-users" => |u| !u.active,
        other => {
            return Err(ApiError::invalid(format!(
                "unknown filter {other:?}: use all, users, orgs, admins, non-admins, active-users or inactive-users"
            )))
        }
    };
    let with_orgs = matches!(filter, "all" | "orgs");
    let snap = &caller.snap;
    let view = op!("account.view");
    let mut all: Vec<AccountView> = snap
        .users
        .values()
        .filter(|u| keep_user(u) && caller.may(view, Resource::Account(&u.id)))
        .map(AccountView::user)
        .collect();
    if with_orgs {
        all.extend(
            snap.orgs
                .values()
                .filter(|o| caller.may(view, Resource::Org(&o.id)))
                .map(AccountView::org),
        );
    }
    all.sort_by(|a, b| a.name.cmp(&b.name));
    let start = q.start.unwrap_or_default();
    let mut page: Vec<AccountView> = all.into_iter().filter(|a| a.name >= start).collect();
    let next = if page.len() > limit {
        page.truncate(limit + 1);
        page.pop().map(|a| a.name).unwrap_or_default()
    } else {
        String::new()
    };
    Ok(Json(AccountList {
        accounts: page,
        next_page_start: next,
    }))
}

/// Creates a user (with a private collection, the default grants and
/// membership of the default organisation) or an organisation.
#[utoipa::path(post, path = "/accounts", tag = "accounts", request_body = CreateAccount, security(("bearer" = [])),
    responses((status = 201, body = AccountView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(gw): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateAccount>,
) -> ApiResult<(StatusCode, Json<AccountView>)> {
    caller.authorize(
        op!("account.create"),
        Resource::Collection("/"),
        &format!("account {}", req.name),
    )?;
    validate_username(&req.name).map_err(ApiError::invalid)?;
    check_full_name(&req.full_name)?;
    if req.search_ldap {
        return Err(ApiError::invalid(
            "searchLDAP needs an LDAP directory, and none is configured",
        ));
    }
    if caller.snap.users.contains_key(&req.name) || caller.snap.orgs.contains_key(&req.name) {
        return Err(ApiError::conflict(format!(
            "an account named {:?} already exists",
            req.name
        )));
    }
    let now = OffsetDateTime::now_utc();
    let id = uuid::Uuid::new_v4().to_string();
    if req.is_org {
        if req.password.is_some() || req.is_admin {
            return Err(ApiError::invalid(
                "organizations have no password and cannot be admins",
            ));
        }
        let org = Org {
            id,
            name: req.name.clone(),
            full_name: req.full_name,
            created_at: now,
        };
        commit(
            &gw,
            vec![create_op(&AccountName::new(&org.name)), create_op(&org)],
        )
        .await
        .map_err(|e| taken(e, &org.name))?;
        return Ok((StatusCode::CREATED, Json(AccountView::org(&org))));
    }
    let password = req
        .password
        .ok_or_else(|| ApiError::invalid("password is required for a user"))?;
    validate_password(&password).map_err(ApiError::invalid)?;
    let hash = blocking(move || capstan_identity::hash_password(&password))
        .await?
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let user = User {
        id,
        username: req.name.clone(),
        full_name: req.full_name,
        password_hash: hash,
        admin: req.is_admin,
        active: req.is_active.unwrap_or(true),
        created_at: now,
    };
    let mut ops = vec![
        create_op(&AccountName::new(&user.username)),
        create_op(&user),
    ];
    let private = private_collection(&user.username, now);
    if caller.snap.tree.by_id(&private.id).is_none() {
        ops.push(create_op::<Collection>(&private));
    }
    // MKE's defaults, with the configured role on the private collection.
    let default_role = &caller.snap.config.auth.default_new_user_role;
    ops.extend(
        default_grants(&user.id, &user.username)
            .into_iter()
            .map(|mut g| {
                if g.object_id == private.id {
                    g.role_id.clone_from(default_role);
                }
                g
            })
            .map(|g| put_op(&g)),
    );
    if caller.snap.orgs.contains_key(DEFAULT_ORG) {
        ops.push(put_op(&OrgMember {
            org: DEFAULT_ORG.into(),
            user: user.username.clone(),
            owner: false,
        }));
    }
    commit(&gw, ops)
        .await
        .map_err(|e| taken(e, &user.username))?;
    Ok((StatusCode::CREATED, Json(AccountView::user(&user))))
}

fn taken(e: ApiError, name: &str) -> ApiError {
    if e.status == StatusCode::CONFLICT {
        ApiError::conflict(format!("an account named {name:?} already exists"))
    } else {
        e
    }
}

fn check_full_name(name: &str) -> ApiResult<()> {
    if name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "fullName must be at most 200 characters without control characters",
        ));
    }
    Ok(())
}

/// One user or organisation.
#[utoipa::path(get, path = "/accounts/{name}", tag = "accounts", security(("bearer" = [])),
    params(("name" = String, Path, description = "Username or organisation name")),
    responses((status = 200, body = AccountView), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(caller: Caller, Path(name): Path<String>) -> ApiResult<Json<AccountView>> {
    let snap = &caller.snap;
    if let Some(u) = snap.users.get(&name) {
        caller.authorize(
            op!("account.view"),
            Resource::Account(&u.id),
            &format!("account {name}"),
        )?;
        return Ok(Json(AccountView::user(u)));
    }
    if let Some(o) = snap.orgs.get(&name) {
        caller.authorize(
            op!("account.view"),
            Resource::Org(&o.id),
            &format!("organization {name}"),
        )?;
        return Ok(Json(AccountView::org(o)));
    }
    caller.authorize(
        op!("account.view"),
        Resource::Collection("/"),
        &format!("account {name}"),
    )?;
    Err(ApiError::not_found(format!(
        "account {name:?} does not exist"
    )))
}

/// Changes a user or an organisation.
#[utoipa::path(patch, path = "/accounts/{name}", tag = "accounts", request_body = UpdateAccount, security(("bearer" = [])),
    params(("name" = String, Path, description = "Username or organisation name")),
    responses((status = 200, body = AccountView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update(
    State(gw): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<UpdateAccount>,
) -> ApiResult<Json<AccountView>> {
    let snap = caller.snap.clone();
    let object = format!("account {name}");
    if let Some(org) = snap.orgs.get(&name) {
        caller.authorize(op!("account.update"), Resource::Org(&org.id), &object)?;
        if req.is_admin.is_some()
            || req.is_active.is_some()
            || req.password.is_some()
            || req.old_password.is_some()
        {
            return Err(ApiError::invalid(
                "organizations only have a fullName to change",
            ));
        }
        let mut org = org.clone();
        if let Some(n) = req.full_name {
            check_full_name(&n)?;
            org.full_name = n;
        }
        commit(&gw, vec![put_op(&org)]).await?;
        return Ok(Json(AccountView::org(&org)));
    }
    let Some(current) = snap.users.get(&name) else {
        caller.authorize(op!("account.update"), Resource::Collection("/"), &object)?;
        return Err(ApiError::not_found(format!(
            "account {name:?} does not exist"
        )));
    };
    caller.authorize(
        op!("account.update"),
        Resource::Account(&current.id),
        &object,
    )?;
    let mut user = current.clone();
    let privileged = req.is_admin.is_some_and(|a| a != user.admin)
        || req.is_active.is_some_and(|a| a != user.active)
        || (req.password.is_some() && current.username != caller.username);
    if privileged {
        // Not self-service: needs the right on the whole cluster.
        caller.authorize(op!("account.update"), Resource::Collection("/"), &object)?;
    }
    if let Some(n) = req.full_name {
        check_full_name(&n)?;
        user.full_name = n;
    }
    if let Some(a) = req.is_admin {
        user.admin = a;
    }
    if let Some(a) = req.is_active {
        user.active = a;
    }
    if current.admin && current.active && !(user.admin && user.active) && snap.active_admins() <= 1
    {
        return Err(ApiError::conflict(format!(
            "{name} is the last active admin; make another admin first"
        )));
    }
    let mut ops = Vec::new();
    if let Some(new) = req.password {
        validate_password(&new).map_err(ApiError::invalid)?;
        if current.username == caller.username {
            let old = req.old_password.ok_or_else(|| {
                ApiError::invalid("oldPassword is required to change your own password")
            })?;
            let hash = current.password_hash.clone();
            let ok =
                blocking(move || capstan_identity::verify_password(&old, &hash).unwrap_or(false))
                    .await?;
            if !ok {
                return Err(ApiError::invalid(
                    "oldPassword is not your current password",
                ));
            }
        }
        user.password_hash = blocking(move || capstan_identity::hash_password(&new))
            .await?
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        // A new password ends every session of the user.
        ops.extend(end_sessions(&snap, &name));
    }
    ops.push(put_op(&user));
    commit(&gw, ops).await?;
    Ok(Json(AccountView::user(&user)))
}

fn end_sessions(snap: &Snapshot, username: &str) -> Vec<capstan_store::Op> {
    snap.sessions
        .iter()
        .filter(|(_, s)| s.username == username)
        .map(|(key, _)| delete_op(Session::TABLE, key))
        .collect()
}

fn grants_of(snap: &Snapshot, subject_id: &str) -> Vec<capstan_store::Op> {
    snap.grants
        .iter()
        .filter(|g| g.subject_id == subject_id)
        .map(|g| delete_op(Grant::TABLE, &g.id()))
        .collect()
}

/// Deletes a user (their sessions, memberships and grants go too) or an
/// organisation (with its teams, memberships and grants).
#[utoipa::path(delete, path = "/accounts/{name}", tag = "accounts", security(("bearer" = [])),
    params(("name" = String, Path, description = "Username or organisation name")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(gw): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.authorize(
        op!("account.delete"),
        Resource::Collection("/"),
        &format!("account {name}"),
    )?;
    let snap = caller.snap.clone();
    let mut ops = vec![delete_op(AccountName::TABLE, &name)];
    if let Some(user) = snap.users.get(&name) {
        if user.admin && user.active && snap.active_admins() <= 1 {
            return Err(ApiError::conflict(format!(
                "{name} is the last active admin; make another admin first"
            )));
        }
        ops.push(delete_op(User::TABLE, &name));
        ops.extend(end_sessions(&snap, &name));
        ops.extend(grants_of(&snap, &user.id));
        ops.extend(
            snap.org_members
                .values()
                .filter(|m| m.user == name)
                .map(|m| delete_op(OrgMember::TABLE, &m.id())),
        );
        ops.extend(
            snap.team_members
                .values()
                .filter(|m| m.user == name)
                .map(|m| delete_op(TeamMember::TABLE, &m.id())),
        );
    } else if let Some(org) = snap.orgs.get(&name) {
        if name == DEFAULT_ORG {
            return Err(ApiError::conflict(format!(
                "{DEFAULT_ORG} is the default organization and cannot be deleted"
            )));
        }
        ops.push(delete_op(Org::TABLE, &name));
        ops.extend(grants_of(&snap, &org.id));
        for team in snap.teams.values().filter(|t| t.org == name) {
            ops.push(delete_op(Team::TABLE, &team.id()));
            ops.extend(grants_of(&snap, &team.id));
        }
        ops.extend(
            snap.org_members
                .values()
                .filter(|m| m.org == name)
                .map(|m| delete_op(OrgMember::TABLE, &m.id())),
        );
        ops.extend(
            snap.team_members
                .values()
                .filter(|m| m.org == name)
                .map(|m| delete_op(TeamMember::TABLE, &m.id())),
        );
    } else {
        return Err(ApiError::not_found(format!(
            "account {name:?} does not exist"
        )));
    }
    commit(&gw, ops).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A member of an organisation or team.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    /// The member's account.
    pub member: AccountView,
    /// Org owner (for org members); always false for team members.
    pub is_admin: bool,
}

/// A page of members.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberList {
    /// The members.
    pub members: Vec<MemberView>,
    /// Always empty: every member is in one page.
    pub next_page_start: String,
}

/// Membership settings.
#[derive(Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MembershipRequest {
    /// Make the member an owner of the organisation (org membership only).
    #[serde(default)]
    pub is_admin: bool,
}

/// Members of an organisation.
#[utoipa::path(get, path = "/accounts/{org}/members", tag = "accounts", security(("bearer" = [])),
    params(("org" = String, Path, description = "Organisation")),
    responses((status = 200, body = MemberList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_org_members(
    caller: Caller,
    Path(org): Path<String>,
) -> ApiResult<Json<MemberList>> {
    let snap = &caller.snap;
    org_for(
        &caller,
        &org,
        op!("team.view"),
        &format!("organization {org}"),
    )?;
    let members = snap
        .org_members
        .values()
        .filter(|m| m.org == org)
        .filter_map(|m| {
            snap.users.get(&m.user).map(|u| MemberView {
                member: AccountView::user(u),
                is_admin: m.owner,
            })
        })
        .collect();
    Ok(Json(MemberList {
        members,
        next_page_start: String::new(),
    }))
}

/// One member of an organisation.
#[utoipa::path(get, path = "/accounts/{org}/members/{member}", tag = "accounts", security(("bearer" = [])),
    params(("org" = String, Path, description = "Organisation"), ("member" = String, Path, description = "Username")),
    responses((status = 200, body = MemberView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_org_member(
    caller: Caller,
    Path((org, member)): Path<(String, String)>,
) -> ApiResult<Json<MemberView>> {
    let snap = &caller.snap;
    org_for(
        &caller,
        &org,
        op!("team.view"),
        &format!("organization {org}"),
    )?;
    let m = snap
        .org_members
        .get(&format!("{org}/{member}"))
        .ok_or_else(|| ApiError::not_found(format!("{member:?} is not a member of {org:?}")))?;
    let u = user_or_404(snap, &member)?;
    Ok(Json(MemberView {
        member: AccountView::user(u),
        is_admin: m.owner,
    }))
}

/// Adds a user to an organisation, or changes whether they own it.
#[utoipa::path(put, path = "/accounts/{org}/members/{member}", tag = "accounts", security(("bearer" = [])),
    request_body = MembershipRequest,
    params(("org" = String, Path, description = "Organisation"), ("member" = String, Path, description = "Username")),
    responses((status = 200, body = MemberView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn put_org_member(
    State(gw): State<AppState>,
    caller: Caller,
    Path((org, member)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<Json<MemberView>> {
    let snap = caller.snap.clone();
    org_for(
        &caller,
        &org,
        op!("org.members"),
        &format!("organization {org}"),
    )?;
    let u = user_or_404(&snap, &member)?;
    let owner = optional_json::<MembershipRequest>(&body)?.is_admin;
    commit(
        &gw,
        vec![put_op(&OrgMember {
            org: org.clone(),
            user: member.clone(),
            owner,
        })],
    )
    .await?;
    Ok(Json(MemberView {
        member: AccountView::user(u),
        is_admin: owner,
    }))
}

/// Removes a user from an organisation and its teams.
#[utoipa::path(delete, path = "/accounts/{org}/members/{member}", tag = "accounts", security(("bearer" = [])),
    params(("org" = String, Path, description = "Organisation"), ("member" = String, Path, description = "Username")),
    responses((status = 204, description = "Removed"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_org_member(
    State(gw): State<AppState>,
    caller: Caller,
    Path((org, member)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let snap = caller.snap.clone();
    org_for(
        &caller,
        &org,
        op!("org.members"),
        &format!("organization {org}"),
    )?;
    if !snap.org_members.contains_key(&format!("{org}/{member}")) {
        return Err(ApiError::not_found(format!(
            "{member:?} is not a member of {org:?}"
        )));
    }
    let mut ops = vec![delete_op(OrgMember::TABLE, &format!("{org}/{member}"))];
    ops.extend(
        snap.team_members
            .values()
            .filter(|m| m.org == org && m.user == member)
            .map(|m| delete_op(TeamMember::TABLE, &m.id())),
    );
    commit(&gw, ops).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A team.
#[derive(Serialize, ToSchema)]
pub struct TeamView {
    /// Team id (a grant subject).
    pub id: String,
    /// Organisation id.
    #[serde(rename = "orgID")]
    pub org_id: String,
    /// Team name, unique in its organisation.
    pub name: String,
    /// Description.
    pub description: String,
    /// Number of members.
    #[serde(rename = "membersCount")]
    pub members_count: usize,
}

fn team_view(snap: &Snapshot, t: &Team) -> TeamView {
    let org_id = snap
        .orgs
        .get(&t.org)
        .map(|o| o.id.clone())
        .unwrap_or_default();
    TeamView {
        id: t.id.clone(),
        org_id,
        name: t.name.clone(),
        description: t.description.clone(),
        members_count: snap
            .team_members
            .values()
            .filter(|m| m.org == t.org && m.team == t.name)
            .count(),
    }
}

/// Teams of an organisation.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeamList {
    /// The teams.
    pub teams: Vec<TeamView>,
    /// Always empty: every team is in one page.
    pub next_page_start: String,
}

/// A new team, or changes to one.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamRequest {
    /// Team name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
}

/// Lists the teams of an organisation.
#[utoipa::path(get, path = "/accounts/{org}/teams", tag = "accounts", security(("bearer" = [])),
    params(("org" = String, Path, description = "Organisation")),
    responses((status = 200, body = TeamList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_teams(caller: Caller, Path(org): Path<String>) -> ApiResult<Json<TeamList>> {
    let snap = &caller.snap;
    org_for(
        &caller,
        &org,
        op!("team.view"),
        &format!("organization {org}"),
    )?;
    let teams = snap
        .teams
        .values()
        .filter(|t| t.org == org)
        .map(|t| team_view(snap, t))
        .collect();
    Ok(Json(TeamList {
        teams,
        next_page_start: String::new(),
    }))
}

fn check_description(d: &str) -> ApiResult<()> {
    if d.chars().count() > 1000 || d.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::invalid(
            "description must be at most 1000 characters without control characters",
        ));
    }
    Ok(())
}

/// Creates a team in an organisation.
#[utoipa::path(post, path = "/accounts/{org}/teams", tag = "accounts", security(("bearer" = [])), request_body = TeamRequest,
    params(("org" = String, Path, description = "Organisation")),
    responses((status = 201, body = TeamView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_team(
    State(gw): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    ApiJson(req): ApiJson<TeamRequest>,
) -> ApiResult<(StatusCode, Json<TeamView>)> {
    org_for(
        &caller,
        &org,
        op!("team.create"),
        &format!("organization {org}"),
    )?;
    let name = req
        .name
        .ok_or_else(|| ApiError::invalid("name is required"))?;
    validate_team_name(&name).map_err(|e| ApiError::invalid(e.to_string()))?;
    let description = req.description.unwrap_or_default();
    check_description(&description)?;
    let team = Team {
        id: uuid::Uuid::new_v4().to_string(),
        org: org.clone(),
        name: name.clone(),
        description,
        created_at: OffsetDateTime::now_utc(),
    };
    commit(&gw, vec![create_op(&team)]).await.map_err(|e| {
        if e.status == StatusCode::CONFLICT {
            ApiError::conflict(format!("team {name:?} already exists in {org:?}"))
        } else {
            e
        }
    })?;
    let snap = gw.directory.get();
    Ok((StatusCode::CREATED, Json(team_view(&snap, &team))))
}

/// One team.
#[utoipa::path(get, path = "/accounts/{org}/teams/{team}", tag = "accounts", security(("bearer" = [])),
    params(("org" = String, Path, description = "Organisation"), ("team" = String, Path, description = "Team name")),
    responses((status = 200, body = TeamView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_team(
    caller: Caller,
    Path((org, team)): Path<(String, String)>,
) -> ApiResult<Json<TeamView>> {
    let snap = &caller.snap;
    org_for(
        &caller,
        &org,
        op!("team.view"),
        &format!("team {org}/{team}"),
    )?;
    let t = team_or_404(snap, &org, &team)?;
    Ok(Json(team_view(snap, t)))
}

/// Changes a team's description (its name is fixed).
#[utoipa::path(patch, path = "/accounts/{org}/teams/{team}", tag = "accounts", security(("bearer" = [])), request_body = TeamRequest,
    params(("org" = String, Path, description = "Organisation"), ("team" = String, Path, description = "Team name")),
    responses((status = 200, body = TeamView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_team(
    State(gw): State<AppState>,
    caller: Caller,
    Path((org, team)): Path<(String, String)>,
    ApiJson(req): ApiJson<TeamRequest>,
) -> ApiResult<Json<TeamView>> {
    let snap = caller.snap.clone();
    org_for(
        &caller,
        &org,
        op!("team.update"),
        &format!("team {org}/{team}"),
    )?;
    let mut t = team_or_404(&snap, &org, &team)?.clone();
    if req.name.as_ref().is_some_and(|n| *n != t.name) {
        return Err(ApiError::invalid(
            "a team cannot be renamed; make a new team",
        ));
    }
    if let Some(d) = req.description {
        check_description(&d)?;
        t.description = d;
    }
    commit(&gw, vec![put_op(&t)]).await?;
    let snap = gw.directory.get();
    Ok(Json(team_view(&snap, &t)))
}

/// Deletes a team, its memberships and its grants.
#[utoipa::path(delete, path = "/accounts/{org}/teams/{team}", tag = "accounts", security(("bearer" = [])),
    params(("org" = String, Path, description = "Organisation"), ("team" = String, Path, description = "Team name")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_team(
    State(gw): State<AppState>,
    caller: Caller,
    Path((org, team)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let snap = caller.snap.clone();
    org_for(
        &caller,
        &org,
        op!("team.delete"),
        &format!("team {org}/{team}"),
    )?;
    let t = team_or_404(&snap, &org, &team)?;
    let mut ops = vec![delete_op(Team::TABLE, &t.id())];
    ops.extend(grants_of(&snap, &t.id));
    ops.extend(
        snap.team_members
            .values()
            .filter(|m| m.org == org && m.team == team)
            .map(|m| delete_op(TeamMember::TABLE, &m.id())),
    );
    commit(&gw, ops).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Members of a team.
#[utoipa::path(get, path = "/accounts/{org}/teams/{team}/members", tag = "accounts", security(("bearer" = [])),
    params(("org" = String, Path, description = "Organisation"), ("team" = String, Path, description = "Team name")),
    responses((status = 200, body = MemberList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_team_members(
    caller: Caller,
    Path((org, team)): Path<(String, String)>,
) -> ApiResult<Json<MemberList>> {
    let snap = &caller.snap;
    org_for(
        &caller,
        &org,
        op!("team.view"),
        &format!("team {org}/{team}"),
    )?;
    team_or_404(snap, &org, &team)?;
    let members = snap
        .team_members
        .values()
        .filter(|m| m.org == org && m.team == team)
        .filter_map(|m| {
            snap.users.get(&m.user).map(|u| MemberView {
                member: AccountView::user(u),
                is_admin: false,
            })
        })
        .collect();
    Ok(Json(MemberList {
        members,
        next_page_start: String::new(),
    }))
}

/// One member of a team.
#[utoipa::path(get, path = "/accounts/{org}/teams/{team}/members/{member}", tag = "accounts", security(("bearer" = [])),
    params(("org" = String, Path, description = "Organisation"), ("team" = String, Path, description = "Team name"), ("member" = String, Path, description = "Username")),
    responses((status = 200, body = MemberView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_team_member(
    caller: Caller,
    Path((org, team, member)): Path<(String, String, String)>,
) -> ApiResult<Json<MemberView>> {
    let snap = &caller.snap;
    org_for(
        &caller,
        &org,
        op!("team.view"),
        &format!("team {org}/{team}"),
    )?;
    team_or_404(snap, &org, &team)?;
    if !snap
        .team_members
        .contains_key(&format!("{org}/{team}/{member}"))
    {
        return Err(ApiError::not_found(format!(
            "{member:?} is not a member of team {org}/{team}"
        )));
    }
    let u = user_or_404(snap, &member)?;
    Ok(Json(MemberView {
        member: AccountView::user(u),
        is_admin: false,
    }))
}

/// Adds a user to a team (and to its organisation).
#[utoipa::path(put, path = "/accounts/{org}/teams/{team}/members/{member}", tag = "accounts", security(("bearer" = [])),
    request_body = MembershipRequest,
    params(("org" = String, Path, description = "Organisation"), ("team" = String, Path, description = "Team name"), ("member" = String, Path, description = "Username")),
    responses((status = 200, body = MemberView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn put_team_member(
    State(gw): State<AppState>,
    caller: Caller,
    Path((org, team, member)): Path<(String, String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<Json<MemberView>> {
    let snap = caller.snap.clone();
    org_for(
        &caller,
        &org,
        op!("team.members"),
        &format!("team {org}/{team}"),
    )?;
    let req = optional_json::<MembershipRequest>(&body)?;
    if req.is_admin {
        return Err(ApiError::invalid(
            "isAdmin applies to organization membership, not to teams",
        ));
    }
    team_or_404(&snap, &org, &team)?;
    let u = user_or_404(&snap, &member)?;
    let mut ops = vec![put_op(&TeamMember {
        org: org.clone(),
        team: team.clone(),
        user: member.clone(),
    })];
    if !snap.org_members.contains_key(&format!("{org}/{member}")) {
        ops.push(put_op(&OrgMember {
            org: org.clone(),
            user: member.clone(),
            owner: false,
        }));
    }
    commit(&gw, ops).await?;
    Ok(Json(MemberView {
        member: AccountView::user(u),
        is_admin: false,
    }))
}

/// Removes a user from a team.
#[utoipa::path(delete, path = "/accounts/{org}/teams/{team}/members/{member}", tag = "accounts", security(("bearer" = [])),
    params(("org" = String, Path, description = "Organisation"), ("team" = String, Path, description = "Team name"), ("member" = String, Path, description = "Username")),
    responses((status = 204, description = "Removed"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_team_member(
    State(gw): State<AppState>,
    caller: Caller,
    Path((org, team, member)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let snap = caller.snap.clone();
    org_for(
        &caller,
        &org,
        op!("team.members"),
        &format!("team {org}/{team}"),
    )?;
    team_or_404(&snap, &org, &team)?;
    let key = format!("{org}/{team}/{member}");
    if !snap.team_members.contains_key(&key) {
        return Err(ApiError::not_found(format!(
            "{member:?} is not a member of team {org}/{team}"
        )));
    }
    commit(&gw, vec![delete_op(TeamMember::TABLE, &key)]).await?;
    Ok(StatusCode::NO_CONTENT)
}
