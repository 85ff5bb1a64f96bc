//! Identity: local accounts and their passwords.
//!
//! Architecture invariant: passwords exist here only long enough to be hashed
//! or verified; nothing outside this crate sees or stores them.

pub mod password;

pub use password::{generate_password, hash_password, verify_password, PasswordError};
