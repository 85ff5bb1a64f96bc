//! The decision, table-driven: who may do what where, and why.

use time::OffsetDateTime;

use super::*;
use crate::rbac::{
    builtin_collections, builtin_roles, default_grants, private_collection, Collection, Grant,
    Operation, OperationSet, ResourceSetKind, Role,
};

fn collection(id: &str, path: &str, parent_id: &str) -> Collection {
    Collection {
        id: id.into(),
        name: path.rsplit('/').next().unwrap_or_default().into(),
        path: path.into(),
        parent_id: parent_id.into(),
        created_at: OffsetDateTime::UNIX_EPOCH,
    }
}

fn grant(subject: &str, object: &str, role: &str) -> Grant {
    Grant {
        subject_id: subject.into(),
        object_id: object.into(),
        role_id: role.into(),
        kind: ResourceSetKind::Collection,
    }
}

fn user(id: &str, memberships: &[&str]) -> Principal {
    Principal {
        user_id: id.into(),
        username: id.trim_start_matches("u-").into(),
        admin: false,
        active: true,
        memberships: memberships.iter().map(|m| m.to_string()).collect(),
        owner_of: Vec::new(),
    }
}

fn op(name: &str) -> Operation {
    Operation::parse(name).expect("known operation")
}

/// The cluster of the tests:
/// - collections: built-ins, private ones of alice and bob, /Shared/apps,
///   /Shared/apps/web;
/// - roles: built-ins, `containers` (container.*), `people` (team.*,
///   account.*);
/// - grants: MKE's defaults for alice and bob; team t-web Full Control on
///   /Shared/apps/web; org o-acme View Only on /Shared/apps; alice
///   Restricted Control on namespace dev; carol `containers` on /; erin
///   `people` on /; and grants naming a missing role or collection.
fn authorizer() -> Authorizer {
    let epoch = OffsetDateTime::UNIX_EPOCH;
    let mut collections = builtin_collections(epoch);
    collections.push(private_collection("alice", epoch));
    collections.push(private_collection("bob", epoch));
    collections.push(collection("apps", "/Shared/apps", "shared"));
    collections.push(collection("web", "/Shared/apps/web", "apps"));
    let mut roles = builtin_roles();
    let custom = |id: &str, ops: &[&str]| Role {
        id: id.into(),
        name: id.into(),
        system_role: false,
        operations: OperationSet::from_names(ops).expect("ops"),
        description: String::new(),
    };
    roles.push(custom("containers", &["container.*"]));
    roles.push(custom("people", &["team.*", "account.*"]));
    let mut grants = default_grants("u-alice", "alice");
    grants.extend(default_grants("u-bob", "bob"));
    grants.push(grant("t-web", "web", "fullcontrol"));
    grants.push(grant("o-acme", "apps", "viewonly"));
    grants.push(Grant {
        kind: ResourceSetKind::Namespace,
        ..grant("u-alice", "dev", "restrictedcontrol")
    });
    grants.push(grant("u-carol", "swarm", "containers"));
    grants.push(grant("u-erin", "swarm", "people"));
    grants.push(grant("u-bob", "apps", "ghost-role"));
    grants.push(grant("u-bob", "gone-collection", "fullcontrol"));
    Authorizer::new(&collections, &roles, &grants)
}

fn alice() -> Principal {
    user("u-alice", &["t-web", "o-acme"])
}

