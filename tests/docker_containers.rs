//! Containers, images and volumes through the gateway's Docker API proxy,
//! driven with the stock `docker` CLI: the gateway routes each call to the
//! engine proxy of the node that has the object, and RBAC decides what each
//! user sees and does.
//!
//! Every test starts its own one-node cluster whose agent runs on this
//! machine's Docker engine (`Gateway::start_with_agent`); everything made
//! through the proxy carries `com.capstan.standalone.node=<node id>` and is
//! removed by the harness, and by name, even when a test fails.

#[path = "support/docker.rs"]
mod docker;
#[path = "support/gateway.rs"]
mod gateway;

use std::io::Cursor;
use std::process::Command;
use std::time::{Duration, Instant};

use capstan_testkit::{ContainerSpec, Harness, TestImage};
use docker::Docker;
use gateway::Gateway;
use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::{json, Value};

const PASSWORD: &str = "docker-password-1";

/// Removes containers and volumes by name from the local engine when
/// dropped (the harness also sweeps them by label).
#[derive(Default)]
struct Cleanup {
    containers: Vec<String>,
    volumes: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.containers.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f"])
                .args(&self.containers)
                .output();
        }
        if !self.volumes.is_empty() {
            let _ = Command::new("docker")
                .args(["volume", "rm", "-f"])
                .args(&self.volumes)
                .output();
        }
    }
}

/// One test's cluster, image and cleanup.
struct Setup {
    // Field order is drop order: names first, then the harness sweep,
    // then the cluster.
    cleanup: Cleanup,
    harness: Harness,
    image: TestImage,
    gw: Gateway,
    node_id: String,
    /// A suffix that makes this test's names unique on the shared engine.
    tag: String,
}

impl Setup {
    fn new() -> Setup {
        let harness = Harness::new().expect("test harness");
        let image = TestImage::busybox_only().expect("busybox image");
        let gw = Gateway::start_with_agent();
        let node_id = gw.node_id();
        harness.sweep_label(format!("com.capstan.standalone.node={node_id}"));
        let tag = node_id.chars().take(10).collect();
        let setup = Setup {
            cleanup: Cleanup::default(),
            harness,
            image,
            gw,
            node_id,
            tag,
        };
        setup.wait_for_engine();
        setup
    }

    fn admin(&self) -> Docker {
        Docker::with_token(&self.gw, &self.gw.admin)
    }

    /// A name unique to this test, removed at the end.
    fn container(&mut self, hint: &str) -> String {
        let name = format!("{hint}-{}", self.tag);
        self.cleanup.containers.push(name.clone());
        name
    }

    fn volume(&mut self, hint: &str) -> String {
        let name = format!("{hint}-{}", self.tag);
        self.cleanup.volumes.push(name.clone());
        name
    }

