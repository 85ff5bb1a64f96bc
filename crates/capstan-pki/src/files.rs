//! Writing keys and certificates to disk atomically with the right modes.
//!
//! A crash at any point leaves either the old file or the new one, never a
//! truncated key: we write a temporary file in the same directory, fsync it,
//! rename it over the target and fsync the directory.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::rngs::OsRng;
use rand::RngCore;

use crate::error::PkiError;

const PRIVATE_MODE: u32 = 0o600;
const PUBLIC_MODE: u32 = 0o644;
const DIR_MODE: u32 = 0o700;

/// Writes secret material (a private key) with mode 0600, creating missing
/// parent directories with mode 0700. Atomic: temp file, fsync, rename.
pub fn write_private_file(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    write_atomic(path, contents, PRIVATE_MODE)
}

/// Writes public material (a certificate) with mode 0644, creating missing
/// parent directories with mode 0700. Atomic: temp file, fsync, rename.
pub fn write_public_file(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    write_atomic(path, contents, PUBLIC_MODE)
}

fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let file_name = path.file_name().ok_or_else(|| PkiError::Io {
        action: "write",
        path: path.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path has no file name",
        ),
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(&dir)
        .map_err(io("create directory", &dir))?;

    let tmp = dir.join(format!(
        ".{}.tmp-{:016x}",
        file_name.to_string_lossy(),
        OsRng.next_u64()
    ));
    let result = write_new(&tmp, contents, mode)
        .and_then(|()| fs::rename(&tmp, path).map_err(io("rename into place", path)));
    if result.is_err() {
        // Best effort: the error we return is the one that matters.
        let _ = fs::remove_file(&tmp);
        return result;
    }
    // Make the rename itself durable.
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync directory", &dir))
}

/// Creates `tmp` exclusively with `mode`, writes and fsyncs it.
fn write_new(tmp: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)
        .map_err(io("create", tmp))?;
    // The umask may have removed bits we want (e.g. 0644 under umask 077).
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io("set permissions on", tmp))?;
    file.write_all(contents).map_err(io("write", tmp))?;
    file.sync_all().map_err(io("sync", tmp))
}

/// Wraps an I/O error with what we were doing and to which path.
fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PkiError {
    let path = path.to_path_buf();
    move |source| PkiError::Io {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn private_files_are_0600_in_0700_dirs() {
        let root = tempfile::tempdir().expect("tempdir");
        let path = root.path().join("pki/keys/node.key");
        write_private_file(&path, b"secret").expect("write");
        assert_eq!(fs::read(&path).expect("read"), b"secret");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&root.path().join("pki")), 0o700);
        assert_eq!(mode(&root.path().join("pki/keys")), 0o700);
    }

    #[test]
    fn public_files_are_0644() {
        let root = tempfile::tempdir().expect("tempdir");
        let path = root.path().join("ca.crt");
        write_public_file(&path, b"cert").expect("write");
        assert_eq!(mode(&path), 0o644);
    }

    #[test]
    fn overwrite_replaces_content_and_mode_and_leaves_no_temp_files() {
        let root = tempfile::tempdir().expect("tempdir");
        let path = root.path().join("node.key");
        write_public_file(&path, b"old and longer").expect("first");
        write_private_file(&path, b"new").expect("second");
        assert_eq!(fs::read(&path).expect("read"), b"new");
        assert_eq!(mode(&path), 0o600);
        let names: Vec<_> = fs::read_dir(root.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("node.key")]);
    }

    #[test]
    fn failure_names_the_path() {
        let root = tempfile::tempdir().expect("tempdir");
        let blocker = root.path().join("file");
        write_public_file(&blocker, b"x").expect("write");
        let err = write_private_file(&blocker.join("key"), b"x").unwrap_err();
        assert!(err.to_string().contains("file"), "{err}");
        assert!(matches!(err, PkiError::Io { .. }), "{err}");
    }
}
