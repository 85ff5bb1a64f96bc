//! Day-two operations on a real cluster of three managers and a worker
//! with one manager stopped: support bundles (`capstan support-bundle` on a
//! manager and `POST /api/support` both answer a zip with every other
//! node's log, the cluster's state and the stopped node listed as
//! unreachable, without waiting for it, and with no secret value anywhere
//! inside) and `capstan doctor` on a manager and on a worker.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::time::{Duration, Instant};

use common::{GatewayApi, Result, TestCluster, ADMIN_PASSWORD};

const SECRET_VALUE: &str = "swarm-secret-value-7f3a";
const ENV_SECRET: &str = "env-secret-value-91c2";
const USER_PASSWORD: &str = "operadora-pass-5d1e";

/// Every file of a zip.
fn unzip(bytes: &[u8]) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))?;
    let mut files = BTreeMap::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i)?;
        let mut data = Vec::new();
        f.read_to_end(&mut data)?;
        files.insert(f.name().to_string(), data);
    }
    Ok(files)
}

/// Checks one bundle: the stopped manager listed, the others' logs in,
/// the cluster's state in, and none of `secrets` anywhere.
fn check_bundle(bytes: &[u8], stopped: &str, secrets: &[&str]) -> Result<()> {
    let files = unzip(bytes)?;
    let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"])?;
    let nodes = manifest["nodes"].as_array().ok_or("nodes")?;
    assert_eq!(nodes.len(), 4, "{manifest}");
    for node in nodes {
        let host = node["hostname"].as_str().unwrap_or_default();
        let dir = format!("nodes/{}-{}", host, node["id"].as_str().unwrap_or_default());
        if host == stopped {
            assert_eq!(node["included"], false, "{node}");
            assert!(
                node["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{node}"
            );
            continue;
        }
        assert_eq!(node["included"], true, "{host} missing: {node}");
        let log = files
            .get(&format!("{dir}/capstan.log"))
            .ok_or_else(|| format!("no log of {host}"))?;
        assert!(
            String::from_utf8_lossy(log).contains("INFO"),
            "{host}'s log is empty"
        );
        if host.starts_with("manager") {
            assert!(
                files.contains_key(&format!("{dir}/raft.json")),
                "{host} raft"
            );
            assert!(
                files.contains_key(&format!("{dir}/node.toml")),
                "{host} config"
            );
        }
    }
    let unreachable = manifest["unreachable"].as_array().ok_or("unreachable")?;
    assert_eq!(unreachable.len(), 1, "{manifest}");
    assert_eq!(unreachable[0]["hostname"], stopped);
    for name in [
        "cluster/status.json",
        "cluster/nodes.json",
        "cluster/services.json",
        "cluster/tasks.json",
        "cluster/events.json",
        "versions.json",
    ] {
        assert!(files.contains_key(name), "{name} missing");
    }
    let services = String::from_utf8_lossy(&files["cluster/services.json"]).into_owned();
    assert!(services.contains("web-with-secrets"), "{services}");
    assert!(services.contains("DB_PASSWORD=<redacted>"), "{services}");
    let versions: serde_json::Value = serde_json::from_slice(&files["versions.json"])?;
    assert_eq!(
        versions["worker1"]["capstan"].as_str(),
        Some(env!("CARGO_PKG_VERSION")),
        "{versions}"
    );
    for (name, data) in &files {
        let text = String::from_utf8_lossy(data);
        for secret in secrets {
            assert!(!text.contains(secret), "{name} holds the secret {secret:?}");
        }
        assert!(!text.contains("PRIVATE KEY"), "{name} holds a private key");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn support_bundles_list_a_stopped_node_and_hold_no_secret() -> Result<()> {
    let mut c = TestCluster::managers(3).await?;
    c.add_worker("worker1").await?;
    let api = GatewayApi::admin_of(&c, 0).await?;

    // Secrets of every kind the cluster holds.
    let r = api
        .post(
            "/accounts",
            serde_json::json!({"name": "operadora", "password": USER_PASSWORD}),
        )
        .await?;
    assert_eq!(r.status(), 201);
    let mut swarm = c.swarm(0).await?;
    swarm
        .create_secret(capstan_proto::v1::CreateDataObjectRequest {
            name: "db-password".into(),
            data: SECRET_VALUE.as_bytes().to_vec(),
            ..Default::default()
        })
        .await?;
    let spec = serde_json::json!({
        "Name": "web-with-secrets",
        "TaskTemplate": {"ContainerSpec": {
            "Image": c.image.tag(),
            "Command": ["sleep", "3600"],
            "Env": [format!("DB_PASSWORD={ENV_SECRET}")],
        }},
        "Mode": {"Replicated": {"Replicas": 1}},
    });
    let r = api.post("/services/create", spec).await?;
    assert_eq!(r.status(), 201, "{}", r.text().await?);
    let secrets = [
        SECRET_VALUE,
        ENV_SECRET,
        USER_PASSWORD,
        ADMIN_PASSWORD,
        api.token.as_str(),
    ];

    // Every node advertises the version it runs.
    let nodes: serde_json::Value =
        serde_json::from_str(&c.capstan_ok(0, &["node", "ls", "--json"])?)?;
    let versions: Vec<&str> = nodes
        .as_array()
        .ok_or("node list")?
        .iter()
        .map(|n| n["CapstanVersion"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(versions, vec![env!("CARGO_PKG_VERSION"); 4], "{nodes}");

    // manager3 stops; the bundle lists it instead of waiting for it.
    c.members[2].container.stop()?;
    let started = Instant::now();
    let out = c.capstan(0, &["support-bundle", "-o", "/tmp/support.zip"])?;
    assert!(
        out.success(),
        "support-bundle: {}{}",
        out.stdout,
        out.stderr
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the bundle waited {:?}",
        started.elapsed()
    );
    let local = tempfile::tempdir()?;
    let zip_path = local.path().join("support.zip");
    c.members[0]
        .container
        .cp_from("/tmp/support.zip", &zip_path)?;
    check_bundle(&std::fs::read(&zip_path)?, "manager3", &secrets)?;

    let started = Instant::now();
    let r = api.post("/api/support", serde_json::json!({})).await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"].to_str()?, "application/zip");
    let bytes = r.bytes().await?;
    assert!(started.elapsed() < Duration::from_secs(30));
    check_bundle(&bytes, "manager3", &secrets)?;
    let files = unzip(&bytes)?;
    assert!(
        String::from_utf8_lossy(&files["metrics.txt"]).contains("capstan_"),
        "metrics snapshot"
    );

    // Doctor on a manager: Raft names the stopped manager, the other's
    // clock is compared; this container has no Docker engine (a warning on
    // a manager, whose engine is optional).
    // (A manager counts as unreachable after three seconds without an
    // answer to the others' pings.)
    let deadline = Instant::now() + Duration::from_secs(30);
    let findings: Vec<serde_json::Value> = loop {
        let out = c.capstan(0, &["doctor", "--json"])?;
        assert!(
            out.success(),
            "doctor on manager1: {}{}",
            out.stdout,
            out.stderr
        );
        let findings: Vec<serde_json::Value> = serde_json::from_str(&out.stdout)?;
        let raft_warns = findings
            .iter()
            .any(|f| f["check"] == "raft" && f["level"] == "warn");
        if raft_warns || Instant::now() > deadline {
            break findings;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let find = |check: &str| {
        findings
            .iter()
            .find(|f| f["check"] == check)
            .cloned()
            .unwrap_or_else(|| panic!("no {check} finding in {findings:#?}"))
    };
    let raft = find("raft");
    assert_eq!(raft["level"], "warn", "{raft}");
    assert!(
        raft["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("manager3"),
        "{raft}"
    );
    assert!(
        !raft["fix"].as_str().unwrap_or_default().is_empty(),
        "{raft}"
    );
    assert_eq!(find("clock manager2")["level"], "ok");
    assert_eq!(find("clock manager3")["level"], "warn");
    assert_eq!(find("docker")["level"], "warn");
    for check in [
        "node certificate",
        "cluster CA",
        "swarm port",
        "controller port",
    ] {
        assert_eq!(find(check)["level"], "ok", "{check}: {findings:#?}");
    }
    // On the worker: its engine and its managers (one stopped: a warning,
    // since the others answer).
    let worker = c
        .members
        .iter()
        .position(|m| m.name == "worker1")
        .ok_or("worker1")?;
    let out = c.members[worker]
        .container
        .exec(&["capstan", "--data-dir", "/data", "doctor"])?;
    assert!(
        out.success(),
        "doctor on worker1: {}{}",
        out.stdout,
        out.stderr
    );
    let line = |level: &str, check: &str, naming: &str| {
        out.stdout
            .lines()
            .any(|l| l.split_whitespace().take(2).eq([level, check]) && l.contains(naming))
    };
    assert!(
        line("OK", "docker", "engine")
            && line("OK", "manager", "manager1:2377")
            && line("WARN", "manager", "manager3:2377"),
        "{}",
        out.stdout
    );
    // Nothing installed: a failure that says what to do.
    let out = c.members[0]
        .container
        .exec(&["capstan", "--data-dir", "/nowhere", "doctor"])?;
    assert!(!out.success());
    assert!(
        out.stdout.contains("no Capstan node in /nowhere"),
        "{}",
        out.stdout
    );

    // Not an admin: refused.
    let ca = c.members[0]
        .container
        .exec_ok(&["cat", "/data/pki/ca.crt"])?;
    let user = GatewayApi::login(&api.base, &ca, "operadora", USER_PASSWORD).await?;
    let r = user.post("/api/support", serde_json::json!({})).await?;
    assert_eq!(r.status(), 403);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_data_disk_refuses_writes_keeps_reads_and_recovers() -> Result<()> {
    let c = TestCluster::managers_on_small_disks(1, "200m").await?;
    let api = GatewayApi::admin_of(&c, 0).await?;
    let mut acked = Vec::new();
    for i in 0..20 {
        let key = format!("before-{i}");
        c.put(0, &key, &format!("v{i}")).await?;
        acked.push(key);
    }

    // Fill the data disk to 16 MiB free, under the manager's reserve.
    c.members[0].container.exec_ok(&[
        "sh",
        "-c",
        "avail=$(df -k /data | awk 'NR==2 {print $4}'); dd if=/dev/zero of=/data/fill bs=1024 count=$((avail - 16384)) 2>/dev/null; df -k /data",
    ])?;
    // (The disk is measured twice a second: writes just before count as
    // acknowledged.)
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut attempt = 0;
    let refusal = loop {
        attempt += 1;
        let key = format!("during-{attempt}");
        let mut client = c.client(0).await?;
        match client.write(common::put_request(&key, "x")).await {
            Err(s) => break s,
            Ok(_) if Instant::now() < deadline => {
                acked.push(key);
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Ok(_) => return Err("writes were still taken on a full disk".into()),
        }
    };
    let refused_key = format!("during-{attempt}");
    assert_eq!(
        refusal.code(),
        tonic::Code::ResourceExhausted,
        "{refusal:?}"
    );
    assert!(
        refusal
            .message()
            .contains("data disk of this manager is full"),
        "{}",
        refusal.message()
    );
    // The CLI and the REST API say so too; reads go on working.
    let out = c.capstan(0, &["kv", "put", "cli-key", "x"])?;
    assert!(!out.success());
    assert!(
        out.stderr.contains("data disk of this manager is full"),
        "{}",
        out.stderr
    );
    let r = api
        .post(
            "/accounts",
            serde_json::json!({"name": "late", "password": "late-password-1"}),
        )
        .await?;
    assert_eq!(r.status(), 507);
    let body: serde_json::Value = r.json().await?;
    assert_eq!(body["errors"][0]["code"], "DISK_FULL", "{body}");
    let r = api
        .client
        .get(format!("{}/accounts", api.base))
        .bearer_auth(&api.token)
        .send()
        .await?;
    assert_eq!(r.status(), 200, "reads fail on a full disk");
    for key in &acked {
        assert!(c.get(0, key, true).await?.is_some(), "{key} lost");
    }

    // Space freed: writes resume by themselves, and nothing was lost.
    c.members[0].container.exec_ok(&["rm", "/data/fill"])?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut client = c.client(0).await?;
        match client.write(common::put_request("after", "y")).await {
            Ok(_) => break,
            Err(s) if Instant::now() < deadline => {
                assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(s) => return Err(format!("writes did not resume: {s:?}").into()),
        }
    }
    for key in &acked {
        assert!(c.get(0, key, true).await?.is_some(), "{key} lost");
    }
    assert_eq!(
        c.get(0, "before-7", true).await?.map(|(v, _)| v),
        Some("v7".into())
    );
    assert_eq!(
        c.get(0, "after", true).await?.map(|(v, _)| v),
        Some("y".into())
    );
    assert!(
        c.get(0, &refused_key, true).await?.is_none(),
        "the refused write landed"
    );
    Ok(())
}
