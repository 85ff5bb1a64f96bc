//! The figures a benchmark run reports, as one JSON document: what each
//! system measured, capstan/etcd ratios, and the targets Capstan is held to.

use serde::Serialize;

use super::stats::{mib, ms_from_us, per_sec, percentile, round};
use super::workload::Samples;

/// Capstan's targets: an idle manager's resident memory and the time from
/// a leader's death to the first acknowledged write.
pub const IDLE_RSS_TARGET_MB: f64 = 60.0;
/// See [`IDLE_RSS_TARGET_MB`].
pub const FAILOVER_TARGET_MS: f64 = 2_000.0;
/// The client count at which write throughput and p99 are compared.
pub const COMPARED_CLIENTS: usize = 64;

/// The whole document printed on stdout.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Always `store`.
    pub benchmark: &'static str,
    /// How the run was set up.
    pub settings: Settings,
    /// The machine it ran on.
    pub machine: Machine,
    /// Capstan's figures.
    pub capstan: Figures,
    /// etcd's figures, unless `--no-peer`.
    pub etcd: Option<Figures>,
    /// capstan / etcd for each figure, unless `--no-peer`.
    pub ratio: Option<Ratios>,
    /// Capstan against its targets.
    pub targets: Targets,
}

/// How the run was set up.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Members of each cluster.
    pub members: usize,
    /// Length of each timed phase.
    pub seconds_per_phase: u64,
    /// Size of every value written.
    pub value_bytes: usize,
    /// `leader` or `all` (client i on member i mod 3).
    pub clients_connect_to: &'static str,
    /// Client counts of the write phases.
    pub write_clients: Vec<usize>,
    /// Client count of the read phase.
    pub read_clients: usize,
    /// Consistency of the reads.
    pub read_consistency: &'static str,
    /// Distinct keys written in the growth phase (0: skipped).
    pub growth_writes: u64,
    /// Clients of the growth phase.
    pub growth_clients: usize,
    /// How often the failover probe sends a write, which bounds its
    /// precision.
    pub failover_probe_interval_ms: u64,
    /// What each client does.
    pub client_model: &'static str,
    /// Transport of each system.
    pub transport: Transport,
}

/// How clients reach each system.
#[derive(Debug, Clone, Serialize)]
pub struct Transport {
    /// Capstan's cluster API.
    pub capstan: &'static str,
    /// etcd's v3 API.
    pub etcd: &'static str,
}

/// The machine.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs the benchmark may use.
    pub cpus: usize,
    /// CPU model, from /proc/cpuinfo.
    pub cpu_model: String,
    /// Kernel release.
    pub kernel: String,
    /// Memory, MiB.
    pub memory_mb: f64,
}

/// What one system measured.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// Its version.
    pub version: String,
    /// Resident memory of each member after the cluster idled.
    pub idle_rss_mb: Vec<f64>,
    /// One phase per client count.
    pub writes: Vec<Phase>,
    /// Linearizable reads.
    pub linearizable_reads: Phase,
    /// After the growth writes, if any.
    pub growth: Option<Growth>,
    /// From SIGKILL of the leader to the first acknowledged write.
    pub failover_ms: f64,
}

/// A timed phase.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Phase {
    /// Concurrent clients.
    pub clients: usize,
    /// Acknowledged operations.
    pub ops: u64,
    /// Failed operations.
    pub errors: u64,
    /// Acknowledged operations per second.
    pub per_sec: f64,
    /// Median latency.
    pub p50_ms: f64,
    /// 99th percentile latency.
    pub p99_ms: f64,
}

impl Phase {
    /// Summarises the samples of a phase run by `clients` clients.
    pub fn from_samples(clients: usize, s: &Samples) -> Phase {
        let at = |p| {
            percentile(&s.latencies_us, p)
                .map(ms_from_us)
                .unwrap_or(0.0)
        };
        Phase {
            clients,
            ops: s.ok,
            errors: s.errors,
            per_sec: per_sec(s.ok, s.elapsed),
            p50_ms: at(50.0),
            p99_ms: at(99.0),
        }
    }
}

/// The store after the growth writes.
#[derive(Debug, Clone, Serialize)]
pub struct Growth {
    /// Distinct keys written.
    pub writes: u64,
    /// Writes that failed at least once (each was retried).
    pub errors: u64,
    /// How long the writes took.
    pub seconds: f64,
    /// Their throughput.
    pub per_sec: f64,
    /// Disk used by each member's data directory.
    pub data_dir_mb: Vec<f64>,
    /// Resident memory of each member.
    pub rss_mb: Vec<f64>,
}

