//! The swarm half of the Docker API proxy, end to end with the stock
//! `docker` CLI against a one-node cluster whose agent runs tasks on this
//! machine's engine: services, tasks, nodes, secrets, configs, networks and
//! stacks as the admin; the same commands for a user whose grants allow
//! only part of it; and bad input through raw HTTPS.

#[path = "support/docker.rs"]
mod docker;
#[path = "support/gateway.rs"]
mod gateway;

use std::cell::RefCell;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine as _;
use capstan_testkit::{Harness, TestImage};
use docker::Docker;
use gateway::Gateway;
use reqwest::Method;
use serde_json::{json, Value};

/// Polls `probe` until it answers, or fails the test naming `what` and the
/// last thing it saw.
fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(v) => return v,
            Err(last) if Instant::now() > deadline => {
                panic!("{what} did not happen within {timeout:?}; last: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// A node with its agent, the workload image, and the harness that removes
/// the containers the agent started (labelled with the node id) even when
/// the test fails. Fields drop in order: the manager stops before the sweep.
struct Cluster {
    gw: Gateway,
    image: TestImage,
    _harness: Harness,
}

impl Cluster {
    fn start() -> Cluster {
        let harness = Harness::new().expect("test harness");
        let image = TestImage::busybox_only().expect("busybox image");
        let gw = Gateway::start_with_agent();
        harness.sweep_label(format!("com.capstan.node.id={}", gw.node_id()));
        Cluster {
            gw,
            image,
            _harness: harness,
        }
    }

    fn admin(&self) -> Docker {
        Docker::with_token(&self.gw, &self.gw.admin)
    }
}

/// Removes the services it was told about when dropped, so that a failed
/// test leaves no service behind (the harness then sweeps the containers).
struct ServiceGuard<'a> {
    docker: &'a Docker,
    names: RefCell<Vec<String>>,
}

impl<'a> ServiceGuard<'a> {
    fn new(docker: &'a Docker) -> Self {
        ServiceGuard {
            docker,
            names: RefCell::new(Vec::new()),
        }
    }

    fn track(&self, name: &str) {
        self.names.borrow_mut().push(name.to_string());
    }
}

impl Drop for ServiceGuard<'_> {
    fn drop(&mut self) {
        for name in self.names.borrow().iter() {
            let _ = self.docker.run(&["service", "rm", name]);
        }
    }
}

fn inspect(d: &Docker, args: &[&str]) -> Value {
    let out = d.ok(args);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"));
    v[0].clone()
}

fn replicas(d: &Docker, service: &str) -> String {
    d.ok(&[
        "service",
        "ls",
        "--filter",
        &format!("name={service}"),
        "--format",
        "{{.Name}} {{.Replicas}}",
    ])
    .lines()
    .find_map(|l| l.strip_prefix(&format!("{service} ")).map(str::to_string))
    .unwrap_or_default()
}

fn wait_replicas(d: &Docker, service: &str, want: &str) {
    wait_for(
        &format!("service {service} at {want}"),
        Duration::from_secs(90),
        || {
            let got = replicas(d, service);
            if got == want {
                Ok(())
            } else {
                Err(got)
            }
        },
    );
}

/// Containers of this node's agent still on the engine for `service`.
fn agent_containers(node: &str, service: &str) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args(["ps", "-a", "--format", "{{.Names}}"])
        .args(["--filter", &format!("label=com.capstan.node.id={node}")])
        .args([
            "--filter",
            &format!("label=com.docker.swarm.service.name={service}"),
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn is_rfc3339(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
    })
}

/// `docker <args>` with `input` on stdin.
fn run_with_stdin(d: &Docker, args: &[&str], input: &str) -> docker::Run {
    let mut child = d
        .cmd()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn docker");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("docker exits").into()
}

/// [`run_with_stdin`], which must succeed; returns stdout.
fn ok_with_stdin(d: &Docker, args: &[&str], input: &str) -> String {
    let r = run_with_stdin(d, args, input);
    assert!(r.ok, "docker {} failed: {}", args.join(" "), r.stderr);
    r.stdout
}

