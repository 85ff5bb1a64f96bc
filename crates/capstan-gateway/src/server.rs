//! The HTTPS listener: TLS (with optional client certificates) in front of
//! HTTP/1.1 and HTTP/2, and the per-connection facts handlers need.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::Router;
use capstan_manager::{DataDir, ManagerError};
use capstan_pki::PeerIdentity;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the node certificate files are checked for a renewal.
const CERT_CHECK: Duration = Duration::from_secs(60);

/// Who is on the other end of a connection, put into every request's
/// extensions.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// Peer address.
    pub remote: SocketAddr,
    /// The identity in the client certificate, verified against the
    /// cluster CA, when the client sent one.
    pub client: Option<PeerIdentity>,
}

/// The server TLS configuration, rebuilt when the node certificate renews.
#[derive(Clone)]
pub struct TlsReloader {
    dir: DataDir,
    current: Arc<RwLock<(Arc<rustls::ServerConfig>, Option<SystemTime>)>>,
}

impl TlsReloader {
    /// Loads the node certificate and the cluster CA of a data directory.
    pub fn load(dir: &DataDir) -> Result<Self, ManagerError> {
        let (config, mtime) = build(dir)?;
        Ok(Self {
            dir: dir.clone(),
            current: Arc::new(RwLock::new((config, mtime))),
        })
    }

    fn config(&self) -> Arc<rustls::ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    fn refresh(&self) {
        let mtime = modified(&self.dir.node_cert());
        let stale = self.current.read().unwrap_or_else(|p| p.into_inner()).1 != mtime;
        if stale {
            match build(&self.dir) {
                Ok(next) => {
                    tracing::info!("gateway certificate reloaded");
                    *self.current.write().unwrap_or_else(|p| p.into_inner()) = next;
                }
                Err(e) => tracing::warn!(error = %e, "cannot reload the gateway certificate"),
            }
        }
    }
}

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn build(dir: &DataDir) -> Result<(Arc<rustls::ServerConfig>, Option<SystemTime>), ManagerError> {
    let read = |p: std::path::PathBuf| {
        std::fs::read_to_string(&p).map_err(|e| ManagerError::file("read", p, e))
    };
    let mtime = modified(&dir.node_cert());
    let config = capstan_pki::https_server_config(
        &read(dir.node_cert())?,
        &read(dir.node_key())?,
        &read(dir.ca_cert())?,
    )?;
    Ok((config, mtime))
}

/// Accepts connections until cancelled.
pub async fn serve(
    listener: TcpListener,
    tls: TlsReloader,
    app: Router,
    cancel: CancellationToken,
) -> Result<(), ManagerError> {
    let mut check = tokio::time::interval(CERT_CHECK);
    loop {
        let (stream, remote) = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = check.tick() => { tls.refresh(); continue; }
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "gateway accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let acceptor = TlsAcceptor::from(tls.config());
        let app = app.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%remote, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let client = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| capstan_pki::peer_identity(c).ok());
            let info = ConnInfo { remote, client };
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let mut req = req.map(axum::body::Body::new);
                    req.extensions_mut().insert(info.clone());
                    let early = crate::docker::prepare(&mut req);
                    let app = app.clone();
                    async move {
                        match early {
                            Some(resp) => Ok(resp),
                            None => app.oneshot(req).await,
                        }
                    }
                });
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            tokio::select! {
                r = conn => if let Err(e) = r {
                    tracing::debug!(%remote, error = %e, "connection ended with an error");
                },
                _ = cancel.cancelled() => {}
            }
        });
    }
}
