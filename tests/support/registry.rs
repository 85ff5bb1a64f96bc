//! A registry installed with `capstan registry install` on the node of a
//! test cluster, and the clients the tests drive it with: the stock
//! `docker` CLI (the machine's engine pushes and pulls), `skopeo`, and
//! plain HTTPS for what the CLIs do not expose.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, Response};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::gateway::{Gateway, ADMIN_PASSWORD};

/// The label every image a registry test makes carries.
pub const TEST_LABEL: &str = "com.capstan.test=registry";

/// A cluster with a registry; the registry process is killed when dropped,
/// and the Docker objects and files the test made are removed.
pub struct Registry {
    /// The cluster.
    pub gw: Gateway,
    child: Option<Child>,
    /// `127.0.0.1:<port>`.
    pub host: String,
    client: Client,
    certs_d: PathBuf,
    work: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Every image tagged for this registry, whatever the test did.
        if let Ok(out) = Command::new("docker")
            .args(["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"])
            .output()
        {
            let prefix = format!("{}/", self.host);
            for image in String::from_utf8_lossy(&out.stdout).lines() {
                if image.starts_with(&prefix) {
                    let _ = Command::new("docker").args(["rmi", "-f", image]).output();
                }
            }
        }
        let _ = Command::new("docker")
            .args([
                "image",
                "prune",
                "-f",
                "--filter",
                &format!("label={TEST_LABEL}"),
            ])
            .output();
        let _ = std::fs::remove_dir_all(&self.certs_d);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// sha256 digest of bytes, `sha256:<hex>`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl Registry {
    /// Starts a cluster, installs a registry on its node and waits for it.
    pub fn start() -> Registry {
        Self::start_with(&[])
    }

