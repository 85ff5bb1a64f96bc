//! The agent's session with the leader's dispatcher: it describes the node,
//! heartbeats, applies the assignments it receives through the executor,
//! reports task states and serves log requests. It reconnects (to another
//! manager, or to the leader a follower names) whenever the session breaks.

use std::collections::HashMap;
use std::time::Duration;

use capstan_core::service::FileReference;
use capstan_core::{Network, NodeId, Task, TaskStatus};
use capstan_proto::v1::dispatcher_client::DispatcherClient;
use capstan_proto::v1::{self as pb, agent_message::Msg as Out, dispatcher_message::Msg as In};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{ClientTlsConfig, Endpoint};

use crate::error::AgentError;
use crate::{Assignment, Executor, LogOptions};

/// How often the executor reconciles even without news.
const RECONCILE_EVERY: Duration = Duration::from_secs(2);

/// Who the agent is and where the managers are.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// This node.
    pub node_id: NodeId,
    /// Reported hostname.
    pub hostname: String,
    /// Managers' swarm addresses, `host:port`.
    pub managers: Vec<String>,
    /// TLS with this node's certificate.
    pub tls: ClientTlsConfig,
    /// `host:port` of this node's engine proxy, reported in the node
    /// description (empty when it runs none).
    pub engine_proxy: String,
}

/// Turns a dispatcher assignment into the executor's.
pub fn assignment_from_pb(a: pb::AssignedTask) -> Result<Assignment, AgentError> {
    let task: Task = serde_json::from_slice(&a.task)
        .map_err(|e| AgentError::Protocol(format!("assigned task: {e}")))?;
    let pick = |refs: &[FileReference], data: &[pb::FileData]| -> Vec<(FileReference, Vec<u8>)> {
        refs.iter()
            .filter_map(|r| {
                data.iter()
                    .find(|d| d.id == r.id)
                    .map(|d| (r.clone(), d.data.clone()))
            })
            .collect()
    };
    let secrets = pick(&task.spec.container.secrets, &a.secrets);
    let configs = pick(&task.spec.container.configs, &a.configs);
    let networks = a
        .networks
        .iter()
        .map(|n| serde_json::from_slice::<Network>(n))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| AgentError::Protocol(format!("assigned network: {e}")))?;
    Ok(Assignment {
        task,
        secrets,
        configs,
        networks,
        registry_auth: (!a.registry_auth.is_empty()).then_some(a.registry_auth),
    })
}

