//! Collections: the tree of resource sets, its paths, and which collection
//! a resource belongs to.
//!
//! A path is canonical when it is `/` or `/<name>/<name>...` with every
//! name valid by [`validate_collection_name`]; there are no empty, `.` or
//! `..` segments, so no path can climb out of the subtree it names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::RbacError;
use crate::table::Table;

/// Id of the root collection `/` (MKE's "Swarm"): everything.
pub const COLLECTION_ROOT: &str = "swarm";
/// Id of `/System`: managers, registry nodes and control-plane services.
pub const COLLECTION_SYSTEM: &str = "system";
/// Id of `/Shared`: worker nodes by default.
pub const COLLECTION_SHARED: &str = "shared";
/// Id of `/Shared/Private`: the parent of each user's private collection.
pub const COLLECTION_PRIVATE: &str = "private";
/// Id of `/Shared/Legacy`: resources with old-style access labels.
pub const COLLECTION_LEGACY: &str = "legacy";

/// The label that places a resource in a collection, as MKE spells it.
pub const ACCESS_LABEL: &str = "com.docker.ucp.access.label";

/// The longest collection name, in characters. As long as the longest
/// username, so that every user can have a private collection.
pub const MAX_NAME_CHARS: usize = 100;

const LEGACY_PATH: &str = "/Shared/Legacy";

/// A collection, stored in table `collections` under its id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Collection {
    /// `swarm`, `shared`, ... for built-ins, `private-<user>` for private
    /// collections, a random id otherwise.
    pub id: String,
    /// The last segment of the path.
    pub name: String,
    /// Canonical path, `/` for the root.
    pub path: String,
    /// Id of the parent; empty for the root.
    #[serde(default)]
    pub parent_id: String,
    /// When the collection was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Table for Collection {
    const TABLE: &'static str = "collections";
    fn id(&self) -> String {
        self.id.clone()
    }
}

/// The five collections every cluster has, made at `now`.
pub fn builtin_collections(now: OffsetDateTime) -> Vec<Collection> {
    let make = |id: &str, name: &str, path: &str, parent_id: &str| Collection {
        id: id.to_string(),
        name: name.to_string(),
        path: path.to_string(),
        parent_id: parent_id.to_string(),
        created_at: now,
    };
    vec![
        make(COLLECTION_ROOT, "Swarm", "/", ""),
        make(COLLECTION_SYSTEM, "System", "/System", COLLECTION_ROOT),
        make(COLLECTION_SHARED, "Shared", "/Shared", COLLECTION_ROOT),
        make(
            COLLECTION_PRIVATE,
            "Private",
            "/Shared/Private",
            COLLECTION_SHARED,
        ),
        make(COLLECTION_LEGACY, "Legacy", LEGACY_PATH, COLLECTION_SHARED),
    ]
}

/// Whether `id` is one of the five built-in collections (which cannot be
/// moved or deleted).
pub fn is_builtin_collection(id: &str) -> bool {
    matches!(
        id,
        COLLECTION_ROOT
            | COLLECTION_SYSTEM
            | COLLECTION_SHARED
            | COLLECTION_PRIVATE
            | COLLECTION_LEGACY
    )
}

/// A user's private collection `/Shared/Private/<username>`, id
/// `private-<username>`: where their new resources land by default. The
/// username is expected to have passed `validate_username`.
pub fn private_collection(username: &str, now: OffsetDateTime) -> Collection {
    Collection {
        id: format!("private-{username}"),
        name: username.to_string(),
        path: format!("/Shared/Private/{username}"),
        parent_id: COLLECTION_PRIVATE.to_string(),
        created_at: now,
    }
}

/// Checks a collection name (one path segment): 1 to [`MAX_NAME_CHARS`]
/// characters of ASCII letters, digits, `-`, `_`, `.` and `@`, and not `.`
/// or `..`.
pub fn validate_collection_name(name: &str) -> Result<(), RbacError> {
    match name_problem(name) {
        None => Ok(()),
        Some(reason) => Err(RbacError::InvalidName {
            what: "collection",
            name: name.to_string(),
            reason,
        }),
    }
}

fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty".into());
    }
    if name == "." || name == ".." {
        return Some("'.' and '..' are not names".into());
    }
    if let Some(c) = name.chars().find(|c| !is_name_char(*c)) {
        return Some(format!(
            "it contains {c:?}: use letters, digits, '-', '_', '.' or '@'"
        ));
    }
    // Every character is ASCII by now, so bytes are characters.
    if name.len() > MAX_NAME_CHARS {
        return Some(format!("it is longer than {MAX_NAME_CHARS} characters"));
    }
    None
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@')
}

