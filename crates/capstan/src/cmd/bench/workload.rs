//! The load itself: closed-loop clients that each wait for one answer
//! before sending the next request, timed phases, a fixed number of
//! writes, and the failover probe. The same code drives Capstan and etcd
//! through [`KvClient`].

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::task::JoinSet;

/// Size of every value written.
pub const VALUE_BYTES: usize = 256;
/// Keys the read phase reads (written before it starts).
pub const READ_KEYS: u64 = 1_000;
/// Keys each client of a timed write phase cycles through, so that the
/// timed phases do not grow the store much.
const KEYS_PER_WRITER: u64 = 1_000;
/// How often the failover probe sends a new write while none succeeds.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// How long one probe write may take before it counts as failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the failover probe tries before giving up.
const FAILOVER_LIMIT: Duration = Duration::from_secs(30);

/// One client connection of the store under test.
pub trait KvClient: Clone + Send + 'static {
    /// Writes `value` at `key` and waits until the store acknowledges it.
    fn put(
        &mut self,
        key: String,
        value: Vec<u8>,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Reads `key` linearizably; an absent key is an error.
    fn get(&mut self, key: String) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// What one phase measured: successes, failures, how long it took and the
/// latency of every success in microseconds, sorted.
#[derive(Debug, Default)]
pub struct Samples {
    /// Acknowledged operations.
    pub ok: u64,
    /// Failed operations.
    pub errors: u64,
    /// First failure, for the progress log.
    pub first_error: Option<String>,
    /// Wall time from the first request to the last answer.
    pub elapsed: Duration,
    /// Latency of each acknowledged operation, µs, ascending.
    pub latencies_us: Vec<u64>,
}

impl Samples {
    fn merge(&mut self, other: Samples) {
        self.ok += other.ok;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latencies_us.extend(other.latencies_us);
    }

    fn record(&mut self, started: Instant, result: anyhow::Result<()>) {
        match result {
            Ok(()) => {
                self.ok += 1;
                self.latencies_us
                    .push(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
            }
            Err(e) => {
                self.errors += 1;
                if self.first_error.is_none() {
                    self.first_error = Some(format!("{e:#}"));
                }
            }
        }
    }
}

/// The value every write carries.
pub fn value() -> Vec<u8> {
    (0..VALUE_BYTES).map(|i| b'a' + (i % 26) as u8).collect()
}

/// Key `n` of the read phase.
pub fn read_key(n: u64) -> String {
    format!("bench/read/{n:04}")
}

/// What a timed phase does with each request.
#[derive(Clone, Copy, Debug)]
pub enum Operation {
    /// Writes, each client cycling over its own keys.
    Write,
    /// Linearizable reads of the read phase's keys.
    Read,
}

/// Sends one request per client first, outside the clock, so that every
/// connection is open and warm when a phase starts.
pub async fn prime<C: KvClient>(clients: &mut [C]) -> anyhow::Result<()> {
    for (i, c) in clients.iter_mut().enumerate() {
        c.put(format!("bench/prime/{i}"), value())
            .await
            .with_context(|| format!("first write of client {i}"))?;
    }
    Ok(())
}

/// Runs every client in a closed loop for `duration`.
pub async fn timed<C: KvClient>(
    clients: Vec<C>,
    op: Operation,
    duration: Duration,
) -> anyhow::Result<Samples> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = JoinSet::new();
    let width = clients.len();
    for (i, mut client) in clients.into_iter().enumerate() {
        tasks.spawn(async move {
            let mut samples = Samples::default();
            let mut n = 0u64;
            while Instant::now() < deadline {
                let at = Instant::now();
                let result = match op {
                    Operation::Write => {
                        let key = format!("bench/w{width}/{i}/{}", n % KEYS_PER_WRITER);
                        client.put(key, value()).await
                    }
                    Operation::Read => {
                        let key = read_key((i as u64 * 7_919 + n) % READ_KEYS);
                        client.get(key).await
                    }
                };
                samples.record(at, result);
                n += 1;
            }
            samples
        });
    }
    collect(tasks, started).await
}

/// Writes keys `{prefix}/0 .. {prefix}/{count-1}` once each, with every
/// client taking the next unwritten key; `progress` is called about every
/// ten seconds with the number written so far.
pub async fn write_count<C: KvClient>(
    clients: Vec<C>,
    prefix: &str,
    count: u64,
    progress: impl Fn(u64) + Send + 'static,
) -> anyhow::Result<Samples> {
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for mut client in clients {
        let next = Arc::clone(&next);
        let done = Arc::clone(&done);
        let prefix = prefix.to_string();
        tasks.spawn(async move {
            let mut samples = Samples::default();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    break;
                }
                let at = Instant::now();
                let mut result = client.put(format!("{prefix}/{n:08}"), value()).await;
                // A write that failed is retried a few times so the store
                // really holds `count` keys at the end.
                for _ in 0..3 {
                    if result.is_ok() {
                        break;
                    }
                    samples.record(at, result);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    result = client.put(format!("{prefix}/{n:08}"), value()).await;
                }
                samples.record(at, result);
                done.fetch_add(1, Ordering::Relaxed);
            }
            samples
        });
    }
    let reporter = {
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            tick.tick().await;
            loop {
                tick.tick().await;
                progress(done.load(Ordering::Relaxed));
            }
        })
    };
    let samples = collect(tasks, started).await;
    reporter.abort();
    samples
}

