//! `capstan bench registry`: push and pull throughput of Capstan's registry
//! against Debian's `docker-registry` (distribution 2.8).
//!
//! Starts `capstan up` (a child process: control plane, gateway, local
//! agent and registry in one), installs a license so that the registry
//! accepts pushes, and drives it with the in-process client of
//! [`super::distribution`]: three pushes of distinct images of 10 random
//! layers of 20 MB, five single pulls, then 32 concurrent pulls. Then,
//! unless `--no-peer`, it does the same against `docker-registry` on
//! loopback ([`super::docker_registry`]) with its storage in the same
//! working directory, and prints the figures, the ratios and whether the
//! targets are met as one JSON document on stdout. The workload is fixed: `--seconds` does not apply.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use capstan_core::license::{trusted_keys, TEST_KEY_ID};
use capstan_manager::DataDir;
use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::distribution::{self, Blob, Endpoint, Image, Session};
use super::docker_registry;
use super::gateway::client_config;
use super::process::{disk_usage, machine_busy_seconds, process_cpu_seconds, Ports, Process};
use super::stats;

/// Layers per image.
pub const LAYERS: usize = 10;
/// Bytes per layer (20 MB; every MB here is 10^6 bytes).
pub const LAYER_BYTES: usize = 20_000_000;
/// Pushes measured, each of a distinct image (a registry keeps what it
/// has, so pushing the same image twice would upload nothing).
const PUSHES: usize = 3;
/// Single pulls measured, one after the other.
const SINGLE_PULLS: usize = 5;
/// Pulls at once in the concurrent phase.
const CONCURRENT_PULLS: usize = 32;
/// Blobs uploaded at once by one push (dockerd's `max-concurrent-uploads`).
const UPLOADS: usize = 5;
/// Blobs downloaded at once by one pull (dockerd's
/// `max-concurrent-downloads`).
const DOWNLOADS: usize = 3;
/// Capstan's repository; pushing into the admin's namespace creates it.
const REPO: &str = "admin/bench";
/// The longest wait for either system to answer after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The test license: a registry without a license refuses pushes, and
/// only builds with debug assertions trust its key.
const TEST_LICENSE: &[u8] = include_bytes!("../../../../capstan-core/tests/data/test-license.json");

/// What the benchmark needs before it starts anything, so that a missing
/// license or peer costs nothing.
pub struct Setup {
    license: Vec<u8>,
    license_key: String,
    peer: Option<PathBuf>,
}

/// Finds the license to install and the peer's binary, or says what is
/// missing and how to get it.
pub fn prepare(license: Option<&Path>, no_peer: bool) -> anyhow::Result<Setup> {
    let license = match license {
        Some(path) => {
            std::fs::read(path).with_context(|| format!("read the license {}", path.display()))?
        }
        None if trusted_keys().iter().any(|(id, _)| *id == TEST_KEY_ID) => TEST_LICENSE.to_vec(),
        None => bail!(
            "this capstan build trusts only the production license key, so it cannot install \
             the test license that the registry benchmark uses: Capstan's registry refuses \
             pushes without a license, and there would be no image to pull. Pass \
             `--license FILE` with a license signed by the production key, or run a build \
             that trusts the test key (one with debug assertions, e.g. \
             `CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true cargo build --release`; the report \
             then says `\"debug_assertions\": true`)"
        ),
    };
    let doc: Value = serde_json::from_slice(&license).context("the license is not JSON")?;
    let license_key = doc["key_id"]
        .as_str()
        .context("the license has no key_id")?
        .to_string();
    let peer = if no_peer {
        None
    } else {
        Some(docker_registry::binary()?)
    };
    Ok(Setup {
        license,
        license_key,
        peer,
    })
}

