//! The roles' documents and the checks every signed role goes through:
//! its type, signatures against the keys and threshold its parent names,
//! and its expiry.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256, Sha512};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::canonical;
use crate::error::TrustError;
use crate::keys::{b64, PublicKey};

/// A signed document: `{"signed": {...}, "signatures": [...]}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Envelope {
    /// What the signatures cover (in canonical form).
    pub signed: serde_json::Value,
    /// The signatures.
    pub signatures: Vec<Signature>,
}

/// One signature.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Signature {
    /// The id of the key that made it.
    pub keyid: String,
    /// `ecdsa`, `ed25519`, `rsapss`, `rsapkcs1v15`.
    pub method: String,
    /// The signature, base64.
    #[serde(with = "b64")]
    pub sig: Vec<u8>,
}

/// Fields every role has.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Common {
    /// `Root`, `Targets`, `Snapshot` or `Timestamp`.
    #[serde(rename = "_type")]
    pub kind: String,
    /// Increases with every change.
    pub version: u64,
    /// RFC 3339.
    pub expires: String,
}

/// The keys and threshold of a top-level role.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoleKeys {
    /// Ids of the keys that may sign it.
    pub keyids: Vec<String>,
    /// How many of them must.
    pub threshold: u32,
}

/// `root.json`'s signed part.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Root {
    /// Type, version, expiry.
    #[serde(flatten)]
    pub common: Common,
    /// Every key of the top-level roles, by id.
    pub keys: BTreeMap<String, PublicKey>,
    /// `root`, `targets`, `snapshot`, `timestamp`.
    pub roles: BTreeMap<String, RoleKeys>,
    /// Whether clients fetch by checksum.
    #[serde(default)]
    pub consistent_snapshot: bool,
}

/// One delegation of a targets role.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Delegation {
    /// `<parent>/<name>`.
    pub name: String,
    /// Keys that may sign it.
    pub keyids: Vec<String>,
    /// How many must.
    pub threshold: u32,
    /// Target name prefixes it may sign (`""` is every name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// Or: hex prefixes of the SHA-256 of the target names it may sign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hash_prefixes: Option<Vec<String>>,
}

impl Delegation {
    /// Whether the delegation covers target `name`.
    pub fn covers(&self, name: &str) -> bool {
        if let Some(paths) = &self.paths {
            if paths.iter().any(|p| name.starts_with(p.as_str())) {
                return true;
            }
        }
        if let Some(prefixes) = &self.path_hash_prefixes {
            let h = hex::encode(Sha256::digest(name.as_bytes()));
            return prefixes.iter().any(|p| h.starts_with(p.as_str()));
        }
        false
    }
}

/// A targets role's delegations.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Delegations {
    /// Keys of the delegated roles, by id.
    #[serde(default)]
    pub keys: BTreeMap<String, PublicKey>,
    /// The delegated roles, in priority order.
    #[serde(default)]
    pub roles: Vec<Delegation>,
}

/// The length and hashes of a file (a target or a role's metadata).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    /// Bytes.
    pub length: u64,
    /// `sha256`, `sha512`: digest, base64.
    pub hashes: BTreeMap<String, Hash>,
    /// Free-form data a client attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<serde_json::Value>,
}

/// A digest as TUF writes it (base64).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hash(#[serde(with = "b64")] pub Vec<u8>);

impl FileMeta {
    /// The length and SHA-256 and SHA-512 digests of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        let mut hashes = BTreeMap::new();
        hashes.insert("sha256".into(), Hash(Sha256::digest(bytes).to_vec()));
        hashes.insert("sha512".into(), Hash(Sha512::digest(bytes).to_vec()));
        Self {
            length: bytes.len() as u64,
            hashes,
            custom: None,
        }
    }

    /// Whether `bytes` match: same length, and every SHA-256 or SHA-512
    /// digest named matches (at least one must be named).
    pub fn matches(&self, bytes: &[u8]) -> bool {
        if self.length != bytes.len() as u64 {
            return false;
        }
        let mut checked = false;
        for (alg, h) in &self.hashes {
            let ok = match alg.as_str() {
                "sha256" => Sha256::digest(bytes).as_slice() == h.0.as_slice(),
                "sha512" => Sha512::digest(bytes).as_slice() == h.0.as_slice(),
                _ => continue,
            };
            if !ok {
                return false;
            }
            checked = true;
        }
        checked
    }

    /// The SHA-256 digest as hex, when named.
    pub fn sha256_hex(&self) -> Option<String> {
        self.hashes.get("sha256").map(|h| hex::encode(&h.0))
    }
}

