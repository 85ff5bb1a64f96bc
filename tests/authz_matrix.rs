//! The authorisation matrix: every REST route × each built-in role × where
//! the role is granted (on the resource's collection, on its parent,
//! elsewhere, nowhere) × how the caller holds the grant (as a user, as a
//! team member, as an organisation member).
//!
//! The expected answers are the table `tests/data/authz_matrix.tsv`, whose
//! header describes the fixture, the columns and the outcome rule; this file
//! makes the requests, judges each answer by that rule (see [`judge`]),
//! checks that the table covers every route of the OpenAPI document for
//! every role, and that every denial is in the audit log.

#[path = "support/gateway.rs"]
mod gateway;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Instant;

use gateway::Gateway;
use reqwest::Method;
use serde_json::{json, Value};

/// The expectations.
const TABLE: &str = include_str!("data/authz_matrix.tsv");

/// The built-in roles, in the table's order.
const ROLES: [&str; 5] = [
    "none",
    "viewonly",
    "restrictedcontrol",
    "scheduler",
    "fullcontrol",
];

/// Where the role is granted; the table's columns, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placement {
    OnCollection,
    OnParent,
    Elsewhere,
    NoGrant,
}

const PLACEMENTS: [Placement; 4] = [
    Placement::OnCollection,
    Placement::OnParent,
    Placement::Elsewhere,
    Placement::NoGrant,
];

impl Placement {
    fn column(self) -> &'static str {
        match self {
            Placement::OnCollection => "on-C",
            Placement::OnParent => "on-P",
            Placement::Elsewhere => "on-E",
            Placement::NoGrant => "no-grant",
        }
    }

    fn index(self) -> usize {
        PLACEMENTS
            .iter()
            .position(|p| *p == self)
            .expect("a placement")
    }
}

const PASSWORD: &str = "matrix-password-1";
const C_PATH: &str = "/Shared/matrix/target";

/// How a subject holds the grants made for it.
#[derive(Clone, Copy, Debug)]
enum Kind {
    User,
    TeamMember,
    OrgMember,
    /// The admin, who may do everything: a check that every request is
    /// one whose allow shows.
    Admin,
}

/// A user whose requests the matrix judges.
struct Subject {
    kind: Kind,
    username: &'static str,
    /// Who grants are made to: the user, their team or their org.
    grantee_id: String,
    /// A session of the subject.
    token: String,
}

impl Subject {
    fn password(&self) -> &'static str {
        match self.kind {
            Kind::Admin => gateway::ADMIN_PASSWORD,
            _ => PASSWORD,
        }
    }
}

/// The running gateway and the fixture.
struct World {
    gw: Gateway,
    c: String,
    p: String,
    e: String,
    /// m-other's user id.
    other: String,
    custom_role: String,
    /// Makes names unique (collections, accounts, teams, roles a wrongly
    /// allowed create would make).
    serial: Cell<u32>,
    /// A session logged in by the login case, for the logout case to end.
    fresh_session: RefCell<Option<String>>,
}

/// What an answer shows the decision was.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Allow,
    Deny,
    /// Neither: a 401, a 5xx, a 403 that is not an RBAC denial, a list that
    /// did not answer 200.
    Other,
}

/// One request of one case, judged.
struct Answer {
    method: Method,
    /// Path without the query, as the audit log records it.
    path: String,
    outcome: Outcome,
    /// Whether a denial must be audited: false for list visibility, where
    /// "deny" is an entry left out of a 200 answer.
    audited: bool,
    status: u16,
    body: String,
}

/// One request the matrix makes, by its label in the table.
struct Case {
    label: &'static str,
    run: fn(&World, &Subject) -> Answer,
}

/// The outcome rule for requests that are not RBAC-filtered lists: allow
/// when the answer is neither 401 nor 403 (an error after the decision, a
/// 404 or 409, still means the decision was allow), deny when it is 403
/// with the RBAC denial message. 401 (the subject's session must work), a
/// 403 for another reason, and 5xx are neither.
fn judge(status: u16, body: &Value) -> Outcome {
    match status {
        401 => Outcome::Other,
        403 if error_message(body).starts_with("access denied") => Outcome::Deny,
        403 => Outcome::Other,
        s if s >= 500 => Outcome::Other,
        _ => Outcome::Allow,
    }
}

