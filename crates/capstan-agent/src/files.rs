//! Secrets and configs as files in a task's container: where each goes, and
//! the tar archive the engine unpacks into the container before it starts.
//! Pure: the archive is built in memory (secrets and configs are small).

use capstan_core::service::FileReference;

/// Where secrets go when their target is a bare file name.
const SECRETS_DIR: &str = "/run/secrets";
/// The mode of a reference that names none (Swarm's default).
const DEFAULT_MODE: u32 = 0o444;
const BLOCK: usize = 512;
/// ustar's limits on a path: 100 bytes of name and 155 of prefix.
const NAME_LEN: usize = 100;
const PREFIX_LEN: usize = 155;

/// One file to write into the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TaskFile {
    /// Absolute path in the container.
    pub path: String,
    /// Permission bits.
    pub mode: u32,
    /// Content.
    pub data: Vec<u8>,
}

/// Whether a reference is a secret (relative targets go under
/// `/run/secrets`) or a config (relative targets go under `/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// `/run/secrets/<target>`.
    Secret,
    /// `/<target>`.
    Config,
}

/// The file for a reference, or why it cannot be written.
pub(crate) fn task_file(
    kind: FileKind,
    reference: &FileReference,
    data: &[u8],
) -> Result<TaskFile, String> {
    let target = if reference.target.is_empty() {
        reference.name.as_str()
    } else {
        reference.target.as_str()
    };
    let path = match (kind, target.starts_with('/')) {
        (_, true) => target.to_owned(),
        (FileKind::Secret, false) => format!("{SECRETS_DIR}/{target}"),
        (FileKind::Config, false) => format!("/{target}"),
    };
    check_path(&path)?;
    let mode = match reference.mode & 0o7777 {
        0 => DEFAULT_MODE,
        mode => mode,
    };
    Ok(TaskFile {
        path,
        mode,
        data: data.to_vec(),
    })
}

fn check_path(path: &str) -> Result<(), String> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() || path.ends_with('/') {
        return Err(format!("{path:?} names a directory, not a file"));
    }
    if parts.iter().any(|p| *p == "." || *p == "..") || path.contains('\0') {
        return Err(format!(
            "{path:?} must be a plain absolute path (no `.`, `..` or NUL)"
        ));
    }
    split_name(&parts.join("/")).map(|_| ())
}

/// A tar archive (ustar) of `files`, to unpack at `/`: entry names are the
/// paths without their leading slash, owned by root. Parent directories are
/// not entries: the engine creates missing ones and leaves existing ones
/// (and their modes) alone.
pub(crate) fn tar_archive(files: &[TaskFile], mtime_unix: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for file in files {
        let name = file.path.trim_start_matches('/');
        out.extend_from_slice(&header(
            name,
            file.mode,
            file.data.len() as u64,
            mtime_unix,
        )?);
        out.extend_from_slice(&file.data);
        let padding = (BLOCK - file.data.len() % BLOCK) % BLOCK;
        out.extend(std::iter::repeat_n(0u8, padding));
    }
    // Two zero blocks end the archive.
    out.extend(std::iter::repeat_n(0u8, 2 * BLOCK));
    Ok(out)
}

fn header(name: &str, mode: u32, size: u64, mtime: u64) -> Result<[u8; BLOCK], String> {
    let (prefix, name) = split_name(name)?;
    let mut h = [0u8; BLOCK];
    put(&mut h[0..100], name.as_bytes());
    put(&mut h[100..108], octal(u64::from(mode), 7).as_bytes());
    put(&mut h[108..116], octal(0, 7).as_bytes());
    put(&mut h[116..124], octal(0, 7).as_bytes());
    if size >= 1 << 33 {
        return Err(format!("{name:?} is too large for a tar entry"));
    }
    put(&mut h[124..136], octal(size, 11).as_bytes());
    put(
        &mut h[136..148],
        octal(mtime.min((1 << 33) - 1), 11).as_bytes(),
    );
    h[156] = b'0';
    put(&mut h[257..263], b"ustar\0");
    put(&mut h[263..265], b"00");
    put(&mut h[265..269], b"root");
    put(&mut h[297..301], b"root");
    put(&mut h[345..500], prefix.as_bytes());
    // The checksum is computed with its own field read as spaces.
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    put(&mut h[148..156], format!("{sum:06o}\0 ").as_bytes());
    Ok(h)
}