#[test]
fn admin_runs_updates_scales_rolls_back_and_removes_a_service() {
    let c = Cluster::start();
    let d = c.admin();
    let guard = ServiceGuard::new(&d);
    guard.track("web");
    let img = c.image.tag();

    d.ok(&[
        "service",
        "create",
        "--name",
        "web",
        "--replicas",
        "2",
        // busybox as PID 1 ignores SIGTERM, and short monitor periods keep
        // the CLI's convergence waits short.
        "--stop-grace-period",
        "1s",
        "--update-monitor",
        "1s",
        "--rollback-monitor",
        "1s",
        img,
        "sh",
        "-c",
        "echo hello; sleep 300",
    ]);
    wait_replicas(&d, "web", "2/2");
    let ps = d.ok(&[
        "service",
        "ps",
        "web",
        "--format",
        "{{.Name}} {{.DesiredState}} {{.CurrentState}}",
    ]);
    let running: Vec<&str> = ps
        .lines()
        .filter(|l| l.contains("Running Running"))
        .collect();
    assert_eq!(running.len(), 2, "service ps web:\n{ps}");
    assert!(
        running.iter().any(|l| l.starts_with("web.1 "))
            && running.iter().any(|l| l.starts_with("web.2 ")),
        "{ps}"
    );

    let s = inspect(&d, &["service", "inspect", "web"]);
    let id = s["ID"].as_str().expect("ID").to_string();
    assert_eq!(s["Spec"]["Name"], "web");
    assert_eq!(s["Spec"]["Mode"]["Replicated"]["Replicas"], 2);
    assert_eq!(s["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"], img);
    assert_eq!(
        s["Spec"]["TaskTemplate"]["ContainerSpec"]["Args"],
        json!(["sh", "-c", "echo hello; sleep 300"])
    );
    assert_eq!(
        s["Spec"]["Labels"]["com.docker.ucp.access.label"],
        "/Shared/Private/admin"
    );
    assert_eq!(s["Spec"]["EndpointSpec"]["Mode"], "vip");
    assert_eq!(s["Spec"]["TaskTemplate"]["ForceUpdate"], 0);
    assert_eq!(
        s["Spec"]["UpdateConfig"]["Monitor"], 1_000_000_000u64,
        "{s}"
    );
    assert_eq!(
        s["Spec"]["RollbackConfig"]["Monitor"], 1_000_000_000u64,
        "{s}"
    );
    assert_eq!(
        s["Spec"]["TaskTemplate"]["RestartPolicy"]["Condition"], "any",
        "the CLI inspects with the defaults inserted: {s}"
    );
    assert!(s["Version"]["Index"].as_u64().is_some_and(|v| v > 0), "{s}");
    assert!(
        is_rfc3339(&s["CreatedAt"]) && is_rfc3339(&s["UpdatedAt"]),
        "{s}"
    );
    assert!(
        s.get("PreviousSpec").is_none(),
        "a new service has no previous spec: {s}"
    );

    d.ok(&["service", "update", "--env-add", "A=1", "web"]);
    let s = inspect(&d, &["service", "inspect", "web"]);
    assert_eq!(
        s["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"],
        json!(["A=1"]),
        "{s}"
    );
    assert!(
        s["PreviousSpec"]["TaskTemplate"]["ContainerSpec"]
            .get("Env")
            .is_none(),
        "{s}"
    );

    d.ok(&["service", "update", "--force", "web"]);
    let s = inspect(&d, &["service", "inspect", "web"]);
    assert_eq!(s["Spec"]["TaskTemplate"]["ForceUpdate"], 1, "{s}");

    d.ok(&["service", "scale", "web=3"]);
    wait_replicas(&d, "web", "3/3");

    d.ok(&["service", "rollback", "web"]);
    let s = inspect(&d, &["service", "inspect", "web"]);
    assert_eq!(
        s["Spec"]["Mode"]["Replicated"]["Replicas"], 2,
        "rollback returns to 2 replicas: {s}"
    );
    assert_eq!(s["UpdateStatus"]["State"], "rollback_completed", "{s}");
    wait_replicas(&d, "web", "2/2");

    let logs = wait_for("hello in service logs", Duration::from_secs(30), || {
        let r = d.run(&["service", "logs", "web"]);
        let hello = r
            .stdout
            .lines()
            .any(|l| l.starts_with("web.") && l.contains("| hello"));
        if r.ok && hello {
            Ok(r.stdout)
        } else {
            Err(format!("{}{}", r.stdout, r.stderr))
        }
    });
    assert!(
        logs.lines().all(|l| l.contains("@")),
        "each line names its task and node: {logs}"
    );

    d.ok(&["service", "rm", "web"]);
    assert_eq!(d.ok(&["service", "ls", "-q"]).trim(), "");
    let err = d.fails(&["service", "inspect", "web"]);
    assert!(
        err.contains("no such service") || err.contains("not found"),
        "{err}"
    );
    let node = c.gw.node_id();
    wait_for(
        "the containers of web to go",
        Duration::from_secs(60),
        || {
            let left = agent_containers(&node, "web");
            if left.is_empty() {
                Ok(())
            } else {
                Err(left.join(", "))
            }
        },
    );
    assert!(!id.is_empty());
}

