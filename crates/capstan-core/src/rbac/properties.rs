//! Properties of the authorization decision over random trees, roles,
//! grants and principals.

use proptest::prelude::*;
use time::OffsetDateTime;

use super::collection::is_canonical_path;
use super::*;

const USERS: &[&str] = &["u0", "u1", "u2"];
/// Two teams and an org: subjects a user can belong to.
const GROUPS: &[&str] = &["t0", "t1", "o0"];
const NAMESPACES: &[&str] = &["default", "dev", "kube-system"];
/// Operations the random custom roles are made of, and asked about.
const OPS: &[&str] = &[
    "container.view",
    "container.exec",
    "node.schedule",
    "kube.pod.get",
    "collection.create",
    "team.members",
    "org.members",
    "account.view",
    "account.update",
    "grant.create",
];

fn op(name: &str) -> Operation {
    Operation::parse(name).expect("known operation")
}

/// A random world: a tree, two custom roles, grants.
#[derive(Clone, Debug)]
struct WorldSeed {
    /// Parent choice of each extra collection (modulo those made so far).
    parents: Vec<usize>,
    /// Operation masks over [`OPS`] of the two custom roles.
    custom_roles: [u16; 2],
    grants: Vec<GrantSeed>,
}

/// A grant by indices: subject over users then groups; object over
/// collections plus one missing id (or namespaces); role over roles plus
/// one missing id.
#[derive(Clone, Copy, Debug)]
struct GrantSeed {
    subject: usize,
    object: usize,
    role: usize,
    namespace: bool,
}

#[derive(Clone, Debug)]
struct World {
    collections: Vec<Collection>,
    roles: Vec<Role>,
    grants: Vec<Grant>,
}

impl World {
    fn new(seed: &WorldSeed) -> World {
        let mut collections = builtin_collections(OffsetDateTime::UNIX_EPOCH);
        for (i, choice) in seed.parents.iter().enumerate() {
            let parent = &collections[choice % collections.len()];
            let name = format!("c{i}");
            collections.push(Collection {
                id: name.clone(),
                path: join_path(&parent.path, &name),
                parent_id: parent.id.clone(),
                name,
                created_at: OffsetDateTime::UNIX_EPOCH,
            });
        }
        let mut roles = builtin_roles();
        for (i, mask) in seed.custom_roles.iter().enumerate() {
            let names: Vec<&str> = OPS
                .iter()
                .enumerate()
                .filter(|(bit, _)| mask & (1 << bit) != 0)
                .map(|(_, name)| *name)
                .collect();
            roles.push(Role {
                id: format!("custom{i}"),
                name: format!("Custom {i}"),
                system_role: false,
                operations: OperationSet::from_names(&names).expect("known ops"),
                description: String::new(),
            });
        }
        let mut world = World {
            collections,
            roles,
            grants: Vec::new(),
        };
        world.grants = seed.grants.iter().map(|g| world.grant(*g)).collect();
        world
    }

    fn grant(&self, g: GrantSeed) -> Grant {
        let subjects: Vec<&str> = USERS.iter().chain(GROUPS).copied().collect();
        let subject_id = subjects[g.subject % subjects.len()].to_string();
        let role_id = match self.roles.get(g.role % (self.roles.len() + 1)) {
            Some(role) => role.id.clone(),
            None => "missing-role".into(),
        };
        if g.namespace {
            return Grant {
                subject_id,
                object_id: NAMESPACES[g.object % NAMESPACES.len()].into(),
                role_id,
                kind: ResourceSetKind::Namespace,
            };
        }
        let object_id = match self
            .collections
            .get(g.object % (self.collections.len() + 1))
        {
            Some(c) => c.id.clone(),
            None => "missing-collection".into(),
        };
        Grant {
            subject_id,
            object_id,
            role_id,
            kind: ResourceSetKind::Collection,
        }
    }

    fn authorizer(&self) -> Authorizer {
        Authorizer::new(&self.collections, &self.roles, &self.grants)
    }

    fn with_grant(&self, grant: Grant) -> World {
        let mut world = self.clone();
        world.grants.push(grant);
        world
    }

