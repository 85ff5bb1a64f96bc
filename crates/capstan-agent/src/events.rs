//! Wake-ups for the agent: engine events about this node's task containers
//! (start, death, removal, health), and the end of a preparation. Each is a
//! bare `()`; the caller reconciles to find out what changed.

use std::time::Duration;

use bollard::errors::Error as EngineError;
use bollard::models::{EventMessage, EventMessageTypeEnum};
use bollard::query_parameters::EventsOptions;
use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt};
use tokio::sync::broadcast;

use crate::engine::Engine;
use crate::labels::{filters, NODE_LABEL};

/// First wait before resubscribing after the event stream broke.
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest wait between resubscriptions while the engine is away.
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Container actions that can change a task's status.
const ACTIONS: &[&str] = &[
    "start",
    "die",
    "destroy",
    "oom",
    "pause",
    "unpause",
    "health_status",
];

/// Engine events and preparation ends, merged.
pub(crate) fn changes(
    engine: Engine,
    prepared: broadcast::Receiver<()>,
) -> impl Stream<Item = ()> + Send + 'static {
    let prepared = stream::unfold(prepared, |mut rx| async move {
        match rx.recv().await {
            // A lagging receiver missed wake-ups; one stands for them all.
            Ok(()) | Err(broadcast::error::RecvError::Lagged(_)) => Some(((), rx)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    });
    stream::select(engine_changes(engine), prepared)
}

enum Subscription {
    /// Subscribe to events from `since` on; yield once first when events
    /// may have been missed.
    Connect {
        since: String,
        announce: bool,
        retry: Duration,
    },
    /// Reading events.
    Reading {
        events: BoxStream<'static, Result<EventMessage, EngineError>>,
        retry: Duration,
    },
}

fn engine_changes(engine: Engine) -> impl Stream<Item = ()> + Send + 'static {
    // Events from now on, even those before the stream is first polled.
    let start = Subscription::Connect {
        since: engine_time_now(),
        announce: false,
        retry: RETRY_FIRST,
    };
    stream::unfold(start, move |mut state| {
        let engine = engine.clone();
        async move {
            loop {
                state = match state {
                    Subscription::Connect {
                        since,
                        announce,
                        retry,
                    } => {
                        let options = EventsOptions {
                            since: Some(since),
                            filters: Some(event_filters(&engine)),
                            ..Default::default()
                        };
                        let events = engine.docker.events(Some(options)).boxed();
                        let next = Subscription::Reading { events, retry };
                        if announce {
                            return Some(((), next));
                        }
                        next
                    }
                    Subscription::Reading { mut events, retry } => match events.next().await {
                        Some(Ok(event)) => {
                            let next = Subscription::Reading {
                                events,
                                retry: RETRY_FIRST,
                            };
                            if is_task_change(&event, &engine.node.to_string()) {
                                return Some(((), next));
                            }
                            next
                        }
                        broken => {
                            if let Some(Err(e)) = broken {
                                tracing::debug!(error = %e, "engine event stream broke; resubscribing");
                            }
                            let since = engine_time_now();
                            tokio::time::sleep(retry).await;
                            Subscription::Connect {
                                since,
                                announce: true,
                                retry: (retry * 2).min(RETRY_MAX),
                            }
                        }
                    },
                };
            }
        }
    })
}

/// Now, as the engine's `since` parameter reads it (`seconds.nanoseconds`).
fn engine_time_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{}.{:09}", now.unix_timestamp(), now.nanosecond())
}

fn event_filters(engine: &Engine) -> std::collections::HashMap<String, Vec<String>> {
    let mut f = filters(engine.node, &[]);
    f.insert("type".to_owned(), vec!["container".to_owned()]);
    f
}

/// Whether an event is about one of `node`'s containers and can change its
/// task's status. The engine filters already; this guards against an
/// engine that ignores a filter.
fn is_task_change(event: &EventMessage, node: &str) -> bool {
    let is_container = matches!(event.typ, Some(EventMessageTypeEnum::CONTAINER));
    let ours = event
        .actor
        .as_ref()
        .and_then(|a| a.attributes.as_ref())
        .and_then(|attrs| attrs.get(NODE_LABEL))
        .is_some_and(|n| n == node);
    // Health events read `health_status: healthy`.
    let action = event.action.as_deref().unwrap_or_default();
    let verb = action.split(':').next().unwrap_or_default().trim();
    is_container && ours && ACTIONS.contains(&verb)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::EventActor;
    use std::collections::HashMap;

    fn event(action: &str, node: &str) -> EventMessage {
        EventMessage {
            typ: Some(EventMessageTypeEnum::CONTAINER),
            action: Some(action.into()),
            actor: Some(EventActor {
                id: Some("c1".into()),
                attributes: Some(HashMap::from([(NODE_LABEL.to_owned(), node.to_owned())])),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn only_status_changing_events_of_our_containers_count() {
        assert!(is_task_change(&event("die", "n1"), "n1"));
        assert!(is_task_change(
            &event("health_status: unhealthy", "n1"),
            "n1"
        ));
        assert!(!is_task_change(&event("exec_start: sh", "n1"), "n1"));
        assert!(!is_task_change(&event("die", "n2"), "n1"));
        let mut network = event("destroy", "n1");
        network.typ = Some(EventMessageTypeEnum::NETWORK);
        assert!(!is_task_change(&network, "n1"));
    }
}
