//! Admin Settings and the access matrix: the audit log viewer, the
//! registry install command, certificates, the cluster configuration
//! editor, authentication providers and the support bundle; users ×
//! collections with the explained decision of SPEC §8.

use axum::extract::{Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::layout::{error, page, table};
use super::pages::{csrf_field, render, s};
use super::{field, Posted, Ui, Viewer};

pub(super) fn routes() -> Router<Ui> {
    Router::new()
        .route("/ui/access", get(access))
        .route("/ui/settings/audit", get(audit))
        .route("/ui/settings/registry", get(registry))
        .route("/ui/settings/certificates", get(certificates))
        .route("/ui/settings/config", get(config).post(save_config))
        .route("/ui/settings/authentication", get(authentication))
        .route("/ui/settings/support", get(support).post(download_support))
}

#[derive(Deserialize, Default)]
pub struct ExplainForm {
    /// The matrix page's first user.
    #[serde(default)]
    start: usize,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    operation: String,
    #[serde(default)]
    resource: String,
}

/// `GET /ui/access`: the access matrix and, when asked, one decision
/// explained.
async fn access(State(ui): State<Ui>, viewer: Viewer, Query(q): Query<ExplainForm>) -> Response {
    const PAGE: usize = 50;
    let matrix = ui
        .get(
            &viewer,
            &format!("/api/authz/matrix?start={}&limit={PAGE}", q.start),
        )
        .await;
    let explained = if q.subject.is_empty() {
        None
    } else {
        let query = serde_urlencoded::to_string([
            ("subject", q.subject.trim()),
            ("operation", q.operation.trim()),
            ("resource", q.resource.trim()),
        ])
        .unwrap_or_default();
        Some(
            ui.get(&viewer, &format!("/api/authz/explain?{query}"))
                .await,
        )
    };
    let all: Vec<&str> = matrix.body["collections"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let users: Vec<&Value> = matrix.body["users"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let roles_at = |u: &Value, i: usize| -> Vec<String> {
        u["roles"][i]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    };
    // Only the collections where someone of this page holds a role: a
    // column of blanks says nothing.
    let shown: Vec<usize> = (0..all.len())
        .filter(|&i| users.iter().any(|u| !roles_at(u, i).is_empty()))
        .collect();
    let collections: Vec<&str> = shown.iter().map(|&i| all[i]).collect();
    let rows: Vec<Markup> = users
        .iter()
        .map(|u| {
            html! {
                tr {
                    th scope="row" { (s(u, "/username")) }
                    @for &i in &shown {
                        td {
                            @if u["active"] == false { span.muted { "inactive" } }
                            @else if u["admin"] == true { span.badge.ok { "admin" } }
                            @else { (roles_at(u, i).join(", ")) }
                        }
                    }
                }
            }
        })
        .collect();
    let total = matrix.body["total"].as_u64().unwrap_or(0) as usize;
    let mut headers = vec!["User"];
    headers.extend(collections.iter().copied());
    let body = html! {
        div.panel {
            h2 { "Explain a decision" }
            form.inline method="get" action="/ui/access" {
                label { "User" input name="subject" required value=(q.subject); }
                label { "Operation" input name="operation" required placeholder="service.create" value=(q.operation); }
                label { "Collection" input name="resource" required placeholder="/Shared/dev" value=(q.resource); }
                button type="submit" { "Explain" }
            }
            @if let Some(a) = &explained {
                @if a.ok() {
                    @let b = &a.body;
                    div #explanation {
                        p {
                            @if b["allowed"] == true { span.badge.ok { "allowed" } } @else { span.badge.bad { "denied" } }
                            " " (s(b, "/subject")) " · " code { (s(b, "/operation")) } " on " code { (s(b, "/resource")) }
                            " — " (s(b, "/reason"))
                        }
                        @let path: Vec<&str> = b["path"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                        @if !path.is_empty() { p.muted { "Searched: " (path.join(" → ")) } }
                        @for g in b["grants"].as_array().into_iter().flatten() {
                            p { "Grant: " strong { (s(g, "/subject_name")) } " holds " strong { (s(g, "/role_name")) } " on " code { (s(g, "/object_path")) } }
                        }
                    }
                } @else {
                    (error(Some(&a.message())))
                }
            }
        }
        div.panel.scroll {
            @if matrix.ok() {
                p.muted { "Users " (q.start + 1) "–" (q.start + users.len()) " of " (total) ", with the collections where they hold a role." }
                (table("matrix", &headers, rows, "No users."))
                p.tools {
                    @if q.start > 0 { a.button href={ "/ui/access?start=" (q.start.saturating_sub(PAGE)) } { "Earlier" } }
                    @if q.start + PAGE < total { a.button href={ "/ui/access?start=" (q.start + PAGE) } { "Later" } }
                }
            } @else {
                (error(Some(&matrix.message())))
            }
        }
    };
    render(
        StatusCode::OK,
        page(&viewer, "/ui/access", "Access matrix", body),
    )
}

#[derive(Deserialize)]
pub struct AuditPage {
    #[serde(default)]
    start: Option<u64>,
}

/// `GET /ui/settings/audit?start=N`: a hundred entries of the audit log.
async fn audit(State(ui): State<Ui>, viewer: Viewer, Query(q): Query<AuditPage>) -> Response {
    let start = q.start.unwrap_or(1).max(1);
    let a = ui
        .get(&viewer, &format!("/api/audit?start={start}&limit=100"))
        .await;
    let rows: Vec<Markup> = a.body["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            html! {
                tr {
                    td data-sort=(e["seq"].as_u64().unwrap_or(0)) { (e["seq"].as_u64().unwrap_or(0)) }
                    td { (s(e, "/time")) }
                    td { (s(e, "/actor")) }
                    td { (s(e, "/source")) }
                    td { (s(e, "/method")) " " code { (s(e, "/path")) } }
                    td { code { (s(e, "/operation")) } }
                    td { (s(e, "/object")) }
                    td { @if s(e, "/decision") == "allow" { span.badge.ok { "allow" } } @else { span.badge.bad { (s(e, "/decision")) } } }
                    td { (e["status"].as_u64().unwrap_or(0)) }
                }
            }
        })
        .collect();
    let next = a.body["nextStart"].as_u64().unwrap_or(0);
    let body = html! {
        div.panel {
            @if a.ok() {
                (table("audit", &["#", "Time", "Who", "From", "Request", "Operation", "Object", "Decision", "Status"], rows, "No entries from here on."))
                p.tools {
                    @if start > 1 { a.button href={ "/ui/settings/audit?start=" (start.saturating_sub(100).max(1)) } { "Earlier" } }
                    @if next > 0 { a.button href={ "/ui/settings/audit?start=" (next) } { "Later" } }
                }
            } @else {
                (error(Some(&a.message())))
            }
        }
    };
    render(
        StatusCode::OK,
        page(&viewer, "/ui/settings/audit", "Audit log", body),
    )
}

/// `GET /ui/settings/registry`: the registry install command with the
/// cluster's URL and CA, and the registries in use.
async fn registry(State(ui): State<Ui>, viewer: Viewer) -> Response {
    let (install, list) = tokio::join!(
        ui.get(&viewer, "/api/registries/install"),
        ui.get(&viewer, "/api/registries"),
    );
    let rows: Vec<Markup> = list
        .body
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| html! { tr { td { code { (s(r, "/url")) } } td { code { (s(r, "/node_id")) } } } })
        .collect();
    let body = html! {
        div.panel {
            h2 { "Install the registry" }
            @if install.ok() {
                p.muted { "Run this on the node that will host the registry; it asks for your password." }
                pre #install-command { (s(&install.body, "/command")) }
                button.secondary type="button" data-copy="install-command" { "Copy" }
                p { "Cluster URL: " code { (s(&install.body, "/ucp_url")) } }
            } @else {
                (error(Some(&install.message())))
            }
        }
        div.panel {
            h2 { "Registries" }
            @if list.ok() {
                (table("registries", &["URL", "Node"], rows, "No registry is installed yet."))
            } @else {
                (error(Some(&list.message())))
            }
        }
    };
    render(
        StatusCode::OK,
        page(&viewer, "/ui/settings/registry", "Registry", body),
    )
}