    /// Paths to ask about: every collection, a path below each that is no
    /// collection, and paths that are not canonical.
    fn paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self.collections.iter().map(|c| c.path.clone()).collect();
        paths.extend(self.collections.iter().map(|c| join_path(&c.path, "x")));
        paths.extend(
            [
                "/Shared/../System",
                "//",
                "/System/./c0",
                "",
                "System",
                "/System/",
            ]
            .map(String::from),
        );
        paths
    }

    /// The reference model for collections, written the obvious way: a
    /// grant reaches a path when its collection's path is the path or one
    /// of its ancestors (a path that is not canonical counts as `/`).
    fn naive_allowed(&self, who: &Principal, operation: Operation, path: &str) -> bool {
        if !who.active {
            return false;
        }
        if who.admin {
            return true;
        }
        let target = if is_canonical_path(path) { path } else { "/" };
        self.grants.iter().any(|g| {
            let subject = g.subject_id == who.user_id || who.memberships.contains(&g.subject_id);
            let role = self.roles.iter().find(|r| r.id == g.role_id);
            let collection = self.collections.iter().find(|c| c.id == g.object_id);
            g.kind == ResourceSetKind::Collection
                && subject
                && role.is_some_and(|r| r.operations.contains(operation))
                && collection.is_some_and(|c| ancestors(target).any(|a| a == c.path))
        })
    }
}

/// A principal by indices: user, membership mask over [`GROUPS`], org
/// ownership.
#[derive(Clone, Copy, Debug)]
struct PrincipalSeed {
    user: usize,
    groups: u8,
    owner: bool,
    admin: bool,
    active: bool,
}

fn principal(seed: PrincipalSeed) -> Principal {
    let user_id = USERS[seed.user % USERS.len()].to_string();
    Principal {
        username: user_id.clone(),
        user_id,
        admin: seed.admin,
        active: seed.active,
        memberships: GROUPS
            .iter()
            .enumerate()
            .filter(|(bit, _)| seed.groups & (1 << bit) != 0)
            .map(|(_, g)| g.to_string())
            .collect(),
        owner_of: if seed.owner {
            vec!["o0".into()]
        } else {
            Vec::new()
        },
    }
}

fn arb_grant() -> impl Strategy<Value = GrantSeed> {
    (
        0..16usize,
        0..32usize,
        0..16usize,
        prop::bool::weighted(0.2),
    )
        .prop_map(|(subject, object, role, namespace)| GrantSeed {
            subject,
            object,
            role,
            namespace,
        })
}

fn arb_world() -> impl Strategy<Value = WorldSeed> {
    (
        prop::collection::vec(0..32usize, 0..12),
        any::<[u16; 2]>(),
        prop::collection::vec(arb_grant(), 0..16),
    )
        .prop_map(|(parents, custom_roles, grants)| WorldSeed {
            parents,
            custom_roles,
            grants,
        })
}

fn arb_principal() -> impl Strategy<Value = PrincipalSeed> {
    (0..3usize, any::<u8>(), any::<bool>()).prop_map(|(user, groups, owner)| PrincipalSeed {
        user,
        groups,
        owner,
        admin: false,
        active: true,
    })
}

fn arb_op() -> impl Strategy<Value = Operation> {
    prop_oneof![
        4 => prop::sample::select(OPS).prop_map(op),
        1 => (0..Operation::all().count()).prop_map(|i| Operation::all().nth(i).expect("in range")),
    ]
}

/// Every kind of resource, including odd paths and unknown names.
fn resources(world: &World) -> Vec<ResourceOwned> {
    let mut out: Vec<ResourceOwned> = world
        .paths()
        .into_iter()
        .map(ResourceOwned::Collection)
        .collect();
    for ns in NAMESPACES.iter().chain(&["other"]) {
        out.push(ResourceOwned::Namespace(ns.to_string()));
    }
    for org in ["o0", "o1"] {
        out.push(ResourceOwned::Org(org.into()));
    }
    for user in USERS.iter().chain(&["u9"]) {
        out.push(ResourceOwned::Account(user.to_string()));
    }
    out
}

