//! The sequence of measurements run against one three-member store, the
//! same for Capstan and etcd: idle memory, writes at 1, 16 and 64 clients,
//! linearizable reads, growth, and last (it kills the leader) failover.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use super::process::disk_usage;
use super::report::{Figures, Growth, Phase};
use super::stats::{mib, ms};
use super::workload::{self, KvClient, Operation, Samples};
use crate::cli::ClientsOn;

/// Client counts of the write phases.
pub const WRITE_CLIENTS: [usize; 3] = [1, 16, 64];
/// Clients of the read phase.
pub const READ_CLIENTS: usize = 64;
/// Clients of the growth phase.
pub const GROWTH_CLIENTS: usize = 64;
/// How long a fresh cluster idles before its memory is read, and how long
/// the store settles after the growth writes before it is measured.
const SETTLE: Duration = Duration::from_secs(3);

/// A running three-member store under test.
pub trait System {
    /// Its client.
    type Client: KvClient;
    /// `capstan` or `etcd`.
    fn name(&self) -> &'static str;
    /// Its version.
    fn version(&self) -> String;
    /// Number of members.
    fn members(&self) -> usize;
    /// A new client connection to `member`.
    fn connect(&self, member: usize) -> impl Future<Output = anyhow::Result<Self::Client>>;
    /// The member that leads now.
    fn leader(&self) -> impl Future<Output = anyhow::Result<usize>>;
    /// Resident memory of `member`, bytes.
    fn rss_bytes(&self, member: usize) -> anyhow::Result<u64>;
    /// Data directory of `member`.
    fn data_dir(&self, member: usize) -> PathBuf;
    /// SIGKILLs `member`.
    fn kill(&mut self, member: usize) -> anyhow::Result<()>;
}

/// What a suite run needs to know.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Length of each timed phase.
    pub phase: Duration,
    /// Where clients connect.
    pub clients_on: ClientsOn,
    /// Distinct keys of the growth phase (0: none).
    pub growth_writes: u64,
}

/// Runs every measurement against `system`.
pub async fn run<S: System>(system: &mut S, plan: &Plan) -> anyhow::Result<Figures> {
    let name = system.name();
    progress(
        name,
        &format!("idling {}s before reading memory", SETTLE.as_secs()),
    );
    tokio::time::sleep(SETTLE).await;
    let idle = rss_all(system)?;
    progress(
        name,
        &format!(
            "idle RSS {:?} MiB",
            idle.iter().map(|b| mib(*b)).collect::<Vec<_>>()
        ),
    );

    let mut writes = Vec::new();
    for n in WRITE_CLIENTS {
        let mut clients = clients(system, n, plan.clients_on).await?;
        workload::prime(&mut clients).await?;
        let samples = workload::timed(clients, Operation::Write, plan.phase).await?;
        let phase = Phase::from_samples(n, &samples);
        report_phase(name, "writes", &phase, &samples);
        writes.push(phase);
    }

    let mut clients = clients(system, READ_CLIENTS, plan.clients_on).await?;
    workload::prime(&mut clients).await?;
    fill_read_keys(&clients).await?;
    let samples = workload::timed(clients, Operation::Read, plan.phase).await?;
    let linearizable_reads = Phase::from_samples(READ_CLIENTS, &samples);
    report_phase(name, "linearizable reads", &linearizable_reads, &samples);

    let growth = if plan.growth_writes > 0 {
        Some(grow(system, plan).await?)
    } else {
        None
    };

    let failover = failover(system).await?;
    progress(
        name,
        &format!(
            "failover: first write acknowledged {:.1} ms after the leader was killed",
            ms(failover)
        ),
    );

    Ok(Figures {
        version: system.version(),
        idle_rss_mb: idle.iter().map(|b| mib(*b)).collect(),
        writes,
        linearizable_reads,
        growth,
        failover_ms: ms(failover),
    })
}

fn progress(system: &str, what: &str) {
    eprintln!("bench: {system}: {what}");
}

fn report_phase(system: &str, what: &str, p: &Phase, s: &Samples) {
    progress(
        system,
        &format!(
            "{what}, {} clients: {}/s, p50 {} ms, p99 {} ms, {} errors",
            p.clients, p.per_sec, p.p50_ms, p.p99_ms, p.errors
        ),
    );
    if let Some(e) = &s.first_error {
        progress(system, &format!("first error: {e}"));
    }
}

fn rss_all<S: System>(system: &S) -> anyhow::Result<Vec<u64>> {
    (0..system.members()).map(|m| system.rss_bytes(m)).collect()
}

/// `n` new connections, on the leader or spread over the members.
async fn clients<S: System>(system: &S, n: usize, on: ClientsOn) -> anyhow::Result<Vec<S::Client>> {
    let leader = system.leader().await?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let member = match on {
            ClientsOn::Leader => leader,
            ClientsOn::All => i % system.members(),
        };
        out.push(
            system
                .connect(member)
                .await
                .with_context(|| format!("connect client {i} to member {member}"))?,
        );
    }
    Ok(out)
}

/// Writes the keys the read phase reads.
async fn fill_read_keys<C: KvClient>(clients: &[C]) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    let width = clients.len() as u64;
    for (i, c) in clients.iter().enumerate() {
        let mut c = c.clone();
        tasks.spawn(async move {
            let mut n = i as u64;
            while n < workload::READ_KEYS {
                c.put(workload::read_key(n), workload::value()).await?;
                n += width;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a client task failed")?
            .context("write the keys the read phase reads")?;
    }
    Ok(())
}

async fn grow<S: System>(system: &S, plan: &Plan) -> anyhow::Result<Growth> {
    let name = system.name();
    let total = plan.growth_writes;
    progress(
        name,
        &format!("growth: writing {total} distinct keys with {GROWTH_CLIENTS} clients"),
    );
    let clients = clients(system, GROWTH_CLIENTS, plan.clients_on).await?;
    let samples = workload::write_count(clients, "bench/growth", total, move |done| {
        progress(name, &format!("growth: {done}/{total} written"));
    })
    .await?;
    if let Some(e) = &samples.first_error {
        progress(
            name,
            &format!("growth: {} failed attempts; first: {e}", samples.errors),
        );
    }
    tokio::time::sleep(SETTLE).await;
    let dirs = (0..system.members())
        .map(|m| disk_usage(&system.data_dir(m)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let rss = rss_all(system)?;
    let growth = Growth::new(&samples, &dirs, &rss);
    progress(
        name,
        &format!(
            "growth: {} writes in {} s ({}/s); data dirs {:?} MiB; RSS {:?} MiB",
            growth.writes, growth.seconds, growth.per_sec, growth.data_dir_mb, growth.rss_mb
        ),
    );
    Ok(growth)
}

/// Kills the leader and times the first acknowledged write after it.
async fn failover<S: System>(system: &mut S) -> anyhow::Result<Duration> {
    let leader = system.leader().await?;
    let mut survivors = Vec::new();
    for m in (0..system.members()).filter(|m| *m != leader) {
        let mut c = system.connect(m).await?;
        // The connection is open and the member answers before the kill.
        c.put(format!("bench/failover/ready-{m}"), workload::value())
            .await
            .with_context(|| format!("write through member {m} before the failover"))?;
        survivors.push(c);
    }
    progress(
        system.name(),
        &format!("failover: killing the leader (member {leader})"),
    );
    workload::failover(survivors, || system.kill(leader)).await
}
