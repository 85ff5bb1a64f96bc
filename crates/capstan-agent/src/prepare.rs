//! Preparing a task's container, in swarmkit's order: image, networks,
//! volumes, create, extra networks, secret and config files, start. Each
//! step is idempotent, so a preparation cut short (agent crash, abort) is
//! finished by the next one: a container that exists is adopted, never
//! duplicated, because its name is the task's.

use std::collections::HashMap;
use std::sync::Arc;

use bollard::models::{NetworkConnectRequest, VolumeCreateRequest};
use bollard::query_parameters::{CreateContainerOptions, UploadToContainerOptions};
use capstan_core::service::MountKind;
use capstan_core::Task;
use tokio::sync::Mutex;

use crate::container_spec::{container_config, endpoint_settings, LocalNetwork};
use crate::engine::Engine;
use crate::error::{is_conflict, is_not_found, AgentError};
use crate::executor::Assignment;
use crate::files::{tar_archive, task_file, FileKind, TaskFile};
use crate::image::ensure_image;
use crate::labels::NODE_LABEL;
use crate::network::ensure_networks;

/// Looks for a container whose name a concurrent create holds.
const ADOPT_TRIES: u32 = 10;
const ADOPT_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// What a preparation shares with the executor.
#[derive(Clone, Debug)]
pub(crate) struct PrepareContext {
    /// The node's engine.
    pub engine: Engine,
    /// Held while networks are looked up or created, so two tasks on a new
    /// network do not both create it.
    pub network_lock: Arc<Mutex<()>>,
}

/// Makes and starts the task's container.
pub(crate) async fn prepare(ctx: PrepareContext, assignment: Assignment) -> Result<(), AgentError> {
    let task = &assignment.task;
    let engine = &ctx.engine;
    ensure_image(
        engine,
        &task.id,
        &task.spec.container.image,
        assignment.registry_auth.as_deref(),
    )
    .await?;
    let files = files_of(&assignment)?;
    let networks = local_networks(&ctx, &assignment).await?;
    ensure_volumes(engine, task).await?;
    let id = create(engine, task, &networks).await?;
    let connected: Vec<String> = networks
        .first()
        .map(|n| n.docker_id.clone())
        .into_iter()
        .collect();
    finish_and_start(engine, task, &id, &networks, &connected, &files).await
}

/// Starts a container that was created but never started (the agent
/// stopped half-way): its networks and files are put in place again first.
/// `connected` holds the ids and names of the networks it is attached to.
pub(crate) async fn start_created(
    ctx: &PrepareContext,
    assignment: &Assignment,
    container_id: &str,
    connected: &[String],
) -> Result<(), AgentError> {
    let files = files_of(assignment)?;
    let networks = local_networks(ctx, assignment).await?;
    finish_and_start(
        &ctx.engine,
        &assignment.task,
        container_id,
        &networks,
        connected,
        &files,
    )
    .await
}

async fn local_networks(
    ctx: &PrepareContext,
    assignment: &Assignment,
) -> Result<Vec<LocalNetwork>, AgentError> {
    let _guard = ctx.network_lock.lock().await;
    ensure_networks(
        &ctx.engine,
        &assignment.task.id,
        &assignment.task.spec.networks,
        &assignment.networks,
    )
    .await
}

fn files_of(assignment: &Assignment) -> Result<Vec<TaskFile>, AgentError> {
    let secrets = assignment
        .secrets
        .iter()
        .map(|(r, d)| (FileKind::Secret, r, d));
    let configs = assignment
        .configs
        .iter()
        .map(|(r, d)| (FileKind::Config, r, d));
    secrets
        .chain(configs)
        .map(|(kind, reference, data)| {
            task_file(kind, reference, data).map_err(|reason| AgentError::InvalidFile {
                task: assignment.task.id.clone(),
                target: reference.target.clone(),
                reason,
            })
        })
        .collect()
}

