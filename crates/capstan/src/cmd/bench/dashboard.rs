//! `capstan bench dashboard`: how long the dashboard's main pages take and
//! how big they are with a large cluster in the store.
//!
//! One manager (a child `capstan` process) with 50 simulated nodes
//! (in-process agents that report their tasks running at once), 1,000
//! services of 10 replicas (10,000 tasks) and 500 users. Logged in as the
//! admin, each page is fetched over TLS on one keep-alive connection, as a
//! browser does: once uncompressed for its size, then repeatedly with
//! `Accept-Encoding: gzip` for the time to its last byte and the bytes
//! sent. The client runs on the same machine, on loopback, so the times
//! are the server's plus a loopback round trip.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use capstan_manager::{DataDir, NodeConfig};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::process::Ports;
use super::schedule::{create_service, simulated_nodes, start_manager, swarm_client};
use super::stats;

const NODES: usize = 50;
const SERVICES: usize = 1_000;
const REPLICAS: u64 = 10;
const USERS: usize = 500;
/// Timed fetches of each page.
const FETCHES: usize = 30;
/// Targets of the issue: p95 and size per page.
const P95_TARGET_MS: f64 = 50.0;
const SIZE_TARGET_BYTES: usize = 200 * 1024;

/// Runs the benchmark and prints the JSON report.
pub async fn run(work: &Path, ports: &mut Ports) -> anyhow::Result<()> {
    eprintln!("bench: dashboard: starting a manager and {NODES} simulated nodes");
    let (mut manager, data) = start_manager(work, ports, false).await?;
    let result = drive(work, &data).await;
    manager.kill()?;
    let report = result?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

async fn drive(work: &Path, data: &DataDir) -> anyhow::Result<Value> {
    let assigned = Arc::new(Mutex::new(HashSet::new()));
    let (running_tx, mut running_rx) = mpsc::unbounded_channel();
    let mut agents = simulated_nodes(work, data, NODES, &assigned, &running_tx).await?;

    eprintln!("bench: dashboard: {SERVICES} services of {REPLICAS} replicas");
    let mut swarm = swarm_client(data).await?;
    for i in 0..SERVICES {
        create_service(&mut swarm, &format!("svc{i:04}"), REPLICAS).await?;
    }
    let want = SERVICES * REPLICAS as usize;
    let mut running = 0;
    let started = Instant::now();
    while running < want {
        if started.elapsed() > Duration::from_secs(600) {
            bail!("after 600 s only {running} of {want} tasks run");
        }
        tokio::select! {
            Some(n) = running_rx.recv() => running += n,
            Some(done) = agents.join_next() => {
                done.context("a simulated agent panicked")?.context("a simulated agent failed")?;
            }
        }
    }

    let config = NodeConfig::load(&data.config())?;
    let base = format!("https://127.0.0.1:{}", config.controller_port);
    let ca = std::fs::read(data.ca_cert()).context("read the cluster CA")?;
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca)?)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(1)
        .build()?;
    let token = login(&client, &base).await?;

    eprintln!("bench: dashboard: {USERS} users");
    futures::stream::iter(0..USERS)
        .map(|i| {
            let (client, base, token) = (&client, &base, &token);
            async move {
                let r = client
                    .post(format!("{base}/accounts"))
                    .bearer_auth(token)
                    .json(&json!({"name": format!("user{i:03}"), "password": "bench-password-1", "fullName": format!("User {i}")}))
                    .send()
                    .await?;
                if !r.status().is_success() {
                    bail!("create user{i:03}: {} {}", r.status(), r.text().await.unwrap_or_default());
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<()>>>()?;

    let cookie = ui_login(&client, &base).await?;
    let service = first_id(&client, &base, &token, "/services").await?;
    let node = first_id(&client, &base, &token, "/nodes").await?;
    let pages = [
        "/ui/".to_string(),
        "/ui/services".into(),
        format!("/ui/services/{service}"),
        "/ui/nodes".into(),
        format!("/ui/nodes/{node}"),
        "/ui/users".into(),
        "/ui/orgs".into(),
        "/ui/roles".into(),
        "/ui/grants".into(),
        "/ui/collections".into(),
        "/ui/stacks".into(),
        "/ui/secrets".into(),
        "/ui/access".into(),
        "/ui/settings/audit".into(),
    ];
    let mut figures = serde_json::Map::new();
    let mut all_within = true;
    for path in &pages {
        eprintln!("bench: dashboard: {path}");
        let (status, plain) = fetch(&client, &base, path, &cookie, false).await?;
        if status != 200 {
            bail!("{path} answered {status}");
        }
        let mut times_us = Vec::with_capacity(FETCHES);
        let mut sent = 0;
        for _ in 0..FETCHES {
            let t = Instant::now();
            let (_, body) = fetch(&client, &base, path, &cookie, true).await?;
            times_us.push(t.elapsed().as_micros() as u64);
            sent = body;
        }
        times_us.sort_unstable();
        let p50 = stats::percentile(&times_us, 50.0).map(stats::ms_from_us);
        let p95 = stats::percentile(&times_us, 95.0).map(stats::ms_from_us);
        let within = p95.is_some_and(|p| p < P95_TARGET_MS) && sent < SIZE_TARGET_BYTES;
        all_within &= within;
        figures.insert(
            path.clone(),
            json!({
                "p50_ms": p50,
                "p95_ms": p95,
                "bytes_uncompressed": plain,
                "bytes_sent_gzip": sent,
                "within_targets": within,
            }),
        );
    }
    agents.abort_all();
    Ok(json!({
        "benchmark": "dashboard",
        "store": {"nodes": NODES + 1, "services": SERVICES, "tasks": want, "users": USERS + 1},
        "fetches_per_page": FETCHES,
        "request": "GET with the session cookie, TLS 1.3, HTTP/1.1 keep-alive, Accept-Encoding: gzip",
        "pages": figures,
        "targets": {"p95_ms_under": P95_TARGET_MS, "bytes_under": SIZE_TARGET_BYTES, "all_pages_within": all_within},
    }))
}

async fn login(client: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let r = client
        .post(format!("{base}/auth/login"))
        .json(&json!({"username": "admin", "password": "benchmark-only"}))
        .send()
        .await?;
    let v: Value = r.json().await?;
    v["auth_token"]
        .as_str()
        .map(str::to_string)
        .context("login answer has no auth_token")
}

/// Logs in to the dashboard; the session cookie.
async fn ui_login(client: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let r = client
        .post(format!("{base}/ui/login"))
        .header("origin", base)
        .form(&[("username", "admin"), ("password", "benchmark-only")])
        .send()
        .await?;
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|c| c.to_str().ok())
        .and_then(|c| c.split(';').next())
        .context("the dashboard login set no cookie")?;
    Ok(cookie.to_string())
}

async fn first_id(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    path: &str,
) -> anyhow::Result<String> {
    let v: Value = client
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?;
    v[0]["ID"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("{path} listed nothing"))
}

/// A page: status and the bytes of its body as sent.
async fn fetch(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    cookie: &str,
    gzip: bool,
) -> anyhow::Result<(u16, usize)> {
    let mut req = client.get(format!("{base}{path}")).header("cookie", cookie);
    if gzip {
        req = req.header("accept-encoding", "gzip");
    }
    let r = req.send().await?;
    let status = r.status().as_u16();
    let body = r.bytes().await?;
    Ok((status, body.len()))
}
