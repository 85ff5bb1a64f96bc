//! Engine API: services (`docker service`, and the service half of
//! `docker stack`), served through the manager's Swarm API and filtered
//! by RBAC: a caller sees the services of the collections where they hold
//! `service.view`; any other service is "not found" to them.

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use capstan_core::rbac::{Operation, ACCESS_LABEL};
use capstan_core::service::{MountKind, ServiceMode};
use capstan_core::{Config, Network, Secret, Service, ServiceSpec, Task, TaskState};
use capstan_manager::state::Consistency;
use capstan_manager::swarm::api::SwarmApi;
use capstan_proto::v1::{self as pb, swarm_server::Swarm};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};

use super::convert::{
    flag, object_collection, parse_service_spec, require, resolve, service_to_engine, Converted,
    ServiceJson, ServiceStatusJson,
};
use super::filters::Filters;
use super::{place, status_error};
use crate::api::op;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiQuery, RawBody};
use crate::trust;
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/services", get(list))
        .route("/services/create", post(create))
        .route("/services/{id}", get(inspect).delete(remove))
        .route("/services/{id}/update", post(update))
        .route("/services/{id}/logs", get(logs))
}

/// The manager's Swarm API, called in-process.
pub(super) fn swarm(gw: &AppState) -> SwarmApi {
    SwarmApi::new(gw.manager.clone())
}

/// What a service is called in errors and the audit log.
fn what(name: &str) -> String {
    format!("service {name}")
}

/// The services the caller may do `op` on, with their versions.
pub(super) async fn visible_services(
    gw: &AppState,
    caller: &Caller,
    op: Operation,
) -> ApiResult<Vec<(Service, u64)>> {
    let all = gw
        .manager
        .list_all::<Service>(Consistency::Linearizable)
        .await?;
    Ok(all
        .into_iter()
        .filter(|(s, _)| {
            let path = object_collection(&s.spec.labels);
            caller.may(op, capstan_core::rbac::Resource::Collection(&path))
        })
        .collect())
}

/// The service `wanted` (id, name or id prefix) among those the caller
/// may view; others are not found.
pub(super) async fn find_service(
    gw: &AppState,
    caller: &Caller,
    wanted: &str,
) -> ApiResult<(Service, u64)> {
    let visible = visible_services(gw, caller, op!("service.view")).await?;
    resolve(
        &visible,
        wanted,
        "service",
        |s| s.id.clone(),
        |s| &s.spec.name,
    )
    .cloned()
}

#[derive(Deserialize, Default)]
struct ListQuery {
    filters: Option<String>,
    status: Option<String>,
}

fn service_matches(f: &Filters, s: &Service) -> bool {
    let mode = match s.spec.mode {
        ServiceMode::Replicated { .. } => "replicated",
        ServiceMode::Global => "global",
    };
    f.id_matches(&s.id)
        && f.any("name", |n| s.spec.name.starts_with(n))
        && f.any("mode", |m| m == mode)
        && f.labels_match(&s.spec.labels)
}

/// Tasks meant to run, per service id: (how many, how many run).
pub(super) type TaskCounts<'a> = std::collections::HashMap<&'a str, (u64, u64)>;

/// Counts the tasks meant to run of every service, in one pass.
pub(super) fn task_counts<'a>(tasks: impl IntoIterator<Item = &'a Task>) -> TaskCounts<'a> {
    let mut counts = TaskCounts::new();
    for t in tasks {
        if t.desired_state == TaskState::Running {
            let c = counts.entry(t.service_id.as_str()).or_default();
            c.0 += 1;
            c.1 += u64::from(t.status.state == TaskState::Running);
        }
    }
    counts
}

/// Task counts of a service, as `docker service ls` shows them.
pub(super) fn service_status(s: &Service, counts: &TaskCounts<'_>) -> ServiceStatusJson {
    let (wanted, running) = counts.get(s.id.as_str()).copied().unwrap_or_default();
    let desired = match s.spec.mode {
        ServiceMode::Replicated { replicas } => replicas,
        ServiceMode::Global => wanted,
    };
    ServiceStatusJson {
        running_tasks: running,
        desired_tasks: desired,
        completed_tasks: 0,
    }
}

