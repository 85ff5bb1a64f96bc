//! The user menu's pages: My Profile (password change, client bundles:
//! new with download, list, revoke) and the license (view, upload, or skip
//! for now).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::json;

use super::layout::{error, page, table};
use super::pages::{csrf_field, render, s};
use super::{refuse_post, Ui, Viewer};

async fn profile_page(ui: &Ui, viewer: &Viewer, err: Option<&str>, note: Option<&str>) -> Markup {
    let certs = ui.get(viewer, "/api/clientbundle/certs").await;
    let rows: Vec<Markup> = certs
        .body
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            let id = s(b, "/id");
            html! {
                tr data-bundle=(id) {
                    td { (s(b, "/label")) }
                    td { code { (id) } }
                    td { (s(b, "/created_at")) }
                    td { (s(b, "/not_after")) }
                    td {
                        @if b["revoked"] == true {
                            span.badge.bad { "revoked" }
                        } @else {
                            form method="post" action={ "/ui/profile/bundles/" (id) "/revoke" }
                                data-confirm="Revoke this bundle? Clients using it stop working at once." {
                                (csrf_field(viewer))
                                button.danger type="submit" { "Revoke" }
                            }
                        }
                    }
                }
            }
        })
        .collect();
    let body = html! {
        (error(err))
        @if let Some(n) = note { p.ok role="status" { (n) } }
        div.panel {
            h2 { "Client bundles" }
            p.muted { "A bundle holds a certificate and key for the docker CLI and kubectl: unzip it and run " code { "source env.sh" } "." }
            form.inline method="post" action="/ui/profile/bundles" {
                (csrf_field(viewer))
                label { "Label" input name="label" maxlength="100"; }
                button type="submit" { "New client bundle" }
            }
            (table("bundles", &["Label", "Serial", "Created", "Expires", ""], rows, "No client bundles yet."))
        }
        div.panel {
            h2 { "Change password" }
            form.inline method="post" action="/ui/profile/password" {
                (csrf_field(viewer))
                label { "Current password" input type="password" name="old_password" required autocomplete="current-password"; }
                label { "New password" input type="password" name="password" required minlength="8" autocomplete="new-password"; }
                button type="submit" { "Change password" }
            }
        }
    };
    page(viewer, "/ui/profile", "My Profile", body)
}

/// `GET /ui/profile`.
pub async fn profile(State(ui): State<Ui>, viewer: Viewer) -> Response {
    render(StatusCode::OK, profile_page(&ui, &viewer, None, None).await)
}

#[derive(Deserialize)]
pub struct NewBundle {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    label: String,
}

fn query_value(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `POST /ui/profile/bundles` → `POST /api/clientbundle`: the zip is the
/// answer, as a download.
pub async fn new_bundle(
    State(ui): State<Ui>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(f): Form<NewBundle>,
) -> Response {
    if let Some(r) = refuse_post(&viewer, &headers, &f.csrf) {
        return r;
    }
    let path = if f.label.trim().is_empty() {
        "/api/clientbundle".to_string()
    } else {
        format!("/api/clientbundle?label={}", query_value(f.label.trim()))
    };
    let a = ui.call(Some(&viewer), Method::POST, &path, None).await;
    if !a.ok() {
        return render(
            StatusCode::OK,
            profile_page(&ui, &viewer, Some(&a.message()), None).await,
        );
    }
    super::zip_download(&format!("ucp-bundle-{}.zip", viewer.username), a.raw)
}

/// `POST /ui/profile/bundles/{id}/revoke` → `DELETE /api/clientbundle/certs/{id}`.
pub async fn revoke_bundle(
    State(ui): State<Ui>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<super::pages::CsrfOnly>,
) -> Response {
    if let Some(r) = refuse_post(&viewer, &headers, f.csrf()) {
        return r;
    }
    if !id.bytes().all(|b| b.is_ascii_hexdigit()) || id.is_empty() {
        return render(
            StatusCode::OK,
            profile_page(&ui, &viewer, Some("not a bundle id"), None).await,
        );
    }
    let a = ui
        .call(
            Some(&viewer),
            Method::DELETE,
            &format!("/api/clientbundle/certs/{id}"),
            None,
        )
        .await;
    if a.ok() {
        return Redirect::to("/ui/profile").into_response();
    }
    render(
        StatusCode::OK,
        profile_page(&ui, &viewer, Some(&a.message()), None).await,
    )
}

#[derive(Deserialize)]
pub struct Password {
    #[serde(default)]
    csrf: String,
    old_password: String,
    password: String,
}

/// `POST /ui/profile/password` → `PATCH /accounts/{me}`. Changing the
/// password ends every session, this one included.
pub async fn change_password(
    State(ui): State<Ui>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(f): Form<Password>,
) -> Response {
    if let Some(r) = refuse_post(&viewer, &headers, &f.csrf) {
        return r;
    }
    let a = ui
        .json(
            &viewer,
            Method::PATCH,
            &format!("/accounts/{}", viewer.username),
            &json!({"password": f.password, "oldPassword": f.old_password}),
        )
        .await;
    if a.ok() {
        return Redirect::to("/ui/login").into_response();
    }
    render(
        StatusCode::OK,
        profile_page(&ui, &viewer, Some(&a.message()), None).await,
    )
}

async fn license_page(ui: &Ui, viewer: &Viewer, err: Option<&str>) -> Markup {
    let lic = ui.get(viewer, "/api/license").await;
    let body = html! {
        (error(err))
        div.panel {
            @if lic.ok() {
                @if lic.body["licensed"] == true {
                    p { span.badge.ok { "Licensed" } " " (s(&lic.body, "/licensee")) " · " (s(&lic.body, "/tier")) " · expires " (s(&lic.body, "/expires_at")) }
                } @else {
                    p { span.badge.warn { "No license" } " " (s(&lic.body, "/status")) }
                }
            } @else {
                (error(Some(&lic.message())))
            }
            @if viewer.admin {
                form method="post" action="/ui/license" {
                    (csrf_field(viewer))
                    p { label for="license" { "Paste the license file (JSON)" } }
                    p { textarea #license name="license" rows="6" class="wide" required {} }
                    button type="submit" { "Upload license" }
                    " "
                    a.button href="/ui/" { "Skip for now" }
                }
            }
        }
    };
    page(viewer, "/ui/license", "License", body)
}

/// `GET /ui/license`.
pub async fn license(State(ui): State<Ui>, viewer: Viewer) -> Response {
    render(StatusCode::OK, license_page(&ui, &viewer, None).await)
}

#[derive(Deserialize)]
pub struct LicenseForm {
    #[serde(default)]
    csrf: String,
    license: String,
}

/// `POST /ui/license` → `PUT /api/license`.
pub async fn upload_license(
    State(ui): State<Ui>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(f): Form<LicenseForm>,
) -> Response {
    if let Some(r) = refuse_post(&viewer, &headers, &f.csrf) {
        return r;
    }
    let a = ui
        .call(
            Some(&viewer),
            Method::PUT,
            "/api/license",
            Some(("application/json", f.license.into_bytes())),
        )
        .await;
    if a.ok() {
        return Redirect::to("/ui/license").into_response();
    }
    render(
        StatusCode::OK,
        license_page(&ui, &viewer, Some(&a.message())).await,
    )
}
