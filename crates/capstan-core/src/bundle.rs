//! Client bundles: the record of a user certificate the cluster CA issued
//! (MKE's `ucp-bundle-<user>.zip`), the checks of what a caller may ask for,
//! and the decision whether a presented bundle certificate still
//! authenticates.
//!
//! The private key of a bundle is never stored: the record holds what is
//! needed to recognise, list and revoke the certificate.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::table::Table;

/// Lifetime of a bundle certificate when the caller names none, in days.
pub const DEFAULT_TTL_DAYS: u32 = 90;

/// Longest lifetime a bundle certificate may be given, in days.
pub const MAX_TTL_DAYS: u32 = 365;

/// Longest label (description) of a bundle, in characters.
pub const MAX_LABEL_CHARS: usize = 100;

/// A client bundle, stored in table `client_bundles` under its
/// certificate's serial number (lowercase hex).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientBundle {
    /// The certificate serial number, lowercase hex without separators.
    pub id: String,
    /// The id ([`crate::User::id`]) of the user the certificate was issued to.
    pub user_id: String,
    /// Their username, the certificate's CN.
    pub username: String,
    /// Free text describing the bundle; may be empty.
    #[serde(default)]
    pub label: String,
    /// When it was issued.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the certificate expires, exactly as written in it.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// SHA-256 of the certificate's public key (DER SubjectPublicKeyInfo), hex.
    pub public_key_sha256: String,
    /// When it was revoked; a revoked bundle never authenticates again.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

impl Table for ClientBundle {
    const TABLE: &'static str = "client_bundles";
    fn id(&self) -> String {
        self.id.clone()
    }
}

/// Why a bundle certificate does not authenticate. The messages are the
/// ones the caller sees in the 401 answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BundleRefusal {
    /// No bundle record has the certificate's serial: it was not issued as a
    /// bundle of this cluster (or its record is gone).
    #[error("the client certificate (serial {serial}) is not a known client bundle; download a new bundle")]
    Unknown {
        /// The certificate serial, hex.
        serial: String,
    },
    /// The bundle was revoked.
    #[error("the client certificate has been revoked; download a new bundle")]
    Revoked,
    /// The certificate's lifetime is over.
    #[error("the client certificate has expired; download a new bundle")]
    Expired,
    /// The user it was issued to was deleted (a user of the same name made
    /// later is another account and gets no access through it).
    #[error("the client certificate belongs to a user that no longer exists; download a new bundle as the current user")]
    UserGone,
}

/// What a verified client certificate says and who holds its name now.
#[derive(Clone, Copy, Debug)]
pub struct Presented<'a> {
    /// The certificate's CN (the username it was issued to).
    pub username: &'a str,
    /// The user id written in the certificate's subject, if any.
    pub user_id: Option<&'a str>,
    /// The id of the user who has that username now, if one does.
    pub current_user_id: Option<&'a str>,
}

impl ClientBundle {
    /// Whether the bundle has been revoked.
    pub fn revoked(&self) -> bool {
        self.revoked_at.is_some()
    }

    /// Decides whether a certificate with this bundle's serial authenticates
    /// at `now`: the bundle is not revoked nor expired, and the certificate,
    /// the record and the current account all name the same user.
    pub fn check(
        &self,
        presented: Presented<'_>,
        now: OffsetDateTime,
    ) -> Result<(), BundleRefusal> {
        if self.revoked() {
            return Err(BundleRefusal::Revoked);
        }
        if now >= self.not_after {
            return Err(BundleRefusal::Expired);
        }
        let same_user = presented.username == self.username
            && presented.user_id == Some(self.user_id.as_str())
            && presented.current_user_id == Some(self.user_id.as_str());
        if !same_user {
            return Err(BundleRefusal::UserGone);
        }
        Ok(())
    }
}

/// Checks a bundle label: at most [`MAX_LABEL_CHARS`] characters and no
/// control characters (it is shown in lists and written into `meta.json`).
pub fn validate_label(label: &str) -> Result<(), String> {
    let count = label.chars().count();
    if count > MAX_LABEL_CHARS {
        return Err(format!(
            "label is {count} characters long: use at most {MAX_LABEL_CHARS}"
        ));
    }
    if let Some(c) = label.chars().find(|c| c.is_control()) {
        return Err(format!(
            "label contains the control character {c:?}: use printable characters only"
        ));
    }
    Ok(())
}

/// Parses the `ttl_days` query value: a whole number of days from 1 to
/// [`MAX_TTL_DAYS`]; [`DEFAULT_TTL_DAYS`] when absent.
pub fn parse_ttl_days(value: Option<&str>) -> Result<u32, String> {
    let Some(raw) = value else {
        return Ok(DEFAULT_TTL_DAYS);
    };
    // Parsed wide so that a huge number is "out of range", not "not a number".
    let days: u64 = raw.trim().parse().map_err(|_| {
        format!("ttl_days {raw:?} is not a whole number of days: use 1 to {MAX_TTL_DAYS}")
    })?;
    match u32::try_from(days) {
        Ok(d) if (1..=MAX_TTL_DAYS).contains(&d) => Ok(d),
        _ => Err(format!(
            "ttl_days {days} is out of range: use 1 to {MAX_TTL_DAYS}"
        )),
    }
}

