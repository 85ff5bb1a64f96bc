//! Swarm and shared-resource screens over the Docker API: networks,
//! volumes, secrets, configs, containers and images (one table-driven list
//! page each, with create and remove forms), container details (inspect,
//! logs, stop), and stacks (the services, networks, secrets and configs a
//! `docker stack deploy` labelled with one namespace).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use capstan_core::rbac::ACCESS_LABEL;
use maud::{html, Markup};
use serde_json::{json, Value};

use super::layout::{error, page, table};
use super::pages::{csrf_field, render, s};
use super::{field, Posted, Ui, Viewer};

/// The label `docker stack deploy` puts on everything of a stack.
const STACK_LABEL: &str = "com.docker.stack.namespace";

/// One kind of object with a list page.
struct Kind {
    /// Under `/ui/`.
    slug: &'static str,
    title: &'static str,
    /// The API's list.
    list: &'static str,
    /// The objects in the list's answer.
    items: fn(&Value) -> Option<&Vec<Value>>,
    headers: &'static [&'static str],
    /// Id and the cells of an object's row (the last cell, actions, is
    /// added here).
    row: fn(&Value) -> (String, Vec<Markup>),
    /// The API path that removes the object with this id.
    remove: fn(&str) -> String,
    /// The operation removing needs.
    remove_op: &'static str,
    /// Name of the thing being removed, for the confirmation.
    noun: &'static str,
    create: Option<Create>,
}

/// A create form: its fields, and the API call it makes.
struct Create {
    /// The operation creating needs.
    op: &'static str,
    fields: fn() -> Markup,
    path: &'static str,
    body: SpecOf,
}

/// Turns a create form's fields into the API's request body.
type SpecOf = fn(&[(String, String)]) -> Result<Value, String>;

fn array(v: &Value) -> Option<&Vec<Value>> {
    v.as_array()
}

fn short(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

fn labels_with_collection(form: &[(String, String)]) -> Result<Value, String> {
    let collection = field(form, "collection").trim();
    if collection.is_empty() {
        return Ok(json!({}));
    }
    if !collection.starts_with('/') {
        return Err(format!(
            "collection {collection:?} must be a path such as /Shared/dev"
        ));
    }
    Ok(json!({ ACCESS_LABEL: collection }))
}

fn required<'a>(form: &'a [(String, String)], name: &str, label: &str) -> Result<&'a str, String> {
    let v = field(form, name).trim();
    if v.is_empty() {
        Err(format!("{label} is required"))
    } else {
        Ok(v)
    }
}

fn name_and_collection() -> Markup {
    html! {
        label { "Name" input name="name" required pattern="[A-Za-z0-9][A-Za-z0-9_.\\-]{0,62}"; }
        label { "Collection (optional)" input name="collection" placeholder="/Shared/dev"; }
    }
}

fn secret_fields() -> Markup {
    html! {
        (name_and_collection())
        label { "Value" textarea name="data" rows="2" required {} }
    }
}

fn object_with_data(form: &[(String, String)]) -> Result<Value, String> {
    let name = required(form, "name", "name")?;
    let data = required(form, "data", "value")?;
    Ok(json!({
        "Name": name,
        "Labels": labels_with_collection(form)?,
        "Data": base64::engine::general_purpose::STANDARD.encode(data),
    }))
}

fn spec_row(x: &Value) -> (String, Vec<Markup>) {
    let stack = x["Spec"]["Labels"][STACK_LABEL].as_str().unwrap_or("");
    (
        s(x, "/ID").to_string(),
        vec![
            html! { (s(x, "/Spec/Name")) },
            html! { code { (x["Spec"]["Labels"][ACCESS_LABEL].as_str().unwrap_or("")) } },
            html! { (stack) },
            html! { (s(x, "/CreatedAt")) },
        ],
    )
}

