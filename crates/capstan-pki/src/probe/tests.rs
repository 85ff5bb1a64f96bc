use std::net::SocketAddr;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::*;
use crate::testing::{der, node, HOUR};
use crate::{ClusterCa, NodeRole};

/// A bare TLS server presenting `[leaf, ca]` that completes handshakes and hangs up.
async fn tls_server(ca: &ClusterCa, role: NodeRole) -> SocketAddr {
    let (issued, key_pem) = ca
        .issue_node_cert(&node("m1", role, &["127.0.0.1"]), HOUR)
        .expect("issue");
    let chain = vec![der(&issued.cert_pem), der(ca.cert_pem())];
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key");
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server config");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn fetches_the_ca_when_the_digest_matches() {
    let ca = ClusterCa::generate("cluster-a", HOUR).expect("ca");
    let addr = tls_server(&ca, NodeRole::Manager).await;
    let pem = fetch_trusted_ca(&addr.to_string(), &ca.digest())
        .await
        .expect("trusted");
    assert_eq!(pem, ca.cert_pem());
}

#[tokio::test]
async fn refuses_a_manager_of_another_cluster() {
    let ca = ClusterCa::generate("cluster-a", HOUR).expect("ca");
    let expected = ClusterCa::generate("cluster-b", HOUR)
        .expect("other")
        .digest();
    let addr = tls_server(&ca, NodeRole::Manager).await;
    let err = fetch_trusted_ca(&addr.to_string(), &expected)
        .await
        .unwrap_err();
    match err {
        PkiError::CaMismatch { expected: e, found } => {
            assert_eq!(e, expected);
            assert_eq!(found, ca.digest());
        }
        other => panic!("expected CaMismatch, got {other}"),
    }
}

#[tokio::test]
async fn refuses_a_worker_posing_as_manager() {
    let ca = ClusterCa::generate("cluster-a", HOUR).expect("ca");
    let addr = tls_server(&ca, NodeRole::Worker).await;
    let err = fetch_trusted_ca(&addr.to_string(), &ca.digest())
        .await
        .unwrap_err();
    assert!(matches!(err, PkiError::UntrustedPeer { .. }), "{err}");
}

#[tokio::test]
async fn unreachable_address_is_named_in_the_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let digest = CaDigest::of_der(b"whatever");
    let err = fetch_trusted_ca(&addr, &digest).await.unwrap_err();
    assert!(matches!(err, PkiError::Connect { .. }), "{err}");
    assert!(err.to_string().contains(&addr), "{err}");
}

#[tokio::test]
async fn malformed_addresses_are_refused_before_dialing() {
    let digest = CaDigest::of_der(b"whatever");
    for addr in ["10.0.0.1", ":2377", "host:port", "host:99999"] {
        let err = fetch_trusted_ca(addr, &digest).await.unwrap_err();
        assert!(
            matches!(err, PkiError::InvalidAddress { .. }),
            "{addr}: {err}"
        );
    }
}

#[tokio::test]
async fn silent_peer_times_out() {
    // Accepts TCP but never speaks TLS.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    tokio::time::pause();
    let digest = CaDigest::of_der(b"whatever");
    let err = fetch_trusted_ca(&addr, &digest).await.unwrap_err();
    assert!(err.to_string().contains("within 10 seconds"), "{err}");
}
