//! Tamper-evident audit entries.
//!
//! Each [`AuditEntry`] carries the hash of the entry before it, and its own
//! hash covers every other field, so a log of entries (one JSON object per
//! line) is a hash chain: changing, deleting, inserting or reordering lines
//! is found by [`verify`], which names the first entry that breaks the
//! chain. [`chain`] links a new entry to the last one.
//!
//! The hash is the SHA-256 (lowercase hex) of the entry's canonical form:
//! compact JSON of an object with the keys `seq`, `time`, `actor`,
//! `source`, `method`, `path`, `operation`, `object`, `decision`,
//! `status`, `request` and `prev_hash` in that order (`hash` itself left
//! out), `time` in RFC 3339 as written in the log, `request` `null` when
//! absent and with the keys of every object in it sorted.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The `prev_hash` of the first entry of a log: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How much the audit log records (MKE's `audit_log_configuration.level`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AuditLevel {
    /// Nothing is logged. Written `""`; `"none"` is read too.
    None,
    /// Who did what to which object, and the decision.
    #[default]
    Metadata,
    /// The metadata plus the request body.
    Request,
}

impl AuditLevel {
    /// The name used in configuration: `""`, `"metadata"` or `"request"`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditLevel::None => "",
            AuditLevel::Metadata => "metadata",
            AuditLevel::Request => "request",
        }
    }
}

impl fmt::Display for AuditLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for AuditLevel {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AuditLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = AuditLevel;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"an audit level: "", "metadata" or "request""#)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<AuditLevel, E> {
                match v {
                    "" | "none" => Ok(AuditLevel::None),
                    "metadata" => Ok(AuditLevel::Metadata),
                    "request" => Ok(AuditLevel::Request),
                    other => Err(E::custom(format!(
                        r#"unknown audit level {other:?}: use "", "metadata" or "request""#
                    ))),
                }
            }
        }
        d.deserialize_str(Visitor)
    }
}

/// One audited API call, a line of the audit log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// Position in the log, from 1, without gaps.
    pub seq: u64,
    /// When the call was decided.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// Username (or other principal) who made the call; empty if anonymous.
    pub actor: String,
    /// Where the call came from, e.g. the client address.
    pub source: String,
    /// HTTP method or RPC kind.
    pub method: String,
    /// Request path.
    pub path: String,
    /// The operation checked, e.g. `service.create`.
    pub operation: String,
    /// The object acted on, e.g. a collection path or resource id.
    pub object: String,
    /// `"allow"` or `"deny"`.
    pub decision: String,
    /// Response status code.
    pub status: u16,
    /// The request body, only at [`AuditLevel::Request`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Value>,
    /// The hash of the entry before, [`GENESIS_HASH`] for the first.
    pub prev_hash: String,
    /// SHA-256 (hex) of this entry's canonical form, see [`entry_hash`].
    pub hash: String,
}

/// The canonical form that is hashed: every field but `hash`, in a fixed
/// order.
#[derive(Serialize)]
struct Canonical<'a> {
    seq: u64,
    time: String,
    actor: &'a str,
    source: &'a str,
    method: &'a str,
    path: &'a str,
    operation: &'a str,
    object: &'a str,
    decision: &'a str,
    status: u16,
    request: Option<Value>,
    prev_hash: &'a str,
}

/// A copy of `v` whose objects have their keys in sorted order, whatever
/// map serde_json was built with.
fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&map[k.as_str()])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// The hash an entry should carry: SHA-256 (lowercase hex) of its
/// canonical form (see the module docs), which includes `prev_hash` but not
/// `hash`.
pub fn entry_hash(e: &AuditEntry) -> String {
    // A time RFC 3339 cannot express (a year past 9999) cannot be written to
    // the log either; it still hashes, as its Unix time in nanoseconds.
    let time = e
        .time
        .format(&Rfc3339)
        .unwrap_or_else(|_| e.time.unix_timestamp_nanos().to_string());
    let canonical = Canonical {
        seq: e.seq,
        time,
        actor: &e.actor,
        source: &e.source,
        method: &e.method,
        path: &e.path,
        operation: &e.operation,
        object: &e.object,
        decision: &e.decision,
        status: e.status,
        request: e.request.as_ref().map(sorted),
        prev_hash: &e.prev_hash,
    };
    let bytes =
        serde_json::to_vec(&canonical).expect("strings, integers and JSON values serialize");
    hex::encode(Sha256::digest(bytes))
}

