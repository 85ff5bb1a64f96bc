//! Reaching the Docker engines of the nodes through their agents' engine
//! proxies.
//!
//! Each node's agent serves an engine proxy (its address is in the node's
//! description) that admits only managers of the cluster and pipes the
//! connection to the node's Docker engine. This module dials it with the
//! manager's own node certificate, checks that the certificate presented
//! is that node's, and speaks HTTP/1.1 over it. A streaming answer (logs,
//! stats, wait, pulls) or a hijacked one (attach, exec) owns a connection
//! of its own for as long as it lasts; a `GET` read whole (lists,
//! inspects) reuses an idle connection to the node, since a TLS handshake
//! would cost more than the call.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use capstan_core::{Node, NodeRole, NodeState};
use capstan_manager::state::Consistency;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

use super::{DockerRequest, API_VERSION};
use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// How long dialing a node's engine proxy (TCP and TLS) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest engine answer read whole (lists, inspects).
const MAX_ANSWER: usize = 64 << 20;
/// Idle connections kept per node and gateway.
const IDLE_PER_NODE: usize = 16;
/// How long an idle connection may take to say it can carry a request.
const IDLE_READY_WAIT: Duration = Duration::from_millis(50);
/// Request headers passed on to the engine; the caller's credentials
/// (`Authorization`) never leave the gateway.
const FORWARDED_HEADERS: &[HeaderName] = &[header::CONTENT_TYPE, header::CONTENT_LENGTH];
/// The registry credentials of pulls, meant for the engine.
const REGISTRY_AUTH: &str = "x-registry-auth";
/// Response headers that describe one hop, not the answer.
const HOP_HEADERS: &[HeaderName] = &[
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::TE,
    header::TRAILER,
    header::PROXY_AUTHENTICATE,
];

/// A node whose engine the gateway can try to reach.
#[derive(Clone, Debug)]
pub struct NodeEngine {
    /// The node record.
    pub node: Node,
    /// `host:port` of its engine proxy.
    pub addr: String,
}

impl NodeEngine {
    /// The node id as text.
    pub fn id(&self) -> String {
        self.node.id.to_string()
    }

    /// The node's hostname, for messages.
    pub fn hostname(&self) -> &str {
        &self.node.hostname
    }

    fn unreachable(&self, why: impl std::fmt::Display) -> ApiError {
        let mut e =
            ApiError::unavailable(format!("node {} is unreachable: {why}", self.node.hostname));
        e.code = "NODE_UNREACHABLE";
        e
    }
}

/// The engine proxy address a node reported, if any.
fn proxy_address(node: &Node) -> Option<&str> {
    node.description
        .as_ref()
        .map(|d| d.engine_proxy.as_str())
        .filter(|a| !a.is_empty())
}

/// Every node of the cluster (serializable read: the gateway's view).
pub async fn nodes(gw: &AppState) -> ApiResult<Vec<Node>> {
    Ok(gw
        .manager
        .list_all::<Node>(Consistency::Serializable)
        .await?
        .into_iter()
        .map(|(n, _)| n)
        .collect())
}

/// The ready nodes with an engine proxy: where lists fan out to. A node
/// that is down is left out rather than waited for.
pub fn reachable(nodes: &[Node]) -> Vec<NodeEngine> {
    nodes
        .iter()
        .filter(|n| n.state == NodeState::Ready)
        .filter_map(|n| {
            proxy_address(n).map(|addr| NodeEngine {
                node: n.clone(),
                addr: addr.to_string(),
            })
        })
        .collect()
}

/// The engine of one node; 503 when it reported no engine proxy.
pub fn engine_of(node: &Node) -> ApiResult<NodeEngine> {
    let engine = NodeEngine {
        node: node.clone(),
        addr: String::new(),
    };
    match proxy_address(node) {
        Some(addr) => Ok(NodeEngine {
            addr: addr.to_string(),
            ..engine
        }),
        None => Err(engine.unreachable("its agent reported no engine proxy")),
    }
}

