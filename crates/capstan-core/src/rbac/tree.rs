//! Checks of changes to the collection tree: create, move, delete. Each
//! returns what to write (or why not) and writes nothing.

use std::collections::HashMap;

use super::collection::{is_builtin_collection, join_path, validate_collection_name, Collection};
use super::RbacError;

/// The collection tree, indexed by id, path and parent, for checking
/// changes before they are written.
#[derive(Clone, Debug)]
pub struct CollectionTree {
    collections: Vec<Collection>,
    by_id: HashMap<String, usize>,
    by_path: HashMap<String, usize>,
    /// Child indices per parent id, in path order.
    children: HashMap<String, Vec<usize>>,
}

impl CollectionTree {
    /// Indexes `collections`. If two records share an id or a path, the
    /// first one wins.
    pub fn new(collections: &[Collection]) -> CollectionTree {
        let collections = collections.to_vec();
        let mut by_id = HashMap::new();
        let mut by_path = HashMap::new();
        let mut children: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, c) in collections.iter().enumerate() {
            if by_id.contains_key(&c.id) {
                continue;
            }
            by_id.insert(c.id.clone(), i);
            by_path.entry(c.path.clone()).or_insert(i);
            if !c.parent_id.is_empty() {
                children.entry(c.parent_id.clone()).or_default().push(i);
            }
        }
        for list in children.values_mut() {
            list.sort_by(|a, b| collections[*a].path.cmp(&collections[*b].path));
        }
        CollectionTree {
            collections,
            by_id,
            by_path,
            children,
        }
    }

    /// Every collection, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = &Collection> {
        self.collections.iter()
    }

    /// The collection with this id.
    pub fn by_id(&self, id: &str) -> Option<&Collection> {
        self.by_id.get(id).map(|&i| &self.collections[i])
    }

    /// The collection at this path.
    pub fn by_path(&self, path: &str) -> Option<&Collection> {
        self.by_path.get(path).map(|&i| &self.collections[i])
    }

    /// The direct children of a collection, in path order.
    pub fn children(&self, id: &str) -> Vec<&Collection> {
        self.children
            .get(id)
            .map(|list| list.iter().map(|&i| &self.collections[i]).collect())
            .unwrap_or_default()
    }

    /// A collection and all its descendants, parents before children (depth
    /// first, in path order); empty for an unknown id.
    pub fn subtree(&self, id: &str) -> Vec<&Collection> {
        let Some(&root) = self.by_id.get(id) else {
            return Vec::new();
        };
        let mut seen = vec![false; self.collections.len()];
        let mut out = Vec::new();
        let mut stack = vec![root];
        while let Some(i) = stack.pop() {
            // Stored records could loop through parent ids; visit each once.
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            let c = &self.collections[i];
            out.push(c);
            if let Some(list) = self.children.get(&c.id) {
                stack.extend(list.iter().rev());
            }
        }
        out
    }

    fn get(&self, id: &str) -> Result<&Collection, RbacError> {
        self.by_id(id).ok_or_else(|| RbacError::NotFound {
            what: "collection",
            id: id.to_string(),
        })
    }

    /// Checks a new collection `name` under `parent_id` and returns its
    /// path. Refuses a bad name, an unknown parent and a path already taken.
    pub fn check_create(&self, parent_id: &str, name: &str) -> Result<String, RbacError> {
        validate_collection_name(name)?;
        let parent = self.get(parent_id)?;
        let path = join_path(&parent.path, name);
        if self.by_path.contains_key(&path) {
            return Err(RbacError::Conflict { path });
        }
        Ok(path)
    }

    /// Plans moving collection `id` under `new_parent_id`: returns the
    /// records to write — the moved collection with its new parent and
    /// path, then every descendant with its recomputed path. Refuses moving
    /// a built-in, moving a collection into its own subtree, and a path
    /// that is already taken at the destination.
    pub fn plan_move(&self, id: &str, new_parent_id: &str) -> Result<Vec<Collection>, RbacError> {
        self.plan_update(id, None, new_parent_id)
    }

    /// Plans renaming collection `id` to `new_name` (if given) and moving it
    /// under `new_parent_id` (its current parent to stay): the records to
    /// write, as [`CollectionTree::plan_move`] returns them. Refuses what
    /// `plan_move` refuses, and a bad name.
    pub fn plan_update(
        &self,
        id: &str,
        new_name: Option<&str>,
        new_parent_id: &str,
    ) -> Result<Vec<Collection>, RbacError> {
        let moved = self.get(id)?;
        if let Some(name) = new_name {
            validate_collection_name(name)?;
        }
        if is_builtin_collection(id) {
            return Err(RbacError::Builtin {
                what: "collection",
                id: id.to_string(),
            });
        }
        let target = self.get(new_parent_id)?;
        let subtree = self.subtree(id);
        if subtree.iter().any(|c| c.id == target.id) {
            return Err(RbacError::Cycle {
                path: moved.path.clone(),
                target: target.path.clone(),
            });
        }
        let mut new_paths: HashMap<&str, String> = HashMap::new();
        let mut out = Vec::with_capacity(subtree.len());
        for c in subtree {
            let mut updated = c.clone();
            if c.id == moved.id {
                if let Some(name) = new_name {
                    updated.name = name.to_string();
                }
                updated.parent_id = target.id.clone();
                updated.path = join_path(&target.path, &updated.name);
            } else {
                let parent_path = new_paths
                    .get(c.parent_id.as_str())
                    .expect("subtree lists parents before their children");
                updated.path = join_path(parent_path, &c.name);
            }
            if let Some(other) = self.by_path(&updated.path) {
                if other.id != c.id {
                    return Err(RbacError::Conflict { path: updated.path });
                }
            }
            new_paths.insert(c.id.as_str(), updated.path.clone());
            out.push(updated);
        }
        Ok(out)
    }

    /// Checks that collection `id` may be deleted: it is not built in, has
    /// no child collections, and `has_resources(path)` says no resource is
    /// placed in it (the callback gets the collection's path, the value
    /// resources carry in their access label).
    pub fn check_delete(
        &self,
        id: &str,
        has_resources: impl Fn(&str) -> bool,
    ) -> Result<(), RbacError> {
        let c = self.get(id)?;
        if is_builtin_collection(id) {
            return Err(RbacError::Builtin {
                what: "collection",
                id: id.to_string(),
            });
        }
        let children = self.children(id);
        if !children.is_empty() {
            let paths: Vec<&str> = children.iter().map(|c| c.path.as_str()).collect();
            return Err(RbacError::NotEmpty {
                path: c.path.clone(),
                reason: format!("it has child collections {}", paths.join(", ")),
            });
        }
        if has_resources(&c.path) {
            return Err(RbacError::NotEmpty {
                path: c.path.clone(),
                reason: "resources are still placed in it".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rbac::{builtin_collections, private_collection};
    use time::OffsetDateTime;

    fn collection(id: &str, path: &str, parent_id: &str) -> Collection {
        Collection {
            id: id.into(),
            name: path.rsplit('/').next().unwrap_or_default().into(),
            path: path.into(),
            parent_id: parent_id.into(),
            created_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    /// Built-ins, alice's private collection, and
    /// /Shared/apps, /Shared/apps/web, /Shared/apps/web/front, /Shared/db.
    fn tree() -> CollectionTree {
        let mut all = builtin_collections(OffsetDateTime::UNIX_EPOCH);
        all.push(private_collection("alice", OffsetDateTime::UNIX_EPOCH));
        all.push(collection("apps", "/Shared/apps", "shared"));
        all.push(collection("web", "/Shared/apps/web", "apps"));
        all.push(collection("front", "/Shared/apps/web/front", "web"));
        all.push(collection("db", "/Shared/db", "shared"));
        CollectionTree::new(&all)
    }

    fn ids(list: &[&Collection]) -> Vec<String> {
        list.iter().map(|c| c.id.clone()).collect()
    }

    #[test]
    fn lookups() {
        let t = tree();
        assert_eq!(
            t.by_id("web").map(|c| c.path.as_str()),
            Some("/Shared/apps/web")
        );
        assert_eq!(t.by_path("/Shared/db").map(|c| c.id.as_str()), Some("db"));
        assert!(t.by_id("nope").is_none());
        assert_eq!(
            ids(&t.children("shared")),
            ["legacy", "private", "apps", "db"]
        );
        assert_eq!(ids(&t.children("front")), Vec::<String>::new());
        assert_eq!(ids(&t.subtree("apps")), ["apps", "web", "front"]);
        assert_eq!(
            ids(&t.subtree("shared")),
            [
                "shared",
                "legacy",
                "private",
                "private-alice",
                "apps",
                "web",
                "front",
                "db"
            ]
        );
        assert!(t.subtree("nope").is_empty());
        assert_eq!(t.iter().count(), 10);
    }

    #[test]
    fn parent_loops_in_stored_records_end() {
        let t = CollectionTree::new(&[collection("a", "/a", "b"), collection("b", "/a/b", "a")]);
        assert_eq!(ids(&t.subtree("a")), ["a", "b"]);
    }

    #[test]
    fn create() {
        let t = tree();
        assert_eq!(
            t.check_create("apps", "api").expect("new"),
            "/Shared/apps/api"
        );
        assert_eq!(t.check_create("swarm", "teams").expect("new"), "/teams");
        let err = t.check_create("shared", "apps").unwrap_err();
        assert_eq!(err.to_string(), "collection /Shared/apps already exists");
        let err = t.check_create("missing", "x").unwrap_err();
        assert_eq!(err.to_string(), "collection \"missing\" not found");
        assert!(matches!(
            t.check_create("apps", ".."),
            Err(RbacError::InvalidName { .. })
        ));
        assert!(matches!(
            t.check_create("apps", "a/b"),
            Err(RbacError::InvalidName { .. })
        ));
    }

    #[test]
    fn move_recomputes_the_subtree() {
        let t = tree();
        let planned = t.plan_move("web", "db").expect("move");
        let got: Vec<(&str, &str, &str)> = planned
            .iter()
            .map(|c| (c.id.as_str(), c.path.as_str(), c.parent_id.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("web", "/Shared/db/web", "db"),
                ("front", "/Shared/db/web/front", "web"),
            ]
        );
        let to_root = t.plan_move("apps", "swarm").expect("move");
        assert_eq!(to_root[0].path, "/apps");
        assert_eq!(to_root[2].path, "/apps/web/front");
        // Staying put is allowed and changes nothing.
        let same = t.plan_move("web", "apps").expect("same place");
        assert_eq!(same[0].path, "/Shared/apps/web");
    }

    #[test]
    fn rename_and_move() {
        let t = tree();
        let planned = t.plan_update("web", Some("site"), "apps").expect("rename");
        assert_eq!(planned[0].name, "site");
        assert_eq!(planned[0].path, "/Shared/apps/site");
        assert_eq!(planned[1].path, "/Shared/apps/site/front");
        let planned = t.plan_update("front", Some("api"), "db").expect("both");
        assert_eq!(planned[0].path, "/Shared/db/api");
        let err = t.plan_update("web", Some("a/b"), "apps").unwrap_err();
        assert!(matches!(err, RbacError::InvalidName { .. }), "{err}");
        let err = t.plan_update("db", Some("apps"), "shared").unwrap_err();
        assert_eq!(err.to_string(), "collection /Shared/apps already exists");
        let err = t
            .plan_update("private", Some("Mine"), "shared")
            .unwrap_err();
        assert!(matches!(err, RbacError::Builtin { .. }), "{err}");
    }

    #[test]
    fn move_refusals() {
        let t = tree();
        let err = t.plan_move("apps", "front").unwrap_err();
        assert!(matches!(err, RbacError::Cycle { .. }));
        assert_eq!(
            err.to_string(),
            "cannot move collection /Shared/apps under /Shared/apps/web/front: that is inside /Shared/apps itself"
        );
        assert!(matches!(
            t.plan_move("apps", "apps"),
            Err(RbacError::Cycle { .. })
        ));
        for builtin in ["swarm", "system", "shared", "private", "legacy"] {
            let err = t.plan_move(builtin, "db").unwrap_err();
            assert!(matches!(err, RbacError::Builtin { .. }), "{builtin}: {err}");
        }
        let mut all: Vec<Collection> = t.iter().cloned().collect();
        all.push(collection("web2", "/Shared/db/web", "db"));
        let t = CollectionTree::new(&all);
        let err = t.plan_move("web", "db").unwrap_err();
        assert_eq!(err.to_string(), "collection /Shared/db/web already exists");
        assert!(matches!(
            t.plan_move("nope", "db"),
            Err(RbacError::NotFound { .. })
        ));
        assert!(matches!(
            t.plan_move("web", "nope"),
            Err(RbacError::NotFound { .. })
        ));
    }

    #[test]
    fn delete() {
        let t = tree();
        assert!(t.check_delete("front", |_| false).is_ok());
        let err = t
            .check_delete("front", |path| path == "/Shared/apps/web/front")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "collection /Shared/apps/web/front is not empty: resources are still placed in it; move or delete them first"
        );
        let err = t.check_delete("apps", |_| false).unwrap_err();
        assert!(
            err.to_string()
                .contains("/Shared/apps is not empty: it has child collections /Shared/apps/web"),
            "{err}"
        );
        let err = t.check_delete("shared", |_| false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "collection \"shared\" is built in and cannot be changed or deleted"
        );
        assert!(matches!(
            t.check_delete("nope", |_| false),
            Err(RbacError::NotFound { .. })
        ));
        assert!(t.check_delete("private-alice", |_| false).is_ok());
    }
}
