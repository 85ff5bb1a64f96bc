//! The cluster configuration, as TOML: MKE's `config-toml`
//! (`GET/PUT /api/ucp/config-toml`).
//!
//! [`parse_toml`] reads a document in three steps, each stopping at the
//! first error, reported as a [`ConfigError`] with a 1-based line and the
//! dotted key path where it can tell:
//! 1. TOML syntax (the line from the parser's span);
//! 2. the schema: every section and key is known (unknown ones are
//!    refused) and has the right type (line from the parser's span, key path
//!    from `serde_path_to_error`);
//! 3. semantics ([`validate`]: ranges, names, ports...). These errors know
//!    their key path; the line is found by parsing the document again with
//!    `toml_edit`, which keeps spans, and walking that path: the line of the
//!    key itself, or, when the key is not written (a default is at fault),
//!    of the nearest enclosing key or table header that is.
//!
//! Missing sections and keys take their defaults ([`Default`] has MKE's),
//! so a partial document is accepted; [`to_toml`] always writes every key,
//! so what is read back from the cluster is complete.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use serde::{Deserialize, Serialize};
use time::Duration;

use crate::accounts::validate_team_name;
use crate::audit::AuditLevel;
use crate::table::Table;

use crate::rbac::{
    is_builtin_role, ROLE_FULL_CONTROL, ROLE_NONE, ROLE_RESTRICTED_CONTROL, ROLE_SCHEDULER,
    ROLE_VIEW_ONLY,
};

/// The built-in role ids a new user's default role may be.
pub const BUILTIN_ROLE_IDS: [&str; 5] = [
    ROLE_NONE,
    ROLE_VIEW_ONLY,
    ROLE_RESTRICTED_CONTROL,
    ROLE_SCHEDULER,
    ROLE_FULL_CONTROL,
];

/// The whole cluster configuration, stored in table `cluster_config` under
/// `current`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// `[auth]`
    pub auth: AuthConfig,
    /// `[audit_log_configuration]`
    pub audit_log_configuration: AuditLogConfig,
    /// `[scheduling_configuration]`
    pub scheduling_configuration: SchedulingConfig,
    /// `[trust_configuration]`
    pub trust_configuration: TrustConfig,
    /// `[license_configuration]`
    pub license_configuration: LicenseConfig,
    /// `[cluster_config]`
    pub cluster_config: ClusterSection,
    /// `[[registries]]`: registries the cluster trusts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub registries: Vec<RegistryEntry>,
}

impl Table for ClusterConfig {
    const TABLE: &'static str = "cluster_config";
    fn id(&self) -> String {
        "current".into()
    }
}

/// Where accounts come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthBackend {
    /// Accounts managed by Capstan itself.
    #[default]
    Managed,
    /// Accounts synced from an LDAP directory.
    Ldap,
}

/// `[auth]`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `managed` or `ldap`.
    pub backend: AuthBackend,
    /// The role a new user gets on their private collection, one of
    /// [`BUILTIN_ROLE_IDS`]; `restrictedcontrol` by default.
    pub default_new_user_role: String,
    /// `[auth.sessions]`
    pub sessions: SessionsConfig,
    /// `[auth.login_rate_limit]` (Capstan's own)
    pub login_rate_limit: LoginRateLimit,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            backend: AuthBackend::Managed,
            default_new_user_role: ROLE_RESTRICTED_CONTROL.into(),
            sessions: SessionsConfig::default(),
            login_rate_limit: LoginRateLimit::default(),
        }
    }
}

/// `[auth.sessions]`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// How long a session lasts, 10 to 525600 (a year); 4320 (3 days) by
    /// default.
    pub lifetime_minutes: u32,
    /// A session used when it has less than this left is renewed; less than
    /// `lifetime_minutes`; 1440 by default.
    pub renewal_threshold_minutes: u32,
    /// Sessions a user may have at once, 1 to 100; 5 by default. A new
    /// login ends the oldest.
    pub per_user_limit: u32,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            lifetime_minutes: 4320,
            renewal_threshold_minutes: 1440,
            per_user_limit: 5,
        }
    }
}