#[test]
fn the_matrix() {
    use Reason::*;
    use Resource::*;
    let admin = Principal {
        admin: true,
        ..user("u-root", &[])
    };
    let retired_admin = Principal {
        active: false,
        ..admin.clone()
    };
    let retired_alice = Principal {
        active: false,
        ..alice()
    };
    let dave = Principal {
        owner_of: vec!["o-acme".into()],
        ..user("u-dave", &["o-acme"])
    };
    let bob = user("u-bob", &[]);
    let carol = user("u-carol", &[]);
    let erin = user("u-erin", &[]);
    #[rustfmt::skip]
    let cases: &[(&Principal, &str, Resource, bool, Reason)] = &[
        // Defaults: Restricted Control at home, Scheduler on /Shared.
        (&alice(), "container.create", Collection("/Shared/Private/alice"), true, Granted),
        (&alice(), "container.exec", Collection("/Shared/Private/alice"), false, NoGrant),
        (&alice(), "container.create", Collection("/Shared/Private/alice/x/y"), true, Granted),
        (&alice(), "container.view", Collection("/Shared/Private/bob"), false, NoGrant),
        (&alice(), "node.schedule", Collection("/Shared/Private/bob"), true, Granted),
        (&alice(), "node.schedule", Collection("/Shared"), true, Granted),
        (&alice(), "node.schedule", Collection("/System"), false, NoGrant),
        (&alice(), "node.schedule", Collection("/"), false, NoGrant),
        // Through her team and her org.
        (&alice(), "container.exec", Collection("/Shared/apps/web"), true, Granted),
        (&alice(), "container.exec", Collection("/Shared/apps"), false, NoGrant),
        (&alice(), "service.view", Collection("/Shared/apps"), true, Granted),
        (&alice(), "collection.create", Collection("/Shared/apps/web"), true, Granted),
        (&alice(), "grant.create", Collection("/Shared/apps/web"), false, NoGrant),
        (&bob, "service.view", Collection("/Shared/apps"), false, NoGrant),
        // Grants naming a missing role or collection do nothing.
        (&bob, "container.view", Collection("/Shared/apps"), false, NoGrant),
        // Paths that are not canonical count as /.
        (&alice(), "container.create", Collection("/Shared/Private/alice/../../../System"), false, UnknownCollection),
        (&alice(), "node.schedule", Collection("/Shared/../Shared"), false, UnknownCollection),
        (&carol, "container.exec", Collection("/Shared/Private/alice/.."), true, Granted),
        (&alice(), "container.create", Collection("relative"), false, UnknownCollection),
        (&alice(), "container.create", Collection(""), false, UnknownCollection),
        // A grant on / covers everything, namespaces too.
        (&carol, "container.exec", Collection("/System"), true, Granted),
        (&carol, "container.exec", Namespace("anything"), true, Granted),
        (&carol, "service.view", Collection("/System"), false, NoGrant),
        // Namespaces.
        (&alice(), "kube.pod.create", Namespace("dev"), true, Granted),
        (&alice(), "kube.pod.exec", Namespace("dev"), false, NoGrant),
        (&alice(), "kube.pod.create", Namespace("prod"), false, NoGrant),
        (&bob, "kube.pod.get", Namespace("dev"), false, NoGrant),
        // Org owners manage their org's teams and members.
        (&dave, "team.create", Org("o-acme"), true, OrgOwner),
        (&dave, "team.members", Org("o-acme"), true, OrgOwner),
        (&dave, "org.members", Org("o-acme"), true, OrgOwner),
        (&dave, "account.view", Org("o-acme"), true, OrgOwner),
        (&dave, "account.create", Org("o-acme"), false, NoGrant),
        (&dave, "team.create", Org("o-other"), false, NoGrant),
        (&alice(), "team.create", Org("o-acme"), false, NoGrant),
        (&erin, "team.create", Org("o-other"), true, Granted),
        // Self-service on one's own account.
        (&bob, "account.view", Account("u-bob"), true, SelfService),
        (&bob, "account.update", Account("u-bob"), true, SelfService),
        (&bob, "account.delete", Account("u-bob"), false, NoGrant),
        (&bob, "account.view", Account("u-alice"), false, NoGrant),
        (&erin, "account.delete", Account("u-bob"), true, Granted),
        // Admins bypass grants; inactive accounts get nothing.
        (&admin, "grant.create", Collection("/System"), true, Admin),
        (&admin, "license.update", Org("o-acme"), true, Admin),
        (&admin, "container.exec", Collection("/../.."), true, Admin),
        (&retired_admin, "container.view", Collection("/"), false, Inactive),
        (&retired_alice, "container.view", Collection("/Shared/Private/alice"), false, Inactive),
        (&retired_alice, "account.view", Account("u-alice"), false, Inactive),
    ];
    let authz = authorizer();
    for (who, operation, on, allowed, reason) in cases {
        let decision = authz.decide(who, op(operation), *on);
        let case = format!("{} {operation} on {on:?}: {decision:?}", who.user_id);
        assert_eq!(decision.allowed, *allowed, "{case}");
        assert_eq!(decision.reason, *reason, "{case}");
        assert_eq!(authz.allowed(who, op(operation), *on), *allowed, "{case}");
        assert_eq!(decision.grants.is_empty(), reason != &Granted, "{case}");
    }
}

