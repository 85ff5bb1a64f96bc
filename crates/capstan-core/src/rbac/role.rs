//! Roles: named sets of operations, five of them built in.

use serde::{Deserialize, Serialize};

use super::grant::Grant;
use super::operation::{Operation, OperationSet};
use super::RbacError;
use crate::table::Table;

/// Id of the built-in role None: no operations.
pub const ROLE_NONE: &str = "none";
/// Id of the built-in role View Only: see resources, change nothing.
pub const ROLE_VIEW_ONLY: &str = "viewonly";
/// Id of the built-in role Restricted Control: see and edit, but nothing
/// that reaches into the host.
pub const ROLE_RESTRICTED_CONTROL: &str = "restrictedcontrol";
/// Id of the built-in role Scheduler: see nodes and schedule on them.
pub const ROLE_SCHEDULER: &str = "scheduler";
/// Id of the built-in role Full Control: every Swarm and Kubernetes
/// operation, and managing the collections below the granted one.
pub const ROLE_FULL_CONTROL: &str = "fullcontrol";

/// A role, stored in table `roles` under its id: what a grant lets its
/// subject do on a resource set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Role {
    /// `none`, `viewonly`, ... for built-ins; a random id otherwise.
    pub id: String,
    /// Display name, e.g. `Restricted Control`.
    pub name: String,
    /// Built-in roles cannot be edited or deleted.
    #[serde(default)]
    pub system_role: bool,
    /// What the role allows.
    pub operations: OperationSet,
    /// What the role is for, for people choosing one.
    #[serde(default)]
    pub description: String,
}

impl Table for Role {
    const TABLE: &'static str = "roles";
    fn id(&self) -> String {
        self.id.clone()
    }
}

impl Role {
    /// Whether the role allows `op`.
    pub fn allows(&self, op: Operation) -> bool {
        self.operations.contains(op)
    }
}

/// Whether `id` is one of the five built-in roles.
pub fn is_builtin_role(id: &str) -> bool {
    matches!(
        id,
        ROLE_NONE | ROLE_VIEW_ONLY | ROLE_RESTRICTED_CONTROL | ROLE_SCHEDULER | ROLE_FULL_CONTROL
    )
}

/// The five built-in roles, as MKE ships them.
pub fn builtin_roles() -> Vec<Role> {
    let view_only = view_only_operations();
    vec![
        builtin(
            ROLE_NONE,
            "None",
            OperationSet::new(),
            "No access to Swarm or Kubernetes resources.",
        ),
        builtin(
            ROLE_VIEW_ONLY,
            "View Only",
            view_only,
            "See resources, their logs and their tasks; create and change nothing. \
             Kubernetes secrets are not readable.",
        ),
        builtin(
            ROLE_RESTRICTED_CONTROL,
            "Restricted Control",
            view_only.union(&restricted_control_operations()),
            "See and edit resources, but nothing that reaches into the host: no exec, \
             attach or file copy into containers, no host bind mounts, host networking, \
             privileged mode, added kernel capabilities, host IPC/PID/user namespaces, \
             credential specs or local volume driver options. Images can be pushed \
             (the registry checks its own permissions), not pruned. Cluster-scoped and \
             RBAC Kubernetes kinds are read-only.",
        ),
        builtin(
            ROLE_SCHEDULER,
            "Scheduler",
            names(&["node.view", "node.schedule", "collection.view"]),
            "See nodes and schedule workloads on them, but not see the workloads.",
        ),
        builtin(
            ROLE_FULL_CONTROL,
            "Full Control",
            names(&["*", "collection.*"]),
            "Every Swarm and Kubernetes operation, including those that reach into the \
             host, and managing the collections below the granted one.",
        ),
    ]
}

fn builtin(id: &str, name: &str, operations: OperationSet, description: &str) -> Role {
    Role {
        id: id.to_string(),
        name: name.to_string(),
        system_role: true,
        operations,
        description: description.to_string(),
    }
}

/// A set from names that are in the catalogue; a typo here is a bug that
/// every test catches.
fn names(list: &[&str]) -> OperationSet {
    OperationSet::from_names(list).expect("built-in roles name catalogue operations")
}

/// View Only: every `*.view`, logs, tasks, a few read-only inspections,
/// and Kubernetes get/list/watch except on secrets (which would show their
/// data, as Kubernetes' own `view` role also refuses).
fn view_only_operations() -> OperationSet {
    let mut set = names(&[
        "service.view-tasks",
        "service.logs",
        "container.logs",
        "container.stats",
        "container.top",
        "container.changes",
        "image.history",
        "kube.pod.logs",
        "collection.view",
    ]);
    for op in Operation::all() {
        let name = op.name();
        let swarm_view = !op.is_control_plane() && name.ends_with(".view");
        let kube_read = name.starts_with("kube.")
            && [".get", ".list", ".watch"]
                .iter()
                .any(|v| name.ends_with(v))
            && op.resource_type() != "kube.secret";
        if swarm_view || kube_read {
            set.insert(op);
        }
    }
    set
}

