//! Services and the task template they stamp out, as Docker Swarm users
//! know them (`docker service create` flags map onto these fields).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::table::Table;

/// Label that places every object a stack made into that stack.
pub const STACK_NAMESPACE_LABEL: &str = "com.docker.stack.namespace";

/// Replicated (N tasks anywhere) or global (one task per eligible node).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceMode {
    /// Keep `replicas` tasks running.
    Replicated {
        /// Desired number of tasks.
        replicas: u64,
    },
    /// One task on every node that satisfies the placement.
    Global,
}

/// When a task's container that stopped is replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RestartCondition {
    /// Never restart.
    None,
    /// Restart when the container exits non-zero.
    OnFailure,
    /// Restart whenever it stops.
    #[default]
    Any,
}

/// `--restart-*` flags.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPolicy {
    /// When to restart.
    pub condition: RestartCondition,
    /// Wait between restarts, ms.
    pub delay_ms: u64,
    /// Give up after this many restarts within `window_ms` (None: never).
    pub max_attempts: Option<u64>,
    /// Window for counting attempts, ms (0: forever).
    pub window_ms: u64,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            condition: RestartCondition::Any,
            delay_ms: 5_000,
            max_attempts: None,
            window_ms: 0,
        }
    }
}

/// What an update does when a new task fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FailureAction {
    /// Stop updating and wait for an operator.
    #[default]
    Pause,
    /// Keep going.
    Continue,
    /// Go back to the previous spec.
    Rollback,
}

/// Whether an update starts the new task before stopping the old one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateOrder {
    /// Stop the old task, then start the new one.
    #[default]
    StopFirst,
    /// Start the new task, then stop the old one.
    StartFirst,
}

/// `--update-*` and `--rollback-*` flags.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdateConfig {
    /// Tasks updated at once (0: all).
    pub parallelism: u64,
    /// Wait between batches, ms.
    pub delay_ms: u64,
    /// What to do when a new task fails.
    pub failure_action: FailureAction,
    /// How long a new task is watched for failure, ms.
    pub monitor_ms: u64,
    /// Fraction of failed tasks tolerated (0.0 to 1.0).
    pub max_failure_ratio: f64,
    /// Stop-first or start-first.
    pub order: UpdateOrder,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        Self {
            parallelism: 1,
            delay_ms: 0,
            failure_action: FailureAction::Pause,
            monitor_ms: 5_000,
            max_failure_ratio: 0.0,
            order: UpdateOrder::StopFirst,
        }
    }
}

/// CPU and memory, as Docker counts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Resources {
    /// CPUs × 10⁹.
    pub nano_cpus: u64,
    /// Bytes.
    pub memory_bytes: u64,
}

/// `--limit-*` and `--reserve-*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ResourceRequirements {
    /// Enforced by Docker on the container.
    pub limits: Resources,
    /// Subtracted from a node's capacity when placing.
    pub reservations: Resources,
}

/// `--placement-pref spread=...`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpreadPreference {
    /// e.g. `node.labels.zone`.
    pub spread_descriptor: String,
}

/// Where tasks may run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Placement {
    /// e.g. `node.role==worker`, `node.labels.zone!=a`.
    pub constraints: Vec<String>,
    /// Spread over the values of these attributes, in order.
    pub preferences: Vec<SpreadPreference>,
    /// At most this many tasks of the service per node (0: unlimited).
    pub max_replicas_per_node: u64,
}

/// A mount into the task's container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// `volume` or `bind`.
    pub kind: MountKind,
    /// Volume name or host path.
    pub source: String,
    /// Path in the container.
    pub target: String,
    /// Read-only.
    pub read_only: bool,
}

/// Kinds of mounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A named Docker volume (created on the node if missing).
    Volume,
    /// A host path.
    Bind,
}

/// A secret or config given to the task as a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileReference {
    /// The secret's or config's id.
    pub id: String,
    /// Its name (as the user referred to it).
    pub name: String,
    /// File name in the container (`/run/secrets/<file>` for secrets; an
    /// absolute path or `/<file>` for configs).
    pub target: String,
    /// File mode.
    pub mode: u32,
}

