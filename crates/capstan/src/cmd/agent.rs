//! `capstan agent`, and the local agent `capstan up` runs beside its manager.

use anyhow::Context;
use capstan_agent::session::{self, SessionOptions};
use capstan_agent::Executor;
use capstan_manager::{DataDir, NodeConfig};
use tokio_util::sync::CancellationToken;

/// The session options of the node installed in `dir`.
pub fn session_options(dir: &DataDir) -> anyhow::Result<SessionOptions> {
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
    })
}

/// Runs the agent of the node in `dir` until `cancel` fires.
pub async fn run(dir: &DataDir, cancel: CancellationToken) -> anyhow::Result<()> {
    if !dir.is_installed() {
        anyhow::bail!(
            "no capstan node is installed in {}; run `capstan join` first",
            dir.root().display()
        );
    }
    let opts = session_options(dir)?;
    let executor = Executor::connect(opts.node_id)
        .await
        .context("connect to the local Docker engine")?;
    tracing::info!(node = %opts.node_id, "agent starting");
    session::run(opts, executor, cancel).await?;
    Ok(())
}