const KINDS: &[Kind] = &[
    Kind {
        slug: "networks",
        title: "Networks",
        list: "/networks",
        items: array,
        headers: &["Name", "Driver", "Scope", "Attachable", "Collection", "ID"],
        row: |x| {
            (
                s(x, "/Id").to_string(),
                vec![
                    html! { (s(x, "/Name")) },
                    html! { (s(x, "/Driver")) },
                    html! { (s(x, "/Scope")) },
                    html! { @if x["Attachable"] == true { "yes" } @else { "no" } },
                    html! { code { (x["Labels"][ACCESS_LABEL].as_str().unwrap_or("")) } },
                    html! { code { (short(s(x, "/Id"))) } },
                ],
            )
        },
        remove: |id| format!("/networks/{id}"),
        remove_op: "network.remove",
        noun: "network",
        create: Some(Create {
            op: "network.create",
            fields: || {
                html! {
                    (name_and_collection())
                    label { "Attachable" input type="checkbox" name="attachable" value="true"; }
                }
            },
            path: "/networks/create",
            body: |form| {
                Ok(json!({
                    "Name": required(form, "name", "name")?,
                    "Driver": "overlay",
                    "Attachable": field(form, "attachable") == "true",
                    "Labels": labels_with_collection(form)?,
                }))
            },
        }),
    },
    Kind {
        slug: "volumes",
        title: "Volumes",
        list: "/volumes",
        items: |v| v["Volumes"].as_array(),
        headers: &["Name", "Driver", "Scope", "Collection"],
        row: |x| {
            (
                s(x, "/Name").to_string(),
                vec![
                    html! { (s(x, "/Name")) },
                    html! { (s(x, "/Driver")) },
                    html! { (s(x, "/Scope")) },
                    html! { code { (x["Labels"][ACCESS_LABEL].as_str().unwrap_or("")) } },
                ],
            )
        },
        remove: |name| format!("/volumes/{name}"),
        remove_op: "volume.remove",
        noun: "volume",
        create: Some(Create {
            op: "volume.create",
            fields: name_and_collection,
            path: "/volumes/create",
            body: |form| {
                Ok(json!({
                    "Name": required(form, "name", "name")?,
                    "Driver": "local",
                    "Labels": labels_with_collection(form)?,
                }))
            },
        }),
    },
    Kind {
        slug: "secrets",
        title: "Secrets",
        list: "/secrets",
        items: array,
        headers: &["Name", "Collection", "Stack", "Created"],
        row: spec_row,
        remove: |id| format!("/secrets/{id}"),
        remove_op: "secret.delete",
        noun: "secret",
        create: Some(Create {
            op: "secret.create",
            fields: secret_fields,
            path: "/secrets/create",
            body: object_with_data,
        }),
    },
    Kind {
        slug: "configs",
        title: "Configs",
        list: "/configs",
        items: array,
        headers: &["Name", "Collection", "Stack", "Created"],
        row: spec_row,
        remove: |id| format!("/configs/{id}"),
        remove_op: "swarm-config.delete",
        noun: "config",
        create: Some(Create {
            op: "swarm-config.create",
            fields: secret_fields,
            path: "/configs/create",
            body: object_with_data,
        }),
    },
    Kind {
        slug: "containers",
        title: "Containers",
        list: "/containers/json?all=1",
        items: array,
        headers: &["Name", "Image", "State", "Status", "Node"],
        row: |x| {
            let id = s(x, "/Id").to_string();
            let full = x["Names"][0].as_str().unwrap_or("").trim_start_matches('/');
            let (node, name) = full.split_once('/').unwrap_or(("", full));
            let state = s(x, "/State");
            let badge = match state {
                "running" => "ok",
                "exited" | "dead" => "bad",
                _ => "warn",
            };
            (
                id.clone(),
                vec![
                    html! { a href={ "/ui/containers/" (id) } { (name) } },
                    html! { code { (s(x, "/Image")) } },
                    html! { span class={ "badge " (badge) } { (state) } },
                    html! { (s(x, "/Status")) },
                    html! { (node) },
                ],
            )
        },
        remove: |id| format!("/containers/{id}?force=1"),
        remove_op: "container.remove",
        noun: "container",
        create: None,
    },
    Kind {
        slug: "images",
        title: "Images",
        list: "/images/json",
        items: array,
        headers: &["Tags", "ID", "Size"],
        row: |x| {
            let tags: Vec<&str> = x["RepoTags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let size = x["Size"].as_u64().unwrap_or(0);
            (
                s(x, "/Id").to_string(),
                vec![
                    html! { @for t in &tags { code { (t) } " " } @if tags.is_empty() { span.muted { "untagged" } } },
                    html! { code { (short(s(x, "/Id"))) } },
                    html! { (format!("{:.1} MB", size as f64 / 1e6)) },
                ],
            )
        },
        remove: |id| format!("/images/{id}"),
        remove_op: "image.remove",
        noun: "image",
        create: None,
    },
];

/// The routes of every kind's list, create and remove.
pub(super) fn routes() -> Router<Ui> {
    let mut r = Router::new();
    for (i, kind) in KINDS.iter().enumerate() {
        let list = move |State(ui): State<Ui>, viewer: Viewer| async move {
            list_page(&ui, &viewer, &KINDS[i], None).await
        };
        let made = move |State(ui): State<Ui>, posted: Posted| async move {
            create(&ui, &posted, &KINDS[i]).await
        };
        let removed = move |State(ui): State<Ui>, Path(id): Path<String>, posted: Posted| async move {
            remove(&ui, &posted, &KINDS[i], &id).await
        };
        r = r
            .route(&format!("/ui/{}", kind.slug), get(list).post(made))
            .route(&format!("/ui/{}/{{id}}/remove", kind.slug), post(removed));
    }
    r.route("/ui/containers/{id}", get(container))
        .route("/ui/containers/{id}/logs", get(container_logs))
        .route("/ui/containers/{id}/stop", post(stop_container))
        .route("/ui/stacks", get(stacks))
        .route("/ui/stacks/{name}/remove", post(remove_stack))
}

/// Whether `x` may go into an API path as one segment.
pub(super) fn segment_ok(x: &str) -> bool {
    !x.is_empty()
        && x.len() <= 200
        && x.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// Calls the API on one object named in the dashboard's URL, refusing an
/// id that cannot be one path segment.
pub(super) async fn call_on(
    ui: &Ui,
    viewer: &Viewer,
    method: Method,
    noun: &str,
    id: &str,
    path: &str,
) -> Result<(), String> {
    if !segment_ok(id) {
        return Err(format!("{id:?} is not a {noun} id"));
    }
    ui.call(Some(viewer), method, path, None).await.result()
}

/// A page title naming its object: `Service web`, or `Service` alone.
pub(super) fn titled(kind: &str, name: &str) -> String {
    if name.is_empty() {
        kind.to_string()
    } else {
        format!("{kind} {name}")
    }
}

/// A button that asks before it removes.
pub(super) fn remove_button(viewer: &Viewer, action: &str, what: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) data-confirm={ "Remove " (what) "? This cannot be undone." } {
            (csrf_field(viewer))
            button.danger type="submit" { "Remove" }
        }
    }
}