/// Splits a relative path into ustar's prefix and name fields.
fn split_name(path: &str) -> Result<(&str, &str), String> {
    if path.len() <= NAME_LEN {
        return Ok(("", path));
    }
    // The prefix ends at a slash; the name after it must fit in 100 bytes.
    path.match_indices('/')
        .map(|(i, _)| (&path[..i], &path[i + 1..]))
        .find(|(prefix, name)| {
            prefix.len() <= PREFIX_LEN && name.len() <= NAME_LEN && !name.is_empty()
        })
        .ok_or_else(|| format!("{path:?} is too long for a file path (at most 255 bytes)"))
}

fn octal(value: u64, width: usize) -> String {
    format!("{value:0width$o}")
}

fn put(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn reference(target: &str, mode: u32) -> FileReference {
        FileReference {
            id: "id1".into(),
            name: "db-password".into(),
            target: target.into(),
            mode,
        }
    }

    #[test]
    fn targets_resolve_like_swarm() {
        let secret = |t: &str| task_file(FileKind::Secret, &reference(t, 0), b"x").map(|f| f.path);
        let config = |t: &str| task_file(FileKind::Config, &reference(t, 0), b"x").map(|f| f.path);
        assert_eq!(secret("pw").as_deref(), Ok("/run/secrets/pw"));
        assert_eq!(secret("").as_deref(), Ok("/run/secrets/db-password"));
        assert_eq!(secret("/etc/pw").as_deref(), Ok("/etc/pw"));
        assert_eq!(config("app.conf").as_deref(), Ok("/app.conf"));
        assert_eq!(
            config("/etc/app/app.conf").as_deref(),
            Ok("/etc/app/app.conf")
        );
        for bad in ["../etc/passwd", "/etc/", "/a/./b", "/"] {
            assert!(secret(bad).is_err(), "{bad:?} was accepted");
        }
        let long = format!("/{}", "d/".repeat(130) + "f");
        assert!(config(&long).unwrap_err().contains("too long"));
    }

    #[test]
    fn modes_default_to_read_only_for_all() {
        let file = task_file(FileKind::Secret, &reference("pw", 0), b"x").unwrap();
        assert_eq!(file.mode, 0o444);
        let file = task_file(FileKind::Secret, &reference("pw", 0o100_400), b"x").unwrap();
        assert_eq!(file.mode, 0o400);
    }

    #[test]
    fn the_archive_is_read_by_tar() {
        let long_dir = "deep/".repeat(25);
        let files = vec![
            TaskFile {
                path: "/run/secrets/pw".into(),
                mode: 0o400,
                data: b"hunter2".to_vec(),
            },
            TaskFile {
                path: "/etc/app.conf".into(),
                mode: 0o644,
                data: vec![b'a'; 1000],
            },
            TaskFile {
                path: format!("/{long_dir}file"),
                mode: 0o444,
                data: Vec::new(),
            },
        ];
        let archive = tar_archive(&files, 1_700_000_000).unwrap();
        assert_eq!(archive.len() % BLOCK, 0);

        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("files.tar");
        std::fs::write(&path, &archive).expect("write archive");
        let out = Command::new("tar")
            .env("TZ", "UTC")
            .args(["-tvf"])
            .arg(&path)
            .output()
            .expect("run tar");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(lines.len(), 3, "{listing}");
        assert!(lines[0].starts_with("-r-------- root/root"), "{listing}");
        assert!(
            lines[0].ends_with(" 7 2023-11-14 22:13 run/secrets/pw"),
            "{listing}"
        );
        assert!(lines[1].starts_with("-rw-r--r--"), "{listing}");
        assert!(lines[1].contains(" 1000 "), "{listing}");
        assert!(lines[2].ends_with(&format!("{long_dir}file")), "{listing}");

        let unpacked = dir.path().join("root");
        std::fs::create_dir(&unpacked).expect("mkdir");
        let out = Command::new("tar")
            .arg("-xf")
            .arg(&path)
            .arg("-C")
            .arg(&unpacked)
            .output()
            .expect("run tar");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pw = std::fs::read(unpacked.join("run/secrets/pw")).expect("pw");
        assert_eq!(pw, b"hunter2");
    }
}
