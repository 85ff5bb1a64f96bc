//! Capstan's image registry (MSR/DTR): the OCI distribution API with
//! Docker's token authentication, repositories and team permissions over
//! the control plane's users, organisations, teams and license, and the
//! DTR-style repository API, and the repositories' content trust data
//! (a Notary v1 server, [`trust`]).
//!
//! The registry keeps blobs on the filesystem ([`blobs`]) and repository,
//! manifest and tag records in its own sled database ([`meta`]); accounts
//! and the license come from the control plane ([`control`]).

pub mod access;
pub mod api;
pub mod blobs;
pub mod control;
pub mod error;
pub mod gc;
pub mod manifest;
pub mod meta;
pub mod names;
pub mod server;
pub mod trust;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use error::{RegistryError, RegistryResult};

/// How a registry runs.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// Its folder: blobs, uploads, metadata, token key.
    pub root: PathBuf,
    /// `host:port` clients use (token realm, pull commands).
    pub public_host: String,
    /// The token service name.
    pub service: String,
    /// The control plane's gateway, `https://host:port`.
    pub control_url: String,
    /// The cluster CA (PEM).
    pub ca_pem: String,
    /// This node's certificate (PEM), presented to the control plane (and
    /// served to clients until the control plane gives the registry a
    /// certificate for its public host).
    pub cert_pem: String,
    /// Its key (PEM).
    pub key_pem: String,
    /// Whether manifests, tags and blobs may be deleted through the API.
    pub delete_enabled: bool,
    /// Uploads untouched this long are removed.
    pub upload_timeout: Duration,
    /// Token lifetime.
    pub token_ttl: Duration,
    /// How often garbage collection and retention run.
    pub housekeeping_interval: Duration,
}

impl RegistryConfig {
    /// Defaults for everything but where the registry lives and whom it asks.
    pub fn new(root: PathBuf, public_host: String, control_url: String) -> Self {
        Self {
            root,
            public_host,
            service: "capstan-registry".into(),
            control_url,
            ca_pem: String::new(),
            cert_pem: String::new(),
            key_pem: String::new(),
            delete_enabled: true,
            upload_timeout: Duration::from_secs(3600),
            token_ttl: Duration::from_secs(300),
            housekeeping_interval: Duration::from_secs(3600),
        }
    }
}

/// A running registry's state.
pub struct Registry {
    /// Its configuration.
    pub config: RegistryConfig,
    /// Blobs.
    pub blobs: Arc<blobs::BlobStore>,
    /// Uploads in progress.
    pub uploads: blobs::Uploads,
    /// Repository records.
    pub meta: meta::Meta,
    /// Token keys.
    pub tokens: access::Tokens,
    /// The control plane.
    pub control: control::ControlPlane,
    /// Content trust data (Notary).
    pub trust: trust::TrustStore,
    /// Serialises garbage collection against the pushes it must not race.
    pub gc_lock: tokio::sync::RwLock<()>,
}

/// Why a registry cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A file or folder.
    #[error("registry storage {path}: {source}")]
    Storage {
        /// Which.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The metadata database.
    #[error("registry metadata: {0}")]
    Meta(String),
    /// TLS or the control plane client.
    #[error("registry TLS: {0}")]
    Tls(String),
    /// The listener.
    #[error("registry cannot listen on {addr}: {source}")]
    Listen {
        /// Where.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

impl Registry {
    /// Opens the registry's storage and its control plane client.
    pub fn open(config: RegistryConfig) -> Result<Arc<Self>, StartError> {
        let storage = |source| StartError::Storage {
            path: config.root.clone(),
            source,
        };
        let blobs = Arc::new(blobs::BlobStore::open(&config.root).map_err(storage)?);
        let meta =
            meta::Meta::open(&config.root.join("meta")).map_err(|e| StartError::Meta(e.message))?;
        let trust = trust::TrustStore::open(meta.db()).map_err(|e| StartError::Meta(e.message))?;
        let tokens = access::Tokens::load_or_create(
            &config.root.join("token.key"),
            &config.service,
            config.token_ttl,
        )
        .map_err(storage)?;
        let control = control::ControlPlane::new(
            &config.control_url,
            &config.ca_pem,
            &config.cert_pem,
            &config.key_pem,
        )
        .map_err(|e| StartError::Tls(e.to_string()))?;
        Ok(Arc::new(Self {
            uploads: blobs::Uploads::new(blobs.clone(), config.upload_timeout),
            blobs,
            meta,
            trust,
            tokens,
            control,
            gc_lock: tokio::sync::RwLock::new(()),
            config,
        }))
    }
}

/// Runs a registry on `listen` until cancelled, with its housekeeping.
pub async fn run(
    config: RegistryConfig,
    listen: &str,
    cancel: CancellationToken,
) -> Result<(), StartError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: listen.to_string(),
            source,
        })?;
    let registry = Registry::open(config)?;
    let (cert, key) = server_certificate(&registry, &cancel).await;
    let tls = capstan_pki::https_server_config(&cert, &key, &registry.config.ca_pem)
        .map_err(|e| StartError::Tls(e.to_string()))?;
    tracing::info!(%listen, host = %registry.config.public_host, "registry serving");
    tokio::spawn(gc::housekeeping(registry.clone(), cancel.clone()));
    server::serve(listener, tls, api::router(registry), cancel).await;
    Ok(())
}

/// The certificate to serve: a fresh one from the control plane for the
/// public host (asked for while announcing where the registry serves),
/// else the last one it gave, else the node's own. When the control plane
/// cannot be reached, the announcement is retried in the background.
async fn server_certificate(reg: &Arc<Registry>, cancel: &CancellationToken) -> (String, String) {
    let dir = &reg.config.root;
    let (cert_path, key_path) = (dir.join("server.crt"), dir.join("server.key"));
    let url = format!("https://{}", reg.config.public_host);
    match capstan_pki::generate_csr() {
        Ok((csr, key)) => match reg.control.announce(&url, Some(csr)).await {
            Ok(Some(cert)) => {
                let saved = capstan_pki::write_private_file(&key_path, key.as_bytes())
                    .and_then(|()| capstan_pki::write_public_file(&cert_path, cert.as_bytes()));
                if let Err(e) = saved {
                    tracing::warn!(error = %e, "cannot keep the registry certificate");
                }
                tracing::info!(%url, "registry announced; serving a certificate for its host");
                return (cert, key);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e.message, "cannot announce the registry yet; retrying in the background");
                tokio::spawn(announce_later(reg.clone(), url, cancel.clone()));
            }
        },
        Err(e) => tracing::warn!(error = %e, "cannot make a key for the registry certificate"),
    }
    match (
        std::fs::read_to_string(&cert_path),
        std::fs::read_to_string(&key_path),
    ) {
        (Ok(c), Ok(k)) => (c, k),
        _ => (reg.config.cert_pem.clone(), reg.config.key_pem.clone()),
    }
}

/// Announces the registry until the control plane answers.
async fn announce_later(reg: Arc<Registry>, url: String, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
        match reg.control.announce(&url, None).await {
            Ok(_) => {
                tracing::info!(%url, "registry announced to the control plane");
                return;
            }
            Err(e) => tracing::debug!(error = %e.message, "cannot announce the registry yet"),
        }
    }
}
