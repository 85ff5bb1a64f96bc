//! An in-memory snapshot of who exists and who may do what: accounts,
//! memberships, sessions, client bundles, roles, collections, grants, the
//! cluster configuration and the license, with the RBAC [`Authorizer`] built
//! over them. Requests read it without touching the store; a background task
//! rebuilds it whenever the replicated state of one of those tables changes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use capstan_core::accounts::{Org, OrgMember, Session, Team, TeamMember};
use capstan_core::bundle::ClientBundle;
use capstan_core::cluster_config::ClusterConfig;
use capstan_core::license::SignedLicense;
use capstan_core::rbac::{
    builtin_collections, builtin_roles, Authorizer, Collection, CollectionTree, Grant, Principal,
    Role,
};
use capstan_core::{decode, Table, User};
use capstan_manager::state::SharedState;
use capstan_store::StateMachineStore;
use time::OffsetDateTime;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

/// The tables a snapshot is built from.
pub const TABLES: &[&str] = &[
    User::TABLE,
    Org::TABLE,
    Team::TABLE,
    OrgMember::TABLE,
    TeamMember::TABLE,
    Session::TABLE,
    ClientBundle::TABLE,
    Role::TABLE,
    Collection::TABLE,
    Grant::TABLE,
    ClusterConfig::TABLE,
    SignedLicense::TABLE,
];

/// Everything the gateway decides from, at one log index.
pub struct Snapshot {
    /// Users by username.
    pub users: BTreeMap<String, User>,
    /// Usernames by user id.
    pub user_ids: HashMap<String, String>,
    /// Organisations by name.
    pub orgs: BTreeMap<String, Org>,
    /// Teams by `org/team`.
    pub teams: BTreeMap<String, Team>,
    /// Org memberships by `org/user`.
    pub org_members: BTreeMap<String, OrgMember>,
    /// Team memberships by `org/team/user`.
    pub team_members: BTreeMap<String, TeamMember>,
    /// Live sessions by `username/session id`.
    pub sessions: HashMap<String, Session>,
    /// Client bundles (revoked ones too) by certificate serial (hex).
    pub client_bundles: HashMap<String, ClientBundle>,
    /// Roles (built-in and custom) by id.
    pub roles: BTreeMap<String, Role>,
    /// Collections (built-in and user-made).
    pub tree: CollectionTree,
    /// Every grant.
    pub grants: Vec<Grant>,
    /// The cluster configuration (defaults until one is stored).
    pub config: ClusterConfig,
    /// The installed license, if any.
    pub license: Option<SignedLicense>,
    /// The RBAC decision over all of the above.
    pub authorizer: Authorizer,
    /// Principals by username, ready for decisions.
    principals: HashMap<String, Principal>,
}

impl Snapshot {
    /// Reads the tables from the local state machine.
    pub fn load(sm: &StateMachineStore) -> Result<Self, capstan_store::StoreError> {
        fn all<T: Table>(sm: &StateMachineStore) -> Result<Vec<T>, capstan_store::StoreError> {
            Ok(sm
                .list(T::TABLE, "", 0)?
                .into_iter()
                .filter_map(|o| match decode::<T>(&o.value) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        tracing::warn!(table = T::TABLE, id = %o.id, error = %e, "skipping unreadable record");
                        None
                    }
                })
                .collect())
        }
        // Built-in collections are not stored; give them one stable time.
        static STARTED: std::sync::OnceLock<OffsetDateTime> = std::sync::OnceLock::new();
        let started = *STARTED.get_or_init(OffsetDateTime::now_utc);
        let mut collections = builtin_collections(started);
        collections.extend(all::<Collection>(sm)?);
        let mut roles = builtin_roles();
        roles.extend(all::<Role>(sm)?);
        Ok(Self::build(
            all::<User>(sm)?,
            all::<Org>(sm)?,
            all::<Team>(sm)?,
            all::<OrgMember>(sm)?,
            all::<TeamMember>(sm)?,
            all::<Session>(sm)?,
            all::<ClientBundle>(sm)?,
            roles,
            collections,
            all::<Grant>(sm)?,
            all::<ClusterConfig>(sm)?
                .into_iter()
                .next()
                .unwrap_or_default(),
            all::<SignedLicense>(sm)?.into_iter().next(),
        ))
    }

    /// Builds a snapshot from records.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        users: Vec<User>,
        orgs: Vec<Org>,
        teams: Vec<Team>,
        org_members: Vec<OrgMember>,
        team_members: Vec<TeamMember>,
        sessions: Vec<Session>,
        client_bundles: Vec<ClientBundle>,
        roles: Vec<Role>,
        collections: Vec<Collection>,
        grants: Vec<Grant>,
        config: ClusterConfig,
        license: Option<SignedLicense>,
    ) -> Self {
        let authorizer = Authorizer::new(&collections, &roles, &grants);
        let users: BTreeMap<String, User> =
            users.into_iter().map(|u| (u.username.clone(), u)).collect();
        let orgs: BTreeMap<String, Org> = orgs.into_iter().map(|o| (o.name.clone(), o)).collect();
        let teams: BTreeMap<String, Team> = teams.into_iter().map(|t| (t.id(), t)).collect();
        let org_members: BTreeMap<String, OrgMember> =
            org_members.into_iter().map(|m| (m.id(), m)).collect();
        let team_members: BTreeMap<String, TeamMember> =
            team_members.into_iter().map(|m| (m.id(), m)).collect();

        let mut memberships: HashMap<&str, Vec<String>> = HashMap::new();
        let mut owner_of: HashMap<&str, Vec<String>> = HashMap::new();
        for m in org_members.values() {
            if let Some(org) = orgs.get(&m.org) {
                memberships.entry(&m.user).or_default().push(org.id.clone());
                if m.owner {
                    owner_of.entry(&m.user).or_default().push(org.id.clone());
                }
            }
        }
        for m in team_members.values() {
            if let Some(team) = teams.get(&format!("{}/{}", m.org, m.team)) {
                let list = memberships.entry(&m.user).or_default();
                list.push(team.id.clone());
                if let Some(org) = orgs.get(&m.org) {
                    list.push(org.id.clone());
                }
            }
        }
        let principals = users
            .values()
            .map(|u| {
                let mut ms = memberships.remove(u.username.as_str()).unwrap_or_default();
                ms.sort();
                ms.dedup();
                let mut owns = owner_of.remove(u.username.as_str()).unwrap_or_default();
                owns.sort();
                (
                    u.username.clone(),
                    Principal {
                        user_id: u.id.clone(),
                        username: u.username.clone(),
                        admin: u.admin,
                        active: u.active,
                        memberships: ms,
                        owner_of: owns,
                    },
                )
            })
            .collect();
        Self {
            user_ids: users
                .values()
                .map(|u| (u.id.clone(), u.username.clone()))
                .collect(),
            users,
            orgs,
            teams,
            org_members,
            team_members,
            sessions: sessions.into_iter().map(|s| (s.id(), s)).collect(),
            client_bundles: client_bundles.into_iter().map(|b| (b.id(), b)).collect(),
            roles: roles.into_iter().map(|r| (r.id.clone(), r)).collect(),
            tree: CollectionTree::new(&collections),
            grants,
            config,
            license,
            authorizer,
            principals,
        }
    }

    /// The principal of a user, for decisions.
    pub fn principal(&self, username: &str) -> Option<&Principal> {
        self.principals.get(username)
    }

    /// The account (user or org) with this name or id.
    pub fn subject_name(&self, id: &str) -> Option<String> {
        if let Some(u) = self.user_ids.get(id) {
            return Some(u.clone());
        }
        if let Some(o) = self.orgs.values().find(|o| o.id == id) {
            return Some(o.name.clone());
        }
        self.teams
            .values()
            .find(|t| t.id == id)
            .map(|t| format!("{}/{}", t.org, t.name))
    }

    /// Number of active admins.
    pub fn active_admins(&self) -> usize {
        self.users.values().filter(|u| u.admin && u.active).count()
    }
}

