//! `token`, `node` and `status`: cluster administration over the cluster API.

use anyhow::{bail, Context};
use capstan_manager::DataDir;
use capstan_proto::v1 as pb;

use crate::cli::{NodeCommand, StatusArgs, TokenArgs};
use crate::output::table;

async fn client(
    dir: &DataDir,
    host: Option<&str>,
) -> anyhow::Result<pb::cluster_client::ClusterClient<tonic::transport::Channel>> {
    Ok(capstan_manager::client::connect(dir, host).await?)
}

/// Turns a gRPC error into the manager's own words.
pub fn status_error(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{}", s.message())
}

/// `capstan token worker|manager [--rotate] [--quiet]`.
pub async fn token(dir: &DataDir, args: TokenArgs) -> anyhow::Result<()> {
    let worker = match args.role.as_str() {
        "worker" => true,
        "manager" => false,
        other => bail!("unknown token {other:?}: expected `worker` or `manager`"),
    };
    let mut c = client(dir, args.target.host.as_deref()).await?;
    let resp = c
        .join_tokens(pb::JoinTokensRequest {
            rotate_worker: args.rotate && worker,
            rotate_manager: args.rotate && !worker,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let token = if worker { resp.worker } else { resp.manager };
    if args.quiet {
        println!("{token}");
        return Ok(());
    }
    let manager = resp
        .manager_addrs
        .first()
        .context("the cluster reports no manager address")?;
    if args.rotate {
        println!("Successfully rotated {} join token.\n", args.role);
    }
    println!(
        "To add a {} to this cluster, run the following command:\n",
        args.role
    );
    println!("    capstan join --token {token} {manager}\n");
    Ok(())
}

fn node_rows(nodes: &[pb::NodeInfo], me: &str) -> Vec<Vec<String>> {
    nodes
        .iter()
        .map(|n| {
            let star = if n.id == me { " *" } else { "" };
            vec![
                format!("{}{star}", n.id),
                n.hostname.clone(),
                capitalize(&n.status),
                capitalize(&n.availability),
                capitalize(&n.manager_status),
                n.addr.clone(),
            ]
        })
        .collect()
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn node_json(n: &pb::NodeInfo) -> serde_json::Value {
    serde_json::json!({
        "ID": n.id, "Hostname": n.hostname, "Role": n.role, "Address": n.addr,
        "Status": n.status, "Availability": n.availability,
        "ManagerStatus": n.manager_status, "Version": n.version,
        "CreatedAt": n.created_at, "UpdatedAt": n.updated_at,
        "Labels": n.labels, "CertificateExpiry": n.cert_not_after,
        "CapstanVersion": n.capstan_version,
    })
}

/// `capstan node ...`.
pub async fn node(dir: &DataDir, cmd: NodeCommand) -> anyhow::Result<()> {
    match cmd {
        NodeCommand::Ls { json, target } => {
            let mut c = client(dir, target.host.as_deref()).await?;
            let me = c
                .status(pb::StatusRequest {})
                .await
                .map_err(status_error)?
                .into_inner()
                .node_id;
            let mut nodes = c
                .list_nodes(pb::ListNodesRequest {})
                .await
                .map_err(status_error)?
                .into_inner()
                .nodes;
            nodes.sort_by(|a, b| a.hostname.cmp(&b.hostname).then(a.id.cmp(&b.id)));
            if json {
                let v: Vec<_> = nodes.iter().map(node_json).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "{}",
                    table(
                        &[
                            "ID",
                            "HOSTNAME",
                            "STATUS",
                            "AVAILABILITY",
                            "MANAGER STATUS",
                            "ADDRESS"
                        ],
                        &node_rows(&nodes, &me)
                    )
                );
            }
        }
        NodeCommand::Inspect { node, target } => {
            let mut c = client(dir, target.host.as_deref()).await?;
            let nodes = c
                .list_nodes(pb::ListNodesRequest {})
                .await
                .map_err(status_error)?
                .into_inner()
                .nodes;
            let found: Vec<_> = nodes
                .iter()
                .filter(|n| n.id == node || n.hostname == node || n.id.starts_with(&node))
                .collect();
            match found.as_slice() {
                [one] => println!("{}", serde_json::to_string_pretty(&node_json(one))?),
                [] => bail!("no node {node:?} in this cluster"),
                _ => bail!(
                    "node {node:?} is ambiguous: it matches {} nodes",
                    found.len()
                ),
            }
        }
        NodeCommand::Promote { nodes, target } => {
            change_role(dir, nodes, target.host.as_deref(), "manager").await?;
        }
        NodeCommand::Demote { nodes, target } => {
            change_role(dir, nodes, target.host.as_deref(), "worker").await?;
        }
        NodeCommand::Rm {
            nodes,
            force,
            target,
        } => {
            let mut c = client(dir, target.host.as_deref()).await?;
            for node in nodes {
                let resp = c
                    .remove_node(pb::RemoveNodeRequest {
                        node: node.clone(),
                        force,
                    })
                    .await
                    .map_err(status_error)
                    .with_context(|| format!("remove {node}"))?;
                println!("{}", resp.into_inner().node_id);
            }
        }
    }
    Ok(())
}

async fn change_role(
    dir: &DataDir,
    nodes: Vec<String>,
    host: Option<&str>,
    role: &str,
) -> anyhow::Result<()> {
    let mut c = client(dir, host).await?;
    for node in nodes {
        c.change_node_role(pb::ChangeNodeRoleRequest {
            node: node.clone(),
            role: role.into(),
        })
        .await
        .map_err(status_error)
        .with_context(|| format!("make {node} a {role}"))?;
        let verb = if role == "manager" {
            "promoted to a manager"
        } else {
            "demoted to a worker"
        };
        println!("Node {node} {verb} in the cluster.");
    }
    Ok(())
}

/// `capstan status`.
pub async fn status(dir: &DataDir, args: StatusArgs) -> anyhow::Result<()> {
    let mut c = client(dir, args.target.host.as_deref()).await?;
    let s = c
        .status(pb::StatusRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    if args.json {
        let members: Vec<_> = s
            .members
            .iter()
            .map(|m| {
                serde_json::json!({
                    "node_id": m.node_id, "hostname": m.hostname, "addr": m.addr,
                    "voter": m.voter, "leader": m.leader, "reachable": m.reachable,
                    "matched_index": m.matched_index,
                })
            })
            .collect();
        let v = serde_json::json!({
            "cluster_id": s.cluster_id, "node_id": s.node_id, "state": s.state,
            "leader_id": s.leader_id, "term": s.term, "commit_index": s.commit_index,
            "applied_index": s.applied_index, "last_log_index": s.last_log_index,
            "members": members,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let leader = if s.leader_id.is_empty() {
        "none (no quorum?)".to_string()
    } else {
        s.leader_id.clone()
    };
    println!("Cluster:       {}", s.cluster_id);
    println!("This node:     {} ({})", s.node_id, s.state);
    println!("Leader:        {leader}");
    println!("Term:          {}", s.term);
    println!("Commit index:  {}", s.commit_index);
    println!("Last log:      {}\n", s.last_log_index);
    let rows: Vec<Vec<String>> = s
        .members
        .iter()
        .map(|m| {
            vec![
                m.node_id.clone(),
                m.hostname.clone(),
                m.addr.clone(),
                if m.leader {
                    "leader"
                } else if m.voter {
                    "voter"
                } else {
                    "learner"
                }
                .to_string(),
                if m.reachable {
                    "reachable"
                } else {
                    "unreachable"
                }
                .to_string(),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &["MEMBER", "HOSTNAME", "ADDRESS", "ROLE", "REACHABILITY"],
            &rows
        )
    );
    Ok(())
}
