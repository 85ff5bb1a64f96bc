//! The engine proxy: a TLS port through which the managers' gateways reach
//! this node's Docker engine (MKE's `ucp-proxy`, port 12376).
//!
//! Only a manager of the cluster gets through: the handshake requires a
//! client certificate, verified against the cluster CA, whose identity is a
//! manager of this cluster ([`capstan_pki::engine_proxy_server_config`]).
//! Each admitted connection is then piped byte for byte to the engine's
//! socket, so streaming answers (logs, stats, wait) and hijacked
//! connections (attach, exec) work without the proxy knowing HTTP. Access
//! decisions are the gateway's; the proxy only decides who may ask.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// The engine proxy's default port, MKE's `ucp-proxy` port.
pub const DEFAULT_ENGINE_PROXY_PORT: u16 = 12376;

/// The engine's socket when `DOCKER_HOST` is not set.
const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the certificate files are checked for a renewal.
const CERT_CHECK: Duration = Duration::from_secs(60);

/// What can stop the engine proxy from starting.
#[derive(Debug, thiserror::Error)]
pub enum EngineProxyError {
    /// `DOCKER_HOST` names an engine the proxy cannot pipe to.
    #[error("DOCKER_HOST {0:?} is not supported by the engine proxy: use unix:///path/to/docker.sock or tcp://host:port (without TLS)")]
    UnsupportedDockerHost(String),
    /// The listening address could not be bound.
    #[error("the engine proxy cannot listen on {address}: {source}; choose another port with --engine-proxy-port (0 picks a free one)")]
    Bind {
        /// `host:port` asked for.
        address: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// A certificate file could not be read.
    #[error("cannot read {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The node certificate, key or CA could not be made into a TLS configuration.
    #[error("the engine proxy's TLS configuration: {0}")]
    Tls(#[from] capstan_pki::PkiError),
}

/// Where the local Docker engine listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineSocket {
    /// A unix socket, e.g. `/var/run/docker.sock`.
    Unix(PathBuf),
    /// A plain TCP address, `host:port`.
    Tcp(String),
}

impl EngineSocket {
    /// The engine named by a `DOCKER_HOST` value; the default socket when
    /// unset or empty.
    pub fn from_docker_host(value: Option<&str>) -> Result<Self, EngineProxyError> {
        let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(Self::Unix(PathBuf::from(DEFAULT_SOCKET)));
        };
        let unsupported = || EngineProxyError::UnsupportedDockerHost(value.to_string());
        if let Some(path) = value.strip_prefix("unix://") {
            return if path.starts_with('/') {
                Ok(Self::Unix(PathBuf::from(path)))
            } else {
                Err(unsupported())
            };
        }
        if let Some(addr) = value.strip_prefix("tcp://") {
            let addr = addr.trim_end_matches('/');
            return if addr
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            {
                Ok(Self::Tcp(addr.to_string()))
            } else {
                Err(unsupported())
            };
        }
        Err(unsupported())
    }

    /// The engine of this process's environment (`DOCKER_HOST`).
    pub fn from_env() -> Result<Self, EngineProxyError> {
        Self::from_docker_host(std::env::var("DOCKER_HOST").ok().as_deref())
    }
}

/// How the engine proxy is set up.
#[derive(Clone, Debug)]
pub struct EngineProxyConfig {
    /// Address to listen on (an IP literal or name; `0.0.0.0` for all).
    pub listen_host: String,
    /// Address the managers reach this node at, reported with the port.
    pub advertise_host: String,
    /// Port; 0 picks a free one.
    pub port: u16,
    /// This node's certificate (PEM file).
    pub node_cert: PathBuf,
    /// Its key (PEM file).
    pub node_key: PathBuf,
    /// The cluster CA (PEM file).
    pub ca_cert: PathBuf,
    /// The cluster whose managers are admitted.
    pub cluster_id: String,
    /// The engine to pipe to.
    pub engine: EngineSocket,
}

/// A bound engine proxy, ready to serve.
pub struct EngineProxy {
    listener: TcpListener,
    address: String,
    tls: TlsSource,
    engine: EngineSocket,
}

impl std::fmt::Debug for EngineProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineProxy")
            .field("address", &self.address)
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

/// `host:port`, bracketing IPv6 literals.
fn join_host_port(host: &str, port: u16) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => format!("[{host}]:{port}"),
        _ => format!("{host}:{port}"),
    }
}

impl EngineProxy {
    /// Loads the TLS configuration and binds the port.
    pub async fn bind(config: EngineProxyConfig) -> Result<Self, EngineProxyError> {
        let tls = TlsSource::load(&config)?;
        let address = join_host_port(&config.listen_host, config.port);
        let listener =
            TcpListener::bind(&address)
                .await
                .map_err(|source| EngineProxyError::Bind {
                    address: address.clone(),
                    source,
                })?;
        let port = listener
            .local_addr()
            .map_err(|source| EngineProxyError::Bind {
                address: address.clone(),
                source,
            })?
            .port();
        Ok(Self {
            listener,
            address: join_host_port(&config.advertise_host, port),
            tls,
            engine: config.engine,
        })
    }