impl Growth {
    /// The growth figures from the samples of the writes and the sizes
    /// measured after them, in bytes.
    pub fn new(s: &Samples, data_dir_bytes: &[u64], rss_bytes: &[u64]) -> Growth {
        Growth {
            writes: s.ok,
            errors: s.errors,
            seconds: round(s.elapsed.as_secs_f64(), 1),
            per_sec: per_sec(s.ok, s.elapsed),
            data_dir_mb: data_dir_bytes.iter().map(|b| mib(*b)).collect(),
            rss_mb: rss_bytes.iter().map(|b| mib(*b)).collect(),
        }
    }
}

/// capstan / etcd. Above 1 is better for throughput; below 1 is better for
/// everything else (`better` says so per figure).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Ratios {
    /// What the numbers are.
    pub meaning: &'static str,
    /// Which direction is better, per figure name.
    pub better: Better,
    /// Per write phase.
    pub writes: Vec<PhaseRatio>,
    /// Of the read phase.
    pub linearizable_reads: PhaseRatio,
    /// Of the failover time.
    pub failover_ms: Option<f64>,
    /// Of the largest member's idle RSS.
    pub idle_rss_mb: Option<f64>,
    /// Of the largest member's data directory after growth.
    pub growth_data_dir_mb: Option<f64>,
    /// Of the largest member's RSS after growth.
    pub growth_rss_mb: Option<f64>,
}

/// Which direction of each ratio is better.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Better {
    /// Throughput.
    pub per_sec: &'static str,
    /// Median latency.
    pub p50_ms: &'static str,
    /// Tail latency.
    pub p99_ms: &'static str,
    /// Failover time.
    pub failover_ms: &'static str,
    /// Memory.
    pub idle_rss_mb: &'static str,
    /// Disk after growth.
    pub growth_data_dir_mb: &'static str,
    /// Memory after growth.
    pub growth_rss_mb: &'static str,
}

const BETTER: Better = Better {
    per_sec: "higher",
    p50_ms: "lower",
    p99_ms: "lower",
    failover_ms: "lower",
    idle_rss_mb: "lower",
    growth_data_dir_mb: "lower",
    growth_rss_mb: "lower",
};

/// The ratios of one phase.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PhaseRatio {
    /// Concurrent clients (the same on both sides).
    pub clients: usize,
    /// Throughput ratio.
    pub per_sec: Option<f64>,
    /// Median latency ratio.
    pub p50_ms: Option<f64>,
    /// Tail latency ratio.
    pub p99_ms: Option<f64>,
}

/// `a / b` with three decimals, or `None` when `b` is zero.
fn ratio(a: f64, b: f64) -> Option<f64> {
    (b != 0.0).then(|| round(a / b, 3))
}

fn largest(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(0.0, f64::max)
}

fn phase_ratio(a: &Phase, b: &Phase) -> PhaseRatio {
    PhaseRatio {
        clients: a.clients,
        per_sec: ratio(a.per_sec, b.per_sec),
        p50_ms: ratio(a.p50_ms, b.p50_ms),
        p99_ms: ratio(a.p99_ms, b.p99_ms),
    }
}

impl Ratios {
    /// capstan / etcd for every figure both measured.
    pub fn new(capstan: &Figures, etcd: &Figures) -> Ratios {
        let growth = |f: fn(&Growth) -> &Vec<f64>| match (&capstan.growth, &etcd.growth) {
            (Some(c), Some(e)) => ratio(largest(f(c)), largest(f(e))),
            _ => None,
        };
        Ratios {
            meaning: "capstan / etcd for each figure; `better` says whether above or below 1 favours capstan",
            better: BETTER,
            writes: capstan
                .writes
                .iter()
                .filter_map(|c| {
                    let e = etcd.writes.iter().find(|e| e.clients == c.clients)?;
                    Some(phase_ratio(c, e))
                })
                .collect(),
            linearizable_reads: phase_ratio(&capstan.linearizable_reads, &etcd.linearizable_reads),
            failover_ms: ratio(capstan.failover_ms, etcd.failover_ms),
            idle_rss_mb: ratio(largest(&capstan.idle_rss_mb), largest(&etcd.idle_rss_mb)),
            growth_data_dir_mb: growth(|g| &g.data_dir_mb),
            growth_rss_mb: growth(|g| &g.rss_mb),
        }
    }
}

/// Capstan against its targets; `met` is `null` where the target compares
/// with etcd and etcd did not run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Targets {
    /// At 64 clients, at least etcd's write throughput.
    pub writes_per_sec_at_64_at_least_etcd: Target,
    /// At 64 clients, a write p99 no worse than etcd's.
    pub write_p99_at_64_no_worse_than_etcd: Target,
    /// Failover under 2 s.
    pub failover_under_2s: Target,
    /// Every idle manager under 60 MB resident.
    pub idle_rss_under_60mb: Target,
}

