//! Why metadata is refused. Each message names the role and what was wrong,
//! as a publisher needs to fix it.

/// A refusal of trust metadata.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// Not JSON of the expected shape.
    #[error("{role}: malformed metadata: {reason}")]
    Malformed {
        /// The role.
        role: String,
        /// What was wrong.
        reason: String,
    },
    /// Signatures that do not verify, or too few of them.
    #[error("{role}: {reason}")]
    Signatures {
        /// The role.
        role: String,
        /// What was wrong.
        reason: String,
    },
    /// The metadata's expiry is past.
    #[error("{role}: metadata expired at {expires}")]
    Expired {
        /// The role.
        role: String,
        /// When it expired.
        expires: String,
    },
    /// A version that does not move forward.
    #[error("{role}: version {sent} is not newer than the stored version {current}")]
    OldVersion {
        /// The role.
        role: String,
        /// The version stored now.
        current: u64,
        /// The version sent.
        sent: u64,
    },
    /// A role, key or delegation the hierarchy does not allow.
    #[error("{role}: {reason}")]
    Hierarchy {
        /// The role.
        role: String,
        /// What was wrong.
        reason: String,
    },
    /// A target a delegation may not sign.
    #[error("{role}: target {target:?} is outside the paths delegated to this role")]
    OutsideDelegation {
        /// The role.
        role: String,
        /// The target name.
        target: String,
    },
    /// A key of a type or form this server does not verify.
    #[error("key {key_id}: {reason}")]
    Key {
        /// The key id.
        key_id: String,
        /// What was wrong.
        reason: String,
    },
    /// Metadata that is not there.
    #[error("{role}: no trust data")]
    NotFound {
        /// The role.
        role: String,
    },
}

impl TrustError {
    pub(crate) fn malformed(role: &str, reason: impl Into<String>) -> Self {
        Self::Malformed {
            role: role.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn hierarchy(role: &str, reason: impl Into<String>) -> Self {
        Self::Hierarchy {
            role: role.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn signatures(role: &str, reason: impl Into<String>) -> Self {
        Self::Signatures {
            role: role.into(),
            reason: reason.into(),
        }
    }

    /// The role the refusal is about, where it names one.
    pub fn role(&self) -> Option<&str> {
        match self {
            Self::Malformed { role, .. }
            | Self::Signatures { role, .. }
            | Self::Expired { role, .. }
            | Self::OldVersion { role, .. }
            | Self::Hierarchy { role, .. }
            | Self::OutsideDelegation { role, .. }
            | Self::NotFound { role } => Some(role),
            Self::Key { .. } => None,
        }
    }
}
