//! A node's persisted configuration (`node.toml` in its data directory).

use std::net::IpAddr;
use std::path::Path;

use capstan_core::{NodeId, NodeRole};
use serde::{Deserialize, Serialize};

use crate::error::ManagerError;

/// Everything a node needs to start again after a restart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeConfig {
    /// This node's id.
    pub node_id: NodeId,
    /// Manager or worker.
    pub role: NodeRole,
    /// The cluster this node belongs to.
    pub cluster_id: String,
    /// The hostname reported to the cluster.
    pub hostname: String,
    /// The address other nodes reach this node at (IP or DNS name).
    pub host_address: String,
    /// Address the swarm port listens on.
    #[serde(default = "default_listen")]
    pub listen_address: String,
    /// Cluster gRPC port (Raft, cluster API, join).
    pub swarm_port: u16,
    /// Gateway port (dashboard, REST, Docker API).
    pub controller_port: u16,
    /// Kubernetes API port.
    pub kube_apiserver_port: u16,
    /// Extra subject alternative names for this node's certificates.
    #[serde(default)]
    pub sans: Vec<String>,
    /// Lifetime of issued node certificates, in days.
    pub cert_ttl_days: u32,
    /// Managers known at join time, `host:port`; refreshed as the cluster changes.
    #[serde(default)]
    pub managers: Vec<String>,
    /// A joined manager that has not been made a voter yet.
    #[serde(default)]
    pub pending_registration: bool,
}

fn default_listen() -> String {
    "0.0.0.0".into()
}

impl NodeConfig {
    /// `host:port` of this node's swarm port as other nodes dial it.
    pub fn advertise_addr(&self) -> String {
        join_host_port(&self.host_address, self.swarm_port)
    }

    /// `host:port` the swarm port binds.
    pub fn listen_addr(&self) -> String {
        join_host_port(&self.listen_address, self.swarm_port)
    }

    /// Lifetime of issued certificates.
    pub fn cert_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.cert_ttl_days) * 86_400)
    }

    /// Reads and validates `node.toml`.
    pub fn load(path: &Path) -> Result<Self, ManagerError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ManagerError::file("read", path, e))?;
        let cfg: NodeConfig = toml::from_str(&text).map_err(|e| ManagerError::BadConfig {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        cfg.validate().map_err(|reason| ManagerError::BadConfig {
            path: path.to_path_buf(),
            reason,
        })?;
        Ok(cfg)
    }

    /// Writes `node.toml` atomically.
    pub fn save(&self, path: &Path) -> Result<(), ManagerError> {
        let text = toml::to_string_pretty(self).expect("node config serializes to TOML");
        capstan_pki::write_private_file(path, text.as_bytes())?;
        Ok(())
    }

    /// Checks the fields that a hand edit could break.
    pub fn validate(&self) -> Result<(), String> {
        validate_host(&self.host_address)?;
        validate_host(&self.listen_address)?;
        if self.cert_ttl_days == 0 || self.cert_ttl_days > 3650 {
            return Err(format!(
                "cert_ttl_days {} is out of range 1..=3650",
                self.cert_ttl_days
            ));
        }
        validate_ports(&[
            ("swarm port", self.swarm_port),
            ("controller port", self.controller_port),
            ("kube apiserver port", self.kube_apiserver_port),
        ])
    }
}

/// `host:port`, bracketing IPv6 literals.
pub fn join_host_port(host: &str, port: u16) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => format!("[{host}]:{port}"),
        _ => format!("{host}:{port}"),
    }
}

/// Checks a host address: an IP literal or a DNS name.
pub fn validate_host(host: &str) -> Result<(), String> {
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{host:?} is neither an IP address nor a valid DNS name"
        ))
    }
}

/// Checks that ports are non-zero and distinct.
pub fn validate_ports(ports: &[(&str, u16)]) -> Result<(), String> {
    for (i, (name, port)) in ports.iter().enumerate() {
        if *port == 0 {
            return Err(format!("{name} must not be 0"));
        }
        if let Some((other, _)) = ports[..i].iter().find(|(_, p)| p == port) {
            return Err(format!(
                "{name} and {other} are both {port}; give each its own port"
            ));
        }
    }
    Ok(())
}

/// Parses `host:port` (with brackets for IPv6), naming what was wrong.
pub fn parse_host_port(addr: &str) -> Result<(String, u16), String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("{addr:?} is not host:port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    validate_host(host)?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{addr:?} has an invalid port {port:?}"))?;
    if port == 0 {
        return Err(format!("{addr:?} has port 0"));
    }
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_parsing() {
        assert_eq!(
            parse_host_port("10.0.0.1:2377"),
            Ok(("10.0.0.1".into(), 2377))
        );
        assert_eq!(parse_host_port("[::1]:2377"), Ok(("::1".into(), 2377)));
        assert_eq!(
            parse_host_port("master.docker-dca.example:2377"),
            Ok(("master.docker-dca.example".into(), 2377))
        );
        for bad in [
            "master",
            "master:",
            "master:99999",
            "bad host:1",
            ":2377",
            "a:0",
        ] {
            assert!(parse_host_port(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(join_host_port("::1", 1), "[::1]:1");
    }

    #[test]
    fn ports_must_differ() {
        assert!(validate_ports(&[("a", 1), ("b", 2)]).is_ok());
        assert!(validate_ports(&[("a", 1), ("b", 1)])
            .unwrap_err()
            .contains("both 1"));
        assert!(validate_ports(&[("a", 0)]).is_err());
    }
}
