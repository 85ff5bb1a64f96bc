//! Content trust: the TUF metadata that Notary v1 serves and the docker CLI
//! writes (`DOCKER_CONTENT_TRUST=1`), checked by TUF's rules.
//!
//! - [`canonical`]: the canonical JSON every signature covers.
//! - [`keys`]: public keys as TUF writes them, signature checks, and the
//!   ECDSA keys a trust server signs timestamps and snapshots with.
//! - [`metadata`]: the roles' documents and the checks of one signed role.
//! - [`update`]: what a trust server accepts as an update of a repository,
//!   and the snapshot and timestamp it signs in answer.
//! - [`publisher`]: metadata as a client writes it, for tests and benchmarks.
//! - [`resolve`]: which digest a tag is signed as, and by whose keys.

pub mod canonical;
pub mod error;
pub mod keys;
pub mod metadata;
pub mod publisher;
pub mod resolve;
pub mod update;

pub use error::TrustError;
pub use keys::{PrivateKey, PublicKey};

/// The role names TUF fixes.
pub mod role {
    /// Names the keys of every other top-level role.
    pub const ROOT: &str = "root";
    /// Lists targets and delegates to `targets/...` roles.
    pub const TARGETS: &str = "targets";
    /// Pins the versions of root and every targets role.
    pub const SNAPSHOT: &str = "snapshot";
    /// Pins the snapshot; signed by the server.
    pub const TIMESTAMP: &str = "timestamp";
    /// The delegation the docker CLI signs tags in once signers are added.
    pub const RELEASES: &str = "targets/releases";
}

/// The longest role name accepted.
pub const MAX_ROLE_NAME: usize = 255;

/// Whether `name` is a role a repository may hold: one of the four
/// top-level roles, or a delegation `targets/<a>[/<b>...]` whose segments
/// are letters, digits, `-`, `_` and `.` (not `.` or `..` alone).
pub fn valid_role(name: &str) -> bool {
    if matches!(
        name,
        role::ROOT | role::TARGETS | role::SNAPSHOT | role::TIMESTAMP
    ) {
        return true;
    }
    is_delegation(name)
}

/// Whether `name` is a well-formed delegation role name.
pub fn is_delegation(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("targets/") else {
        return false;
    };
    name.len() <= MAX_ROLE_NAME
        && rest.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
}

/// The role that delegates to `name` (`targets` for `targets/a`,
/// `targets/a` for `targets/a/b`); `root` for top-level roles.
pub fn parent_role(name: &str) -> &str {
    match name.rsplit_once('/') {
        Some((parent, _)) => parent,
        None => role::ROOT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names() {
        assert!(valid_role("root"));
        assert!(valid_role("targets/releases"));
        assert!(valid_role("targets/alice/ci"));
        assert!(!valid_role("targets/"));
        assert!(!valid_role("targets/../root"));
        assert!(!valid_role("targets/a b"));
        assert!(!valid_role("delegation"));
        assert_eq!(parent_role("targets/a/b"), "targets/a");
        assert_eq!(parent_role("targets/a"), "targets");
        assert_eq!(parent_role("targets"), "root");
    }
}
