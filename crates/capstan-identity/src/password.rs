//! Password hashing with Argon2id.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::Rng;

/// A password could not be hashed or checked.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The password breaks the password policy.
    #[error("{0}")]
    Policy(String),
    /// A stored hash is not a valid PHC string.
    #[error("stored password hash is not valid: {0}")]
    BadHash(String),
    /// Hashing failed.
    #[error("could not hash password: {0}")]
    Hash(String),
}

/// Hashes a new password (after checking the policy) into a PHC string.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    capstan_core::user::validate_password(password).map_err(PasswordError::Policy)?;
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Checks a password against a stored PHC hash.
pub fn verify_password(password: &str, phc: &str) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(phc).map_err(|e| PasswordError::BadHash(e.to_string()))?;
    Ok(Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}

/// A random 24-character password for generated admin accounts.
pub fn generate_password() -> String {
    const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rngs::OsRng;
    (0..24)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h).unwrap());
        assert!(!verify_password("wrong horse!", &h).unwrap());
    }

    #[test]
    fn policy_and_bad_hash() {
        assert!(matches!(
            hash_password("short"),
            Err(PasswordError::Policy(_))
        ));
        assert!(matches!(
            verify_password("whatever1", "not-a-hash"),
            Err(PasswordError::BadHash(_))
        ));
    }

    #[test]
    fn generated_passwords_pass_policy_and_differ() {
        let (a, b) = (generate_password(), generate_password());
        assert_eq!(a.len(), 24);
        assert_ne!(a, b);
        assert!(capstan_core::user::validate_password(&a).is_ok());
    }
}
