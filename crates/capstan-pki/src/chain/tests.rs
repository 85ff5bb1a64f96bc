use super::*;
use crate::testing::{der, node, HOUR};
use crate::{digest_of_cert_pem, ClusterCa, NodeRole};

struct Cluster {
    ca: ClusterCa,
    ca_der: CertificateDer<'static>,
}

fn cluster() -> Cluster {
    let ca = ClusterCa::generate("cluster-a", 24 * HOUR).expect("ca");
    let ca_der = der(ca.cert_pem());
    Cluster { ca, ca_der }
}

impl Cluster {
    fn leaf(&self, role: NodeRole) -> CertificateDer<'static> {
        let (issued, _) = self
            .ca
            .issue_node_cert(&node("m1", role, &["10.0.0.1"]), HOUR)
            .expect("issue");
        der(&issued.cert_pem)
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

#[test]
fn good_chain_returns_the_ca_pem() {
    let c = cluster();
    let chain = [c.leaf(NodeRole::Manager), c.ca_der.clone()];
    let pem = verify_presented_chain(&chain, &c.ca.digest(), now()).expect("trusted");
    assert_eq!(digest_of_cert_pem(&pem).expect("pem"), c.ca.digest());
    assert_eq!(pem, c.ca.cert_pem());
}

#[test]
fn wrong_digest_is_a_ca_mismatch_naming_both_digests() {
    let c = cluster();
    let other = cluster();
    let chain = [c.leaf(NodeRole::Manager), c.ca_der.clone()];
    let err = verify_presented_chain(&chain, &other.ca.digest(), now()).unwrap_err();
    match &err {
        PkiError::CaMismatch { expected, found } => {
            assert_eq!(expected, &other.ca.digest());
            assert_eq!(found, &c.ca.digest());
        }
        _ => panic!("expected CaMismatch, got {err}"),
    }
    let message = err.to_string();
    assert!(message.contains(c.ca.digest().as_str()), "{message}");
}

#[test]
fn leaf_from_another_ca_is_refused_even_next_to_the_right_ca() {
    let c = cluster();
    let impostor = cluster();
    let chain = [impostor.leaf(NodeRole::Manager), c.ca_der.clone()];
    let err = verify_presented_chain(&chain, &c.ca.digest(), now()).unwrap_err();
    assert!(matches!(err, PkiError::UntrustedPeer { .. }), "{err}");
    assert!(err.to_string().contains("not issued by"), "{err}");
}

#[test]
fn expired_leaf_is_refused() {
    let c = cluster();
    let chain = [c.leaf(NodeRole::Manager), c.ca_der.clone()];
    let later = now() + time::Duration::hours(2);
    let err = verify_presented_chain(&chain, &c.ca.digest(), later).unwrap_err();
    assert!(matches!(err, PkiError::UntrustedPeer { .. }), "{err}");
    assert!(err.to_string().contains("expired"), "{err}");
}

#[test]
fn leaf_that_is_not_a_manager_is_refused() {
    let c = cluster();
    let worker = [c.leaf(NodeRole::Worker), c.ca_der.clone()];
    let err = verify_presented_chain(&worker, &c.ca.digest(), now()).unwrap_err();
    assert!(
        err.to_string().contains("not a manager certificate"),
        "{err}"
    );

    let client =
        c.ca.issue_client_cert(
            crate::ClientSubject {
                username: "alice",
                user_id: "u-1",
            },
            HOUR,
        )
        .expect("client")
        .issued;
    let client = [der(&client.cert_pem), c.ca_der.clone()];
    let err = verify_presented_chain(&client, &c.ca.digest(), now()).unwrap_err();
    assert!(err.to_string().contains("server authentication"), "{err}");
}

#[test]
fn degenerate_chains_are_refused() {
    let c = cluster();
    let err = verify_presented_chain(&[], &c.ca.digest(), now()).unwrap_err();
    assert!(err.to_string().contains("no certificate"), "{err}");

    let err =
        verify_presented_chain(std::slice::from_ref(&c.ca_der), &c.ca.digest(), now()).unwrap_err();
    assert!(err.to_string().contains("CA certificate itself"), "{err}");

    let leaf_only = [c.leaf(NodeRole::Manager)];
    let err = verify_presented_chain(&leaf_only, &c.ca.digest(), now()).unwrap_err();
    assert!(matches!(err, PkiError::CaMismatch { .. }), "{err}");
}

#[test]
fn pinned_certificate_must_be_a_self_signed_ca() {
    let c = cluster();
    let fake_root = c.leaf(NodeRole::Manager);
    let pinned = CaDigest::of_der(&fake_root);
    let chain = [c.leaf(NodeRole::Manager), fake_root];
    let err = verify_presented_chain(&chain, &pinned, now()).unwrap_err();
    assert!(matches!(err, PkiError::NotARootCa { .. }), "{err}");
}
