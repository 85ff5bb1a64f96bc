//! Deciding whether a manager's presented chain proves it belongs to the
//! cluster named by a join token. Pure: no I/O, time passed in.

use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use time::OffsetDateTime;

use crate::ca::parse_self_signed_ca;
use crate::digest::CaDigest;
use crate::error::PkiError;
use crate::node::MANAGER_SERVER_NAME;
use crate::pem::cert_pem_from_der;

/// Checks a chain a manager presented (leaf first) against the CA digest from
/// a join token; returns the CA certificate as PEM.
///
/// The chain must contain a self-signed CA whose digest is `expected`, and
/// the leaf must be a manager certificate (server name "capstan-manager",
/// server auth) validly signed by that CA and valid at `now`.
pub fn verify_presented_chain(
    chain: &[CertificateDer<'_>],
    expected: &CaDigest,
    now: OffsetDateTime,
) -> Result<String, PkiError> {
    let untrusted = |reason: String| PkiError::UntrustedPeer { reason };
    let (leaf, rest) = chain
        .split_first()
        .ok_or_else(|| untrusted("it presented no certificate".to_string()))?;
    let Some(ca) = chain.iter().find(|c| CaDigest::of_der(c) == *expected) else {
        // By convention the root comes last; report that one.
        let top = chain.last().unwrap_or(leaf);
        return Err(PkiError::CaMismatch {
            expected: expected.clone(),
            found: CaDigest::of_der(top),
        });
    };
    if CaDigest::of_der(leaf) == *expected {
        return Err(untrusted(
            "it presented the CA certificate itself instead of a manager certificate".to_string(),
        ));
    }
    parse_self_signed_ca(ca.as_ref(), "CA certificate presented by the manager")?;

    let anchor = webpki::anchor_from_trusted_cert(ca)
        .map_err(|e| untrusted(format!("its CA certificate is unusable ({e})")))?;
    let end_entity = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| untrusted(format!("its certificate does not parse ({e})")))?;
    let algorithms = rustls::crypto::ring::default_provider()
        .signature_verification_algorithms
        .all;
    end_entity
        .verify_for_usage(
            algorithms,
            &[anchor],
            rest,
            unix_time(now),
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(|e| untrusted(explain(&e)))?;
    let name = ServerName::try_from(MANAGER_SERVER_NAME).expect("a valid constant DNS name");
    end_entity
        .verify_is_valid_for_subject_name(&name)
        .map_err(|_| {
            untrusted(format!(
                "its certificate is not a manager certificate (no {MANAGER_SERVER_NAME} name)"
            ))
        })?;
    Ok(cert_pem_from_der(ca))
}

fn unix_time(now: OffsetDateTime) -> UnixTime {
    let secs = u64::try_from(now.unix_timestamp()).unwrap_or(0);
    UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs))
}

fn explain(error: &webpki::Error) -> String {
    use webpki::Error::*;
    match error {
        CertExpired { not_after, .. } => {
            let at = i64::try_from(not_after.as_secs())
                .ok()
                .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok());
            match at {
                Some(at) => format!("its certificate expired at {at}"),
                None => "its certificate expired".to_string(),
            }
        }
        CertNotValidYet { .. } => {
            "its certificate is not valid yet; check the clocks of both hosts".to_string()
        }
        UnknownIssuer | InvalidSignatureForPublicKey | IssuerNotCrlSigner => {
            "its certificate was not issued by the expected cluster CA".to_string()
        }
        RequiredEkuNotFoundContext(_) => {
            "its certificate is not allowed for server authentication".to_string()
        }
        CaUsedAsEndEntity => "it presented a CA certificate as its own".to_string(),
        other => format!("verification failed ({other})"),
    }
}

#[cfg(test)]
mod tests;