/// `GET /services`: filters `id`, `label`, `mode`, `name`; `status=true`
/// adds the task counts.
async fn list(
    State(gw): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<ServiceJson>>> {
    let filters = Filters::parse(q.filters.as_deref(), &["id", "label", "mode", "name"])?;
    let with_status = flag("status", q.status.as_deref())?;
    let services = visible_services(&gw, &caller, op!("service.view")).await?;
    let tasks = if with_status {
        gw.manager
            .list_all_shared::<Task>(Consistency::Linearizable)
            .await?
    } else {
        Vec::new()
    };
    let counts = task_counts(tasks.iter().map(|(t, _)| &**t));
    Ok(Json(
        services
            .iter()
            .filter(|(s, _)| service_matches(&filters, s))
            .map(|(s, v)| {
                let status = with_status.then(|| service_status(s, &counts));
                service_to_engine(s, *v, false, status)
            })
            .collect(),
    ))
}

#[derive(Deserialize, Default)]
struct InspectQuery {
    #[serde(rename = "insertDefaults")]
    insert_defaults: Option<String>,
}

/// `GET /services/{id}`: by id, name or id prefix.
async fn inspect(
    State(gw): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<InspectQuery>,
) -> ApiResult<Json<ServiceJson>> {
    let insert_defaults = flag("insertDefaults", q.insert_defaults.as_deref())?;
    let (s, v) = find_service(&gw, &caller, &id).await?;
    Ok(Json(service_to_engine(&s, v, insert_defaults, None)))
}

/// A name for a service created without one, as the engine gives.
fn generated_name() -> String {
    use rand::Rng;
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::thread_rng();
    let tail: String = (0..10)
        .map(|_| char::from(LETTERS[rng.gen_range(0..LETTERS.len())]))
        .collect();
    format!("service_{tail}")
}

fn registry_auth(headers: &HeaderMap) -> String {
    headers
        .get("x-registry-auth")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The secret or config a reference names (`id` may also be a name), if
/// the caller may use it; 404 when they may not even see it.
fn usable<'a, T>(
    caller: &Caller,
    items: &'a [(T, u64)],
    (id, name): (&str, &str),
    (kind, view, use_op): (&str, Operation, Operation),
    fields: impl Fn(&T) -> (&str, &str, &BTreeMap<String, String>),
) -> ApiResult<&'a T> {
    let wanted = if name.is_empty() { id } else { name };
    let hit = items.iter().map(|(o, _)| o).find(|o| {
        let (oid, oname, _) = fields(o);
        (!id.is_empty() && (oid == id || oname == id)) || (id.is_empty() && oname == name)
    });
    let not_found = || ApiError::not_found(format!("{kind} {wanted} not found"));
    let Some(object) = hit else {
        return Err(not_found());
    };
    let (_, oname, labels) = fields(object);
    let path = object_collection(labels);
    let resource = capstan_core::rbac::Resource::Collection(&path);
    if caller.may(use_op, resource) {
        return Ok(object);
    }
    if !caller.may(view, resource) {
        return Err(not_found());
    }
    caller
        .authorize(use_op, resource, &format!("{kind} {oname}"))
        .map(|()| object)
}

/// Checks that the caller may use every secret, config and network the
/// spec names, and rewrites the references to those objects' ids and
/// names, so the manager resolves exactly what was checked.
pub(super) async fn check_references(
    gw: &AppState,
    caller: &Caller,
    spec: &mut ServiceSpec,
) -> ApiResult<()> {
    let c = &mut spec.task.container;
    if !c.secrets.is_empty() {
        let secrets = gw
            .manager
            .list_all::<Secret>(Consistency::Linearizable)
            .await?;
        for r in &mut c.secrets {
            let ops = ("secret", op!("secret.view"), op!("secret.use"));
            let s = usable(caller, &secrets, (&r.id, &r.name), ops, |s| {
                (&s.id, &s.name, &s.labels)
            })?;
            (r.id, r.name) = (s.id.clone(), s.name.clone());
        }
    }
    if !c.configs.is_empty() {
        let configs = gw
            .manager
            .list_all::<Config>(Consistency::Linearizable)
            .await?;
        for r in &mut c.configs {
            let ops = ("config", op!("swarm-config.view"), op!("swarm-config.use"));
            let x = usable(caller, &configs, (&r.id, &r.name), ops, |c| {
                (&c.id, &c.name, &c.labels)
            })?;
            (r.id, r.name) = (x.id.clone(), x.name.clone());
        }
    }
    if !spec.task.networks.is_empty() {
        let all = gw
            .manager
            .list_all::<Network>(Consistency::Linearizable)
            .await?;
        let visible: Vec<(Network, u64)> = all
            .into_iter()
            .filter(|(n, _)| {
                let path = object_collection(&n.labels);
                caller.may(
                    op!("network.view"),
                    capstan_core::rbac::Resource::Collection(&path),
                )
            })
            .collect();
        for n in &mut spec.task.networks {
            let (net, _) = resolve(&visible, n, "network", |x| x.id.clone(), |x| &x.name)?;
            *n = net.id.clone();
        }
    }
    Ok(())
}

