//! Who a node certificate is issued to, and how that becomes a subject and SANs.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use rcgen::{DistinguishedName, DnType, SanType};

use crate::error::PkiError;

/// The server name clients verify managers by, present in every manager certificate.
///
/// Fixed, like swarmkit's, so that a manager can move between addresses without
/// its clients caring which one they dialed.
pub const MANAGER_SERVER_NAME: &str = "capstan-manager";

/// The fixed DNS SAN present in every worker certificate.
pub const WORKER_SERVER_NAME: &str = "capstan-worker";

/// The organizational unit of client (user bundle) certificates.
pub const CLIENT_OU: &str = "capstan-client";

/// Longest value X.509 allows for a common name or organization (RFC 5280 upper bounds).
const MAX_NAME_LEN: usize = 64;

/// The role a node holds in the cluster; it decides the certificate's OU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    /// Runs the control plane (Raft member, API).
    Manager,
    /// Runs tasks only.
    Worker,
}

impl NodeRole {
    /// The certificate organizational unit for this role ("capstan-manager"/"capstan-worker").
    pub fn organizational_unit(self) -> &'static str {
        match self {
            NodeRole::Manager => MANAGER_SERVER_NAME,
            NodeRole::Worker => WORKER_SERVER_NAME,
        }
    }

    /// The fixed DNS SAN every certificate of this role carries.
    pub fn server_name(self) -> &'static str {
        self.organizational_unit()
    }
}

impl fmt::Display for NodeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeRole::Manager => "manager",
            NodeRole::Worker => "worker",
        })
    }
}

impl FromStr for NodeRole {
    type Err = PkiError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "manager" => Ok(NodeRole::Manager),
            "worker" => Ok(NodeRole::Worker),
            other => Err(PkiError::InvalidName {
                field: "node role",
                value: other.to_string(),
                reason: "expected \"manager\" or \"worker\"".to_string(),
            }),
        }
    }
}

/// Everything the CA puts into a node certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeIdentity {
    /// Becomes the subject CN.
    pub node_id: String,
    /// Becomes the subject OU and decides the fixed SAN.
    pub role: NodeRole,
    /// Becomes the subject O.
    pub cluster_id: String,
    /// DNS names or IP literals added as SANs, next to the role's fixed name.
    pub hosts: Vec<String>,
}

impl NodeIdentity {
    /// The subject DN: CN = node id, OU = role, O = cluster id.
    pub(crate) fn distinguished_name(&self) -> Result<DistinguishedName, PkiError> {
        check_name("node id", &self.node_id)?;
        check_name("cluster id", &self.cluster_id)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, self.node_id.as_str());
        dn.push(
            DnType::OrganizationalUnitName,
            self.role.organizational_unit(),
        );
        dn.push(DnType::OrganizationName, self.cluster_id.as_str());
        Ok(dn)
    }

    /// Every host as a SAN, plus the role's fixed server name (once).
    pub(crate) fn subject_alt_names(&self) -> Result<Vec<SanType>, PkiError> {
        let fixed = self.role.server_name();
        let mut sans = vec![dns_san(fixed)?];
        for host in &self.hosts {
            let san = parse_host(host)?;
            if !sans.contains(&san) {
                sans.push(san);
            }
        }
        Ok(sans)
    }
}