/// Links `e` after `prev` (the last entry of the log, `None` for an empty
/// log): sets `seq` to the next number (1 for the first), `prev_hash` to
/// `prev`'s hash ([`GENESIS_HASH`] for the first) and `hash` to
/// [`entry_hash`] of the result. Whatever `e` had in those fields is
/// replaced.
pub fn chain(prev: Option<&AuditEntry>, mut e: AuditEntry) -> AuditEntry {
    match prev {
        Some(p) => {
            e.seq = p.seq + 1;
            e.prev_hash = p.hash.clone();
        }
        None => {
            e.seq = 1;
            e.prev_hash = GENESIS_HASH.to_owned();
        }
    }
    e.hash = entry_hash(&e);
    e
}

/// What kind of break [`verify`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditBreakKind {
    /// The line does not parse as an entry.
    NotAnEntry,
    /// The entry's hash is not the hash of its contents: it was edited.
    Hash,
    /// The entry's `seq` does not follow the entry before: lines were
    /// deleted, inserted or reordered.
    Sequence,
    /// The entry's `prev_hash` is not the hash of the entry before.
    PrevHash,
}

/// The first place where an audit log fails verification.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct AuditBreak {
    /// The `seq` of the offending entry; for a line that is not an entry,
    /// the `seq` expected there.
    pub seq: u64,
    /// 1-based position of the offending item in the verified sequence
    /// (its line number when every line of the file was passed).
    pub line: u64,
    /// What is wrong, e.g. `hash does not match its contents`.
    pub reason: String,
    /// The kind of break.
    pub kind: AuditBreakKind,
}

impl AuditBreak {
    fn describe(&self) -> String {
        match self.kind {
            AuditBreakKind::NotAnEntry => {
                format!("line {} is not an audit entry: {}", self.line, self.reason)
            }
            _ => format!("entry {} (line {}): {}", self.seq, self.line, self.reason),
        }
    }
}

/// Parses one line of an audit log; the error says why it is not an entry.
pub fn parse_line(line: &str) -> Result<AuditEntry, String> {
    serde_json::from_str(line).map_err(|e| e.to_string())
}

/// Parses every line of an audit log (the text of a file), one item per
/// line, for [`verify`]; an empty last line (after the final newline) is
/// not an item.
pub fn parse_lines(text: &str) -> impl Iterator<Item = Result<AuditEntry, String>> + '_ {
    text.lines().map(parse_line)
}

/// Verifies a whole audit log from its first entry, which must have
/// `seq` 1 and [`GENESIS_HASH`] as `prev_hash`. Items are the log's lines
/// in order, `Err(reason)` for a line that did not parse. Returns the number
/// of entries checked, or the first break.
pub fn verify(
    entries: impl IntoIterator<Item = Result<AuditEntry, String>>,
) -> Result<u64, AuditBreak> {
    verify_after(None, entries)
}

