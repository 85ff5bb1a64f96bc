//! `capstan bench gateway`: authenticated `GET /collections` over TLS.
//!
//! Starts one manager (a child `capstan` process), logs in as its admin,
//! then drives the gateway from 64 keep-alive HTTP/1.1 connections on
//! loopback for the measured seconds; prints requests per second and the
//! latency percentiles. The load generator runs in this process, on the
//! same machine, so its CPU use counts against the server's.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use capstan_manager::{DataDir, NodeConfig};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::json;

use super::process::Ports;
use super::schedule::start_manager;
use super::stats;

/// Concurrent connections.
pub const CONNECTIONS: usize = 64;
/// Warm-up before the measured window.
const WARMUP: Duration = Duration::from_secs(1);

/// Runs the benchmark and prints the JSON report.
pub async fn run(work: &Path, ports: &mut Ports, seconds: u64) -> anyhow::Result<()> {
    let (mut manager, data) = start_manager(work, ports, false).await?;
    let result = drive(&data, seconds).await;
    manager.kill()?;
    let report = result?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

async fn drive(data: &DataDir, seconds: u64) -> anyhow::Result<serde_json::Value> {
    let config = NodeConfig::load(&data.config())?;
    let addr = format!("127.0.0.1:{}", config.controller_port);
    let ca = std::fs::read(data.ca_cert()).context("read the cluster CA")?;
    let tls = client_config(&ca)?;
    // The gateway may still be binding its port when the manager is ready.
    let mut attempt = 0;
    let token = loop {
        attempt += 1;
        let tried = match connect(&addr, &tls).await {
            Ok(mut c) => login_token(&mut c).await,
            Err(e) => Err(e),
        };
        match tried {
            Ok(t) => break t,
            Err(e) if attempt >= 40 => return Err(e.context("log in to the gateway")),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    };
    let token = Arc::new(format!("Bearer {token}"));

    let deadline_warm = Instant::now() + WARMUP;
    let deadline = deadline_warm + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut conn = connect(&addr, &tls).await?;
        let token = token.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies_us = Vec::new();
            let mut failures = 0u64;
            loop {
                let started = Instant::now();
                if started >= deadline {
                    break;
                }
                let req = hyper::Request::get("/collections")
                    .header("host", "capstan")
                    .header("authorization", token.as_str())
                    .body(Full::new(Bytes::new()))?;
                let resp = conn.send_request(req).await?;
                let ok = resp.status() == hyper::StatusCode::OK;
                resp.into_body().collect().await?;
                if started >= deadline_warm {
                    if ok {
                        latencies_us.push(started.elapsed().as_micros() as u64);
                    } else {
                        failures += 1;
                    }
                }
            }
            anyhow::Ok((latencies_us, failures))
        }));
    }
    let mut all = Vec::new();
    let mut failures = 0;
    for w in workers {
        let (l, f) = w.await??;
        all.extend(l);
        failures += f;
    }
    if failures > 0 {
        bail!("{failures} requests were not answered 200 OK");
    }
    all.sort_unstable();
    let measured = Duration::from_secs(seconds);
    let rps = stats::per_sec(all.len() as u64, measured);
    let p50 = stats::percentile(&all, 50.0).map(stats::ms_from_us);
    let p99 = stats::percentile(&all, 99.0).map(stats::ms_from_us);
    Ok(json!({
        "benchmark": "gateway",
        "request": "GET /collections (bearer token, TLS 1.3, HTTP/1.1 keep-alive)",
        "connections": CONNECTIONS,
        "seconds": seconds,
        "requests": all.len(),
        "requests_per_s": stats::round(rps, 0),
        "latency_ms": {"p50": p50, "p99": p99, "max": all.last().map(|v| stats::ms_from_us(*v))},
        "targets": {
            "requests_per_s_at_least_20000": rps >= 20_000.0,
            "p99_under_10ms": p99.map(|p| p < 10.0),
        },
    }))
}

pub(super) fn client_config(ca_pem: &[u8]) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.context("parse the cluster CA")?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

pub(super) async fn connect(
    addr: &str,
    tls: &Arc<rustls::ClientConfig>,
) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect to the gateway at {addr}"))?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from("127.0.0.1")?;
    let stream = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, tcp)
        .await
        .context("TLS handshake with the gateway")?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn login_token(conn: &mut SendRequest<Full<Bytes>>) -> anyhow::Result<String> {
    let body = json!({"username": "admin", "password": "benchmark-only"}).to_string();
    let req = hyper::Request::post("/auth/login")
        .header("host", "capstan")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))?;
    let resp = conn.send_request(req).await?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!(
            "login failed with {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&bytes)?;
    v["auth_token"]
        .as_str()
        .map(str::to_string)
        .context("login answer has no auth_token")
}
