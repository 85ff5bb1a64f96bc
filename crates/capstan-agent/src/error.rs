//! The agent's one error type. Each variant names the operation on the
//! Docker Engine that failed and wraps what the engine (or bollard) said.

use bollard::errors::Error as EngineError;

/// Anything the executor can fail at.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The dispatcher sent something this agent cannot use.
    #[error("dispatcher protocol: {0}")]
    Protocol(String),
    /// The Docker Engine could not be reached or did not answer `/version`.
    #[error("cannot reach the Docker Engine at {host}: {source}; is dockerd running, and is DOCKER_HOST right?")]
    Connect {
        /// `DOCKER_HOST`, or the default socket.
        host: String,
        /// What bollard said.
        source: EngineError,
    },
    /// `docker info` failed.
    #[error("cannot read the engine's description (docker info): {source}")]
    DescribeEngine {
        /// What the engine said.
        source: EngineError,
    },
    /// Listing this node's containers failed.
    #[error("cannot list the containers of node {node}: {source}")]
    ListContainers {
        /// The node.
        node: String,
        /// What the engine said.
        source: EngineError,
    },
    /// Inspecting a task's container failed.
    #[error("cannot inspect container {container} of task {task}: {source}")]
    InspectContainer {
        /// The task.
        task: String,
        /// Container name or id.
        container: String,
        /// What the engine said.
        source: EngineError,
    },
    /// Inspecting the task's image failed for a reason other than "missing".
    #[error("cannot inspect image {image} for task {task}: {source}")]
    InspectImage {
        /// The task.
        task: String,
        /// The image reference.
        image: String,
        /// What the engine said.
        source: EngineError,
    },
    /// The task's image is not on the node and could not be pulled.
    #[error("cannot pull image {image} for task {task}: {source}")]
    PullImage {
        /// The task.
        task: String,
        /// The image reference.
        image: String,
        /// What the engine said.
        source: EngineError,
    },
    /// The registry credentials handed to the node are not base64 JSON.
    #[error("the registry credentials of task {task} are not valid base64 JSON: {reason}")]
    RegistryAuth {
        /// The task.
        task: String,
        /// What is wrong.
        reason: String,
    },
    /// A task names a network that its assignment does not describe.
    #[error("task {task} is attached to network {network}, which was not given to this node")]
    UnknownNetwork {
        /// The task.
        task: String,
        /// The cluster network id.
        network: String,
    },
    /// Finding or creating the local network of a cluster network failed.
    #[error("cannot create network {network} on this node: {source}")]
    EnsureNetwork {
        /// The network's name.
        network: String,
        /// What the engine said.
        source: EngineError,
    },
    /// A network of that name exists and Capstan did not make it.
    #[error("network name {network} is taken on this node by a network Capstan did not create; remove or rename it")]
    NetworkNameTaken {
        /// The network's name.
        network: String,
    },
    /// Listing this node's networks failed.
    #[error("cannot list the networks of node {node}: {source}")]
    ListNetworks {
        /// The node.
        node: String,
        /// What the engine said.
        source: EngineError,
    },
    /// Finding or creating a named volume failed.
    #[error("cannot create volume {volume} for task {task}: {source}")]
    EnsureVolume {
        /// The task.
        task: String,
        /// The volume's name.
        volume: String,
        /// What the engine said.
        source: EngineError,
    },
    /// `docker create` failed.
    #[error("cannot create the container of task {task}: {source}")]
    CreateContainer {
        /// The task.
        task: String,
        /// What the engine said.
        source: EngineError,
    },
    /// The container name is held by a container that is not this task's.
    #[error("container name {name} of task {task} is taken by a container that is not this task's on this node; remove it")]
    NameTaken {
        /// The task.
        task: String,
        /// The container name.
        name: String,
    },
    /// Another create holds the container name and its container is not
    /// visible yet (two agents of the node raced); retried.
    #[error(
        "container name {name} of task {task} is being taken by a concurrent create; will retry"
    )]
    NameContended {
        /// The task.
        task: String,
        /// The container name.
        name: String,
    },
    /// Attaching the container to one of its extra networks failed.
    #[error("cannot connect the container of task {task} to network {network}: {source}")]
    ConnectNetwork {
        /// The task.
        task: String,
        /// The network's name.
        network: String,
        /// What the engine said.
        source: EngineError,
    },
    /// A secret or config cannot be written where its reference says.
    #[error("task {task}: cannot place file {target:?}: {reason}")]
    InvalidFile {
        /// The task.
        task: String,
        /// The reference's target.
        target: String,
        /// What is wrong.
        reason: String,
    },
    /// Uploading the secrets and configs into the container failed.
    #[error("cannot write the secrets and configs of task {task} into its container: {source}")]
    UploadFiles {
        /// The task.
        task: String,
        /// What the engine said.
        source: EngineError,
    },
    /// `docker start` failed.
    #[error("cannot start the container of task {task}: {source}")]
    StartContainer {
        /// The task.
        task: String,
        /// What the engine said.
        source: EngineError,
    },
    /// `docker stop` failed.
    #[error("cannot stop container {container}: {source}")]
    StopContainer {
        /// Container name or id.
        container: String,
        /// What the engine said.
        source: EngineError,
    },
    /// `docker kill` failed.
    #[error("cannot kill container {container}: {source}")]
    KillContainer {
        /// Container name or id.
        container: String,
        /// What the engine said.
        source: EngineError,
    },
    /// `docker rm` failed.
    #[error("cannot remove container {container}: {source}")]
    RemoveContainer {
        /// Container name or id.
        container: String,
        /// What the engine said.
        source: EngineError,
    },
    /// Removing a network of this node failed.
    #[error("cannot remove network {network}: {source}")]
    RemoveNetwork {
        /// The network's name or id.
        network: String,
        /// What the engine said.
        source: EngineError,
    },
    /// A task has no container on this node (for logs).
    #[error("task {task} has no container on this node")]
    NoContainer {
        /// The task.
        task: String,
    },
    /// Reading a container's logs failed.
    #[error("cannot read the logs of task {task}: {source}")]
    Logs {
        /// The task.
        task: String,
        /// What the engine said.
        source: EngineError,
    },
    /// A preparation of the task's container stopped without an outcome.
    #[error("the preparation of task {task} stopped unexpectedly: {reason}")]
    Preparation {
        /// The task.
        task: String,
        /// Why.
        reason: String,
    },
}