async fn list_page(ui: &Ui, viewer: &Viewer, kind: &Kind, err: Option<&str>) -> Response {
    let list = ui.get(viewer, kind.list).await;
    let removable = viewer.may(ui, kind.remove_op);
    let rows: Vec<Markup> = (kind.items)(&list.body)
        .into_iter()
        .flatten()
        .map(|x| {
            let (id, cells) = (kind.row)(x);
            let action = format!("/ui/{}/{id}/remove", kind.slug);
            html! {
                tr data-id=(id) {
                    @for c in cells { td { (c) } }
                    td { @if removable { (remove_button(viewer, &action, &format!("this {}", kind.noun))) } }
                }
            }
        })
        .collect();
    let mut headers = kind.headers.to_vec();
    headers.push("");
    let body = html! {
        @if let Some(c) = kind.create.as_ref().filter(|c| viewer.may(ui, c.op)) {
            div.panel {
                h2 { "Create " (kind.noun) }
                (error(err))
                form.inline method="post" action={ "/ui/" (kind.slug) } {
                    (csrf_field(viewer))
                    ((c.fields)())
                    button type="submit" { "Create" }
                }
            }
        } @else {
            (error(err))
        }
        div.panel {
            @if list.ok() {
                (table(kind.slug, &headers, rows, &format!("No {} you may see.", kind.title.to_lowercase())))
            } @else {
                (error(Some(&list.message())))
            }
        }
    };
    let current = format!("/ui/{}", kind.slug);
    render(StatusCode::OK, page(viewer, &current, kind.title, body))
}