#[test]
fn admin_manages_secrets_configs_networks_and_nodes() {
    let c = Cluster::start();
    let d = c.admin();
    let suffix = std::process::id();
    let net = format!("net-{suffix}");

    // Secrets: from stdin; data never comes back.
    let sid = ok_with_stdin(&d, &["secret", "create", "s", "-"], "s3cret\n");
    let sid = sid.trim();
    assert_eq!(sid.len(), 25, "secret id {sid:?}");
    let ls = d.ok(&["secret", "ls", "--format", "{{.ID}} {{.Name}}"]);
    assert!(ls.lines().any(|l| l == format!("{sid} s")), "{ls}");
    let s = inspect(&d, &["secret", "inspect", "s"]);
    assert_eq!((&s["ID"], &s["Spec"]["Name"]), (&json!(sid), &json!("s")));
    assert!(
        s["Spec"].get("Data").is_none(),
        "secret data must never be returned: {s}"
    );
    assert!(is_rfc3339(&s["CreatedAt"]), "{s}");
    let again = run_with_stdin(&d, &["secret", "create", "s", "-"], "other\n");
    assert!(
        !again.ok && again.stderr.contains("secret s already exists"),
        "{again:?}"
    );

    // Configs: data is shown.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("conf.txt");
    std::fs::write(&file, "confdata\n").expect("config file");
    d.ok(&[
        "config",
        "create",
        "--label",
        "k=v",
        "c",
        file.to_str().expect("path"),
    ]);
    let cfg = inspect(&d, &["config", "inspect", "c"]);
    let data = base64::engine::general_purpose::STANDARD
        .decode(cfg["Spec"]["Data"].as_str().expect("Data"))
        .expect("base64");
    assert_eq!(data, b"confdata\n");
    assert_eq!(cfg["Spec"]["Labels"]["k"], "v");
    let ls = d.ok(&[
        "config",
        "ls",
        "--filter",
        "label=k=v",
        "--format",
        "{{.Name}}",
    ]);
    assert_eq!(ls.trim(), "c");

    // Networks.
    d.ok(&["network", "create", "-d", "overlay", "--label", "n=1", &net]);
    let ls = d.ok(&[
        "network",
        "ls",
        "--format",
        "{{.Name}} {{.Driver}} {{.Scope}}",
    ]);
    assert!(
        ls.lines().any(|l| l == format!("{net} overlay swarm")),
        "{ls}"
    );
    let n = inspect(&d, &["network", "inspect", &net]);
    assert_eq!(
        (&n["Scope"], &n["Driver"], &n["Labels"]["n"]),
        (&json!("swarm"), &json!("overlay"), &json!("1"))
    );
    assert_eq!(n["IPAM"]["Driver"], "default");

    d.ok(&["secret", "rm", "s"]);
    d.ok(&["config", "rm", "c"]);
    d.ok(&["network", "rm", &net]);
    assert_eq!(d.ok(&["secret", "ls", "-q"]).trim(), "");
    assert_eq!(d.ok(&["config", "ls", "-q"]).trim(), "");
    assert!(!d.ok(&["network", "ls"]).contains(&net));
    let err = d.fails(&["secret", "inspect", "s"]);
    assert!(err.contains("secret s not found"), "{err}");

    // Nodes: one, the leader, marked as the one the CLI talks to.
    let node = c.gw.node_id();
    let ls = d.ok(&["node", "ls"]);
    let rows: Vec<&str> = ls.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{ls}");
    assert!(rows[0].starts_with(&format!("{node} *")), "{ls}");
    assert!(
        rows[0].contains("Leader") && rows[0].contains("Ready") && rows[0].contains("Active"),
        "{ls}"
    );
    let me = inspect(&d, &["node", "inspect", "self"]);
    assert_eq!(me["ID"], json!(node));
    assert!(
        me["Description"]["Hostname"]
            .as_str()
            .is_some_and(|h| !h.is_empty()),
        "{me}"
    );
    assert_eq!(
        (&me["Spec"]["Role"], &me["ManagerStatus"]["Leader"]),
        (&json!("manager"), &json!(true))
    );
    d.ok(&["node", "update", "--label-add", "a=b", &node]);
    let me = inspect(&d, &["node", "inspect", &node]);
    assert_eq!(me["Spec"]["Labels"]["a"], "b", "{me}");
    let err = d.fails(&["node", "inspect", "nosuchnode"]);
    assert!(err.contains("node nosuchnode not found"), "{err}");

    // `docker swarm join-token` reads the cluster's join tokens.
    for role in ["worker", "manager"] {
        let token = d.ok(&["swarm", "join-token", "-q", role]);
        assert!(token.trim().starts_with("CAPTKN-1-"), "{role}: {token}");
    }
    let worker = d.ok(&["swarm", "join-token", "-q", "worker"]);
    let manager = d.ok(&["swarm", "join-token", "-q", "manager"]);
    assert_ne!(worker, manager);
}