/// `[auth.login_rate_limit]`: failed logins allowed per username and
/// source in a sliding window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginRateLimit {
    /// Failures allowed in the window, 1 to 1000; 10 by default.
    pub max_failures: u32,
    /// The window, 1 to 86400 seconds; 60 by default.
    pub window_seconds: u32,
}

impl Default for LoginRateLimit {
    fn default() -> Self {
        LoginRateLimit {
            max_failures: 10,
            window_seconds: 60,
        }
    }
}

/// `[audit_log_configuration]`
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditLogConfig {
    /// `""` (none), `"metadata"` (the default) or `"request"`.
    pub level: AuditLevel,
    /// Whether support dumps include the audit log; false by default.
    pub support_dump_include_audit_logs: bool,
}

/// The orchestrator new nodes serve.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeOrchestrator {
    /// Swarm services.
    #[default]
    Swarm,
    /// Kubernetes workloads.
    Kubernetes,
}

/// `[scheduling_configuration]`
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulingConfig {
    /// Whether admins' workloads may run on managers; false by default.
    pub enable_admin_ucp_scheduling: bool,
    /// `swarm` (the default) or `kubernetes`.
    pub default_node_orchestrator: NodeOrchestrator,
}

/// `[trust_configuration]`
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrustConfig {
    /// Whether only signed images may run; false by default.
    pub require_content_trust: bool,
    /// Teams (`team` or `org/team`) one of whose members must have signed
    /// an image for it to run.
    pub require_signature_from: Vec<String>,
}

/// `[license_configuration]`
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LicenseConfig {
    /// Whether the license is renewed automatically; false by default.
    pub auto_refresh: bool,
}

/// The oldest TLS version the control plane accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2 (the default).
    #[default]
    #[serde(rename = "TLSv1.2")]
    Tls12,
    /// TLS 1.3.
    #[serde(rename = "TLSv1.3")]
    Tls13,
}

/// `[cluster_config]`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    /// Port of the API and the dashboard; 443 by default.
    pub controller_port: u16,
    /// Port of the cluster's gRPC (Swarm) API; 2377 by default.
    pub swarm_port: u16,
    /// Port of the Kubernetes API server; 6443 by default.
    pub kube_apiserver_port: u16,
    /// `TLSv1.2` (the default) or `TLSv1.3`.
    pub min_tls_version: TlsVersion,
    /// How long metrics are kept, e.g. `24h` (the default), `7d`, `1h30m`:
    /// see [`parse_duration`].
    pub metrics_retention_time: String,
    /// Whether the profiling endpoints are on; false by default.
    pub profiling_enabled: bool,
}

impl Default for ClusterSection {
    fn default() -> Self {
        ClusterSection {
            controller_port: 443,
            swarm_port: 2377,
            kube_apiserver_port: 6443,
            min_tls_version: TlsVersion::Tls12,
            metrics_retention_time: "24h".into(),
            profiling_enabled: false,
        }
    }
}

/// `[[registries]]`: a registry the cluster trusts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryEntry {
    /// `host[:port]`, without a scheme or a path; IPv6 in brackets.
    /// Required (an absent one is refused as empty by [`validate`]).
    #[serde(default)]
    pub host_address: String,
    /// PEM certificates of the CAs that sign the registry's certificate,
    /// when not a public CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
}

/// A configuration document that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct ConfigError {
    /// 1-based line of the document, when known.
    pub line: Option<usize>,
    /// Dotted path of the offending key, e.g.
    /// `auth.sessions.lifetime_minutes` or `registries[1].host_address`.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    fn describe(&self) -> String {
        match (self.line, &self.key) {
            (Some(line), Some(key)) => format!("line {line}, key {key}: {}", self.message),
            (Some(line), None) => format!("line {line}: {}", self.message),
            (None, Some(key)) => format!("key {key}: {}", self.message),
            (None, None) => self.message.clone(),
        }
    }
}

/// One step of a key path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Key(&'static str),
    Index(usize),
}

