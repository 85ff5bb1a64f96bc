//! `capstan bench proxy`: the Docker API proxy against the engine itself.
//!
//! Starts `capstan up` (a manager with its agent on this machine's engine),
//! creates 200 services of 5 replicas each through the proxy, then puts the
//! local engine in swarm mode and creates the same 200 services there. The
//! replicas are pinned to a node label no node has, so both systems hold
//! 1,000 pending tasks without starting 1,000 containers. Then, for
//! `GET /containers/json` and `GET /services` at 16 and 64 keep-alive
//! connections, it measures requests per second and latency through the
//! proxy (HTTPS, bearer token, RBAC, routed to the node's engine proxy for
//! containers) and straight on the engine's unix socket, and prints the
//! ratios. The engine leaves swarm mode at the end, however the benchmark
//! ends.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use capstan_manager::{DataDir, NodeConfig};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use super::gateway::{client_config, connect};
use super::process::Ports;
use super::schedule::{docker, ensure_image, start_manager, SwarmGuard, IMAGE};
use super::stats;

/// Services created on each side.
const SERVICES: usize = 200;
/// Replicas per service (200 × 5 = 1,000 tasks).
const REPLICAS: usize = 5;
/// Connection counts measured.
const CONNECTIONS: [usize; 2] = [16, 64];
/// The requests measured: the `docker container ls` and `docker service ls`
/// equivalents.
const REQUESTS: [(&str, &str); 2] = [
    ("container_ls", "/v1.41/containers/json"),
    ("service_ls", "/v1.41/services"),
];
/// Warm-up before each measured window.
const WARMUP: Duration = Duration::from_secs(1);
/// The engine's socket.
const ENGINE_SOCKET: &str = "/var/run/docker.sock";

/// Runs the benchmark and prints the JSON report.
pub async fn run(work: &Path, ports: &mut Ports, seconds: u64) -> anyhow::Result<()> {
    let state = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]).await?;
    if state != "inactive" {
        bail!("the Docker engine is already in swarm mode ({state}); the benchmark needs it to start outside");
    }
    ensure_image(work).await?;
    eprintln!("bench: proxy: capstan up with its local agent");
    let (mut manager, data) = start_manager(work, ports, true).await?;
    let result = measure(&data, seconds).await;
    manager.kill()?;
    let report = result?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

async fn measure(data: &DataDir, seconds: u64) -> anyhow::Result<Value> {
    let gateway = Gateway::connect(data).await?;
    eprintln!("bench: proxy: creating {SERVICES} services through the proxy");
    for i in 0..SERVICES {
        gateway
            .post_json("/v1.41/services/create", &service_spec(i))
            .await?;
    }
    wait_for_tasks("capstan", || gateway.get("/v1.41/tasks")).await?;

    let had_gwbridge = docker(&["network", "inspect", "docker_gwbridge"])
        .await
        .is_ok();
    docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]).await?;
    let _guard = SwarmGuard {
        remove_gwbridge: !had_gwbridge,
    };
    let engine = Engine;
    eprintln!("bench: proxy: creating {SERVICES} services on Docker Swarm");
    for i in 0..SERVICES {
        engine
            .post_json("/v1.41/services/create", &service_spec(i))
            .await?;
    }
    wait_for_tasks("swarm", || engine.get("/v1.41/tasks")).await?;

    let mut results = serde_json::Map::new();
    let mut targets = serde_json::Map::new();
    for (name, path) in REQUESTS {
        for conns in CONNECTIONS {
            eprintln!("bench: proxy: {name} at {conns} connections");
            let proxy = load(conns, seconds, path, Target::Proxy(&gateway)).await?;
            let direct = load(conns, seconds, path, Target::Engine).await?;
            let overhead_ms = stats::round(proxy.p50_ms - direct.p50_ms, 3);
            let ratio = stats::round(proxy.rps / direct.rps.max(1.0), 2);
            targets.insert(
                format!("{name}_{conns}_overhead_p50_under_1ms"),
                json!(overhead_ms < 1.0),
            );
            targets.insert(
                format!("{name}_{conns}_throughput_at_least_engine"),
                json!(ratio >= 1.0),
            );
            results.insert(
                format!("{name}_{conns}"),
                json!({
                    "path": path,
                    "connections": conns,
                    "proxy": proxy.json(),
                    "engine": direct.json(),
                    "ratio_proxy_over_engine_rps": ratio,
                    "overhead_p50_ms": overhead_ms,
                }),
            );
        }
    }
    for i in 0..SERVICES {
        let _ = engine.delete(&format!("/v1.41/services/bench-{i}")).await;
    }
    Ok(json!({
        "benchmark": "proxy",
        "setup": format!("{SERVICES} services x {REPLICAS} replicas = {} tasks on each side (pending: pinned to a node label no node has)", SERVICES * REPLICAS),
        "proxy": "capstan gateway: HTTPS (TLS 1.3), bearer token, RBAC filter; containers fetched from the node's engine proxy over mutual TLS",
        "engine": "the local Docker engine in swarm mode on its unix socket (no TLS, no authentication)",
        "seconds": seconds,
        "results": results,
        "targets": targets,
    }))
}

/// A service whose tasks stay pending: no node carries the label.
fn service_spec(i: usize) -> Value {
    json!({
        "Name": format!("bench-{i}"),
        "Labels": {"bench": "proxy"},
        "TaskTemplate": {
            "ContainerSpec": {"Image": IMAGE, "Command": ["sleep", "3600"]},
            "Placement": {"Constraints": ["node.labels.capstan-bench-nowhere==true"]}
        },
        "Mode": {"Replicated": {"Replicas": REPLICAS}}
    })
}

