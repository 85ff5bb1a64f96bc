//! Forming a cluster: install + joins, join-token checks, membership rules.

mod common;

use std::time::Duration;

use capstan_testkit::ContainerSpec;
use common::{Result, TestCluster};

#[tokio::test(flavor = "multi_thread")]
async fn three_managers_form_a_cluster_and_forward_writes() -> Result<()> {
    let c = TestCluster::managers(3).await?;
    let leader = c.wait_for_leader(0, Duration::from_secs(10)).await?;
    for i in 0..3 {
        assert_eq!(
            c.leader_seen_by(i),
            Some(leader),
            "member {i} disagrees on the leader"
        );
    }

    let nodes: serde_json::Value =
        serde_json::from_str(&c.capstan_ok(1, &["node", "ls", "--json"])?)?;
    let nodes = nodes.as_array().expect("node ls --json prints an array");
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    assert!(
        nodes
            .iter()
            .all(|n| n["Status"] == "ready" && n["Role"] == "manager"),
        "{nodes:?}"
    );
    assert_eq!(
        nodes
            .iter()
            .filter(|n| n["ManagerStatus"] == "leader")
            .count(),
        1
    );
    let table = c.capstan_ok(2, &["node", "ls"])?;
    assert!(
        table.contains("Leader") && table.contains("manager3"),
        "{table}"
    );

    // A write through a follower is forwarded; a linearizable read through
    // another follower sees it at once.
    let follower = (0..3).find(|i| *i != leader).expect("a follower");
    let other = (0..3)
        .find(|i| *i != leader && *i != follower)
        .expect("another follower");
    let version = c.put(follower, "greeting", "hello").await?;
    assert!(version > 0);
    assert_eq!(
        c.get(other, "greeting", true).await?,
        Some(("hello".into(), version))
    );

    // A stale version is refused and changes nothing.
    let mut client = c.client(other).await?;
    let mut stale = common::put_request("greeting", "overwritten");
    stale.ops[0].any_version = false;
    stale.ops[0].expected_version = version - 1;
    let err = client
        .write(stale)
        .await
        .expect_err("a stale version was accepted");
    assert_eq!(err.code(), tonic::Code::Aborted, "{err}");
    assert!(err.message().contains("version conflict"), "{err}");
    assert_eq!(
        c.get(leader, "greeting", true).await?,
        Some(("hello".into(), version))
    );

    // Every manager streams committed changes.
    let mut watch = client
        .watch(capstan_proto::v1::WatchRequest {
            tables: vec!["kv".into()],
        })
        .await?
        .into_inner();
    let written = c.put(follower, "watched", "seen").await?;
    let event = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await??
        .expect("watch stream ended");
    let object = event.object.expect("event carries the object");
    assert_eq!(
        (object.id.as_str(), object.value.as_slice(), object.version),
        ("watched", &b"seen"[..], written)
    );
    assert!(!event.deleted);

    // The CLI does the same.
    c.capstan_ok(other, &["kv", "put", "cli-key", "cli-value"])?;
    assert_eq!(
        c.capstan_ok(follower, &["kv", "get", "cli-key"])?.trim(),
        "cli-value"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_join_tokens_are_refused_and_change_nothing() -> Result<()> {
    let c = TestCluster::managers(1).await?;
    let worker_token = c
        .capstan_ok(0, &["token", "worker", "--quiet"])?
        .trim()
        .to_string();
    let joiner = c.harness.run(
        ContainerSpec::new("joiner", c.image.tag())
            .hostname("joiner")
            .network(&c.net)
            .cmd(["sleep", "600"]),
    )?;
    let join = |token: &str| {
        joiner.exec(&[
            "capstan",
            "join",
            "--init-only",
            "--data-dir",
            "/data",
            "--host-address",
            "joiner",
            "--token",
            token,
            "manager1:2377",
        ])
    };
    let (digest, secret) = worker_token
        .strip_prefix("CAPTKN-1-")
        .and_then(|rest| rest.split_once('-'))
        .expect("token has CAPTKN-1-<digest>-<secret>");
    let other_digest = "0".repeat(64);
    let zero_secret = "q".repeat(secret.len());
    let cases: Vec<(String, &str)> = vec![
        ("not-a-token".into(), "not a Capstan join token"),
        (format!("CAPTKN-2-{digest}-{secret}"), "version 2"),
        (format!("CAPTKN-1-{digest}"), "join token"),
        (format!("CAPTKN-1-{other_digest}-{secret}"), "CA"),
        (
            format!("CAPTKN-1-{digest}-{zero_secret}"),
            "invalid or was rotated",
        ),
    ];
    for (token, expected) in &cases {
        let out = join(token)?;
        assert!(!out.success(), "join with {token:?} succeeded");
        let err = out.stderr.trim();
        assert!(
            err.contains(expected),
            "join with {token:?}: expected {expected:?} in {err:?}"
        );
        assert_eq!(err.lines().count(), 1, "error is not one line: {err:?}");
        assert!(
            !err.contains(zero_secret.as_str()) && !err.contains(secret),
            "error leaks the secret: {err}"
        );
    }

    // A node of a version this cluster cannot work with is refused with
    // both versions named, before anything is written (asked over the Join
    // API as such a node would).
    let ca = c.members[0]
        .container
        .exec_ok(&["cat", "/data/pki/ca.crt"])?;
    let channel =
        capstan_manager::state::endpoint(&c.addr(0)?, &capstan_pki::client_tls(&ca, None))?
            .connect()
            .await?;
    let mut join_api = capstan_proto::v1::join_client::JoinClient::new(channel);
    let ours = env!("CARGO_PKG_VERSION");
    for (version, says) in [
        ("99.0.0".to_string(), "upgrade the cluster's managers first"),
        ("0.3.0".to_string(), "upgrade the cluster's managers first"),
        (String::new(), "does not say which Capstan version"),
    ] {
        let (csr_pem, _key) = capstan_pki::generate_csr()?;
        let refused = join_api
            .join(capstan_proto::v1::JoinRequest {
                token: worker_token.clone(),
                csr_pem,
                hostname: "other-version".into(),
                advertise_addr: "other-version:2377".into(),
                sans: vec![],
                version: version.clone(),
            })
            .await
            .expect_err("a join of another version was admitted");
        assert_eq!(
            refused.code(),
            tonic::Code::FailedPrecondition,
            "{refused:?}"
        );
        let message = refused.message();
        assert!(
            message.contains(says) && message.contains(ours) && message.contains(version.as_str()),
            "version {version:?}: {message}"
        );
    }

    // A rotated token stops working at once.
    c.capstan_ok(0, &["token", "worker", "--rotate"])?;
    let out = join(&worker_token)?;
    assert!(!out.success());
    assert!(out.stderr.contains("rotated"), "{}", out.stderr);

    // Nothing changed: one node in the cluster, nothing written on the joiner.
    let nodes: serde_json::Value =
        serde_json::from_str(&c.capstan_ok(0, &["node", "ls", "--json"])?)?;
    assert_eq!(nodes.as_array().map(Vec::len), Some(1), "{nodes}");
    let ls = joiner.exec(&["ls", "-A", "/data"])?;
    assert!(
        ls.stdout.trim().is_empty() || !ls.success(),
        "joiner wrote {:?}",
        ls.stdout
    );

    // The current token admits the worker.
    let fresh = c.capstan_ok(0, &["token", "worker", "--quiet"])?;
    let out = join(fresh.trim())?;
    assert!(out.success(), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("joined the cluster as a worker"),
        "{}",
        out.stdout
    );
    let nodes: serde_json::Value =
        serde_json::from_str(&c.capstan_ok(0, &["node", "ls", "--json"])?)?;
    let nodes = nodes.as_array().expect("array");
    assert_eq!(nodes.len(), 2);
    assert!(
        nodes
            .iter()
            .any(|n| n["Hostname"] == "joiner" && n["Role"] == "worker"),
        "{nodes:?}"
    );
    let mode = joiner.exec_ok(&["stat", "-c", "%a", "/data/pki/node.key"]);
    if let Ok(mode) = mode {
        assert_eq!(mode.trim(), "600");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn membership_changes_keep_quorum() -> Result<()> {
    let c = TestCluster::managers(3).await?;
    let leader = c.wait_for_leader(0, Duration::from_secs(10)).await?;
    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();

    // A manager cannot be removed before it is demoted.
    let out = c.capstan(leader, &["node", "rm", &c.members[followers[0]].name])?;
    assert!(!out.success());
    assert!(out.stderr.contains("demote it first"), "{}", out.stderr);

    // With one follower down, demoting the other would leave 1 of 2 reachable.
    c.members[followers[0]].container.stop()?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let out = c.capstan(leader, &["node", "demote", &c.members[followers[1]].name])?;
    assert!(!out.success(), "demote succeeded: {}", out.stdout);
    assert!(out.stderr.contains("would lose quorum"), "{}", out.stderr);

    // Demoting the stopped one is fine: 2 of the 2 remaining are reachable.
    c.capstan_ok(leader, &["node", "demote", &c.members[followers[0]].name])?;
    let status = c.status(leader)?;
    let voters = status["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter(|m| m["voter"] == true)
        .count();
    assert_eq!(voters, 2, "{status}");
    // Now it can be removed.
    c.capstan_ok(leader, &["node", "rm", &c.members[followers[0]].name])?;
    let nodes: serde_json::Value =
        serde_json::from_str(&c.capstan_ok(leader, &["node", "ls", "--json"])?)?;
    assert_eq!(nodes.as_array().map(Vec::len), Some(2), "{nodes}");
    // The two left still commit.
    c.put(followers[1], "after-removal", "ok").await?;
    assert_eq!(
        c.get(leader, "after-removal", true).await?.map(|v| v.0),
        Some("ok".into())
    );
    Ok(())
}
