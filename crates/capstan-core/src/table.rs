//! Typed tables of the replicated store.
//!
//! The store keeps opaque bytes per `(table, id)`; each domain type that is
//! persisted implements [`Table`] to say where it lives. Values are JSON with
//! a schema version so that old records can be migrated when read.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A domain type stored in one table of the replicated store. Records are
/// plain values that threads share (managers cache decoded ones).
pub trait Table: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The table's name in the store.
    const TABLE: &'static str;
    /// The current schema version of the records this type writes.
    const SCHEMA: u32 = 1;
    /// The object's id inside its table.
    fn id(&self) -> String;
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    schema: u32,
    #[serde(flatten)]
    value: T,
}

#[derive(Deserialize)]
struct SchemaOnly {
    schema: u32,
}

/// A stored record could not be read back as its domain type.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not a record of this table.
    #[error("record in table {table} is not valid: {source}")]
    Invalid {
        /// The table the record came from.
        table: &'static str,
        /// What JSON decoding said.
        source: serde_json::Error,
    },
    /// The record was written by a newer Capstan.
    #[error("record in table {table} has schema {found}, newer than this capstan understands ({supported}); upgrade this node")]
    TooNew {
        /// The table the record came from.
        table: &'static str,
        /// The record's schema version.
        found: u32,
        /// The newest version this build knows.
        supported: u32,
    },
}

/// Encodes a record with its schema version.
pub fn encode<T: Table>(value: &T) -> Vec<u8> {
    serde_json::to_vec(&Envelope {
        schema: T::SCHEMA,
        value,
    })
    .expect("domain types serialize to JSON without failure")
}

/// Decodes a record, refusing records from a newer schema.
pub fn decode<T: Table>(bytes: &[u8]) -> Result<T, DecodeError> {
    let invalid = |source| DecodeError::Invalid {
        table: T::TABLE,
        source,
    };
    let SchemaOnly { schema } = serde_json::from_slice(bytes).map_err(invalid)?;
    if schema > T::SCHEMA {
        return Err(DecodeError::TooNew {
            table: T::TABLE,
            found: schema,
            supported: T::SCHEMA,
        });
    }
    // Straight into `T`, which skips the `schema` key as an unknown field:
    // several times faster than the flattened envelope, which buffers the
    // whole record first. A type that refuses unknown fields takes the
    // envelope's way.
    if let Ok(value) = serde_json::from_slice::<T>(bytes) {
        return Ok(value);
    }
    let env: Envelope<T> = serde_json::from_slice(bytes).map_err(invalid)?;
    Ok(env.value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster_config::ClusterConfig;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Plain {
        id: String,
        n: u64,
    }

    impl Table for Plain {
        const TABLE: &'static str = "plain";
        fn id(&self) -> String {
            self.id.clone()
        }
    }

    #[test]
    fn records_round_trip_whether_or_not_the_type_refuses_unknown_fields() {
        let p = Plain {
            id: "a".into(),
            n: 7,
        };
        assert_eq!(decode::<Plain>(&encode(&p)).expect("plain"), p);
        let mut c = ClusterConfig::default();
        c.auth.default_new_user_role = "viewonly".into();
        assert_eq!(decode::<ClusterConfig>(&encode(&c)).expect("strict"), c);
    }

    #[test]
    fn newer_schemas_and_foreign_bytes_are_refused() {
        let newer = br#"{"schema":2,"id":"a","n":1}"#;
        assert!(matches!(
            decode::<Plain>(newer),
            Err(DecodeError::TooNew { found: 2, .. })
        ));
        let missing = br#"{"schema":1,"id":"a"}"#;
        let e = decode::<Plain>(missing).expect_err("n is missing");
        assert!(e.to_string().contains("missing field `n`"), "{e}");
        assert!(
            decode::<Plain>(br#"{"id":"a","n":1}"#).is_err(),
            "no schema"
        );
    }
}
