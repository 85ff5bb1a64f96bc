//! `capstan bench trust`: Capstan's trust server (the registry's Notary v1
//! API) against Debian's `notary-server` 0.7.
//!
//! Starts `capstan up` and, for each of [`REPOS`] repositories, fetches the
//! server's timestamp and snapshot keys and publishes a first root and
//! targets (timed: "first publish"). Then [`REPOS`] clients, one per
//! repository, each publish new targets versions in a closed loop for
//! `--seconds` (a signed tag added each time, the last [`KEPT_TAGS`] kept:
//! the server checks the signature, signs a snapshot and a timestamp and
//! stores them); then the same clients read `timestamp.json` and
//! `targets.json` for `--seconds`. Then, unless `--no-peer`, the same
//! against `notary-server` on loopback (TLS with a CA made for the run, no
//! authentication, its in-memory storage and local ECDSA signer). The JSON
//! report goes to stdout.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use capstan_trust::metadata::FileMeta;
use capstan_trust::publisher::{targets, Publisher};
use capstan_trust::PublicKey;
use reqwest::StatusCode;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::gateway::client_config;
use super::process::{run_to_end, Ports, Process};
use super::stats;

/// Repositories, and clients (one per repository).
pub const REPOS: usize = 16;
/// Tags kept in a targets role while publishing.
pub const KEPT_TAGS: usize = 20;
/// The longest wait for either server to answer after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// One server under test.
struct Server {
    base: String,
    tls: Arc<rustls::ClientConfig>,
    /// `host:port` the GUNs start with.
    host: String,
    /// Basic credentials for Capstan's token endpoint; `None` for the peer.
    login: Option<(String, String)>,
}

/// One repository and its client.
struct Repo {
    gun: String,
    client: reqwest::Client,
    token: Option<String>,
    keys: Publisher,
    version: u64,
    tags: BTreeMap<String, FileMeta>,
}

/// What one server measured.
struct Figures {
    first_publish_us: Vec<u64>,
    publishes: u64,
    publish_elapsed: Duration,
    publish_us: Vec<u64>,
    reads: u64,
    read_elapsed: Duration,
    read_us: Vec<u64>,
    rss_bytes: u64,
}

/// Finds `notary-server`, or says how to get it.
pub fn peer_binary(no_peer: bool) -> anyhow::Result<Option<PathBuf>> {
    if no_peer {
        return Ok(None);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("notary-server"))
        .find(|c| c.is_file())
        .map(Some)
        .context(
            "`notary-server` is not on the PATH: the trust benchmark compares Capstan with \
             Notary; install it (Debian: `apt-get install notary`) or pass --no-peer",
        )
}

