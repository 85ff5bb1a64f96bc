//! Which managers answer: each manager pings the others once a second.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use capstan_proto::v1::PingRequest;
use tokio_util::sync::CancellationToken;

use crate::error::ManagerError;
use crate::state::SharedState;

/// How often peers are pinged.
const PING_EVERY: Duration = Duration::from_secs(1);
/// A manager not heard from for this long is unreachable.
const REACHABLE_WITHIN: Duration = Duration::from_secs(3);

/// Last time each manager answered a ping.
#[derive(Clone, Default)]
pub struct Reachability {
    seen: Arc<Mutex<HashMap<u64, Instant>>>,
}

impl Reachability {
    /// Records an answer from `id`.
    pub fn mark(&self, id: u64, at: Instant) {
        self.seen.lock().expect("reachability lock").insert(id, at);
    }

    /// Whether `id` answered within the window before `now`.
    pub fn is_reachable(&self, id: u64, now: Instant) -> bool {
        self.seen
            .lock()
            .expect("reachability lock")
            .get(&id)
            .is_some_and(|t| now.saturating_duration_since(*t) <= REACHABLE_WITHIN)
    }
}

/// Pings every other member of the Raft group until cancelled.
pub async fn monitor(state: SharedState, cancel: CancellationToken) -> Result<(), ManagerError> {
    let me = state.node_id().0;
    let mut tick = tokio::time::interval(PING_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        state.reach.mark(me, Instant::now());
        let members: Vec<(u64, String)> = state
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .nodes()
            .filter(|(id, _)| **id != me)
            .map(|(id, n)| (*id, n.addr.clone()))
            .collect();
        for (id, addr) in members {
            let Ok(mut client) = state.peer(&addr) else {
                continue;
            };
            let reach = state.reach.clone();
            tokio::spawn(async move {
                let ping = client.ping(PingRequest {});
                if let Ok(Ok(_)) = tokio::time::timeout(PING_EVERY, ping).await {
                    reach.mark(id, Instant::now());
                }
            });
        }
    }
}
