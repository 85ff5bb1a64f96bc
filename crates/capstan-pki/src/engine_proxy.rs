//! TLS of the agents' engine proxies: the port through which the managers'
//! gateways reach a node's Docker engine.
//!
//! A Docker engine socket is root on the machine, so the server side
//! *requires* a client certificate, verified against the cluster CA, whose
//! identity is a manager of the same cluster; anything else fails the
//! handshake. The client side (a manager's gateway) presents its node
//! certificate and trusts only the cluster CA.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

use crate::error::PkiError;
use crate::peer::{peer_identity, PeerKind};

fn bad(what: &'static str, e: &dyn std::fmt::Display) -> PkiError {
    PkiError::InvalidCertificate {
        what,
        reason: e.to_string(),
    }
}

fn cert(pem: &str, what: &'static str) -> Result<CertificateDer<'static>, PkiError> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| bad(what, &e))
}

fn key(pem: &str) -> Result<PrivateKeyDer<'static>, PkiError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| PkiError::InvalidPrivateKey {
        what: "node key",
        reason: e.to_string(),
    })
}

fn roots(ca_cert_pem: &str) -> Result<rustls::RootCertStore, PkiError> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(cert(ca_cert_pem, "cluster CA certificate")?)
        .map_err(|e| bad("cluster CA certificate", &e))?;
    Ok(roots)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Server side of a node's engine proxy: presents `[node cert, CA cert]`