    /// `host:port` the managers reach this proxy at (the bound port, also
    /// when 0 was asked for).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Accepts and pipes connections until `cancel` fires; open
    /// connections end with it too.
    pub async fn serve(mut self, cancel: CancellationToken) {
        tracing::info!(address = %self.address, engine = ?self.engine, "engine proxy serving");
        loop {
            let (stream, remote) = tokio::select! {
                _ = cancel.cancelled() => return,
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "engine proxy accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let acceptor = TlsAcceptor::from(self.tls.current());
            let engine = self.engine.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = handle(stream, remote, acceptor, engine) => {}
                }
            });
        }
    }
}

/// One admitted connection: handshake, then pipe to the engine.
async fn handle(
    stream: TcpStream,
    remote: SocketAddr,
    acceptor: TlsAcceptor,
    engine: EngineSocket,
) {
    let mut tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!(%remote, error = %e, "engine proxy refused a connection");
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, "engine proxy handshake timed out");
            return;
        }
    };
    let result = match &engine {
        EngineSocket::Unix(path) => match UnixStream::connect(path).await {
            Ok(mut up) => tokio::io::copy_bidirectional(&mut tls, &mut up)
                .await
                .map(|_| ()),
            Err(e) => unreachable_engine(&mut tls, path, &e).await,
        },
        EngineSocket::Tcp(addr) => match TcpStream::connect(addr).await {
            Ok(mut up) => tokio::io::copy_bidirectional(&mut tls, &mut up)
                .await
                .map(|_| ()),
            Err(e) => unreachable_engine(&mut tls, Path::new(addr), &e).await,
        },
    };
    if let Err(e) = result {
        tracing::debug!(%remote, error = %e, "engine proxy connection ended with an error");
    }
}

