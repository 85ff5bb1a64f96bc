//! The one configuration type. Values come from, lowest first: built-in
//! defaults, the TOML file (`--config`, else `/etc/capstan/config.toml` when
//! it exists), `CAPSTAN_*` environment variables, and flags. The documented
//! example is `deploy/config.example.toml`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use capstan_store::RaftTiming;
use serde::Deserialize;

/// Where the file is looked for when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/capstan/config.toml";

/// The config file as written; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    /// Node state directory.
    pub data_dir: Option<PathBuf>,
    /// Address other nodes reach this node at.
    pub host_address: Option<String>,
    /// Address the swarm port binds.
    pub listen_address: Option<String>,
    /// Extra certificate names.
    pub sans: Option<Vec<String>>,
    /// Gateway port.
    pub controller_port: Option<u16>,
    /// Cluster gRPC port.
    pub swarm_port: Option<u16>,
    /// Kubernetes API port.
    pub kube_apiserver_port: Option<u16>,
    /// Certificate lifetime, e.g. "90d".
    pub cert_ttl: Option<String>,
    /// Log filter.
    pub log_level: Option<String>,
    /// Raft timers.
    #[serde(default)]
    pub raft: RaftSection,
    /// Worker agent settings.
    #[serde(default)]
    pub agent: AgentSection,
}

/// `[raft]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaftSection {
    /// Leader heartbeat interval, ms.
    pub heartbeat_ms: Option<u64>,
    /// Election timeout lower bound, ms.
    pub election_timeout_min_ms: Option<u64>,
    /// Election timeout upper bound, ms.
    pub election_timeout_max_ms: Option<u64>,
}

/// `[agent]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// How often an agent heartbeats, e.g. "5s".
    pub heartbeat_interval: Option<String>,
    /// Port of the agent's engine proxy (0 picks a free one).
    pub engine_proxy_port: Option<u16>,
}

impl FileSettings {
    /// Reads the file named by `--config`, or the default file if present.
    pub fn load(explicit: Option<&Path>) -> anyhow::Result<Self> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None if Path::new(DEFAULT_CONFIG).exists() => PathBuf::from(DEFAULT_CONFIG),
            None => return Ok(Self::default()),
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("read config file {}", path.display()))?;
        let settings: FileSettings =
            toml::from_str(&text).with_context(|| format!("config file {}", path.display()))?;
        settings
            .validate()
            .with_context(|| format!("config file {}", path.display()))?;
        Ok(settings)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if let Some(ttl) = &self.cert_ttl {
            parse_ttl_days(ttl).context("cert_ttl")?;
        }
        if let Some(hb) = &self.agent.heartbeat_interval {
            parse_duration(hb).context("[agent] heartbeat_interval")?;
        }
        self.raft_timing().map_err(anyhow::Error::msg)?;
        Ok(())
    }

    /// Raft timing: the file's values over the defaults.
    pub fn raft_timing(&self) -> Result<RaftTiming, String> {
        let d = RaftTiming::default();
        let t = RaftTiming {
            heartbeat_ms: self.raft.heartbeat_ms.unwrap_or(d.heartbeat_ms),
            election_timeout_min_ms: self
                .raft
                .election_timeout_min_ms
                .unwrap_or(d.election_timeout_min_ms),
            election_timeout_max_ms: self
                .raft
                .election_timeout_max_ms
                .unwrap_or(d.election_timeout_max_ms),
        };
        t.validate()?;
        Ok(t)
    }
}

/// Parses "500ms", "5s", "10m", "12h", "90d".
pub fn parse_duration(s: &str) -> anyhow::Result<std::time::Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .with_context(|| format!("{s:?}: expected a number and a unit (ms, s, m, h, d)"))?;
    let ms = match unit {
        "ms" => n,
        "s" => n * 1_000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        "d" => n * 86_400_000,
        other => bail!("{s:?}: unknown unit {other:?}; use ms, s, m, h or d"),
    };
    Ok(std::time::Duration::from_millis(ms))
}

/// Parses a certificate lifetime into whole days (at least one, at most ten years).
pub fn parse_ttl_days(s: &str) -> anyhow::Result<u32> {
    let d = if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() {
        parse_duration(&format!("{s}d"))?
    } else {
        parse_duration(s)?
    };
    let days = d.as_secs().div_ceil(86_400).max(1);
    if days > 3650 {
        bail!("{s:?} is longer than 10 years");
    }
    Ok(days as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_and_durations() {
        assert_eq!(parse_ttl_days("90d").unwrap(), 90);
        assert_eq!(parse_ttl_days("90").unwrap(), 90);
        assert_eq!(parse_ttl_days("12h").unwrap(), 1);
        assert_eq!(parse_ttl_days("49h").unwrap(), 3);
        assert!(parse_ttl_days("90x").is_err());
        assert!(parse_ttl_days("d").is_err());
        assert!(parse_ttl_days("99999d").is_err());
        assert_eq!(parse_duration("500ms").unwrap().as_millis(), 500);
        assert_eq!(parse_duration("5s").unwrap().as_secs(), 5);
    }

    #[test]
    fn the_example_config_is_valid_and_complete() {
        let text = include_str!("../../../deploy/config.example.toml");
        let s: FileSettings = toml::from_str(text).expect("example parses with no unknown key");
        s.validate().expect("example values are valid");
        assert_eq!(s.swarm_port, Some(2377));
        assert!(s.raft.heartbeat_ms.is_some() && s.agent.heartbeat_interval.is_some());
        assert_eq!(s.agent.engine_proxy_port, Some(12376));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = toml::from_str::<FileSettings>("swarm_prot = 1").unwrap_err();
        assert!(err.to_string().contains("swarm_prot"), "{err}");
        let s: FileSettings = toml::from_str("[raft]\nheartbeat_ms = 900").unwrap();
        assert!(s.validate().unwrap_err().to_string().contains("twice"));
    }
}