/// Runs the benchmark under `work` and prints the JSON report.
pub async fn run(work: &Path, ports: &mut Ports, setup: Setup) -> anyhow::Result<()> {
    eprintln!(
        "bench: registry: making {PUSHES} images of {LAYERS} random layers of {} MB",
        LAYER_BYTES / 1_000_000
    );
    let images = tokio::task::spawn_blocking(|| {
        (0..PUSHES)
            .map(|i| Image::random(i as u64, LAYERS, LAYER_BYTES))
            .collect::<Vec<_>>()
    })
    .await
    .context("make the images")?;

    eprintln!(
        "bench: registry: starting capstan up under {}",
        work.display()
    );
    let capstan = {
        let dir = work.join("capstan");
        std::fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
        let (process, endpoint) = start_capstan(&dir, ports, &setup.license).await?;
        let storage = dir.join("data").join("registry");
        measure("capstan", &process, &endpoint, &images, &storage).await?
        // `capstan up` is killed here, before the peer starts.
    };

    let peer = match &setup.peer {
        Some(bin) => {
            let version = docker_registry::version(bin).await?;
            eprintln!("bench: registry: starting {version}");
            let dir = work.join("docker-registry");
            std::fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
            let (process, endpoint) = docker_registry::start(bin, &dir, ports).await?;
            let storage = docker_registry::storage(&dir);
            let figures =
                measure("docker-registry", &process, &endpoint, &images, &storage).await?;
            Some((version, figures))
        }
        None => None,
    };

    let report = report(&setup, &capstan, peer.as_ref());
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// A `capstan up` started for a benchmark.
pub(super) struct Up {
    /// The process.
    pub process: Process,
    /// The generated admin password.
    pub password: String,
    /// TLS trusting the cluster CA.
    pub tls: Arc<rustls::ClientConfig>,
    /// The gateway's port.
    pub controller: u16,
    /// The registry's port.
    pub registry: u16,
}

/// Starts `capstan up` (control plane, gateway, agent and registry) on free
/// ports under `dir` and waits until it says it is ready.
pub(super) async fn start_up(dir: &Path, ports: &mut Ports) -> anyhow::Result<Up> {
    let data = DataDir::new(dir.join("data"));
    let exe = std::env::current_exe().context("find the capstan binary")?;
    let (swarm, controller, kube, registry) =
        (ports.free()?, ports.free()?, ports.free()?, ports.free()?);
    let mut cmd = Command::new(exe);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .arg("--data-dir")
        .arg(data.root())
        .arg("up")
        .args(["--swarm-port", &swarm.to_string()])
        .args(["--controller-port", &controller.to_string()])
        .args(["--kube-apiserver-port", &kube.to_string()])
        .args(["--registry-port", &registry.to_string()])
        .args(["--engine-proxy-port", "0"]);
    let mut process = Process::spawn("capstan up", cmd, &dir.join("capstan.log"))?;
    process.wait_for_line("try:", START_TIMEOUT).await?;
    let password = std::fs::read_to_string(data.root().join("admin-password"))
        .context("read the generated admin password")?
        .trim()
        .to_string();
    let ca = std::fs::read(data.ca_cert()).context("read the cluster CA")?;
    Ok(Up {
        process,
        password,
        tls: client_config(&ca)?,
        controller,
        registry,
    })
}

/// Starts `capstan up` with its registry on a free port, installs the
/// license, and returns the process and its registry.
async fn start_capstan(
    dir: &Path,
    ports: &mut Ports,
    license: &[u8],
) -> anyhow::Result<(Process, Endpoint)> {
    let up = start_up(dir, ports).await?;
    install_license(up.controller, &up.tls, &up.password, license).await?;
    let endpoint = Endpoint::new(
        &format!("https://127.0.0.1:{}/", up.registry),
        up.tls.clone(),
        Some(("admin".into(), up.password.clone())),
    )?;
    endpoint.wait_ready(START_TIMEOUT).await.with_context(|| {
        format!(
            "capstan's registry; its log ends with:\n{}",
            up.process.log_tail(30)
        )
    })?;
    Ok((up.process, endpoint))
}

/// Logs in to the gateway as the admin and installs `license`.
async fn install_license(
    controller: u16,
    tls: &Arc<rustls::ClientConfig>,
    password: &str,
    license: &[u8],
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .use_preconfigured_tls((**tls).clone())
        .build()?;
    let base = format!("https://127.0.0.1:{controller}");
    let login = json!({"username": "admin", "password": password}).to_string();
    // The gateway may still be binding its port when the manager is ready.
    let mut attempt = 0;
    let answer = loop {
        attempt += 1;
        let req = client
            .post(format!("{base}/auth/login"))
            .header(CONTENT_TYPE, "application/json")
            .body(login.clone());
        match distribution::expect(req, StatusCode::OK, "log in to the gateway").await {
            Ok(body) => break body,
            Err(e) if attempt >= 40 => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    };
    let answer: Value = serde_json::from_slice(&answer).context("the login answer is not JSON")?;
    let token = answer["auth_token"]
        .as_str()
        .context("the login answer has no auth_token")?;
    let req = client
        .put(format!("{base}/api/license"))
        .bearer_auth(token)
        .header(CONTENT_TYPE, "application/json")
        .body(license.to_vec());
    distribution::expect(req, StatusCode::OK, "PUT /api/license")
        .await
        .context("install the license that lets the registry accept pushes")?;
    Ok(())
}

/// What one system measured.
struct Figures {
    /// Blob bytes of one image.
    image_bytes: u64,
    pushes: Vec<Duration>,
    push_cpu: Cpu,
    pulls: Vec<Duration>,
    pull_cpu: Cpu,
    /// From the start of the 32 pulls to the end of the last.
    concurrent: Duration,
    /// Each of the 32 pulls, sorted.
    concurrent_each: Vec<Duration>,
    concurrent_cpu: Cpu,
    /// Resident memory once started, before the first push.
    rss_started_bytes: u64,
    /// `VmHWM` after the last pull.
    peak_rss_bytes: u64,
    /// The registry's storage on disk at the end.
    storage_bytes: u64,
}

/// Runs the workload against one system.
async fn measure(
    name: &str,
    process: &Process,
    endpoint: &Endpoint,
    images: &[Image],
    storage: &Path,
) -> anyhow::Result<Figures> {
    warm_up(endpoint).await.with_context(|| {
        format!(
            "push a first blob to {name}; its log ends with:\n{}",
            process.log_tail(30)
        )
    })?;
    let rss_started_bytes = process.rss_bytes()?;

    let mut pushes = Vec::new();
    let meter = CpuMeter::start(process)?;
    for (i, image) in images.iter().enumerate() {
        eprintln!("bench: registry: {name}: push {} of {PUSHES}", i + 1);
        let session = endpoint.session(REPO, "pull,push").await?;
        let started = Instant::now();
        session
            .push(image, &tag(i), UPLOADS)
            .await
            .with_context(|| format!("push image {i} to {name}"))?;
        pushes.push(started.elapsed());
    }
    let push_cpu = meter.stop()?;

    let image = &images[0];
    let mut pulls = Vec::new();
    let meter = CpuMeter::start(process)?;
    for i in 0..SINGLE_PULLS {
        eprintln!("bench: registry: {name}: pull {} of {SINGLE_PULLS}", i + 1);
        let session = endpoint.session(REPO, "pull").await?;
        let started = Instant::now();
        let got = session
            .pull(&tag(0), &image.manifest.digest, DOWNLOADS)
            .await
            .with_context(|| format!("pull from {name}"))?;
        pulls.push(started.elapsed());
        ensure!(got == image.blob_bytes(), "a pull received {got} bytes");
    }
    let pull_cpu = meter.stop()?;

    eprintln!("bench: registry: {name}: {CONCURRENT_PULLS} concurrent pulls");
    let mut sessions = Vec::new();
    for _ in 0..CONCURRENT_PULLS {
        sessions.push(endpoint.session(REPO, "pull").await?);
    }
    let meter = CpuMeter::start(process)?;
    let started = Instant::now();
    let pulling: Vec<_> = sessions
        .into_iter()
        .map(|session| {
            let digest = image.manifest.digest.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                session.pull(&tag(0), &digest, DOWNLOADS).await?;
                anyhow::Ok(started.elapsed())
            })
        })
        .collect();
    let mut concurrent_each = Vec::new();
    for pull in pulling {
        concurrent_each.push(
            pull.await?
                .with_context(|| format!("concurrent pull from {name}"))?,
        );
    }
    let concurrent = started.elapsed();
    let concurrent_cpu = meter.stop()?;
    concurrent_each.sort_unstable();

    Ok(Figures {
        image_bytes: image.blob_bytes(),
        pushes,
        push_cpu,
        pulls,
        pull_cpu,
        concurrent,
        concurrent_each,
        concurrent_cpu,
        rss_started_bytes,
        peak_rss_bytes: process.peak_rss_bytes()?,
        storage_bytes: disk_usage(storage)?,
    })
}

