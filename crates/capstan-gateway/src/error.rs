//! The gateway's error answer: an HTTP status and a JSON body in MKE's
//! shape, `{"errors":[{"code":"...","message":"..."}]}`, whose message names
//! what was wrong.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use capstan_manager::ManagerError;
use serde::Serialize;
use utoipa::ToSchema;

/// An error answered to an API client.
#[derive(Debug, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code, e.g. `INVALID_JSON`.
    pub code: &'static str,
    /// What was wrong, for a person.
    pub message: String,
    /// Seconds to wait before retrying (429 and 503).
    pub retry_after: Option<u64>,
}

/// The JSON body of every error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// One or more errors.
    pub errors: Vec<ErrorItem>,
}

/// One error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorItem {
    /// Machine-readable code.
    pub code: String,
    /// What was wrong.
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400: the request itself is wrong.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_INPUT", message)
    }

    /// 400 with a specific code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: no or bad credentials. Says nothing about which part was wrong.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
    }

    /// 403: authenticated, but the RBAC decision was deny.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "ACCESS_DENIED", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    /// 409: the request clashes with the current state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "CONFLICT", message)
    }

    /// 429 with a delay.
    pub fn too_many(message: impl Into<String>, retry_after: u64) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_REQUESTS", message);
        e.retry_after = Some(retry_after.max(1));
        e
    }

    /// 503: the cluster cannot answer now (no quorum, leader change).
    pub fn unavailable(message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", message);
        e.retry_after = Some(1);
        e
    }

    /// 507: the manager's data disk is full; reads still work.
    pub fn disk_full(message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::INSUFFICIENT_STORAGE, "DISK_FULL", message);
        e.retry_after = Some(5);
        e
    }

    /// 500: a fault of ours. The message is logged and kept general.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        tracing::error!(error = %message, "internal error answering an API request");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            format!("internal error: {message}"),
        )
    }
}

impl From<ManagerError> for ApiError {
    fn from(e: ManagerError) -> Self {
        match e {
            ManagerError::Invalid(m) | ManagerError::Refused(m) => Self::invalid(m),
            ManagerError::Denied(m) => Self::forbidden(m),
            ManagerError::NotFound(m) => Self::not_found(m),
            ManagerError::Conflict(m) => Self::conflict(m),
            ManagerError::Unavailable(m) => Self::unavailable(m),
            ManagerError::DiskFull(m) => Self::disk_full(m),
            ManagerError::Remote(s) => match s.code() {
                tonic::Code::ResourceExhausted => Self::disk_full(s.message()),
                tonic::Code::InvalidArgument => Self::invalid(s.message()),
                tonic::Code::AlreadyExists
                | tonic::Code::Aborted
                | tonic::Code::FailedPrecondition => Self::conflict(s.message()),
                tonic::Code::NotFound => Self::not_found(s.message()),
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => {
                    Self::unavailable(s.message())
                }
                _ => Self::internal(s.message()),
            },
            other => Self::internal(other),
        }
    }
}

impl From<capstan_core::rbac::RbacError> for ApiError {
    fn from(e: capstan_core::rbac::RbacError) -> Self {
        use capstan_core::rbac::RbacError as R;
        match e {
            R::NotFound { .. } => Self::not_found(e.to_string()),
            R::Conflict { .. } | R::NotEmpty { .. } => Self::conflict(e.to_string()),
            R::Builtin { .. } => Self::forbidden(e.to_string()),
            _ => Self::invalid(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            errors: vec![ErrorItem {
                code: self.code.to_string(),
                message: self.message,
            }],
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"capstan\""),
            );
        }
        resp
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
