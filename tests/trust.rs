//! Content trust with real clients: `DOCKER_CONTENT_TRUST=1 docker push`
//! and `pull` against a Capstan registry, `docker trust inspect`, a signer
//! added from a client bundle's certificate signing with the bundle's
//! key, the Debian `notary` client reading the same data, tampered
//! updates refused, and "run only signed images" enforced on services.

#[path = "support/docker.rs"]
mod docker;
#[path = "support/gateway.rs"]
mod gateway;
#[path = "support/registry.rs"]
mod registry;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use capstan_testkit::Harness;
use docker::Docker;
use registry::{import_image, member, org, team, wait_for, DockerUser, Registry};
use reqwest::Method;
use serde_json::{json, Value};

const ALICE_PW: &str = "alice-password-1";
const BOB_PW: &str = "bob-password-1";
const CAROL_PW: &str = "carol-password-1";
const ALICE_PASSPHRASE: &str = "alice-repo-pass";
const SIGNER_PASSPHRASE: &str = "signer-key-pass";

/// What the docker CLI reads instead of prompting for passphrases.
fn trust_env(repo_passphrase: &'static str) -> [(&'static str, &'static str); 3] {
    [
        ("DOCKER_CONTENT_TRUST", "1"),
        ("DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE", "root-passphrase-1"),
        (
            "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE",
            repo_passphrase,
        ),
    ]
}

/// A CLI user logged in to the registry, trusting its CA for the trust
/// server too (`<config>/tls/<host>/ca.crt`).
fn cli_user(reg: &Registry, name: &str, password: &str) -> DockerUser {
    let user = reg.docker(name);
    let tls = user.dir.join("tls").join(&reg.host);
    std::fs::create_dir_all(&tls).expect("tls dir");
    std::fs::copy(reg.gw.data_dir().join("pki/ca.crt"), tls.join("ca.crt")).expect("CA");
    let login = user.login(&reg.host, name, password);
    assert!(login.ok, "login {name}: {}", login.text);
    user
}

/// `docker trust inspect <image>` as JSON.
fn inspect(user: &DockerUser, image: &str) -> Value {
    let out = user.run(&["trust", "inspect", image], None);
    if !out.ok {
        let dbg = user.run(&["-D", "trust", "inspect", image], None);
        panic!("trust inspect {image}: {}", dbg.text);
    }
    serde_json::from_str(&out.text).unwrap_or_else(|e| panic!("{e}: {}", out.text))
}

/// Tag → (digest hex, signers) from `docker trust inspect`.
fn signed_tags(v: &Value) -> BTreeMap<String, (String, Vec<String>)> {
    v[0]["SignedTags"]
        .as_array()
        .unwrap_or(&vec![])
        .iter()
        .map(|t| {
            let signers = t["Signers"]
                .as_array()
                .unwrap_or(&vec![])
                .iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect();
            (
                t["SignedTag"].as_str().unwrap_or_default().to_string(),
                (
                    t["Digest"].as_str().unwrap_or_default().to_string(),
                    signers,
                ),
            )
        })
        .collect()
}

fn pushed_digest(out: &str) -> String {
    out.split_whitespace()
        .find_map(|w| w.strip_prefix("sha256:"))
        .unwrap_or_else(|| panic!("no digest in: {out}"))
        .to_string()
}

/// Downloads `user`'s client bundle and unpacks it into `into`.
fn bundle(reg: &Registry, user: &str, password: &str, into: &Path) {
    let token = reg.gw.login(user, password).expect("login");
    let ca = std::fs::read(reg.gw.data_dir().join("pki/ca.crt")).expect("CA");
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA PEM"))
        .build()
        .expect("client");
    let resp = client
        .post(format!("{}/api/clientbundle", reg.gw.base))
        .bearer_auth(token)
        .send()
        .expect("POST /api/clientbundle");
    assert_eq!(resp.status().as_u16(), 200, "bundle download failed");
    let bytes = resp.bytes().expect("bundle");
    std::fs::create_dir_all(into).expect("bundle dir");
    zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec()))
        .expect("zip")
        .extract(into)
        .expect("unpack");
}

