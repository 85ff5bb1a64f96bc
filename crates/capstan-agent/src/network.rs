//! Cluster networks on this node: each is a local bridge network named after
//! the cluster network and labelled with its id and this node's. Networks
//! this node made and no assigned task uses are removed.

use std::collections::{HashMap, HashSet};

use bollard::models::{Network as EngineNetwork, NetworkCreateRequest};
use bollard::query_parameters::ListNetworksOptions;
use capstan_core::Network;

use crate::container_spec::LocalNetwork;
use crate::engine::Engine;
use crate::error::{is_conflict, is_not_found, AgentError};
use crate::labels::{node_filter, owned_by, NETWORK_LABEL, NODE_LABEL};

/// The local network of each of `wanted` (cluster network ids, in the
/// task's order), creating the missing ones.
pub(crate) async fn ensure_networks(
    engine: &Engine,
    task: &str,
    wanted: &[String],
    known: &[Network],
) -> Result<Vec<LocalNetwork>, AgentError> {
    let mut local = Vec::with_capacity(wanted.len());
    for id in wanted {
        let network =
            known
                .iter()
                .find(|n| n.id == *id)
                .ok_or_else(|| AgentError::UnknownNetwork {
                    task: task.to_owned(),
                    network: id.clone(),
                })?;
        local.push(ensure_network(engine, network).await?);
    }
    Ok(local)
}

async fn ensure_network(engine: &Engine, network: &Network) -> Result<LocalNetwork, AgentError> {
    let candidates = list(engine, "label", &format!("{NETWORK_LABEL}={}", network.id)).await?;
    // Ours first; then one another agent on the same engine made for the
    // same cluster network (used, never removed by us).
    let found = candidates
        .iter()
        .find(|n| owned_by(n.labels.as_ref(), engine.node))
        .or_else(|| {
            candidates
                .iter()
                .find(|n| n.name.as_deref() == Some(&network.name))
        });
    if let Some(local) = found.and_then(local_network) {
        return Ok(local);
    }

    let mut labels: HashMap<String, String> = network
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(NODE_LABEL.to_owned(), engine.node.to_string());
    labels.insert(NETWORK_LABEL.to_owned(), network.id.clone());
    let request = NetworkCreateRequest {
        name: network.name.clone(),
        driver: Some("bridge".to_owned()),
        attachable: Some(true),
        labels: Some(labels),
        ..Default::default()
    };
    match engine.docker.create_network(request).await {
        Ok(created) => {
            tracing::info!(network = %network.name, id = %created.id, "created network");
            Ok(LocalNetwork {
                docker_id: created.id,
                name: network.name.clone(),
            })
        }
        // Engines from API 1.44 refuse a second network of the same name.
        Err(e) if is_conflict(&e) => list(engine, "name", &network.name)
            .await?
            .iter()
            .filter(|n| n.name.as_deref() == Some(&network.name))
            .find(|n| n.labels.as_ref().and_then(|l| l.get(NETWORK_LABEL)) == Some(&network.id))
            .and_then(local_network)
            .ok_or_else(|| AgentError::NetworkNameTaken {
                network: network.name.clone(),
            }),
        Err(source) => Err(AgentError::EnsureNetwork {
            network: network.name.clone(),
            source,
        }),
    }
}

/// Removes the networks this node made for cluster networks outside
/// `in_use`. Best effort: a network a container still uses stays (the
/// engine refuses), and failures are logged.
pub(crate) async fn remove_unused(
    engine: &Engine,
    in_use: &HashSet<&str>,
) -> Result<(), AgentError> {
    for network in list(engine, "label", &node_filter(engine.node)).await? {
        if !owned_by(network.labels.as_ref(), engine.node) {
            continue;
        }
        let cluster_id = network
            .labels
            .as_ref()
            .and_then(|l| l.get(NETWORK_LABEL))
            .map(String::as_str)
            .unwrap_or_default();
        if in_use.contains(cluster_id) {
            continue;
        }
        let Some(id) = network.id.as_deref() else {
            continue;
        };
        match engine.docker.remove_network(id).await {
            Ok(()) => tracing::info!(network = ?network.name, "removed unused network"),
            Err(e) if is_not_found(&e) => {}
            Err(e) => tracing::debug!(network = ?network.name, error = %e, "network not removed"),
        }
    }
    Ok(())
}

async fn list(engine: &Engine, key: &str, value: &str) -> Result<Vec<EngineNetwork>, AgentError> {
    let options = ListNetworksOptions {
        filters: Some(HashMap::from([(key.to_owned(), vec![value.to_owned()])])),
    };
    engine
        .docker
        .list_networks(Some(options))
        .await
        .map_err(|source| AgentError::ListNetworks {
            node: engine.node.to_string(),
            source,
        })
}

fn local_network(n: &EngineNetwork) -> Option<LocalNetwork> {
    Some(LocalNetwork {
        docker_id: n.id.clone().filter(|id| !id.is_empty())?,
        name: n.name.clone().unwrap_or_default(),
    })
}
