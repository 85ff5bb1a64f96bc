use rcgen::{CertificateParams, SanType};

use super::*;
use crate::testing::{der, node, parse, sans, subject, HOUR};
use crate::NodeRole;

#[test]
fn ca_can_be_shared_between_tasks() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<ClusterCa>();
}

#[test]
fn from_pem_keeps_only_the_first_certificate() {
    let ca = ClusterCa::generate("cluster-a", HOUR).expect("ca");
    let other = ClusterCa::generate("cluster-b", HOUR).expect("other");
    let bundle = format!("{}{}", ca.cert_pem(), other.cert_pem());
    let loaded = ClusterCa::from_pem(&bundle, ca.key_pem()).expect("load");
    assert_eq!(loaded.cert_pem(), ca.cert_pem());
}

#[test]
fn generated_ca_is_a_self_signed_p256_root() {
    let ca = ClusterCa::generate("cluster-a", 24 * HOUR).expect("ca");
    let der = der(ca.cert_pem());
    let cert = parse(&der);
    assert_eq!(
        subject(&cert),
        (CA_COMMON_NAME.into(), String::new(), "cluster-a".into())
    );
    assert!(cert.is_ca());
    cert.verify_signature(None).expect("self-signed");
    let usage = cert.key_usage().expect("parses").expect("present").value;
    assert!(usage.key_cert_sign() && usage.crl_sign());
    let curve = cert
        .public_key()
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok());
    assert_eq!(curve, Some(x509_parser::oid_registry::OID_EC_P256));
    assert_eq!(ca.digest(), CaDigest::of_der(&der));
    assert_eq!(ca.cluster_id(), "cluster-a");
    assert_eq!(ca.not_after(), cert.validity().not_after.to_datetime());
    assert!(!format!("{ca:?}").contains(ca.key_pem()));
}

#[test]
fn from_pem_round_trips_and_keeps_signing() {
    let ca = ClusterCa::generate("cluster-a", HOUR).expect("ca");
    let loaded = ClusterCa::from_pem(ca.cert_pem(), ca.key_pem()).expect("load");
    assert_eq!(loaded.digest(), ca.digest());
    assert_eq!(loaded.cert_pem(), ca.cert_pem());
    assert_eq!(loaded.key_pem(), ca.key_pem());
    assert_eq!(loaded.cluster_id(), "cluster-a");
    assert_eq!(loaded.not_after(), ca.not_after());

    let (issued, _) = loaded
        .issue_node_cert(&node("n1", NodeRole::Worker, &[]), HOUR)
        .expect("issue");
    let leaf_der = der(&issued.cert_pem);
    let ca_der = der(ca.cert_pem());
    parse(&leaf_der)
        .verify_signature(Some(parse(&ca_der).public_key()))
        .expect("signed by the original CA");
}

#[test]
fn from_pem_refuses_a_key_of_another_ca() {
    let ca = ClusterCa::generate("cluster-a", HOUR).expect("ca");
    let other = ClusterCa::generate("cluster-a", HOUR).expect("other");
    let err = ClusterCa::from_pem(ca.cert_pem(), other.key_pem()).unwrap_err();
    assert!(matches!(err, PkiError::CaKeyMismatch), "{err}");
}

#[test]
fn from_pem_refuses_leaf_certificates_and_garbage() {
    let ca = ClusterCa::generate("cluster-a", HOUR).expect("ca");
    let (leaf, leaf_key) = ca
        .issue_node_cert(&node("n1", NodeRole::Manager, &[]), HOUR)
        .expect("issue");
    let err = ClusterCa::from_pem(&leaf.cert_pem, &leaf_key).unwrap_err();
    assert!(matches!(err, PkiError::NotARootCa { .. }), "{err}");

    let err = ClusterCa::from_pem("nope", ca.key_pem()).unwrap_err();
    assert!(matches!(err, PkiError::InvalidCertificate { .. }), "{err}");
    let err = ClusterCa::from_pem(ca.cert_pem(), "nope").unwrap_err();
    assert!(matches!(err, PkiError::InvalidPrivateKey { .. }), "{err}");
    assert!(!err.to_string().contains("PRIVATE KEY-----"), "{err}");
}

#[test]
fn generate_refuses_empty_cluster_id() {
    let err = ClusterCa::generate("", HOUR).unwrap_err();
    assert!(err.to_string().contains("cluster id"), "{err}");
}

