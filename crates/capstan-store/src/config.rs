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

/// The Raft configuration every manager uses (cluster name "capstan").
pub fn raft_config() -> Arc<Config> {
    let config = Config {
        cluster_name: "capstan".to_string(),
        heartbeat_interval: HEARTBEAT_INTERVAL_MS,
        election_timeout_min: ELECTION_TIMEOUT_MS.0,
        election_timeout_max: ELECTION_TIMEOUT_MS.1,
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
    Arc::new(
        config
            .validate()
            .expect("the built-in raft configuration is valid"),
    )
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
}
