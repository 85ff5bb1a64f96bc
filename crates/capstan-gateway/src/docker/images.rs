//! Engine API: images, across the nodes' engines.
//!
//! Images are node resources, not in any collection: as in MKE, every
//! image operation is authorised on `/` (`image.view` to list and inspect,
//! `image.create` to pull, `image.remove` to remove), so only admins and
//! holders of a grant on `/` use them.

use std::collections::BTreeSet;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use capstan_core::rbac::Resource;
use capstan_core::Node;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_stream::wrappers::ReceiverStream;

use super::containers::flag;
use super::engine::{self, NodeEngine};
use crate::api::op;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// The collection image operations are decided on.
const IMAGES: &str = "/";

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/images/json", get(list))
        .route("/images/create", post(pull))
        .route("/images/{*name}", get(inspect).delete(remove))
}

/// Merges image lists of several engines: one entry per image id, with
/// the tags and digests of all of them.
pub fn merge_images(lists: Vec<Vec<Value>>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for image in lists.into_iter().flatten() {
        let id = image["Id"].as_str().unwrap_or_default().to_string();
        match out
            .iter_mut()
            .find(|i| i["Id"].as_str() == Some(id.as_str()))
        {
            Some(seen) => {
                for key in ["RepoTags", "RepoDigests"] {
                    let mut all: BTreeSet<String> = strings(&seen[key]);
                    all.extend(strings(&image[key]));
                    seen[key] = json!(all);
                }
            }
            None => out.push(image),
        }
    }
    out.sort_by_key(|i| std::cmp::Reverse(i["Created"].as_i64().unwrap_or(0)));
    out
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Checks an image reference (name, tag, digest or id) before it goes
/// into an engine path: only the characters references use, and no `.` or
/// `..` segment that could walk to another endpoint.
pub fn check_reference(name: &str) -> ApiResult<()> {
    let chars_ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b':' | b'@'));
    let segments_ok = name
        .split('/')
        .all(|s| !s.is_empty() && s != "." && s != "..");
    if !name.is_empty() && name.len() <= 512 && chars_ok && segments_ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "invalid reference format: {name:?} is not an image name, tag, digest or id"
        )))
    }
}

fn path_and_query(path: &str, req: &Request) -> String {
    match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    }
}

/// `GET /images/json`: the images of every node, merged by id.
async fn list(State(gw): State<AppState>, caller: Caller, req: Request) -> ApiResult<Json<Value>> {
    caller.authorize(op!("image.view"), Resource::Collection(IMAGES), "images")?;
    let version = engine::version_of(&req);
    let target = path_and_query("/images/json", &req);
    let nodes = engine::nodes(&gw).await?;
    let engines = engine::reachable(&nodes);
    let answers = engine::fan_out(&engines, |e| {
        engine::call_json(&gw, e, &version, Method::GET, &target, None)
    })
    .await;
    let mut lists = Vec::new();
    for (node, answer) in answers {
        match answer {
            Ok(Value::Array(items)) => lists.push(items),
            Ok(_) => {}
            // The engine's own verdict on the request (a bad filter) is the
            // same on every node: pass it on.
            Err(e) if e.status == StatusCode::BAD_REQUEST => return Err(e),
            Err(e) => {
                tracing::warn!(node = %node.hostname(), error = %e.message, "node left out of an image list")
            }
        }
    }
    Ok(Json(Value::Array(merge_images(lists))))
}

/// `GET /images/{name}/json` (and `/history`): from the first node that
/// has the image.
async fn inspect(
    State(gw): State<AppState>,
    caller: Caller,
    Path(rest): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let (name, what, op) = if let Some(name) = rest.strip_suffix("/json") {
        (name, "json", op!("image.view"))
    } else if let Some(name) = rest.strip_suffix("/history") {
        (name, "history", op!("image.history"))
    } else {
        return Ok(super::unsupported(req.method(), req.uri().path()));
    };
    check_reference(name)?;
    caller.authorize(op, Resource::Collection(IMAGES), &format!("image {name}"))?;
    let version = engine::version_of(&req);
    let target = format!("/images/{name}/{what}");
    let nodes = engine::nodes(&gw).await?;
    let engines = engine::reachable(&nodes);
    let answers = engine::fan_out(&engines, |e| {
        engine::call_json(&gw, e, &version, Method::GET, &target, None)
    })
    .await;
    let mut refusal = None;
    for (_, answer) in answers {
        match answer {
            Ok(v) => return Ok(Json(v).into_response()),
            Err(e) if e.status == StatusCode::NOT_FOUND => {}
            Err(e) => refusal = refusal.or(Some(e)),
        }
    }
    Err(refusal.unwrap_or_else(|| ApiError::not_found(format!("No such image: {name}"))))
}

#[derive(Deserialize)]
struct PullQuery {
    #[serde(rename = "fromImage")]
    from_image: Option<String>,
    #[serde(rename = "fromSrc")]
    from_src: Option<String>,
    tag: Option<String>,
    platform: Option<String>,
    node: Option<String>,
}

/// The nodes a pull runs on: the one named, or every reachable one.
fn pull_targets(nodes: &[Node], wanted: Option<&str>) -> ApiResult<Vec<NodeEngine>> {
    match wanted.map(str::trim).filter(|w| !w.is_empty()) {
        Some(w) => {
            let node =
                Node::resolve(nodes, w).map_err(|e| ApiError::invalid(format!("node: {e}")))?;
            Ok(vec![engine::engine_of(node)?])
        }
        None => {
            let all = engine::reachable(nodes);
            if all.is_empty() {
                return Err(ApiError::unavailable("no node is reachable to pull on"));
            }
            Ok(all)
        }
    }
}

