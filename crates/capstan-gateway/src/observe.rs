//! The middleware around every request: request metrics, and the audit
//! entry of every mutating call and every denial.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use capstan_core::audit::{AuditEntry, AuditLevel};
use time::OffsetDateTime;

use crate::auth::AuditSlot;
use crate::extract::{too_large, MAX_BODY};
use crate::server::ConnInfo;
use crate::AppState;

fn mutating(m: &Method) -> bool {
    matches!(
        *m,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// Replaces the values of secret-looking fields in a JSON request body.
fn redact(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                let k = k.to_ascii_lowercase();
                if k.contains("password")
                    || k.contains("secret")
                    || k.contains("token")
                    || k == "key"
                {
                    *val = serde_json::Value::String("[redacted]".into());
                } else {
                    redact(val);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// Counts, times and audits one request.
pub async fn observe(State(gw): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let source = req
        .extensions()
        .get::<ConnInfo>()
        .map(|c| c.remote.ip().to_string())
        .unwrap_or_default();
    let slot = AuditSlot::default();
    req.extensions_mut().insert(slot.clone());
    let level = gw.directory.get().config.audit_log_configuration.level;

    let mut body_json = None;
    if level == AuditLevel::Request && mutating(&method) {
        let (parts, body) = req.into_parts();
        let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
            Ok(b) => b,
            Err(_) => return too_large().into_response(),
        };
        if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            redact(&mut v);
            body_json = Some(v);
        } else if !bytes.is_empty() {
            body_json = Some(serde_json::Value::String(format!(
                "<{} bytes, not JSON>",
                bytes.len()
            )));
        }
        req = Request::from_parts(parts, axum::body::Body::from(bytes));
    }

    let resp = next.run(req).await;
    let status = resp.status();
    gw.metrics
        .observe(method.as_str(), &route, status.as_u16(), started.elapsed());

    let note = slot.get();
    let denied = note.denied || status == StatusCode::FORBIDDEN;
    if level != AuditLevel::None && (mutating(&method) || denied || note.always) {
        gw.audit.record(AuditEntry {
            seq: 0,
            time: OffsetDateTime::now_utc(),
            actor: note.actor.unwrap_or_default(),
            source,
            method: method.to_string(),
            path,
            operation: note.operation.unwrap_or_default(),
            object: note.object.unwrap_or_default(),
            decision: if denied || status == StatusCode::UNAUTHORIZED {
                "deny".into()
            } else {
                "allow".into()
            },
            status: status.as_u16(),
            request: body_json,
            prev_hash: String::new(),
            hash: String::new(),
        });
    }
    resp
}
