//! The backup file: every object of the store at one Raft index, the
//! cluster CA and the secret-sealing key, sealed with a key derived from a
//! passphrase.
//!
//! Layout: the line `CAPSTAN-BACKUP`, one line of JSON [`Manifest`] (in the
//! clear, so a file can be identified and checked without the passphrase),
//! then the sealed [`Contents`]: XChaCha20-Poly1305 under an Argon2id key,
//! with the manifest line as associated data, so a changed manifest fails
//! to open as surely as changed contents.

use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use capstan_store::StoredObject;

/// The format this build writes and reads.
pub const FORMAT: u32 = 1;

const MAGIC: &[u8] = b"CAPSTAN-BACKUP\n";
/// A manifest line longer than this is not one.
const MAX_MANIFEST: usize = 64 * 1024;
/// Shortest passphrase accepted for a new backup.
pub const MIN_PASSPHRASE: usize = 8;

/// Argon2id cost of new backups: 64 MiB, three passes.
const M_COST_KIB: u32 = 64 * 1024;
const T_COST: u32 = 3;
/// Limits on the costs a file may ask for, so a crafted file cannot make a
/// restore allocate without bound.
const MAX_M_COST_KIB: u32 = 1024 * 1024;
const MAX_T_COST: u32 = 16;

/// Why a backup cannot be written or read. Every reading error is found
/// before anything is restored.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Not a Capstan backup at all.
    #[error("not a Capstan backup: {0}")]
    NotABackup(String),
    /// Written by a build whose format this one does not read.
    #[error("this backup has format {found} (written by Capstan {written_by}); this Capstan {ours} reads format {FORMAT}")]
    Incompatible {
        /// The file's format.
        found: u32,
        /// The version that wrote it.
        written_by: String,
        /// This build's version.
        ours: &'static str,
    },
    /// Shorter (or longer) than its manifest says.
    #[error("the backup is truncated or has extra bytes: its manifest names {expected} bytes of sealed data, the file holds {found}")]
    Truncated {
        /// Bytes the manifest names.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// The sealed data does not hash to the manifest's checksum.
    #[error("the backup's sealed data does not match its checksum (sha256 {expected} expected, {found} found): the file was changed or damaged")]
    Checksum {
        /// From the manifest.
        expected: String,
        /// Of the bytes read.
        found: String,
    },
    /// Authentication of the sealed data failed.
    #[error(
        "cannot open the backup: wrong passphrase, or the file was changed after it was written"
    )]
    Open,
    /// A passphrase too weak to seal with.
    #[error("the passphrase must be at least {MIN_PASSPHRASE} characters")]
    WeakPassphrase,
    /// The opened contents are not what the manifest describes.
    #[error("the backup's contents are inconsistent: {0}")]
    Inconsistent(String),
}

/// What a backup says about itself, readable without the passphrase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// File format.
    pub format: u32,
    /// Version of the Capstan that wrote it.
    pub capstan_version: String,
    /// The cluster backed up.
    pub cluster_id: String,
    /// The Raft index the objects are the state at.
    pub raft_index: u64,
    /// When it was written.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Number of objects inside.
    pub objects: u64,
    /// How the key was derived.
    pub kdf: Kdf,
    /// The cipher's nonce, hex.
    pub nonce: String,
    /// Length of the sealed data.
    pub sealed_bytes: u64,
    /// sha256 of the sealed data, hex.
    pub sealed_sha256: String,
    /// sha256 of the contents before sealing, hex.
    pub contents_sha256: String,
}

/// Argon2id parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kdf {
    /// Always `argon2id`.
    pub algorithm: String,
    /// Memory in KiB.
    pub m_cost: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
    /// Salt, hex.
    pub salt: String,
}

/// What a backup holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contents {
    /// The cluster CA certificate (PEM).
    pub ca_cert_pem: String,
    /// The cluster CA key (PEM).
    pub ca_key_pem: String,
    /// The secret-sealing key, base64.
    pub secret_key: String,
    /// Every object of the store.
    pub objects: Vec<StoredObject>,
}

impl Contents {
    /// The contents of a backup of these keys and objects.
    pub fn new(
        ca_cert_pem: String,
        ca_key_pem: String,
        secret_key: &[u8],
        objects: Vec<StoredObject>,
    ) -> Self {
        Self {
            ca_cert_pem,
            ca_key_pem,
            secret_key: base64::engine::general_purpose::STANDARD.encode(secret_key),
            objects,
        }
    }

