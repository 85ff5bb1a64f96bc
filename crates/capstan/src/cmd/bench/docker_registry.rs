//! The peer of `capstan bench registry`: Debian's `docker-registry`
//! (distribution 2.8) on loopback, over HTTPS with a certificate from a CA
//! made for the run, without authentication, its filesystem storage in the
//! benchmark's working directory. The process is killed when its handle is
//! dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use capstan_pki::{ClusterCa, NodeIdentity, NodeRole};
use serde_json::Value;

use super::distribution::Endpoint;
use super::gateway::client_config;
use super::process::{run_to_end, Ports, Process};

/// The binary, as Debian's `docker-registry` package installs it.
const BINARY: &str = "docker-registry";
/// The longest wait for it to answer after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Finds `docker-registry` on the PATH, or says how to get it.
pub fn binary() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(BINARY))
        .find(|candidate| candidate.is_file())
        .context(
            "`docker-registry` is not on the PATH: the registry benchmark compares Capstan \
             with distribution 2.8; install it (Debian: `apt-get install docker-registry`) or \
             pass --no-peer to measure Capstan alone",
        )
}

/// What `docker-registry --version` says, e.g.
/// `docker-registry github.com/docker/distribution 2.8.2+ds1`.
pub async fn version(bin: &Path) -> anyhow::Result<String> {
    let mut cmd = Command::new(bin);
    cmd.arg("--version");
    let out = run_to_end("docker-registry --version", cmd, Duration::from_secs(10)).await?;
    Ok(out.trim().to_string())
}

/// Starts `bin` with its configuration, certificate and storage under
/// `dir`, and waits until it answers.
pub async fn start(
    bin: &Path,
    dir: &Path,
    ports: &mut Ports,
) -> anyhow::Result<(Process, Endpoint)> {
    let (ca, cert_path, key_path) = peer_certificate(dir, "docker-registry")?;
    let port = ports.free()?;
    let config_path = dir.join("config.yml");
    std::fs::write(
        &config_path,
        config(&storage(dir), port, &cert_path, &key_path),
    )
    .context("write the peer's configuration")?;

    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .arg("serve")
        .arg(&config_path);
    let process = Process::spawn("docker-registry", cmd, &dir.join("docker-registry.log"))?;
    let endpoint = Endpoint::new(
        &format!("https://127.0.0.1:{port}/"),
        client_config(ca.cert_pem().as_bytes())?,
        None,
    )?;
    endpoint.wait_ready(START_TIMEOUT).await.with_context(|| {
        format!(
            "docker-registry; its log ends with:\n{}",
            process.log_tail(30)
        )
    })?;
    Ok((process, endpoint))
}

/// A CA made for the run and a certificate from it for a peer named
/// `name` on 127.0.0.1, written under `dir` (`tls.crt`, `tls.key`).
pub(super) fn peer_certificate(
    dir: &Path,
    name: &str,
) -> anyhow::Result<(ClusterCa, PathBuf, PathBuf)> {
    let day = Duration::from_secs(86_400);
    let ca = ClusterCa::generate("capstan-bench-peer", day)?;
    let identity = NodeIdentity {
        node_id: name.into(),
        role: NodeRole::Manager,
        cluster_id: "capstan-bench-peer".into(),
        hosts: vec!["127.0.0.1".into()],
    };
    let (cert, key) = ca.issue_node_cert(&identity, day)?;
    let (cert_path, key_path) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert_path, &cert.cert_pem).context("write the peer's certificate")?;
    capstan_pki::write_private_file(&key_path, key.as_bytes())?;
    Ok((ca, cert_path, key_path))
}

/// Where a peer started under `dir` keeps its blobs.
pub fn storage(dir: &Path) -> PathBuf {
    dir.join("storage")
}

/// distribution's configuration: filesystem storage with the in-memory
/// blob descriptor cache (as in Debian's default), TLS, no access log.
fn config(storage: &Path, port: u16, cert: &Path, key: &Path) -> String {
    // JSON strings are YAML double-quoted scalars: paths need no escaping rules of their own.
    let quoted = |p: &Path| Value::from(p.display().to_string()).to_string();
    format!(
        "version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  cache:\n    blobdescriptor: inmemory\n  \
         delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {}\n    key: {}\n",
        quoted(storage),
        quoted(cert),
        quoted(key),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_quotes_its_paths() {
        let yaml = config(
            Path::new("/tmp/a b/storage"),
            5000,
            Path::new("/c.crt"),
            Path::new("/c.key"),
        );
        assert!(
            yaml.contains("rootdirectory: \"/tmp/a b/storage\""),
            "{yaml}"
        );
        assert!(yaml.contains("addr: 127.0.0.1:5000"), "{yaml}");
        assert!(yaml.contains("certificate: \"/c.crt\""), "{yaml}");
    }
}