/// Formats a path as `serde_path_to_error` does: `a.b[2].c`.
fn dotted(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// A semantic error before its line is known.
struct Invalid {
    path: Vec<Seg>,
    message: String,
}

fn invalid(path: &[Seg], message: String) -> Invalid {
    Invalid {
        path: path.to_vec(),
        message,
    }
}

fn in_range(path: &[Seg], value: u32, range: std::ops::RangeInclusive<u32>) -> Result<(), Invalid> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(invalid(
            path,
            format!(
                "must be between {} and {}, not {value}",
                range.start(),
                range.end()
            ),
        ))
    }
}

/// Reads a config-toml document: syntax, then schema, then [`validate`].
pub fn parse_toml(doc: &str) -> Result<ClusterConfig, ConfigError> {
    let deserializer = toml::Deserializer::new(doc);
    let config: ClusterConfig = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ConfigError {
            line: inner.span().map(|span| line_of(doc, span.start)),
            key: (path != ".").then_some(path),
            message: inner.message().to_owned(),
        }
    })?;
    check(&config).map_err(|e| ConfigError {
        line: locate(doc, &e.path).map(|offset| line_of(doc, offset)),
        key: Some(dotted(&e.path)),
        message: e.message,
    })?;
    Ok(config)
}

/// Writes a configuration as a config-toml document, every key included.
pub fn to_toml(c: &ClusterConfig) -> String {
    toml::to_string(c).expect("the cluster configuration's types serialize to TOML")
}

/// Checks the semantics of a configuration (ranges, names, ports, hosts);
/// errors name the key, without a line.
pub fn validate(c: &ClusterConfig) -> Result<(), ConfigError> {
    check(c).map_err(|e| ConfigError {
        line: None,
        key: Some(dotted(&e.path)),
        message: e.message,
    })
}

fn check(c: &ClusterConfig) -> Result<(), Invalid> {
    use Seg::{Index, Key};

    let auth = &c.auth;
    let role = &auth.default_new_user_role;
    if !is_builtin_role(role) {
        return Err(invalid(
            &[Key("auth"), Key("default_new_user_role")],
            format!(
                "unknown role {role:?}: use one of {}",
                BUILTIN_ROLE_IDS.join(", ")
            ),
        ));
    }
    let sessions = &auth.sessions;
    let at = |k| [Key("auth"), Key("sessions"), Key(k)];
    in_range(
        &at("lifetime_minutes"),
        sessions.lifetime_minutes,
        10..=525_600,
    )?;
    if sessions.renewal_threshold_minutes >= sessions.lifetime_minutes {
        return Err(invalid(
            &at("renewal_threshold_minutes"),
            format!(
                "must be less than lifetime_minutes ({}), not {}",
                sessions.lifetime_minutes, sessions.renewal_threshold_minutes
            ),
        ));
    }
    in_range(&at("per_user_limit"), sessions.per_user_limit, 1..=100)?;
    let limit = &auth.login_rate_limit;
    let at = |k| [Key("auth"), Key("login_rate_limit"), Key(k)];
    in_range(&at("max_failures"), limit.max_failures, 1..=1000)?;
    in_range(&at("window_seconds"), limit.window_seconds, 1..=86_400)?;

    for (i, team) in c
        .trust_configuration
        .require_signature_from
        .iter()
        .enumerate()
    {
        let path = [
            Key("trust_configuration"),
            Key("require_signature_from"),
            Index(i),
        ];
        let parts: Vec<&str> = team.split('/').collect();
        let checked = match parts.as_slice() {
            [team] => validate_team_name(team).map_err(|e| e.to_string()),
            [org, team] => crate::accounts::validate_org_name(org)
                .and_then(|()| validate_team_name(team))
                .map_err(|e| e.to_string()),
            _ => Err(format!("{team:?} has more than one '/'")),
        };
        checked.map_err(|e| invalid(&path, format!("{e}; use \"team\" or \"org/team\"")))?;
    }

    let cluster = &c.cluster_config;
    let ports = [
        ("controller_port", cluster.controller_port),
        ("swarm_port", cluster.swarm_port),
        ("kube_apiserver_port", cluster.kube_apiserver_port),
    ];
    for (i, (name, port)) in ports.iter().enumerate() {
        let path = [Key("cluster_config"), Key(name)];
        if *port == 0 {
            return Err(invalid(
                &path,
                "must be a port from 1 to 65535, not 0".into(),
            ));
        }
        if let Some((other, _)) = ports[..i].iter().find(|(_, p)| p == port) {
            return Err(invalid(
                &path,
                format!("port {port} is already the {other}"),
            ));
        }
    }
    parse_duration(&cluster.metrics_retention_time)
        .map_err(|e| invalid(&[Key("cluster_config"), Key("metrics_retention_time")], e))?;

    let mut seen: Vec<String> = Vec::new();
    for (i, registry) in c.registries.iter().enumerate() {
        let at = |k| [Key("registries"), Index(i), Key(k)];
        check_host_address(&registry.host_address).map_err(|e| invalid(&at("host_address"), e))?;
        let normalized = registry.host_address.to_ascii_lowercase();
        if seen.contains(&normalized) {
            return Err(invalid(
                &at("host_address"),
                format!("{:?} is listed twice", registry.host_address),
            ));
        }
        seen.push(normalized);
        if let Some(bundle) = &registry.ca_bundle {
            check_pem_bundle(bundle).map_err(|e| invalid(&at("ca_bundle"), e))?;
        }
    }
    Ok(())
}