/// The client TLS configuration of this manager, rebuilt when its node
/// certificate renews. Kept per data directory because tests may run
/// several gateways in one process.
fn client_config(gw: &AppState) -> ApiResult<Arc<tokio_rustls::rustls::ClientConfig>> {
    type Cache =
        Mutex<HashMap<PathBuf, (Option<SystemTime>, Arc<tokio_rustls::rustls::ClientConfig>)>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let dir = &gw.manager.dir;
    let cert = dir.node_cert();
    let modified = std::fs::metadata(&cert).and_then(|m| m.modified()).ok();
    let cache = CACHE.get_or_init(Cache::default);
    if let Some((when, config)) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&cert) {
        if *when == modified {
            return Ok(config.clone());
        }
    }
    let read = |p: PathBuf| {
        std::fs::read_to_string(&p)
            .map_err(|e| ApiError::internal(format!("cannot read {}: {e}", p.display())))
    };
    let config = capstan_pki::engine_proxy_client_config(
        &read(dir.ca_cert())?,
        &read(cert.clone())?,
        &read(dir.node_key())?,
    )
    .map_err(ApiError::internal)?;
    cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(cert, (modified, config.clone()));
    Ok(config)
}

/// Dials a node's engine proxy and checks that it is that node.
async fn connect(gw: &AppState, engine: &NodeEngine) -> ApiResult<TlsStream<TcpStream>> {
    let config = client_config(gw)?;
    let name = match engine.node.role {
        NodeRole::Manager => capstan_pki::MANAGER_SERVER_NAME,
        NodeRole::Worker => capstan_pki::WORKER_SERVER_NAME,
    };
    let server_name =
        ServerName::try_from(name).map_err(|e| ApiError::internal(format!("server name: {e}")))?;
    let dial = async {
        let tcp = TcpStream::connect(&engine.addr)
            .await
            .map_err(|e| engine.unreachable(format!("cannot connect to {}: {e}", engine.addr)))?;
        let _ = tcp.set_nodelay(true);
        TlsConnector::from(config)
            .connect(server_name, tcp)
            .await
            .map_err(|e| engine.unreachable(format!("TLS with {} failed: {e}", engine.addr)))
    };
    let tls = tokio::time::timeout(CONNECT_TIMEOUT, dial)
        .await
        .map_err(|_| {
            engine.unreachable(format!(
                "no answer from {} within {CONNECT_TIMEOUT:?}",
                engine.addr
            ))
        })??;
    let presented = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| capstan_pki::peer_identity(c).ok());
    match presented {
        Some(id) if id.subject_cn == engine.id() && id.cluster_id == gw.cluster_id() => Ok(tls),
        Some(id) => Err(engine.unreachable(format!(
            "{} presented the certificate of node {}, not this node's",
            engine.addr, id.subject_cn
        ))),
        None => Err(engine.unreachable(format!("{} presented no node certificate", engine.addr))),
    }
}

/// Opens an HTTP/1.1 connection to a node's engine.
async fn open(gw: &AppState, engine: &NodeEngine) -> ApiResult<SendRequest<Body>> {
    let tls = connect(gw, engine).await?;
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(tls))
        .await
        .map_err(|e| engine.unreachable(format!("HTTP handshake: {e}")))?;
    let node = engine.hostname().to_string();
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(%node, error = %e, "engine proxy connection ended with an error");
        }
    });
    Ok(sender)
}

/// Sends one request to a node's engine on a connection of its own and
/// returns its answer as soon as the headers are in; the body streams on.
pub async fn send(
    gw: &AppState,
    engine: &NodeEngine,
    req: hyper::Request<Body>,
) -> ApiResult<hyper::Response<Incoming>> {
    open(gw, engine)
        .await?
        .send_request(req)
        .await
        .map_err(|e| engine.unreachable(format!("the request failed: {e}")))
}

/// Idle connections by gateway (data directory), node and address.
type Idle = Mutex<HashMap<String, Vec<SendRequest<Body>>>>;

fn idle() -> &'static Idle {
    static IDLE: OnceLock<Idle> = OnceLock::new();
    IDLE.get_or_init(Idle::default)
}