/// Makes `user` a signer of `repo` the MKE way: their client bundle's key
/// is loaded into their CLI, and alice (the repository's key holder) adds
/// the bundle certificate as a signer. Their CLI, ready to sign.
fn bundle_signer(
    reg: &Registry,
    alice: &DockerUser,
    repo: &str,
    user: &str,
    password: &str,
) -> DockerUser {
    let dir = reg.work().join(format!("{user}-bundle"));
    bundle(reg, user, password, &dir);
    let cli = cli_user(reg, user, password);
    let key = dir.join("key.pem");
    let out = cli.run_env(
        &trust_env(SIGNER_PASSPHRASE),
        &[
            "trust",
            "key",
            "load",
            key.to_str().expect("path"),
            "--name",
            user,
        ],
        None,
    );
    assert!(out.ok, "trust key load: {}", out.text);
    let cert = dir.join("cert.pem");
    let out = alice.run_env(
        &trust_env(ALICE_PASSPHRASE),
        &[
            "trust",
            "signer",
            "add",
            "--key",
            cert.to_str().expect("path"),
            user,
            repo,
        ],
        None,
    );
    assert!(out.ok, "trust signer add {user}: {}", out.text);
    cli
}

/// The lab's organisation: alice and bob in team `devs` (read-write on
/// `docker-dca/app`), carol in team `ops`.
fn lab(reg: &Registry) {
    let gw = &reg.gw;
    gw.create_user("alice", ALICE_PW);
    gw.create_user("bob", BOB_PW);
    gw.create_user("carol", CAROL_PW);
    org(gw, "docker-dca");
    member(gw, "docker-dca", "alice", true);
    member(gw, "docker-dca", "bob", false);
    member(gw, "docker-dca", "carol", false);
    team(gw, "docker-dca", "devs", &["alice", "bob"]);
    team(gw, "docker-dca", "ops", &["carol"]);
    let (s, b) = reg.api(
        Method::POST,
        "/api/v0/repositories/docker-dca",
        Some(("alice", ALICE_PW)),
        Some(json!({"name": "app", "visibility": "private"})),
    );
    assert_eq!(s, 201, "{b}");
    for t in ["devs", "ops"] {
        let (s, b) = reg.api(
            Method::PUT,
            &format!("/api/v0/repositories/docker-dca/app/teamAccess/{t}"),
            Some(("alice", ALICE_PW)),
            Some(json!({"accessLevel": "read-write"})),
        );
        assert_eq!(s, 200, "{b}");
    }
}

