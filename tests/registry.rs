//! The registry with real clients: the seed tutorial's push and pull with
//! the stock `docker` CLI (through the machine's engine), `skopeo` copies
//! both ways, multi-arch indexes, mounts, chunked and resumed uploads,
//! MSR permissions, the DTR repository API, bad input, a crash mid-push,
//! and storage housekeeping.

#[path = "support/docker.rs"]
mod docker;
#[path = "support/gateway.rs"]
mod gateway;
#[path = "support/registry.rs"]
mod registry;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use capstan_testkit::Harness;
use docker::Docker;
use gateway::ADMIN_PASSWORD;
use registry::{digest, import_image, member, org, team, wait_for, Registry};
use reqwest::Method;
use serde_json::{json, Value};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn admin() -> Option<(&'static str, &'static str)> {
    Some(("admin", ADMIN_PASSWORD))
}

fn header(h: &reqwest::header::HeaderMap, name: &str) -> String {
    h.get(name)
        .unwrap_or_else(|| panic!("header {name} missing in {h:?}"))
        .to_str()
        .expect("header text")
        .to_string()
}

fn error_code(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("not a JSON error: {}", String::from_utf8_lossy(body)));
    v["errors"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Seed tutorial step 6: the org owner's repository, the push refused
/// without a license with a plain message, accepted after one is uploaded
/// (no restart), and the pull that returns the same digest.
#[test]
fn seed_story_push_needs_a_license_and_pull_returns_the_same_digest() {
    let reg = Registry::start();
    let gw = &reg.gw;
    let pw = "analista-pass-1";
    gw.create_user("analista", pw);
    org(gw, "docker-dca");
    member(gw, "docker-dca", "analista", true);
    let analista = Some(("analista", pw));

    let (s, repo) = reg.api(
        Method::POST,
        "/api/v0/repositories/docker-dca",
        analista,
        Some(json!({"name": "nginx", "visibility": "public", "shortDescription": "the lab's web server"})),
    );
    assert_eq!(s, 201, "{repo}");
    assert_eq!(repo["namespaceType"], "organization");
    assert_eq!(
        repo["pullCommand"],
        format!("docker pull {}/docker-dca/nginx", reg.host)
    );
    let (s, details) = reg.api(
        Method::GET,
        "/api/v0/repositories/docker-dca/nginx",
        analista,
        None,
    );
    assert_eq!(s, 200, "{details}");
    assert_eq!(details["visibility"], "public");
    let (s, tags) = reg.api(
        Method::GET,
        "/api/v0/repositories/docker-dca/nginx/tags",
        analista,
        None,
    );
    assert_eq!((s, tags), (200, json!([])));

    let docker = reg.docker("analista");
    let login = docker.login(&reg.host, "analista", pw);
    assert!(
        login.ok && login.text.contains("Login Succeeded"),
        "{}",
        login.text
    );
    let bad = docker.login(&reg.host, "analista", "wrong-password");
    assert!(!bad.ok, "a wrong password logged in: {}", bad.text);

    let image = format!("{}/docker-dca/nginx:latest", reg.host);
    import_image(&image, reg.work(), "seed");
    let refused = docker.run(&["push", &image], None);
    assert!(!refused.ok, "pushed without a license: {}", refused.text);
    assert!(
        refused.text.contains("no license") && refused.text.contains("License"),
        "the push error does not say the registry has no license: {}",
        refused.text
    );
    assert!(
        reg.stored_blobs().is_empty(),
        "an unlicensed push stored blobs"
    );

    reg.license();
    let pushed = docker.ok(&["push", &image]);
    let pushed_digest = pushed
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no digest in the push output: {pushed}"))
        .to_string();

    docker.ok(&["rmi", &image]);
    docker.ok(&["pull", &image]);
    let repo_digest = docker.ok(&[
        "image",
        "inspect",
        "--format",
        "{{index .RepoDigests 0}}",
        &image,
    ]);
    assert_eq!(
        repo_digest.trim(),
        format!("{}/docker-dca/nginx@{pushed_digest}", reg.host)
    );

    let (s, tags) = reg.api(
        Method::GET,
        "/api/v0/repositories/docker-dca/nginx/tags",
        analista,
        None,
    );
    assert_eq!(s, 200, "{tags}");
    let tag = &tags[0];
    assert_eq!(tag["name"], "latest");
    assert_eq!(tag["digest"], pushed_digest.as_str());
    assert_eq!(tag["author"], "analista");
    assert_eq!(tag["manifest"]["os"], "linux");
    assert!(
        tag["manifest"]["size"].as_u64().unwrap_or(0) > 100_000,
        "{tag}"
    );
    assert_eq!(
        tag["pullCommand"],
        format!("docker pull {}/docker-dca/nginx:latest", reg.host)
    );
    reg.assert_storage_consistent();
}

fn skopeo_ok(reg: &Registry, args: &[&str]) -> String {
    let out = reg.skopeo().args(args).output().expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn skopeo_fails(reg: &Registry, args: &[&str]) -> String {
    let out = reg.skopeo().args(args).output().expect("run skopeo");
    assert!(
        !out.status.success(),
        "skopeo {} succeeded but should not have",
        args.join(" ")
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `skopeo copy` in both directions and `skopeo inspect`; a multi-arch
/// index pushed and pulled; a cross-repository mount; chunked uploads with
/// and without `Content-Range`; an upload interrupted by a registry restart
/// and resumed.
#[test]
fn skopeo_copies_both_ways_and_uploads_chunk_mount_and_resume() {
    let mut reg = Registry::start();
    reg.license();
    let creds = format!("admin:{ADMIN_PASSWORD}");
    let certs = reg.cert_dir();
    let host = reg.host.clone();
    let source = format!("{host}/admin/source:v1");
    import_image(&source, reg.work(), "skopeo");

    // Push from the engine's image store, inspect, pull into an OCI layout,
    // and push that layout back as OCI.
    skopeo_ok(
        &reg,
        &[
            "copy",
            "--dest-cert-dir",
            &certs,
            "--dest-creds",
            &creds,
            &format!("docker-daemon:{source}"),
            &format!("docker://{host}/admin/app:v1"),
        ],
    );
    let inspect: Value = serde_json::from_str(&skopeo_ok(
        &reg,
        &[
            "inspect",
            "--cert-dir",
            &certs,
            "--creds",
            &creds,
            &format!("docker://{host}/admin/app:v1"),
        ],
    ))
    .expect("inspect JSON");
    let raw = skopeo_ok(
        &reg,
        &[
            "inspect",
            "--raw",
            "--cert-dir",
            &certs,
            "--creds",
            &creds,
            &format!("docker://{host}/admin/app:v1"),
        ],
    );
    assert_eq!(inspect["Digest"], digest(raw.as_bytes()).as_str());
    assert_eq!(inspect["RepoTags"], json!(["v1"]));
    let layout = reg.work().join("layout");
    skopeo_ok(
        &reg,
        &[
            "copy",
            "--src-cert-dir",
            &certs,
            "--src-creds",
            &creds,
            &format!("docker://{host}/admin/app:v1"),
            &format!("oci:{}:v1", layout.display()),
        ],
    );
    skopeo_ok(
        &reg,
        &[
            "copy",
            "--format",
            "oci",
            "--dest-cert-dir",
            &certs,
            "--dest-creds",
            &creds,
            &format!("oci:{}:v1", layout.display()),
            &format!("docker://{host}/admin/app-oci:v1"),
        ],
    );
    let oci_raw: Value = serde_json::from_str(&skopeo_ok(
        &reg,
        &[
            "inspect",
            "--raw",
            "--cert-dir",
            &certs,
            "--creds",
            &creds,
            &format!("docker://{host}/admin/app-oci:v1"),
        ],
    ))
    .expect("manifest JSON");
    assert_eq!(oci_raw["mediaType"], OCI_MANIFEST);

    // A multi-arch index of two images.
    let token = reg.token(admin(), &["repository:admin/multi:pull,push"]);
    let amd = reg.push_image("admin/multi", "amd64", &token, "amd64", b"layer for amd64");
    let arm = reg.push_image("admin/multi", "arm64", &token, "arm64", b"layer for arm64");
    let manifest_size = |d: &str| {
        let (s, h, _) = reg.send(reg.request(
            Method::HEAD,
            &format!("/v2/admin/multi/manifests/{d}"),
            Some(&token),
        ));
        assert_eq!(s, 200);
        assert_eq!(header(&h, "docker-content-digest"), d);
        header(&h, "content-length").parse::<u64>().expect("length")
    };
    let index = json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": amd, "size": manifest_size(&amd), "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": OCI_MANIFEST, "digest": arm, "size": manifest_size(&arm), "platform": {"os": "linux", "architecture": "arm64"}},
        ]
    })
    .to_string();
    let (s, h, b) = reg.send(
        reg.request(Method::PUT, "/v2/admin/multi/manifests/v1", Some(&token))
            .header("content-type", OCI_INDEX)
            .body(index.clone()),
    );
    assert_eq!(s, 201, "{}", String::from_utf8_lossy(&b));
    assert_eq!(
        header(&h, "docker-content-digest"),
        digest(index.as_bytes())
    );
    let raw: Value = serde_json::from_str(&skopeo_ok(
        &reg,
        &[
            "inspect",
            "--raw",
            "--cert-dir",
            &certs,
            "--creds",
            &creds,
            &format!("docker://{host}/admin/multi:v1"),
        ],
    ))
    .expect("index JSON");
    assert_eq!(raw["manifests"].as_array().map(Vec::len), Some(2));
    let multi = reg.work().join("multi");
    skopeo_ok(
        &reg,
        &[
            "copy",
            "--all",
            "--src-cert-dir",
            &certs,
            "--src-creds",
            &creds,
            &format!("docker://{host}/admin/multi:v1"),
            &format!("oci:{}:v1", multi.display()),
        ],
    );
    let blob = |d: &str| -> Value {
        let path = multi
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"));
        serde_json::from_slice(&std::fs::read(&path).expect("layout blob")).expect("layout JSON")
    };
    let layout: Value =
        serde_json::from_slice(&std::fs::read(multi.join("index.json")).expect("index.json"))
            .expect("JSON");
    let pulled = blob(
        layout["manifests"][0]["digest"]
            .as_str()
            .expect("index digest"),
    );
    let archs: Vec<&str> = pulled["manifests"]
        .as_array()
        .expect("an index")
        .iter()
        .filter_map(|m| m["platform"]["architecture"].as_str())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"], "{pulled}");
    for m in pulled["manifests"].as_array().expect("index") {
        let image = blob(m["digest"].as_str().expect("digest"));
        assert!(
            image["layers"].as_array().is_some_and(|l| l.len() == 1),
            "{image}"
        );
    }
    let (s, tags) = reg.api(
        Method::GET,
        "/api/v0/repositories/admin/multi/tags/v1",
        admin(),
        None,
    );
    assert_eq!(s, 200, "{tags}");
    let archs: Vec<&str> = tags["manifest"]["platforms"]
        .as_array()
        .expect("platforms")
        .iter()
        .filter_map(|p| p["architecture"].as_str())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"]);

    // An artifact that refers to the amd64 image, and the referrers API.
    let sbom = b"{\"spdxVersion\": \"SPDX-2.3\"}".to_vec();
    let empty = b"{}".to_vec();
    for blob in [&sbom, &empty] {
        assert_eq!(reg.push_blob("admin/multi", &token, blob).0, 201);
    }
    let artifact = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/spdx+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": digest(&empty), "size": 2},
        "layers": [{"mediaType": "application/spdx+json", "digest": digest(&sbom), "size": sbom.len()}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": amd, "size": manifest_size(&amd)},
        "annotations": {"org.example.kind": "sbom"}
    })
    .to_string();
    let (s, h, b) = reg.send(
        reg.request(
            Method::PUT,
            &format!("/v2/admin/multi/manifests/{}", digest(artifact.as_bytes())),
            Some(&token),
        )
        .header("content-type", OCI_MANIFEST)
        .body(artifact.clone()),
    );
    assert_eq!(s, 201, "{}", String::from_utf8_lossy(&b));
    assert_eq!(header(&h, "oci-subject"), amd);
    for (query, expected) in [
        ("", 1),
        ("?artifactType=application/spdx+json", 1),
        ("?artifactType=application/other", 0),
    ] {
        let (s, h, b) = reg.send(reg.request(
            Method::GET,
            &format!("/v2/admin/multi/referrers/{amd}{query}"),
            Some(&token),
        ));
        assert_eq!(s, 200);
        assert_eq!(header(&h, "content-type"), OCI_INDEX);
        if !query.is_empty() {
            assert_eq!(header(&h, "oci-filters-applied"), "artifactType");
        }
        let v: Value = serde_json::from_slice(&b).expect("referrers index");
        let list = v["manifests"].as_array().expect("manifests");
        assert_eq!(list.len(), expected, "{query}: {v}");
        if expected == 1 {
            assert_eq!(list[0]["digest"], digest(artifact.as_bytes()).as_str());
            assert_eq!(list[0]["artifactType"], "application/spdx+json");
            assert_eq!(list[0]["annotations"]["org.example.kind"], "sbom");
        }
    }

    // Cross-repository mount of a layer the caller may pull.
    let layer = digest(b"layer for amd64");
    let token2 = reg.token(
        admin(),
        &[
            "repository:admin/mounted:pull,push",
            "repository:admin/multi:pull",
        ],
    );
    let (s, h, b) = reg.send(reg.request(
        Method::POST,
        &format!("/v2/admin/mounted/blobs/uploads/?mount={layer}&from=admin/multi"),
        Some(&token2),
    ));
    assert_eq!(s, 201, "mount: {}", String::from_utf8_lossy(&b));
    assert_eq!(header(&h, "docker-content-digest"), layer);
    assert_eq!(
        header(&h, "location"),
        format!("/v2/admin/mounted/blobs/{layer}")
    );
    let (s, h, _) = reg.send(reg.request(
        Method::HEAD,
        &format!("/v2/admin/mounted/blobs/{layer}"),
        Some(&token2),
    ));
    assert_eq!(s, 200);
    assert_eq!(
        header(&h, "content-length"),
        b"layer for amd64".len().to_string()
    );
    // A mount from a blob the source does not hold falls back to an upload.
    let (s, h, _) = reg.send(reg.request(
        Method::POST,
        &format!(
            "/v2/admin/mounted/blobs/uploads/?mount={}&from=admin/multi",
            digest(b"nope")
        ),
        Some(&token2),
    ));
    assert_eq!(s, 202);
    assert_eq!(header(&h, "range"), "0-0");

    // Chunked upload: a chunk with Content-Range, a streamed chunk without,
    // a chunk out of order (416), and the last chunk with the PUT.
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let d = digest(&data);
    let token3 = reg.token(admin(), &["repository:admin/chunks:pull,push"]);
    let (s, h, _) = reg.send(reg.request(
        Method::POST,
        "/v2/admin/chunks/blobs/uploads/",
        Some(&token3),
    ));
    assert_eq!(s, 202);
    assert_eq!(header(&h, "range"), "0-0");
    assert!(!header(&h, "docker-upload-uuid").is_empty());
    let mut location = header(&h, "location");
    let (s, h, _) = reg.send(
        reg.request(Method::PATCH, &location, Some(&token3))
            .header("content-type", "application/octet-stream")
            .header("content-range", "0-99999")
            .body(data[..100_000].to_vec()),
    );
    assert_eq!(s, 202);
    assert_eq!(header(&h, "range"), "0-99999");
    location = header(&h, "location");
    let (s, h, _) = reg.send(
        reg.request(Method::PATCH, &location, Some(&token3))
            .header("content-type", "application/octet-stream")
            .body(data[100_000..200_000].to_vec()),
    );
    assert_eq!(s, 202);
    assert_eq!(header(&h, "range"), "0-199999");
    let (s, _, b) = reg.send(
        reg.request(Method::PATCH, &location, Some(&token3))
            .header("content-range", "0-99")
            .body(vec![0u8; 100]),
    );
    assert_eq!(
        s,
        416,
        "an out-of-order chunk: {}",
        String::from_utf8_lossy(&b)
    );
    let (s, h, b) = reg.send(
        reg.request(
            Method::PUT,
            &format!("{location}?digest={d}"),
            Some(&token3),
        )
        .header("content-range", "200000-299999")
        .body(data[200_000..].to_vec()),
    );
    assert_eq!(s, 201, "{}", String::from_utf8_lossy(&b));
    assert_eq!(header(&h, "docker-content-digest"), d);
    let (s, _, body) = reg.send(reg.request(
        Method::GET,
        &format!("/v2/admin/chunks/blobs/{d}"),
        Some(&token3),
    ));
    assert_eq!((s, digest(&body)), (200, d.clone()));
    let (s, h, body) = reg.send(
        reg.request(
            Method::GET,
            &format!("/v2/admin/chunks/blobs/{d}"),
            Some(&token3),
        )
        .header("range", "bytes=10-19"),
    );
    assert_eq!(s, 206);
    assert_eq!(body, data[10..20].to_vec());
    assert_eq!(header(&h, "content-range"), "bytes 10-19/300000");

    // An upload interrupted by a registry restart resumes where it stopped.
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 241) as u8).collect();
    let (s, h, _) = reg.send(reg.request(
        Method::POST,
        "/v2/admin/chunks/blobs/uploads/",
        Some(&token3),
    ));
    assert_eq!(s, 202);
    let location = header(&h, "location");
    let (s, _, _) = reg.send(
        reg.request(Method::PATCH, &location, Some(&token3))
            .body(big[..400_000].to_vec()),
    );
    assert_eq!(s, 202);
    reg.restart();
    let (s, h, _) = reg.send(reg.request(Method::GET, &location, Some(&token3)));
    assert_eq!(s, 204);
    assert_eq!(header(&h, "range"), "0-399999");
    let (s, _, _) = reg.send(
        reg.request(Method::PATCH, &location, Some(&token3))
            .header("content-range", "400000-999999")
            .body(big[400_000..].to_vec()),
    );
    assert_eq!(s, 202);
    let (s, _, b) = reg.send(reg.request(
        Method::PUT,
        &format!("{location}?digest={}", digest(&big)),
        Some(&token3),
    ));
    assert_eq!(s, 201, "{}", String::from_utf8_lossy(&b));
    let (s, _, body) = reg.send(reg.request(
        Method::GET,
        &format!("/v2/admin/chunks/blobs/{}", digest(&big)),
        Some(&token3),
    ));
    assert_eq!((s, body.len()), (200, big.len()));
    reg.assert_storage_consistent();
}

