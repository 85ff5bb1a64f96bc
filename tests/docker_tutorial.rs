//! The seed tutorial's client-bundle story (its step 9), end to end with the
//! stock `docker` CLI: an admin creates the user `analista`, a role with
//! every container operation and a grant of it on the whole cluster;
//! `analista` downloads a client bundle, sources its `env.sh`, and drives
//! containers; `docker node ls` is refused until the admin also grants
//! Full Control, after which it lists the nodes with the leader marked.

#[path = "support/docker.rs"]
mod docker;
#[path = "support/gateway.rs"]
mod gateway;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use capstan_testkit::{Harness, TestImage};
use gateway::Gateway;
use reqwest::Method;
use serde_json::json;

const PASSWORD: &str = "analista-password-1";

/// Runs `docker <args>` in the unpacked bundle after `. ./env.sh`, as the
/// tutorial does, with a fresh CLI configuration; returns (ok, stdout, stderr).
fn bundle_docker(bundle: &Path, config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("sh")
        .current_dir(bundle)
        .env("DOCKER_CONFIG", config)
        .env("HOME", config)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .args(["-c", ". ./env.sh >/dev/null && exec docker \"$@\"", "sh"])
        .args(args)
        .output()
        .expect("run sh");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(bundle: &Path, config: &Path, args: &[&str]) -> String {
    let (ok, out, err) = bundle_docker(bundle, config, args);
    assert!(ok, "docker {} failed: {err}{out}", args.join(" "));
    out
}

/// Downloads `analista`'s bundle with their own session and unpacks it.
fn download_bundle(gw: &Gateway, token: &str, into: &Path) {
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(
                &std::fs::read(gw.data_dir().join("pki/ca.crt")).expect("CA"),
            )
            .expect("CA PEM"),
        )
        .build()
        .expect("client");
    let resp = client
        .post(format!("{}/api/clientbundle", gw.base))
        .bearer_auth(token)
        .send()
        .expect("POST /api/clientbundle");
    assert_eq!(resp.status().as_u16(), 200, "bundle download failed");
    let disposition = resp
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        disposition.contains("ucp-bundle-analista.zip"),
        "Content-Disposition: {disposition}"
    );
    let zip = into.join("ucp-bundle-analista.zip");
    std::fs::write(&zip, resp.bytes().expect("bundle bytes")).expect("write zip");
    let out = Command::new("python3")
        .args(["-m", "zipfile", "-e"])
        .arg(&zip)
        .arg(into)
        .output()
        .expect("python3 -m zipfile");
    assert!(
        out.status.success(),
        "unzip: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in ["ca.pem", "cert.pem", "key.pem", "env.sh", "kube.yml"] {
        assert!(into.join(f).exists(), "the bundle lacks {f}");
    }
}

#[test]
fn tutorial_client_bundle_story() {
    let harness = Harness::new().expect("test harness");
    let image = TestImage::busybox_only().expect("busybox image");
    let gw = Gateway::start_with_agent();
    let node_id = gw.node_id();
    harness.sweep_label(format!("com.capstan.standalone.node={node_id}"));

    // Admin: the user, the role with all container operations, the grant on /.
    let user_id = gw.create_user("analista", PASSWORD);
    let (s, role) = gw.call(
        Method::POST,
        "/roles",
        Some(&gw.admin),
        Some(json!({"name": "containers-full-access", "operations": ["container.*"]})),
    );
    assert_eq!(s, 201, "create role: {role}");
    let role_id = role["id"].as_str().expect("role id").to_string();
    let grant = |role: &str| {
        let (s, b) = gw.call(
            Method::PUT,
            &format!("/collectionGrants/{user_id}/swarm/{role}"),
            Some(&gw.admin),
            None,
        );
        assert!(s == 200 || s == 201, "grant {role}: {s} {b}");
    };
    grant(&role_id);

    // analista: the bundle, then `source env.sh`.
    let token = gw.login("analista", PASSWORD).expect("analista logs in");
    let bundle = tempfile::tempdir().expect("bundle dir");
    let config = tempfile::tempdir().expect("docker config dir");
    download_bundle(&gw, &token, bundle.path());
    let b = bundle.path();
    let c = config.path();

    let version = ok(b, c, &["version", "--format", "{{json .Server}}"]);
    assert!(
        version.contains("\"Capstan\""),
        "no Capstan component in docker version: {version}"
    );

    let name = format!("tutorial-{}", std::process::id());
    let id = ok(
        b,
        c,
        &[
            "run",
            "-d",
            "--name",
            &name,
            image.tag(),
            "sh",
            "-c",
            "echo hello from analista; sleep 300",
        ],
    );
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64, "docker run -d printed {id:?}");
    let listed = ok(b, c, &["container", "ls", "--format", "{{.Names}}"]);
    assert!(
        listed.lines().any(|l| l.trim() == name),
        "container ls: {listed}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let logs = ok(b, c, &["logs", &name]);
        if logs.contains("hello from analista") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "docker logs never showed the output: {logs:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Container operations only: the nodes are not visible.
    let (refused, _, err) = bundle_docker(b, c, &["node", "ls"]);
    assert!(!refused, "docker node ls should be refused");
    assert!(err.contains("access denied"), "node ls refusal: {err}");

    ok(b, c, &["stop", "-t", "1", &name]);
    ok(b, c, &["rm", &name]);
    let listed = ok(b, c, &["container", "ls", "-a", "--format", "{{.Names}}"]);
    assert!(
        !listed.lines().any(|l| l.trim() == name),
        "removed container still listed: {listed}"
    );

    // Full Control on / (collection `swarm`): every node, leader marked.
    grant("fullcontrol");
    let deadline = Instant::now() + Duration::from_secs(10);
    let nodes = loop {
        let (ok, out, err) = bundle_docker(b, c, &["node", "ls"]);
        if ok {
            break out;
        }
        assert!(
            Instant::now() < deadline,
            "node ls still refused after the grant: {err}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(nodes.contains("Leader"), "docker node ls: {nodes}");
    assert!(
        nodes.contains(&node_id),
        "docker node ls lacks the node {node_id}: {nodes}"
    );
    assert!(
        nodes.contains(" * "),
        "docker node ls does not mark the node it talks to: {nodes}"
    );
}
