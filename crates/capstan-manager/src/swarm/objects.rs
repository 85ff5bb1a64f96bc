//! What the Swarm API's handlers share: unique names, lookups by id, prefix
//! or name, references from service specs, and the views reads return.

use std::collections::BTreeMap;

use capstan_core::service::{FileReference, STACK_NAMESPACE_LABEL};
use capstan_core::{Config, Network, Secret, Service, ServiceSpec, Table};
use capstan_proto::v1 as pb;
use capstan_store::{Action, Expect, Op};
use serde::Serialize;
use time::OffsetDateTime;
use tonic::{Response, Status};

use crate::error::ManagerError;
use crate::state::Consistency;
use crate::swarm::api::SwarmApi;
use crate::swarm::validate;

/// Table of unique names: `<kind>/<name>` → object id.
pub(super) const NAMES: &str = "names";

pub(super) fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("domain objects serialize to JSON")
}

pub(super) fn invalid(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(e.to_string())
}

/// A secret as reads show it: never its data.
#[derive(Serialize)]
pub(super) struct SecretView<'a> {
    id: &'a str,
    name: &'a str,
    labels: &'a BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

pub(super) fn secret_view(s: &Secret) -> Vec<u8> {
    json(&SecretView {
        id: &s.id,
        name: &s.name,
        labels: &s.labels,
        created_at: s.created_at,
    })
}

pub(super) fn name_op(kind: &str, name: &str, id: &str) -> Op {
    Op {
        table: NAMES.into(),
        id: format!("{kind}/{name}"),
        action: Action::Put(id.as_bytes().to_vec()),
        expect: Expect::Absent,
    }
}

pub(super) fn unname_op(kind: &str, name: &str) -> Op {
    Op {
        table: NAMES.into(),
        id: format!("{kind}/{name}"),
        action: Action::Delete,
        expect: Expect::Any,
    }
}

pub(super) fn labels_match(labels: &BTreeMap<String, String>, filters: &[String]) -> bool {
    filters.iter().all(|f| match f.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(f),
    })
}

impl SwarmApi {
    pub(super) async fn all<T: Table>(&self) -> Result<Vec<(T, u64)>, ManagerError> {
        self.state.list_all::<T>(Consistency::Linearizable).await
    }

    /// Finds an object by id, unique id prefix or name.
    pub(super) async fn find<T: Table>(
        &self,
        kind: &str,
        wanted: &str,
        name_of: impl Fn(&T) -> &str,
    ) -> Result<(T, u64), ManagerError> {
        let all = self.all::<T>().await?;
        let mut hits: Vec<(T, u64)> = Vec::new();
        for (o, v) in all {
            if o.id() == wanted || name_of(&o) == wanted {
                return Ok((o, v));
            }
            if !wanted.is_empty() && o.id().starts_with(wanted) {
                hits.push((o, v));
            }
        }
        match hits.len() {
            1 => Ok(hits.remove(0)),
            0 => Err(ManagerError::NotFound(format!("{kind} {wanted} not found"))),
            n => Err(ManagerError::Invalid(format!(
                "{kind} {wanted:?} is ambiguous: it matches {n} {kind}s"
            ))),
        }
    }

    /// Fills in the ids of the secrets, configs and networks a spec names.
    pub(super) async fn resolve_references(
        &self,
        spec: &mut ServiceSpec,
    ) -> Result<(), ManagerError> {
        let secrets = self.all::<Secret>().await?;
        for r in &mut spec.task.container.secrets {
            let (s, _) = secrets
                .iter()
                .find(|(s, _)| {
                    s.id == r.id || s.name == r.name || (!r.id.is_empty() && s.name == r.id)
                })
                .ok_or_else(|| {
                    ManagerError::NotFound(format!(
                        "secret {} not found",
                        if r.name.is_empty() { &r.id } else { &r.name }
                    ))
                })?;
            fill(r, &s.id, &s.name);
            if !r.target.starts_with('/') {
                r.target = format!("/run/secrets/{}", r.target);
            }
        }
        let configs = self.all::<Config>().await?;
        for r in &mut spec.task.container.configs {
            let (c, _) = configs
                .iter()
                .find(|(c, _)| {
                    c.id == r.id || c.name == r.name || (!r.id.is_empty() && c.name == r.id)
                })
                .ok_or_else(|| {
                    ManagerError::NotFound(format!(
                        "config {} not found",
                        if r.name.is_empty() { &r.id } else { &r.name }
                    ))
                })?;
            fill(r, &c.id, &c.name);
            if !r.target.starts_with('/') {
                r.target = format!("/{}", r.target);
            }
        }
        let networks = self.all::<Network>().await?;
        for n in &mut spec.task.networks {
            let (net, _) = networks
                .iter()
                .find(|(x, _)| x.id == *n || x.name == *n)
                .ok_or_else(|| ManagerError::NotFound(format!("network {n} not found")))?;
            *n = net.id.clone();
        }
        Ok(())
    }

