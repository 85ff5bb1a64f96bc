//! What a trust server accepts as an update of one repository's metadata,
//! following TUF's rules, and the snapshot and timestamp it signs in answer
//! (Notary's server-managed roles).
//!
//! An update is a set of roles. Root must be signed by a threshold of its
//! own root keys and, when it replaces a root, of the old one's too, and
//! moves one version at a time; `targets` is signed by the keys root names
//! for it, each delegation by the keys its parent names, and only for the
//! paths delegated; every role must be unexpired and newer than the one
//! stored. A snapshot from the client must pin exactly the resulting
//! state; without one the server signs it. The timestamp is always the
//! server's. Nothing is written unless all of it holds.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::error::TrustError;
use crate::keys::PrivateKey;
use crate::metadata::{expiry_in, sign, Delegation, FileMeta, Pins, RoleFile, Root, Targets};
use crate::{is_delegation, parent_role, role, valid_role};

/// How long a server-signed snapshot lasts, in days (Notary's default).
pub const SNAPSHOT_DAYS: i64 = 3 * 365;
/// How long a server-signed timestamp lasts, in days (Notary's default).
pub const TIMESTAMP_DAYS: i64 = 14;
/// A timestamp this close to expiry is signed again when read, in days.
pub const TIMESTAMP_RENEW_DAYS: i64 = 7;

/// One role's new metadata, to store as its current version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    /// The role.
    pub role: String,
    /// Its version.
    pub version: u64,
    /// The exact bytes.
    pub bytes: Vec<u8>,
}

/// The keys the server holds for a repository's server-managed roles (all
/// it ever made, any order); it signs with the one root names.
pub struct ServerKeys<'a> {
    /// Timestamp keys.
    pub timestamp: &'a [PrivateKey],
    /// Snapshot keys.
    pub snapshot: &'a [PrivateKey],
}

