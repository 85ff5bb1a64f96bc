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
