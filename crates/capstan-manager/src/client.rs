//! The cluster API client that CLI commands use on a manager node, with the
//! node's own certificate.

use capstan_core::NodeRole;
use capstan_proto::v1::cluster_client::ClusterClient;
use tonic::transport::{Channel, ClientTlsConfig};

use crate::config::{join_host_port, NodeConfig};
use crate::error::ManagerError;
use crate::paths::DataDir;
use crate::state::endpoint;

/// Connects to the local manager (or `host`, a `host:port`) as this node.
pub async fn connect(
    dir: &DataDir,
    host: Option<&str>,
) -> Result<ClusterClient<Channel>, ManagerError> {
    Ok(ClusterClient::new(channel(dir, host).await?))
}

/// A channel to the local manager (or `host`) as this node, for any of the
/// swarm port's services.
pub async fn channel(dir: &DataDir, host: Option<&str>) -> Result<Channel, ManagerError> {
    let (config, tls) = manager_tls(dir)?;
    let addr = match host {
        Some(h) => h.to_string(),
        None => {
            let local = match config.listen_address.as_str() {
                "0.0.0.0" | "::" => "127.0.0.1",
                other => other,
            };
            join_host_port(local, config.swarm_port)
        }
    };
    endpoint(&addr, &tls)?
        .connect()
        .await
        .map_err(|source| ManagerError::Transport { addr, source })
}

/// A client of the manager at `addr` as this node, connecting on first use.
pub fn lazy(dir: &DataDir, addr: &str) -> Result<ClusterClient<Channel>, ManagerError> {
    let (_, tls) = manager_tls(dir)?;
    Ok(ClusterClient::new(endpoint(addr, &tls)?.connect_lazy()))
}

/// This manager node's configuration and client TLS settings.
fn manager_tls(dir: &DataDir) -> Result<(NodeConfig, ClientTlsConfig), ManagerError> {
    if !dir.is_installed() {
        return Err(ManagerError::NotInstalled {
            path: dir.root().to_path_buf(),
        });
    }
    let config = NodeConfig::load(&dir.config())?;
    if config.role != NodeRole::Manager {
        return Err(ManagerError::Denied(
            "this node is a worker: run cluster commands on a manager node".into(),
        ));
    }
    let read = |p: std::path::PathBuf| {
        std::fs::read_to_string(&p).map_err(|e| ManagerError::file("read", p, e))
    };
    let tls = capstan_pki::client_tls(
        &read(dir.ca_cert())?,
        Some((&read(dir.node_cert())?, &read(dir.node_key())?)),
    );
    Ok((config, tls))
}