/// `GET /ui/settings/certificates`: the cluster CA and how long node
/// certificates live.
async fn certificates(State(ui): State<Ui>, viewer: Viewer) -> Response {
    let (ca, info) = tokio::join!(
        ui.call(Some(&viewer), Method::GET, "/ca", None),
        ui.get(&viewer, "/info"),
    );
    let pem = String::from_utf8_lossy(&ca.raw).into_owned();
    let fingerprint = pem_fingerprint(&pem);
    let ttl_days = info
        .body
        .pointer("/Swarm/Cluster/Spec/CAConfig/NodeCertExpiry")
        .and_then(Value::as_u64)
        .map(|ns| ns / 86_400_000_000_000);
    let body = html! {
        div.panel {
            h2 { "Cluster root CA" }
            @if ca.ok() {
                p { "SHA-256 fingerprint: " code #ca-fingerprint { (fingerprint) } }
                @if let Some(days) = ttl_days { p { "Node and client certificates it issues are valid for " (days) " days and renewed before they expire." } }
                pre #ca-pem { (pem) }
                button.secondary type="button" data-copy="ca-pem" { "Copy" }
            } @else {
                (error(Some(&ca.message())))
            }
        }
        div.panel {
            p.muted { "Client certificates are issued with client bundles under My Profile; revoking a bundle revokes its certificate." }
        }
    };
    render(
        StatusCode::OK,
        page(&viewer, "/ui/settings/certificates", "Certificates", body),
    )
}

/// The SHA-256 of the first certificate in `pem`, as colon-separated hex.
fn pem_fingerprint(pem: &str) -> String {
    use base64::Engine as _;
    let b64: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    match base64::engine::general_purpose::STANDARD.decode(b64.trim()) {
        Ok(der) if !der.is_empty() => Sha256::digest(der)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":"),
        _ => String::new(),
    }
}