async fn collect(mut tasks: JoinSet<Samples>, started: Instant) -> anyhow::Result<Samples> {
    let mut all = Samples::default();
    while let Some(done) = tasks.join_next().await {
        all.merge(done.context("a benchmark client task failed")?);
    }
    all.elapsed = started.elapsed();
    all.latencies_us.sort_unstable();
    Ok(all)
}

/// Kills the leader with `kill`, then sends a write every
/// [`PROBE_INTERVAL`] to the surviving members (round robin) until one is
/// acknowledged; returns the time from the kill to that acknowledgement.
/// Only writes sent after the kill count, so none can have been committed
/// by the old leader.
pub async fn failover<C: KvClient>(
    survivors: Vec<C>,
    kill: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<Duration> {
    if survivors.is_empty() {
        bail!("no surviving member to write to");
    }
    kill()?;
    let killed_at = Instant::now();
    let mut in_flight = FuturesUnordered::new();
    let mut tick = tokio::time::interval(PROBE_INTERVAL);
    let mut sent = 0usize;
    let mut last_error = String::from("no write was answered");
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if killed_at.elapsed() > FAILOVER_LIMIT {
                    bail!(
                        "no write was acknowledged within {FAILOVER_LIMIT:?} after the leader was killed; last error: {last_error}"
                    );
                }
                let mut client = survivors[sent % survivors.len()].clone();
                sent += 1;
                in_flight.push(async move {
                    let key = format!("bench/failover/{sent}");
                    match tokio::time::timeout(PROBE_TIMEOUT, client.put(key, value())).await {
                        Ok(result) => result,
                        Err(_) => Err(anyhow::anyhow!("no answer within {PROBE_TIMEOUT:?}")),
                    }
                });
            }
            Some(result) = in_flight.next() => match result {
                Ok(()) => return Ok(killed_at.elapsed()),
                Err(e) => last_error = format!("{e:#}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_have_the_benchmark_size() {
        assert_eq!(value().len(), VALUE_BYTES);
        assert_eq!(read_key(7), "bench/read/0007");
    }

    #[test]
    fn samples_merge_keeps_the_first_error() {
        let mut a = Samples::default();
        a.record(Instant::now(), Ok(()));
        let mut b = Samples::default();
        b.record(Instant::now(), Err(anyhow::anyhow!("first")));
        b.record(Instant::now(), Err(anyhow::anyhow!("second")));
        a.merge(b);
        assert_eq!((a.ok, a.errors), (1, 2));
        assert_eq!(a.first_error.as_deref(), Some("first"));
        assert_eq!(a.latencies_us.len(), 1);
    }
}