/// Creates the named volumes the task mounts, labelled with this node (the
/// engine would create them unlabelled otherwise).
async fn ensure_volumes(engine: &Engine, task: &Task) -> Result<(), AgentError> {
    let named = task
        .spec
        .container
        .mounts
        .iter()
        .filter(|m| m.kind == MountKind::Volume && !m.source.is_empty());
    for mount in named {
        let failed = |source| AgentError::EnsureVolume {
            task: task.id.clone(),
            volume: mount.source.clone(),
            source,
        };
        match engine.docker.inspect_volume(&mount.source).await {
            Ok(_) => continue,
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(failed(e)),
        }
        let request = VolumeCreateRequest {
            name: Some(mount.source.clone()),
            labels: Some(HashMap::from([(
                NODE_LABEL.to_owned(),
                engine.node.to_string(),
            )])),
            ..Default::default()
        };
        engine.docker.create_volume(request).await.map_err(failed)?;
    }
    Ok(())
}

/// Creates the container, or adopts the one of this task that already
/// holds its name (a concurrent or interrupted preparation made it).
async fn create(
    engine: &Engine,
    task: &Task,
    networks: &[LocalNetwork],
) -> Result<String, AgentError> {
    let name = task.container_name();
    let options = CreateContainerOptions {
        name: Some(name.clone()),
        platform: String::new(),
    };
    let body = container_config(engine.node, task, networks);
    match engine.docker.create_container(Some(options), body).await {
        Ok(created) => {
            for warning in &created.warnings {
                tracing::warn!(task = %task.id, warning, "engine warning on create");
            }
            Ok(created.id)
        }
        Err(e) if is_conflict(&e) => adopt(engine, task, &name).await,
        Err(source) => Err(AgentError::CreateContainer {
            task: task.id.clone(),
            source,
        }),
    }
}

/// The container of this task that holds `name`. A concurrent create
/// reserves the name before its container can be inspected, so a missing
/// container is looked for again for a moment.
async fn adopt(engine: &Engine, task: &Task, name: &str) -> Result<String, AgentError> {
    for _ in 0..ADOPT_TRIES {
        match engine.inspect(&task.id, name).await? {
            Some(existing) if existing.task_id == task.id => return Ok(existing.id),
            Some(_) => break,
            None => tokio::time::sleep(ADOPT_PAUSE).await,
        }
    }
    match engine.inspect(&task.id, name).await? {
        Some(existing) if existing.task_id == task.id => Ok(existing.id),
        Some(_) => Err(AgentError::NameTaken {
            task: task.id.clone(),
            name: name.to_owned(),
        }),
        None => Err(AgentError::NameContended {
            task: task.id.clone(),
            name: name.to_owned(),
        }),
    }
}

async fn finish_and_start(
    engine: &Engine,
    task: &Task,
    container_id: &str,
    networks: &[LocalNetwork],
    connected: &[String],
    files: &[TaskFile],
) -> Result<(), AgentError> {
    let is_attached =
        |n: &&LocalNetwork| connected.contains(&n.docker_id) || connected.contains(&n.name);
    for network in networks.iter().filter(|n| !is_attached(n)) {
        let request = NetworkConnectRequest {
            container: container_id.to_owned(),
            endpoint_config: Some(endpoint_settings(task)),
        };
        if let Err(source) = engine
            .docker
            .connect_network(&network.docker_id, request)
            .await
        {
            // A concurrent preparation of the same task may have connected it.
            let now = engine.inspect(&task.id, container_id).await?;
            let attached = now.is_some_and(|c| {
                c.attached.contains(&network.docker_id) || c.attached.contains(&network.name)
            });
            if !attached {
                return Err(AgentError::ConnectNetwork {
                    task: task.id.clone(),
                    network: network.name.clone(),
                    source,
                });
            }
        }
    }
    if !files.is_empty() {
        upload(engine, task, container_id, files).await?;
    }
    engine
        .docker
        .start_container(container_id, None)
        .await
        .map_err(|source| AgentError::StartContainer {
            task: task.id.clone(),
            source,
        })
}

async fn upload(
    engine: &Engine,
    task: &Task,
    container_id: &str,
    files: &[TaskFile],
) -> Result<(), AgentError> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let archive = tar_archive(files, u64::try_from(now).unwrap_or(0)).map_err(|reason| {
        AgentError::InvalidFile {
            task: task.id.clone(),
            target: String::new(),
            reason,
        }
    })?;
    let options = UploadToContainerOptions {
        path: "/".to_owned(),
        ..Default::default()
    };
    engine
        .docker
        .upload_to_container(
            container_id,
            Some(options),
            bollard::body_full(archive.into()),
        )
        .await
        .map_err(|source| AgentError::UploadFiles {
            task: task.id.clone(),
            source,
        })
}
