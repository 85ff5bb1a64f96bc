//! Client bundles end to end: made through HTTPS, unpacked, checked with
//! the real `openssl`, `sh`/`bash` and `kubectl`, and used as a client
//! certificate until revoked.

#[path = "support/gateway.rs"]
mod gateway;

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use gateway::Gateway;
use reqwest::blocking::{Client, Response};
use reqwest::Method;
use serde_json::Value;

const PASSWORD: &str = "bundle-password-1";

const FILES: [&str; 9] = [
    "ca.pem",
    "cert.pem",
    "key.pem",
    "cert.pub",
    "env.sh",
    "env.ps1",
    "env.cmd",
    "kube.yml",
    "meta.json",
];

/// An HTTPS client trusting the cluster CA, presenting `identity` if given.
fn https(gw: &Gateway, identity: Option<reqwest::Identity>) -> Client {
    let ca = std::fs::read(gw.data_dir().join("pki/ca.crt")).expect("cluster CA");
    let mut b = Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA PEM"))
        .timeout(Duration::from_secs(30));
    if let Some(id) = identity {
        b = b.identity(id);
    }
    b.build().expect("HTTPS client")
}

/// The gateway's port (from its base URL).
fn controller_port(gw: &Gateway) -> u16 {
    gw.base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port in the base URL")
}

/// The node's Kubernetes API port, from its node.toml.
fn kube_port(gw: &Gateway) -> u16 {
    let text = std::fs::read_to_string(gw.data_dir().join("node.toml")).expect("node.toml");
    let cfg: toml::Value = toml::from_str(&text).expect("node.toml parses");
    cfg["kube_apiserver_port"]
        .as_integer()
        .and_then(|p| u16::try_from(p).ok())
        .expect("kube_apiserver_port")
}

/// A bundle request with a session token.
fn ask_bundle(gw: &Gateway, method: Method, token: &str, query: &str) -> Response {
    https(gw, None)
        .request(method, format!("{}/api/clientbundle{query}", gw.base))
        .bearer_auth(token)
        .send()
        .expect("bundle request")
}

/// A bundle that must be made; its archive bytes.
fn make_bundle(gw: &Gateway, token: &str, query: &str) -> Vec<u8> {
    let resp = ask_bundle(gw, Method::POST, token, query);
    let status = resp.status().as_u16();
    let bytes = resp.bytes().expect("bundle body").to_vec();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    bytes
}

/// Unpacks an archive into a new directory.
fn unpack(bytes: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    zip::ZipArchive::new(Cursor::new(bytes))
        .expect("the bundle is a zip archive")
        .extract(dir.path())
        .expect("unpack the bundle");
    dir
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
}

/// A client presenting the bundle's certificate and key.
fn bundle_client(gw: &Gateway, dir: &Path) -> Client {
    let pem = format!("{}{}", read(dir, "cert.pem"), read(dir, "key.pem"));
    let id = reqwest::Identity::from_pem(pem.as_bytes()).expect("bundle identity");
    https(gw, Some(id))
}