/// One target.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Target {
    /// Whether Capstan meets it.
    pub met: Option<bool>,
    /// Capstan's figure.
    pub capstan: Option<f64>,
    /// What it is compared with.
    pub limit: Option<f64>,
}

impl Targets {
    /// Checks `capstan` against the targets (and `etcd`, when it ran).
    pub fn new(capstan: &Figures, etcd: Option<&Figures>) -> Targets {
        let at_64 = |f: &Figures| {
            f.writes
                .iter()
                .find(|p| p.clients == COMPARED_CLIENTS)
                .cloned()
        };
        let ours = at_64(capstan);
        let theirs = etcd.and_then(at_64);
        let compare = |get: fn(&Phase) -> f64, ok: fn(f64, f64) -> bool| Target {
            met: match (&ours, &theirs) {
                (Some(c), Some(e)) => Some(ok(get(c), get(e))),
                _ => None,
            },
            capstan: ours.as_ref().map(get),
            limit: theirs.as_ref().map(get),
        };
        let idle = largest(&capstan.idle_rss_mb);
        Targets {
            writes_per_sec_at_64_at_least_etcd: compare(|p| p.per_sec, |c, e| c >= e),
            write_p99_at_64_no_worse_than_etcd: compare(|p| p.p99_ms, |c, e| c <= e),
            failover_under_2s: Target {
                met: Some(capstan.failover_ms < FAILOVER_TARGET_MS),
                capstan: Some(capstan.failover_ms),
                limit: Some(FAILOVER_TARGET_MS),
            },
            idle_rss_under_60mb: Target {
                met: Some(idle < IDLE_RSS_TARGET_MB),
                capstan: Some(idle),
                limit: Some(IDLE_RSS_TARGET_MB),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn phase(clients: usize, per_sec: f64, p50_ms: f64, p99_ms: f64) -> Phase {
        Phase {
            clients,
            ops: 100,
            errors: 0,
            per_sec,
            p50_ms,
            p99_ms,
        }
    }

    fn figures(per_sec_64: f64, p99_64: f64, failover_ms: f64, rss: f64) -> Figures {
        Figures {
            version: "test".into(),
            idle_rss_mb: vec![rss, rss / 2.0, rss / 2.0],
            writes: vec![
                phase(1, 500.0, 2.0, 4.0),
                phase(16, 4_000.0, 4.0, 8.0),
                phase(64, per_sec_64, 10.0, p99_64),
            ],
            linearizable_reads: phase(64, 20_000.0, 3.0, 6.0),
            growth: Some(Growth {
                writes: 1_000,
                errors: 0,
                seconds: 1.0,
                per_sec: 1_000.0,
                data_dir_mb: vec![100.0, 90.0, 80.0],
                rss_mb: vec![50.0, 40.0, 40.0],
            }),
            failover_ms,
        }
    }

    fn settings() -> Settings {
        Settings {
            members: 3,
            seconds_per_phase: 5,
            value_bytes: 256,
            clients_connect_to: "leader",
            write_clients: vec![1, 16, 64],
            read_clients: 64,
            read_consistency: "linearizable",
            growth_writes: 1_000,
            growth_clients: 64,
            failover_probe_interval_ms: 10,
            client_model: "closed loop",
            transport: Transport {
                capstan: "gRPC, mutual TLS",
                etcd: "gRPC, plaintext",
            },
        }
    }

    fn machine() -> Machine {
        Machine {
            cpus: 2,
            cpu_model: "test".into(),
            kernel: "6".into(),
            memory_mb: 1024.0,
        }
    }

    #[test]
    fn phase_summary_from_samples() {
        let samples = Samples {
            ok: 4,
            errors: 1,
            first_error: Some("boom".into()),
            elapsed: Duration::from_secs(2),
            latencies_us: vec![1_000, 2_000, 3_000, 40_000],
        };
        assert_eq!(
            Phase::from_samples(16, &samples),
            Phase {
                clients: 16,
                ops: 4,
                errors: 1,
                per_sec: 2.0,
                p50_ms: 2.0,
                p99_ms: 40.0
            }
        );
        let empty = Phase::from_samples(1, &Samples::default());
        assert_eq!((empty.per_sec, empty.p50_ms, empty.p99_ms), (0.0, 0.0, 0.0));
    }

    #[test]
    fn ratios_divide_capstan_by_etcd_and_use_the_largest_member() {
        let capstan = figures(6_000.0, 30.0, 1_500.0, 40.0);
        let etcd = figures(4_000.0, 60.0, 1_000.0, 20.0);
        let r = Ratios::new(&capstan, &etcd);
        assert_eq!(r.writes.len(), 3);
        assert_eq!(r.writes[2].clients, 64);
        assert_eq!(r.writes[2].per_sec, Some(1.5));
        assert_eq!(r.writes[2].p99_ms, Some(0.5));
        assert_eq!(r.writes[0].per_sec, Some(1.0));
        assert_eq!(r.failover_ms, Some(1.5));
        assert_eq!(r.idle_rss_mb, Some(2.0));
        assert_eq!(r.growth_data_dir_mb, Some(1.0));
        assert_eq!(r.better.per_sec, "higher");
        assert_eq!(r.better.p99_ms, "lower");
    }

    #[test]
    fn a_zero_denominator_gives_no_ratio() {
        let capstan = figures(6_000.0, 30.0, 1_500.0, 40.0);
        let etcd = figures(0.0, 0.0, 1_000.0, 20.0);
        let r = Ratios::new(&capstan, &etcd);
        assert_eq!(r.writes[2].per_sec, None);
        assert_eq!(r.writes[2].p99_ms, None);
    }

    #[test]
    fn targets_against_etcd_and_fixed_limits() {
        // (capstan, etcd, the expected `met` of the four targets in order)
        type Case = (Figures, Option<Figures>, [Option<bool>; 4]);
        let table: &[Case] = &[
            (
                figures(6_000.0, 30.0, 1_500.0, 40.0),
                Some(figures(4_000.0, 60.0, 1_000.0, 20.0)),
                [Some(true), Some(true), Some(true), Some(true)],
            ),
            (
                figures(3_000.0, 90.0, 2_500.0, 80.0),
                Some(figures(4_000.0, 60.0, 1_000.0, 20.0)),
                [Some(false), Some(false), Some(false), Some(false)],
            ),
            (
                figures(3_000.0, 90.0, 1_999.0, 59.9),
                None,
                [None, None, Some(true), Some(true)],
            ),
        ];
        for (capstan, etcd, expected) in table {
            let t = Targets::new(capstan, etcd.as_ref());
            let got = [
                t.writes_per_sec_at_64_at_least_etcd.met,
                t.write_p99_at_64_no_worse_than_etcd.met,
                t.failover_under_2s.met,
                t.idle_rss_under_60mb.met,
            ];
            assert_eq!(&got, expected);
        }
    }

    #[test]
    fn report_json_has_the_documented_shape() {
        let capstan = figures(6_000.0, 30.0, 1_500.0, 40.0);
        let etcd = figures(4_000.0, 60.0, 1_000.0, 20.0);
        let report = Report {
            benchmark: "store",
            settings: settings(),
            machine: machine(),
            ratio: Some(Ratios::new(&capstan, &etcd)),
            targets: Targets::new(&capstan, Some(&etcd)),
            capstan,
            etcd: Some(etcd),
        };
        let v = serde_json::to_value(&report).expect("serialises");
        for key in [
            "benchmark",
            "settings",
            "machine",
            "capstan",
            "etcd",
            "ratio",
            "targets",
        ] {
            assert!(v.get(key).is_some(), "no {key} in {v}");
        }
        assert_eq!(v["settings"]["clients_connect_to"], "leader");
        for system in ["capstan", "etcd"] {
            let f = &v[system];
            assert_eq!(f["writes"].as_array().map(Vec::len), Some(3), "{f}");
            for field in ["clients", "ops", "errors", "per_sec", "p50_ms", "p99_ms"] {
                assert!(f["writes"][2][field].is_number(), "{system} {field}");
                assert!(
                    f["linearizable_reads"][field].is_number(),
                    "{system} {field}"
                );
            }
            assert!(f["failover_ms"].is_number());
            assert_eq!(f["idle_rss_mb"].as_array().map(Vec::len), Some(3));
            for field in ["data_dir_mb", "rss_mb"] {
                assert_eq!(f["growth"][field].as_array().map(Vec::len), Some(3));
            }
        }
        assert_eq!(v["ratio"]["writes"][2]["per_sec"], 1.5);
        assert_eq!(v["ratio"]["better"]["p99_ms"], "lower");
        assert_eq!(v["ratio"]["better"]["per_sec"], "higher");
        assert_eq!(v["targets"]["failover_under_2s"]["met"], true);
        assert_eq!(v["targets"]["idle_rss_under_60mb"]["limit"], 60.0);
    }

    #[test]
    fn without_a_peer_the_etcd_parts_are_null() {
        let capstan = figures(6_000.0, 30.0, 1_500.0, 40.0);
        let report = Report {
            benchmark: "store",
            settings: settings(),
            machine: machine(),
            ratio: None,
            targets: Targets::new(&capstan, None),
            capstan,
            etcd: None,
        };
        let v = serde_json::to_value(&report).expect("serialises");
        assert!(v["etcd"].is_null());
        assert!(v["ratio"].is_null());
        assert!(v["targets"]["writes_per_sec_at_64_at_least_etcd"]["met"].is_null());
        assert_eq!(v["targets"]["failover_under_2s"]["met"], true);
    }
}
