use std::net::SocketAddr;

use tonic::codegen::{http, Service};
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};

use super::*;
use crate::testing::{node, HOUR};
use crate::{fetch_trusted_ca, ClusterCa, NodeRole};

/// A tonic server with no services, configured by `server_tls` for a manager.
async fn manager_server(ca: &ClusterCa) -> SocketAddr {
    install_default_crypto_provider();
    let (issued, key_pem) = ca
        .issue_node_cert(&node("m1", NodeRole::Manager, &[]), HOUR)
        .expect("issue");
    let tls = server_tls(&issued.cert_pem, &key_pem, ca.cert_pem());
    let incoming = TcpIncoming::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let addr = incoming.local_addr().expect("local addr");
    let mut server = Server::builder().tls_config(tls).expect("server tls");
    let router = server.add_routes(Routes::default());
    tokio::spawn(router.serve_with_incoming(incoming));
    addr
}

/// Connects and makes one gRPC request to an unknown method; `Ok` carries the
/// grpc-status the server answered with. Under TLS 1.3 a rejected client
/// certificate only shows up once data flows, hence the request.
async fn call(addr: SocketAddr, tls: ClientTlsConfig) -> Result<String, String> {
    // Dial by IP: the certificate has no IP SAN, so this only works because
    // client_tls verifies the fixed manager name.
    let mut channel: Channel = Endpoint::from_shared(format!("https://{addr}"))
        .expect("uri")
        .tls_config(tls)
        .expect("client tls")
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    let request = http::Request::post(format!("https://{addr}/capstan.Test/Ping"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::empty())
        .expect("request");
    std::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .map_err(|e| format!("ready: {e:?}"))?;
    let response = channel
        .call(request)
        .await
        .map_err(|e| format!("call: {e:?}"))?;
    Ok(response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string())
}

/// gRPC "unimplemented": the request reached the (empty) server.
const UNIMPLEMENTED: &str = "12";

#[tokio::test]
async fn server_presents_the_ca_so_joiners_can_pin_it() {
    let ca = ClusterCa::generate("cluster-a", HOUR).expect("ca");
    let addr = manager_server(&ca).await;
    let pem = fetch_trusted_ca(&addr.to_string(), &ca.digest())
        .await
        .expect("probe");
    assert_eq!(pem, ca.cert_pem());
}

#[tokio::test]
async fn client_trusting_the_cluster_ca_connects_with_or_without_a_certificate() {
    let ca = ClusterCa::generate("cluster-a", HOUR).expect("ca");
    let addr = manager_server(&ca).await;
    let status = call(addr, client_tls(ca.cert_pem(), None))
        .await
        .expect("anonymous client (join path)");
    assert_eq!(status, UNIMPLEMENTED);
    let (worker, worker_key) = ca
        .issue_node_cert(&node("w1", NodeRole::Worker, &[]), HOUR)
        .expect("issue");
    let identity = Some((worker.cert_pem.as_str(), worker_key.as_str()));
    let status = call(addr, client_tls(ca.cert_pem(), identity))
        .await
        .expect("client with a cluster certificate");
    assert_eq!(status, UNIMPLEMENTED);
}

#[tokio::test]
async fn client_refuses_a_manager_of_another_ca() {
    let ca = ClusterCa::generate("cluster-a", HOUR).expect("ca");
    let other = ClusterCa::generate("cluster-b", HOUR).expect("other");
    let addr = manager_server(&ca).await;
    let err = call(addr, client_tls(other.cert_pem(), None))
        .await
        .expect_err("must not trust another CA");
    assert!(err.starts_with("connect"), "{err}");
}

#[tokio::test]
async fn server_refuses_a_client_certificate_from_another_ca() {
    let ca = ClusterCa::generate("cluster-a", HOUR).expect("ca");
    let other = ClusterCa::generate("cluster-b", HOUR).expect("other");
    let addr = manager_server(&ca).await;
    let (foreign, foreign_key) = other
        .issue_node_cert(&node("w1", NodeRole::Worker, &[]), HOUR)
        .expect("issue");
    let identity = Some((foreign.cert_pem.as_str(), foreign_key.as_str()));
    let err = call(addr, client_tls(ca.cert_pem(), identity))
        .await
        .expect_err("a foreign client certificate must be rejected");
    assert!(err.contains("UnknownCA"), "{err}");
}
