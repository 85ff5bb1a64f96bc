//! The one error type of the testkit.

use std::path::PathBuf;
use std::time::Duration;

/// What went wrong while preparing or driving a test cluster.
///
/// Messages name the failed step and, where there is one, the fix, because
/// they end up in the output of a failed test and nowhere else.
#[derive(thiserror::Error)]
pub enum Error {
    #[error(
        "the docker CLI was not found on PATH: install Docker (the engine and its CLI) \
         and make sure `docker version` works"
    )]
    DockerMissing,

    #[error("could not run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },

    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed {
        command: String,
        status: String,
        stderr: String,
    },

    #[error("`{command}` printed output the testkit cannot read ({detail}): {output}")]
    UnexpectedOutput {
        command: String,
        detail: String,
        output: String,
    },

    #[error(
        "busybox-static is not installed ({path} is missing): \
         run scripts/test.sh or apt-get install busybox-static"
    )]
    BusyboxMissing { path: PathBuf },

    #[error(
        "{path} is not a static executable ({reason}); for busybox install the \
         busybox-static package (apt-get install busybox-static), for capstan build with \
         RUSTFLAGS='-C target-feature=+crt-static' and --target x86_64-unknown-linux-gnu \
         (scripts/test.sh does)"
    )]
    NotStatic { path: PathBuf, reason: String },

    #[error(
        "CAPSTAN_BIN is not set: point it at a static capstan binary, or pass \
         env!(\"CARGO_BIN_EXE_capstan\") to TestImage::ensure from an integration test"
    )]
    CapstanBinUnset,

    #[error("could not {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("container {container} is not attached to network {network}")]
    NotOnNetwork { container: String, network: String },

    #[error("{what} did not happen within {waited:?}; last observed: {last}")]
    Timeout {
        what: String,
        waited: Duration,
        last: String,
    },
}

/// Shows the message, not the variant's fields: `expect()` in a test prints
/// this, and the message is what tells the reader what to do.
impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// The testkit's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
