//! Three Raft nodes in one process, talking over real gRPC servers on
//! 127.0.0.1 (plain HTTP), with the store as their storage.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use capstan_store::network::Network;
use capstan_store::service::RaftService;
use capstan_store::{
    open, raft_config, Conflict, Expect, NodeId, Raft, Request, Response, StateMachineStore,
};
use openraft::BasicNode;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

use crate::support::put;

const WAIT: Duration = Duration::from_secs(10);

struct Node {
    id: NodeId,
    addr: String,
    raft: Raft,
    sm: StateMachineStore,
    stop_server: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
    _tmp: TempDir,
}

impl Node {
    async fn start(id: NodeId) -> Node {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (log, sm) = open(&tmp.path().join("raft")).expect("open store");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr").to_string();
        let raft = Raft::new(
            id,
            raft_config(),
            Network::insecure_for_tests(),
            log,
            sm.clone(),
        )
        .await
        .expect("start raft");
        let (stop_server, stopped) = oneshot::channel::<()>();
        let service = RaftService::new(raft.clone()).into_server();
        let server = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                    let _ = stopped.await;
                })
                .await
                .expect("raft server runs");
        });
        Node {
            id,
            addr,
            raft,
            sm,
            stop_server: Some(stop_server),
            server,
            _tmp: tmp,
        }
    }

    fn basic_node(&self) -> BasicNode {
        BasicNode {
            addr: self.addr.clone(),
        }
    }

    /// Stops Raft and the gRPC server, as if the process died.
    async fn kill(mut self) {
        self.raft.shutdown().await.expect("raft shuts down");
        if let Some(stop) = self.stop_server.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(Duration::from_secs(3), &mut self.server)
            .await
            .is_err()
        {
            self.server.abort();
        }
    }

    async fn wait_applied(&self, index: u64) {
        self.raft
            .wait(Some(WAIT))
            .applied_index_at_least(Some(index), format!("node {} applies {index}", self.id))
            .await
            .expect("entry applied");
    }
}

async fn write(raft: &Raft, ops: Vec<capstan_store::Op>) -> Response {
    raft.client_write(Request::Write { ops })
        .await
        .expect("client write")
        .data
}

async fn wait_for_leader(nodes: &[&Node], not: Option<NodeId>) -> NodeId {
    let mut leader = None;
    for node in nodes {
        let m = node
            .raft
            .wait(Some(WAIT))
            .metrics(
                |m| m.current_leader.is_some() && m.current_leader != not,
                "a leader is known",
            )
            .await
            .expect("leader elected");
        let seen = m.current_leader.expect("checked above");
        assert!(
            leader.is_none() || leader == Some(seen),
            "nodes disagree on the leader"
        );
        leader = Some(seen);
    }
    leader.expect("at least one node")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_and_survive_the_leader_dying() {
    let mut nodes = vec![
        Node::start(1).await,
        Node::start(2).await,
        Node::start(3).await,
    ];
    let members: BTreeMap<NodeId, BasicNode> =
        nodes.iter().map(|n| (n.id, n.basic_node())).collect();
    nodes[0].raft.initialize(members).await.expect("initialize");

    let leader_id = wait_for_leader(&nodes.iter().collect::<Vec<_>>(), None).await;
    let leader = nodes
        .iter()
        .find(|n| n.id == leader_id)
        .expect("leader is a node");

    let Response::Written { index, objects } = write(
        &leader.raft,
        vec![put("services", "web", "v1", Expect::Absent)],
    )
    .await
    else {
        panic!("first write must apply");
    };
    assert_eq!(objects[0].version, index);
    for node in &nodes {
        node.wait_applied(index).await;
        let web = node
            .sm
            .get("services", "web")
            .expect("get")
            .expect("replicated");
        assert_eq!(
            (web.version, web.value.as_slice()),
            (index, b"v1".as_slice()),
            "node {}",
            node.id
        );
    }

    // Optimistic concurrency travels through Raft: a stale version conflicts.
    let stale = write(
        &leader.raft,
        vec![put("services", "web", "v2", Expect::Version(index - 1))],
    )
    .await;
    assert_eq!(
        stale,
        Response::Conflict(Conflict {
            table: "services".into(),
            id: "web".into(),
            expected: Expect::Version(index - 1),
            actual: Some(index)
        })
    );

    // Kill the leader; the other two elect a new one quickly.
    let position = nodes
        .iter()
        .position(|n| n.id == leader_id)
        .expect("leader is a node");
    let dead = nodes.remove(position);
    let killed_at = Instant::now();
    dead.kill().await;
    println!("killing the leader took {:?}", killed_at.elapsed());
    let new_leader_id = wait_for_leader(&nodes.iter().collect::<Vec<_>>(), Some(leader_id)).await;
    let elapsed = killed_at.elapsed();
    println!("new leader {new_leader_id} elected {elapsed:?} after leader {leader_id} died");
    assert_ne!(new_leader_id, leader_id);
    assert!(
        elapsed < Duration::from_secs(2),
        "election took {elapsed:?}"
    );

    let new_leader = nodes
        .iter()
        .find(|n| n.id == new_leader_id)
        .expect("new leader is a node");
    let Response::Written { index: second, .. } = write(
        &new_leader.raft,
        vec![put("services", "web", "v2", Expect::Version(index))],
    )
    .await
    else {
        panic!("write through the new leader must apply");
    };
    assert!(second > index);
    for node in &nodes {
        node.wait_applied(second).await;
        let web = node
            .sm
            .get("services", "web")
            .expect("get")
            .expect("present");
        assert_eq!(
            (web.version, web.created_index, web.value.as_slice()),
            (second, index, b"v2".as_slice())
        );
    }

    for node in nodes {
        node.kill().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_catches_up_from_a_snapshot_over_grpc() {
    let first = Node::start(1).await;
    first
        .raft
        .initialize(BTreeMap::from([(1, first.basic_node())]))
        .await
        .expect("initialize");
    wait_for_leader(&[&first], None).await;

    let mut last = 0;
    for i in 0..20 {
        let ops = vec![put(
            "tasks",
            &format!("t{i:02}"),
            &"payload ".repeat(100),
            Expect::Absent,
        )];
        let Response::Written { index, .. } = write(&first.raft, ops).await else {
            panic!("write must apply");
        };
        last = index;
    }
    first
        .raft
        .trigger()
        .snapshot()
        .await
        .expect("trigger snapshot");
    first
        .raft
        .wait(Some(WAIT))
        .metrics(
            |m| m.snapshot.map(|s| s.index) == Some(last),
            "snapshot built",
        )
        .await
        .expect("snapshot built");
    first
        .raft
        .trigger()
        .purge_log(last)
        .await
        .expect("trigger purge");
    first
        .raft
        .wait(Some(WAIT))
        .metrics(|m| m.purged.map(|p| p.index) == Some(last), "log purged")
        .await
        .expect("log purged");

    // The log is gone, so the new node can only catch up from the snapshot.
    let second = Node::start(2).await;
    first
        .raft
        .add_learner(2, second.basic_node(), true)
        .await
        .expect("add learner");
    second.wait_applied(last).await;
    assert_eq!(
        second.sm.list("tasks", "", 0).expect("list"),
        first.sm.list("tasks", "", 0).expect("list")
    );
    assert_eq!(second.sm.list("tasks", "", 0).expect("list").len(), 20);

    second.kill().await;
    first.kill().await;
}
