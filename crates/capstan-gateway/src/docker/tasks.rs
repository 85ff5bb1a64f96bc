//! Engine API: tasks (`docker service ps`, `docker stack ps`, and the
//! progress bars of `docker service create/update`). A caller sees the
//! tasks of the services in collections where they hold
//! `service.view-tasks`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use capstan_core::rbac::Resource;
use capstan_core::{Node, Service, Task};
use capstan_manager::state::Consistency;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::convert::{object_collection, resolve, rfc3339, task_template_to_engine};
use super::filters::Filters;
use super::services::{log_response, service_status, task_counts, LogOptions, LogsQuery};
use crate::api::op;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/tasks", get(list))
        .route("/tasks/{id}", get(inspect))
        .route("/tasks/{id}/logs", get(logs))
        .route("/api/tasks/summary", get(summary))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SummaryQuery {
    recent: Option<usize>,
}

/// The most recent tasks a summary may list.
const MAX_RECENT: usize = 100;

/// `GET /api/tasks/summary?recent=N` (Capstan's own, for the dashboard's
/// overview): the tasks the caller may see counted by state, the services
/// they may see with how many run every task they should, and the `N`
/// (default 10, at most 100) that changed last, as the Engine's JSON with
/// the name `docker service ps` shows. One
/// answer of a few kilobytes instead of every task.
async fn summary(
    State(gw): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<SummaryQuery>,
) -> ApiResult<Json<Value>> {
    let n = q.recent.unwrap_or(10);
    if n > MAX_RECENT {
        return Err(ApiError::invalid(format!(
            "recent={n} is too many: at most {MAX_RECENT}"
        )));
    }
    let visible = visible_tasks(&gw, &caller).await?;
    let mut by_state: std::collections::BTreeMap<String, u64> = Default::default();
    for (t, _) in &visible.tasks {
        *by_state.entry(t.status.state.to_string()).or_default() += 1;
    }
    // Services the caller may view, and how many run all they should.
    let counts = task_counts(visible.tasks.iter().map(|(t, _)| &**t));
    let (mut services, mut converged) = (0u64, 0u64);
    for s in visible.services.values() {
        let path = object_collection(&s.spec.labels);
        if caller.may(op!("service.view"), Resource::Collection(&path)) {
            let status = service_status(s, &counts);
            services += 1;
            converged += u64::from(status.running_tasks >= status.desired_tasks);
        }
    }
    let mut recent: Vec<&(Arc<Task>, u64)> = visible.tasks.iter().collect();
    recent.sort_unstable_by_key(|(t, _)| std::cmp::Reverse(t.status.timestamp));
    recent.truncate(n);
    Ok(Json(json!({
        "ByState": by_state,
        "Services": {"Total": services, "Converged": converged},
        "Recent": recent
            .iter()
            .map(|(t, v)| {
                let mut task = task_to_engine(t, *v);
                task["Name"] = json!(task_name(t));
                task
            })
            .collect::<Vec<_>>(),
    })))
}

/// The desired states a `desired-state` filter may name.
const DESIRED_STATES: &[&str] = &[
    "running", "shutdown", "accepted", "remove", "ready", "complete",
];

/// Tasks the caller may see, with the services they belong to.
struct Visible {
    /// Shared with the manager's decoded records, not copied.
    tasks: Vec<(Arc<Task>, u64)>,
    services: HashMap<String, Service>,
}

/// A task's collection is its service's; a task whose service is gone
/// belongs to `/`.
fn task_collection(t: &Task, services: &HashMap<String, Service>) -> String {
    services
        .get(&t.service_id)
        .map_or_else(|| "/".to_string(), |s| object_collection(&s.spec.labels))
}

async fn visible_tasks(gw: &AppState, caller: &Caller) -> ApiResult<Visible> {
    let services: HashMap<String, Service> = gw
        .manager
        .list_all::<Service>(Consistency::Linearizable)
        .await?
        .into_iter()
        .map(|(s, _)| (s.id.clone(), s))
        .collect();
    // Decided once per service, not once per task.
    let allowed: HashMap<&str, bool> = services
        .values()
        .map(|s| {
            let path = object_collection(&s.spec.labels);
            let may = caller.may(op!("service.view-tasks"), Resource::Collection(&path));
            (s.id.as_str(), may)
        })
        .collect();
    let orphans_visible = caller.may(op!("service.view-tasks"), Resource::Collection("/"));
    let tasks = gw
        .manager
        .list_all_shared::<Task>(Consistency::Linearizable)
        .await?
        .into_iter()
        .filter(|(t, _)| {
            allowed
                .get(t.service_id.as_str())
                .copied()
                .unwrap_or(orphans_visible)
        })
        .collect();
    Ok(Visible { tasks, services })
}