/// A progress line saying that pulling on a node failed.
fn error_line(node: &str, message: &str) -> Bytes {
    let text = format!("node {node}: {message}");
    let mut line = json!({"error": text, "errorDetail": {"message": text}}).to_string();
    line.push('\n');
    Bytes::from(line)
}

/// `POST /images/create?fromImage=&tag=`: pulls on every ready node (or
/// the one named by `node`), streaming each node's progress in turn.
async fn pull(
    State(gw): State<AppState>,
    caller: Caller,
    Query(q): Query<PullQuery>,
    req: Request,
) -> ApiResult<Response> {
    if q.from_src.is_some() {
        return Err(ApiError::invalid(
            "importing an image (fromSrc) is not supported through the Capstan proxy: pull it from a registry",
        ));
    }
    let image = q
        .from_image
        .as_deref()
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .ok_or_else(|| ApiError::invalid("fromImage is required: name the image to pull"))?
        .to_string();
    check_reference(&image)?;
    caller.authorize(
        op!("image.create"),
        Resource::Collection(IMAGES),
        &format!("image {image}"),
    )?;
    let nodes = engine::nodes(&gw).await?;
    let targets = pull_targets(&nodes, q.node.as_deref())?;
    let mut query = format!("fromImage={}", engine::encode_query_value(&image));
    for (key, value) in [("tag", &q.tag), ("platform", &q.platform)] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            query.push_str(&format!("&{key}={}", engine::encode_query_value(v)));
        }
    }
    let version = engine::version_of(&req);
    let auth = req.headers().get("x-registry-auth").cloned();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        for target in targets {
            let send = async {
                let mut out = engine::request(
                    &version,
                    Method::POST,
                    &format!("/images/create?{query}"),
                    Body::empty(),
                )?;
                if let Some(a) = &auth {
                    out.headers_mut().insert("x-registry-auth", a.clone());
                }
                engine::send(&gw, &target, out).await
            };
            let resp = match send.await {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Ok(error_line(target.hostname(), &e.message))).await;
                    continue;
                }
            };
            let status = resp.status();
            let mut stream = Body::new(resp.into_body()).into_data_stream();
            if !status.is_success() {
                let body = axum::body::to_bytes(Body::from_stream(stream), 1 << 20)
                    .await
                    .unwrap_or_default();
                let e = engine::engine_error(status, &body);
                let _ = tx.send(Ok(error_line(target.hostname(), &e.message))).await;
                continue;
            }
            use futures::StreamExt;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(std::io::Error::other);
                if tx.send(chunk).await.is_err() {
                    return;
                }
            }
        }
    });
    let mut resp = Body::from_stream(ReceiverStream::new(rx)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

#[derive(Deserialize)]
struct RemoveQuery {
    force: Option<String>,
    noprune: Option<String>,
}

/// `DELETE /images/{name}`: on every node that has it; the answers merged.
async fn remove(
    State(gw): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<RemoveQuery>,
    req: Request,
) -> ApiResult<Json<Value>> {
    let force = flag("force", q.force.as_deref())?;
    flag("noprune", q.noprune.as_deref())?;
    check_reference(&name)?;
    let what = format!("image {name}");
    caller.authorize(op!("image.remove"), Resource::Collection(IMAGES), &what)?;
    if force {
        caller.authorize(
            op!("image.remove.force"),
            Resource::Collection(IMAGES),
            &what,
        )?;
    }
    let version = engine::version_of(&req);
    let target = path_and_query(&format!("/images/{name}"), &req);
    let nodes = engine::nodes(&gw).await?;
    let engines = engine::reachable(&nodes);
    let answers = engine::fan_out(&engines, |e| {
        engine::call_json(&gw, e, &version, Method::DELETE, &target, None)
    })
    .await;
    let mut removed = Vec::new();
    let mut refusal = None;
    let mut any = false;
    for (_, answer) in answers {
        match answer {
            Ok(v) => {
                any = true;
                removed.extend(v.as_array().cloned().unwrap_or_default());
            }
            Err(e) if e.status == StatusCode::NOT_FOUND => {}
            Err(e) => refusal = refusal.or(Some(e)),
        }
    }
    if let Some(e) = refusal {
        return Err(e);
    }
    if !any {
        return Err(ApiError::not_found(format!("No such image: {name}")));
    }
    Ok(Json(Value::Array(removed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_merge_by_id() {
        let a = vec![json!({"Id": "sha256:1", "RepoTags": ["b:1"], "Created": 5})];
        let b = vec![
            json!({"Id": "sha256:1", "RepoTags": ["a:1"], "Created": 5}),
            json!({"Id": "sha256:2", "RepoTags": ["c:1"], "Created": 9}),
        ];
        let merged = merge_images(vec![a, b]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0]["Id"], "sha256:2", "newest first");
        assert_eq!(merged[1]["RepoTags"], json!(["a:1", "b:1"]));
    }

    #[test]
    fn references_cannot_walk_the_engine_api() {
        for good in [
            "busybox",
            "capstan-test/busybox:0123abc",
            "reg.example:5000/a/b@sha256:ab12",
            "sha256:ab12",
        ] {
            assert!(check_reference(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "../containers/x",
            "a/../b",
            "a?x=1",
            "a b",
            "a//b",
            "a%2e",
        ] {
            assert!(check_reference(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_routes_do_not_clash() {
        // axum refuses overlapping routes when the router is built.
        let _ = super::super::routes();
    }

    #[test]
    fn error_lines_are_progress_errors() {
        let line = error_line("n1", "boom");
        let v: Value = serde_json::from_slice(&line).expect("json");
        assert_eq!(v["error"], "node n1: boom");
        assert_eq!(v["errorDetail"]["message"], "node n1: boom");
    }
}
