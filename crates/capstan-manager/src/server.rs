//! Running a manager: Raft, the swarm port's gRPC services, and the
//! background tasks, under one supervisor.

use std::sync::Arc;
use std::time::Duration;

use capstan_core::{NodeId, NodeRole};
use capstan_pki::{ClusterCa, NodeIdentity};
use capstan_proto::v1::cluster_server::ClusterServer;
use capstan_proto::v1::join_server::JoinServer;
use capstan_store::service::RaftService;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;

use crate::auth::{require_manager, require_node};
use crate::bootstrap;
use crate::cluster_api::ClusterApi;
use crate::config::NodeConfig;
use crate::error::ManagerError;
use crate::join_api::JoinApi;
use crate::paths::DataDir;
use crate::reachability;
use crate::state::{ManagerState, SharedState};
use crate::supervisor::Supervisor;
use crate::swarm::api::SwarmApi;
use crate::swarm::DispatcherApi;
use capstan_proto::v1::dispatcher_server::DispatcherServer;
use capstan_proto::v1::swarm_server::SwarmServer;

/// Cluster API messages (write batches, lists) may exceed gRPC's default.
const MAX_MESSAGE: usize = 64 << 20;
/// How often the node certificate is checked for renewal.
const RENEWAL_CHECK: Duration = Duration::from_secs(3600);
/// Renew when less than this fraction of the lifetime remains.
const RENEW_AT: f64 = 0.3;

/// Tunables of a running manager (from the config file).
#[derive(Clone, Debug)]
pub struct ManagerOptions {
    /// Raft timers.
    pub raft: capstan_store::RaftTiming,
    /// How often agents heartbeat.
    pub agent_heartbeat: Duration,
}

impl Default for ManagerOptions {
    fn default() -> Self {
        Self {
            raft: capstan_store::RaftTiming::default(),
            agent_heartbeat: crate::swarm::dispatcher::DEFAULT_HEARTBEAT,
        }
    }
}

/// Told once the manager serves and knows a leader.
#[derive(Clone, Debug)]
pub struct Ready {
    /// This node.
    pub node_id: NodeId,
    /// Its swarm port address.
    pub advertise_addr: String,
    /// The leader it sees.
    pub leader: NodeId,
}

fn read_file(path: &std::path::Path) -> Result<String, ManagerError> {
    std::fs::read_to_string(path).map_err(|e| ManagerError::file("read", path, e))
}

