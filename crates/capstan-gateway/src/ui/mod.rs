//! The web dashboard, served by the gateway under `/ui/` on the same port.
//!
//! Pages are rendered on the server with maud (templates checked at compile
//! time) from the gateway's own JSON API: every page and form calls the API
//! in-process as the signed-in user, so it shows exactly what the API lets
//! that user see and do, and every change is authorised and audited there.
//! A form the API refuses is shown again (200) with the API's message in
//! place.
//! The browser holds the session token in an `HttpOnly`, `Secure`,
//! `SameSite=Strict` cookie scoped to `/ui`; every form carries a CSRF token
//! derived from the session, and a POST from another origin is refused.
//! Assets (one stylesheet, one script) are embedded in the binary; the
//! Content-Security-Policy allows nothing else.

mod access;
mod admin;
mod cluster;
mod layout;
mod pages;
mod profile;
mod swarm;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tower::ServiceExt as _;

use crate::server::ConnInfo;
use crate::AppState;

pub use pages::not_found;

/// The session cookie.
pub const COOKIE: &str = "capstan_ui";
/// The largest form the dashboard accepts.
const MAX_FORM: usize = 256 * 1024;
/// The largest API answer a page reads.
const MAX_ANSWER: usize = 16 << 20;

const CSS: &str = include_str!("assets/app.css");
const JS: &str = include_str!("assets/app.js");

/// The dashboard's state: the gateway and its API router, called in-process.
#[derive(Clone)]
pub struct Ui {
    gw: AppState,
    api: Router,
}

