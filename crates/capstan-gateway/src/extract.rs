//! Request extractors whose rejections answer in the gateway's error shape
//! and name what was wrong (axum's own answer plain text).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest request body the REST API accepts (license and TOML documents
/// included).
pub const MAX_BODY: usize = 1 << 20;

/// A JSON body. Unknown fields are refused by the target types
/// (`deny_unknown_fields`), wrong types and malformed JSON name the place.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(e) => Err(json_rejection(e)),
        }
    }
}

fn json_rejection(e: JsonRejection) -> ApiError {
    match e {
        JsonRejection::JsonDataError(e) => ApiError::bad_request(
            "INVALID_JSON",
            format!("invalid request body: {}", source_of(&e)),
        ),
        JsonRejection::JsonSyntaxError(e) => ApiError::bad_request(
            "INVALID_JSON",
            format!("request body is not valid JSON: {}", source_of(&e)),
        ),
        JsonRejection::MissingJsonContentType(_) => ApiError::bad_request(
            "INVALID_CONTENT_TYPE",
            "request body must be JSON with Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            too_large()
        }
        other => ApiError::bad_request("INVALID_JSON", other.body_text()),
    }
}

/// 413 for a body over [`MAX_BODY`].
pub fn too_large() -> ApiError {
    ApiError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: "PAYLOAD_TOO_LARGE",
        message: format!("request body is larger than the limit of {MAX_BODY} bytes"),
        retry_after: None,
    }
}

/// The innermost cause, which is what serde said (with line and column).
fn source_of(e: &dyn std::error::Error) -> String {
    let mut cur: &dyn std::error::Error = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Query parameters.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(ApiError::bad_request(
                "INVALID_QUERY",
                format!("invalid query parameters: {}", source_of(&e)),
            )),
            Err(e) => Err(ApiError::bad_request("INVALID_QUERY", e.body_text())),
        }
    }
}

/// A request body as UTF-8 text (TOML documents), within [`MAX_BODY`].
pub struct TextBody(pub String);

impl<S: Send + Sync> FromRequest<S> for TextBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
            .await
            .map_err(|_| too_large())?;
        String::from_utf8(bytes.to_vec()).map(Self).map_err(|e| {
            ApiError::bad_request("INVALID_BODY", format!("request body is not UTF-8: {e}"))
        })
    }
}

/// A request body as bytes, within [`MAX_BODY`].
pub struct RawBody(pub Vec<u8>);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        axum::body::to_bytes(req.into_body(), MAX_BODY)
            .await
            .map(|b| Self(b.to_vec()))
            .map_err(|_| too_large())
    }
}

/// Parses an optional JSON body: empty means the type's default.
pub fn optional_json<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = if path == "." || path.is_empty() {
            format!("invalid request body: {inner}")
        } else {
            format!("invalid request body: {path}: {inner}")
        };
        ApiError::bad_request("INVALID_JSON", message)
    })
}
