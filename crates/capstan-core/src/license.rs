//! Signed licenses.
//!
//! A license document is the JSON of a [`SignedLicense`]: the [`License`]
//! terms, the id of the key that signed them and a base64 ed25519 signature
//! over the terms' canonical bytes ([`canonical_bytes`]). The public keys
//! Capstan trusts are built in ([`trusted_keys`]); the private keys never
//! leave the vendor, except the test key, whose private half is in the
//! repository (`deploy/license/`) and which only debug builds trust.
//!
//! [`parse_and_verify`] checks a document; [`status`] says what a verified
//! license allows at a given time for a given cluster size.

use std::fmt;

use base64::Engine as _;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::{OffsetDateTime, UtcOffset};

use crate::table::Table;

/// Key id of the production license key.
pub const PRODUCTION_KEY_ID: &str = "capstan-2026";

/// Public half (raw ed25519) of the production license key. Its private half
/// is not in the repository.
pub const PRODUCTION_PUBLIC_KEY: [u8; 32] = [
    0x17, 0x30, 0x78, 0x0e, 0x5d, 0x6b, 0x8b, 0xa0, 0x19, 0x89, 0x4b, 0x59, 0x29, 0x8c, 0x14, 0x83,
    0x94, 0xba, 0x7b, 0x8c, 0xda, 0x3b, 0x33, 0x59, 0xf1, 0x2f, 0xb5, 0xc4, 0xb3, 0x6c, 0x0f, 0x67,
];

/// Key id of the test license key.
pub const TEST_KEY_ID: &str = "capstan-test";

/// Public half (raw ed25519) of the test license key, trusted only by debug
/// builds. Its private half is `deploy/license/test-license-key.pem`, public
/// on purpose: anyone can make test licenses.
pub const TEST_PUBLIC_KEY: [u8; 32] = [
    0xd7, 0xff, 0x27, 0x97, 0xeb, 0x72, 0x9f, 0x03, 0x8e, 0x96, 0xd3, 0x01, 0x13, 0x20, 0x74, 0x0f,
    0xc5, 0xf9, 0x1d, 0x9b, 0xfd, 0xe7, 0xb5, 0x51, 0x0e, 0x8e, 0x9c, 0x3f, 0xb6, 0x60, 0x27, 0xe3,
];

/// The keys whose signatures are accepted, as `(key id, ed25519 public
/// key)`: the production key always, the test key only in debug builds
/// (`cfg!(debug_assertions)`), so a release build refuses test licenses.
pub fn trusted_keys() -> Vec<(&'static str, [u8; 32])> {
    let mut keys = vec![(PRODUCTION_KEY_ID, PRODUCTION_PUBLIC_KEY)];
    if cfg!(debug_assertions) {
        keys.push((TEST_KEY_ID, TEST_PUBLIC_KEY));
    }
    keys
}

/// The terms of a license.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct License {
    /// Unique id of the license.
    pub id: String,
    /// Who the license is for.
    pub licensee: String,
    /// Product tier, e.g. `enterprise`.
    pub tier: String,
    /// When the license was issued (whole seconds).
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    /// When the license stops being valid (whole seconds).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// How many nodes the cluster may have, at least 1.
    pub max_nodes: u32,
}

/// A license with its signature: the document a customer installs, and
/// what is stored in table `license` under `current`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedLicense {
    /// The terms.
    pub license: License,
    /// Base64 (standard, padded) ed25519 signature over
    /// [`canonical_bytes`] of `license`.
    pub signature: String,
    /// Id of the key that made the signature, e.g. `capstan-2026`.
    pub key_id: String,
}

impl Table for SignedLicense {
    const TABLE: &'static str = "license";
    fn id(&self) -> String {
        "current".into()
    }
}