/// The dashboard's routes; `api` is the gateway's API router.
pub fn routes(gw: AppState, api: Router) -> Router {
    let ui = Ui { gw, api };
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route(
            "/ui/assets/app.css",
            get(|| async { asset("text/css", CSS) }),
        )
        .route(
            "/ui/assets/app.js",
            get(|| async { asset("text/javascript", JS) }),
        )
        .route("/ui/login", get(pages::login_page).post(pages::login))
        .route("/ui/logout", post(pages::logout))
        .route("/ui/", get(pages::overview))
        .route("/ui/users", get(pages::users).post(pages::create_user))
        .route("/ui/orgs", get(pages::orgs).post(pages::create_org))
        .route(
            "/ui/services",
            get(pages::services).post(pages::create_service),
        )
        .route("/ui/services/{id}/scale", post(pages::scale_service))
        .route("/ui/events/services", get(pages::service_events))
        .route("/ui/registry", get(pages::repositories))
        .route("/ui/registry/{ns}/{repo}", get(pages::repository))
        .route(
            "/ui/settings/trust",
            get(pages::trust_settings).post(pages::save_trust_settings),
        )
        .route("/ui/about", get(pages::about))
        .route("/ui/roles", get(access::roles).post(access::create_role))
        .route("/ui/grants", get(access::grants).post(access::create_grant))
        .route("/ui/collections", get(access::collections))
        .route("/ui/orgs/{org}/members", post(access::add_member))
        .route("/ui/orgs/{org}/teams", post(access::create_team))
        .route("/ui/kubernetes", get(access::kubernetes))
        .route("/ui/profile", get(profile::profile))
        .route("/ui/profile/bundles", post(profile::new_bundle))
        .route(
            "/ui/profile/bundles/{id}/revoke",
            post(profile::revoke_bundle),
        )
        .route("/ui/profile/password", post(profile::change_password))
        .route(
            "/ui/license",
            get(profile::license).post(profile::upload_license),
        )
        .merge(swarm::routes())
        .merge(cluster::routes())
        .merge(admin::routes())
        .layer(DefaultBodyLimit::max(MAX_FORM))
        // Server-sent events are left uncompressed (the default predicate),
        // so each event reaches the browser when it is sent. The fastest
        // level: a 600 KB table costs a few milliseconds, not ten, and still
        // shrinks more than tenfold.
        .layer(
            tower_http::compression::CompressionLayer::new()
                .quality(tower_http::CompressionLevel::Fastest),
        )
        .layer(axum::middleware::map_request(host_from_authority))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(ui)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// HTTP/2 requests name their host in the `:authority` pseudo-header, not
/// `Host`; the origin check compares against either.
async fn host_from_authority(mut req: Request<Body>) -> Request<Body> {
    if !req.headers().contains_key(header::HOST) {
        let authority = req.uri().authority().map(|a| a.as_str().to_string());
        if let Some(v) = authority.and_then(|a| HeaderValue::from_str(&a).ok()) {
            req.headers_mut().insert(header::HOST, v);
        }
    }
    req
}

async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// The signed-in user of a dashboard request.
#[derive(Clone, Debug)]
pub struct Viewer {
    /// Their username.
    pub username: String,
    /// Whether they are an admin (what admin-only pages and forms need).
    pub admin: bool,
    token: String,
    /// The CSRF token every form of theirs carries.
    pub csrf: String,
    conn: Option<ConnInfo>,
    /// The host the browser asked for (what client bundles point at).
    host: Option<HeaderValue>,
}

impl Viewer {
    /// Whether the viewer may do `operation` in at least one collection:
    /// the API's own RBAC decision, which the dashboard uses to offer only
    /// the forms and buttons that can work.
    pub fn may(&self, ui: &Ui, operation: &str) -> bool {
        if self.admin {
            return true;
        }
        let Ok(op) = capstan_core::rbac::Operation::parse(operation) else {
            return false;
        };
        let snap = ui.gw.directory.get();
        snap.principal(&self.username)
            .is_some_and(|p| !snap.authorizer.visible_collections(p, op).is_empty())
    }
}

/// The CSRF token of a session: a digest of its token, which other sites
/// can neither read (the cookie is `HttpOnly`) nor compute.
fn csrf_of(token: &str) -> String {
    hex::encode(Sha256::digest(format!("capstan-ui-csrf\0{token}")))
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

impl FromRequestParts<Ui> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, ui: &Ui) -> Result<Self, Response> {
        let to_login = || Redirect::to("/ui/login").into_response();
        let token = cookie_token(&parts.headers).ok_or_else(to_login)?;
        let snap = ui.gw.directory.get();
        let (username, _) =
            crate::auth::live_session(&ui.gw, &snap, &token).map_err(|_| to_login())?;
        let principal = snap
            .principal(&username)
            .filter(|p| p.active)
            .ok_or_else(to_login)?;
        Ok(Viewer {
            username,
            admin: principal.admin,
            csrf: csrf_of(&token),
            token,
            conn: parts.extensions.get::<ConnInfo>().cloned(),
            host: parts.headers.get(header::HOST).cloned(),
        })
    }
}

/// The refusal of a form that lacks the session's CSRF token or comes
/// from another origin; `None` when it may go on to the API.
pub fn refuse_post(viewer: &Viewer, headers: &HeaderMap, csrf: &str) -> Option<Response> {
    let forbidden = |why: &str| Some((StatusCode::FORBIDDEN, why.to_string()).into_response());
    if csrf != viewer.csrf {
        return forbidden(
            "refused: the form's CSRF token is missing or wrong; reload the page and try again",
        );
    }
    same_origin(headers).err().and_then(|why| forbidden(&why))
}

/// Refuses a request whose `Origin` (or, without one, `Referer`) is another
/// site than the one it was sent to.
pub fn same_origin(headers: &HeaderMap) -> Result<(), String> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let origin = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|h| h.to_str().ok());
    match origin {
        None => Ok(()),
        Some(o) => {
            let rest = o.strip_prefix("https://").unwrap_or("");
            let o_host = rest.split('/').next().unwrap_or("");
            if !host.is_empty() && o_host == host {
                Ok(())
            } else {
                Err(format!(
                    "refused: a request from {o} may not change anything here"
                ))
            }
        }
    }
}

