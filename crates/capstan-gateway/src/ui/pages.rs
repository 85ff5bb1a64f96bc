//! The dashboard's pages and forms. Each reads and writes through the
//! gateway's API as the viewer ([`Ui::call`]); an API refusal is shown in
//! place, with the API's own message.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use capstan_core::cluster_config::ClusterConfig;
use futures::Stream;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};

use super::layout::{bare, error, page, table};
use super::{refuse_post, same_origin, Ui, Viewer, COOKIE};
use crate::server::ConnInfo;

pub(super) fn render(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

pub(super) fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

pub(super) fn n(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

pub(super) fn csrf_field(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf); }
}

/// `GET /ui/login`.
pub async fn login_page() -> Response {
    render(StatusCode::OK, login_markup(None, ""))
}

fn login_markup(err: Option<&str>, username: &str) -> Markup {
    bare(
        "Log in",
        html! {
            div.panel {
                h1 { "Capstan" }
                p.muted { "Log in with your Capstan account." }
                (error(err))
                form method="post" action="/ui/login" {
                    label for="username" { "Username" }
                    input #username name="username" autocomplete="username" required value=(username);
                    label for="password" { "Password" }
                    input #password name="password" type="password" autocomplete="current-password" required;
                    button type="submit" { "Log in" }
                }
            }
        },
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
}

/// `POST /ui/login`: logs in through `POST /auth/login` and keeps the
/// session token in the cookie.
pub async fn login(
    State(ui): State<Ui>,
    conn: Option<Extension<ConnInfo>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if let Err(why) = same_origin(&headers) {
        return render(
            StatusCode::FORBIDDEN,
            login_markup(Some(&why), &form.username),
        );
    }
    let mut req = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/auth/login")
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(h) = headers.get(header::HOST) {
        req = req.header(header::HOST, h);
    }
    let body = json!({"username": form.username, "password": form.password}).to_string();
    let Ok(mut req) = req.body(axum::body::Body::from(body)) else {
        return render(
            StatusCode::BAD_REQUEST,
            login_markup(Some("bad request"), ""),
        );
    };
    if let Some(Extension(c)) = conn {
        req.extensions_mut().insert(c);
    }
    let answer = ui.send(req).await;
    if !answer.ok() {
        return render(
            StatusCode::OK,
            login_markup(Some(&answer.message()), &form.username),
        );
    }
    let token = s(&answer.body, "/auth_token");
    // An admin of a cluster without a license is asked for one first (with
    // "skip for now").
    let next = {
        let mut probe = axum::http::Request::builder()
            .uri("/api/license")
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        if let Some(h) = headers.get(header::HOST) {
            probe = probe.header(header::HOST, h);
        }
        match probe.body(axum::body::Body::empty()) {
            Ok(req) => {
                let lic = ui.send(req).await;
                if lic.ok() && lic.body["licensed"] == false {
                    "/ui/license"
                } else {
                    "/ui/"
                }
            }
            Err(_) => "/ui/",
        }
    };
    let mut resp = Redirect::to(next).into_response();
    let cookie = format!("{COOKIE}={token}; Path=/ui; HttpOnly; Secure; SameSite=Strict");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

impl CsrfOnly {
    /// The token sent.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /ui/logout`.
pub async fn logout(
    State(ui): State<Ui>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if let Some(r) = refuse_post(&viewer, &headers, &form.csrf) {
        return r;
    }
    ui.call(Some(&viewer), Method::POST, "/auth/logout", None)
        .await;
    let mut resp = Redirect::to("/ui/login").into_response();
    let cookie = format!("{COOKIE}=; Path=/ui; HttpOnly; Secure; SameSite=Strict; Max-Age=0");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// Anything else under `/ui/`.
pub async fn not_found() -> Response {
    render(
        StatusCode::NOT_FOUND,
        bare(
            "Not found",
            html! { div.panel { h1 { "Not found" } p { "No dashboard page is here. " a href="/ui/" { "Back to the dashboard" } } } },
        ),
    )
}

/// `GET /ui/`: the cluster at a glance.
pub async fn overview(State(ui): State<Ui>, viewer: Viewer) -> Response {
    let (nodes, tasks) = tokio::join!(
        ui.get(&viewer, "/nodes"),
        ui.get(&viewer, "/api/tasks/summary?recent=10"),
    );
    let count = |a: &super::Answer, f: &dyn Fn(&Value) -> bool| -> Option<usize> {
        a.ok().then(|| {
            a.body
                .as_array()
                .map_or(0, |l| l.iter().filter(|x| f(x)).count())
        })
    };
    let managers = count(&nodes, &|x| s(x, "/Spec/Role") == "manager");
    let workers = count(&nodes, &|x| s(x, "/Spec/Role") == "worker");
    let down = count(&nodes, &|x| s(x, "/Status/State") != "ready");
    let services_n = tasks
        .ok()
        .then(|| n(&tasks.body, "/Services/Total") as usize);
    let converged = tasks
        .ok()
        .then(|| n(&tasks.body, "/Services/Converged") as usize);
    let by_state: BTreeMap<String, u64> = tasks.body["ByState"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
        .collect();
    let hosts: BTreeMap<&str, &str> = nodes
        .body
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| (s(x, "/ID"), s(x, "/Description/Hostname")))
        .collect();
    // The latest task changes: what the cluster did last.
    let recent: Vec<&Value> = tasks.body["Recent"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let card = |label: &str, value: Option<usize>| {
        html! {
            div.card {
                div.n { @match value { Some(v) => (v), None => "—" } }
                div.l { (label) }
            }
        }
    };
    let body = html! {
        div.cards {
            (card("Managers", managers))
            (card("Workers", workers))
            (card("Nodes not ready", down))
            (card("Services", services_n))
            (card("Services converged", converged))
            (card("Tasks running", tasks.ok().then(|| by_state.get("running").copied().unwrap_or(0) as usize)))
        }
        div.panel {
            h2 { "Nodes" }
            @if nodes.body.as_array().is_none_or(Vec::is_empty) {
                p.empty { "No nodes you may see." }
            } @else {
                table #node-resources data-table data-page-size="10" {
                    thead { tr { th { "Node" } th { "State" } th { "Resources" } } }
                    tbody {
                        @for x in nodes.body.as_array().into_iter().flatten() {
                            tr {
                                td { a href={ "/ui/nodes/" (s(x, "/ID")) } { (s(x, "/Description/Hostname")) } }
                                td { (s(x, "/Status/State")) }
                                td { (super::cluster::node_meters(x)) }
                            }
                        }
                    }
                }
            }
        }
        div.panel {
            h2 { "Tasks by state" }
            @if by_state.is_empty() {
                p.empty { "No tasks you may see." }
            } @else {
                table #tasks-by-state data-table {
                    thead { tr { th { "State" } th { "Tasks" } } }
                    tbody { @for (state, k) in &by_state { tr { td { (state) } td { (k) } } } }
                }
            }
        }
        div.panel {
            h2 { "Recent events" }
            @if recent.is_empty() {
                p.empty { "Nothing has happened yet." }
            } @else {
                ul #recent-events {
                    @for t in &recent {
                        li {
                            span.muted { (s(t, "/Status/Timestamp")) } " "
                            (s(t, "/Name"))
                            " is " strong { (s(t, "/Status/State")) }
                            @if let Some(h) = hosts.get(s(t, "/NodeID")) { " on " (h) }
                        }
                    }
                }
            }
        }
    };
    render(StatusCode::OK, page(&viewer, "/ui/", "Dashboard", body))
}

async fn users_page(ui: &Ui, viewer: &Viewer, err: Option<&str>) -> Markup {
    let list = ui.get(viewer, "/accounts?filter=users&limit=1000").await;
    let rows: Vec<Markup> = list.body["accounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| {
            html! {
                tr {
                    td { (s(u, "/name")) }
                    td { (s(u, "/fullName")) }
                    td { @if u["isAdmin"] == true { "admin" } @else { "user" } }
                    td { @if u["isActive"] == false { span.badge.bad { "inactive" } } @else { span.badge.ok { "active" } } }
                }
            }
        })
        .collect();
    let body = html! {
        @if viewer.admin {
            div.panel {
                h2 { "Create user" }
                (error(err))
                form.inline method="post" action="/ui/users" {
                    (csrf_field(viewer))
                    label { "Username" input name="name" required pattern="[A-Za-z0-9._\\-]{1,100}" title="letters, digits, dot, dash and underscore"; }
                    label { "Full name" input name="full_name"; }
                    label { "Password" input name="password" type="password" required minlength="8" autocomplete="new-password"; }
                    button type="submit" { "Create" }
                }
            }
        }
        div.panel {
            @if list.ok() {
                (table("users", &["Username", "Full name", "Role", "Status"], rows, "No users yet."))
            } @else {
                (error(Some(&list.message())))
            }
        }
    };
    page(viewer, "/ui/users", "Users", body)
}

/// `GET /ui/users`.
pub async fn users(State(ui): State<Ui>, viewer: Viewer) -> Response {
    render(StatusCode::OK, users_page(&ui, &viewer, None).await)
}

#[derive(Deserialize)]
pub struct NewUser {
    #[serde(default)]
    csrf: String,
    name: String,
    password: String,
    #[serde(default)]
    full_name: String,
}

/// `POST /ui/users` → `POST /accounts`.
pub async fn create_user(
    State(ui): State<Ui>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(f): Form<NewUser>,
) -> Response {
    if let Some(r) = refuse_post(&viewer, &headers, &f.csrf) {
        return r;
    }
    let a = ui
        .json(
            &viewer,
            Method::POST,
            "/accounts",
            &json!({"name": f.name, "password": f.password, "fullName": f.full_name}),
        )
        .await;
    if a.ok() {
        return Redirect::to("/ui/users").into_response();
    }
    render(
        StatusCode::OK,
        users_page(&ui, &viewer, Some(&a.message())).await,
    )
}

async fn orgs_page(ui: &Ui, viewer: &Viewer, err: Option<&str>) -> Markup {
    let list = ui.get(viewer, "/accounts?filter=orgs&limit=1000").await;
    let orgs: Vec<Value> = list.body["accounts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut rows = Vec::new();
    for o in &orgs {
        let name = s(o, "/name");
        let teams = ui.get(viewer, &format!("/accounts/{name}/teams")).await;
        let names: Vec<String> = teams.body["teams"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| s(t, "/name").to_string())
            .collect();
        rows.push(html! {
            tr { td { (name) } td { (s(o, "/fullName")) } td { (names.join(", ")) } }
        });
    }
    let org_names: Vec<String> = orgs.iter().map(|o| s(o, "/name").to_string()).collect();
    let body = html! {
        @if viewer.admin && !org_names.is_empty() {
            div.panel {
                h2 { "Members and teams" }
                @for o in &org_names {
                    form.inline method="post" action={ "/ui/orgs/" (o) "/members" } {
                        (csrf_field(viewer))
                        strong { (o) }
                        label { "User" input name="user" required; }
                        label { "Team (optional)" input name="team"; }
                        label { "Owner" input type="checkbox" name="owner" value="on"; }
                        button.secondary type="submit" { "Add member" }
                    }
                    form.inline method="post" action={ "/ui/orgs/" (o) "/teams" } {
                        (csrf_field(viewer))
                        label { "New team in " (o) input name="name" required; }
                        button.secondary type="submit" { "Create team" }
                    }
                }
            }
        }
        @if viewer.admin {
            div.panel {
                h2 { "Create organization" }
                (error(err))
                form.inline method="post" action="/ui/orgs" {
                    (csrf_field(viewer))
                    label { "Name" input name="name" required; }
                    button type="submit" { "Create" }
                }
            }
        }
        div.panel {
            @if list.ok() {
                (table("orgs", &["Organization", "Full name", "Teams"], rows, "No organizations yet."))
            } @else {
                (error(Some(&list.message())))
            }
        }
    };
    page(viewer, "/ui/orgs", "Orgs & Teams", body)
}

/// After a membership or team form: back to the page, or the page with
/// the API's refusal in place.
pub(super) async fn orgs_after(ui: &Ui, viewer: &Viewer, result: Result<(), String>) -> Response {
    match result {
        Ok(()) => Redirect::to("/ui/orgs").into_response(),
        Err(e) => render(StatusCode::OK, orgs_page(ui, viewer, Some(&e)).await),
    }
}

/// `GET /ui/orgs`.
pub async fn orgs(State(ui): State<Ui>, viewer: Viewer) -> Response {
    render(StatusCode::OK, orgs_page(&ui, &viewer, None).await)
}

#[derive(Deserialize)]
pub struct NewOrg {
    #[serde(default)]
    csrf: String,
    name: String,
}

/// `POST /ui/orgs` → `POST /accounts` with `isOrg`.
pub async fn create_org(
    State(ui): State<Ui>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(f): Form<NewOrg>,
) -> Response {
    if let Some(r) = refuse_post(&viewer, &headers, &f.csrf) {
        return r;
    }
    let a = ui
        .json(
            &viewer,
            Method::POST,
            "/accounts",
            &json!({"name": f.name, "isOrg": true}),
        )
        .await;
    if a.ok() {
        return Redirect::to("/ui/orgs").into_response();
    }
    render(
        StatusCode::OK,
        orgs_page(&ui, &viewer, Some(&a.message())).await,
    )
}

async fn services_page(ui: &Ui, viewer: &Viewer, err: Option<&str>) -> Markup {
    let list = ui.get(viewer, "/services?status=true").await;
    let scalable = viewer.may(ui, "service.update");
    let rows: Vec<Markup> = list
        .body
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| {
            let id = s(x, "/ID");
            html! {
                tr data-service=(id) {
                    td { a href={ "/ui/services/" (id) } { (s(x, "/Spec/Name")) } }
                    td { code { (s(x, "/Spec/TaskTemplate/ContainerSpec/Image")) } }
                    td data-replicas data-running=(n(x, "/ServiceStatus/RunningTasks")) {
                        (n(x, "/ServiceStatus/RunningTasks")) " / " (n(x, "/ServiceStatus/DesiredTasks"))
                    }
                    td {
                        @if scalable {
                        form.inline method="post" action={ "/ui/services/" (id) "/scale" } {
                            (csrf_field(viewer))
                            input type="number" name="replicas" min="0" max="1000" required aria-label="Replicas"
                                value=(n(x, "/Spec/Mode/Replicated/Replicas")) class="narrow";
                            button.secondary type="submit" { "Scale" }
                        }
                        }
                    }
                }
            }
        })
        .collect();
    html! {
        @if viewer.may(ui, "service.create") {
        div.panel {
            h2 { "Create service" }
            (error(err))
            form.inline method="post" action="/ui/services" {
                (csrf_field(viewer))
                label { "Name" input name="name" required pattern="[A-Za-z0-9][A-Za-z0-9_.\\-]{0,62}"; }
                label { "Image" input name="image" required; }
                label { "Replicas" input type="number" name="replicas" min="0" max="1000" value="1" required class="narrow"; }
                label { "Command" input name="command" placeholder="e.g. sleep 3600"; }
                button type="submit" { "Create" }
            }
        }
        } @else {
            (error(err))
        }
        div.panel data-live="/ui/events/services" {
            @if list.ok() {
                (table("services", &["Name", "Image", "Running / desired", "Scale"], rows, "No services you may see."))
            } @else {
                (error(Some(&list.message())))
            }
        }
    }
}

/// `GET /ui/services`.
pub async fn services(State(ui): State<Ui>, viewer: Viewer) -> Response {
    let body = services_page(&ui, &viewer, None).await;
    render(
        StatusCode::OK,
        page(&viewer, "/ui/services", "Services", body),
    )
}

#[derive(Deserialize)]
pub struct NewService {
    #[serde(default)]
    csrf: String,
    name: String,
    image: String,
    replicas: String,
    #[serde(default)]
    command: String,
}

pub(super) fn replicas(raw: &str) -> Result<u64, String> {
    raw.trim()
        .parse::<u64>()
        .ok()
        .filter(|r| *r <= 1000)
        .ok_or_else(|| format!("replicas must be a whole number from 0 to 1000, not {raw:?}"))
}

/// `POST /ui/services` → `POST /services/create`.
pub async fn create_service(
    State(ui): State<Ui>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(f): Form<NewService>,
) -> Response {
    if let Some(r) = refuse_post(&viewer, &headers, &f.csrf) {
        return r;
    }
    let fail = |msg: String| {
        let ui = ui.clone();
        let viewer = viewer.clone();
        async move {
            let body = services_page(&ui, &viewer, Some(&msg)).await;
            render(
                StatusCode::OK,
                page(&viewer, "/ui/services", "Services", body),
            )
        }
    };
    let count = match replicas(&f.replicas) {
        Ok(c) => c,
        Err(e) => return fail(e).await,
    };
    let args: Vec<&str> = f.command.split_whitespace().collect();
    let mut container = json!({"Image": f.image.trim()});
    if !args.is_empty() {
        container["Args"] = json!(args);
    }
    let spec = json!({
        "Name": f.name.trim(),
        "TaskTemplate": {"ContainerSpec": container},
        "Mode": {"Replicated": {"Replicas": count}},
    });
    let a = ui
        .json(&viewer, Method::POST, "/services/create", &spec)
        .await;
    if a.ok() {
        return Redirect::to("/ui/services").into_response();
    }
    fail(a.message()).await
}

#[derive(Deserialize)]
pub struct Scale {
    #[serde(default)]
    csrf: String,
    replicas: String,
}

/// `POST /ui/services/{id}/scale` → `POST /services/{id}/update`.
pub async fn scale_service(
    State(ui): State<Ui>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<Scale>,
) -> Response {
    if let Some(r) = refuse_post(&viewer, &headers, &f.csrf) {
        return r;
    }
    let result = match replicas(&f.replicas) {
        Ok(count) => {
            super::cluster::change_service(&ui, &viewer, &id, "", |spec| {
                spec["Mode"] = json!({"Replicated": {"Replicas": count}});
                Ok(())
            })
            .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Redirect::to("/ui/services").into_response(),
        Err(msg) => {
            let body = services_page(&ui, &viewer, Some(&msg)).await;
            render(
                StatusCode::OK,
                page(&viewer, "/ui/services", "Services", body),
            )
        }
    }
}

/// `GET /ui/events/services`: running and desired tasks of every service the
/// viewer may see, every two seconds, as server-sent events.
pub async fn service_events(
    State(ui): State<Ui>,
    viewer: Viewer,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures::stream::unfold((ui, viewer, true), |(ui, viewer, first)| async move {
        if !first {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let a = ui.get(&viewer, "/services?status=true").await;
        if a.status == StatusCode::UNAUTHORIZED {
            return None;
        }
        let list: Vec<Value> = a
            .body
            .as_array()
            .into_iter()
            .flatten()
            .map(|x| {
                json!({
                    "id": s(x, "/ID"),
                    "running": n(x, "/ServiceStatus/RunningTasks"),
                    "desired": n(x, "/ServiceStatus/DesiredTasks"),
                })
            })
            .collect();
        let event = Event::default()
            .event("services")
            .data(Value::Array(list).to_string());
        Some((Ok(event), (ui, viewer, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// The cluster's registry and a reader for it, as the viewer.
async fn registry_of(ui: &Ui, viewer: &Viewer) -> Result<Option<String>, String> {
    let list = ui.get(viewer, "/api/registries").await;
    if !list.ok() {
        return Err(list.message());
    }
    Ok(list
        .body
        .as_array()
        .and_then(|l| l.first())
        .map(|r| s(r, "/url").to_string()))
}

async fn registry_get(ui: &Ui, viewer: &Viewer, url: &str, path: &str) -> Result<Value, String> {
    crate::trust::registry_read(&ui.gw, &viewer.username, &format!("{url}{path}")).await
}

/// `GET /ui/registry`: the repositories the viewer may see.
pub async fn repositories(State(ui): State<Ui>, viewer: Viewer) -> Response {
    let body = match registry_of(&ui, &viewer).await {
        Err(e) => html! { (error(Some(&e))) },
        Ok(None) => html! {
            div.panel { p.empty { "No registry is installed in this cluster yet. An admin installs one with " code { "capstan registry install" } " (Admin Settings > Registry)." } }
        },
        Ok(Some(url)) => match registry_get(&ui, &viewer, &url, "/api/v0/repositories").await {
            Err(e) => html! { (error(Some(&e))) },
            Ok(v) => {
                let rows: Vec<Markup> = v["repositories"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        let (ns, name) = (s(r, "/namespace"), s(r, "/name"));
                        html! {
                            tr {
                                td { a href={ "/ui/registry/" (ns) "/" (name) } { (ns) "/" (name) } }
                                td { (s(r, "/visibility")) }
                                td { (s(r, "/shortDescription")) }
                            }
                        }
                    })
                    .collect();
                html! {
                    div.panel {
                        p.muted { "Registry: " code { (url) } }
                        (table("repositories", &["Repository", "Visibility", "Description"], rows, "No repositories you may see."))
                    }
                }
            }
        },
    };
    render(
        StatusCode::OK,
        page(&viewer, "/ui/registry", "Repositories", body),
    )
}

/// `GET /ui/registry/{ns}/{repo}`: a repository's tags, with their content
/// trust state.
pub async fn repository(
    State(ui): State<Ui>,
    viewer: Viewer,
    Path((ns, repo)): Path<(String, String)>,
) -> Response {
    let ok_name = |x: &str| {
        !x.is_empty()
            && x.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    };
    if !ok_name(&ns) || !ok_name(&repo) {
        return not_found().await;
    }
    let title = format!("{ns}/{repo}");
    let body = match registry_of(&ui, &viewer).await {
        Err(e) => html! { (error(Some(&e))) },
        Ok(None) => html! { p.empty { "No registry is installed in this cluster yet." } },
        Ok(Some(url)) => {
            let details = registry_get(
                &ui,
                &viewer,
                &url,
                &format!("/api/v0/repositories/{ns}/{repo}"),
            )
            .await;
            let tags = registry_get(
                &ui,
                &viewer,
                &url,
                &format!("/api/v0/repositories/{ns}/{repo}/tags"),
            )
            .await;
            match (details, tags) {
                (Err(e), _) | (_, Err(e)) => html! { (error(Some(&e))) },
                (Ok(d), Ok(t)) => {
                    let rows: Vec<Markup> = t
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|tag| {
                            let signers: Vec<String> = tag["signers"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(Value::as_str)
                                .map(|r| r.strip_prefix("targets/").unwrap_or("repository key").to_string())
                                .collect();
                            html! {
                                tr data-tag=(s(tag, "/name")) {
                                    td { (s(tag, "/name")) }
                                    td { code title=(s(tag, "/digest")) { (s(tag, "/digest").chars().take(19).collect::<String>()) } }
                                    td.trust {
                                        @if tag["inNotary"] == true {
                                            @if tag["hashMismatch"] == true {
                                                span.badge.warn { "Signed, digest differs" }
                                            } @else {
                                                span.badge.ok { "Signed" }
                                            }
                                        } @else {
                                            span.badge { "Unsigned" }
                                        }
                                    }
                                    td.signers { (signers.join(", ")) }
                                    td { (s(tag, "/author")) }
                                    td { (s(tag, "/updatedAt")) }
                                }
                            }
                        })
                        .collect();
                    html! {
                        div.panel {
                            p { (s(&d, "/shortDescription")) }
                            p.muted { "Pull: " code #pull { (s(&d, "/pullCommand")) } " " button.secondary type="button" data-copy="pull" { "Copy" } }
                        }
                        div.panel {
                            (table("tags", &["Tag", "Digest", "Content trust", "Signed by", "Pushed by", "Updated"], rows, "No tags yet: push one."))
                        }
                    }
                }
            }
        }
    };
    render(StatusCode::OK, page(&viewer, "/ui/registry", &title, body))
}

/// The content trust form: the stored settings, or what was submitted when
/// it was refused (so nothing typed is lost).
async fn trust_page(
    ui: &Ui,
    viewer: &Viewer,
    err: Option<&str>,
    saved: bool,
    submitted: Option<(bool, String)>,
) -> Response {
    if !viewer.admin {
        return render(
            StatusCode::FORBIDDEN,
            page(
                viewer,
                "",
                "Content Trust",
                html! { (error(Some("only admins change the content trust settings"))) },
            ),
        );
    }
    let current = ui.get(viewer, "/api/ucp/config-toml").await;
    let config: Option<ClusterConfig> = std::str::from_utf8(&current.raw)
        .ok()
        .and_then(|t| toml::from_str(t).ok());
    let body = match config {
        None => html! { (error(Some(&current.message()))) },
        Some(c) => {
            let t = &c.trust_configuration;
            let (require, teams) =
                submitted.unwrap_or((t.require_content_trust, t.require_signature_from.join(", ")));
            html! {
                div.panel {
                    p { "When content trust is required, services and containers run only images signed in this cluster's registry, pinned to the signed digest. Running services are not stopped when this changes." }
                    (error(err))
                    @if saved { p.ok role="status" { "Saved." } }
                    form method="post" action="/ui/settings/trust" {
                        (csrf_field(viewer))
                        p {
                            label {
                                @if require {
                                    input type="checkbox" name="require" value="on" checked;
                                } @else {
                                    input type="checkbox" name="require" value="on";
                                }
                                " Run only signed images"
                            }
                        }
                        p {
                            label for="teams" { "Signed by a member of (org/team, comma-separated; empty: any signer)" }
                            br;
                            input #teams name="teams" value=(teams) class="wide";
                        }
                        button type="submit" { "Save" }
                    }
                }
            }
        }
    };
    render(
        StatusCode::OK,
        page(viewer, "/ui/settings/trust", "Content Trust", body),
    )
}

/// `GET /ui/settings/trust`.
pub async fn trust_settings(State(ui): State<Ui>, viewer: Viewer) -> Response {
    trust_page(&ui, &viewer, None, false, None).await
}

#[derive(Deserialize)]
pub struct TrustForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    require: Option<String>,
    #[serde(default)]
    teams: String,
}

/// `POST /ui/settings/trust` → `PUT /api/ucp/config-toml` with the
/// `[trust_configuration]` changed.
pub async fn save_trust_settings(
    State(ui): State<Ui>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(f): Form<TrustForm>,
) -> Response {
    if let Some(r) = refuse_post(&viewer, &headers, &f.csrf) {
        return r;
    }
    let submitted = Some((f.require.is_some(), f.teams.clone()));
    let current = ui.get(&viewer, "/api/ucp/config-toml").await;
    let parsed: Result<ClusterConfig, String> = std::str::from_utf8(&current.raw)
        .map_err(|e| e.to_string())
        .and_then(|t| toml::from_str(t).map_err(|e| e.to_string()));
    let mut config = match parsed {
        Ok(c) if current.ok() => c,
        Ok(_) => return trust_page(&ui, &viewer, Some(&current.message()), false, submitted).await,
        Err(e) => return trust_page(&ui, &viewer, Some(&e), false, submitted).await,
    };
    config.trust_configuration.require_content_trust = f.require.is_some();
    config.trust_configuration.require_signature_from = f
        .teams
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    let text = match toml::to_string(&config) {
        Ok(t) => t,
        Err(e) => return trust_page(&ui, &viewer, Some(&e.to_string()), false, submitted).await,
    };
    let a = ui
        .call(
            Some(&viewer),
            Method::PUT,
            "/api/ucp/config-toml",
            Some(("application/toml", text.into_bytes())),
        )
        .await;
    if a.ok() {
        trust_page(&ui, &viewer, None, true, None).await
    } else {
        trust_page(&ui, &viewer, Some(&a.message()), false, submitted).await
    }
}

/// `GET /ui/about`.
pub async fn about(State(ui): State<Ui>, viewer: Viewer) -> Response {
    let body = html! {
        div.panel {
            table {
                tbody {
                    tr { th { "Version" } td { (env!("CARGO_PKG_VERSION")) } }
                    tr { th { "Cluster" } td { code { (ui.gw.cluster_id()) } } }
                    tr { th { "API" } td { a href="/api/openapi.json" { "OpenAPI document" } } }
                }
            }
        }
    };
    render(StatusCode::OK, page(&viewer, "/ui/about", "About", body))
}
