//! A history check: concurrent clients write and read while managers crash,
//! freeze and get partitioned. Afterwards every acknowledged write must be
//! readable, no read may return a value nobody wrote, and no client's reads
//! of a register may go back in version.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use capstan_proto::v1 as pb;
use common::{put_request, read_request, Result, TestCluster};

const CLIENTS: usize = 4;
const REGISTERS: usize = 3;

#[derive(Debug, Clone)]
enum Event {
    /// A unique-key write and whether it was acknowledged.
    Put {
        key: String,
        value: String,
        acked: Option<u64>,
    },
    /// A register write.
    RegWrite {
        client: usize,
        reg: String,
        value: String,
        acked: Option<u64>,
    },
    /// A linearizable register read.
    RegRead {
        client: usize,
        reg: String,
        value: Option<String>,
        version: u64,
    },
}

#[derive(Default)]
struct History {
    events: Vec<Event>,
}

async fn client_loop(c: Arc<TestCluster>, id: usize, history: Arc<Mutex<History>>, stop: Instant) {
    let mut seq = 0u64;
    let mut clients: BTreeMap<usize, pb::cluster_client::ClusterClient<tonic::transport::Channel>> =
        BTreeMap::new();
    while Instant::now() < stop {
        seq += 1;
        let target = (id + seq as usize) % c.members.len();
        let client = match clients.get(&target) {
            Some(cl) => cl.clone(),
            None => match c.client(target).await {
                Ok(cl) => {
                    clients.insert(target, cl.clone());
                    cl
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let mut client = client;
        let timeout = Duration::from_secs(8);
        match seq % 3 {
            0 => {
                let key = format!("c{id}-{seq}");
                let value = format!("value-{id}-{seq}");
                let r =
                    tokio::time::timeout(timeout, client.write(put_request(&key, &value))).await;
                let acked = match r {
                    Ok(Ok(resp)) => resp.into_inner().objects.first().map(|o| o.version),
                    _ => None,
                };
                history
                    .lock()
                    .unwrap()
                    .events
                    .push(Event::Put { key, value, acked });
            }
            1 => {
                let reg = format!("reg-{}", seq as usize % REGISTERS);
                let value = format!("reg-value-{id}-{seq}");
                // Recorded before it is sent: a read may see a write whose
                // acknowledgment is lost.
                let r =
                    tokio::time::timeout(timeout, client.write(put_request(&reg, &value))).await;
                let acked = match r {
                    Ok(Ok(resp)) => resp.into_inner().objects.first().map(|o| o.version),
                    _ => None,
                };
                history.lock().unwrap().events.push(Event::RegWrite {
                    client: id,
                    reg,
                    value,
                    acked,
                });
            }
            _ => {
                let reg = format!("reg-{}", seq as usize % REGISTERS);
                let r = tokio::time::timeout(timeout, client.read(read_request(&reg, true))).await;
                if let Ok(Ok(resp)) = r {
                    let (value, version) = match resp.into_inner().object {
                        Some(o) => (
                            Some(String::from_utf8_lossy(&o.value).into_owned()),
                            o.version,
                        ),
                        None => (None, 0),
                    };
                    history.lock().unwrap().events.push(Event::RegRead {
                        client: id,
                        reg,
                        value,
                        version,
                    });
                }
            }
        }
    }
}

/// Checks a history against the final state; returns the violations.
fn check(events: &[Event], final_state: &BTreeMap<String, (String, u64)>) -> Vec<String> {
    let mut bad = Vec::new();
    let written: HashSet<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::Put { value, .. } | Event::RegWrite { value, .. } => Some(value.as_str()),
            Event::RegRead { .. } => None,
        })
        .collect();
    // Durability: every acknowledged unique-key write is there, intact.
    for e in events {
        if let Event::Put {
            key,
            value,
            acked: Some(v),
            ..
        } = e
        {
            match final_state.get(key) {
                Some((got, version)) if got == value && version == v => {}
                other => bad.push(format!("acknowledged {e:?} reads back as {other:?}")),
            }
        }
    }
    // No phantoms: everything stored was written by someone.
    for (key, (value, _)) in final_state {
        if !written.contains(value.as_str()) {
            bad.push(format!("{key} holds {value:?}, which no client wrote"));
        }
    }
    // Reads return written values, and each client's reads of a register
    // never go back in version, nor behind its own acknowledged writes.
    let mut seen: BTreeMap<(usize, String), u64> = BTreeMap::new();
    for e in events {
        match e {
            Event::RegRead {
                client,
                reg,
                value,
                version,
                ..
            } => {
                if let Some(v) = value {
                    if !written.contains(v.as_str()) {
                        bad.push(format!("{e:?} returned a value never written"));
                    }
                }
                let last = seen.entry((*client, reg.clone())).or_insert(0);
                if *version < *last {
                    bad.push(format!("{e:?} went back from version {last}"));
                }
                *last = (*last).max(*version);
            }
            Event::RegWrite {
                client,
                reg,
                acked: Some(v),
                ..
            } => {
                let last = seen.entry((*client, reg.clone())).or_insert(0);
                *last = (*last).max(*v);
            }
            _ => {}
        }
    }
    // The final register values are the latest acknowledged or a later unacknowledged write.
    for r in 0..REGISTERS {
        let reg = format!("reg-{r}");
        let max_acked = events
            .iter()
            .filter_map(|e| match e {
                Event::RegWrite {
                    reg: g,
                    acked: Some(v),
                    ..
                } if *g == reg => Some(*v),
                _ => None,
            })
            .max();
        if let (Some(max), Some((_, version))) = (max_acked, final_state.get(&reg)) {
            if version < &max {
                bad.push(format!(
                    "{reg} ended at version {version}, below acknowledged {max}"
                ));
            }
        }
    }
    bad
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_writes_survive_crashes_freezes_and_partitions() -> Result<()> {
    let c = Arc::new(TestCluster::managers(3).await?);
    let history = Arc::new(Mutex::new(History::default()));
    let t0 = Instant::now();
    let stop = t0 + Duration::from_secs(36);
    let workers: Vec<_> = (0..CLIENTS)
        .map(|id| tokio::spawn(client_loop(c.clone(), id, history.clone(), stop)))
        .collect();

    // The faults, one after another while the clients run.
    let pause = |s: u64| tokio::time::sleep(Duration::from_secs(s));
    pause(3).await;
    let leader = c.wait_for_leader(0, Duration::from_secs(10)).await?;
    c.members[leader].container.kill()?;
    pause(4).await;
    c.members[leader].container.start()?;
    pause(4).await;
    let leader = c
        .wait_for_leader((leader + 1) % 3, Duration::from_secs(20))
        .await?;
    c.members[leader].container.disconnect(&c.net)?;
    pause(5).await;
    c.members[leader].container.connect(&c.net)?;
    pause(4).await;
    let follower = (c.wait_for_leader(0, Duration::from_secs(20)).await? + 1) % 3;
    c.members[follower].container.pause()?;
    pause(4).await;
    c.members[follower].container.unpause()?;
    pause(3).await;
    c.members[0].container.restart()?;

    for w in workers {
        w.await?;
    }
    c.wait_for_voters(3, Duration::from_secs(60)).await?;

    let mut client = c.client(1).await?;
    let listed = client
        .list(pb::ListRequest {
            table: "kv".into(),
            prefix: String::new(),
            consistency: pb::Consistency::Linearizable.into(),
            limit: 0,
        })
        .await?
        .into_inner()
        .objects;
    let final_state: BTreeMap<String, (String, u64)> = listed
        .into_iter()
        .map(|o| {
            (
                o.id,
                (String::from_utf8_lossy(&o.value).into_owned(), o.version),
            )
        })
        .collect();
    let events = history.lock().unwrap().events.clone();
    let acked = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Put { acked: Some(_), .. } | Event::RegWrite { acked: Some(_), .. }
            )
        })
        .count();
    let reads = events
        .iter()
        .filter(|e| matches!(e, Event::RegRead { .. }))
        .count();
    eprintln!(
        "history: {} operations, {acked} acknowledged writes, {reads} reads",
        events.len()
    );
    assert!(
        acked > 20,
        "too few acknowledged writes to judge ({acked}):\n{}",
        c.all_logs()
    );
    assert!(reads > 10, "too few reads to judge ({reads})");

    let violations = check(&events, &final_state);
    assert!(
        violations.is_empty(),
        "{} violations:\n{}",
        violations.len(),
        violations.join("\n")
    );
    Ok(())
}

