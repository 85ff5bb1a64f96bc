//! How transport failures and remote errors reach openraft.

use std::time::Duration;

use capstan_store::network::Network;
use capstan_store::service::RaftService;
use capstan_store::{open, raft_config, Raft};
use openraft::error::{Fatal, RPCError, RaftError};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::VoteRequest;
use openraft::{BasicNode, Vote};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

fn vote_request() -> VoteRequest<u64> {
    VoteRequest {
        vote: Vote::new(1, 9),
        last_log_id: None,
    }
}

fn option() -> RPCOption {
    RPCOption::new(Duration::from_secs(2))
}

#[tokio::test]
async fn a_dead_peer_is_unreachable() {
    // Bind then drop a listener: the port is closed.
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("addr").to_string()
    };
    let mut network = Network::insecure_for_tests();
    let mut client = network.new_client(2, &BasicNode { addr }).await;
    let err = client
        .vote(vote_request(), option())
        .await
        .expect_err("nobody listens");
    assert!(matches!(err, RPCError::Unreachable(_)), "{err:?}");
}

#[tokio::test]
async fn a_bad_address_is_unreachable() {
    let mut network = Network::insecure_for_tests();
    let mut client = network
        .new_client(
            2,
            &BasicNode {
                addr: "not a host:port".into(),
            },
        )
        .await;
    let err = client
        .vote(vote_request(), option())
        .await
        .expect_err("bad address");
    assert!(matches!(err, RPCError::Unreachable(_)), "{err:?}");
}

#[tokio::test]
async fn a_remote_raft_error_becomes_remote_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (log, sm) = open(&tmp.path().join("raft")).expect("open");
    let raft = Raft::new(7, raft_config(), Network::insecure_for_tests(), log, sm)
        .await
        .expect("raft");
    raft.shutdown().await.expect("shutdown");

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RaftService::new(raft).into_server())
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );

    let node = BasicNode { addr };
    let mut client = Network::insecure_for_tests().new_client(7, &node).await;
    let err = client
        .vote(vote_request(), option())
        .await
        .expect_err("a stopped raft answers with an error");
    match err {
        RPCError::RemoteError(remote) => {
            assert_eq!(remote.target, 7);
            assert_eq!(remote.target_node, Some(node));
            assert!(
                matches!(remote.source, RaftError::Fatal(Fatal::Stopped)),
                "{:?}",
                remote.source
            );
        }
        other => panic!("expected RemoteError, got {other:?}"),
    }
    server.abort();
}
