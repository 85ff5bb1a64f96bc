//! Conversions between the Engine API's JSON objects (API 1.41, as the
//! `docker` CLI sends and reads them) and Capstan's model, and the lookups
//! the swarm endpoints share.
//!
//! Inputs are checked field by field. A value Capstan cannot honour is
//! refused with a 400 naming the field (`Spec.TaskTemplate.ContainerSpec.Image:
//! required`) when ignoring it would change what runs in an essential way,
//! and is otherwise accepted with a warning that the CLI prints. Outputs
//! follow the engine: fields Go marks `omitempty` are left out when empty,
//! times are RFC 3339 (the zero time `0001-01-01T00:00:00Z` when unknown),
//! durations integer nanoseconds.

use std::collections::BTreeMap;

use capstan_core::service::{
    ContainerSpec, FailureAction, FileReference, HealthCheck, Mount, MountKind, Placement,
    PortConfig, ResourceRequirements, Resources, RestartCondition, RestartPolicy, ServiceMode,
    SpreadPreference, UpdateConfig, UpdateOrder, UpdateState, UpdateStatus,
};
use capstan_core::{Service, ServiceSpec, TaskSpec};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};
use time::OffsetDateTime;

use capstan_core::rbac::{Operation, Resource};

use super::collection_of;
use crate::auth::Caller;
use crate::error::ApiError;

/// The time Go prints for "never".
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Docker's default grace period between SIGTERM and SIGKILL.
const DEFAULT_GRACE_MS: u64 = 10_000;

/// Where secrets are mounted when their target is a bare file name.
const SECRETS_DIR: &str = "/run/secrets/";

/// A time as the engine prints it (RFC 3339 with nanoseconds).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| ZERO_TIME.to_string())
}

/// [`rfc3339`], or the zero time.
pub fn rfc3339_or_zero(t: Option<OffsetDateTime>) -> String {
    t.map_or_else(|| ZERO_TIME.to_string(), rfc3339)
}

/// The collection of a swarm object with these labels. An object without
/// an access label (made through the gRPC API or the `capstan` CLI, not
/// through the gateway) belongs to the root collection `/`: only admins
/// and holders of grants on `/` see it, never every user.
pub fn object_collection(labels: &BTreeMap<String, String>) -> String {
    collection_of(labels, "/")
}

/// Finds an object among `items` the way the engine does: exact id, then
/// exact name, then unique id prefix. `kind` names it in the 404
/// (`service x not found`).
pub fn resolve<'a, T>(
    items: &'a [(T, u64)],
    wanted: &str,
    kind: &str,
    id_of: impl Fn(&T) -> String,
    name_of: impl Fn(&T) -> &str,
) -> Result<&'a (T, u64), ApiError> {
    let not_found = || ApiError::not_found(format!("{kind} {wanted} not found"));
    if wanted.is_empty() {
        return Err(not_found());
    }
    if let Some(hit) = items.iter().find(|(o, _)| id_of(o) == wanted) {
        return Ok(hit);
    }
    if let Some(hit) = items.iter().find(|(o, _)| name_of(o) == wanted) {
        return Ok(hit);
    }
    let prefixed: Vec<&(T, u64)> = items
        .iter()
        .filter(|(o, _)| id_of(o).starts_with(wanted))
        .collect();
    match prefixed.as_slice() {
        [one] => Ok(one),
        [] => Err(not_found()),
        many => Err(ApiError::invalid(format!(
            "{kind} {wanted} is ambiguous ({} matches found)",
            many.len()
        ))),
    }
}

/// A boolean query parameter as the CLI sends it (`1`, `true`, `0`,
/// `false`; absent or empty: false).
pub fn flag(name: &str, value: Option<&str>) -> Result<bool, ApiError> {
    match value.map(str::trim) {
        None | Some("") => Ok(false),
        Some(v) if matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "t" | "yes") => {
            Ok(true)
        }
        Some(v) if matches!(v.to_ascii_lowercase().as_str(), "0" | "false" | "f" | "no") => {
            Ok(false)
        }
        Some(v) => Err(ApiError::invalid(format!(
            "invalid value {v:?} for the query parameter {name}: expected true or false"
        ))),
    }
}

/// Whether the caller may do `op` on an object in `path`; when not, the
/// audited 403 naming the operation and `what`. A permitted check is not
/// audited, so the request's audit entry keeps its main operation.
pub fn require(caller: &Caller, op: Operation, path: &str, what: &str) -> Result<(), ApiError> {
    if caller.may(op, Resource::Collection(path)) {
        return Ok(());
    }
    caller.authorize(op, Resource::Collection(path), what)
}

/// Reads a field that may be `null` as its default (the CLI sends `null`
/// for empty maps and lists).
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

/// A float as Go prints it: whole numbers without a fraction (`0`, not
/// `0.0`).
fn go_float<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    // Exactly representable whole numbers only; the cast cannot truncate.
    if v.fract() == 0.0 && v.abs() < 1e15 {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f64(*v)
    }
}

fn is_false(v: &bool) -> bool {
    !*v
}

/// The JSON field names of a struct, as serde knows them: a deserializer
/// that only records what `deserialize_struct` is asked for.
fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Probe(Option<&'static [&'static str]>);
    impl<'de> Deserializer<'de> for &mut Probe {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: serde::de::Visitor<'de>>(
            self,
            _: V,
        ) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("field probe"))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 = Some(fields);
            Err(serde::de::Error::custom("field probe"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let mut probe = Probe(None);
    let _ = T::deserialize(&mut probe);
    probe.0.unwrap_or(&[])
}

/// Whether a JSON value carries nothing (so ignoring it loses nothing).
fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_blank),
        Value::Bool(true) => false,
    }
}

/// Warns about every field of the object `v` (at `path`) that `T` does not
/// have and that carries a value.
fn warn_unknown<'de, T: Deserialize<'de>>(path: &str, v: &Value, warnings: &mut Vec<String>) {
    let Some(object) = v.as_object() else { return };
    let known = field_names::<T>();
    for (key, value) in object {
        if !known.contains(&key.as_str()) && !is_blank(value) {
            warnings.push(format!(
                "{path}.{key} is not supported by Capstan and was ignored"
            ));
        }
    }
}

/// Warnings about the fields of a service spec Capstan does not know.
fn unknown_spec_fields(spec: &Value) -> Vec<String> {
    let mut w = Vec::new();
    warn_unknown::<ServiceSpecJson>("Spec", spec, &mut w);
    let tt = &spec["TaskTemplate"];
    warn_unknown::<TaskTemplateJson>("Spec.TaskTemplate", tt, &mut w);
    let cs = &tt["ContainerSpec"];
    warn_unknown::<ContainerSpecJson>("Spec.TaskTemplate.ContainerSpec", cs, &mut w);
    for (i, m) in cs["Mounts"].as_array().into_iter().flatten().enumerate() {
        let path = format!("Spec.TaskTemplate.ContainerSpec.Mounts[{i}]");
        warn_unknown::<MountJson>(&path, m, &mut w);
    }
    let hc = &cs["Healthcheck"];
    warn_unknown::<HealthcheckJson>("Spec.TaskTemplate.ContainerSpec.Healthcheck", hc, &mut w);
    let res = &tt["Resources"];
    warn_unknown::<ResourcesJson>("Spec.TaskTemplate.Resources", res, &mut w);
    for part in ["Limits", "Reservations"] {
        let path = format!("Spec.TaskTemplate.Resources.{part}");
        warn_unknown::<LimitJson>(&path, &res[part], &mut w);
    }
    w
}

