//! Polling until a cluster reaches a state, with an error that says what
//! the state was when time ran out.

use std::fmt::Display;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The outcome of one look at the system under test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe<T> {
    /// The awaited state is reached, with whatever the test wants from it.
    Ready(T),
    /// Not yet; the text says what was seen instead, for the timeout error.
    NotYet(String),
}

/// Calls `check` every `interval` until it returns `Ok(true)`, for at most
/// `timeout`. An `Err` from `check` is taken as "not yet" (a node may be
/// restarting); on timeout the error reports the last result.
pub async fn wait_until<F>(timeout: Duration, interval: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Result<bool>,
{
    wait_for(
        "the condition",
        timeout,
        interval,
        || -> Result<Probe<()>> {
            Ok(match check()? {
                true => Probe::Ready(()),
                false => Probe::NotYet("the condition was false".to_owned()),
            })
        },
    )
    .await
}

/// Calls `check` every `interval` until it returns `Ready`, for at most
/// `timeout`, and returns the ready value. The timeout error names `what`
/// and the last `NotYet` text or error.
pub async fn wait_for<T, E, F>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut check: F,
) -> Result<T>
where
    E: Display,
    F: FnMut() -> Result<Probe<T>, E>,
{
    let started = Instant::now();
    loop {
        let last = match check() {
            Ok(Probe::Ready(value)) => return Ok(value),
            Ok(Probe::NotYet(seen)) => seen,
            Err(error) => format!("error: {error}"),
        };
        if let Some(error) = timed_out(what, started, timeout, last) {
            return Err(error);
        }
        tokio::time::sleep(interval).await;
    }
}

/// [`wait_for`] with an async check, for probes that call the product over
/// the network.
pub async fn wait_for_async<T, E, F>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut check: F,
) -> Result<T>
where
    E: Display,
    F: AsyncFnMut() -> Result<Probe<T>, E>,
{
    let started = Instant::now();
    loop {
        let last = match check().await {
            Ok(Probe::Ready(value)) => return Ok(value),
            Ok(Probe::NotYet(seen)) => seen,
            Err(error) => format!("error: {error}"),
        };
        if let Some(error) = timed_out(what, started, timeout, last) {
            return Err(error);
        }
        tokio::time::sleep(interval).await;
    }
}

fn timed_out(what: &str, started: Instant, timeout: Duration, last: String) -> Option<Error> {
    let waited = started.elapsed();
    (waited >= timeout).then(|| Error::Timeout {
        what: what.to_owned(),
        waited,
        last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(5);

    #[tokio::test]
    async fn returns_once_the_condition_holds() {
        let mut calls = 0;
        wait_until(Duration::from_secs(5), TICK, || {
            calls += 1;
            Ok(calls == 3)
        })
        .await
        .expect("condition holds on the third call");
        assert_eq!(calls, 3);
    }

    #[tokio::test]
    async fn timeout_reports_the_last_observed_state() {
        let mut n = 0;
        let error = wait_for(
            "three healthy nodes",
            Duration::from_millis(30),
            TICK,
            || {
                n += 1;
                Ok::<Probe<()>, Error>(Probe::NotYet(format!("{n} healthy")))
            },
        )
        .await
        .expect_err("never ready");
        let message = error.to_string();
        assert!(
            message.starts_with("three healthy nodes did not happen within"),
            "{message}"
        );
        assert!(
            message.ends_with(&format!("last observed: {n} healthy")),
            "{message}"
        );
    }

    #[tokio::test]
    async fn errors_count_as_not_yet_and_show_in_the_timeout() {
        let error = wait_until(Duration::from_millis(20), TICK, || {
            Err(Error::NotOnNetwork {
                container: "c".to_owned(),
                network: "n".to_owned(),
            })
        })
        .await
        .expect_err("never ready");
        assert!(
            error
                .to_string()
                .contains("error: container c is not attached"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn async_checks_return_the_ready_value() {
        let mut n = 0;
        let value = wait_for_async("a leader", Duration::from_secs(5), TICK, async || {
            n += 1;
            tokio::task::yield_now().await;
            Ok::<_, Error>(if n < 2 {
                Probe::NotYet("no leader".to_owned())
            } else {
                Probe::Ready("manager1")
            })
        })
        .await
        .expect("leader elected");
        assert_eq!(value, "manager1");
    }
}
