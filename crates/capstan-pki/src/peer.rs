//! Reading identities back out of certificates: who a TLS peer is, and when a
//! certificate should be renewed.

use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::{
    Oid, OID_USERID, OID_X509_COMMON_NAME, OID_X509_ORGANIZATIONAL_UNIT, OID_X509_ORGANIZATION_NAME,
};
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

use crate::error::PkiError;
use crate::node::{CLIENT_OU, MANAGER_SERVER_NAME, WORKER_SERVER_NAME};
use crate::pem::cert_der_from_pem;

/// What kind of principal a Capstan certificate was issued to (its OU).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerKind {
    /// OU "capstan-manager".
    Manager,
    /// OU "capstan-worker".
    Worker,
    /// OU "capstan-client": a user's client bundle.
    Client,
}

/// Who a verified peer certificate says it is (used to authorize gRPC callers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    /// Subject CN: the node id or the user name.
    pub subject_cn: String,
    /// From the subject OU.
    pub kind: PeerKind,
    /// Subject O.
    pub cluster_id: String,
    /// When the certificate expires.
    pub not_after: OffsetDateTime,
    /// The certificate serial number, lowercase hex without separators
    /// (a client bundle's id).
    pub serial: String,
    /// Subject UID: the account id of the user a client bundle was issued
    /// to; `None` in node certificates.
    pub user_id: Option<String>,
}

/// Reads the Capstan identity out of a DER certificate.
///
/// This does not verify the certificate: call it on a certificate the TLS
/// layer already verified against the cluster CA.
pub fn peer_identity(cert_der: &[u8]) -> Result<PeerIdentity, PkiError> {
    let cert = parse(cert_der, "peer certificate")?;
    let subject = cert.subject();
    let missing = |what: &str| PkiError::NotACapstanIdentity {
        reason: format!("its subject has no {what}"),
    };
    let ou = first(subject, &OID_X509_ORGANIZATIONAL_UNIT).ok_or_else(|| missing("OU"))?;
    let kind = match ou.as_str() {
        MANAGER_SERVER_NAME => PeerKind::Manager,
        WORKER_SERVER_NAME => PeerKind::Worker,
        CLIENT_OU => PeerKind::Client,
        other => {
            return Err(PkiError::NotACapstanIdentity {
                reason: format!(
                    "its OU {other:?} is not one of capstan-manager, capstan-worker, capstan-client"
                ),
            })
        }
    };
    Ok(PeerIdentity {
        subject_cn: first(subject, &OID_X509_COMMON_NAME).ok_or_else(|| missing("CN"))?,
        kind,
        cluster_id: first(subject, &OID_X509_ORGANIZATION_NAME).ok_or_else(|| missing("O"))?,
        not_after: cert.validity().not_after.to_datetime(),
        serial: hex::encode(cert.raw_serial()),
        user_id: first(subject, &OID_USERID),
    })
}

/// When the first certificate in `cert_pem` expires.
pub fn cert_not_after(cert_pem: &str) -> Result<OffsetDateTime, PkiError> {
    let der = cert_der_from_pem(cert_pem, "certificate")?;
    let cert = parse(&der, "certificate")?;
    Ok(cert.validity().not_after.to_datetime())
}

/// True when less than `fraction` (e.g. 0.3) of the certificate's lifetime
/// remains at `now`, or it already expired: the renewal trigger.
pub fn needs_renewal(cert_pem: &str, now: OffsetDateTime, fraction: f64) -> Result<bool, PkiError> {
    if !(0.0..=1.0).contains(&fraction) {
        return Err(PkiError::InvalidRenewalFraction(fraction));
    }
    let der = cert_der_from_pem(cert_pem, "certificate")?;
    let cert = parse(&der, "certificate")?;
    let not_before = cert.validity().not_before.to_datetime();
    let not_after = cert.validity().not_after.to_datetime();
    let lifetime = not_after - not_before;
    let remaining = not_after - now;
    Ok(remaining < lifetime * fraction)
}

fn parse<'a>(der: &'a [u8], what: &'static str) -> Result<X509Certificate<'a>, PkiError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| PkiError::InvalidCertificate {
        what,
        reason: e.to_string(),
    })?;
    Ok(cert)
}