fn field_error(path: &str, problem: impl std::fmt::Display) -> ApiError {
    ApiError::invalid(format!("{path}: {problem}"))
}

/// Nanoseconds to milliseconds, rounding up so that a positive duration
/// stays positive.
fn ns_to_ms(path: &str, ns: i64) -> Result<u64, ApiError> {
    let ns = u64::try_from(ns)
        .map_err(|_| field_error(path, format!("must not be negative, got {ns}")))?;
    Ok(ns.div_ceil(1_000_000))
}

fn ms_to_ns(ms: u64) -> i64 {
    i64::try_from(ms.saturating_mul(1_000_000)).unwrap_or(i64::MAX)
}

fn non_negative(path: &str, v: i64) -> Result<u64, ApiError> {
    u64::try_from(v).map_err(|_| field_error(path, format!("must not be negative, got {v}")))
}

/// `Version` of a swarm object: the store version that last wrote it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionJson {
    /// The version.
    #[serde(rename = "Index")]
    pub index: u64,
}

/// An Engine `ServiceSpec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceSpecJson {
    /// Service name.
    #[serde(default)]
    pub name: String,
    /// Service labels.
    #[serde(default, deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    /// The task template.
    #[serde(default)]
    pub task_template: TaskTemplateJson,
    /// Replicated or global.
    #[serde(default)]
    pub mode: ModeJson,
    /// Rolling updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_config: Option<UpdateConfigJson>,
    /// Rollbacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_config: Option<UpdateConfigJson>,
    /// Deprecated place of the task's networks (API < 1.25).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub networks: Vec<NetworkAttachmentJson>,
    /// Published ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_spec: Option<EndpointSpecJson>,
}

/// An Engine `TaskSpec` (a service's `TaskTemplate`, a task's `Spec`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskTemplateJson {
    /// The container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_spec: Option<ContainerSpecJson>,
    /// Limits and reservations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourcesJson>,
    /// Restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicyJson>,
    /// Placement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<PlacementJson>,
    /// Networks to attach to.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub networks: Vec<NetworkAttachmentJson>,
    /// Bumped to replace tasks with an unchanged spec.
    #[serde(default)]
    pub force_update: u64,
    /// `container` (the only runtime Capstan has).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub runtime: String,
}

/// An Engine `ContainerSpec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerSpecJson {
    /// Image reference.
    #[serde(default)]
    pub image: String,
    /// Container labels.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    /// Entrypoint.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub command: Vec<String>,
    /// Arguments.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub args: Vec<String>,
    /// `KEY=value`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env: Vec<String>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dir: String,
    /// User.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// Mounts.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub mounts: Vec<MountJson>,
    /// Nanoseconds between SIGTERM and SIGKILL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<i64>,
    /// Health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthcheckJson>,
    /// Secrets as files.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub secrets: Vec<SecretRefJson>,
    /// Configs as files.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub configs: Vec<ConfigRefJson>,
    /// Isolation technology (`default` on Linux).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub isolation: String,
    /// Run an init process (Capstan never does: always `false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    /// DNS settings (Capstan has none: always `{}`).
    #[serde(rename = "DNSConfig", default, skip_serializing_if = "Option::is_none")]
    pub dns_config: Option<Value>,
}

/// An Engine `Mount`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MountJson {
    /// `volume` or `bind`.
    #[serde(default, rename = "Type")]
    pub kind: String,
    /// Volume name or host path.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// Path in the container.
    #[serde(default)]
    pub target: String,
    /// Read-only.
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_only: bool,
}

/// An Engine `HealthConfig`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthcheckJson {
    /// `["CMD", ...]`, `["CMD-SHELL", "..."]` or `["NONE"]`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub test: Vec<String>,
    /// Nanoseconds between checks.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub interval: i64,
    /// Nanoseconds per check.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub timeout: i64,
    /// Nanoseconds of grace at start.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub start_period: i64,
    /// Consecutive failures before unhealthy.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub retries: i64,
}

/// The file a secret or config becomes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FileJson {
    /// File name (secrets: under `/run/secrets/`; configs: a path).
    #[serde(rename = "Name", default)]
    pub name: String,
    /// Owner (Capstan: always `0`).
    #[serde(rename = "UID", default)]
    pub uid: String,
    /// Group (Capstan: always `0`).
    #[serde(rename = "GID", default)]
    pub gid: String,
    /// File mode.
    #[serde(rename = "Mode", default)]
    pub mode: u32,
}

/// An Engine `SecretReference`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SecretRefJson {
    /// The file.
    #[serde(rename = "File", default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileJson>,
    /// The secret's id.
    #[serde(rename = "SecretID", default)]
    pub secret_id: String,
    /// The secret's name.
    #[serde(rename = "SecretName", default)]
    pub secret_name: String,
}

/// An Engine `ConfigReference`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigRefJson {
    /// The file.
    #[serde(rename = "File", default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileJson>,
    /// A runtime config (credential specs), which Capstan cannot use.
    #[serde(rename = "Runtime", default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<Value>,
    /// The config's id.
    #[serde(rename = "ConfigID", default)]
    pub config_id: String,
    /// The config's name.
    #[serde(rename = "ConfigName", default)]
    pub config_name: String,
}

/// An Engine `ResourceRequirements`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResourcesJson {
    /// Enforced limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitJson>,
    /// Reserved when placing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservations: Option<LimitJson>,
}

/// CPUs and memory of a limit or reservation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LimitJson {
    /// CPUs × 10⁹.
    #[serde(rename = "NanoCPUs", default, skip_serializing_if = "is_zero_i64")]
    pub nano_cpus: i64,
    /// Bytes.
    #[serde(rename = "MemoryBytes", default, skip_serializing_if = "is_zero_i64")]
    pub memory_bytes: i64,
}

/// An Engine `RestartPolicy`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RestartPolicyJson {
    /// `none`, `on-failure` or `any`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub condition: String,
    /// Nanoseconds between restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<i64>,
    /// Restarts before giving up (0: never give up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u64>,
    /// Nanoseconds over which attempts are counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<i64>,
}

/// An Engine `Placement`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PlacementJson {
    /// Constraints.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub constraints: Vec<String>,
    /// Spread preferences.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub preferences: Vec<PreferenceJson>,
    /// Tasks per node at most (0: unlimited).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub max_replicas: u64,
    /// Platforms the image runs on (not used by Capstan's scheduler).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub platforms: Vec<Value>,
}