async fn config_page(ui: &Ui, viewer: &Viewer, draft: Option<&str>, err: Option<&str>) -> Response {
    let current = ui
        .call(Some(viewer), Method::GET, "/api/ucp/config-toml", None)
        .await;
    let text = match draft {
        Some(d) => d.to_string(),
        None => String::from_utf8_lossy(&current.raw).into_owned(),
    };
    let body = html! {
        div.panel {
            @if current.ok() {
                p.muted { "The cluster configuration. It is checked before it is saved: a mistake is reported with its line and changes nothing." }
                (error(err))
                form method="post" action="/ui/settings/config" {
                    (csrf_field(viewer))
                    textarea name="toml" rows="24" class="wide code" spellcheck="false" aria-label="Cluster configuration (TOML)" { (text) }
                    p { button type="submit" { "Save" } }
                }
            } @else {
                (error(Some(&current.message())))
            }
        }
    };
    render(
        StatusCode::OK,
        page(viewer, "/ui/settings/config", "Cluster configuration", body),
    )
}

/// `GET /ui/settings/config`: the config-toml editor.
async fn config(State(ui): State<Ui>, viewer: Viewer) -> Response {
    config_page(&ui, &viewer, None, None).await
}

/// `POST /ui/settings/config` → `PUT /api/ucp/config-toml`.
async fn save_config(State(ui): State<Ui>, Posted { viewer, form }: Posted) -> Response {
    // Browsers send textarea lines with CRLF.
    let doc = field(&form, "toml").replace("\r\n", "\n");
    let a = ui
        .call(
            Some(&viewer),
            Method::PUT,
            "/api/ucp/config-toml",
            Some(("text/plain", doc.clone().into_bytes())),
        )
        .await;
    match a.result() {
        Ok(()) => Redirect::to("/ui/settings/config").into_response(),
        Err(msg) => config_page(&ui, &viewer, Some(&doc), Some(&msg)).await,
    }
}

fn not_yet(viewer: &Viewer, path: &str, title: &str, text: Markup) -> Response {
    let body = html! { div.panel { p.empty { (text) } } };
    render(StatusCode::OK, page(viewer, path, title, body))
}

/// `GET /ui/settings/authentication`: LDAP, SAML and SCIM's place.
async fn authentication(viewer: Viewer) -> Response {
    not_yet(
        &viewer,
        "/ui/settings/authentication",
        "Authentication & Authorization",
        html! { "LDAP, SAML and SCIM settings are available when the identity providers land. Local accounts are in use." },
    )
}

/// `GET /ui/settings/support`: what a support bundle holds, and the
/// button that makes one.
async fn support(viewer: Viewer) -> Response {
    support_page(&viewer, None)
}

fn support_page(viewer: &Viewer, err: Option<&str>) -> Response {
    let body = html! {
        div.panel {
            (error(err))
            p { "A support bundle is one zip with what Capstan support needs to understand this cluster: every reachable node's recent log, configuration and Raft state, node descriptions, services, task states and recent task events, versions and metrics." }
            p.muted { "Secret values, passwords, tokens, keys and environment values are redacted; accounts, sessions, secrets and configs are left out. Nodes that do not answer within a few seconds are listed in manifest.json instead of waited for. The same bundle comes from " code { "capstan support-bundle" } " on a manager and from " code { "POST /api/support" } "." }
            form method="post" action="/ui/settings/support" {
                (csrf_field(viewer))
                button #support-download type="submit" { "Download support bundle" }
            }
        }
    };
    render(
        StatusCode::OK,
        page(viewer, "/ui/settings/support", "Support bundle", body),
    )
}

/// `POST /ui/settings/support` → `POST /api/support`: the zip, as a
/// download.
async fn download_support(State(ui): State<Ui>, Posted { viewer, .. }: Posted) -> Response {
    let a = ui
        .call(Some(&viewer), Method::POST, "/api/support", None)
        .await;
    if !a.ok() {
        return support_page(&viewer, Some(&a.message()));
    }
    super::zip_download("capstan-support.zip", a.raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_of_pem() {
        let pem = "-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n";
        let want = Sha256::digest([0u8, 1, 2])
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(pem_fingerprint(pem), want);
        assert_eq!(pem_fingerprint("junk"), "");
    }
}
