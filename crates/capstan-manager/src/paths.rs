//! Where a node keeps its files under its data directory.

use std::path::{Path, PathBuf};

/// A node's data directory and the layout inside it.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The data directory rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The node's configuration; its presence means "installed".
    pub fn config(&self) -> PathBuf {
        self.root.join("node.toml")
    }
    /// Cluster root CA certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("pki/ca.crt")
    }
    /// Cluster root CA key (managers only).
    pub fn ca_key(&self) -> PathBuf {
        self.root.join("pki/ca.key")
    }
    /// The key that seals secrets at rest (managers only).
    pub fn secret_key(&self) -> PathBuf {
        self.root.join("pki/secrets.key")
    }
    /// This node's certificate.
    pub fn node_cert(&self) -> PathBuf {
        self.root.join("pki/node.crt")
    }
    /// This node's private key.
    pub fn node_key(&self) -> PathBuf {
        self.root.join("pki/node.key")
    }
    /// The Raft log and state machine.
    pub fn raft(&self) -> PathBuf {
        self.root.join("raft")
    }
    /// Objects an install writes into the store at first start.
    pub fn bootstrap(&self) -> PathBuf {
        self.root.join("bootstrap.json")
    }
    /// Objects a restore writes into the store at first start.
    pub fn restore(&self) -> PathBuf {
        self.root.join("restore.json")
    }
    /// Whether a node was installed or joined here.
    pub fn is_installed(&self) -> bool {
        self.config().exists()
    }
}