/// CPU seconds a phase cost the registry, this process (the client) and
/// everything else on the machine: the clients share the cores with the
/// server, and anything else running spoils the figures.
#[derive(Clone, Copy)]
struct Cpu {
    server: f64,
    client: f64,
    others: f64,
}

impl Cpu {
    fn json(&self) -> Value {
        json!({
            "server": stats::round(self.server, 2),
            "client": stats::round(self.client, 2),
            "others": stats::round(self.others, 2),
        })
    }
}

/// CPU times at the start of a phase.
struct CpuMeter {
    pid: u32,
    server: f64,
    client: f64,
    machine: f64,
}

impl CpuMeter {
    fn start(server: &Process) -> anyhow::Result<CpuMeter> {
        Ok(CpuMeter {
            pid: server.pid(),
            server: server.cpu_seconds()?,
            client: process_cpu_seconds(std::process::id())?,
            machine: machine_busy_seconds()?,
        })
    }

    fn stop(self) -> anyhow::Result<Cpu> {
        let server = process_cpu_seconds(self.pid)? - self.server;
        let client = process_cpu_seconds(std::process::id())? - self.client;
        let machine = machine_busy_seconds()? - self.machine;
        Ok(Cpu {
            server,
            client,
            others: (machine - server - client).max(0.0),
        })
    }
}