/// Checks `updates` (role, bytes) against the repository's current
/// metadata (`current(role)`) and answers every role to write: the
/// accepted updates, then the snapshot (the client's, or one the server
/// signs) and a new timestamp.
pub fn validate(
    current: &dyn Fn(&str) -> Option<Vec<u8>>,
    updates: Vec<(String, Vec<u8>)>,
    keys: &ServerKeys<'_>,
    now: OffsetDateTime,
) -> Result<Vec<Write>, TrustError> {
    let mut pending: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (name, bytes) in updates {
        if !valid_role(&name) {
            return Err(TrustError::hierarchy(
                &name,
                "not a role name: use root, targets, snapshot or targets/<name>",
            ));
        }
        if name == role::TIMESTAMP {
            return Err(TrustError::hierarchy(
                &name,
                "the timestamp is signed by the server, not uploaded",
            ));
        }
        if pending.insert(name.clone(), bytes).is_some() {
            return Err(TrustError::hierarchy(&name, "appears twice in the update"));
        }
    }
    let mut writes = Vec::new();
    let root = validate_root(current, pending.remove(role::ROOT), now, &mut writes)?;
    if pick_key(&root.body, role::TIMESTAMP, keys.timestamp).is_none() {
        return Err(TrustError::hierarchy(
            role::TIMESTAMP,
            "root does not name a timestamp key this server holds; fetch it with GET .../_trust/tuf/timestamp.key",
        ));
    }

    let client_snapshot = pending.remove(role::SNAPSHOT);
    let mut targets_roles: Vec<(String, Vec<u8>)> = pending.into_iter().collect();
    targets_roles.sort_by_key(|(name, _)| name.matches('/').count());
    let mut loaded: BTreeMap<String, RoleFile<Targets>> = BTreeMap::new();
    for (name, bytes) in targets_roles {
        let file = validate_targets(current, &root, &loaded, &name, &bytes, now)?;
        writes.push(Write {
            role: name.clone(),
            version: file.version(),
            bytes,
        });
        loaded.insert(name, file);
    }

    let state = resulting_state(current, &root, &loaded)?;
    let snapshot_bytes = match client_snapshot {
        Some(bytes) => {
            let snap = RoleFile::<Pins>::parse(role::SNAPSHOT, "Snapshot", &bytes)?;
            let rk = role_keys(&root.body, role::SNAPSHOT)?;
            snap.verify(&root.body.keys, &rk.keyids, rk.threshold)?;
            snap.check_expiry(now)?;
            check_newer(current, role::SNAPSHOT, snap.version(), "Snapshot")?;
            for (name, role_bytes) in &state {
                match snap.body.meta.get(name) {
                    Some(m) if m.matches(role_bytes) => {}
                    _ => {
                        return Err(TrustError::hierarchy(
                            role::SNAPSHOT,
                            format!("does not pin the current {name} metadata (length and hashes)"),
                        ))
                    }
                }
            }
            writes.push(Write {
                role: role::SNAPSHOT.into(),
                version: snap.version(),
                bytes: bytes.clone(),
            });
            bytes
        }
        None => {
            let key = pick_key(&root.body, role::SNAPSHOT, keys.snapshot).ok_or_else(|| {
                TrustError::hierarchy(
                    role::SNAPSHOT,
                    "the update has no snapshot and root does not name a snapshot key this server holds",
                )
            })?;
            let version = current_version(current, role::SNAPSHOT, "Snapshot") + 1;
            let meta: BTreeMap<String, FileMeta> = state
                .iter()
                .map(|(name, b)| (name.clone(), FileMeta::of(b)))
                .collect();
            let bytes = sign(
                serde_json::json!({
                    "_type": "Snapshot",
                    "version": version,
                    "expires": expiry_in(now, SNAPSHOT_DAYS),
                    "meta": meta,
                }),
                &[key],
            )?;
            writes.push(Write {
                role: role::SNAPSHOT.into(),
                version,
                bytes: bytes.clone(),
            });
            bytes
        }
    };
    writes.push(timestamp_for(
        current,
        &root.body,
        &snapshot_bytes,
        keys,
        now,
    )?);
    Ok(writes)
}

/// Whether the stored timestamp will do: it pins the current snapshot and
/// has more than [`TIMESTAMP_RENEW_DAYS`] left (or there is nothing to
/// pin yet).
pub fn timestamp_is_current(
    current: &dyn Fn(&str) -> Option<Vec<u8>>,
    now: OffsetDateTime,
) -> bool {
    let Some(snapshot) = current(role::SNAPSHOT) else {
        return true;
    };
    let Some(ts) = current(role::TIMESTAMP) else {
        return false;
    };
    let Ok(ts) = RoleFile::<Pins>::parse(role::TIMESTAMP, "Timestamp", &ts) else {
        return false;
    };
    let pins = ts
        .body
        .meta
        .get(role::SNAPSHOT)
        .is_some_and(|m| m.matches(&snapshot));
    pins && ts
        .check_expiry(now + time::Duration::days(TIMESTAMP_RENEW_DAYS))
        .is_ok()
}

/// A timestamp to store when the current one is not
/// [current](timestamp_is_current); `None` when it will do.
pub fn refresh_timestamp(
    current: &dyn Fn(&str) -> Option<Vec<u8>>,
    keys: &ServerKeys<'_>,
    now: OffsetDateTime,
) -> Result<Option<Write>, TrustError> {
    if timestamp_is_current(current, now) {
        return Ok(None);
    }
    let (Some(root), Some(snapshot)) = (current(role::ROOT), current(role::SNAPSHOT)) else {
        return Ok(None);
    };
    let root = RoleFile::<Root>::parse(role::ROOT, "Root", &root)?;
    timestamp_for(current, &root.body, &snapshot, keys, now).map(Some)
}