/// Parses a retention time as Prometheus writes durations: one or more
/// `<number><unit>` with units `ms`, `s`, `m`, `h`, `d`, `w`, `y` (365
/// days), largest first, each at most once (`24h`, `7d`, `1h30m`); the
/// total must be positive.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let bad = |why: &str| format!("{s:?} is not a duration like \"24h\" or \"1h30m\": {why}");
    if s.is_empty() {
        return Err(bad("it is empty"));
    }
    let mut rest = s;
    let mut total_ms: u64 = 0;
    let mut last_unit: Option<usize> = None;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(bad("expected a number"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| bad("a number is too large"))?;
        rest = &rest[digits..];
        let letters = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let unit = &rest[..letters];
        let Some(index) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(bad("units are ms, s, m, h, d, w and y"));
        };
        if last_unit.is_some_and(|last| index <= last) {
            return Err(bad("units must go from largest to smallest, each once"));
        }
        last_unit = Some(index);
        rest = &rest[letters..];
        total_ms = number
            .checked_mul(UNITS[index].1)
            .and_then(|ms| total_ms.checked_add(ms))
            .filter(|ms| *ms <= i64::MAX as u64)
            .ok_or_else(|| bad("it is too long"))?;
    }
    if total_ms == 0 {
        return Err(bad("it must be longer than zero"));
    }
    Ok(Duration::milliseconds(total_ms as i64))
}

/// Checks `host[:port]`: a DNS name, an IPv4 address or a bracketed IPv6
/// address, and an optional port from 1 to 65535.
fn check_host_address(address: &str) -> Result<(), String> {
    let bad = |why: &str| format!("{address:?} is not host[:port]: {why}");
    if address.is_empty() {
        return Err("must not be empty: use host[:port]".into());
    }
    if address.contains("://") {
        return Err(bad("leave out the scheme"));
    }
    if address.contains('/') {
        return Err(bad("leave out the path"));
    }
    let (host, port) = if let Some(inner) = address.strip_prefix('[') {
        let Some((ip, after)) = inner.split_once(']') else {
            return Err(bad("the IPv6 address has no closing ']'"));
        };
        if ip.parse::<Ipv6Addr>().is_err() {
            return Err(bad("not an IPv6 address in the brackets"));
        }
        match after {
            "" => (None, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return Err(bad("expected ':port' after ']'")),
            },
        }
    } else {
        match address.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(address), None),
        }
    };
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return Err(bad("the port must be a number from 1 to 65535")),
        }
    }
    if let Some(host) = host {
        if host.parse::<Ipv4Addr>().is_ok() {
            return Ok(());
        }
        let labels_ok = host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !labels_ok {
            return Err(bad(
                "the host must be a DNS name, an IPv4 address or an IPv6 address in brackets",
            ));
        }
    }
    Ok(())
}

