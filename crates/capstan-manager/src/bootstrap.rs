//! Making a node: `install` creates a cluster's first manager, `join` admits
//! a node into an existing cluster. Both write the data directory; the
//! manager's first start finishes the job inside the replicated store.

use std::collections::BTreeMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::time::Duration;

use capstan_core::{
    encode, Availability, ClusterInfo, Node, NodeId, NodeRole, NodeState, Table, User,
};
use capstan_pki::{ClusterCa, JoinToken, NodeIdentity};
use capstan_proto::v1::join_client::JoinClient;
use capstan_proto::v1::{JoinRequest, RegisterManagerRequest};
use capstan_store::{Action, Expect, Op};
use openraft::BasicNode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::config::{parse_host_port, validate_host, validate_ports, NodeConfig};
use crate::error::ManagerError;
use crate::paths::DataDir;
use crate::state::{endpoint, SharedState};

/// Lifetime of the cluster root CA.
const CA_TTL: Duration = Duration::from_secs(10 * 365 * 86_400);

/// What `capstan install` was asked for.
#[derive(Clone, Debug)]
pub struct InstallOptions {
    /// Where the node keeps its state.
    pub data_dir: DataDir,
    /// The address other nodes reach this one at.
    pub host_address: String,
    /// Reported hostname.
    pub hostname: String,
    /// Extra subject alternative names.
    pub sans: Vec<String>,
    /// First admin's username.
    pub admin_username: String,
    /// First admin's password (hashed here, never stored).
    pub admin_password: String,
    /// Address the swarm port binds.
    pub listen_address: String,
    /// Cluster gRPC port.
    pub swarm_port: u16,
    /// Gateway port.
    pub controller_port: u16,
    /// Kubernetes API port.
    pub kube_apiserver_port: u16,
    /// Node certificate lifetime in days.
    pub cert_ttl_days: u32,
}

/// Objects the first start of an installed manager writes into the store.
#[derive(Serialize, Deserialize)]
struct PendingBootstrap {
    cluster: ClusterInfo,
    node: Node,
    admin: User,
}