    /// Waits until the node's agent has reported its engine proxy: the
    /// proxy then lists the test image.
    fn wait_for_engine(&self) {
        let docker = self.admin();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = docker.run(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]);
            if r.ok && r.stdout.lines().any(|l| l.trim() == self.image.tag()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the node's engine never became reachable through the proxy: {} {}",
                r.stdout,
                r.stderr
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// A user with `PASSWORD`; their id and a CLI logged in as them.
    fn user(&self, name: &str) -> (String, Docker) {
        let id = self.gw.create_user(name, PASSWORD);
        let token = self.gw.login(name, PASSWORD).expect("login");
        (id, Docker::with_token(&self.gw, &token))
    }

    /// Grants a new custom role with `operations` to `user_id` on `/`.
    fn grant_on_root(&self, user_id: &str, role: &str, operations: &[&str]) {
        let (s, b) = self.gw.call(
            Method::POST,
            "/roles",
            Some(&self.gw.admin),
            Some(json!({"name": role, "operations": operations})),
        );
        assert_eq!(s, 201, "create role {role}: {b}");
        let role_id = b["id"].as_str().expect("role id");
        let (s, b) = self.gw.call(
            Method::PUT,
            &format!("/collectionGrants/{user_id}/swarm/{role_id}"),
            Some(&self.gw.admin),
            None,
        );
        assert!(s == 200 || s == 201, "grant {role}: {s} {b}");
    }
}

/// Polls `probe` until it returns true (30 s).
#[track_caller]
fn eventually(what: &str, mut probe: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !probe() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `docker` on this machine's engine directly, not through the proxy.
fn local_docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn names(listing: &str) -> Vec<String> {
    listing
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn admin_drives_containers_volumes_and_images_through_the_proxy() {
    let mut s = Setup::new();
    let docker = s.admin();
    let image = s.image.tag().to_string();
    let web = s.container("web");
    // A container on the same engine that is not the cluster's.
    let stranger = s
        .harness
        .run(ContainerSpec::new("stranger", &image).cmd(["sleep", "300"]))
        .expect("an unrelated container");

    let id = docker.ok(&[
        "run",
        "-d",
        "--name",
        &web,
        &image,
        "sh",
        "-c",
        "echo started; sleep 300",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "docker run -d printed {id:?}");

    let listed = names(&docker.ok(&["ps", "--format", "{{.Names}}"]));
    assert!(listed.contains(&web), "docker ps: {listed:?}");
    assert!(
        !listed.contains(&stranger.name),
        "an unrelated container is listed: {listed:?}"
    );
    let all = names(&docker.ok(&["ps", "-a", "--format", "{{.Names}}"]));
    assert!(
        !all.contains(&stranger.name),
        "docker ps -a lists a stranger: {all:?}"
    );
    // The classic-swarm node filter, by id and by an unknown name.
    let on_node = names(&docker.ok(&[
        "ps",
        "--filter",
        &format!("node={}", s.node_id),
        "--format",
        "{{.Names}}",
    ]));
    assert!(on_node.contains(&web), "node filter: {on_node:?}");
    let elsewhere = docker.ok(&[
        "ps",
        "--filter",
        "node=no-such-node",
        "--format",
        "{{.Names}}",
    ]);
    assert!(
        names(&elsewhere).is_empty(),
        "node filter for another node: {elsewhere}"
    );
    let bad = docker.fails(&["ps", "--filter", "colour=blue"]);
    assert!(bad.contains("colour"), "bad filter: {bad}");

    eventually("the container's log", || {
        docker.ok(&["logs", &web]).contains("started")
    });

    let labels: Value =
        serde_json::from_str(&docker.ok(&["inspect", "--format", "{{json .Config.Labels}}", &web]))
            .expect("labels are JSON");
    assert_eq!(
        labels["com.docker.ucp.access.label"], "/Shared/Private/admin",
        "{labels}"
    );
    assert_eq!(labels["com.docker.ucp.access.owner"], "admin", "{labels}");
    assert_eq!(
        labels["com.capstan.standalone.node"],
        s.node_id.as_str(),
        "{labels}"
    );
    assert!(
        labels.get("com.capstan.node.id").is_none(),
        "a standalone container must not look like a task: {labels}"
    );
    // Also by id prefix, and the container really is on this engine.
    let by_prefix = docker.ok(&["inspect", "--format", "{{.Name}}", &id[..12]]);
    assert_eq!(by_prefix.trim(), format!("/{web}"));
    assert_eq!(
        local_docker(&["inspect", "--format", "{{.Id}}", &web]).trim(),
        id
    );

    let top = docker.ok(&["top", &web]);
    assert!(top.contains("sleep"), "docker top: {top}");
    let stats = docker.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.MemUsage}}",
        &web,
    ]);
    assert!(stats.contains(&web), "docker stats: {stats}");
    assert_eq!(docker.ok(&["exec", &web, "echo", "hi"]), "hi\n");
    let exec_fails = docker.run(&["exec", &web, "sh", "-c", "exit 3"]);
    assert!(!exec_fails.ok, "an exec's exit code must come back");