impl AgentError {
    /// The engine's own words when the engine refused the request (an HTTP
    /// error status or an error inside a stream, such as a failed pull), or
    /// `None` when the request never got an answer (engine down, timeout).
    /// A refusal is final for a task; a missing answer is worth retrying.
    pub fn engine_refusal(&self) -> Option<String> {
        match self {
            AgentError::InvalidFile { reason, .. } => Some(reason.clone()),
            AgentError::RegistryAuth { reason, .. } => {
                Some(format!("invalid registry credentials: {reason}"))
            }
            AgentError::UnknownNetwork { .. }
            | AgentError::NetworkNameTaken { .. }
            | AgentError::NameTaken { .. } => Some(self.to_string()),
            // The pull's own error rarely names the image (a DNS failure
            // names the registry), so the refusal says which image is missing.
            AgentError::PullImage { image, source, .. } => {
                refusal_message(source).map(|pull| format!("No such image: {image} (pull: {pull})"))
            }
            _ => self.engine_source().and_then(refusal_message),
        }
    }

    fn engine_source(&self) -> Option<&EngineError> {
        match self {
            AgentError::Connect { source, .. }
            | AgentError::DescribeEngine { source }
            | AgentError::ListContainers { source, .. }
            | AgentError::InspectContainer { source, .. }
            | AgentError::InspectImage { source, .. }
            | AgentError::PullImage { source, .. }
            | AgentError::EnsureNetwork { source, .. }
            | AgentError::ListNetworks { source, .. }
            | AgentError::EnsureVolume { source, .. }
            | AgentError::CreateContainer { source, .. }
            | AgentError::ConnectNetwork { source, .. }
            | AgentError::UploadFiles { source, .. }
            | AgentError::StartContainer { source, .. }
            | AgentError::StopContainer { source, .. }
            | AgentError::KillContainer { source, .. }
            | AgentError::RemoveContainer { source, .. }
            | AgentError::RemoveNetwork { source, .. }
            | AgentError::Logs { source, .. } => Some(source),
            AgentError::Protocol(_)
            | AgentError::RegistryAuth { .. }
            | AgentError::UnknownNetwork { .. }
            | AgentError::NetworkNameTaken { .. }
            | AgentError::NameTaken { .. }
            | AgentError::NameContended { .. }
            | AgentError::InvalidFile { .. }
            | AgentError::NoContainer { .. }
            | AgentError::Preparation { .. } => None,
        }
    }
}

/// The message of an engine refusal, as `docker` would print it.
pub(crate) fn refusal_message(error: &EngineError) -> Option<String> {
    match error {
        EngineError::DockerResponseServerError { message, .. } => Some(message.clone()),
        EngineError::DockerStreamError { error } => Some(error.clone()),
        _ => None,
    }
}

/// The HTTP status of an engine refusal.
pub(crate) fn status_code(error: &EngineError) -> Option<u16> {
    match error {
        EngineError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// Whether the engine answered 404 (no such object).
pub(crate) fn is_not_found(error: &EngineError) -> bool {
    status_code(error) == Some(404)
}

/// Whether the engine answered 409 (name in use, or a conflicting state).
pub(crate) fn is_conflict(error: &EngineError) -> bool {
    status_code(error) == Some(409)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status_code: u16, message: &str) -> EngineError {
        EngineError::DockerResponseServerError {
            status_code,
            message: message.into(),
        }
    }

    #[test]
    fn refusals_carry_the_engines_words_and_outages_do_not() {
        let pull = AgentError::PullImage {
            task: "t1".into(),
            image: "nosuch/image:1".into(),
            source: EngineError::DockerStreamError {
                error: "pull access denied".into(),
            },
        };
        assert_eq!(
            pull.engine_refusal().as_deref(),
            Some("No such image: nosuch/image:1 (pull: pull access denied)")
        );
        let create = AgentError::CreateContainer {
            task: "t1".into(),
            source: refused(400, "invalid mount config"),
        };
        assert_eq!(
            create.engine_refusal().as_deref(),
            Some("invalid mount config")
        );
        let timeout = AgentError::StartContainer {
            task: "t1".into(),
            source: EngineError::RequestTimeoutError,
        };
        assert_eq!(timeout.engine_refusal(), None);
        assert!(timeout.to_string().contains("task t1"), "{timeout}");
    }

    #[test]
    fn status_helpers_read_the_http_status() {
        assert!(is_not_found(&refused(404, "No such image: x")));
        assert!(is_conflict(&refused(409, "Conflict")));
        assert!(!is_not_found(&EngineError::RequestTimeoutError));
    }
}
