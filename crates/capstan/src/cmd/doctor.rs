//! `capstan doctor`: checks this node — its certificates, disk, Docker
//! engine, ports, the managers it needs and (on a manager) Raft and clock
//! skew — and says for each problem what to do.

use std::time::Duration;

use capstan_core::NodeRole;
use capstan_manager::{DataDir, NodeConfig};
use capstan_proto::v1 as pb;
use serde::Serialize;
use time::OffsetDateTime;

use crate::cli::DoctorArgs;
use crate::output::table;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
enum Level {
    Ok,
    Warn,
    Fail,
}

/// One check's outcome.
#[derive(Debug, Serialize)]
struct Finding {
    check: String,
    level: Level,
    detail: String,
    /// What to do (empty when all is well).
    fix: String,
}

fn finding(check: &str, level: Level, detail: String, fix: &str) -> Finding {
    Finding {
        check: check.into(),
        level,
        detail,
        fix: if level == Level::Ok {
            String::new()
        } else {
            fix.into()
        },
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Clock skew beyond which tokens and certificates misbehave.
const SKEW_WARN_MS: i64 = 2_000;
const SKEW_FAIL_MS: i64 = 30_000;

fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or_default()
}

fn certificate(check: &str, path: &std::path::Path, warn_days: i64, fix: &str) -> Finding {
    let pem = match std::fs::read_to_string(path) {
        Ok(p) => p,
        Err(e) => {
            return finding(
                check,
                Level::Fail,
                format!("cannot read {}: {e}", path.display()),
                fix,
            )
        }
    };
    match capstan_pki::cert_not_after(&pem) {
        Ok(not_after) => {
            let left = (not_after - OffsetDateTime::now_utc()).whole_days();
            let level = if left < 0 {
                Level::Fail
            } else if left < warn_days {
                Level::Warn
            } else {
                Level::Ok
            };
            finding(
                check,
                level,
                format!("expires {not_after} ({left} days left)"),
                fix,
            )
        }
        Err(e) => finding(check, Level::Fail, format!("{}: {e}", path.display()), fix),
    }
}

async fn disk(root: &std::path::Path) -> Finding {
    let (free, total) = capstan_agent::disk_space(root).await;
    let fix = "free space on the data directory's file system (old images: `docker image prune`; logs), or move the data directory to a larger disk";
    if total == 0 {
        return finding(
            "disk",
            Level::Warn,
            format!("cannot measure the file system of {}", root.display()),
            fix,
        );
    }
    let percent = free as f64 * 100.0 / total as f64;
    let level = if free < (512 << 20) || percent < 2.0 {
        Level::Fail
    } else if free < (2 << 30) || percent < 10.0 {
        Level::Warn
    } else {
        Level::Ok
    };
    finding(
        "disk",
        level,
        format!(
            "{} MiB free of {} MiB ({percent:.0}%) under {}",
            free >> 20,
            total >> 20,
            root.display()
        ),
        fix,
    )
}

async fn docker(config: &NodeConfig) -> Finding {
    let fix = "start the Docker engine (`systemctl start docker`) or point DOCKER_HOST at it";
    // Managers made by install or join run no agent: their engine is optional.
    let missing = if config.role == NodeRole::Worker {
        Level::Fail
    } else {
        Level::Warn
    };
    let described = async {
        capstan_agent::Executor::connect(config.node_id)
            .await?
            .describe(&config.hostname)
            .await
    };
    match tokio::time::timeout(Duration::from_secs(10), described).await {
        Ok(Ok(d)) => finding(
            "docker",
            Level::Ok,
            format!(
                "engine {} on {} ({}), kernel {}",
                d.engine_version, d.os, d.arch, d.kernel_version
            ),
            fix,
        ),
        Ok(Err(e)) => finding("docker", missing, format!("not reachable: {e}"), fix),
        Err(_) => finding("docker", missing, "no answer within 10s".into(), fix),
    }
}

async fn port(check: &str, addr: String, fix: &str) -> Finding {
    match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(&addr)).await {
        Ok(Ok(_)) => finding(check, Level::Ok, format!("{addr} accepts connections"), fix),
        Ok(Err(e)) => finding(check, Level::Fail, format!("{addr}: {e}"), fix),
        Err(_) => finding(
            check,
            Level::Fail,
            format!("{addr}: no answer within {CONNECT_TIMEOUT:?}"),
            fix,
        ),
    }
}