/// MSR permissions: a read-only team member pulls but does not push until
/// given read-write; an outsider sees no private repository, not even in
/// the catalog; anonymous users pull public repositories and push nothing.
#[test]
fn team_permissions_private_repositories_and_anonymous_pulls() {
    let reg = Registry::start();
    reg.license();
    let gw = &reg.gw;
    gw.create_user("bob", "bob-password-1");
    gw.create_user("eve", "eve-password-1");
    org(gw, "dca");
    member(gw, "dca", "bob", false);
    team(gw, "dca", "readers", &["bob"]);
    for (name, visibility) in [("private", "private"), ("public", "public")] {
        let (s, b) = reg.api(
            Method::POST,
            "/api/v0/repositories/dca",
            admin(),
            Some(json!({"name": name, "visibility": visibility})),
        );
        assert_eq!(s, 201, "{b}");
    }
    let (s, b) = reg.api(
        Method::PUT,
        "/api/v0/repositories/dca/private/teamAccess/readers",
        admin(),
        Some(json!({"accessLevel": "read-only"})),
    );
    assert_eq!(s, 200, "{b}");
    let token = reg.token(
        admin(),
        &[
            "repository:dca/private:pull,push",
            "repository:dca/public:pull,push",
        ],
    );
    reg.push_image("dca/private", "v1", &token, "amd64", b"private layer");
    reg.push_image("dca/public", "v1", &token, "amd64", b"public layer");

    let certs = reg.cert_dir();
    let host = reg.host.clone();
    let source = format!("{host}/dca/source:v1");
    import_image(&source, reg.work(), "permissions");
    let bob = "bob:bob-password-1";
    let eve = "eve:eve-password-1";
    skopeo_ok(
        &reg,
        &[
            "inspect",
            "--cert-dir",
            &certs,
            "--creds",
            bob,
            &format!("docker://{host}/dca/private:v1"),
        ],
    );
    let denied = skopeo_fails(
        &reg,
        &[
            "copy",
            "--dest-cert-dir",
            &certs,
            "--dest-creds",
            bob,
            &format!("docker-daemon:{source}"),
            &format!("docker://{host}/dca/private:v2"),
        ],
    );
    assert!(denied.contains("denied"), "{denied}");
    let hidden = skopeo_fails(
        &reg,
        &[
            "inspect",
            "--cert-dir",
            &certs,
            "--creds",
            eve,
            &format!("docker://{host}/dca/private:v1"),
        ],
    );
    assert!(
        hidden.contains("unknown") || hidden.contains("not found"),
        "{hidden}"
    );
    skopeo_ok(
        &reg,
        &[
            "inspect",
            "--cert-dir",
            &certs,
            "--no-creds",
            &format!("docker://{host}/dca/public:v1"),
        ],
    );
    let anonymous = skopeo_fails(
        &reg,
        &[
            "copy",
            "--dest-cert-dir",
            &certs,
            "--dest-no-creds",
            &format!("docker-daemon:{source}"),
            &format!("docker://{host}/dca/public:v2"),
        ],
    );
    assert!(
        anonymous.contains("authentication required") || anonymous.contains("unauthorized"),
        "{anonymous}"
    );

    let catalog = |creds: Option<(&str, &str)>| -> Vec<String> {
        let t = reg.token(creds, &["registry:catalog:*"]);
        let (s, _, b) = reg.send(reg.request(Method::GET, "/v2/_catalog", Some(&t)));
        assert_eq!(s, 200);
        let v: Value = serde_json::from_slice(&b).expect("catalog JSON");
        serde_json::from_value(v["repositories"].clone()).expect("names")
    };
    assert!(catalog(Some(("bob", "bob-password-1"))).contains(&"dca/private".to_string()));
    assert_eq!(catalog(Some(("eve", "eve-password-1"))), ["dca/public"]);
    assert_eq!(catalog(None), ["dca/public"]);
    assert_eq!(catalog(admin()), ["dca/private", "dca/public"]);

    // The DTR API answers the same decisions.
    let (s, _) = reg.api(
        Method::GET,
        "/api/v0/repositories/dca/private",
        Some(("eve", "eve-password-1")),
        None,
    );
    assert_eq!(s, 404);
    let (s, b) = reg.api(
        Method::DELETE,
        "/api/v0/repositories/dca/private/tags/v1",
        Some(("bob", "bob-password-1")),
        None,
    );
    assert_eq!(s, 403, "{b}");
    assert_eq!(b["errors"][0]["code"], "NOT_AUTHORIZED");
    let (s, list) = reg.api(
        Method::GET,
        "/api/v0/repositories/dca",
        Some(("eve", "eve-password-1")),
        None,
    );
    assert_eq!(s, 200);
    assert_eq!(
        list["repositories"].as_array().map(Vec::len),
        Some(1),
        "{list}"
    );

    // Read-write lets bob push.
    let (s, b) = reg.api(
        Method::PUT,
        "/api/v0/repositories/dca/private/teamAccess/readers",
        admin(),
        Some(json!({"accessLevel": "read-write"})),
    );
    assert_eq!(s, 200, "{b}");
    skopeo_ok(
        &reg,
        &[
            "copy",
            "--dest-cert-dir",
            &certs,
            "--dest-creds",
            bob,
            &format!("docker-daemon:{source}"),
            &format!("docker://{host}/dca/private:v2"),
        ],
    );
    let (s, access) = reg.api(
        Method::GET,
        "/api/v0/repositories/dca/private/teamAccess",
        admin(),
        None,
    );
    assert_eq!(s, 200);
    assert_eq!(access["teamAccessList"][0]["accessLevel"], "read-write");
    // A bad level, a missing team and a user's repository are refused.
    let (s, b) = reg.api(
        Method::PUT,
        "/api/v0/repositories/dca/private/teamAccess/readers",
        admin(),
        Some(json!({"accessLevel": "owner"})),
    );
    assert_eq!(s, 400, "{b}");
    let (s, b) = reg.api(
        Method::PUT,
        "/api/v0/repositories/dca/private/teamAccess/ghosts",
        admin(),
        Some(json!({"accessLevel": "read-only"})),
    );
    assert_eq!(
        (s, b["errors"][0]["code"].as_str()),
        (404, Some("NO_SUCH_TEAM"))
    );
}

