//! The REST API: routes, their OpenAPI document, and what handlers share.

mod accounts;
mod admin;
mod auth;
mod clientbundle;
mod rbac;
mod registry;
mod system;

use std::sync::OnceLock;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Router;
use capstan_core::{encode, Table};
use capstan_store::{Action, Expect, Op};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::extract::MAX_BODY;
use crate::{AppState, Gateway};

pub use accounts::AccountView;

/// The OpenAPI document, rendered once at start.
static OPENAPI: OnceLock<String> = OnceLock::new();

#[derive(OpenApi)]
#[openapi(
    info(title = "Capstan API", description = "The gateway's REST API: accounts, sessions, RBAC (roles, collections, grants), audit, license and cluster configuration. MKE-compatible paths where MKE has well-known ones."),
    modifiers(&BearerAuth),
    tags(
        (name = "system", description = "Health, identity, CA, metrics"),
        (name = "auth", description = "Sessions"),
        (name = "accounts", description = "Users, organisations, teams and members"),
        (name = "rbac", description = "Roles, collections, grants and decisions"),
        (name = "admin", description = "Audit log, license and cluster configuration"),
        (name = "clientbundle", description = "Client bundles: user certificates for the docker CLI and kubectl"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The whole API as an axum router.
pub fn router(gw: AppState) -> Router {
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(system::ping))
        .routes(routes!(system::id))
        .routes(routes!(system::ca))
        .routes(routes!(system::openapi))
        .routes(routes!(system::metrics))
        .routes(routes!(auth::login))
        .routes(routes!(auth::logout))
        .routes(routes!(accounts::list, accounts::create))
        .routes(routes!(accounts::get, accounts::update, accounts::delete))
        .routes(routes!(accounts::list_org_members))
        .routes(routes!(
            accounts::get_org_member,
            accounts::put_org_member,
            accounts::delete_org_member
        ))
        .routes(routes!(accounts::list_teams, accounts::create_team))
        .routes(routes!(
            accounts::get_team,
            accounts::update_team,
            accounts::delete_team
        ))
        .routes(routes!(accounts::list_team_members))
        .routes(routes!(
            accounts::get_team_member,
            accounts::put_team_member,
            accounts::delete_team_member
        ))
        .routes(routes!(rbac::list_roles, rbac::create_role))
        .routes(routes!(
            rbac::get_role,
            rbac::update_role,
            rbac::delete_role
        ))
        .routes(routes!(rbac::list_collections, rbac::create_collection))
        .routes(routes!(
            rbac::get_collection,
            rbac::update_collection,
            rbac::delete_collection
        ))
        .routes(routes!(rbac::collection_children))
        .routes(routes!(rbac::list_grants))
        .routes(routes!(rbac::put_grant, rbac::delete_grant))
        .routes(routes!(rbac::explain))
        .routes(routes!(rbac::matrix))
        .routes(routes!(admin::audit))
        .routes(routes!(admin::get_license, admin::put_license))
        .routes(routes!(admin::get_config, admin::put_config))
        .routes(routes!(admin::support))
        .routes(routes!(registry::list, registry::register))
        .routes(routes!(registry::install_command))
        .routes(routes!(clientbundle::get_bundle, clientbundle::post_bundle))
        .routes(routes!(clientbundle::list_certs))
        .routes(routes!(clientbundle::revoke_cert))
        .split_for_parts();
    let rendered = doc
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot render the OpenAPI document: {e}\"}}"));
    let _ = OPENAPI.set(rendered);
    let api = router
        .route(
            "/api/registry/directory",
            axum::routing::get(registry::directory),
        )
        .route(
            "/api/registry/authenticate",
            axum::routing::post(registry::authenticate),
        )
        .route(
            "/api/registry/announce",
            axum::routing::post(registry::announce),
        )
        .merge(crate::docker::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            gw.clone(),
            crate::observe::observe,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(gw.clone());
    // The dashboard calls the API in-process, so it is merged outside the
    // API's audit layer: its calls are audited as the API calls they make.
    api.clone().merge(crate::ui::routes(gw, api))
}

async fn not_found(req: axum::extract::Request) -> axum::response::Response {
    if req.uri().path().starts_with("/ui/") {
        return crate::ui::not_found().await;
    }
    if req
        .extensions()
        .get::<crate::docker::DockerRequest>()
        .is_some()
    {
        return crate::docker::unsupported(req.method(), req.uri().path());
    }
    ApiError::not_found(format!("no API route matches {}", req.uri().path())).into_response()
}

async fn method_not_allowed(req: axum::extract::Request) -> axum::response::Response {
    let mut e = ApiError::invalid(format!("method not allowed on {}", req.uri().path()));
    e.status = StatusCode::METHOD_NOT_ALLOWED;
    e.code = "METHOD_NOT_ALLOWED";
    if req
        .extensions()
        .get::<crate::docker::DockerRequest>()
        .is_some()
    {
        return e.into_docker();
    }
    e.into_response()
}

/// The OpenAPI document as JSON.
pub fn openapi_json() -> &'static str {
    OPENAPI.get().map(String::as_str).unwrap_or("{}")
}

/// Claims an account name (users and organisations share one namespace).
#[derive(Clone, Serialize, Deserialize)]
pub struct AccountName {
    name: String,
}

impl AccountName {
    /// The claim of `name`.
    pub fn new(name: &str) -> Self {
        Self { name: name.into() }
    }
}

impl Table for AccountName {
    const TABLE: &'static str = "account_names";
    fn id(&self) -> String {
        self.name.clone()
    }
}

/// Creates a record that must not exist yet.
pub(crate) fn create_op<T: Table>(v: &T) -> Op {
    Op {
        table: T::TABLE.into(),
        id: v.id(),
        action: Action::Put(encode(v)),
        expect: Expect::Absent,
    }
}

/// Writes a record whatever is there.
pub(crate) fn put_op<T: Table>(v: &T) -> Op {
    Op {
        table: T::TABLE.into(),
        id: v.id(),
        action: Action::Put(encode(v)),
        expect: Expect::Any,
    }
}

/// Deletes a record.
pub(crate) fn delete_op(table: &str, id: &str) -> Op {
    Op {
        table: table.into(),
        id: id.into(),
        action: Action::Delete,
        expect: Expect::Any,
    }
}

/// Commits ops and waits until this gateway's snapshot shows them, so the
/// caller's next request sees its own write.
pub(crate) async fn commit(gw: &Gateway, ops: Vec<Op>) -> ApiResult<u64> {
    let out = gw.manager.write(ops, false).await?;
    gw.directory.caught_up(out.log_index).await;
    Ok(out.log_index)
}

/// A `limit` query parameter: 1 to 1000, default 100.
pub(crate) fn page_limit(limit: Option<u32>) -> ApiResult<usize> {
    match limit {
        None => Ok(100),
        Some(n @ 1..=1000) => Ok(n as usize),
        Some(n) => Err(ApiError::invalid(format!(
            "limit {n} is out of range: use 1 to 1000"
        ))),
    }
}

/// Runs blocking work (password hashing) off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)
}

/// Operations used by handlers, parsed once.
macro_rules! op {
    ($name:literal) => {{
        static OP: std::sync::OnceLock<capstan_core::rbac::Operation> = std::sync::OnceLock::new();
        *OP.get_or_init(|| crate::auth::op($name))
    }};
}
pub(crate) use op;