/// Runs the benchmark under `work` and prints the JSON report.
pub async fn run(
    work: &Path,
    ports: &mut Ports,
    seconds: u64,
    peer: Option<PathBuf>,
) -> anyhow::Result<()> {
    let phase = Duration::from_secs(seconds);
    eprintln!("bench: trust: starting capstan up under {}", work.display());
    let capstan = {
        let dir = work.join("capstan");
        std::fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
        let (process, server) = start_capstan(&dir, ports).await?;
        measure("capstan", &process, &server, phase).await?
    };
    let notary = match peer {
        Some(bin) => {
            let dir = work.join("notary-server");
            std::fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
            let (process, server) = start_notary(&bin, &dir, ports).await?;
            Some(measure("notary-server", &process, &server, phase).await?)
        }
        None => None,
    };
    let ratio = notary.as_ref().map(|n| {
        json!({
            "better": "higher for rates, lower for latencies and memory",
            "publishes_per_s": stats::round(rate(capstan.publishes, capstan.publish_elapsed) / rate(n.publishes, n.publish_elapsed), 2),
            "publish_p50": stats::round(p(&capstan.publish_us, 50.0) / p(&n.publish_us, 50.0), 2),
            "reads_per_s": stats::round(rate(capstan.reads, capstan.read_elapsed) / rate(n.reads, n.read_elapsed), 2),
            "read_p50": stats::round(p(&capstan.read_us, 50.0) / p(&n.read_us, 50.0), 2),
            "rss": stats::round(capstan.rss_bytes as f64 / n.rss_bytes.max(1) as f64, 2),
        })
    });
    let report = json!({
        "benchmark": "trust",
        "settings": {
            "repositories": REPOS,
            "clients": REPOS,
            "seconds_per_phase": seconds,
            "tags_kept": KEPT_TAGS,
            "client_model": "closed loop: one client per repository, its own connection, one request in flight",
            "publish": "targets signed with ECDSA P-256; the server signs snapshot and timestamp",
            "read": "GET timestamp.json then targets.json",
            "storage": {
                "capstan": "sled, flushed before each publish is answered",
                "notary-server": "its in-memory store (not durable)",
            },
            "auth": {"capstan": "registry bearer token", "notary-server": "none"},
        },
        "capstan": capstan.json(),
        "notary-server": notary.as_ref().map(Figures::json),
        "ratio": ratio,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn rate(ops: u64, elapsed: Duration) -> f64 {
    stats::per_sec(ops, elapsed)
}

fn p(samples: &[u64], pct: f64) -> f64 {
    let mut s = samples.to_vec();
    s.sort_unstable();
    stats::percentile(&s, pct).unwrap_or(0) as f64
}

impl Figures {
    fn json(&self) -> Value {
        let lat = |s: &[u64]| {
            json!({
                "p50_ms": stats::ms_from_us(p(s, 50.0) as u64),
                "p99_ms": stats::ms_from_us(p(s, 99.0) as u64),
            })
        };
        json!({
            "first_publish": lat(&self.first_publish_us),
            "publish": {
                "count": self.publishes,
                "per_s": rate(self.publishes, self.publish_elapsed),
                "latency": lat(&self.publish_us),
            },
            "read": {
                "count": self.reads,
                "per_s": rate(self.reads, self.read_elapsed),
                "latency": lat(&self.read_us),
            },
            "rss_mib": stats::mib(self.rss_bytes),
        })
    }
}

async fn start_capstan(dir: &Path, ports: &mut Ports) -> anyhow::Result<(Process, Server)> {
    let up = super::registry::start_up(dir, ports).await?;
    let server = Server {
        base: format!("https://127.0.0.1:{}", up.registry),
        tls: up.tls,
        host: format!("127.0.0.1:{}", up.registry),
        login: Some(("admin".into(), up.password)),
    };
    wait_ready(&server, "/v2/", &up.process).await?;
    Ok((up.process, server))
}

async fn start_notary(
    bin: &Path,
    dir: &Path,
    ports: &mut Ports,
) -> anyhow::Result<(Process, Server)> {
    let mut version = Command::new(bin);
    version.arg("-version");
    let v = run_to_end("notary-server -version", version, Duration::from_secs(10)).await?;
    eprintln!("bench: trust: starting {}", v.trim());
    let (ca, cert_path, key_path) = super::docker_registry::peer_certificate(dir, "notary-server")?;
    let port = ports.free()?;
    let config = json!({
        "server": {
            "http_addr": format!("127.0.0.1:{port}"),
            "tls_cert_file": cert_path,
            "tls_key_file": key_path,
        },
        "trust_service": {"type": "local", "hostname": "", "port": "", "key_algorithm": "ecdsa"},
        "storage": {"backend": "memory"},
        "logging": {"level": "error"},
    });
    let config_path = dir.join("server.json");
    std::fs::write(&config_path, config.to_string()).context("write the peer's configuration")?;
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .arg("-config")
        .arg(&config_path);
    let process = Process::spawn("notary-server", cmd, &dir.join("notary-server.log"))?;
    let server = Server {
        base: format!("https://127.0.0.1:{port}"),
        tls: client_config(ca.cert_pem().as_bytes())?,
        host: format!("127.0.0.1:{port}"),
        login: None,
    };
    wait_ready(&server, "/_notary_server/health", &process).await?;
    Ok((process, server))
}

async fn wait_ready(server: &Server, path: &str, process: &Process) -> anyhow::Result<()> {
    let client = http_client(server)?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(r) = client.get(format!("{}{path}", server.base)).send().await {
            if r.status() == StatusCode::OK || r.status() == StatusCode::UNAUTHORIZED {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!(
                "the server never answered; its log ends with:\n{}",
                process.log_tail(30)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn http_client(server: &Server) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls((*server.tls).clone())
        .timeout(Duration::from_secs(30))
        .build()?)
}

async fn measure(
    name: &str,
    process: &Process,
    server: &Server,
    phase: Duration,
) -> anyhow::Result<Figures> {
    eprintln!("bench: trust: {name}: first publish of {REPOS} repositories");
    let mut repos = Vec::with_capacity(REPOS);
    let mut first_publish_us = Vec::new();
    for i in 0..REPOS {
        let started = Instant::now();
        repos.push(init_repo(server, i).await?);
        first_publish_us.push(started.elapsed().as_micros() as u64);
    }

    eprintln!("bench: trust: {name}: publishing for {}s", phase.as_secs());
    let base = Arc::new(server.base.clone());
    let started = Instant::now();
    let deadline = started + phase;
    let tasks: Vec<_> = repos
        .into_iter()
        .map(|mut repo| {
            let base = base.clone();
            tokio::spawn(async move {
                let mut us = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    publish_next(&base, &mut repo).await?;
                    us.push(t.elapsed().as_micros() as u64);
                }
                anyhow::Ok((repo, us))
            })
        })
        .collect();
    let mut repos = Vec::new();
    let mut publish_us = Vec::new();
    for t in tasks {
        let (repo, us) = t.await.context("a publishing client")??;
        publish_us.extend(us);
        repos.push(repo);
    }
    let publish_elapsed = started.elapsed();

    eprintln!("bench: trust: {name}: reading for {}s", phase.as_secs());
    let started = Instant::now();
    let deadline = started + phase;
    let tasks: Vec<_> = repos
        .into_iter()
        .map(|repo| {
            let base = base.clone();
            tokio::spawn(async move {
                let mut us = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    for file in ["timestamp.json", "targets.json"] {
                        get(&base, &repo, file).await?;
                    }
                    us.push(t.elapsed().as_micros() as u64);
                }
                anyhow::Ok(us)
            })
        })
        .collect();
    let mut read_us = Vec::new();
    for t in tasks {
        read_us.extend(t.await.context("a reading client")??);
    }
    let read_elapsed = started.elapsed();
    Ok(Figures {
        first_publish_us,
        publishes: publish_us.len() as u64,
        publish_elapsed,
        publish_us,
        reads: read_us.len() as u64,
        read_elapsed,
        read_us,
        rss_bytes: process.rss_bytes()?,
    })
}

/// Makes repository `i`: the server's keys, then root and targets v1.
async fn init_repo(server: &Server, i: usize) -> anyhow::Result<Repo> {
    let gun = format!("{}/admin/trust-bench-{i}", server.host);
    let client = http_client(server)?;
    let token = match &server.login {
        Some((user, password)) => {
            let resp = client
                .get(format!("{}/auth/token", server.base))
                .query(&[("scope", format!("repository:{gun}:push,pull"))])
                .basic_auth(user, Some(password))
                .send()
                .await?;
            ensure!(resp.status().is_success(), "token: {}", resp.status());
            let v: Value = serde_json::from_slice(&resp.bytes().await?)?;
            Some(v["token"].as_str().context("no token")?.to_string())
        }
        None => None,
    };
    // Notary's server accepts a root key only as a certificate for the GUN;
    // Capstan's takes either, so both get the certificate.
    let keys = Publisher::generate()?;
    let cert = root_certificate(&keys, &gun)?;
    let mut repo = Repo {
        gun,
        client,
        token,
        keys: keys.with_root_certificate(&cert),
        version: 0,
        tags: BTreeMap::new(),
    };
    let base = server.base.clone();
    let ts: PublicKey = serde_json::from_slice(&get(&base, &repo, "timestamp.key").await?)?;
    let snap: PublicKey = serde_json::from_slice(&get(&base, &repo, "snapshot.key").await?)?;
    let root = repo
        .keys
        .root(1, 3650, &ts, &snap, OffsetDateTime::now_utc())?;
    repo.version = 1;
    repo.tags.insert("v1".into(), FileMeta::of(b"v1"));
    let t = targets(
        1,
        365,
        &repo.tags,
        &[],
        &repo.keys.targets,
        OffsetDateTime::now_utc(),
    )?;
    post(&base, &repo, vec![("root", root), ("targets", t)]).await?;
    Ok(repo)
}

async fn publish_next(base: &str, repo: &mut Repo) -> anyhow::Result<()> {
    repo.version += 1;
    let tag = format!("v{}", repo.version);
    let manifest = tag.clone().into_bytes();
    repo.tags.insert(tag, FileMeta::of(&manifest));
    while repo.tags.len() > KEPT_TAGS {
        let oldest = repo
            .tags
            .keys()
            .min_by_key(|t| t.trim_start_matches('v').parse::<u64>().unwrap_or(0))
            .cloned()
            .unwrap_or_default();
        repo.tags.remove(&oldest);
    }
    let t = targets(
        repo.version,
        365,
        &repo.tags,
        &[],
        &repo.keys.targets,
        OffsetDateTime::now_utc(),
    )?;
    post(base, repo, vec![("targets", t)]).await
}

async fn get(base: &str, repo: &Repo, file: &str) -> anyhow::Result<Vec<u8>> {
    let mut req = repo
        .client
        .get(format!("{base}/v2/{}/_trust/tuf/{file}", repo.gun));
    if let Some(t) = &repo.token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await?;
    let status = resp.status();
    let body = resp.bytes().await?.to_vec();
    ensure!(
        status == StatusCode::OK,
        "GET {file}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    Ok(body)
}

async fn post(base: &str, repo: &Repo, files: Vec<(&str, Vec<u8>)>) -> anyhow::Result<()> {
    let mut form = reqwest::multipart::Form::new();
    for (role, bytes) in files {
        form = form.part(
            "files",
            reqwest::multipart::Part::bytes(bytes).file_name(role.to_string()),
        );
    }
    let mut req = repo
        .client
        .post(format!("{base}/v2/{}/_trust/tuf/", repo.gun))
        .multipart(form);
    if let Some(t) = &repo.token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await?;
    let status = resp.status();
    let body = resp.bytes().await?;
    ensure!(
        status == StatusCode::OK,
        "publish: {status} {}",
        String::from_utf8_lossy(&body)
    );
    Ok(())
}

/// A self-signed certificate of the publisher's root key with CN = `gun`,
/// valid ten years.
fn root_certificate(keys: &Publisher, gun: &str) -> anyhow::Result<String> {
    let pair = rcgen::KeyPair::try_from(keys.root.pkcs8()).context("the root key")?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, gun);
    let now = OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(3650);
    Ok(params.self_signed(&pair)?.pem())
}
