//! PEM in and out. Decoding uses rustls-pki-types; encoding is the few lines
//! of RFC 7468 we need so that certificates read off the wire can be stored.

use base64::Engine;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::error::PkiError;

/// The first certificate of a PEM document, as DER.
pub(crate) fn cert_der_from_pem(
    pem: &str,
    what: &'static str,
) -> Result<CertificateDer<'static>, PkiError> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| PkiError::InvalidCertificate {
        what,
        reason: format!("no PEM CERTIFICATE block found ({e})"),
    })
}

/// A DER certificate as a PEM "CERTIFICATE" block (64-column lines, LF).
pub(crate) fn cert_pem_from_der(der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::with_capacity(body.len() + body.len() / 64 + 60);
    pem.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trips_der() {
        let der: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let pem = cert_pem_from_der(&der);
        assert!(pem.lines().all(|l| l.len() <= 64));
        let back = cert_der_from_pem(&pem, "test certificate").expect("parse back");
        assert_eq!(back.as_ref(), der.as_slice());
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let err = cert_der_from_pem("hello", "CA certificate").unwrap_err();
        assert!(err.to_string().contains("CA certificate"), "{err}");
    }
}
