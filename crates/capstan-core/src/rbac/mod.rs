//! Role-based access control, MKE's model: operations, roles, collections,
//! grants and the one decision every surface asks.
//!
//! - An [`Operation`] is a named thing a user can do (`container.create`,
//!   `kube.pod.get`, `grant.create`); the catalogue is fixed at build time.
//! - A [`Role`] is a named [`OperationSet`]; five are built in.
//! - A [`Collection`] is a node of the resource tree (`/`, `/Shared`,
//!   `/Shared/Private/alice`); a resource belongs to the collection its
//!   [`ACCESS_LABEL`] names.
//! - A [`Grant`] gives a subject (user, team or org) a role on a collection
//!   (and so on its whole subtree) or on a Kubernetes namespace.
//! - The [`Authorizer`] answers "may this principal do this operation on
//!   this resource?" and explains why. Grants only add; there is no deny.
//!
//! Architecture invariant: this module decides and never does. It reads no
//! clock (time comes in as arguments), does no I/O and keeps no state beyond
//! the indexes an [`Authorizer`] builds from the records it is given.

pub mod bench_fixture;
mod collection;
mod decide;
mod grant;
mod operation;
mod role;
mod tree;

#[cfg(test)]
mod properties;

pub use collection::{
    ancestors, builtin_collections, is_builtin_collection, join_path, normalize_path, parent_path,
    private_collection, resource_collection, validate_collection_name, Collection, ACCESS_LABEL,
    COLLECTION_LEGACY, COLLECTION_PRIVATE, COLLECTION_ROOT, COLLECTION_SHARED, COLLECTION_SYSTEM,
    MAX_NAME_CHARS,
};
pub use decide::{Authorizer, Decision, GrantMatch, Principal, Reason, Resource};
pub use grant::{default_grants, Grant, ResourceSetKind};
pub use operation::{Operation, OperationSet};
pub use role::{
    builtin_roles, check_role_delete, is_builtin_role, validate_role_name, Role, ROLE_FULL_CONTROL,
    ROLE_NONE, ROLE_RESTRICTED_CONTROL, ROLE_SCHEDULER, ROLE_VIEW_ONLY,
};
pub use tree::CollectionTree;

/// What was wrong with an RBAC request: a name, a path, or a change to the
/// collection tree or the roles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RbacError {
    /// An operation name (or group) is not in the catalogue.
    #[error("unknown operation {name:?}: {hint}")]
    UnknownOperation {
        /// The name as given.
        name: String,
        /// The closest known name, or the list of resource types.
        hint: String,
    },
    /// A role or collection name breaks the naming rules.
    #[error("invalid {what} name {name:?}: {reason}")]
    InvalidName {
        /// `"role"` or `"collection"`.
        what: &'static str,
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// A collection path is not canonical or would escape the tree.
    #[error("invalid collection path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// A record that a change refers to does not exist.
    #[error("{what} {id:?} not found")]
    NotFound {
        /// `"collection"`, `"role"`, ...
        what: &'static str,
        /// The id as given.
        id: String,
    },
    /// The change would make two collections share a path.
    #[error("collection {path} already exists")]
    Conflict {
        /// The path that is already taken.
        path: String,
    },
    /// A collection would become its own ancestor.
    #[error("cannot move collection {path} under {target}: that is inside {path} itself")]
    Cycle {
        /// The collection being moved.
        path: String,
        /// The path of the requested new parent.
        target: String,
    },
    /// Built-in roles and collections cannot be changed or deleted.
    #[error("{what} {id:?} is built in and cannot be changed or deleted")]
    Builtin {
        /// `"collection"` or `"role"`.
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// A collection still holds child collections or resources.
    #[error("collection {path} is not empty: {reason}; move or delete them first")]
    NotEmpty {
        /// The collection's path.
        path: String,
        /// What it still holds.
        reason: String,
    },
    /// A grant's resource set type is neither `collection` nor `namespace`.
    #[error("resource set type {kind:?} is not \"collection\" or \"namespace\"")]
    UnknownKind {
        /// The type as given.
        kind: String,
    },
    /// A role is still used by grants.
    #[error("role {id:?} is used by {grants} grant(s); revoke them first")]
    InUse {
        /// The role's id.
        id: String,
        /// How many grants use it.
        grants: usize,
    },
}