    /// The registry that `capstan up` runs beside its manager and agent
    /// (the agent runs tasks on this machine's engine).
    pub fn start_in_up() -> Registry {
        let port = free_port();
        let reg = Self::prepare(Gateway::start_with_agent_and_registry(port), port, &[]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&reg.host).is_err() {
            assert!(
                Instant::now() < deadline,
                "the registry of capstan up never opened"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    /// Like [`Registry::start`], with extra environment for the registry
    /// process (e.g. `CAPSTAN_REGISTRY_UPLOAD_TIMEOUT`).
    pub fn start_with(env: &[(&str, &str)]) -> Registry {
        let port = free_port();
        let mut reg = Self::prepare(Gateway::start(), port, env);
        let password = reg.work.path().join("admin-password");
        std::fs::write(&password, ADMIN_PASSWORD).expect("password file");
        let mut install = reg.gw.capstan();
        install
            .args(["registry", "install", "--ucp-url", &reg.gw.base.clone()])
            .arg("--ucp-ca")
            .arg(format!(
                "@{}",
                reg.gw.data_dir().join("pki/ca.crt").display()
            ))
            .args(["--ucp-username", "admin", "--ucp-password-file"])
            .arg(&password)
            .args(["--replica-port", &port.to_string()])
            .args(["--listen-address", "127.0.0.1", "--host", "127.0.0.1"]);
        reg.spawn(install, "Registry serving");
        reg
    }

    fn prepare(gw: Gateway, port: u16, env: &[(&str, &str)]) -> Registry {
        let host = format!("127.0.0.1:{port}");
        let work = tempfile::tempdir().expect("temp dir");
        let ca = std::fs::read(gw.data_dir().join("pki/ca.crt")).expect("cluster CA");
        let client = Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA PEM"))
            .timeout(Duration::from_secs(60))
            .build()
            .expect("HTTPS client");
        // The Docker daemon trusts the registry's CA, as the lab does.
        let certs_d = PathBuf::from("/etc/docker/certs.d").join(&host);
        std::fs::create_dir_all(&certs_d).expect("create /etc/docker/certs.d/<host>");
        std::fs::write(certs_d.join("ca.crt"), &ca).expect("write ca.crt");
        Registry {
            gw,
            child: None,
            host,
            client,
            certs_d,
            work,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn spawn(&mut self, mut cmd: Command, ready: &str) {
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn capstan registry");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx2.send(line);
            }
        });
        let started = Instant::now();
        let mut seen = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(l) if l.contains(ready) => break,
                Ok(l) => seen.push(l),
                Err(_) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!("capstan registry exited ({status}):\n{}", seen.join("\n"));
                    }
                }
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                panic!("capstan registry never became ready:\n{}", seen.join("\n"));
            }
        }
        std::thread::spawn(move || while rx.recv().is_ok() {});
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&self.host).is_err() {
            assert!(Instant::now() < deadline, "the registry port never opened");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `kill -9` of the registry process.
    pub fn crash(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("kill -9 the registry");
            let _ = c.wait();
        }
    }

    /// Starts the installed registry again (`capstan registry`).
    pub fn restart(&mut self) {
        self.crash();
        let mut run = self.gw.capstan();
        run.arg("registry");
        self.spawn(run, "Registry serving");
    }

    /// The registry's storage folder.
    pub fn storage(&self) -> PathBuf {
        self.gw.data_dir().join("registry")
    }

    /// Every stored blob: `(digest from the name, digest of the content)`.
    pub fn stored_blobs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let root = self.storage().join("blobs/sha256");
        for prefix in std::fs::read_dir(&root).expect("blobs folder") {
            let prefix = prefix.expect("entry").path();
            for blob in std::fs::read_dir(&prefix).expect("prefix folder") {
                let blob = blob.expect("entry").path();
                let name = blob
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .to_string();
                let content = std::fs::read(&blob).expect("read blob");
                out.push((format!("sha256:{name}"), digest(&content)));
            }
        }
        out
    }

    /// Asserts that every stored blob's content matches its name.
    pub fn assert_storage_consistent(&self) {
        for (name, actual) in self.stored_blobs() {
            assert_eq!(name, actual, "blob {name} holds content of another digest");
        }
    }

    /// Whether a blob is stored.
    pub fn has_blob(&self, d: &str) -> bool {
        self.stored_blobs().iter().any(|(n, _)| n == d)
    }

    /// Upload folders left in storage.
    pub fn uploads(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.storage().join("uploads"))
            .expect("uploads folder")
            .map(|e| e.expect("entry").path())
            .collect()
    }

    /// A temp folder of the test.
    pub fn work(&self) -> &Path {
        self.work.path()
    }

    /// Installs the test license on the cluster.
    pub fn license(&self) {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../capstan-core/tests/data/test-license.json"
        );
        let lic = std::fs::read(path).expect("test license");
        let (s, b) = self.gw.raw(
            Method::PUT,
            "/api/license",
            Some(&self.gw.admin),
            "application/json",
            lic,
        );
        assert_eq!(s, 200, "upload the license: {b}");
    }

    /// A registry token for `creds` (None: anonymous) and `scopes`.
    pub fn token(&self, creds: Option<(&str, &str)>, scopes: &[&str]) -> String {
        let mut url = format!("https://{}/auth/token?service=capstan-registry", self.host);
        for s in scopes {
            url.push_str(&format!("&scope={s}"));
        }
        let mut req = self.client.get(url);
        if let Some((u, p)) = creds {
            req = req.basic_auth(u, Some(p));
        }
        let resp = req.send().expect("token request");
        let status = resp.status().as_u16();
        let body: Value = resp.json().expect("token JSON");
        assert_eq!(status, 200, "token: {body}");
        body["token"].as_str().expect("token").to_string()
    }

    /// A request to the registry with a bearer token.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::blocking::RequestBuilder {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("https://{}{path}", self.host)
        };
        let mut req = self.client.request(method, url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req
    }

    /// Sends a request; status, headers and body.
    pub fn send(
        &self,
        req: reqwest::blocking::RequestBuilder,
    ) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let resp: Response = req.send().expect("registry request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.bytes().expect("body").to_vec())
    }

    /// A DTR API call with Basic credentials; status and JSON body.
    pub fn api(
        &self,
        method: Method,
        path: &str,
        creds: Option<(&str, &str)>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, format!("https://{}{path}", self.host));
        if let Some((u, p)) = creds {
            req = req.basic_auth(u, Some(p));
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().expect("API request");
        let status = resp.status().as_u16();
        let text = resp.text().expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Pushes a blob monolithically; the answer's status.
    pub fn push_blob(&self, repo: &str, token: &str, data: &[u8]) -> (u16, Value) {
        let d = digest(data);
        let (s, _, b) = self.send(
            self.request(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
                Some(token),
            )
            .header("content-type", "application/octet-stream")
            .body(data.to_vec()),
        );
        (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    /// Pushes a small image (a config and one layer) under `tag` as an OCI
    /// manifest for `arch`; its manifest digest.
    pub fn push_image(
        &self,
        repo: &str,
        tag: &str,
        token: &str,
        arch: &str,
        layer: &[u8],
    ) -> String {
        let config = serde_json::json!({"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": [digest(layer)]}}).to_string();
        for blob in [config.as_bytes(), layer] {
            let (s, b) = self.push_blob(repo, token, blob);
            assert_eq!(s, 201, "push blob: {b}");
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config.as_bytes()), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(layer), "size": layer.len()}]
        })
        .to_string();
        let (s, h, b) = self.send(
            self.request(
                Method::PUT,
                &format!("/v2/{repo}/manifests/{tag}"),
                Some(token),
            )
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.clone()),
        );
        assert_eq!(s, 201, "push manifest: {}", String::from_utf8_lossy(&b));
        let d = h["docker-content-digest"]
            .to_str()
            .expect("digest header")
            .to_string();
        assert_eq!(d, digest(manifest.as_bytes()));
        d
    }

    /// The `docker` CLI of the machine's engine with its own config folder
    /// (its own `docker login`s).
    pub fn docker(&self, name: &str) -> DockerUser {
        let dir = self.work.path().join(format!("docker-{name}"));
        std::fs::create_dir_all(&dir).expect("docker config dir");
        DockerUser { dir }
    }

    /// `skopeo` with this registry's CA.
    pub fn skopeo(&self) -> Command {
        let certs = self.work.path().join("skopeo-certs");
        std::fs::create_dir_all(&certs).expect("skopeo certs dir");
        std::fs::copy(self.gw.data_dir().join("pki/ca.crt"), certs.join("ca.crt"))
            .expect("copy CA");
        let mut c = Command::new("skopeo");
        c.env(
            "REGISTRY_AUTH_FILE",
            self.work.path().join("skopeo-auth.json"),
        );
        c.env("TMPDIR", self.work.path());
        c
    }

    /// `--src-cert-dir`/`--dest-cert-dir` value for skopeo.
    pub fn cert_dir(&self) -> String {
        self.work.path().join("skopeo-certs").display().to_string()
    }
}

