//! A minimal TUF publisher: what a client such as the docker CLI writes
//! when it signs tags. The benchmark and tests publish with it; it signs
//! with ECDSA P-256 keys only.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::error::TrustError;
use crate::keys::{PrivateKey, PublicKey};
use crate::metadata::{expiry_in, sign, sign_as, Delegation, Delegations, FileMeta};

/// Keys of a repository's client-held roles.
pub struct Publisher {
    /// Signs root.
    pub root: PrivateKey,
    /// Root's public key as root.json names it: by default the plain
    /// `ecdsa` key; Notary's own server wants an `ecdsa-x509` certificate
    /// of the key whose CN is the GUN ([`Publisher::with_root_certificate`]).
    pub root_public: PublicKey,
    /// Signs targets.
    pub targets: PrivateKey,
}

/// A delegation to write into a targets role.
pub struct Delegate<'a> {
    /// `targets/<name>`.
    pub name: &'a str,
    /// Its key.
    pub key: &'a PublicKey,
    /// Paths it may sign.
    pub paths: Vec<String>,
}

impl Publisher {
    /// Fresh keys.
    pub fn generate() -> Result<Self, crate::keys::KeyError> {
        let root = PrivateKey::generate()?;
        Ok(Self {
            root_public: root.public(),
            root,
            targets: PrivateKey::generate()?,
        })
    }

    /// Names the root key by `cert_pem`, a certificate of [`Self::root`]'s
    /// public key.
    pub fn with_root_certificate(mut self, cert_pem: &str) -> Self {
        self.root_public = PublicKey::new(
            crate::keys::keytype::ECDSA_X509,
            cert_pem.as_bytes().to_vec(),
        );
        self
    }

    /// `root.json` naming these keys and the server's `timestamp` and
    /// `snapshot` keys, expiring in `days`.
    pub fn root(
        &self,
        version: u64,
        days: i64,
        timestamp: &PublicKey,
        snapshot: &PublicKey,
        now: OffsetDateTime,
    ) -> Result<Vec<u8>, TrustError> {
        let mut keys = BTreeMap::new();
        let mut roles = serde_json::Map::new();
        for (name, key) in [
            ("root", self.root_public.clone()),
            ("targets", self.targets.public()),
            ("timestamp", timestamp.clone()),
            ("snapshot", snapshot.clone()),
        ] {
            roles.insert(
                name.into(),
                serde_json::json!({"keyids": [key.id()], "threshold": 1}),
            );
            keys.insert(key.id(), key);
        }
        sign_as(
            serde_json::json!({
                "_type": "Root",
                "version": version,
                "expires": expiry_in(now, days),
                "keys": keys,
                "roles": roles,
                "consistent_snapshot": false,
            }),
            &self.root,
            &self.root_public.id(),
        )
    }
}

/// A targets role (`targets` or a delegation) listing `targets` and
/// delegating to `delegates`, signed by `key`.
pub fn targets(
    version: u64,
    days: i64,
    targets: &BTreeMap<String, FileMeta>,
    delegates: &[Delegate<'_>],
    key: &PrivateKey,
    now: OffsetDateTime,
) -> Result<Vec<u8>, TrustError> {
    let mut delegations = Delegations::default();
    for d in delegates {
        delegations.keys.insert(d.key.id(), d.key.clone());
        delegations.roles.push(Delegation {
            name: d.name.into(),
            keyids: vec![d.key.id()],
            threshold: 1,
            paths: Some(d.paths.clone()),
            path_hash_prefixes: None,
        });
    }
    sign(
        serde_json::json!({
            "_type": "Targets",
            "version": version,
            "expires": expiry_in(now, days),
            "targets": targets,
            "delegations": delegations,
        }),
        &[key],
    )
}