#[test]
fn docker_cli_signs_pushes_inspects_and_pulls_and_notary_agrees() {
    let reg = Registry::start();
    reg.license();
    lab(&reg);
    let alice = cli_user(&reg, "alice", ALICE_PW);
    let repo = format!("{}/docker-dca/app", reg.host);
    let v1 = format!("{repo}:v1");
    import_image(&v1, reg.work(), "trust-v1");

    // The first signed push makes the repository's keys and trust data.
    let out = alice.run_env(&trust_env(ALICE_PASSPHRASE), &["push", &v1], None);
    assert!(out.ok, "signed push: {}", out.text);
    assert!(out.text.contains("Successfully signed"), "{}", out.text);
    let digest_v1 = pushed_digest(&out.text);

    let tags = signed_tags(&inspect(&alice, &v1));
    assert_eq!(tags["v1"].0, digest_v1, "{tags:?}");

    // A verified pull resolves the tag through the trust data.
    alice.ok(&["rmi", &v1]);
    let out = alice.run_env(&trust_env(ALICE_PASSPHRASE), &["pull", &v1], None);
    assert!(out.ok, "signed pull: {}", out.text);
    assert!(
        out.text.contains(&format!("@sha256:{digest_v1}")),
        "{}",
        out.text
    );

    // An unsigned tag is refused by a verified pull.
    let unsigned = format!("{repo}:unsigned");
    import_image(&unsigned, reg.work(), "trust-unsigned");
    alice.ok(&["push", &unsigned]);
    alice.ok(&["rmi", &unsigned]);
    let out = alice.run_env(&trust_env(ALICE_PASSPHRASE), &["pull", &unsigned], None);
    assert!(
        !out.ok,
        "pulled an unsigned tag with content trust: {}",
        out.text
    );
    assert!(
        out.text.contains("No valid trust data for unsigned"),
        "{}",
        out.text
    );

    // Bob's client bundle certificate becomes a signer; he signs v2 with
    // the bundle's key.
    let bob = bundle_signer(&reg, &alice, &repo, "bob", BOB_PW);
    let v2 = format!("{repo}:v2");
    import_image(&v2, reg.work(), "trust-v2");
    let out = bob.run_env(&trust_env(SIGNER_PASSPHRASE), &["trust", "sign", &v2], None);
    assert!(out.ok, "trust sign by a delegated signer: {}", out.text);
    let inspected = inspect(&alice, &repo);
    let tags = signed_tags(&inspected);
    assert_eq!(tags["v2"].1, vec!["bob".to_string()], "{inspected}");
    assert_eq!(tags["v1"].0, digest_v1);
    let signers: Vec<&str> = inspected[0]["Signers"]
        .as_array()
        .expect("Signers")
        .iter()
        .filter_map(|s| s["Name"].as_str())
        .collect();
    assert_eq!(signers, ["bob"], "{inspected}");

    // The repository API shows what is signed, and by whom.
    let (s, tag) = reg.api(
        Method::GET,
        "/api/v0/repositories/docker-dca/app/tags/v2",
        Some(("alice", ALICE_PW)),
        None,
    );
    assert_eq!(s, 200, "{tag}");
    assert_eq!(tag["inNotary"], true, "{tag}");
    assert_eq!(tag["hashMismatch"], false, "{tag}");
    assert_eq!(
        tag["signers"],
        json!(["targets/releases", "targets/bob"]),
        "{tag}"
    );
    let (_, tag) = reg.api(
        Method::GET,
        "/api/v0/repositories/docker-dca/app/tags/unsigned",
        Some(("alice", ALICE_PW)),
        None,
    );
    assert_eq!(tag["inNotary"], false, "{tag}");

    // The Debian notary client, as an independent client, lists the same
    // targets from the same server.
    let ca = reg.gw.data_dir().join("pki/ca.crt");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("alice:{ALICE_PW}"));
    let out = Command::new("notary")
        .arg("-s")
        .arg(format!("https://{}", reg.host))
        .arg("-d")
        .arg(reg.work().join("notary"))
        .arg("--tlscacert")
        .arg(&ca)
        .args(["list", &repo])
        .env("NOTARY_AUTH", auth)
        .output()
        .expect("run notary (apt-get install notary)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "notary list: {text}");
    assert!(text.contains("v1") && text.contains(&digest_v1), "{text}");
    let digest_v2 = &tags["v2"].0;
    assert!(
        text.lines().any(|l| l.starts_with("v2 ")
            && l.contains(digest_v2.as_str())
            && l.contains("targets/")),
        "{text}"
    );
}

/// The files of one publish: (role, bytes).
type Update<'a> = Vec<(&'a str, Vec<u8>)>;

