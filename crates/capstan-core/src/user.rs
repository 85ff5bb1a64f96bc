//! Accounts.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::table::Table;

/// A local account, stored in table `users` under its username.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Opaque account id made by the caller (e.g. a UUID string); stable
    /// across renames, and what grants name as their subject.
    pub id: String,
    /// Login name, unique.
    pub username: String,
    /// Display name.
    #[serde(default)]
    pub full_name: String,
    /// Argon2 PHC string; never the password itself.
    pub password_hash: String,
    /// Admins bypass grants.
    pub admin: bool,
    /// Inactive users cannot log in.
    pub active: bool,
    /// When the account was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Table for User {
    const TABLE: &'static str = "users";
    fn id(&self) -> String {
        self.username.clone()
    }
}

/// Checks a username the way the dashboard and the API do: 1 to 100
/// characters of letters, digits, `.`, `_`, `-` and `@`, and not `.` or
/// `..` (a username names the user's private collection and is a URL path
/// segment).
pub fn validate_username(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 100 {
        return Err("username must be 1 to 100 characters".into());
    }
    if name == "." || name == ".." {
        return Err(format!(
            "username {name:?} is not allowed: '.' and '..' are not names"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@')))
    {
        return Err(format!(
            "username {name:?} contains {c:?}: use letters, digits, '.', '_', '-' or '@'"
        ));
    }
    Ok(())
}

/// Checks a new password: at least 8 characters, at most 1024.
pub fn validate_password(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < 8 {
        return Err("password must have at least 8 characters".into());
    }
    if n > 1024 {
        return Err("password must have at most 1024 characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(validate_username("analista").is_ok());
        assert!(validate_username("a.b-c_d@example.com").is_ok());
        assert!(validate_username("").is_err());
        assert!(validate_username("bad name").unwrap_err().contains("' '"));
        assert!(validate_username("..").unwrap_err().contains("\"..\""));
        assert!(validate_username(".").is_err());
        assert!(validate_username("..a").is_ok());
    }

    #[test]
    fn user_round_trips_through_its_table() {
        let user = User {
            id: "5b0e8c1a-3d1f-4a57-9a3e-0c2f4f5d6e7f".into(),
            username: "analista".into(),
            full_name: "Ana Lista".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            admin: false,
            active: true,
            created_at: time::macros::datetime!(2026-01-02 03:04:05 UTC),
        };
        assert_eq!(user.id(), "analista");
        let back: User = crate::table::decode(&crate::table::encode(&user)).unwrap();
        assert_eq!(back, user);
    }

    #[test]
    fn passwords() {
        assert!(validate_password("short").is_err());
        assert!(validate_password("long enough").is_ok());
    }
}