/// Raft health and every other manager's clock, as this manager sees them.
async fn raft_and_clocks(dir: &DataDir, out: &mut Vec<Finding>) {
    let fix = "start the manager (`capstan manager`, or its systemd unit) and read its log";
    let mut client = match capstan_manager::client::connect(dir, None).await {
        Ok(c) => c,
        Err(e) => {
            out.push(finding("raft", Level::Fail, e.to_string(), fix));
            return;
        }
    };
    let status = match client.status(pb::StatusRequest {}).await {
        Ok(s) => s.into_inner(),
        Err(e) => {
            out.push(finding("raft", Level::Fail, e.message().into(), fix));
            return;
        }
    };
    let voters = status.members.iter().filter(|m| m.voter).count();
    let unreachable: Vec<&str> = status
        .members
        .iter()
        .filter(|m| !m.reachable && m.node_id != status.node_id)
        .map(|m| m.hostname.as_str())
        .collect();
    let quorum = voters / 2 + 1;
    let (level, detail) = if status.leader_id.is_empty() {
        (Level::Fail, format!("no leader among {voters} managers"))
    } else if voters - unreachable.len() < quorum {
        (
            Level::Fail,
            format!(
                "quorum lost: {} of {voters} managers unreachable ({})",
                unreachable.len(),
                unreachable.join(", ")
            ),
        )
    } else if !unreachable.is_empty() {
        (
            Level::Warn,
            format!(
                "{} of {voters} managers unreachable ({}); quorum needs {quorum}",
                unreachable.len(),
                unreachable.join(", ")
            ),
        )
    } else {
        (
            Level::Ok,
            format!(
                "{voters} managers reachable, term {}, applied index {}",
                status.term, status.applied_index
            ),
        )
    };
    out.push(finding(
        "raft",
        level,
        detail,
        "start the unreachable managers, or remove lost ones with `capstan node rm` while a quorum is left",
    ));
    for m in status
        .members
        .iter()
        .filter(|m| m.node_id != status.node_id)
    {
        let Ok(mut peer) = capstan_manager::client::lazy(dir, &m.addr) else {
            continue;
        };
        let sent = now_ms();
        let ping = tokio::time::timeout(CONNECT_TIMEOUT, peer.ping(pb::PingRequest {})).await;
        let received = now_ms();
        let check = format!("clock {}", m.hostname);
        let fix = "run NTP (chrony or systemd-timesyncd) on every node";
        match ping {
            Ok(Ok(p)) if p.get_ref().unix_ms > 0 => {
                let skew = p.get_ref().unix_ms - (sent + received) / 2;
                let level = match skew.abs() {
                    s if s > SKEW_FAIL_MS => Level::Fail,
                    s if s > SKEW_WARN_MS => Level::Warn,
                    _ => Level::Ok,
                };
                out.push(finding(
                    &check,
                    level,
                    format!(
                        "{skew:+} ms against this node (round trip {} ms)",
                        received - sent
                    ),
                    fix,
                ));
            }
            Ok(Ok(_)) => out.push(finding(
                &check,
                Level::Warn,
                "its version does not report its clock".into(),
                "upgrade it",
            )),
            _ => out.push(finding(
                &check,
                Level::Warn,
                "unreachable: clock not compared".into(),
                fix,
            )),
        }
    }
}

/// `capstan doctor`.
pub async fn doctor(dir: &DataDir, args: DoctorArgs) -> anyhow::Result<()> {
    let mut out = Vec::new();
    if !dir.is_installed() {
        out.push(finding(
            "node",
            Level::Fail,
            format!("no Capstan node in {}", dir.root().display()),
            "install or join one (`capstan install`, `capstan join`), or pass --data-dir",
        ));
    } else {
        let config = NodeConfig::load(&dir.config())?;
        out.push(finding(
            "node",
            Level::Ok,
            format!(
                "{} {} of cluster {} ({} {})",
                config.role,
                config.node_id,
                config.cluster_id,
                config.hostname,
                config.host_address
            ),
            "",
        ));
        out.push(certificate(
            "node certificate",
            &dir.node_cert(),
            14,
            "keep the node running: it renews its certificate by itself; a node offline past the expiry must join again",
        ));
        out.push(certificate(
            "cluster CA",
            &dir.ca_cert(),
            365,
            "plan a CA rotation before it expires",
        ));
        out.push(disk(dir.root()).await);
        out.push(docker(&config).await);
        let local = match config.listen_address.as_str() {
            "0.0.0.0" | "::" => "127.0.0.1",
            other => other,
        };
        let join = capstan_manager::config::join_host_port;
        if config.role == NodeRole::Manager {
            let fix = "start the manager; check that nothing else holds the port and that the firewall allows it";
            out.push(port("swarm port", join(local, config.swarm_port), fix).await);
            out.push(port("controller port", join(local, config.controller_port), fix).await);
            raft_and_clocks(dir, &mut out).await;
        } else {
            // One answering manager is enough to work; none is a failure.
            let fix =
                "check the network and firewall between this node and its managers (swarm port)";
            let mut reached = 0;
            for addr in &config.managers {
                let mut f = port("manager", addr.clone(), fix).await;
                if f.level == Level::Ok {
                    reached += 1;
                } else {
                    f.level = Level::Warn;
                }
                out.push(f);
            }
            if reached == 0 {
                out.push(finding(
                    "managers",
                    Level::Fail,
                    format!(
                        "none of the {} known managers answers",
                        config.managers.len()
                    ),
                    fix,
                ));
            }
        }
    }
    let worst = out.iter().map(|f| f.level).max().unwrap_or(Level::Ok);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let rows: Vec<Vec<String>> = out
            .iter()
            .map(|f| {
                vec![
                    format!("{:?}", f.level).to_uppercase(),
                    f.check.clone(),
                    f.detail.clone(),
                    f.fix.clone(),
                ]
            })
            .collect();
        println!(
            "{}",
            table(&["STATUS", "CHECK", "FINDING", "WHAT TO DO"], &rows)
        );
    }
    if worst == Level::Fail {
        anyhow::bail!("doctor found problems that need attention (FAIL above)");
    }
    Ok(())
}
