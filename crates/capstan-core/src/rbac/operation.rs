//! The catalogue of operations and sets of them.
//!
//! An operation is named `<resource type>.<op>` in lower case with `-` for
//! spaces (`container.create`, `service.view-tasks`); a sub-option of an
//! operation is an operation of its own (`container.create.privileged`).
//! Kubernetes kinds are the resource types `kube.<kind>` (`kube.pod.get`).
//!
//! In a role's list of operations, `<type>.*` stands for every operation of
//! that type (sub-options included), `kube.*` for every Kubernetes
//! operation, and `*` for every Swarm and Kubernetes operation — but not
//! for Capstan's own control-plane types (collections, grants, roles,
//! accounts, ...), which must be named, or given as `collection.*` etc.
//!
//! Swarm's config objects are the resource type `swarm-config`, because
//! `config` is the cluster configuration (`config.view`, `config.update`).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::RbacError;

/// Which world a resource type belongs to; decides what `*` expands to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    Swarm,
    Kubernetes,
    ControlPlane,
}

/// One resource type and its operations, as written in the catalogue.
struct ResourceTypeDef {
    name: &'static str,
    scope: Scope,
    ops: &'static [&'static str],
}

const fn swarm(name: &'static str, ops: &'static [&'static str]) -> ResourceTypeDef {
    ResourceTypeDef {
        name,
        scope: Scope::Swarm,
        ops,
    }
}

const fn control(name: &'static str, ops: &'static [&'static str]) -> ResourceTypeDef {
    ResourceTypeDef {
        name,
        scope: Scope::ControlPlane,
        ops,
    }
}

/// The verbs every Kubernetes kind has.
const KUBE_VERBS: &[&str] = &[
    "create",
    "delete",
    "delete-multiple",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

const fn kube(name: &'static str) -> ResourceTypeDef {
    ResourceTypeDef {
        name,
        scope: Scope::Kubernetes,
        ops: KUBE_VERBS,
    }
}

/// The whole catalogue, in the order sets list their names. Appending is
/// safe; renaming or removing breaks stored custom roles.
const CATALOGUE: &[ResourceTypeDef] = &[
    // Swarm config objects (`docker config`): `config` is the cluster
    // configuration, a control-plane type.
    swarm(
        "swarm-config",
        &["create", "delete", "update", "use", "view"],
    ),
    swarm(
        "container",
        &[
            "attach",
            "changes",
            "connect",
            "create",
            "create.ipc-mode",
            "create.pid-mode",
            "create.host-networking",
            "create.bridge-networking",
            "create.privileged",
            "create.host-bind-mounts",
            "create.kernel-capabilities",
            "create.userns-mode",
            "disconnect",
            "exec",
            "export",
            "filesystem-read",
            "filesystem-write",
            "kill",
            "logs",
            "pause",
            "remove",
            "rename",
            "resize",
            "restart",
            "start",
            "stats",
            "stop",
            "top",
            "unpause",
            "view",
            "wait",
        ],
    ),
    swarm(
        "image",
        &[
            "build",
            "commit",
            "create",
            "export",
            "history",
            "load",
            "prune",
            "push",
            "remove",
            "remove.force",
            "search",
            "tag",
            "view",
        ],
    ),
    swarm(
        "network",
        &[
            "connect",
            "create",
            "create.attachable",
            "disconnect",
            "remove",
            "view",
        ],
    ),
    swarm("node", &["schedule", "update", "view"]),
    swarm("secret", &["create", "delete", "update", "use", "view"]),
    // Sub-options sit under `create` and apply to updates too: an update
    // that adds host bind mounts needs `service.update` and
    // `service.create.host-bind-mounts`.
    swarm(
        "service",
        &[
            "create",
            "create.credential-spec",
            "create.host-bind-mounts",
            "create.host-networking",
            "create.bridge-networking",
            "update",
            "delete",
            "logs",
            "view",
            "view-tasks",
        ],
    ),
    // `attach` is mounting an existing volume into a container or service.
    swarm(
        "volume",
        &[
            "create",
            "create.local-driver-options",
            "attach",
            "remove",
            "view",
        ],
    ),
    swarm("stack", &["create", "delete", "view", "update"]),
    // Pods also have the sub-resources kubectl logs/exec/attach/port-forward
    // use, so that Restricted Control can refuse exec as it does for
    // containers.
    ResourceTypeDef {
        name: "kube.pod",
        scope: Scope::Kubernetes,
        ops: &[
            "create",
            "delete",
            "delete-multiple",
            "get",
            "list",
            "patch",
            "update",
            "watch",
            "logs",
            "exec",
            "attach",
            "port-forward",
        ],
    },
    kube("kube.deployment"),
    kube("kube.daemonset"),
    kube("kube.statefulset"),
    kube("kube.replicaset"),
    kube("kube.job"),
    kube("kube.cronjob"),
    kube("kube.service"),
    kube("kube.endpoints"),
    kube("kube.ingress"),
    kube("kube.networkpolicy"),
    kube("kube.configmap"),
    kube("kube.secret"),
    kube("kube.persistentvolume"),
    kube("kube.persistentvolumeclaim"),
    kube("kube.storageclass"),
    kube("kube.role"),
    kube("kube.rolebinding"),
    kube("kube.clusterrole"),
    kube("kube.clusterrolebinding"),
    kube("kube.serviceaccount"),
    kube("kube.namespace"),
    kube("kube.node"),
    kube("kube.event"),
    kube("kube.limitrange"),
    kube("kube.resourcequota"),
    kube("kube.horizontalpodautoscaler"),
    kube("kube.poddisruptionbudget"),
    control("collection", &["view", "create", "update", "delete"]),
    control("grant", &["view", "create", "delete"]),
    control("role", &["view", "create", "delete"]),
    control("account", &["view", "create", "update", "delete"]),
    // `members` is managing who is in the team.
    control("team", &["view", "create", "update", "delete", "members"]),
    control("org", &["members"]),
    control("audit", &["view"]),
    control("license", &["view", "update"]),
    // The cluster configuration (config-toml); Swarm's configs are
    // `swarm-config`.
    control("config", &["view", "update"]),
    control("authz", &["explain"]),
    control("metrics", &["view"]),
];

const fn count_operations() -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < CATALOGUE.len() {
        n += CATALOGUE[i].ops.len();
        i += 1;
    }
    n
}

/// How many operations the catalogue holds.
const OPERATION_COUNT: usize = count_operations();
/// Words of an [`OperationSet`].
const WORDS: usize = OPERATION_COUNT.div_ceil(64);

/// The catalogue, indexed. Built once, on first use.
struct Index {
    names: Vec<String>,
    type_of: Vec<u16>,
    type_names: Vec<&'static str>,
    type_ranges: Vec<(u16, u16)>,
    by_name: HashMap<String, u16>,
    type_by_name: HashMap<&'static str, u16>,
    swarm_and_kube: OperationSet,
    kube: OperationSet,
}

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut index = Index {
            names: Vec::with_capacity(OPERATION_COUNT),
            type_of: Vec::with_capacity(OPERATION_COUNT),
            type_names: Vec::new(),
            type_ranges: Vec::new(),
            by_name: HashMap::new(),
            type_by_name: HashMap::new(),
            swarm_and_kube: OperationSet::new(),
            kube: OperationSet::new(),
        };
        for (t, def) in CATALOGUE.iter().enumerate() {
            let t = u16::try_from(t).expect("the catalogue has fewer than 65536 types");
            let start = index.names.len();
            for op in def.ops {
                let i = u16::try_from(index.names.len())
                    .expect("the catalogue has fewer than 65536 operations");
                let name = format!("{}.{op}", def.name);
                let fresh = index.by_name.insert(name.clone(), i).is_none();
                assert!(fresh, "operation {name} appears twice in the catalogue");
                index.names.push(name);
                index.type_of.push(t);
                if def.scope != Scope::ControlPlane {
                    index.swarm_and_kube.insert(Operation(i));
                }
                if def.scope == Scope::Kubernetes {
                    index.kube.insert(Operation(i));
                }
            }
            let end = index.names.len();
            index.type_names.push(def.name);
            index.type_ranges.push((start as u16, end as u16));
            index.type_by_name.insert(def.name, t);
        }
        index
    })
}