/// One placement preference.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PreferenceJson {
    /// The only kind of preference.
    #[serde(rename = "Spread", default, skip_serializing_if = "Option::is_none")]
    pub spread: Option<SpreadJson>,
}

/// Spread over the values of a node attribute.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SpreadJson {
    /// e.g. `node.labels.zone`.
    #[serde(rename = "SpreadDescriptor", default)]
    pub spread_descriptor: String,
}

/// An Engine `NetworkAttachmentConfig`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkAttachmentJson {
    /// Network id or name.
    #[serde(default)]
    pub target: String,
    /// DNS aliases of the task on it.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub aliases: Vec<String>,
    /// Driver options (not used by Capstan).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub driver_opts: BTreeMap<String, String>,
}

/// An Engine `ServiceMode`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModeJson {
    /// N replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicated: Option<ReplicatedJson>,
    /// One task per node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global: Option<serde_json::Map<String, Value>>,
    /// Jobs, which Capstan does not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicated_job: Option<Value>,
    /// Jobs, which Capstan does not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_job: Option<Value>,
}

/// Replicated mode.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplicatedJson {
    /// Desired tasks (absent: 1).
    #[serde(rename = "Replicas", default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u64>,
}

/// An Engine `UpdateConfig` (also the rollback config).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateConfigJson {
    /// Tasks at once (0: all).
    #[serde(default)]
    pub parallelism: u64,
    /// Nanoseconds between batches.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub delay: i64,
    /// `pause`, `continue` or `rollback`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub failure_action: String,
    /// Nanoseconds a new task is watched.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub monitor: i64,
    /// Tolerated failures, 0 to 1.
    #[serde(default, serialize_with = "go_float")]
    pub max_failure_ratio: f64,
    /// `stop-first` or `start-first`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub order: String,
}

/// An Engine `EndpointSpec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointSpecJson {
    /// `vip` or `dnsrr`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mode: String,
    /// Published ports.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ports: Vec<PortJson>,
}

/// An Engine `PortConfig`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortJson {
    /// A name for the port.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// `tcp` or `udp`.
    #[serde(default)]
    pub protocol: String,
    /// Port in the container.
    #[serde(default)]
    pub target_port: u32,
    /// Port on the node (0: any free one).
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub published_port: u32,
    /// `host` (Capstan) or `ingress`.
    #[serde(default)]
    pub publish_mode: String,
}

/// A service as `GET /services` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceJson {
    /// Id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Store version.
    pub version: VersionJson,
    /// Created.
    pub created_at: String,
    /// Last changed.
    pub updated_at: String,
    /// Current spec.
    pub spec: ServiceSpecJson,
    /// Spec before the last update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_spec: Option<ServiceSpecJson>,
    /// Endpoint.
    pub endpoint: EndpointJson,
    /// Progress of the last update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_status: Option<UpdateStatusJson>,
    /// Task counts (with `status=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_status: Option<ServiceStatusJson>,
}

/// A service's `Endpoint`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointJson {
    /// The endpoint spec.
    pub spec: EndpointSpecJson,
    /// Ports in use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortJson>,
    /// Capstan has no virtual IPs: always empty.
    #[serde(rename = "VirtualIPs", default)]
    pub virtual_ips: Vec<Value>,
}

/// A service's `UpdateStatus`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateStatusJson {
    /// `updating`, `paused`, `completed`, `rollback_started`, …
    pub state: String,
    /// Started.
    pub started_at: String,
    /// Ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// Why.
    pub message: String,
}

/// A service's `ServiceStatus`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceStatusJson {
    /// Tasks observed running.
    pub running_tasks: u64,
    /// Tasks wanted.
    pub desired_tasks: u64,
    /// Tasks completed (jobs; always 0 here).
    pub completed_tasks: u64,
}

/// A service spec converted from the Engine's, with the warnings about
/// what Capstan changed or ignored.
#[derive(Clone, Debug, PartialEq)]
pub struct Converted {
    /// The spec.
    pub spec: ServiceSpec,
    /// What the CLI prints as warnings.
    pub warnings: Vec<String>,
}

/// Parses a request body as an Engine `ServiceSpec` and converts it. A
/// malformed body, a field of the wrong type or a value Capstan refuses is
/// a 400 naming the place.
pub fn parse_service_spec(body: &[u8]) -> Result<Converted, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid(
            "the request body is empty: send a ServiceSpec as JSON",
        ));
    }
    let raw: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("invalid service spec: {e}")))?;
    if !raw.is_object() {
        return Err(ApiError::invalid(
            "invalid service spec: expected a JSON object",
        ));
    }
    let json: ServiceSpecJson = serde_path_to_error::deserialize(&raw).map_err(|e| {
        let path = e.path().to_string();
        ApiError::invalid(format!(
            "invalid service spec: Spec.{path}: {}",
            e.into_inner()
        ))
    })?;
    let mut converted = service_spec_from_engine(json)?;
    let mut warnings = unknown_spec_fields(&raw);
    warnings.append(&mut converted.warnings);
    converted.warnings = warnings;
    Ok(converted)
}

/// Converts an Engine service spec into Capstan's.
pub fn service_spec_from_engine(json: ServiceSpecJson) -> Result<Converted, ApiError> {
    let mut warnings = Vec::new();
    let w = &mut warnings;
    let mode = mode_from(&json.mode)?;
    let mut attachments = json.task_template.networks.clone();
    attachments.extend(json.networks.iter().cloned());
    let mut task = task_from(json.task_template, attachments, w)?;
    task.ports = ports_from(json.endpoint_spec.as_ref(), w)?;
    let spec = ServiceSpec {
        name: json.name,
        labels: json.labels,
        mode,
        task,
        update: update_config_from("Spec.UpdateConfig", json.update_config.as_ref())?,
        rollback: update_config_from("Spec.RollbackConfig", json.rollback_config.as_ref())?,
    };
    Ok(Converted { spec, warnings })
}

fn mode_from(mode: &ModeJson) -> Result<ServiceMode, ApiError> {
    if mode.replicated_job.is_some() || mode.global_job.is_some() {
        return Err(field_error(
            "Spec.Mode",
            "jobs (ReplicatedJob, GlobalJob) are not supported by Capstan",
        ));
    }
    match (&mode.replicated, &mode.global) {
        (Some(_), Some(_)) => Err(field_error(
            "Spec.Mode",
            "give either Replicated or Global, not both",
        )),
        (Some(r), None) => Ok(ServiceMode::Replicated {
            replicas: r.replicas.unwrap_or(1),
        }),
        (None, Some(_)) => Ok(ServiceMode::Global),
        (None, None) => Ok(ServiceMode::Replicated { replicas: 1 }),
    }
}