/// Checks a collection path and returns it in canonical form. It must
/// start with `/`, have no empty, `.` or `..` segments, no trailing slash
/// (except the root `/` itself), and every segment must be a valid name.
/// Nothing is rewritten: a path that is not already canonical is refused,
/// so that what is checked is what is stored.
pub fn normalize_path(path: &str) -> Result<String, RbacError> {
    match path_problem(path) {
        None => Ok(path.to_string()),
        Some(reason) => Err(RbacError::InvalidPath {
            path: path.to_string(),
            reason,
        }),
    }
}

/// Whether `path` is canonical; allocates nothing.
pub(crate) fn is_canonical_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    rest.is_empty()
        || rest.split('/').all(|segment| {
            segment != "."
                && segment != ".."
                && !segment.is_empty()
                && segment.len() <= MAX_NAME_CHARS
                && segment.chars().all(is_name_char)
        })
}

fn path_problem(path: &str) -> Option<String> {
    let Some(rest) = path.strip_prefix('/') else {
        return Some(if path.is_empty() {
            "it is empty".into()
        } else {
            "it must start with '/'".into()
        });
    };
    if rest.is_empty() {
        return None;
    }
    if rest.ends_with('/') {
        return Some("it must not end with '/'".into());
    }
    for segment in rest.split('/') {
        if segment.is_empty() {
            return Some("it has an empty segment ('//')".into());
        }
        if let Some(problem) = name_problem(segment) {
            return Some(format!("segment {segment:?}: {problem}"));
        }
    }
    None
}

/// The path of the child `name` of `parent`; both are expected valid.
pub fn join_path(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// The parent of a path: `/a/b` → `/a`, `/a` → `/`, `/` → none.
pub fn parent_path(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/')? {
        0 => Some("/"),
        i => Some(&path[..i]),
    }
}

/// A path and its ancestors, nearest first, ending with `/`:
/// `/a/b` → `/a/b`, `/a`, `/`.
pub fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(path), |p| parent_path(p))
}

