//! The `Swarm` gRPC service: thin handlers over the store for services,
//! tasks, secrets, configs, networks, nodes, stacks, logs and events.

use std::collections::BTreeMap;
use std::pin::Pin;

use capstan_core::service::STACK_NAMESPACE_LABEL;
use capstan_core::{
    decode, encode, Availability, Config, Network, Node, NodeRole, Secret, Service, Table, Task,
};
use capstan_proto::v1::{self as pb, swarm_server::Swarm};
use capstan_store::{Action, Expect, Op};
use futures::Stream;
use time::OffsetDateTime;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

use crate::error::ManagerError;
use crate::state::{forwarded_request, is_forwarded, SharedState};
use crate::swarm::assignments::REGISTRY_AUTH_TABLE;
use crate::swarm::objects::{check_data, invalid, json, name_op, secret_view, unname_op};
use crate::swarm::runtime::new_id;
use crate::swarm::validate;

/// The Swarm API of a manager.
pub struct SwarmApi {
    pub(super) state: SharedState,
}

impl SwarmApi {
    /// The API over a manager's state.
    pub fn new(state: SharedState) -> Self {
        Self { state }
    }
}

type LogStream = Pin<Box<dyn Stream<Item = Result<pb::LogLine, Status>> + Send>>;
type EventStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;

#[tonic::async_trait]
impl Swarm for SwarmApi {
    async fn create_service(
        &self,
        req: Request<pb::CreateServiceRequest>,
    ) -> Result<Response<pb::ServiceResponse>, Status> {
        let r = req.into_inner();
        let mut spec = Self::parse_spec(&r.spec)?;
        self.resolve_references(&mut spec).await?;
        let now = OffsetDateTime::now_utc();
        let service = Service {
            id: new_id(),
            spec,
            previous_spec: None,
            spec_version: 1,
            owner: (!r.owner.is_empty()).then(|| r.owner.clone()),
            update_status: None,
            created_at: now,
            updated_at: now,
        };
        let mut ops = vec![
            name_op("service", &service.spec.name, &service.id),
            Op {
                table: Service::TABLE.into(),
                id: service.id.clone(),
                action: Action::Put(encode(&service)),
                expect: Expect::Absent,
            },
        ];
        if !r.registry_auth.is_empty() {
            ops.push(Op {
                table: REGISTRY_AUTH_TABLE.into(),
                id: service.id.clone(),
                action: Action::Put(self.state.swarm.secret_key.seal(r.registry_auth.as_bytes())),
                expect: Expect::Any,
            });
        }
        let out = self.state.write(ops, false).await.map_err(|e| match e {
            ManagerError::Conflict(_) => {
                Status::already_exists(format!("service {} already exists", service.spec.name))
            }
            other => other.into(),
        })?;
        self.state.swarm.wake.notify_one();
        let version = out
            .objects
            .iter()
            .find(|o| o.table == Service::TABLE)
            .map_or(0, |o| o.version);
        Ok(Response::new(pb::ServiceResponse {
            service: json(&service),
            version,
        }))
    }

    async fn update_service(
        &self,
        req: Request<pb::UpdateServiceRequest>,
    ) -> Result<Response<pb::ServiceResponse>, Status> {
        let r = req.into_inner();
        let (mut service, version) = self
            .find::<Service>("service", &r.service, |s| &s.spec.name)
            .await?;
        if r.version != 0 && r.version != version {
            return Err(Status::aborted(format!(
                "service {} changed since version {} (now {version}); read it again",
                service.spec.name, r.version
            )));
        }
        let new_spec = if r.rollback {
            service.previous_spec.clone().ok_or_else(|| {
                Status::failed_precondition(format!(
                    "service {} has no previous spec to roll back to",
                    service.spec.name
                ))
            })?
        } else {
            let mut spec = Self::parse_spec(&r.spec)?;
            if spec.name != service.spec.name {
                return Err(invalid("a service cannot be renamed"));
            }
            self.resolve_references(&mut spec).await?;
            spec
        };
        service.previous_spec = Some(std::mem::replace(&mut service.spec, new_spec));
        service.spec_version += 1;
        service.updated_at = OffsetDateTime::now_utc();
        if r.rollback {
            service.update_status = Some(capstan_core::service::UpdateStatus {
                state: capstan_core::service::UpdateState::RollbackStarted,
                started_at: service.updated_at,
                completed_at: None,
                message: "manually requested rollback".into(),
                last_batch_at: None,
            });
        }
        let mut ops = vec![Op {
            table: Service::TABLE.into(),
            id: service.id.clone(),
            action: Action::Put(encode(&service)),
            expect: Expect::Version(version),
        }];
        if !r.registry_auth.is_empty() {
            ops.push(Op {
                table: REGISTRY_AUTH_TABLE.into(),
                id: service.id.clone(),
                action: Action::Put(self.state.swarm.secret_key.seal(r.registry_auth.as_bytes())),
                expect: Expect::Any,
            });
        }
        let out = self.state.write(ops, false).await?;
        self.state.swarm.wake.notify_one();
        let version = out.objects.first().map_or(0, |o| o.version);
        Ok(Response::new(pb::ServiceResponse {
            service: json(&service),
            version,
        }))
    }