/// `GET /id` with a client; the status and body.
fn whoami(client: &Client, gw: &Gateway) -> (u16, Value) {
    let resp = client
        .get(format!("{}/id", gw.base))
        .send()
        .expect("GET /id");
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

fn message(body: &Value) -> String {
    body["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Runs a command; panics with its output when it fails.
fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn openssl(dir: &Path, args: &[&str]) -> String {
    stdout(&run(Command::new("openssl").args(args).current_dir(dir)))
}

/// A user's bundles, listed by the admin.
fn list(gw: &Gateway, user: &str) -> Vec<Value> {
    let (s, b) = gw.get(&format!("/api/clientbundle/certs?user={user}"), &gw.admin);
    assert_eq!(s, 200, "{b}");
    b.as_array().expect("a list").clone()
}

/// What env.sh sets, sourced by `shell` with `script` and `cwd`.
fn sourced(shell: &str, script: &str, cwd: &Path, path: &str, home: &Path) -> (String, String) {
    let out = run(Command::new(shell)
        .arg("-c")
        .arg(format!(
            ". {script} && echo \"$DOCKER_HOST|$DOCKER_TLS_VERIFY|$DOCKER_CERT_PATH|$KUBECONFIG\""
        ))
        .current_dir(cwd)
        .env_clear()
        .env("PATH", path)
        .env("HOME", home));
    let all = stdout(&out);
    let last = all.lines().last().unwrap_or_default().to_string();
    (all, last)
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).expect("canonical path")
}

#[test]
fn admin_makes_a_bundle_that_docker_env_and_kubectl_accept() {
    let gw = Gateway::start();
    let uid = gw.create_user("analista", PASSWORD);
    let port = controller_port(&gw);
    let kport = kube_port(&gw);

    let resp = ask_bundle(
        &gw,
        Method::GET,
        &gw.admin,
        "?user=analista&label=Portátil%20de%20análisis",
    );
    assert_eq!(resp.status().as_u16(), 200);
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(header("content-type"), "application/zip");
    assert_eq!(
        header("content-disposition"),
        "attachment; filename=\"ucp-bundle-analista.zip\""
    );
    let bytes = resp.bytes().expect("body").to_vec();

    let mut archive = zip::ZipArchive::new(Cursor::new(&bytes)).expect("zip");
    let mut names: Vec<String> = archive.file_names().map(str::to_string).collect();
    names.sort();
    let mut want: Vec<String> = FILES.iter().map(|f| f.to_string()).collect();
    want.sort();
    assert_eq!(names, want);
    let key_mode = archive.by_name("key.pem").expect("key.pem").unix_mode();
    assert_eq!(key_mode.map(|m| m & 0o777), Some(0o600));
    let dir = unpack(&bytes);
    let d = dir.path();

    // The certificate: issued by the cluster CA to analista's account.
    let subject = openssl(
        d,
        &[
            "x509", "-in", "cert.pem", "-noout", "-subject", "-nameopt", "RFC2253",
        ],
    );
    for part in ["CN=analista", "OU=capstan-client", &format!("UID={uid}")] {
        assert!(subject.contains(part), "{part} not in {subject}");
    }
    assert_eq!(
        openssl(d, &["verify", "-CAfile", "ca.pem", "cert.pem"]),
        "cert.pem: OK"
    );
    assert_eq!(
        read(d, "ca.pem"),
        std::fs::read_to_string(gw.data_dir().join("pki/ca.crt")).expect("CA")
    );
    let eku = openssl(
        d,
        &[
            "x509",
            "-in",
            "cert.pem",
            "-noout",
            "-ext",
            "extendedKeyUsage",
        ],
    );
    assert!(eku.contains("TLS Web Client Authentication"), "{eku}");
    assert!(!eku.contains("Server"), "{eku}");
    // cert.pub and key.pem are the certificate's key pair.
    let cert_pub = openssl(d, &["x509", "-in", "cert.pem", "-noout", "-pubkey"]);
    assert_eq!(read(d, "cert.pub").trim(), cert_pub);
    assert_eq!(openssl(d, &["pkey", "-in", "key.pem", "-pubout"]), cert_pub);

    // The record: listed with the serial and the key's fingerprint.
    let serial = openssl(d, &["x509", "-in", "cert.pem", "-noout", "-serial"]);
    let serial = serial.trim_start_matches("serial=").to_ascii_lowercase();
    let fingerprint = stdout(&run(Command::new("sh").arg("-c").arg(
        "openssl x509 -in cert.pem -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum",
    ).current_dir(d)));
    let listed = list(&gw, "analista");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], serial.as_str());
    assert_eq!(listed[0]["label"], "Portátil de análisis");
    assert_eq!(listed[0]["revoked"], false);
    assert!(
        fingerprint.starts_with(listed[0]["fingerprint"].as_str().expect("fingerprint")),
        "{fingerprint} vs {}",
        listed[0]
    );
    // Default lifetime: 90 days.
    let created = time::OffsetDateTime::parse(
        listed[0]["created_at"].as_str().expect("created_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339");
    let not_after = time::OffsetDateTime::parse(
        listed[0]["not_after"].as_str().expect("not_after"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339");
    assert!(((not_after - created) - time::Duration::days(90)).abs() < time::Duration::minutes(1));

    // env.sh, sourced by dash without kubectl on the PATH (an empty one),
    // and by bash from elsewhere.
    let home = tempfile::tempdir().expect("home");
    let here = canonical(d).display().to_string();
    let expected = format!("tcp://127.0.0.1:{port}|1|{here}|{here}/kube.yml");
    let (all, last) = sourced("/bin/sh", "./env.sh", d, "/nonexistent", home.path());
    assert_eq!(last, expected, "{all}");
    assert_eq!(all, expected, "nothing else is printed without kubectl");
    let (_, last) = sourced(
        "/bin/bash",
        &format!("{here}/env.sh"),
        Path::new("/"),
        "/nonexistent",
        home.path(),
    );
    assert_eq!(last, expected);

    // With kubectl: the context lands in ~/.kube/config too.
    let name = format!("ucp_127.0.0.1:{kport}_analista");
    let path = std::env::var("PATH").unwrap_or_default();
    let (all, last) = sourced("/bin/sh", "./env.sh", d, &path, home.path());
    assert_eq!(last, expected, "{all}");
    for line in [
        format!("Cluster \"{name}\" set."),
        format!("User \"{name}\" set."),
        format!("Switched to context \"{name}\"."),
    ] {
        assert!(all.contains(&line), "{line} not in {all}");
    }
    let current = run(Command::new("kubectl")
        .args(["config", "current-context"])
        .env_remove("KUBECONFIG")
        .env("HOME", home.path()));
    assert_eq!(stdout(&current), name);

    // kube.yml is a kubeconfig kubectl reads.
    let view = run(Command::new("kubectl")
        .args([
            "config",
            "view",
            "--raw",
            "-o",
            "json",
            "--kubeconfig",
            "kube.yml",
        ])
        .current_dir(d)
        .env("HOME", home.path()));
    let kube: Value = serde_json::from_slice(&view.stdout).expect("kubectl prints JSON");
    assert_eq!(kube["current-context"], name.as_str());
    assert_eq!(kube["clusters"][0]["name"], name.as_str());
    assert_eq!(
        kube["clusters"][0]["cluster"]["server"],
        format!("https://127.0.0.1:{kport}").as_str()
    );
    assert_eq!(kube["users"][0]["name"], name.as_str());
    assert_eq!(kube["contexts"][0]["name"], name.as_str());
    assert_eq!(kube["contexts"][0]["context"]["cluster"], name.as_str());
    assert_eq!(kube["contexts"][0]["context"]["user"], name.as_str());
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let decoded = |v: &Value| {
        String::from_utf8(
            b64.decode(v.as_str().expect("base64 data"))
                .expect("base64"),
        )
        .expect("UTF-8")
    };
    assert_eq!(
        decoded(&kube["clusters"][0]["cluster"]["certificate-authority-data"]),
        read(d, "ca.pem")
    );
    assert_eq!(
        decoded(&kube["users"][0]["user"]["client-certificate-data"]),
        read(d, "cert.pem")
    );
    assert_eq!(
        decoded(&kube["users"][0]["user"]["client-key-data"]),
        read(d, "key.pem")
    );

    // meta.json: the docker context description.
    let meta: Value = serde_json::from_str(&read(d, "meta.json")).expect("meta.json parses");
    assert_eq!(meta["Name"], "ucp_127.0.0.1_analista");
    assert_eq!(meta["Metadata"]["Description"], "Portátil de análisis");
    let docker = &meta["Endpoints"]["docker"];
    assert_eq!(docker["Host"], format!("tcp://127.0.0.1:{port}").as_str());
    assert_eq!(docker["SkipTLSVerify"], false);
    let k8s = &meta["Endpoints"]["kubernetes"];
    assert_eq!(k8s["Host"], format!("https://127.0.0.1:{kport}").as_str());
    assert_eq!(k8s["SkipTLSVerify"], false);
    assert_eq!(k8s["DefaultNamespace"], "default");

    // The Windows scripts name the same endpoint.
    assert!(read(d, "env.ps1").contains(&format!("$env:DOCKER_HOST = 'tcp://127.0.0.1:{port}'")));
    assert!(read(d, "env.cmd").contains(&format!("set \"DOCKER_HOST=tcp://127.0.0.1:{port}\"")));
}

#[test]
fn the_bundle_names_the_host_the_client_used_when_the_certificate_covers_it() {
    let gw = Gateway::start();
    let port = controller_port(&gw);
    let docker_host = |host: &str| {
        let resp = https(&gw, None)
            .post(format!("{}/api/clientbundle", gw.base))
            .header("host", host)
            .bearer_auth(&gw.admin)
            .send()
            .expect("bundle request");
        assert_eq!(resp.status().as_u16(), 200);
        let dir = unpack(&resp.bytes().expect("body"));
        let meta: Value = serde_json::from_str(&read(dir.path(), "meta.json")).expect("meta");
        meta["Endpoints"]["docker"]["Host"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(docker_host("localhost:8443"), "tcp://localhost:8443");
    assert_eq!(docker_host("LOCALHOST"), "tcp://localhost:443");
    // Names the node certificate does not cover fall back to its address.
    let fallback = format!("tcp://127.0.0.1:{port}");
    assert_eq!(docker_host("evil.example.com:443"), fallback);
    assert_eq!(docker_host("127.0.0.1:notaport"), fallback);
}

#[test]
fn a_bundle_certificate_authenticates_until_it_is_revoked() {
    let gw = Gateway::start();
    gw.create_user("analista", PASSWORD);
    let token = gw.login("analista", PASSWORD).expect("login");
    let dir = unpack(&make_bundle(&gw, &token, "?label=laptop"));
    let client = bundle_client(&gw, dir.path());

    let (s, me) = whoami(&client, &gw);
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["name"], "analista");
    // The certificate alone lists the bundle, as its owner.
    let resp = client
        .get(format!("{}/api/clientbundle/certs", gw.base))
        .send()
        .expect("list");
    assert_eq!(resp.status().as_u16(), 200);
    let mine: Vec<Value> = resp.json().expect("JSON list");
    assert_eq!(mine.len(), 1, "{mine:?}");
    let id = mine[0]["id"].as_str().expect("id").to_string();

    let (s, b) = gw.call(
        Method::DELETE,
        &format!("/api/clientbundle/certs/{id}"),
        Some(&token),
        None,
    );
    assert_eq!(s, 204, "{b}");
    let (s, body) = whoami(&client, &gw);
    assert_eq!(s, 401, "{body}");
    assert!(message(&body).contains("has been revoked"), "{body}");
    let listed = list(&gw, "analista");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["revoked"], true);
    assert!(listed[0]["revoked_at"].is_string(), "{}", listed[0]);
    // Revoking again changes nothing.
    let (s, _) = gw.call(
        Method::DELETE,
        &format!("/api/clientbundle/certs/{}", id.to_uppercase()),
        Some(&token),
        None,
    );
    assert_eq!(s, 204);
    assert_eq!(
        list(&gw, "analista")[0]["revoked_at"],
        listed[0]["revoked_at"]
    );

    // A new bundle works; the session token still wins over a certificate.
    let dir = unpack(&make_bundle(&gw, &token, ""));
    let (s, me) = whoami(&bundle_client(&gw, dir.path()), &gw);
    assert_eq!((s, me["name"].clone()), (200, Value::from("analista")));
    let resp = bundle_client(&gw, dir.path())
        .get(format!("{}/id", gw.base))
        .bearer_auth(&gw.admin)
        .send()
        .expect("GET /id");
    let me: Value = resp.json().expect("JSON");
    assert_eq!(me["name"], "admin");
}

#[test]
fn users_manage_only_their_own_bundles() {
    let gw = Gateway::start();
    gw.create_user("ana", PASSWORD);
    gw.create_user("beto", PASSWORD);
    let ana = gw.login("ana", PASSWORD).expect("login");

    let resp = ask_bundle(&gw, Method::POST, &ana, "?user=beto");
    assert_eq!(resp.status().as_u16(), 403);
    let body: Value = resp.json().expect("error JSON");
    assert!(message(&body).starts_with("access denied"), "{body}");
    // Whether a user exists is not revealed to those who may not manage them.
    assert_eq!(
        ask_bundle(&gw, Method::POST, &ana, "?user=nobody")
            .status()
            .as_u16(),
        403
    );
    make_bundle(&gw, &ana, "");
    make_bundle(&gw, &ana, "?user=ana");
    let (s, mine) = gw.get("/api/clientbundle/certs", &ana);
    assert_eq!(s, 200, "{mine}");
    assert_eq!(mine.as_array().map(Vec::len), Some(2), "{mine}");
    assert!(
        list(&gw, "beto").is_empty(),
        "refused requests made no bundle"
    );

    make_bundle(&gw, &gw.admin, "?user=beto");
    let betos = list(&gw, "beto");
    let beto_id = betos[0]["id"].as_str().expect("id").to_string();
    let (s, b) = gw.get("/api/clientbundle/certs?user=beto", &ana);
    assert_eq!(s, 403, "{b}");
    assert!(message(&b).starts_with("access denied"), "{b}");
    let path = format!("/api/clientbundle/certs/{beto_id}");
    let (s, b) = gw.call(Method::DELETE, &path, Some(&ana), None);
    assert_eq!(s, 404, "{b}");
    assert_eq!(list(&gw, "beto")[0]["revoked"], false);

    // Each refusal is in the audit log as a denial of ana.
    let audit = gw.audit();
    for (method, p) in [
        ("POST", "/api/clientbundle"),
        ("GET", "/api/clientbundle/certs"),
        ("DELETE", path.as_str()),
    ] {
        assert!(
            audit.iter().any(|e| e["actor"] == "ana"
                && e["method"] == method
                && e["path"] == p
                && e["decision"] == "deny"),
            "no denial of ana's {method} {p} in {audit:?}"
        );
    }
    // The admin revokes anyone's.
    let (s, b) = gw.call(Method::DELETE, &path, Some(&gw.admin), None);
    assert_eq!(s, 204, "{b}");
    assert_eq!(list(&gw, "beto")[0]["revoked"], true);
}

/// A client certificate with a bundle's subject, signed by a CA of our own.
fn foreign_identity(cluster_id: &str, username: &str, user_id: &str) -> reqwest::Identity {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair,
    };
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::default();
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::CommonName, "Capstan Root CA");
    ca.distinguished_name
        .push(DnType::OrganizationName, cluster_id);
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let ca_cert = ca.self_signed(&ca_key).expect("self-signed CA");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("key");
    let mut leaf = CertificateParams::default();
    leaf.distinguished_name = DistinguishedName::new();
    leaf.distinguished_name.push(DnType::CommonName, username);
    leaf.distinguished_name.push(
        DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 1]),
        user_id,
    );
    leaf.distinguished_name
        .push(DnType::OrganizationalUnitName, "capstan-client");
    leaf.distinguished_name
        .push(DnType::OrganizationName, cluster_id);
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = leaf.signed_by(&key, &issuer).expect("sign");
    let pem = format!("{}{}{}", cert.pem(), ca_cert.pem(), key.serialize_pem());
    reqwest::Identity::from_pem(pem.as_bytes()).expect("identity")
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let gw = Gateway::start();
    let uid = gw.create_user("analista", PASSWORD);
    let (s, me) = gw.get("/id", &gw.admin);
    assert_eq!(s, 200, "{me}");
    let cluster = me["cluster"]["id"].as_str().expect("cluster id");

    let client = https(&gw, Some(foreign_identity(cluster, "analista", &uid)));
    match client.get(format!("{}/id", gw.base)).send() {
        Err(_) => {} // the TLS handshake refused it
        Ok(resp) => assert_eq!(resp.status().as_u16(), 401, "{:?}", resp.text()),
    }
    // The same request with a real bundle succeeds.
    let dir = unpack(&make_bundle(&gw, &gw.admin, "?user=analista"));
    assert_eq!(whoami(&bundle_client(&gw, dir.path()), &gw).0, 200);
}

