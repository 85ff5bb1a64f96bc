//! Owns the long-running tasks of a node: each has a name and a span, all
//! stop on one cancellation token, and every exit is logged.

use std::future::Future;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error::ManagerError;

/// A set of named tasks that stop together.
pub struct Supervisor {
    cancel: CancellationToken,
    tasks: JoinSet<(&'static str, Result<(), ManagerError>)>,
}

impl Supervisor {
    /// A supervisor whose tasks stop when `cancel` fires.
    pub fn new(cancel: CancellationToken) -> Self {
        Self {
            cancel,
            tasks: JoinSet::new(),
        }
    }

    /// The token every task watches.
    pub fn token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Starts a named task.
    pub fn spawn<F>(&mut self, name: &'static str, task: F)
    where
        F: Future<Output = Result<(), ManagerError>> + Send + 'static,
    {
        let span = tracing::info_span!("task", name);
        self.tasks
            .spawn(async move { (name, task.await) }.instrument(span));
    }

    /// Runs until the token fires or a task fails, then stops the rest.
    /// A task that ends cleanly (a one-shot job) leaves the others running.
    /// Returns the first task error, if any.
    pub async fn run(mut self) -> Result<(), ManagerError> {
        let mut first_error = None;
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                done = self.tasks.join_next() => match done {
                    None => break,
                    Some(done) => {
                        if let Some(e) = log_exit(done) {
                            first_error = Some(e);
                            break;
                        }
                    }
                },
            }
        }
        self.cancel.cancel();
        while let Some(done) = self.tasks.join_next().await {
            if let Some(e) = log_exit(done) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

fn log_exit(
    done: Result<(&'static str, Result<(), ManagerError>), tokio::task::JoinError>,
) -> Option<ManagerError> {
    match done {
        Ok((name, Ok(()))) => {
            tracing::info!(task = name, "task stopped");
            None
        }
        Ok((name, Err(e))) => {
            tracing::error!(task = name, error = %e, "task failed");
            Some(e)
        }
        Err(e) => {
            tracing::error!(error = %e, "task panicked or was aborted");
            Some(ManagerError::Fatal(format!("a task panicked: {e}")))
        }
    }
}
