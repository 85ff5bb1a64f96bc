//! The cluster root CA and the certificates it issues.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
};
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use crate::csr::{new_node_key, verified_csr_public_key};
use crate::digest::CaDigest;
use crate::error::PkiError;
use crate::node::{check_name, NodeIdentity, CLIENT_OU};
use crate::pem::{cert_der_from_pem, cert_pem_from_der};
use crate::validity::stamp;

/// Common name of every Capstan root CA.
pub const CA_COMMON_NAME: &str = "Capstan Root CA";

/// A certificate the CA issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// When it expires, exactly as written in the certificate (whole seconds).
    pub not_after: OffsetDateTime,
    /// Its serial number, lowercase hex without separators (what
    /// [`crate::PeerIdentity::serial`] reads back).
    pub serial: String,
}

/// Who a client bundle certificate is issued to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientSubject<'a> {
    /// The user name; becomes the subject CN.
    pub username: &'a str,
    /// The user's account id; becomes the subject UID
    /// (0.9.2342.19200300.100.1.1), so that an account made later under the
    /// same name is told apart.
    pub user_id: &'a str,
}

/// A client bundle certificate with its freshly made key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// The certificate.
    pub issued: IssuedCert,
    /// The private key, PKCS#8 PEM (secret: hand it to the user, never store it).
    pub key_pem: String,
    /// The public key, PEM (`PUBLIC KEY`, a SubjectPublicKeyInfo).
    pub public_key_pem: String,
    /// SHA-256 of the DER SubjectPublicKeyInfo, lowercase hex (what
    /// `openssl pkey -pubin -outform DER | sha256sum` prints).
    pub public_key_sha256: String,
}

impl fmt::Debug for ClientCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCert")
            .field("issued", &self.issued)
            .field("public_key_sha256", &self.public_key_sha256)
            .finish_non_exhaustive()
    }
}

/// OID of the LDAP `uid` attribute (RFC 4519), which carries the user id
/// in a client certificate's subject.
pub(crate) const UID_OID: &[u64] = &[0, 9, 2342, 19200300, 100, 1, 1];

/// The cluster root CA (ECDSA P-256): the trust root of every node and client.
///
/// Cheap to clone; clones share the signing key.
#[derive(Clone)]
pub struct ClusterCa {
    cert_pem: String,
    key_pem: String,
    digest: CaDigest,
    cluster_id: String,
    not_after: OffsetDateTime,
    issuer: Arc<Issuer<'static, KeyPair>>,
}

