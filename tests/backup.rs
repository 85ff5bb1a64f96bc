//! Backup and restore on real containers: a three-manager cluster is backed
//! up from a follower while writes keep landing, and the backup restored on
//! a fresh container holds every write acknowledged before the backup
//! began, the accounts, the secrets, and keeps old client bundles working.
//! Damaged, wrongly unlocked or foreign backups are refused before anything
//! is written.

mod common;
#[path = "support/docker.rs"]
mod docker;
#[path = "support/gateway.rs"]
mod gateway;

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use capstan_testkit::ContainerSpec;
use common::{GatewayApi, Result, TestCluster};
use docker::Docker;

const PASSPHRASE: &str = "correct horse battery staple";

/// Unpacks the bundle zip's TLS files into `into`.
fn unpack_bundle(zip_bytes: &[u8], into: &Path) -> Result<()> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes))?;
    for name in ["ca.pem", "cert.pem", "key.pem"] {
        let mut data = Vec::new();
        zip.by_name(name)?.read_to_end(&mut data)?;
        std::fs::write(into.join(name), data)?;
    }
    Ok(())
}

/// `bytes` with the first `from` made `to` (same length).
fn replaced(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern in the backup");
    let mut out = bytes.to_vec();
    out[at..at + to.len()].copy_from_slice(to);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_taken_under_writes_restores_every_acknowledged_object() -> Result<()> {
    let mut c = TestCluster::managers(3).await?;
    let leader = c.wait_for_leader(0, Duration::from_secs(30)).await?;
    let follower = (0..3).find(|&i| i != leader).expect("a follower");
    let ca = c.members[leader]
        .container
        .exec_ok(&["cat", "/data/pki/ca.crt"])?;
    let ip = c.members[leader].container.ip(&c.net)?;
    let api = GatewayApi::admin_of(&c, leader).await?;

    // Accounts, a client bundle and a secret, made before the backup.
    let r = api
        .post(
            "/accounts",
            serde_json::json!({"name": "operadora", "password": "operadora-pass-1"}),
        )
        .await?;
    assert_eq!(r.status(), 201, "{}", r.text().await?);
    let r = api
        .post(
            "/api/clientbundle?label=before-backup",
            serde_json::json!({}),
        )
        .await?;
    assert_eq!(r.status(), 200);
    let bundle = tempfile::tempdir()?;
    unpack_bundle(&r.bytes().await?, bundle.path())?;
    let before = Docker::with_bundle_at(&format!("tcp://{ip}:443"), bundle.path());
    let secret_file = bundle.path().join("secret.txt");
    std::fs::write(&secret_file, "s3cr3t-value")?;
    before.ok(&[
        "secret",
        "create",
        "db-password",
        secret_file.to_str().unwrap(),
    ]);
    let old_worker_token = c.capstan_ok(leader, &["token", "worker", "--quiet"])?;

    // A write load through the leader, every acknowledgement timed.
    let acked: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writer = c.client(leader).await?;
    let load = {
        let (acked, stop) = (acked.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("load-{i:06}");
                if writer
                    .write(common::put_request(&key, &format!("value-{i}")))
                    .await
                    .is_ok()
                {
                    acked.lock().unwrap().push((key, Instant::now()));
                }
                i += 1;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    let out = c.members[follower].container.exec(&[
        "sh",
        "-c",
        &format!(
            "printf '{PASSPHRASE}\\n' > /tmp/pp && capstan --data-dir /data backup -o /data/cluster.cbk --passphrase-file /tmp/pp"
        ),
    ])?;
    let finished = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    load.await?;
    assert!(out.success(), "backup failed: {}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("at Raft index"),
        "backup summary: {}",
        out.stderr
    );
    let acked = acked.lock().unwrap().clone();
    let before_backup: Vec<&String> = acked
        .iter()
        .filter(|(_, at)| *at < started)
        .map(|(k, _)| k)
        .collect();
    let after_backup = acked.iter().filter(|(_, at)| *at > finished).count();
    assert!(
        !before_backup.is_empty(),
        "no write acknowledged before the backup"
    );
    assert!(after_backup > 0, "writes stopped during the backup");

    // The backup and broken variants of it, for a fresh machine.
    let files = tempfile::tempdir()?;
    let good = files.path().join("cluster.cbk");
    c.members[follower]
        .container
        .cp_from("/data/cluster.cbk", &good)?;
    let bytes = std::fs::read(&good)?;
    assert!(
        !String::from_utf8_lossy(&bytes).contains("s3cr3t-value")
            && !String::from_utf8_lossy(&bytes).contains("operadora"),
        "the backup is not sealed"
    );
    std::fs::write(files.path().join("pp"), format!("{PASSPHRASE}\n"))?;
    std::fs::write(files.path().join("wrong-pp"), "not the passphrase\n")?;
    std::fs::write(
        files.path().join("truncated.cbk"),
        &bytes[..bytes.len() - 100],
    )?;
    let mut tampered = bytes.clone();
    let middle = tampered.len() - tampered.len() / 3;
    tampered[middle] ^= 0x20;
    std::fs::write(files.path().join("tampered.cbk"), tampered)?;
    std::fs::write(
        files.path().join("future.cbk"),
        replaced(&bytes, b"\"format\":1,", b"\"format\":7,"),
    )?;
    std::fs::write(
        files.path().join("forged.cbk"),
        replaced(&bytes, b"\"objects\":", b"\"objectz\":"),
    )?;
    for f in std::fs::read_dir(files.path())? {
        let path = f?.path();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    }

    let spec = ContainerSpec::new("restored", c.image.tag())
        .hostname("restored")
        .network(&c.net)
        .volume(files.path().to_str().unwrap(), "/backup")
        .volume("data-restored", "/data")
        .cmd([
            "sh",
            "-c",
            "while [ ! -f /data/node.toml ]; do sleep 0.2; done; exec capstan manager --data-dir /data",
        ]);
    let container = c.harness.run(spec)?;
    c.members.push(common::Member {
        name: "restored".into(),
        container,
    });
    let restored = c.members.len() - 1;
    let node = &c.members[restored].container;
    let restore = |file: &str, pp: &str| {
        node.exec(&[
            "sh",
            "-c",
            &format!(
                "capstan --data-dir /data restore --from /backup/{file} --passphrase-file /backup/{pp} --host-address restored --san \"$(hostname -i | cut -d' ' -f1)\" --init-only"
            ),
        ])
    };
    for (file, pp, says) in [
        ("cluster.cbk", "wrong-pp", "wrong passphrase"),
        ("truncated.cbk", "pp", "truncated"),
        ("tampered.cbk", "pp", "does not match its checksum"),
        ("future.cbk", "pp", "format 7"),
        ("forged.cbk", "pp", "not a Capstan backup"),
    ] {
        let out = restore(file, pp)?;
        assert!(!out.success(), "{file} with {pp} was restored");
        assert!(
            out.stderr.contains(says),
            "{file} with {pp}: expected {says:?} in {:?}",
            out.stderr
        );
        let left = node.exec_ok(&["ls", "-A", "/data"])?;
        assert_eq!(left.trim(), "", "{file} left files behind: {left}");
    }
    let check = node.exec_ok(&[
        "capstan",
        "restore",
        "--check",
        "--from",
        "/backup/cluster.cbk",
        "--passphrase-file",
        "/backup/pp",
    ])?;
    let manifest: serde_json::Value = serde_json::from_str(&check)?;
    let index = manifest["raft_index"].as_u64().ok_or("raft_index")?;
    assert!(index > 0, "{manifest}");

    let out = restore("cluster.cbk", "pp")?;
    assert!(
        out.success(),
        "restore failed: {}{}",
        out.stdout,
        out.stderr
    );
    assert!(out.stdout.contains("Restored cluster"), "{}", out.stdout);
    c.wait_for_leader(restored, Duration::from_secs(60)).await?;

    // Every write acknowledged before the backup began is there, with its
    // value; the restored cluster has one manager.
    let mut client = c.client(restored).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let keys = loop {
        let listed = client
            .list(capstan_proto::v1::ListRequest {
                table: "kv".into(),
                prefix: "load-".into(),
                consistency: capstan_proto::v1::Consistency::Linearizable.into(),
                limit: 0,
            })
            .await?
            .into_inner()
            .objects;
        if !listed.is_empty() || Instant::now() > deadline {
            break listed;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let present: std::collections::BTreeMap<String, String> = keys
        .into_iter()
        .map(|o| (o.id, String::from_utf8_lossy(&o.value).into_owned()))
        .collect();
    for key in &before_backup {
        let i: u32 = key.trim_start_matches("load-").parse()?;
        assert_eq!(
            present.get(*key).map(String::as_str),
            Some(format!("value-{i}").as_str()),
            "{key} was acknowledged before the backup began but is not restored"
        );
    }
    let status = c.status(restored)?;
    assert_eq!(
        status["members"].as_array().map(Vec::len),
        Some(1),
        "{status}"
    );

    // The bundle made before the backup works against the restored
    // manager; the secret and the user are there; join tokens are new.
    let after = Docker::with_bundle_at(&format!("tcp://{}:443", node.ip(&c.net)?), bundle.path());
    let deadline = Instant::now() + Duration::from_secs(60);
    let secrets = loop {
        let run = after.run(&["secret", "ls", "--format", "{{.Name}}"]);
        if run.ok || Instant::now() > deadline {
            break run;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        secrets.ok,
        "docker secret ls with the old bundle: {}",
        secrets.stderr
    );
    assert_eq!(secrets.stdout.trim(), "db-password");
    let nodes = after.ok(&["node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}"]);
    assert_eq!(
        nodes.trim(),
        "restored Leader",
        "old managers are gone: {nodes}"
    );
    GatewayApi::login(
        &format!("https://{}:443", node.ip(&c.net)?),
        &ca,
        "operadora",
        "operadora-pass-1",
    )
    .await?;
    let new_worker_token = c.capstan_ok(restored, &["token", "worker", "--quiet"])?;
    assert_ne!(new_worker_token.trim(), old_worker_token.trim());
    assert_eq!(
        new_worker_token.split('-').nth(2),
        old_worker_token.split('-').nth(2),
        "the CA (and its digest in the token) is the same"
    );
    Ok(())
}