/// One operation of the catalogue: a small index, cheap to copy, compare
/// and hash. Ordered by catalogue order. Serialized as its name.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Operation(u16);

impl Operation {
    /// Looks up an operation by its exact name (`container.create`). The
    /// error names the string and suggests the closest known name.
    pub fn parse(name: &str) -> Result<Operation, RbacError> {
        match index().by_name.get(name) {
            Some(&i) => Ok(Operation(i)),
            None => Err(unknown(name)),
        }
    }

    /// The operation's name, e.g. `container.create.privileged`.
    pub fn name(self) -> &'static str {
        &index().names[usize::from(self.0)]
    }

    /// The operation's resource type, e.g. `container` or `kube.pod`.
    pub fn resource_type(self) -> &'static str {
        let index = index();
        index.type_names[usize::from(index.type_of[usize::from(self.0)])]
    }

    /// Every operation, in catalogue order.
    pub fn all() -> impl Iterator<Item = Operation> {
        (0..OPERATION_COUNT as u16).map(Operation)
    }

    /// Every resource type, in catalogue order (`swarm-config`, `container`, ...,
    /// `kube.pod`, ..., `collection`, ...).
    pub fn resource_types() -> &'static [&'static str] {
        &index().type_names
    }

    /// The operations of one resource type, sub-options included; nothing
    /// for an unknown type.
    pub fn of_type(resource_type: &str) -> impl Iterator<Item = Operation> {
        let index = index();
        let (start, end) = index
            .type_by_name
            .get(resource_type)
            .map(|&t| index.type_ranges[usize::from(t)])
            .unwrap_or((0, 0));
        (start..end).map(Operation)
    }

    /// Whether the operation belongs to Capstan's control plane
    /// (collections, grants, roles, accounts, teams, orgs, audit, license,
    /// cluster config, authz, metrics), which `*` does not cover.
    pub fn is_control_plane(self) -> bool {
        !index().swarm_and_kube.contains(self)
    }

    fn bit(self) -> (usize, u64) {
        let i = usize::from(self.0);
        (i / 64, 1u64 << (i % 64))
    }
}