/// The name `docker service ps` shows: `<service>.<slot>`, or
/// `<service>.<node id>` for a global service's task.
fn task_name(t: &Task) -> String {
    match (t.slot, t.node_id) {
        (0, Some(node)) => format!("{}.{node}", t.service_name),
        (slot, _) => format!("{}.{slot}", t.service_name),
    }
}

/// A task as the Engine's JSON.
pub fn task_to_engine(t: &Task, version: u64) -> Value {
    let mut out = Map::new();
    out.insert("ID".into(), json!(t.id));
    out.insert("Version".into(), json!({"Index": version}));
    out.insert("CreatedAt".into(), json!(rfc3339(t.created_at)));
    out.insert(
        "UpdatedAt".into(),
        json!(rfc3339(t.status.timestamp.max(t.created_at))),
    );
    out.insert("Labels".into(), json!({}));
    let spec = task_template_to_engine(&t.spec, false, false);
    out.insert(
        "Spec".into(),
        serde_json::to_value(spec).unwrap_or(Value::Null),
    );
    out.insert("ServiceID".into(), json!(t.service_id));
    if t.slot > 0 {
        out.insert("Slot".into(), json!(t.slot));
    }
    if let Some(node) = t.node_id {
        out.insert("NodeID".into(), json!(node.to_string()));
    }
    out.insert("Status".into(), status_to_engine(t));
    out.insert("DesiredState".into(), json!(t.desired_state.to_string()));
    out.insert("NetworksAttachments".into(), json!([]));
    Value::Object(out)
}

fn status_to_engine(t: &Task) -> Value {
    let s = &t.status;
    let mut out = Map::new();
    out.insert("Timestamp".into(), json!(rfc3339(s.timestamp)));
    out.insert("State".into(), json!(s.state.to_string()));
    out.insert("Message".into(), json!(s.message));
    if !s.err.is_empty() {
        out.insert("Err".into(), json!(s.err));
    }
    if !s.container_id.is_empty() {
        out.insert(
            "ContainerStatus".into(),
            json!({"ContainerID": s.container_id, "PID": 0, "ExitCode": s.exit_code.unwrap_or(0)}),
        );
    }
    let ports: Vec<Value> = s
        .ports
        .iter()
        .map(|p| {
            json!({
                "Protocol": p.protocol,
                "TargetPort": p.target_port,
                "PublishedPort": p.published_port,
                "PublishMode": "host",
            })
        })
        .collect();
    out.insert(
        "PortStatus".into(),
        if ports.is_empty() {
            json!({})
        } else {
            json!({"Ports": ports})
        },
    );
    Value::Object(out)
}

#[derive(Deserialize, Default)]
struct ListQuery {
    filters: Option<String>,
}

/// The filters of `GET /tasks`, resolved against the cluster.
struct TaskFilter {
    f: Filters,
    /// Ids of the services the `service` filter names.
    services: Option<Vec<String>>,
    /// Ids of the nodes the `node` filter names.
    nodes: Option<Vec<String>>,
    up_to_date: bool,
}

async fn task_filter(gw: &AppState, v: &Visible, raw: Option<&str>) -> ApiResult<TaskFilter> {
    let f = Filters::parse(
        raw,
        &[
            "id",
            "name",
            "service",
            "node",
            "label",
            "desired-state",
            "_up-to-date",
        ],
    )?;
    for state in f.get("desired-state") {
        if !DESIRED_STATES.contains(&state.as_str()) {
            return Err(ApiError::invalid(format!(
                "invalid filter 'desired-state={state}': expected one of {}",
                DESIRED_STATES.join(", ")
            )));
        }
    }
    let services = (!f.get("service").is_empty()).then(|| {
        let list: Vec<(Service, u64)> = v.services.values().map(|s| (s.clone(), 0)).collect();
        f.get("service")
            .iter()
            .filter_map(|w| resolve(&list, w, "service", |s| s.id.clone(), |s| &s.spec.name).ok())
            .map(|(s, _)| s.id.clone())
            .collect()
    });
    let nodes = if f.get("node").is_empty() {
        None
    } else {
        let all = gw
            .manager
            .list_all::<Node>(Consistency::Linearizable)
            .await?;
        Some(
            f.get("node")
                .iter()
                .filter_map(|w| {
                    resolve(&all, w, "node", |n| n.id.to_string(), |n| &n.hostname).ok()
                })
                .map(|(n, _)| n.id.to_string())
                .collect(),
        )
    };
    let up_to_date = f.get("_up-to-date").iter().any(|x| x == "true" || x == "1");
    Ok(TaskFilter {
        f,
        services,
        nodes,
        up_to_date,
    })
}