/// Parses a form whose fields may repeat (`op=a&op=b`).
fn pairs(body: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

/// A form field's value, empty when absent.
fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// A form the signed-in viewer posted, with its fields (which may repeat).
/// Extracting it refuses the request (403) when the form lacks the
/// session's CSRF token or comes from another origin, so a handler that
/// takes it never sees a forged form.
pub struct Posted {
    /// Who posted it.
    pub viewer: Viewer,
    /// Its fields, in order.
    pub form: Vec<(String, String)>,
}

impl axum::extract::FromRequest<Ui> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request<Body>, ui: &Ui) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, ui).await?;
        let bytes = axum::body::to_bytes(body, MAX_FORM).await.map_err(|_| {
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("refused: a form may be at most {} KiB", MAX_FORM / 1024),
            )
                .into_response()
        })?;
        let form = pairs(&bytes);
        if let Some(refusal) = refuse_post(&viewer, &parts.headers, field(&form, "csrf")) {
            return Err(refusal);
        }
        Ok(Posted { viewer, form })
    }
}

/// An API answer: status and JSON body (`Null` when empty).
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// The body, parsed.
    pub body: Value,
    /// The raw body.
    pub raw: Bytes,
}

impl Answer {
    /// Whether the call succeeded.
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// `Ok` when the call succeeded, else the API's message.
    pub fn result(&self) -> Result<(), String> {
        if self.ok() {
            Ok(())
        } else {
            Err(self.message())
        }
    }

    /// The error message the API gave.
    pub fn message(&self) -> String {
        self.body["errors"][0]["message"]
            .as_str()
            .or_else(|| self.body["message"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| format!("the request failed ({})", self.status))
    }
}

impl Ui {
    /// Calls the gateway's API in-process as `viewer` (anonymous when
    /// `None`).
    pub async fn call(
        &self,
        viewer: Option<&Viewer>,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(v) = viewer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {}", v.token));
            if let Some(h) = &v.host {
                req = req.header(header::HOST, h);
            }
        }
        let body = match body {
            Some((content_type, bytes)) => {
                req = req.header(header::CONTENT_TYPE, content_type);
                Body::from(bytes)
            }
            None => Body::empty(),
        };
        let mut req = match req.body(body) {
            Ok(r) => r,
            Err(e) => return failed(StatusCode::BAD_REQUEST, &e.to_string()),
        };
        if let Some(conn) = viewer.and_then(|v| v.conn.clone()) {
            req.extensions_mut().insert(conn);
        }
        self.send(req).await
    }

    /// Sends a request to the API as it is.
    pub async fn send(&self, req: Request<Body>) -> Answer {
        let resp = match self.api.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = resp.status();
        let raw = axum::body::to_bytes(resp.into_body(), MAX_ANSWER)
            .await
            .unwrap_or_default();
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Answer { status, body, raw }
    }

    /// [`Self::call`] with a JSON body.
    pub async fn json(&self, viewer: &Viewer, method: Method, path: &str, body: &Value) -> Answer {
        self.call(
            Some(viewer),
            method,
            path,
            Some(("application/json", body.to_string().into_bytes())),
        )
        .await
    }

    /// A GET as `viewer`.
    pub async fn get(&self, viewer: &Viewer, path: &str) -> Answer {
        self.call(Some(viewer), Method::GET, path, None).await
    }
}

fn failed(status: StatusCode, message: &str) -> Answer {
    let body = serde_json::json!({"errors": [{"code": "UI", "message": message}]});
    Answer {
        status,
        raw: Bytes::from(body.to_string()),
        body,
    }
}

/// A zip archive answered as a download named `name`, which no cache may
/// keep (bundles hold keys, support bundles a cluster's state).
pub(super) fn zip_download(name: &str, bytes: impl Into<Body>) -> Response {
    let mut resp = (StatusCode::OK, bytes.into()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_origins() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; capstan_ui=tok.en; b=2"),
        );
        assert_eq!(cookie_token(&h).as_deref(), Some("tok.en"));
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8443"));
        assert!(same_origin(&h).is_ok());
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://127.0.0.1:8443"),
        );
        assert!(same_origin(&h).is_ok());
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(same_origin(&h).is_err());
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8443"),
        );
        assert!(same_origin(&h).is_err());
        assert_ne!(csrf_of("a"), csrf_of("b"));
    }
}
