//! Content trust: the registry is also the repositories' Notary v1 trust
//! server, on its own host and port (where the docker CLI looks for it
//! with `DOCKER_CONTENT_TRUST=1`), under `/v2/<gun>/_trust/tuf/`.
//!
//! A GUN is `<registry host>/<namespace>/<repository>`; permissions are
//! those of the repository: pull to read trust data, push to publish it or
//! fetch the server's keys, admin (`*`) to rotate those keys or delete the
//! trust data. Every update is checked by [`capstan_trust::update`] and
//! written whole, in one batch, or not at all. The server holds each
//! repository's timestamp and snapshot keys and signs those roles.
//!
//! Storage (trees of the registry's metadata database):
//! - `trust`: `<gun>\0c\0<role>` → current bytes; `<gun>\0v\0<role>\0<version>`
//!   → every version; `<gun>\0h\0<role>\0<hex digest>` → bytes by SHA-256
//!   and SHA-512.
//! - `trust_keys`: `<gun>\0<role>` → the server's keys (PKCS#8, base64, newest last).
//! - `trust_repos`: `<namespace/repository>\0<gun>` → the GUNs of a repository.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use capstan_trust::resolve::{delegated_roles, Verified};
use capstan_trust::update::{self, ServerKeys, Write};
use capstan_trust::{role, PrivateKey, PublicKey, TrustError};
use sha2::{Digest as _, Sha256, Sha512};
use time::OffsetDateTime;

use crate::error::{RegistryError, RegistryResult};
use crate::names::{Gun, RepoName};

/// A repository's trust data and server keys.
pub struct TrustStore {
    data: sled::Tree,
    keys: sled::Tree,
    repos: sled::Tree,
    /// One update (or timestamp renewal, key change) per GUN at a time,
    /// so each is checked against the state it replaces.
    locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

fn k(parts: &[&str]) -> Vec<u8> {
    parts.join("\0").into_bytes()
}

fn version_key(gun: &str, role: &str, version: u64) -> Vec<u8> {
    k(&[gun, "v", role, &format!("{version:020}")])
}

/// A trust refusal in Notary's error shape: `INVALID_UPDATE` with the
/// validation error its client decodes and shows.
pub fn invalid_update(e: &TrustError) -> RegistryError {
    let name = match (e, e.role()) {
        (TrustError::Hierarchy { .. }, _) => "ErrBadHierarchy",
        (_, Some(role::ROOT)) => "ErrBadRoot",
        (_, Some(role::SNAPSHOT)) => "ErrBadSnapshot",
        (_, Some(r)) if r == role::TARGETS || capstan_trust::is_delegation(r) => "ErrBadTargets",
        _ => "ErrValidation",
    };
    let msg = e.to_string();
    let error = if name == "ErrBadHierarchy" {
        serde_json::json!({"Missing": e.role().unwrap_or_default(), "Msg": msg})
    } else {
        serde_json::json!({"Msg": msg})
    };
    let (status, code) = match e {
        TrustError::OldVersion { .. } => (axum::http::StatusCode::BAD_REQUEST, "VERSION"),
        _ => (axum::http::StatusCode::BAD_REQUEST, "INVALID_UPDATE"),
    };
    RegistryError::new(status, code, format!("trust data refused: {msg}"))
        .with_detail(serde_json::json!({"Name": name, "Error": error}))
}

/// How a tag stands in a repository's trust data.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TagTrust {
    /// Whether some verified role signs the tag.
    pub signed: bool,
    /// Whether a signed digest differs from the tag's digest in the
    /// registry.
    pub hash_mismatch: bool,
    /// The roles that sign it (`targets` is the repository key;
    /// `targets/<name>` a signer).
    pub roles: Vec<String>,
}

impl TrustStore {
    /// Opens the trees in the registry's database.
    pub fn open(db: &sled::Db) -> RegistryResult<Self> {
        Ok(Self {
            data: db.open_tree("trust")?,
            keys: db.open_tree("trust_keys")?,
            repos: db.open_tree("trust_repos")?,
            locks: std::sync::Mutex::default(),
        })
    }

