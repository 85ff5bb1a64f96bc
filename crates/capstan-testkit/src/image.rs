//! The one image every test container runs: busybox plus, for cluster tests,
//! the capstan binary, imported from a tar because no registry is reachable.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::binary::{busybox_binary, ensure_static};
use crate::docker::{docker, docker_succeeds, lines, render};
use crate::error::{Error, Result};
use crate::run_id::{CREATED_LABEL, OWNER, OWNER_LABEL};

/// Bump when the rootfs layout changes, so images built by older testkits are
/// not reused.
const RECIPE_VERSION: &str = "capstan-testkit rootfs v1";

/// Busybox applets linked into `/bin`: what tests and workloads call.
const APPLETS: &str = "\
    sh sleep cat ls wget httpd echo kill ps mkdir rm test true false env id hostname \
    grep head tail printf touch cp mv ln chmod df du sed wc sort date uname timeout nc \
    nslookup ip ifconfig netstat sha256sum stat sync dd tr cut tee seq xargs find pidof \
    uptime free whoami [";

/// Images older than this are removed when a new one is built: every rebuild
/// of capstan makes a new image, and a test run lasts far less. An image
/// still in use stays, and one removed too early is simply imported again.
const STALE_IMAGE_AGE: Duration = Duration::from_secs(6 * 3600);

/// Tags this process has already built or found, so each is inspected once.
static READY: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// A locally built image: busybox (`sh`, `sleep`, `httpd`, `wget`, …) and,
/// unless built with [`TestImage::busybox_only`], `/usr/local/bin/capstan`.
///
/// The tag is keyed by the content of what went in, so the image is built
/// once per capstan binary and shared by every test that runs that binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestImage {
    tag: String,
}

impl TestImage {
    /// The node image for `capstan_bin` (a static executable), tagged
    /// `capstan-test/node:<first 12 hex digits of a sha256 over the binary>`;
    /// built unless docker already has it.
    ///
    /// The hash also covers busybox and the rootfs recipe, so a change to
    /// either gives a new tag instead of a stale image.
    pub fn ensure(capstan_bin: &Path) -> Result<TestImage> {
        ensure_static(capstan_bin)?;
        Self::build("capstan-test/node", Some(capstan_bin))
    }

    /// An image with busybox alone: for workloads, and for testing the
    /// harness without a capstan binary.
    pub fn busybox_only() -> Result<TestImage> {
        Self::build("capstan-test/busybox", None)
    }

    /// The image tag, for [`crate::ContainerSpec::image`].
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The tag to run service workloads with (`sleep`, `httpd -f -p 8080`):
    /// the same image, since it holds busybox.
    pub fn workload(&self) -> &str {
        &self.tag
    }

    fn build(repository: &str, capstan_bin: Option<&Path>) -> Result<TestImage> {
        let busybox = busybox_binary()?;
        let mut hasher = Sha256::new();
        hasher.update(RECIPE_VERSION.as_bytes());
        hash_file(&mut hasher, &busybox)?;
        if let Some(bin) = capstan_bin {
            hash_file(&mut hasher, bin)?;
        }
        let digest = hex::encode(hasher.finalize());
        let tag = format!("{repository}:{}", &digest[..12]);

        // Held across the build: tests of one process wait for one build.
        let mut ready = READY
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let ready = ready.get_or_insert_with(HashSet::new);
        if ready.contains(&tag) {
            return Ok(TestImage { tag });
        }
        if !docker_succeeds(["image", "inspect", "--format", "{{.Id}}", &tag])? {
            import_image(&tag, &busybox, capstan_bin)?;
            prune_stale_images(&tag);
        }
        ready.insert(tag.clone());
        Ok(TestImage { tag })
    }
}

fn hash_file(hasher: &mut Sha256, path: &Path) -> Result<()> {
    let io_error = |source| Error::Io {
        action: "read",
        path: path.to_owned(),
        source,
    };
    let mut file = fs::File::open(path).map_err(io_error)?;
    io::copy(&mut file, hasher).map_err(io_error)?;
    Ok(())
}

