//! The authorization decision: the only place in Capstan that decides
//! whether a principal may do an operation on a resource.
//!
//! Rules, in order:
//! 1. An inactive account may do nothing, admin or not.
//! 2. An admin may do everything.
//! 3. A collection resource is allowed when some grant to the user, or to
//!    one of their teams or orgs, sits on the collection or one of its
//!    ancestors and its role holds the operation. Grants only add.
//!    A path that names no collection is treated as inside its nearest
//!    existing ancestor; a path that is not canonical is treated as `/`
//!    (only grants on the root reach it).
//! 4. A namespace is allowed by namespace grants on it, and by grants on
//!    the root collection `/`, which covers everything.
//! 5. An org's owners may manage its teams and members and see accounts;
//!    anything else on an org needs a grant on `/`.
//! 6. Users may see and update their own account; anything else on an
//!    account needs a grant on `/`.
//!
//! Grants naming a role or a collection that does not exist are ignored.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::collection::{ancestors, is_canonical_path, Collection};
use super::grant::{Grant, ResourceSetKind};
use super::operation::{Operation, OperationSet};
use super::role::Role;

/// Who is asking: an account and what it belongs to, as the gateway knows
/// it after authentication.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// The account's id (the subject of its own grants).
    pub user_id: String,
    /// The login name.
    pub username: String,
    /// Admins bypass grants.
    pub admin: bool,
    /// Inactive accounts are refused everything.
    pub active: bool,
    /// Ids of the user's teams and orgs; grants to them count as the user's.
    pub memberships: Vec<String>,
    /// Ids of the orgs the user owns.
    pub owner_of: Vec<String>,
}

/// What an operation is done on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource<'a> {
    /// A resource in a collection, by the collection's path (the access
    /// label's value, see `resource_collection`).
    Collection(&'a str),
    /// A Kubernetes namespace (or an object in it), by name.
    Namespace(&'a str),
    /// An organization (its teams and members), by org id.
    Org(&'a str),
    /// An account, by the id of the user acted on.
    Account(&'a str),
}

/// Why a decision came out as it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The principal is an admin.
    Admin,
    /// The account is inactive.
    Inactive,
    /// At least one grant allows it.
    Granted,
    /// The principal owns the org acted on.
    OrgOwner,
    /// A user acting on their own account.
    SelfService,
    /// No grant allows it.
    NoGrant,
    /// The collection path is not canonical, or no collection (not even
    /// `/`) contains it; no grant allows it.
    UnknownCollection,
}

impl Reason {
    /// The reason as a word for logs and the explain API.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Admin => "admin",
            Reason::Inactive => "inactive",
            Reason::Granted => "granted",
            Reason::OrgOwner => "org_owner",
            Reason::SelfService => "self_service",
            Reason::NoGrant => "no_grant",
            Reason::UnknownCollection => "unknown_collection",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A grant that allowed a decision, spelled out for the explain API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantMatch {
    /// The user, team or org the grant is for.
    pub subject_id: String,
    /// The granted role's id.
    pub role_id: String,
    /// The granted role's name.
    pub role_name: String,
    /// The collection id or namespace name.
    pub object_id: String,
    /// The collection's path, or `namespace:<name>`.
    pub object_path: String,
}

/// A decision with its explanation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Whether the operation is allowed.
    pub allowed: bool,
    /// Why.
    pub reason: Reason,
    /// Every grant that allows it, most specific collection first; empty
    /// on deny and when no grant was needed.
    pub grants: Vec<GrantMatch>,
    /// The resource sets searched, most specific first: collection paths
    /// (`namespace:<name>` first for namespaces); empty when no grant was
    /// needed.
    pub path: Vec<String>,
}

impl Decision {
    fn without_grants(allowed: bool, reason: Reason) -> Decision {
        Decision {
            allowed,
            reason,
            grants: Vec::new(),
            path: Vec::new(),
        }
    }
}

/// A grant as the authorizer holds it: interned subject and role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct IndexedGrant {
    subject: u32,
    role: u32,
}

/// One collection with the grants that sit on it.
#[derive(Debug)]
struct Node {
    id: String,
    path: String,
    /// The nearest existing ancestor by path.
    parent: Option<u32>,
    /// One past the last node of this node's subtree: nodes are in tree
    /// order, so the subtree is `self..subtree_end`.
    subtree_end: u32,
    /// Sorted by subject, then role; no duplicates.
    grants: Vec<IndexedGrant>,
}

/// A collection grant as seen from its subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct SubjectGrant {
    node: u32,
    role: u32,
}