/// A [`Resource`] that owns its string, for lists of them.
#[derive(Clone, Debug)]
enum ResourceOwned {
    Collection(String),
    Namespace(String),
    Org(String),
    Account(String),
}

impl ResourceOwned {
    fn borrow(&self) -> Resource<'_> {
        match self {
            ResourceOwned::Collection(p) => Resource::Collection(p),
            ResourceOwned::Namespace(n) => Resource::Namespace(n),
            ResourceOwned::Org(o) => Resource::Org(o),
            ResourceOwned::Account(a) => Resource::Account(a),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// (1) Inheritance: one grant on C allows its operations on C's whole
    /// subtree (and on paths below it that are no collection) and nowhere
    /// else; with other grants, the decision is exactly the union the
    /// reference model computes.
    #[test]
    fn a_grant_covers_its_subtree_and_nothing_else(
        seed in arb_world(),
        object in 0..32usize,
        who in arb_principal(),
        operation in arb_op(),
    ) {
        let world = World::new(&seed);
        let who = principal(who);
        let target = &world.collections[object % world.collections.len()];
        let alone = World {
            grants: vec![Grant {
                subject_id: who.user_id.clone(),
                object_id: target.id.clone(),
                role_id: ROLE_FULL_CONTROL.into(),
                kind: ResourceSetKind::Collection,
            }],
            ..world.clone()
        };
        let full_control = OperationSet::from_names(&["*", "collection.*"]).expect("ops");
        let tree = CollectionTree::new(&world.collections);
        let subtree: Vec<&str> = tree.subtree(&target.id).iter().map(|c| c.path.as_str()).collect();
        let authz = alone.authorizer();
        for c in &world.collections {
            let inside = subtree.contains(&c.path.as_str());
            let expected = inside && full_control.contains(operation);
            prop_assert_eq!(authz.allowed(&who, operation, Resource::Collection(&c.path)), expected, "{}", c.path);
            let below = join_path(&c.path, "not-a-collection");
            prop_assert_eq!(authz.allowed(&who, operation, Resource::Collection(&below)), expected, "{}", below);
        }
        let combined = world.with_grant(alone.grants[0].clone());
        let authz = combined.authorizer();
        for path in combined.paths() {
            prop_assert_eq!(
                authz.allowed(&who, operation, Resource::Collection(&path)),
                combined.naive_allowed(&who, operation, &path),
                "{:?}", path
            );
        }
    }

    /// (2) Grants only add: adding one never turns an allow into a deny,
    /// and removing one never turns a deny into an allow.
    #[test]
    fn grants_only_add(
        seed in arb_world(),
        extra in arb_grant(),
        who in arb_principal(),
        operation in arb_op(),
    ) {
        let world = World::new(&seed);
        let who = principal(who);
        let bigger = world.with_grant(world.grant(extra));
        let (before, after) = (world.authorizer(), bigger.authorizer());
        for resource in resources(&world) {
            let on = resource.borrow();
            if before.allowed(&who, operation, on) {
                prop_assert!(after.allowed(&who, operation, on), "{:?}", on);
            }
        }
        if let Some((removed, rest)) = world.grants.split_first() {
            let smaller = World { grants: rest.to_vec(), ..world.clone() };
            let after = smaller.authorizer();
            for resource in resources(&world) {
                let on = resource.borrow();
                if !before.allowed(&who, operation, on) {
                    prop_assert!(!after.allowed(&who, operation, on), "{:?} without {:?}", on, removed);
                }
            }
        }
    }

    /// (3) An active admin may do everything, control plane included.
    #[test]
    fn admins_bypass_grants(seed in arb_world(), who in arb_principal(), operation in arb_op()) {
        let world = World::new(&seed);
        let authz = world.authorizer();
        let admin = Principal { admin: true, ..principal(who) };
        for resource in resources(&world) {
            let decision = authz.decide(&admin, operation, resource.borrow());
            prop_assert!(decision.allowed);
            prop_assert_eq!(decision.reason, Reason::Admin);
        }
        prop_assert_eq!(authz.visible_collections(&admin, operation).len(), world.collections.len());
    }

    /// (4) An inactive account is refused everything, admin or not, whatever
    /// it is granted.
    #[test]
    fn inactive_accounts_get_nothing(
        seed in arb_world(),
        who in arb_principal(),
        admin in any::<bool>(),
        operation in arb_op(),
    ) {
        let world = World::new(&seed);
        let who = Principal { admin, active: false, ..principal(who) };
        let everything = World {
            grants: [who.user_id.as_str()].iter().chain(GROUPS)
                .map(|s| grant_full_control_on_root(s))
                .collect(),
            ..world.clone()
        };
        for authz in [world.authorizer(), everything.authorizer()] {
            for resource in resources(&world) {
                let decision = authz.decide(&who, operation, resource.borrow());
                prop_assert!(!decision.allowed);
                prop_assert_eq!(decision.reason, Reason::Inactive);
                prop_assert!(!authz.allowed(&who, operation, resource.borrow()));
            }
            prop_assert!(authz.visible_collections(&who, operation).is_empty());
        }
    }

    /// (5) The fast path and the explained decision always agree, and an
    /// explained allow-by-grant lists grants that really allow it.
    #[test]
    fn allowed_agrees_with_decide(
        seed in arb_world(),
        who in arb_principal(),
        admin in prop::bool::weighted(0.1),
        active in prop::bool::weighted(0.9),
        operation in arb_op(),
    ) {
        let world = World::new(&seed);
        let who = Principal { admin, active, ..principal(who) };
        let authz = world.authorizer();
        for resource in resources(&world) {
            let on = resource.borrow();
            let decision = authz.decide(&who, operation, on);
            prop_assert_eq!(authz.allowed(&who, operation, on), decision.allowed, "{:?} {:?}", on, decision);
            prop_assert_eq!(decision.reason == Reason::Granted, !decision.grants.is_empty());
            for m in &decision.grants {
                let role = world.roles.iter().find(|r| r.id == m.role_id).expect("a known role");
                prop_assert!(role.operations.contains(operation));
                prop_assert!(m.subject_id == who.user_id || who.memberships.contains(&m.subject_id));
            }
            if let ResourceOwned::Collection(path) = &resource {
                prop_assert_eq!(decision.allowed, world.naive_allowed(&who, operation, path), "{:?}", path);
            }
        }
        let visible = authz.visible_collections(&who, operation);
        for c in &world.collections {
            prop_assert_eq!(
                visible.contains(&c.id),
                authz.allowed(&who, operation, Resource::Collection(&c.path)),
                "{}", c.path
            );
        }
    }

    /// (6) A grant to a team or org the user belongs to acts exactly like
    /// the same grant to the user; one to a group they are not in does
    /// nothing.
    #[test]
    fn group_grants_act_for_members_only(
        seed in arb_world(),
        extra in arb_grant(),
        group in 0..3usize,
        who in arb_principal(),
        operation in arb_op(),
    ) {
        let world = World::new(&seed);
        let group_id = GROUPS[group];
        let mut to_group = world.grant(extra);
        to_group.subject_id = group_id.to_string();
        let with_group = world.with_grant(to_group.clone()).authorizer();

        let mut member = principal(who);
        if !member.memberships.iter().any(|m| m == group_id) {
            member.memberships.push(group_id.to_string());
        }
        let to_user = Grant { subject_id: member.user_id.clone(), ..to_group };
        let with_user = world.with_grant(to_user).authorizer();

        let mut outsider = member.clone();
        outsider.memberships.retain(|m| m != group_id);
        let without = world.authorizer();

        for resource in resources(&world) {
            let on = resource.borrow();
            prop_assert_eq!(
                with_group.allowed(&member, operation, on),
                with_user.allowed(&member, operation, on),
                "member, {:?}", on
            );
            prop_assert_eq!(
                with_group.allowed(&outsider, operation, on),
                without.allowed(&outsider, operation, on),
                "outsider, {:?}", on
            );
        }
    }
}

fn grant_full_control_on_root(subject: &str) -> Grant {
    Grant {
        subject_id: subject.to_string(),
        object_id: COLLECTION_ROOT.into(),
        role_id: ROLE_FULL_CONTROL.into(),
        kind: ResourceSetKind::Collection,
    }
}