/// Answers the one request of a connection whose engine is down, in the
/// Engine API's error shape, so the user reads why.
async fn unreachable_engine<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut S,
    engine: &Path,
    error: &std::io::Error,
) -> std::io::Result<()> {
    tracing::warn!(engine = %engine.display(), %error, "engine proxy cannot reach the Docker engine");
    let body = serde_json::json!({
        "message": format!("the node's Docker engine at {} is not reachable: {error}", engine.display())
    })
    .to_string();
    let head = format!(
        "HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    client.write_all(head.as_bytes()).await?;
    client.write_all(body.as_bytes()).await?;
    client.shutdown().await
}

/// The server TLS configuration, rebuilt when the node certificate renews.
struct TlsSource {
    config: EngineProxyConfig,
    current: Arc<ServerConfig>,
    modified: Option<SystemTime>,
    checked: Instant,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl TlsSource {
    fn load(config: &EngineProxyConfig) -> Result<Self, EngineProxyError> {
        Ok(Self {
            config: config.clone(),
            current: build(config)?,
            modified: modified(&config.node_cert),
            checked: Instant::now(),
        })
    }

    /// The configuration to accept with, reloaded when the certificate
    /// file changed (checked at most every [`CERT_CHECK`]).
    fn current(&mut self) -> Arc<ServerConfig> {
        if self.checked.elapsed() >= CERT_CHECK {
            self.checked = Instant::now();
            let now = modified(&self.config.node_cert);
            if now != self.modified {
                match build(&self.config) {
                    Ok(next) => {
                        tracing::info!("engine proxy certificate reloaded");
                        self.current = next;
                        self.modified = now;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot reload the engine proxy certificate")
                    }
                }
            }
        }
        self.current.clone()
    }
}

fn build(config: &EngineProxyConfig) -> Result<Arc<ServerConfig>, EngineProxyError> {
    let read = |p: &PathBuf| {
        std::fs::read_to_string(p).map_err(|source| EngineProxyError::ReadFile {
            path: p.clone(),
            source,
        })
    };
    Ok(capstan_pki::engine_proxy_server_config(
        &read(&config.node_cert)?,
        &read(&config.node_key)?,
        &read(&config.ca_cert)?,
        &config.cluster_id,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_host_values_are_understood_or_named() {
        assert_eq!(
            EngineSocket::from_docker_host(None).expect("default"),
            EngineSocket::Unix(PathBuf::from("/var/run/docker.sock"))
        );
        assert_eq!(
            EngineSocket::from_docker_host(Some("unix:///run/user/1000/docker.sock"))
                .expect("unix"),
            EngineSocket::Unix(PathBuf::from("/run/user/1000/docker.sock"))
        );
        assert_eq!(
            EngineSocket::from_docker_host(Some("tcp://10.0.0.5:2375")).expect("tcp"),
            EngineSocket::Tcp("10.0.0.5:2375".into())
        );
        for bad in [
            "ssh://me@host",
            "unix://relative.sock",
            "tcp://nohost",
            "npipe:////./pipe/docker",
        ] {
            let e = EngineSocket::from_docker_host(Some(bad)).expect_err(bad);
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    /// A CA, this node's (worker) certificate files, and a manager's and a
    /// worker's client configurations.
    struct Pki {
        dir: tempfile::TempDir,
        manager: Arc<tokio_rustls::rustls::ClientConfig>,
        worker: Arc<tokio_rustls::rustls::ClientConfig>,
    }

    fn pki() -> Pki {
        use capstan_pki::{ClusterCa, NodeIdentity, NodeRole};
        let hour = Duration::from_secs(3600);
        let ca = ClusterCa::generate("c1", hour).expect("ca");
        let issue = |id: &str, role| {
            let identity = NodeIdentity {
                node_id: id.into(),
                role,
                cluster_id: "c1".into(),
                hosts: vec!["127.0.0.1".into()],
            };
            let (cert, key) = ca.issue_node_cert(&identity, hour).expect("cert");
            (cert.cert_pem, key)
        };
        let (wcert, wkey) = issue("w1", NodeRole::Worker);
        let (mcert, mkey) = issue("m1", NodeRole::Manager);
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("node.crt"), &wcert).expect("write");
        std::fs::write(dir.path().join("node.key"), &wkey).expect("write");
        std::fs::write(dir.path().join("ca.crt"), ca.cert_pem()).expect("write");
        let client = |c: &str, k: &str| {
            capstan_pki::engine_proxy_client_config(ca.cert_pem(), c, k).expect("client config")
        };
        Pki {
            manager: client(&mcert, &mkey),
            worker: client(&wcert, &wkey),
            dir,
        }
    }

    /// A stand-in engine on a unix socket that answers every connection
    /// with `pong:` and what it read first.
    fn fake_engine(path: &Path) {
        let listener = tokio::net::UnixListener::bind(path).expect("bind socket");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    use tokio::io::AsyncReadExt;
                    let mut buf = [0u8; 4];
                    if s.read_exact(&mut buf).await.is_ok() {
                        let _ = s.write_all(b"pong:").await;
                        let _ = s.write_all(&buf).await;
                    }
                });
            }
        });
    }

    async fn ask(
        addr: &str,
        client: Arc<tokio_rustls::rustls::ClientConfig>,
    ) -> Result<Vec<u8>, std::io::Error> {
        use tokio::io::AsyncReadExt;
        let tcp = TcpStream::connect(addr).await?;
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from("capstan-worker")
            .expect("server name");
        let mut tls = tokio_rustls::TlsConnector::from(client)
            .connect(name, tcp)
            .await?;
        tls.write_all(b"ping").await?;
        tls.flush().await?;
        let mut out = Vec::new();
        tls.read_to_end(&mut out).await?;
        Ok(out)
    }

    #[tokio::test]
    async fn managers_are_piped_to_the_engine_and_others_refused() {
        let pki = pki();
        let socket = pki.dir.path().join("engine.sock");
        fake_engine(&socket);
        let proxy = EngineProxy::bind(EngineProxyConfig {
            listen_host: "127.0.0.1".into(),
            advertise_host: "127.0.0.1".into(),
            port: 0,
            node_cert: pki.dir.path().join("node.crt"),
            node_key: pki.dir.path().join("node.key"),
            ca_cert: pki.dir.path().join("ca.crt"),
            cluster_id: "c1".into(),
            engine: EngineSocket::Unix(socket),
        })
        .await
        .expect("bind");
        let addr = proxy.address().to_string();
        assert!(!addr.ends_with(":0"), "the bound port is reported: {addr}");
        let cancel = CancellationToken::new();
        tokio::spawn(proxy.serve(cancel.clone()));

        let out = tokio::time::timeout(Duration::from_secs(5), ask(&addr, pki.manager.clone()))
            .await
            .expect("in time")
            .expect("a manager gets through");
        assert_eq!(out, b"pong:ping");
        let refused = tokio::time::timeout(Duration::from_secs(5), ask(&addr, pki.worker.clone()))
            .await
            .expect("in time");
        assert!(refused.is_err(), "a worker must be refused: {refused:?}");
        cancel.cancel();
    }

    #[tokio::test]
    async fn a_port_in_use_is_named() {
        let pki = pki();
        let taken = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = taken.local_addr().expect("addr").port();
        let err = EngineProxy::bind(EngineProxyConfig {
            listen_host: "127.0.0.1".into(),
            advertise_host: "127.0.0.1".into(),
            port,
            node_cert: pki.dir.path().join("node.crt"),
            node_key: pki.dir.path().join("node.key"),
            ca_cert: pki.dir.path().join("ca.crt"),
            cluster_id: "c1".into(),
            engine: EngineSocket::Unix(PathBuf::from("/nonexistent.sock")),
        })
        .await
        .expect_err("port taken");
        assert!(
            err.to_string().contains(&format!("127.0.0.1:{port}")),
            "{err}"
        );
        assert!(err.to_string().contains("--engine-proxy-port"), "{err}");
    }

    #[test]
    fn addresses_bracket_ipv6() {
        assert_eq!(join_host_port("10.0.0.1", 12376), "10.0.0.1:12376");
        assert_eq!(join_host_port("::1", 12376), "[::1]:12376");
        assert_eq!(join_host_port("node1", 1), "node1:1");
    }
}
