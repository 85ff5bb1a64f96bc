//! Access control pages: roles (built-in read-only, a custom role editor
//! with operations grouped by resource type), grants (subject + role +
//! collection), collections, and organisation membership and teams.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use capstan_core::rbac::Operation;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};

use super::layout::{error, page, table};
use super::pages::{csrf_field, render, s};
use super::{field, pairs, refuse_post, Ui, Viewer};

async fn roles_page(ui: &Ui, viewer: &Viewer, err: Option<&str>) -> Markup {
    let list = ui.get(viewer, "/roles").await;
    let rows: Vec<Markup> = list
        .body
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let ops = r["operations"].as_array().map_or(0, Vec::len);
            html! {
                tr {
                    td { (s(r, "/name")) }
                    td { @if r["system_role"] == true { "built-in" } @else { "custom" } }
                    td data-sort=(ops) { (ops) " operations" }
                    td { (s(r, "/description")) }
                }
            }
        })
        .collect();
    html! {
        @if viewer.admin {
            div.panel {
                h2 { "Create role" }
                (error(err))
                form method="post" action="/ui/roles" {
                    (csrf_field(viewer))
                    p { label { "Name " input name="name" required; } }
                    p { label { "Description " input name="description" class="wide"; } }
                    @for t in Operation::resource_types() {
                        details {
                            summary { (t) }
                            p {
                                @for op in Operation::of_type(t) {
                                    label { input type="checkbox" name="op" value=(op.name()); " " (op.name()) } " "
                                }
                            }
                        }
                    }
                    p { button type="submit" { "Create role" } }
                }
            }
        }
        div.panel {
            @if list.ok() {
                (table("roles", &["Role", "Kind", "Operations", "Description"], rows, "No roles."))
            } @else {
                (error(Some(&list.message())))
            }
        }
    }
}

/// `GET /ui/roles`.
pub async fn roles(State(ui): State<Ui>, viewer: Viewer) -> Response {
    let body = roles_page(&ui, &viewer, None).await;
    render(StatusCode::OK, page(&viewer, "/ui/roles", "Roles", body))
}

/// `POST /ui/roles` → `POST /roles`.
pub async fn create_role(
    State(ui): State<Ui>,
    viewer: Viewer,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form = pairs(&body);
    if let Some(r) = refuse_post(&viewer, &headers, field(&form, "csrf")) {
        return r;
    }
    let ops: Vec<&str> = form
        .iter()
        .filter(|(k, _)| k == "op")
        .map(|(_, v)| v.as_str())
        .collect();
    let a = ui
        .json(
            &viewer,
            Method::POST,
            "/roles",
            &json!({"name": field(&form, "name"), "description": field(&form, "description"), "operations": ops}),
        )
        .await;
    if a.ok() {
        return Redirect::to("/ui/roles").into_response();
    }
    let body = roles_page(&ui, &viewer, Some(&a.message())).await;
    render(StatusCode::OK, page(&viewer, "/ui/roles", "Roles", body))
}

/// Every subject a grant may name: users, organisations and teams, by id.
async fn subjects(ui: &Ui, viewer: &Viewer) -> Vec<(String, String)> {
    let accounts = ui.get(viewer, "/accounts?limit=1000").await;
    let mut out = Vec::new();
    for a in accounts.body["accounts"].as_array().into_iter().flatten() {
        let name = s(a, "/name").to_string();
        out.push((s(a, "/id").to_string(), name.clone()));
        if a["isOrg"] == true {
            let teams = ui.get(viewer, &format!("/accounts/{name}/teams")).await;
            for t in teams.body["teams"].as_array().into_iter().flatten() {
                out.push((s(t, "/id").to_string(), format!("{name}/{}", s(t, "/name"))));
            }
        }
    }
    out
}

async fn grants_page(ui: &Ui, viewer: &Viewer, err: Option<&str>) -> Markup {
    let list = ui.get(viewer, "/collectionGrants").await;
    let roles = ui.get(viewer, "/roles").await;
    let collections = ui.get(viewer, "/collections").await;
    let role_names: std::collections::HashMap<&str, &str> = roles
        .body
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| (s(r, "/id"), s(r, "/name")))
        .collect();
    let rows: Vec<Markup> = list.body["grants"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| {
            let role = s(g, "/roleID");
            html! {
                tr {
                    td { (s(g, "/subjectName")) }
                    td { (role_names.get(role).copied().unwrap_or(role)) }
                    td { (s(g, "/objectPath")) }
                }
            }
        })
        .collect();
    let subjects = if viewer.admin {
        subjects(ui, viewer).await
    } else {
        vec![]
    };
    html! {
        @if viewer.admin {
            div.panel {
                h2 { "Create grant" }
                p.muted { "A grant gives a subject a role over a resource set." }
                (error(err))
                form.inline method="post" action="/ui/grants" {
                    (csrf_field(viewer))
                    label { "1. Subject"
                        select name="subject" required {
                            @for (id, name) in &subjects { option value=(id) { (name) } }
                        }
                    }
                    label { "2. Role"
                        select name="role" required {
                            @for r in roles.body.as_array().into_iter().flatten() {
                                option value=(s(r, "/id")) { (s(r, "/name")) }
                            }
                        }
                    }
                    label { "3. Collection"
                        select name="collection" required {
                            @for c in collections.body.as_array().into_iter().flatten() {
                                option value=(s(c, "/id")) { (s(c, "/path")) }
                            }
                        }
                    }
                    button type="submit" { "Grant" }
                }
            }
        }
        div.panel {
            @if list.ok() {
                (table("grants", &["Subject", "Role", "Resource set"], rows, "No grants you may see."))
            } @else {
                (error(Some(&list.message())))
            }
        }
    }
}