/// Up to this many collection grants, a subject's grants are scanned
/// rather than searched node by node up the tree. Tiny under test, so that
/// the small random worlds of the properties take both ways.
const SCAN_LIMIT: usize = if cfg!(test) { 2 } else { 48 };

/// A role as the authorizer holds it.
#[derive(Debug)]
struct RoleEntry {
    id: String,
    name: String,
    operations: OperationSet,
}

/// The decision engine over one snapshot of collections, roles and grants.
/// Build it again when they change; deciding never allocates on the
/// [`Authorizer::allowed`] path.
#[derive(Debug)]
pub struct Authorizer {
    /// In tree order (by path segments): every subtree is a contiguous
    /// range that starts with its root.
    nodes: Vec<Node>,
    by_path: HashMap<String, u32>,
    root: Option<u32>,
    roles: Vec<RoleEntry>,
    subjects: HashMap<String, u32>,
    subject_names: Vec<String>,
    /// Collection grants per subject, sorted by node.
    by_subject: Vec<Vec<SubjectGrant>>,
    /// Namespace grants, sorted as in [`Node::grants`].
    namespaces: HashMap<String, Vec<IndexedGrant>>,
    /// What org owners may do on their org.
    org_owner_ops: OperationSet,
    /// What users may do on their own account.
    self_service_ops: OperationSet,
}

fn set_of(names: &[&str]) -> OperationSet {
    OperationSet::from_names(names).expect("the authorizer names catalogue operations")
}

impl Authorizer {
    /// Indexes a snapshot. The tree is read from the collections' paths
    /// (each collection's parent is its nearest existing ancestor path);
    /// collections whose path is not canonical are left out, and when two
    /// collections share an id or a path, the first one counts.
    pub fn new(collections: &[Collection], roles: &[Role], grants: &[Grant]) -> Authorizer {
        let mut sorted: Vec<&Collection> = Vec::with_capacity(collections.len());
        let mut seen_ids = HashSet::new();
        let mut seen_paths = HashSet::new();
        for c in collections {
            if is_canonical_path(&c.path)
                && !seen_ids.contains(c.id.as_str())
                && seen_paths.insert(c.path.as_str())
            {
                seen_ids.insert(c.id.as_str());
                sorted.push(c);
            }
        }
        // Comparing segment by segment puts a subtree right after its root
        // and before anything else ("/a", "/a/b", "/a-b").
        sorted.sort_by(|a, b| a.path.split('/').cmp(b.path.split('/')));

        let mut nodes = tree_nodes(&sorted);
        let mut by_path = HashMap::with_capacity(sorted.len());
        let mut by_id = HashMap::with_capacity(sorted.len());
        for (i, c) in sorted.iter().enumerate() {
            by_path.insert(c.path.clone(), index_u32(i));
            by_id.insert(c.id.as_str(), index_u32(i));
        }
        let root = by_path.get("/").copied();

        let mut role_index = HashMap::with_capacity(roles.len());
        let mut role_entries = Vec::with_capacity(roles.len());
        for r in roles {
            if !role_index.contains_key(r.id.as_str()) {
                role_index.insert(r.id.as_str(), index_u32(role_entries.len()));
                role_entries.push(RoleEntry {
                    id: r.id.clone(),
                    name: r.name.clone(),
                    operations: r.operations,
                });
            }
        }

        let mut subjects: HashMap<String, u32> = HashMap::new();
        let mut subject_names = Vec::new();
        let mut by_subject: Vec<Vec<SubjectGrant>> = Vec::new();
        let mut namespaces: HashMap<String, Vec<IndexedGrant>> = HashMap::new();
        for g in grants {
            let Some(&role) = role_index.get(g.role_id.as_str()) else {
                continue;
            };
            let node = match g.kind {
                ResourceSetKind::Collection => match by_id.get(g.object_id.as_str()) {
                    Some(&node) => Some(node),
                    None => continue,
                },
                ResourceSetKind::Namespace => None,
            };
            let subject = *subjects.entry(g.subject_id.clone()).or_insert_with(|| {
                subject_names.push(g.subject_id.clone());
                by_subject.push(Vec::new());
                index_u32(subject_names.len() - 1)
            });
            let grant = IndexedGrant { subject, role };
            match node {
                Some(node) => {
                    nodes[node as usize].grants.push(grant);
                    by_subject[subject as usize].push(SubjectGrant { node, role });
                }
                None => namespaces
                    .entry(g.object_id.clone())
                    .or_default()
                    .push(grant),
            }
        }
        for list in nodes
            .iter_mut()
            .map(|n| &mut n.grants)
            .chain(namespaces.values_mut())
        {
            list.sort_unstable();
            list.dedup();
            list.shrink_to_fit();
        }
        for list in &mut by_subject {
            list.sort_unstable();
            list.dedup();
        }

        Authorizer {
            nodes,
            by_path,
            root,
            roles: role_entries,
            subjects,
            subject_names,
            by_subject,
            namespaces,
            org_owner_ops: set_of(&["team.*", "org.members", "account.view"]),
            self_service_ops: set_of(&["account.view", "account.update"]),
        }
    }