#[test]
fn explain_names_every_grant_and_the_path() {
    let authz = authorizer();
    let mut alice = alice();
    alice.memberships.push("t-web".into()); // duplicates change nothing
    let decision = authz.decide(
        &alice,
        op("service.view"),
        Resource::Collection("/Shared/apps/web/new"),
    );
    assert!(decision.allowed);
    assert_eq!(
        decision.path,
        [
            "/Shared/apps/web/new",
            "/Shared/apps/web",
            "/Shared/apps",
            "/Shared",
            "/"
        ]
    );
    let found: Vec<(&str, &str, &str, &str)> = decision
        .grants
        .iter()
        .map(|g| {
            (
                g.subject_id.as_str(),
                g.role_name.as_str(),
                g.object_id.as_str(),
                g.object_path.as_str(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("t-web", "Full Control", "web", "/Shared/apps/web"),
            ("o-acme", "View Only", "apps", "/Shared/apps"),
        ]
    );
    assert_eq!(decision.grants[0].role_id, "fullcontrol");

    let denied = authz.decide(&alice, op("node.update"), Resource::Collection("/Shared"));
    assert_eq!(denied.reason, Reason::NoGrant);
    assert!(denied.grants.is_empty());
    assert_eq!(denied.path, ["/Shared", "/"]);

    let ns = authz.decide(&alice, op("kube.pod.get"), Resource::Namespace("dev"));
    assert_eq!(ns.path, ["namespace:dev", "/"]);
    assert_eq!(ns.grants[0].object_path, "namespace:dev");
    assert_eq!(ns.grants[0].object_id, "dev");

    let odd = authz.decide(
        &alice,
        op("container.view"),
        Resource::Collection("/a/../b"),
    );
    assert_eq!(odd.path, ["/"]);

    let json = serde_json::to_value(&decision).expect("decisions serialize");
    assert_eq!(json["reason"], "granted");
    assert_eq!(Reason::UnknownCollection.to_string(), "unknown_collection");
}

#[test]
fn visible_collections() {
    let authz = authorizer();
    assert_eq!(
        authz.visible_collections(&alice(), op("container.view")),
        ["private-alice", "apps", "web"]
    );
    assert_eq!(
        authz.visible_collections(&alice(), op("node.schedule")),
        [
            "shared",
            "legacy",
            "private",
            "private-alice",
            "private-bob",
            "apps",
            "web"
        ]
    );
    let carol = user("u-carol", &[]);
    assert_eq!(
        authz
            .visible_collections(&carol, op("container.view"))
            .len(),
        9
    );
    assert!(authz
        .visible_collections(&user("u-nobody", &[]), op("container.view"))
        .is_empty());
    let admin = Principal {
        admin: true,
        ..user("u-root", &[])
    };
    assert_eq!(
        authz.visible_collections(&admin, op("grant.create")).len(),
        9
    );
    let retired = Principal {
        active: false,
        ..admin
    };
    assert!(authz
        .visible_collections(&retired, op("container.view"))
        .is_empty());
}

#[test]
fn an_empty_snapshot_allows_only_admins() {
    let authz = Authorizer::new(&[], &[], &[]);
    let decision = authz.decide(&alice(), op("container.view"), Resource::Collection("/"));
    assert_eq!(decision.reason, Reason::UnknownCollection);
    assert!(!authz.allowed(&alice(), op("container.view"), Resource::Namespace("dev")));
    let admin = Principal {
        admin: true,
        ..alice()
    };
    assert!(authz.allowed(&admin, op("container.view"), Resource::Collection("/")));
}

#[test]
fn gaps_in_the_tree_are_walked_over() {
    // /a/b/c exists but /a/b does not: c's parent is /a.
    let collections = [
        collection("root", "/", ""),
        collection("a", "/a", "root"),
        collection("c", "/a/b/c", "b"),
    ];
    let roles = builtin_roles();
    let authz = Authorizer::new(&collections, &roles, &[grant("u-x", "a", "viewonly")]);
    let x = user("u-x", &[]);
    assert!(authz.allowed(&x, op("container.view"), Resource::Collection("/a/b/c/d")));
    let decision = authz.decide(&x, op("container.view"), Resource::Collection("/a/b/c/d"));
    assert_eq!(decision.path, ["/a/b/c/d", "/a/b/c", "/a", "/"]);
}

#[test]
fn siblings_sharing_a_prefix_are_not_inside_each_other() {
    let collections = [
        collection("root", "/", ""),
        collection("a", "/a", "root"),
        collection("a-b", "/a-b", "root"),
        collection("ab", "/a/b", "a"),
        collection("a0", "/a0", "root"),
    ];
    let roles = builtin_roles();
    // Enough grants for u-x that the search walks up the tree rather than
    // scanning them.
    let grants = [
        grant("u-x", "a", "viewonly"),
        grant("u-x", "root", "scheduler"),
        grant("u-x", "a0", "none"),
        grant("u-y", "a", "viewonly"),
    ];
    let authz = Authorizer::new(&collections, &roles, &grants);
    for who in [user("u-x", &[]), user("u-y", &[])] {
        for (path, allowed) in [
            ("/a", true),
            ("/a/b", true),
            ("/a/b/c", true),
            ("/a-b", false),
            ("/a-b/c", false),
            ("/a0", false),
            ("/", false),
        ] {
            let on = Resource::Collection(path);
            assert_eq!(
                authz.allowed(&who, op("container.view"), on),
                allowed,
                "{} {path}",
                who.user_id
            );
            assert_eq!(
                authz.decide(&who, op("container.view"), on).allowed,
                allowed,
                "{path}"
            );
        }
    }
    assert_eq!(
        authz.visible_collections(&user("u-x", &[]), op("container.view")),
        ["a", "ab"]
    );
}

#[test]
fn effective_roles_are_inherited_down_the_tree_from_every_subject() {
    let authz = authorizer();
    let row = authz.effective_roles(&alice());
    let at = |path: &str| -> Vec<&str> {
        row.iter()
            .find(|(p, _)| *p == path)
            .map(|(_, roles)| roles.clone())
            .unwrap_or_else(|| panic!("{path} is in the row"))
    };
    // MKE's default Scheduler on /Shared and org o-acme's View Only on
    // /Shared/apps reach /Shared/apps/web, where team t-web adds Full
    // Control.
    assert_eq!(at("/Shared"), vec!["Scheduler"]);
    assert_eq!(at("/Shared/apps"), vec!["Scheduler", "View Only"]);
    assert_eq!(
        at("/Shared/apps/web"),
        vec!["Full Control", "Scheduler", "View Only"]
    );
    assert!(at("/").is_empty());
    // Bob's private collection only inherits; alice's own adds her grant.
    assert_eq!(at("/Shared/Private/bob"), vec!["Scheduler"]);
    assert!(at("/Shared/Private/alice").len() > 1);
    // Tree order: every path comes after its parent.
    let paths: Vec<&str> = row.iter().map(|(p, _)| *p).collect();
    assert_eq!(paths.first(), Some(&"/"));
    let apps = paths.iter().position(|p| *p == "/Shared/apps");
    let web = paths.iter().position(|p| *p == "/Shared/apps/web");
    assert!(apps < web);
    // A role on the root is everywhere; someone with no grants has none.
    let carol = authz.effective_roles(&user("u-carol", &[]));
    assert!(carol.iter().all(|(_, roles)| roles == &vec!["containers"]));
    let nobody = authz.effective_roles(&user("u-nobody", &[]));
    assert!(nobody.iter().all(|(_, roles)| roles.is_empty()));
}