/// Why a license document was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LicenseError {
    /// The document is not JSON.
    #[error("license is not JSON (line {line}, column {column}): {reason}")]
    NotJson {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the JSON parser said.
        reason: String,
    },
    /// A required field is absent.
    #[error("license has no field {field}")]
    MissingField {
        /// Dotted path of the field, e.g. `license.expires_at`.
        field: String,
    },
    /// A field has a wrong type or value, or is not a license field.
    #[error("license field {field} is not valid: {reason}")]
    InvalidField {
        /// Dotted path of the field (`.` for the whole document).
        field: String,
        /// What is wrong, naming the value.
        reason: String,
    },
    /// The license was signed by a key this build does not trust.
    #[error("license is signed by unknown key {key_id:?}")]
    UnknownKey {
        /// The key id in the document.
        key_id: String,
    },
    /// The signature is not base64 of 64 bytes.
    #[error("license signature {signature:?} is not a base64 ed25519 signature: {reason}")]
    MalformedSignature {
        /// The signature as found (cut to 100 characters).
        signature: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A built-in key is not a valid ed25519 public key (a build defect).
    #[error("trusted license key {key_id:?} is not a valid ed25519 public key")]
    BadTrustedKey {
        /// The key's id.
        key_id: String,
    },
    /// The signature does not match the terms: the license was altered, or
    /// not signed by that key.
    #[error("license {id:?} for {licensee:?} does not match its signature by key {key_id:?}")]
    BadSignature {
        /// The license id.
        id: String,
        /// The licensee as found in the document.
        licensee: String,
        /// The key id in the document.
        key_id: String,
    },
}

/// What a license allows now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LicenseStatus {
    /// No license is installed.
    Unlicensed,
    /// The license is in force for this cluster.
    Valid {
        /// Who the license is for.
        licensee: String,
        /// Product tier.
        tier: String,
        /// When it expires.
        expires_at: OffsetDateTime,
        /// The node limit.
        max_nodes: u32,
    },
    /// The license expired (checked before the node limit).
    Expired {
        /// Who the license is for.
        licensee: String,
        /// When it expired.
        expired_at: OffsetDateTime,
    },
    /// The cluster has more nodes than the license allows.
    OverNodeLimit {
        /// Who the license is for.
        licensee: String,
        /// The node limit.
        max_nodes: u32,
        /// The cluster's node count.
        node_count: u32,
    },
}

impl LicenseStatus {
    /// Whether the license is in force.
    pub fn is_valid(&self) -> bool {
        matches!(self, LicenseStatus::Valid { .. })
    }
}

impl fmt::Display for LicenseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LicenseStatus::Unlicensed => f.write_str("unlicensed"),
            LicenseStatus::Valid {
                licensee,
                tier,
                expires_at,
                max_nodes,
            } => write!(
                f,
                "licensed to {licensee:?} ({tier}, up to {max_nodes} nodes) until {}",
                utc_seconds(*expires_at)
            ),
            LicenseStatus::Expired {
                licensee,
                expired_at,
            } => write!(
                f,
                "the license of {licensee:?} expired at {}",
                utc_seconds(*expired_at)
            ),
            LicenseStatus::OverNodeLimit {
                licensee,
                max_nodes,
                node_count,
            } => write!(
                f,
                "the license of {licensee:?} allows {max_nodes} nodes, the cluster has {node_count}"
            ),
        }
    }
}

/// A time as `YYYY-MM-DDTHH:MM:SSZ` in UTC, sub-seconds dropped.
fn utc_seconds(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The bytes a license signature covers. The canonical form is compact
/// JSON (no spaces, no newline) of an object with exactly the keys `id`,
/// `licensee`, `tier`, `issued_at`, `expires_at`, `max_nodes` in that
/// order; strings escaped as serde_json does (`"` and `\` and control
/// characters escaped, everything else as UTF-8); times in UTC as
/// `YYYY-MM-DDTHH:MM:SSZ` (whole seconds); `max_nodes` a decimal integer.
/// `deploy/license/make-test-license.sh` builds the same bytes.
pub fn canonical_bytes(l: &License) -> Vec<u8> {
    #[derive(Serialize)]
    struct Canonical<'a> {
        id: &'a str,
        licensee: &'a str,
        tier: &'a str,
        issued_at: String,
        expires_at: String,
        max_nodes: u32,
    }
    serde_json::to_vec(&Canonical {
        id: &l.id,
        licensee: &l.licensee,
        tier: &l.tier,
        issued_at: utc_seconds(l.issued_at),
        expires_at: utc_seconds(l.expires_at),
        max_nodes: l.max_nodes,
    })
    .expect("strings and integers serialize to JSON")
}