/// Bad input gets the spec's error codes and leaves nothing half-written.
#[test]
fn bad_input_gets_registry_errors_and_leaves_nothing_behind() {
    let reg = Registry::start();
    reg.license();
    let token = reg.token(admin(), &["repository:admin/bad:pull,push"]);
    let data = b"some layer bytes".to_vec();
    let d = digest(&data);

    // Wrong digest, monolithic and at the end of an upload.
    let wrong = digest(b"something else");
    let (s, _, b) = reg.send(
        reg.request(
            Method::POST,
            &format!("/v2/admin/bad/blobs/uploads/?digest={wrong}"),
            Some(&token),
        )
        .body(data.clone()),
    );
    assert_eq!((s, error_code(&b)), (400, "DIGEST_INVALID".into()));
    // A truncated blob: fewer bytes than the digest was made of.
    let (s, _, b) = reg.send(
        reg.request(
            Method::POST,
            &format!("/v2/admin/bad/blobs/uploads/?digest={d}"),
            Some(&token),
        )
        .body(data[..5].to_vec()),
    );
    assert_eq!((s, error_code(&b)), (400, "DIGEST_INVALID".into()));
    let (s, h, _) =
        reg.send(reg.request(Method::POST, "/v2/admin/bad/blobs/uploads/", Some(&token)));
    assert_eq!(s, 202);
    let loc = header(&h, "location");
    let (s, _, b) = reg.send(
        reg.request(Method::PUT, &format!("{loc}?digest={wrong}"), Some(&token))
            .body(data.clone()),
    );
    assert_eq!((s, error_code(&b)), (400, "DIGEST_INVALID".into()));
    let (s, _, b) = reg.send(
        reg.request(Method::PUT, &format!("{loc}?digest={d}"), Some(&token))
            .body(data.clone()),
    );
    assert_eq!(
        (s, error_code(&b)),
        (404, "BLOB_UPLOAD_UNKNOWN".into()),
        "a failed upload is gone"
    );
    let (s, _, b) = reg.send(
        reg.request(
            Method::POST,
            "/v2/admin/bad/blobs/uploads/?digest=sha256:1234",
            Some(&token),
        )
        .body(data.clone()),
    );
    assert_eq!((s, error_code(&b)), (400, "DIGEST_INVALID".into()));
    assert!(
        !reg.has_blob(&wrong) && !reg.has_blob(&d),
        "a blob that failed verification was kept"
    );
    let (s, _, b) = reg.send(reg.request(
        Method::HEAD,
        &format!("/v2/admin/bad/blobs/{d}"),
        Some(&token),
    ));
    assert_eq!((s, b.len()), (404, 0));
    let (s, _, b) = reg.send(reg.request(
        Method::GET,
        &format!("/v2/admin/bad/blobs/{d}"),
        Some(&token),
    ));
    assert_eq!((s, error_code(&b)), (404, "BLOB_UNKNOWN".into()));

    // Manifests: missing blobs, invalid JSON, unknown media type, too big,
    // a digest reference that does not match.
    let missing = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d, "size": data.len()},
        "layers": []}).to_string();
    let put = |reference: &str, ct: &str, body: Vec<u8>| {
        reg.send(
            reg.request(
                Method::PUT,
                &format!("/v2/admin/bad/manifests/{reference}"),
                Some(&token),
            )
            .header("content-type", ct)
            .body(body),
        )
    };
    let (s, _, b) = put("v1", OCI_MANIFEST, missing.clone().into_bytes());
    assert_eq!((s, error_code(&b)), (400, "MANIFEST_BLOB_UNKNOWN".into()));
    let (s, _, b) = put("v1", OCI_MANIFEST, b"{\"schemaVersion\": 2, ".to_vec());
    assert_eq!((s, error_code(&b)), (400, "MANIFEST_INVALID".into()));
    let (s, _, b) = put(
        "v1",
        "application/vnd.example.thing+json",
        br#"{"schemaVersion": 2}"#.to_vec(),
    );
    assert_eq!((s, error_code(&b)), (400, "MANIFEST_INVALID".into()));
    let (s, _, b) = put("v1", OCI_MANIFEST, vec![b' '; 5 << 20]);
    assert_eq!((s, error_code(&b)), (413, "MANIFEST_INVALID".into()));
    let (s, _, b) = put(&digest(b"other"), OCI_MANIFEST, missing.into_bytes());
    assert!(
        s == 400 && ["DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN"].contains(&error_code(&b).as_str()),
        "{s}"
    );
    let (s, _, b) = put("bad tag!", OCI_MANIFEST, b"{}".to_vec());
    assert_eq!((s, error_code(&b)), (400, "TAG_INVALID".into()));
    let (s, _, b) =
        reg.send(reg.request(Method::GET, "/v2/admin/bad/manifests/nope", Some(&token)));
    assert_eq!((s, error_code(&b)), (404, "MANIFEST_UNKNOWN".into()));

    // Names: upper case, three components, traversal (sent as is by curl).
    let curl = |path: &str| -> (u16, String) {
        let out = Command::new("curl")
            .args(["-s", "--path-as-is", "--cacert"])
            .arg(reg.gw.data_dir().join("pki/ca.crt"))
            .args([
                "-H",
                &format!("Authorization: Bearer {token}"),
                "-w",
                "\n%{http_code}",
            ])
            .arg(format!("https://{}{path}", reg.host))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').expect("status line");
        (code.parse().expect("status"), body.to_string())
    };
    for path in [
        "/v2/Admin/bad/tags/list",
        "/v2/admin/bad/deeper/tags/list",
        "/v2/admin/../../etc/tags/list",
        "/v2/admin/%2e%2e/tags/list",
        "/v2/admin/bad..x/manifests/latest",
    ] {
        let (s, b) = curl(path);
        assert_eq!(s, 400, "{path}: {b}");
        assert_eq!(error_code(b.as_bytes()), "NAME_INVALID", "{path}");
    }
    let (s, b) = curl("/v2/admin/bad/blobs/sha256:..%2f..%2fetc");
    assert_eq!(
        (s, error_code(b.as_bytes())),
        (400, "DIGEST_INVALID".into())
    );
    let (s, b) = curl("/v2/admin/bad/blobs/uploads/..%2f..%2fmeta");
    assert_eq!(
        (s, error_code(b.as_bytes())),
        (404, "BLOB_UPLOAD_UNKNOWN".into())
    );
    let (s, _, b) =
        reg.send(reg.request(Method::GET, "/v2/admin/bad/tags/list?n=lots", Some(&token)));
    assert_eq!(
        (s, error_code(&b)),
        (400, "PAGINATION_NUMBER_INVALID".into())
    );

    // Nothing half-written: every blob matches its name, and no upload
    // remains (the one left open was cancelled).
    let (s, _, _) = reg.send(reg.request(Method::DELETE, &loc, Some(&token)));
    assert_eq!(s, 404, "the failed upload was removed already");
    reg.assert_storage_consistent();
    assert!(reg.stored_blobs().is_empty(), "{:?}", reg.stored_blobs());
    assert_eq!(reg.uploads(), Vec::<std::path::PathBuf>::new());
}