const COMPOSE: &str = r#"
version: "3.8"
services:
  web:
    image: IMAGE
    command: ["sh", "-c", "echo hi from web; sleep 300"]
    stop_grace_period: 1s
    networks: [front]
    secrets: [sec]
    configs:
      - source: conf
        target: /etc/conf.txt
    deploy:
      replicas: 2
  db:
    image: IMAGE
    command: ["sleep", "300"]
    stop_grace_period: 1s
    networks: [front]
networks:
  front:
    driver: overlay
secrets:
  sec:
    file: ./secret.txt
configs:
  conf:
    file: ./conf.txt
"#;

#[test]
fn admin_deploys_lists_and_removes_a_stack() {
    let c = Cluster::start();
    let d = c.admin();
    // Stack networks become local bridges of the same name on the engine:
    // a stack name of this run keeps them apart from other tests'.
    let stack = format!("s{}", std::process::id());
    let guard = ServiceGuard::new(&d);
    guard.track(&format!("{stack}_web"));
    guard.track(&format!("{stack}_db"));
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("compose.yml"),
        COMPOSE.replace("IMAGE", c.image.tag()),
    )
    .expect("compose");
    std::fs::write(dir.path().join("secret.txt"), "s3cret\n").expect("secret");
    std::fs::write(dir.path().join("conf.txt"), "conf\n").expect("config");
    let compose = dir.path().join("compose.yml");
    let compose = compose.to_str().expect("path");

    let out = d.ok(&["stack", "deploy", "-c", compose, &stack]);
    assert!(
        out.contains(&format!("Creating service {stack}_web")),
        "{out}"
    );
    let ls = d.ok(&["stack", "ls", "--format", "{{.Name}} {{.Services}}"]);
    assert!(
        ls.lines().any(|l| l == format!("{stack} 2")),
        "stack ls: {ls}"
    );
    wait_for(
        "both stack services at full strength",
        Duration::from_secs(90),
        || {
            let s = d.ok(&[
                "stack",
                "services",
                &stack,
                "--format",
                "{{.Name}} {{.Replicas}}",
            ]);
            let mut lines: Vec<&str> = s.lines().collect();
            lines.sort_unstable();
            if lines == [format!("{stack}_db 1/1"), format!("{stack}_web 2/2")] {
                Ok(())
            } else {
                Err(s)
            }
        },
    );
    let ps = d.ok(&[
        "stack",
        "ps",
        &stack,
        "--format",
        "{{.Name}} {{.CurrentState}}",
    ]);
    assert_eq!(
        ps.lines().filter(|l| l.contains("Running")).count(),
        3,
        "stack ps: {ps}"
    );
    let web = inspect(&d, &["service", "inspect", &format!("{stack}_web")]);
    let cs = &web["Spec"]["TaskTemplate"]["ContainerSpec"];
    assert_eq!(
        cs["Secrets"][0]["SecretName"],
        json!(format!("{stack}_sec")),
        "{web}"
    );
    assert_eq!(cs["Configs"][0]["File"]["Name"], "/etc/conf.txt", "{web}");
    assert_eq!(
        web["Spec"]["TaskTemplate"]["Networks"][0]["Aliases"],
        json!(["web"]),
        "{web}"
    );

    // A second deploy updates in place.
    let out = d.ok(&["stack", "deploy", "-c", compose, &stack]);
    assert!(
        out.contains(&format!("Updating service {stack}_web")),
        "{out}"
    );

    let out = d.ok(&["stack", "rm", &stack]);
    assert!(
        out.contains(&format!("Removing network {stack}_front")),
        "{out}"
    );
    let label = format!("label=com.docker.stack.namespace={stack}");
    for kind in ["service", "secret", "config", "network"] {
        let left = d.ok(&[kind, "ls", "-q", "--filter", &label]);
        assert_eq!(left.trim(), "", "{kind}s of the stack are left: {left}");
    }
    assert!(!d.ok(&["stack", "ls"]).contains(&stack));
}