    /// Whether `who` may do `op` on `on`: the same answer as
    /// [`Authorizer::decide`], without the explanation and without
    /// allocating.
    pub fn allowed(&self, who: &Principal, op: Operation, on: Resource<'_>) -> bool {
        if !who.active {
            return false;
        }
        if who.admin {
            return true;
        }
        match on {
            Resource::Collection(path) => self.allowed_from(who, op, self.locate(path)),
            Resource::Namespace(ns) => {
                let in_namespace = self
                    .namespaces
                    .get(ns)
                    .is_some_and(|grants| self.subject_ids(who).any(|s| self.holds(grants, s, op)));
                in_namespace || self.allowed_on_root_only(who, op)
            }
            Resource::Org(org_id) => {
                self.is_org_owner_op(who, op, org_id) || self.allowed_from(who, op, self.root)
            }
            Resource::Account(user_id) => {
                self.is_self_service(who, op, user_id) || self.allowed_from(who, op, self.root)
            }
        }
    }

    /// Decides and explains: every grant that allows the operation and the
    /// resource sets searched.
    pub fn decide(&self, who: &Principal, op: Operation, on: Resource<'_>) -> Decision {
        if !who.active {
            return Decision::without_grants(false, Reason::Inactive);
        }
        if who.admin {
            return Decision::without_grants(true, Reason::Admin);
        }
        match on {
            Resource::Collection(path) => self.decide_in_collection(who, op, path),
            Resource::Namespace(ns) => self.decide_in_namespace(who, op, ns),
            Resource::Org(org_id) if self.is_org_owner_op(who, op, org_id) => {
                Decision::without_grants(true, Reason::OrgOwner)
            }
            Resource::Account(user_id) if self.is_self_service(who, op, user_id) => {
                Decision::without_grants(true, Reason::SelfService)
            }
            Resource::Org(_) | Resource::Account(_) => self.decide_in_collection(who, op, "/"),
        }
    }

    /// Ids of the collections where `who` may do `op` (every collection for
    /// an admin, none for an inactive account), in tree order: parents
    /// before children, siblings by name.
    pub fn visible_collections(&self, who: &Principal, op: Operation) -> Vec<String> {
        if !who.active {
            return Vec::new();
        }
        if who.admin {
            return self.nodes.iter().map(|n| n.id.clone()).collect();
        }
        let subjects = self.sorted_subject_ids(who);
        let mut visible = vec![false; self.nodes.len()];
        for (i, node) in self.nodes.iter().enumerate() {
            // Parents come first in tree order, so theirs is already known.
            let inherited = node.parent.is_some_and(|p| visible[p as usize]);
            visible[i] = inherited || subjects.iter().any(|&s| self.holds(&node.grants, s, op));
        }
        self.nodes
            .iter()
            .zip(visible)
            .filter(|(_, v)| *v)
            .map(|(n, _)| n.id.clone())
            .collect()
    }