/// The local engine's `docker` CLI with one user's credentials.
pub struct DockerUser {
    /// Its configuration folder (`--config`).
    pub dir: PathBuf,
}

/// What a command printed.
pub struct Out {
    /// Exit status 0.
    pub ok: bool,
    /// stdout and stderr together.
    pub text: String,
}

impl DockerUser {
    /// Runs `docker --config <dir> <args>`, with `stdin` fed in.
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Out {
        self.run_env(&[], args, stdin)
    }

    /// [`Self::run`] with extra environment.
    pub fn run_env(&self, env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> Out {
        let mut c = Command::new("docker");
        c.envs(env.iter().copied());
        c.arg("--config")
            .arg(&self.dir)
            .args(args)
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT");
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("run docker");
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().expect("docker output");
        Out {
            ok: out.status.success(),
            text: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }

    /// Runs a command that must succeed; its output.
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args, None);
        assert!(r.ok, "docker {} failed: {}", args.join(" "), r.text);
        r.text
    }

    /// `docker login`.
    pub fn login(&self, host: &str, user: &str, password: &str) -> Out {
        self.run(
            &["login", host, "-u", user, "--password-stdin"],
            Some(password),
        )
    }
}

/// Creates organisation `name` (as admin).
pub fn org(gw: &Gateway, name: &str) {
    let (s, b) = gw.call(
        Method::POST,
        "/accounts",
        Some(&gw.admin),
        Some(json!({"name": name, "isOrg": true})),
    );
    assert_eq!(s, 201, "create org {name}: {b}");
}

/// Adds `user` to `org` (as an owner when `owner`).
pub fn member(gw: &Gateway, org: &str, user: &str, owner: bool) {
    let (s, b) = gw.call(
        Method::PUT,
        &format!("/accounts/{org}/members/{user}"),
        Some(&gw.admin),
        Some(json!({"isAdmin": owner})),
    );
    assert_eq!(s, 200, "add {user} to {org}: {b}");
}

/// Creates team `org/team` with `members` (as admin).
pub fn team(gw: &Gateway, org: &str, team: &str, members: &[&str]) {
    let (s, b) = gw.call(
        Method::POST,
        &format!("/accounts/{org}/teams"),
        Some(&gw.admin),
        Some(json!({"name": team})),
    );
    assert_eq!(s, 201, "create team {org}/{team}: {b}");
    for m in members {
        let (s, b) = gw.call(
            Method::PUT,
            &format!("/accounts/{org}/teams/{team}/members/{m}"),
            Some(&gw.admin),
            Some(json!({})),
        );
        assert_eq!(s, 200, "add {m} to {org}/{team}: {b}");
    }
}

/// Polls `check` every half second until it passes; panics with its last
/// answer after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(()) => return,
            Err(last) if Instant::now() > deadline => panic!("{what}: still {last}"),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// Imports a tiny busybox image under `tag` (labelled for clean-up).
pub fn import_image(tag: &str, work: &Path, marker: &str) {
    let root = work.join(format!("rootfs-{marker}"));
    std::fs::create_dir_all(root.join("bin")).expect("rootfs");
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .expect("busybox (apt-get install busybox-static)");
    std::fs::write(root.join("marker"), marker).expect("marker");
    let tar = work.join(format!("rootfs-{marker}.tar"));
    let st = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success(), "tar the rootfs");
    let out = Command::new("docker")
        .args([
            "import",
            "-c",
            &format!("LABEL {TEST_LABEL}"),
            "-c",
            "CMD [\"/bin/busybox\", \"sh\"]",
        ])
        .arg(&tar)
        .arg(tag)
        .output()
        .expect("docker import");
    assert!(
        out.status.success(),
        "docker import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
