//! Notary v1's HTTP API for the registry's repositories:
//!
//! - `POST   /v2/<gun>/_trust/tuf/` — publish (multipart, one file per role)
//! - `GET    /v2/<gun>/_trust/tuf/<role>.json` — current metadata
//! - `GET    /v2/<gun>/_trust/tuf/<role>.<sha256|sha512 hex>.json` — by checksum
//! - `GET    /v2/<gun>/_trust/tuf/<version>.<role>.json` — by version
//! - `GET    /v2/<gun>/_trust/tuf/{timestamp,snapshot}.key` — the server's key
//! - `POST   /v2/<gun>/_trust/tuf/{timestamp,snapshot}.key` — rotate it
//! - `DELETE /v2/<gun>/_trust/tuf/` — delete the trust data
//!
//! Errors are in the registry's (and Notary's) `{"errors": [...]}` shape.

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use capstan_trust::{role, valid_role};

use crate::error::{RegistryError, RegistryResult};
use crate::names::Gun;
use crate::Registry;

/// The most an update may carry, all files together.
pub const MAX_UPDATE: u64 = 16 << 20;

/// Splits `<gun>/_trust/tuf/<file>` (after `/v2/`).
pub fn split(rest: &str) -> Option<(&str, &str)> {
    rest.split_once("/_trust/tuf/")
        .or_else(|| rest.strip_suffix("/_trust/tuf").map(|g| (g, "")))
}

enum Want<'a> {
    Current(&'a str),
    Version(u64, &'a str),
    Checksum(&'a str, &'a str),
}

fn parse_file(file: &str) -> Option<Want<'_>> {
    let stem = file.strip_suffix(".json")?;
    // A delegation name may contain dots, so the checksum form is tried
    // first: `targets/bob.<hex>` is bob's role by checksum.
    if let Some((role, hex)) = stem.rsplit_once('.') {
        if matches!(hex.len(), 64 | 96 | 128)
            && hex.bytes().all(|b| b.is_ascii_hexdigit())
            && valid_role(role)
        {
            return Some(Want::Checksum(role, hex));
        }
    }
    if valid_role(stem) {
        return Some(Want::Current(stem));
    }
    let (version, role) = stem.split_once('.')?;
    let v: u64 = version.parse().ok()?;
    (v > 0 && valid_role(role)).then_some(Want::Version(v, role))
}

fn not_found(gun: &Gun, what: &str) -> RegistryError {
    RegistryError::new(
        StatusCode::NOT_FOUND,
        "METADATA_NOT_FOUND",
        format!("{gun} has no trust metadata {what}"),
    )
}

