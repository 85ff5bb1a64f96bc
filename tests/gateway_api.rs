//! The gateway's REST API end to end, against the real `capstan` binary:
//! sessions, input validation, accounts and RBAC, config-toml, the license,
//! the audit log, the system routes and the OpenAPI document.
//!
//! Every test starts its own one-manager cluster (`Gateway::start`) and
//! reuses it for many cases.

#[path = "support/gateway.rs"]
mod gateway;

use std::time::Duration;

use gateway::{Gateway, ADMIN_PASSWORD};
use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::{json, Value};

/// The request body limit of the REST API (`capstan_gateway::extract::MAX_BODY`).
const MAX_BODY: usize = 1 << 20;

/// The `prev_hash` of the first audit entry.
const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

// ------------------------------------------------------------------ helpers

/// POST a JSON body as `token`.
fn post(gw: &Gateway, token: &str, path: &str, body: Value) -> (u16, Value) {
    gw.call(Method::POST, path, Some(token), Some(body))
}

/// PATCH a JSON body as `token`.
fn patch(gw: &Gateway, token: &str, path: &str, body: Value) -> (u16, Value) {
    gw.call(Method::PATCH, path, Some(token), Some(body))
}

/// PUT without a body as `token`.
fn put(gw: &Gateway, token: &str, path: &str) -> (u16, Value) {
    gw.call(Method::PUT, path, Some(token), None)
}

/// DELETE as `token`.
fn delete(gw: &Gateway, token: &str, path: &str) -> (u16, Value) {
    gw.call(Method::DELETE, path, Some(token), None)
}

/// The message of an error answer, after checking the body has the
/// gateway's error shape `{"errors":[{"code","message"}]}`.
#[track_caller]
fn error_message(body: &Value) -> String {
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("not the JSON error shape: {body}"));
    assert!(!errors.is_empty(), "no error in {body}");
    let code = errors[0]["code"].as_str().unwrap_or_default();
    assert!(!code.is_empty(), "error without a code: {body}");
    errors[0]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("error without a message: {body}"))
        .to_string()
}

/// Checks an answer is an error with `status` whose message contains every
/// needle; returns the message.
#[track_caller]
fn expect_error(got: (u16, Value), status: u16, needles: &[&str]) -> String {
    let (s, body) = got;
    assert_eq!(s, status, "status of {body}");
    let message = error_message(&body);
    for n in needles {
        assert!(message.contains(n), "{n:?} not in {message:?}");
    }
    message
}

/// Checks an answer has `status`; returns the body.
#[track_caller]
fn expect_ok(got: (u16, Value), status: u16) -> Value {
    let (s, body) = got;
    assert_eq!(s, status, "{body}");
    body
}

/// The `id` of a created record.
#[track_caller]
fn id_of(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_string()
}

/// The `name` of every item of a list.
#[track_caller]
fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|a| a["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// An HTTPS client that trusts the cluster CA, for when response headers
/// matter.
fn https(gw: &Gateway) -> Client {
    let ca = std::fs::read(gw.data_dir().join("pki/ca.crt")).expect("cluster CA");
    Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA PEM"))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTPS client")
}

/// A raw request's answer, with the body parsed as JSON when it is.
fn raw_json(
    gw: &Gateway,
    method: Method,
    path: &str,
    token: Option<&str>,
    ct: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let (s, text) = gw.raw(method, path, token, ct, body);
    (
        s,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The cluster configuration document.
fn config_toml(gw: &Gateway) -> String {
    let (s, text) = gw.raw(
        Method::GET,
        "/api/ucp/config-toml",
        Some(&gw.admin),
        "text/plain",
        Vec::new(),
    );
    assert_eq!(s, 200, "{text}");
    text
}

/// Replaces the configuration document as admin.
fn put_config(gw: &Gateway, doc: &str) -> (u16, Value) {
    let body = doc.as_bytes().to_vec();
    raw_json(
        gw,
        Method::PUT,
        "/api/ucp/config-toml",
        Some(&gw.admin),
        "application/toml",
        body,
    )
}

/// `doc` with its first line equal to `from` (trimmed) replaced by `to`,
/// and the 1-based number of that line.
#[track_caller]
fn replace_line(doc: &str, from: &str, to: &str) -> (String, usize) {
    let mut lines: Vec<&str> = doc.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.trim() == from)
        .unwrap_or_else(|| panic!("no line {from:?} in\n{doc}"));
    lines[i] = to;
    (lines.join("\n") + "\n", i + 1)
}

/// The test license, signed with the test key that debug builds trust.
fn fixture_license() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../capstan-core/tests/data/test-license.json"
    );
    std::fs::read_to_string(path).expect("test license fixture")
}

// ------------------------------------------------------------------ sessions