fn idle_key(gw: &AppState, engine: &NodeEngine) -> String {
    format!(
        "{}|{}|{}",
        gw.manager.dir.root().display(),
        engine.id(),
        engine.addr
    )
}

/// An idle connection to the node that can take a request now, if any.
async fn take_idle(key: &str) -> Option<SendRequest<Body>> {
    loop {
        let mut sender = idle()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(key)
            .and_then(Vec::pop)?;
        if let Ok(Ok(())) = tokio::time::timeout(IDLE_READY_WAIT, sender.ready()).await {
            return Some(sender);
        }
    }
}

fn put_idle(key: String, sender: SendRequest<Body>) {
    if sender.is_closed() {
        return;
    }
    let mut pool = idle().lock().unwrap_or_else(|p| p.into_inner());
    let senders = pool.entry(key).or_default();
    if senders.len() < IDLE_PER_NODE {
        senders.push(sender);
    }
}

/// The API version to speak to the engine: the client's.
pub fn version_of(req: &Request) -> String {
    req.extensions()
        .get::<DockerRequest>()
        .map_or_else(|| API_VERSION.to_string(), |d| d.version.clone())
}

/// A request for a node's engine: `/v<version><path_and_query>`.
pub fn request(
    version: &str,
    method: Method,
    path_and_query: &str,
    body: Body,
) -> ApiResult<hyper::Request<Body>> {
    hyper::Request::builder()
        .method(method)
        .uri(format!("/v{version}{path_and_query}"))
        // The engine insists on a Host header; the proxy is its only client.
        .header(header::HOST, "docker")
        .body(body)
        .map_err(|e| ApiError::invalid(format!("cannot build the engine request: {e}")))
}

/// A request for a node's engine carrying `body` as JSON.
pub fn json_request(
    version: &str,
    method: Method,
    path_and_query: &str,
    body: &Value,
) -> ApiResult<hyper::Request<Body>> {
    let mut req = request(
        version,
        method,
        path_and_query,
        Body::from(body.to_string()),
    )?;
    req.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(req)
}

/// An answer of JSON bytes an engine gave.
pub fn json_answer(status: StatusCode, bytes: Bytes) -> Response {
    let mut resp = (status, Body::from(bytes)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Copies the headers of the client's request the engine needs.
pub fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for name in FORWARDED_HEADERS {
        if let Some(v) = from.get(name) {
            to.insert(name.clone(), v.clone());
        }
    }
    if let Some(v) = from.get(REGISTRY_AUTH) {
        to.insert(HeaderName::from_static(REGISTRY_AUTH), v.clone());
    }
}

/// An engine answer as the gateway's response, streaming.
pub fn into_response(resp: hyper::Response<Incoming>) -> Response {
    let (mut parts, body) = resp.into_parts();
    for name in HOP_HEADERS {
        parts.headers.remove(name);
    }
    Response::from_parts(parts, Body::new(body))
}

/// An engine's error answer as the gateway's error, keeping its status
/// and message.
pub fn engine_error(status: StatusCode, body: &[u8]) -> ApiError {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    ApiError {
        status,
        code: "ENGINE_ERROR",
        message,
        retry_after: None,
    }
}

/// Sends a request and reads the whole answer: its status and body. A
/// `GET` goes over an idle connection to the node when there is one (sent
/// again on a new connection if that one turns out closed), and leaves
/// its connection idle for the next.
pub async fn call(
    gw: &AppState,
    engine: &NodeEngine,
    req: hyper::Request<Body>,
) -> ApiResult<(StatusCode, Bytes)> {
    if req.method() != Method::GET {
        let resp = send(gw, engine, req).await?;
        return read_whole(engine, resp).await;
    }
    let key = idle_key(gw, engine);
    let again = (req.uri().clone(), req.headers().clone());
    let resp = match take_idle(&key).await {
        Some(mut sender) => match sender.send_request(req).await {
            Ok(resp) => Some((sender, resp)),
            Err(e) => {
                tracing::debug!(node = %engine.hostname(), error = %e, "idle engine connection failed; dialing again");
                None
            }
        },
        None => None,
    };
    let (sender, resp) = match resp {
        Some(r) => r,
        None => {
            let mut sender = open(gw, engine).await?;
            let mut req = hyper::Request::get(again.0)
                .body(Body::empty())
                .map_err(|e| ApiError::internal(format!("cannot rebuild the request: {e}")))?;
            *req.headers_mut() = again.1;
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| engine.unreachable(format!("the request failed: {e}")))?;
            (sender, resp)
        }
    };
    let answer = read_whole(engine, resp).await?;
    put_idle(key, sender);
    Ok(answer)
}