fn tag(i: usize) -> String {
    format!("v{i}")
}

/// Pushes a small blob, retrying for a while: Capstan's registry caches
/// the license it decides with for a moment after it is installed. Also
/// warms both systems' connections and caches equally.
async fn warm_up(endpoint: &Endpoint) -> anyhow::Result<()> {
    let probe = Blob::new(b"capstan bench registry: warm-up".to_vec());
    let started = Instant::now();
    loop {
        let session: Session = endpoint.session(REPO, "pull,push").await?;
        match session.push_blob(&probe).await {
            Ok(()) => return Ok(()),
            Err(e) if started.elapsed() > Duration::from_secs(15) => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// The middle of an odd number of durations.
fn median(durations: &[Duration]) -> Duration {
    let mut sorted = durations.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

/// Decimal megabytes per second.
fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    stats::round(bytes as f64 / 1e6 / secs, 1)
}

fn secs(d: Duration) -> f64 {
    stats::round(d.as_secs_f64(), 3)
}

impl Figures {
    fn push_mb_per_s(&self) -> f64 {
        mb_per_s(self.image_bytes, median(&self.pushes))
    }

    fn pull_mb_per_s(&self) -> f64 {
        mb_per_s(self.image_bytes, median(&self.pulls))
    }

    fn concurrent_mb_per_s(&self) -> f64 {
        mb_per_s(self.image_bytes * CONCURRENT_PULLS as u64, self.concurrent)
    }

    fn json(&self, process: &str) -> Value {
        let each = |p: f64| {
            let micros: Vec<u64> = self
                .concurrent_each
                .iter()
                .map(|d| d.as_micros() as u64)
                .collect();
            stats::percentile(&micros, p).map(|us| stats::round(us as f64 / 1e6, 3))
        };
        json!({
            "push": {
                "seconds": secs(median(&self.pushes)),
                "mb_per_s": self.push_mb_per_s(),
                "runs_s": self.pushes.iter().copied().map(secs).collect::<Vec<_>>(),
                "cpu_s": self.push_cpu.json(),
            },
            "pull": {
                "seconds": secs(median(&self.pulls)),
                "mb_per_s": self.pull_mb_per_s(),
                "runs_s": self.pulls.iter().copied().map(secs).collect::<Vec<_>>(),
                "cpu_s": self.pull_cpu.json(),
            },
            "concurrent_pulls": {
                "pulls": CONCURRENT_PULLS,
                "seconds": secs(self.concurrent),
                "aggregate_mb_per_s": self.concurrent_mb_per_s(),
                "each_pull_s": {"p50": each(50.0), "max": each(100.0)},
                "cpu_s": self.concurrent_cpu.json(),
            },
            "memory": {
                "process": process,
                "rss_started_mib": stats::mib(self.rss_started_bytes),
                "peak_rss_mib": stats::mib(self.peak_rss_bytes),
            },
            "storage_mib": stats::mib(self.storage_bytes),
        })
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    stats::round(a / b.max(f64::MIN_POSITIVE), 2)
}

fn report(setup: &Setup, capstan: &Figures, peer: Option<&(String, Figures)>) -> Value {
    let ratios = peer.map(|(_, p)| {
        json!({
            "push_mb_per_s": ratio(capstan.push_mb_per_s(), p.push_mb_per_s()),
            "pull_mb_per_s": ratio(capstan.pull_mb_per_s(), p.pull_mb_per_s()),
            "concurrent_pull_mb_per_s": ratio(capstan.concurrent_mb_per_s(), p.concurrent_mb_per_s()),
            "peak_rss": ratio(capstan.peak_rss_bytes as f64, p.peak_rss_bytes as f64),
        })
    });
    let target = |met: fn(&Figures, &Figures) -> bool| peer.map(|(_, p)| met(capstan, p));
    json!({
        "benchmark": "registry",
        "settings": {
            "image": format!("{LAYERS} layers x {} MB of random bytes and a config blob ({} bytes in all), Docker schema 2 manifest", LAYER_BYTES / 1_000_000, capstan.image_bytes),
            "megabyte": "10^6 bytes",
            "pushes": format!("{PUSHES} distinct images one after the other, {UPLOADS} blobs at a time (dockerd's default); median reported"),
            "pulls": format!("{SINGLE_PULLS} one after the other, {DOWNLOADS} blobs at a time (dockerd's default); median reported"),
            "concurrent_pulls": format!("{CONCURRENT_PULLS} at once, each with its own client and connections, {DOWNLOADS} blobs at a time"),
            "client": "in this process: reqwest with rustls over HTTP/1.1; blobs pushed as docker does (POST, one PATCH with the data, PUT ?digest=); every pulled blob's size and sha256 checked as it streams; tokens fetched before each timed window",
            "cpu_s": "CPU seconds of each phase (all its runs) used by the registry process (server), this process (client: TLS, hashing) and everything else on the machine (others: should be near 0)",
            "storage": "both registries under the same working directory (same disk); pulls read what the pushes just wrote, so from the page cache",
            "capstan": "capstan up (one process: control plane, gateway, local agent, registry); HTTPS with the cluster CA; Docker token authentication as admin; blobs fsynced before they appear",
            "peer": peer.map(|(v, _)| format!("{v}: HTTPS with a CA made for the run; no authentication; filesystem storage with the in-memory blob descriptor cache; no fsync")),
        },
        "build": {
            "debug_assertions": cfg!(debug_assertions),
            "license_key": setup.license_key,
        },
        "machine": super::machine(),
        "capstan": capstan.json("capstan up: the whole process (control plane, gateway, local agent and registry)"),
        "docker_registry": peer.map(|(_, p)| p.json("docker-registry")),
        "ratio_capstan_over_peer": ratios,
        "targets": {
            "pull_mb_per_s_at_least_1_5x_peer": target(|c, p| c.pull_mb_per_s() >= 1.5 * p.pull_mb_per_s()),
            "concurrent_pull_mb_per_s_at_least_1_5x_peer": target(|c, p| c.concurrent_mb_per_s() >= 1.5 * p.concurrent_mb_per_s()),
            "push_mb_per_s_at_least_peer": target(|c, p| c.push_mb_per_s() >= p.push_mb_per_s()),
            "peak_rss_at_most_peer": target(|c, p| c.peak_rss_bytes <= p.peak_rss_bytes),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throughput_in_decimal_megabytes() {
        assert_eq!(mb_per_s(200_000_000, Duration::from_secs(2)), 100.0);
        assert_eq!(mb_per_s(1, Duration::ZERO), 0.0);
        let runs = [3, 1, 2].map(Duration::from_secs);
        assert_eq!(median(&runs), Duration::from_secs(2));
    }

    #[test]
    fn the_test_license_is_one_the_test_key_signed() {
        let keys = [(TEST_KEY_ID, capstan_core::license::TEST_PUBLIC_KEY)];
        let lic = capstan_core::license::parse_and_verify(TEST_LICENSE, &keys)
            .expect("the embedded test license verifies");
        assert_eq!(lic.key_id, TEST_KEY_ID);
    }
}