#[test]
fn login_logout_and_bad_tokens() {
    let gw = Gateway::start();
    gw.create_user("alice", "alice-password-1");

    // A good login: a token and its expiry.
    let login = json!({"username": "alice", "password": "alice-password-1"});
    let body = expect_ok(gw.call(Method::POST, "/auth/login", None, Some(login)), 200);
    let first = body["auth_token"].as_str().expect("auth_token").to_string();
    assert!(first.len() > 20, "{first}");
    assert!(
        body["expires_at"].as_str().is_some_and(|t| t.contains('T')),
        "{body}"
    );
    assert_eq!(expect_ok(gw.get("/id", &first), 200)["name"], "alice");

    // A wrong password and an unknown user answer alike.
    let (s1, wrong) = gw.login("alice", "not-her-password").unwrap_err();
    let (s2, unknown) = gw.login("nobody-here", "alice-password-1").unwrap_err();
    assert_eq!((s1, s2), (401, 401));
    let wrong = error_message(&wrong);
    assert_eq!(wrong, error_message(&unknown));
    assert!(
        !wrong.contains("alice") && !wrong.contains("nobody"),
        "{wrong}"
    );

    // No token, a garbage token, a forged signature, not `Bearer`.
    expect_error(gw.call(Method::GET, "/id", None, None), 401, &["Bearer"]);
    expect_error(gw.get("/id", "garbage"), 401, &["invalid"]);
    let sig = first.rfind('.').expect("a JWT") + 1;
    let mut forged = first.clone();
    let c = if first[sig..].starts_with('A') {
        "B"
    } else {
        "A"
    };
    forged.replace_range(sig..sig + 1, c);
    expect_error(gw.get("/id", &forged), 401, &[]);
    let resp = https(&gw)
        .get(format!("{}/id", gw.base))
        .header("authorization", format!("Basic {first}"))
        .send()
        .expect("send");
    assert_eq!(resp.status().as_u16(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    error_message(&resp.json().expect("JSON error"));

    // Logout ends that session only.
    let second = gw
        .login("alice", "alice-password-1")
        .expect("second session");
    let (s, body) = gw.call(Method::POST, "/auth/logout", Some(&first), None);
    assert_eq!(s, 204, "{body}");
    expect_error(gw.get("/id", &first), 401, &["log in again"]);
    expect_error(
        gw.call(Method::POST, "/auth/logout", Some(&first), None),
        401,
        &[],
    );
    assert_eq!(expect_ok(gw.get("/id", &second), 200)["name"], "alice");
    expect_ok(gw.get("/id", &gw.admin), 200);
}

#[test]
fn password_change_ends_sessions() {
    let gw = Gateway::start();
    gw.create_user("bob", "bob-password-1");
    let t1 = gw.login("bob", "bob-password-1").expect("login");
    let t2 = gw.login("bob", "bob-password-1").expect("login");

    // A wrong oldPassword, or none, changes nothing.
    let wrong_old = json!({"password": "bob-password-2", "oldPassword": "wrong-password"});
    expect_error(
        patch(&gw, &t1, "/accounts/bob", wrong_old),
        400,
        &["oldPassword"],
    );
    let no_old = json!({"password": "bob-password-2"});
    expect_error(
        patch(&gw, &t1, "/accounts/bob", no_old),
        400,
        &["oldPassword"],
    );
    expect_ok(gw.get("/id", &t1), 200);
    let t3 = gw
        .login("bob", "bob-password-1")
        .expect("the old password still works");

    // A user may not set someone else's password.
    let hijack = json!({"password": "hijacked-password", "oldPassword": "bob-password-1"});
    expect_error(patch(&gw, &t1, "/accounts/admin", hijack), 403, &["bob"]);

    // The right oldPassword: every session of bob ends, the new password works.
    let change = json!({"password": "bob-password-2", "oldPassword": "bob-password-1"});
    assert_eq!(
        expect_ok(patch(&gw, &t1, "/accounts/bob", change), 200)["name"],
        "bob"
    );
    for t in [&t1, &t2, &t3] {
        expect_error(gw.get("/id", t), 401, &[]);
    }
    assert_eq!(gw.login("bob", "bob-password-1").unwrap_err().0, 401);
    let t4 = gw
        .login("bob", "bob-password-2")
        .expect("the new password works");
    expect_ok(gw.get("/id", &t4), 200);
    expect_ok(gw.get("/id", &gw.admin), 200);

    // An admin resets it without the old one; bob's sessions end again.
    let reset = json!({"password": "bob-password-3"});
    expect_ok(patch(&gw, &gw.admin, "/accounts/bob", reset), 200);
    expect_error(gw.get("/id", &t4), 401, &[]);
    gw.login("bob", "bob-password-3")
        .expect("the reset password works");
}

#[test]
fn deactivated_user_is_locked_out() {
    let gw = Gateway::start();
    gw.create_user("carol", "carol-password-1");
    let token = gw.login("carol", "carol-password-1").expect("login");
    expect_ok(gw.get("/id", &token), 200);

    let body = expect_ok(
        patch(
            &gw,
            &gw.admin,
            "/accounts/carol",
            json!({"isActive": false}),
        ),
        200,
    );
    assert_eq!(body["isActive"], false);
    expect_error(gw.get("/id", &token), 401, &[]);
    let (s, err) = gw.login("carol", "carol-password-1").unwrap_err();
    assert_eq!(s, 401);
    // Indistinguishable from a wrong password.
    let (_, wrong) = gw.login("carol", "wrong-password").unwrap_err();
    assert_eq!(error_message(&err), error_message(&wrong));
    let inactive = expect_ok(gw.get("/accounts?filter=inactive-users", &gw.admin), 200);
    assert_eq!(names(&inactive["accounts"]), ["carol"]);

    // Reactivated, carol logs in again.
    expect_ok(
        patch(&gw, &gw.admin, "/accounts/carol", json!({"isActive": true})),
        200,
    );
    let token = gw
        .login("carol", "carol-password-1")
        .expect("login after reactivation");
    expect_ok(gw.get("/id", &token), 200);
}

#[test]
fn login_rate_limit_blocks_brute_force() {
    let gw = Gateway::start();
    gw.create_user("dave", "dave-password-1");

    // Lower the limit: the full document from GET with two values changed.
    let doc = config_toml(&gw);
    let (doc, _) = replace_line(&doc, "max_failures = 10", "max_failures = 3");
    let (doc, _) = replace_line(&doc, "window_seconds = 60", "window_seconds = 120");
    assert_eq!(expect_ok(put_config(&gw, &doc), 200)["applied"], true);
    let now = config_toml(&gw);
    assert!(
        now.contains("max_failures = 3") && now.contains("window_seconds = 120"),
        "{now}"
    );

    let client = https(&gw);
    let login = |user: &str, password: &str| {
        client
            .post(format!("{}/auth/login", gw.base))
            .json(&json!({"username": user, "password": password}))
            .send()
            .expect("send login")
    };
    for i in 0..3 {
        assert_eq!(
            login("dave", "wrong-password").status().as_u16(),
            401,
            "attempt {i}"
        );
    }
    // Blocked: a wrong password, the right one, and (same address) another user.
    for (user, password) in [
        ("dave", "wrong-password"),
        ("dave", "dave-password-1"),
        ("admin", ADMIN_PASSWORD),
    ] {
        let r = login(user, password);
        assert_eq!(r.status().as_u16(), 429, "{user} with {password}");
        let wait: u64 = r
            .headers()
            .get("retry-after")
            .expect("Retry-After")
            .to_str()
            .expect("ASCII")
            .parse()
            .expect("seconds");
        assert!((1..=121).contains(&wait), "Retry-After {wait}");
        let body: Value = r.json().expect("JSON error");
        let message = error_message(&body);
        assert!(message.contains("too many failed logins"), "{message}");
        assert_eq!(body["errors"][0]["code"], "TOO_MANY_REQUESTS");
    }
    // Sessions made before the block still work.
    expect_ok(gw.get("/id", &gw.admin), 200);
}

// ------------------------------------------------------------------ bad input

/// One request that must be refused.
struct Bad {
    method: Method,
    path: String,
    content_type: &'static str,
    body: Vec<u8>,
    status: u16,
    needles: Vec<String>,
}

/// A refused JSON request: its answer's status and what its message names.
fn bad(method: Method, path: &str, body: &str, status: u16, needles: &[&str]) -> Bad {
    Bad {
        method,
        path: path.to_string(),
        content_type: "application/json",
        body: body.as_bytes().to_vec(),
        status,
        needles: needles.iter().map(|n| n.to_string()).collect(),
    }
}

/// A JSON body just over the limit: `{"<field>": "aaaa..."}`.
fn oversized(field: &str) -> String {
    format!(r#"{{"{field}": "{}"}}"#, "a".repeat(MAX_BODY + 16))
}

/// What the bad-input cases act on.
struct Fixture {
    /// Id of user `alice`.
    alice: String,
    /// Id of custom role `Deployer`.
    role: String,
    /// Id of collection `/Shared/proj`.
    proj: String,
    /// Id of collection `/Shared/proj/sub`.
    sub: String,
    /// The configuration document.
    config: String,
    /// The test license.
    license: String,
}

/// A license document edited as JSON.
fn edited_license(license: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(license).expect("fixture JSON");
    edit(&mut v);
    v.to_string()
}

/// Every refused request of the bad-input test, a table: one case a line.
#[rustfmt::skip]
fn bad_cases(f: &Fixture) -> Vec<Bad> {
    use Method as M;
    let Fixture { alice, role, proj, sub, .. } = f;
    let user = "/accounts/alice";
    let team = "/accounts/acme/teams/devs";
    let member = "/accounts/acme/members/alice";
    let role = &format!("/roles/{role}");
    let coll = &format!("/collections/{proj}");
    let grant = format!("/collectionGrants/{alice}/{proj}/viewonly");
    let lic_wrong_type = edited_license(&f.license, |v| v["license"]["max_nodes"] = json!("ten"));
    let lic_unknown = edited_license(&f.license, |v| v["license"]["seats"] = json!(5));
    let lic_missing = edited_license(&f.license, |v| {
        v["license"].as_object_mut().expect("terms").remove("expires_at");
    });
    let lic_tampered = f.license.replace("Acme Test Org", "Acme Test Orh");
    assert_ne!(lic_tampered, f.license);
    let mut cases = vec![
        // POST /accounts
        bad(M::POST, "/accounts", r#"{"name": "x1", "password": "#, 400, &["not valid JSON", "line 1"]),
        bad(M::POST, "/accounts", r#"{"name": 5, "password": "password-123"}"#, 400, &["name", "invalid type", "5"]),
        bad(M::POST, "/accounts", r#"{"name": "x2", "password": "password-123", "admin": true}"#, 400, &["unknown field `admin`"]),
        bad(M::POST, "/accounts", r#"{"name": "x3", "password": "password-123", "isAdmin": "yes"}"#, 400, &["isAdmin", "\"yes\""]),
        bad(M::POST, "/accounts", r#"{"password": "password-123"}"#, 400, &["missing field `name`"]),
        bad(M::POST, "/accounts", r#"{"name": "bad name", "password": "password-123"}"#, 400, &["\"bad name\""]),
        bad(M::POST, "/accounts", r#"{"name": "a/b", "password": "password-123"}"#, 400, &["\"a/b\""]),
        bad(M::POST, "/accounts", r#"{"name": "%2e%2e", "password": "password-123"}"#, 400, &["\"%2e%2e\""]),
        bad(M::POST, "/accounts", r#"{"name": "..", "password": "password-123"}"#, 400, &["\"..\""]),
        bad(M::POST, "/accounts", r#"{"name": ".", "password": "password-123"}"#, 400, &["\".\""]),
        bad(M::POST, "/accounts", r#"{"name": "..", "isOrg": true}"#, 400, &["\"..\""]),
        bad(M::POST, "/accounts", r#"{"name": "x4", "password": "short"}"#, 400, &["password", "8 characters"]),
        bad(M::POST, "/accounts", r#"{"name": "x5"}"#, 400, &["password is required"]),
        bad(M::POST, "/accounts", r#"{"name": "x6", "password": "password-123", "fullName": "a\u0007b"}"#, 400, &["fullName"]),
        bad(M::POST, "/accounts", r#"{"name": "x7", "password": "password-123", "searchLdap": true}"#, 400, &["LDAP"]),
        bad(M::POST, "/accounts", r#"{"name": "x8", "isOrg": true, "password": "password-123"}"#, 400, &["organizations"]),
        bad(M::POST, "/accounts", r#"{"name": "alice", "password": "password-123"}"#, 409, &["\"alice\"", "already exists"]),
        bad(M::POST, "/accounts", r#"{"name": "alice", "isOrg": true}"#, 409, &["\"alice\"", "already exists"]),
        bad(M::POST, "/accounts", r#"{"name": "acme", "password": "password-123"}"#, 409, &["\"acme\"", "already exists"]),
        bad(M::POST, "/accounts", &oversized("name"), 413, &["1048576"]),
        // PATCH /accounts/{name}
        bad(M::PATCH, user, r#"{"fullName": "A"#, 400, &["not valid JSON", "line 1"]),
        bad(M::PATCH, user, r#"{"isAdmin": "yes"}"#, 400, &["isAdmin", "\"yes\""]),
        bad(M::PATCH, user, r#"{"fullName": 7}"#, 400, &["fullName", "invalid type"]),
        bad(M::PATCH, user, r#"{"username": "eve"}"#, 400, &["unknown field `username`"]),
        bad(M::PATCH, user, r#"{"password": "short"}"#, 400, &["password", "8 characters"]),
        bad(M::PATCH, user, r#"{"fullName": "x\u0001"}"#, 400, &["fullName"]),
        bad(M::PATCH, user, &oversized("fullName"), 413, &["1048576"]),
        bad(M::PATCH, "/accounts/acme", r#"{"password": "password-123"}"#, 400, &["organizations only have a fullName"]),
        bad(M::PATCH, "/accounts/acme", r#"{"isActive": false}"#, 400, &["organizations only have a fullName"]),
        bad(M::PATCH, "/accounts/nobody", r#"{"fullName": "N"}"#, 404, &["\"nobody\""]),
        bad(M::PATCH, "/accounts/admin", r#"{"isAdmin": false}"#, 409, &["last active admin"]),
        // POST /accounts/{org}/teams
        bad(M::POST, "/accounts/acme/teams", r#"{"name": "#, 400, &["not valid JSON"]),
        bad(M::POST, "/accounts/acme/teams", r#"{"name": 5}"#, 400, &["name", "invalid type"]),
        bad(M::POST, "/accounts/acme/teams", r#"{"name": "ops", "members": []}"#, 400, &["unknown field `members`"]),
        bad(M::POST, "/accounts/acme/teams", r#"{}"#, 400, &["name is required"]),
        bad(M::POST, "/accounts/acme/teams", r#"{"name": "a/b"}"#, 400, &["\"a/b\""]),
        bad(M::POST, "/accounts/acme/teams", r#"{"name": ".."}"#, 400, &["\"..\""]),
        bad(M::POST, "/accounts/acme/teams", r#"{"name": "."}"#, 400, &["\".\""]),
        bad(M::POST, "/accounts/acme/teams", r#"{"name": "%2e%2e"}"#, 400, &["\"%2e%2e\""]),
        bad(M::POST, "/accounts/acme/teams", r#"{"name": "ops", "description": "a\u0000"}"#, 400, &["description"]),
        bad(M::POST, "/accounts/acme/teams", r#"{"name": "devs"}"#, 409, &["\"devs\"", "already exists"]),
        bad(M::POST, "/accounts/nope/teams", r#"{"name": "ops"}"#, 404, &["\"nope\""]),
        bad(M::POST, "/accounts/acme/teams", &oversized("description"), 413, &["1048576"]),
        // PATCH /accounts/{org}/teams/{team}
        bad(M::PATCH, team, r#"{"description": "#, 400, &["not valid JSON"]),
        bad(M::PATCH, team, r#"{"description": 5}"#, 400, &["description", "invalid type"]),
        bad(M::PATCH, team, r#"{"members": []}"#, 400, &["unknown field `members`"]),
        bad(M::PATCH, team, r#"{"name": "ops"}"#, 400, &["cannot be renamed"]),
        bad(M::PATCH, team, r#"{"description": "x\u0001"}"#, 400, &["description"]),
        bad(M::PATCH, "/accounts/acme/teams/nope", r#"{"description": "d"}"#, 404, &["\"nope\""]),
        bad(M::PATCH, team, &oversized("description"), 413, &["1048576"]),
        // PUT /accounts/{org}/members/{user} (and a team member)
        bad(M::PUT, member, r#"{"isAdmin": "#, 400, &["invalid request body", "line 1"]),
        bad(M::PUT, member, r#"{"isAdmin": "yes"}"#, 400, &["\"yes\"", "boolean"]),
        bad(M::PUT, member, r#"{"owner": true}"#, 400, &["unknown field `owner`"]),
        bad(M::PUT, "/accounts/acme/members/nobody", "", 404, &["\"nobody\""]),
        bad(M::PUT, "/accounts/nope/members/alice", "", 404, &["\"nope\""]),
        bad(M::PUT, member, &oversized("isAdmin"), 413, &["1048576"]),
        bad(M::PUT, "/accounts/acme/teams/devs/members/alice", r#"{"isAdmin": true}"#, 400, &["isAdmin"]),
        // POST /roles
        bad(M::POST, "/roles", r#"{"name": "R", "operations": ["#, 400, &["not valid JSON"]),
        bad(M::POST, "/roles", r#"{"name": "R", "operations": "container.*"}"#, 400, &["operations", "invalid type"]),
        bad(M::POST, "/roles", r#"{"name": 1, "operations": []}"#, 400, &["name", "invalid type"]),
        bad(M::POST, "/roles", r#"{"name": "R", "operations": [], "scope": "x"}"#, 400, &["unknown field `scope`"]),
        bad(M::POST, "/roles", r#"{"name": "R"}"#, 400, &["missing field `operations`"]),
        bad(M::POST, "/roles", r#"{"name": "R", "operations": ["container.fly"]}"#, 400, &["\"container.fly\""]),
        bad(M::POST, "/roles", r#"{"name": "R", "operations": ["nosuchtype.*"]}"#, 400, &["\"nosuchtype.*\""]),
        bad(M::POST, "/roles", r#"{"name": "   ", "operations": []}"#, 400, &["role name"]),
        bad(M::POST, "/roles", r#"{"name": "Deployer", "operations": []}"#, 409, &["\"Deployer\""]),
        bad(M::POST, "/roles", r#"{"name": "View Only", "operations": []}"#, 409, &["\"View Only\""]),
        bad(M::POST, "/roles", &oversized("description"), 413, &["1048576"]),
        // PUT /roles/{id}
        bad(M::PUT, role, r#"{"name": "D", "operations": "#, 400, &["not valid JSON"]),
        bad(M::PUT, role, r#"{"name": "D", "operations": {}}"#, 400, &["operations", "invalid type"]),
        bad(M::PUT, role, r#"{"name": "D", "operations": [], "id": "x"}"#, 400, &["unknown field `id`"]),
        bad(M::PUT, role, r#"{"name": "D", "operations": ["service.fly"]}"#, 400, &["\"service.fly\""]),
        bad(M::PUT, role, r#"{"name": "Full Control", "operations": []}"#, 409, &["\"Full Control\""]),
        bad(M::PUT, "/roles/viewonly", r#"{"name": "View Only", "operations": ["*"]}"#, 403, &["viewonly", "built-in"]),
        bad(M::PUT, "/roles/nope", r#"{"name": "N", "operations": []}"#, 404, &["\"nope\""]),
        bad(M::PUT, role, &oversized("name"), 413, &["1048576"]),
        // POST /collections
        bad(M::POST, "/collections", r#"{"name": "c", "parent_id": "#, 400, &["not valid JSON"]),
        bad(M::POST, "/collections", r#"{"name": 1, "parent_id": "shared"}"#, 400, &["name", "invalid type"]),
        bad(M::POST, "/collections", r#"{"name": "c", "parent_id": "shared", "path": "/c"}"#, 400, &["unknown field `path`"]),
        bad(M::POST, "/collections", r#"{"name": "c", "parentId": "shared"}"#, 400, &["unknown field `parentId`"]),
        bad(M::POST, "/collections", r#"{"name": "..", "parent_id": "shared"}"#, 400, &["\"..\""]),
        bad(M::POST, "/collections", r#"{"name": ".", "parent_id": "shared"}"#, 400, &["\".\""]),
        bad(M::POST, "/collections", r#"{"name": "a/b", "parent_id": "shared"}"#, 400, &["\"a/b\""]),
        bad(M::POST, "/collections", r#"{"name": "%2e%2e", "parent_id": "shared"}"#, 400, &["\"%2e%2e\""]),
        bad(M::POST, "/collections", r#"{"name": "", "parent_id": "shared"}"#, 400, &["collection name"]),
        bad(M::POST, "/collections", r#"{"name": "c", "parent_id": "../shared"}"#, 404, &["\"../shared\""]),
        bad(M::POST, "/collections", r#"{"name": "Private", "parent_id": "shared"}"#, 409, &["/Shared/Private"]),
        bad(M::POST, "/collections", r#"{"name": "proj", "parent_id": "shared"}"#, 409, &["/Shared/proj"]),
        bad(M::POST, "/collections", &oversized("name"), 413, &["1048576"]),
        // PATCH /collections/{id}
        bad(M::PATCH, coll, r#"{"name": "#, 400, &["not valid JSON"]),
        bad(M::PATCH, coll, r#"{"name": true}"#, 400, &["name", "invalid type"]),
        bad(M::PATCH, coll, r#"{"path": "/System"}"#, 400, &["unknown field `path`"]),
        bad(M::PATCH, coll, r#"{"name": ".."}"#, 400, &["\"..\""]),
        bad(M::PATCH, coll, r#"{"name": "a/b"}"#, 400, &["\"a/b\""]),
        bad(M::PATCH, coll, r#"{"name": "%2e%2e"}"#, 400, &["\"%2e%2e\""]),
        bad(M::PATCH, coll, r#"{"name": "proj2"}"#, 409, &["/Shared/proj2"]),
        bad(M::PATCH, coll, &format!(r#"{{"parent_id": "{proj}"}}"#), 400, &["cannot move", "/Shared/proj"]),
        bad(M::PATCH, coll, &format!(r#"{{"parent_id": "{sub}"}}"#), 400, &["cannot move", "/Shared/proj/sub"]),
        bad(M::PATCH, coll, r#"{"parent_id": "nope"}"#, 404, &["\"nope\""]),
        bad(M::PATCH, "/collections/shared", r#"{"name": "Common"}"#, 403, &["\"shared\""]),
        bad(M::PATCH, "/collections/nope", r#"{"name": "x"}"#, 404, &["\"nope\""]),
        bad(M::PATCH, coll, &oversized("name"), 413, &["1048576"]),
        // PUT /collectionGrants/{subject}/{object}/{role}
        bad(M::PUT, &format!("{grant}?type=bogus"), "", 400, &["\"bogus\""]),
        bad(M::PUT, &format!("{grant}?kind=collection"), "", 400, &["unknown field `kind`"]),
        bad(M::PUT, &format!("/collectionGrants/nobody/{proj}/viewonly"), "", 404, &["\"nobody\""]),
        bad(M::PUT, &format!("/collectionGrants/{alice}/{proj}/nope"), "", 404, &["\"nope\""]),
        bad(M::PUT, &format!("/collectionGrants/{alice}/nope/viewonly"), "", 404, &["\"nope\""]),
        bad(M::PUT, &format!("/collectionGrants/{alice}/Bad_NS/viewonly?type=namespace"), "", 400, &["\"Bad_NS\""]),
        // PUT /api/license
        bad(M::PUT, "/api/license", "{", 400, &["not JSON", "line 1"]),
        bad(M::PUT, "/api/license", "garbage", 400, &["not JSON"]),
        bad(M::PUT, "/api/license", &lic_wrong_type, 400, &["license.max_nodes", "ten"]),
        bad(M::PUT, "/api/license", &lic_unknown, 400, &["seats"]),
        bad(M::PUT, "/api/license", &lic_missing, 400, &["license.expires_at"]),
        bad(M::PUT, "/api/license", &lic_tampered, 400, &["signature", "\"Acme Test Orh\""]),
        bad(M::PUT, "/api/license", &oversized("license"), 413, &["1048576"]),
        // POST /auth/login
        bad(M::POST, "/auth/login", r#"{"username": "admin", "#, 400, &["not valid JSON"]),
        bad(M::POST, "/auth/login", r#"{"username": 1, "password": "x"}"#, 400, &["username", "invalid type"]),
        bad(M::POST, "/auth/login", r#"{"username": "admin", "password": "x", "otp": "1"}"#, 400, &["unknown field `otp`"]),
        bad(M::POST, "/auth/login", r#"{"username": "admin"}"#, 400, &["missing field `password`"]),
        bad(M::POST, "/auth/login", &oversized("password"), 413, &["1048576"]),
        // The GETs that take a query.
        bad(M::GET, "/accounts?limit=0", "", 400, &["limit 0"]),
        bad(M::GET, "/accounts?limit=1001", "", 400, &["limit 1001"]),
        bad(M::GET, "/accounts?limit=abc", "", 400, &["limit"]),
        bad(M::GET, "/accounts?filter=bogus", "", 400, &["\"bogus\""]),
        bad(M::GET, "/accounts?sort=name", "", 400, &["unknown field `sort`"]),
        bad(M::GET, "/api/authz/explain?subject=admin&operation=container.fly&resource=/Shared", "", 400, &["\"container.fly\""]),
        bad(M::GET, "/api/authz/explain?subject=admin&resource=/Shared", "", 400, &["operation"]),
        bad(M::GET, "/api/authz/explain?subject=admin&operation=container.view&resource=/Shared/../System", "", 400, &["/Shared/../System"]),
        bad(M::GET, "/api/authz/explain?subject=nobody&operation=container.view&resource=/Shared", "", 404, &["\"nobody\""]),
        bad(M::GET, "/collections?limit=x", "", 400, &["limit"]),
        bad(M::GET, "/collections?limit=0", "", 400, &["limit 0"]),
        bad(M::GET, "/collections?offset=-1", "", 400, &["offset"]),
        bad(M::GET, "/collectionGrants?subject=x", "", 400, &["unknown field `subject`"]),
        bad(M::GET, "/api/audit?limit=0", "", 400, &["limit 0"]),
    ];
    cases.push(Bad { content_type: "text/plain", ..bad(M::POST, "/auth/login", r#"{"username": "admin", "password": "x"}"#, 400, &["Content-Type"]) });

    // config-toml: the line and the dotted key.
    let toml = |body: &str, status, needles: &[&str]| Bad {
        content_type: "application/toml",
        ..bad(M::PUT, "/api/ucp/config-toml", body, status, needles)
    };
    let (doc, line) = replace_line(&f.config, "[auth.sessions]", "[auth.sessions]\nlifetim_minutes = 60");
    cases.push(toml(&doc, 400, &[&format!("line {}", line + 1), "auth.sessions.lifetim_minutes"]));
    let (doc, line) = replace_line(&f.config, "per_user_limit = 5", "per_user_limit = \"five\"");
    cases.push(toml(&doc, 400, &[&format!("line {line}"), "auth.sessions.per_user_limit"]));
    let (doc, line) = replace_line(&f.config, "per_user_limit = 5", "per_user_limit = 0");
    cases.push(toml(&doc, 400, &[&format!("line {line}"), "auth.sessions.per_user_limit", "between 1 and 100"]));
    let (doc, line) = replace_line(&f.config, "[auth.sessions]", "[auth.sessions");
    cases.push(toml(&doc, 400, &[&format!("line {line}")]));
    cases.push(Bad { body: vec![b'#', 0xff, 0xfe, b'\n'], ..toml("", 400, &["UTF-8"]) });
    cases.push(toml(&format!("# {}\n", "a".repeat(MAX_BODY)), 413, &["1048576"]));
    cases
}

/// Every account, role, collection and grant, and the configuration.
fn state(gw: &Gateway) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for path in [
        "/accounts?limit=1000",
        "/roles",
        "/collections",
        "/collectionGrants",
    ] {
        out.push((path, expect_ok(gw.get(path, &gw.admin), 200).to_string()));
    }
    out.push(("/api/ucp/config-toml", config_toml(gw)));
    out
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let gw = Gateway::start();
    let admin = gw.admin.clone();
    // Something to collide with and to act on.
    let alice = gw.create_user("alice", "alice-password-1");
    expect_ok(
        post(
            &gw,
            &admin,
            "/accounts",
            json!({"name": "acme", "isOrg": true}),
        ),
        201,
    );
    expect_ok(
        post(&gw, &admin, "/accounts/acme/teams", json!({"name": "devs"})),
        201,
    );
    let role = json!({"name": "Deployer", "operations": ["service.*"]});
    let role = id_of(&expect_ok(post(&gw, &admin, "/roles", role), 201));
    let proj = json!({"name": "proj", "parent_id": "shared"});
    let proj = id_of(&expect_ok(post(&gw, &admin, "/collections", proj), 201));
    let sub = json!({"name": "sub", "parent_id": proj});
    let sub = id_of(&expect_ok(post(&gw, &admin, "/collections", sub), 201));
    let proj2 = json!({"name": "proj2", "parent_id": "shared"});
    expect_ok(post(&gw, &admin, "/collections", proj2), 201);
    let fixture = Fixture {
        alice,
        role,
        proj,
        sub,
        config: config_toml(&gw),
        license: fixture_license(),
    };
    let cases = bad_cases(&fixture);

    let before = state(&gw);
    let mut failures = Vec::new();
    for c in &cases {
        let (status, text) = gw.raw(
            c.method.clone(),
            &c.path,
            Some(&admin),
            c.content_type,
            c.body.clone(),
        );
        let shown: String = String::from_utf8_lossy(&c.body).chars().take(80).collect();
        let what = format!("{} {} {shown:?}", c.method, c.path);
        let Ok(body) = serde_json::from_str::<Value>(&text) else {
            failures.push(format!("{what}: {status}, not JSON: {text}"));
            continue;
        };
        let error = &body["errors"][0];
        let (Some(_code), Some(message)) = (error["code"].as_str(), error["message"].as_str())
        else {
            failures.push(format!("{what}: {status}, not the error shape: {body}"));
            continue;
        };
        if status != c.status {
            failures.push(format!(
                "{what}: status {status} instead of {}: {message}",
                c.status
            ));
        }
        let missing: Vec<&String> = c
            .needles
            .iter()
            .filter(|n| !message.contains(n.as_str()))
            .collect();
        if !missing.is_empty() {
            failures.push(format!("{what}: {missing:?} not in {message:?}"));
        }
    }
    let after = state(&gw);
    for ((path, b), (_, a)) in before.iter().zip(&after) {
        if a != b {
            failures.push(format!("{path} changed:\nbefore {b}\nafter  {a}"));
        }
    }
    let n = cases.len();
    assert!(
        failures.is_empty(),
        "{} of {n} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ------------------------------------------------------------------ accounts

#[test]
fn accounts_orgs_teams_and_members() {
    let gw = Gateway::start();
    let admin = gw.admin.clone();

    // A new user: a private collection with the default grants, and
    // membership of the default organisation.
    let carol = json!({"name": "carol", "password": "carol-password-1", "fullName": "Carol C"});
    let carol = expect_ok(post(&gw, &admin, "/accounts", carol), 201);
    assert_eq!(
        (
            &carol["name"],
            &carol["fullName"],
            &carol["isOrg"],
            &carol["isAdmin"],
            &carol["isActive"]
        ),
        (
            &json!("carol"),
            &json!("Carol C"),
            &json!(false),
            &json!(false),
            &json!(true)
        )
    );
    let carol_id = id_of(&carol);
    let private = expect_ok(gw.get("/collections/private-carol", &admin), 200);
    assert_eq!(private["path"], "/Shared/Private/carol");
    assert_eq!(private["parent_ids"], json!(["swarm", "shared", "private"]));
    let grants = expect_ok(
        gw.get(&format!("/collectionGrants?subjectID={carol_id}"), &admin),
        200,
    );
    let mut got: Vec<String> = grants["grants"]
        .as_array()
        .expect("grants")
        .iter()
        .map(|g| {
            assert_eq!(
                (&g["subjectName"], &g["type"]),
                (&json!("carol"), &json!("collection")),
                "{g}"
            );
            format!("{} {} {}", g["objectID"], g["objectPath"], g["roleID"])
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            r#""private-carol" "/Shared/Private/carol" "restrictedcontrol""#,
            r#""shared" "/Shared" "scheduler""#,
        ]
    );
    expect_ok(
        gw.get("/accounts/docker-datacenter/members/carol", &admin),
        200,
    );
    let carol_token = gw.login("carol", "carol-password-1").expect("login");
    // Carol sees her own grants only.
    let mine = expect_ok(gw.get("/collectionGrants", &carol_token), 200);
    let mine = mine["grants"].as_array().expect("grants");
    assert_eq!(mine.len(), 2);
    assert!(
        mine.iter().all(|g| g["subjectID"] == carol_id.as_str()),
        "{mine:?}"
    );

    // An organisation and a team.
    let org = json!({"name": "acme", "isOrg": true, "fullName": "Acme"});
    let org = expect_ok(post(&gw, &admin, "/accounts", org), 201);
    assert_eq!(
        (&org["isOrg"], &org["name"]),
        (&json!(true), &json!("acme"))
    );
    let team = json!({"name": "devs", "description": "Developers"});
    let team = expect_ok(post(&gw, &admin, "/accounts/acme/teams", team), 201);
    assert_eq!(
        (
            &team["name"],
            &team["orgID"],
            &team["membersCount"],
            &team["description"]
        ),
        (&json!("devs"), &org["id"], &json!(0), &json!("Developers"))
    );
    let teams = expect_ok(gw.get("/accounts/acme/teams", &admin), 200);
    assert_eq!(names(&teams["teams"]), ["devs"]);
    gw.create_user("dave", "dave-password-1");
    expect_error(
        gw.get("/accounts/acme/members/carol", &admin),
        404,
        &["\"carol\""],
    );

    // A team member is an org member too.
    let m = expect_ok(
        put(&gw, &admin, "/accounts/acme/teams/devs/members/carol"),
        200,
    );
    assert_eq!(m["member"]["name"], "carol");
    assert_eq!(
        expect_ok(gw.get("/accounts/acme/members/carol", &admin), 200)["isAdmin"],
        false
    );
    expect_ok(
        gw.get("/accounts/acme/teams/devs/members/carol", &admin),
        200,
    );
    let members = expect_ok(gw.get("/accounts/acme/teams/devs/members", &admin), 200);
    assert_eq!(members["members"][0]["member"]["name"], "carol");
    assert_eq!(
        expect_ok(gw.get("/accounts/acme/teams/devs", &admin), 200)["membersCount"],
        1
    );
    // An org owner.
    let owner = json!({"isAdmin": true});
    let om = expect_ok(
        gw.call(
            Method::PUT,
            "/accounts/acme/members/dave",
            Some(&admin),
            Some(owner),
        ),
        200,
    );
    assert_eq!(om["isAdmin"], true);
    let members = expect_ok(gw.get("/accounts/acme/members", &admin), 200);
    let mut got: Vec<String> = members["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| format!("{} {}", m["member"]["name"], m["isAdmin"]))
        .collect();
    got.sort();
    assert_eq!(got, [r#""carol" false"#, r#""dave" true"#]);
    // The owner manages the org's teams without any grant; a member may not.
    let dave = gw.login("dave", "dave-password-1").expect("login");
    let t = expect_ok(
        patch(
            &gw,
            &dave,
            "/accounts/acme/teams/devs",
            json!({"description": "Builders"}),
        ),
        200,
    );
    assert_eq!(t["description"], "Builders");
    let change = json!({"description": "x"});
    expect_error(
        patch(&gw, &carol_token, "/accounts/acme/teams/devs", change),
        403,
        &["carol"],
    );

    // Leaving the org leaves its teams.
    assert_eq!(delete(&gw, &admin, "/accounts/acme/members/carol").0, 204);
    expect_error(
        gw.get("/accounts/acme/teams/devs/members/carol", &admin),
        404,
        &["\"carol\""],
    );
    assert_eq!(
        expect_ok(gw.get("/accounts/acme/teams/devs", &admin), 200)["membersCount"],
        0
    );

    // Listing, filters and paging.
    let all = expect_ok(gw.get("/accounts?limit=1000", &admin), 200);
    assert_eq!(
        names(&all["accounts"]),
        ["acme", "admin", "carol", "dave", "docker-datacenter"]
    );
    let orgs = expect_ok(gw.get("/accounts?filter=orgs", &admin), 200);
    assert_eq!(names(&orgs["accounts"]), ["acme", "docker-datacenter"]);
    let users = expect_ok(gw.get("/accounts?filter=non-admins", &admin), 200);
    assert_eq!(names(&users["accounts"]), ["carol", "dave"]);
    let admins = expect_ok(gw.get("/accounts?filter=admins", &admin), 200);
    assert_eq!(names(&admins["accounts"]), ["admin"]);
    let page = expect_ok(gw.get("/accounts?limit=2", &admin), 200);
    assert_eq!(names(&page["accounts"]), ["acme", "admin"]);
    assert_eq!(page["nextPageStart"], "carol");
    let page = expect_ok(gw.get("/accounts?limit=2&start=carol", &admin), 200);
    assert_eq!(names(&page["accounts"]), ["carol", "dave"]);

    // The last active admin can be neither demoted, deactivated nor deleted.
    for change in [json!({"isAdmin": false}), json!({"isActive": false})] {
        expect_error(
            patch(&gw, &admin, "/accounts/admin", change),
            409,
            &["last active admin"],
        );
    }
    expect_error(
        delete(&gw, &admin, "/accounts/admin"),
        409,
        &["last active admin"],
    );
    // With a second admin the first may be demoted; then the second is the last.
    expect_ok(
        patch(&gw, &admin, "/accounts/carol", json!({"isAdmin": true})),
        200,
    );
    let carol_token = gw.login("carol", "carol-password-1").expect("login");
    let demoted = expect_ok(
        patch(
            &gw,
            &carol_token,
            "/accounts/admin",
            json!({"isAdmin": false}),
        ),
        200,
    );
    assert_eq!(demoted["isAdmin"], false);
    expect_error(delete(&gw, &admin, "/accounts/carol"), 403, &["admin"]);
    let change = json!({"isAdmin": false});
    expect_error(
        patch(&gw, &carol_token, "/accounts/carol", change),
        409,
        &["last active admin"],
    );
    expect_error(
        delete(&gw, &carol_token, "/accounts/carol"),
        409,
        &["last active admin"],
    );

    // Deleting an org takes its teams; deleting a user their sessions and grants.
    assert_eq!(delete(&gw, &carol_token, "/accounts/acme").0, 204);
    expect_error(gw.get("/accounts/acme", &carol_token), 404, &["\"acme\""]);
    expect_error(
        gw.get("/accounts/acme/teams/devs", &carol_token),
        404,
        &["\"acme\""],
    );
    let dave_id = id_of(&expect_ok(gw.get("/accounts/dave", &carol_token), 200));
    assert_eq!(delete(&gw, &carol_token, "/accounts/dave").0, 204);
    expect_error(gw.get("/id", &dave), 401, &[]);
    let left = expect_ok(
        gw.get(
            &format!("/collectionGrants?subjectID={dave_id}"),
            &carol_token,
        ),
        200,
    );
    assert_eq!(left["grants"], json!([]));
    let default_org = "/accounts/docker-datacenter";
    expect_error(
        delete(&gw, &carol_token, default_org),
        409,
        &["default organization"],
    );
}

// ------------------------------------------------------------------ RBAC

#[test]
fn roles_collections_and_grants() {
    let gw = Gateway::start();
    let admin = gw.admin.clone();
    let erin = gw.create_user("erin", "erin-password-1");

    // Built-in roles are listed and immutable.
    let roles = expect_ok(gw.get("/roles", &admin), 200);
    let mut builtin: Vec<&str> = roles
        .as_array()
        .expect("roles")
        .iter()
        .filter(|r| r["system_role"] == true)
        .filter_map(|r| r["id"].as_str())
        .collect();
    builtin.sort();
    let builtins = [
        "fullcontrol",
        "none",
        "restrictedcontrol",
        "scheduler",
        "viewonly",
    ];
    assert_eq!(builtin, builtins);
    let mine = json!({"name": "Mine", "operations": []});
    expect_error(
        gw.call(Method::PUT, "/roles/fullcontrol", Some(&admin), Some(mine)),
        403,
        &["fullcontrol"],
    );
    for id in builtins {
        expect_error(delete(&gw, &admin, &format!("/roles/{id}")), 403, &[id]);
    }

    // A custom role: a group expands to its operations.
    let role = json!({"name": "Deployer", "operations": ["container.*", "service.view"], "description": "Ships"});
    let role = expect_ok(post(&gw, &admin, "/roles", role), 201);
    let role_id = id_of(&role);
    assert_eq!(
        (&role["system_role"], &role["description"]),
        (&json!(false), &json!("Ships"))
    );
    let ops: Vec<&str> = role["operations"]
        .as_array()
        .expect("operations")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for op in [
        "container.view",
        "container.create",
        "container.create.privileged",
        "service.view",
    ] {
        assert!(ops.contains(&op), "{op} not in {ops:?}");
    }
    assert!(ops.len() > 5, "{ops:?}");
    assert!(
        ops.iter()
            .all(|o| o.starts_with("container.") || *o == "service.view"),
        "{ops:?}"
    );
    assert!(!ops.contains(&"container.*"), "{ops:?}");
    assert_eq!(
        expect_ok(gw.get(&format!("/roles/{role_id}"), &admin), 200),
        role
    );
    let redefined = json!({"name": "Deployer", "operations": ["container.*", "service.*"]});
    let redefined = gw.call(
        Method::PUT,
        &format!("/roles/{role_id}"),
        Some(&admin),
        Some(redefined),
    );
    let redefined = expect_ok(redefined, 200);
    assert!(redefined["operations"]
        .as_array()
        .expect("operations")
        .contains(&json!("service.create")));

    // A tree: /Shared/apps/web/api, and /prod.
    let create = |name: &str, parent: &str| {
        let c = json!({"name": name, "parent_id": parent});
        let c = expect_ok(post(&gw, &admin, "/collections", c), 201);
        (id_of(&c), c)
    };
    let (apps, c) = create("apps", "shared");
    assert_eq!(
        (&c["path"], &c["parent_ids"], &c["builtin"]),
        (
            &json!("/Shared/apps"),
            &json!(["swarm", "shared"]),
            &json!(false)
        )
    );
    let (web, _) = create("web", &apps);
    let (api, c) = create("api", &web);
    assert_eq!(c["path"], "/Shared/apps/web/api");
    let (prod, c) = create("prod", "swarm");
    assert_eq!(c["path"], "/prod");
    let children = expect_ok(
        gw.get(&format!("/collections/{apps}/children"), &admin),
        200,
    );
    assert_eq!(names(&children), ["web"]);

    // A grant of the custom role on web; the role is now in use.
    let g = expect_ok(
        put(
            &gw,
            &admin,
            &format!("/collectionGrants/{erin}/{web}/{role_id}"),
        ),
        201,
    );
    assert_eq!(
        (
            &g["objectPath"],
            &g["subjectName"],
            &g["roleID"],
            &g["type"]
        ),
        (
            &json!("/Shared/apps/web"),
            &json!("erin"),
            &json!(role_id),
            &json!("collection")
        )
    );
    expect_error(
        delete(&gw, &admin, &format!("/roles/{role_id}")),
        409,
        &["grant"],
    );
    let erin_token = gw.login("erin", "erin-password-1").expect("login");
    let explain = |resource: &str| {
        let q = format!(
            "/api/authz/explain?subject=erin&operation=container.create&resource={resource}"
        );
        expect_ok(gw.get(&q, &admin), 200)
    };
    assert_eq!(explain("/Shared/apps/web/api")["allowed"], true);
    assert_eq!(explain("/Shared/apps")["allowed"], false);

    // Rename web: its subtree's paths follow, the grant stays on it.
    let c = expect_ok(
        patch(
            &gw,
            &admin,
            &format!("/collections/{web}"),
            json!({"name": "frontend"}),
        ),
        200,
    );
    assert_eq!(c["path"], "/Shared/apps/frontend");
    assert_eq!(
        expect_ok(gw.get(&format!("/collections/{api}"), &admin), 200)["path"],
        "/Shared/apps/frontend/api"
    );
    // Move it under /prod.
    let c = expect_ok(
        patch(
            &gw,
            &admin,
            &format!("/collections/{web}"),
            json!({"parent_id": prod}),
        ),
        200,
    );
    assert_eq!(
        (&c["path"], &c["parent_id"]),
        (&json!("/prod/frontend"), &json!(prod))
    );
    let c = expect_ok(gw.get(&format!("/collections/{api}"), &admin), 200);
    assert_eq!(
        (&c["path"], &c["parent_ids"]),
        (&json!("/prod/frontend/api"), &json!(["swarm", prod, web]))
    );
    assert_eq!(
        expect_ok(
            gw.get(&format!("/collections/{apps}/children"), &admin),
            200
        ),
        json!([])
    );
    let grants = expect_ok(
        gw.get(&format!("/collectionGrants?objectID={web}"), &admin),
        200,
    );
    let grants = grants["grants"].as_array().expect("grants");
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert_eq!(
        (&grants[0]["objectPath"], &grants[0]["roleID"]),
        (&json!("/prod/frontend"), &json!(role_id))
    );
    let e = explain("/prod/frontend/api");
    assert_eq!(
        (&e["allowed"], &e["grants"][0]["object_path"]),
        (&json!(true), &json!("/prod/frontend")),
        "{e}"
    );
    assert_eq!(explain("/Shared/apps/frontend/api")["allowed"], false);
    // Erin sees her grant at its new path.
    let mine = expect_ok(gw.get("/collectionGrants", &erin_token), 200);
    assert!(
        mine["grants"]
            .as_array()
            .expect("grants")
            .iter()
            .any(|g| g["objectPath"] == "/prod/frontend"),
        "{mine}"
    );

    // A collection with children cannot be deleted; built-ins never.
    expect_error(
        delete(&gw, &admin, &format!("/collections/{web}")),
        409,
        &["/prod/frontend", "not empty"],
    );
    expect_error(
        delete(&gw, &admin, &format!("/collections/{prod}")),
        409,
        &["/prod", "not empty"],
    );
    for id in ["swarm", "shared", "system", "private", "legacy"] {
        expect_error(
            delete(&gw, &admin, &format!("/collections/{id}")),
            403,
            &[id],
        );
    }
    assert_eq!(delete(&gw, &admin, &format!("/collections/{api}")).0, 204);
    assert_eq!(delete(&gw, &admin, &format!("/collections/{web}")).0, 204);
    expect_error(gw.get(&format!("/collections/{web}"), &admin), 404, &[]);
    // Its grants went with it, so the role is free to go.
    let grants = expect_ok(
        gw.get(&format!("/collectionGrants?objectID={web}"), &admin),
        200,
    );
    assert_eq!(grants["grants"], json!([]));
    assert_eq!(delete(&gw, &admin, &format!("/roles/{role_id}")).0, 204);
    expect_error(gw.get(&format!("/roles/{role_id}"), &admin), 404, &[]);

    // Grant and revoke a built-in role; a namespace grant.
    let path = format!("/collectionGrants/{erin}/{apps}/viewonly");
    expect_ok(put(&gw, &admin, &path), 201);
    let q = format!("/api/authz/explain?subject=erin&operation=container.view&resource={apps}");
    assert_eq!(expect_ok(gw.get(&q, &admin), 200)["allowed"], true);
    assert_eq!(delete(&gw, &admin, &path).0, 204);
    assert_eq!(expect_ok(gw.get(&q, &admin), 200)["allowed"], false);
    expect_error(delete(&gw, &admin, &path), 404, &["no such grant"]);
    let g = expect_ok(
        put(
            &gw,
            &admin,
            &format!("/collectionGrants/{erin}/team-a/viewonly?type=namespace"),
        ),
        201,
    );
    assert_eq!(
        (&g["type"], &g["objectPath"]),
        (&json!("namespace"), &json!("namespace:team-a"))
    );

    // A non-admin manages none of it.
    expect_error(gw.get("/roles", &erin_token), 403, &["erin"]);
    let c = json!({"name": "x", "parent_id": "swarm"});
    expect_error(post(&gw, &erin_token, "/collections", c), 403, &["erin"]);
    expect_error(
        put(
            &gw,
            &erin_token,
            &format!("/collectionGrants/{erin}/swarm/fullcontrol"),
        ),
        403,
        &["erin"],
    );
}

#[test]
fn explain_answers_with_grant_and_path() {
    let gw = Gateway::start();
    let alice = gw.create_user("alice", "alice-password-1");
    let explain = |operation: &str, resource: &str| {
        let q =
            format!("/api/authz/explain?subject=alice&operation={operation}&resource={resource}");
        expect_ok(gw.get(&q, &gw.admin), 200)
    };

    let e = explain("container.create", "/Shared/Private/alice");
    assert_eq!(
        (&e["allowed"], &e["reason"]),
        (&json!(true), &json!("granted")),
        "{e}"
    );
    assert_eq!(
        (&e["subject"], &e["operation"], &e["resource"]),
        (
            &json!("alice"),
            &json!("container.create"),
            &json!("/Shared/Private/alice")
        )
    );
    assert_eq!(
        e["path"],
        json!(["/Shared/Private/alice", "/Shared/Private", "/Shared", "/"])
    );
    let grants = e["grants"].as_array().expect("grants");
    assert_eq!(grants.len(), 1, "{e}");
    let g = &grants[0];
    assert_eq!(
        (
            &g["subject_id"],
            &g["subject_name"],
            &g["role_id"],
            &g["role_name"]
        ),
        (
            &json!(alice),
            &json!("alice"),
            &json!("restrictedcontrol"),
            &json!("Restricted Control")
        )
    );
    assert_eq!(
        (&g["object_id"], &g["object_path"]),
        (&json!("private-alice"), &json!("/Shared/Private/alice"))
    );
    // By collection id too.
    let by_id = explain("container.create", "private-alice");
    assert_eq!(
        (&by_id["allowed"], &by_id["resource"]),
        (&json!(true), &json!("/Shared/Private/alice"))
    );
    // The scheduler grant on /Shared lets her schedule there.
    let e = explain("node.schedule", "/Shared/Private/alice");
    assert_eq!(e["allowed"], true, "{e}");
    let grants = e["grants"].as_array().expect("grants");
    assert!(
        grants
            .iter()
            .any(|g| g["role_id"] == "scheduler" && g["object_path"] == "/Shared"),
        "{e}"
    );
    // Restricted control keeps out of the host.
    assert_eq!(
        explain("container.create.privileged", "/Shared/Private/alice")["allowed"],
        false
    );

    let e = explain("container.create", "/System");
    assert_eq!(
        (&e["allowed"], &e["reason"]),
        (&json!(false), &json!("no-grant")),
        "{e}"
    );
    assert_eq!(
        (&e["grants"], &e["path"]),
        (&json!([]), &json!(["/System", "/"]))
    );
    assert_eq!(
        explain("container.view", "/Shared/Private/admin")["allowed"],
        false
    );

    // The admin is allowed as admin; alice may not ask.
    let q = "/api/authz/explain?subject=admin&operation=container.create&resource=/System";
    let e = expect_ok(gw.get(q, &gw.admin), 200);
    assert_eq!(
        (&e["allowed"], &e["reason"]),
        (&json!(true), &json!("admin"))
    );
    let token = gw.login("alice", "alice-password-1").expect("login");
    expect_error(gw.get(q, &token), 403, &["authz.explain"]);
}

// ------------------------------------------------------------------ config-toml

#[test]
fn config_toml_refuses_bad_documents_and_applies_good_ones() {
    let gw = Gateway::start();
    let original = config_toml(&gw);
    let sections = [
        "[auth]",
        "[auth.sessions]",
        "[auth.login_rate_limit]",
        "[audit_log_configuration]",
        "[cluster_config]",
    ];
    for section in sections {
        assert!(
            original.lines().any(|l| l == section),
            "{section} not in\n{original}"
        );
    }
    let parsed: toml::Value = toml::from_str(&original).expect("GET answers TOML");
    assert_eq!(
        parsed["auth"]["sessions"]["per_user_limit"].as_integer(),
        Some(5)
    );

    let edit = |from: &str, to: &str| replace_line(&original, from, to);
    let (unknown, line) = edit(
        "per_user_limit = 5",
        "per_user_limit = 5\nper_user_limits = 6",
    );
    let (wrong_type, wt) = edit("per_user_limit = 5", "per_user_limit = \"five\"");
    let (out_of_range, oor) = edit("lifetime_minutes = 4320", "lifetime_minutes = 5");
    let (bad_port, bp) = edit("controller_port = 443", "controller_port = 70000");
    let (bad_level, bl) = edit("level = \"metadata\"", "level = \"verbose\"");
    let (broken, br) = edit("[auth.sessions]", "[auth.sessions");
    let (unknown_section, us) = edit("[auth.sessions]", "[nonsense]\nx = 1\n[auth.sessions]");
    let cases: Vec<(&str, String, Vec<String>)> = vec![
        (
            "unknown key",
            unknown,
            vec![
                format!("line {}", line + 1),
                "auth.sessions.per_user_limits".into(),
                "unknown field".into(),
            ],
        ),
        (
            "wrong type",
            wrong_type,
            vec![
                format!("line {wt}"),
                "auth.sessions.per_user_limit".into(),
                "invalid type".into(),
            ],
        ),
        (
            "out of range",
            out_of_range,
            vec![
                format!("line {oor}"),
                "auth.sessions.lifetime_minutes".into(),
                "between 10 and 525600".into(),
            ],
        ),
        (
            "port too large",
            bad_port,
            vec![
                format!("line {bp}"),
                "cluster_config.controller_port".into(),
            ],
        ),
        (
            "unknown level",
            bad_level,
            vec![
                format!("line {bl}"),
                "audit_log_configuration.level".into(),
                "\"verbose\"".into(),
            ],
        ),
        // A syntax error has a line but no key yet.
        ("broken syntax", broken, vec![format!("line {br}")]),
        (
            "unknown section",
            unknown_section,
            vec![format!("line {us}"), "nonsense".into()],
        ),
    ];
    for (what, doc, needles) in cases {
        let (s, body) = put_config(&gw, &doc);
        assert_eq!(s, 400, "{what}: {body}");
        assert_eq!(
            body["errors"][0]["code"], "INVALID_CONFIG",
            "{what}: {body}"
        );
        let message = error_message(&body);
        for n in &needles {
            assert!(
                message.contains(n.as_str()),
                "{what}: {n:?} not in {message:?}"
            );
        }
        assert_eq!(
            config_toml(&gw),
            original,
            "{what} changed the configuration"
        );
    }
    // A non-admin may neither read nor write it.
    gw.create_user("frank", "frank-password-1");
    let frank = gw.login("frank", "frank-password-1").expect("login");
    let (s, _) = gw.raw(
        Method::GET,
        "/api/ucp/config-toml",
        Some(&frank),
        "text/plain",
        Vec::new(),
    );
    assert_eq!(s, 403);
    let doc = original.clone().into_bytes();
    assert_eq!(
        gw.raw(
            Method::PUT,
            "/api/ucp/config-toml",
            Some(&frank),
            "application/toml",
            doc
        )
        .0,
        403
    );
    assert_eq!(config_toml(&gw), original);

    // A valid change is applied.
    let (doc, _) = edit("per_user_limit = 5", "per_user_limit = 7");
    let (doc, _) = replace_line(
        &doc,
        "metrics_retention_time = \"24h\"",
        "metrics_retention_time = \"7d\"",
    );
    assert_eq!(
        expect_ok(put_config(&gw, &doc), 200),
        json!({"applied": true})
    );
    let now = config_toml(&gw);
    assert!(
        now.contains("per_user_limit = 7") && now.contains("metrics_retention_time = \"7d\""),
        "{now}"
    );
    assert_eq!(now, doc);
    // A partial document takes the defaults for the rest.
    assert_eq!(
        expect_ok(
            put_config(&gw, "[auth.sessions]\nper_user_limit = 3\n"),
            200
        )["applied"],
        true
    );
    let now = config_toml(&gw);
    assert!(
        now.contains("per_user_limit = 3") && now.contains("metrics_retention_time = \"24h\""),
        "{now}"
    );
}

// ------------------------------------------------------------------ license

#[test]
fn license_install_and_tampering() {
    let gw = Gateway::start();
    let license = fixture_license();
    let status = || expect_ok(gw.get("/api/license", &gw.admin), 200);
    let put_license = |body: &str| {
        let body = body.as_bytes().to_vec();
        raw_json(
            &gw,
            Method::PUT,
            "/api/license",
            Some(&gw.admin),
            "application/json",
            body,
        )
    };

    let st = status();
    assert_eq!(
        (&st["status"], &st["licensed"], &st["licensee"]),
        (&json!("unlicensed"), &json!(false), &Value::Null)
    );
    assert!(st["nodes"].as_u64().is_some_and(|n| n >= 1), "{st}");

    // One changed character of the licensee breaks the signature.
    let tampered = license.replace("Acme Test Org", "Acme Test Orh");
    assert_eq!(tampered.len(), license.len());
    assert_ne!(tampered, license);
    let message = expect_error(put_license(&tampered), 400, &["signature", "Acme Test Orh"]);
    assert!(message.contains("does not match"), "{message}");
    assert_eq!(status()["status"], "unlicensed");

    let installed = expect_ok(put_license(&license), 200);
    assert_eq!(
        (&installed["status"], &installed["licensed"]),
        (&json!("valid"), &json!(true))
    );
    assert_eq!(
        (
            &installed["licensee"],
            &installed["tier"],
            &installed["max_nodes"]
        ),
        (&json!("Acme Test Org"), &json!("enterprise"), &json!(10))
    );
    let st = status();
    assert_eq!(
        (&st["status"], &st["licensee"]),
        (&json!("valid"), &json!("Acme Test Org"))
    );
    assert_eq!(st["expires_at"], "2126-11-07T05:55:44Z");

    // Refused documents leave the installed license in place.
    expect_error(put_license(&tampered), 400, &["signature"]);
    expect_error(
        put_license("{\"license\": garbage}"),
        400,
        &["not JSON", "line 1"],
    );
    expect_error(put_license("[]"), 400, &["JSON object"]);
    let other_key = edited_license(&license, |v| v["key_id"] = json!("someone-else"));
    expect_error(put_license(&other_key), 400, &["\"someone-else\""]);
    let st = status();
    assert_eq!(
        (&st["status"], &st["licensee"]),
        (&json!("valid"), &json!("Acme Test Org"))
    );

    // Only admins.
    gw.create_user("gina", "gina-password-1");
    let gina = gw.login("gina", "gina-password-1").expect("login");
    expect_error(gw.get("/api/license", &gina), 403, &["gina"]);
    let body = license.into_bytes();
    assert_eq!(
        gw.raw(
            Method::PUT,
            "/api/license",
            Some(&gina),
            "application/json",
            body
        )
        .0,
        403
    );
}

// ------------------------------------------------------------------ audit

#[test]
fn audit_log_chains_and_detects_tampering() {
    let gw = Gateway::start();
    let admin = gw.admin.clone();
    gw.create_user("hank", "hank-password-1");
    let c = json!({"name": "audited", "parent_id": "shared"});
    expect_ok(post(&gw, &admin, "/collections", c), 201);
    // A refused request is audited too.
    let c = json!({"name": "..", "parent_id": "shared"});
    expect_error(post(&gw, &admin, "/collections", c), 400, &[]);
    let hank = gw.login("hank", "hank-password-1").expect("login");
    expect_error(gw.get("/roles", &hank), 403, &["hank"]);
    expect_error(gw.get("/api/audit", &hank), 403, &["hank"]);

    let entries = gw.audit();
    assert!(entries.len() >= 6, "{entries:#?}");
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e["seq"], json!(i + 1), "{e}");
        let prev = if i == 0 {
            GENESIS_HASH
        } else {
            entries[i - 1]["hash"].as_str().expect("hash")
        };
        assert_eq!(e["prev_hash"], prev, "entry {}", i + 1);
        assert_eq!(e["hash"].as_str().map(str::len), Some(64), "{e}");
        for field in ["actor", "method", "path", "decision", "time"] {
            assert!(e[field].is_string(), "{field} of {e}");
        }
    }
    let find = |actor: &str, method: &str, path: &str| {
        entries
            .iter()
            .find(|e| e["actor"] == actor && e["method"] == method && e["path"] == path)
            .unwrap_or_else(|| panic!("no {actor} {method} {path} in {entries:#?}"))
    };
    let login = find("admin", "POST", "/auth/login");
    assert_eq!(
        (&login["decision"], &login["status"]),
        (&json!("allow"), &json!(200))
    );
    let created = find("admin", "POST", "/accounts");
    assert_eq!(
        (
            &created["decision"],
            &created["status"],
            &created["operation"],
            &created["object"]
        ),
        (
            &json!("allow"),
            &json!(201),
            &json!("account.create"),
            &json!("account hank")
        )
    );
    assert_eq!(find("admin", "POST", "/collections")["status"], 201);
    assert!(
        entries
            .iter()
            .any(|e| e["path"] == "/collections" && e["status"] == 400),
        "{entries:#?}"
    );
    let denied = find("hank", "GET", "/roles");
    assert_eq!(
        (&denied["decision"], &denied["status"], &denied["operation"]),
        (&json!("deny"), &json!(403), &json!("role.view"))
    );
    let denied = find("hank", "GET", "/api/audit");
    assert_eq!(
        (&denied["decision"], &denied["status"]),
        (&json!("deny"), &json!(403))
    );
    assert_eq!(find("hank", "POST", "/auth/login")["decision"], "allow");
    // Plain reads are not audited, and no password is.
    assert!(
        !entries
            .iter()
            .any(|e| e["method"] == "GET" && e["decision"] == "allow"),
        "{entries:#?}"
    );
    assert!(!serde_json::to_string(&entries)
        .expect("JSON")
        .contains("hank-password-1"));

    // The CLI agrees the chain is intact.
    let file = gw.data_dir().join("audit/audit.jsonl");
    let text = std::fs::read_to_string(&file).expect("audit file");
    assert_eq!(text.lines().count(), entries.len());
    let out = gw
        .capstan()
        .args(["audit", "verify"])
        .output()
        .expect("run capstan audit verify");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout {stdout}\nstderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("{} entries", entries.len())),
        "{stdout}"
    );

    // Change who made entry 2, keeping the line valid JSON.
    let intact = gw.data_dir().join("audit-intact.jsonl");
    std::fs::copy(&file, &intact).expect("copy the audit file");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut second: Value = serde_json::from_str(&lines[1]).expect("entry 2 is JSON");
    assert_eq!(second["seq"], 2);
    let actor = if second["actor"] == "mallory" {
        "trudy"
    } else {
        "mallory"
    };
    second["actor"] = json!(actor);
    lines[1] = serde_json::to_string(&second).expect("JSON");
    std::fs::write(&file, lines.join("\n") + "\n").expect("rewrite the audit file");

    let out = gw
        .capstan()
        .args(["audit", "verify"])
        .output()
        .expect("run capstan audit verify");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "verify passed a tampered log: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains("entry 2") && stderr.contains("hash does not match"),
        "{stderr}"
    );

    // --file checks another copy: the one taken before the edit is intact.
    let out = gw
        .capstan()
        .args(["audit", "verify", "--file"])
        .arg(&intact)
        .output()
        .expect("run audit verify --file");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{} entries", entries.len())));
}

// ------------------------------------------------------------------ system routes

#[test]
fn system_routes() {
    let gw = Gateway::start();
    let (s, text) = gw.raw(Method::GET, "/_ping", None, "text/plain", Vec::new());
    assert_eq!((s, text.as_str()), (200, "OK"));

    let (s, pem) = gw.raw(Method::GET, "/ca", None, "text/plain", Vec::new());
    assert_eq!(s, 200);
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    assert!(
        pem.trim_end().ends_with("-----END CERTIFICATE-----"),
        "{pem}"
    );
    let on_disk = std::fs::read_to_string(gw.data_dir().join("pki/ca.crt")).expect("CA file");
    assert_eq!(pem.trim(), on_disk.trim());

    let id = expect_ok(gw.get("/id", &gw.admin), 200);
    assert_eq!(
        (&id["name"], &id["isAdmin"], &id["isOrg"]),
        (&json!("admin"), &json!(true), &json!(false))
    );
    let cluster = id["cluster"]["id"].as_str().expect("cluster.id");
    let node = id["node"]["id"].as_str().expect("node.id");
    assert!(!cluster.is_empty() && !node.is_empty(), "{id}");
    assert_eq!(
        (&id["node"]["leader"], &id["node"]["address"]),
        (&json!(true), &json!("127.0.0.1"))
    );
    gw.create_user("ivan", "ivan-password-1");
    let ivan = gw.login("ivan", "ivan-password-1").expect("login");
    let iid = expect_ok(gw.get("/id", &ivan), 200);
    assert_eq!(
        (&iid["name"], &iid["isAdmin"]),
        (&json!("ivan"), &json!(false))
    );
    assert_eq!(
        (&iid["cluster"]["id"], &iid["node"]["id"]),
        (&id["cluster"]["id"], &id["node"]["id"])
    );
    expect_error(gw.call(Method::GET, "/id", None, None), 401, &[]);

    let (s, metrics) = gw.call(Method::GET, "/metrics", Some(&gw.admin), None);
    assert_eq!(s, 200);
    let metrics = metrics.as_str().expect("text");
    let has = |prefix: &str, also: &str| {
        metrics
            .lines()
            .any(|l| l.starts_with(prefix) && l.contains(also))
    };
    assert!(has("capstan_raft_term ", ""), "{metrics}");
    assert!(
        has("capstan_http_requests_total{", "route=\"/id\""),
        "{metrics}"
    );
    assert!(has("capstan_nodes", ""), "{metrics}");
    // Every series the example Grafana dashboard plots is served.
    let dashboard: Value =
        serde_json::from_str(include_str!("../deploy/grafana/capstan-dashboard.json"))
            .expect("the Grafana dashboard is JSON");
    let mut plotted = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("capstan_") {
                    plotted += 1;
                    // (Families without samples yet still have their HELP line.)
                    let family = word.trim_end_matches("_total").trim_end_matches("_bucket");
                    assert!(
                        metrics.contains(&format!("# HELP {family}")),
                        "the dashboard plots {word}, not served:\n{metrics}"
                    );
                }
            }
        }
    }
    assert!(plotted >= 9, "{plotted}");
    expect_error(gw.get("/metrics", &ivan), 403, &["ivan"]);
    expect_error(gw.call(Method::GET, "/metrics", None, None), 401, &[]);
}

/// Every route of the router in `crates/capstan-gateway/src/api/mod.rs`,
/// with its methods. This list must name every route the router serves: a
/// route added there belongs here too, so that the test below checks the
/// OpenAPI document describes it.
const ROUTES: &[(&str, &[&str])] = &[
    ("/_ping", &["get"]),
    ("/id", &["get"]),
    ("/ca", &["get"]),
    ("/api/openapi.json", &["get"]),
    ("/metrics", &["get"]),
    ("/auth/login", &["post"]),
    ("/auth/logout", &["post"]),
    ("/accounts", &["get", "post"]),
    ("/accounts/{name}", &["get", "patch", "delete"]),
    ("/accounts/{org}/members", &["get"]),
    (
        "/accounts/{org}/members/{member}",
        &["get", "put", "delete"],
    ),
    ("/accounts/{org}/teams", &["get", "post"]),
    ("/accounts/{org}/teams/{team}", &["get", "patch", "delete"]),
    ("/accounts/{org}/teams/{team}/members", &["get"]),
    (
        "/accounts/{org}/teams/{team}/members/{member}",
        &["get", "put", "delete"],
    ),
    ("/roles", &["get", "post"]),
    ("/roles/{id}", &["get", "put", "delete"]),
    ("/collections", &["get", "post"]),
    ("/collections/{id}", &["get", "patch", "delete"]),
    ("/collections/{id}/children", &["get"]),
    ("/collectionGrants", &["get"]),
    (
        "/collectionGrants/{subject_id}/{object_id}/{role_id}",
        &["put", "delete"],
    ),
    ("/api/authz/explain", &["get"]),
    ("/api/authz/matrix", &["get"]),
    ("/api/audit", &["get"]),
    ("/api/license", &["get", "put"]),
    ("/api/ucp/config-toml", &["get", "put"]),
    ("/api/support", &["post"]),
    ("/api/registries", &["get", "post"]),
    ("/api/registries/install", &["get"]),
    ("/api/clientbundle", &["get", "post"]),
    ("/api/clientbundle/certs", &["get"]),
    ("/api/clientbundle/certs/{id}", &["delete"]),
];

#[test]
fn openapi_document_describes_every_route() {
    let gw = Gateway::start();
    let (s, text) = gw.raw(
        Method::GET,
        "/api/openapi.json",
        None,
        "text/plain",
        Vec::new(),
    );
    assert_eq!(s, 200);
    let doc: Value = serde_json::from_str(&text).expect("the OpenAPI document is JSON");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");
    let mut missing = Vec::new();
    for (path, methods) in ROUTES {
        match paths.get(*path) {
            None => missing.push(path.to_string()),
            Some(item) => missing.extend(
                methods
                    .iter()
                    .filter(|m| item.get(**m).is_none())
                    .map(|m| format!("{} {path}", m.to_uppercase())),
            ),
        }
    }
    assert!(
        missing.is_empty(),
        "not in the OpenAPI document: {missing:?}"
    );
    // Nothing documented that the list (and so the router) lacks.
    let extra: Vec<&String> = paths
        .keys()
        .filter(|p| !ROUTES.iter().any(|(r, _)| r == p))
        .collect();
    assert!(
        extra.is_empty(),
        "documented but not in the list: {extra:?}"
    );
    assert!(
        doc["components"]["securitySchemes"]["bearer"].is_object(),
        "{}",
        doc["components"]
    );

    // Each listed route is served: a request on it (parameters filled with
    // names that do not exist) is not the fallback's 404.
    for (path, methods) in ROUTES {
        let concrete: Vec<&str> = path
            .split('/')
            .map(|s| if s.starts_with('{') { "zzz-none" } else { s })
            .collect();
        let concrete = concrete.join("/");
        for m in *methods {
            let method = Method::from_bytes(m.to_uppercase().as_bytes()).expect("method");
            let (s, body) = gw.raw(method, &concrete, None, "application/json", Vec::new());
            let fallback = s == 404 && body.contains("no API route matches");
            assert!(!fallback, "{m} {concrete} is not routed: {body}");
            assert_ne!(s, 405, "{m} {concrete}: {body}");
        }
    }
}

#[test]
fn unknown_route_and_wrong_method() {
    let gw = Gateway::start();
    for path in ["/nope", "/accounts/alice/extra/deep/path", "/api"] {
        for token in [None, Some(gw.admin.as_str())] {
            let (s, body) = gw.call(Method::GET, path, token, None);
            expect_error((s, body.clone()), 404, &[path]);
            assert_eq!(body["errors"][0]["code"], "NOT_FOUND");
        }
    }
    let wrong = [
        (Method::DELETE, "/_ping"),
        (Method::POST, "/roles/viewonly"),
        (Method::PATCH, "/api/license"),
        (Method::PUT, "/accounts"),
        (Method::GET, "/auth/login"),
    ];
    for (method, path) in wrong {
        let (s, body) = gw.call(method.clone(), path, Some(&gw.admin), None);
        expect_error((s, body.clone()), 405, &[path]);
        assert_eq!(
            body["errors"][0]["code"], "METHOD_NOT_ALLOWED",
            "{method} {path}"
        );
    }
}
