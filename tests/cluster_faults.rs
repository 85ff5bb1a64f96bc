//! Failures of managers: crashes, partitions, full restarts, lost minorities.

mod common;

use std::time::{Duration, Instant};

use capstan_proto::v1 as pb;
use common::{Result, TestCluster};

/// The leader index member `i` reports over gRPC (fast enough to time
/// elections), or None.
async fn leader_via_api(c: &TestCluster, i: usize) -> Option<usize> {
    let mut client = c.client(i).await.ok()?;
    let s = tokio::time::timeout(
        Duration::from_millis(500),
        client.status(pb::StatusRequest {}),
    )
    .await
    .ok()?
    .ok()?
    .into_inner();
    let host = s
        .members
        .iter()
        .find(|m| m.node_id == s.leader_id)?
        .hostname
        .clone();
    c.members.iter().position(|m| m.name == host)
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_leader_is_replaced_within_two_seconds_and_writes_go_on() -> Result<()> {
    let c = TestCluster::managers(3).await?;
    let old = c.wait_for_leader(0, Duration::from_secs(10)).await?;
    c.put(old, "before", "1").await?;
    let survivors: Vec<usize> = (0..3).filter(|i| *i != old).collect();

    c.members[old].container.kill()?;
    let killed_at = Instant::now();
    let new_leader = loop {
        let mut seen = None;
        for &i in &survivors {
            if let Some(l) = leader_via_api(&c, i).await {
                if l != old {
                    seen = Some(l);
                }
            }
        }
        if let Some(l) = seen {
            break l;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(20),
            "no new leader:\n{}",
            c.all_logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let failover = killed_at.elapsed();
    eprintln!("failover took {failover:?}");
    assert!(
        failover < Duration::from_secs(2),
        "new leader after {failover:?}"
    );

    let v = c.put(survivors[0], "after", "2").await?;
    assert_eq!(
        c.get(new_leader, "after", true).await?,
        Some(("2".into(), v))
    );
    assert_eq!(
        c.get(survivors[1], "before", true).await?.map(|x| x.0),
        Some("1".into())
    );

    // The old leader comes back from its disk and catches up.
    c.members[old].container.start()?;
    let start = Instant::now();
    loop {
        if let Ok(Some((value, _))) = c.get(old, "after", false).await {
            assert_eq!(value, "2");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "restarted manager never caught up:\n{}",
            c.all_logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn partitioned_follower_serves_no_stale_linearizable_read_and_catches_up() -> Result<()> {
    let c = TestCluster::managers(3).await?;
    let leader = c.wait_for_leader(0, Duration::from_secs(10)).await?;
    let cut = (0..3).find(|i| *i != leader).expect("a follower");
    let other = (0..3)
        .find(|i| *i != leader && *i != cut)
        .expect("another follower");
    c.put(leader, "k", "v1").await?;

    let mut cut_client = c.client(cut).await?;
    c.members[cut].container.disconnect(&c.net)?;
    // The majority keeps committing.
    let v2 = c.put(other, "k", "v2").await?;
    assert_eq!(c.get(leader, "k", true).await?, Some(("v2".into(), v2)));
    // The cut-off follower cannot be reached from the host either, so ask it
    // from inside: its linearizable read must fail, never answer v1.
    let out = c.capstan(cut, &["kv", "get", "k"])?;
    assert!(
        !out.success(),
        "minority served a linearizable read: {}",
        out.stdout
    );
    assert!(!out.stdout.contains("v1"), "{}", out.stdout);
    // A local (serializable) read is allowed to be stale, and says so by design.
    let local = c.capstan_ok(cut, &["kv", "get", "k", "--local"])?;
    assert_eq!(local.trim(), "v1");
    // Writes through the minority are not acknowledged.
    let out = c.capstan(cut, &["kv", "put", "k", "minority"])?;
    assert!(!out.success(), "minority acknowledged a write");

    c.members[cut].container.connect(&c.net)?;
    let start = Instant::now();
    loop {
        cut_client = c.client(cut).await.unwrap_or(cut_client);
        if let Ok(r) = cut_client.read(common::read_request("k", true)).await {
            let o = r.into_inner().object.expect("k exists");
            assert_eq!(o.value, b"v2");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "healed follower never caught up:\n{}",
            c.all_logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        c.get(cut, "k", false).await?.map(|x| x.0),
        Some("v2".into())
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn partitioned_leader_loses_leadership_and_the_majority_goes_on() -> Result<()> {
    let c = TestCluster::managers(3).await?;
    let old = c.wait_for_leader(0, Duration::from_secs(10)).await?;
    let rest: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    c.put(old, "k", "v1").await?;
    c.members[old].container.disconnect(&c.net)?;

    let start = Instant::now();
    let new_leader = loop {
        if let Some(l) = leader_via_api(&c, rest[0]).await {
            if l != old {
                break l;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "majority elected no leader:\n{}",
            c.all_logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let v2 = c.put(rest[1], "k", "v2").await?;
    assert_eq!(c.get(new_leader, "k", true).await?, Some(("v2".into(), v2)));
    // The old leader, alone, can neither confirm a read nor commit a write.
    let out = c.capstan(old, &["kv", "get", "k"])?;
    assert!(
        !out.success(),
        "isolated old leader served a linearizable read: {}",
        out.stdout
    );
    let out = c.capstan(old, &["kv", "put", "k", "lost"])?;
    assert!(!out.success(), "isolated old leader acknowledged a write");

    c.members[old].container.connect(&c.net)?;
    let start = Instant::now();
    loop {
        if let Ok(Some((v, _))) = c.get(old, "k", false).await {
            if v == "v2" {
                break;
            }
            assert_ne!(v, "lost", "an unacknowledged minority write survived");
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "old leader never caught up:\n{}",
            c.all_logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        c.get(new_leader, "k", true).await?.map(|x| x.0),
        Some("v2".into())
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn stopping_every_manager_loses_no_acknowledged_write() -> Result<()> {
    let c = TestCluster::managers(3).await?;
    let mut acked = Vec::new();
    for i in 0..30 {
        let key = format!("key-{i}");
        let v = c.put(i % 3, &key, &format!("value-{i}")).await?;
        acked.push((key, format!("value-{i}"), v));
    }
    for m in &c.members {
        m.container.stop()?;
    }
    for m in &c.members {
        m.container.start()?;
    }
    c.wait_for_voters(3, Duration::from_secs(60)).await?;
    for (key, value, version) in &acked {
        let got = c.get(1, key, true).await?;
        assert_eq!(got, Some((value.clone(), *version)), "{key} after restart");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn five_managers_keep_working_with_two_down() -> Result<()> {
    let c = TestCluster::managers(5).await?;
    let leader = c.wait_for_leader(0, Duration::from_secs(10)).await?;
    let down: Vec<usize> = (0..5).filter(|i| *i != leader).take(2).collect();
    for &i in &down {
        c.members[i].container.kill()?;
    }
    let up: Vec<usize> = (0..5).filter(|i| !down.contains(i)).collect();
    for (n, &i) in up.iter().enumerate() {
        let v = c.put(i, &format!("k{n}"), "v").await?;
        assert!(v > 0);
    }
    for &i in &up {
        assert_eq!(c.get(i, "k0", true).await?.map(|x| x.0), Some("v".into()));
    }
    // One of the lost managers comes back and the leader dies: 3 of 5 are
    // up again, with the returning one behind; they elect a new leader.
    c.members[down[0]].container.start()?;
    c.members[leader].container.kill()?;
    let rest: Vec<usize> = (0..5).filter(|i| *i != leader && *i != down[1]).collect();
    let start = Instant::now();
    loop {
        if c.put(rest[0], "after-leader-loss", "v").await.is_ok() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "3 of 5 managers (one just restarted) could not commit:\n{}",
            c.all_logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        c.get(rest[1], "after-leader-loss", true)
            .await?
            .map(|x| x.0),
        Some("v".into())
    );
    Ok(())
}
