//! Registry pull tickets: when a task's image lives in a registry of this
//! cluster and its service came with no registry credentials, the agent
//! gets the service owner's username and a short-lived ticket — a token
//! signed with the cluster's session key whose session id is
//! [`PULL_TICKET_SESSION`] — as the registry password. The control plane
//! accepts a ticket only as a registry credential, and the registry then
//! grants exactly what the owner may pull.

use std::cell::RefCell;
use std::collections::HashMap;

use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine as _;
use capstan_core::accounts::SigningKey;
use capstan_core::registry::{
    image_registry_host, url_host, RegistryRecord, PULL_TICKET_SECONDS, PULL_TICKET_SESSION,
};
use capstan_core::{decode, Service, Table, Task};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use time::OffsetDateTime;

use crate::error::ManagerError;
use crate::state::SharedState;

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    sid: &'a str,
    iss: &'a str,
    iat: i64,
    exp: i64,
}

/// What the managers need to make tickets, read once per assignment pass.
pub struct Tickets {
    key: Option<EncodingKey>,
    hosts: Vec<String>,
    cluster_id: String,
    now: OffsetDateTime,
    /// Owners of the services seen in this pass, by service id.
    owners: RefCell<HashMap<String, Option<String>>>,
    /// Auth values made in this pass, by owner and registry host.
    auths: RefCell<HashMap<(String, String), String>>,
}

impl Tickets {
    /// Reads the signing key and the registries of the cluster.
    pub fn load(state: &SharedState) -> Result<Self, ManagerError> {
        let key = match state.sm.get(SigningKey::TABLE, "session")? {
            Some(o) => {
                let k: SigningKey = decode(&o.value)?;
                STANDARD
                    .decode(&k.key)
                    .ok()
                    .map(|b| EncodingKey::from_secret(&b))
            }
            None => None,
        };
        let hosts = state
            .sm
            .list(RegistryRecord::TABLE, "", 0)?
            .iter()
            .filter_map(|o| decode::<RegistryRecord>(&o.value).ok())
            .map(|r| url_host(&r.url).to_string())
            .collect();
        Ok(Self {
            key,
            hosts,
            cluster_id: state.ca.cluster_id().to_string(),
            now: OffsetDateTime::now_utc(),
            owners: RefCell::default(),
            auths: RefCell::default(),
        })
    }

    /// The `X-Registry-Auth` value for the task's pull, when its image
    /// lives in a registry of this cluster and its service has an owner.
    /// Services and tickets are looked up once per pass, and only for such
    /// images.
    pub fn auth_for(
        &self,
        state: &SharedState,
        task: &Task,
    ) -> Result<Option<String>, ManagerError> {
        let Some(host) = image_registry_host(&task.spec.container.image)
            .filter(|h| self.hosts.iter().any(|known| known == h))
        else {
            return Ok(None);
        };
        let cached = self.owners.borrow().get(&task.service_id).cloned();
        let owner = match cached {
            Some(owner) => owner,
            None => self.load_owner(state, &task.service_id)?,
        };
        let Some(owner) = owner else {
            return Ok(None);
        };
        let key = (owner, host.to_string());
        if let Some(auth) = self.auths.borrow().get(&key) {
            return Ok(Some(auth.clone()));
        }
        let Some(auth) = self.mint(&key.0, host) else {
            return Ok(None);
        };
        self.auths.borrow_mut().insert(key, auth.clone());
        Ok(Some(auth))
    }

    fn load_owner(
        &self,
        state: &SharedState,
        service: &str,
    ) -> Result<Option<String>, ManagerError> {
        let owner = match state.sm.get(Service::TABLE, service)? {
            Some(o) => decode::<Service>(&o.value)?.owner,
            None => None,
        };
        self.owners
            .borrow_mut()
            .insert(service.to_string(), owner.clone());
        Ok(owner)
    }

    fn mint(&self, owner: &str, host: &str) -> Option<String> {
        let claims = Claims {
            sub: owner,
            sid: PULL_TICKET_SESSION,
            iss: &self.cluster_id,
            iat: self.now.unix_timestamp(),
            exp: self.now.unix_timestamp() + PULL_TICKET_SECONDS,
        };
        let ticket =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, self.key.as_ref()?)
                .ok()?;
        let auth =
            serde_json::json!({ "username": owner, "password": ticket, "serveraddress": host });
        Some(URL_SAFE.encode(auth.to_string()))
    }
}
