//! Organizations, teams, memberships and login sessions.
//!
//! Users live in [`crate::user`]. Orgs share the account namespace with
//! users (MKE's `/accounts/{name}` serves both), so an org name is checked
//! like a username and no org may take a user's name. Teams belong to one
//! org; a user joins an org (optionally as an owner) and then its teams.
//!
//! Every type here is a [`Table`] whose id is built from names, so that the
//! members of an org, the teams of an org or the sessions of a user list by
//! a store key prefix (`"{org}/"`, `"{username}/"`).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::table::Table;
use crate::user::validate_username;

/// MKE's default org: every user is a member of it.
pub const DEFAULT_ORG: &str = "docker-datacenter";

/// An account name that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not a valid org name (org names follow the username rules).
    #[error("org name {name:?} is not valid: {reason}")]
    Org {
        /// The offending name.
        name: String,
        /// Why it was refused.
        reason: String,
    },
    /// Not a valid team name.
    #[error("team name {name:?} is not valid: {reason}")]
    Team {
        /// The offending name.
        name: String,
        /// Why it was refused.
        reason: String,
    },
}

/// An organization, stored in table `orgs` under its name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Org {
    /// Opaque account id made by the caller (e.g. a UUID string).
    pub id: String,
    /// Account name, unique among users and orgs.
    pub name: String,
    /// Display name.
    #[serde(default)]
    pub full_name: String,
    /// When the org was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Table for Org {
    const TABLE: &'static str = "orgs";
    fn id(&self) -> String {
        self.name.clone()
    }
}

/// A team of an org, stored in table `teams` under `"{org}/{name}"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Team {
    /// Opaque team id made by the caller (e.g. a UUID string).
    pub id: String,
    /// Name of the org the team belongs to.
    pub org: String,
    /// Team name, unique within its org.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// When the team was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Table for Team {
    const TABLE: &'static str = "teams";
    fn id(&self) -> String {
        format!("{}/{}", self.org, self.name)
    }
}

/// A user's membership of an org, stored in table `org_members` under
/// `"{org}/{user}"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgMember {
    /// Org name.
    pub org: String,
    /// Username of the member.
    pub user: String,
    /// Org owners administer the org, its teams and its members (MKE's
    /// `isAdmin` on an org membership).
    pub owner: bool,
}

impl Table for OrgMember {
    const TABLE: &'static str = "org_members";
    fn id(&self) -> String {
        format!("{}/{}", self.org, self.user)
    }
}

/// A user's membership of a team, stored in table `team_members` under
/// `"{org}/{team}/{user}"`. The user must also be a member of the org.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamMember {
    /// Org name.
    pub org: String,
    /// Team name within the org.
    pub team: String,
    /// Username of the member.
    pub user: String,
}

impl Table for TeamMember {
    const TABLE: &'static str = "team_members";
    fn id(&self) -> String {
        format!("{}/{}/{}", self.org, self.team, self.user)
    }
}

/// A login session, stored in table `sessions` under `"{username}/{id}"` so
/// that a user's sessions list by the prefix `"{username}/"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Opaque session id made by the caller. It should not be the bearer
    /// token itself (store a digest of it), so that a copy of the store
    /// holds no usable tokens.
    pub id: String,
    /// Username of the session's owner.
    pub username: String,
    /// When the session was made (login).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the session stops being accepted.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Where the login came from, e.g. the client address.
    #[serde(default)]
    pub source: String,
}

impl Table for Session {
    const TABLE: &'static str = "sessions";
    fn id(&self) -> String {
        format!("{}/{}", self.username, self.id)
    }
}

impl Session {
    /// Whether the session is past its expiry at `now`.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at <= now
    }
}

/// Checks an org name: orgs share the account namespace with users, so the
/// username rules apply (1 to 100 letters, digits, `.`, `_`, `-`, `@`).
pub fn validate_org_name(name: &str) -> Result<(), NameError> {
    validate_username(name).map_err(|reason| NameError::Org {
        name: name.to_owned(),
        reason,
    })
}

/// Checks a team name: 1 to 100 characters of letters, digits, `-`, `_`,
/// `.` and spaces; never `/`, which separates the parts of store ids, and
/// not `.` or `..`, which a URL path cannot carry as a segment.
pub fn validate_team_name(name: &str) -> Result<(), NameError> {
    let refuse = |reason: String| NameError::Team {
        name: name.to_owned(),
        reason,
    };
    let n = name.chars().count();
    if n == 0 || n > 100 {
        return Err(refuse(format!("must be 1 to 100 characters, not {n}")));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ' ')))
    {
        return Err(refuse(format!(
            "contains {c:?}: use letters, digits, '-', '_', '.' or spaces"
        )));
    }
    if name.trim() != name {
        return Err(refuse("must not start or end with a space".into()));
    }
    if name == "." || name == ".." {
        return Err(refuse("'.' and '..' are not names".into()));
    }
    Ok(())
}

