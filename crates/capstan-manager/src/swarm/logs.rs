//! Routing log chunks from agents to the clients that asked for them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use capstan_proto::v1 as pb;
use tokio::sync::mpsc;

/// Open log requests by id.
#[derive(Default)]
pub struct LogRoutes {
    routes: Mutex<HashMap<String, mpsc::Sender<pb::LogChunk>>>,
    next: AtomicU64,
}

impl LogRoutes {
    /// Opens a route; chunks for the returned id arrive on the receiver.
    pub fn open(&self) -> (String, mpsc::Receiver<pb::LogChunk>) {
        let id = format!("logs-{}", self.next.fetch_add(1, Ordering::Relaxed) + 1);
        let (tx, rx) = mpsc::channel(1024);
        self.routes
            .lock()
            .expect("log routes lock")
            .insert(id.clone(), tx);
        (id, rx)
    }

    /// Hands an agent's chunk to its request, dropping it if nobody waits.
    pub fn deliver(&self, chunk: pb::LogChunk) {
        let tx = self
            .routes
            .lock()
            .expect("log routes lock")
            .get(&chunk.request_id)
            .cloned();
        if let Some(tx) = tx {
            let _ = tx.try_send(chunk);
        }
    }

    /// Closes a route.
    pub fn close(&self, id: &str) {
        self.routes.lock().expect("log routes lock").remove(id);
    }
}

/// The recent log of the agent on `node` (connected to this leader), for a
/// support bundle; `None` when its session is not here or it does not
/// answer within `timeout`.
pub async fn agent_log(
    state: &crate::state::SharedState,
    node: capstan_core::NodeId,
    timeout: std::time::Duration,
) -> Option<Vec<u8>> {
    let (id, mut chunks) = state.swarm.logs.open();
    let request = pb::LogRequest {
        request_id: id.clone(),
        own_log: true,
        ..Default::default()
    };
    let sent = state
        .swarm
        .sessions
        .send(node, pb::dispatcher_message::Msg::LogRequest(request));
    let collect = async move {
        let mut log = Vec::new();
        while let Some(chunk) = chunks.recv().await {
            log.extend_from_slice(&chunk.data);
            if chunk.eof {
                return chunk.error.is_empty().then_some(log);
            }
        }
        None
    };
    let log = if sent {
        tokio::time::timeout(timeout, collect).await.ok().flatten()
    } else {
        None
    };
    state.swarm.logs.close(&id);
    log
}

/// Streams the logs of `tasks` from their nodes' agents, merged, ending when
/// every task's log ends (or never, with `follow`, until the client leaves).
pub fn stream_tasks(
    state: crate::state::SharedState,
    tasks: Vec<capstan_core::Task>,
    r: pb::LogsRequest,
) -> std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::LogLine, tonic::Status>> + Send>> {
    let (out, rx) = mpsc::channel(1024);
    for task in tasks {
        let Some(node) = task.node_id else { continue };
        let (id, mut chunks) = state.swarm.logs.open();
        let request = pb::LogRequest {
            request_id: id.clone(),
            task_id: task.id.clone(),
            follow: r.follow,
            since_unix_ms: r.since_unix_ms,
            tail: r.tail.clone(),
            timestamps: r.timestamps,
            own_log: false,
        };
        if !state
            .swarm
            .sessions
            .send(node, pb::dispatcher_message::Msg::LogRequest(request))
        {
            state.swarm.logs.close(&id);
            continue;
        }
        let out = out.clone();
        let state = state.clone();
        tokio::spawn(async move {
            while let Some(chunk) = chunks.recv().await {
                if !chunk.error.is_empty() {
                    let _ = out
                        .send(Err(tonic::Status::unavailable(format!(
                            "logs of task {}: {}",
                            task.id, chunk.error
                        ))))
                        .await;
                    break;
                }
                if !chunk.data.is_empty() {
                    let line = pb::LogLine {
                        task_id: task.id.clone(),
                        node_id: node.to_string(),
                        stream: chunk.stream,
                        data: chunk.data,
                    };
                    if out.send(Ok(line)).await.is_err() {
                        let cancel = pb::LogCancel {
                            request_id: id.clone(),
                        };
                        state
                            .swarm
                            .sessions
                            .send(node, pb::dispatcher_message::Msg::LogCancel(cancel));
                        break;
                    }
                }
                if chunk.eof {
                    break;
                }
            }
            state.swarm.logs.close(&id);
        });
    }
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