/// A `kill -9` of the registry in the middle of a push leaves no partial
/// blob, and pushing again after the restart succeeds.
#[test]
fn a_crash_mid_push_leaves_no_partial_blob_and_a_retry_succeeds() {
    let mut reg = Registry::start();
    reg.license();
    let token = reg.token(admin(), &["repository:admin/crash:pull,push"]);
    let data: Vec<u8> = (0..8_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let d = digest(&data);
    let file = reg.work().join("blob");
    std::fs::write(&file, &data).expect("write the blob");
    // curl streams the blob slowly; the registry dies under it.
    let mut curl = Command::new("curl")
        .args(["-s", "--limit-rate", "1M", "-X", "POST", "--cacert"])
        .arg(reg.gw.data_dir().join("pki/ca.crt"))
        .args([
            "-H",
            &format!("Authorization: Bearer {token}"),
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
        ])
        .arg(format!("@{}", file.display()))
        .arg(format!(
            "https://{}/v2/admin/crash/blobs/uploads/?digest={d}",
            reg.host
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("curl");
    let started = Instant::now();
    // Wait until the upload has bytes on disk, then kill.
    loop {
        let written: u64 = reg
            .uploads()
            .iter()
            .filter_map(|u| std::fs::metadata(u.join("data")).ok())
            .map(|m| m.len())
            .sum();
        if written > 500_000 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the upload never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    reg.crash();
    let _ = curl.wait();
    assert!(!reg.has_blob(&d), "a partial upload became a blob");
    reg.assert_storage_consistent();
    reg.restart();
    let (s, b) = reg.push_blob("admin/crash", &token, &data);
    assert_eq!(s, 201, "{b}");
    let (s, _, body) = reg.send(reg.request(
        Method::GET,
        &format!("/v2/admin/crash/blobs/{d}"),
        Some(&token),
    ));
    assert_eq!((s, digest(&body)), (200, d.clone()));
    reg.assert_storage_consistent();
}

/// The DTR repository API and storage housekeeping: validation, immutable
/// tags, the tag limit, pagination, deletes, usage and garbage collection.
#[test]
fn repository_api_tags_retention_pagination_deletes_and_gc() {
    // Blobs and untagged manifests older than a second are garbage.
    let reg = Registry::start_with(&[("CAPSTAN_REGISTRY_UPLOAD_TIMEOUT", "1s")]);
    reg.license();
    let gw = &reg.gw;
    gw.create_user("ana", "ana-password-1");
    let ana = Some(("ana", "ana-password-1"));

    // Validation of repository requests.
    for (body, code) in [
        (json!({"name": "Bad Name"}), "INVALID_REPOSITORY_NAME"),
        (
            json!({"name": "ok", "visibility": "secret"}),
            "INVALID_JSON",
        ),
        (json!({"name": "ok", "colour": "red"}), "INVALID_JSON"),
        (
            json!({"name": "ok", "shortDescription": "x".repeat(141)}),
            "INVALID_JSON",
        ),
    ] {
        let (s, b) = reg.api(
            Method::POST,
            "/api/v0/repositories/ana",
            ana,
            Some(body.clone()),
        );
        assert_eq!(
            (s, b["errors"][0]["code"].as_str()),
            (400, Some(code)),
            "{body}: {b}"
        );
    }
    let (s, b) = reg.api(
        Method::POST,
        "/api/v0/repositories/admin",
        ana,
        Some(json!({"name": "mine"})),
    );
    assert_eq!(
        (s, b["errors"][0]["code"].as_str()),
        (403, Some("NOT_AUTHORIZED")),
        "{b}"
    );
    let (s, b) = reg.api(
        Method::POST,
        "/api/v0/repositories/nobody",
        admin(),
        Some(json!({"name": "x"})),
    );
    assert_eq!(
        (s, b["errors"][0]["code"].as_str()),
        (404, Some("NO_SUCH_ACCOUNT")),
        "{b}"
    );
    let (s, b) = reg.api(
        Method::POST,
        "/api/v0/repositories/ana",
        None,
        Some(json!({"name": "x"})),
    );
    assert_eq!(s, 401, "{b}");
    let (s, b) = reg.api(
        Method::POST,
        "/api/v0/repositories/ana",
        ana,
        Some(json!({"name": "app", "visibility": "private", "immutableTags": true})),
    );
    assert_eq!(s, 201, "{b}");
    let (s, b) = reg.api(
        Method::POST,
        "/api/v0/repositories/ana",
        ana,
        Some(json!({"name": "app"})),
    );
    assert_eq!(
        (s, b["errors"][0]["code"].as_str()),
        (409, Some("REPOSITORY_EXISTS"))
    );

    // Immutable tags: the same content again is fine, other content is not.
    let token = reg.token(ana, &["repository:ana/app:pull,push,delete"]);
    let first = reg.push_image("ana/app", "v1", &token, "amd64", b"first");
    assert_eq!(
        reg.push_image("ana/app", "v1", &token, "amd64", b"first"),
        first
    );
    let config = json!({"architecture": "amd64", "os": "linux"}).to_string();
    assert_eq!(reg.push_blob("ana/app", &token, config.as_bytes()).0, 201);
    assert_eq!(reg.push_blob("ana/app", &token, b"second").0, 201);
    let other = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config.as_bytes()), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(b"second"), "size": 6}]}).to_string();
    let (s, _, b) = reg.send(
        reg.request(Method::PUT, "/v2/ana/app/manifests/v1", Some(&token))
            .header("content-type", OCI_MANIFEST)
            .body(other),
    );
    assert_eq!((s, error_code(&b)), (403, "DENIED".into()));
    assert!(String::from_utf8_lossy(&b).contains("immutable"));

    // Tag limit: the least recently pushed tags go.
    let (s, b) = reg.api(
        Method::PATCH,
        "/api/v0/repositories/ana/app",
        ana,
        Some(json!({"immutableTags": false, "tagLimit": 3})),
    );
    assert_eq!(s, 200, "{b}");
    for (i, tag) in ["v2", "v3", "v4", "v5"].iter().enumerate() {
        std::thread::sleep(Duration::from_millis(20));
        reg.push_image(
            "ana/app",
            tag,
            &token,
            "amd64",
            format!("layer {i}").as_bytes(),
        );
    }
    let names = |t: &str, q: &str| -> (Vec<String>, Option<String>) {
        let (s, h, b) =
            reg.send(reg.request(Method::GET, &format!("/v2/ana/app/tags/list{q}"), Some(t)));
        assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
        let v: Value = serde_json::from_slice(&b).expect("tags JSON");
        (
            serde_json::from_value(v["tags"].clone()).expect("tags"),
            h.get("link").map(|l| l.to_str().expect("link").to_string()),
        )
    };
    assert_eq!(names(&token, "").0, ["v3", "v4", "v5"]);
    let (page, link) = names(&token, "?n=2");
    assert_eq!(page, ["v3", "v4"]);
    assert_eq!(
        link.as_deref(),
        Some("</v2/ana/app/tags/list?n=2&last=v4>; rel=\"next\"")
    );
    assert_eq!(
        names(&token, "?n=2&last=v4"),
        (vec!["v5".to_string()], None)
    );

    // Deletes: a tag through the DTR API, a manifest by digest, a blob.
    let (s, _) = reg.api(
        Method::DELETE,
        "/api/v0/repositories/ana/app/tags/v3",
        ana,
        None,
    );
    assert_eq!(s, 204);
    let (s, b) = reg.api(
        Method::DELETE,
        "/api/v0/repositories/ana/app/tags/v3",
        ana,
        None,
    );
    assert_eq!(
        (s, b["errors"][0]["code"].as_str()),
        (404, Some("NO_SUCH_TAG"))
    );
    let (s, tag) = reg.api(
        Method::GET,
        "/api/v0/repositories/ana/app/tags/v4",
        ana,
        None,
    );
    assert_eq!(s, 200);
    let v4 = tag["digest"].as_str().expect("digest").to_string();
    let (s, _, _) = reg.send(reg.request(
        Method::DELETE,
        &format!("/v2/ana/app/manifests/{v4}"),
        Some(&token),
    ));
    assert_eq!(s, 202);
    let (s, _, b) = reg.send(reg.request(Method::GET, "/v2/ana/app/manifests/v4", Some(&token)));
    assert_eq!((s, error_code(&b)), (404, "MANIFEST_UNKNOWN".into()));
    assert_eq!(names(&token, "").0, ["v5"]);

    // Usage counts what the remaining manifests reference.
    let (s, repo) = reg.api(Method::GET, "/api/v0/repositories/ana/app", ana, None);
    assert_eq!(s, 200);
    let used = repo["storageBytes"].as_u64().expect("storageBytes");
    assert!(used > 0, "{repo}");

    // Garbage collection: admins only. It deletes the untagged manifests
    // (v1 to v4, whose tags retention and deletes removed) and the blobs
    // only they referenced; what v5 references stays.
    let (s, _) = reg.api(Method::POST, "/api/v0/gc", ana, None);
    assert_eq!(s, 403);
    let (s, _, body) = reg.send(reg.request(Method::GET, "/v2/ana/app/manifests/v5", Some(&token)));
    assert_eq!(s, 200);
    let v5: Value = serde_json::from_slice(&body).expect("manifest");
    let keep: Vec<String> = [&v5["config"]["digest"], &v5["layers"][0]["digest"]]
        .iter()
        .map(|d| d.as_str().expect("digest").to_string())
        .collect();
    let v1_layer = digest(b"first");
    assert!(reg.has_blob(&v1_layer));
    std::thread::sleep(Duration::from_millis(1500));
    let before = reg.stored_blobs().len();
    let (s, report) = reg.api(Method::POST, "/api/v0/gc", admin(), None);
    assert_eq!(s, 200, "{report}");
    assert!(report["manifests_deleted"].as_u64() >= Some(3), "{report}");
    assert!(report["removed"].as_u64() >= Some(4), "{report}");
    assert_eq!(
        reg.stored_blobs().len(),
        before - report["removed"].as_u64().unwrap_or(0) as usize
    );
    assert!(!reg.has_blob(&v1_layer), "v1's layer survived: {report}");
    for d in &keep {
        assert!(reg.has_blob(d), "{d} of v5 was collected");
    }
    let (s, _, b) = reg.send(reg.request(
        Method::GET,
        &format!("/v2/ana/app/manifests/{first}"),
        Some(&token),
    ));
    assert_eq!((s, error_code(&b)), (404, "MANIFEST_UNKNOWN".into()));
    let (s, _, body) = reg.send(reg.request(
        Method::GET,
        &format!("/v2/ana/app/blobs/{}", keep[1]),
        Some(&token),
    ));
    assert_eq!((s, digest(&body)), (200, keep[1].clone()));
    let (s, repo) = reg.api(Method::GET, "/api/v0/repositories/ana/app", ana, None);
    assert_eq!(s, 200);
    assert!(repo["storageBytes"].as_u64() < Some(used), "{repo}");
    // A blob deleted from the repository is no longer served from it.
    let (s, _, _) = reg.send(reg.request(
        Method::DELETE,
        &format!("/v2/ana/app/blobs/{}", keep[1]),
        Some(&token),
    ));
    assert_eq!(s, 202);
    let (s, _, _) = reg.send(reg.request(
        Method::HEAD,
        &format!("/v2/ana/app/blobs/{}", keep[1]),
        Some(&token),
    ));
    assert_eq!(s, 404);

    // Deleting the repository removes it for everyone.
    let (s, _) = reg.api(Method::DELETE, "/api/v0/repositories/ana/app", ana, None);
    assert_eq!(s, 204);
    let (s, _, b) = reg.send(reg.request(Method::GET, "/v2/ana/app/tags/list", Some(&token)));
    assert_eq!((s, error_code(&b)), (404, "NAME_UNKNOWN".into()));
    reg.assert_storage_consistent();
}

