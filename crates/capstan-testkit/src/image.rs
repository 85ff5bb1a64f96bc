//! The one image every test container runs: busybox plus, for cluster tests,
//! the capstan binary, imported from a tar because no registry is reachable.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;
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

/// Lays out the rootfs in a temporary folder, tars it and `docker import`s it.
fn import_image(tag: &str, busybox: &Path, capstan_bin: Option<&Path>) -> Result<()> {
    let work = tempfile::Builder::new()
        .prefix("capstan-testkit-image-")
        .tempdir()
        .map_err(|source| Error::Io {
            action: "create a temporary folder in",
            path: std::env::temp_dir(),
            source,
        })?;
    let rootfs = work.path().join("rootfs");
    write_rootfs(&rootfs, busybox, capstan_bin).map_err(|(path, source)| Error::Io {
        action: "lay out the image rootfs at",
        path,
        source,
    })?;

    let tarball = work.path().join("rootfs.tar");
    let args: Vec<std::ffi::OsString> = vec![
        "--numeric-owner".into(),
        "--owner=0".into(),
        "--group=0".into(),
        "-C".into(),
        rootfs.clone().into(),
        "-cf".into(),
        tarball.clone().into(),
        ".".into(),
    ];
    let command = render("tar", &args);
    let output = Command::new("tar")
        .args(&args)
        .output()
        .map_err(|source| Error::Spawn {
            command: command.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(Error::CommandFailed {
            command,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs();
    let tarball = tarball.to_string_lossy().into_owned();
    docker([
        "import",
        "--change",
        "ENV PATH=/usr/local/bin:/bin",
        "--change",
        "WORKDIR /",
        "--change",
        &format!("LABEL {OWNER_LABEL}={OWNER} {CREATED_LABEL}={now}"),
        "--message",
        RECIPE_VERSION,
        &tarball,
        tag,
    ])?;
    Ok(())
}

type LayoutError = (std::path::PathBuf, io::Error);

/// The image's files: busybox and its applet links, capstan, users, and the
/// writable folders tests use.
fn write_rootfs(
    root: &Path,
    busybox: &Path,
    capstan_bin: Option<&Path>,
) -> Result<(), LayoutError> {
    let at = |path: &Path| {
        let path = path.to_owned();
        move |e| (path, e)
    };
    for dir in [
        "bin",
        "etc",
        "root",
        "tmp",
        "data",
        "usr/local/bin",
        "var/lib/capstan",
        "var/run",
    ] {
        let dir = root.join(dir);
        fs::create_dir_all(&dir).map_err(at(&dir))?;
    }
    let tmp = root.join("tmp");
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777)).map_err(at(&tmp))?;

    let target = root.join("bin/busybox");
    install_executable(busybox, &target).map_err(at(&target))?;
    for applet in APPLETS.split_whitespace() {
        let link = root.join("bin").join(applet);
        symlink("busybox", &link).map_err(at(&link))?;
    }
    if let Some(bin) = capstan_bin {
        let target = root.join("usr/local/bin/capstan");
        install_executable(bin, &target).map_err(at(&target))?;
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
        let path = root.join(path);
        fs::write(&path, content).map_err(at(&path))?;
    }
    Ok(())
}

fn install_executable(from: &Path, to: &Path) -> io::Result<()> {
    fs::copy(from, to)?;
    fs::set_permissions(to, fs::Permissions::from_mode(0o755))
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
        let root = work.path().join("root");

        write_rootfs(&root, &fake_busybox, Some(&fake_capstan)).expect("layout");

        for applet in ["sh", "sleep", "httpd", "wget", "printf"] {
            let link = fs::read_link(root.join("bin").join(applet)).expect("applet link");
            assert_eq!(link, Path::new("busybox"));
        }
        let capstan = root.join("usr/local/bin/capstan");
        let mode = fs::metadata(&capstan)
            .expect("capstan")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        let tmp_mode = fs::metadata(root.join("tmp"))
            .expect("tmp")
            .permissions()
            .mode();
        assert_eq!(tmp_mode & 0o7777, 0o1777);
        let passwd = fs::read_to_string(root.join("etc/passwd")).expect("passwd");
        assert!(passwd.starts_with("root:x:0:0:"));
        assert!(passwd.contains("\nnobody:x:65534:"));
        assert!(root.join("data").is_dir());
    }
}