/// A publish of `files` (role, bytes) with `token`; status and body.
fn publish(
    reg: &Registry,
    gun: &str,
    token: Option<&str>,
    files: Vec<(&str, Vec<u8>)>,
) -> (u16, Value) {
    let mut form = reqwest::blocking::multipart::Form::new();
    for (role, bytes) in files {
        form = form.part(
            "files",
            reqwest::blocking::multipart::Part::bytes(bytes).file_name(role.to_string()),
        );
    }
    let (s, _, body) = reg.send(
        reg.request(Method::POST, &format!("/v2/{gun}/_trust/tuf/"), token)
            .multipart(form),
    );
    (s, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn fetch(reg: &Registry, gun: &str, token: &str, file: &str) -> (u16, Vec<u8>) {
    let (s, _, body) = reg.send(reg.request(
        Method::GET,
        &format!("/v2/{gun}/_trust/tuf/{file}"),
        Some(token),
    ));
    (s, body)
}

fn server_key(reg: &Registry, gun: &str, token: &str, role: &str) -> capstan_trust::PublicKey {
    let (s, body) = fetch(reg, gun, token, &format!("{role}.key"));
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).expect("a TUF public key")
}

#[test]
fn tampered_updates_are_refused_and_change_nothing() {
    use capstan_trust::metadata::FileMeta;
    use capstan_trust::publisher::{targets, Delegate, Publisher};
    use capstan_trust::PrivateKey;

    let reg = Registry::start();
    reg.license();
    lab(&reg);
    reg.gw.create_user("dave", "dave-password-1");
    let gun = format!("{}/docker-dca/app", reg.host);
    let scope = format!("repository:{gun}:push,pull");
    let alice = reg.token(Some(("alice", ALICE_PW)), &[&scope]);
    let now = time::OffsetDateTime::now_utc();

    let ts_key = server_key(&reg, &gun, &alice, "timestamp");
    let snap_key = server_key(&reg, &gun, &alice, "snapshot");
    assert_eq!(
        server_key(&reg, &gun, &alice, "timestamp"),
        ts_key,
        "the key changed between reads"
    );
    let owner = Publisher::generate().expect("keys");
    let releaser = PrivateKey::generate().expect("key");
    let releaser_pub = releaser.public();
    let tag =
        |name: &str, manifest: &[u8]| BTreeMap::from([(name.to_string(), FileMeta::of(manifest))]);
    let delegate = [Delegate {
        name: "targets/releases",
        key: &releaser_pub,
        paths: vec!["release-".into()],
    }];
    let root = owner.root(1, 3650, &ts_key, &snap_key, now).expect("root");
    let t1 = targets(
        1,
        365,
        &tag("v1", b"manifest-1"),
        &delegate,
        &owner.targets,
        now,
    )
    .expect("targets");
    let (s, b) = publish(
        &reg,
        &gun,
        Some(&alice),
        vec![("root", root), ("targets", t1.clone())],
    );
    assert_eq!(s, 200, "{b}");
    let (s, stored) = fetch(&reg, &gun, &alice, "targets.json");
    assert_eq!((s, &stored), (200, &t1));
    let (_, timestamp) = fetch(&reg, &gun, &alice, "timestamp.json");

    let stranger = PrivateKey::generate().expect("key");
    let usurper = Publisher::generate().expect("keys");
    // (what, the update, the error code, what the message says)
    let cases: Vec<(&str, Update, &str, &str)> = vec![
        (
            "targets signed by a key root does not name",
            vec![(
                "targets",
                targets(2, 365, &tag("v2", b"m2"), &delegate, &stranger, now).expect("t"),
            )],
            "INVALID_UPDATE",
            "0 valid signature(s)",
        ),
        (
            "targets rolled back to the stored version",
            vec![(
                "targets",
                targets(1, 365, &tag("v2", b"m2"), &delegate, &owner.targets, now).expect("t"),
            )],
            "VERSION",
            "not newer than the stored version 1",
        ),
        (
            "expired targets",
            vec![(
                "targets",
                targets(2, -1, &tag("v2", b"m2"), &delegate, &owner.targets, now).expect("t"),
            )],
            "INVALID_UPDATE",
            "expired",
        ),
        (
            "a delegation signing outside its paths",
            vec![(
                "targets/releases",
                targets(1, 365, &tag("v9", b"m9"), &[], &releaser, now).expect("t"),
            )],
            "INVALID_UPDATE",
            "outside the paths delegated",
        ),
        (
            "a new root not signed by the current root key",
            vec![(
                "root",
                usurper
                    .root(2, 3650, &ts_key, &snap_key, now)
                    .expect("root"),
            )],
            "INVALID_UPDATE",
            "current root keys",
        ),
        (
            "a root that drops the server's timestamp key",
            vec![(
                "root",
                owner
                    .root(2, 3650, &releaser_pub, &snap_key, now)
                    .expect("root"),
            )],
            "INVALID_UPDATE",
            "timestamp key",
        ),
    ];
    for (what, files, code, needle) in cases {
        let (s, b) = publish(&reg, &gun, Some(&alice), files);
        assert_eq!(s, 400, "{what}: {b}");
        assert_eq!(b["errors"][0]["code"], code, "{what}: {b}");
        let message = b["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{what}: {message}");
        assert!(
            b["errors"][0]["detail"]["Name"].as_str().is_some(),
            "{what}: {b}"
        );
        assert_eq!(
            fetch(&reg, &gun, &alice, "targets.json").1,
            t1,
            "{what} changed targets"
        );
        assert_eq!(
            fetch(&reg, &gun, &alice, "timestamp.json").1,
            timestamp,
            "{what} changed the timestamp"
        );
    }

    // Bad input: a clear error in the registry's error shape, nothing stored.
    let raw = |content_type: &str, body: &[u8]| {
        let (s, _, b) = reg.send(
            reg.request(
                Method::POST,
                &format!("/v2/{gun}/_trust/tuf/"),
                Some(&alice),
            )
            .header("content-type", content_type)
            .body(body.to_vec()),
        );
        (
            s,
            serde_json::from_slice::<Value>(&b).unwrap_or(Value::Null),
        )
    };
    let (s, b) = raw("application/json", b"{}");
    assert_eq!(
        (s, b["errors"][0]["code"].clone()),
        (400, json!("MALFORMED_UPLOAD")),
        "{b}"
    );
    let no_name = reqwest::blocking::multipart::Form::new().part(
        "files",
        reqwest::blocking::multipart::Part::bytes(t1.clone()),
    );
    let (s, _, b) = reg.send(
        reg.request(
            Method::POST,
            &format!("/v2/{gun}/_trust/tuf/"),
            Some(&alice),
        )
        .multipart(no_name),
    );
    assert_eq!(s, 400, "{}", String::from_utf8_lossy(&b));
    assert!(String::from_utf8_lossy(&b).contains("NO_FILENAME"));
    let (s, b) = publish(
        &reg,
        &gun,
        Some(&alice),
        vec![("targets/../root", t1.clone())],
    );
    assert_eq!(
        (s, b["errors"][0]["code"].clone()),
        (400, json!("INVALID_ROLE")),
        "{b}"
    );
    let (s, b) = publish(
        &reg,
        &gun,
        Some(&alice),
        vec![("targets", b"not json".to_vec())],
    );
    assert_eq!(
        (s, b["errors"][0]["code"].clone()),
        (400, json!("MALFORMED_JSON")),
        "{b}"
    );
    let (s, b) = publish(&reg, &gun, Some(&alice), vec![("timestamp", t1.clone())]);
    assert_eq!(s, 400, "{b}");
    assert!(
        b["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("signed by the server"),
        "{b}"
    );
    let (s, _, b) = reg.send(reg.request(
        Method::GET,
        &format!("/v2/{}/Docker-DCA/app/_trust/tuf/root.json", reg.host),
        Some(&alice),
    ));
    assert_eq!(s, 400, "{}", String::from_utf8_lossy(&b));
    assert!(String::from_utf8_lossy(&b).contains("NAME_INVALID"));
    let other = format!("{}/docker-dca/other", reg.host);
    let owner_token = reg.token(
        Some(("alice", ALICE_PW)),
        &[&format!("repository:{other}:pull")],
    );
    let (s, b) = fetch(&reg, &other, &owner_token, "root.json");
    assert_eq!(s, 404, "{}", String::from_utf8_lossy(&b));
    assert!(String::from_utf8_lossy(&b).contains("METADATA_NOT_FOUND"));
    assert_eq!(
        fetch(&reg, &gun, &alice, "targets.json").1,
        t1,
        "bad input changed targets"
    );

    // Who may publish: not anonymous callers, not users without push.
    let (s, b) = publish(&reg, &gun, None, vec![("targets", t1.clone())]);
    assert_eq!(s, 401, "{b}");
    let dave = reg.token(Some(("dave", "dave-password-1")), &[&scope]);
    let t2 = targets(2, 365, &tag("v2", b"m2"), &delegate, &owner.targets, now).expect("t");
    let (s, b) = publish(&reg, &gun, Some(&dave), vec![("targets", t2.clone())]);
    assert!(s == 403 || s == 404, "dave published: {s} {b}");
    let (s, _) = fetch(&reg, &gun, &dave, "root.json");
    assert_eq!(s, 404, "dave read private trust data");

    // A valid update moves targets, snapshot and timestamp forward, and
    // every version stays readable by version and by checksum.
    let (s, b) = publish(&reg, &gun, Some(&alice), vec![("targets", t2.clone())]);
    assert_eq!(s, 200, "{b}");
    assert_eq!(fetch(&reg, &gun, &alice, "targets.json").1, t2);
    assert_eq!(fetch(&reg, &gun, &alice, "1.targets.json").1, t1);
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&t2));
    assert_eq!(
        fetch(&reg, &gun, &alice, &format!("targets.{sha}.json")).1,
        t2
    );
    let (_, ts2) = fetch(&reg, &gun, &alice, "timestamp.json");
    let version =
        |b: &[u8]| serde_json::from_slice::<Value>(b).expect("json")["signed"]["version"].clone();
    assert_eq!(version(&ts2), json!(2));
    assert_eq!(version(&timestamp), json!(1));
    let inside = targets(1, 365, &tag("release-1", b"m3"), &[], &releaser, now).expect("t");
    let (s, b) = publish(&reg, &gun, Some(&alice), vec![("targets/releases", inside)]);
    assert_eq!(s, 200, "{b}");

    // Rotating the server's timestamp key (repository admins only): the
    // old key signs until a root naming the new one is published.
    let admin = reg.token(Some(("alice", ALICE_PW)), &[&format!("repository:{gun}:*")]);
    let bob = reg.token(Some(("bob", BOB_PW)), &[&format!("repository:{gun}:*")]);
    let rotate = |token: &str| {
        reg.send(reg.request(
            Method::POST,
            &format!("/v2/{gun}/_trust/tuf/timestamp.key"),
            Some(token),
        ))
    };
    let (s, _, _) = rotate(&bob);
    assert!(
        s == 401 || s == 403,
        "bob (read-write) rotated the timestamp key: {s}"
    );
    let (s, _, body) = rotate(&admin);
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    let new_ts: capstan_trust::PublicKey = serde_json::from_slice(&body).expect("key");
    assert_ne!(new_ts, ts_key);
    assert_eq!(server_key(&reg, &gun, &alice, "timestamp"), new_ts);
    let signed_by = |b: &[u8]| {
        serde_json::from_slice::<Value>(b).expect("json")["signatures"][0]["keyid"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(
        signed_by(&fetch(&reg, &gun, &alice, "timestamp.json").1),
        ts_key.id()
    );
    let root2 = owner.root(2, 3650, &new_ts, &snap_key, now).expect("root");
    let (s, b) = publish(&reg, &gun, Some(&alice), vec![("root", root2)]);
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        signed_by(&fetch(&reg, &gun, &alice, "timestamp.json").1),
        new_ts.id()
    );

    // Deleting trust data takes an admin of the repository.
    let (s, _, _) = reg.send(reg.request(
        Method::DELETE,
        &format!("/v2/{gun}/_trust/tuf/"),
        Some(&bob),
    ));
    assert!(
        s == 401 || s == 403,
        "bob (read-write) deleted trust data: {s}"
    );
    let (s, _, _) = reg.send(reg.request(
        Method::DELETE,
        &format!("/v2/{gun}/_trust/tuf/"),
        Some(&admin),
    ));
    assert_eq!(s, 200);
    let (s, body) = fetch(&reg, &gun, &alice, "root.json");
    assert_eq!(s, 404);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).expect("json")["errors"][0]["code"],
        "METADATA_NOT_FOUND"
    );
}