fn task_from(
    t: TaskTemplateJson,
    attachments: Vec<NetworkAttachmentJson>,
    w: &mut Vec<String>,
) -> Result<TaskSpec, ApiError> {
    if !matches!(t.runtime.as_str(), "" | "container") {
        return Err(field_error(
            "Spec.TaskTemplate.Runtime",
            format!(
                "runtime {:?} is not supported by Capstan (only container)",
                t.runtime
            ),
        ));
    }
    let container = t
        .container_spec
        .ok_or_else(|| field_error("Spec.TaskTemplate.ContainerSpec", "required"))?;
    let (networks, network_aliases) = networks_from(attachments, w)?;
    Ok(TaskSpec {
        container: container_from(container, w)?,
        resources: resources_from(t.resources.as_ref())?,
        restart: restart_from(t.restart_policy.as_ref())?,
        placement: placement_from(t.placement.as_ref(), w),
        networks,
        network_aliases,
        ports: Vec::new(),
        force_update: t.force_update,
    })
}

fn container_from(c: ContainerSpecJson, w: &mut Vec<String>) -> Result<ContainerSpec, ApiError> {
    const P: &str = "Spec.TaskTemplate.ContainerSpec";
    if c.image.trim().is_empty() {
        return Err(field_error(
            "Spec.TaskTemplate.ContainerSpec.Image",
            "required",
        ));
    }
    if !matches!(c.isolation.as_str(), "" | "default") {
        w.push(format!(
            "{P}.Isolation {:?} is not supported by Capstan and was ignored",
            c.isolation
        ));
    }
    if c.init == Some(true) {
        w.push(format!(
            "{P}.Init is not supported by Capstan and was ignored"
        ));
    }
    if c.dns_config.as_ref().is_some_and(|d| !is_blank(d)) {
        w.push(format!(
            "{P}.DNSConfig is not supported by Capstan and was ignored"
        ));
    }
    let stop_grace_period_ms = match c.stop_grace_period {
        Some(ns) => ns_to_ms("Spec.TaskTemplate.ContainerSpec.StopGracePeriod", ns)?,
        None => DEFAULT_GRACE_MS,
    };
    Ok(ContainerSpec {
        image: c.image,
        command: c.command,
        args: c.args,
        env: c.env,
        user: c.user,
        workdir: c.dir,
        labels: c.labels,
        healthcheck: c.healthcheck.map(health_from).transpose()?,
        stop_grace_period_ms,
        mounts: mounts_from(&c.mounts)?,
        secrets: secrets_from(&c.secrets, w)?,
        configs: configs_from(&c.configs, w)?,
    })
}

fn health_from(h: HealthcheckJson) -> Result<HealthCheck, ApiError> {
    const P: &str = "Spec.TaskTemplate.ContainerSpec.Healthcheck";
    let retries = non_negative(&format!("{P}.Retries"), h.retries)?;
    Ok(HealthCheck {
        test: h.test,
        interval_ms: ns_to_ms(&format!("{P}.Interval"), h.interval)?,
        timeout_ms: ns_to_ms(&format!("{P}.Timeout"), h.timeout)?,
        retries,
        start_period_ms: ns_to_ms(&format!("{P}.StartPeriod"), h.start_period)?,
    })
}

fn mounts_from(mounts: &[MountJson]) -> Result<Vec<Mount>, ApiError> {
    mounts
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let path = format!("Spec.TaskTemplate.ContainerSpec.Mounts[{i}]");
            let kind = match m.kind.as_str() {
                "volume" | "" => MountKind::Volume,
                "bind" => MountKind::Bind,
                other => {
                    return Err(field_error(
                        &format!("{path}.Type"),
                        format!("{other} mounts are not supported by Capstan (use volume or bind)"),
                    ))
                }
            };
            if m.target.is_empty() {
                return Err(field_error(&format!("{path}.Target"), "required"));
            }
            Ok(Mount {
                kind,
                source: m.source.clone(),
                target: m.target.clone(),
                read_only: m.read_only,
            })
        })
        .collect()
}

fn file_owner_warning(path: &str, file: &FileJson, w: &mut Vec<String>) {
    let custom = |v: &str| !v.is_empty() && v != "0";
    if custom(&file.uid) || custom(&file.gid) {
        w.push(format!(
            "{path}.File: UID and GID are not supported by Capstan; the file is owned by root"
        ));
    }
}

/// A secret or config reference: the object by id or name, and its file.
fn file_ref(
    path: &str,
    (id, name): (&str, &str),
    file: Option<&FileJson>,
    w: &mut Vec<String>,
) -> Result<FileReference, ApiError> {
    if id.is_empty() && name.is_empty() {
        return Err(field_error(
            path,
            "give the ID or the name of the object to use",
        ));
    }
    let (target, mode) = match file {
        Some(f) => {
            file_owner_warning(path, f, w);
            (f.name.clone(), f.mode)
        }
        None => (String::new(), 0),
    };
    if mode > 0o7777 {
        return Err(field_error(
            &format!("{path}.File.Mode"),
            format!("{mode} is not a file mode"),
        ));
    }
    Ok(FileReference {
        id: id.to_string(),
        name: name.to_string(),
        target,
        mode,
    })
}

fn secrets_from(
    refs: &[SecretRefJson],
    w: &mut Vec<String>,
) -> Result<Vec<FileReference>, ApiError> {
    refs.iter()
        .enumerate()
        .map(|(i, r)| {
            let path = format!("Spec.TaskTemplate.ContainerSpec.Secrets[{i}]");
            file_ref(&path, (&r.secret_id, &r.secret_name), r.file.as_ref(), w)
        })
        .collect()
}

fn configs_from(
    refs: &[ConfigRefJson],
    w: &mut Vec<String>,
) -> Result<Vec<FileReference>, ApiError> {
    refs.iter()
        .enumerate()
        .map(|(i, r)| {
            let path = format!("Spec.TaskTemplate.ContainerSpec.Configs[{i}]");
            if r.file.is_none() && r.runtime.is_some() {
                return Err(field_error(
                    &path,
                    "runtime configs (credential specs) are not supported by Capstan; give File",
                ));
            }
            file_ref(&path, (&r.config_id, &r.config_name), r.file.as_ref(), w)
        })
        .collect()
}

fn limit_from(path: &str, l: Option<&LimitJson>) -> Result<Resources, ApiError> {
    let Some(l) = l else {
        return Ok(Resources::default());
    };
    Ok(Resources {
        nano_cpus: non_negative(&format!("{path}.NanoCPUs"), l.nano_cpus)?,
        memory_bytes: non_negative(&format!("{path}.MemoryBytes"), l.memory_bytes)?,
    })
}

fn resources_from(r: Option<&ResourcesJson>) -> Result<ResourceRequirements, ApiError> {
    let Some(r) = r else {
        return Ok(ResourceRequirements::default());
    };
    Ok(ResourceRequirements {
        limits: limit_from("Spec.TaskTemplate.Resources.Limits", r.limits.as_ref())?,
        reservations: limit_from(
            "Spec.TaskTemplate.Resources.Reservations",
            r.reservations.as_ref(),
        )?,
    })
}