#[test]
fn manager_cert_has_subject_sans_and_usages_as_specified() {
    let ca = ClusterCa::generate("cluster-a", HOUR).expect("ca");
    let before = OffsetDateTime::now_utc();
    let (issued, key_pem) = ca
        .issue_node_cert(
            &node(
                "node-1",
                NodeRole::Manager,
                &["10.0.0.1", "mgr1.example.com", "fd00::1"],
            ),
            HOUR,
        )
        .expect("issue");
    let der = der(&issued.cert_pem);
    let cert = parse(&der);

    assert_eq!(
        subject(&cert),
        (
            "node-1".into(),
            "capstan-manager".into(),
            "cluster-a".into()
        )
    );
    assert_eq!(
        sans(&cert),
        [
            "dns:capstan-manager",
            "ip:10.0.0.1",
            "dns:mgr1.example.com",
            "ip:fd00::1"
        ]
    );
    let eku = cert
        .extended_key_usage()
        .expect("parses")
        .expect("present")
        .value;
    assert!(eku.server_auth && eku.client_auth);
    assert!(!eku.any && eku.other.is_empty());
    assert!(!cert.is_ca());
    assert_eq!(
        cert.issuer(),
        parse(&crate::testing::der(ca.cert_pem())).subject()
    );

    let validity = cert.validity();
    assert_eq!(validity.not_after.to_datetime(), issued.not_after);
    let skew = before - validity.not_before.to_datetime();
    assert!(
        skew >= time::Duration::minutes(5) && skew < time::Duration::minutes(6),
        "{skew}"
    );
    let lifetime = issued.not_after - before;
    assert!((lifetime - time::Duration::hours(1)).abs() <= time::Duration::seconds(2));

    let key = KeyPair::from_pem(&key_pem).expect("key");
    assert_eq!(key.algorithm(), &rcgen::PKCS_ECDSA_P256_SHA256);
    assert_eq!(
        cert.public_key().subject_public_key.data.as_ref(),
        key.der_bytes()
    );
}

#[test]
fn worker_cert_carries_the_worker_name_and_ou() {
    let ca = ClusterCa::generate("cluster-a", HOUR).expect("ca");
    let (issued, _) = ca
        .issue_node_cert(&node("w1", NodeRole::Worker, &["w1.local"]), HOUR)
        .expect("issue");
    let der = der(&issued.cert_pem);
    let cert = parse(&der);
    assert_eq!(subject(&cert).1, "capstan-worker");
    assert_eq!(sans(&cert), ["dns:capstan-worker", "dns:w1.local"]);
}

#[test]
fn serials_are_random() {
    let ca = ClusterCa::generate("cluster-a", HOUR).expect("ca");
    let identity = node("n1", NodeRole::Worker, &[]);
    let (a, _) = ca.issue_node_cert(&identity, HOUR).expect("a");
    let (b, _) = ca.issue_node_cert(&identity, HOUR).expect("b");
    let (a, b) = (der(&a.cert_pem), der(&b.cert_pem));
    assert_ne!(parse(&a).raw_serial(), parse(&b).raw_serial());
    assert!(parse(&a).raw_serial().len() >= 16);
}

#[test]
fn bad_host_is_refused_with_its_name() {
    let ca = ClusterCa::generate("cluster-a", HOUR).expect("ca");
    let err = ca
        .issue_node_cert(&node("n1", NodeRole::Worker, &["bad host"]), HOUR)
        .unwrap_err();
    assert!(err.to_string().contains("\"bad host\""), "{err}");
}

#[test]
fn csr_signing_takes_only_the_key_from_the_csr() {
    let ca = ClusterCa::generate("cluster-a", HOUR).expect("ca");
    // A CSR asking for more than it should get.
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = CertificateParams::new(vec!["evil.example.com".to_string()]).expect("params");
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, "admin");
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, "capstan-manager");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "other-cluster");
    params
        .subject_alt_names
        .push(SanType::IpAddress("6.6.6.6".parse().expect("ip")));
    let csr_pem = params
        .serialize_request(&key)
        .expect("csr")
        .pem()
        .expect("pem");

    let issued = ca
        .sign_node_csr(&csr_pem, &node("w7", NodeRole::Worker, &["10.1.2.3"]), HOUR)
        .expect("sign");
    let der = der(&issued.cert_pem);
    let cert = parse(&der);
    assert_eq!(
        subject(&cert),
        ("w7".into(), "capstan-worker".into(), "cluster-a".into())
    );
    assert_eq!(sans(&cert), ["dns:capstan-worker", "ip:10.1.2.3"]);
    assert_eq!(
        cert.public_key().subject_public_key.data.as_ref(),
        key.der_bytes()
    );
}