/// Bind mounts of host paths need their own operation.
fn check_bind_mounts(caller: &Caller, spec: &ServiceSpec, path: &str) -> ApiResult<()> {
    if spec
        .task
        .container
        .mounts
        .iter()
        .any(|m| m.kind == MountKind::Bind)
    {
        require(
            caller,
            op!("service.create.host-bind-mounts"),
            path,
            &what(&spec.name),
        )?;
    }
    Ok(())
}

fn spec_bytes(spec: &ServiceSpec) -> ApiResult<Vec<u8>> {
    serde_json::to_vec(spec).map_err(ApiError::internal)
}

/// `POST /services/create`: an Engine `ServiceSpec`, placed in the
/// caller's default collection or the one its access label names.
async fn create(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Converted { mut spec, warnings } = parse_service_spec(&body)?;
    if spec.name.is_empty() {
        spec.name = generated_name();
    }
    let path = place(
        &caller,
        &mut spec.labels,
        op!("service.create"),
        &what(&spec.name),
    )?;
    check_bind_mounts(&caller, &spec, &path)?;
    check_references(&gw, &caller, &mut spec).await?;
    if let Some(signed) = trust::check_image(&gw, &caller, &spec.task.container.image).await? {
        spec.task.container.image = signed;
    }
    let request = pb::CreateServiceRequest {
        spec: spec_bytes(&spec)?,
        registry_auth: registry_auth(&headers),
        owner: caller.username.clone(),
    };
    let created = swarm(&gw)
        .create_service(tonic::Request::new(request))
        .await
        .map_err(status_error)?
        .into_inner();
    let service: Service = serde_json::from_slice(&created.service).map_err(ApiError::internal)?;
    caller.note_object(&format!("service {} ({})", service.spec.name, service.id));
    Ok((
        StatusCode::CREATED,
        Json(json!({"ID": service.id, "Warnings": warnings})),
    ))
}

#[derive(Deserialize, Default)]
struct UpdateQuery {
    version: Option<String>,
    rollback: Option<String>,
    #[serde(rename = "registryAuthFrom")]
    _registry_auth_from: Option<String>,
}

/// The `version` query parameter of an update: required, as in the engine.
pub(super) fn required_version(kind: &str, raw: Option<&str>) -> ApiResult<u64> {
    let raw = raw.unwrap_or_default();
    raw.trim().parse().map_err(|_| {
        ApiError::invalid(format!(
            "invalid {kind} version {raw:?}: send the Version.Index you read (?version=N)"
        ))
    })
}

/// The answer to an update that names a version that is no longer current.
pub(super) fn out_of_sequence(object: &str, sent: u64, current: u64) -> ApiError {
    ApiError::conflict(format!(
        "update out of sequence: {object} is at version {current}, not {sent}; inspect it again and retry"
    ))
}

fn rollback_wanted(raw: Option<&str>) -> ApiResult<bool> {
    match raw {
        None | Some("") => Ok(false),
        Some("previous") => Ok(true),
        Some(other) => Err(ApiError::invalid(format!(
            "invalid rollback {other:?}: the only rollback is \"previous\""
        ))),
    }
}

