//! TLS configuration for the swarm port (tonic 0.14, rustls with ring).

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::node::MANAGER_SERVER_NAME;

/// Server side of the swarm port.
///
/// Presents `[node cert, CA cert]` as its chain so that a joining node can pin
/// the CA by digest ([`crate::fetch_trusted_ca`]). Client certificates are
/// verified against the CA when offered but not required: the join service
/// must be reachable without one, so every handler checks
/// [`crate::peer_identity`] itself.
///
/// PEM problems surface when tonic builds the server (`Server::tls_config`).
pub fn server_tls(node_cert_pem: &str, node_key_pem: &str, ca_cert_pem: &str) -> ServerTlsConfig {
    let chain = format!("{}\n{}", node_cert_pem.trim_end(), ca_cert_pem.trim_end());
    ServerTlsConfig::new()
        .identity(Identity::from_pem(chain, node_key_pem))
        .client_ca_root(Certificate::from_pem(ca_cert_pem))
        .client_auth_optional(true)
}

/// Client side toward a manager: trusts only the cluster CA, expects the
/// server name [`MANAGER_SERVER_NAME`] (whatever address was dialed), and
/// presents `identity` `(cert_pem, key_pem)` when given.
pub fn client_tls(ca_cert_pem: &str, identity: Option<(&str, &str)>) -> ClientTlsConfig {
    let config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_cert_pem))
        .domain_name(MANAGER_SERVER_NAME);
    match identity {
        Some((cert_pem, key_pem)) => config.identity(Identity::from_pem(cert_pem, key_pem)),
        None => config,
    }
}

/// Server side of the gateway's HTTPS port (REST API, dashboard, Docker and
/// Kubernetes APIs).
///
/// Presents `[node cert, CA cert]`, offers HTTP/2 and HTTP/1.1 by ALPN, and
/// asks for a client certificate without requiring one: a client bundle's
/// certificate, verified against the cluster CA, authenticates its user; a
/// browser or a bearer-token client sends none.
pub fn https_server_config(
    node_cert_pem: &str,
    node_key_pem: &str,
    ca_cert_pem: &str,
) -> Result<std::sync::Arc<rustls::ServerConfig>, crate::PkiError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &'static str, e: &dyn std::fmt::Display| crate::PkiError::InvalidCertificate {
        what,
        reason: e.to_string(),
    };
    let mut chain = Vec::new();
    for pem in [node_cert_pem, ca_cert_pem] {
        let cert = CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| bad("gateway certificate", &e))?;
        chain.push(cert);
    }
    let key = PrivateKeyDer::from_pem_slice(node_key_pem.as_bytes()).map_err(|e| {
        crate::PkiError::InvalidPrivateKey {
            what: "gateway key",
            reason: e.to_string(),
        }
    })?;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(chain[1].clone())
        .map_err(|e| bad("cluster CA certificate", &e))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone())
            .allow_unauthenticated()
            .build()
            .map_err(|e| bad("client verifier", &e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("TLS versions", &e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| bad("gateway certificate and key", &e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(std::sync::Arc::new(config))
}

/// Makes ring the process-wide rustls crypto provider unless one is set.
///
/// tonic's server side uses the process default provider; call this once at
/// startup so the choice does not depend on which rustls features other
/// dependencies happen to enable.
pub fn install_default_crypto_provider() {
    // Err means a provider is already installed, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests;
