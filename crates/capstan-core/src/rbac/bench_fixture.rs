//! A deterministic, made-up cluster for benchmarking the authorizer
//! (`capstan bench authz`) and for tests that need a big snapshot.
//!
//! The same arguments always give the same records: randomness comes from
//! a xorshift generator seeded by the caller, not from the environment.

use std::collections::HashSet;

use time::OffsetDateTime;

use super::collection::{
    builtin_collections, join_path, private_collection, Collection, COLLECTION_SHARED,
};
use super::decide::Principal;
use super::grant::{default_grants, Grant, ResourceSetKind};
use super::operation::{Operation, OperationSet};
use super::role::{
    builtin_roles, Role, ROLE_FULL_CONTROL, ROLE_RESTRICTED_CONTROL, ROLE_SCHEDULER, ROLE_VIEW_ONLY,
};

/// Children per collection in the generated tree.
const FANOUT: usize = 3;
/// Namespaces that namespace grants pick from.
const NAMESPACES: usize = 20;

/// Marsaglia's xorshift64: small, fast, and the same everywhere.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        // Zero is xorshift's one fixed point.
        XorShift(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n`; `n` must not be zero.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `percent` in 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Makes a cluster snapshot:
/// - collections: the built-ins, one private collection per user, and a
///   tree below `/Shared` with 3 children per collection whose deepest
///   paths have `depth` segments (`/Shared/p1/p1-0/...`);
/// - roles: the built-ins plus `containers` (`container.*`), `deployer`
///   (services, stacks, networks, volumes) and `kube` (`kube.*`);
/// - `n_teams` teams (`team-<i>`) in `max(1, n_teams / 10)` orgs
///   (`org-<i>`);
/// - `n_users` active, non-admin users (`user-<i>`), each in 1 to 3 teams
///   and their orgs; every 50th user owns the org of their first team;
/// - `n_grants` distinct grants: MKE's default grants of each user first,
///   then random grants, mostly to teams, on the tree's collections (one in
///   ten on a namespace `ns-<k>`).
pub fn fixture(
    n_users: usize,
    n_teams: usize,
    n_grants: usize,
    depth: usize,
    seed: u64,
) -> (Vec<Collection>, Vec<Role>, Vec<Grant>, Vec<Principal>) {
    let mut rng = XorShift::new(seed);
    let epoch = OffsetDateTime::UNIX_EPOCH;

    let mut collections = builtin_collections(epoch);
    let tree = project_tree(depth, epoch);
    let tree_ids: Vec<String> = std::iter::once(COLLECTION_SHARED.to_string())
        .chain(tree.iter().map(|c| c.id.clone()))
        .collect();
    collections.extend(tree);

    let mut roles = builtin_roles();
    for (id, ops) in [
        ("containers", &["container.*"][..]),
        (
            "deployer",
            &["service.*", "stack.*", "network.*", "volume.*"][..],
        ),
        ("kube", &["kube.*"][..]),
    ] {
        roles.push(Role {
            id: id.to_string(),
            name: id.to_string(),
            system_role: false,
            operations: OperationSet::from_names(ops).expect("fixture roles name known groups"),
            description: String::new(),
        });
    }
    let granted_roles = [
        ROLE_VIEW_ONLY,
        ROLE_RESTRICTED_CONTROL,
        ROLE_SCHEDULER,
        ROLE_FULL_CONTROL,
        "containers",
        "deployer",
        "kube",
    ];

    let n_orgs = (n_teams / 10).max(1);
    let org_of_team = |team: usize| format!("org-{}", team % n_orgs);
    let mut principals = Vec::with_capacity(n_users);
    for i in 0..n_users {
        let username = format!("user-{i}");
        collections.push(private_collection(&username, epoch));
        let mut memberships = Vec::new();
        let mut owner_of = Vec::new();
        if n_teams > 0 {
            for _ in 0..1 + rng.below(3) {
                let team = rng.below(n_teams);
                memberships.push(format!("team-{team}"));
                memberships.push(org_of_team(team));
            }
            if i % 50 == 0 {
                owner_of.push(memberships[1].clone());
            }
        }
        memberships.sort();
        memberships.dedup();
        principals.push(Principal {
            user_id: username.clone(),
            username,
            admin: false,
            active: true,
            memberships,
            owner_of,
        });
    }

    let mut seen = HashSet::new();
    let mut grants = Vec::with_capacity(n_grants);
    for p in &principals {
        for g in default_grants(&p.user_id, &p.username) {
            if grants.len() < n_grants && seen.insert(g.clone()) {
                grants.push(g);
            }
        }
    }
    // Random picks can repeat; give up rather than loop forever when the
    // space of distinct grants is smaller than asked.
    let mut attempts = 0;
    while grants.len() < n_grants && attempts < n_grants * 20 {
        attempts += 1;
        let subject_id = if n_teams > 0 && (n_users == 0 || rng.chance(70)) {
            format!("team-{}", rng.below(n_teams))
        } else if n_users > 0 {
            format!("user-{}", rng.below(n_users))
        } else {
            break;
        };
        let role_id = granted_roles[rng.below(granted_roles.len())].to_string();
        let g = if rng.chance(10) {
            Grant {
                subject_id,
                object_id: format!("ns-{}", rng.below(NAMESPACES)),
                role_id,
                kind: ResourceSetKind::Namespace,
            }
        } else {
            Grant {
                subject_id,
                object_id: tree_ids[rng.below(tree_ids.len())].clone(),
                role_id,
                kind: ResourceSetKind::Collection,
            }
        };
        if seen.insert(g.clone()) {
            grants.push(g);
        }
    }
    (collections, roles, grants, principals)
}

/// The collections below `/Shared`, parents first, deepest paths having
/// `depth` segments.
fn project_tree(depth: usize, created_at: OffsetDateTime) -> Vec<Collection> {
    let mut out = Vec::new();
    let mut level: Vec<(String, String)> = vec![(COLLECTION_SHARED.to_string(), "/Shared".into())];
    for _ in 2..=depth {
        let mut next = Vec::new();
        for (parent_id, parent_path) in &level {
            for k in 0..FANOUT {
                let name = if parent_id == COLLECTION_SHARED {
                    format!("p{k}")
                } else {
                    format!("{parent_id}-{k}")
                };
                let c = Collection {
                    id: name.clone(),
                    name: name.clone(),
                    path: join_path(parent_path, &name),
                    parent_id: parent_id.clone(),
                    created_at,
                };
                next.push((c.id.clone(), c.path.clone()));
                out.push(c);
            }
        }
        level = next;
    }
    out
}

/// One random authorization question of a benchmark.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// Index into the fixture's principals.
    pub principal: usize,
    /// The operation asked about.
    pub operation: Operation,
    /// The collection path asked about; one in four is below an existing
    /// collection without being one.
    pub path: String,
}

/// `count` deterministic questions over a fixture: random principals,
/// operations among those the fixture's roles use, and collection paths.
pub fn queries(
    collections: &[Collection],
    principals: &[Principal],
    count: usize,
    seed: u64,
) -> Vec<Query> {
    let mut rng = XorShift::new(seed);
    let operations: Vec<Operation> = [
        "container.view",
        "container.create",
        "container.exec",
        "service.update",
        "node.schedule",
        "kube.pod.get",
        "collection.create",
    ]
    .iter()
    .map(|name| Operation::parse(name).expect("fixture queries name known operations"))
    .collect();
    if collections.is_empty() || principals.is_empty() {
        return Vec::new();
    }
    (0..count)
        .map(|_| {
            let c = &collections[rng.below(collections.len())];
            let path = if rng.chance(25) {
                join_path(&c.path, "app")
            } else {
                c.path.clone()
            };
            Query {
                principal: rng.below(principals.len()),
                operation: operations[rng.below(operations.len())],
                path,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rbac::{normalize_path, CollectionTree};

    #[test]
    fn the_fixture_is_deterministic_and_well_formed() {
        let (collections, roles, grants, principals) = fixture(100, 20, 1000, 6, 7);
        assert_eq!(
            fixture(100, 20, 1000, 6, 7),
            (
                collections.clone(),
                roles.clone(),
                grants.clone(),
                principals.clone()
            )
        );
        assert_ne!(fixture(100, 20, 1000, 6, 8).2, grants);
        assert_eq!(principals.len(), 100);
        assert_eq!(grants.len(), 1000);
        assert_eq!(roles.len(), 8);
        // 5 built-ins, 100 private, 3 + 9 + 27 + 81 + 243 below /Shared.
        assert_eq!(collections.len(), 5 + 100 + 363);
        let tree = CollectionTree::new(&collections);
        for c in &collections {
            assert_eq!(normalize_path(&c.path).as_ref(), Ok(&c.path));
            if !c.parent_id.is_empty() {
                let parent = tree.by_id(&c.parent_id).expect("parent exists");
                assert_eq!(join_path(&parent.path, &c.name), c.path);
            }
        }
        let deepest = collections
            .iter()
            .map(|c| c.path.matches('/').count())
            .max();
        assert_eq!(deepest, Some(6));
        let distinct: HashSet<&Grant> = grants.iter().collect();
        assert_eq!(distinct.len(), grants.len());
        assert!(principals.iter().all(|p| !p.memberships.is_empty()));
        assert!(principals[0].owner_of.len() == 1);
    }

    #[test]
    fn small_and_empty_fixtures() {
        let (collections, _, grants, principals) = fixture(0, 0, 10, 1, 0);
        assert_eq!(collections.len(), 5);
        assert!(grants.is_empty());
        assert!(principals.is_empty());
        let (_, _, grants, _) = fixture(10, 0, 5, 3, 1);
        assert_eq!(grants.len(), 5);
        assert!(queries(&[], &[], 10, 1).is_empty());
    }
}