async fn create(ui: &Ui, Posted { viewer, form }: &Posted, kind: &Kind) -> Response {
    let Some(c) = &kind.create else {
        return list_page(
            ui,
            viewer,
            kind,
            Some("this kind of object is not created here"),
        )
        .await;
    };
    let result = match (c.body)(form) {
        Ok(spec) => ui.json(viewer, Method::POST, c.path, &spec).await.result(),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Redirect::to(&format!("/ui/{}", kind.slug)).into_response(),
        Err(msg) => list_page(ui, viewer, kind, Some(&msg)).await,
    }
}

async fn remove(ui: &Ui, Posted { viewer, .. }: &Posted, kind: &Kind, id: &str) -> Response {
    let result = call_on(
        ui,
        viewer,
        Method::DELETE,
        kind.noun,
        id,
        &(kind.remove)(id),
    )
    .await;
    match result {
        Ok(()) => Redirect::to(&format!("/ui/{}", kind.slug)).into_response(),
        Err(msg) => list_page(ui, viewer, kind, Some(&msg)).await,
    }
}

/// How long a log request waits for the nodes.
const LOGS_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// `{"text"}` with the log lines at `path`, the logs of the `noun` (a
/// container or service) with this id, or `{"error"}` saying why there are
/// none. Pages load their logs with this after they are shown, so a node
/// that answers slowly or not at all never holds a page.
pub(super) async fn logs_json(
    ui: &Ui,
    viewer: &Viewer,
    noun: &str,
    id: &str,
    path: &str,
) -> Response {
    let answer = if !segment_ok(id) {
        json!({ "error": format!("{id:?} is not a {noun} id") })
    } else {
        match tokio::time::timeout(LOGS_WAIT, ui.get(viewer, path)).await {
            Ok(a) if a.ok() => json!({ "text": log_text(&a.raw) }),
            Ok(a) => json!({ "error": a.message() }),
            Err(_) => json!({
                "error": format!(
                    "the logs did not arrive within {} s: a node may be unreachable",
                    LOGS_WAIT.as_secs()
                )
            }),
        }
    };
    axum::Json(answer).into_response()
}

