//! Who is calling, and whether they may: the caller extractor and the one
//! authorisation call every handler makes.

use std::sync::{Arc, Mutex};

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use capstan_core::bundle::{BundleRefusal, Presented};
use capstan_core::rbac::{Operation, Principal, Resource};
use capstan_pki::{PeerIdentity, PeerKind};
use time::OffsetDateTime;

use crate::directory::Snapshot;
use crate::error::ApiError;
use crate::server::ConnInfo;
use crate::{AppState, Gateway};

/// What the audit log will say about a request, filled in as the request
/// is handled (see [`crate::observe`]).
#[derive(Default, Debug, Clone)]
pub struct AuditNote {
    /// Who (a username, or the name a failed login tried).
    pub actor: Option<String>,
    /// The operation decided.
    pub operation: Option<String>,
    /// The object acted on.
    pub object: Option<String>,
    /// Whether the last decision denied.
    pub denied: bool,
    /// Audit the request whatever its method: a `GET` that issues a
    /// credential (a client bundle) is as worth recording as a `POST`.
    pub always: bool,
}

/// Shared slot for the [`AuditNote`] of one request.
#[derive(Default, Debug, Clone)]
pub struct AuditSlot(pub Arc<Mutex<AuditNote>>);

impl AuditSlot {
    /// Edits the note.
    pub fn update(&self, f: impl FnOnce(&mut AuditNote)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// A copy of the note.
    pub fn get(&self) -> AuditNote {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// How the caller proved who they are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A session token; the session's store id (`username/session`).
    Session(String),
    /// A client bundle certificate.
    Certificate,
}

/// An authenticated caller, with the snapshot their request is decided on.
pub struct Caller {
    /// Their username.
    pub username: String,
    /// Their principal for RBAC decisions.
    pub principal: Principal,
    /// How they authenticated.
    pub credential: Credential,
    /// Accounts and RBAC at the time of the request.
    pub snap: Arc<Snapshot>,
    audit: AuditSlot,
}

const AUTH_REQUIRED: &str = "authentication required: send `Authorization: Bearer <token>` with a token from POST /auth/login, or use a client bundle certificate";

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, gw: &AppState) -> Result<Self, ApiError> {
        let audit = parts
            .extensions
            .get::<AuditSlot>()
            .cloned()
            .unwrap_or_default();
        let snap = gw.directory.get();
        let (username, credential) = if let Some(value) = parts.headers.get(AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
                .map(str::trim)
                .ok_or_else(|| {
                    ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
                })?;
            let (username, key) = live_session(gw, &snap, token)?;
            (username, Credential::Session(key))
        } else if let Some(id) = parts
            .extensions
            .get::<ConnInfo>()
            .and_then(|c| c.client.as_ref())
            .filter(|id| id.kind == PeerKind::Client && id.cluster_id == gw.cluster_id())
        {
            bundle_holder(&snap, id)?;
            (id.subject_cn.clone(), Credential::Certificate)
        } else {
            return Err(ApiError::unauthorized(AUTH_REQUIRED));
        };
        audit.update(|n| n.actor = Some(username.clone()));
        let principal = snap
            .principal(&username)
            .filter(|p| p.active)
            .cloned()
            .ok_or_else(|| {
                ApiError::unauthorized("this account does not exist or is deactivated")
            })?;
        Ok(Caller {
            username,
            principal,
            credential,
            snap,
            audit,
        })
    }
}

/// Checks that a client certificate (already verified against the cluster
/// CA by the TLS layer) is a live client bundle of the user it names: a
/// revoked bundle, one of a deleted user, or a certificate issued outside
/// the bundle API does not authenticate.
fn bundle_holder(snap: &Snapshot, id: &PeerIdentity) -> Result<(), ApiError> {
    let bundle = snap.client_bundles.get(&id.serial).ok_or_else(|| {
        ApiError::unauthorized(
            BundleRefusal::Unknown {
                serial: id.serial.clone(),
            }
            .to_string(),
        )
    })?;
    let presented = Presented {
        username: &id.subject_cn,
        user_id: id.user_id.as_deref(),
        current_user_id: snap.users.get(&id.subject_cn).map(|u| u.id.as_str()),
    };
    bundle
        .check(presented, OffsetDateTime::now_utc())
        .map_err(|refusal| ApiError::unauthorized(refusal.to_string()))
}

/// The username and session key (`username/session`) of a session token:
/// signed by this cluster, unexpired, and its session record not ended.
/// The one check of session tokens, for API calls and dashboard pages.
pub fn live_session(
    gw: &Gateway,
    snap: &Snapshot,
    token: &str,
) -> Result<(String, String), ApiError> {
    let claims = gw.tokens.verify(token, gw.cluster_id()).ok_or_else(|| {
        ApiError::unauthorized("the session token is invalid or has expired; log in again")
    })?;
    let key = format!("{}/{}", claims.sub, claims.sid);
    let live = snap
        .sessions
        .get(&key)
        .is_some_and(|s| s.expires_at > OffsetDateTime::now_utc());
    if !live {
        return Err(ApiError::unauthorized(
            "the session has ended (logged out, password changed or revoked); log in again",
        ));
    }
    Ok((claims.sub, key))
}

impl Caller {
    /// Asks the RBAC decision whether the caller may do `op` on `on`;
    /// `object` names the object for the audit log and the error. A denial
    /// answers 403 in the Docker/MKE style and is audited.
    pub fn authorize(&self, op: Operation, on: Resource<'_>, object: &str) -> Result<(), ApiError> {
        let allowed = self.snap.authorizer.allowed(&self.principal, op, on);
        self.audit.update(|n| {
            n.operation = Some(op.name().to_string());
            n.object = Some(object.to_string());
            n.denied = !allowed;
        });
        if allowed {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "access denied: {} may not {} on {object}",
                self.username,
                op.name()
            )))
        }
    }

    /// Whether the caller may do `op` on `on`, without auditing: for
    /// filtering lists to what the caller may see.
    pub fn may(&self, op: Operation, on: Resource<'_>) -> bool {
        self.snap.authorizer.allowed(&self.principal, op, on)
    }

    /// Has the request audited even if its method changes nothing.
    pub fn audit_always(&self) {
        self.audit.update(|n| n.always = true);
    }

    /// Records a refusal decided outside RBAC (an unsigned image): the
    /// request is audited as denied, under `operation`, on `object`.
    pub fn note_refusal(&self, operation: &str, object: &str) {
        self.audit.update(|n| {
            n.operation = Some(operation.to_string());
            n.object = Some(object.to_string());
            n.denied = true;
        });
    }

    /// Records the object acted on after the fact (e.g. a generated id).
    pub fn note_object(&self, object: &str) {
        self.audit.update(|n| n.object = Some(object.to_string()));
    }
}

/// Parses a static operation name from the catalogue.
///
/// # Panics
/// When `name` is not in the catalogue: a programming error caught by the
/// route tests.
pub fn op(name: &str) -> Operation {
    Operation::parse(name)
        .unwrap_or_else(|e| panic!("operation {name} is not in the catalogue: {e}"))
}
