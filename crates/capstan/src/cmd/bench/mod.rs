//! `capstan bench schedule`, `authz`, `gateway`, `proxy`, `registry`,
//! `trust` and `dashboard`: see those modules (`registry` drives the registries through
//! `distribution`, its peer is in `docker_registry`).
//!
//! `capstan bench store`: a three-manager Capstan cluster on loopback,
//! then (unless `--no-peer`) a three-member etcd cluster, both driven with
//! the same workload; progress on stderr, the figures as one JSON document
//! on stdout. Every process it starts is killed when it ends, however it
//! ends.
//!
//! Map of modules: `cluster` and `etcd` start the two systems, `suite` is
//! the sequence of measurements, `workload` the clients, `report` the JSON
//! document, `stats` percentiles and units, `process` the child processes.

mod authz;
mod cluster;
mod dashboard;
mod distribution;
mod docker_registry;
mod etcd;
mod gateway;
mod process;
mod proxy;
mod registry;
mod report;
mod schedule;
mod stats;
mod suite;
mod trust;
mod workload;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};

use self::cluster::CapstanCluster;
use self::etcd::EtcdCluster;
use self::process::Ports;
use self::report::{Figures, Machine, Ratios, Report, Settings, Targets, Transport};
use self::suite::{Plan, GROWTH_CLIENTS, READ_CLIENTS, WRITE_CLIENTS};
use crate::cli::{BenchArgs, ClientsOn};

