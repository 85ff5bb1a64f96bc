//! The catalogue's names, groups and sets.

use super::*;

fn op(name: &str) -> Operation {
    Operation::parse(name).expect("known operation")
}

#[test]
fn names_round_trip_through_parse() {
    for op in Operation::all() {
        assert_eq!(Operation::parse(op.name()).expect("own name"), op);
    }
    assert_eq!(Operation::all().count(), OPERATION_COUNT);
}

#[test]
fn names_follow_the_convention() {
    for op in Operation::all() {
        let name = op.name();
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'),
            "{name}"
        );
        assert!(
            name.starts_with(&format!("{}.", op.resource_type())),
            "{name}"
        );
    }
}

#[test]
fn the_brief_names_exist() {
    for name in [
        "container.view",
        "container.create",
        "container.create.privileged",
        "container.create.host-bind-mounts",
        "container.create.host-networking",
        "container.create.kernel-capabilities",
        "container.create.ipc-mode",
        "container.create.pid-mode",
        "container.create.bridge-networking",
        "container.create.userns-mode",
        "container.exec",
        "service.create",
        "service.create.host-bind-mounts",
        "service.delete",
        "service.logs",
        "service.view",
        "service.view-tasks",
        "node.schedule",
        "node.update",
        "node.view",
        "secret.use",
        "volume.create",
        "image.push",
        "network.create.attachable",
        "stack.create",
        "stack.delete",
        "stack.view",
        "stack.update",
        "kube.pod.get",
        "kube.deployment.list",
        "kube.namespace.create",
        "kube.persistentvolumeclaim.watch",
        "kube.clusterrolebinding.delete-multiple",
        "collection.view",
        "grant.create",
        "role.delete",
        "account.update",
        "team.members",
        "org.members",
        "audit.view",
        "license.update",
        "config.update",
        "swarm-config.use",
        "metrics.view",
        "authz.explain",
    ] {
        assert!(Operation::parse(name).is_ok(), "{name}");
    }
}

#[test]
fn resource_types() {
    assert_eq!(
        op("container.create.privileged").resource_type(),
        "container"
    );
    assert_eq!(op("kube.pod.get").resource_type(), "kube.pod");
    assert_eq!(op("team.members").resource_type(), "team");
    let types = Operation::resource_types();
    assert!(types.contains(&"stack"));
    assert!(types.contains(&"kube.persistentvolumeclaim"));
    assert_eq!(Operation::of_type("node").count(), 3);
    assert_eq!(Operation::of_type("kube.deployment").count(), 8);
    assert_eq!(Operation::of_type("nothing").count(), 0);
    let total: usize = types.iter().map(|t| Operation::of_type(t).count()).sum();
    assert_eq!(total, OPERATION_COUNT);
}

#[test]
fn unknown_names_get_a_suggestion() {
    let err = Operation::parse("container.veiw").unwrap_err().to_string();
    assert!(err.contains("\"container.veiw\""), "{err}");
    assert!(err.contains("did you mean \"container.view\""), "{err}");
    let err = Operation::parse("Container.View").unwrap_err().to_string();
    assert!(err.contains("did you mean \"container.view\""), "{err}");
    let err = Operation::parse("frobnicate everything")
        .unwrap_err()
        .to_string();
    assert!(err.contains("types are swarm-config, container"), "{err}");
    let err = OperationSet::from_names(&["containr.*"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("containr.*"), "{err}");
}

#[test]
fn groups_expand() {
    let containers = OperationSet::from_names(&["container.*"]).expect("group");
    assert_eq!(containers.len(), Operation::of_type("container").count());
    assert!(containers.contains(op("container.create.privileged")));
    assert!(!containers.contains(op("service.create")));

    let all = OperationSet::from_names(&["*"]).expect("star");
    assert!(all.contains(op("container.exec")));
    assert!(all.contains(op("kube.pod.exec")));
    assert!(all.contains(op("stack.create")));
    for control in [
        "collection.view",
        "grant.create",
        "account.delete",
        "authz.explain",
        "config.update",
        "metrics.view",
    ] {
        assert!(!all.contains(op(control)), "{control}");
        assert!(op(control).is_control_plane());
    }
    assert!(op("config.view").is_control_plane());
    assert!(!op("swarm-config.view").is_control_plane());
    assert_eq!(
        all.union(&OperationSet::from_names(&["collection.*"]).expect("group"))
            .len(),
        all.len() + 4
    );

    let kube = OperationSet::from_names(&["kube.*"]).expect("kube");
    assert!(kube.iter().all(|o| o.name().starts_with("kube.")));
    assert!(kube.contains(op("kube.namespace.create")));
    assert!(!kube.contains(op("container.view")));

    let mixed = OperationSet::from_names(&["node.*", "secret.use", "secret.use"]).expect("mix");
    assert_eq!(
        mixed.names(),
        ["node.schedule", "node.update", "node.view", "secret.use"]
    );
}

#[test]
fn set_operations() {
    let mut set = OperationSet::new();
    assert!(set.is_empty());
    assert!(set.insert(op("node.view")));
    assert!(!set.insert(op("node.view")));
    assert!(set.insert(op("authz.explain")));
    assert_eq!(set.len(), 2);
    assert_eq!(set.names(), ["node.view", "authz.explain"]);
    assert!(set.remove(op("authz.explain")));
    assert!(!set.contains(op("authz.explain")));
    assert!(set.is_subset(&OperationSet::everything()));
    assert_eq!(OperationSet::everything().len(), OPERATION_COUNT);
    let last = Operation::all().last().expect("non-empty catalogue");
    assert!(OperationSet::everything().contains(last));
}

#[test]
fn sets_serialize_as_expanded_names() {
    let set = OperationSet::from_names(&["node.*"]).expect("group");
    let json = serde_json::to_string(&set).expect("serialize");
    assert_eq!(json, r#"["node.schedule","node.update","node.view"]"#);
    let back: OperationSet = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, set);
    let grouped: OperationSet = serde_json::from_str(r#"["node.*"]"#).expect("group");
    assert_eq!(grouped, set);
    let bad = serde_json::from_str::<OperationSet>(r#"["node.fly"]"#).unwrap_err();
    assert!(bad.to_string().contains("node.fly"), "{bad}");
    let one: Operation = serde_json::from_str(r#""secret.use""#).expect("op");
    assert_eq!(serde_json::to_string(&one).expect("op"), r#""secret.use""#);
}