    /// Waits for `gun`'s turn to change.
    async fn hold(&self, gun: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(gun.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// The current metadata of `role`.
    pub fn current(&self, gun: &str, role: &str) -> RegistryResult<Option<Vec<u8>>> {
        Ok(self.data.get(k(&[gun, "c", role]))?.map(|v| v.to_vec()))
    }

    /// Version `version` of `role`.
    pub fn version(&self, gun: &str, role: &str, version: u64) -> RegistryResult<Option<Vec<u8>>> {
        Ok(self
            .data
            .get(version_key(gun, role, version))?
            .map(|v| v.to_vec()))
    }

    /// The metadata of `role` whose SHA-256 or SHA-512 is `hex`.
    pub fn by_checksum(&self, gun: &str, role: &str, hex: &str) -> RegistryResult<Option<Vec<u8>>> {
        Ok(self
            .data
            .get(k(&[gun, "h", role, &hex.to_ascii_lowercase()]))?
            .map(|v| v.to_vec()))
    }

    fn snapshot_of(&self, gun: &str) -> impl Fn(&str) -> Option<Vec<u8>> + '_ {
        let gun = gun.to_string();
        move |role: &str| self.current(&gun, role).ok().flatten()
    }

    fn server_keys(&self, gun: &str, role: &str) -> RegistryResult<Vec<PrivateKey>> {
        let Some(raw) = self.keys.get(k(&[gun, role]))? else {
            return Ok(vec![]);
        };
        let list: Vec<String> = serde_json::from_slice(&raw).map_err(RegistryError::internal)?;
        list.iter()
            .map(|b| {
                let der = STANDARD.decode(b).map_err(RegistryError::internal)?;
                PrivateKey::from_pkcs8(&der).map_err(RegistryError::internal)
            })
            .collect()
    }

    fn add_key(&self, gun: &str, role: &str) -> RegistryResult<PublicKey> {
        let key = PrivateKey::generate().map_err(RegistryError::internal)?;
        let mut list: Vec<String> = match self.keys.get(k(&[gun, role]))? {
            Some(raw) => serde_json::from_slice(&raw).map_err(RegistryError::internal)?,
            None => vec![],
        };
        list.push(STANDARD.encode(key.pkcs8()));
        self.keys.insert(
            k(&[gun, role]),
            serde_json::to_vec(&list).map_err(RegistryError::internal)?,
        )?;
        Ok(key.public())
    }

    /// The server's newest key for `role` (timestamp or snapshot) of
    /// `gun`, made on first request.
    pub async fn key(&self, gun: &Gun, role: &str) -> RegistryResult<PublicKey> {
        let _held = self.hold(gun.as_str()).await;
        match self.server_keys(gun.as_str(), role)?.last() {
            Some(k) => Ok(k.public()),
            None => {
                let key = self.add_key(gun.as_str(), role)?;
                self.index(gun)?;
                Ok(key)
            }
        }
    }

    /// Makes a new server key for `role`; the old ones keep signing until
    /// a root naming the new one is published.
    pub async fn rotate(&self, gun: &Gun, role: &str) -> RegistryResult<PublicKey> {
        let _held = self.hold(gun.as_str()).await;
        self.index(gun)?;
        self.add_key(gun.as_str(), role)
    }

    fn index(&self, gun: &Gun) -> RegistryResult<()> {
        self.repos
            .insert(k(&[gun.repo().as_str(), gun.as_str()]), &[])?;
        Ok(())
    }

    /// Checks and stores an update: `parts` are (role, bytes) as uploaded.
    /// Answers the roles written.
    pub async fn publish(
        &self,
        gun: &Gun,
        parts: Vec<(String, Vec<u8>)>,
    ) -> RegistryResult<Vec<Write>> {
        let g = gun.as_str();
        let _held = self.hold(g).await;
        let ts = self.server_keys(g, role::TIMESTAMP)?;
        let snap = self.server_keys(g, role::SNAPSHOT)?;
        let keys = ServerKeys {
            timestamp: &ts,
            snapshot: &snap,
        };
        let writes = update::validate(
            &self.snapshot_of(g),
            parts,
            &keys,
            OffsetDateTime::now_utc(),
        )
        .map_err(|e| invalid_update(&e))?;
        self.write(g, &writes)?;
        self.index(gun)?;
        Ok(writes)
    }

    fn write(&self, gun: &str, writes: &[Write]) -> RegistryResult<()> {
        let mut batch = sled::Batch::default();
        for w in writes {
            batch.insert(k(&[gun, "c", &w.role]), w.bytes.as_slice());
            batch.insert(version_key(gun, &w.role, w.version), w.bytes.as_slice());
            for hex in [
                hex::encode(Sha256::digest(&w.bytes)),
                hex::encode(Sha512::digest(&w.bytes)),
            ] {
                batch.insert(k(&[gun, "h", &w.role, &hex]), w.bytes.as_slice());
            }
        }
        self.data.apply_batch(batch)?;
        Ok(())
    }

    /// The current timestamp, signed again first when it no longer pins
    /// the snapshot or is close to expiry.
    pub async fn timestamp(&self, gun: &Gun) -> RegistryResult<Option<Vec<u8>>> {
        let g = gun.as_str();
        if update::timestamp_is_current(&self.snapshot_of(g), OffsetDateTime::now_utc()) {
            return self.current(g, role::TIMESTAMP);
        }
        let _held = self.hold(g).await;
        let ts = self.server_keys(g, role::TIMESTAMP)?;
        let keys = ServerKeys {
            timestamp: &ts,
            snapshot: &[],
        };
        match update::refresh_timestamp(&self.snapshot_of(g), &keys, OffsetDateTime::now_utc()) {
            Ok(Some(w)) => {
                self.write(g, std::slice::from_ref(&w))?;
                Ok(Some(w.bytes))
            }
            Ok(None) => self.current(g, role::TIMESTAMP),
            Err(e) => {
                tracing::warn!(gun = g, error = %e, "cannot renew the timestamp");
                self.current(g, role::TIMESTAMP)
            }
        }
    }

    /// Deletes a repository's trust data (its server keys stay, so it can
    /// be published again).
    pub async fn delete(&self, gun: &Gun) -> RegistryResult<bool> {
        let _held = self.hold(gun.as_str()).await;
        let mut prefix = gun.as_str().as_bytes().to_vec();
        prefix.push(0);
        let mut batch = sled::Batch::default();
        let mut any = false;
        for item in self.data.scan_prefix(&prefix) {
            let (key, _) = item?;
            batch.remove(key);
            any = true;
        }
        self.data.apply_batch(batch)?;
        Ok(any)
    }

    /// Removes every GUN of a deleted repository.
    pub async fn forget_repository(&self, repo: &RepoName) -> RegistryResult<()> {
        for gun in self.guns(repo)? {
            if let Ok(g) = Gun::parse(&gun) {
                self.delete(&g).await?;
                let _held = self.hold(&gun).await;
                self.keys.remove(k(&[&gun, role::TIMESTAMP]))?;
                self.keys.remove(k(&[&gun, role::SNAPSHOT]))?;
            }
            self.repos.remove(k(&[repo.as_str(), &gun]))?;
        }
        Ok(())
    }

    /// The GUNs under which `repo` has trust data or server keys.
    pub fn guns(&self, repo: &RepoName) -> RegistryResult<Vec<String>> {
        let mut prefix = repo.as_str().as_bytes().to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        for item in self.repos.scan_prefix(&prefix) {
            let (key, _) = item?;
            out.push(String::from_utf8_lossy(&key[prefix.len()..]).into_owned());
        }
        Ok(out)
    }

    /// The verified targets roles of `gun`; `None` without trust data.
    pub fn verified(&self, gun: &str) -> RegistryResult<Option<Verified>> {
        let mut files = BTreeMap::new();
        let Some(root) = self.current(gun, role::ROOT)? else {
            return Ok(None);
        };
        files.insert(role::ROOT.to_string(), root);
        let mut queue = vec![role::TARGETS.to_string()];
        while let Some(name) = queue.pop() {
            if files.contains_key(&name) || files.len() > 1000 {
                continue;
            }
            if let Some(bytes) = self.current(gun, &name)? {
                queue.extend(delegated_roles(&bytes));
                files.insert(name, bytes);
            }
        }
        Ok(Verified::check(&files, OffsetDateTime::now_utc()).ok())
    }

    /// The verified trust data of every GUN of `repo`, read once to
    /// answer for many tags.
    pub fn repository(&self, repo: &RepoName) -> RepoTrust {
        RepoTrust(
            self.guns(repo)
                .unwrap_or_default()
                .iter()
                .filter_map(|gun| self.verified(gun).ok().flatten())
                .collect(),
        )
    }
}

/// A repository's verified trust data (see [`TrustStore::repository`]).
#[derive(Default)]
pub struct RepoTrust(Vec<Verified>);

impl RepoTrust {
    /// How `tag`, whose manifest is `digest`, stands.
    pub fn tag(&self, tag: &str, digest: &str) -> TagTrust {
        let mut out = TagTrust::default();
        for s in self.0.iter().flat_map(|v| v.lookup(tag)) {
            out.signed = true;
            let signed = s.meta.sha256_hex().map(|h| format!("sha256:{h}"));
            if signed.as_deref() != Some(digest) {
                out.hash_mismatch = true;
            }
            if !out.roles.contains(&s.role) {
                out.roles.push(s.role);
            }
        }
        out
    }
}
