//! Nodes (the list with the Add Nodes panel, details with availability,
//! role and labels) and a service's details (tasks, logs, update, rollback,
//! remove), over the Docker API.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use serde_json::{json, Value};

use super::layout::{error, page, table};
use super::pages::{csrf_field, n, render, s};
use super::swarm::{call_on, logs_box, logs_json, remove_button, segment_ok, titled};
use super::{field, Answer, Posted, Ui, Viewer};

pub(super) fn routes() -> Router<Ui> {
    Router::new()
        .route("/ui/nodes", get(nodes))
        .route("/ui/nodes/{id}", get(node).post(update_node))
        .route("/ui/services/{id}", get(service))
        .route("/ui/services/{id}/logs", get(service_logs))
        .route("/ui/services/{id}/update", post(update_service))
        .route("/ui/services/{id}/rollback", post(rollback_service))
        .route("/ui/services/{id}/remove", post(remove_service))
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
}

/// A bar of `used` out of `total`, labelled.
fn meter(label: &str, used: u64, total: u64, text: &str) -> Markup {
    html! {
        @if total > 0 {
            div.meter title=(text) {
                span.l { (label) }
                meter min="0" max=(total) value=(used) aria-label=(label) {}
                span.muted { (text) }
            }
        }
    }
}

/// The node's CPU, memory and disk as the dashboard shows them.
pub(super) fn node_meters(x: &Value) -> Markup {
    let cpus = n(x, "/Description/Resources/NanoCPUs") / 1_000_000_000;
    let mem = n(x, "/Description/Resources/MemoryBytes");
    let free = n(x, "/Description/Disk/FreeBytes");
    let total = n(x, "/Description/Disk/TotalBytes");
    html! {
        span.muted { (cpus) " CPUs · " (gib(mem)) " memory" }
        (meter("Disk", total.saturating_sub(free), total, &format!("{} free of {}", gib(free), gib(total))))
    }
}

fn state_badge(state: &str) -> Markup {
    let class = match state {
        "ready" | "running" | "active" | "complete" => "badge ok",
        "down" | "failed" | "rejected" | "orphaned" | "disconnected" => "badge bad",
        _ => "badge warn",
    };
    html! { span class=(class) { (state) } }
}

/// `GET /ui/nodes`: every node the viewer may see and, for those who may
/// see the join tokens, the Add Nodes panel.
async fn nodes(State(ui): State<Ui>, viewer: Viewer) -> Response {
    let (list, swarm) = tokio::join!(ui.get(&viewer, "/nodes"), ui.get(&viewer, "/swarm"));
    let rows: Vec<Markup> = list
        .body
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| {
            let id = s(x, "/ID");
            html! {
                tr {
                    td { a href={ "/ui/nodes/" (id) } { (s(x, "/Description/Hostname")) } }
                    td { (s(x, "/Spec/Role")) @if x.pointer("/ManagerStatus/Leader") == Some(&Value::Bool(true)) { " (leader)" } }
                    td { (state_badge(s(x, "/Status/State"))) }
                    td { (s(x, "/Spec/Availability")) }
                    td { (s(x, "/Status/Addr")) }
                    td { (node_meters(x)) }
                }
            }
        })
        .collect();
    let body = html! {
        @if swarm.ok() { (add_nodes(&swarm.body)) }
        div.panel {
            @if list.ok() {
                (table("nodes", &["Hostname", "Role", "State", "Availability", "Address", "Resources"], rows, "No nodes you may see."))
            } @else {
                (error(Some(&list.message())))
            }
        }
    };
    render(StatusCode::OK, page(&viewer, "/ui/nodes", "Nodes", body))
}

/// The Add Nodes panel: the `capstan join` command of each role, ready to
/// copy.
fn add_nodes(swarm: &Value) -> Markup {
    let manager = swarm["ManagerAddrs"][0]
        .as_str()
        .unwrap_or("<manager address>");
    html! {
        div.panel #add-nodes {
            h2 { "Add nodes" }
            p.muted { "Run this on a Linux machine with Docker and the capstan binary to add it to the cluster." }
            @for (role, token) in [("worker", "/JoinTokens/Worker"), ("manager", "/JoinTokens/Manager")] {
                @let id = format!("join-{role}");
                div.join {
                    span.l { "As a " (role) }
                    pre #(id) { "capstan join --token " (s(swarm, token)) " " (manager) }
                    button.secondary type="button" data-copy=(id) { "Copy" }
                }
            }
        }
    }
}