impl TaskFilter {
    fn matches(&self, t: &Task, services: &HashMap<String, Service>) -> bool {
        let service = services.get(&t.service_id);
        // Cheapest tests first: most lists filter by service or node.
        self.services
            .as_ref()
            .is_none_or(|ids| ids.contains(&t.service_id))
            && self.nodes.as_ref().is_none_or(|ids| {
                let node = t.node_id.map(|n| n.to_string()).unwrap_or_default();
                ids.contains(&node)
            })
            && self.f.id_matches(&t.id)
            && self.f.any("name", |n| task_name(t).starts_with(n))
            && self
                .f
                .any("desired-state", |d| d == t.desired_state.to_string())
            && (self.f.get("label").is_empty() || {
                let mut labels = service.map(|s| s.spec.labels.clone()).unwrap_or_default();
                labels.extend(t.spec.container.labels.clone());
                self.f.labels_match(&labels)
            })
            && (!self.up_to_date || service.is_some_and(|s| s.spec.task == t.spec))
    }
}

/// `GET /tasks`: filters `id`, `name`, `service` (id or name), `node` (id
/// or hostname), `label`, `desired-state`, and the CLI's `_up-to-date`.
async fn list(
    State(gw): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<Value>>> {
    let visible = visible_tasks(&gw, &caller).await?;
    let filter = task_filter(&gw, &visible, q.filters.as_deref()).await?;
    Ok(Json(
        visible
            .tasks
            .iter()
            .filter(|(t, _)| filter.matches(t, &visible.services))
            .map(|(t, v)| task_to_engine(t, *v))
            .collect(),
    ))
}

async fn find_task(gw: &AppState, caller: &Caller, id: &str) -> ApiResult<(Visible, Task)> {
    let visible = visible_tasks(gw, caller).await?;
    let (task, _) = resolve(&visible.tasks, id, "task", |t| t.id.clone(), |t| &t.id)?;
    let task = Task::clone(task);
    Ok((visible, task))
}

/// `GET /tasks/{id}`.
async fn inspect(
    State(gw): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let visible = visible_tasks(&gw, &caller).await?;
    let (t, v) = resolve(&visible.tasks, &id, "task", |t| t.id.clone(), |t| &t.id)?;
    Ok(Json(task_to_engine(t, *v)))
}

/// `GET /tasks/{id}/logs`: needs `service.logs` on the task's service.
async fn logs(
    State(gw): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<LogsQuery>,
) -> ApiResult<Response> {
    let options = LogOptions::parse(&q)?;
    let (visible, task) = find_task(&gw, &caller, &id).await?;
    let path = task_collection(&task, &visible.services);
    caller.authorize(
        op!("service.logs"),
        Resource::Collection(&path),
        &format!("task {}", task.id),
    )?;
    let target = (task.id.clone(), task.service_id.clone());
    log_response(&gw, target, HashSet::new(), options).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_core::ids::NodeId;
    use capstan_core::{TaskSpec, TaskState, TaskStatus};
    use time::OffsetDateTime;

    fn task() -> Task {
        Task {
            id: "t1".into(),
            service_id: "s1".into(),
            service_name: "web".into(),
            slot: 2,
            node_id: Some(NodeId(7)),
            spec: TaskSpec::default(),
            spec_version: 1,
            desired_state: TaskState::Running,
            status: TaskStatus {
                state: TaskState::Running,
                message: "started".into(),
                err: String::new(),
                timestamp: OffsetDateTime::UNIX_EPOCH,
                container_id: "c1".into(),
                exit_code: None,
                ports: Vec::new(),
            },
            attempt: 0,
            created_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn tasks_render_like_the_engine() {
        let v = task_to_engine(&task(), 9);
        assert_eq!(v["Version"]["Index"], 9);
        assert_eq!(v["Status"]["State"], "running");
        assert_eq!(v["DesiredState"], "running");
        assert_eq!(v["Slot"], 2);
        assert_eq!(v["Status"]["ContainerStatus"]["ContainerID"], "c1");
        assert!(
            v["Spec"]["ContainerSpec"].is_object(),
            "the CLI dereferences Spec.ContainerSpec"
        );
        assert!(v["Spec"].get("Runtime").is_none());
        assert!(v["Status"].get("Err").is_none());
        assert_eq!(v["CreatedAt"], "1970-01-01T00:00:00Z");
        assert_eq!(task_name(&task()), "web.2");
    }
}
