//! Certificate signing requests: made by a joining node, read by the CA.
//!
//! The CA takes only the public key from a CSR, after checking that the CSR is
//! signed by that key; subject and SANs come from the CA's own decision.

use rcgen::{CertificateParams, DistinguishedName, KeyPair, SubjectPublicKeyInfo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateSigningRequestDer;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;

use crate::error::PkiError;

/// A new ECDSA P-256 key and a CSR signed by it, both PEM: `(csr_pem, key_pem)`.
///
/// The CSR carries no subject: the CA decides the node's identity.
pub fn generate_csr() -> Result<(String, String), PkiError> {
    let key = new_node_key()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    let csr = params
        .serialize_request(&key)
        .map_err(PkiError::generate("build the certificate signing request"))?;
    let csr_pem = csr
        .pem()
        .map_err(PkiError::generate("encode the certificate signing request"))?;
    Ok((csr_pem, key.serialize_pem()))
}

/// A fresh ECDSA P-256 key for a node or client certificate.
pub(crate) fn new_node_key() -> Result<KeyPair, PkiError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(PkiError::generate("generate an ECDSA P-256 key"))
}

/// The public key of a CSR whose self-signature verifies.
pub(crate) fn verified_csr_public_key(csr_pem: &str) -> Result<SubjectPublicKeyInfo, PkiError> {
    let der = CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes()).map_err(|e| {
        PkiError::InvalidCsr {
            reason: format!("no PEM CERTIFICATE REQUEST block found ({e})"),
        }
    })?;
    let (rest, csr) =
        X509CertificationRequest::from_der(der.as_ref()).map_err(|e| PkiError::InvalidCsr {
            reason: format!("it is not valid DER ({e})"),
        })?;
    if !rest.is_empty() {
        return Err(PkiError::InvalidCsr {
            reason: "it has trailing bytes after the request".to_string(),
        });
    }
    csr.verify_signature().map_err(|_| PkiError::CsrSignature)?;
    let spki = csr.certification_request_info.subject_pki.raw;
    SubjectPublicKeyInfo::from_der(spki).map_err(|e| PkiError::InvalidCsr {
        reason: format!("its public key type is not supported ({e}); use ECDSA P-256"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::PublicKeyData;

    #[test]
    fn generated_csr_verifies_and_carries_the_key() {
        let (csr_pem, key_pem) = generate_csr().expect("csr");
        assert!(csr_pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        let key = KeyPair::from_pem(&key_pem).expect("key parses");
        assert_eq!(key.algorithm(), &rcgen::PKCS_ECDSA_P256_SHA256);
        let public = verified_csr_public_key(&csr_pem).expect("verifies");
        assert_eq!(public.der_bytes(), key.der_bytes());
    }

    #[test]
    fn tampered_csr_is_refused() {
        let (csr_pem, _) = generate_csr().expect("csr");
        let mut der = CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes())
            .expect("pem")
            .as_ref()
            .to_vec();
        // Flip a bit inside the last bytes: the signature.
        let last = der.len() - 2;
        der[last] ^= 0x01;
        let tampered = format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der)
        );
        let err = verified_csr_public_key(&tampered).expect_err("bad signature");
        assert!(matches!(err, PkiError::CsrSignature), "{err}");
    }

    #[test]
    fn garbage_is_refused() {
        let err = verified_csr_public_key("not a csr").unwrap_err();
        assert!(matches!(err, PkiError::InvalidCsr { .. }), "{err}");
    }
}
