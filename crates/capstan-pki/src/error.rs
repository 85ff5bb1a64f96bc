//! The one error type of this crate.

use std::path::PathBuf;

use crate::digest::CaDigest;
use crate::token::TokenProblem;

/// Everything that can go wrong in the cluster PKI.
///
/// Messages say what was wrong and what to do about it. No variant ever
/// carries a join-token secret or a private key.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A field of a node or client identity (node id, cluster id, user name) is unusable.
    #[error("invalid {field} {value:?}: {reason}")]
    InvalidName {
        /// Which field was wrong ("node id", "cluster id", "user name").
        field: &'static str,
        /// The rejected value.
        value: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A host given for a certificate's subject alternative names is not a DNS name or IP address.
    #[error("invalid host {host:?} for a node certificate: {reason}; give a DNS name (e.g. node1.example.com) or an IP address, without port or scheme")]
    InvalidHost {
        /// The rejected host as given.
        host: String,
        /// Why it was rejected.
        reason: String,
    },

    /// The requested certificate lifetime cannot be used.
    #[error("invalid certificate lifetime {ttl:?}: {reason}")]
    InvalidTtl {
        /// The requested lifetime.
        ttl: std::time::Duration,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// The renewal fraction is outside 0.0..=1.0.
    #[error("invalid renewal fraction {0}: it must be a number between 0.0 and 1.0 (e.g. 0.3 to renew when 30% of the lifetime remains)")]
    InvalidRenewalFraction(f64),

    /// A certificate (PEM or DER) could not be read.
    #[error("could not read the {what}: {reason}; check that it is an unmodified PEM/DER X.509 certificate")]
    InvalidCertificate {
        /// Which certificate ("CA certificate", "peer certificate", ...).
        what: &'static str,
        /// What the parser reported.
        reason: String,
    },

    /// A private key (PEM) could not be read.
    #[error("could not read the {what}: {reason}; check that it is an unmodified PKCS#8 PEM private key")]
    InvalidPrivateKey {
        /// Which key ("CA private key", "node private key").
        what: &'static str,
        /// What the parser reported (never the key itself).
        reason: String,
    },

    /// The CA private key does not belong to the CA certificate.
    #[error("the CA private key does not match the CA certificate; pass the key file that was generated together with this certificate")]
    CaKeyMismatch,

    /// The certificate given as the cluster CA cannot act as a root CA.
    #[error("the certificate is not usable as the cluster root CA: {reason}")]
    NotARootCa {
        /// Why it cannot be used.
        reason: String,
    },

    /// A certificate signing request is malformed.
    #[error(
        "invalid certificate signing request: {reason}; generate a new one with `capstan join`"
    )]
    InvalidCsr {
        /// What was wrong.
        reason: String,
    },

    /// The signature of a certificate signing request does not verify, so the
    /// requester does not prove possession of the key.
    #[error("the certificate signing request is not signed by its own key; generate a new one with `capstan join`")]
    CsrSignature,

    /// rcgen refused to build a key or certificate.
    #[error("could not {action}: {source}")]
    Generate {
        /// What we were doing ("generate the CA key", "sign the node certificate", ...).
        action: &'static str,
        /// The underlying rcgen error.
        #[source]
        source: rcgen::Error,
    },

    /// A peer certificate is valid X.509 but was not issued as a Capstan identity.
    #[error("the peer certificate is not a Capstan identity: {reason}")]
    NotACapstanIdentity {
        /// What is missing or unexpected.
        reason: String,
    },

    /// A CA digest is not 64 hexadecimal characters.
    #[error("invalid CA digest {value:?}: {reason}; it must be the 64-character hex SHA-256 of the CA certificate")]
    InvalidDigest {
        /// The rejected value.
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// A join token is malformed. The message never contains the token's secret.
    #[error(transparent)]
    InvalidToken(TokenProblem),

    /// Reading or writing a file failed.
    #[error("could not {action} {path}: {source}")]
    Io {
        /// What we were doing ("create directory", "write", "rename into place").
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A manager address is not "host:port".
    #[error("invalid manager address {addr:?}: {reason}; use host:port, e.g. 10.0.0.1:2377")]
    InvalidAddress {
        /// The rejected address.
        addr: String,
        /// Why it was rejected.
        reason: String,
    },

    /// Connecting to or handshaking with a manager failed.
    #[error("could not reach the manager at {addr}: {reason}; check the address and that port is reachable from this host")]
    Connect {
        /// The address we tried.
        addr: String,
        /// What failed.
        reason: String,
    },

    /// The manager presented a CA that is not the one named in the join token.
    #[error("the manager presented CA certificate with digest {found}, but the join token expects {expected}; you may be talking to the wrong cluster or to an impostor; check the address and ask a manager for a current token")]
    CaMismatch {
        /// The digest from the join token.
        expected: CaDigest,
        /// The digest of the CA the manager presented (or of its top certificate).
        found: CaDigest,
    },

    /// The manager's chain contains the expected CA, but its own certificate is not valid under it.
    #[error("the manager's certificate is not valid under the expected cluster CA: {reason}; the manager may need its certificate renewed, or you are talking to an impostor")]
    UntrustedPeer {
        /// Why the certificate was rejected.
        reason: String,
    },
}

impl PkiError {
    /// Wraps an rcgen error with what we were doing.
    pub(crate) fn generate(action: &'static str) -> impl FnOnce(rcgen::Error) -> PkiError {
        move |source| PkiError::Generate { action, source }
    }
}