    async fn remove_service(
        &self,
        req: Request<pb::RemoveRequest>,
    ) -> Result<Response<pb::RemoveResponse>, Status> {
        let id = req.into_inner().id;
        let (service, version) = self
            .find::<Service>("service", &id, |s| &s.spec.name)
            .await?;
        let ops = vec![
            Op {
                table: Service::TABLE.into(),
                id: service.id.clone(),
                action: Action::Delete,
                expect: Expect::Version(version),
            },
            unname_op("service", &service.spec.name),
            Op {
                table: REGISTRY_AUTH_TABLE.into(),
                id: service.id.clone(),
                action: Action::Delete,
                expect: Expect::Any,
            },
        ];
        self.state.write(ops, false).await?;
        self.state.swarm.wake.notify_one();
        Ok(Response::new(pb::RemoveResponse {
            removed: vec![service.id],
        }))
    }

    async fn get_service(
        &self,
        req: Request<pb::GetRequest>,
    ) -> Result<Response<pb::ServiceResponse>, Status> {
        let (s, v) = self
            .find::<Service>("service", &req.into_inner().id, |s| &s.spec.name)
            .await?;
        Ok(Response::new(pb::ServiceResponse {
            service: json(&s),
            version: v,
        }))
    }

    async fn list_services(
        &self,
        req: Request<pb::ListObjectsRequest>,
    ) -> Result<Response<pb::ObjectsResponse>, Status> {
        let filters = req.into_inner().labels;
        self.list_labelled::<Service>(&filters, |s| &s.spec.labels, json)
            .await
    }