fn restart_from(r: Option<&RestartPolicyJson>) -> Result<RestartPolicy, ApiError> {
    const P: &str = "Spec.TaskTemplate.RestartPolicy";
    let defaults = RestartPolicy::default();
    let Some(r) = r else {
        return Ok(defaults);
    };
    let condition = match r.condition.as_str() {
        "" | "any" => RestartCondition::Any,
        "on-failure" => RestartCondition::OnFailure,
        "none" => RestartCondition::None,
        other => {
            return Err(field_error(
                &format!("{P}.Condition"),
                format!("{other:?} is not one of none, on-failure, any"),
            ))
        }
    };
    Ok(RestartPolicy {
        condition,
        delay_ms: match r.delay {
            Some(ns) => ns_to_ms(&format!("{P}.Delay"), ns)?,
            None => defaults.delay_ms,
        },
        max_attempts: r.max_attempts.filter(|n| *n > 0),
        window_ms: ns_to_ms(&format!("{P}.Window"), r.window.unwrap_or(0))?,
    })
}

fn placement_from(p: Option<&PlacementJson>, w: &mut Vec<String>) -> Placement {
    let Some(p) = p else {
        return Placement::default();
    };
    if !p.platforms.is_empty() {
        w.push(
            "Spec.TaskTemplate.Placement.Platforms is not used by Capstan's scheduler and was ignored"
                .into(),
        );
    }
    Placement {
        constraints: p.constraints.clone(),
        preferences: p
            .preferences
            .iter()
            .filter_map(|pref| pref.spread.as_ref())
            .map(|s| SpreadPreference {
                spread_descriptor: s.spread_descriptor.clone(),
            })
            .collect(),
        max_replicas_per_node: p.max_replicas,
    }
}

fn networks_from(
    attachments: Vec<NetworkAttachmentJson>,
    w: &mut Vec<String>,
) -> Result<(Vec<String>, Vec<Vec<String>>), ApiError> {
    let mut networks = Vec::new();
    let mut aliases = Vec::new();
    for (i, n) in attachments.into_iter().enumerate() {
        let path = format!("Spec.TaskTemplate.Networks[{i}]");
        if n.target.is_empty() {
            return Err(field_error(&format!("{path}.Target"), "required"));
        }
        if !n.driver_opts.is_empty() {
            w.push(format!(
                "{path}.DriverOpts is not supported by Capstan and was ignored"
            ));
        }
        networks.push(n.target);
        aliases.push(n.aliases);
    }
    if aliases.iter().all(Vec::is_empty) {
        aliases.clear();
    }
    Ok((networks, aliases))
}

fn ports_from(
    e: Option<&EndpointSpecJson>,
    w: &mut Vec<String>,
) -> Result<Vec<PortConfig>, ApiError> {
    let Some(e) = e else {
        return Ok(Vec::new());
    };
    if !matches!(e.mode.as_str(), "" | "vip" | "dnsrr") {
        return Err(field_error(
            "Spec.EndpointSpec.Mode",
            format!("{:?} is not one of vip, dnsrr", e.mode),
        ));
    }
    e.ports
        .iter()
        .enumerate()
        .map(|(i, p)| port_from(&format!("Spec.EndpointSpec.Ports[{i}]"), p, w))
        .collect()
}

fn port_from(path: &str, p: &PortJson, w: &mut Vec<String>) -> Result<PortConfig, ApiError> {
    let port = |field: &str, v: u32| {
        u16::try_from(v).map_err(|_| {
            field_error(
                &format!("{path}.{field}"),
                format!("{v} is not a port number"),
            )
        })
    };
    let target_port = port("TargetPort", p.target_port)?;
    if target_port == 0 {
        return Err(field_error(&format!("{path}.TargetPort"), "required"));
    }
    let published_port = port("PublishedPort", p.published_port)?;
    let protocol = match p.protocol.as_str() {
        "" | "tcp" => "tcp",
        "udp" => "udp",
        other => {
            return Err(field_error(
                &format!("{path}.Protocol"),
                format!("{other:?} is not supported by Capstan (use tcp or udp)"),
            ))
        }
    };
    match p.publish_mode.as_str() {
        "host" => {}
        "" | "ingress" => {
            let on = match published_port {
                0 => "on a free port".to_string(),
                p => format!("on port {p}"),
            };
            w.push(format!(
                "{path}: Capstan has no ingress routing mesh; target port {target_port} is published in host mode, {on} of each node that runs a task"
            ));
        }
        other => {
            return Err(field_error(
                &format!("{path}.PublishMode"),
                format!("{other:?} is not one of ingress, host"),
            ))
        }
    }
    Ok(PortConfig {
        target_port,
        published_port,
        protocol: protocol.to_string(),
    })
}

fn update_config_from(path: &str, u: Option<&UpdateConfigJson>) -> Result<UpdateConfig, ApiError> {
    let defaults = UpdateConfig::default();
    let Some(u) = u else {
        return Ok(defaults);
    };
    let failure_action = match u.failure_action.as_str() {
        "" | "pause" => FailureAction::Pause,
        "continue" => FailureAction::Continue,
        "rollback" => FailureAction::Rollback,
        other => {
            return Err(field_error(
                &format!("{path}.FailureAction"),
                format!("{other:?} is not one of pause, continue, rollback"),
            ))
        }
    };
    let order = match u.order.as_str() {
        "" | "stop-first" => UpdateOrder::StopFirst,
        "start-first" => UpdateOrder::StartFirst,
        other => {
            return Err(field_error(
                &format!("{path}.Order"),
                format!("{other:?} is not one of stop-first, start-first"),
            ))
        }
    };
    if !(0.0..=1.0).contains(&u.max_failure_ratio) {
        return Err(field_error(
            &format!("{path}.MaxFailureRatio"),
            format!("{} is not between 0 and 1", u.max_failure_ratio),
        ));
    }
    Ok(UpdateConfig {
        parallelism: u.parallelism,
        delay_ms: ns_to_ms(&format!("{path}.Delay"), u.delay)?,
        failure_action,
        monitor_ms: match u.monitor {
            0 => defaults.monitor_ms,
            ns => ns_to_ms(&format!("{path}.Monitor"), ns)?,
        },
        max_failure_ratio: u.max_failure_ratio,
        order,
    })
}

fn text_of<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

/// Capstan's service spec as the Engine's. `insert_defaults` also shows
/// the settings that are at their defaults (`insertDefaults=true`).
pub fn service_spec_to_engine(spec: &ServiceSpec, insert_defaults: bool) -> ServiceSpecJson {
    let show = |u: &UpdateConfig| insert_defaults || *u != UpdateConfig::default();
    ServiceSpecJson {
        name: spec.name.clone(),
        labels: spec.labels.clone(),
        task_template: task_template_to_engine(&spec.task, insert_defaults, true),
        mode: match spec.mode {
            ServiceMode::Replicated { replicas } => ModeJson {
                replicated: Some(ReplicatedJson {
                    replicas: Some(replicas),
                }),
                ..ModeJson::default()
            },
            ServiceMode::Global => ModeJson {
                global: Some(serde_json::Map::new()),
                ..ModeJson::default()
            },
        },
        update_config: show(&spec.update).then(|| update_config_to_engine(&spec.update)),
        rollback_config: show(&spec.rollback).then(|| update_config_to_engine(&spec.rollback)),
        networks: Vec::new(),
        endpoint_spec: Some(endpoint_spec_to_engine(&spec.task.ports)),
    }
}

