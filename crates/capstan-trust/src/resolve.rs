//! Which digest a tag is signed as, and by which keys: what a client
//! checks before it runs an image. Root must be signed by its own keys,
//! `targets` by the keys root names, and each delegation by the keys its
//! parent names, and none may have expired. A delegation that fails its
//! checks is skipped (its targets count for nothing), as clients do.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::error::TrustError;
use crate::keys::PublicKey;
use crate::metadata::{FileMeta, RoleFile, Root, Targets};
use crate::role;

/// A tag as one verified role signs it.
#[derive(Clone, Debug)]
pub struct SignedTag {
    /// The role that lists it.
    pub role: String,
    /// Its manifest's length and digests.
    pub meta: FileMeta,
    /// The keys whose signatures on that role verified.
    pub signers: Vec<PublicKey>,
}

/// A repository's verified targets roles.
#[derive(Debug, Default)]
pub struct Verified {
    roles: Vec<(RoleFile<Targets>, Vec<PublicKey>)>,
    /// Delegations skipped, with why.
    pub skipped: Vec<TrustError>,
}

impl Verified {
    /// Checks the metadata in `files` (role → bytes: root, targets and
    /// any delegations), at time `now`.
    pub fn check(
        files: &BTreeMap<String, Vec<u8>>,
        now: OffsetDateTime,
    ) -> Result<Self, TrustError> {
        let get = |name: &str| {
            files.get(name).ok_or_else(|| TrustError::NotFound {
                role: name.to_string(),
            })
        };
        let root = RoleFile::<Root>::parse(role::ROOT, "Root", get(role::ROOT)?)?;
        let rk = root
            .body
            .roles
            .get(role::ROOT)
            .ok_or_else(|| TrustError::hierarchy(role::ROOT, "names no root keys"))?;
        root.verify(&root.body.keys, &rk.keyids, rk.threshold)?;
        root.check_expiry(now)?;
        let tk = root
            .body
            .roles
            .get(role::TARGETS)
            .ok_or_else(|| TrustError::hierarchy(role::ROOT, "names no targets keys"))?;
        let targets = RoleFile::<Targets>::parse(role::TARGETS, "Targets", get(role::TARGETS)?)?;
        let valid = targets.verify(&root.body.keys, &tk.keyids, tk.threshold)?;
        targets.check_expiry(now)?;
        let signers = valid
            .iter()
            .filter_map(|id| root.body.keys.get(id).cloned())
            .collect();
        let mut out = Self::default();
        let mut queue = vec![(targets, signers)];
        while let Some((file, signers)) = queue.pop() {
            for d in &file.body.delegations.roles {
                let Some(bytes) = files.get(&d.name) else {
                    continue;
                };
                let checked = RoleFile::<Targets>::parse(&d.name, "Targets", bytes).and_then(|c| {
                    let valid = c.verify(&file.body.delegations.keys, &d.keyids, d.threshold)?;
                    c.check_expiry(now)?;
                    Ok((c, valid))
                });
                match checked {
                    Ok((mut child, valid)) => {
                        child.body.targets.retain(|name, _| d.covers(name));
                        let keys = valid
                            .iter()
                            .filter_map(|id| file.body.delegations.keys.get(id).cloned())
                            .collect();
                        queue.push((child, keys));
                    }
                    Err(e) => out.skipped.push(e),
                }
            }
            out.roles.push((file, signers));
        }
        Ok(out)
    }

    /// Every verified role that lists `tag`: `targets/releases` first, then
    /// `targets`, then other delegations by name.
    pub fn lookup(&self, tag: &str) -> Vec<SignedTag> {
        let mut found: Vec<SignedTag> = self
            .roles
            .iter()
            .filter_map(|(file, signers)| {
                file.body.targets.get(tag).map(|meta| SignedTag {
                    role: file.role.clone(),
                    meta: meta.clone(),
                    signers: signers.clone(),
                })
            })
            .collect();
        let rank = |r: &str| match r {
            role::RELEASES => 0,
            role::TARGETS => 1,
            _ => 2,
        };
        found.sort_by(|a, b| {
            rank(&a.role)
                .cmp(&rank(&b.role))
                .then_with(|| a.role.cmp(&b.role))
        });
        found
    }

    /// Every verified role that lists a target whose manifest has SHA-256
    /// `hex`, whatever its tag, in the order of [`Self::lookup`].
    pub fn lookup_digest(&self, hex: &str) -> Vec<SignedTag> {
        let mut tags: Vec<&String> = self
            .roles
            .iter()
            .flat_map(|(f, _)| f.body.targets.iter())
            .filter(|(_, m)| m.sha256_hex().as_deref() == Some(hex))
            .map(|(name, _)| name)
            .collect();
        tags.sort();
        tags.dedup();
        tags.into_iter()
            .flat_map(|t| self.lookup(t))
            .filter(|s| s.meta.sha256_hex().as_deref() == Some(hex))
            .collect()
    }

    /// The roles that were verified.
    pub fn role_names(&self) -> Vec<&str> {
        self.roles.iter().map(|(f, _)| f.role.as_str()).collect()
    }
}

/// The delegations a targets role's metadata names (to fetch them next).
pub fn delegated_roles(bytes: &[u8]) -> Vec<String> {
    serde_json::from_slice::<crate::metadata::Envelope>(bytes)
        .ok()
        .and_then(|e| serde_json::from_value::<Targets>(e.signed).ok())
        .map(|t| t.delegations.roles.into_iter().map(|d| d.name).collect())
        .unwrap_or_default()
}