async fn node_page(ui: &Ui, viewer: &Viewer, id: &str, err: Option<&str>) -> Response {
    if !segment_ok(id) {
        return super::pages::not_found().await;
    }
    let filter = json!({"node": [id]}).to_string();
    let tasks_path = format!("/tasks?filters={}", urlencode(&filter));
    let node_path = format!("/nodes/{id}");
    let (node, tasks) = tokio::join!(ui.get(viewer, &node_path), ui.get(viewer, &tasks_path));
    let x = &node.body;
    let hostname = s(x, "/Description/Hostname");
    let labels: String = x["Spec"]["Labels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}\n", v.as_str().unwrap_or("")))
        .collect();
    let option = |value: &str, current: &str| {
        html! { option value=(value) selected[value == current] { (value) } }
    };
    let body = html! {
        (error(err))
        @if node.ok() {
            div.panel {
                dl.facts {
                    dt { "State" } dd { (state_badge(s(x, "/Status/State"))) }
                    dt { "Address" } dd { (s(x, "/Status/Addr")) }
                    dt { "Platform" } dd { (s(x, "/Description/Platform/OS")) " / " (s(x, "/Description/Platform/Architecture")) }
                    dt { "Engine" } dd { (s(x, "/Description/Engine/EngineVersion")) }
                    dt { "Resources" } dd { (node_meters(x)) }
                    dt { "ID" } dd { code { (id) } }
                }
            }
            @if viewer.may(ui, "node.update") {
            div.panel {
                h2 { "Settings" }
                form method="post" action={ "/ui/nodes/" (id) } {
                    (csrf_field(viewer))
                    p {
                        label { "Availability " select name="availability" {
                            @for a in ["active", "pause", "drain"] { (option(a, s(x, "/Spec/Availability"))) }
                        } }
                        " "
                        label { "Role " select name="role" {
                            @for r in ["worker", "manager"] { (option(r, s(x, "/Spec/Role"))) }
                        } }
                    }
                    p { label { "Labels, one key=value per line" br; textarea name="labels" rows="4" class="wide" { (labels) } } }
                    button type="submit" { "Save" }
                }
            }
            }
            div.panel {
                h2 { "Tasks" }
                (tasks_table(&tasks, None))
            }
        } @else {
            div.panel { (error(Some(&node.message()))) }
        }
    };
    render(
        StatusCode::OK,
        page(viewer, "/ui/nodes", &titled("Node", hostname), body),
    )
}

/// `GET /ui/nodes/{id}`.
async fn node(State(ui): State<Ui>, viewer: Viewer, Path(id): Path<String>) -> Response {
    node_page(&ui, &viewer, &id, None).await
}

/// `key=value` lines as a label map.
fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (k, v) = line.split_once('=').unwrap_or((line, ""));
        let k = k.trim();
        if k.is_empty() {
            return Err(format!("label {line:?} has no key: write key=value"));
        }
        labels.insert(k.to_string(), v.trim().to_string());
    }
    Ok(labels)
}

/// `POST /ui/nodes/{id}` → `POST /nodes/{id}/update`: availability, role
/// (promote, demote) and labels.
async fn update_node(
    State(ui): State<Ui>,
    Path(id): Path<String>,
    Posted { viewer, form }: Posted,
) -> Response {
    let result = async {
        if !segment_ok(&id) {
            return Err(format!("{id:?} is not a node id"));
        }
        let labels = parse_labels(field(&form, "labels"))?;
        let current = ui.get(&viewer, &format!("/nodes/{id}")).await;
        current.result()?;
        let spec = json!({
            "Role": field(&form, "role"),
            "Availability": field(&form, "availability"),
            "Labels": labels,
        });
        let version = n(&current.body, "/Version/Index");
        ui.json(
            &viewer,
            Method::POST,
            &format!("/nodes/{id}/update?version={version}"),
            &spec,
        )
        .await
        .result()
    }
    .await;
    match result {
        Ok(()) => Redirect::to(&format!("/ui/nodes/{id}")).into_response(),
        Err(msg) => node_page(&ui, &viewer, &id, Some(&msg)).await,
    }
}