#[test]
fn a_user_with_narrow_grants_sees_and_does_only_what_they_may() {
    let c = Cluster::start();
    let gw = &c.gw;
    let admin = c.admin();
    let guard = ServiceGuard::new(&admin);
    guard.track("adminsvc");
    guard.track("bobsvc");
    let img = c.image.tag();

    let bob = gw.create_user("bob", "bob-password-1");
    let (s, role) = gw.call(
        Method::POST,
        "/roles",
        Some(&gw.admin),
        Some(json!({"name": "service-deployer", "operations": [
            "service.view", "service.create", "service.view-tasks", "service.delete", "network.view"
        ]})),
    );
    assert_eq!(s, 201, "create role: {role}");
    let role = role["id"].as_str().expect("role id");
    // Only this role: not the default grants every new user gets.
    for default in ["private-bob/restrictedcontrol", "shared/scheduler"] {
        let (s, b) = gw.call(
            Method::DELETE,
            &format!("/collectionGrants/{bob}/{default}"),
            Some(&gw.admin),
            None,
        );
        assert!(s == 200 || s == 204, "revoke {default}: {s} {b}");
    }
    let (s, b) = gw.call(
        Method::PUT,
        &format!("/collectionGrants/{bob}/private-bob/{role}"),
        Some(&gw.admin),
        None,
    );
    assert!(s == 200 || s == 201, "grant: {s} {b}");
    let token = gw.login("bob", "bob-password-1").expect("bob logs in");
    let b = Docker::with_token(gw, &token);

    admin.ok(&[
        "service", "create", "-d", "--name", "adminsvc", img, "sleep", "300",
    ]);
    b.ok(&[
        "service", "create", "-d", "--name", "bobsvc", img, "sleep", "300",
    ]);
    let s = inspect(&admin, &["service", "inspect", "bobsvc"]);
    assert_eq!(
        s["Spec"]["Labels"]["com.docker.ucp.access.label"], "/Shared/Private/bob",
        "{s}"
    );

    assert_eq!(
        b.ok(&["service", "ls", "--format", "{{.Name}}"]).trim(),
        "bobsvc"
    );
    let all = admin.ok(&["service", "ls", "--format", "{{.Name}}"]);
    assert!(all.contains("adminsvc") && all.contains("bobsvc"), "{all}");
    wait_for("bob sees his task", Duration::from_secs(60), || {
        let ps = b.ok(&[
            "service",
            "ps",
            "bobsvc",
            "--format",
            "{{.Name}} {{.CurrentState}}",
        ]);
        if ps.starts_with("bobsvc.1 Running") {
            Ok(())
        } else {
            Err(ps)
        }
    });

    let err = b.fails(&["service", "rm", "adminsvc"]);
    assert!(err.contains("service adminsvc not found"), "{err}");
    let err = b.fails(&["service", "inspect", "adminsvc"]);
    assert!(err.contains("adminsvc"), "{err}");
    let err = b.fails(&["node", "ls"]);
    assert!(err.contains("access denied"), "{err}");
    let err = b.fails(&["swarm", "join-token", "worker"]);
    assert!(err.contains("access denied"), "{err}");
    let secret = tempfile::NamedTempFile::new().expect("secret file");
    std::fs::write(secret.path(), "s3cret").expect("write secret");
    let err = b.fails(&[
        "secret",
        "create",
        "s",
        secret.path().to_str().expect("path"),
    ]);
    assert!(
        err.contains("access denied") && err.contains("secret.create"),
        "{err}"
    );
    let err = b.fails(&["service", "update", "--env-add", "X=1", "bobsvc"]);
    assert!(
        err.contains("access denied") && err.contains("service.update"),
        "{err}"
    );

    b.ok(&["service", "rm", "bobsvc"]);
    admin.ok(&["service", "rm", "adminsvc"]);
    assert_eq!(admin.ok(&["service", "ls", "-q"]).trim(), "");
}