/// Checks a bundle id given by a caller: the certificate serial in hex
/// (1 to 40 digits, as RFC 5280 limits serials to 20 bytes). Returns it in
/// the stored (lowercase) form.
pub fn parse_bundle_id(id: &str) -> Result<String, String> {
    if id.is_empty() || id.len() > 40 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "bundle id {id:?} is not valid: it is the certificate serial number in hex (up to 40 digits), as GET /api/clientbundle/certs lists it"
        ));
    }
    Ok(id.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{decode, encode};

    fn bundle() -> ClientBundle {
        ClientBundle {
            id: "4a1b".into(),
            user_id: "u-1".into(),
            username: "alice".into(),
            label: "laptop".into(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            not_after: OffsetDateTime::UNIX_EPOCH + time::Duration::days(90),
            public_key_sha256: "ab".repeat(32),
            revoked_at: None,
        }
    }

    fn presented<'a>(user_id: Option<&'a str>, current: Option<&'a str>) -> Presented<'a> {
        Presented {
            username: "alice",
            user_id,
            current_user_id: current,
        }
    }

    #[test]
    fn record_round_trips_through_the_table_encoding() {
        let mut b = bundle();
        assert_eq!(decode::<ClientBundle>(&encode(&b)).expect("decode"), b);
        b.revoked_at = Some(OffsetDateTime::UNIX_EPOCH + time::Duration::days(1));
        assert_eq!(decode::<ClientBundle>(&encode(&b)).expect("decode"), b);
        assert_eq!(b.id(), "4a1b");
    }

    #[test]
    fn a_live_bundle_of_the_same_user_authenticates() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(1);
        assert_eq!(
            bundle().check(presented(Some("u-1"), Some("u-1")), now),
            Ok(())
        );
    }

    #[test]
    fn revoked_expired_and_foreign_bundles_are_refused() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(1);
        let mut revoked = bundle();
        revoked.revoked_at = Some(now);
        assert_eq!(
            revoked.check(presented(Some("u-1"), Some("u-1")), now),
            Err(BundleRefusal::Revoked)
        );
        let late = OffsetDateTime::UNIX_EPOCH + time::Duration::days(90);
        assert_eq!(
            bundle().check(presented(Some("u-1"), Some("u-1")), late),
            Err(BundleRefusal::Expired)
        );
        for (cert, current) in [
            (Some("u-1"), Some("u-2")),
            (Some("u-1"), None),
            (None, Some("u-1")),
            (Some("u-2"), Some("u-2")),
        ] {
            assert_eq!(
                bundle().check(presented(cert, current), now),
                Err(BundleRefusal::UserGone),
                "{cert:?} {current:?}"
            );
        }
        let mut other_name = presented(Some("u-1"), Some("u-1"));
        other_name.username = "bob";
        assert_eq!(
            bundle().check(other_name, now),
            Err(BundleRefusal::UserGone)
        );
        assert!(BundleRefusal::Revoked.to_string().contains("revoked"));
    }

    #[test]
    fn labels_are_short_and_printable() {
        assert!(validate_label("").is_ok());
        assert!(validate_label("Portátil de Ana").is_ok());
        assert!(validate_label(&"x".repeat(100)).is_ok());
        let long = validate_label(&"x".repeat(101)).unwrap_err();
        assert!(long.contains("label") && long.contains("101"), "{long}");
        let ctl = validate_label("a\nb").unwrap_err();
        assert!(ctl.contains("control"), "{ctl}");
    }

    #[test]
    fn ttl_days_defaults_and_bounds() {
        assert_eq!(parse_ttl_days(None), Ok(DEFAULT_TTL_DAYS));
        assert_eq!(parse_ttl_days(Some("1")), Ok(1));
        assert_eq!(parse_ttl_days(Some("365")), Ok(365));
        for bad in ["0", "366", "-1", "abc", "", "1.5", "99999999999"] {
            let err = parse_ttl_days(Some(bad)).unwrap_err();
            assert!(err.contains("ttl_days"), "{bad}: {err}");
        }
        let huge = parse_ttl_days(Some("99999999999")).unwrap_err();
        assert!(huge.contains("out of range"), "{huge}");
    }

    #[test]
    fn bundle_ids_are_hex_serials() {
        assert_eq!(parse_bundle_id("4A1b"), Ok("4a1b".into()));
        assert!(parse_bundle_id(&"f".repeat(40)).is_ok());
        for bad in ["", "xyz", "4a:1b", &"f".repeat(41)] {
            let err = parse_bundle_id(bad).unwrap_err();
            assert!(err.contains("bundle id"), "{bad}: {err}");
        }
    }
}