/// The sessions to delete before a user logs in again: every session
/// expired at `now`, plus the oldest of the live ones beyond `limit - 1`,
/// so that the new session makes at most `limit` (with `limit == 0` every
/// session goes).
///
/// `existing` is one user's sessions. The result holds their store ids
/// ([`Table::id`], i.e. `"{username}/{id}"`), expired ones first, then the
/// evicted live ones oldest first (ties broken by id, for determinism).
pub fn sessions_to_evict(existing: &[Session], limit: usize, now: OffsetDateTime) -> Vec<String> {
    let (expired, mut live): (Vec<&Session>, Vec<&Session>) =
        existing.iter().partition(|s| s.is_expired(now));
    let mut evict: Vec<String> = expired.iter().map(|s| Table::id(*s)).collect();
    let keep = limit.saturating_sub(1);
    if live.len() > keep {
        live.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        let excess = live.len() - keep;
        evict.extend(live.iter().take(excess).map(|s| Table::id(*s)));
    }
    evict
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{decode, encode};
    use time::macros::datetime;
    use time::Duration;

    const T0: OffsetDateTime = datetime!(2026-03-01 12:00:00 UTC);

    fn session(id: &str, created_min: i64, lifetime_min: i64) -> Session {
        let created_at = T0 + Duration::minutes(created_min);
        Session {
            id: id.into(),
            username: "analista".into(),
            created_at,
            expires_at: created_at + Duration::minutes(lifetime_min),
            source: "10.0.0.7".into(),
        }
    }

    #[test]
    fn store_ids() {
        let org = Org {
            id: "o-1".into(),
            name: "acme".into(),
            full_name: "Acme Inc.".into(),
            created_at: T0,
        };
        let team = Team {
            id: "t-1".into(),
            org: "acme".into(),
            name: "ops team".into(),
            description: String::new(),
            created_at: T0,
        };
        let om = OrgMember {
            org: "acme".into(),
            user: "analista".into(),
            owner: true,
        };
        let tm = TeamMember {
            org: "acme".into(),
            team: "ops team".into(),
            user: "analista".into(),
        };
        let s = session("abc", 0, 60);
        assert_eq!(org.id(), "acme");
        assert_eq!(team.id(), "acme/ops team");
        assert_eq!(om.id(), "acme/analista");
        assert_eq!(tm.id(), "acme/ops team/analista");
        assert_eq!(Table::id(&s), "analista/abc");
        assert_eq!(s.id, "abc");

        assert_eq!(decode::<Org>(&encode(&org)).unwrap(), org);
        assert_eq!(decode::<Team>(&encode(&team)).unwrap(), team);
        assert_eq!(decode::<OrgMember>(&encode(&om)).unwrap(), om);
        assert_eq!(decode::<TeamMember>(&encode(&tm)).unwrap(), tm);
        assert_eq!(decode::<Session>(&encode(&s)).unwrap(), s);
    }

    #[test]
    fn org_names_follow_usernames() {
        assert!(validate_org_name(DEFAULT_ORG).is_ok());
        assert!(validate_org_name("acme.io").is_ok());
        let err = validate_org_name("acme corp").unwrap_err();
        assert!(err.to_string().contains("\"acme corp\""), "{err}");
        assert!(validate_org_name("").is_err());
    }

    #[test]
    fn team_names() {
        assert!(validate_team_name("ops").is_ok());
        assert!(validate_team_name("Site Reliability-2.0_x").is_ok());
        assert!(validate_team_name(&"a".repeat(100)).is_ok());
        assert!(validate_team_name(&"a".repeat(101)).is_err());
        assert!(validate_team_name("").is_err());
        assert!(validate_team_name(" ops").is_err());
        let err = validate_team_name("ops/prod").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"ops/prod\"") && msg.contains("'/'"), "{msg}");
        assert!(validate_team_name("équipe").is_err());
        let err = validate_team_name("..").unwrap_err();
        assert!(err.to_string().contains("\"..\""), "{err}");
        assert!(validate_team_name(".").is_err());
    }

    #[test]
    fn eviction_makes_room_for_one_more() {
        let now = T0 + Duration::minutes(100);
        let existing = vec![
            session("old-expired", 0, 30),
            session("s3", 30, 600),
            session("s1", 10, 600),
            session("s2", 20, 600),
            session("exact-expiry", 40, 60),
        ];
        // Limit 3: the expired ones go, then 3 live remain and 1 must go.
        assert_eq!(
            sessions_to_evict(&existing, 3, now),
            [
                "analista/old-expired",
                "analista/exact-expiry",
                "analista/s1"
            ]
        );
        // Plenty of room: only the expired ones.
        assert_eq!(
            sessions_to_evict(&existing, 5, now),
            ["analista/old-expired", "analista/exact-expiry"]
        );
        // Limit 1: every live one goes, oldest first.
        assert_eq!(
            sessions_to_evict(&existing, 1, now),
            [
                "analista/old-expired",
                "analista/exact-expiry",
                "analista/s1",
                "analista/s2",
                "analista/s3"
            ]
        );
        assert_eq!(sessions_to_evict(&existing, 0, now).len(), 5);
        assert!(sessions_to_evict(&[], 5, now).is_empty());
    }

    #[test]
    fn eviction_ties_break_by_id() {
        let existing = vec![session("b", 0, 600), session("a", 0, 600)];
        assert_eq!(sessions_to_evict(&existing, 2, T0), ["analista/a"]);
    }
}

/// The cluster's session-token signing key, stored once in the replicated
/// store (table `gateway_keys`, id `session`).
#[derive(Clone, Serialize, Deserialize)]
pub struct SigningKey {
    /// 32 random bytes, base64.
    pub key: String,
}

impl Table for SigningKey {
    const TABLE: &'static str = "gateway_keys";
    fn id(&self) -> String {
        "session".into()
    }
}
