//! Raft timing and log-retention settings of the capstan cluster.

use std::sync::Arc;

use openraft::{Config, SnapshotPolicy};

/// Interval between leader heartbeats, in ms. Openraft also uses it as the
/// timeout of one AppendEntries RPC, and ticks its timers every 1.5 × this.
pub const HEARTBEAT_INTERVAL_MS: u64 = 200;
/// Openraft's election timeout range, in ms.
///
/// In openraft 0.9 a follower that has seen a committed leader waits for the
/// leader's lease (`election_timeout_max`) *plus* a random election timeout
/// before it campaigns. With 400–550 ms a follower campaigns after 950–1100 ms
/// of silence (about five missed heartbeats), and a dead leader is replaced
/// after at most ~1.4 s (that, one 300 ms tick and a vote round trip): well
/// within 2 s.
pub const ELECTION_TIMEOUT_MS: (u64, u64) = (400, 550);
/// Entries applied since the last snapshot that trigger a new snapshot.
pub const SNAPSHOT_EVERY_LOGS: u64 = 10_000;
/// Entries already in a snapshot that are kept in the log (for slightly
/// lagging followers) before being purged.
pub const LOGS_KEPT_AFTER_SNAPSHOT: u64 = 1_000;

/// The Raft timers an operator may tune (`[raft]` in the config file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RaftTiming {
    /// Leader heartbeat interval, ms.
    pub heartbeat_ms: u64,
    /// Lower bound of the election timeout, ms.
    pub election_timeout_min_ms: u64,
    /// Upper bound of the election timeout, ms.
    pub election_timeout_max_ms: u64,
}

impl Default for RaftTiming {
    fn default() -> Self {
        Self {
            heartbeat_ms: HEARTBEAT_INTERVAL_MS,
            election_timeout_min_ms: ELECTION_TIMEOUT_MS.0,
            election_timeout_max_ms: ELECTION_TIMEOUT_MS.1,
        }
    }
}

impl RaftTiming {
    /// Checks that followers tolerate lost heartbeats and the range is a range.
    pub fn validate(&self) -> Result<(), String> {
        if self.heartbeat_ms == 0 {
            return Err("raft heartbeat_ms must be above 0".into());
        }
        if self.election_timeout_min_ms >= self.election_timeout_max_ms {
            return Err(format!(
                "raft election_timeout_min_ms ({}) must be below election_timeout_max_ms ({})",
                self.election_timeout_min_ms, self.election_timeout_max_ms
            ));
        }
        if self.election_timeout_min_ms < 2 * self.heartbeat_ms {
            return Err(format!(
                "raft election_timeout_min_ms ({}) must be at least twice heartbeat_ms ({}), or followers campaign while the leader is alive",
                self.election_timeout_min_ms, self.heartbeat_ms
            ));
        }
        Ok(())
    }
}

/// The Raft configuration every manager uses (cluster name "capstan"), with
/// the default timing.
pub fn raft_config() -> Arc<Config> {
    raft_config_with(&RaftTiming::default()).expect("the built-in raft timing is valid")
}

/// The Raft configuration with operator-chosen timing.
pub fn raft_config_with(timing: &RaftTiming) -> Result<Arc<Config>, String> {
    timing.validate()?;
    let config = Config {
        cluster_name: "capstan".to_string(),
        heartbeat_interval: timing.heartbeat_ms,
        election_timeout_min: timing.election_timeout_min_ms,
        election_timeout_max: timing.election_timeout_max_ms,
        // One snapshot chunk (1 MiB, ~3.5 MiB once JSON-encoded) must arrive
        // and, for the last one, be installed within this time.
        install_snapshot_timeout: 5_000,
        snapshot_max_chunk_size: 1024 * 1024,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY_LOGS),
        max_in_snapshot_log_to_keep: LOGS_KEPT_AFTER_SNAPSHOT,
        // Must exceed the snapshot interval, or a lagging follower would be
        // sent entries the leader has already purged.
        replication_lag_threshold: SNAPSHOT_EVERY_LOGS * 2,
        max_payload_entries: 300,
        purge_batch_size: 64,
        ..Config::default()
    };
    config.validate().map(Arc::new).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elects_well_within_two_seconds_and_purges_the_log() {
        let c = raft_config();
        assert_eq!(c.cluster_name, "capstan");
        // Worst case until a follower campaigns: lease + timeout + one tick.
        let worst_failover = 2 * c.election_timeout_max + c.heartbeat_interval * 3 / 2;
        assert!(worst_failover <= 1_500, "{worst_failover} ms");
        // Followers tolerate several lost heartbeats before campaigning.
        assert!(c.election_timeout_max + c.election_timeout_min >= 4 * c.heartbeat_interval);
        assert_eq!(c.snapshot_policy, SnapshotPolicy::LogsSinceLast(10_000));
        assert!(c.max_in_snapshot_log_to_keep <= 10_000);
    }

    #[test]
    fn operator_timing_is_validated() {
        let ok = RaftTiming {
            heartbeat_ms: 250,
            election_timeout_min_ms: 1000,
            election_timeout_max_ms: 2000,
        };
        assert_eq!(raft_config_with(&ok).unwrap().heartbeat_interval, 250);
        let inverted = RaftTiming {
            election_timeout_min_ms: 2000,
            election_timeout_max_ms: 1000,
            ..ok
        };
        assert!(raft_config_with(&inverted).unwrap_err().contains("below"));
        let too_close = RaftTiming {
            heartbeat_ms: 600,
            ..ok
        };
        assert!(raft_config_with(&too_close).unwrap_err().contains("twice"));
    }
}