/// The collection path of a resource: its [`ACCESS_LABEL`] if it has one,
/// else `default_path` (the deployer's default collection). An old-style
/// label that is a bare name rather than a path (`mylabel`) means
/// `/Shared/Legacy/mylabel`, as in MKE. The result is canonical.
pub fn resource_collection(
    labels: &BTreeMap<String, String>,
    default_path: &str,
) -> Result<String, RbacError> {
    let Some(value) = labels.get(ACCESS_LABEL) else {
        return normalize_path(default_path);
    };
    if value.starts_with('/') || value.is_empty() {
        return normalize_path(value);
    }
    match name_problem(value) {
        None => Ok(join_path(LEGACY_PATH, value)),
        Some(reason) => Err(RbacError::InvalidPath {
            path: value.clone(),
            reason: format!("it is neither a path nor a legacy label name: {reason}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{decode, encode};
    use time::macros::datetime;

    #[test]
    fn builtins() {
        let now = datetime!(2024-01-02 03:04:05 UTC);
        let paths: Vec<(String, String, String)> = builtin_collections(now)
            .into_iter()
            .map(|c| (c.id, c.path, c.parent_id))
            .collect();
        let expected = [
            ("swarm", "/", ""),
            ("system", "/System", "swarm"),
            ("shared", "/Shared", "swarm"),
            ("private", "/Shared/Private", "shared"),
            ("legacy", "/Shared/Legacy", "shared"),
        ];
        assert_eq!(paths.len(), expected.len());
        for ((id, path, parent), (eid, epath, eparent)) in paths.iter().zip(expected) {
            assert_eq!(
                (id.as_str(), path.as_str(), parent.as_str()),
                (eid, epath, eparent)
            );
            assert!(is_builtin_collection(id));
            assert_eq!(&normalize_path(path).expect("canonical"), path);
        }
        assert!(!is_builtin_collection("private-alice"));
    }

    #[test]
    fn private_collections() {
        let now = datetime!(2024-01-02 03:04:05 UTC);
        let c = private_collection("analista", now);
        assert_eq!(c.id, "private-analista");
        assert_eq!(c.name, "analista");
        assert_eq!(c.path, "/Shared/Private/analista");
        assert_eq!(c.parent_id, "private");
        assert_eq!(c.created_at, now);
        let long = "u".repeat(100);
        assert!(normalize_path(&private_collection(&long, now).path).is_ok());
    }

    #[test]
    fn collection_names() {
        for good in [
            "web",
            "team-a_b.c",
            "alice@example.com",
            "A1",
            "...",
            &"x".repeat(100),
        ] {
            assert!(validate_collection_name(good).is_ok(), "{good}");
        }
        for (bad, says) in [
            ("", "empty"),
            (".", "'.' and '..'"),
            ("..", "'.' and '..'"),
            ("a/b", "'/'"),
            ("a b", "' '"),
            ("tab\t", "'\\t'"),
            ("nul\0", "'\\0'"),
            ("café", "'é'"),
            (&"x".repeat(101), "longer than 100"),
            (&"x".repeat(200), "longer than 100"),
        ] {
            let err = validate_collection_name(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad:?}: {err}");
            assert!(err.contains("invalid collection name"), "{err}");
        }
    }

    #[test]
    fn canonical_paths_pass() {
        for good in ["/", "/Shared", "/Shared/Private/alice", "/a/b.c/d@e/f-g_h"] {
            assert_eq!(normalize_path(good).expect(good), good);
            assert!(is_canonical_path(good), "{good}");
        }
    }

    #[test]
    fn traversal_and_junk_are_refused() {
        let long = format!("/{}", "x".repeat(200));
        for (bad, says) in [
            ("", "empty"),
            ("Shared", "start with '/'"),
            ("/Shared/../System", "'.' and '..'"),
            ("/..", "'.' and '..'"),
            ("/Shared/Private/alice/../../../System", "'.' and '..'"),
            ("//", "end with '/'"),
            ("//System", "empty segment"),
            ("/a//b", "empty segment"),
            ("/a/./b", "'.' and '..'"),
            ("/Shared/", "end with '/'"),
            ("/Shared\0/x", "'\\0'"),
            ("/a b", "' '"),
            ("/a\\b", "'\\\\'"),
            ("/%2e%2e", "'%'"),
            (&long, "longer than 100"),
        ] {
            let err = normalize_path(bad).unwrap_err();
            assert!(matches!(err, RbacError::InvalidPath { .. }));
            let err = err.to_string();
            assert!(err.contains(says), "{bad:?}: {err}");
            assert!(!is_canonical_path(bad), "{bad:?}");
        }
    }

    #[test]
    fn path_arithmetic() {
        assert_eq!(join_path("/", "Shared"), "/Shared");
        assert_eq!(join_path("/Shared", "Private"), "/Shared/Private");
        assert_eq!(parent_path("/"), None);
        assert_eq!(parent_path("/Shared"), Some("/"));
        assert_eq!(
            parent_path("/Shared/Private/alice"),
            Some("/Shared/Private")
        );
        let up: Vec<&str> = ancestors("/Shared/Private/alice").collect();
        assert_eq!(
            up,
            ["/Shared/Private/alice", "/Shared/Private", "/Shared", "/"]
        );
        assert_eq!(ancestors("/").collect::<Vec<_>>(), ["/"]);
    }

    #[test]
    fn resources_are_placed_by_their_label() {
        let mut labels = BTreeMap::new();
        let default = "/Shared/Private/alice";
        assert_eq!(
            resource_collection(&labels, default).expect("default"),
            default
        );
        labels.insert("other".to_string(), "/System".to_string());
        assert_eq!(
            resource_collection(&labels, default).expect("default"),
            default
        );
        labels.insert(ACCESS_LABEL.to_string(), "/Shared/web".to_string());
        assert_eq!(
            resource_collection(&labels, default).expect("label"),
            "/Shared/web"
        );
        labels.insert(ACCESS_LABEL.to_string(), "oldlabel".to_string());
        assert_eq!(
            resource_collection(&labels, default).expect("legacy"),
            "/Shared/Legacy/oldlabel"
        );
        for bad in ["/Shared/../System", "", "..", "a/b", "/x/"] {
            labels.insert(ACCESS_LABEL.to_string(), bad.to_string());
            let err = resource_collection(&labels, default)
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn collections_round_trip_through_the_store() {
        let now = datetime!(2024-01-02 03:04:05.5 UTC);
        for c in builtin_collections(now) {
            let bytes = encode(&c);
            assert!(String::from_utf8_lossy(&bytes).contains("2024-01-02T03:04:05.5Z"));
            let back: Collection = decode(&bytes).expect("decode");
            assert_eq!(back, c);
        }
        assert_eq!(Collection::TABLE, "collections");
        assert_eq!(private_collection("bob", now).id(), "private-bob");
    }
}