/// A targets role's signed part (`targets` and every delegation).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Targets {
    /// Type, version, expiry.
    #[serde(flatten)]
    pub common: Common,
    /// Target name (a tag) → its manifest's length and digest.
    #[serde(default)]
    pub targets: BTreeMap<String, FileMeta>,
    /// Roles this one delegates to.
    #[serde(default)]
    pub delegations: Delegations,
}

/// `snapshot.json` and `timestamp.json`'s signed part.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pins {
    /// Type, version, expiry.
    #[serde(flatten)]
    pub common: Common,
    /// Role → length and hashes of its current metadata.
    pub meta: BTreeMap<String, FileMeta>,
}

/// One role's metadata as stored: its exact bytes and what they say.
#[derive(Clone, Debug)]
pub struct RoleFile<T> {
    /// The role.
    pub role: String,
    /// The bytes as published (what hashes cover).
    pub bytes: Vec<u8>,
    /// The envelope.
    pub envelope: Envelope,
    /// The signed part.
    pub body: T,
}

impl<T: DeserializeOwned> RoleFile<T> {
    /// Parses `bytes` as role `role`'s metadata of type `kind`.
    pub fn parse(role: &str, kind: &str, bytes: &[u8]) -> Result<Self, TrustError> {
        let envelope: Envelope = serde_json::from_slice(bytes)
            .map_err(|e| TrustError::malformed(role, format!("not a signed document: {e}")))?;
        let body: T = serde_json::from_value(envelope.signed.clone())
            .map_err(|e| TrustError::malformed(role, e.to_string()))?;
        let found = envelope
            .signed
            .get("_type")
            .and_then(|t| t.as_str())
            .unwrap_or_default();
        if found != kind {
            return Err(TrustError::malformed(
                role,
                format!("_type is {found:?}; {role} must be {kind:?}"),
            ));
        }
        Ok(Self {
            role: role.into(),
            bytes: bytes.to_vec(),
            envelope,
            body,
        })
    }
}

/// What a signed role's version and expiry are.
pub trait Versioned {
    /// Its common fields.
    fn common(&self) -> &Common;
}

impl Versioned for Root {
    fn common(&self) -> &Common {
        &self.common
    }
}
impl Versioned for Targets {
    fn common(&self) -> &Common {
        &self.common
    }
}
impl Versioned for Pins {
    fn common(&self) -> &Common {
        &self.common
    }
}

impl<T: Versioned> RoleFile<T> {
    /// The version.
    pub fn version(&self) -> u64 {
        self.body.common().version
    }

    /// Refuses expired metadata.
    pub fn check_expiry(&self, now: OffsetDateTime) -> Result<(), TrustError> {
        let raw = &self.body.common().expires;
        let at = OffsetDateTime::parse(raw, &Rfc3339).map_err(|e| {
            TrustError::malformed(&self.role, format!("expires {raw:?} is not RFC 3339: {e}"))
        })?;
        if at <= now {
            return Err(TrustError::Expired {
                role: self.role.clone(),
                expires: raw.clone(),
            });
        }
        Ok(())
    }

    /// Checks the signatures against `keys` (the parent's key map),
    /// `keyids` and `threshold`; answers the ids of the keys whose
    /// signatures verify.
    pub fn verify(
        &self,
        keys: &BTreeMap<String, PublicKey>,
        keyids: &[String],
        threshold: u32,
    ) -> Result<Vec<String>, TrustError> {
        verify_signatures(&self.role, &self.envelope, keys, keyids, threshold)
    }
}