    // Attached: attach (hijacked), wait, start; stdin too.
    assert_eq!(
        docker.ok(&["run", "--rm", &image, "echo", "hello"]),
        "hello\n"
    );
    let mut cat = docker.cmd();
    cat.args(["run", "--rm", "-i", &image, "cat"]);
    let out = run_with_stdin(cat, b"through stdin\n");
    assert_eq!(out, "through stdin\n");

    docker.ok(&["stop", "-t", "1", &web]);
    let state = || {
        docker
            .ok(&["inspect", "--format", "{{.State.Running}}", &web])
            .trim()
            .to_string()
    };
    assert_eq!(state(), "false");
    docker.ok(&["restart", "-t", "1", &web]);
    assert_eq!(state(), "true");
    docker.ok(&["kill", &web]);
    assert_eq!(docker.ok(&["wait", &web]).trim(), "137");
    docker.ok(&["rm", &web]);
    let after = names(&docker.ok(&["ps", "-a", "--format", "{{.Names}}"]));
    assert!(!after.contains(&web), "removed but listed: {after:?}");
    let gone = docker.fails(&["logs", &web]);
    assert!(gone.contains("No such container"), "{gone}");

    // Volumes.
    let vol = s.volume("data");
    assert_eq!(docker.ok(&["volume", "create", &vol]).trim(), vol);
    let vols = names(&docker.ok(&["volume", "ls", "--format", "{{.Name}}"]));
    assert!(vols.contains(&vol), "volume ls: {vols:?}");
    let vlabels: Value = serde_json::from_str(&docker.ok(&[
        "volume",
        "inspect",
        "--format",
        "{{json .Labels}}",
        &vol,
    ]))
    .expect("volume labels");
    assert_eq!(
        vlabels["com.capstan.standalone.node"],
        s.node_id.as_str(),
        "{vlabels}"
    );
    assert_eq!(
        vlabels["com.docker.ucp.access.label"], "/Shared/Private/admin",
        "{vlabels}"
    );
    docker.ok(&["volume", "rm", &vol]);
    let vols = names(&docker.ok(&["volume", "ls", "--format", "{{.Name}}"]));
    assert!(
        !vols.contains(&vol),
        "removed volume still listed: {vols:?}"
    );
    let missing = docker.fails(&["volume", "inspect", &vol]);
    assert!(missing.contains("no such volume"), "{missing}");

    // Images.
    let images = names(&docker.ok(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]));
    assert!(images.contains(&image), "image ls: {images:?}");
    let local_id = local_docker(&["image", "inspect", "--format", "{{.Id}}", &image]);
    assert_eq!(
        docker.ok(&["image", "inspect", "--format", "{{.Id}}", &image]),
        local_id
    );
    let no_image = docker.fails(&["image", "inspect", "capstan-test/none:missing"]);
    assert!(no_image.contains("No such image"), "{no_image}");
    // A pull runs on the node and its failure comes back named.
    let pull = docker.fails(&["pull", "127.0.0.1:1/capstan-none:1"]);
    assert!(
        pull.contains("node ") && pull.contains("127.0.0.1:1"),
        "docker pull: {pull}"
    );
}