/// A task table; `hosts` maps node ids to hostnames where known.
fn tasks_table(tasks: &Answer, hosts: Option<&BTreeMap<String, String>>) -> Markup {
    if !tasks.ok() {
        return error(Some(&tasks.message()));
    }
    let mut list: Vec<&Value> = tasks.body.as_array().into_iter().flatten().collect();
    list.sort_by_key(|t| std::cmp::Reverse(s(t, "/UpdatedAt").to_string()));
    let rows: Vec<Markup> = list
        .into_iter()
        .map(|t| {
            let node = s(t, "/NodeID");
            let host = hosts.and_then(|h| h.get(node)).map_or(node, String::as_str);
            let message = match s(t, "/Status/Err") {
                "" => s(t, "/Status/Message"),
                e => e,
            };
            html! {
                tr data-task=(s(t, "/ID")) {
                    td { (n(t, "/Slot")) }
                    td { (state_badge(s(t, "/Status/State"))) }
                    td { (s(t, "/DesiredState")) }
                    td { (host) }
                    td { (message) }
                    td { (s(t, "/UpdatedAt")) }
                }
            }
        })
        .collect();
    table(
        "tasks",
        &["Slot", "State", "Desired", "Node", "Message", "Updated"],
        rows,
        "No tasks.",
    )
}

fn urlencode(raw: &str) -> String {
    serde_urlencoded::to_string([("", raw)])
        .map(|s| s.trim_start_matches('=').to_string())
        .unwrap_or_default()
}

async fn service_page(ui: &Ui, viewer: &Viewer, id: &str, err: Option<&str>) -> Response {
    if !segment_ok(id) {
        return super::pages::not_found().await;
    }
    let filter = json!({"service": [id]}).to_string();
    let service_path = format!("/services/{id}");
    let tasks_path = format!("/tasks?filters={}", urlencode(&filter));
    let (service, tasks, nodes) = tokio::join!(
        ui.get(viewer, &service_path),
        ui.get(viewer, &tasks_path),
        ui.get(viewer, "/nodes"),
    );
    let hosts: BTreeMap<String, String> = nodes
        .body
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            (
                s(n, "/ID").to_string(),
                s(n, "/Description/Hostname").to_string(),
            )
        })
        .collect();
    let x = &service.body;
    let name = s(x, "/Spec/Name");
    let updatable = viewer.may(ui, "service.update");
    let replicated = x.pointer("/Spec/Mode/Replicated").is_some();
    let env: String = x
        .pointer("/Spec/TaskTemplate/ContainerSpec/Env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|e| format!("{e}\n"))
        .collect();
    let body = html! {
        (error(err))
        @if service.ok() {
            div.panel {
                dl.facts {
                    dt { "Image" } dd { code { (s(x, "/Spec/TaskTemplate/ContainerSpec/Image")) } }
                    dt { "Mode" } dd { @if replicated { "replicated, " (n(x, "/Spec/Mode/Replicated/Replicas")) " replicas" } @else { "global" } }
                    dt { "Update" } dd { (s(x, "/UpdateStatus/State")) " " span.muted { (s(x, "/UpdateStatus/Message")) } }
                    dt { "ID" } dd { code { (id) } }
                }
                div.tools {
                    @if updatable && x.get("PreviousSpec").is_some_and(|p| !p.is_null()) {
                        form.inline method="post" action={ "/ui/services/" (id) "/rollback" } data-confirm="Roll this service back to its previous definition?" {
                            (csrf_field(viewer))
                            button.secondary type="submit" { "Roll back" }
                        }
                    }
                    @if viewer.may(ui, "service.delete") {
                        (remove_button(viewer, &format!("/ui/services/{id}/remove"), &format!("service {name}")))
                    }
                }
            }
            @if updatable {
            div.panel {
                h2 { "Update" }
                form method="post" action={ "/ui/services/" (id) "/update" } {
                    (csrf_field(viewer))
                    p.inline {
                        label { "Image " input name="image" required value=(s(x, "/Spec/TaskTemplate/ContainerSpec/Image")); }
                        @if replicated {
                            " "
                            label { "Replicas " input type="number" name="replicas" min="0" max="1000" required class="narrow" value=(n(x, "/Spec/Mode/Replicated/Replicas")); }
                        }
                    }
                    p { label { "Environment, one NAME=value per line" br; textarea name="env" rows="3" class="wide" { (env) } } }
                    button type="submit" { "Update" }
                }
            }
            }
            div.panel {
                h2 { "Tasks" }
                (tasks_table(&tasks, Some(&hosts)))
            }
            div.panel {
                h2 { "Logs (last 100 lines per task)" }
                (logs_box(&format!("/ui/services/{id}/logs")))
            }
        } @else {
            div.panel { (error(Some(&service.message()))) }
        }
    };
    render(
        StatusCode::OK,
        page(viewer, "/ui/services", &titled("Service", name), body),
    )
}