fn update_config_to_engine(u: &UpdateConfig) -> UpdateConfigJson {
    UpdateConfigJson {
        parallelism: u.parallelism,
        delay: ms_to_ns(u.delay_ms),
        failure_action: text_of(&u.failure_action),
        monitor: ms_to_ns(u.monitor_ms),
        max_failure_ratio: u.max_failure_ratio,
        order: text_of(&u.order),
    }
}

/// The published ports as the Engine's `EndpointSpec`.
pub fn endpoint_spec_to_engine(ports: &[PortConfig]) -> EndpointSpecJson {
    EndpointSpecJson {
        mode: "vip".into(),
        ports: ports.iter().map(port_to_engine).collect(),
    }
}

fn port_to_engine(p: &PortConfig) -> PortJson {
    PortJson {
        name: String::new(),
        protocol: if p.protocol.is_empty() {
            "tcp".into()
        } else {
            p.protocol.clone()
        },
        target_port: u32::from(p.target_port),
        published_port: u32::from(p.published_port),
        publish_mode: "host".into(),
    }
}

/// A task spec as the Engine's `TaskTemplate` (`runtime`: whether to show
/// `Runtime`, which services carry and tasks do not).
pub fn task_template_to_engine(
    t: &TaskSpec,
    insert_defaults: bool,
    runtime: bool,
) -> TaskTemplateJson {
    let restart = (insert_defaults || t.restart != RestartPolicy::default())
        .then(|| restart_to_engine(&t.restart));
    TaskTemplateJson {
        container_spec: Some(container_to_engine(&t.container, insert_defaults)),
        resources: Some(ResourcesJson {
            limits: Some(limit_to_engine(&t.resources.limits)),
            reservations: Some(limit_to_engine(&t.resources.reservations)),
        }),
        restart_policy: restart,
        placement: Some(PlacementJson {
            constraints: t.placement.constraints.clone(),
            preferences: t
                .placement
                .preferences
                .iter()
                .map(|p| PreferenceJson {
                    spread: Some(SpreadJson {
                        spread_descriptor: p.spread_descriptor.clone(),
                    }),
                })
                .collect(),
            max_replicas: t.placement.max_replicas_per_node,
            platforms: Vec::new(),
        }),
        networks: t
            .networks
            .iter()
            .enumerate()
            .map(|(i, target)| NetworkAttachmentJson {
                target: target.clone(),
                aliases: t.network_aliases.get(i).cloned().unwrap_or_default(),
                driver_opts: BTreeMap::new(),
            })
            .collect(),
        force_update: t.force_update,
        runtime: if runtime {
            "container".into()
        } else {
            String::new()
        },
    }
}

fn restart_to_engine(r: &RestartPolicy) -> RestartPolicyJson {
    RestartPolicyJson {
        condition: text_of(&r.condition),
        delay: Some(ms_to_ns(r.delay_ms)),
        max_attempts: Some(r.max_attempts.unwrap_or(0)),
        window: (r.window_ms > 0).then(|| ms_to_ns(r.window_ms)),
    }
}

fn limit_to_engine(r: &Resources) -> LimitJson {
    LimitJson {
        nano_cpus: i64::try_from(r.nano_cpus).unwrap_or(i64::MAX),
        memory_bytes: i64::try_from(r.memory_bytes).unwrap_or(i64::MAX),
    }
}

fn container_to_engine(c: &ContainerSpec, insert_defaults: bool) -> ContainerSpecJson {
    let grace = (insert_defaults || c.stop_grace_period_ms != DEFAULT_GRACE_MS)
        .then(|| ms_to_ns(c.stop_grace_period_ms));
    ContainerSpecJson {
        image: c.image.clone(),
        labels: c.labels.clone(),
        command: c.command.clone(),
        args: c.args.clone(),
        env: c.env.clone(),
        dir: c.workdir.clone(),
        user: c.user.clone(),
        mounts: c
            .mounts
            .iter()
            .map(|m| MountJson {
                kind: text_of(&m.kind),
                source: m.source.clone(),
                target: m.target.clone(),
                read_only: m.read_only,
            })
            .collect(),
        stop_grace_period: grace,
        healthcheck: c.healthcheck.as_ref().map(|h| HealthcheckJson {
            test: h.test.clone(),
            interval: ms_to_ns(h.interval_ms),
            timeout: ms_to_ns(h.timeout_ms),
            start_period: ms_to_ns(h.start_period_ms),
            retries: i64::try_from(h.retries).unwrap_or(i64::MAX),
        }),
        secrets: c
            .secrets
            .iter()
            .map(|r| SecretRefJson {
                file: Some(file_to_engine(r, true)),
                secret_id: r.id.clone(),
                secret_name: r.name.clone(),
            })
            .collect(),
        configs: c
            .configs
            .iter()
            .map(|r| ConfigRefJson {
                file: Some(file_to_engine(r, false)),
                runtime: None,
                config_id: r.id.clone(),
                config_name: r.name.clone(),
            })
            .collect(),
        isolation: "default".into(),
        // What the CLI sends and the engine stores; Capstan's effective
        // values.
        init: Some(false),
        dns_config: Some(json!({})),
    }
}

/// The file of a reference; secrets under `/run/secrets/` show their bare
/// file name, as the engine stores them.
fn file_to_engine(r: &FileReference, secret: bool) -> FileJson {
    let name = match r.target.strip_prefix(SECRETS_DIR) {
        Some(rest) if secret && !rest.is_empty() => rest.to_string(),
        _ => r.target.clone(),
    };
    FileJson {
        name,
        uid: "0".into(),
        gid: "0".into(),
        mode: if r.mode == 0 { 0o444 } else { r.mode },
    }
}

/// The update status to show: none when a newer spec superseded it (the
/// engine clears it on every update; Capstan's orchestrator keeps it until
/// the next update starts).
fn update_status_to_engine(s: &Service) -> Option<UpdateStatusJson> {
    let st: &UpdateStatus = s.update_status.as_ref()?;
    if s.updated_at > st.started_at {
        return None;
    }
    Some(UpdateStatusJson {
        state: text_of(&st.state),
        started_at: rfc3339(st.started_at),
        completed_at: st.completed_at.map(rfc3339),
        message: st.message.clone(),
    })
}

/// Whether an update state is one the update is still in.
pub fn update_in_progress(state: UpdateState) -> bool {
    matches!(state, UpdateState::Updating | UpdateState::RollbackStarted)
}