async fn wait_for_tasks<F, Fut>(who: &str, list: F) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Value>>,
{
    let want = SERVICES * REPLICAS;
    let started = Instant::now();
    loop {
        let n = list().await?.as_array().map_or(0, Vec::len);
        if n >= want {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("{who} has {n} tasks after 120 s, expected {want}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The gateway, logged in as the admin.
struct Gateway {
    addr: String,
    tls: Arc<rustls::ClientConfig>,
    token: String,
}

impl Gateway {
    async fn connect(data: &DataDir) -> anyhow::Result<Gateway> {
        let config = NodeConfig::load(&data.config())?;
        let password = std::fs::read_to_string(data.root().join("admin-password"))
            .context("read the generated admin password")?;
        let ca = std::fs::read(data.ca_cert()).context("read the cluster CA")?;
        let gw = Gateway {
            addr: format!("127.0.0.1:{}", config.controller_port),
            tls: client_config(&ca)?,
            token: String::new(),
        };
        let body = json!({"username": "admin", "password": password.trim()});
        let mut attempt = 0;
        let answer = loop {
            attempt += 1;
            match gw.request("POST", "/auth/login", Some(&body)).await {
                Ok(v) => break v,
                Err(e) if attempt >= 40 => return Err(e.context("log in to the gateway")),
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        };
        let token = answer["auth_token"]
            .as_str()
            .context("login answer has no auth_token")?;
        let gw = Gateway {
            token: format!("Bearer {token}"),
            ..gw
        };
        // What the proxy creates goes to the admin's private collection,
        // which the gateway's seed makes moments after the first start.
        let mut attempt = 0;
        while gw.get("/collections/private-admin").await.is_err() {
            attempt += 1;
            if attempt >= 120 {
                bail!("the admin's private collection was never created");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(gw)
    }

    async fn conn(&self) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        connect(&self.addr, &self.tls).await
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut conn = self.conn().await?;
        send(&mut conn, method, path, Some(&self.token), body).await
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.request("GET", path, None).await
    }

    async fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.request("POST", path, Some(body)).await
    }
}

/// The local engine's unix socket.
struct Engine;

impl Engine {
    async fn conn(&self) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        let stream = tokio::net::UnixStream::connect(ENGINE_SOCKET)
            .await
            .with_context(|| format!("connect to {ENGINE_SOCKET}"))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(sender)
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        send(&mut self.conn().await?, "GET", path, None, None).await
    }

    async fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        send(&mut self.conn().await?, "POST", path, None, Some(body)).await
    }

    async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        send(&mut self.conn().await?, "DELETE", path, None, None).await
    }
}

async fn send(
    conn: &mut SendRequest<Full<Bytes>>,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<&Value>,
) -> anyhow::Result<Value> {
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "capstan");
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let payload = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Bytes::from(b.to_string())
        }
        None => Bytes::new(),
    };
    let resp = conn.send_request(req.body(Full::new(payload))?).await?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!(
            "{method} {path} answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{method} {path}: the answer is not JSON"))
}

#[derive(Clone, Copy)]
enum Target<'a> {
    Proxy(&'a Gateway),
    Engine,
}

struct Figures {
    requests: usize,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl Figures {
    fn json(&self) -> Value {
        json!({
            "requests": self.requests,
            "requests_per_s": stats::round(self.rps, 0),
            "latency_ms": {"p50": self.p50_ms, "p99": self.p99_ms},
        })
    }
}

/// `conns` closed-loop clients, each with its own keep-alive connection
/// and one request in flight, for `seconds` after a warm-up.
async fn load(
    conns: usize,
    seconds: u64,
    path: &'static str,
    target: Target<'_>,
) -> anyhow::Result<Figures> {
    let warm = Instant::now() + WARMUP;
    let deadline = warm + Duration::from_secs(seconds);
    let auth = match target {
        Target::Proxy(g) => Some(Arc::new(g.token.clone())),
        Target::Engine => None,
    };
    let mut workers = Vec::new();
    for _ in 0..conns {
        let mut conn = match target {
            Target::Proxy(g) => g.conn().await?,
            Target::Engine => Engine.conn().await?,
        };
        let auth = auth.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies_us = Vec::new();
            loop {
                let started = Instant::now();
                if started >= deadline {
                    break;
                }
                let mut req = hyper::Request::get(path).header("host", "capstan");
                if let Some(a) = &auth {
                    req = req.header("authorization", a.as_str());
                }
                let resp = conn
                    .send_request(req.body(Full::new(Bytes::new()))?)
                    .await?;
                let status = resp.status();
                resp.into_body().collect().await?;
                if status != hyper::StatusCode::OK {
                    bail!("GET {path} answered {status}");
                }
                if started >= warm {
                    latencies_us.push(started.elapsed().as_micros() as u64);
                }
            }
            anyhow::Ok(latencies_us)
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await??);
    }
    all.sort_unstable();
    let pct = |p| stats::percentile(&all, p).map_or(0.0, stats::ms_from_us);
    Ok(Figures {
        requests: all.len(),
        rps: stats::per_sec(all.len() as u64, Duration::from_secs(seconds)),
        p50_ms: pct(50.0),
        p99_ms: pct(99.0),
    })
}