/// The first value of a subject attribute, if present and a string.
fn first(name: &X509Name<'_>, attr: &Oid<'_>) -> Option<String> {
    name.iter_by_oid(attr)
        .next()
        .and_then(|v| v.as_str().ok())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rustls_pki_types::CertificateDer;

    use super::*;
    use crate::{ClientSubject, ClusterCa, NodeIdentity, NodeRole};

    const HOUR: Duration = Duration::from_secs(3600);

    fn der(pem: &str) -> CertificateDer<'static> {
        cert_der_from_pem(pem, "test").expect("pem")
    }

    fn node(role: NodeRole) -> NodeIdentity {
        NodeIdentity {
            node_id: "n1".into(),
            role,
            cluster_id: "c1".into(),
            hosts: vec![],
        }
    }

    #[test]
    fn identities_of_each_kind() {
        let ca = ClusterCa::generate("c1", HOUR).expect("ca");
        let (manager, _) = ca
            .issue_node_cert(&node(NodeRole::Manager), HOUR)
            .expect("m");
        let (worker, _) = ca
            .issue_node_cert(&node(NodeRole::Worker), HOUR)
            .expect("w");
        let client = ca
            .issue_client_cert(
                ClientSubject {
                    username: "alice",
                    user_id: "3f1c2a9e-uid",
                },
                HOUR,
            )
            .expect("c")
            .issued;
        let cases = [
            (&manager, "n1", PeerKind::Manager, None),
            (&worker, "n1", PeerKind::Worker, None),
            (&client, "alice", PeerKind::Client, Some("3f1c2a9e-uid")),
        ];
        for (issued, cn, kind, user_id) in cases {
            let peer = peer_identity(&der(&issued.cert_pem)).expect("identity");
            assert_eq!(
                peer,
                PeerIdentity {
                    subject_cn: cn.into(),
                    kind,
                    cluster_id: "c1".into(),
                    not_after: issued.not_after,
                    serial: issued.serial.clone(),
                    user_id: user_id.map(str::to_string),
                }
            );
            assert_eq!(peer.serial.len(), 32, "128-bit serial: {}", peer.serial);
        }
        assert_ne!(manager.serial, worker.serial);
    }

    #[test]
    fn the_ca_itself_is_not_a_peer() {
        let ca = ClusterCa::generate("c1", HOUR).expect("ca");
        let err = peer_identity(&der(ca.cert_pem())).unwrap_err();
        assert!(matches!(err, PkiError::NotACapstanIdentity { .. }), "{err}");
        assert!(peer_identity(b"junk").is_err());
    }

    #[test]
    fn not_after_matches_issued_value() {
        let ca = ClusterCa::generate("c1", HOUR).expect("ca");
        let (issued, _) = ca
            .issue_node_cert(&node(NodeRole::Worker), HOUR)
            .expect("w");
        assert_eq!(
            cert_not_after(&issued.cert_pem).expect("parse"),
            issued.not_after
        );
    }

    #[test]
    fn renewal_triggers_when_less_than_the_fraction_remains() {
        let ca = ClusterCa::generate("c1", HOUR).expect("ca");
        let ttl = Duration::from_secs(100 * 60);
        let (issued, _) = ca.issue_node_cert(&node(NodeRole::Worker), ttl).expect("w");
        let pem = &issued.cert_pem;
        let end = issued.not_after;
        // Lifetime is 105 minutes (5 of them clock-skew allowance); 30% is 31.5 minutes.
        let cases = [
            (end - time::Duration::minutes(100), false),
            (end - time::Duration::minutes(32), false),
            (end - time::Duration::minutes(31), true),
            (end - time::Duration::minutes(1), true),
            (end + time::Duration::minutes(1), true),
        ];
        for (now, expected) in cases {
            assert_eq!(
                needs_renewal(pem, now, 0.3).expect("renewal"),
                expected,
                "at {now}"
            );
        }
        assert!(!needs_renewal(pem, end - time::Duration::minutes(1), 0.0).expect("zero"));
        assert!(needs_renewal(pem, end - time::Duration::minutes(100), 1.0).expect("one"));
    }

    #[test]
    fn renewal_fraction_is_validated() {
        let ca = ClusterCa::generate("c1", HOUR).expect("ca");
        for bad in [-0.1, 1.5, f64::NAN] {
            let err = needs_renewal(ca.cert_pem(), OffsetDateTime::now_utc(), bad).unwrap_err();
            assert!(matches!(err, PkiError::InvalidRenewalFraction(_)), "{err}");
        }
    }
}