/// An HTTPS client of the gateway with the admin's token.
struct Raw {
    client: reqwest::blocking::Client,
    base: String,
    token: String,
}

impl Raw {
    fn new(gw: &Gateway) -> Raw {
        let ca = std::fs::read(gw.data_dir().join("pki/ca.crt")).expect("CA");
        let client = reqwest::blocking::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA PEM"))
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Raw {
            client,
            base: gw.base.clone(),
            token: gw.admin.clone(),
        }
    }

    /// Status, exact Content-Type and JSON body.
    fn send(&self, method: Method, path: &str, body: Option<&str>) -> (u16, String, Value) {
        let mut req = self
            .client
            .request(method, format!("{}/v1.41{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().expect("request");
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let text = resp.text().expect("body");
        (
            status,
            ct,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A refused request: its status, `{"message"}` with exactly
    /// `application/json`, and the message containing `wanted`.
    fn refused(&self, method: Method, path: &str, body: Option<&str>, status: u16, wanted: &str) {
        let (s, ct, b) = self.send(method.clone(), path, body);
        assert_eq!(s, status, "{method} {path}: {b}");
        assert_eq!(ct, "application/json", "{method} {path}");
        let message = b["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}: no message in {b}"));
        assert!(
            message.contains(wanted),
            "{method} {path}: {message:?} lacks {wanted:?}"
        );
    }
}

/// Requests that must be refused: method, path (after `/v1.41`), body,
/// status, and what the message must contain.
type Refusal<'a> = (Method, String, Option<&'a str>, u16, &'a str);

#[rustfmt::skip]
fn refusals(id: &str, version: u64) -> Vec<Refusal<'static>> {
    use Method as M;
    let s = |p: &str| p.to_string();
    vec![
        (M::POST, s("/services/create"), Some("{bad"), 400, "invalid service spec"),
        (M::POST, s("/services/create"), Some(r#"{"Name":"x","TaskTemplate":{"ContainerSpec":{}}}"#), 400, "Spec.TaskTemplate.ContainerSpec.Image: required"),
        (M::POST, s("/services/create"), Some(r#"{"Name":"x","TaskTemplate":{"ContainerSpec":{"Image":"b","Env":"A=1"}}}"#), 400, "Spec.TaskTemplate.ContainerSpec.Env"),
        (M::POST, s("/services/create"), Some(r#"{"Name":"x","TaskTemplate":{"ContainerSpec":{"Image":"b"}},"Mode":{"GlobalJob":{}}}"#), 400, "Spec.Mode"),
        (M::POST, s("/services/create"), Some(r#"{"Name":"x","TaskTemplate":{"ContainerSpec":{"Image":"b"}},"EndpointSpec":{"Ports":[{"TargetPort":80,"Protocol":"sctp"}]}}"#), 400, "Spec.EndpointSpec.Ports[0].Protocol"),
        (M::POST, s("/services/create"), Some(r#"{"Name":"ok","TaskTemplate":{"ContainerSpec":{"Image":"b"}}}"#), 409, "already exists"),
        (M::POST, format!("/services/{id}/update?version={}", version - 1), Some(r#"{"Name":"ok","TaskTemplate":{"ContainerSpec":{"Image":"b"}}}"#), 409, "update out of sequence"),
        (M::POST, format!("/services/{id}/update"), Some(r#"{"Name":"ok","TaskTemplate":{"ContainerSpec":{"Image":"b"}}}"#), 400, "invalid service version"),
        (M::POST, format!("/services/{id}/update?version={version}"), Some(r#"{"Name":"renamed","TaskTemplate":{"ContainerSpec":{"Image":"b"}}}"#), 400, "Spec.Name"),
        (M::POST, format!("/services/{id}/update?version={version}&rollback=previous"), Some("{}"), 409, "no previous spec"),
        (M::GET, s("/services/nosuch"), None, 404, "service nosuch not found"),
        (M::DELETE, s("/services/nosuch"), None, 404, "service nosuch not found"),
        (M::GET, s("/services?filters=%7Bbad"), None, 400, "invalid filters"),
        (M::GET, s("/services?filters=%7B%22foo%22%3A%5B%22x%22%5D%7D"), None, 400, "invalid filter 'foo'"),
        (M::GET, s("/services?status=maybe"), None, 400, "status"),
        (M::GET, format!("/services/{id}/logs"), None, 400, "at least one stream"),
        (M::GET, s("/tasks?filters=%7B%22desired-state%22%3A%5B%22dancing%22%5D%7D"), None, 400, "desired-state"),
        (M::GET, s("/tasks/nosuch"), None, 404, "task nosuch not found"),
        (M::GET, s("/nodes/nosuch"), None, 404, "node nosuch not found"),
        (M::GET, s("/secrets/nosuch"), None, 404, "secret nosuch not found"),
        (M::GET, s("/configs/nosuch"), None, 404, "config nosuch not found"),
        (M::GET, s("/networks/nosuch"), None, 404, "network nosuch not found"),
        (M::POST, s("/secrets/create"), Some(r#"{"Name":"s","Data":"%%%"}"#), 400, "Data: not valid base64"),
        (M::POST, s("/configs/create"), Some(r#"{"Name":"c","Data":"eA==","Templating":{"Name":"golang"}}"#), 400, "Templating"),
        (M::POST, s("/networks/create"), Some(r#"{"Name":"n","Internal":true}"#), 400, "Internal"),
        (M::POST, s("/networks/create"), Some(r#"{"Driver":"overlay"}"#), 400, "Name: required"),
    ]
}

#[test]
fn bad_input_gets_a_docker_error_naming_the_problem() {
    let gw = Gateway::start();
    let raw = Raw::new(&gw);

    // A service to refer to (no agent: its tasks stay pending).
    let spec = json!({"Name": "ok", "TaskTemplate": {"ContainerSpec": {"Image": "b"}},
        "EndpointSpec": {"Ports": [{"TargetPort": 80, "PublishMode": "ingress"}]}});
    let (s, _, created) = raw.send(Method::POST, "/services/create", Some(&spec.to_string()));
    assert_eq!(s, 201, "{created}");
    let id = created["ID"].as_str().expect("ID").to_string();
    let warnings = created["Warnings"].to_string();
    assert!(
        warnings.contains("host mode"),
        "ingress must be reported as host mode: {warnings}"
    );
    let (s, _, svc) = raw.send(Method::GET, &format!("/services/{id}"), None);
    assert_eq!(s, 200, "{svc}");
    assert_eq!(
        svc["Spec"]["EndpointSpec"]["Ports"][0]["PublishMode"], "host",
        "{svc}"
    );
    let version = svc["Version"]["Index"].as_u64().expect("version");

    for (method, path, body, status, wanted) in refusals(&id, version) {
        raw.refused(method, &path, body, status, wanted);
    }

    // API versions outside 1.24 to 1.41, in the engine's words, and the
    // stock CLI told to speak a newer one prints that message.
    for (path, wanted) in [
        (
            "/v1.99/version",
            "client version 1.99 is too new. Maximum supported API version is 1.41",
        ),
        (
            "/v1.12/info",
            "client version 1.12 is too old. Minimum supported API version is 1.24",
        ),
    ] {
        let resp = raw
            .client
            .get(format!("{}{path}", raw.base))
            .bearer_auth(&raw.token)
            .send()
            .expect("request");
        assert_eq!(resp.status().as_u16(), 400, "{path}");
        let b: Value = resp.json().expect("a JSON answer");
        let message = b["message"].as_str().unwrap_or_default();
        assert!(message.contains(wanted), "{path}: {b}");
    }
    let cli = Docker::with_token(&gw, &gw.admin);
    let out = cli
        .cmd()
        .env("DOCKER_API_VERSION", "1.99")
        .args(["service", "ls"])
        .output()
        .expect("run docker");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "API 1.99 must be refused");
    assert!(
        stderr.contains("Maximum supported API version is 1.41"),
        "{stderr}"
    );

    // A 1 MiB header is refused at once, and the gateway goes on serving.
    let started = Instant::now();
    let answer = raw
        .client
        .get(format!("{}/v1.41/version", raw.base))
        .bearer_auth(&raw.token)
        .header("x-filler", "x".repeat(1 << 20))
        .send();
    if let Ok(r) = answer {
        // Else the connection was closed on it: refused too.
        assert!(
            matches!(r.status().as_u16(), 400 | 431),
            "a huge header must be refused, not answered {}",
            r.status()
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a huge header took {:?}",
        started.elapsed()
    );
    let (s, _, v) = raw.send(Method::GET, "/version", None);
    assert_eq!(s, 200, "the gateway serves after a huge header: {v}");

    // A current version updates, and answers no warnings.
    let update = r#"{"Name":"ok","TaskTemplate":{"ContainerSpec":{"Image":"b"}}}"#;
    let (s, _, b) = raw.send(
        Method::POST,
        &format!("/services/{id}/update?version={version}"),
        Some(update),
    );
    assert_eq!((s, &b["Warnings"]), (200, &json!([])), "{b}");

    // Secrets: only their labels may change, at their current version.
    let (s, _, b) = raw.send(
        Method::POST,
        "/secrets/create",
        Some(r#"{"Name":"sec","Data":"eA=="}"#),
    );
    assert_eq!(s, 201, "{b}");
    let sid = b["ID"].as_str().expect("ID").to_string();
    let (_, _, sec) = raw.send(Method::GET, "/secrets/sec", None);
    let sv = sec["Version"]["Index"].as_u64().expect("version");
    let path = format!("/secrets/{sid}/update?version={sv}");
    raw.refused(
        Method::POST,
        &path,
        Some(r#"{"Name":"sec","Data":"eQ=="}"#),
        400,
        "only updates to Labels",
    );
    raw.refused(
        Method::POST,
        &format!("/secrets/{sid}/update?version={}", sv - 1),
        Some(r#"{"Name":"sec"}"#),
        409,
        "update out of sequence",
    );
    let (s, _, b) = raw.send(
        Method::POST,
        &path,
        Some(r#"{"Name":"sec","Labels":{"k":"v"},"Data":"eA=="}"#),
    );
    assert_eq!(s, 200, "{b}");
    let (_, _, sec) = raw.send(Method::GET, "/secrets/sec", None);
    assert_eq!(sec["Spec"]["Labels"]["k"], "v", "{sec}");
    assert_eq!(
        sec["Spec"]["Labels"]["com.docker.ucp.access.label"], "/Shared/Private/admin",
        "{sec}"
    );

    // Nodes: a stale version is refused too.
    let (_, _, nodes) = raw.send(Method::GET, "/nodes", None);
    let node = &nodes[0];
    let nv = node["Version"]["Index"].as_u64().expect("node version");
    let nid = node["ID"].as_str().expect("node id");
    let node_spec = r#"{"Labels":{},"Role":"manager","Availability":"active"}"#;
    raw.refused(
        Method::POST,
        &format!("/nodes/{nid}/update?version={}", nv + 1000),
        Some(node_spec),
        409,
        "update out of sequence",
    );
    raw.refused(
        Method::POST,
        &format!("/nodes/{nid}/update?version={nv}"),
        Some(r#"{"Role":"boss"}"#),
        400,
        "Spec.Role",
    );

    let (s, _, _) = raw.send(Method::DELETE, &format!("/services/{id}"), None);
    assert_eq!(s, 200);
    raw.refused(
        Method::GET,
        &format!("/services/{id}"),
        None,
        404,
        "not found",
    );
}
