//! A one-manager cluster with its gateway, started as the real `capstan`
//! binary on loopback ports, and an HTTPS client that trusts its CA.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::Value;

/// The first admin's password in every test cluster.
pub const ADMIN_PASSWORD: &str = "admin-password-1";

/// A running manager; killed when dropped.
pub struct Gateway {
    child: Child,
    dir: tempfile::TempDir,
    /// `https://127.0.0.1:<controller port>`.
    pub base: String,
    client: Client,
    /// A session token of the admin.
    pub admin: String,
    /// The port of the node's engine proxy (0 without an agent).
    pub engine_proxy_port: u16,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The `capstan` binary under test.
pub fn capstan() -> Command {
    Command::new(env!("CARGO_BIN_EXE_capstan"))
}

impl Gateway {
    /// Installs and starts a manager, waits for its gateway, logs in as admin.
    pub fn start() -> Gateway {
        Self::start_with(false)
    }

    /// Like [`Gateway::start`], with the node's agent running beside the
    /// manager (`capstan up` on the installed data directory), so that the
    /// node runs containers on this machine's Docker engine and serves its
    /// engine proxy on a free loopback port.
    pub fn start_with_agent() -> Gateway {
        Self::start_with(true)
    }

    /// Like [`Gateway::start_with_agent`], with the registry of
    /// `capstan up` serving on `registry_port`.
    pub fn start_with_agent_and_registry(registry_port: u16) -> Gateway {
        Self::start_full(true, registry_port)
    }

    fn start_with(agent: bool) -> Gateway {
        Self::start_full(agent, 0)
    }

    fn start_full(agent: bool, registry_port: u16) -> Gateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let controller = free_port();
        let mut install = capstan();
        install
            .arg("--data-dir")
            .arg(&data)
            .args([
                "install",
                "--admin-username",
                "admin",
                "--admin-password",
                ADMIN_PASSWORD,
            ])
            .args([
                "--host-address",
                "127.0.0.1",
                "--listen-address",
                "127.0.0.1",
            ])
            .args(["--swarm-port", &free_port().to_string()])
            .args(["--controller-port", &controller.to_string()])
            .args(["--kube-apiserver-port", &free_port().to_string()]);
        let engine_proxy_port = if agent { free_port() } else { 0 };
        let child = if agent {
            let out = install
                .arg("--init-only")
                .output()
                .expect("run capstan install --init-only");
            assert!(
                out.status.success(),
                "capstan install --init-only failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            capstan()
                .arg("--data-dir")
                .arg(&data)
                .arg("up")
                .args(["--registry-port", &registry_port.to_string()])
                .env("CAPSTAN_ENGINE_PROXY_PORT", engine_proxy_port.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn capstan up")
        } else {
            let mut child = install
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn capstan install");
            let stdout = child.stdout.take().expect("piped stdout");
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
            let started = Instant::now();
            loop {
                match rx.recv_timeout(Duration::from_millis(200)) {
                    Ok(l) if l.contains("Installation complete") => break,
                    _ if started.elapsed() > Duration::from_secs(60) => {
                        let _ = child.kill();
                        panic!("capstan install did not finish within 60s");
                    }
                    _ => {}
                }
            }
            std::thread::spawn(move || while rx.recv().is_ok() {});
            child
        };
        let ca = std::fs::read(data.join("pki/ca.crt")).expect("cluster CA");
        let client = Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA PEM"))
            .timeout(Duration::from_secs(30))
            .build()
            .expect("HTTPS client");
        let mut gw = Gateway {
            child,
            dir,
            base: format!("https://127.0.0.1:{controller}"),
            client,
            admin: String::new(),
            engine_proxy_port,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = gw.client.get(format!("{}/_ping", gw.base)).send() {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the gateway never answered /_ping"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // The seed (default org, the admin's private collection) runs at start.
        gw.admin = gw.login("admin", ADMIN_PASSWORD).expect("admin login");
        let deadline = Instant::now() + Duration::from_secs(30);
        while gw.get("/accounts/docker-datacenter", &gw.admin.clone()).0 != 200 {
            assert!(
                Instant::now() < deadline,
                "the default organization was never created"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        gw
    }

    /// The node's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// This node's id.
    pub fn node_id(&self) -> String {
        let config = std::fs::read_to_string(self.data_dir().join("node.toml")).expect("node.toml");
        let table: toml::Table = config.parse().expect("node.toml is TOML");
        table["node_id"].as_str().expect("node_id").to_string()
    }

    /// `capstan --data-dir <this node> ...`.
    pub fn capstan(&self) -> Command {
        let mut c = capstan();
        c.arg("--data-dir").arg(self.data_dir());
        c
    }

    /// Logs in; the token, or the status and error body.
    pub fn login(&self, username: &str, password: &str) -> Result<String, (u16, Value)> {
        let (status, body) = self.call(
            Method::POST,
            "/auth/login",
            None,
            Some(serde_json::json!({"username": username, "password": password})),
        );
        if status == 200 {
            Ok(body["auth_token"].as_str().expect("auth_token").to_string())
        } else {
            Err((status, body))
        }
    }

    /// A JSON request; the status and the body parsed as JSON (`Null` when
    /// empty, a string when not JSON).
    pub fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().expect("send request");
        let status = resp.status().as_u16();
        let text = resp.text().expect("read body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// A request with a raw body and content type; the status and the body text.
    pub fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> (u16, String) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().expect("send request");
        (resp.status().as_u16(), resp.text().expect("read body"))
    }

    /// GET with a token.
    pub fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(Method::GET, path, Some(token), None)
    }

    /// Creates a user (as admin) and returns their id.
    pub fn create_user(&self, name: &str, password: &str) -> String {
        let (s, b) = self.call(
            Method::POST,
            "/accounts",
            Some(&self.admin),
            Some(serde_json::json!({"name": name, "password": password})),
        );
        assert_eq!(s, 201, "create user {name}: {b}");
        b["id"].as_str().expect("user id").to_string()
    }

    /// Every audit entry, through the API (as admin), oldest first.
    pub fn audit(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut start = 1;
        loop {
            let (s, b) = self.get(&format!("/api/audit?start={start}&limit=1000"), &self.admin);
            assert_eq!(s, 200, "{b}");
            out.extend(b["entries"].as_array().expect("entries").iter().cloned());
            match b["nextStart"].as_u64() {
                Some(n) if n > 0 => start = n,
                _ => return out,
            }
        }
    }
}