/// The new spec of an update, checked: same name, kept in its collection
/// unless its access label moves it (which needs `service.update` there
/// too), and only references the caller may use.
async fn checked_update_spec(
    gw: &AppState,
    caller: &Caller,
    current: &Service,
    body: &[u8],
) -> ApiResult<(ServiceSpec, Vec<String>)> {
    let Converted { mut spec, warnings } = parse_service_spec(body)?;
    if spec.name != current.spec.name {
        return Err(ApiError::invalid(format!(
            "Spec.Name: a service cannot be renamed (it is {:?}, the update says {:?})",
            current.spec.name, spec.name
        )));
    }
    if let (None, Some(label)) = (
        spec.labels.get(ACCESS_LABEL),
        current.spec.labels.get(ACCESS_LABEL),
    ) {
        spec.labels.insert(ACCESS_LABEL.to_string(), label.clone());
    }
    let path = if spec.labels.contains_key(ACCESS_LABEL) {
        place(
            caller,
            &mut spec.labels,
            op!("service.update"),
            &what(&spec.name),
        )?
    } else {
        object_collection(&spec.labels)
    };
    check_bind_mounts(caller, &spec, &path)?;
    check_references(gw, caller, &mut spec).await?;
    // A new image must be signed; an update that keeps the image (a scale)
    // leaves a running service alone when the trust settings change.
    if spec.task.container.image != current.spec.task.container.image {
        if let Some(signed) = trust::check_image(gw, caller, &spec.task.container.image).await? {
            spec.task.container.image = signed;
        }
    }
    Ok((spec, warnings))
}

/// `POST /services/{id}/update?version=N[&rollback=previous]`.
async fn update(
    State(gw): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<UpdateQuery>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    let version = required_version("service", q.version.as_deref())?;
    let rollback = rollback_wanted(q.rollback.as_deref())?;
    let (current, stored) = find_service(&gw, &caller, &id).await?;
    let path = object_collection(&current.spec.labels);
    let name = what(&current.spec.name);
    caller.authorize(
        op!("service.update"),
        capstan_core::rbac::Resource::Collection(&path),
        &name,
    )?;
    if version != stored {
        return Err(out_of_sequence(&name, version, stored));
    }
    let (spec, warnings) = if rollback {
        if let Some(previous) = &current.previous_spec {
            require(
                &caller,
                op!("service.update"),
                &object_collection(&previous.labels),
                &name,
            )?;
        }
        (Vec::new(), Vec::new())
    } else {
        let (spec, warnings) = checked_update_spec(&gw, &caller, &current, &body).await?;
        (spec_bytes(&spec)?, warnings)
    };
    let request = pb::UpdateServiceRequest {
        service: current.id.clone(),
        version,
        spec,
        rollback,
        registry_auth: registry_auth(&headers),
    };
    swarm(&gw)
        .update_service(tonic::Request::new(request))
        .await
        .map_err(|s| match s.code() {
            tonic::Code::Aborted => {
                ApiError::conflict(format!("update out of sequence: {}", s.message()))
            }
            _ => status_error(s),
        })?;
    Ok(Json(json!({"Warnings": warnings})))
}

/// `DELETE /services/{id}`.
async fn remove(
    State(gw): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let (service, _) = find_service(&gw, &caller, &id).await?;
    let path = object_collection(&service.spec.labels);
    caller.authorize(
        op!("service.delete"),
        capstan_core::rbac::Resource::Collection(&path),
        &what(&service.spec.name),
    )?;
    let request = pb::RemoveRequest { id: service.id };
    swarm(&gw)
        .remove_service(tonic::Request::new(request))
        .await
        .map_err(status_error)?;
    Ok(StatusCode::OK)
}

/// The query of `GET /services/{id}/logs` and `GET /tasks/{id}/logs`.
#[derive(Deserialize, Default)]
pub(super) struct LogsQuery {
    stdout: Option<String>,
    stderr: Option<String>,
    follow: Option<String>,
    timestamps: Option<String>,
    details: Option<String>,
    tail: Option<String>,
    since: Option<String>,
}

/// What a log request asked for, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct LogOptions {
    stdout: bool,
    stderr: bool,
    follow: bool,
    timestamps: bool,
    details: bool,
    tail: String,
    since_ms: i64,
}