/// Runs sessions until cancelled, reconnecting with backoff.
pub async fn run(
    opts: SessionOptions,
    executor: Executor,
    cancel: CancellationToken,
) -> Result<(), AgentError> {
    let mut managers = opts.managers.clone();
    let mut next = 0usize;
    let mut backoff = Duration::from_millis(200);
    // Assignments survive reconnects: a session that breaks must not make
    // the executor stop the node's tasks.
    let mut assigned: Option<Vec<Assignment>> = None;
    loop {
        if managers.is_empty() {
            return Err(AgentError::Protocol("no manager address is known".into()));
        }
        let addr = managers[next % managers.len()].clone();
        next += 1;
        match session(
            &opts,
            &addr,
            &executor,
            &mut assigned,
            &mut managers,
            &cancel,
        )
        .await
        {
            Ok(()) => return Ok(()),
            Err(SessionEnd::Redirect(leader)) => {
                tracing::info!(%leader, "redirected to the leader");
                if let Some(i) = managers.iter().position(|m| *m == leader) {
                    next = i;
                } else {
                    managers.insert(0, leader);
                    next = 0;
                }
                backoff = Duration::from_millis(200);
                continue;
            }
            Err(SessionEnd::Broken(why)) => {
                tracing::warn!(manager = %addr, %why, "agent session ended; reconnecting");
            }
        }
        // Keep the node converged while disconnected.
        if let Some(a) = &assigned {
            let _ = executor.reconcile(a).await;
        }
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

enum SessionEnd {
    Redirect(String),
    Broken(String),
}

async fn session(
    opts: &SessionOptions,
    addr: &str,
    executor: &Executor,
    assigned: &mut Option<Vec<Assignment>>,
    managers: &mut Vec<String>,
    cancel: &CancellationToken,
) -> Result<(), SessionEnd> {
    let broken = |e: &dyn std::fmt::Display| SessionEnd::Broken(e.to_string());
    let channel = Endpoint::from_shared(format!("https://{addr}"))
        .map_err(|e| broken(&e))?
        .tls_config(opts.tls.clone())
        .map_err(|e| broken(&e))?
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| broken(&e))?;
    let mut description = executor
        .describe(&opts.hostname)
        .await
        .map_err(|e| broken(&e))?;
    description.engine_proxy = opts.engine_proxy.clone();
    let (tx, rx) = mpsc::channel::<pb::AgentMessage>(256);
    let send = |tx: &mpsc::Sender<pb::AgentMessage>, msg: Out| {
        let tx = tx.clone();
        async move { tx.send(pb::AgentMessage { msg: Some(msg) }).await.is_ok() }
    };
    send(
        &tx,
        Out::Description(serde_json::to_vec(&description).unwrap_or_default()),
    )
    .await;
    let mut inbound = match DispatcherClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .session(ReceiverStream::new(rx))
        .await
    {
        Ok(r) => r.into_inner(),
        Err(s) if s.code() == tonic::Code::FailedPrecondition => {
            let leader = s
                .message()
                .rsplit("leader is ")
                .next()
                .unwrap_or_default()
                .trim()
                .to_string();
            return Err(if leader.is_empty() || leader == addr {
                SessionEnd::Broken(s.message().to_string())
            } else {
                SessionEnd::Redirect(leader)
            });
        }
        Err(s) => return Err(SessionEnd::Broken(s.message().to_string())),
    };
    tracing::info!(manager = %addr, "agent session established");

    let mut heartbeat = tokio::time::interval(Duration::from_secs(5));
    let mut reconcile = tokio::time::interval(RECONCILE_EVERY);
    let mut changes = Box::pin(executor.changes());
    let mut reported: HashMap<String, TaskStatus> = HashMap::new();
    let mut logs: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    let result = loop {
        let mut converge = false;
        tokio::select! {
            _ = cancel.cancelled() => break Ok(()),
            _ = heartbeat.tick() => {
                if !send(&tx, Out::Heartbeat(pb::Heartbeat {})).await {
                    break Err(SessionEnd::Broken("outbound stream closed".into()));
                }
            }
            _ = reconcile.tick() => converge = true,
            Some(()) = changes.next() => converge = true,
            msg = inbound.message() => match msg {
                Ok(Some(m)) => match m.msg {
                    Some(In::Session(info)) => {
                        if info.heartbeat_period_ms > 0 {
                            heartbeat = tokio::time::interval(Duration::from_millis(info.heartbeat_period_ms));
                        }
                        if !info.managers.is_empty() {
                            *managers = info.managers;
                        }
                    }
                    Some(In::Assignments(a)) => {
                        let list: Result<Vec<_>, _> = a.tasks.into_iter().map(assignment_from_pb).collect();
                        match list {
                            Ok(list) => {
                                *assigned = Some(list);
                                converge = true;
                            }
                            Err(e) => tracing::warn!(error = %e, "bad assignments ignored"),
                        }
                    }
                    Some(In::LogRequest(r)) if r.own_log => {
                        tokio::spawn(send_own_log(r.request_id, tx.clone()));
                    }
                    Some(In::LogRequest(r)) => {
                        let id = r.request_id.clone();
                        logs.insert(id, tokio::spawn(serve_logs(executor.clone(), r, tx.clone())));
                    }
                    Some(In::LogCancel(c)) => {
                        if let Some(h) = logs.remove(&c.request_id) {
                            h.abort();
                        }
                    }
                    None => {}
                },
                Ok(None) => break Err(SessionEnd::Broken("the manager closed the session".into())),
                Err(s) => break Err(SessionEnd::Broken(s.message().to_string())),
            },
        }
        if converge {
            if let Some(a) = assigned.as_ref() {
                match executor.reconcile(a).await {
                    Ok(statuses) => {
                        let mut reports = Vec::new();
                        for (id, st) in statuses {
                            if reported.get(&id) == Some(&st) {
                                continue;
                            }
                            let status = serde_json::to_vec(&st).unwrap_or_default();
                            reported.insert(id.clone(), st);
                            reports.push(pb::TaskStatusReport {
                                task_id: id,
                                status,
                            });
                        }
                        if !reports.is_empty()
                            && !send(&tx, Out::Statuses(pb::TaskStatuses { reports })).await
                        {
                            break Err(SessionEnd::Broken("outbound stream closed".into()));
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "reconcile failed"),
                }
            }
        }
        logs.retain(|_, h| !h.is_finished());
    };
    for (_, h) in logs {
        h.abort();
    }
    result
}

/// Sends this process's recent log (for a support bundle) in chunks.
async fn send_own_log(request_id: String, tx: mpsc::Sender<pb::AgentMessage>) {
    let text = capstan_core::log_tail::global().contents().into_bytes();
    let mut pieces: Vec<&[u8]> = text.chunks(64 * 1024).collect();
    pieces.push(&[]);
    let last = pieces.len() - 1;
    for (i, data) in pieces.into_iter().enumerate() {
        let msg = pb::AgentMessage {
            msg: Some(Out::Log(pb::LogChunk {
                request_id: request_id.clone(),
                stream: 2,
                data: data.to_vec(),
                eof: i == last,
                error: String::new(),
            })),
        };
        if tx.send(msg).await.is_err() {
            return;
        }
    }
}

/// Streams one task's logs back to the dispatcher.
async fn serve_logs(executor: Executor, r: pb::LogRequest, tx: mpsc::Sender<pb::AgentMessage>) {
    let opts = LogOptions {
        follow: r.follow,
        since_unix_ms: r.since_unix_ms,
        tail: if r.tail.is_empty() {
            "all".into()
        } else {
            r.tail.clone()
        },
        timestamps: r.timestamps,
    };
    let chunk = |stream: u32, data: Vec<u8>, eof: bool, error: String| pb::AgentMessage {
        msg: Some(Out::Log(pb::LogChunk {
            request_id: r.request_id.clone(),
            stream,
            data,
            eof,
            error,
        })),
    };
    let mut pieces = Box::pin(executor.logs(&r.task_id, opts));
    while let Some(piece) = pieces.next().await {
        let msg = match piece {
            Ok(p) => chunk(p.stream, p.data, false, String::new()),
            Err(e) => {
                let _ = tx.send(chunk(0, vec![], true, e.to_string())).await;
                return;
            }
        };
        if tx.send(msg).await.is_err() {
            return;
        }
    }
    let _ = tx.send(chunk(0, vec![], true, String::new())).await;
}