    /// The secret-sealing key's bytes.
    pub fn secret_key_bytes(&self) -> Result<Vec<u8>, BackupError> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.secret_key)
            .map_err(|e| BackupError::Inconsistent(format!("secret key: {e}")))
    }
}

fn derive_key(passphrase: &str, kdf: &Kdf) -> Result<[u8; 32], BackupError> {
    if kdf.algorithm != "argon2id" {
        return Err(BackupError::NotABackup(format!(
            "key derivation {:?} is not argon2id",
            kdf.algorithm
        )));
    }
    if kdf.m_cost > MAX_M_COST_KIB || kdf.t_cost > MAX_T_COST || kdf.p_cost > 16 {
        return Err(BackupError::NotABackup(
            "key derivation costs beyond what Capstan writes".into(),
        ));
    }
    let salt = hex::decode(&kdf.salt)
        .map_err(|_| BackupError::NotABackup("the salt is not hex".into()))?;
    let params = Params::new(kdf.m_cost, kdf.t_cost, kdf.p_cost, Some(32))
        .map_err(|e| BackupError::NotABackup(format!("key derivation parameters: {e}")))?;
    let mut key = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), &salt, &mut key)
        .map_err(|e| BackupError::NotABackup(format!("key derivation: {e}")))?;
    Ok(key)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Seals `contents` into a backup file's bytes.
pub fn seal(
    contents: &Contents,
    cluster_id: &str,
    raft_index: u64,
    passphrase: &str,
) -> Result<Vec<u8>, BackupError> {
    if passphrase.chars().count() < MIN_PASSPHRASE {
        return Err(BackupError::WeakPassphrase);
    }
    let plain = serde_json::to_vec(contents)
        .map_err(|e| BackupError::Inconsistent(format!("encoding the contents: {e}")))?;
    let mut salt = [0u8; 16];
    let mut nonce = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let kdf = Kdf {
        algorithm: "argon2id".into(),
        m_cost: M_COST_KIB,
        t_cost: T_COST,
        p_cost: 1,
        salt: hex::encode(salt),
    };
    let key = derive_key(passphrase, &kdf)?;
    // The sealed length is known before sealing: the tag adds 16 bytes.
    let sealed_len = plain.len() as u64 + 16;
    let mut manifest = Manifest {
        format: FORMAT,
        capstan_version: capstan_core::version::VERSION.into(),
        cluster_id: cluster_id.into(),
        raft_index,
        created_at: OffsetDateTime::now_utc(),
        objects: contents.objects.len() as u64,
        kdf,
        nonce: hex::encode(nonce),
        sealed_bytes: sealed_len,
        sealed_sha256: String::new(),
        contents_sha256: sha256_hex(&plain),
    };
    // The checksum of the sealed data cannot be inside the associated data
    // it seals with; the associated data is the manifest without it.
    let aad = manifest_line(&manifest)?;
    let sealed = XChaCha20Poly1305::new(&key.into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &plain,
                aad: &aad,
            },
        )
        .map_err(|_| BackupError::Inconsistent("sealing failed".into()))?;
    manifest.sealed_sha256 = sha256_hex(&sealed);
    let line = manifest_line(&manifest)?;
    let mut out = Vec::with_capacity(MAGIC.len() + line.len() + sealed.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&line);
    out.extend_from_slice(&sealed);
    Ok(out)
}

fn manifest_line(manifest: &Manifest) -> Result<Vec<u8>, BackupError> {
    let mut line = serde_json::to_vec(manifest)
        .map_err(|e| BackupError::Inconsistent(format!("encoding the manifest: {e}")))?;
    line.push(b'\n');
    Ok(line)
}

/// Reads and checks a backup's manifest and finds its sealed part, without
/// the passphrase: format, length and checksum.
pub fn inspect(bytes: &[u8]) -> Result<(Manifest, &[u8]), BackupError> {
    let rest = bytes.strip_prefix(MAGIC).ok_or_else(|| {
        BackupError::NotABackup("the file does not start with CAPSTAN-BACKUP".into())
    })?;
    let end = rest
        .iter()
        .take(MAX_MANIFEST)
        .position(|&b| b == b'\n')
        .ok_or_else(|| BackupError::NotABackup("no manifest line".into()))?;
    let manifest: Manifest = serde_json::from_slice(&rest[..end])
        .map_err(|e| BackupError::NotABackup(format!("the manifest: {e}")))?;
    if manifest.format != FORMAT {
        return Err(BackupError::Incompatible {
            found: manifest.format,
            written_by: manifest.capstan_version.clone(),
            ours: capstan_core::version::VERSION,
        });
    }
    let sealed = &rest[end + 1..];
    if sealed.len() as u64 != manifest.sealed_bytes {
        return Err(BackupError::Truncated {
            expected: manifest.sealed_bytes,
            found: sealed.len() as u64,
        });
    }
    let found = sha256_hex(sealed);
    if found != manifest.sealed_sha256 {
        return Err(BackupError::Checksum {
            expected: manifest.sealed_sha256.clone(),
            found,
        });
    }
    Ok((manifest, sealed))
}

