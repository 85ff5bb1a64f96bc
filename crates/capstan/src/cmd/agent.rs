//! `capstan agent`, and the local agent `capstan up` runs beside its manager:
//! the session with the dispatcher and, beside it, the engine proxy through
//! which the managers reach this node's Docker engine.

use anyhow::Context;
use capstan_agent::session::{self, SessionOptions};
use capstan_agent::{EngineProxy, EngineProxyConfig, EngineSocket, Executor};
use capstan_manager::{DataDir, NodeConfig};
use tokio_util::sync::CancellationToken;

/// The session options of the node installed in `dir`; `engine_proxy` is
/// the address its engine proxy is reached at.
pub fn session_options(dir: &DataDir, engine_proxy: String) -> anyhow::Result<SessionOptions> {
    let config = NodeConfig::load(&dir.config())?;
    let read = |p: std::path::PathBuf| {
        std::fs::read_to_string(&p).with_context(|| format!("read {}", p.display()))
    };
    let tls = capstan_pki::client_tls(
        &read(dir.ca_cert())?,
        Some((&read(dir.node_cert())?, &read(dir.node_key())?)),
    );
    let mut managers = config.managers.clone();
    if managers.is_empty() || config.role == capstan_core::NodeRole::Manager {
        managers.insert(0, config.advertise_addr());
    }
    Ok(SessionOptions {
        node_id: config.node_id,
        hostname: config.hostname,
        managers,
        tls,
        engine_proxy,
    })
}

/// Binds the engine proxy of the node in `dir` on `port` (0: a free one),
/// listening where the node's swarm port does and advertised at its host
/// address.
async fn engine_proxy(
    dir: &DataDir,
    config: &NodeConfig,
    port: u16,
) -> anyhow::Result<EngineProxy> {
    let proxy = EngineProxy::bind(EngineProxyConfig {
        listen_host: config.listen_address.clone(),
        advertise_host: config.host_address.clone(),
        port,
        node_cert: dir.node_cert(),
        node_key: dir.node_key(),
        ca_cert: dir.ca_cert(),
        cluster_id: config.cluster_id.clone(),
        engine: EngineSocket::from_env()?,
    })
    .await?;
    Ok(proxy)
}

/// Runs the agent of the node in `dir`, with its engine proxy on `port`,
/// until `cancel` fires.
pub async fn run(dir: &DataDir, port: u16, cancel: CancellationToken) -> anyhow::Result<()> {
    if !dir.is_installed() {
        anyhow::bail!(
            "no capstan node is installed in {}; run `capstan join` first",
            dir.root().display()
        );
    }
    let config = NodeConfig::load(&dir.config())?;
    let executor = Executor::connect(config.node_id)
        .await
        .context("connect to the local Docker engine")?;
    let proxy = engine_proxy(dir, &config, port).await?;
    let opts = session_options(dir, proxy.address().to_string())?;
    tracing::info!(node = %opts.node_id, engine_proxy = %opts.engine_proxy, "agent starting");
    // The proxy lives exactly as long as the session loop, whichever ends first.
    let local = cancel.child_token();
    let proxy = tokio::spawn(proxy.serve(local.clone()));
    let result = session::run(opts, executor, local.clone()).await;
    local.cancel();
    let _ = proxy.await;
    result?;
    Ok(())
}