/// Verifies a part of an audit log that continues after an entry already
/// verified, given by its `(seq, hash)` (e.g. the last entry of the previous
/// file after rotation); with `None` it is [`verify`].
pub fn verify_after(
    anchor: Option<(u64, &str)>,
    entries: impl IntoIterator<Item = Result<AuditEntry, String>>,
) -> Result<u64, AuditBreak> {
    let (mut last_seq, mut last_hash) = match anchor {
        Some((seq, hash)) => (seq, hash.to_owned()),
        None => (0, GENESIS_HASH.to_owned()),
    };
    let mut checked = 0u64;
    for (i, item) in entries.into_iter().enumerate() {
        let line = i as u64 + 1;
        let broken = |seq: u64, kind: AuditBreakKind, reason: String| AuditBreak {
            seq,
            line,
            reason,
            kind,
        };
        let e = item.map_err(|reason| broken(last_seq + 1, AuditBreakKind::NotAnEntry, reason))?;
        if entry_hash(&e) != e.hash {
            return Err(broken(
                e.seq,
                AuditBreakKind::Hash,
                "hash does not match its contents".into(),
            ));
        }
        if e.seq != last_seq + 1 {
            let reason = if last_seq == 0 {
                format!("the log starts at sequence {} instead of 1", e.seq)
            } else if e.seq > last_seq {
                format!("sequence jumps from {last_seq} to {}", e.seq)
            } else {
                format!("sequence goes back from {last_seq} to {}", e.seq)
            };
            return Err(broken(e.seq, AuditBreakKind::Sequence, reason));
        }
        if e.prev_hash != last_hash {
            let reason = if last_seq == 0 {
                "prev_hash of the first entry is not the genesis hash".to_owned()
            } else {
                format!("prev_hash does not match entry {last_seq}")
            };
            return Err(broken(e.seq, AuditBreakKind::PrevHash, reason));
        }
        last_seq = e.seq;
        last_hash = e.hash;
        checked += 1;
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;
    use time::Duration;

    fn draft(i: u64) -> AuditEntry {
        // Every fifth call denied, every third with a request body.
        let denied = matches!(i % 5, 0);
        let with_body = matches!(i % 3, 0);
        AuditEntry {
            seq: 0,
            time: datetime!(2026-03-01 12:00:00.5 UTC) + Duration::seconds(i as i64),
            actor: format!("user{}", i % 7),
            source: "10.0.0.7:51234".into(),
            method: "POST".into(),
            path: format!("/services/{i}"),
            operation: "service.create".into(),
            object: "/Shared/Private/user1".into(),
            decision: if denied { "deny" } else { "allow" }.into(),
            status: if denied { 403 } else { 201 },
            request: with_body.then(|| {
                json!({"Name": format!("web{i}"), "Replicas": i, "Ratio": 0.1 * i as f64,
                       "Labels": {"z": "1", "a": [1, 2.5, null]}})
            }),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn log(n: u64) -> Vec<String> {
        let mut lines = Vec::new();
        let mut prev: Option<AuditEntry> = None;
        for i in 0..n {
            let e = chain(prev.as_ref(), draft(i));
            lines.push(serde_json::to_string(&e).unwrap());
            prev = Some(e);
        }
        lines
    }

    fn check(lines: &[String]) -> Result<u64, AuditBreak> {
        verify(lines.iter().map(|l| parse_line(l)))
    }

    #[test]
    fn chain_links_entries() {
        let a = chain(None, draft(1));
        assert_eq!((a.seq, a.prev_hash.as_str()), (1, GENESIS_HASH));
        assert_eq!(a.hash.len(), 64);
        let b = chain(Some(&a), draft(2));
        assert_eq!((b.seq, &b.prev_hash), (2, &a.hash));
        assert_eq!(b.hash, entry_hash(&b));
        assert_ne!(a.hash, b.hash);
    }

    #[test]
    fn hundred_entries_verify() {
        let lines = log(100);
        assert_eq!(check(&lines), Ok(100));
        let text = lines.join("\n") + "\n";
        assert_eq!(verify(parse_lines(&text)), Ok(100));
        assert_eq!(verify(parse_lines("")), Ok(0));
    }

    #[test]
    fn hash_ignores_key_order_of_the_request() {
        let mut a = draft(3);
        a.request = Some(json!({"a": 1, "b": {"y": 2, "x": 3}}));
        let mut b = a.clone();
        b.request = serde_json::from_str(r#"{"b": {"x": 3, "y": 2}, "a": 1}"#).unwrap();
        assert_eq!(entry_hash(&a), entry_hash(&b));
    }

    #[test]
    fn editing_any_field_names_the_entry() {
        type Edit = fn(&mut Value);
        let edits: Vec<(&str, Edit)> = vec![
            ("seq", |v| v["seq"] = json!(170)),
            ("time", |v| v["time"] = json!("2026-03-01T12:00:17Z")),
            ("actor", |v| v["actor"] = json!("admin")),
            ("source", |v| v["source"] = json!("10.9.9.9:1")),
            ("method", |v| v["method"] = json!("GET")),
            ("path", |v| v["path"] = json!("/other")),
            ("operation", |v| v["operation"] = json!("service.delete")),
            ("object", |v| v["object"] = json!("/")),
            ("decision", |v| v["decision"] = json!("allow")),
            ("status", |v| v["status"] = json!(500)),
            ("request", |v| v["request"] = json!({"Name": "evil"})),
            ("request removed", |v| {
                v.as_object_mut().unwrap().remove("request");
            }),
            ("prev_hash", |v| v["prev_hash"] = json!(GENESIS_HASH)),
            ("hash", |v| v["hash"] = json!("ab".repeat(32))),
        ];
        for (what, edit) in edits {
            let mut lines = log(30);
            // Entry 16 (line 16) has a request (i = 15).
            let mut v: Value = serde_json::from_str(&lines[15]).unwrap();
            edit(&mut v);
            lines[15] = v.to_string();
            let err = check(&lines).expect_err(what);
            assert_eq!(err.line, 16, "{what}: {err}");
            assert_eq!(err.kind, AuditBreakKind::Hash, "{what}: {err}");
            assert!(
                err.to_string()
                    .ends_with("(line 16): hash does not match its contents"),
                "{what}: {err}"
            );
        }
    }

    #[test]
    fn rehashed_edit_breaks_the_next_link() {
        let mut lines = log(30);
        let mut e = parse_line(&lines[16]).unwrap();
        e.actor = "someone-else".into();
        e.hash = entry_hash(&e);
        lines[16] = serde_json::to_string(&e).unwrap();
        let err = check(&lines).unwrap_err();
        assert_eq!(
            err.to_string(),
            "entry 18 (line 18): prev_hash does not match entry 17"
        );
    }

    #[test]
    fn deleting_a_line_names_the_jump() {
        let mut lines = log(30);
        lines.remove(16); // entry 17
        let err = check(&lines).unwrap_err();
        assert_eq!(
            err.to_string(),
            "entry 18 (line 17): sequence jumps from 16 to 18"
        );
        assert_eq!(
            (err.seq, err.line, err.kind),
            (18, 17, AuditBreakKind::Sequence)
        );

        let mut lines = log(30);
        lines.remove(0);
        let err = check(&lines).unwrap_err();
        assert_eq!(
            err.to_string(),
            "entry 2 (line 1): the log starts at sequence 2 instead of 1"
        );
    }

    #[test]
    fn reordering_is_found() {
        let mut lines = log(30);
        lines.swap(9, 10);
        let err = check(&lines).unwrap_err();
        assert_eq!(
            err.to_string(),
            "entry 11 (line 10): sequence jumps from 9 to 11"
        );
    }

    #[test]
    fn truncated_line_is_not_an_entry() {
        let mut lines = log(30);
        let cut = lines[20].len() / 2;
        lines[20].truncate(cut);
        let err = check(&lines).unwrap_err();
        assert_eq!((err.seq, err.line), (21, 21));
        assert!(
            err.to_string()
                .starts_with("line 21 is not an audit entry: "),
            "{err}"
        );
        // A truncated last line (a crash mid-write) is reported the same way.
        let mut lines = log(5);
        lines[4].truncate(10);
        assert_eq!(check(&lines).unwrap_err().line, 5);
    }

    #[test]
    fn an_added_field_is_not_an_entry() {
        let mut lines = log(3);
        let mut v: Value = serde_json::from_str(&lines[1]).unwrap();
        v["note"] = json!("unhashed");
        lines[1] = v.to_string();
        let err = check(&lines).unwrap_err();
        assert_eq!(err.kind, AuditBreakKind::NotAnEntry);
        assert!(err.to_string().contains("note"), "{err}");
    }

    #[test]
    fn verify_after_an_anchor() {
        let lines = log(30);
        let tenth = parse_line(&lines[9]).unwrap();
        let rest = lines[10..].iter().map(|l| parse_line(l));
        assert_eq!(verify_after(Some((10, &tenth.hash)), rest), Ok(20));
        let rest = lines[10..].iter().map(|l| parse_line(l));
        let err = verify_after(Some((10, GENESIS_HASH)), rest).unwrap_err();
        assert_eq!(
            err.to_string(),
            "entry 11 (line 1): prev_hash does not match entry 10"
        );
    }

    #[test]
    fn audit_levels() {
        for (text, level) in [
            ("\"\"", AuditLevel::None),
            ("\"none\"", AuditLevel::None),
            ("\"metadata\"", AuditLevel::Metadata),
            ("\"request\"", AuditLevel::Request),
        ] {
            assert_eq!(serde_json::from_str::<AuditLevel>(text).unwrap(), level);
        }
        assert_eq!(serde_json::to_string(&AuditLevel::None).unwrap(), "\"\"");
        assert_eq!(AuditLevel::default(), AuditLevel::Metadata);
        let err = serde_json::from_str::<AuditLevel>("\"verbose\"").unwrap_err();
        assert!(err.to_string().contains("\"verbose\""), "{err}");
    }
}