fn timestamp_for(
    current: &dyn Fn(&str) -> Option<Vec<u8>>,
    root: &Root,
    snapshot: &[u8],
    keys: &ServerKeys<'_>,
    now: OffsetDateTime,
) -> Result<Write, TrustError> {
    let key = pick_key(root, role::TIMESTAMP, keys.timestamp).ok_or_else(|| {
        TrustError::hierarchy(
            role::TIMESTAMP,
            "root does not name a timestamp key this server holds",
        )
    })?;
    let version = current_version(current, role::TIMESTAMP, "Timestamp") + 1;
    let mut meta = BTreeMap::new();
    meta.insert(role::SNAPSHOT.to_string(), FileMeta::of(snapshot));
    let bytes = sign(
        serde_json::json!({
            "_type": "Timestamp",
            "version": version,
            "expires": expiry_in(now, TIMESTAMP_DAYS),
            "meta": meta,
        }),
        &[key],
    )?;
    Ok(Write {
        role: role::TIMESTAMP.into(),
        version,
        bytes,
    })
}

/// The newest of `keys` that root names for `role`.
fn pick_key<'a>(root: &Root, role: &str, keys: &'a [PrivateKey]) -> Option<&'a PrivateKey> {
    let named = &root.roles.get(role)?.keyids;
    keys.iter().rev().find(|k| named.contains(&k.public().id()))
}

fn role_keys<'a>(root: &'a Root, name: &str) -> Result<&'a crate::metadata::RoleKeys, TrustError> {
    root.roles
        .get(name)
        .ok_or_else(|| TrustError::hierarchy(role::ROOT, format!("names no keys for {name}")))
}

fn stored<T: serde::de::DeserializeOwned>(
    current: &dyn Fn(&str) -> Option<Vec<u8>>,
    name: &str,
    kind: &str,
) -> Result<Option<RoleFile<T>>, TrustError> {
    current(name)
        .map(|b| RoleFile::<T>::parse(name, kind, &b))
        .transpose()
}

fn current_version(current: &dyn Fn(&str) -> Option<Vec<u8>>, name: &str, kind: &str) -> u64 {
    current(name)
        .and_then(|b| serde_json::from_slice::<crate::metadata::Envelope>(&b).ok())
        .filter(|e| e.signed.get("_type").and_then(|t| t.as_str()) == Some(kind))
        .and_then(|e| e.signed.get("version").and_then(serde_json::Value::as_u64))
        .unwrap_or(0)
}

fn check_newer(
    current: &dyn Fn(&str) -> Option<Vec<u8>>,
    name: &str,
    sent: u64,
    kind: &str,
) -> Result<(), TrustError> {
    let cur = current_version(current, name, kind);
    if current(name).is_some() && sent <= cur {
        return Err(TrustError::OldVersion {
            role: name.into(),
            current: cur,
            sent,
        });
    }
    Ok(())
}

fn validate_root(
    current: &dyn Fn(&str) -> Option<Vec<u8>>,
    update: Option<Vec<u8>>,
    now: OffsetDateTime,
    writes: &mut Vec<Write>,
) -> Result<RoleFile<Root>, TrustError> {
    let old = stored::<Root>(current, role::ROOT, "Root")?;
    let Some(bytes) = update else {
        return old.ok_or_else(|| {
            TrustError::hierarchy(
                role::ROOT,
                "the repository has no trust data yet and the update has no root",
            )
        });
    };
    if let Some(old) = &old {
        if old.bytes == bytes {
            return Ok(old.clone());
        }
    }
    let new = RoleFile::<Root>::parse(role::ROOT, "Root", &bytes)?;
    check_root_roles(&new.body)?;
    let own = role_keys(&new.body, role::ROOT)?;
    new.verify(&new.body.keys, &own.keyids, own.threshold)?;
    if let Some(old) = &old {
        if new.version() != old.version() + 1 {
            return Err(TrustError::OldVersion {
                role: role::ROOT.into(),
                current: old.version(),
                sent: new.version(),
            });
        }
        let prev = role_keys(&old.body, role::ROOT)?;
        new.verify(&old.body.keys, &prev.keyids, prev.threshold)
            .map_err(|e| {
                TrustError::signatures(
                    role::ROOT,
                    format!("a new root must also be signed by the current root keys: {e}"),
                )
            })?;
    }
    new.check_expiry(now)?;
    writes.push(Write {
        role: role::ROOT.into(),
        version: new.version(),
        bytes,
    });
    Ok(new)
}