/// Kubernetes kinds Restricted Control may only read: cluster-scoped ones
/// and those that hand out permissions or quotas.
const KUBE_READ_ONLY_KINDS: &[&str] = &[
    "kube.node",
    "kube.namespace",
    "kube.persistentvolume",
    "kube.storageclass",
    "kube.role",
    "kube.rolebinding",
    "kube.clusterrole",
    "kube.clusterrolebinding",
    "kube.resourcequota",
    "kube.limitrange",
];

/// What Restricted Control adds to View Only.
fn restricted_control_operations() -> OperationSet {
    let mut set = names(&[
        "swarm-config.create",
        "swarm-config.delete",
        "swarm-config.update",
        "swarm-config.use",
        "container.connect",
        "container.create",
        "container.create.bridge-networking",
        "container.disconnect",
        "container.kill",
        "container.pause",
        "container.remove",
        "container.rename",
        "container.resize",
        "container.restart",
        "container.start",
        "container.stop",
        "container.unpause",
        "container.wait",
        "image.build",
        "image.commit",
        "image.create",
        "image.export",
        "image.load",
        "image.push",
        "image.remove",
        "image.remove.force",
        "image.search",
        "image.tag",
        "network.connect",
        "network.create",
        "network.create.attachable",
        "network.disconnect",
        "network.remove",
        "secret.create",
        "secret.delete",
        "secret.update",
        "secret.use",
        "service.create",
        "service.create.bridge-networking",
        "service.update",
        "service.delete",
        "volume.create",
        "volume.attach",
        "volume.remove",
        "stack.create",
        "stack.delete",
        "stack.update",
        "kube.pod.port-forward",
        "kube.secret.get",
        "kube.secret.list",
        "kube.secret.watch",
    ]);
    for op in Operation::all() {
        let name = op.name();
        let kube_write = name.starts_with("kube.")
            && [
                ".create",
                ".update",
                ".patch",
                ".delete",
                ".delete-multiple",
            ]
            .iter()
            .any(|v| name.ends_with(v))
            && !KUBE_READ_ONLY_KINDS.contains(&op.resource_type());
        if kube_write {
            set.insert(op);
        }
    }
    set
}

/// Checks a role's display name: 1 to 100 characters, not only spaces, no
/// control characters.
pub fn validate_role_name(name: &str) -> Result<(), RbacError> {
    let invalid = |reason: String| RbacError::InvalidName {
        what: "role",
        name: name.to_string(),
        reason,
    };
    if name.trim().is_empty() {
        return Err(invalid("it is empty".into()));
    }
    if name.chars().count() > 100 {
        return Err(invalid("it is longer than 100 characters".into()));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(invalid(format!("it contains the control character {c:?}")));
    }
    Ok(())
}