/// Streams the rootfs as a tar archive into `docker import -`: nothing is
/// written to disk but what the engine itself stores, which matters on CI
/// machines where the build has used most of the disk.
fn import_image(tag: &str, busybox: &Path, capstan_bin: Option<&Path>) -> Result<()> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs();
    let args: Vec<std::ffi::OsString> = vec![
        "import".into(),
        "--change".into(),
        "ENV PATH=/usr/local/bin:/bin".into(),
        "--change".into(),
        "WORKDIR /".into(),
        "--change".into(),
        format!("LABEL {OWNER_LABEL}={OWNER} {CREATED_LABEL}={now}").into(),
        "--message".into(),
        RECIPE_VERSION.into(),
        "-".into(),
        tag.into(),
    ];
    let command = render("docker", &args);
    let spawn_error = |source| Error::Spawn {
        command: command.clone(),
        source,
    };
    let mut child = Command::new("docker")
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    let stdin = child.stdin.take().expect("stdin is piped");
    // On a write error docker has gone away; its exit status and stderr
    // below say why, so that is the error reported.
    let written = write_rootfs(stdin, busybox, capstan_bin);
    let output = child.wait_with_output().map_err(spawn_error)?;
    if !output.status.success() {
        return Err(Error::CommandFailed {
            command,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    written.map_err(|(path, source)| Error::Io {
        action: "stream the image rootfs entry",
        path,
        source,
    })
}

type LayoutError = (PathBuf, io::Error);

/// Writes the image's files as a tar archive to `out`: busybox and its applet
/// links, capstan, users, and the writable folders tests use. Everything is
/// owned by root.
fn write_rootfs(
    out: impl Write,
    busybox: &Path,
    capstan_bin: Option<&Path>,
) -> Result<(), LayoutError> {
    let at = |path: &str| {
        let path = PathBuf::from(path);
        move |e| (path, e)
    };
    let mut archive = tar::Builder::new(out);
    for (dir, mode) in [
        ("bin", 0o755),
        ("etc", 0o755),
        ("root", 0o700),
        ("tmp", 0o1777),
        ("data", 0o755),
        ("usr", 0o755),
        ("usr/local", 0o755),
        ("usr/local/bin", 0o755),
        ("var", 0o755),
        ("var/lib", 0o755),
        ("var/lib/capstan", 0o755),
        ("var/run", 0o755),
    ] {
        let mut header = entry_header(tar::EntryType::Directory, mode, 0);
        archive
            .append_data(&mut header, dir, io::empty())
            .map_err(at(dir))?;
    }

    let mut executables = vec![("bin/busybox", busybox)];
    if let Some(bin) = capstan_bin {
        executables.push(("usr/local/bin/capstan", bin));
    }
    for (path, from) in executables {
        let from_error = |e| (from.to_owned(), e);
        let file = fs::File::open(from).map_err(from_error)?;
        let size = file.metadata().map_err(from_error)?.len();
        let mut header = entry_header(tar::EntryType::Regular, 0o755, size);
        archive
            .append_data(&mut header, path, file)
            .map_err(at(path))?;
    }
    for applet in APPLETS.split_whitespace() {
        let link = format!("bin/{applet}");
        let mut header = entry_header(tar::EntryType::Symlink, 0o777, 0);
        archive
            .append_link(&mut header, &link, "busybox")
            .map_err(at(&link))?;
    }

    let files = [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\nnobody:x:65534:\n"),
        // Static glibc reads this for name lookups; docker supplies
        // /etc/hosts and /etc/resolv.conf at run time.
        ("etc/nsswitch.conf", "hosts: files dns\n"),
    ];
    for (path, content) in files {
        let mut header = entry_header(tar::EntryType::Regular, 0o644, content.len() as u64);
        archive
            .append_data(&mut header, path, content.as_bytes())
            .map_err(at(path))?;
    }
    archive
        .into_inner()
        .and_then(|mut out| out.flush())
        .map_err(at("end of archive"))
}

fn entry_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header
}

/// Removes testkit images older than [`STALE_IMAGE_AGE`], except `keep`. Best effort:
/// an image still used by a container stays, and errors are ignored.
fn prune_stale_images(keep: &str) {
    let filter = format!("label={OWNER_LABEL}={OWNER}");
    let Ok(listing) = docker([
        "image",
        "ls",
        "--filter",
        &filter,
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ]) else {
        return;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let label_format = format!("{{{{index .Config.Labels \"{CREATED_LABEL}\"}}}}");
    for tag in lines(&listing) {
        if tag == keep || tag.contains("<none>") {
            continue;
        }
        let Ok(created) = docker(["image", "inspect", "--format", &label_format, &tag]) else {
            continue;
        };
        let Ok(created) = created.parse::<u64>() else {
            continue;
        };
        if now.saturating_sub(created) > STALE_IMAGE_AGE.as_secs() {
            let _ = docker(["image", "rm", &tag]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootfs_has_busybox_links_capstan_and_a_sticky_tmp() {
        let work = tempfile::tempdir().expect("temp dir");
        let fake_busybox = work.path().join("busybox");
        fs::write(&fake_busybox, b"busybox").expect("write");
        let fake_capstan = work.path().join("capstan");
        fs::write(&fake_capstan, b"capstan").expect("write");

        let mut tarball = Vec::new();
        write_rootfs(&mut tarball, &fake_busybox, Some(&fake_capstan)).expect("archive");

        let mut archive = tar::Archive::new(tarball.as_slice());
        let mut entries = std::collections::HashMap::new();
        for entry in archive.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let path = entry.path().expect("path").to_string_lossy().into_owned();
            let header = entry.header().clone();
            assert_eq!(header.uid().expect("uid"), 0, "{path} is owned by root");
            let link = entry.link_name().expect("link").map(|l| l.into_owned());
            let mut content = String::new();
            io::Read::read_to_string(&mut entry, &mut content).expect("content");
            entries.insert(path, (header, link, content));
        }
        for applet in ["sh", "sleep", "httpd", "wget", "printf"] {
            let (header, link, _) = &entries[&format!("bin/{applet}")];
            assert_eq!(header.entry_type(), tar::EntryType::Symlink);
            assert_eq!(link.as_deref(), Some(Path::new("busybox")));
        }
        let (capstan, _, content) = &entries["usr/local/bin/capstan"];
        assert_eq!(capstan.mode().expect("mode") & 0o777, 0o755);
        assert_eq!(content, "capstan");
        assert_eq!(entries["bin/busybox"].2, "busybox");
        let (tmp, _, _) = &entries["tmp"];
        assert_eq!(tmp.entry_type(), tar::EntryType::Directory);
        assert_eq!(tmp.mode().expect("mode") & 0o7777, 0o1777);
        let passwd = &entries["etc/passwd"].2;
        assert!(passwd.starts_with("root:x:0:0:"));
        assert!(passwd.contains("\nnobody:x:65534:"));
        assert_eq!(entries["data"].0.entry_type(), tar::EntryType::Directory);
    }
}
