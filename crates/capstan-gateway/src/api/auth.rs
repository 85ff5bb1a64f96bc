//! Sessions: log in for a token, log out to end it.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use capstan_core::accounts::{sessions_to_evict, Session};
use capstan_core::Table;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{blocking, commit, create_op, delete_op};
use crate::auth::{AuditSlot, Caller, Credential};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::server::ConnInfo;
use crate::session::Claims;
use crate::AppState;

/// Credentials.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Username.
    pub username: String,
    /// Password.
    pub password: String,
}

/// A session token.
#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <auth_token>`.
    pub auth_token: String,
    /// When the token stops working (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}

const BAD_CREDENTIALS: &str = "invalid username or password";

/// A hash that no password matches, verified when the user does not exist
/// so that an unknown user takes as long to refuse as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        capstan_identity::hash_password(&capstan_identity::generate_password()).unwrap_or_default()
    })
}

/// Logs in with a username and password.
///
/// Failures answer 401 without saying whether the user exists; too many
/// failures for one user or from one address within the configured window
/// answer 429.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn login(
    State(gw): State<AppState>,
    conn: Option<Extension<ConnInfo>>,
    audit: Option<Extension<AuditSlot>>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let source = conn
        .map(|c| c.remote.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    if let Some(Extension(slot)) = &audit {
        let name = req.username.chars().take(100).collect::<String>();
        slot.update(|n| {
            n.actor = Some(name);
            n.operation = Some("session.create".into());
        });
    }
    let snap = gw.directory.get();
    let user = match check_password(&gw, &snap, &req.username, req.password, source).await {
        Ok(u) => u,
        Err(e) => {
            if let Some(Extension(slot)) = &audit {
                slot.update(|n| n.denied = true);
            }
            return Err(e);
        }
    };

    let now = OffsetDateTime::now_utc();
    let lifetime = time::Duration::minutes(i64::from(snap.config.auth.sessions.lifetime_minutes));
    let session = Session {
        id: uuid::Uuid::new_v4().simple().to_string(),
        username: user.username.clone(),
        created_at: now,
        expires_at: now + lifetime,
        source: source.to_string(),
    };
    let existing: Vec<Session> = snap
        .sessions
        .values()
        .filter(|s| s.username == user.username)
        .cloned()
        .collect();
    let limit = snap.config.auth.sessions.per_user_limit as usize;
    let mut ops: Vec<_> = sessions_to_evict(&existing, limit, now)
        .into_iter()
        .map(|id| delete_op(Session::TABLE, &format!("{}/{id}", user.username)))
        .collect();
    ops.push(create_op(&session));
    commit(&gw, ops).await?;
    let token = gw
        .tokens
        .sign(&Claims {
            sub: user.username.clone(),
            sid: session.id.clone(),
            iss: gw.cluster_id().to_string(),
            iat: now.unix_timestamp(),
            exp: session.expires_at.unix_timestamp(),
        })
        .map_err(ApiError::internal)?;
    Ok(Json(LoginResponse {
        auth_token: token,
        expires_at: session.expires_at,
    }))
}

/// Ends the caller's session; its token stops working on every manager.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "Logged out"), (status = 401, body = ErrorBody)))]
pub async fn logout(State(gw): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    match &caller.credential {
        Credential::Session(key) => {
            caller.note_object(&format!("session {}", caller.username));
            commit(&gw, vec![delete_op(Session::TABLE, key)]).await?;
            Ok(StatusCode::NO_CONTENT)
        }
        Credential::Certificate => Err(ApiError::invalid(
            "a client certificate has no session to end; revoke the client bundle instead",
        )),
    }
}

/// Checks a username and password under the login rate limit: the active
/// user, or 401 without saying whether the user exists (429 when too many
/// attempts failed lately). Shared by the login and the registry's
/// credential check.
pub(crate) async fn check_password(
    gw: &AppState,
    snap: &crate::directory::Snapshot,
    username: &str,
    password: String,
    source: IpAddr,
) -> ApiResult<capstan_core::User> {
    let limits = &snap.config.auth.login_rate_limit;
    let window = Duration::from_secs(u64::from(limits.window_seconds));
    if let Some(wait) = gw
        .limiter
        .blocked(username, source, limits.max_failures, window)
    {
        return Err(ApiError::too_many(
            format!("too many failed logins; try again in {wait} seconds"),
            wait,
        ));
    }
    let user = snap.users.get(username).cloned();
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| decoy_hash().to_string());
    let matches =
        blocking(move || capstan_identity::verify_password(&password, &hash).unwrap_or(false))
            .await?;
    match user {
        Some(u) if matches && u.active => {
            gw.limiter.succeeded(&u.username);
            Ok(u)
        }
        _ => {
            gw.limiter.failed(username, source, window);
            Err(ApiError::unauthorized(BAD_CREDENTIALS))
        }
    }
}