/// Opens a backup: checks everything [`inspect`] does, then opens the
/// sealed contents with the passphrase and checks them against the
/// manifest.
pub fn open(bytes: &[u8], passphrase: &str) -> Result<(Manifest, Contents), BackupError> {
    let (manifest, sealed) = inspect(bytes)?;
    let key = derive_key(passphrase, &manifest.kdf)?;
    let nonce = hex::decode(&manifest.nonce)
        .ok()
        .filter(|n| n.len() == 24)
        .ok_or_else(|| BackupError::NotABackup("the nonce is not 24 hex bytes".into()))?;
    let aad = manifest_line(&Manifest {
        sealed_sha256: String::new(),
        ..manifest.clone()
    })?;
    let plain = XChaCha20Poly1305::new(&key.into())
        .decrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: sealed,
                aad: &aad,
            },
        )
        .map_err(|_| BackupError::Open)?;
    if sha256_hex(&plain) != manifest.contents_sha256 {
        return Err(BackupError::Inconsistent(
            "the contents do not match their checksum".into(),
        ));
    }
    let contents: Contents = serde_json::from_slice(&plain)
        .map_err(|e| BackupError::Inconsistent(format!("the contents: {e}")))?;
    if contents.objects.len() as u64 != manifest.objects {
        return Err(BackupError::Inconsistent(format!(
            "the manifest names {} objects, the contents hold {}",
            manifest.objects,
            contents.objects.len()
        )));
    }
    contents.secret_key_bytes()?;
    Ok((manifest, contents))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents() -> Contents {
        Contents {
            ca_cert_pem: "CERT".into(),
            ca_key_pem: "KEY".into(),
            secret_key: base64::engine::general_purpose::STANDARD.encode([7u8; 32]),
            objects: vec![StoredObject {
                table: "users".into(),
                id: "u1".into(),
                version: 5,
                created_index: 3,
                value: b"{\"name\":\"eve\"}".to_vec(),
            }],
        }
    }

    /// `bytes` with the first `from` (in the manifest) made `to`.
    fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
        let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
        let mut out = bytes.to_vec();
        out[at..at + to.len()].copy_from_slice(to);
        out
    }

    #[test]
    fn round_trip() {
        let bytes = seal(&contents(), "c1", 42, "correct horse").unwrap();
        let (manifest, opened) = open(&bytes, "correct horse").unwrap();
        assert_eq!(opened, contents());
        assert_eq!(manifest.raft_index, 42);
        assert_eq!(manifest.cluster_id, "c1");
        assert_eq!(manifest.objects, 1);
    }

    #[test]
    fn refusals_name_the_problem() {
        let bytes = seal(&contents(), "c1", 42, "correct horse").unwrap();
        assert!(matches!(
            open(&bytes, "wrong horse!"),
            Err(BackupError::Open)
        ));
        assert!(matches!(
            open(&bytes[..bytes.len() - 1], "correct horse"),
            Err(BackupError::Truncated { .. })
        ));
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(
            open(&flipped, "correct horse"),
            Err(BackupError::Checksum { .. })
        ));
        // A manifest changed (and its checksum kept consistent) still fails
        // to open: it is the associated data.
        let changed = replace(&bytes, b"\"raft_index\":42", b"\"raft_index\":43");
        assert!(matches!(
            open(&changed, "correct horse"),
            Err(BackupError::Open)
        ));
        let newer = replace(&bytes, b"\"format\":1", b"\"format\":9");
        let err = open(&newer, "correct horse").unwrap_err();
        assert!(matches!(err, BackupError::Incompatible { found: 9, .. }));
        assert!(err.to_string().contains("format 9"), "{err}");
        assert!(matches!(
            open(b"PK\x03\x04 a zip", "correct horse"),
            Err(BackupError::NotABackup(_))
        ));
        assert!(matches!(
            seal(&contents(), "c1", 1, "short"),
            Err(BackupError::WeakPassphrase)
        ));
    }
}