/// and admits only clients whose certificate, verified against the cluster
/// CA, is a manager's of cluster `cluster_id`. HTTP/1.1 only (the engine
/// speaks nothing else).
pub fn engine_proxy_server_config(
    node_cert_pem: &str,
    node_key_pem: &str,
    ca_cert_pem: &str,
    cluster_id: &str,
) -> Result<Arc<rustls::ServerConfig>, PkiError> {
    let chain = vec![
        cert(node_cert_pem, "node certificate")?,
        cert(ca_cert_pem, "cluster CA certificate")?,
    ];
    let provider = provider();
    let inner = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots(ca_cert_pem)?.into(),
        provider.clone(),
    )
    .build()
    .map_err(|e| bad("client verifier", &e))?;
    let verifier = Arc::new(ManagersOnly {
        inner,
        cluster_id: cluster_id.to_string(),
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("TLS versions", &e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key(node_key_pem)?)
        .map_err(|e| bad("node certificate and key", &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Client side toward an engine proxy (a manager's gateway): trusts only the
/// cluster CA and presents the manager's node certificate. Dial with the
/// server name of the node's role ([`crate::NodeRole::server_name`]), which
/// every node certificate carries, and check the peer's node id with
/// [`peer_identity`] after the handshake.
pub fn engine_proxy_client_config(
    ca_cert_pem: &str,
    node_cert_pem: &str,
    node_key_pem: &str,
) -> Result<Arc<rustls::ClientConfig>, PkiError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("TLS versions", &e))?
        .with_root_certificates(roots(ca_cert_pem)?)
        .with_client_auth_cert(
            vec![cert(node_cert_pem, "node certificate")?],
            key(node_key_pem)?,
        )
        .map_err(|e| bad("node certificate and key", &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The cluster CA's verdict, then: is it a manager of this cluster?
#[derive(Debug)]
struct ManagersOnly {
    inner: Arc<dyn ClientCertVerifier>,
    cluster_id: String,
}

impl ClientCertVerifier for ManagersOnly {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)?;
        match peer_identity(end_entity.as_ref()) {
            Ok(id) if id.kind == PeerKind::Manager && id.cluster_id == self.cluster_id => {
                Ok(ClientCertVerified::assertion())
            }
            _ => Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rustls_pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::{ClusterCa, NodeIdentity, NodeRole, MANAGER_SERVER_NAME, WORKER_SERVER_NAME};

    const HOUR: Duration = Duration::from_secs(3600);

    fn node(ca: &ClusterCa, id: &str, role: NodeRole) -> (String, String) {
        let identity = NodeIdentity {
            node_id: id.into(),
            role,
            cluster_id: ca.cluster_id().into(),
            hosts: vec!["127.0.0.1".into()],
        };
        let (issued, key) = ca.issue_node_cert(&identity, HOUR).expect("node cert");
        (issued.cert_pem, key)
    }

    /// Runs one handshake and a one-byte echo; Ok when the byte came back.
    async fn exchange(
        server: Arc<rustls::ServerConfig>,
        client: Arc<rustls::ClientConfig>,
        name: &'static str,
    ) -> Result<(), String> {
        let (a, b) = tokio::io::duplex(1 << 16);
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let serve = tokio::spawn(async move {
            let mut s = acceptor.accept(a).await.map_err(|e| e.to_string())?;
            let mut byte = [0u8; 1];
            s.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
            s.write_all(&byte).await.map_err(|e| e.to_string())?;
            s.flush().await.map_err(|e| e.to_string())
        });
        let connector = tokio_rustls::TlsConnector::from(client);
        let server_name = ServerName::try_from(name).expect("server name");
        let talk = async {
            let mut c = connector
                .connect(server_name, b)
                .await
                .map_err(|e| e.to_string())?;
            c.write_all(b"x").await.map_err(|e| e.to_string())?;
            c.flush().await.map_err(|e| e.to_string())?;
            let mut byte = [0u8; 1];
            c.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(())
        };
        let out = tokio::time::timeout(Duration::from_secs(5), talk)
            .await
            .map_err(|_| "timed out".to_string())?;
        serve.abort();
        out
    }

    fn no_identity(ca: &ClusterCa) -> Arc<rustls::ClientConfig> {
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_root_certificates(roots(ca.cert_pem()).expect("roots"))
                .with_no_client_auth(),
        )
    }

    #[tokio::test]
    async fn only_managers_of_the_cluster_get_through() {
        let ca = ClusterCa::generate("c1", HOUR).expect("ca");
        let (wcert, wkey) = node(&ca, "w1", NodeRole::Worker);
        let server =
            engine_proxy_server_config(&wcert, &wkey, ca.cert_pem(), "c1").expect("server");
        let (mcert, mkey) = node(&ca, "m1", NodeRole::Manager);
        let manager = engine_proxy_client_config(ca.cert_pem(), &mcert, &mkey).expect("client");
        exchange(server.clone(), manager, WORKER_SERVER_NAME)
            .await
            .expect("a manager is admitted");

        let worker = engine_proxy_client_config(ca.cert_pem(), &wcert, &wkey).expect("client");
        assert!(exchange(server.clone(), worker, WORKER_SERVER_NAME)
            .await
            .is_err());
        let alice = ca
            .issue_client_cert(
                crate::ClientSubject {
                    username: "alice",
                    user_id: "u1",
                },
                HOUR,
            )
            .expect("client cert");
        let user =
            engine_proxy_client_config(ca.cert_pem(), &alice.issued.cert_pem, &alice.key_pem)
                .expect("client");
        assert!(exchange(server.clone(), user, WORKER_SERVER_NAME)
            .await
            .is_err());
        assert!(
            exchange(server.clone(), no_identity(&ca), WORKER_SERVER_NAME)
                .await
                .is_err()
        );

        // A manager of another cluster (another CA) is refused too.
        let other = ClusterCa::generate("c2", HOUR).expect("ca");
        let (ocert, okey) = node(&other, "m9", NodeRole::Manager);
        let stranger = engine_proxy_client_config(ca.cert_pem(), &ocert, &okey).expect("client");
        assert!(exchange(server, stranger, WORKER_SERVER_NAME)
            .await
            .is_err());
    }

    #[tokio::test]
    async fn the_client_checks_the_server_role_name() {
        let ca = ClusterCa::generate("c1", HOUR).expect("ca");
        let (wcert, wkey) = node(&ca, "w1", NodeRole::Worker);
        let server =
            engine_proxy_server_config(&wcert, &wkey, ca.cert_pem(), "c1").expect("server");
        let (mcert, mkey) = node(&ca, "m1", NodeRole::Manager);
        let manager = engine_proxy_client_config(ca.cert_pem(), &mcert, &mkey).expect("client");
        assert!(exchange(server, manager, MANAGER_SERVER_NAME)
            .await
            .is_err());
    }

    #[test]
    fn bad_pem_is_named() {
        let err = engine_proxy_server_config("junk", "junk", "junk", "c1").unwrap_err();
        assert!(err.to_string().contains("node certificate"), "{err}");
        let err = engine_proxy_client_config("junk", "junk", "junk").unwrap_err();
        assert!(err.to_string().contains("CA certificate"), "{err}");
    }
}
