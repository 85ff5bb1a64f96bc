//! The registry's HTTP routes: the distribution API under `/v2/`, the
//! token endpoint, the Notary v1 trust API under `/v2/<gun>/_trust/`, and
//! the DTR-style repository API under `/api/v0/`.

mod dtr;
mod token;
mod trust;
mod v2;

use std::sync::Arc;

use axum::http::HeaderValue;
use axum::routing::get;
use axum::Router;

use crate::Registry;

/// Every route of a registry.
pub fn router(reg: Arc<Registry>) -> Router {
    Router::new()
        .route("/auth/token", get(token::get_token).post(token::post_token))
        .route("/v2/", get(v2::base))
        .route("/v2", get(v2::base))
        .route("/v2/_catalog", get(v2::catalog))
        .route("/v2/{*rest}", axum::routing::any(v2::dispatch))
        .nest("/api/v0", dtr::routes())
        .route("/_ping", get(|| async { "OK" }))
        .fallback(|uri: axum::http::Uri| async move {
            crate::RegistryError::new(
                axum::http::StatusCode::NOT_FOUND,
                "NOT_FOUND",
                format!("no registry route matches {}", uri.path()),
            )
        })
        .layer(axum::middleware::map_response(
            |mut resp: axum::response::Response| async move {
                resp.headers_mut().insert(
                    "Docker-Distribution-API-Version",
                    HeaderValue::from_static("registry/2.0"),
                );
                resp
            },
        ))
        .with_state(reg)
}