/// `GET /ui/services/{id}`.
async fn service(State(ui): State<Ui>, viewer: Viewer, Path(id): Path<String>) -> Response {
    service_page(&ui, &viewer, &id, None).await
}

/// `GET /ui/services/{id}/logs`: the last 100 lines of each task, for the
/// page's script.
async fn service_logs(State(ui): State<Ui>, viewer: Viewer, Path(id): Path<String>) -> Response {
    let path = format!("/services/{id}/logs?stdout=1&stderr=1&tail=100");
    logs_json(&ui, &viewer, "service", &id, &path).await
}

/// Reads the service, changes its spec with `change` and posts it back,
/// with `query` added to the update (`&rollback=previous`).
pub(super) async fn change_service(
    ui: &Ui,
    viewer: &Viewer,
    id: &str,
    query: &str,
    change: impl FnOnce(&mut Value) -> Result<(), String>,
) -> Result<(), String> {
    if !segment_ok(id) {
        return Err(format!("{id:?} is not a service id"));
    }
    let current = ui.get(viewer, &format!("/services/{id}")).await;
    current.result()?;
    let version = n(&current.body, "/Version/Index");
    let mut spec = current.body["Spec"].clone();
    change(&mut spec)?;
    ui.json(
        viewer,
        Method::POST,
        &format!("/services/{id}/update?version={version}{query}"),
        &spec,
    )
    .await
    .result()
}

async fn after_service_form(
    ui: &Ui,
    viewer: &Viewer,
    id: &str,
    result: Result<(), String>,
) -> Response {
    match result {
        Ok(()) => Redirect::to(&format!("/ui/services/{id}")).into_response(),
        Err(msg) => service_page(ui, viewer, id, Some(&msg)).await,
    }
}

/// `POST /ui/services/{id}/update`: image, replicas and environment.
async fn update_service(
    State(ui): State<Ui>,
    Path(id): Path<String>,
    Posted { viewer, form }: Posted,
) -> Response {
    let result = change_service(&ui, &viewer, &id, "", |spec| {
        let image = field(&form, "image").trim();
        if image.is_empty() {
            return Err("image is required".into());
        }
        spec["TaskTemplate"]["ContainerSpec"]["Image"] = json!(image);
        let env: Vec<&str> = field(&form, "env")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        if let Some(bad) = env.iter().find(|e| !e.contains('=') || e.starts_with('=')) {
            return Err(format!("environment line {bad:?} is not NAME=value"));
        }
        spec["TaskTemplate"]["ContainerSpec"]["Env"] = json!(env);
        if spec.pointer("/Mode/Replicated").is_some() {
            let replicas = super::pages::replicas(field(&form, "replicas"))?;
            spec["Mode"] = json!({"Replicated": {"Replicas": replicas}});
        }
        Ok(())
    })
    .await;
    after_service_form(&ui, &viewer, &id, result).await
}

/// `POST /ui/services/{id}/rollback`: back to the previous definition.
async fn rollback_service(
    State(ui): State<Ui>,
    Path(id): Path<String>,
    Posted { viewer, .. }: Posted,
) -> Response {
    let result = change_service(&ui, &viewer, &id, "&rollback=previous", |_| Ok(())).await;
    after_service_form(&ui, &viewer, &id, result).await
}

/// `POST /ui/services/{id}/remove`.
async fn remove_service(
    State(ui): State<Ui>,
    Path(id): Path<String>,
    Posted { viewer, .. }: Posted,
) -> Response {
    let path = format!("/services/{id}");
    let result = call_on(&ui, &viewer, Method::DELETE, "service", &id, &path).await;
    match result {
        Ok(()) => Redirect::to("/ui/services").into_response(),
        Err(msg) => service_page(&ui, &viewer, &id, Some(&msg)).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_filters() {
        let labels = parse_labels("zone=a\n\n disk = ssd \nflag\n").expect("valid");
        assert_eq!(labels["zone"], "a");
        assert_eq!(labels["disk"], "ssd");
        assert_eq!(labels["flag"], "");
        assert!(parse_labels("=x").unwrap_err().contains("no key"));
        assert_eq!(urlencode("{\"a\":[1]}"), "%7B%22a%22%3A%5B1%5D%7D");
    }
}