/// Checks a CN/O value: non-empty, printable, within X.509 length limits.
pub(crate) fn check_name(field: &'static str, value: &str) -> Result<(), PkiError> {
    let reason = if value.trim().is_empty() {
        Some("it is empty".to_string())
    } else if value.chars().count() > MAX_NAME_LEN {
        Some(format!("it is longer than {MAX_NAME_LEN} characters"))
    } else if value.chars().any(char::is_control) {
        Some("it contains control characters".to_string())
    } else if value.trim() != value {
        Some("it has leading or trailing whitespace".to_string())
    } else {
        None
    };
    match reason {
        Some(reason) => Err(PkiError::InvalidName {
            field,
            value: value.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// An IP literal becomes an IP SAN, anything else must be a valid DNS name.
fn parse_host(host: &str) -> Result<SanType, PkiError> {
    // Allow "[::1]" as people copy it from URLs.
    let unbracketed = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    check_dns_name(host).map_err(|reason| PkiError::InvalidHost {
        host: host.to_string(),
        reason,
    })?;
    dns_san(&host.to_ascii_lowercase())
}

fn dns_san(name: &str) -> Result<SanType, PkiError> {
    let ia5 = name
        .to_string()
        .try_into()
        .map_err(|e: rcgen::Error| PkiError::InvalidHost {
            host: name.to_string(),
            reason: e.to_string(),
        })?;
    Ok(SanType::DnsName(ia5))
}

/// RFC 1123 host name syntax; no wildcards, no trailing dot.
fn check_dns_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
    {
        return Err(match c {
            ' ' | '\t' => "it contains whitespace".into(),
            ':' => "it contains ':' (a port or an IPv6 address that does not parse)".into(),
            '/' => "it contains '/' (a URL or a CIDR range)".into(),
            '*' => "wildcard names are not allowed".into(),
            _ => format!("it contains the character {c:?}"),
        });
    }
    if name.len() > 253 {
        return Err("it is longer than 253 characters".into());
    }
    let labels: Vec<&str> = name.split('.').collect();
    for label in &labels {
        if label.is_empty() {
            return Err("it has an empty label (leading, trailing or double dot)".into());
        }
        if label.len() > 63 {
            return Err(format!("the label {label:?} is longer than 63 characters"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("the label {label:?} starts or ends with '-'"));
        }
    }
    // "10.0.0.256" passes the character checks but is a broken IP, not a name.
    if labels
        .last()
        .is_some_and(|l| l.chars().all(|c| c.is_ascii_digit()))
    {
        return Err("it looks like an IPv4 address but is not a valid one".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(role: NodeRole, hosts: &[&str]) -> NodeIdentity {
        NodeIdentity {
            node_id: "node-1".into(),
            role,
            cluster_id: "cluster-a".into(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
        }
    }

    #[test]
    fn role_display_and_parse_round_trip() {
        for role in [NodeRole::Manager, NodeRole::Worker] {
            assert_eq!(role.to_string().parse::<NodeRole>().expect("parse"), role);
        }
        assert_eq!(NodeRole::Manager.to_string(), "manager");
        assert_eq!(NodeRole::Worker.to_string(), "worker");
        assert!("admin".parse::<NodeRole>().is_err());
    }

    #[test]
    fn hosts_become_ip_or_dns_sans_after_the_fixed_name() {
        let sans = identity(
            NodeRole::Manager,
            &["10.0.0.1", "[::1]", "Node1.Example.com", "10.0.0.1"],
        )
        .subject_alt_names()
        .expect("valid hosts");
        assert_eq!(sans.len(), 4, "duplicates are dropped: {sans:?}");
        assert_eq!(sans[0], dns_san("capstan-manager").expect("dns"));
        assert_eq!(sans[1], SanType::IpAddress("10.0.0.1".parse().expect("ip")));
        assert_eq!(sans[2], SanType::IpAddress("::1".parse().expect("ip")));
        assert_eq!(sans[3], dns_san("node1.example.com").expect("dns"));
    }

    #[test]
    fn bad_hosts_are_named_in_the_error() {
        let cases = [
            ("", "empty"),
            ("node 1", "whitespace"),
            ("node1:2377", "':'"),
            ("https://node1", "':'"),
            ("*.example.com", "wildcard"),
            ("a..b", "empty label"),
            ("node1.", "empty label"),
            ("-node", "starts or ends"),
            ("10.0.0.256", "IPv4"),
            ("nöde", "character"),
        ];
        for (host, why) in cases {
            let err = identity(NodeRole::Worker, &[host])
                .subject_alt_names()
                .expect_err(host)
                .to_string();
            assert!(err.contains(&format!("{host:?}")), "{host}: {err}");
            assert!(err.contains(why), "{host}: {err}");
        }
    }

    #[test]
    fn names_are_checked() {
        let mut node = identity(NodeRole::Worker, &[]);
        node.node_id = " ".into();
        assert!(node.distinguished_name().is_err());
        node.node_id = "x".repeat(65);
        assert!(node.distinguished_name().is_err());
        node.node_id = "ok".into();
        node.cluster_id = "bad\ncluster".into();
        let err = node.distinguished_name().unwrap_err().to_string();
        assert!(err.contains("cluster id"), "{err}");
    }
}