fn json(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// Everything under `/v2/<gun>/_trust/tuf/`.
pub async fn handle(
    reg: &Registry,
    method: &Method,
    gun: &str,
    file: &str,
    headers: &HeaderMap,
    body: Body,
) -> RegistryResult<Response> {
    let gun = Gun::parse(gun)?;
    let action = match (method.as_str(), file) {
        ("GET" | "HEAD", f) if f.ends_with(".json") => "pull",
        ("GET", "timestamp.key" | "snapshot.key") | ("POST", "") => "push",
        ("POST", "timestamp.key" | "snapshot.key") | ("DELETE", "") => "*",
        _ => {
            return Err(RegistryError::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                format!("no trust route for {method} .../_trust/tuf/{file}"),
            ))
        }
    };
    let actions = match action {
        "pull" => "pull",
        "push" => "push,pull",
        _ => "*",
    };
    let scope = format!("repository:{gun}:{actions}");
    let auth = reg.authenticate(headers, Some(&scope)).await?;
    reg.permit_scoped(&auth, gun.as_str(), gun.repo(), action)
        .await?;
    match (method.as_str(), file) {
        ("POST", "") => {
            let parts = read_update(headers, body).await?;
            let writes = reg.trust.publish(&gun, parts).await?;
            reg.meta.flush().await?;
            let roles: Vec<&str> = writes.iter().map(|w| w.role.as_str()).collect();
            tracing::info!(%gun, user = ?auth.user, ?roles, "trust data published");
            Ok(json(StatusCode::OK, b"{}".to_vec()))
        }
        ("DELETE", "") => {
            reg.trust.delete(&gun).await?;
            reg.meta.flush().await?;
            tracing::info!(%gun, user = ?auth.user, "trust data deleted");
            Ok(json(StatusCode::OK, b"{}".to_vec()))
        }
        (m, key) if key.ends_with(".key") => {
            let role = key.trim_end_matches(".key");
            let public = if m == "POST" {
                reg.trust.rotate(&gun, role).await?
            } else {
                reg.trust.key(&gun, role).await?
            };
            reg.meta.flush().await?;
            let body = serde_json::to_vec(&public).map_err(RegistryError::internal)?;
            Ok(json(StatusCode::OK, body))
        }
        (m, f) => {
            let want = parse_file(f).ok_or_else(|| {
                RegistryError::new(
                    StatusCode::NOT_FOUND,
                    "METADATA_NOT_FOUND",
                    format!("{f:?} names no role: use <role>.json, <role>.<checksum>.json or <version>.<role>.json"),
                )
            })?;
            let found = match want {
                Want::Current(role::TIMESTAMP) => reg.trust.timestamp(&gun).await?,
                Want::Current(r) => reg.trust.current(gun.as_str(), r)?,
                Want::Version(v, r) => reg.trust.version(gun.as_str(), r, v)?,
                Want::Checksum(r, hex) => reg.trust.by_checksum(gun.as_str(), r, hex)?,
            };
            let bytes = found.ok_or_else(|| not_found(&gun, f))?;
            if m == "HEAD" {
                let mut resp = json(StatusCode::OK, vec![]);
                resp.headers_mut()
                    .insert(header::CONTENT_LENGTH, bytes.len().into());
                return Ok(resp);
            }
            Ok(json(StatusCode::OK, bytes))
        }
    }
}

/// The files of a publish: each multipart part's file name is its role
/// (`root`, `targets/releases`, ...), optionally with `.json`.
async fn read_update(headers: &HeaderMap, body: Body) -> RegistryResult<Vec<(String, Vec<u8>)>> {
    let malformed = |m: String| RegistryError::new(StatusCode::BAD_REQUEST, "MALFORMED_UPLOAD", m);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let boundary = multer::parse_boundary(content_type).map_err(|e| {
        malformed(format!(
            "an update is multipart/form-data with one file per role ({e})"
        ))
    })?;
    let limits =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(MAX_UPDATE));
    let mut form = multer::Multipart::with_constraints(body.into_data_stream(), boundary, limits);
    let mut parts = Vec::new();
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(malformed(format!("the update does not parse: {e}"))),
        };
        let role = field
            .file_name()
            .map(|f| f.trim_end_matches(".json").to_string())
            .unwrap_or_default();
        if role.is_empty() {
            return Err(RegistryError::new(
                StatusCode::BAD_REQUEST,
                "NO_FILENAME",
                "every part of an update needs a file name: the role it holds",
            ));
        }
        if !valid_role(&role) {
            return Err(RegistryError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_ROLE",
                format!("{role:?} is not a role: use root, targets, snapshot or targets/<name>"),
            ));
        }
        let bytes = field
            .bytes()
            .await
            .map_err(|e| malformed(format!("part {role}: {e}")))?;
        if serde_json::from_slice::<serde_json::Value>(&bytes).is_err() {
            return Err(RegistryError::new(
                StatusCode::BAD_REQUEST,
                "MALFORMED_JSON",
                format!("part {role} is not JSON"),
            ));
        }
        parts.push((role, bytes.to_vec()));
    }
    if parts.is_empty() {
        return Err(malformed("the update holds no metadata".into()));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        let hex = "ab".repeat(32);
        assert!(matches!(
            parse_file("root.json"),
            Some(Want::Current("root"))
        ));
        assert!(matches!(
            parse_file(&format!("targets/bob.{hex}.json")),
            Some(Want::Checksum("targets/bob", h)) if h == hex
        ));
        assert!(matches!(
            parse_file("3.targets/releases.json"),
            Some(Want::Version(3, "targets/releases"))
        ));
        assert!(matches!(
            parse_file("targets/v1.2.json"),
            Some(Want::Current("targets/v1.2"))
        ));
        assert!(parse_file("0.root.json").is_none());
        assert!(parse_file("passwd").is_none());
        assert!(parse_file("../root.json").is_none());
    }
}