#[test]
fn csr_from_generate_csr_is_signed() {
    let ca = ClusterCa::generate("cluster-a", HOUR).expect("ca");
    let (csr_pem, _key) = crate::generate_csr().expect("csr");
    let issued = ca
        .sign_node_csr(&csr_pem, &node("m2", NodeRole::Manager, &[]), HOUR)
        .expect("sign");
    assert_eq!(
        crate::cert_not_after(&issued.cert_pem).expect("parse"),
        issued.not_after
    );
}

fn alice() -> ClientSubject<'static> {
    ClientSubject {
        username: "alice",
        user_id: "6f0d5c1e-7b0a-4c38-9a41-2f5d1f3c9b10",
    }
}

#[test]
fn client_cert_is_client_auth_only() {
    let ca = ClusterCa::generate("cluster-a", HOUR).expect("ca");
    let issued = ca.issue_client_cert(alice(), HOUR).expect("issue").issued;
    let der = der(&issued.cert_pem);
    let cert = parse(&der);
    assert_eq!(
        subject(&cert),
        ("alice".into(), "capstan-client".into(), "cluster-a".into())
    );
    let eku = cert
        .extended_key_usage()
        .expect("parses")
        .expect("present")
        .value;
    assert!(eku.client_auth && !eku.server_auth);
    assert!(sans(&cert).is_empty());
    let bad = ClientSubject {
        username: "",
        ..alice()
    };
    assert!(ca.issue_client_cert(bad, HOUR).is_err());
    let bad = ClientSubject {
        user_id: "",
        ..alice()
    };
    let err = ca.issue_client_cert(bad, HOUR).unwrap_err().to_string();
    assert!(err.contains("user id"), "{err}");
}

#[test]
fn client_cert_carries_the_user_id_serial_and_public_key() {
    let ca = ClusterCa::generate("cluster-a", HOUR).expect("ca");
    let client = ca.issue_client_cert(alice(), HOUR).expect("issue");
    let der = der(&client.issued.cert_pem);
    let cert = parse(&der);
    let uid: Vec<&str> = cert
        .subject()
        .iter_by_oid(&x509_parser::oid_registry::OID_USERID)
        .filter_map(|a| a.as_str().ok())
        .collect();
    assert_eq!(uid, vec![alice().user_id]);
    assert_eq!(client.issued.serial, hex::encode(cert.raw_serial()));
    let spki = cert.public_key().raw;
    assert_eq!(
        client.public_key_sha256,
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(spki))
    );
    let key = KeyPair::from_pem(&client.key_pem).expect("key parses");
    assert_eq!(key.public_key_pem(), client.public_key_pem);
    assert!(client
        .public_key_pem
        .starts_with("-----BEGIN PUBLIC KEY-----"));
    assert!(!format!("{client:?}").contains(&client.key_pem));
    let again = ca.issue_client_cert(alice(), HOUR).expect("issue");
    assert_ne!(again.issued.serial, client.issued.serial);
    assert_ne!(again.public_key_sha256, client.public_key_sha256);
}

#[test]
fn issuer_der_is_the_subject_and_public_key_a_leaf_names() {
    let ca = ClusterCa::generate("cluster-a", HOUR).expect("ca");
    let (subject_der, spki_der) = ca.issuer_der().expect("issuer");
    let (cert, _key) = ca
        .issue_node_cert(&node("n1", NodeRole::Worker, &["n1"]), HOUR)
        .expect("leaf");
    let leaf_der = der(&cert.cert_pem);
    let leaf = parse(&leaf_der);
    assert_eq!(leaf.issuer().as_raw(), subject_der.as_slice());
    let (_, spki) =
        x509_parser::x509::SubjectPublicKeyInfo::from_der(&spki_der).expect("SPKI parses");
    leaf.verify_signature(Some(&spki))
        .expect("the key signed the leaf");
}
