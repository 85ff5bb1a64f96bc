//! Gathers concurrent writes into one Raft entry. Openraft 0.9 appends one
//! entry per proposal, and each append waits for the disk; while a few
//! proposals are in flight, the writes that queue behind them go out
//! together in one `Request::Batch` entry, each still atomic on its own and
//! answered on its own. A lone write is proposed at once.

use std::sync::Arc;
use std::time::Duration;

use capstan_store::{Op, Raft, Request, Response};
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::error::ManagerError;

/// Proposals in flight at once.
const IN_FLIGHT: usize = 4;
/// Most writes in one entry.
const MAX_WRITES: usize = 512;
/// Most value bytes in one entry.
const MAX_BYTES: usize = 4 << 20;

/// How a batched proposal ended for one write.
#[derive(Debug)]
pub enum Outcome {
    /// Committed and applied: the write's own response.
    Applied(Response),
    /// This manager is not the leader: forward to this address (if known).
    NotLeader(Option<String>),
    /// The proposal failed.
    Failed(ManagerError),
}

struct Pending {
    ops: Vec<Op>,
    reply: oneshot::Sender<Outcome>,
}

/// The handle writers submit to.
#[derive(Clone)]
pub struct WriteBatcher {
    tx: mpsc::Sender<Pending>,
}

/// The loop that proposes; run it under the manager's supervisor.
pub struct BatchLoop {
    rx: mpsc::Receiver<Pending>,
}

impl WriteBatcher {
    /// A batcher and the loop that serves it.
    pub fn new() -> (WriteBatcher, BatchLoop) {
        let (tx, rx) = mpsc::channel(4096);
        (WriteBatcher { tx }, BatchLoop { rx })
    }

    /// Proposes `ops` as one atomic write, possibly in an entry with others.
    pub async fn submit(&self, ops: Vec<Op>) -> Outcome {
        let (reply, answer) = oneshot::channel();
        if self.tx.send(Pending { ops, reply }).await.is_err() {
            return Outcome::Failed(ManagerError::Unavailable(
                "this manager is shutting down".into(),
            ));
        }
        answer.await.unwrap_or_else(|_| {
            Outcome::Failed(ManagerError::Unavailable(
                "this manager is shutting down".into(),
            ))
        })
    }
}

fn value_bytes(ops: &[Op]) -> usize {
    ops.iter()
        .map(|o| match &o.action {
            capstan_store::Action::Put(v) => v.len(),
            capstan_store::Action::Delete => 0,
        })
        .sum()
}

impl BatchLoop {
    /// Proposes batches until cancelled; `commit_timeout` bounds each one.
    pub async fn run(
        mut self,
        raft: Raft,
        commit_timeout: Duration,
        cancel: CancellationToken,
    ) -> Result<(), ManagerError> {
        let permits = Arc::new(Semaphore::new(IN_FLIGHT));
        let mut in_flight = JoinSet::new();
        loop {
            while in_flight.try_join_next().is_some() {}
            let permit = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                p = permits.clone().acquire_owned() => p.map_err(|_| ManagerError::Fatal("batch permits closed".into()))?,
            };
            let first = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                p = self.rx.recv() => match p { Some(p) => p, None => return Ok(()) },
            };
            let mut bytes = value_bytes(&first.ops);
            let mut batch = vec![first];
            while batch.len() < MAX_WRITES && bytes < MAX_BYTES {
                match self.rx.try_recv() {
                    Ok(p) => {
                        bytes += value_bytes(&p.ops);
                        batch.push(p);
                    }
                    Err(_) => break,
                }
            }
            let raft = raft.clone();
            in_flight.spawn(async move {
                let _permit = permit;
                propose(&raft, batch, commit_timeout).await;
            });
        }
    }
}

async fn propose(raft: &Raft, batch: Vec<Pending>, commit_timeout: Duration) {
    let (writes, replies): (Vec<Vec<Op>>, Vec<oneshot::Sender<Outcome>>) =
        batch.into_iter().map(|p| (p.ops, p.reply)).unzip();
    let single = writes.len() == 1;
    let request = if single {
        Request::Write {
            ops: writes.into_iter().next().unwrap_or_default(),
        }
    } else {
        Request::Batch { writes }
    };
    let result = tokio::time::timeout(commit_timeout, raft.client_write(request)).await;
    let each = |make: &dyn Fn() -> Outcome, replies: Vec<oneshot::Sender<Outcome>>| {
        for r in replies {
            let _ = r.send(make());
        }
    };
    match result {
        Err(_) => each(
            &|| {
                Outcome::Failed(ManagerError::Unavailable(format!(
                    "write not committed within {}s: the cluster may have lost quorum",
                    commit_timeout.as_secs()
                )))
            },
            replies,
        ),
        Ok(Ok(resp)) => match resp.data {
            Response::Batch(responses) if !single && responses.len() == replies.len() => {
                for (r, response) in replies.into_iter().zip(responses) {
                    let _ = r.send(Outcome::Applied(response));
                }
            }
            response if single => {
                for r in replies {
                    let _ = r.send(Outcome::Applied(response.clone()));
                }
            }
            other => each(
                &|| {
                    Outcome::Failed(ManagerError::Fatal(format!(
                        "a batched write got a mismatched answer: {other:?}"
                    )))
                },
                replies,
            ),
        },
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
            let addr = f.leader_node.map(|n| n.addr);
            each(&|| Outcome::NotLeader(addr.clone()), replies);
        }
        Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e)))) => {
            let msg = e.to_string();
            each(
                &|| Outcome::Failed(ManagerError::Refused(msg.clone())),
                replies,
            );
        }
        Ok(Err(RaftError::Fatal(f))) => {
            let msg = f.to_string();
            each(
                &|| Outcome::Failed(ManagerError::Fatal(msg.clone())),
                replies,
            );
        }
    }
}
