//! `up`, `install`, `join` and `manager`: making and running nodes.

use std::io::{BufRead, Write};
use std::time::Instant;

use anyhow::{bail, Context};
use capstan_core::NodeRole;
use capstan_manager::bootstrap::{self, InstallOptions, JoinOptions};
use capstan_manager::server::{run_manager, Ready};
use capstan_manager::{DataDir, NodeConfig};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::cli::{InstallArgs, JoinArgs, NodeNet, UpArgs};

/// Parses `90d`, `12h`, `30m` into whole days (at least one).
fn parse_ttl_days(s: &str) -> anyhow::Result<u32> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .with_context(|| format!("--cert-ttl {s:?}: expected a number with d, h or m, e.g. 90d"))?;
    let hours = match unit {
        "d" | "" => n * 24,
        "h" => n,
        "m" => n.div_ceil(60),
        other => bail!("--cert-ttl {s:?}: unknown unit {other:?}; use d, h or m"),
    };
    let days = hours.div_ceil(24).max(1);
    if days > 3650 {
        bail!("--cert-ttl {s:?} is longer than 10 years");
    }
    Ok(days as u32)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn host_address(net: &NodeNet, hostname: &str) -> anyhow::Result<String> {
    match &net.host_address {
        Some(a) => Ok(a.clone()),
        None => Ok(bootstrap::detect_host_address(hostname)?),
    }
}

/// Stops the manager on Ctrl-C or SIGTERM.
fn cancel_on_signal() -> CancellationToken {
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot watch SIGTERM");
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("stopping");
        token.cancel();
    });
    cancel
}

/// Runs the manager in the foreground, calling `announce` once it is ready.
async fn run_foreground(
    dir: DataDir,
    announce: impl FnOnce(Ready) + Send + 'static,
) -> anyhow::Result<()> {
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        if let Ok(ready) = rx.await {
            announce(ready);
        }
    });
    run_manager(dir, cancel_on_signal(), Some(tx)).await?;
    Ok(())
}

fn prompt(question: &str) -> anyhow::Result<String> {
    eprint!("{question}");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("read answer")?;
    Ok(line.trim().to_string())
}

fn admin_credentials(args: &InstallArgs) -> anyhow::Result<(String, String, Vec<String>)> {
    let mut sans = args.net.sans.clone();
    if args.interactive {
        let username = match &args.admin_username {
            Some(u) => u.clone(),
            None => prompt("Admin username: ")?,
        };
        let password = rpassword::prompt_password("Admin password: ").context("read password")?;
        let again =
            rpassword::prompt_password("Confirm admin password: ").context("read password")?;
        if password != again {
            bail!("the two passwords differ; nothing was installed");
        }
        let extra =
            prompt("Additional aliases (SANs), separated by spaces or commas (empty for none): ")?;
        sans.extend(
            extra
                .split([' ', ','])
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
        return Ok((username, password, sans));
    }
    let username = args
        .admin_username
        .clone()
        .context("--admin-username is required (or use --interactive)")?;
    let password = match (&args.admin_password, &args.admin_password_file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("read --admin-password-file {}", f.display()))?
            .trim_end_matches(['\n', '\r'])
            .to_string(),
        (None, None) => {
            bail!("--admin-password or --admin-password-file is required (or use --interactive)")
        }
    };
    Ok((username, password, sans))
}

/// `capstan install`.
pub async fn install(dir: DataDir, args: InstallArgs) -> anyhow::Result<()> {
    let (admin_username, admin_password, sans) = admin_credentials(&args)?;
    let hostname = hostname();
    let config = bootstrap::install(InstallOptions {
        data_dir: dir.clone(),
        host_address: host_address(&args.net, &hostname)?,
        hostname,
        sans,
        admin_username,
        admin_password,
        listen_address: args.net.listen_address.clone(),
        swarm_port: args.net.swarm_port,
        controller_port: args.net.controller_port,
        kube_apiserver_port: args.net.kube_apiserver_port,
        cert_ttl_days: parse_ttl_days(&args.cert_ttl)?,
    })?;
    if args.init_only {
        println!(
            "Capstan node {} prepared in {}; start it with `capstan manager --data-dir {}`",
            config.node_id,
            dir.root().display(),
            dir.root().display()
        );
        return Ok(());
    }
    run_foreground(dir, move |ready| {
        println!(
            "Installation complete: manager {} leads cluster {}; cluster API at https://{}",
            ready.node_id, config.cluster_id, ready.advertise_addr
        );
    })
    .await
}