/// `GET /ui/grants`.
pub async fn grants(State(ui): State<Ui>, viewer: Viewer) -> Response {
    let body = grants_page(&ui, &viewer, None).await;
    render(StatusCode::OK, page(&viewer, "/ui/grants", "Grants", body))
}

#[derive(Deserialize)]
pub struct NewGrant {
    #[serde(default)]
    csrf: String,
    subject: String,
    role: String,
    collection: String,
}

/// `POST /ui/grants` → `PUT /collectionGrants/{subject}/{collection}/{role}`.
pub async fn create_grant(
    State(ui): State<Ui>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(f): Form<NewGrant>,
) -> Response {
    if let Some(r) = refuse_post(&viewer, &headers, &f.csrf) {
        return r;
    }
    let msg = if [&f.subject, &f.role, &f.collection]
        .iter()
        .all(|x| super::swarm::segment_ok(x))
    {
        let a = ui
            .call(
                Some(&viewer),
                Method::PUT,
                &format!(
                    "/collectionGrants/{}/{}/{}",
                    f.subject, f.collection, f.role
                ),
                None,
            )
            .await;
        if a.ok() {
            return Redirect::to("/ui/grants").into_response();
        }
        a.message()
    } else {
        "choose a subject, a role and a collection".to_string()
    };
    let body = grants_page(&ui, &viewer, Some(&msg)).await;
    render(StatusCode::OK, page(&viewer, "/ui/grants", "Grants", body))
}

/// `GET /ui/collections`: the collections the viewer may see, as a tree.
pub async fn collections(State(ui): State<Ui>, viewer: Viewer) -> Response {
    let list = ui.get(&viewer, "/collections").await;
    let mut all: Vec<&Value> = list.body.as_array().into_iter().flatten().collect();
    all.sort_by(|a, b| s(a, "/path").cmp(s(b, "/path")));
    let rows: Vec<Markup> = all
        .iter()
        .map(|c| {
            let path = s(c, "/path");
            let depth = path.matches('/').count().saturating_sub(1);
            html! {
                tr {
                    td data-sort=(path) { ("\u{a0}\u{a0}".repeat(depth)) (s(c, "/name")) }
                    td { code { (path) } }
                    td { @if c["builtin"] == true { "built-in" } }
                }
            }
        })
        .collect();
    let body = html! {
        div.panel {
            @if list.ok() {
                (table("collections", &["Collection", "Path", ""], rows, "No collections you may see."))
            } @else {
                (error(Some(&list.message())))
            }
        }
    };
    render(
        StatusCode::OK,
        page(&viewer, "/ui/collections", "Collections", body),
    )
}

#[derive(Deserialize)]
pub struct Member {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    team: String,
    user: String,
    #[serde(default)]
    owner: Option<String>,
}

fn name_ok(x: &str) -> bool {
    !x.is_empty()
        && x.len() <= 100
        && x.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// `POST /ui/orgs/{org}/members`: adds a member to the organisation (and
/// to a team when one is named).
pub async fn add_member(
    State(ui): State<Ui>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(org): Path<String>,
    Form(f): Form<Member>,
) -> Response {
    if let Some(r) = refuse_post(&viewer, &headers, &f.csrf) {
        return r;
    }
    let user = f.user.trim();
    let result = if !name_ok(&org) || !name_ok(user) || (!f.team.is_empty() && !name_ok(&f.team)) {
        Err("organisation, team and user names are letters, digits, '.', '-' and '_'".to_string())
    } else {
        let a = ui
            .json(
                &viewer,
                Method::PUT,
                &format!("/accounts/{org}/members/{user}"),
                &json!({"isAdmin": f.owner.is_some()}),
            )
            .await;
        if !a.ok() {
            Err(a.message())
        } else if f.team.is_empty() {
            Ok(())
        } else {
            let t = ui
                .json(
                    &viewer,
                    Method::PUT,
                    &format!("/accounts/{org}/teams/{}/members/{user}", f.team),
                    &json!({}),
                )
                .await;
            if t.ok() {
                Ok(())
            } else {
                Err(t.message())
            }
        }
    };
    super::pages::orgs_after(&ui, &viewer, result).await
}

#[derive(Deserialize)]
pub struct NewTeam {
    #[serde(default)]
    csrf: String,
    name: String,
}

/// `POST /ui/orgs/{org}/teams` → `POST /accounts/{org}/teams`.
pub async fn create_team(
    State(ui): State<Ui>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(org): Path<String>,
    Form(f): Form<NewTeam>,
) -> Response {
    if let Some(r) = refuse_post(&viewer, &headers, &f.csrf) {
        return r;
    }
    let result = if !name_ok(&org) {
        Err(format!("{org:?} is not an organisation name"))
    } else {
        let a = ui
            .json(
                &viewer,
                Method::POST,
                &format!("/accounts/{org}/teams"),
                &json!({"name": f.name.trim()}),
            )
            .await;
        if a.ok() {
            Ok(())
        } else {
            Err(a.message())
        }
    };
    super::pages::orgs_after(&ui, &viewer, result).await
}

/// `GET /ui/kubernetes`: the Kubernetes screens' place.
pub async fn kubernetes(viewer: Viewer) -> Response {
    let body = html! {
        div.panel {
            p.empty { "Namespaces, Pods, Deployments and Services are available when the Kubernetes API lands." }
        }
    };
    render(
        StatusCode::OK,
        page(&viewer, "/ui/kubernetes", "Kubernetes", body),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_form_fields() {
        let f = pairs(b"csrf=a&op=container.view&op=container.create&name=my+role%21");
        assert_eq!(field(&f, "name"), "my role!");
        assert_eq!(f.iter().filter(|(k, _)| k == "op").count(), 2);
    }
}