/// Fields a document must have, as dotted paths.
const REQUIRED: [&str; 3] = ["license", "signature", "key_id"];
const REQUIRED_TERMS: [&str; 6] = [
    "id",
    "licensee",
    "tier",
    "issued_at",
    "expires_at",
    "max_nodes",
];

/// Strips serde_json's " at line L column C" from its message.
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_owned()
}

/// Parses a license document and checks it: JSON with every field and no
/// others, sane terms (whole-second times, expiry after issue, at least one
/// node), signed by one of `trusted` (`(key id, ed25519 public key)`, e.g.
/// [`trusted_keys`]) over [`canonical_bytes`] of its terms. Expiry and node
/// count are not checked here: see [`status`].
pub fn parse_and_verify(
    document: &[u8],
    trusted: &[(&str, [u8; 32])],
) -> Result<SignedLicense, LicenseError> {
    let value: Value = serde_json::from_slice(document).map_err(|e| LicenseError::NotJson {
        line: e.line(),
        column: e.column(),
        reason: without_position(&e),
    })?;
    let Some(top) = value.as_object() else {
        return Err(LicenseError::InvalidField {
            field: ".".into(),
            reason: "a license document is a JSON object".into(),
        });
    };
    if let Some(field) = REQUIRED.iter().find(|f| !top.contains_key(**f)) {
        return Err(LicenseError::MissingField {
            field: (*field).into(),
        });
    }
    if let Some(terms) = top.get("license").and_then(Value::as_object) {
        if let Some(field) = REQUIRED_TERMS.iter().find(|f| !terms.contains_key(**f)) {
            return Err(LicenseError::MissingField {
                field: format!("license.{field}"),
            });
        }
    }
    let signed: SignedLicense =
        serde_path_to_error::deserialize(value).map_err(|e| LicenseError::InvalidField {
            field: e.path().to_string(),
            reason: e.into_inner().to_string(),
        })?;
    check_terms(&signed.license)?;

    let Some((_, key)) = trusted.iter().find(|(id, _)| *id == signed.key_id) else {
        return Err(LicenseError::UnknownKey {
            key_id: signed.key_id.clone(),
        });
    };
    let malformed = |reason: String| LicenseError::MalformedSignature {
        signature: signed.signature.chars().take(100).collect(),
        reason,
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(signed.signature.trim())
        .map_err(|e| malformed(e.to_string()))?;
    let signature = Signature::from_slice(&raw)
        .map_err(|_| malformed(format!("{} bytes instead of 64", raw.len())))?;
    let key = VerifyingKey::from_bytes(key).map_err(|_| LicenseError::BadTrustedKey {
        key_id: signed.key_id.clone(),
    })?;
    key.verify_strict(&canonical_bytes(&signed.license), &signature)
        .map_err(|_| LicenseError::BadSignature {
            id: signed.license.id.clone(),
            licensee: signed.license.licensee.clone(),
            key_id: signed.key_id.clone(),
        })?;
    Ok(signed)
}

/// Checks what the signature cannot: terms the canonical form would not
/// represent exactly, and nonsense.
fn check_terms(l: &License) -> Result<(), LicenseError> {
    let invalid = |field: &str, reason: String| LicenseError::InvalidField {
        field: format!("license.{field}"),
        reason,
    };
    for (field, t) in [("issued_at", l.issued_at), ("expires_at", l.expires_at)] {
        if t.nanosecond() != 0 {
            return Err(invalid(
                field,
                format!("{t} has fractional seconds; license times are whole seconds"),
            ));
        }
    }
    if l.expires_at <= l.issued_at {
        return Err(invalid(
            "expires_at",
            format!(
                "{} is not after issued_at {}",
                utc_seconds(l.expires_at),
                utc_seconds(l.issued_at)
            ),
        ));
    }
    if l.max_nodes == 0 {
        return Err(invalid("max_nodes", "0 nodes: must be at least 1".into()));
    }
    Ok(())
}

/// What `lic` (a license that passed [`parse_and_verify`]) allows at `now`
/// for a cluster of `node_count` nodes. Expiry is checked first: a license
/// is expired from its `expires_at` on. A license issued after `now` (clock
/// skew) counts as valid.
pub fn status(lic: Option<&SignedLicense>, now: OffsetDateTime, node_count: u32) -> LicenseStatus {
    let Some(SignedLicense { license: l, .. }) = lic else {
        return LicenseStatus::Unlicensed;
    };
    if now >= l.expires_at {
        LicenseStatus::Expired {
            licensee: l.licensee.clone(),
            expired_at: l.expires_at,
        }
    } else if node_count > l.max_nodes {
        LicenseStatus::OverNodeLimit {
            licensee: l.licensee.clone(),
            max_nodes: l.max_nodes,
            node_count,
        }
    } else {
        LicenseStatus::Valid {
            licensee: l.licensee.clone(),
            tier: l.tier.clone(),
            expires_at: l.expires_at,
            max_nodes: l.max_nodes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;
    use time::Duration;

    /// Made by `deploy/license/make-test-license.sh --licensee 'Acme Test Org'
    /// --tier enterprise --days 36500 --nodes 10`.
    const FIXTURE: &str = include_str!("../tests/data/test-license.json");
    /// Made by the script with a licensee that needs JSON escaping and is not
    /// ASCII, and `--expired`.
    const FIXTURE_ESCAPED: &str = include_str!("../tests/data/test-license-escaped.json");

    /// What a debug build trusts, spelled out so that the tests also pass
    /// under `cargo test --release`.
    fn trusted() -> Vec<(&'static str, [u8; 32])> {
        vec![
            (PRODUCTION_KEY_ID, PRODUCTION_PUBLIC_KEY),
            (TEST_KEY_ID, TEST_PUBLIC_KEY),
        ]
    }

    #[test]
    fn keys_are_valid_and_test_key_is_debug_only() {
        for (id, key) in trusted_keys() {
            assert!(VerifyingKey::from_bytes(&key).is_ok(), "{id}");
        }
        let ids: Vec<&str> = trusted_keys().iter().map(|(id, _)| *id).collect();
        assert_eq!(ids[0], PRODUCTION_KEY_ID);
        assert_eq!(ids.contains(&TEST_KEY_ID), cfg!(debug_assertions));
        // So the built-in list accepts test licenses exactly in debug builds.
        let verdict = parse_and_verify(FIXTURE.as_bytes(), &trusted_keys());
        assert_eq!(verdict.is_ok(), cfg!(debug_assertions), "{verdict:?}");
        if cfg!(debug_assertions) {
            assert_eq!(trusted_keys(), trusted());
        }
    }

    #[test]
    fn script_made_license_verifies() {
        let lic = parse_and_verify(FIXTURE.as_bytes(), &trusted()).unwrap();
        assert_eq!(lic.key_id, TEST_KEY_ID);
        assert_eq!(lic.license.licensee, "Acme Test Org");
        assert_eq!(lic.license.tier, "enterprise");
        assert_eq!(lic.license.max_nodes, 10);
        let status = status(Some(&lic), lic.license.issued_at + Duration::days(1), 3);
        assert!(status.is_valid(), "{status}");
    }

    #[test]
    fn script_made_license_with_escapes_verifies() {
        let lic = parse_and_verify(FIXTURE_ESCAPED.as_bytes(), &trusted()).unwrap();
        assert_eq!(
            lic.license.licensee,
            "Ünïcode \"Quoted\" \\ Back-slash GmbH"
        );
        assert!(lic.license.expires_at < lic.license.issued_at + Duration::days(2));
    }

    #[test]
    fn one_changed_character_breaks_the_signature() {
        let doc = FIXTURE.replace("Acme Test Org", "Acme Test Orh");
        assert_ne!(doc, FIXTURE);
        let err = parse_and_verify(doc.as_bytes(), &trusted()).unwrap_err();
        assert!(matches!(err, LicenseError::BadSignature { .. }), "{err}");
        assert!(err.to_string().contains("\"Acme Test Orh\""), "{err}");
    }

    #[test]
    fn other_keys_are_refused() {
        // Only the production key: the test license's key id is unknown.
        let prod_only = [(PRODUCTION_KEY_ID, PRODUCTION_PUBLIC_KEY)];
        let err = parse_and_verify(FIXTURE.as_bytes(), &prod_only).unwrap_err();
        assert_eq!(
            err.to_string(),
            "license is signed by unknown key \"capstan-test\""
        );
        // The right key id bound to the wrong key.
        let wrong = [(TEST_KEY_ID, PRODUCTION_PUBLIC_KEY)];
        let err = parse_and_verify(FIXTURE.as_bytes(), &wrong).unwrap_err();
        assert!(matches!(err, LicenseError::BadSignature { .. }), "{err}");
    }

    #[test]
    fn equal_instants_in_other_offsets_still_verify() {
        let mut v: Value = serde_json::from_str(FIXTURE).unwrap();
        let lic: SignedLicense = serde_json::from_value(v.clone()).unwrap();
        let shifted = lic
            .license
            .issued_at
            .to_offset(time::macros::offset!(+02:00));
        v["license"]["issued_at"] = serde_json::to_value(
            shifted
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap(),
        )
        .unwrap();
        assert!(v["license"]["issued_at"]
            .as_str()
            .unwrap()
            .ends_with("+02:00"));
        assert!(parse_and_verify(v.to_string().as_bytes(), &trusted()).is_ok());
    }

    fn fixture_with(edit: impl FnOnce(&mut Value)) -> Result<SignedLicense, LicenseError> {
        let mut v: Value = serde_json::from_str(FIXTURE).unwrap();
        edit(&mut v);
        parse_and_verify(v.to_string().as_bytes(), &trusted())
    }

    #[test]
    fn structural_errors_name_the_field() {
        let err = fixture_with(|v| {
            v["license"].as_object_mut().unwrap().remove("expires_at");
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "license has no field license.expires_at");

        let err = fixture_with(|v| {
            v.as_object_mut().unwrap().remove("signature");
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "license has no field signature");

        let err = fixture_with(|v| v["license"]["max_nodes"] = "ten".into()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("license field license.max_nodes is not valid: ")
                && msg.contains("ten"),
            "{msg}"
        );

        let err = fixture_with(|v| v["license"]["seats"] = 5.into()).unwrap_err();
        assert!(err.to_string().contains("seats"), "{err}");

        let err = fixture_with(|v| v["license"]["issued_at"] = "yesterday".into()).unwrap_err();
        assert!(err.to_string().contains("license.issued_at"), "{err}");

        let err = fixture_with(|v| v["signature"] = "not base64!".into()).unwrap_err();
        assert!(
            matches!(err, LicenseError::MalformedSignature { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("\"not base64!\""), "{err}");

        let err = fixture_with(|v| v["signature"] = "AAAA".into()).unwrap_err();
        assert!(err.to_string().contains("3 bytes instead of 64"), "{err}");

        let err = parse_and_verify(b"[1]", &trusted()).unwrap_err();
        assert!(matches!(err, LicenseError::InvalidField { .. }), "{err}");
    }

    #[test]
    fn not_json_names_line_and_column() {
        let broken = &FIXTURE[..FIXTURE.len() / 2];
        let err = parse_and_verify(broken.as_bytes(), &trusted()).unwrap_err();
        assert!(
            matches!(err, LicenseError::NotJson { line: 1, .. }),
            "{err}"
        );
        let err = parse_and_verify(b"{\n  \"license\": ,\n}", &trusted()).unwrap_err();
        assert_eq!(
            err,
            LicenseError::NotJson {
                line: 2,
                column: 14,
                reason: "expected value".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "license is not JSON (line 2, column 14): expected value"
        );
    }

    #[test]
    fn nonsense_terms_are_refused() {
        let err = fixture_with(|v| v["license"]["max_nodes"] = 0.into()).unwrap_err();
        assert!(err.to_string().contains("license.max_nodes"), "{err}");
        let err = fixture_with(|v| {
            v["license"]["expires_at"] = v["license"]["issued_at"].clone();
        })
        .unwrap_err();
        assert!(err.to_string().contains("not after issued_at"), "{err}");
        let err = fixture_with(|v| {
            v["license"]["issued_at"] = "2026-01-01T00:00:00.5Z".into();
        })
        .unwrap_err();
        assert!(err.to_string().contains("fractional seconds"), "{err}");
    }

    #[test]
    fn canonical_form() {
        let l = License {
            id: "lic-1".into(),
            licensee: "A \"B\" \\ C\n".into(),
            tier: "enterprise".into(),
            issued_at: datetime!(2026-01-02 03:04:05 +01:00),
            expires_at: datetime!(2027-01-02 03:04:05 UTC),
            max_nodes: 7,
        };
        assert_eq!(
            String::from_utf8(canonical_bytes(&l)).unwrap(),
            r#"{"id":"lic-1","licensee":"A \"B\" \\ C\n","tier":"enterprise","issued_at":"2026-01-02T02:04:05Z","expires_at":"2027-01-02T03:04:05Z","max_nodes":7}"#
        );
    }

    #[test]
    fn statuses() {
        let lic = parse_and_verify(FIXTURE.as_bytes(), &trusted()).unwrap();
        let exp = lic.license.expires_at;
        assert_eq!(status(None, exp, 1), LicenseStatus::Unlicensed);
        assert_eq!(
            status(Some(&lic), exp - Duration::seconds(1), 10),
            LicenseStatus::Valid {
                licensee: "Acme Test Org".into(),
                tier: "enterprise".into(),
                expires_at: exp,
                max_nodes: 10
            }
        );
        assert_eq!(
            status(Some(&lic), exp - Duration::seconds(1), 11),
            LicenseStatus::OverNodeLimit {
                licensee: "Acme Test Org".into(),
                max_nodes: 10,
                node_count: 11
            }
        );
        // Expiry wins over the node limit.
        assert_eq!(
            status(Some(&lic), exp, 11),
            LicenseStatus::Expired {
                licensee: "Acme Test Org".into(),
                expired_at: exp
            }
        );
        let expired = parse_and_verify(FIXTURE_ESCAPED.as_bytes(), &trusted()).unwrap();
        let now = expired.license.expires_at + Duration::hours(1);
        assert!(matches!(
            status(Some(&expired), now, 1),
            LicenseStatus::Expired { .. }
        ));
    }

    #[test]
    fn stored_under_current() {
        let lic = parse_and_verify(FIXTURE.as_bytes(), &trusted()).unwrap();
        assert_eq!(lic.id(), "current");
        let back: SignedLicense = crate::table::decode(&crate::table::encode(&lic)).unwrap();
        assert_eq!(back, lic);
    }
}
