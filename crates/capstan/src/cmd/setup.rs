//! `up`, `install`, `join` and `manager`: making and running nodes.

use std::io::{BufRead, Write};
use std::time::Instant;

use anyhow::{bail, Context};
use capstan_core::NodeRole;
use capstan_manager::bootstrap::{self, InstallOptions, JoinOptions};
use capstan_manager::server::{run_manager_with, ManagerOptions, Ready, RoleService};
use capstan_manager::{DataDir, NodeConfig};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::cli::{AgentArgs, EngineProxyArg, InstallArgs, JoinArgs, NodeNet, UpArgs};
use crate::settings::{parse_ttl_days, FileSettings};

pub(super) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Node addresses and ports after flags, environment and config file.
pub(super) struct Net {
    pub(super) host_address: String,
    pub(super) listen_address: String,
    pub(super) sans: Vec<String>,
    pub(super) controller_port: u16,
    pub(super) swarm_port: u16,
    pub(super) kube_apiserver_port: u16,
}

pub(super) fn resolve_net(
    net: &NodeNet,
    file: &FileSettings,
    hostname: &str,
) -> anyhow::Result<Net> {
    let host_address = match net
        .host_address
        .clone()
        .or_else(|| file.host_address.clone())
    {
        Some(a) => a,
        None => bootstrap::detect_host_address(hostname)?,
    };
    Ok(Net {
        host_address,
        listen_address: net
            .listen_address
            .clone()
            .or_else(|| file.listen_address.clone())
            .unwrap_or_else(|| "0.0.0.0".into()),
        sans: if net.sans.is_empty() {
            file.sans.clone().unwrap_or_default()
        } else {
            net.sans.clone()
        },
        controller_port: net.controller_port.or(file.controller_port).unwrap_or(443),
        swarm_port: net.swarm_port.or(file.swarm_port).unwrap_or(2377),
        kube_apiserver_port: net
            .kube_apiserver_port
            .or(file.kube_apiserver_port)
            .unwrap_or(6443),
    })
}

/// The engine proxy's port: the flag or `CAPSTAN_ENGINE_PROXY_PORT`, then
/// `[agent] engine_proxy_port`, then MKE's 12376.
fn engine_proxy_port(arg: &EngineProxyArg, file: &FileSettings) -> u16 {
    arg.port
        .or(file.agent.engine_proxy_port)
        .unwrap_or(capstan_agent::DEFAULT_ENGINE_PROXY_PORT)
}

fn raft_timing(file: &FileSettings) -> anyhow::Result<capstan_store::RaftTiming> {
    file.raft_timing().map_err(anyhow::Error::msg)
}

fn manager_options(file: &FileSettings) -> anyhow::Result<ManagerOptions> {
    let mut options = ManagerOptions {
        raft: raft_timing(file)?,
        ..ManagerOptions::default()
    };
    if let Some(hb) = &file.agent.heartbeat_interval {
        options.agent_heartbeat = crate::settings::parse_duration(hb)?;
    }
    Ok(options)
}

/// Stops the manager on Ctrl-C or SIGTERM.
pub(super) fn cancel_on_signal() -> CancellationToken {
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
pub(super) async fn run_foreground(
    dir: DataDir,
    file: &FileSettings,
    announce: impl FnOnce(Ready) + Send + 'static,
) -> anyhow::Result<()> {
    run_foreground_with(dir, file, None, None, announce).await
}

/// Like [`run_foreground`], with a local agent beside the manager (its
/// engine proxy on port `agent`) when `agent` is set and the Docker engine
/// answers, and an image registry listening on `registry.1` when set.
async fn run_foreground_with(
    dir: DataDir,
    file: &FileSettings,
    agent: Option<u16>,
    registry: Option<(capstan_registry::RegistryConfig, String)>,
    announce: impl FnOnce(Ready) + Send + 'static,
) -> anyhow::Result<()> {
    let options = manager_options(file)?;
    let cancel = cancel_on_signal();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        if let Ok(ready) = rx.await {
            announce(ready);
        }
    });
    let agent = agent.map(|port| {
        let dir = dir.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if let Err(e) = super::agent::run(&dir, port, cancel).await {
                tracing::warn!(error = %format!("{e:#}"), "no local agent: this node runs no tasks");
            }
        })
    });
    let registry = registry.map(|(config, listen)| {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if let Err(e) = capstan_registry::run(config, &listen, cancel).await {
                tracing::error!(error = %e, "the registry stopped");
            }
        })
    });
    let gateway: RoleService =
        Box::new(|state, cancel| Box::pin(capstan_gateway::run(state, cancel)));
    let result = run_manager_with(
        dir,
        options,
        cancel.clone(),
        Some(tx),
        vec![("gateway", gateway)],
    )
    .await;
    cancel.cancel();
    if let Some(a) = agent {
        let _ = a.await;
    }
    if let Some(r) = registry {
        let _ = r.await;
    }
    result?;
    Ok(())
}