/// Checks that a CA bundle is PEM certificates (markers only: the
/// certificates are parsed where they are used).
fn check_pem_bundle(bundle: &str) -> Result<(), String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let begins = bundle.matches(BEGIN).count();
    let ends = bundle.matches(END).count();
    if begins == 0 {
        let start: String = bundle.trim().chars().take(40).collect();
        return Err(format!(
            "is not PEM certificates: no {BEGIN} line (it starts with {start:?})"
        ));
    }
    if begins != ends {
        return Err(format!(
            "is not PEM certificates: {begins} {BEGIN} lines but {ends} {END} lines"
        ));
    }
    Ok(())
}

/// 1-based line of a byte offset.
fn line_of(doc: &str, offset: usize) -> usize {
    let end = offset.min(doc.len());
    doc.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Byte offset in `doc` of the key at `path`, or of the nearest enclosing
/// key or table header written in the document.
fn locate(doc: &str, path: &[Seg]) -> Option<usize> {
    use toml_edit::{Array, ArrayOfTables, Item, TableLike, Value};

    enum Node<'a> {
        Map(&'a dyn TableLike),
        Tables(&'a ArrayOfTables),
        List(&'a Array),
        Leaf,
    }
    fn of_value(v: &Value) -> Node<'_> {
        match v {
            Value::InlineTable(t) => Node::Map(t),
            Value::Array(a) => Node::List(a),
            _ => Node::Leaf,
        }
    }
    fn of_item(item: &Item) -> Node<'_> {
        match item {
            Item::Table(t) => Node::Map(t),
            Item::ArrayOfTables(a) => Node::Tables(a),
            Item::Value(v) => of_value(v),
            Item::None => Node::Leaf,
        }
    }
    let start = |span: Option<Range<usize>>| span.map(|s| s.start);

    let parsed = toml_edit::ImDocument::parse(doc).ok()?;
    let mut node = Node::Map(parsed.as_table());
    let mut found: Option<usize> = None;
    for seg in path {
        node = match (seg, node) {
            (Seg::Key(k), Node::Map(map)) => match map.get_key_value(k) {
                Some((key, item)) => {
                    found = start(key.span()).or(found);
                    of_item(item)
                }
                None => break,
            },
            (Seg::Index(i), Node::Tables(tables)) => match tables.get(*i) {
                Some(table) => {
                    found = start(table.span()).or(found);
                    Node::Map(table)
                }
                None => break,
            },
            (Seg::Index(i), Node::List(list)) => match list.get(*i) {
                Some(value) => {
                    found = start(value.span()).or(found);
                    of_value(value)
                }
                None => break,
            },
            _ => break,
        };
    }
    found
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{decode, encode};

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    fn err(doc: &str) -> ConfigError {
        parse_toml(doc).unwrap_err()
    }

    #[test]
    fn default_round_trips() {
        let c = ClusterConfig::default();
        let text = to_toml(&c);
        assert_eq!(parse_toml(&text).unwrap(), c, "{text}");
        assert!(text.contains("lifetime_minutes = 4320"), "{text}");
        assert!(text.contains("level = \"metadata\""), "{text}");
        assert!(text.contains("min_tls_version = \"TLSv1.2\""), "{text}");
        assert_eq!(parse_toml("").unwrap(), c);
    }

    #[test]
    fn full_config_round_trips() {
        let mut c = ClusterConfig::default();
        c.auth.backend = AuthBackend::Ldap;
        c.auth.default_new_user_role = "viewonly".into();
        c.auth.sessions.lifetime_minutes = 60;
        c.auth.sessions.renewal_threshold_minutes = 0;
        c.audit_log_configuration.level = AuditLevel::None;
        c.scheduling_configuration.default_node_orchestrator = NodeOrchestrator::Kubernetes;
        c.trust_configuration.require_content_trust = true;
        c.trust_configuration.require_signature_from = vec!["ops".into(), "acme/qa team".into()];
        c.cluster_config.min_tls_version = TlsVersion::Tls13;
        c.cluster_config.metrics_retention_time = "7d12h".into();
        c.registries = vec![
            RegistryEntry {
                host_address: "registry.example.com:5000".into(),
                ca_bundle: Some(CA.into()),
            },
            RegistryEntry {
                host_address: "[fd00::1]:443".into(),
                ca_bundle: None,
            },
        ];
        let text = to_toml(&c);
        assert_eq!(parse_toml(&text).unwrap(), c, "{text}");
        assert!(text.contains("level = \"\""), "{text}");
        assert_eq!(decode::<ClusterConfig>(&encode(&c)).unwrap(), c);
        assert_eq!(c.id(), "current");
    }

    #[test]
    fn partial_documents_take_defaults() {
        let c = parse_toml("[auth.sessions]\nper_user_limit = 2\n").unwrap();
        assert_eq!(c.auth.sessions.per_user_limit, 2);
        assert_eq!(c.auth.sessions.lifetime_minutes, 4320);
        assert_eq!(c.cluster_config, ClusterSection::default());
        let c = parse_toml("[audit_log_configuration]\nlevel = \"none\"\n").unwrap();
        assert_eq!(c.audit_log_configuration.level, AuditLevel::None);
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let e = err("[auth]\nbackend = \"managed\"\n\n[auth.sessions]\nlifetime_minutes = 60\nlifetim_minutes = 60\n");
        assert_eq!(e.line, Some(6), "{e}");
        assert_eq!(
            e.key.as_deref(),
            Some("auth.sessions.lifetim_minutes"),
            "{e}"
        );
        assert!(e.message.contains("unknown field `lifetim_minutes`"), "{e}");
        assert!(
            e.to_string()
                .starts_with("line 6, key auth.sessions.lifetim_minutes: unknown field"),
            "{e}"
        );

        let e = err("[cluster_config]\nswarm_port = 2377\n\n[nonsense]\nx = 1\n");
        assert_eq!(e.line, Some(4), "{e}");
        assert_eq!(e.key.as_deref(), Some("nonsense"), "{e}");

        let e = err("[[registries]]\nhost_address = \"a.example\"\n[[registries]]\nhost_address = \"b.example\"\ninsecure = true\n");
        assert_eq!(e.line, Some(5), "{e}");
        assert_eq!(e.key.as_deref(), Some("registries[1].insecure"), "{e}");
    }

    #[test]
    fn wrong_type_names_line_and_key() {
        let e = err("[auth]\n[auth.sessions]\nlifetime_minutes = 60\nper_user_limit = \"five\"\n");
        assert_eq!(e.line, Some(4), "{e}");
        assert_eq!(
            e.key.as_deref(),
            Some("auth.sessions.per_user_limit"),
            "{e}"
        );
        assert!(e.message.contains("invalid type"), "{e}");

        let e = err("[cluster_config]\ncontroller_port = 70000\n");
        assert_eq!(e.line, Some(2), "{e}");
        assert_eq!(
            e.key.as_deref(),
            Some("cluster_config.controller_port"),
            "{e}"
        );

        let e = err("[audit_log_configuration]\n\nlevel = \"verbose\"\n");
        assert_eq!(e.line, Some(3), "{e}");
        assert_eq!(
            e.key.as_deref(),
            Some("audit_log_configuration.level"),
            "{e}"
        );
        assert!(e.message.contains("\"verbose\""), "{e}");

        let e = err("[cluster_config]\nmin_tls_version = \"TLSv1.0\"\n");
        assert_eq!(e.line, Some(2), "{e}");
        assert_eq!(
            e.key.as_deref(),
            Some("cluster_config.min_tls_version"),
            "{e}"
        );

        let e = err("[scheduling_configuration]\nenable_admin_ucp_scheduling = \"yes\"\n");
        assert_eq!(e.line, Some(2), "{e}");
    }

    #[test]
    fn out_of_range_names_the_key_and_line() {
        let e = err("[auth]\nbackend = \"managed\"\n[auth.sessions]\nlifetime_minutes = 5\n");
        assert_eq!(
            e.to_string(),
            "line 4, key auth.sessions.lifetime_minutes: must be between 10 and 525600, not 5"
        );
        let e = validate(&{
            let mut c = ClusterConfig::default();
            c.auth.sessions.per_user_limit = 0;
            c
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "key auth.sessions.per_user_limit: must be between 1 and 100, not 0"
        );
    }

    #[test]
    fn semantic_error_on_a_default_points_at_its_table() {
        // renewal_threshold_minutes keeps its default (1440), now too long.
        let e = err("# sessions\n[auth.sessions]\nlifetime_minutes = 600\n");
        assert_eq!(
            e.key.as_deref(),
            Some("auth.sessions.renewal_threshold_minutes")
        );
        assert_eq!(e.line, Some(2), "{e}");
        assert!(
            e.message
                .contains("less than lifetime_minutes (600), not 1440"),
            "{e}"
        );
    }

    #[test]
    fn semantic_errors() {
        let e = err("[auth]\ndefault_new_user_role = \"admin\"\n");
        assert_eq!(e.line, Some(2));
        assert!(e.to_string().contains("unknown role \"admin\""), "{e}");

        let e = err("[trust_configuration]\nrequire_signature_from = [\"ok\",\n  \"a/b/c\"]\n");
        assert_eq!(
            e.key.as_deref(),
            Some("trust_configuration.require_signature_from[1]")
        );
        assert_eq!(e.line, Some(3), "{e}");

        let e = err("[cluster_config]\nswarm_port = 443\n");
        assert_eq!(e.key.as_deref(), Some("cluster_config.swarm_port"));
        assert!(
            e.message.contains("443 is already the controller_port"),
            "{e}"
        );

        let e = err("[cluster_config]\nmetrics_retention_time = \"24 hours\"\n");
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("\"24 hours\""), "{e}");

        let e = err("[auth.login_rate_limit]\nwindow_seconds = 0\n");
        assert_eq!(
            e.key.as_deref(),
            Some("auth.login_rate_limit.window_seconds")
        );

        let doc = "[[registries]]\nhost_address = \"ok.example\"\n\n[[registries]]\nhost_address = \"https://bad.example\"\n";
        let e = err(doc);
        assert_eq!(e.line, Some(5), "{e}");
        assert_eq!(e.key.as_deref(), Some("registries[1].host_address"));
        assert!(e.message.contains("\"https://bad.example\""), "{e}");

        let e = err("[[registries]]\nhost_address = \"OK.example\"\n[[registries]]\nhost_address = \"ok.example\"\n");
        assert!(e.message.contains("listed twice"), "{e}");

        let e = err("[[registries]]\nhost_address = \"ok.example\"\nca_bundle = \"not a cert\"\n");
        assert_eq!(e.key.as_deref(), Some("registries[0].ca_bundle"));
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("\"not a cert\""), "{e}");

        let e = err("[[registries]]\nca_bundle = \"x\"\n");
        assert_eq!(
            e.to_string(),
            "line 1, key registries[0].host_address: must not be empty: use host[:port]"
        );
    }

    #[test]
    fn broken_syntax_names_the_line() {
        let e = err("[auth]\nbackend = \"managed\"\n[auth.sessions\nlifetime_minutes = 60\n");
        assert_eq!(e.line, Some(3), "{e}");
        assert_eq!(e.key, None);
        assert!(e.to_string().starts_with("line 3: "), "{e}");

        let e = err("[auth]\nbackend = \"managed\n");
        assert_eq!(e.line, Some(2), "{e}");
    }

    #[test]
    fn durations() {
        let ok = |s: &str| parse_duration(s).unwrap();
        assert_eq!(ok("24h"), Duration::hours(24));
        assert_eq!(ok("1h30m"), Duration::minutes(90));
        assert_eq!(ok("2w3d"), Duration::days(17));
        assert_eq!(ok("1y"), Duration::days(365));
        assert_eq!(ok("1500ms"), Duration::milliseconds(1500));
        for bad in [
            "",
            "0h",
            "h",
            "24",
            "24 h",
            "30m1h",
            "1h1h",
            "5x",
            "99999999999999999999y",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
    }

    #[test]
    fn host_addresses() {
        for ok in [
            "registry",
            "reg.example.com",
            "reg.example.com:5000",
            "10.0.0.1:443",
            "[::1]",
            "[fd00::1]:5000",
        ] {
            assert!(check_host_address(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "reg.example.com:0",
            "reg.example.com:x",
            "-reg.example",
            "reg..example",
            "::1",
            "[::1",
            "[nope]:1",
            "reg.example/path",
            "a b",
        ] {
            assert!(check_host_address(bad).is_err(), "{bad}");
        }
    }
}