/// The token endpoint and the challenge, as Docker's token spec has them.
#[test]
fn token_endpoint_and_challenges_follow_the_token_spec() {
    let reg = Registry::start();
    let (s, h, b) = reg.send(reg.request(Method::GET, "/v2/", None));
    assert_eq!((s, error_code(&b)), (401, "UNAUTHORIZED".into()));
    assert_eq!(
        header(&h, "www-authenticate"),
        format!(
            "Bearer realm=\"https://{}/auth/token\",service=\"capstan-registry\"",
            reg.host
        )
    );
    assert_eq!(
        header(&h, "docker-distribution-api-version"),
        "registry/2.0"
    );
    let (s, h, _) = reg.send(reg.request(Method::GET, "/v2/admin/x/tags/list", None));
    assert_eq!(s, 401);
    assert!(header(&h, "www-authenticate").ends_with(",scope=\"repository:admin/x:pull\""));

    let resp = reg
        .request(
            Method::GET,
            "/auth/token?service=capstan-registry&scope=repository:admin/x:pull,push",
            None,
        )
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .expect("token");
    assert_eq!(resp.status().as_u16(), 200);
    let answer: Value = resp.json().expect("JSON");
    assert_eq!(answer["token"], answer["access_token"]);
    assert!(
        answer["expires_in"]
            .as_u64()
            .is_some_and(|s| s > 0 && s <= 3600),
        "{answer}"
    );
    assert!(
        answer["issued_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{answer}"
    );
    let token = answer["token"].as_str().expect("token");
    let (s, _, _) = reg.send(reg.request(Method::GET, "/v2/", Some(token)));
    assert_eq!(s, 200);

    let resp = reg
        .request(Method::GET, "/auth/token?service=capstan-registry", None)
        .basic_auth("admin", Some("wrong password"))
        .send()
        .expect("token");
    assert_eq!(resp.status().as_u16(), 401);
    let resp = reg
        .request(Method::GET, "/auth/token?service=elsewhere", None)
        .send()
        .expect("token");
    assert_eq!(resp.status().as_u16(), 400);
    let resp = reg
        .request(Method::POST, "/auth/token", None)
        .form(&[
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
            ("service", "capstan-registry"),
            ("scope", "repository:admin/x:pull"),
        ])
        .send()
        .expect("token");
    assert_eq!(resp.status().as_u16(), 200);
    let resp = reg
        .request(Method::POST, "/auth/token", None)
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .expect("token");
    assert_eq!(resp.status().as_u16(), 400);
    let (s, _, _) = reg.send(reg.request(Method::GET, "/v2/", Some("not.a.token")));
    assert_eq!(s, 401);
    // A session token of the control plane works as a password.
    let session = reg.gw.login("admin", ADMIN_PASSWORD).expect("login");
    let resp = reg
        .request(Method::GET, "/auth/token?service=capstan-registry", None)
        .basic_auth("admin", Some(session))
        .send()
        .expect("token");
    assert_eq!(resp.status().as_u16(), 200);
    // The registry serves a certificate the control plane issued for its
    // public host, not the node's own.
    let served = std::fs::read_to_string(reg.storage().join("server.crt")).expect("server.crt");
    let node = std::fs::read_to_string(reg.gw.data_dir().join("pki/node.crt")).expect("node.crt");
    assert!(served.contains("BEGIN CERTIFICATE") && served != node);
    // The control plane answers its registry calls only to node certificates.
    let (s, _) = reg.gw.get("/api/registry/directory", &reg.gw.admin);
    assert_eq!(s, 401);
    let (s, install) = reg.gw.get("/api/registries/install", &reg.gw.admin);
    assert_eq!(s, 200, "{install}");
    let ca = std::fs::read_to_string(reg.gw.data_dir().join("pki/ca.crt")).expect("CA");
    assert_eq!(install["ucp_url"], reg.gw.base.as_str());
    assert_eq!(install["ucp_ca"], ca.trim_end());
    assert_eq!(
        install["command"],
        format!(
            "capstan registry install --ucp-url {} --ucp-ca \"{}\" --ucp-username admin",
            reg.gw.base,
            ca.trim_end()
        )
    );
    let (s, list) = reg.gw.get("/api/registries", &reg.gw.admin);
    assert_eq!(s, 200);
    assert_eq!(list[0]["url"], format!("https://{}", reg.host));
}

/// `capstan up` runs a registry beside the manager.
#[test]
fn capstan_up_runs_a_registry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = |_: u8| {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port")
    };
    let registry_port = port(0);
    let mut child = gateway::capstan()
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args([
            "up",
            "--controller-port",
            &port(1).to_string(),
            "--swarm-port",
            &port(2).to_string(),
            "--kube-apiserver-port",
            &port(3).to_string(),
            "--registry-port",
            &registry_port.to_string(),
            "--engine-proxy-port",
            "0",
        ])
        .env("DOCKER_HOST", "unix:///nonexistent.sock")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn capstan up");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let line = lines
        .find(|l| l.as_ref().is_ok_and(|l| l.contains("registry:")))
        .and_then(Result::ok);
    let ca = std::fs::read(dir.path().join("data/pki/ca.crt"));
    let answer = ca.ok().and_then(|ca| {
        let client = reqwest::blocking::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).ok()?)
            .build()
            .ok()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = client
                .get(format!("https://127.0.0.1:{registry_port}/v2/"))
                .send()
            {
                let challenge = r
                    .headers()
                    .get("www-authenticate")
                    .map(|v| v.to_str().unwrap_or("").to_string());
                return Some((r.status().as_u16(), challenge));
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("capstan up printed no registry line");
    assert!(
        line.contains(&format!("https://127.0.0.1:{registry_port}")),
        "{line}"
    );
    let (status, challenge) = answer.expect("the registry of capstan up never answered");
    assert_eq!(status, 401);
    assert!(challenge.unwrap_or_default().contains(&format!(
        "realm=\"https://127.0.0.1:{registry_port}/auth/token\""
    )));
}

/// A service whose image lives in the cluster's registry is pulled by the
/// agent with a short-lived ticket of the service's owner: the owner's
/// private image runs, and a user who may not pull it gets a rejected
/// task that says why.
#[test]
fn services_pull_registry_images_with_their_owners_rights() {
    let harness = Harness::new().expect("test harness");
    let reg = Registry::start_in_up();
    harness.sweep_label(format!("com.capstan.node.id={}", reg.gw.node_id()));
    reg.license();
    let gw = &reg.gw;
    gw.create_user("dev", "dev-password-1");
    gw.create_user("eve", "eve-password-1");
    let pusher = reg.docker("dev");
    let login = pusher.login(&reg.host, "dev", "dev-password-1");
    assert!(login.ok, "{}", login.text);
    let image = format!("{}/dev/app:v1", reg.host);
    import_image(&image, reg.work(), "service");
    pusher.ok(&["push", &image]);
    // The engine must pull it again, through the agent.
    pusher.ok(&["rmi", &image]);

    let dev = Docker::with_token(gw, &gw.login("dev", "dev-password-1").expect("dev logs in"));
    let eve = Docker::with_token(gw, &gw.login("eve", "eve-password-1").expect("eve logs in"));
    for (cli, name) in [(&dev, "devsvc"), (&eve, "evesvc")] {
        cli.ok(&[
            "service",
            "create",
            "-d",
            "--no-resolve-image",
            "--name",
            name,
            &image,
            "/bin/busybox",
            "sleep",
            "300",
        ]);
    }
    wait_for("dev's service runs", Duration::from_secs(90), || {
        let ps = dev.ok(&["service", "ps", "devsvc", "--format", "{{.CurrentState}}"]);
        if ps.starts_with("Running") {
            Ok(())
        } else {
            Err(ps)
        }
    });
    wait_for("eve's task is refused", Duration::from_secs(90), || {
        let ps = eve.ok(&[
            "service",
            "ps",
            "evesvc",
            "--no-trunc",
            "--format",
            "{{.CurrentState}}|{{.Error}}",
        ]);
        let refused = ps.lines().any(|l| {
            (l.starts_with("Rejected") || l.starts_with("Failed")) && l.contains("dev/app")
        });
        if refused {
            assert!(ps.contains("eve may not pull"), "{ps}");
            Ok(())
        } else {
            Err(ps)
        }
    });
    for (cli, name) in [(&dev, "devsvc"), (&eve, "evesvc")] {
        cli.ok(&["service", "rm", name]);
    }
}

/// Uploads nobody finishes expire; deletes can be switched off.
#[test]
fn idle_uploads_expire_and_deletes_can_be_disabled() {
    let reg = Registry::start_with(&[
        ("CAPSTAN_REGISTRY_UPLOAD_TIMEOUT", "1s"),
        ("CAPSTAN_REGISTRY_HOUSEKEEPING_INTERVAL", "1s"),
        ("CAPSTAN_REGISTRY_DELETES", "off"),
    ]);
    reg.license();
    let token = reg.token(admin(), &["repository:admin/idle:pull,push,delete"]);
    let (s, h, _) =
        reg.send(reg.request(Method::POST, "/v2/admin/idle/blobs/uploads/", Some(&token)));
    assert_eq!(s, 202);
    let location = header(&h, "location");
    let (s, _, _) = reg.send(
        reg.request(Method::PATCH, &location, Some(&token))
            .body(vec![7u8; 1000]),
    );
    assert_eq!(s, 202);
    wait_for("the idle upload expires", Duration::from_secs(20), || {
        let (s, _, b) = reg.send(reg.request(Method::GET, &location, Some(&token)));
        if s == 404 && error_code(&b) == "BLOB_UPLOAD_UNKNOWN" {
            Ok(())
        } else {
            Err(format!("{s}"))
        }
    });
    assert!(reg.uploads().is_empty(), "{:?}", reg.uploads());

    let d = reg.push_image("admin/idle", "v1", &token, "amd64", b"kept");
    for path in [
        format!("/v2/admin/idle/manifests/{d}"),
        "/v2/admin/idle/manifests/v1".to_string(),
        format!("/v2/admin/idle/blobs/{}", digest(b"kept")),
    ] {
        let (s, _, b) = reg.send(reg.request(Method::DELETE, &path, Some(&token)));
        assert_eq!((s, error_code(&b)), (405, "UNSUPPORTED".into()), "{path}");
    }
    let (s, _, _) = reg.send(reg.request(Method::GET, "/v2/admin/idle/manifests/v1", Some(&token)));
    assert_eq!(s, 200);
}

/// Garbage collection running over and over while images are pushed, each
/// reusing a layer that nothing references but the images pushed so far:
/// every push that succeeded stays whole. (A layer no manifest references
/// may be collected once older than the grace period; clients then upload
/// it again, as they do when a HEAD says it is missing.)
#[test]
fn pushes_during_garbage_collection_lose_nothing() {
    let reg = Registry::start_with(&[("CAPSTAN_REGISTRY_UPLOAD_TIMEOUT", "3s")]);
    reg.license();
    let token = reg.token(admin(), &["repository:admin/busy:pull,push"]);
    let shared = b"a layer every image shares".to_vec();
    let stop = std::sync::atomic::AtomicBool::new(false);
    struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let (collections, reuploads) = std::thread::scope(|scope| {
        let collector = scope.spawn(|| {
            let mut runs = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (s, report) = reg.api(Method::POST, "/api/v0/gc", admin(), None);
                assert_eq!(s, 200, "{report}");
                runs += 1;
            }
            runs
        });
        let _stop = Stop(&stop);
        let mut reuploads = 0;
        for i in 0..20 {
            let config = json!({"architecture": "amd64", "os": "linux", "n": i}).to_string();
            let own = format!("layer {i}").into_bytes();
            for blob in [config.as_bytes(), own.as_slice()] {
                assert_eq!(reg.push_blob("admin/busy", &token, blob).0, 201);
            }
            // As clients do: ask whether the shared layer is there, upload
            // it when it is not, then reference it.
            let (s, _, _) = reg.send(reg.request(
                Method::HEAD,
                &format!("/v2/admin/busy/blobs/{}", digest(&shared)),
                Some(&token),
            ));
            if s == 404 {
                assert_eq!(reg.push_blob("admin/busy", &token, &shared).0, 201);
                reuploads += 1;
            }
            let manifest = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config.as_bytes()), "size": config.len()},
                "layers": [
                    {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(&shared), "size": shared.len()},
                    {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(&own), "size": own.len()}
                ]}).to_string();
            let (s, _, b) = reg.send(
                reg.request(
                    Method::PUT,
                    &format!("/v2/admin/busy/manifests/t{i}"),
                    Some(&token),
                )
                .header("content-type", OCI_MANIFEST)
                .body(manifest),
            );
            assert_eq!(s, 201, "push {i}: {}", String::from_utf8_lossy(&b));
            if i % 10 == 0 {
                // Let the grace period pass: from now on only the marks
                // keep what the images reference.
                std::thread::sleep(Duration::from_millis(3100));
            }
        }
        drop(_stop);
        (collector.join().expect("collector thread"), reuploads)
    });
    assert!(collections > 0);
    // Once the first image references it, the shared layer is never lost.
    assert_eq!(
        reuploads, 1,
        "the shared layer was collected while referenced"
    );
    let (s, report) = reg.api(Method::POST, "/api/v0/gc", admin(), None);
    assert_eq!(s, 200, "{report}");
    for i in 0..20 {
        let (s, _, body) = reg.send(reg.request(
            Method::GET,
            &format!("/v2/admin/busy/manifests/t{i}"),
            Some(&token),
        ));
        assert_eq!(s, 200, "t{i}");
        let m: Value = serde_json::from_slice(&body).expect("manifest");
        let refs = std::iter::once(&m["config"]).chain(m["layers"].as_array().expect("layers"));
        for r in refs {
            let d = r["digest"].as_str().expect("digest");
            let (s, _, blob) = reg.send(reg.request(
                Method::GET,
                &format!("/v2/admin/busy/blobs/{d}"),
                Some(&token),
            ));
            assert_eq!((s, digest(&blob)), (200, d.to_string()), "t{i}");
        }
    }
    reg.assert_storage_consistent();
}
