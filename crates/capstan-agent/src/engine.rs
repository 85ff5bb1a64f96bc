//! The executor's handle on the Docker Engine: a bollard client scoped to
//! one node. Every container call here lists or touches only containers
//! that carry this node's label, and wraps engine errors with the
//! operation that failed.

use std::time::Duration;

use bollard::models::ContainerSummary;
use bollard::query_parameters::{
    KillContainerOptions, ListContainersOptions, RemoveContainerOptions, StopContainerOptions,
};
use bollard::Docker;
use capstan_core::NodeId;

use crate::error::{is_not_found, AgentError};
use crate::labels::{filters, owned_by, TASK_LABEL};
use crate::observed::ContainerView;

/// How long past its grace period a stop may take before the engine is
/// considered stuck (the engine answers a stop only once the container is
/// down).
const STOP_SLACK: Duration = Duration::from_secs(30);

/// A node-scoped engine client. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Engine {
    /// The bollard client.
    pub docker: Docker,
    /// The node whose containers this handle sees.
    pub node: NodeId,
}

/// One of the node's containers, as a listing shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Listed {
    /// Container id.
    pub id: String,
    /// Its task label (empty if missing).
    pub task_id: String,
}

impl Engine {
    /// Every container of this node, running or not.
    pub(crate) async fn list(&self, extra_labels: &[String]) -> Result<Vec<Listed>, AgentError> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters(self.node, extra_labels)),
            ..Default::default()
        };
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|source| AgentError::ListContainers {
                node: self.node.to_string(),
                source,
            })?;
        Ok(containers
            .into_iter()
            .filter(|c| owned_by(c.labels.as_ref(), self.node))
            .filter_map(listed)
            .collect())
    }

    /// The container named `name` if it exists and is this node's.
    pub(crate) async fn inspect(
        &self,
        task: &str,
        name: &str,
    ) -> Result<Option<ContainerView>, AgentError> {
        match self.docker.inspect_container(name, None).await {
            Ok(c) => {
                let labels = c.config.as_ref().and_then(|cfg| cfg.labels.as_ref());
                if !owned_by(labels, self.node) {
                    return Ok(None);
                }
                Ok(ContainerView::from_inspect(&c))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(source) => Err(AgentError::InspectContainer {
                task: task.to_owned(),
                container: name.to_owned(),
                source,
            }),
        }
    }

    /// Stops a container: SIGTERM, then SIGKILL after `grace` (`None`: the
    /// stop timeout the container was created with).
    pub(crate) async fn stop(
        &self,
        container: &str,
        grace: Option<Duration>,
    ) -> Result<(), AgentError> {
        let seconds =
            grace.map(|g| i32::try_from(g.as_secs_f64().ceil() as u64).unwrap_or(i32::MAX));
        let options = StopContainerOptions {
            t: seconds,
            signal: None,
        };
        let wait = grace.unwrap_or(Duration::from_secs(60)) + STOP_SLACK;
        let client = self
            .docker
            .clone()
            .with_timeout(wait.max(self.docker.timeout()));
        match client.stop_container(container, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(source) => Err(AgentError::StopContainer {
                container: container.to_owned(),
                source,
            }),
        }
    }

    /// Kills a container at once.
    pub(crate) async fn kill(&self, container: &str) -> Result<(), AgentError> {
        let options = KillContainerOptions {
            signal: "SIGKILL".to_owned(),
        };
        match self.docker.kill_container(container, Some(options)).await {
            Ok(()) => Ok(()),
            // 404: gone; 409: not running any more.
            Err(e) if is_not_found(&e) || crate::error::is_conflict(&e) => Ok(()),
            Err(source) => Err(AgentError::KillContainer {
                container: container.to_owned(),
                source,
            }),
        }
    }

    /// Removes a container and its anonymous volumes (forcing, should it
    /// still run).
    pub(crate) async fn remove(&self, container: &str) -> Result<(), AgentError> {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        };
        match self.docker.remove_container(container, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            // 409: a removal is already in progress.
            Err(e) if crate::error::is_conflict(&e) => Ok(()),
            Err(source) => Err(AgentError::RemoveContainer {
                container: container.to_owned(),
                source,
            }),
        }
    }

    /// Stops (with the container's own grace period) and removes.
    pub(crate) async fn stop_and_remove(&self, container: &str) -> Result<(), AgentError> {
        if let Err(e) = self.stop(container, None).await {
            tracing::warn!(container, error = %e, "stop before removal failed; removing by force");
        }
        self.remove(container).await
    }
}

fn listed(c: ContainerSummary) -> Option<Listed> {
    let id = c.id.filter(|id| !id.is_empty())?;
    let task_id = c
        .labels
        .as_ref()
        .and_then(|l| l.get(TASK_LABEL))
        .cloned()
        .unwrap_or_default();
    Some(Listed { id, task_id })
}