async fn read_whole(
    engine: &NodeEngine,
    resp: hyper::Response<Incoming>,
) -> ApiResult<(StatusCode, Bytes)> {
    let status = resp.status();
    let body = axum::body::to_bytes(Body::new(resp.into_body()), MAX_ANSWER)
        .await
        .map_err(|e| engine.unreachable(format!("reading the answer failed: {e}")))?;
    Ok((status, body))
}

/// A JSON call: the parsed answer on success, the engine's error otherwise.
pub async fn call_json(
    gw: &AppState,
    engine: &NodeEngine,
    version: &str,
    method: Method,
    path_and_query: &str,
    body: Option<&Value>,
) -> ApiResult<Value> {
    let req = match body {
        Some(b) => json_request(version, method, path_and_query, b)?,
        None => request(version, method, path_and_query, Body::empty())?,
    };
    let (status, bytes) = call(gw, engine, req).await?;
    if !status.is_success() {
        return Err(engine_error(status, &bytes));
    }
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::internal(format!(
            "node {} answered invalid JSON: {e}",
            engine.hostname()
        ))
    })
}

/// Forwards a hijacking request (attach, exec start with `Upgrade: tcp`):
/// when the engine switches protocols, answers 101 to the client and
/// copies bytes both ways between the two upgraded connections. Without an
/// upgrade the engine's answer streams through as it is.
pub async fn hijack(
    gw: &AppState,
    engine: &NodeEngine,
    mut client: Request,
    path_and_query: &str,
) -> ApiResult<Response> {
    let version = version_of(&client);
    let wants_upgrade = client.headers().contains_key(header::UPGRADE);
    let client_upgrade = wants_upgrade.then(|| hyper::upgrade::on(&mut client));
    let (parts, body) = client.into_parts();
    let mut req = request(&version, parts.method.clone(), path_and_query, body)?;
    copy_headers(&parts.headers, req.headers_mut());
    if wants_upgrade {
        req.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        req.headers_mut()
            .insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    }
    let mut resp = send(gw, engine, req).await?;
    let Some(client_upgrade) =
        client_upgrade.filter(|_| resp.status() == StatusCode::SWITCHING_PROTOCOLS)
    else {
        return Ok(into_response(resp));
    };
    let node_upgrade = hyper::upgrade::on(&mut resp);
    let node = engine.hostname().to_string();
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client_upgrade, node_upgrade) {
            Ok(both) => both,
            Err(e) => {
                tracing::debug!(%node, error = %e, "hijacked connection could not be upgraded");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!(%node, error = %e, "hijacked connection ended with an error");
        }
    });
    let mut out = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let headers = out.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    if let Some(ct) = resp.headers().get(header::CONTENT_TYPE) {
        headers.insert(header::CONTENT_TYPE, ct.clone());
    }
    Ok(out)
}

/// Percent-encodes a query parameter value (filters are JSON).
pub fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Runs `f` on every engine at once; the answers in the engines' order.
pub async fn fan_out<'a, T, F, Fut>(
    engines: &'a [NodeEngine],
    f: F,
) -> Vec<(&'a NodeEngine, ApiResult<T>)>
where
    F: Fn(&'a NodeEngine) -> Fut,
    Fut: std::future::Future<Output = ApiResult<T>>,
{
    let answers = futures::future::join_all(engines.iter().map(&f)).await;
    engines.iter().zip(answers).collect()
}

/// Which node an exec instance runs on, and the collection of its
/// container, remembered from `POST /containers/{id}/exec` so that the
/// calls on the exec id reach the right node and are authorised there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecPlace {
    /// The node's id.
    pub node: String,
    /// The container's full id.
    pub container: String,
    /// The container's collection.
    pub collection: String,
}

/// How long an exec id is remembered.
const EXEC_MEMORY: Duration = Duration::from_secs(24 * 3600);

fn execs() -> &'static Mutex<HashMap<String, (Instant, ExecPlace)>> {
    static EXECS: OnceLock<Mutex<HashMap<String, (Instant, ExecPlace)>>> = OnceLock::new();
    EXECS.get_or_init(Mutex::default)
}