impl ClusterCa {
    /// Creates a new self-signed root CA for `cluster_id`, valid for `ttl`.
    ///
    /// Subject CN "Capstan Root CA", O = cluster id; it may sign leaf
    /// certificates and CRLs only (path length 0).
    pub fn generate(cluster_id: &str, ttl: Duration) -> Result<Self, PkiError> {
        check_name("cluster id", cluster_id)?;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(PkiError::generate("generate the CA key"))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, CA_COMMON_NAME);
        dn.push(DnType::OrganizationName, cluster_id);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let not_after = stamp(&mut params, OffsetDateTime::now_utc(), ttl)?;
        let cert = params
            .self_signed(&key)
            .map_err(PkiError::generate("self-sign the CA certificate"))?;
        Ok(ClusterCa {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            digest: CaDigest::of_der(cert.der()),
            cluster_id: cluster_id.to_string(),
            not_after,
            issuer: Arc::new(Issuer::new(params, key)),
        })
    }

    /// Loads a CA from its certificate and private key (both PEM).
    ///
    /// Only the first certificate of `cert_pem` is used. Refuses a certificate that is not a self-signed CA naming a cluster (O),
    /// and a key that does not belong to the certificate.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let der = cert_der_from_pem(cert_pem, "CA certificate")?;
        let (cluster_id, not_after, public_key) = inspect_root(&der)?;
        let key = KeyPair::from_pem(key_pem).map_err(|e| PkiError::InvalidPrivateKey {
            what: "CA private key",
            reason: e.to_string(),
        })?;
        if key.der_bytes() != public_key.as_slice() {
            return Err(PkiError::CaKeyMismatch);
        }
        let issuer = Issuer::from_ca_cert_der(&der, key)
            .map_err(PkiError::generate("load the CA certificate for signing"))?;
        Ok(ClusterCa {
            // Canonical form: exactly one certificate, whatever else the file held.
            cert_pem: cert_pem_from_der(&der),
            key_pem: key_pem.to_string(),
            digest: CaDigest::of_der(&der),
            cluster_id,
            not_after,
            issuer: Arc::new(issuer),
        })
    }

    /// The CA certificate, PEM (public; hand it to every node).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key, PEM (secret; store with [`crate::write_private_file`]).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The digest that join tokens carry.
    pub fn digest(&self) -> CaDigest {
        self.digest.clone()
    }

    /// The cluster this CA belongs to (its subject O).
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// When the CA certificate itself expires.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// The CA's subject and public key (SubjectPublicKeyInfo), both DER:
    /// what Swarm shows as `TLSInfo.CertIssuerSubject` and
    /// `CertIssuerPublicKey`.
    pub fn issuer_der(&self) -> Result<(Vec<u8>, Vec<u8>), PkiError> {
        let der = cert_der_from_pem(&self.cert_pem, "CA certificate")?;
        let (_, cert) =
            X509Certificate::from_der(der.as_ref()).map_err(|e| PkiError::InvalidCertificate {
                what: "CA certificate",
                reason: e.to_string(),
            })?;
        Ok((
            cert.subject().as_raw().to_vec(),
            cert.public_key().raw.to_vec(),
        ))
    }

    /// Install path: generates a node key locally and issues its certificate.
    /// Returns `(cert, key_pem)`.
    pub fn issue_node_cert(
        &self,
        node: &NodeIdentity,
        ttl: Duration,
    ) -> Result<(IssuedCert, String), PkiError> {
        let key = new_node_key()?;
        let cert = self.sign_node(node, &key, ttl)?;
        Ok((cert, key.serialize_pem()))
    }

    /// Join path: signs a CSR made by the joining node.
    ///
    /// Only the public key comes from the CSR (after its signature is checked);
    /// subject and SANs come from `node`, never from the CSR.
    pub fn sign_node_csr(
        &self,
        csr_pem: &str,
        node: &NodeIdentity,
        ttl: Duration,
    ) -> Result<IssuedCert, PkiError> {
        let public_key = verified_csr_public_key(csr_pem)?;
        self.sign_node(node, &public_key, ttl)
    }

    /// Issues a client bundle certificate with a new key: CN = user name,
    /// UID = user id, OU "capstan-client", O = cluster id, a random serial,
    /// client authentication only.
    pub fn issue_client_cert(
        &self,
        subject: ClientSubject<'_>,
        ttl: Duration,
    ) -> Result<ClientCert, PkiError> {
        check_name("user name", subject.username)?;
        check_name("user id", subject.user_id)?;
        let key = new_node_key()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, subject.username);
        dn.push(DnType::CustomDnType(UID_OID.to_vec()), subject.user_id);
        dn.push(DnType::OrganizationalUnitName, CLIENT_OU);
        dn.push(DnType::OrganizationName, self.cluster_id.as_str());
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let issued = self.sign_leaf(params, &key, ttl)?;
        let spki = key.subject_public_key_info();
        Ok(ClientCert {
            issued,
            key_pem: key.serialize_pem(),
            public_key_pem: key.public_key_pem(),
            public_key_sha256: hex::encode(Sha256::digest(&spki)),
        })
    }

    fn sign_node(
        &self,
        node: &NodeIdentity,
        public_key: &impl PublicKeyData,
        ttl: Duration,
    ) -> Result<IssuedCert, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = node.distinguished_name()?;
        params.subject_alt_names = node.subject_alt_names()?;
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.sign_leaf(params, public_key, ttl)
    }

    /// Adds what every leaf shares (validity, serial, key usage, AKI) and signs.
    fn sign_leaf(
        &self,
        mut params: CertificateParams,
        public_key: &impl PublicKeyData,
        ttl: Duration,
    ) -> Result<IssuedCert, PkiError> {
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let not_after = stamp(&mut params, OffsetDateTime::now_utc(), ttl)?;
        let serial = params
            .serial_number
            .as_ref()
            .map(|s| hex::encode(s.as_ref()))
            .unwrap_or_default();
        let cert = params
            .signed_by(public_key, &self.issuer)
            .map_err(PkiError::generate("sign the certificate"))?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            not_after,
            serial,
        })
    }
}

impl fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCa")
            .field("cluster_id", &self.cluster_id)
            .field("digest", &self.digest)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// Checks that `der` is a self-signed CA naming a cluster; returns
/// `(cluster_id, not_after, raw public key)`.
fn inspect_root(der: &CertificateDer<'_>) -> Result<(String, OffsetDateTime, Vec<u8>), PkiError> {
    let cert = parse_self_signed_ca(der.as_ref(), "CA certificate")?;
    let cluster_id = cert
        .subject()
        .iter_organization()
        .next()
        .and_then(|o| o.as_str().ok())
        .ok_or_else(|| PkiError::NotARootCa {
            reason: "its subject has no organization (O) naming the cluster".to_string(),
        })?;
    Ok((
        cluster_id.to_string(),
        cert.validity().not_after.to_datetime(),
        cert.public_key().subject_public_key.data.to_vec(),
    ))
}

/// Parses `der` and checks that it is a CA certificate signed by its own key.
pub(crate) fn parse_self_signed_ca<'a>(
    der: &'a [u8],
    what: &'static str,
) -> Result<X509Certificate<'a>, PkiError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| PkiError::InvalidCertificate {
        what,
        reason: e.to_string(),
    })?;
    let not_root = |reason: &str| PkiError::NotARootCa {
        reason: reason.to_string(),
    };
    if !cert.is_ca() {
        return Err(not_root(
            "its basic constraints do not mark it as a CA; pass the CA certificate, not a node certificate",
        ));
    }
    if cert.subject() != cert.issuer() || cert.verify_signature(None).is_err() {
        return Err(not_root(
            "it is not self-signed; Capstan needs the root CA certificate",
        ));
    }
    Ok(cert)
}

#[cfg(test)]
mod tests;
