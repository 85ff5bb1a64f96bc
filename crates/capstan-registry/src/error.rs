//! Registry errors in the distribution spec's shape:
//! `{"errors":[{"code","message","detail"}]}` with the spec's status codes.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answer of the registry.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RegistryError {
    /// HTTP status.
    pub status: StatusCode,
    /// The spec's error code (`BLOB_UNKNOWN`, `DENIED`, ...).
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
    /// Extra detail (the digest, the name...).
    pub detail: Option<serde_json::Value>,
    /// A `WWW-Authenticate` challenge to send with a 401.
    pub challenge: Option<String>,
}

/// Results of registry handlers.
pub type RegistryResult<T> = Result<T, RegistryError>;

impl RegistryError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            detail: None,
            challenge: None,
        }
    }

    /// Adds a detail value.
    pub fn with_detail(mut self, detail: impl Serialize) -> Self {
        self.detail = serde_json::to_value(detail).ok();
        self
    }

    /// 400 `NAME_INVALID`.
    pub fn name_invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "NAME_INVALID", message)
    }

    /// 404 `NAME_UNKNOWN`.
    pub fn name_unknown(name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            "repository name not known to registry",
        )
        .with_detail(serde_json::json!({ "name": name }))
    }

    /// 400 `DIGEST_INVALID`.
    pub fn digest_invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", message)
    }

    /// 404 `BLOB_UNKNOWN`.
    pub fn blob_unknown(digest: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            "blob unknown to registry",
        )
        .with_detail(serde_json::json!({ "digest": digest }))
    }

    /// 404 `BLOB_UPLOAD_UNKNOWN`.
    pub fn upload_unknown(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "BLOB_UPLOAD_UNKNOWN",
            "blob upload unknown to registry (finished, cancelled or expired)",
        )
        .with_detail(serde_json::json!({ "uuid": id }))
    }

    /// 404 `MANIFEST_UNKNOWN`.
    pub fn manifest_unknown(reference: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            "manifest unknown to registry",
        )
        .with_detail(serde_json::json!({ "reference": reference }))
    }

    /// 400 `MANIFEST_INVALID`.
    pub fn manifest_invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", message)
    }

    /// 400 `TAG_INVALID`.
    pub fn tag_invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "TAG_INVALID", message)
    }

    /// 403 `DENIED`.
    pub fn denied(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "DENIED", message)
    }

    /// 401 `UNAUTHORIZED` with a challenge.
    pub fn unauthorized(message: impl Into<String>, challenge: String) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message);
        e.challenge = Some(challenge);
        e
    }

    /// 405 `UNSUPPORTED`.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", message)
    }

    /// 402: pushes need a cluster license.
    pub fn unlicensed(status: &str) -> Self {
        Self::new(
            StatusCode::PAYMENT_REQUIRED,
            "DENIED",
            format!(
                "this registry has no license ({status}): pushes are refused until an administrator uploads a Capstan license (dashboard: Admin Settings > License, or PUT /api/license on the control plane); pulls keep working"
            ),
        )
    }

    /// 503 `UNAVAILABLE`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", message)
    }

    /// 500, logged.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "registry internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN",
            format!("internal error: {e}"),
        )
    }
}

#[derive(Serialize)]
struct Body<'a> {
    errors: [Item<'a>; 1],
}

#[derive(Serialize)]
struct Item<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a serde_json::Value>,
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&Body {
            errors: [Item {
                code: self.code,
                message: &self.message,
                detail: self.detail.as_ref(),
            }],
        })
        .unwrap_or_default();
        let mut resp = (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        if let Some(c) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            resp.headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, c);
        }
        resp.headers_mut().insert(
            "Docker-Distribution-API-Version",
            HeaderValue::from_static("registry/2.0"),
        );
        resp
    }
}

impl From<std::io::Error> for RegistryError {
    fn from(e: std::io::Error) -> Self {
        RegistryError::internal(e)
    }
}

impl From<sled::Error> for RegistryError {
    fn from(e: sled::Error) -> Self {
        RegistryError::internal(e)
    }
}
