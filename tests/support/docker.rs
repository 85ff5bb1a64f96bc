//! The stock `docker` CLI pointed at a gateway: as a client-bundle user, or
//! with a session token sent as a header (`HttpHeaders` in the CLI's
//! config file), each in its own configuration directory.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::gateway::Gateway;

/// A `docker` CLI configured for one gateway and one identity.
pub struct Docker {
    dir: tempfile::TempDir,
    host: String,
    cert_path: PathBuf,
}

/// What a `docker` command printed.
#[derive(Debug)]
pub struct Run {
    /// Whether it exited 0.
    pub ok: bool,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            ok: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

fn host_of(gw: &Gateway) -> String {
    format!("tcp://{}", gw.base.trim_start_matches("https://"))
}

impl Docker {
    /// The CLI authenticating with `token` (a session token of
    /// `POST /auth/login`), trusting the cluster CA.
    pub fn with_token(gw: &Gateway, token: &str) -> Docker {
        let ca = std::fs::read(gw.data_dir().join("pki/ca.crt")).expect("cluster CA");
        Self::with_token_at(&host_of(gw), &ca, token)
    }

    /// The CLI talking to the gateway at `host` (`tcp://ip:port`), trusting
    /// `ca_pem`, authenticating with the session `token`.
    pub fn with_token_at(host: &str, ca_pem: &[u8], token: &str) -> Docker {
        let dir = tempfile::tempdir().expect("temp dir");
        let cert_path = dir.path().join("certs");
        std::fs::create_dir_all(&cert_path).expect("cert dir");
        std::fs::write(cert_path.join("ca.pem"), ca_pem).expect("ca.pem");
        let config =
            serde_json::json!({"HttpHeaders": {"Authorization": format!("Bearer {token}")}});
        std::fs::write(dir.path().join("config.json"), config.to_string()).expect("config.json");
        Docker {
            host: host.to_string(),
            dir,
            cert_path,
        }
    }

    /// The CLI using an unpacked client bundle in `bundle` (its `ca.pem`,
    /// `cert.pem` and `key.pem`), as `source env.sh` would set it up.
    pub fn with_bundle(gw: &Gateway, bundle: &Path) -> Docker {
        Self::with_bundle_at(&host_of(gw), bundle)
    }

    /// The CLI using an unpacked client bundle, talking to the gateway at
    /// `host` (`tcp://ip:port`).
    pub fn with_bundle_at(host: &str, bundle: &Path) -> Docker {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("config.json"), "{}").expect("config.json");
        Docker {
            host: host.to_string(),
            dir,
            cert_path: bundle.to_path_buf(),
        }
    }

    /// `docker` with this identity's environment.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new("docker");
        c.env("DOCKER_HOST", &self.host)
            .env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", &self.cert_path)
            .env("DOCKER_CONFIG", self.dir.path())
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_API_VERSION");
        c
    }

    /// Runs `docker <args>`.
    pub fn run(&self, args: &[&str]) -> Run {
        self.cmd().args(args).output().expect("run docker").into()
    }

    /// Runs `docker <args>` and returns its stdout; panics with its stderr
    /// when it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert!(
            r.ok,
            "docker {} failed: {}{}",
            args.join(" "),
            r.stderr,
            r.stdout
        );
        r.stdout
    }

    /// Runs `docker <args>`, which must fail; returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert!(
            !r.ok,
            "docker {} succeeded but should not have: {}",
            args.join(" "),
            r.stdout
        );
        r.stderr
    }
}