/// A panel's log box, filled by the page's script from `url`.
pub(super) fn logs_box(url: &str) -> Markup {
    html! { pre #logs data-logs=(url) { "Loading…" } }
}

/// Log text from the Docker API: the multiplexed stream of a container
/// without a TTY (8-byte frame headers), or raw text.
fn log_text(raw: &[u8]) -> String {
    let framed = raw.len() >= 8 && raw[0] <= 2 && raw[1..4] == [0, 0, 0];
    if !framed {
        return String::from_utf8_lossy(raw).into_owned();
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while rest.len() >= 8 {
        let len = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        let end = (8 + len).min(rest.len());
        out.extend_from_slice(&rest[8..end]);
        rest = &rest[end..];
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn container_page(ui: &Ui, viewer: &Viewer, id: &str, err: Option<&str>) -> Response {
    if !segment_ok(id) {
        return super::pages::not_found().await;
    }
    let inspect = ui.get(viewer, &format!("/containers/{id}/json")).await;
    let name = s(&inspect.body, "/Name")
        .trim_start_matches('/')
        .to_string();
    let title = titled("Container", &name);
    let pretty = serde_json::to_string_pretty(&inspect.body).unwrap_or_default();
    let body = html! {
        (error(err))
        @if inspect.ok() {
            div.panel {
                div.tools {
                    span { "State: " strong { (s(&inspect.body, "/State/Status")) } }
                    span.muted { "Image " code { (s(&inspect.body, "/Config/Image")) } }
                    @if viewer.may(ui, "container.stop") {
                        form.inline method="post" action={ "/ui/containers/" (id) "/stop" } data-confirm="Stop this container?" {
                            (csrf_field(viewer))
                            button.secondary type="submit" { "Stop" }
                        }
                    }
                    @if viewer.may(ui, "container.remove") {
                        (remove_button(viewer, &format!("/ui/containers/{id}/remove"), "this container"))
                    }
                }
            }
            div.panel {
                h2 { "Logs (last 200 lines)" }
                (logs_box(&format!("/ui/containers/{id}/logs")))
            }
            div.panel {
                details {
                    summary { "Inspect" }
                    pre #inspect { (pretty) }
                }
            }
        } @else {
            div.panel { (error(Some(&inspect.message()))) }
        }
    };
    render(StatusCode::OK, page(viewer, "/ui/containers", &title, body))
}

/// `GET /ui/containers/{id}`: state, logs and the inspect document.
async fn container(State(ui): State<Ui>, viewer: Viewer, Path(id): Path<String>) -> Response {
    container_page(&ui, &viewer, &id, None).await
}

/// `GET /ui/containers/{id}/logs`: the last 200 lines, for the page's
/// script.
async fn container_logs(State(ui): State<Ui>, viewer: Viewer, Path(id): Path<String>) -> Response {
    let path = format!("/containers/{id}/logs?stdout=1&stderr=1&tail=200");
    logs_json(&ui, &viewer, "container", &id, &path).await
}

/// `POST /ui/containers/{id}/stop`.
async fn stop_container(
    State(ui): State<Ui>,
    Path(id): Path<String>,
    Posted { viewer, .. }: Posted,
) -> Response {
    let path = format!("/containers/{id}/stop");
    let result = call_on(&ui, &viewer, Method::POST, "container", &id, &path).await;
    match result {
        Ok(()) => Redirect::to(&format!("/ui/containers/{id}")).into_response(),
        Err(msg) => container_page(&ui, &viewer, &id, Some(&msg)).await,
    }
}

/// What one stack holds, by kind: (API list path, where the list is, the
/// API path prefix that removes one).
const STACK_PARTS: &[(&str, &str, &str)] = &[
    ("services", "/services", "/services/"),
    ("networks", "/networks", "/networks/"),
    ("secrets", "/secrets", "/secrets/"),
    ("configs", "/configs", "/configs/"),
];

/// A stack's members of each kind: (kind, id, name).
type StackMembers = BTreeMap<String, Vec<(&'static str, String, String)>>;

async fn stack_members(ui: &Ui, viewer: &Viewer) -> Result<StackMembers, String> {
    let answers =
        futures::future::join_all(STACK_PARTS.iter().map(|(_, list, _)| ui.get(viewer, list)))
            .await;
    let mut stacks = StackMembers::new();
    for ((kind, _, _), a) in STACK_PARTS.iter().zip(answers) {
        if !a.ok() {
            // A kind the viewer may not list just has no members here.
            if a.status == StatusCode::FORBIDDEN {
                continue;
            }
            return Err(a.message());
        }
        for x in a.body.as_array().into_iter().flatten() {
            let (labels, id, name) = if *kind == "networks" {
                (&x["Labels"], s(x, "/Id"), s(x, "/Name"))
            } else {
                (&x["Spec"]["Labels"], s(x, "/ID"), s(x, "/Spec/Name"))
            };
            if let Some(ns) = labels[STACK_LABEL].as_str() {
                stacks.entry(ns.to_string()).or_default().push((
                    kind,
                    id.to_string(),
                    name.to_string(),
                ));
            }
        }
    }
    Ok(stacks)
}

async fn stacks_page(ui: &Ui, viewer: &Viewer, err: Option<&str>) -> Response {
    let members = stack_members(ui, viewer).await;
    let removable = viewer.may(ui, "service.delete");
    let rows: Vec<Markup> = members
        .iter()
        .flatten()
        .map(|(name, parts)| {
            let count = |k: &str| parts.iter().filter(|(kind, _, _)| *kind == k).count();
            let services: Vec<&str> = parts
                .iter()
                .filter(|(k, _, _)| *k == "services")
                .map(|(_, _, n)| n.as_str())
                .collect();
            html! {
                tr {
                    td { (name) }
                    td data-sort=(services.len()) { (services.join(", ")) }
                    td { (count("networks")) }
                    td { (count("secrets")) }
                    td { (count("configs")) }
                    td { @if removable { (remove_button(viewer, &format!("/ui/stacks/{name}/remove"), &format!("stack {name} and everything in it"))) } }
                }
            }
        })
        .collect();
    let body = html! {
        (error(err))
        div.panel {
            p.muted { "Deploy a stack with " code { "docker stack deploy -c docker-compose.yml <name>" } " through a client bundle." }
            @match &members {
                Ok(_) => (table("stacks", &["Stack", "Services", "Networks", "Secrets", "Configs", ""], rows, "No stacks you may see.")),
                Err(e) => (error(Some(e))),
            }
        }
    };
    render(StatusCode::OK, page(viewer, "/ui/stacks", "Stacks", body))
}

/// `GET /ui/stacks`.
async fn stacks(State(ui): State<Ui>, viewer: Viewer) -> Response {
    stacks_page(&ui, &viewer, None).await
}

/// `POST /ui/stacks/{name}/remove`: what `docker stack rm` does, services
/// first so that their networks, secrets and configs are free to go.
async fn remove_stack(
    State(ui): State<Ui>,
    Path(name): Path<String>,
    Posted { viewer, .. }: Posted,
) -> Response {
    let result = async {
        let members = stack_members(&ui, &viewer).await?;
        let parts = members
            .get(&name)
            .ok_or_else(|| format!("there is no stack {name:?} you may see"))?;
        let mut failures = Vec::new();
        for (kind, _, prefix) in STACK_PARTS {
            for (_, id, member) in parts.iter().filter(|(k, _, _)| k == kind) {
                let a = ui
                    .call(
                        Some(&viewer),
                        Method::DELETE,
                        &format!("{prefix}{id}"),
                        None,
                    )
                    .await;
                if let Err(e) = a.result() {
                    failures.push(format!("{member}: {e}"));
                }
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "some of stack {name} is left: {}",
                failures.join("; ")
            ))
        }
    }
    .await;
    match result {
        Ok(()) => Redirect::to("/ui/stacks").into_response(),
        Err(msg) => stacks_page(&ui, &viewer, Some(&msg)).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::pairs;

    #[test]
    fn logs_are_read_framed_or_raw() {
        let mut framed = vec![1, 0, 0, 0, 0, 0, 0, 6];
        framed.extend_from_slice(b"hello\n");
        framed.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 4]);
        framed.extend_from_slice(b"oops");
        assert_eq!(log_text(&framed), "hello\noops");
        assert_eq!(log_text(b"plain text\n"), "plain text\n");
        // A frame cut short keeps what arrived.
        assert_eq!(log_text(&[1, 0, 0, 0, 0, 0, 0, 9, b'a', b'b']), "ab");
    }

    #[test]
    fn forms_become_api_bodies() {
        let form = pairs(b"name=db&collection=%2FShared%2Fdev&data=s3cret");
        let body = object_with_data(&form).expect("valid");
        assert_eq!(body["Name"], "db");
        assert_eq!(body["Labels"][ACCESS_LABEL], "/Shared/dev");
        assert_eq!(body["Data"], "czNjcmV0");
        let err = object_with_data(&pairs(b"name=db&data=")).unwrap_err();
        assert!(err.contains("value is required"), "{err}");
        let err = labels_with_collection(&pairs(b"collection=Shared")).unwrap_err();
        assert!(err.contains("must be a path"), "{err}");
        assert!(segment_ok("sha256:abc"));
        assert!(!segment_ok("../x"));
        assert!(!segment_ok("a/b"));
    }
}