fn set_trust(reg: &Registry, teams: &[&str]) {
    let list: Vec<String> = teams.iter().map(|t| format!("{t:?}")).collect();
    let toml = format!(
        "[trust_configuration]\nrequire_content_trust = true\nrequire_signature_from = [{}]\n",
        list.join(", ")
    );
    let (s, b) = reg.gw.raw(
        Method::PUT,
        "/api/ucp/config-toml",
        Some(&reg.gw.admin),
        "application/toml",
        toml.into_bytes(),
    );
    assert_eq!(s, 200, "config-toml: {b}");
}

fn wait_running(cli: &Docker, service: &str) {
    wait_for(&format!("{service} runs"), Duration::from_secs(90), || {
        let ps = cli.ok(&["service", "ps", service, "--format", "{{.CurrentState}}"]);
        if ps.lines().any(|l| l.starts_with("Running")) {
            Ok(())
        } else {
            Err(ps)
        }
    });
}

/// Seed tutorial step 7: with "run only signed images" and a required
/// team, an unsigned image, one signed only with the repository key and
/// one signed by a member of another team are refused with a message the
/// docker CLI shows (and audited); one signed by a member of the team runs,
/// pinned to the signed digest; changing the setting leaves it running.
#[test]
fn only_images_signed_by_the_required_team_run() {
    let harness = Harness::new().expect("test harness");
    let reg = Registry::start_in_up();
    harness.sweep_label(format!("com.capstan.node.id={}", reg.gw.node_id()));
    reg.license();
    lab(&reg);
    let gw = &reg.gw;
    let alice = cli_user(&reg, "alice", ALICE_PW);
    let repo = format!("{}/docker-dca/app", reg.host);
    let image = |tag: &str| {
        let i = format!("{repo}:{tag}");
        import_image(&i, reg.work(), &format!("enforce-{tag}"));
        i
    };
    let by_owner = image("owner");
    let out = alice.run_env(&trust_env(ALICE_PASSPHRASE), &["push", &by_owner], None);
    assert!(out.ok, "signed push: {}", out.text);
    let bob = bundle_signer(&reg, &alice, &repo, "bob", BOB_PW);
    let carol = bundle_signer(&reg, &alice, &repo, "carol", CAROL_PW);
    let by_ops = image("ops");
    let out = carol.run_env(
        &trust_env(SIGNER_PASSPHRASE),
        &["trust", "sign", &by_ops],
        None,
    );
    assert!(out.ok, "carol signs: {}", out.text);
    let ops_digest = signed_tags(&inspect(&alice, &by_ops))["ops"].0.clone();
    let by_dev = image("dev");
    let out = bob.run_env(
        &trust_env(SIGNER_PASSPHRASE),
        &["trust", "sign", &by_dev],
        None,
    );
    assert!(out.ok, "bob signs: {}", out.text);
    let unsigned = image("unsigned");
    alice.ok(&["push", &unsigned]);

    set_trust(&reg, &["docker-dca/ops"]);
    let cli = Docker::with_token(gw, &gw.login("alice", ALICE_PW).expect("alice logs in"));
    let create = |name: &str, img: &str| {
        cli.run(&[
            "service",
            "create",
            "-d",
            "--no-resolve-image",
            "--name",
            name,
            img,
            "/bin/busybox",
            "sleep",
            "300",
        ])
    };
    for (img, needle) in [
        (&unsigned, "is not signed".to_string()),
        (
            &by_owner,
            "signed by keys that belong to no user's client bundle".to_string(),
        ),
        (
            &by_dev,
            "is signed by bob, but a signature from a member of docker-dca/ops is required"
                .to_string(),
        ),
    ] {
        let r = create("refused", img);
        assert!(!r.ok, "{img} ran: {}", r.stdout);
        assert!(
            r.stderr.contains("content trust is required")
                && r.stderr.contains(img.as_str())
                && r.stderr.contains(&needle),
            "{img}: {}",
            r.stderr
        );
    }
    let r = cli.run(&["run", "-d", &unsigned, "/bin/busybox", "sleep", "300"]);
    assert!(
        !r.ok && r.stderr.contains("is not signed"),
        "docker run of an unsigned image: {}{}",
        r.stdout,
        r.stderr
    );

    let r = create("signed", &by_ops);
    assert!(r.ok, "the ops-signed image was refused: {}", r.stderr);
    wait_running(&cli, "signed");
    let pinned = cli.ok(&[
        "service",
        "inspect",
        "signed",
        "--format",
        "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
    ]);
    assert_eq!(pinned.trim(), format!("{by_ops}@sha256:{ops_digest}"));

    let refusals: Vec<Value> = gw
        .audit()
        .into_iter()
        .filter(|e| e["operation"] == "content-trust")
        .collect();
    for img in [&unsigned, &by_owner, &by_dev] {
        assert!(
            refusals.iter().any(|e| e["decision"] == "deny"
                && e["object"] == img.as_str()
                && e["actor"] == "alice"),
            "no audited refusal of {img}: {refusals:?}"
        );
    }

    // Requiring another team does not stop what runs, nor its scaling.
    // (Bob's later signature of targets/releases, which lists the ops tag
    // too, vouches for it as well, so the new team is one nobody signed for.)
    team(gw, "docker-dca", "qa", &[]);
    set_trust(&reg, &["docker-dca/qa"]);
    cli.ok(&["service", "scale", "-d", "signed=2"]);
    wait_for("the signed service scales", Duration::from_secs(90), || {
        let ps = cli.ok(&[
            "service",
            "ps",
            "signed",
            "--filter",
            "desired-state=running",
            "--format",
            "{{.CurrentState}}",
        ]);
        if ps.lines().filter(|l| l.starts_with("Running")).count() == 2 {
            Ok(())
        } else {
            Err(ps)
        }
    });
    let r = create("ops-again", &by_ops);
    assert!(
        !r.ok
            && r.stderr
                .contains("a signature from a member of docker-dca/qa is required"),
        "{}",
        r.stderr
    );
    cli.ok(&["service", "rm", "signed"]);
}