/// Checks an envelope's signatures: at least `threshold` distinct keys of
/// `keyids` (each found in `keys`, under its true id) must have signed
/// the canonical form of `signed`.
pub fn verify_signatures(
    role: &str,
    envelope: &Envelope,
    keys: &BTreeMap<String, PublicKey>,
    keyids: &[String],
    threshold: u32,
) -> Result<Vec<String>, TrustError> {
    if threshold < 1 {
        return Err(TrustError::hierarchy(role, "threshold must be at least 1"));
    }
    if envelope.signatures.is_empty() {
        return Err(TrustError::signatures(role, "the metadata is not signed"));
    }
    let msg = canonical::to_vec(&envelope.signed)
        .map_err(|e| TrustError::malformed(role, e.to_string()))?;
    let mut valid = BTreeSet::new();
    let mut refused = Vec::new();
    for s in &envelope.signatures {
        if !keyids.contains(&s.keyid) {
            continue;
        }
        let Some(key) = keys.get(&s.keyid) else {
            continue;
        };
        if key.id() != s.keyid {
            return Err(TrustError::Key {
                key_id: s.keyid.clone(),
                reason: format!("the key listed under this id has id {}", key.id()),
            });
        }
        match key.verify(&s.method, &msg, &s.sig) {
            Ok(()) => {
                valid.insert(s.keyid.clone());
            }
            Err(e) => refused.push(e.to_string()),
        }
    }
    if (valid.len() as u64) < u64::from(threshold) {
        let mut reason = format!(
            "{} valid signature(s) from the role's keys, {threshold} required",
            valid.len()
        );
        if !refused.is_empty() {
            reason.push_str(&format!(" ({})", refused.join("; ")));
        }
        return Err(TrustError::signatures(role, reason));
    }
    Ok(valid.into_iter().collect())
}

/// Writes `signed` into an envelope signed by `key` (as a server signs
/// timestamps and snapshots, and as tests sign).
pub fn sign(
    signed: serde_json::Value,
    keys: &[&crate::keys::PrivateKey],
) -> Result<Vec<u8>, TrustError> {
    let msg = canonical::to_vec(&signed).map_err(|e| TrustError::malformed("", e.to_string()))?;
    let mut signatures = Vec::new();
    for key in keys {
        signatures.push(Signature {
            keyid: key.public().id(),
            method: "ecdsa".into(),
            sig: key.sign(&msg).map_err(|e| TrustError::Key {
                key_id: key.public().id(),
                reason: e.to_string(),
            })?,
        });
    }
    serde_json::to_vec(&Envelope { signed, signatures })
        .map_err(|e| TrustError::malformed("", e.to_string()))
}

/// Like [`sign`] with one key, whose signature names `keyid` (the id of
/// the form root.json lists it in, e.g. its certificate).
pub fn sign_as(
    signed: serde_json::Value,
    key: &crate::keys::PrivateKey,
    keyid: &str,
) -> Result<Vec<u8>, TrustError> {
    let msg = canonical::to_vec(&signed).map_err(|e| TrustError::malformed("", e.to_string()))?;
    let sig = key.sign(&msg).map_err(|e| TrustError::Key {
        key_id: keyid.to_string(),
        reason: e.to_string(),
    })?;
    let signatures = vec![Signature {
        keyid: keyid.to_string(),
        method: "ecdsa".into(),
        sig,
    }];
    serde_json::to_vec(&Envelope { signed, signatures })
        .map_err(|e| TrustError::malformed("", e.to_string()))
}

/// `now + days` as TUF writes expiry (RFC 3339, whole seconds, UTC).
pub fn expiry_in(now: OffsetDateTime, days: i64) -> String {
    let at = (now + time::Duration::days(days))
        .replace_nanosecond(0)
        .unwrap_or(now);
    at.format(&Rfc3339).unwrap_or_default()
}