impl fmt::Debug for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Operation {
    type Err = RbacError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Operation::parse(s)
    }
}

impl Serialize for Operation {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Operation {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Operation::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// The error for a name that is not in the catalogue, with a hint.
fn unknown(name: &str) -> RbacError {
    let wanted = name.to_ascii_lowercase().replace([' ', '_'], "-");
    let index = index();
    let candidates = index
        .names
        .iter()
        .map(String::as_str)
        // Suggest groups too, for "container.all" and the like.
        .chain(index.type_names.iter().copied());
    let best = candidates
        .map(|c| (edit_distance(&wanted, c), c))
        .min_by_key(|(d, _)| *d);
    let hint = match best {
        Some((d, closest)) if d <= (wanted.len() / 3).max(2) => {
            if index.type_by_name.contains_key(closest) {
                format!("did you mean \"{closest}.*\" (every {closest} operation)?")
            } else {
                format!("did you mean {closest:?}?")
            }
        }
        _ => format!(
            "operations are named <type>.<op>, or <type>.* for all of a type, or * for every \
             Swarm and Kubernetes operation; types are {}",
            index.type_names.join(", ")
        ),
    };
    RbacError::UnknownOperation {
        name: name.to_string(),
        hint,
    }
}

/// Levenshtein distance over bytes; names are ASCII.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, &ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitute.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// A set of operations: a fixed-size bitset over the catalogue, so that a
/// role's check is one load and one mask. Serialized as the sorted list of
/// operation names (groups expanded); read back through
/// [`OperationSet::from_names`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct OperationSet {
    words: [u64; WORDS],
}

impl OperationSet {
    /// The empty set.
    pub const fn new() -> OperationSet {
        OperationSet { words: [0; WORDS] }
    }