#[test]
fn a_bundle_of_a_deleted_user_does_not_work_for_a_new_user_of_that_name() {
    let gw = Gateway::start();
    gw.create_user("analista", PASSWORD);
    let dir = unpack(&make_bundle(&gw, &gw.admin, "?user=analista"));
    let client = bundle_client(&gw, dir.path());
    assert_eq!(whoami(&client, &gw).0, 200);

    let (s, b) = gw.call(Method::DELETE, "/accounts/analista", Some(&gw.admin), None);
    assert_eq!(s, 204, "{b}");
    let (s, body) = whoami(&client, &gw);
    assert_eq!(s, 401, "{body}");
    assert!(message(&body).contains("no longer exists"), "{body}");

    gw.create_user("analista", PASSWORD);
    let (s, body) = whoami(&client, &gw);
    assert_eq!(s, 401, "{body}");
    assert!(message(&body).contains("no longer exists"), "{body}");
    assert!(
        list(&gw, "analista").is_empty(),
        "the new account has no bundles"
    );
}

#[test]
fn bad_bundle_requests_name_what_is_wrong() {
    let gw = Gateway::start();
    let long = "x".repeat(200);
    let cases: [(&str, u16, &[&str]); 8] = [
        ("?ttl_days=0", 400, &["ttl_days", "1 to 365"]),
        ("?ttl_days=366", 400, &["ttl_days", "1 to 365"]),
        ("?ttl_days=abc", 400, &["ttl_days", "abc"]),
        (&format!("?label={long}"), 400, &["label", "100"]),
        ("?label=a%0Ab", 400, &["label", "control"]),
        ("?user=nobody", 404, &["nobody", "user"]),
        ("?user=no%20body", 400, &["user"]),
        ("?color=blue", 400, &["color"]),
    ];
    for (query, status, words) in cases {
        for method in [Method::GET, Method::POST] {
            let resp = ask_bundle(&gw, method.clone(), &gw.admin, query);
            assert_eq!(resp.status().as_u16(), status, "{method} {query}");
            let body: Value = resp.json().expect("error JSON");
            let m = message(&body);
            for w in words {
                assert!(m.contains(w), "{method} {query}: {w:?} not in {m:?}");
            }
        }
    }
    assert!(
        list(&gw, "admin").is_empty(),
        "refused requests made no bundle"
    );

    // Without credentials.
    let resp = https(&gw, None)
        .get(format!("{}/api/clientbundle", gw.base))
        .send()
        .expect("request");
    assert_eq!(resp.status().as_u16(), 401);

    // Revocation ids are serials in hex.
    let (s, b) = gw.call(
        Method::DELETE,
        "/api/clientbundle/certs/not-hex",
        Some(&gw.admin),
        None,
    );
    assert_eq!(s, 400, "{b}");
    assert!(message(&b).contains("bundle id"), "{b}");
    let (s, b) = gw.call(
        Method::DELETE,
        "/api/clientbundle/certs/abcdef",
        Some(&gw.admin),
        None,
    );
    assert_eq!(s, 404, "{b}");

    // A lifetime within range is used.
    make_bundle(&gw, &gw.admin, "?ttl_days=1");
    let listed = list(&gw, "admin");
    assert_eq!(listed.len(), 1);
    let parse = |v: &Value| {
        time::OffsetDateTime::parse(
            v.as_str().expect("time"),
            &time::format_description::well_known::Rfc3339,
        )
        .expect("RFC 3339")
    };
    let life = parse(&listed[0]["not_after"]) - parse(&listed[0]["created_at"]);
    assert!(
        (life - time::Duration::days(1)).abs() < time::Duration::minutes(1),
        "{life}"
    );
    assert_eq!(listed[0]["label"], "");
}