fn check_root_roles(root: &Root) -> Result<(), TrustError> {
    for name in [role::ROOT, role::TARGETS, role::SNAPSHOT, role::TIMESTAMP] {
        let rk = role_keys(root, name)?;
        if rk.threshold < 1 || rk.keyids.len() < rk.threshold as usize {
            return Err(TrustError::hierarchy(
                role::ROOT,
                format!(
                    "{name} has threshold {} and {} key(s)",
                    rk.threshold,
                    rk.keyids.len()
                ),
            ));
        }
        check_key_ids(role::ROOT, &root.keys, &rk.keyids)?;
    }
    Ok(())
}

fn check_key_ids(
    owner: &str,
    keys: &BTreeMap<String, crate::PublicKey>,
    ids: &[String],
) -> Result<(), TrustError> {
    for id in ids {
        match keys.get(id) {
            None => {
                return Err(TrustError::hierarchy(
                    owner,
                    format!("names key {id}, which it does not list"),
                ))
            }
            Some(k) if &k.id() != id => {
                return Err(TrustError::Key {
                    key_id: id.clone(),
                    reason: format!("the key listed under this id has id {}", k.id()),
                })
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The parent of a delegation as it will be after the update.
fn parent_of(
    current: &dyn Fn(&str) -> Option<Vec<u8>>,
    loaded: &BTreeMap<String, RoleFile<Targets>>,
    name: &str,
) -> Result<RoleFile<Targets>, TrustError> {
    let parent = parent_role(name);
    if let Some(p) = loaded.get(parent) {
        return Ok(p.clone());
    }
    stored::<Targets>(current, parent, "Targets")?.ok_or_else(|| {
        TrustError::hierarchy(name, format!("its parent role {parent} has no metadata"))
    })
}

fn validate_targets(
    current: &dyn Fn(&str) -> Option<Vec<u8>>,
    root: &RoleFile<Root>,
    loaded: &BTreeMap<String, RoleFile<Targets>>,
    name: &str,
    bytes: &[u8],
    now: OffsetDateTime,
) -> Result<RoleFile<Targets>, TrustError> {
    let file = RoleFile::<Targets>::parse(name, "Targets", bytes)?;
    let delegation = if name == role::TARGETS {
        let rk = role_keys(&root.body, role::TARGETS)?;
        file.verify(&root.body.keys, &rk.keyids, rk.threshold)?;
        None
    } else {
        let parent = parent_of(current, loaded, name)?;
        let d = parent
            .body
            .delegations
            .roles
            .iter()
            .find(|d| d.name == name)
            .cloned()
            .ok_or_else(|| {
                TrustError::hierarchy(name, format!("{} does not delegate to it", parent.role))
            })?;
        file.verify(&parent.body.delegations.keys, &d.keyids, d.threshold)?;
        Some(d)
    };
    file.check_expiry(now)?;
    check_newer(current, name, file.version(), "Targets")?;
    if let Some(d) = &delegation {
        if let Some(target) = file.body.targets.keys().find(|t| !d.covers(t)) {
            return Err(TrustError::OutsideDelegation {
                role: name.into(),
                target: target.clone(),
            });
        }
    }
    for child in &file.body.delegations.roles {
        if !is_delegation(&child.name) || parent_role(&child.name) != name {
            return Err(TrustError::hierarchy(
                name,
                format!("may only delegate to {name}/<name>, not {:?}", child.name),
            ));
        }
        if child.threshold < 1 || child.keyids.len() < child.threshold as usize {
            return Err(TrustError::hierarchy(
                &child.name,
                format!(
                    "threshold {} with {} key(s)",
                    child.threshold,
                    child.keyids.len()
                ),
            ));
        }
        check_key_ids(name, &file.body.delegations.keys, &child.keyids)?;
        if let Some(d) = &delegation {
            if !within(child, d) {
                return Err(TrustError::hierarchy(
                    &child.name,
                    format!("delegates paths outside those {name} was delegated"),
                ));
            }
        }
    }
    Ok(file)
}

/// Whether every path `child` is given lies within what `parent` covers.
fn within(child: &Delegation, parent: &Delegation) -> bool {
    let paths_ok = child.paths.iter().flatten().all(|p| {
        parent
            .paths
            .iter()
            .flatten()
            .any(|pp| p.starts_with(pp.as_str()))
    });
    let hashes_ok = child.path_hash_prefixes.iter().flatten().all(|p| {
        parent.paths.iter().flatten().any(String::is_empty)
            || parent
                .path_hash_prefixes
                .iter()
                .flatten()
                .any(|pp| p.starts_with(pp.as_str()))
    });
    paths_ok && hashes_ok
}

/// The roles a snapshot pins after the update: root, targets and every
/// delegation reachable from it that has metadata.
fn resulting_state(
    current: &dyn Fn(&str) -> Option<Vec<u8>>,
    root: &RoleFile<Root>,
    loaded: &BTreeMap<String, RoleFile<Targets>>,
) -> Result<BTreeMap<String, Vec<u8>>, TrustError> {
    let mut state = BTreeMap::new();
    state.insert(role::ROOT.to_string(), root.bytes.clone());
    let targets = match loaded.get(role::TARGETS) {
        Some(t) => t.clone(),
        None => stored::<Targets>(current, role::TARGETS, "Targets")?.ok_or_else(|| {
            TrustError::hierarchy(role::TARGETS, "the repository has no targets metadata")
        })?,
    };
    let mut queue = vec![targets];
    while let Some(file) = queue.pop() {
        for d in &file.body.delegations.roles {
            let child = match loaded.get(&d.name) {
                Some(c) => Some(c.clone()),
                None => stored::<Targets>(current, &d.name, "Targets")?,
            };
            if let Some(c) = child {
                queue.push(c);
            }
        }
        state.insert(file.role.clone(), file.bytes);
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publisher::{targets, Delegate, Publisher};
    use std::cell::RefCell;

    struct Repo {
        files: RefCell<BTreeMap<String, Vec<u8>>>,
        ts: Vec<PrivateKey>,
        snap: Vec<PrivateKey>,
        owner: Publisher,
    }

    impl Repo {
        fn new() -> Self {
            Self {
                files: RefCell::default(),
                ts: vec![PrivateKey::generate().unwrap()],
                snap: vec![PrivateKey::generate().unwrap()],
                owner: Publisher::generate().unwrap(),
            }
        }

        fn push(&self, updates: Vec<(&str, Vec<u8>)>) -> Result<Vec<Write>, TrustError> {
            let files = self.files.borrow().clone();
            let keys = ServerKeys {
                timestamp: &self.ts,
                snapshot: &self.snap,
            };
            let writes = validate(
                &|r| files.get(r).cloned(),
                updates
                    .into_iter()
                    .map(|(r, b)| (r.to_string(), b))
                    .collect(),
                &keys,
                OffsetDateTime::now_utc(),
            )?;
            for w in &writes {
                self.files
                    .borrow_mut()
                    .insert(w.role.clone(), w.bytes.clone());
            }
            Ok(writes)
        }

        fn root(&self, version: u64) -> Vec<u8> {
            self.owner
                .root(
                    version,
                    3650,
                    &self.ts[0].public(),
                    &self.snap[0].public(),
                    OffsetDateTime::now_utc(),
                )
                .unwrap()
        }
    }

    fn tag(name: &str, body: &[u8]) -> BTreeMap<String, FileMeta> {
        BTreeMap::from([(name.to_string(), FileMeta::of(body))])
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    #[test]
    fn first_publish_gets_server_snapshot_and_timestamp() {
        let repo = Repo::new();
        let t = targets(1, 365, &tag("v1", b"m1"), &[], &repo.owner.targets, now()).unwrap();
        let writes = repo
            .push(vec![("root", repo.root(1)), ("targets", t)])
            .unwrap();
        let roles: Vec<&str> = writes.iter().map(|w| w.role.as_str()).collect();
        assert_eq!(roles, ["root", "targets", "snapshot", "timestamp"]);
        let files = repo.files.borrow().clone();
        let v = crate::resolve::Verified::check(&files, now()).unwrap();
        let found = v.lookup("v1");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].role, "targets");
        assert_eq!(found[0].signers[0].id(), repo.owner.targets.public().id());
        assert!(refresh_timestamp(
            &|r| files.get(r).cloned(),
            &ServerKeys {
                timestamp: &repo.ts,
                snapshot: &repo.snap
            },
            now()
        )
        .unwrap()
        .is_none());
    }

    #[test]
    fn refusals_leave_nothing_written() {
        let repo = Repo::new();
        let t1 = targets(2, 365, &tag("v1", b"m1"), &[], &repo.owner.targets, now()).unwrap();
        repo.push(vec![("root", repo.root(1)), ("targets", t1)])
            .unwrap();
        let before = repo.files.borrow().clone();

        // Signed by a key root does not name.
        let stranger = PrivateKey::generate().unwrap();
        let bad = targets(3, 365, &tag("v2", b"m2"), &[], &stranger, now()).unwrap();
        let e = repo.push(vec![("targets", bad)]).unwrap_err();
        assert!(matches!(e, TrustError::Signatures { .. }), "{e}");

        // A rolled-back version.
        let old = targets(1, 365, &tag("v2", b"m2"), &[], &repo.owner.targets, now()).unwrap();
        let e = repo.push(vec![("targets", old)]).unwrap_err();
        assert_eq!(
            e,
            TrustError::OldVersion {
                role: "targets".into(),
                current: 2,
                sent: 1
            }
        );

        // Expired.
        let expired = targets(3, -1, &tag("v2", b"m2"), &[], &repo.owner.targets, now()).unwrap();
        let e = repo.push(vec![("targets", expired)]).unwrap_err();
        assert!(matches!(e, TrustError::Expired { .. }), "{e}");

        // A signature over other content (tampered after signing).
        let good = targets(3, 365, &tag("v2", b"m2"), &[], &repo.owner.targets, now()).unwrap();
        let tampered = String::from_utf8(good).unwrap().replace("\"v2\"", "\"v3\"");
        let e = repo
            .push(vec![("targets", tampered.into_bytes())])
            .unwrap_err();
        assert!(matches!(e, TrustError::Signatures { .. }), "{e}");

        // A root that is not signed by the current root keys.
        let usurper = Publisher::generate().unwrap();
        let r2 = usurper
            .root(2, 365, &repo.ts[0].public(), &repo.snap[0].public(), now())
            .unwrap();
        let e = repo.push(vec![("root", r2)]).unwrap_err();
        assert!(matches!(e, TrustError::Signatures { .. }), "{e}");

        assert_eq!(*repo.files.borrow(), before);
    }

    #[test]
    fn delegations_sign_only_their_paths() {
        let repo = Repo::new();
        let alice = PrivateKey::generate().unwrap();
        let alice_pub = alice.public();
        let t = targets(
            1,
            365,
            &BTreeMap::new(),
            &[Delegate {
                name: "targets/releases",
                key: &alice_pub,
                paths: vec!["v".into()],
            }],
            &repo.owner.targets,
            now(),
        )
        .unwrap();
        repo.push(vec![("root", repo.root(1)), ("targets", t)])
            .unwrap();

        let inside = targets(1, 365, &tag("v1", b"m1"), &[], &alice, now()).unwrap();
        repo.push(vec![("targets/releases", inside)]).unwrap();

        let outside = targets(2, 365, &tag("latest", b"m2"), &[], &alice, now()).unwrap();
        let e = repo.push(vec![("targets/releases", outside)]).unwrap_err();
        assert_eq!(
            e,
            TrustError::OutsideDelegation {
                role: "targets/releases".into(),
                target: "latest".into()
            }
        );

        let undelegated = targets(1, 365, &tag("v1", b"m1"), &[], &alice, now()).unwrap();
        let e = repo.push(vec![("targets/bob", undelegated)]).unwrap_err();
        assert!(matches!(e, TrustError::Hierarchy { .. }), "{e}");

        let files = repo.files.borrow().clone();
        let v = crate::resolve::Verified::check(&files, now()).unwrap();
        let found = v.lookup("v1");
        assert_eq!(found[0].role, "targets/releases");
        assert_eq!(found[0].signers[0].id(), alice_pub.id());
        // The snapshot pins the delegation.
        let snap: crate::metadata::Envelope = serde_json::from_slice(&files["snapshot"]).unwrap();
        assert!(snap.signed["meta"].get("targets/releases").is_some());
    }

    #[test]
    fn a_client_snapshot_must_pin_the_result() {
        let repo = Repo::new();
        let root = repo.root(1);
        let t = targets(1, 365, &tag("v1", b"m1"), &[], &repo.owner.targets, now()).unwrap();
        let snapshot = |pinned_targets: &[u8], version: u64| {
            let meta = BTreeMap::from([
                ("root".to_string(), FileMeta::of(&root)),
                ("targets".to_string(), FileMeta::of(pinned_targets)),
            ]);
            sign(
                serde_json::json!({"_type": "Snapshot", "version": version,
                    "expires": expiry_in(now(), 30), "meta": meta}),
                &[&repo.snap[0]],
            )
            .unwrap()
        };
        let e = repo
            .push(vec![
                ("root", root.clone()),
                ("targets", t.clone()),
                ("snapshot", snapshot(b"other", 1)),
            ])
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("does not pin the current targets metadata"),
            "{e}"
        );
        assert!(repo.files.borrow().is_empty());
        let writes = repo
            .push(vec![
                ("root", root.clone()),
                ("targets", t.clone()),
                ("snapshot", snapshot(&t, 1)),
            ])
            .unwrap();
        assert_eq!(writes.len(), 4);
        assert_eq!(repo.files.borrow()["snapshot"], snapshot_bytes(&writes));
    }

    fn snapshot_bytes(writes: &[Write]) -> Vec<u8> {
        writes
            .iter()
            .find(|w| w.role == "snapshot")
            .map(|w| w.bytes.clone())
            .unwrap()
    }

    #[test]
    fn root_rotation_needs_both_roots() {
        let repo = Repo::new();
        let t = targets(1, 365, &tag("v1", b"m1"), &[], &repo.owner.targets, now()).unwrap();
        repo.push(vec![("root", repo.root(1)), ("targets", t)])
            .unwrap();
        // Same root again: accepted, nothing rewritten but snapshot/timestamp.
        let w = repo.push(vec![("root", repo.root(1))]);
        // A re-signed v1 differs in bytes (ECDSA is randomised): refused.
        assert!(matches!(w, Err(TrustError::OldVersion { .. })), "{w:?}");
        let w = repo.push(vec![("root", repo.root(2))]).unwrap();
        assert_eq!(w[0].role, "root");
        assert_eq!(w[0].version, 2);
        let w = repo.push(vec![("root", repo.root(4))]);
        assert!(matches!(w, Err(TrustError::OldVersion { .. })), "{w:?}");
    }
}
