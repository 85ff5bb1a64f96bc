//! What the control plane tells an image registry: the registries it knows,
//! who may log in, and the accounts that decide repository permissions.
//!
//! The registry keeps its own repositories, tags and blobs; users, orgs,
//! teams and the license stay the control plane's (MSR's model). These are
//! the records and the wire shapes of that conversation.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::table::Table;

/// A registry installed on a node, stored in table `registries` under the
/// node id. A worker's certificate reads the directory only while its node
/// has such a record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryRecord {
    /// The node the registry runs on.
    pub node_id: String,
    /// Where clients reach it (`https://host:port`).
    pub url: String,
    /// Who installed it.
    pub registered_by: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub registered_at: OffsetDateTime,
}

impl Table for RegistryRecord {
    const TABLE: &'static str = "registries";
    fn id(&self) -> String {
        self.node_id.clone()
    }
}

/// A user as the registry sees one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryUser {
    /// Account id.
    pub id: String,
    /// Admins may do everything in every repository.
    pub admin: bool,
    /// Inactive users get no access.
    pub active: bool,
}

/// An organisation as the registry sees one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryOrg {
    /// Usernames of its owners (they administer every repository of the org).
    pub owners: BTreeSet<String>,
    /// Usernames of every member, owners included.
    pub members: BTreeSet<String>,
    /// Team name to the usernames in it.
    pub teams: BTreeMap<String, BTreeSet<String>>,
}

/// The accounts and license a registry decides with
/// (`GET /api/registry/directory`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryView {
    /// Whether a license is in force (pushes need one).
    pub licensed: bool,
    /// `unlicensed`, `valid`, `expired` or `over-node-limit`.
    pub license_status: String,
    /// Users by username.
    pub users: BTreeMap<String, DirectoryUser>,
    /// Organisations by name.
    pub orgs: BTreeMap<String, DirectoryOrg>,
}

impl DirectoryView {
    /// Whether `user` is an active account.
    pub fn active_user(&self, user: &str) -> Option<&DirectoryUser> {
        self.users.get(user).filter(|u| u.active)
    }

    /// Whether a namespace (user or org) exists.
    pub fn namespace_kind(&self, name: &str) -> Option<NamespaceKind> {
        if self.users.contains_key(name) {
            Some(NamespaceKind::User)
        } else if self.orgs.contains_key(name) {
            Some(NamespaceKind::Organization)
        } else {
            None
        }
    }

    /// Whether `user` administers namespace `ns`: an admin, the user whose
    /// namespace it is, or an owner of the org.
    pub fn administers(&self, user: &str, ns: &str) -> bool {
        let Some(u) = self.active_user(user) else {
            return false;
        };
        u.admin || user == ns || self.orgs.get(ns).is_some_and(|o| o.owners.contains(user))
    }

    /// Whether `user` is in team `org/team`.
    pub fn in_team(&self, user: &str, org: &str, team: &str) -> bool {
        self.orgs
            .get(org)
            .and_then(|o| o.teams.get(team))
            .is_some_and(|m| m.contains(user))
    }
}

/// What kind of account a namespace is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NamespaceKind {
    /// A user's own namespace.
    User,
    /// An organisation's.
    Organization,
}

/// Credentials a registry checks with the control plane
/// (`POST /api/registry/authenticate`): a password or a session token.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthenticateRequest {
    /// Username.
    pub username: String,
    /// Password, or a session token from `POST /auth/login`.
    pub password: String,
    /// The client's address, for the control plane's login rate limit.
    #[serde(default)]
    pub source: Option<String>,
}

/// Who the credentials belong to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthenticatedUser {
    /// Username.
    pub username: String,
    /// Account id.
    pub id: String,
    /// Whether the user is an admin.
    pub admin: bool,
}

/// What a registry asks to be registered as (`POST /api/registry/register`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The node the registry runs on.
    pub node_id: String,
    /// Where clients reach it (`https://host:port`).
    pub url: String,
}

/// The session id of a registry pull ticket: a session token the managers
/// sign for a service's owner so that agents pull its image from a Capstan
/// registry with the owner's rights. It has no session record, so it opens
/// no other door: the control plane accepts it only as a registry password.
pub const PULL_TICKET_SESSION: &str = "registry-pull";

/// How long a pull ticket lasts, in seconds.
pub const PULL_TICKET_SECONDS: i64 = 15 * 60;

/// The registry host (`host[:port]`) an image reference names, if any
/// (`docker.io` images name none).
pub fn image_registry_host(image: &str) -> Option<&str> {
    let (first, _) = image.split_once('/')?;
    (first.contains('.') || first.contains(':') || first == "localhost").then_some(first)
}

/// The `host[:port]` of a registry URL (`https://host:port`).
pub fn url_host(url: &str) -> &str {
    let host = url.trim_start_matches("https://").trim_end_matches('/');
    host.strip_suffix(":443").unwrap_or(host)
}

/// Where a running registry serves (`POST /api/registry/announce`), with a
/// CSR for the certificate it serves under that name.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnounceRequest {
    /// `https://host:port`.
    pub url: String,
    /// A PEM CSR; the answer carries a certificate from the cluster CA
    /// for the URL's host.
    #[serde(default)]
    pub csr: Option<String>,
}

/// The answer to an announcement.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AnnounceAnswer {
    /// The registry's record.
    pub registry: RegistryRecord,
    /// The server certificate (PEM) when a CSR was sent.
    #[serde(default)]
    pub certificate: Option<String>,
}

/// Repository access levels (MSR's), in increasing order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AccessLevel {
    /// Browse and pull.
    #[serde(rename = "read-only")]
    ReadOnly,
    /// And push, delete tags.
    #[serde(rename = "read-write")]
    ReadWrite,
    /// And edit the repository, its visibility and its access, delete it.
    #[serde(rename = "admin")]
    Admin,
}