/// The first error message of an error body.
fn error_message(body: &Value) -> &str {
    body["errors"][0]["message"].as_str().unwrap_or("")
}

fn text(body: &Value) -> String {
    let s = match body {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    s.chars().take(300).collect()
}

impl World {
    fn admin(&self) -> &str {
        &self.gw.admin
    }

    fn next(&self) -> u32 {
        let n = self.serial.get() + 1;
        self.serial.set(n);
        n
    }

    /// A JSON request (with a session token, if any), judged by [`judge`];
    /// also the body.
    fn request(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (Answer, Value) {
        let (status, value) = self.gw.call(method.clone(), path, token, body);
        let answer = Answer {
            method,
            path: path.split('?').next().unwrap_or(path).to_string(),
            outcome: judge(status, &value),
            audited: true,
            status,
            body: text(&value),
        };
        (answer, value)
    }

    fn ask(&self, s: &Subject, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.request(Some(&s.token), method, path, body).0
    }

    /// A request with a raw body as the subject, judged by [`judge`].
    fn ask_raw(
        &self,
        s: &Subject,
        method: Method,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> Answer {
        let (status, t) = self.gw.raw(
            method.clone(),
            path,
            Some(&s.token),
            content_type,
            body.as_bytes().to_vec(),
        );
        let value = serde_json::from_str(&t).unwrap_or(Value::String(t));
        Answer {
            method,
            path: path.to_string(),
            outcome: judge(status, &value),
            audited: true,
            status,
            body: text(&value),
        }
    }

    /// A list the API filters by RBAC, as the subject: allow when an entry
    /// passes `listed`.
    fn listing(
        &self,
        s: &Subject,
        path: &str,
        entries: fn(&Value) -> Option<&Vec<Value>>,
        listed: impl Fn(&Value) -> bool,
    ) -> Answer {
        let (status, value) = self.gw.call(Method::GET, path, Some(&s.token), None);
        let outcome = match entries(&value) {
            Some(list) if status == 200 => {
                if list.iter().any(listed) {
                    Outcome::Allow
                } else {
                    Outcome::Deny
                }
            }
            _ => Outcome::Other,
        };
        Answer {
            method: Method::GET,
            path: path.split('?').next().unwrap_or(path).to_string(),
            outcome,
            audited: false,
            status,
            body: text(&value),
        }
    }

    /// An admin request that must answer `want`.
    fn admin_call(&self, method: Method, path: &str, body: Option<Value>, want: u16) -> Value {
        let (status, value) = self.gw.call(method.clone(), path, Some(self.admin()), body);
        assert_eq!(status, want, "admin {method} {path}: {value}");
        value
    }

    /// Deletes what an allowed create made (`path` names it).
    fn cleanup(&self, a: &Answer, path: &str) {
        if matches!(a.status, 200 | 201) {
            self.admin_call(Method::DELETE, path, None, 204);
        }
    }
}

/// Every request of the matrix. Targets are chosen so that a wrong allow
/// shows as an answer other than 403 and destroys nothing; what a wrongly
/// allowed create makes, the admin deletes.
fn cases() -> Vec<Case> {
    vec![
        // -------------------------------------------------- public, sessions
        Case {
            label: "GET /_ping",
            run: |w, s| w.ask(s, Method::GET, "/_ping", None),
        },
        Case {
            label: "GET /ca",
            run: |w, s| w.ask(s, Method::GET, "/ca", None),
        },
        Case {
            label: "GET /api/openapi.json",
            run: |w, s| w.ask(s, Method::GET, "/api/openapi.json", None),
        },
        Case {
            label: "POST /auth/login",
            run: |w, s| {
                let (a, body) = w.request(
                    None,
                    Method::POST,
                    "/auth/login",
                    Some(json!({"username": s.username, "password": s.password()})),
                );
                if let Some(t) = body["auth_token"].as_str() {
                    *w.fresh_session.borrow_mut() = Some(t.to_string());
                }
                a
            },
        },
        Case {
            label: "POST /auth/logout",
            run: |w, s| {
                // Ends a session of its own (the login case's), never the
                // one the other requests use.
                let fresh = w.fresh_session.borrow_mut().take();
                let token =
                    fresh.unwrap_or_else(|| w.gw.login(s.username, s.password()).expect("login"));
                w.request(Some(&token), Method::POST, "/auth/logout", None)
                    .0
            },
        },
        // -------------------------------------------------- self-service
        Case {
            label: "GET /id",
            run: |w, s| w.ask(s, Method::GET, "/id", None),
        },
        Case {
            label: "GET /accounts (lists {self})",
            run: |w, s| {
                w.listing(
                    s,
                    "/accounts?limit=1000",
                    |v| v["accounts"].as_array(),
                    |a| a["name"] == s.username,
                )
            },
        },
        Case {
            label: "GET /accounts/{self}",
            run: |w, s| w.ask(s, Method::GET, &format!("/accounts/{}", s.username), None),
        },
        Case {
            label: "PATCH /accounts/{self}",
            run: |w, s| {
                w.ask(
                    s,
                    Method::PATCH,
                    &format!("/accounts/{}", s.username),
                    Some(json!({"fullName": "Matrix Subject"})),
                )
            },
        },
        // -------------------------------------------------- collections
        Case {
            label: "GET /collections (lists {C})",
            run: |w, s| {
                w.listing(s, "/collections", Value::as_array, |c| {
                    c["id"] == w.c.as_str()
                })
            },
        },
        Case {
            label: "GET /collections/{C}",
            run: |w, s| w.ask(s, Method::GET, &format!("/collections/{}", w.c), None),
        },
        Case {
            label: "GET /collections/{C}/children",
            run: |w, s| {
                w.ask(
                    s,
                    Method::GET,
                    &format!("/collections/{}/children", w.c),
                    None,
                )
            },
        },
        Case {
            label: "POST /collections (under {C})",
            run: |w, s| {
                let name = format!("child-{}", w.next());
                let (a, body) = w.request(
                    Some(&s.token),
                    Method::POST,
                    "/collections",
                    Some(json!({"name": name, "parent_id": w.c})),
                );
                if let Some(id) = body["id"].as_str() {
                    w.admin_call(Method::DELETE, &format!("/collections/{id}"), None, 204);
                }
                a
            },
        },
        Case {
            label: "PATCH /collections/{C}",
            run: |w, s| {
                w.ask(
                    s,
                    Method::PATCH,
                    &format!("/collections/{}", w.c),
                    Some(json!({"name": "target"})),
                )
            },
        },
        Case {
            label: "DELETE /collections/{C}",
            run: |w, s| w.ask(s, Method::DELETE, &format!("/collections/{}", w.c), None),
        },
        // -------------------------------------------------- grants
        Case {
            label: "GET /collectionGrants (lists m-other's grant on {C})",
            run: |w, s| {
                w.listing(
                    s,
                    "/collectionGrants",
                    |v| v["grants"].as_array(),
                    |g| g["objectID"] == w.c.as_str() && g["subjectName"] == "m-other",
                )
            },
        },
        Case {
            label: "PUT /collectionGrants/m-other/{C}/scheduler",
            run: |w, s| {
                let path = format!("/collectionGrants/{}/{}/scheduler", w.other, w.c);
                let a = w.ask(s, Method::PUT, &path, None);
                w.cleanup(&a, &path);
                a
            },
        },
        Case {
            label: "DELETE /collectionGrants/m-other/{C}/fullcontrol",
            run: |w, s| {
                let path = format!("/collectionGrants/{}/{}/fullcontrol", w.other, w.c);
                w.ask(s, Method::DELETE, &path, None)
            },
        },
        // -------------------------------------------------- accounts
        Case {
            label: "GET /accounts (lists m-other)",
            run: |w, s| {
                w.listing(
                    s,
                    "/accounts?limit=1000",
                    |v| v["accounts"].as_array(),
                    |a| a["name"] == "m-other",
                )
            },
        },
        Case {
            label: "POST /accounts",
            run: |w, s| {
                let name = format!("m-new-{}", w.next());
                let a = w.ask(
                    s,
                    Method::POST,
                    "/accounts",
                    Some(json!({"name": name, "password": PASSWORD})),
                );
                w.cleanup(&a, &format!("/accounts/{name}"));
                a
            },
        },
        Case {
            label: "GET /accounts/m-other",
            run: |w, s| w.ask(s, Method::GET, "/accounts/m-other", None),
        },
        Case {
            label: "GET /accounts/matrixorg",
            run: |w, s| w.ask(s, Method::GET, "/accounts/matrixorg", None),
        },
        Case {
            label: "PATCH /accounts/{self} (isAdmin: true)",
            run: |w, s| {
                let path = format!("/accounts/{}", s.username);
                let a = w.ask(s, Method::PATCH, &path, Some(json!({"isAdmin": true})));
                if a.status == 200 && !matches!(s.kind, Kind::Admin) {
                    w.admin_call(Method::PATCH, &path, Some(json!({"isAdmin": false})), 200);
                }
                a
            },
        },
        Case {
            label: "PATCH /accounts/m-other",
            run: |w, s| {
                w.ask(
                    s,
                    Method::PATCH,
                    "/accounts/m-other",
                    Some(json!({"fullName": "Changed By The Matrix"})),
                )
            },
        },
        Case {
            label: "DELETE /accounts/no-such-user",
            run: |w, s| w.ask(s, Method::DELETE, "/accounts/no-such-user", None),
        },
        // -------------------------------------------------- organisation members
        Case {
            label: "GET /accounts/matrixorg/members",
            run: |w, s| w.ask(s, Method::GET, "/accounts/matrixorg/members", None),
        },
        Case {
            label: "GET /accounts/matrixorg/members/m-other",
            run: |w, s| w.ask(s, Method::GET, "/accounts/matrixorg/members/m-other", None),
        },
        Case {
            label: "PUT /accounts/matrixorg/members/no-such-user",
            run: |w, s| {
                w.ask(
                    s,
                    Method::PUT,
                    "/accounts/matrixorg/members/no-such-user",
                    None,
                )
            },
        },
        Case {
            label: "DELETE /accounts/matrixorg/members/no-such-user",
            run: |w, s| {
                w.ask(
                    s,
                    Method::DELETE,
                    "/accounts/matrixorg/members/no-such-user",
                    None,
                )
            },
        },
        // -------------------------------------------------- teams
        Case {
            label: "GET /accounts/matrixorg/teams",
            run: |w, s| w.ask(s, Method::GET, "/accounts/matrixorg/teams", None),
        },
        Case {
            label: "POST /accounts/matrixorg/teams",
            run: |w, s| {
                let name = format!("team-{}", w.next());
                let a = w.ask(
                    s,
                    Method::POST,
                    "/accounts/matrixorg/teams",
                    Some(json!({"name": name})),
                );
                w.cleanup(&a, &format!("/accounts/matrixorg/teams/{name}"));
                a
            },
        },
        Case {
            label: "GET /accounts/matrixorg/teams/matrixteam",
            run: |w, s| w.ask(s, Method::GET, "/accounts/matrixorg/teams/matrixteam", None),
        },
        Case {
            label: "PATCH /accounts/matrixorg/teams/matrixteam",
            run: |w, s| {
                w.ask(
                    s,
                    Method::PATCH,
                    "/accounts/matrixorg/teams/matrixteam",
                    Some(json!({"description": "changed by the matrix"})),
                )
            },
        },
        Case {
            label: "DELETE /accounts/matrixorg/teams/no-such-team",
            run: |w, s| {
                w.ask(
                    s,
                    Method::DELETE,
                    "/accounts/matrixorg/teams/no-such-team",
                    None,
                )
            },
        },
        Case {
            label: "GET /accounts/matrixorg/teams/matrixteam/members",
            run: |w, s| {
                w.ask(
                    s,
                    Method::GET,
                    "/accounts/matrixorg/teams/matrixteam/members",
                    None,
                )
            },
        },
        Case {
            label: "GET /accounts/matrixorg/teams/matrixteam/members/m-other",
            run: |w, s| {
                w.ask(
                    s,
                    Method::GET,
                    "/accounts/matrixorg/teams/matrixteam/members/m-other",
                    None,
                )
            },
        },
        Case {
            label: "PUT /accounts/matrixorg/teams/matrixteam/members/no-such-user",
            run: |w, s| {
                w.ask(
                    s,
                    Method::PUT,
                    "/accounts/matrixorg/teams/matrixteam/members/no-such-user",
                    None,
                )
            },
        },
        Case {
            label: "DELETE /accounts/matrixorg/teams/matrixteam/members/no-such-user",
            run: |w, s| {
                w.ask(
                    s,
                    Method::DELETE,
                    "/accounts/matrixorg/teams/matrixteam/members/no-such-user",
                    None,
                )
            },
        },
        // -------------------------------------------------- roles
        Case {
            label: "GET /roles",
            run: |w, s| w.ask(s, Method::GET, "/roles", None),
        },
        Case {
            label: "POST /roles",
            run: |w, s| {
                let (a, body) = w.request(
                    Some(&s.token),
                    Method::POST,
                    "/roles",
                    Some(json!({"name": format!("matrix-role-{}", w.next()), "operations": ["container.view"]})),
                );
                if let Some(id) = body["id"].as_str() {
                    w.admin_call(Method::DELETE, &format!("/roles/{id}"), None, 204);
                }
                a
            },
        },
        Case {
            label: "GET /roles/viewonly",
            run: |w, s| w.ask(s, Method::GET, "/roles/viewonly", None),
        },
        Case {
            label: "PUT /roles/{custom}",
            run: |w, s| {
                w.ask(
                    s,
                    Method::PUT,
                    &format!("/roles/{}", w.custom_role),
                    Some(json!({"name": "matrix-custom", "operations": ["container.view"]})),
                )
            },
        },
        Case {
            label: "DELETE /roles/no-such-role",
            run: |w, s| w.ask(s, Method::DELETE, "/roles/no-such-role", None),
        },
        // -------------------------------------------------- admin
        Case {
            label: "GET /api/audit",
            run: |w, s| w.ask(s, Method::GET, "/api/audit?limit=1", None),
        },
        Case {
            label: "GET /api/license",
            run: |w, s| w.ask(s, Method::GET, "/api/license", None),
        },
        Case {
            // Not a license: answers 400 when allowed.
            label: "PUT /api/license",
            run: |w, s| w.ask_raw(s, Method::PUT, "/api/license", "application/json", "{}"),
        },
        Case {
            label: "GET /api/registries",
            run: |w, s| w.ask(s, Method::GET, "/api/registries", None),
        },
        Case {
            label: "GET /api/registries/install",
            run: |w, s| w.ask(s, Method::GET, "/api/registries/install", None),
        },
        Case {
            // No such node: answers 404 when allowed.
            label: "POST /api/registries",
            run: |w, s| {
                w.ask(
                    s,
                    Method::POST,
                    "/api/registries",
                    Some(json!({"node_id": "no-such-node", "url": "https://registry.example"})),
                )
            },
        },
        Case {
            label: "GET /api/ucp/config-toml",
            run: |w, s| w.ask(s, Method::GET, "/api/ucp/config-toml", None),
        },
        Case {
            // Not TOML: answers 400 when allowed.
            label: "PUT /api/ucp/config-toml",
            run: |w, s| {
                w.ask_raw(
                    s,
                    Method::PUT,
                    "/api/ucp/config-toml",
                    "text/plain",
                    "[[[ not toml",
                )
            },
        },
        Case {
            label: "POST /api/support",
            run: |w, s| w.ask(s, Method::POST, "/api/support", None),
        },
        Case {
            label: "GET /metrics",
            run: |w, s| w.ask(s, Method::GET, "/metrics", None),
        },
        Case {
            label: "GET /api/authz/explain",
            run: |w, s| {
                w.ask(
                    s,
                    Method::GET,
                    &format!(
                        "/api/authz/explain?subject={}&operation=collection.view&resource={C_PATH}",
                        s.username
                    ),
                    None,
                )
            },
        },
        Case {
            label: "GET /api/authz/matrix",
            run: |w, s| w.ask(s, Method::GET, "/api/authz/matrix", None),
        },
        // -------------------------------------------------- client bundles
        Case {
            label: "GET /api/clientbundle",
            run: |w, s| w.ask(s, Method::GET, "/api/clientbundle", None),
        },
        Case {
            label: "POST /api/clientbundle",
            run: |w, s| w.ask(s, Method::POST, "/api/clientbundle", None),
        },
        Case {
            label: "GET /api/clientbundle (user: m-other)",
            run: |w, s| w.ask(s, Method::GET, "/api/clientbundle?user=m-other", None),
        },
        Case {
            label: "POST /api/clientbundle (user: m-other)",
            run: |w, s| w.ask(s, Method::POST, "/api/clientbundle?user=m-other", None),
        },
        Case {
            label: "GET /api/clientbundle/certs",
            run: |w, s| w.ask(s, Method::GET, "/api/clientbundle/certs", None),
        },
        Case {
            label: "GET /api/clientbundle/certs (user: m-other)",
            run: |w, s| w.ask(s, Method::GET, "/api/clientbundle/certs?user=m-other", None),
        },
        Case {
            label: "DELETE /api/clientbundle/certs/{bundle}",
            run: |w, s| {
                let made = format!("/api/clientbundle?user={}&label=matrix-revoke", s.username);
                let (status, body) = w.gw.call(Method::POST, &made, Some(w.admin()), None);
                assert_eq!(status, 200, "admin POST {made}: {body}");
                let listed = w.admin_call(
                    Method::GET,
                    &format!("/api/clientbundle/certs?user={}", s.username),
                    None,
                    200,
                );
                let id = listed
                    .as_array()
                    .and_then(|l| {
                        l.iter()
                            .find(|b| b["label"] == "matrix-revoke" && b["revoked"] == false)
                    })
                    .and_then(|b| b["id"].as_str())
                    .expect("the bundle just made")
                    .to_string();
                w.ask(
                    s,
                    Method::DELETE,
                    &format!("/api/clientbundle/certs/{id}"),
                    None,
                )
            },
        },
    ]
}

/// The table: (request, role) → allow per placement.
struct Expectations {
    rows: BTreeMap<(String, String), [bool; 4]>,
}

impl Expectations {
    fn parse(text: &str) -> Expectations {
        let mut rows = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let line = line.trim_end();
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let cells: Vec<&str> = line
                .split('\t')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            assert_eq!(
                cells.len(),
                6,
                "authz_matrix.tsv line {n}: want request, role and 4 values separated by tabs: {line:?}"
            );
            let role = cells[1];
            assert!(
                ROLES.contains(&role),
                "authz_matrix.tsv line {n}: unknown role {role:?}"
            );
            let mut values = [false; 4];
            for (v, cell) in values.iter_mut().zip(&cells[2..]) {
                *v = match *cell {
                    "allow" => true,
                    "deny" => false,
                    other => panic!("authz_matrix.tsv line {n}: {other:?} is not allow or deny"),
                };
            }
            let key = (cells[0].to_string(), role.to_string());
            assert!(
                rows.insert(key, values).is_none(),
                "authz_matrix.tsv line {n}: a second row for {} as {role}",
                cells[0]
            );
        }
        Expectations { rows }
    }

    fn allow(&self, label: &str, role: &str, p: Placement) -> bool {
        self.rows
            .get(&(label.to_string(), role.to_string()))
            .unwrap_or_else(|| panic!("authz_matrix.tsv has no row for {label} as {role}"))
            [p.index()]
    }
}

/// `METHOD /path` of a table label (its note in parentheses left out).
fn method_and_path(label: &str) -> (&str, &str) {
    let mut words = label.split_whitespace();
    let method = words.next().unwrap_or("");
    let path = words.next().unwrap_or("");
    (method, path)
}

/// Whether a label's path names an OpenAPI route's path: same segments,
/// where a parameter of the route matches any segment and a `{...}`
/// placeholder of the label only a parameter.
fn names_route(path: &str, route: &str) -> bool {
    let a: Vec<&str> = path.split('/').collect();
    let b: Vec<&str> = route.split('/').collect();
    a.len() == b.len()
        && a.iter().zip(&b).all(|(x, y)| {
            if y.starts_with('{') {
                true
            } else {
                !x.starts_with('{') && x == y
            }
        })
}

/// The routes of the OpenAPI document, as `METHOD /path/{param}`.
fn openapi_routes(gw: &Gateway) -> BTreeSet<(String, String)> {
    let (status, doc) = gw.call(Method::GET, "/api/openapi.json", None, None);
    assert_eq!(status, 200, "{doc}");
    let paths = doc["paths"].as_object().expect("OpenAPI paths");
    let mut routes = BTreeSet::new();
    for (path, item) in paths {
        for method in [
            "get", "put", "post", "delete", "patch", "head", "options", "trace",
        ] {
            if item.get(method).is_some() {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    assert!(
        routes.len() > 30,
        "the OpenAPI document lists only {routes:?}"
    );
    routes
}

/// The table names real routes, covers each route for every role, and the
/// test knows how to make each of its requests.
fn check_coverage(gw: &Gateway, table: &Expectations, cases: &[Case]) {
    let routes = openapi_routes(gw);
    let labels: BTreeSet<&str> = table.rows.keys().map(|(l, _)| l.as_str()).collect();
    let known: BTreeSet<&str> = cases.iter().map(|c| c.label).collect();
    let mut problems = Vec::new();

    let mut covered: BTreeSet<(String, String, String)> = BTreeSet::new();
    for (label, role) in table.rows.keys() {
        let (method, path) = method_and_path(label);
        let matches: Vec<&(String, String)> = routes
            .iter()
            .filter(|(m, r)| m == method && names_route(path, r))
            .collect();
        match matches.as_slice() {
            [(m, r)] => {
                covered.insert((m.clone(), r.clone(), role.clone()));
            }
            [] => problems.push(format!(
                "row {label:?} names no route of the OpenAPI document"
            )),
            many => problems.push(format!("row {label:?} names several routes: {many:?}")),
        }
    }
    for (method, route) in &routes {
        for role in ROLES {
            if !covered.contains(&(method.clone(), route.clone(), role.to_string())) {
                problems.push(format!("no row for {method} {route} as {role}"));
            }
        }
    }
    for label in &labels {
        if !known.contains(label) {
            problems.push(format!("row {label:?}: the test has no such request"));
        }
    }
    for label in &known {
        for role in ROLES {
            if !table
                .rows
                .contains_key(&(label.to_string(), role.to_string()))
            {
                problems.push(format!("no row for the request {label:?} as {role}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "tests/data/authz_matrix.tsv does not match the API:\n  {}",
        problems.join("\n  ")
    );
}

/// A collection made by the admin; its id.
fn collection(w: &Gateway, name: &str, parent: &str) -> String {
    let (s, b) = w.call(
        Method::POST,
        "/collections",
        Some(&w.admin),
        Some(json!({"name": name, "parent_id": parent})),
    );
    assert_eq!(s, 201, "create collection {name}: {b}");
    b["id"].as_str().expect("collection id").to_string()
}

/// Users, an org with a team, collections, a custom role; the subjects
/// logged in, without their default grant on /Shared.
fn fixture() -> (World, Vec<Subject>) {
    let gw = Gateway::start();
    let call = |method: Method, path: &str, body: Option<Value>, want: u16| -> Value {
        let (s, b) = gw.call(method.clone(), path, Some(&gw.admin), body);
        assert_eq!(s, want, "admin {method} {path}: {b}");
        b
    };
    let ids: BTreeMap<&str, String> = ["m-user", "m-team", "m-org", "m-other"]
        .into_iter()
        .map(|name| (name, gw.create_user(name, PASSWORD)))
        .collect();
    let org = call(
        Method::POST,
        "/accounts",
        Some(json!({"name": "matrixorg", "isOrg": true})),
        201,
    )["id"]
        .as_str()
        .expect("org id")
        .to_string();
    let team = call(
        Method::POST,
        "/accounts/matrixorg/teams",
        Some(json!({"name": "matrixteam"})),
        201,
    )["id"]
        .as_str()
        .expect("team id")
        .to_string();
    call(
        Method::PUT,
        "/accounts/matrixorg/teams/matrixteam/members/m-team",
        None,
        200,
    );
    call(
        Method::PUT,
        "/accounts/matrixorg/teams/matrixteam/members/m-other",
        None,
        200,
    );
    call(Method::PUT, "/accounts/matrixorg/members/m-org", None, 200);

    let p = collection(&gw, "matrix", "shared");
    let c = collection(&gw, "target", &p);
    collection(&gw, "keep", &c);
    let e = collection(&gw, "elsewhere", "shared");
    call(
        Method::PUT,
        &format!("/collectionGrants/{}/{c}/viewonly", ids["m-other"]),
        None,
        201,
    );
    let custom_role = call(
        Method::POST,
        "/roles",
        Some(json!({"name": "matrix-custom", "operations": ["container.view"]})),
        201,
    )["id"]
        .as_str()
        .expect("role id")
        .to_string();

    let mut subjects = Vec::new();
    for (kind, username, grantee) in [
        (Kind::User, "m-user", ids["m-user"].clone()),
        (Kind::TeamMember, "m-team", team),
        (Kind::OrgMember, "m-org", org),
    ] {
        let user_id = ids[username].clone();
        // Scheduler on /Shared sits above C: without revoking it, "no grant"
        // would not be.
        call(
            Method::DELETE,
            &format!("/collectionGrants/{user_id}/shared/scheduler"),
            None,
            204,
        );
        let token = gw.login(username, PASSWORD).expect("subject login");
        subjects.push(Subject {
            kind,
            username,
            grantee_id: grantee,
            token,
        });
    }
    let world = World {
        gw,
        c,
        p,
        e,
        other: ids["m-other"].clone(),
        custom_role,
        serial: Cell::new(0),
        fresh_session: RefCell::new(None),
    };
    (world, subjects)
}

#[test]
fn every_route_for_every_role_placement_and_subject() {
    let started = Instant::now();
    let table = Expectations::parse(TABLE);
    let cases = cases();
    let (w, subjects) = fixture();
    check_coverage(&w.gw, &table, &cases);

    // The admin may do everything: every request must come out allowed,
    // so that a wrong allow of the matrix would show.
    let admin = Subject {
        kind: Kind::Admin,
        username: "admin",
        grantee_id: String::new(),
        token: w.gw.admin.clone(),
    };
    for case in &cases {
        let a = (case.run)(&w, &admin);
        assert_eq!(
            a.outcome,
            Outcome::Allow,
            "{} as the admin: {} {} answered {} {}",
            case.label,
            a.method,
            a.path,
            a.status,
            a.body
        );
    }

    let mut wrong = Vec::new();
    // (actor, method, path) → requests answered 403, which the audit log
    // must hold as denials.
    let mut denied: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    let mut requests = 0usize;
    for role in ROLES {
        for placement in PLACEMENTS {
            for s in &subjects {
                let object = match placement {
                    Placement::OnCollection => Some(&w.c),
                    Placement::OnParent => Some(&w.p),
                    Placement::Elsewhere => Some(&w.e),
                    Placement::NoGrant => None,
                };
                let grant =
                    object.map(|o| format!("/collectionGrants/{}/{o}/{role}", s.grantee_id));
                if let Some(g) = &grant {
                    w.admin_call(Method::PUT, g, None, 201);
                }
                for case in &cases {
                    let want = table.allow(case.label, role, placement);
                    let a = (case.run)(&w, s);
                    requests += 1;
                    let expected = if want { Outcome::Allow } else { Outcome::Deny };
                    if a.outcome != expected {
                        wrong.push(format!(
                            "{} as {:?} {} with {role} {}: want {expected:?}, got {:?} ({} {}: {} {})",
                            case.label,
                            s.kind,
                            s.username,
                            placement.column(),
                            a.outcome,
                            a.method,
                            a.path,
                            a.status,
                            a.body
                        ));
                    }
                    if a.audited && a.status == 403 {
                        *denied
                            .entry((s.username.to_string(), a.method.to_string(), a.path.clone()))
                            .or_default() += 1;
                    }
                }
                if let Some(g) = &grant {
                    w.admin_call(Method::DELETE, g, None, 204);
                }
            }
        }
    }

    // Every denial is audited, as a denial of that user, method and path.
    let subjects_by_name: BTreeSet<&str> = subjects.iter().map(|s| s.username).collect();
    let mut audited: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for e in w.gw.audit() {
        let actor = e["actor"].as_str().unwrap_or("");
        if subjects_by_name.contains(actor) && e["decision"] == "deny" {
            *audited
                .entry((
                    actor.to_string(),
                    e["method"].as_str().unwrap_or("").to_string(),
                    e["path"].as_str().unwrap_or("").to_string(),
                ))
                .or_default() += 1;
        }
    }
    let mut unaudited = String::new();
    for key in denied.keys().chain(audited.keys()).collect::<BTreeSet<_>>() {
        let (d, a) = (
            denied.get(key).copied().unwrap_or(0),
            audited.get(key).copied().unwrap_or(0),
        );
        if d != a {
            let _ = writeln!(
                unaudited,
                "  {} {} {}: {d} denied, {a} audited as denials",
                key.0, key.1, key.2
            );
        }
    }

    let elapsed = started.elapsed();
    eprintln!(
        "authz matrix: {} rows, {requests} requests in {:.1}s, {} denials",
        table.rows.len(),
        elapsed.as_secs_f64(),
        denied.values().sum::<usize>()
    );
    assert!(
        wrong.is_empty(),
        "{} of {requests} answers differ from tests/data/authz_matrix.tsv:\n  {}",
        wrong.len(),
        wrong.join("\n  ")
    );
    assert!(
        unaudited.is_empty(),
        "denials and the audit log disagree:\n{unaudited}"
    );
}
