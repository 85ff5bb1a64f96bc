//! Secrets at rest: secret data is sealed with the cluster's secret key
//! (ChaCha20-Poly1305) before it enters the Raft log, and opened only to be
//! handed to the agent of a node that runs a task using it.

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;

use crate::error::ManagerError;

const NONCE_LEN: usize = 12;

/// The cluster's secret-sealing key (32 bytes), kept by every manager.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// A new random key.
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        Self(k)
    }

    /// The raw key, for writing to disk or sending to a joining manager.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A key from its raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ManagerError> {
        let k: [u8; 32] = bytes.try_into().map_err(|_| {
            ManagerError::Invalid(format!("secret key must be 32 bytes, not {}", bytes.len()))
        })?;
        Ok(Self(k))
    }

    /// Reads the key file of a manager's data directory.
    pub fn load(path: &Path) -> Result<Self, ManagerError> {
        let bytes = std::fs::read(path).map_err(|e| ManagerError::file("read", path, e))?;
        Self::from_bytes(&bytes).map_err(|_| ManagerError::BadConfig {
            path: path.to_path_buf(),
            reason: "the secret key file must hold exactly 32 bytes".into(),
        })
    }

    /// Seals `plain` as nonce || ciphertext.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&self.0));
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut out = nonce.to_vec();
        out.extend(
            cipher
                .encrypt(Nonce::from_slice(&nonce), plain)
                .expect("ChaCha20-Poly1305 encryption does not fail for in-memory data"),
        );
        out
    }

    /// Opens what [`SecretKey::seal`] made; refuses tampered or foreign data.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, ManagerError> {
        if sealed.len() < NONCE_LEN {
            return Err(ManagerError::Invalid("sealed secret is truncated".into()));
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        ChaCha20Poly1305::new(Key::from_slice(&self.0))
            .decrypt(Nonce::from_slice(nonce), body)
            .map_err(|_| {
                ManagerError::Invalid(
                    "a sealed secret does not open with this cluster's key (tampered or from another cluster)".into(),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_refuse_tampering() {
        let k = SecretKey::generate();
        let sealed = k.seal(b"db-password");
        assert!(!sealed.windows(11).any(|w| w == b"db-password"));
        assert_eq!(k.open(&sealed).unwrap(), b"db-password");
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(k.open(&bad).is_err());
        assert!(SecretKey::generate().open(&sealed).is_err());
        assert!(k.open(b"short").is_err());
    }
}