/// `capstan agent`.
pub async fn agent(dir: DataDir, args: AgentArgs, file: &FileSettings) -> anyhow::Result<()> {
    let port = engine_proxy_port(&args.engine_proxy, file);
    super::agent::run(&dir, port, cancel_on_signal()).await
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

fn admin_credentials(
    args: &InstallArgs,
    mut sans: Vec<String>,
) -> anyhow::Result<(String, String, Vec<String>)> {
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
pub async fn install(dir: DataDir, args: InstallArgs, file: &FileSettings) -> anyhow::Result<()> {
    let hostname = hostname();
    let net = resolve_net(&args.net, file, &hostname)?;
    let ttl = args
        .cert_ttl
        .clone()
        .or_else(|| file.cert_ttl.clone())
        .unwrap_or_else(|| "90d".into());
    let cert_ttl_days = parse_ttl_days(&ttl).context("--cert-ttl")?;
    raft_timing(file)?;
    let (admin_username, admin_password, sans) = admin_credentials(&args, net.sans)?;
    let config = bootstrap::install(InstallOptions {
        data_dir: dir.clone(),
        host_address: net.host_address,
        hostname,
        sans,
        admin_username,
        admin_password,
        listen_address: net.listen_address,
        swarm_port: net.swarm_port,
        controller_port: net.controller_port,
        kube_apiserver_port: net.kube_apiserver_port,
        cert_ttl_days,
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
    run_foreground(dir, file, move |ready| {
        println!(
            "Installation complete: manager {} leads cluster {}; cluster API at https://{}; dashboard and REST API at https://{}",
            ready.node_id,
            config.cluster_id,
            ready.advertise_addr,
            capstan_manager::config::join_host_port(&config.host_address, config.controller_port)
        );
    })
    .await
}

/// `capstan join`.
pub async fn join(dir: DataDir, args: JoinArgs, file: &FileSettings) -> anyhow::Result<()> {
    let hostname = hostname();
    let net = resolve_net(&args.net, file, &hostname)?;
    raft_timing(file)?;
    let config = bootstrap::join(JoinOptions {
        data_dir: dir.clone(),
        token: args.token.trim().to_string(),
        manager: args.manager.clone(),
        host_address: net.host_address,
        hostname,
        sans: net.sans,
        listen_address: net.listen_address,
        swarm_port: net.swarm_port,
        controller_port: net.controller_port,
        kube_apiserver_port: net.kube_apiserver_port,
    })
    .await?;
    println!(
        "This node joined the cluster as a {} with id {}.",
        config.role, config.node_id
    );
    if args.init_only {
        if config.role == NodeRole::Worker {
            println!(
                "Start its agent with `capstan agent --data-dir {}`.",
                dir.root().display()
            );
        }
        return Ok(());
    }
    if config.role == NodeRole::Worker {
        let port = engine_proxy_port(&args.engine_proxy, file);
        return super::agent::run(&dir, port, cancel_on_signal()).await;
    }
    run_foreground(dir, file, |ready| {
        println!(
            "Manager {} is running; leader is {}.",
            ready.node_id, ready.leader
        );
    })
    .await
}

/// `capstan manager`.
pub async fn manager(dir: DataDir, file: &FileSettings) -> anyhow::Result<()> {
    run_foreground(dir, file, |ready| {
        println!(
            "Manager {} is running; leader is {}.",
            ready.node_id, ready.leader
        );
    })
    .await
}

/// `capstan up`: install on first run, then run the manager.
pub async fn up(dir: DataDir, args: UpArgs, file: &FileSettings) -> anyhow::Result<()> {
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
            swarm_port: args.swarm_port.or(file.swarm_port).unwrap_or(2377),
            controller_port: args
                .controller_port
                .or(file.controller_port)
                .unwrap_or(8443),
            kube_apiserver_port: args
                .kube_apiserver_port
                .or(file.kube_apiserver_port)
                .unwrap_or(6443),
            cert_ttl_days: 90,
        })?;
        capstan_pki::write_private_file(&password_file, format!("{password}\n").as_bytes())?;
    }
    let config = NodeConfig::load(&dir.config())?;
    let root = dir.root().display().to_string();
    let admin = args.admin_username;
    let password = if first_run {
        std::fs::read_to_string(&password_file)
            .map(|p| p.trim().to_string())
            .ok()
    } else {
        None
    };
    let gateway = format!(
        "https://{}",
        capstan_manager::config::join_host_port(&config.host_address, config.controller_port)
    );
    let agent_port = engine_proxy_port(&args.engine_proxy, file);
    let registry_port = args.registry_port.unwrap_or(5443);
    let registry = if registry_port == 0 {
        None
    } else {
        let host = capstan_manager::config::join_host_port(&config.host_address, registry_port);
        let listen = capstan_manager::config::join_host_port(&config.listen_address, registry_port);
        Some((
            super::registry::config(&dir, host, gateway.clone())?,
            listen,
        ))
    };
    let registry_url = registry
        .as_ref()
        .map(|(c, _)| format!("https://{}", c.public_host));
    run_foreground_with(dir, file, Some(agent_port), registry, move |ready| {
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
        println!("  dashboard/API: {gateway} (CA: {gateway}/ca)");
        println!(
            "  cluster API:  https://{} (mutual TLS)",
            ready.advertise_addr
        );
        if let Some(url) = &registry_url {
            println!("  registry:     {url} (docker login with the same users)");
        }
        println!("  data dir:     {root}");
        if let Some(password) = &password {
            println!("  admin user:   {admin}");
            println!(
                "  password:     {password} (also in {}, mode 0600)",
                password_file.display()
            );
        } else {
            println!(
                "  admin user:   {admin} (its first password is in {})",
                password_file.display()
            );
        }
        println!("  try:          capstan --data-dir {root} status");
    })
    .await
}