/// Remembers where an exec instance runs (exec ids are random and unique
/// across engines, so one map serves every gateway of the process).
pub fn remember_exec(id: &str, place: ExecPlace) {
    let mut map = execs().lock().unwrap_or_else(|p| p.into_inner());
    map.retain(|_, (at, _)| at.elapsed() < EXEC_MEMORY);
    map.insert(id.to_string(), (Instant::now(), place));
}

/// Where an exec instance runs, when this gateway made it.
pub fn exec_place(id: &str) -> Option<ExecPlace> {
    execs()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(id)
        .map(|(_, p)| p.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_keep_status_and_message() {
        let e = engine_error(StatusCode::NOT_FOUND, br#"{"message":"No such image: x"}"#);
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(e.message, "No such image: x");
        let e = engine_error(StatusCode::BAD_GATEWAY, b"plain words\n");
        assert_eq!(e.message, "plain words");
    }

    #[test]
    fn credentials_are_not_forwarded() {
        let mut from = HeaderMap::new();
        from.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer secret"),
        );
        from.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        from.insert(REGISTRY_AUTH, HeaderValue::from_static("e30="));
        let mut to = HeaderMap::new();
        copy_headers(&from, &mut to);
        assert!(to.get(header::AUTHORIZATION).is_none());
        assert_eq!(to[header::CONTENT_TYPE], "application/json");
        assert_eq!(to[REGISTRY_AUTH], "e30=");
    }

    fn node(state: NodeState, proxy: Option<&str>) -> Node {
        let t = time::OffsetDateTime::UNIX_EPOCH;
        Node {
            id: capstan_core::NodeId(7),
            hostname: "node07".into(),
            role: NodeRole::Worker,
            addr: "10.0.0.7:2377".into(),
            state,
            availability: capstan_core::Availability::Active,
            labels: Default::default(),
            created_at: t,
            updated_at: t,
            cert_not_after: t,
            description: proxy.map(|p| capstan_core::NodeDescription {
                engine_proxy: p.into(),
                ..Default::default()
            }),
            capstan_version: String::new(),
        }
    }

    #[test]
    fn nodes_without_a_proxy_are_unreachable_and_left_out() {
        let e = engine_of(&node(NodeState::Ready, None)).expect_err("no description");
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            e.message.starts_with("node node07 is unreachable"),
            "{}",
            e.message
        );
        assert!(engine_of(&node(NodeState::Ready, Some(""))).is_err());
        let ok = engine_of(&node(NodeState::Down, Some("10.0.0.7:12376"))).expect("address");
        assert_eq!(ok.addr, "10.0.0.7:12376");
        let nodes = [
            node(NodeState::Ready, Some("10.0.0.7:12376")),
            node(NodeState::Down, Some("10.0.0.8:12376")),
            node(NodeState::Ready, None),
        ];
        let reachable = reachable(&nodes);
        assert_eq!(reachable.len(), 1);
        assert_eq!(reachable[0].addr, "10.0.0.7:12376");
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            encode_query_value(r#"{"label":["a=b"]}"#),
            "%7B%22label%22%3A%5B%22a%3Db%22%5D%7D"
        );
        assert_eq!(encode_query_value("busybox:1.36"), "busybox%3A1.36");
    }

    #[test]
    fn exec_ids_are_remembered() {
        let place = ExecPlace {
            node: "n1".into(),
            container: "c1".into(),
            collection: "/Shared".into(),
        };
        remember_exec("exec-test-1", place.clone());
        assert_eq!(exec_place("exec-test-1"), Some(place));
        assert_eq!(exec_place("exec-test-unknown"), None);
    }
}
