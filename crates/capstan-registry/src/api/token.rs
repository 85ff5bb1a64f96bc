//! The token endpoint (Docker's token authentication spec): checks the
//! credentials with the control plane and signs a short-lived token that
//! grants only what the caller may do.

use std::sync::Arc;

use axum::extract::{Query, RawForm, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use time::OffsetDateTime;

use crate::access::{allowed_actions, basic_credentials, parse_scope, Access, Claims, ISSUER};
use crate::error::{RegistryError, RegistryResult};
use crate::names::{Gun, RepoName};
use crate::server::Peer;
use crate::Registry;

#[derive(Serialize)]
struct TokenAnswer {
    token: String,
    access_token: String,
    expires_in: u64,
    issued_at: String,
}

/// `GET /auth/token?service=&scope=...` with optional Basic credentials.
pub async fn get_token(
    State(reg): State<Arc<Registry>>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let creds = basic_credentials(&headers);
    if headers.contains_key(axum::http::header::AUTHORIZATION) && creds.is_none() {
        return RegistryError::unauthorized(
            "send credentials as Authorization: Basic",
            reg.challenge(None),
        )
        .into_response();
    }
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .collect();
    let service = params
        .iter()
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.clone());
    issue(&reg, peer, creds, service, scopes)
        .await
        .into_response()
}

/// `POST /auth/token` (OAuth2 password grant, as `docker login` may use).
pub async fn post_token(
    State(reg): State<Arc<Registry>>,
    peer: Option<Extension<Peer>>,
    RawForm(form): RawForm,
) -> Response {
    let params: Vec<(String, String)> = match serde_urlencoded_pairs(&form) {
        Some(p) => p,
        None => return oauth_error("invalid_request", "the body must be a form"),
    };
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if get("grant_type").as_deref() != Some("password") {
        return oauth_error(
            "unsupported_grant_type",
            "only grant_type=password is supported; or use GET with Basic credentials",
        );
    }
    let (Some(user), Some(password)) = (get("username"), get("password")) else {
        return oauth_error("invalid_request", "username and password are required");
    };
    let scopes: Vec<String> = get("scope")
        .map(|s| s.split(' ').map(str::to_string).collect())
        .unwrap_or_default();
    issue(&reg, peer, Some((user, password)), get("service"), scopes)
        .await
        .into_response()
}

fn serde_urlencoded_pairs(form: &[u8]) -> Option<Vec<(String, String)>> {
    let s = std::str::from_utf8(form).ok()?;
    Some(
        s.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode_component(k), decode_component(v))
            })
            .collect(),
    )
}

fn decode_component(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 3 <= bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn oauth_error(code: &str, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": code, "error_description": message })),
    )
        .into_response()
}

async fn issue(
    reg: &Registry,
    peer: Option<Extension<Peer>>,
    creds: Option<(String, String)>,
    service: Option<String>,
    scopes: Vec<String>,
) -> RegistryResult<Json<TokenAnswer>> {
    if let Some(s) = &service {
        if s != &reg.config.service {
            return Err(RegistryError::new(
                StatusCode::BAD_REQUEST,
                "UNSUPPORTED",
                format!(
                    "this token endpoint serves {:?}, not {s:?}",
                    reg.config.service
                ),
            ));
        }
    }
    let user = match creds {
        None => None,
        Some((u, p)) => {
            let source = peer.map(|Extension(Peer(a))| a.ip().to_string());
            match reg.control.authenticate(&u, &p, source).await? {
                Some(user) => Some(user.username),
                None => {
                    return Err(RegistryError::unauthorized(
                        "invalid username or password",
                        reg.challenge(None),
                    ))
                }
            }
        }
    };
    let dir = reg.control.directory().await?;
    let mut access = Vec::new();
    for scope in scopes.iter().filter(|s| !s.is_empty()) {
        let Some(want) = parse_scope(scope) else {
            return Err(RegistryError::new(
                StatusCode::BAD_REQUEST,
                "UNSUPPORTED",
                format!("invalid scope {scope:?}: expected type:name:actions"),
            ));
        };
        let granted: Vec<String> = match want.kind.as_str() {
            "repository" => match RepoName::parse(&want.name)
                .or_else(|_| Gun::parse(&want.name).map(|g| g.repo().clone()))
            {
                Ok(repo) => {
                    let allowed = allowed_actions(&reg.meta, &dir, user.as_deref(), &repo)?;
                    want.actions
                        .iter()
                        .filter(|a| allowed.contains(&a.as_str()))
                        .cloned()
                        .collect()
                }
                Err(_) => vec![],
            },
            // Everyone may list the catalog; it shows only what they may pull.
            "registry" if want.name == "catalog" => {
                want.actions.iter().filter(|a| *a == "*").cloned().collect()
            }
            _ => vec![],
        };
        access.push(Access {
            kind: want.kind,
            name: want.name,
            actions: granted,
        });
    }
    let now = OffsetDateTime::now_utc();
    let ttl = reg.tokens.ttl.as_secs();
    let claims = Claims {
        iss: ISSUER.into(),
        sub: user.unwrap_or_default(),
        aud: reg.config.service.clone(),
        exp: now.unix_timestamp() + i64::try_from(ttl).unwrap_or(300),
        nbf: now.unix_timestamp() - 1,
        iat: now.unix_timestamp(),
        jti: uuid::Uuid::new_v4().simple().to_string(),
        access,
    };
    let token = reg.tokens.sign(&claims)?;
    Ok(Json(TokenAnswer {
        access_token: token.clone(),
        token,
        expires_in: ttl,
        issued_at: now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    }))
}