/// Checks that a role may be deleted: not built in, and used by no grant.
pub fn check_role_delete(role_id: &str, grants: &[Grant]) -> Result<(), RbacError> {
    if is_builtin_role(role_id) {
        return Err(RbacError::Builtin {
            what: "role",
            id: role_id.to_string(),
        });
    }
    let used = grants.iter().filter(|g| g.role_id == role_id).count();
    if used > 0 {
        return Err(RbacError::InUse {
            id: role_id.to_string(),
            grants: used,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{decode, encode};

    fn role(id: &str) -> Role {
        builtin_roles()
            .into_iter()
            .find(|r| r.id == id)
            .expect("built-in role")
    }

    fn op(name: &str) -> Operation {
        Operation::parse(name).expect("known operation")
    }

    #[test]
    fn builtins_have_mke_ids() {
        let ids: Vec<String> = builtin_roles().into_iter().map(|r| r.id).collect();
        assert_eq!(
            ids,
            [
                "none",
                "viewonly",
                "restrictedcontrol",
                "scheduler",
                "fullcontrol"
            ]
        );
        assert!(builtin_roles().iter().all(|r| r.system_role));
        assert!(builtin_roles().iter().all(|r| is_builtin_role(&r.id)));
        assert!(!is_builtin_role("containers-full-access"));
        assert!(role(ROLE_NONE).operations.is_empty());
    }

    #[test]
    fn view_only_sees_and_changes_nothing() {
        let view = role(ROLE_VIEW_ONLY);
        for allowed in [
            "container.view",
            "service.view",
            "service.view-tasks",
            "service.logs",
            "container.logs",
            "node.view",
            "stack.view",
            "kube.pod.get",
            "kube.deployment.list",
            "kube.namespace.watch",
            "collection.view",
        ] {
            assert!(view.allows(op(allowed)), "{allowed}");
        }
        for refused in [
            "container.create",
            "service.update",
            "kube.pod.create",
            "kube.secret.get",
            "node.schedule",
            "grant.view",
            "role.view",
            "audit.view",
            "config.view",
            "metrics.view",
        ] {
            assert!(!view.allows(op(refused)), "{refused}");
        }
    }

    #[test]
    fn restricted_control_does_not_reach_the_host() {
        let restricted = role(ROLE_RESTRICTED_CONTROL);
        assert!(role(ROLE_VIEW_ONLY)
            .operations
            .is_subset(&restricted.operations));
        for allowed in [
            "container.create",
            "container.create.bridge-networking",
            "container.stop",
            "service.create",
            "service.update",
            "service.delete",
            "network.create",
            "volume.create",
            "secret.create",
            "swarm-config.create",
            "stack.create",
            "image.push",
            "kube.deployment.create",
            "kube.pod.patch",
            "kube.secret.get",
            "collection.view",
        ] {
            assert!(restricted.allows(op(allowed)), "{allowed}");
        }
        for refused in [
            "container.exec",
            "container.attach",
            "container.create.host-bind-mounts",
            "container.create.host-networking",
            "container.create.privileged",
            "container.create.kernel-capabilities",
            "container.create.ipc-mode",
            "container.create.pid-mode",
            "container.create.userns-mode",
            "container.filesystem-write",
            "service.create.host-bind-mounts",
            "service.create.host-networking",
            "service.create.credential-spec",
            "volume.create.local-driver-options",
            "kube.pod.exec",
            "kube.pod.attach",
            "kube.clusterrolebinding.create",
            "kube.namespace.delete",
            "node.update",
            "node.schedule",
            "collection.create",
            "grant.create",
        ] {
            assert!(!restricted.allows(op(refused)), "{refused}");
        }
    }

    #[test]
    fn scheduler_and_full_control() {
        assert_eq!(
            role(ROLE_SCHEDULER).operations.names(),
            ["node.schedule", "node.view", "collection.view"]
        );
        let full = role(ROLE_FULL_CONTROL);
        for allowed in [
            "container.exec",
            "container.create.privileged",
            "node.update",
            "kube.clusterrole.create",
            "collection.view",
            "collection.create",
            "collection.update",
            "collection.delete",
        ] {
            assert!(full.allows(op(allowed)), "{allowed}");
        }
        for refused in [
            "grant.create",
            "role.create",
            "account.create",
            "team.members",
        ] {
            assert!(!full.allows(op(refused)), "{refused}");
        }
    }

    #[test]
    fn role_names() {
        assert!(validate_role_name("containers-full-access").is_ok());
        assert!(validate_role_name("Équipe réseau").is_ok());
        assert!(validate_role_name(&"x".repeat(100)).is_ok());
        assert!(validate_role_name("").is_err());
        assert!(validate_role_name("   ").is_err());
        let err = validate_role_name(&"x".repeat(101))
            .unwrap_err()
            .to_string();
        assert!(err.contains("100"), "{err}");
        let err = validate_role_name("bad\u{0}name").unwrap_err().to_string();
        assert!(err.contains("control character '\\0'"), "{err}");
        assert!(validate_role_name("tab\there").is_err());
    }

    #[test]
    fn deleting_roles() {
        let grant = Grant {
            subject_id: "u1".into(),
            object_id: "swarm".into(),
            role_id: "custom".into(),
            kind: crate::rbac::ResourceSetKind::Collection,
        };
        assert!(matches!(
            check_role_delete(ROLE_FULL_CONTROL, &[]),
            Err(RbacError::Builtin { .. })
        ));
        let err = check_role_delete("custom", std::slice::from_ref(&grant)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "role \"custom\" is used by 1 grant(s); revoke them first"
        );
        assert!(check_role_delete("other", &[grant]).is_ok());
    }

    #[test]
    fn roles_round_trip_through_the_store() {
        for r in builtin_roles() {
            let back: Role = decode(&encode(&r)).expect("decode");
            assert_eq!(back, r);
            assert_eq!(back.id(), r.id);
        }
        let custom: Role = decode(
            br#"{"schema":1,"id":"r1","name":"containers-full-access","operations":["container.*"]}"#,
        )
        .expect("custom role");
        assert!(custom.allows(op("container.exec")));
        assert!(!custom.system_role);
        assert_eq!(Role::TABLE, "roles");
    }
}
