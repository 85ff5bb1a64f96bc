//! `capstan bench authz`: the RBAC decision's latency.
//!
//! Builds the decision over 10,000 grants, 1,000 users, 200 teams and a
//! 6-level collection tree (a deterministic fixture), then times 200,000
//! decisions one by one — a mix of users, operations and collection paths,
//! one in four below an existing collection — and prints p50, p99 and max in
//! nanoseconds, and how long building the index took.

use std::hint::black_box;
use std::time::Instant;

use capstan_core::rbac::bench_fixture::{fixture, queries};
use capstan_core::rbac::{Authorizer, Resource};
use serde_json::json;

use super::stats;

const USERS: usize = 1_000;
const TEAMS: usize = 200;
const GRANTS: usize = 10_000;
const DEPTH: usize = 6;
const DECISIONS: usize = 200_000;

/// Runs the benchmark and prints the JSON report.
pub fn run() -> anyhow::Result<()> {
    let (collections, roles, grants, principals) = fixture(USERS, TEAMS, GRANTS, DEPTH, 42);
    let built = Instant::now();
    let authorizer = Authorizer::new(&collections, &roles, &grants);
    let build_ms = stats::ms(built.elapsed());
    let qs = queries(&collections, &principals, DECISIONS, 7);
    // Warm caches and branch predictors.
    for q in qs.iter().take(10_000) {
        black_box(authorizer.allowed(
            &principals[q.principal],
            q.operation,
            Resource::Collection(&q.path),
        ));
    }
    let mut ns = Vec::with_capacity(qs.len());
    let mut allowed = 0u64;
    for q in &qs {
        let who = &principals[q.principal];
        let t = Instant::now();
        let ok = black_box(authorizer.allowed(
            black_box(who),
            q.operation,
            Resource::Collection(&q.path),
        ));
        ns.push(t.elapsed().as_nanos() as u64);
        allowed += u64::from(ok);
    }
    ns.sort_unstable();
    let p = |q: f64| stats::percentile(&ns, q).unwrap_or(0);
    let p99_us = p(99.0) as f64 / 1000.0;
    let report = json!({
        "benchmark": "authz",
        "fixture": {"users": USERS, "teams": TEAMS, "grants": GRANTS, "collections": collections.len(), "tree_depth": DEPTH},
        "decisions": ns.len(),
        "allowed": allowed,
        "index_build_ms": stats::round(build_ms, 1),
        "latency_ns": {"p50": p(50.0), "p90": p(90.0), "p99": p(99.0), "max": ns.last().copied().unwrap_or(0)},
        "targets": {"p99_under_5us": p99_us < 5.0},
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