/// Runs a command with `input` on its stdin; its stdout.
fn run_with_stdin(mut cmd: Command, input: &[u8]) -> String {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn grants_decide_which_containers_users_see_and_what_they_may_do() {
    let mut s = Setup::new();
    let image = s.image.tag().to_string();
    let admin = s.admin();
    let web = s.container("web");
    let theirs = s.container("ops");
    let plains = s.container("plain");
    admin.ok(&[
        "run",
        "-d",
        "--name",
        &web,
        &image,
        "sh",
        "-c",
        "echo admin-log; sleep 300",
    ]);

    // The tutorial's role: every container operation, granted on /.
    let (ops_id, ops) = s.user("ops");
    s.grant_on_root(&ops_id, "containers-full-access", &["container.*"]);
    let seen = names(&ops.ok(&["ps", "--format", "{{.Names}}"]));
    assert!(
        seen.contains(&web),
        "ops should see admin's container: {seen:?}"
    );
    eventually("admin's log, read by ops", || {
        ops.ok(&["logs", &web]).contains("admin-log")
    });
    ops.ok(&["run", "-d", "--name", &theirs, &image, "sleep", "300"]);
    let label = ops.ok(&[
        "inspect",
        "--format",
        "{{index .Config.Labels \"com.docker.ucp.access.label\"}}",
        &theirs,
    ]);
    assert_eq!(label.trim(), "/Shared/Private/ops");

    // Only view on /: sees, may not stop.
    let (watcher_id, watcher) = s.user("watcher");
    s.grant_on_root(&watcher_id, "containers-view", &["container.view"]);
    assert!(names(&watcher.ok(&["ps", "--format", "{{.Names}}"])).contains(&web));
    let denied = watcher.fails(&["stop", &web]);
    assert!(
        denied.contains("access denied") && denied.contains("container.stop"),
        "{denied}"
    );

    // No grants beyond the defaults: sees none of the others' containers.
    let (_, plain) = s.user("plain");
    let seen = names(&plain.ok(&["ps", "-a", "--format", "{{.Names}}"]));
    assert!(
        !seen.contains(&web) && !seen.contains(&theirs),
        "plain sees others' containers: {seen:?}"
    );
    let hidden = plain.fails(&["logs", &web]);
    assert!(hidden.contains("No such container"), "{hidden}");
    let hidden = plain.fails(&["stop", &web]);
    assert!(hidden.contains("No such container"), "{hidden}");
    // `rm -f` hides "No such container" in the CLI: the container must
    // still be there.
    plain.run(&["rm", "-f", &web]);
    assert!(names(&admin.ok(&["ps", "--format", "{{.Names}}"])).contains(&web));
    let refused = plain.fails(&["run", "-d", "--privileged", &image, "sleep", "300"]);
    assert!(
        refused.contains("access denied") && refused.contains("container.create.privileged"),
        "{refused}"
    );
    let refused = plain.fails(&["pull", "127.0.0.1:1/capstan-none:1"]);
    assert!(refused.contains("image.create"), "{refused}");
    let refused = plain.fails(&["run", "-d", "-v", "/etc:/host-etc", &image, "sleep", "300"]);
    assert!(
        refused.contains("container.create.host-bind-mounts"),
        "{refused}"
    );
    // Their own private collection is theirs to use.
    plain.ok(&["run", "-d", "--name", &plains, &image, "sleep", "300"]);
    assert_eq!(
        names(&plain.ok(&["ps", "--format", "{{.Names}}"])),
        vec![plains.clone()]
    );
    assert!(names(&admin.ok(&["ps", "--format", "{{.Names}}"])).contains(&plains));
    plain.ok(&["rm", "-f", &plains]);

    // The denials are in the audit log.
    let audit = s.gw.audit();
    assert!(
        audit
            .iter()
            .any(|e| e["operation"] == "container.create.privileged" && e["decision"] == "deny"),
        "no audited denial of container.create.privileged"
    );
    admin.ok(&["rm", "-f", &web, &theirs]);
}

/// An HTTPS client trusting the cluster CA, presenting `identity` if given.
fn https(gw: &Gateway, identity: Option<reqwest::Identity>) -> Client {
    let ca = std::fs::read(gw.data_dir().join("pki/ca.crt")).expect("cluster CA");
    let mut b = Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA PEM"))
        // The engine proxy presents the node certificate, whose fixed name
        // is the role's.
        .resolve(
            "capstan-manager",
            std::net::SocketAddr::from(([127, 0, 0, 1], gw.engine_proxy_port)),
        )
        .timeout(Duration::from_secs(10));
    if let Some(id) = identity {
        b = b.identity(id);
    }
    b.build().expect("HTTPS client")
}

/// A client bundle of `token`'s user: its certificate and key as one PEM.
fn bundle_identity(gw: &Gateway, token: &str) -> reqwest::Identity {
    let resp = https(gw, None)
        .post(format!("{}/api/clientbundle", gw.base))
        .bearer_auth(token)
        .send()
        .expect("bundle request");
    assert_eq!(resp.status().as_u16(), 200, "client bundle");
    let bytes = resp.bytes().expect("bundle body");
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes.to_vec())).expect("zip");
    let mut read = |name: &str| {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut zip.by_name(name).expect(name), &mut text).expect(name);
        text
    };
    let pem = format!("{}{}", read("cert.pem"), read("key.pem"));
    reqwest::Identity::from_pem(pem.as_bytes()).expect("bundle identity")
}

