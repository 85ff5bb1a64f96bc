//! The manager's error type, and its one mapping to gRPC status codes.

use std::path::PathBuf;

use capstan_pki::PkiError;
use capstan_store::StoreError;

/// Anything the manager role can fail at.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// A data directory already holds a node.
    #[error("{0} already holds an installed node; start it with `capstan manager --data-dir {0}` (or remove the directory to start over)", .path.display())]
    AlreadyInstalled {
        /// The data directory.
        path: PathBuf,
    },
    /// No node was installed in the data directory.
    #[error("no capstan node is installed in {}; run `capstan install` or `capstan join` first", .path.display())]
    NotInstalled {
        /// The data directory.
        path: PathBuf,
    },
    /// A file of the data directory could not be read or written.
    #[error("{action} {}: {source}", .path.display())]
    File {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The node configuration file is not valid.
    #[error("node configuration {} is not valid: {reason}", .path.display())]
    BadConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Bad input from a user, a client or a peer.
    #[error("{0}")]
    Invalid(String),
    /// The caller may not do this.
    #[error("{0}")]
    Denied(String),
    /// The object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// An optimistic-concurrency check failed.
    #[error("{0}")]
    Conflict(String),
    /// The operation would break a cluster invariant (e.g. quorum).
    #[error("{0}")]
    Refused(String),
    /// No leader, no quorum, or a peer could not be reached.
    #[error("{0}")]
    Unavailable(String),
    /// PKI failure.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// Store failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored record could not be decoded.
    #[error(transparent)]
    Decode(#[from] capstan_core::DecodeError),
    /// A remote manager answered with an error.
    #[error("{}", .0.message())]
    Remote(tonic::Status),
    /// The gRPC transport failed.
    #[error("cannot reach {addr}: {source}")]
    Transport {
        /// The address tried.
        addr: String,
        /// What the transport said.
        source: tonic::transport::Error,
    },
    /// Raft stopped.
    #[error("raft stopped: {0}")]
    Fatal(String),
    /// The data disk is too full to take writes.
    #[error("{0}")]
    DiskFull(String),
    /// A backup cannot be written or read.
    #[error(transparent)]
    Backup(#[from] crate::backup::BackupError),
}

impl ManagerError {
    /// A file error with context.
    pub fn file(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::File {
            action,
            path: path.into(),
            source,
        }
    }
}

impl From<ManagerError> for tonic::Status {
    fn from(e: ManagerError) -> Self {
        use tonic::Status;
        match e {
            ManagerError::Invalid(m) => Status::invalid_argument(m),
            ManagerError::Denied(m) => Status::permission_denied(m),
            ManagerError::NotFound(m) => Status::not_found(m),
            ManagerError::Conflict(m) => Status::aborted(m),
            ManagerError::Refused(m) => Status::failed_precondition(m),
            ManagerError::Unavailable(m) => Status::unavailable(m),
            ManagerError::DiskFull(m) => Status::resource_exhausted(m),
            ManagerError::Remote(s) => s,
            ManagerError::Transport { .. } | ManagerError::Fatal(_) => {
                Status::unavailable(e.to_string())
            }
            other => Status::internal(other.to_string()),
        }
    }
}
