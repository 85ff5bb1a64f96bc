//! capstan-pki: the cluster's public key infrastructure.
//!
//! Owns the root CA ([`ClusterCa`]), node and client certificates, join
//! tokens ([`JoinToken`]), the TLS configuration of the swarm port
//! ([`server_tls`], [`client_tls`]) and the CA probe a joining node runs
//! before trusting a manager ([`fetch_trusted_ca`]).
//!
//! Architecture invariant: this is the only crate that creates or parses
//! X.509 material or touches key bytes; everything else passes PEM strings
//! and asks here. Pure decisions ([`needs_renewal`],
//! [`verify_presented_chain`]) take the time as an argument.

#![warn(missing_docs)]

mod ca;
mod chain;
mod csr;
mod digest;
mod engine_proxy;
mod error;
mod files;
mod node;
mod peer;
mod pem;
mod probe;
mod tls;
mod token;
mod validity;

#[cfg(test)]
mod testing;

pub use ca::{ClientCert, ClientSubject, ClusterCa, IssuedCert, CA_COMMON_NAME};
pub use chain::verify_presented_chain;
pub use csr::generate_csr;
pub use digest::{digest_of_cert_pem, CaDigest};
pub use engine_proxy::{engine_proxy_client_config, engine_proxy_server_config};
pub use error::PkiError;
pub use files::{write_private_file, write_public_file};
pub use node::{NodeIdentity, NodeRole, CLIENT_OU, MANAGER_SERVER_NAME, WORKER_SERVER_NAME};
pub use peer::{cert_not_after, needs_renewal, peer_identity, PeerIdentity, PeerKind};
pub use probe::{fetch_trusted_ca, PROBE_TIMEOUT};
pub use tls::{client_tls, https_server_config, install_default_crypto_provider, server_tls};
pub use token::{JoinToken, TokenProblem, SECRET_LEN};