/// A service that runs beside the manager's own tasks, under the same
/// supervisor, sharing its state (the gateway is one).
pub type RoleService = Box<
    dyn FnOnce(
            SharedState,
            CancellationToken,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<(), ManagerError>> + Send>,
        > + Send,
>;

/// Runs an installed manager until `cancel` fires or a task fails.
pub async fn run_manager(
    dir: DataDir,
    options: ManagerOptions,
    cancel: CancellationToken,
    ready: Option<oneshot::Sender<Ready>>,
) -> Result<(), ManagerError> {
    run_manager_with(dir, options, cancel, ready, Vec::new()).await
}

/// Like [`run_manager`], also running `services` (named) under the
/// manager's supervisor: if one fails, the manager stops.
pub async fn run_manager_with(
    dir: DataDir,
    options: ManagerOptions,
    cancel: CancellationToken,
    ready: Option<oneshot::Sender<Ready>>,
    services: Vec<(&'static str, RoleService)>,
) -> Result<(), ManagerError> {
    if !dir.is_installed() {
        return Err(ManagerError::NotInstalled {
            path: dir.root().to_path_buf(),
        });
    }
    let config = NodeConfig::load(&dir.config())?;
    if config.role != NodeRole::Manager {
        return Err(ManagerError::Invalid(format!(
            "node {} in {} is a worker; start it with `capstan agent`",
            config.node_id,
            dir.root().display()
        )));
    }
    let ca = ClusterCa::from_pem(&read_file(&dir.ca_cert())?, &read_file(&dir.ca_key())?)?;
    let (log, sm) = capstan_store::open(&dir.raft())?;
    let client_tls = capstan_pki::client_tls(
        ca.cert_pem(),
        Some((&read_file(&dir.node_cert())?, &read_file(&dir.node_key())?)),
    );
    let network = capstan_store::network::Network::new(client_tls.clone());
    let raft = capstan_store::Raft::new(
        config.node_id.0,
        capstan_store::raft_config_with(&options.raft).map_err(ManagerError::Invalid)?,
        network,
        log,
        sm.clone(),
    )
    .await
    .map_err(|e| ManagerError::Fatal(format!("start raft: {e}")))?;

    let listen = config.listen_addr();
    let listener = TcpListener::bind(&listen)
        .await
        .map_err(|e| ManagerError::Unavailable(format!("cannot listen on {listen}: {e}")))?;
    tracing::info!(node = %config.node_id, %listen, "manager starting");

    let swarm = crate::swarm::SwarmState::new(
        options.agent_heartbeat,
        crate::swarm::SecretKey::load(&dir.secret_key())?,
    );
    let (state, batch_loop) =
        ManagerState::new(config, dir, raft.clone(), sm, ca, client_tls, swarm);
    let state: SharedState = Arc::new(state);
    let reload = Arc::new(Notify::new());
    let mut sup = Supervisor::new(cancel);
    sup.spawn(
        "swarm-port",
        serve(state.clone(), listener, reload.clone(), sup.token()),
    );
    sup.spawn(
        "reachability",
        reachability::monitor(state.clone(), sup.token()),
    );
    sup.spawn(
        "bootstrap",
        finish_and_announce(state.clone(), sup.token(), ready),
    );
    {
        let state = state.clone();
        let cancel = sup.token();
        sup.spawn("disk-guard", async move { state.disk.watch(cancel).await });
    }
    sup.spawn(
        "cert-renewal",
        renew_certificates(state.clone(), reload, sup.token()),
    );
    sup.spawn(
        "swarm",
        crate::swarm::runtime::run(state.clone(), sup.token()),
    );
    sup.spawn(
        "write-batcher",
        batch_loop.run(raft.clone(), crate::state::COMMIT_TIMEOUT, sup.token()),
    );
    for (name, service) in services {
        sup.spawn(name, service(state.clone(), sup.token()));
    }
    let result = sup.run().await;
    if let Err(e) = raft.shutdown().await {
        tracing::warn!(error = %e, "raft did not shut down cleanly");
    }
    result
}

async fn finish_and_announce(
    state: SharedState,
    cancel: CancellationToken,
    ready: Option<oneshot::Sender<Ready>>,
) -> Result<(), ManagerError> {
    bootstrap::finish_install(&state).await?;
    crate::restore::finish_restore(&state).await?;
    bootstrap::finish_join(&state, &cancel).await?;
    let mut metrics = state.raft.metrics();
    let leader = loop {
        if let Some(l) = metrics.borrow().current_leader {
            break l;
        }
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            changed = metrics.changed() => {
                changed.map_err(|_| ManagerError::Fatal("raft stopped".into()))?;
            }
        }
    };
    tracing::info!(leader = %NodeId(leader), "manager ready");
    if let Some(tx) = ready {
        let _ = tx.send(Ready {
            node_id: state.node_id(),
            advertise_addr: state.config.advertise_addr(),
            leader: NodeId(leader),
        });
    }
    if let Err(e) = bootstrap::record_version(&state).await {
        tracing::warn!(error = %e, "could not record this manager's version");
    }
    Ok(())
}

/// Serves the swarm port, restarting the listener's TLS when the node
/// certificate is renewed.
async fn serve(
    state: SharedState,
    listener: TcpListener,
    reload: Arc<Notify>,
    cancel: CancellationToken,
) -> Result<(), ManagerError> {
    let addr = listener
        .local_addr()
        .map_err(|e| ManagerError::Unavailable(format!("swarm port: {e}")))?;
    let mut listener = Some(listener);
    loop {
        let l = match listener.take() {
            Some(l) => l,
            None => TcpListener::bind(addr)
                .await
                .map_err(|e| ManagerError::Unavailable(format!("cannot listen on {addr}: {e}")))?,
        };
        let dir = &state.dir;
        let tls = capstan_pki::server_tls(
            &read_file(&dir.node_cert())?,
            &read_file(&dir.node_key())?,
            state.ca.cert_pem(),
        );
        let cluster_id = state.config.cluster_id.clone();
        let raft = InterceptedService::new(
            RaftService::new(state.raft.clone()).into_server(),
            require_manager(cluster_id.clone()),
        );
        let cluster = InterceptedService::new(
            ClusterServer::new(ClusterApi::new(state.clone()))
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            require_manager(cluster_id),
        );
        let join = JoinServer::new(JoinApi::new(state.clone()));
        let dispatcher = InterceptedService::new(
            DispatcherServer::new(DispatcherApi::new(state.clone()))
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            require_node(state.config.cluster_id.clone()),
        );
        let swarm = InterceptedService::new(
            SwarmServer::new(SwarmApi::new(state.clone()))
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            require_manager(state.config.cluster_id.clone()),
        );
        let stop = cancel.clone();
        let reloaded = reload.clone();
        let shutdown = async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = reloaded.notified() => {}
            }
        };
        Server::builder()
            .tls_config(tls)
            .map_err(|e| ManagerError::Unavailable(format!("swarm port TLS: {e}")))?
            .tcp_nodelay(true)
            .add_service(raft)
            .add_service(cluster)
            .add_service(join)
            .add_service(dispatcher)
            .add_service(swarm)
            // `tcp_nodelay` above does not reach sockets accepted from our own
            // listener: without this, Nagle delays small replies (Raft acks,
            // read-index heartbeats) by a delayed-ACK round, ~40 ms.
            .serve_with_incoming_shutdown(TcpIncoming::from(l).with_nodelay(Some(true)), shutdown)
            .await
            .map_err(|e| ManagerError::Unavailable(format!("swarm port: {e}")))?;
        if cancel.is_cancelled() {
            return Ok(());
        }
        tracing::info!("swarm port reloading its certificate");
    }
}

/// Re-issues this manager's certificate before it expires.
async fn renew_certificates(
    state: SharedState,
    reload: Arc<Notify>,
    cancel: CancellationToken,
) -> Result<(), ManagerError> {
    loop {
        let cert = read_file(&state.dir.node_cert())?;
        if capstan_pki::needs_renewal(&cert, time::OffsetDateTime::now_utc(), RENEW_AT)? {
            let identity = NodeIdentity {
                node_id: state.node_id().to_string(),
                role: capstan_pki::NodeRole::Manager,
                cluster_id: state.config.cluster_id.clone(),
                hosts: bootstrap::manager_hosts(&state.config),
            };
            let (issued, key) = state
                .ca
                .issue_node_cert(&identity, state.config.cert_ttl())?;
            capstan_pki::write_private_file(&state.dir.node_key(), key.as_bytes())?;
            capstan_pki::write_public_file(&state.dir.node_cert(), issued.cert_pem.as_bytes())?;
            tracing::info!(not_after = %issued.not_after, "node certificate renewed");
            reload.notify_one();
        }
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(RENEWAL_CHECK) => {}
        }
    }
}