    /// Every operation in the catalogue, control plane included.
    pub fn everything() -> OperationSet {
        Operation::all().collect()
    }

    /// Whether `op` is in the set.
    #[inline]
    pub fn contains(&self, op: Operation) -> bool {
        let (word, mask) = op.bit();
        self.words[word] & mask != 0
    }

    /// Adds `op`; true if it was not there before.
    pub fn insert(&mut self, op: Operation) -> bool {
        let (word, mask) = op.bit();
        let fresh = self.words[word] & mask == 0;
        self.words[word] |= mask;
        fresh
    }

    /// Removes `op`; true if it was there.
    pub fn remove(&mut self, op: Operation) -> bool {
        let (word, mask) = op.bit();
        let present = self.words[word] & mask != 0;
        self.words[word] &= !mask;
        present
    }

    /// The operations in either set.
    pub fn union(&self, other: &OperationSet) -> OperationSet {
        let mut out = *self;
        for (w, o) in out.words.iter_mut().zip(other.words) {
            *w |= o;
        }
        out
    }

    /// The operations of `self` that are not in `other`.
    pub fn difference(&self, other: &OperationSet) -> OperationSet {
        let mut out = *self;
        for (w, o) in out.words.iter_mut().zip(other.words) {
            *w &= !o;
        }
        out
    }

    /// Whether every operation of `self` is in `other`.
    pub fn is_subset(&self, other: &OperationSet) -> bool {
        self.words.iter().zip(other.words).all(|(w, o)| w & !o == 0)
    }

    /// The operations, in catalogue order.
    pub fn iter(&self) -> impl Iterator<Item = Operation> + '_ {
        Operation::all().filter(|op| self.contains(*op))
    }

    /// How many operations the set holds.
    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }

    /// Builds a set from operation names and groups: `container.view`,
    /// `container.*` (every container operation), `kube.*` (every
    /// Kubernetes operation), `*` (every Swarm and Kubernetes operation).
    /// The first unknown name is the error.
    pub fn from_names(names: &[impl AsRef<str>]) -> Result<OperationSet, RbacError> {
        let mut set = OperationSet::new();
        for name in names {
            set = set.union(&expand(name.as_ref())?);
        }
        Ok(set)
    }

    /// The names of the operations, expanded, in catalogue order.
    pub fn names(&self) -> Vec<&'static str> {
        self.iter().map(Operation::name).collect()
    }
}

/// One name or group of a role's list, as a set.
fn expand(name: &str) -> Result<OperationSet, RbacError> {
    let index = index();
    if name == "*" {
        return Ok(index.swarm_and_kube);
    }
    if name == "kube.*" {
        return Ok(index.kube);
    }
    if let Some(resource_type) = name.strip_suffix(".*") {
        if index.type_by_name.contains_key(resource_type) {
            return Ok(Operation::of_type(resource_type).collect());
        }
        return Err(unknown(name));
    }
    let mut set = OperationSet::new();
    set.insert(Operation::parse(name)?);
    Ok(set)
}

impl FromIterator<Operation> for OperationSet {
    fn from_iter<I: IntoIterator<Item = Operation>>(iter: I) -> Self {
        let mut set = OperationSet::new();
        for op in iter {
            set.insert(op);
        }
        set
    }
}

impl Extend<Operation> for OperationSet {
    fn extend<I: IntoIterator<Item = Operation>>(&mut self, iter: I) {
        for op in iter {
            self.insert(op);
        }
    }
}

impl fmt::Debug for OperationSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Serialize for OperationSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter().map(Operation::name))
    }
}

impl<'de> Deserialize<'de> for OperationSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(deserializer)?;
        OperationSet::from_names(&names).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