    pub(super) fn parse_spec(bytes: &[u8]) -> Result<ServiceSpec, Status> {
        let spec: ServiceSpec =
            serde_json::from_slice(bytes).map_err(|e| invalid(format!("service spec: {e}")))?;
        validate::service_spec(&spec).map_err(invalid)?;
        Ok(spec)
    }

    /// Stores a new named object with its unique-name entry, atomically.
    pub(super) async fn create_named(
        &self,
        kind: &str,
        name: &str,
        table: &str,
        id: &str,
        value: Vec<u8>,
    ) -> Result<u64, Status> {
        let ops = vec![
            name_op(kind, name, id),
            Op {
                table: table.into(),
                id: id.into(),
                action: Action::Put(value),
                expect: Expect::Absent,
            },
        ];
        let out = self.state.write(ops, false).await.map_err(|e| match e {
            ManagerError::Conflict(_) => {
                Status::already_exists(format!("{kind} {name} already exists"))
            }
            other => other.into(),
        })?;
        Ok(out.log_index)
    }

    /// Removes a named object unless a service uses it.
    pub(super) async fn remove_named(
        &self,
        kind: &str,
        table: &str,
        (id, name, version): (&str, &str, u64),
        used_by: impl Fn(&ServiceSpec) -> bool,
    ) -> Result<Response<pb::RemoveResponse>, Status> {
        let users = self.usage(used_by).await?;
        if !users.is_empty() {
            return Err(Status::failed_precondition(format!(
                "{kind} {name} is in use by service {}",
                users.join(", ")
            )));
        }
        let ops = vec![
            Op {
                table: table.into(),
                id: id.into(),
                action: Action::Delete,
                expect: Expect::Version(version),
            },
            unname_op(kind, name),
        ];
        self.state.write(ops, false).await?;
        Ok(Response::new(pb::RemoveResponse {
            removed: vec![id.to_string()],
        }))
    }

    /// Lists a table's objects whose labels match `filters`, rendered with
    /// `view` (what reads may show of them).
    pub(super) async fn list_labelled<T: Table>(
        &self,
        filters: &[String],
        labels: impl Fn(&T) -> &BTreeMap<String, String>,
        view: impl Fn(&T) -> Vec<u8>,
    ) -> Result<Response<pb::ObjectsResponse>, Status> {
        let (objects, versions) = self
            .all::<T>()
            .await?
            .into_iter()
            .filter(|(o, _)| labels_match(labels(o), filters))
            .map(|(o, v)| (view(&o), v))
            .unzip();
        Ok(Response::new(pb::ObjectsResponse { objects, versions }))
    }

    /// Adds the deletions of every `kind` object of one table that belongs to
    /// `stack` (and of its unique name) to `ops`.
    pub(super) async fn stack_deletions<T: Table>(
        &self,
        kind: &str,
        stack: &str,
        labels: impl Fn(&T) -> &BTreeMap<String, String>,
        name: impl Fn(&T) -> &str,
        ops: &mut Vec<Op>,
        removed: &mut Vec<String>,
    ) -> Result<(), ManagerError> {
        for (o, v) in self.all::<T>().await? {
            if labels(&o).get(STACK_NAMESPACE_LABEL).map(String::as_str) == Some(stack) {
                ops.push(Op {
                    table: T::TABLE.into(),
                    id: o.id(),
                    action: Action::Delete,
                    expect: Expect::Version(v),
                });
                ops.push(unname_op(kind, name(&o)));
                removed.push(o.id());
            }
        }
        Ok(())
    }

    pub(super) async fn usage(
        &self,
        check: impl Fn(&ServiceSpec) -> bool,
    ) -> Result<Vec<String>, ManagerError> {
        Ok(self
            .all::<Service>()
            .await?
            .into_iter()
            .filter(|(s, _)| check(&s.spec))
            .map(|(s, _)| s.spec.name)
            .collect())
    }
}

pub(super) fn check_data(kind: &str, name: &str, data: &[u8]) -> Result<(), Status> {
    validate::name(kind, name).map_err(invalid)?;
    if data.is_empty() || data.len() > validate::MAX_DATA_BYTES {
        return Err(invalid(format!(
            "{kind} data must be 1 byte to {} KiB",
            validate::MAX_DATA_BYTES / 1024
        )));
    }
    Ok(())
}

pub(super) fn fill(r: &mut FileReference, id: &str, name: &str) {
    r.id = id.to_string();
    r.name = name.to_string();
    if r.target.is_empty() {
        r.target = name.to_string();
    }
    if r.mode == 0 {
        r.mode = 0o444;
    }
}