/// A service as the Engine's JSON.
pub fn service_to_engine(
    s: &Service,
    version: u64,
    insert_defaults: bool,
    status: Option<ServiceStatusJson>,
) -> ServiceJson {
    let spec = service_spec_to_engine(&s.spec, insert_defaults);
    let endpoint_spec = endpoint_spec_to_engine(&s.spec.task.ports);
    ServiceJson {
        id: s.id.clone(),
        version: VersionJson { index: version },
        created_at: rfc3339(s.created_at),
        updated_at: rfc3339(s.updated_at),
        previous_spec: s
            .previous_spec
            .as_ref()
            .map(|p| service_spec_to_engine(p, insert_defaults)),
        endpoint: EndpointJson {
            ports: endpoint_spec.ports.clone(),
            spec: endpoint_spec,
            virtual_ips: Vec::new(),
        },
        spec,
        update_status: update_status_to_engine(s),
        service_status: status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rich() -> Value {
        json!({
            "Name": "web",
            "Labels": {"tier": "front"},
            "TaskTemplate": {
                "ContainerSpec": {
                    "Image": "busybox:1",
                    "Labels": {"c": "d"},
                    "Command": ["sh"],
                    "Args": ["-c", "echo hi"],
                    "Env": ["A=1"],
                    "Dir": "/tmp",
                    "User": "nobody",
                    "Mounts": [{"Type": "volume", "Source": "data", "Target": "/data", "ReadOnly": true}],
                    "StopGracePeriod": 3_000_000_000i64,
                    "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000i64, "Timeout": 2_000_000_000i64, "StartPeriod": 1_000_000_000i64, "Retries": 3},
                    "Secrets": [{"File": {"Name": "s1", "UID": "0", "GID": "0", "Mode": 292}, "SecretID": "sid", "SecretName": "s1"}],
                    "Configs": [{"File": {"Name": "/c1", "UID": "0", "GID": "0", "Mode": 420}, "ConfigID": "cid", "ConfigName": "c1"}],
                    "Isolation": "default",
                    "Init": false,
                    "DNSConfig": {}
                },
                "Resources": {"Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 1024}, "Reservations": {"MemoryBytes": 512}},
                "RestartPolicy": {"Condition": "on-failure", "Delay": 2_000_000_000i64, "MaxAttempts": 3, "Window": 60_000_000_000i64},
                "Placement": {"Constraints": ["node.role==manager"], "Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}], "MaxReplicas": 2},
                "Networks": [{"Target": "net1", "Aliases": ["web"]}],
                "ForceUpdate": 4,
                "Runtime": "container"
            },
            "Mode": {"Replicated": {"Replicas": 3}},
            "UpdateConfig": {"Parallelism": 2, "Delay": 3_000_000_000i64, "FailureAction": "rollback", "Monitor": 7_000_000_000i64, "MaxFailureRatio": 0.5, "Order": "start-first"},
            "RollbackConfig": {"Parallelism": 1, "FailureAction": "continue", "Monitor": 5_000_000_000i64, "MaxFailureRatio": 0, "Order": "stop-first"},
            "EndpointSpec": {"Mode": "vip", "Ports": [{"Protocol": "udp", "TargetPort": 53, "PublishedPort": 5353, "PublishMode": "host"}]}
        })
    }

    fn convert(v: Value) -> Result<Converted, ApiError> {
        parse_service_spec(v.to_string().as_bytes())
    }

    #[test]
    fn a_rich_spec_round_trips() {
        let original = rich();
        let c = convert(original.clone()).expect("converts");
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let s = &c.spec;
        assert_eq!(s.mode, ServiceMode::Replicated { replicas: 3 });
        assert_eq!(s.task.container.stop_grace_period_ms, 3_000);
        assert_eq!(s.task.restart.condition, RestartCondition::OnFailure);
        assert_eq!(s.task.restart.max_attempts, Some(3));
        assert_eq!(s.task.restart.window_ms, 60_000);
        assert_eq!(s.update.failure_action, FailureAction::Rollback);
        assert_eq!(s.update.order, UpdateOrder::StartFirst);
        assert_eq!(s.update.monitor_ms, 7_000);
        assert_eq!(s.task.networks, ["net1"]);
        assert_eq!(s.task.network_aliases, [vec!["web".to_string()]]);
        assert_eq!(s.task.ports[0].published_port, 5353);
        let back = serde_json::to_value(service_spec_to_engine(s, false)).expect("renders");
        assert_eq!(
            back, original,
            "Engine JSON → model → Engine JSON changed the spec"
        );
    }

    #[test]
    fn durations_are_nanoseconds_and_positive_ones_stay_positive() {
        let mut v = rich();
        v["TaskTemplate"]["ContainerSpec"]["Healthcheck"]["Interval"] = json!(1);
        let c = convert(v).expect("converts");
        assert_eq!(
            c.spec
                .task
                .container
                .healthcheck
                .expect("health")
                .interval_ms,
            1
        );
        assert_eq!(ms_to_ns(1_500), 1_500_000_000);
        let mut v = rich();
        v["UpdateConfig"]["Delay"] = json!(-1);
        let e = convert(v).expect_err("negative");
        assert!(
            e.message
                .contains("Spec.UpdateConfig.Delay: must not be negative"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_minimal_spec_gets_the_engine_defaults() {
        let c =
            convert(json!({"Name": "m", "TaskTemplate": {"ContainerSpec": {"Image": "busybox"}}}))
                .expect("converts");
        let s = &c.spec;
        assert_eq!(s.mode, ServiceMode::Replicated { replicas: 1 });
        assert_eq!(s.task.container.stop_grace_period_ms, DEFAULT_GRACE_MS);
        assert_eq!(s.task.restart, RestartPolicy::default());
        assert_eq!(s.update, UpdateConfig::default());
        // Stacks send an empty Replicated mode and expect one replica.
        let c = convert(json!({"Name": "m", "Mode": {"Replicated": {}}, "TaskTemplate": {"ContainerSpec": {"Image": "b"}}}))
            .expect("converts");
        assert_eq!(c.spec.mode, ServiceMode::Replicated { replicas: 1 });
        let plain = serde_json::to_value(service_spec_to_engine(&c.spec, false)).expect("renders");
        assert!(plain.get("UpdateConfig").is_none(), "{plain}");
        assert!(
            plain["TaskTemplate"].get("RestartPolicy").is_none(),
            "{plain}"
        );
        assert!(plain["TaskTemplate"]["ContainerSpec"]
            .get("StopGracePeriod")
            .is_none());
        let full = serde_json::to_value(service_spec_to_engine(&c.spec, true)).expect("renders");
        assert_eq!(full["UpdateConfig"]["Monitor"], json!(5_000_000_000i64));
        assert_eq!(full["RollbackConfig"]["FailureAction"], "pause");
        // Go prints a whole float32 without a fraction.
        assert!(
            full.to_string().contains(r#""MaxFailureRatio":0,"#),
            "{full}"
        );
        assert_eq!(full["TaskTemplate"]["ContainerSpec"]["Init"], false);
        assert_eq!(
            full["TaskTemplate"]["ContainerSpec"]["DNSConfig"],
            json!({})
        );
        assert_eq!(full["TaskTemplate"]["RestartPolicy"]["Condition"], "any");
        assert_eq!(
            full["TaskTemplate"]["RestartPolicy"]["Delay"],
            json!(5_000_000_000i64)
        );
        assert_eq!(
            full["TaskTemplate"]["ContainerSpec"]["StopGracePeriod"],
            json!(10_000_000_000i64)
        );
        assert_eq!(full["EndpointSpec"], json!({"Mode": "vip"}));
        assert_eq!(full["Mode"], json!({"Replicated": {"Replicas": 1}}));
    }

    #[test]
    fn global_mode_renders_as_an_empty_object() {
        let c = convert(json!({"Name": "g", "Mode": {"Global": {}}, "TaskTemplate": {"ContainerSpec": {"Image": "b"}}}))
            .expect("converts");
        assert_eq!(c.spec.mode, ServiceMode::Global);
        let v = serde_json::to_value(service_spec_to_engine(&c.spec, false)).expect("renders");
        assert_eq!(v["Mode"], json!({"Global": {}}));
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases = [
            (
                json!({"Name": "x", "TaskTemplate": {"ContainerSpec": {}}}),
                "Spec.TaskTemplate.ContainerSpec.Image: required",
            ),
            (
                json!({"Name": "x", "TaskTemplate": {}}),
                "Spec.TaskTemplate.ContainerSpec: required",
            ),
            (
                json!({"Name": "x", "Mode": {"ReplicatedJob": {}}, "TaskTemplate": {"ContainerSpec": {"Image": "b"}}}),
                "Spec.Mode: jobs",
            ),
            (
                json!({"Name": "x", "TaskTemplate": {"ContainerSpec": {"Image": "b", "Mounts": [{"Type": "tmpfs", "Target": "/t"}]}}}),
                "Spec.TaskTemplate.ContainerSpec.Mounts[0].Type",
            ),
            (
                json!({"Name": "x", "TaskTemplate": {"ContainerSpec": {"Image": "b"}, "RestartPolicy": {"Condition": "always"}}}),
                "Spec.TaskTemplate.RestartPolicy.Condition",
            ),
            (
                json!({"Name": "x", "TaskTemplate": {"ContainerSpec": {"Image": "b"}}, "EndpointSpec": {"Ports": [{"TargetPort": 70000}]}}),
                "Spec.EndpointSpec.Ports[0].TargetPort",
            ),
            (
                json!({"Name": "x", "TaskTemplate": {"ContainerSpec": {"Image": "b"}}, "EndpointSpec": {"Ports": [{"TargetPort": 80, "Protocol": "sctp"}]}}),
                "Spec.EndpointSpec.Ports[0].Protocol",
            ),
            (
                json!({"Name": "x", "TaskTemplate": {"ContainerSpec": {"Image": "b", "Env": "A=1"}}}),
                "Spec.TaskTemplate.ContainerSpec.Env",
            ),
            (
                json!({"Name": "x", "TaskTemplate": {"ContainerSpec": {"Image": "b"}}, "UpdateConfig": {"Order": "sideways"}}),
                "Spec.UpdateConfig.Order",
            ),
        ];
        for (v, wanted) in cases {
            let e = convert(v.clone()).expect_err("must be refused");
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
            assert!(
                e.message.contains(wanted),
                "{v}: {} lacks {wanted}",
                e.message
            );
        }
        let e = parse_service_spec(b"{not json").expect_err("syntax");
        assert!(e.message.contains("invalid service spec"), "{}", e.message);
    }

    #[test]
    fn what_capstan_cannot_honour_is_a_warning() {
        let mut v = rich();
        v["EndpointSpec"]["Ports"][0]["PublishMode"] = json!("ingress");
        v["TaskTemplate"]["ContainerSpec"]["Hostname"] = json!("box");
        v["TaskTemplate"]["ContainerSpec"]["Init"] = json!(false);
        v["TaskTemplate"]["ContainerSpec"]["DNSConfig"] = json!({});
        v["TaskTemplate"]["ContainerSpec"]["Privileges"] =
            json!({"CredentialSpec": null, "SELinuxContext": null, "NoNewPrivileges": false});
        v["TaskTemplate"]["LogDriver"] = json!({"Name": "syslog"});
        let c = convert(v).expect("converts");
        let all = c.warnings.join("\n");
        assert_eq!(c.warnings.len(), 3, "{all}");
        assert!(all.contains("host mode"), "{all}");
        assert!(
            all.contains("Spec.TaskTemplate.ContainerSpec.Hostname"),
            "{all}"
        );
        assert!(all.contains("Spec.TaskTemplate.LogDriver"), "{all}");
        assert_eq!(c.spec.task.ports[0].published_port, 5353);
    }

    #[test]
    fn nulls_read_as_empty() {
        let c = convert(json!({"Name": "n", "Labels": null, "TaskTemplate": {"ContainerSpec": {"Image": "b", "Env": null, "Mounts": null}, "Networks": null}}))
            .expect("converts");
        assert!(c.spec.labels.is_empty() && c.spec.task.container.env.is_empty());
    }

    #[test]
    fn secrets_show_their_bare_file_name() {
        let r = FileReference {
            id: "i".into(),
            name: "n".into(),
            target: "/run/secrets/n".into(),
            mode: 0,
        };
        let f = file_to_engine(&r, true);
        assert_eq!((f.name.as_str(), f.mode, f.uid.as_str()), ("n", 0o444, "0"));
        assert_eq!(file_to_engine(&r, false).name, "/run/secrets/n");
    }

    #[test]
    fn lookups_take_ids_names_and_unique_prefixes() {
        let items = vec![
            (("abc1".to_string(), "web".to_string()), 1),
            (("abd2".to_string(), "db".to_string()), 2),
        ];
        fn id(o: &(String, String)) -> String {
            o.0.clone()
        }
        fn name(o: &(String, String)) -> &str {
            o.1.as_str()
        }
        assert_eq!(
            resolve(&items, "web", "service", id, name).expect("name").1,
            1
        );
        assert_eq!(
            resolve(&items, "abd", "service", id, name)
                .expect("prefix")
                .1,
            2
        );
        let e = resolve(&items, "ab", "service", id, name).expect_err("ambiguous");
        assert!(e.message.contains("ambiguous"), "{}", e.message);
        let e = resolve(&items, "zz", "service", id, name).expect_err("missing");
        assert_eq!(e.message, "service zz not found");
        assert_eq!(e.status, axum::http::StatusCode::NOT_FOUND);
    }

    #[test]
    fn times_are_rfc3339_and_never_empty() {
        assert_eq!(rfc3339_or_zero(None), ZERO_TIME);
        assert_eq!(rfc3339(OffsetDateTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }
}