    /// The access matrix row of `who`: every collection in tree order with
    /// the names of the roles `who` holds there through a grant to them,
    /// their teams or orgs, on it or on an ancestor (sorted, no
    /// duplicates). Admins and inactive accounts hold no roles by grant;
    /// the caller shows them as such.
    pub fn effective_roles(&self, who: &Principal) -> Vec<(&str, Vec<&str>)> {
        let subjects = self.sorted_subject_ids(who);
        let mut held: Vec<Vec<u32>> = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            let mut roles = node
                .parent
                .map(|p| held[p as usize].clone())
                .unwrap_or_default();
            roles.extend(
                node.grants
                    .iter()
                    .filter(|g| subjects.binary_search(&g.subject).is_ok())
                    .map(|g| g.role),
            );
            roles.sort_unstable();
            roles.dedup();
            held.push(roles);
        }
        self.nodes
            .iter()
            .zip(held)
            .map(|(node, roles)| {
                let mut names: Vec<&str> = roles
                    .iter()
                    .map(|&r| self.roles[r as usize].name.as_str())
                    .collect();
                names.sort_unstable();
                names.dedup();
                (node.path.as_str(), names)
            })
            .collect()
    }

    /// The collection a path is inside: itself or its nearest existing
    /// ancestor; the root for a path that is not canonical.
    fn locate(&self, path: &str) -> Option<u32> {
        if !is_canonical_path(path) {
            return self.root;
        }
        ancestors(path).find_map(|p| self.by_path.get(p).copied())
    }

    /// The interned ids of the user and their teams and orgs that hold any
    /// grant at all.
    fn subject_ids<'a>(&'a self, who: &'a Principal) -> impl Iterator<Item = u32> + 'a {
        std::iter::once(&who.user_id)
            .chain(&who.memberships)
            .filter_map(|s| self.subjects.get(s.as_str()).copied())
    }

    fn sorted_subject_ids(&self, who: &Principal) -> Vec<u32> {
        let mut ids: Vec<u32> = self.subject_ids(who).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Whether `subject` holds a role with `op` among `grants`.
    #[inline]
    fn holds(&self, grants: &[IndexedGrant], subject: u32, op: Operation) -> bool {
        let from = grants.partition_point(|g| g.subject < subject);
        grants[from..]
            .iter()
            .take_while(|g| g.subject == subject)
            .any(|g| self.roles[g.role as usize].operations.contains(op))
    }

    /// Whether a grant of `who` on `start` or one of its ancestors allows
    /// `op`.
    fn allowed_from(&self, who: &Principal, op: Operation, start: Option<u32>) -> bool {
        let Some(start) = start else {
            return false;
        };
        self.subject_ids(who).any(|subject| {
            let grants = &self.by_subject[subject as usize];
            if grants.len() <= SCAN_LIMIT {
                // Few grants: check each for covering `start`.
                grants.iter().any(|g| {
                    g.node <= start
                        && start < self.nodes[g.node as usize].subtree_end
                        && self.roles[g.role as usize].operations.contains(op)
                })
            } else {
                // Many grants: walk up the tree, searching at each level.
                let mut at = Some(start);
                while let Some(i) = at {
                    let node = &self.nodes[i as usize];
                    if self.holds(&node.grants, subject, op) {
                        return true;
                    }
                    at = node.parent;
                }
                false
            }
        })
    }

    fn allowed_on_root_only(&self, who: &Principal, op: Operation) -> bool {
        self.root.is_some_and(|root| {
            let grants = &self.nodes[root as usize].grants;
            self.subject_ids(who).any(|s| self.holds(grants, s, op))
        })
    }

    fn is_org_owner_op(&self, who: &Principal, op: Operation, org_id: &str) -> bool {
        self.org_owner_ops.contains(op) && who.owner_of.iter().any(|o| o == org_id)
    }

    fn is_self_service(&self, who: &Principal, op: Operation, user_id: &str) -> bool {
        self.self_service_ops.contains(op) && who.user_id == user_id
    }

    /// The grants among `grants` that allow `op` to one of `subjects`.
    fn matches(
        &self,
        grants: &[IndexedGrant],
        subjects: &[u32],
        op: Operation,
        object_id: &str,
        object_path: &str,
        out: &mut Vec<GrantMatch>,
    ) {
        for g in grants {
            let role = &self.roles[g.role as usize];
            if subjects.binary_search(&g.subject).is_ok() && role.operations.contains(op) {
                out.push(GrantMatch {
                    subject_id: self.subject_names[g.subject as usize].clone(),
                    role_id: role.id.clone(),
                    role_name: role.name.clone(),
                    object_id: object_id.to_string(),
                    object_path: object_path.to_string(),
                });
            }
        }
    }

    fn decide_in_collection(&self, who: &Principal, op: Operation, path: &str) -> Decision {
        let canonical = is_canonical_path(path);
        let start = self.locate(path);
        let mut searched = Vec::new();
        if canonical {
            // Paths below the nearest collection, named by the label but
            // not (yet) made.
            let known = start.map(|i| self.nodes[i as usize].path.as_str());
            searched.extend(
                ancestors(path)
                    .take_while(|p| Some(*p) != known)
                    .map(str::to_string),
            );
        }
        let subjects = self.sorted_subject_ids(who);
        let mut grants = Vec::new();
        let mut at = start;
        while let Some(i) = at {
            let node = &self.nodes[i as usize];
            searched.push(node.path.clone());
            self.matches(
                &node.grants,
                &subjects,
                op,
                &node.id,
                &node.path,
                &mut grants,
            );
            at = node.parent;
        }
        let reason = if !grants.is_empty() {
            Reason::Granted
        } else if !canonical || start.is_none() {
            Reason::UnknownCollection
        } else {
            Reason::NoGrant
        };
        Decision {
            allowed: !grants.is_empty(),
            reason,
            grants,
            path: searched,
        }
    }

    fn decide_in_namespace(&self, who: &Principal, op: Operation, ns: &str) -> Decision {
        let subjects = self.sorted_subject_ids(who);
        let namespace_path = format!("namespace:{ns}");
        let mut grants = Vec::new();
        if let Some(list) = self.namespaces.get(ns) {
            self.matches(list, &subjects, op, ns, &namespace_path, &mut grants);
        }
        let mut searched = vec![namespace_path];
        if let Some(root) = self.root {
            let node = &self.nodes[root as usize];
            searched.push(node.path.clone());
            self.matches(
                &node.grants,
                &subjects,
                op,
                &node.id,
                &node.path,
                &mut grants,
            );
        }
        Decision {
            allowed: !grants.is_empty(),
            reason: if grants.is_empty() {
                Reason::NoGrant
            } else {
                Reason::Granted
            },
            grants,
            path: searched,
        }
    }
}

/// The nodes of collections sorted in tree order, with their parents and
/// subtree ranges, and no grants yet.
fn tree_nodes(sorted: &[&Collection]) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::with_capacity(sorted.len());
    // The chain of nodes whose subtree is still open, root first.
    let mut open: Vec<usize> = Vec::new();
    for (i, c) in sorted.iter().enumerate() {
        while let Some(&top) = open.last() {
            if is_within(&nodes[top].path, &c.path) {
                break;
            }
            nodes[top].subtree_end = index_u32(i);
            open.pop();
        }
        nodes.push(Node {
            id: c.id.clone(),
            path: c.path.clone(),
            parent: open.last().map(|&p| index_u32(p)),
            subtree_end: index_u32(sorted.len()),
            grants: Vec::new(),
        });
        open.push(i);
    }
    nodes
}

/// Whether canonical `path` is `ancestor` or below it.
fn is_within(ancestor: &str, path: &str) -> bool {
    ancestor == "/"
        || path
            .strip_prefix(ancestor)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn index_u32(i: usize) -> u32 {
    u32::try_from(i).expect("fewer than 2^32 collections, roles and subjects")
}

#[cfg(test)]
mod tests;