#[test]
fn bad_input_unknown_objects_and_strangers_at_the_engine_proxy_are_refused() {
    let s = Setup::new();
    let gw = &s.gw;
    let client = https(gw, None);
    let ask = |method: Method, path: &str, body: &str| {
        let started = Instant::now();
        let resp = client
            .request(method, format!("{}{path}", gw.base))
            .bearer_auth(&gw.admin)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .expect("request");
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body: Value = resp.json().unwrap_or(Value::Null);
        (status, ct, body, started.elapsed())
    };
    let cases: [(Method, &str, &str, u16, &str); 6] = [
        (
            Method::POST,
            "/v1.41/containers/create",
            "{\"Image\": ",
            400,
            "not valid JSON",
        ),
        (
            Method::POST,
            "/v1.41/containers/create",
            "{\"Cmd\": [\"sh\"]}",
            400,
            "no Image",
        ),
        (
            Method::POST,
            "/v1.41/containers/create?name=bad%20name",
            "{\"Image\": \"x\"}",
            400,
            "Invalid container name",
        ),
        (
            Method::POST,
            "/v1.41/containers/create",
            "{\"Image\": \"x\", \"Labels\": {\"com.capstan.node.id\": \"1\"}}",
            400,
            "reserved",
        ),
        (
            Method::GET,
            "/v1.41/containers/no-such-container-x/json",
            "",
            404,
            "No such container: no-such-container-x",
        ),
        (Method::POST, "/v1.41/build", "", 404, "not supported"),
    ];
    for (method, path, body, status, message) in cases {
        let (got, ct, answer, took) = ask(method.clone(), path, body);
        assert_eq!(got, status, "{method} {path}: {answer}");
        assert_eq!(ct, "application/json", "{method} {path}: content type");
        let text = answer["message"].as_str().unwrap_or_default();
        assert!(text.contains(message), "{method} {path}: {answer}");
        assert!(
            took < Duration::from_secs(5),
            "{method} {path} took {took:?}"
        );
    }

    // Classic swarm's node constraint: an unknown node is named.
    let admin = s.admin();
    let pinned = admin.fails(&[
        "run",
        "-d",
        "-e",
        "constraint:node==no-such-node",
        s.image.tag(),
        "true",
    ]);
    assert!(pinned.contains("no-such-node"), "{pinned}");

    // The engine proxy: the manager's node certificate gets through ...
    let data = gw.data_dir();
    let pem = format!(
        "{}{}",
        std::fs::read_to_string(data.join("pki/node.crt")).expect("node cert"),
        std::fs::read_to_string(data.join("pki/node.key")).expect("node key")
    );
    let url = format!("https://capstan-manager:{}/_ping", gw.engine_proxy_port);
    let manager = https(
        gw,
        Some(reqwest::Identity::from_pem(pem.as_bytes()).expect("node identity")),
    );
    let pong = manager
        .get(&url)
        .send()
        .expect("the manager reaches the engine");
    assert_eq!(pong.status().as_u16(), 200);
    assert_eq!(pong.text().expect("body"), "OK");
    // ... no certificate, or a user's, does not.
    assert!(
        https(gw, None).get(&url).send().is_err(),
        "no client certificate must be refused"
    );
    let user = https(gw, Some(bundle_identity(gw, &gw.admin)));
    assert!(
        user.get(&url).send().is_err(),
        "a client bundle must be refused at the engine proxy"
    );
}
