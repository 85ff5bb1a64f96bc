//! What the engine shows of a task's container, read from `docker inspect`
//! into the few facts the executor decides on. Engine data is never
//! trusted to be complete: missing fields read as the safest value.

use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum, HealthStatusEnum};
use capstan_core::task::PublishedPort;

use crate::container_spec::published_ports;
use crate::labels::TASK_LABEL;

/// The life stage of a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RunState {
    /// Created, never started (or the start failed).
    Created,
    /// Running, paused, restarting or being stopped: a live process.
    Live,
    /// Exited or dead.
    Stopped,
}

/// The container's health check verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Health {
    /// No health check, or not yet known.
    Unknown,
    /// Healthy or still starting.
    Fine,
    /// The check failed its retries.
    Unhealthy,
}

/// One task container as the engine last showed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ContainerView {
    /// The engine's container id.
    pub id: String,
    /// Its task label.
    pub task_id: String,
    /// Life stage.
    pub run: RunState,
    /// Exit code (meaningful once stopped).
    pub exit_code: i64,
    /// The engine's error text (e.g. why a start failed).
    pub error: String,
    /// Health.
    pub health: Health,
    /// Ports published on the node.
    pub ports: Vec<PublishedPort>,
    /// Ids and names of the networks it is attached to (a container created
    /// but not started may show only names).
    pub attached: Vec<String>,
}

impl ContainerView {
    /// Reads an inspected container; `None` when the engine gave no id.
    pub(crate) fn from_inspect(c: &ContainerInspectResponse) -> Option<ContainerView> {
        let id = c.id.clone().filter(|id| !id.is_empty())?;
        let state = c.state.clone().unwrap_or_default();
        let run = match state.status {
            Some(ContainerStateStatusEnum::CREATED) => RunState::Created,
            Some(
                ContainerStateStatusEnum::RUNNING
                | ContainerStateStatusEnum::PAUSED
                | ContainerStateStatusEnum::RESTARTING
                | ContainerStateStatusEnum::STOPPING,
            ) => RunState::Live,
            Some(
                ContainerStateStatusEnum::EXITED
                | ContainerStateStatusEnum::DEAD
                | ContainerStateStatusEnum::REMOVING,
            ) => RunState::Stopped,
            Some(ContainerStateStatusEnum::EMPTY) | None => {
                if state.running.unwrap_or(false) {
                    RunState::Live
                } else {
                    RunState::Stopped
                }
            }
        };
        let health = match state.health.as_ref().and_then(|h| h.status) {
            Some(HealthStatusEnum::UNHEALTHY) => Health::Unhealthy,
            Some(HealthStatusEnum::HEALTHY | HealthStatusEnum::STARTING) => Health::Fine,
            _ => Health::Unknown,
        };
        let task_id = c
            .config
            .as_ref()
            .and_then(|cfg| cfg.labels.as_ref())
            .and_then(|l| l.get(TASK_LABEL))
            .cloned()
            .unwrap_or_default();
        let settings = c.network_settings.as_ref();
        let mut attached: Vec<String> = settings
            .and_then(|s| s.networks.as_ref())
            .into_iter()
            .flatten()
            .flat_map(|(name, endpoint)| [Some(name.clone()), endpoint.network_id.clone()])
            .flatten()
            .filter(|id| !id.is_empty())
            .collect();
        attached.sort();
        Some(ContainerView {
            id,
            task_id,
            run,
            exit_code: state.exit_code.unwrap_or(0),
            error: state.error.unwrap_or_default(),
            health,
            ports: published_ports(settings.and_then(|s| s.ports.as_ref())),
            attached,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerConfig, ContainerState, Health as EngineHealth};
    use std::collections::HashMap;

    fn inspected(status: ContainerStateStatusEnum, exit: i64) -> ContainerInspectResponse {
        ContainerInspectResponse {
            id: Some("c1".into()),
            state: Some(ContainerState {
                status: Some(status),
                exit_code: Some(exit),
                ..Default::default()
            }),
            config: Some(ContainerConfig {
                labels: Some(HashMap::from([(TASK_LABEL.to_owned(), "t1".to_owned())])),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn engine_states_map_to_run_states() {
        use ContainerStateStatusEnum as S;
        for (status, run) in [
            (S::CREATED, RunState::Created),
            (S::RUNNING, RunState::Live),
            (S::PAUSED, RunState::Live),
            (S::RESTARTING, RunState::Live),
            (S::EXITED, RunState::Stopped),
            (S::DEAD, RunState::Stopped),
        ] {
            let view = ContainerView::from_inspect(&inspected(status, 0)).expect("view");
            assert_eq!(view.run, run, "{status:?}");
            assert_eq!(view.task_id, "t1");
        }
    }

    #[test]
    fn health_and_missing_fields_are_read_safely() {
        let mut c = inspected(ContainerStateStatusEnum::RUNNING, 0);
        if let Some(state) = c.state.as_mut() {
            state.health = Some(EngineHealth {
                status: Some(HealthStatusEnum::UNHEALTHY),
                ..Default::default()
            });
        }
        let view = ContainerView::from_inspect(&c).expect("view");
        assert_eq!(view.health, Health::Unhealthy);

        let bare = ContainerInspectResponse {
            id: Some("c2".into()),
            ..Default::default()
        };
        let view = ContainerView::from_inspect(&bare).expect("view");
        assert_eq!(view.run, RunState::Stopped);
        assert_eq!(view.task_id, "");
        assert!(view.ports.is_empty());
        assert!(ContainerView::from_inspect(&ContainerInspectResponse::default()).is_none());
    }
}