impl LogOptions {
    /// Checks the query.
    pub(super) fn parse(q: &LogsQuery) -> ApiResult<LogOptions> {
        let stdout = flag("stdout", q.stdout.as_deref())?;
        let stderr = flag("stderr", q.stderr.as_deref())?;
        if !stdout && !stderr {
            return Err(ApiError::invalid(
                "Bad parameters: you must choose at least one stream",
            ));
        }
        let tail = match q.tail.as_deref().map(str::trim) {
            None | Some("") | Some("all") => "all".to_string(),
            Some(n) if n.parse::<u64>().is_ok() => n.to_string(),
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "invalid tail {other:?}: expected \"all\" or a number of lines"
                )))
            }
        };
        Ok(LogOptions {
            stdout,
            stderr,
            follow: flag("follow", q.follow.as_deref())?,
            timestamps: flag("timestamps", q.timestamps.as_deref())?,
            details: flag("details", q.details.as_deref())?,
            tail,
            since_ms: since_ms(q.since.as_deref())?,
        })
    }
}

/// `since` in Unix seconds with an optional fraction, as milliseconds.
fn since_ms(raw: Option<&str>) -> ApiResult<i64> {
    let raw = raw.map(str::trim).unwrap_or_default();
    if raw.is_empty() {
        return Ok(0);
    }
    let bad = || ApiError::invalid(format!("invalid since {raw:?}: expected Unix seconds"));
    let (secs, frac) = raw.split_once('.').unwrap_or((raw, ""));
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    let millis: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<3}")[..3].parse().map_err(|_| bad())?
    };
    Ok(secs.saturating_mul(1000).saturating_add(millis))
}

/// One multiplexed frame: `[stream, 0, 0, 0, length (big endian)]` and
/// the payload.
fn frame(stream: u8, payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&[stream, 0, 0, 0]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
}

/// The frames of one chunk of a task's output, one per line, each as the
/// engine writes service logs: `[timestamp ]details message`, where the
/// details name the node, service and task (`docker service logs` parses
/// them to print `web.1.abc@node |`).
fn frames(line: &pb::LogLine, service_id: &str, o: &LogOptions) -> Option<Bytes> {
    let stream = match line.stream {
        1 if o.stdout => 1u8,
        2 if o.stderr => 2u8,
        _ => return None,
    };
    let details = format!(
        "com.docker.swarm.node.id={},com.docker.swarm.service.id={service_id},com.docker.swarm.task.id={}",
        line.node_id, line.task_id
    );
    let mut out = Vec::with_capacity(line.data.len() + 128);
    for text in line.data.split_inclusive(|b| *b == b'\n') {
        let (stamp, message) = match (o.timestamps, text.iter().position(|b| *b == b' ')) {
            (true, Some(at)) => (&text[..=at], &text[at + 1..]),
            _ => (&text[..0], text),
        };
        let mut payload = stamp.to_vec();
        if o.details {
            payload.extend_from_slice(details.as_bytes());
            payload.push(b' ');
        }
        payload.extend_from_slice(message);
        frame(stream, &payload, &mut out);
    }
    (!out.is_empty()).then(|| Bytes::from(out))
}

/// Streams the logs of a service or task (`target`, an id, of the service
/// `service_id`) as the engine's multiplexed stream, leaving out the tasks
/// in `skip`; the headers go out at once.
pub(super) async fn log_response(
    gw: &AppState,
    (target, service_id): (String, String),
    skip: HashSet<String>,
    o: LogOptions,
) -> ApiResult<Response> {
    let request = pb::LogsRequest {
        target,
        follow: o.follow,
        since_unix_ms: o.since_ms,
        tail: o.tail.clone(),
        timestamps: o.timestamps,
    };
    let lines = swarm(gw)
        .service_logs(tonic::Request::new(request))
        .await
        .map_err(status_error)?
        .into_inner();
    let body = lines.filter_map(move |item| {
        let out = match item {
            Ok(line) if skip.contains(&line.task_id) => None,
            Ok(line) => frames(&line, &service_id, &o),
            Err(e) => {
                // One task's log failing (its container is gone) must not
                // cut the others short.
                tracing::debug!(error = %e.message(), "a task's log could not be read");
                None
            }
        };
        futures::future::ready(out.map(Ok::<_, Infallible>))
    });
    let mut resp = Body::from_stream(body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.docker.raw-stream"),
    );
    Ok(resp)
}