/// The current snapshot and the index it reflects.
#[derive(Clone)]
pub struct Directory {
    current: Arc<RwLock<Arc<Snapshot>>>,
    seen: watch::Sender<u64>,
}

impl Directory {
    /// Loads the first snapshot.
    pub fn load(sm: &StateMachineStore) -> Result<Self, capstan_store::StoreError> {
        let index = sm.applied_index();
        let snap = Snapshot::load(sm)?;
        Ok(Self {
            current: Arc::new(RwLock::new(Arc::new(snap))),
            seen: watch::channel(index).0,
        })
    }

    /// The snapshot now.
    pub fn get(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn replace(&self, snap: Snapshot) {
        let mut guard = self.current.write().unwrap_or_else(|p| p.into_inner());
        *guard = Arc::new(snap);
    }

    /// Waits until the snapshot reflects the log entry at `index` (the
    /// entry of a write this gateway just made), so the writer's next
    /// request sees it (a new session, a new grant). Bounded, so a stalled
    /// rebuild cannot hold requests forever; a loaded machine can take
    /// seconds, hence the generous bound.
    pub async fn caught_up(&self, index: u64) {
        const BOUND: std::time::Duration = std::time::Duration::from_secs(30);
        let mut rx = self.seen.subscribe();
        let wait = rx.wait_for(|seen| *seen >= index);
        if tokio::time::timeout(BOUND, wait).await.is_err() {
            tracing::warn!(
                index,
                "the directory did not catch up with a write within {BOUND:?}"
            );
        }
    }

    /// Keeps the snapshot current until cancelled.
    pub async fn follow(
        self,
        state: SharedState,
        cancel: CancellationToken,
    ) -> Result<(), capstan_manager::ManagerError> {
        let mut changes = state.sm.subscribe();
        // Changes applied between the first load and the subscription.
        self.rebuild(&state.sm)?;
        loop {
            let first = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                c = changes.recv() => c,
            };
            let mut dirty = false;
            let mut last = 0;
            let mut lagged = false;
            let note = |c: &capstan_store::Change, dirty: &mut bool, last: &mut u64| {
                *last = (*last).max(c.log_index);
                if TABLES.contains(&c.object.table.as_str()) {
                    *dirty = true;
                }
            };
            match first {
                Ok(c) => note(&c, &mut dirty, &mut last),
                Err(broadcast::error::RecvError::Lagged(_)) => lagged = true,
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            }
            loop {
                match changes.try_recv() {
                    Ok(c) => note(&c, &mut dirty, &mut last),
                    Err(broadcast::error::TryRecvError::Lagged(_)) => lagged = true,
                    Err(_) => break,
                }
            }
            if lagged {
                self.rebuild(&state.sm)?;
            } else {
                if dirty {
                    self.replace(Snapshot::load(&state.sm)?);
                }
                self.seen.send_modify(|s| *s = (*s).max(last));
            }
        }
    }

    fn rebuild(&self, sm: &StateMachineStore) -> Result<(), capstan_store::StoreError> {
        let index = sm.applied_index();
        self.replace(Snapshot::load(sm)?);
        self.seen.send_modify(|s| *s = (*s).max(index));
        Ok(())
    }
}
