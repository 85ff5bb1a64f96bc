//! What the gateway makes sure exists: the default organisation, every
//! user's private collection and membership of the default organisation,
//! and the claim of every account name. Idempotent; any manager may run it
//! at start, and a record someone else made first is left alone.

use std::time::Duration;

use capstan_core::accounts::{Org, OrgMember, DEFAULT_ORG};
use capstan_core::rbac::{default_grants, private_collection, Collection};
use capstan_core::{encode, Table};
use capstan_manager::ManagerError;
use capstan_store::{Action, Expect, Op};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::api::AccountName;
use crate::AppState;

/// Runs the seed until it succeeded once or the gateway stops.
pub async fn seed(gw: AppState, cancel: CancellationToken) {
    loop {
        match seed_once(&gw).await {
            Ok(()) => return,
            Err(e) => tracing::info!(error = %e, "cannot seed accounts yet; retrying"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

fn create<T: Table>(v: &T) -> Op {
    Op {
        table: T::TABLE.into(),
        id: v.id(),
        action: Action::Put(encode(v)),
        expect: Expect::Absent,
    }
}

async fn seed_once(gw: &AppState) -> Result<(), ManagerError> {
    let snap = gw.directory.get();
    // An installed cluster always has its first admin; none yet means the
    // install's objects have not landed (a first start races them): retry,
    // or the admin would never get a private collection.
    if snap.users.is_empty() {
        return Err(ManagerError::Unavailable(
            "no account exists yet: the install has not finished".into(),
        ));
    }
    let now = OffsetDateTime::now_utc();
    let mut batches: Vec<Vec<Op>> = Vec::new();
    if !snap.orgs.contains_key(DEFAULT_ORG) {
        let org = Org {
            id: uuid::Uuid::new_v4().to_string(),
            name: DEFAULT_ORG.into(),
            full_name: "Default organization".into(),
            created_at: now,
        };
        batches.push(vec![create(&AccountName::new(DEFAULT_ORG)), create(&org)]);
    }
    for user in snap.users.values() {
        let private = private_collection(&user.username, now);
        if snap.tree.by_id(&private.id).is_none() {
            let mut ops = vec![create::<Collection>(&private)];
            ops.extend(default_grants(&user.id, &user.username).iter().map(create));
            batches.push(ops);
        }
        if !snap
            .org_members
            .contains_key(&format!("{DEFAULT_ORG}/{}", user.username))
        {
            batches.push(vec![create(&OrgMember {
                org: DEFAULT_ORG.into(),
                user: user.username.clone(),
                owner: false,
            })]);
        }
        if gw
            .manager
            .sm
            .get(AccountName::TABLE, &user.username)?
            .is_none()
        {
            batches.push(vec![create(&AccountName::new(&user.username))]);
        }
    }
    for ops in batches {
        match gw.manager.write(ops, false).await {
            Ok(_) | Err(ManagerError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