/// `GET /services/{id}/logs`: needs `service.logs`.
async fn logs(
    State(gw): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<LogsQuery>,
) -> ApiResult<Response> {
    let options = LogOptions::parse(&q)?;
    let (service, _) = find_service(&gw, &caller, &id).await?;
    let path = object_collection(&service.spec.labels);
    caller.authorize(
        op!("service.logs"),
        capstan_core::rbac::Resource::Collection(&path),
        &what(&service.spec.name),
    )?;
    // Tasks of scaled-down slots are deleted as soon as they stop: the CLI
    // would fail to look up a task its log lines name.
    let skip = gw
        .manager
        .list_all::<Task>(Consistency::Linearizable)
        .await?
        .into_iter()
        .filter(|(t, _)| t.service_id == service.id && t.desired_state == TaskState::Remove)
        .map(|(t, _)| t.id)
        .collect();
    log_response(&gw, (service.id.clone(), service.id), skip, options).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(timestamps: bool, details: bool) -> LogOptions {
        LogOptions {
            stdout: true,
            stderr: false,
            follow: false,
            timestamps,
            details,
            tail: "all".into(),
            since_ms: 0,
        }
    }

    fn line(stream: u32, data: &str) -> pb::LogLine {
        pb::LogLine {
            task_id: "t1".into(),
            node_id: "n1".into(),
            stream,
            data: data.as_bytes().to_vec(),
        }
    }

    #[test]
    fn log_lines_become_multiplexed_frames_with_details() {
        let out = frames(&line(1, "hello\n"), "s1", &options(false, true)).expect("a frame");
        let payload = b"com.docker.swarm.node.id=n1,com.docker.swarm.service.id=s1,com.docker.swarm.task.id=t1 hello\n";
        assert_eq!(&out[..4], &[1, 0, 0, 0]);
        assert_eq!(
            u32::from_be_bytes([out[4], out[5], out[6], out[7]]) as usize,
            payload.len()
        );
        assert_eq!(&out[8..], payload);
        // stderr was not asked for.
        assert!(frames(&line(2, "oops\n"), "s1", &options(false, true)).is_none());
    }

    #[test]
    fn timestamps_come_before_the_details() {
        let out = frames(
            &line(1, "2024-01-01T00:00:00.5Z hi\n"),
            "s",
            &options(true, true),
        )
        .expect("frame");
        let text = String::from_utf8_lossy(&out[8..]).to_string();
        assert!(
            text.starts_with("2024-01-01T00:00:00.5Z com.docker.swarm.node.id=n1,"),
            "{text}"
        );
        assert!(text.ends_with(" hi\n"), "{text}");
        let plain = frames(&line(1, "a\nb\n"), "s", &options(false, false)).expect("frames");
        assert_eq!(
            &plain[..],
            b"\x01\0\0\0\0\0\0\x02a\n\x01\0\0\0\0\0\0\x02b\n"
        );
    }

    #[test]
    fn log_queries_are_checked() {
        let q = LogsQuery {
            stdout: Some("1".into()),
            tail: Some("ten".into()),
            ..LogsQuery::default()
        };
        let e = LogOptions::parse(&q).expect_err("bad tail");
        assert!(e.message.contains("invalid tail"), "{}", e.message);
        let e = LogOptions::parse(&LogsQuery::default()).expect_err("no stream");
        assert!(e.message.contains("at least one stream"), "{}", e.message);
        assert_eq!(
            since_ms(Some("1700000000.25")).expect("since"),
            1_700_000_000_250
        );
        assert!(since_ms(Some("yesterday")).is_err());
    }

    #[test]
    fn versions_and_rollbacks_are_checked() {
        assert_eq!(
            required_version("service", Some("12")).expect("version"),
            12
        );
        let e = required_version("service", None).expect_err("missing");
        assert!(
            e.message.contains("invalid service version"),
            "{}",
            e.message
        );
        assert!(rollback_wanted(Some("previous")).expect("previous"));
        assert!(rollback_wanted(Some("next")).is_err());
        let e = out_of_sequence("service web", 3, 5);
        assert!(
            e.message.starts_with("update out of sequence"),
            "{}",
            e.message
        );
        assert_eq!(e.status, StatusCode::CONFLICT);
    }
}