/// `--health-*`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// `["CMD", ...]`, `["CMD-SHELL", "..."]` or `["NONE"]`.
    pub test: Vec<String>,
    /// Between checks, ms.
    pub interval_ms: u64,
    /// Per check, ms.
    pub timeout_ms: u64,
    /// Consecutive failures before unhealthy.
    pub retries: u64,
    /// Grace at start, ms.
    pub start_period_ms: u64,
}

/// A port published by the task (host mode: on the node running it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortConfig {
    /// Port in the container.
    pub target_port: u16,
    /// Port on the node (0: any free port).
    pub published_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
}

/// The container a task runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ContainerSpec {
    /// Image reference.
    pub image: String,
    /// Entrypoint override.
    #[serde(default)]
    pub command: Vec<String>,
    /// Arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// `KEY=value`.
    #[serde(default)]
    pub env: Vec<String>,
    /// User.
    #[serde(default)]
    pub user: String,
    /// Working directory.
    #[serde(default)]
    pub workdir: String,
    /// Container labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Health check.
    #[serde(default)]
    pub healthcheck: Option<HealthCheck>,
    /// Time between SIGTERM and SIGKILL, ms.
    #[serde(default = "default_grace")]
    pub stop_grace_period_ms: u64,
    /// Mounts.
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// Secrets as files.
    #[serde(default)]
    pub secrets: Vec<FileReference>,
    /// Configs as files.
    #[serde(default)]
    pub configs: Vec<FileReference>,
}

fn default_grace() -> u64 {
    10_000
}

/// Everything a task of a service is made from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct TaskSpec {
    /// The container.
    pub container: ContainerSpec,
    /// Limits and reservations.
    #[serde(default)]
    pub resources: ResourceRequirements,
    /// Restarts.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// Placement.
    #[serde(default)]
    pub placement: Placement,
    /// Networks (ids) the task attaches to.
    #[serde(default)]
    pub networks: Vec<String>,
    /// The task's DNS aliases on each of `networks`, in the same order
    /// (Engine API `Networks[].Aliases`); empty when none has any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_aliases: Vec<Vec<String>>,
    /// Published ports (host mode).
    #[serde(default)]
    pub ports: Vec<PortConfig>,
    /// Bumped by `--force` to replace tasks with an unchanged spec.
    #[serde(default)]
    pub force_update: u64,
}

/// What a user asks for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// Unique name.
    pub name: String,
    /// Service labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Replicated or global.
    pub mode: ServiceMode,
    /// Task template.
    pub task: TaskSpec,
    /// Rolling updates.
    #[serde(default)]
    pub update: UpdateConfig,
    /// Rollbacks.
    #[serde(default)]
    pub rollback: UpdateConfig,
}

/// Progress of a rolling update or rollback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    /// Replacing tasks.
    Updating,
    /// Stopped after failures.
    Paused,
    /// Done.
    Completed,
    /// Rolling back.
    RollbackStarted,
    /// Rollback stopped after failures.
    RollbackPaused,
    /// Rolled back.
    RollbackCompleted,
}

/// A service's update status, as `docker service inspect` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdateStatus {
    /// Where the update is.
    pub state: UpdateState,
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When it ended, if it did.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub completed_at: Option<OffsetDateTime>,
    /// Why it is where it is.
    pub message: String,
    /// When the last batch of tasks was replaced (`--update-delay` counts
    /// from it).
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub last_batch_at: Option<OffsetDateTime>,
}

/// A service, stored in table `services` under its id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// Random id.
    pub id: String,
    /// Current spec.
    pub spec: ServiceSpec,
    /// The spec before the last update (what a rollback returns to).
    #[serde(default)]
    pub previous_spec: Option<ServiceSpec>,
    /// Incremented on every spec change; tasks record the one they run.
    pub spec_version: u64,
    /// The user who made it (agents pull its image from a Capstan registry
    /// with this user's rights).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Update progress.
    #[serde(default)]
    pub update_status: Option<UpdateStatus>,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl Table for Service {
    const TABLE: &'static str = "services";
    fn id(&self) -> String {
        self.id.clone()
    }
}