#[test]
fn the_checker_catches_lost_phantom_and_backward_histories() {
    let put = |key: &str, value: &str, acked| Event::Put {
        key: key.into(),
        value: value.into(),
        acked,
    };
    let read = |value: &str, version| Event::RegRead {
        client: 0,
        reg: "reg-0".into(),
        value: Some(value.into()),
        version,
    };
    let w = |value: &str, v| Event::RegWrite {
        client: 1,
        reg: "reg-0".into(),
        value: value.into(),
        acked: Some(v),
    };
    let state = |pairs: &[(&str, &str, u64)]| {
        pairs
            .iter()
            .map(|(k, v, n)| (k.to_string(), (v.to_string(), *n)))
            .collect::<BTreeMap<_, _>>()
    };
    // A clean history.
    let ok = vec![
        put("a", "x", Some(5)),
        w("r1", 6),
        read("r1", 6),
        w("r2", 9),
        read("r2", 9),
    ];
    assert!(check(&ok, &state(&[("a", "x", 5), ("reg-0", "r2", 9)])).is_empty());
    // Lost acknowledged write.
    assert_eq!(check(&ok, &state(&[("reg-0", "r2", 9)])).len(), 1);
    // Phantom value.
    assert!(!check(
        &ok,
        &state(&[("a", "x", 5), ("reg-0", "r2", 9), ("b", "ghost", 3)])
    )
    .is_empty());
    // A read going back.
    let back = vec![w("r1", 6), w("r2", 9), read("r2", 9), read("r1", 6)];
    assert!(check(&back, &state(&[("reg-0", "r2", 9)]))
        .iter()
        .any(|v| v.contains("went back")));
    // A read of a value nobody wrote.
    let never = vec![read("nobody", 3)];
    assert!(check(&never, &state(&[]))
        .iter()
        .any(|v| v.contains("never written")));
}