/// `capstan join`.
pub async fn join(dir: DataDir, args: JoinArgs) -> anyhow::Result<()> {
    let hostname = hostname();
    let config = bootstrap::join(JoinOptions {
        data_dir: dir.clone(),
        token: args.token.trim().to_string(),
        manager: args.manager.clone(),
        host_address: host_address(&args.net, &hostname)?,
        hostname,
        sans: args.net.sans.clone(),
        listen_address: args.net.listen_address.clone(),
        swarm_port: args.net.swarm_port,
        controller_port: args.net.controller_port,
        kube_apiserver_port: args.net.kube_apiserver_port,
    })
    .await?;
    println!(
        "This node joined the cluster as a {} with id {}.",
        config.role, config.node_id
    );
    if config.role == NodeRole::Worker || args.init_only {
        if config.role == NodeRole::Worker {
            println!(
                "Start its agent with `capstan agent --data-dir {}`.",
                dir.root().display()
            );
        }
        return Ok(());
    }
    run_foreground(dir, |ready| {
        println!(
            "Manager {} is running; leader is {}.",
            ready.node_id, ready.leader
        );
    })
    .await
}

/// `capstan manager`.
pub async fn manager(dir: DataDir) -> anyhow::Result<()> {
    run_foreground(dir, |ready| {
        println!(
            "Manager {} is running; leader is {}.",
            ready.node_id, ready.leader
        );
    })
    .await
}

/// `capstan up`: install on first run, then run the manager.
pub async fn up(dir: DataDir, args: UpArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let password_file = dir.root().join("admin-password");
    let first_run = !dir.is_installed();
    if first_run {
        let password = capstan_identity::generate_password();
        bootstrap::install(InstallOptions {
            data_dir: dir.clone(),
            host_address: "127.0.0.1".into(),
            hostname: hostname(),
            sans: vec![],
            admin_username: args.admin_username.clone(),
            admin_password: password.clone(),
            listen_address: "127.0.0.1".into(),
            swarm_port: args.swarm_port,
            controller_port: args.controller_port,
            kube_apiserver_port: args.kube_apiserver_port,
            cert_ttl_days: 90,
        })?;
        capstan_pki::write_private_file(&password_file, format!("{password}\n").as_bytes())?;
    }
    let config = NodeConfig::load(&dir.config())?;
    let root = dir.root().display().to_string();
    let admin = args.admin_username;
    run_foreground(dir, move |ready| {
        let took = started.elapsed();
        println!(
            "Capstan is up in {:.1}s: cluster {}",
            took.as_secs_f64(),
            config.cluster_id
        );
        println!(
            "  manager:      {} (leader {})",
            ready.node_id, ready.leader
        );
        println!(
            "  cluster API:  https://{} (mutual TLS)",
            ready.advertise_addr
        );
        println!("  data dir:     {root}");
        if first_run {
            println!("  admin user:   {admin}");
            println!("  password:     in {} (mode 0600)", password_file.display());
        }
        println!("  try:          capstan --data-dir {root} status");
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::parse_ttl_days;

    #[test]
    fn ttl_parsing() {
        assert_eq!(parse_ttl_days("90d").unwrap(), 90);
        assert_eq!(parse_ttl_days("12h").unwrap(), 1);
        assert_eq!(parse_ttl_days("49h").unwrap(), 3);
        assert!(parse_ttl_days("90x").is_err());
        assert!(parse_ttl_days("d").is_err());
        assert!(parse_ttl_days("99999d").is_err());
    }
}
