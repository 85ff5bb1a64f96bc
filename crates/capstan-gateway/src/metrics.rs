//! Request metrics, and the cluster gauges computed at each scrape, in the
//! Prometheus text format.

use std::time::Duration;

use capstan_core::{decode, Node, Table, Task};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use capstan_manager::state::SharedState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// The gateway's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    raft_term: Gauge,
    raft_commit: Gauge,
    raft_applied: Gauge,
    raft_apply_lag: Gauge,
    raft_leader: Gauge,
    nodes: Family<StateLabels, Gauge>,
    tasks: Family<StateLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("capstan");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "http_requests",
            "Gateway requests by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Gateway request latency by route",
            latency.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let raft_term = gauge(&mut registry, "raft_term", "Current Raft term");
        let raft_commit = gauge(
            &mut registry,
            "raft_last_log_index",
            "Last log index in this manager's log (the commit index on a caught-up leader)",
        );
        let raft_applied = gauge(
            &mut registry,
            "raft_applied_index",
            "Last log index applied by this manager",
        );
        let raft_apply_lag = gauge(
            &mut registry,
            "raft_apply_lag",
            "Log entries not yet applied here",
        );
        let raft_leader = gauge(
            &mut registry,
            "raft_is_leader",
            "1 when this manager is the leader",
        );
        let nodes = Family::<StateLabels, Gauge>::default();
        registry.register("nodes", "Nodes by state", nodes.clone());
        let tasks = Family::<StateLabels, Gauge>::default();
        registry.register("tasks", "Tasks by observed state", tasks.clone());
        Self {
            registry,
            requests,
            latency,
            raft_term,
            raft_commit,
            raft_applied,
            raft_apply_lag,
            raft_leader,
            nodes,
            tasks,
        }
    }
}

impl Metrics {
    /// Counts one answered request.
    pub fn observe(&self, method: &str, route: &str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_string(),
                route: route.to_string(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                method: method.to_string(),
                route: route.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// The text exposition, with the cluster gauges read now.
    pub fn render(&self, state: &SharedState) -> String {
        let m = state.raft.metrics().borrow().clone();
        let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let committed = m.last_log_index.unwrap_or(0);
        let applied = m.last_applied.map(|l| l.index).unwrap_or(0);
        self.raft_term.set(to_i64(m.current_term));
        self.raft_commit.set(to_i64(committed));
        self.raft_applied.set(to_i64(applied));
        self.raft_apply_lag
            .set(to_i64(committed.saturating_sub(applied)));
        self.raft_leader
            .set(i64::from(m.current_leader == Some(m.id)));

        self.nodes.clear();
        for o in state.sm.list(Node::TABLE, "", 0).unwrap_or_default() {
            if let Ok(n) = decode::<Node>(&o.value) {
                let s = format!("{:?}", n.state).to_lowercase();
                self.nodes.get_or_create(&StateLabels { state: s }).inc();
            }
        }
        self.tasks.clear();
        for o in state.sm.list(Task::TABLE, "", 0).unwrap_or_default() {
            if let Ok(t) = decode::<Task>(&o.value) {
                let s = format!("{:?}", t.status.state).to_lowercase();
                self.tasks.get_or_create(&StateLabels { state: s }).inc();
            }
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}