impl AccessLevel {
    /// The level's name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessLevel::ReadOnly => "read-only",
            AccessLevel::ReadWrite => "read-write",
            AccessLevel::Admin => "admin",
        }
    }

    /// Parses a level's API name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "read-only" => Some(AccessLevel::ReadOnly),
            "read-write" => Some(AccessLevel::ReadWrite),
            "admin" => Some(AccessLevel::Admin),
            _ => None,
        }
    }
}

/// What a user (or anonymous, `None`) may do in a repository of namespace
/// `ns`: the highest of administering the namespace, the repository's team
/// grants (`(team, level)` of the org `ns`) and read access to a public
/// repository. `public` is `None` when the repository does not exist yet:
/// then only a namespace administrator may (create it by pushing).
pub fn repository_access(
    dir: &DirectoryView,
    user: Option<&str>,
    ns: &str,
    public: Option<bool>,
    teams: &BTreeMap<String, AccessLevel>,
) -> Option<AccessLevel> {
    let user = user.filter(|u| dir.active_user(u).is_some());
    let Some(public) = public else {
        return user
            .filter(|u| dir.administers(u, ns))
            .map(|_| AccessLevel::Admin);
    };
    let mut best = public.then_some(AccessLevel::ReadOnly);
    if let Some(u) = user {
        if dir.administers(u, ns) {
            return Some(AccessLevel::Admin);
        }
        for (team, level) in teams {
            if dir.in_team(u, ns, team) {
                best = best.max(Some(*level));
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> DirectoryView {
        let mut d = DirectoryView::default();
        for (name, admin, active) in [
            ("admin", true, true),
            ("ana", false, true),
            ("bob", false, true),
            ("eve", false, true),
            ("old", false, false),
        ] {
            d.users.insert(
                name.into(),
                DirectoryUser {
                    id: format!("id-{name}"),
                    admin,
                    active,
                },
            );
        }
        let mut org = DirectoryOrg::default();
        org.owners.insert("ana".into());
        org.members
            .extend(["ana".to_string(), "bob".into(), "old".into()]);
        org.teams
            .insert("readers".into(), ["bob".to_string(), "old".into()].into());
        d.orgs.insert("dca".into(), org);
        d
    }

    #[test]
    fn access_follows_msr_rules() {
        let d = dir();
        let teams: BTreeMap<_, _> = [("readers".to_string(), AccessLevel::ReadOnly)].into();
        let private = Some(false);
        let public = Some(true);
        // Admins, org owners and the namespace's user administer.
        assert_eq!(
            repository_access(&d, Some("admin"), "dca", private, &teams),
            Some(AccessLevel::Admin)
        );
        assert_eq!(
            repository_access(&d, Some("ana"), "dca", private, &teams),
            Some(AccessLevel::Admin)
        );
        assert_eq!(
            repository_access(&d, Some("eve"), "eve", private, &teams),
            Some(AccessLevel::Admin)
        );
        // A team grant gives its level; outsiders see nothing private.
        assert_eq!(
            repository_access(&d, Some("bob"), "dca", private, &teams),
            Some(AccessLevel::ReadOnly)
        );
        assert_eq!(
            repository_access(&d, Some("eve"), "dca", private, &teams),
            None
        );
        assert_eq!(repository_access(&d, None, "dca", private, &teams), None);
        // Public repositories are readable by anyone, anonymous included.
        assert_eq!(
            repository_access(&d, None, "dca", public, &teams),
            Some(AccessLevel::ReadOnly)
        );
        assert_eq!(
            repository_access(&d, Some("eve"), "dca", public, &teams),
            Some(AccessLevel::ReadOnly)
        );
        // Inactive users are anonymous.
        assert_eq!(
            repository_access(&d, Some("old"), "dca", private, &teams),
            None
        );
        // Grants add up: the highest level wins.
        let more: BTreeMap<_, _> = [("readers".to_string(), AccessLevel::ReadWrite)].into();
        assert_eq!(
            repository_access(&d, Some("bob"), "dca", public, &more),
            Some(AccessLevel::ReadWrite)
        );
        // Only a namespace administrator may create a repository by pushing.
        assert_eq!(
            repository_access(&d, Some("ana"), "dca", None, &teams),
            Some(AccessLevel::Admin)
        );
        assert_eq!(
            repository_access(&d, Some("bob"), "dca", None, &teams),
            None
        );
        assert_eq!(repository_access(&d, None, "dca", None, &teams), None);
    }

    #[test]
    fn image_hosts() {
        assert_eq!(
            image_registry_host("127.0.0.1:5443/dev/app:v1"),
            Some("127.0.0.1:5443")
        );
        assert_eq!(
            image_registry_host("registry.example/dca/nginx"),
            Some("registry.example")
        );
        assert_eq!(image_registry_host("localhost/a/b"), Some("localhost"));
        assert_eq!(image_registry_host("library/nginx"), None);
        assert_eq!(image_registry_host("nginx"), None);
        assert_eq!(url_host("https://registry.example:443"), "registry.example");
        assert_eq!(url_host("https://127.0.0.1:5443/"), "127.0.0.1:5443");
    }

    #[test]
    fn levels_parse_and_order() {
        for l in [
            AccessLevel::ReadOnly,
            AccessLevel::ReadWrite,
            AccessLevel::Admin,
        ] {
            assert_eq!(AccessLevel::parse(l.as_str()), Some(l));
        }
        assert!(AccessLevel::ReadOnly < AccessLevel::Admin);
        assert_eq!(AccessLevel::parse("owner"), None);
    }
}