fn random_id(len: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rngs::OsRng;
    (0..len)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

/// The hosts a manager's certificate names.
pub fn manager_hosts(config: &NodeConfig) -> Vec<String> {
    let mut hosts = vec![
        config.host_address.clone(),
        config.hostname.clone(),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
    ];
    hosts.extend(config.sans.iter().cloned());
    let mut seen = std::collections::BTreeSet::new();
    hosts.retain(|h| seen.insert(h.clone()));
    hosts
}

/// Finds an address for this host when none was given: the first
/// non-loopback address its hostname resolves to.
pub fn detect_host_address(hostname: &str) -> Result<String, ManagerError> {
    let addrs = (hostname, 0u16).to_socket_addrs().map_err(|e| {
        ManagerError::Invalid(format!(
            "cannot resolve this host's name {hostname:?} ({e}); pass --host-address"
        ))
    })?;
    addrs
        .map(|a| a.ip())
        .find(|ip| !ip.is_loopback() && matches!(ip, IpAddr::V4(_)))
        .map(|ip| ip.to_string())
        .ok_or_else(|| {
            ManagerError::Invalid(format!(
                "{hostname:?} resolves only to loopback addresses; pass --host-address"
            ))
        })
}

fn validate_common(host: &str, sans: &[String], ports: &[(&str, u16)]) -> Result<(), ManagerError> {
    validate_host(host).map_err(|e| ManagerError::Invalid(format!("--host-address: {e}")))?;
    for san in sans {
        validate_host(san).map_err(|e| ManagerError::Invalid(format!("--san: {e}")))?;
    }
    validate_ports(ports).map_err(ManagerError::Invalid)
}

/// Creates the cluster CA, this manager's certificate and configuration.
/// The manager's first start then initialises Raft and writes the cluster
/// record, this node and the admin account.
pub fn install(opts: InstallOptions) -> Result<NodeConfig, ManagerError> {
    let dir = &opts.data_dir;
    if dir.is_installed() {
        return Err(ManagerError::AlreadyInstalled {
            path: dir.root().to_path_buf(),
        });
    }
    capstan_core::user::validate_username(&opts.admin_username)
        .map_err(|e| ManagerError::Invalid(format!("admin username: {e}")))?;
    let password_hash = capstan_identity::hash_password(&opts.admin_password)
        .map_err(|e| ManagerError::Invalid(format!("admin password: {e}")))?;
    let cluster_id = random_id(25);
    let ca = ClusterCa::generate(&cluster_id, CA_TTL)?;
    let site = Site {
        host_address: opts.host_address,
        hostname: opts.hostname,
        sans: opts.sans,
        listen_address: opts.listen_address,
        swarm_port: opts.swarm_port,
        controller_port: opts.controller_port,
        kube_apiserver_port: opts.kube_apiserver_port,
        cert_ttl_days: opts.cert_ttl_days,
    };
    let (config, node) = first_manager(&site, &cluster_id, &ca)?;
    let now = OffsetDateTime::now_utc();
    let digest = ca.digest();
    let pending = PendingBootstrap {
        cluster: ClusterInfo {
            cluster_id,
            ca_digest: digest.to_string(),
            worker_secret: JoinToken::generate(digest.clone()).secret,
            manager_secret: JoinToken::generate(digest).secret,
            created_at: now,
        },
        node: node.record.clone(),
        admin: User {
            id: uuid::Uuid::new_v4().to_string(),
            username: opts.admin_username,
            full_name: String::new(),
            password_hash,
            admin: true,
            active: true,
            created_at: now,
        },
    };
    let pending = serde_json::to_vec_pretty(&pending).expect("bootstrap objects serialize");
    write_first_manager(
        dir,
        &config,
        &ca,
        crate::swarm::SecretKey::generate().bytes(),
        &node,
        (&dir.bootstrap(), &pending),
    )?;
    Ok(config)
}

/// Where and how a cluster's first manager (made by install or restore)
/// serves.
#[derive(Clone, Debug)]
pub struct Site {
    /// The address other nodes reach this one at.
    pub host_address: String,
    /// Reported hostname.
    pub hostname: String,
    /// Extra subject alternative names.
    pub sans: Vec<String>,
    /// Address the swarm port binds.
    pub listen_address: String,
    /// Cluster gRPC port.
    pub swarm_port: u16,
    /// Gateway port.
    pub controller_port: u16,
    /// Kubernetes API port.
    pub kube_apiserver_port: u16,
    /// Node certificate lifetime in days.
    pub cert_ttl_days: u32,
}

/// A new first manager: its record and certificate.
pub(crate) struct FirstManager {
    pub(crate) record: Node,
    cert_pem: String,
    key_pem: String,
}

/// The configuration, node record and certificate of a cluster's first
/// manager at `site`, under `ca`.
pub(crate) fn first_manager(
    site: &Site,
    cluster_id: &str,
    ca: &ClusterCa,
) -> Result<(NodeConfig, FirstManager), ManagerError> {
    validate_common(
        &site.host_address,
        &site.sans,
        &[
            ("--swarm-port", site.swarm_port),
            ("--controller-port", site.controller_port),
            ("--kube-apiserver-port", site.kube_apiserver_port),
        ],
    )?;
    let node_id = NodeId(rand::random::<u64>().max(1));
    let config = NodeConfig {
        node_id,
        role: NodeRole::Manager,
        cluster_id: cluster_id.to_string(),
        hostname: site.hostname.clone(),
        host_address: site.host_address.clone(),
        listen_address: site.listen_address.clone(),
        swarm_port: site.swarm_port,
        controller_port: site.controller_port,
        kube_apiserver_port: site.kube_apiserver_port,
        sans: site.sans.clone(),
        cert_ttl_days: site.cert_ttl_days,
        managers: vec![],
        pending_registration: false,
    };
    config.validate().map_err(ManagerError::Invalid)?;
    let identity = NodeIdentity {
        node_id: node_id.to_string(),
        role: capstan_pki::NodeRole::Manager,
        cluster_id: cluster_id.to_string(),
        hosts: manager_hosts(&config),
    };
    let (cert, key) = ca.issue_node_cert(&identity, config.cert_ttl())?;
    let now = OffsetDateTime::now_utc();
    let record = Node {
        id: node_id,
        hostname: site.hostname.clone(),
        role: NodeRole::Manager,
        addr: config.advertise_addr(),
        state: NodeState::Ready,
        availability: Availability::Active,
        labels: BTreeMap::new(),
        created_at: now,
        updated_at: now,
        cert_not_after: cert.not_after,
        description: None,
        capstan_version: capstan_core::version::VERSION.into(),
    };
    Ok((
        config,
        FirstManager {
            record,
            cert_pem: cert.cert_pem,
            key_pem: key,
        },
    ))
}

/// Writes a first manager's data directory: the CA, the secret-sealing
/// key, its certificate, the objects its first start writes (`pending`),
/// and last the configuration, whose presence marks the node installed.
pub(crate) fn write_first_manager(
    dir: &DataDir,
    config: &NodeConfig,
    ca: &ClusterCa,
    secret_key: &[u8],
    node: &FirstManager,
    pending: (&std::path::Path, &[u8]),
) -> Result<(), ManagerError> {
    capstan_pki::write_private_file(&dir.ca_key(), ca.key_pem().as_bytes())?;
    capstan_pki::write_private_file(&dir.secret_key(), secret_key)?;
    capstan_pki::write_public_file(&dir.ca_cert(), ca.cert_pem().as_bytes())?;
    capstan_pki::write_private_file(&dir.node_key(), node.key_pem.as_bytes())?;
    capstan_pki::write_public_file(&dir.node_cert(), node.cert_pem.as_bytes())?;
    capstan_pki::write_private_file(pending.0, pending.1)?;
    config.save(&dir.config())
}

/// Initialises Raft on a freshly installed manager and writes the objects
/// of the install. Safe to run again after a crash at any point.
pub async fn finish_install(state: &SharedState) -> Result<(), ManagerError> {
    let path = state.dir.bootstrap();
    if !path.exists() {
        return Ok(());
    }
    let bytes = std::fs::read(&path).map_err(|e| ManagerError::file("read", &path, e))?;
    let pending: PendingBootstrap =
        serde_json::from_slice(&bytes).map_err(|e| ManagerError::BadConfig {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    lead_alone(state).await?;
    let put_once = |table: &str, id: String, value: Vec<u8>| Op {
        table: table.to_string(),
        id,
        action: Action::Put(value),
        expect: Expect::Absent,
    };
    for op in [
        put_once(
            ClusterInfo::TABLE,
            ClusterInfo::ID.into(),
            encode(&pending.cluster),
        ),
        put_once(Node::TABLE, pending.node.id(), encode(&pending.node)),
        put_once(User::TABLE, pending.admin.id(), encode(&pending.admin)),
    ] {
        match state.write(vec![op], false).await {
            Ok(_) | Err(ManagerError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    std::fs::remove_file(&path).map_err(|e| ManagerError::file("remove", &path, e))?;
    tracing::info!("install finished: cluster record, node and admin written");
    Ok(())
}

/// Makes this manager the one member of a new Raft group (unless it
/// already is one) and waits until it leads.
pub(crate) async fn lead_alone(state: &SharedState) -> Result<(), ManagerError> {
    let me = state.node_id().0;
    let initialized = state
        .raft
        .is_initialized()
        .await
        .map_err(|e| ManagerError::Fatal(e.to_string()))?;
    if !initialized {
        let members = BTreeMap::from([(
            me,
            BasicNode {
                addr: state.config.advertise_addr(),
            },
        )]);
        state
            .raft
            .initialize(members)
            .await
            .map_err(|e| ManagerError::Fatal(format!("initialize raft: {e}")))?;
    }
    state
        .raft
        .wait(Some(Duration::from_secs(30)))
        .current_leader(me, "first start: become leader")
        .await
        .map_err(|e| ManagerError::Unavailable(format!("did not become leader: {e}")))?;
    Ok(())
}

/// Records this manager's Capstan version in its node record when it
/// changed (the first start after an upgrade), so every node advertises
/// what it runs.
pub async fn record_version(state: &SharedState) -> Result<(), ManagerError> {
    let ours = capstan_core::version::VERSION;
    for _ in 0..5 {
        let Some((mut node, version)) = state
            .get::<Node>(
                &state.node_id().to_string(),
                crate::state::Consistency::Linearizable,
            )
            .await?
        else {
            return Ok(());
        };
        if node.capstan_version == ours {
            return Ok(());
        }
        tracing::info!(from = %node.capstan_version, to = ours, "this manager runs a new version");
        node.capstan_version = ours.into();
        node.updated_at = OffsetDateTime::now_utc();
        let op = Op {
            table: Node::TABLE.into(),
            id: node.id(),
            action: Action::Put(encode(&node)),
            expect: Expect::Version(version),
        };
        match state.write(vec![op], false).await {
            Ok(_) => return Ok(()),
            Err(ManagerError::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What `capstan join` was asked for.
#[derive(Clone, Debug)]
pub struct JoinOptions {
    /// Where the node keeps its state.
    pub data_dir: DataDir,
    /// The full join token.
    pub token: String,
    /// A manager's `host:port`.
    pub manager: String,
    /// The address other nodes reach this one at.
    pub host_address: String,
    /// Reported hostname.
    pub hostname: String,
    /// Extra subject alternative names.
    pub sans: Vec<String>,
    /// Address the swarm port binds (managers).
    pub listen_address: String,
    /// Cluster gRPC port of this node (managers).
    pub swarm_port: u16,
    /// Gateway port (managers).
    pub controller_port: u16,
    /// Kubernetes API port (managers).
    pub kube_apiserver_port: u16,
}

/// Joins an existing cluster: checks the manager's CA against the token's
/// digest before sending the secret, then asks to be admitted with a CSR
/// whose key never leaves this node. Writes nothing unless admitted.
/// How long a joining node keeps trying to reach the manager.
const REACH_PATIENCE: Duration = Duration::from_secs(20);

/// The manager's CA, pinned by the token's digest. Machines brought up
/// together (containers on one network, a lab booting) may ask before the
/// manager's name resolves or its port listens, so a failure to connect is
/// retried for [`REACH_PATIENCE`]; any other failure (a wrong CA, a bad
/// address) is final at once.
async fn fetch_ca_patiently(
    manager: &str,
    digest: &capstan_pki::CaDigest,
) -> Result<String, ManagerError> {
    let deadline = tokio::time::Instant::now() + REACH_PATIENCE;
    loop {
        match capstan_pki::fetch_trusted_ca(manager, digest).await {
            Err(e @ capstan_pki::PkiError::Connect { .. })
                if tokio::time::Instant::now() < deadline =>
            {
                tracing::warn!(error = %e, "manager not reachable yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            result => return Ok(result?),
        }
    }
}

pub async fn join(opts: JoinOptions) -> Result<NodeConfig, ManagerError> {
    let dir = &opts.data_dir;
    if dir.is_installed() {
        return Err(ManagerError::AlreadyInstalled {
            path: dir.root().to_path_buf(),
        });
    }
    let token: JoinToken = opts.token.parse()?;
    parse_host_port(&opts.manager)
        .map_err(|e| ManagerError::Invalid(format!("manager address: {e}")))?;
    validate_common(
        &opts.host_address,
        &opts.sans,
        &[
            ("--swarm-port", opts.swarm_port),
            ("--controller-port", opts.controller_port),
            ("--kube-apiserver-port", opts.kube_apiserver_port),
        ],
    )?;

    let ca_pem = fetch_ca_patiently(&opts.manager, &token.ca_digest).await?;
    let (csr_pem, key_pem) = capstan_pki::generate_csr()?;
    let tls = capstan_pki::client_tls(&ca_pem, None);
    let channel = endpoint(&opts.manager, &tls)?
        .connect()
        .await
        .map_err(|source| ManagerError::Transport {
            addr: opts.manager.clone(),
            source,
        })?;
    let advertise_addr = crate::config::join_host_port(&opts.host_address, opts.swarm_port);
    let resp = JoinClient::new(channel)
        .join(JoinRequest {
            token: opts.token.clone(),
            csr_pem,
            hostname: opts.hostname.clone(),
            advertise_addr,
            sans: opts.sans.clone(),
            version: capstan_core::version::VERSION.into(),
        })
        .await
        .map_err(ManagerError::Remote)?
        .into_inner();

    let role: NodeRole = resp
        .role
        .parse()
        .map_err(|e: String| ManagerError::Invalid(format!("manager answered: {e}")))?;
    let node_id: NodeId = resp
        .node_id
        .parse()
        .map_err(|e| ManagerError::Invalid(format!("manager answered: {e}")))?;
    let mut managers = resp.manager_addrs;
    if !managers.contains(&opts.manager) {
        managers.insert(0, opts.manager.clone());
    }
    let config = NodeConfig {
        node_id,
        role,
        cluster_id: resp.cluster_id,
        hostname: opts.hostname,
        host_address: opts.host_address,
        listen_address: opts.listen_address,
        swarm_port: opts.swarm_port,
        controller_port: opts.controller_port,
        kube_apiserver_port: opts.kube_apiserver_port,
        sans: opts.sans,
        cert_ttl_days: 90,
        managers,
        pending_registration: role == NodeRole::Manager,
    };
    if role == NodeRole::Manager {
        ClusterCa::from_pem(&resp.ca_cert_pem, &resp.ca_key_pem)?;
        let key = crate::swarm::SecretKey::from_bytes(&resp.secret_key)?;
        capstan_pki::write_private_file(&dir.ca_key(), resp.ca_key_pem.as_bytes())?;
        capstan_pki::write_private_file(&dir.secret_key(), key.bytes())?;
    }
    capstan_pki::write_public_file(&dir.ca_cert(), resp.ca_cert_pem.as_bytes())?;
    capstan_pki::write_private_file(&dir.node_key(), key_pem.as_bytes())?;
    capstan_pki::write_public_file(&dir.node_cert(), resp.cert_pem.as_bytes())?;
    config.save(&dir.config())?;
    Ok(config)
}

/// A joined manager asks the leader (through any known manager) to make it
/// a voter, retrying until it is one.
pub async fn finish_join(
    state: &SharedState,
    cancel: &CancellationToken,
) -> Result<(), ManagerError> {
    if !state.config.pending_registration {
        return Ok(());
    }
    let mut attempt = 0u32;
    loop {
        for addr in &state.config.managers {
            let Ok(mut client) = state.peer(addr) else {
                continue;
            };
            let req = RegisterManagerRequest {
                advertise_addr: state.config.advertise_addr(),
                node_id: state.node_id().to_string(),
            };
            match client.register_manager(req).await {
                Ok(_) => {
                    let mut config = state.config.clone();
                    config.pending_registration = false;
                    config.save(&state.dir.config())?;
                    tracing::info!("this manager is now a voter");
                    return Ok(());
                }
                Err(e) => {
                    attempt += 1;
                    if attempt % 10 == 1 {
                        tracing::warn!(manager = %addr, error = %e.message(), "registration as manager not done yet");
                    }
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}