    async fn list_tasks(
        &self,
        req: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ObjectsResponse>, Status> {
        let r = req.into_inner();
        let service = if r.service.is_empty() {
            None
        } else {
            Some(
                self.find::<Service>("service", &r.service, |s| &s.spec.name)
                    .await?
                    .0
                    .id,
            )
        };
        let node = if r.node.is_empty() {
            None
        } else {
            let nodes: Vec<Node> = self
                .all::<Node>()
                .await?
                .into_iter()
                .map(|(n, _)| n)
                .collect();
            Some(
                Node::resolve(&nodes, &r.node)
                    .map_err(Status::not_found)?
                    .id,
            )
        };
        let (objects, versions) = self
            .all::<Task>()
            .await?
            .into_iter()
            .filter(|(t, _)| service.as_ref().is_none_or(|s| &t.service_id == s))
            .filter(|(t, _)| node.is_none_or(|n| t.node_id == Some(n)))
            .filter(|(t, _)| !r.running_only || t.desired_state == capstan_core::TaskState::Running)
            .map(|(t, v)| (json(&t), v))
            .unzip();
        Ok(Response::new(pb::ObjectsResponse { objects, versions }))
    }

    type ServiceLogsStream = LogStream;

    async fn service_logs(
        &self,
        req: Request<pb::LogsRequest>,
    ) -> Result<Response<LogStream>, Status> {
        if !self.state.is_leader() {
            // Agents keep their sessions with the leader.
            let forwarded = is_forwarded(&req);
            let channel = self.state.leader_channel(forwarded)?;
            let mut leader = pb::swarm_client::SwarmClient::new(channel);
            let stream = leader
                .service_logs(forwarded_request(req.into_inner()))
                .await?
                .into_inner();
            return Ok(Response::new(Box::pin(stream)));
        }
        let r = req.into_inner();
        let tasks: Vec<Task> = match self
            .find::<Service>("service", &r.target, |s| &s.spec.name)
            .await
        {
            Ok((s, _)) => self
                .all::<Task>()
                .await?
                .into_iter()
                .map(|(t, _)| t)
                .filter(|t| t.service_id == s.id)
                .collect(),
            Err(_) => vec![self.find::<Task>("task", &r.target, |t| &t.id).await?.0],
        };
        Ok(Response::new(crate::swarm::logs::stream_tasks(
            self.state.clone(),
            tasks,
            r,
        )))
    }

    async fn create_secret(
        &self,
        req: Request<pb::CreateDataObjectRequest>,
    ) -> Result<Response<pb::ObjectResponse>, Status> {
        let r = req.into_inner();
        check_data("secret", &r.name, &r.data)?;
        let secret = Secret {
            id: new_id(),
            name: r.name,
            labels: r.labels.into_iter().collect(),
            sealed: self.state.swarm.secret_key.seal(&r.data),
            created_at: OffsetDateTime::now_utc(),
        };
        let version = self
            .create_named(
                "secret",
                &secret.name,
                Secret::TABLE,
                &secret.id,
                encode(&secret),
            )
            .await?;
        Ok(Response::new(pb::ObjectResponse {
            object: secret_view(&secret),
            version,
        }))
    }

    async fn remove_secret(
        &self,
        req: Request<pb::RemoveRequest>,
    ) -> Result<Response<pb::RemoveResponse>, Status> {
        let (s, v) = self
            .find::<Secret>("secret", &req.into_inner().id, |s| &s.name)
            .await?;
        self.remove_named("secret", Secret::TABLE, (&s.id, &s.name, v), |spec| {
            spec.task.container.secrets.iter().any(|r| r.id == s.id)
        })
        .await
    }

    async fn list_secrets(
        &self,
        req: Request<pb::ListObjectsRequest>,
    ) -> Result<Response<pb::ObjectsResponse>, Status> {
        let filters = req.into_inner().labels;
        self.list_labelled::<Secret>(&filters, |s| &s.labels, secret_view)
            .await
    }

    async fn create_config(
        &self,
        req: Request<pb::CreateDataObjectRequest>,
    ) -> Result<Response<pb::ObjectResponse>, Status> {
        let r = req.into_inner();
        check_data("config", &r.name, &r.data)?;
        let config = Config {
            id: new_id(),
            name: r.name,
            labels: r.labels.into_iter().collect(),
            data: r.data,
            created_at: OffsetDateTime::now_utc(),
        };
        let version = self
            .create_named(
                "config",
                &config.name,
                Config::TABLE,
                &config.id,
                encode(&config),
            )
            .await?;
        Ok(Response::new(pb::ObjectResponse {
            object: json(&config),
            version,
        }))
    }

    async fn remove_config(
        &self,
        req: Request<pb::RemoveRequest>,
    ) -> Result<Response<pb::RemoveResponse>, Status> {
        let (c, v) = self
            .find::<Config>("config", &req.into_inner().id, |c| &c.name)
            .await?;
        self.remove_named("config", Config::TABLE, (&c.id, &c.name, v), |spec| {
            spec.task.container.configs.iter().any(|r| r.id == c.id)
        })
        .await
    }

    async fn list_configs(
        &self,
        req: Request<pb::ListObjectsRequest>,
    ) -> Result<Response<pb::ObjectsResponse>, Status> {
        let filters = req.into_inner().labels;
        self.list_labelled::<Config>(&filters, |c| &c.labels, json)
            .await
    }

    async fn create_network(
        &self,
        req: Request<pb::CreateNetworkRequest>,
    ) -> Result<Response<pb::ObjectResponse>, Status> {
        let r = req.into_inner();
        validate::name("network", &r.name).map_err(invalid)?;
        let driver = if r.driver.is_empty() {
            "overlay".to_string()
        } else {
            r.driver
        };
        if !matches!(driver.as_str(), "overlay" | "bridge") {
            return Err(invalid(format!(
                "network driver {driver:?} is not supported: use overlay or bridge"
            )));
        }
        let network = Network {
            id: new_id(),
            name: r.name,
            driver,
            attachable: r.attachable,
            labels: r.labels.into_iter().collect(),
            created_at: OffsetDateTime::now_utc(),
        };
        let version = self
            .create_named(
                "network",
                &network.name,
                Network::TABLE,
                &network.id,
                encode(&network),
            )
            .await?;
        Ok(Response::new(pb::ObjectResponse {
            object: json(&network),
            version,
        }))
    }

    async fn remove_network(
        &self,
        req: Request<pb::RemoveRequest>,
    ) -> Result<Response<pb::RemoveResponse>, Status> {
        let (n, v) = self
            .find::<Network>("network", &req.into_inner().id, |n| &n.name)
            .await?;
        self.remove_named("network", Network::TABLE, (&n.id, &n.name, v), |spec| {
            spec.task.networks.contains(&n.id)
        })
        .await
    }

    async fn list_networks(
        &self,
        req: Request<pb::ListObjectsRequest>,
    ) -> Result<Response<pb::ObjectsResponse>, Status> {
        let filters = req.into_inner().labels;
        self.list_labelled::<Network>(&filters, |n| &n.labels, json)
            .await
    }

    async fn update_node(
        &self,
        req: Request<pb::UpdateNodeRequest>,
    ) -> Result<Response<pb::ObjectResponse>, Status> {
        let r = req.into_inner();
        if !r.role.is_empty() {
            let role: NodeRole = r.role.parse().map_err(invalid)?;
            if !self.state.is_leader() {
                let mut leader = self.state.leader_client(false)?;
                leader
                    .change_node_role(pb::ChangeNodeRoleRequest {
                        node: r.node.clone(),
                        role: r.role.clone(),
                    })
                    .await?;
            } else {
                crate::membership::change_role(&self.state, &r.node, role).await?;
            }
        }
        let nodes = self.all::<Node>().await?;
        let list: Vec<Node> = nodes.iter().map(|(n, _)| n.clone()).collect();
        let mut node = Node::resolve(&list, &r.node)
            .map_err(Status::not_found)?
            .clone();
        let version = nodes
            .iter()
            .find(|(n, _)| n.id == node.id)
            .map_or(0, |(_, v)| *v);
        if !r.availability.is_empty() {
            node.availability = r.availability.parse::<Availability>().map_err(invalid)?;
        }
        for (k, v) in r.add_labels {
            if k.is_empty() {
                return Err(invalid("node label keys must not be empty"));
            }
            node.labels.insert(k, v);
        }
        for k in r.remove_labels {
            node.labels.remove(&k);
        }
        node.updated_at = OffsetDateTime::now_utc();
        let out = self
            .state
            .write(
                vec![Op {
                    table: Node::TABLE.into(),
                    id: node.id(),
                    action: Action::Put(encode(&node)),
                    expect: Expect::Version(version),
                }],
                false,
            )
            .await?;
        self.state.swarm.wake.notify_one();
        Ok(Response::new(pb::ObjectResponse {
            object: json(&node),
            version: out.log_index,
        }))
    }

    async fn list_stacks(
        &self,
        _req: Request<pb::ListObjectsRequest>,
    ) -> Result<Response<pb::StacksResponse>, Status> {
        let mut stacks: BTreeMap<String, u32> = BTreeMap::new();
        for (s, _) in self.all::<Service>().await? {
            if let Some(ns) = s.spec.labels.get(STACK_NAMESPACE_LABEL) {
                *stacks.entry(ns.clone()).or_default() += 1;
            }
        }
        Ok(Response::new(pb::StacksResponse {
            stacks: stacks
                .into_iter()
                .map(|(name, services)| pb::StackSummary { name, services })
                .collect(),
        }))
    }

    async fn remove_stack(
        &self,
        req: Request<pb::RemoveRequest>,
    ) -> Result<Response<pb::RemoveResponse>, Status> {
        let stack = req.into_inner().id;
        let (mut ops, mut removed) = (Vec::new(), Vec::new());
        let (o, r) = (&mut ops, &mut removed);
        self.stack_deletions::<Service>(
            "service",
            &stack,
            |s| &s.spec.labels,
            |s| &s.spec.name,
            o,
            r,
        )
        .await?;
        self.stack_deletions::<Secret>("secret", &stack, |x| &x.labels, |x| &x.name, o, r)
            .await?;
        self.stack_deletions::<Config>("config", &stack, |x| &x.labels, |x| &x.name, o, r)
            .await?;
        self.stack_deletions::<Network>("network", &stack, |x| &x.labels, |x| &x.name, o, r)
            .await?;
        if ops.is_empty() {
            return Err(Status::not_found(format!("stack {stack} not found")));
        }
        self.state.write(ops, false).await?;
        self.state.swarm.wake.notify_one();
        Ok(Response::new(pb::RemoveResponse { removed }))
    }

    type EventsStream = EventStream;

    async fn events(
        &self,
        req: Request<pb::EventsRequest>,
    ) -> Result<Response<EventStream>, Status> {
        const KINDS: [(&str, &str); 6] = [
            ("nodes", "node"),
            ("services", "service"),
            ("tasks", "task"),
            ("secrets", "secret"),
            ("configs", "config"),
            ("networks", "network"),
        ];
        let wanted = req.into_inner().types;
        let stream = BroadcastStream::new(self.state.sm.subscribe()).filter_map(move |c| match c {
            Ok(c) => {
                let (_, kind) = KINDS.iter().find(|(t, _)| *t == c.object.table)?;
                if !wanted.is_empty() && !wanted.iter().any(|w| w == kind) {
                    return None;
                }
                let action = if c.deleted {
                    "remove"
                } else if c.object.created_index == c.log_index {
                    "create"
                } else {
                    "update"
                };
                let object = if *kind == "secret" {
                    decode::<Secret>(&c.object.value)
                        .map(|s| secret_view(&s))
                        .unwrap_or_default()
                } else {
                    c.object.value
                };
                Some(Ok(pb::Event {
                    r#type: kind.to_string(),
                    action: action.into(),
                    id: c.object.id,
                    log_index: c.log_index,
                    object,
                }))
            }
            Err(BroadcastStreamRecvError::Lagged(n)) => Some(Err(Status::data_loss(format!(
                "event stream fell {n} changes behind; start a new one"
            )))),
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