/// `capstan bench <what>`.
pub async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    if args.what == "schedule" {
        return tokio::select! {
            result = schedule_bench(&args) => result,
            signal = interrupted() => {
                signal?;
                bail!("interrupted; every process the benchmark started was killed")
            }
        };
    }
    if args.seconds == 0 {
        bail!("--seconds must be at least 1");
    }
    match args.what.as_str() {
        "store" => {}
        "authz" => return authz::run(),
        "dashboard" | "trust" => {
            // Before anything starts, so a missing peer costs nothing.
            let peer = if args.what == "trust" {
                Some(trust::peer_binary(args.no_peer)?)
            } else {
                None
            };
            let work = tempfile::Builder::new()
                .prefix("capstan-bench-")
                .disable_cleanup(args.keep_work_dir)
                .tempdir()
                .context("create the benchmark's temporary directory")?;
            let mut ports = Ports::default();
            let run = async {
                match peer {
                    Some(peer) => trust::run(work.path(), &mut ports, args.seconds, peer).await,
                    None => dashboard::run(work.path(), &mut ports).await,
                }
            };
            return tokio::select! {
                result = run => result,
                signal = interrupted() => {
                    signal?;
                    bail!("interrupted; every process the benchmark started was killed")
                }
            };
        }
        "gateway" | "proxy" | "registry" => {
            // Before anything starts, so a missing license or peer costs nothing.
            let registry_setup = if args.what == "registry" {
                Some(registry::prepare(args.license.as_deref(), args.no_peer)?)
            } else {
                None
            };
            let mut builder = tempfile::Builder::new();
            builder
                .prefix("capstan-bench-")
                .disable_cleanup(args.keep_work_dir);
            let work = match (&args.work_dir, &registry_setup) {
                // The registries' storage is what `--work-dir` places on a disk.
                (Some(dir), Some(_)) => builder.tempdir_in(dir),
                _ => builder.tempdir(),
            }
            .context("create the benchmark's temporary directory")?;
            let mut ports = Ports::default();
            let run = async {
                match registry_setup {
                    Some(setup) => registry::run(work.path(), &mut ports, setup).await,
                    None if args.what == "proxy" => {
                        proxy::run(work.path(), &mut ports, args.seconds).await
                    }
                    None => gateway::run(work.path(), &mut ports, args.seconds).await,
                }
            };
            return tokio::select! {
                result = run => result,
                signal = interrupted() => {
                    signal?;
                    bail!("interrupted; every process the benchmark started was killed")
                }
            };
        }
        other => {
            bail!("unknown benchmark {other:?}: expected `store`, `schedule`, `authz`, `gateway`, `proxy`, `registry`, `trust` or `dashboard`")
        }
    }
    // Before anything starts, so a missing etcd costs nothing.
    let etcd_bin = if args.no_peer {
        None
    } else {
        Some(etcd::binary()?)
    };
    tokio::select! {
        result = store(&args, etcd_bin) => result,
        signal = interrupted() => {
            signal?;
            bail!("interrupted; every process the benchmark started was killed")
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM, so that the benchmark's future is dropped
/// and its processes killed instead of left running.
async fn interrupted() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("watch SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("watch Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}

async fn schedule_bench(args: &BenchArgs) -> anyhow::Result<()> {
    let work = tempfile::Builder::new()
        .prefix("capstan-bench-")
        .disable_cleanup(args.keep_work_dir)
        .tempdir()
        .context("create the benchmark's temporary directory")?;
    schedule::run(work.path(), &mut Ports::default(), args.no_peer).await
}

async fn store(args: &BenchArgs, etcd_bin: Option<PathBuf>) -> anyhow::Result<()> {
    let plan = Plan {
        phase: Duration::from_secs(args.seconds),
        clients_on: args.clients_on,
        growth_writes: args.growth_writes,
    };
    let mut builder = tempfile::Builder::new();
    builder
        .prefix("capstan-bench-")
        .disable_cleanup(args.keep_work_dir);
    let work = match &args.work_dir {
        Some(dir) => builder.tempdir_in(dir),
        None => builder.tempdir(),
    }
    .context("create the benchmark's temporary directory")?;
    let mut ports = Ports::default();

    eprintln!(
        "bench: starting 3 Capstan managers under {}",
        work.path().display()
    );
    let capstan = {
        let root = work.path().join("capstan");
        std::fs::create_dir(&root).with_context(|| format!("create {}", root.display()))?;
        let mut cluster = CapstanCluster::start(&root, &mut ports).await?;
        suite::run(&mut cluster, &plan).await?
        // The cluster is dropped here: its managers are killed before etcd starts.
    };

    let etcd = match etcd_bin {
        Some(bin) => {
            eprintln!("bench: starting 3 etcd members ({})", bin.display());
            let root = work.path().join("etcd");
            std::fs::create_dir(&root).with_context(|| format!("create {}", root.display()))?;
            let mut cluster = EtcdCluster::start(&bin, &root, &mut ports).await?;
            Some(suite::run(&mut cluster, &plan).await?)
        }
        None => None,
    };

    let report = build_report(args, capstan, etcd);
    println!(
        "{}",
        serde_json::to_string_pretty(&report).context("render the report")?
    );
    Ok(())
}

fn build_report(args: &BenchArgs, capstan: Figures, etcd: Option<Figures>) -> Report {
    Report {
        benchmark: "store",
        settings: Settings {
            members: 3,
            seconds_per_phase: args.seconds,
            value_bytes: workload::VALUE_BYTES,
            clients_connect_to: match args.clients_on {
                ClientsOn::Leader => "leader",
                ClientsOn::All => "all",
            },
            write_clients: WRITE_CLIENTS.to_vec(),
            read_clients: READ_CLIENTS,
            read_consistency: "linearizable",
            growth_writes: args.growth_writes,
            growth_clients: GROWTH_CLIENTS,
            failover_probe_interval_ms: workload::PROBE_INTERVAL.as_millis() as u64,
            client_model:
                "closed loop: each client has its own connection and one request in flight",
            transport: Transport {
                capstan: "gRPC over mutual TLS (the cluster API as managers call it)",
                etcd: "gRPC over plaintext HTTP/2 (etcd's default listeners)",
            },
        },
        machine: machine(),
        ratio: etcd.as_ref().map(|e| Ratios::new(&capstan, e)),
        targets: Targets::new(&capstan, etcd.as_ref()),
        capstan,
        etcd,
    }
}

/// What this machine is, as far as the figures depend on it.
fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Machine {
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        cpu_model,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|k| k.trim().to_string())
            .unwrap_or_else(|_| "unknown".into()),
        memory_mb: stats::mib(memory_kb * 1024),
    }
}
