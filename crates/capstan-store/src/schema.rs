//! The schema marker: which layout version and engine format a store uses.
//!
//! It is written twice at creation: inside the engine (key `schema` of the
//! raft space) and as the text file `STORE` beside the engine directory. The
//! file survives the engine's files being deleted or truncated, so a store
//! that was once initialised is never mistaken for a new, empty one.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::engine::FORMAT;

/// Layout version written by this build. Bump it, and add a step to
/// [`migrate`], whenever a key or record layout changes.
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// Name of the marker file in the store directory.
pub(crate) const STORE_FILE: &str = "STORE";

/// Schema version and format tag of a store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SchemaMarker {
    pub(crate) schema_version: u32,
    pub(crate) format: String,
}

impl SchemaMarker {
    /// The marker this build writes.
    pub(crate) fn current() -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            format: FORMAT.to_string(),
        }
    }

    /// Checks that this build can read a store carrying `self`.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!(
                "store format is {:?} but this build reads {:?}",
                self.format, FORMAT
            ));
        }
        if self.schema_version > SCHEMA_VERSION {
            return Err(format!(
                "schema version {} is newer than this build understands ({}); run a newer capstan",
                self.schema_version, SCHEMA_VERSION
            ));
        }
        if self.schema_version != SCHEMA_VERSION {
            return Err(format!(
                "schema version {} is unknown (this build writes {} and has no migration from it)",
                self.schema_version, SCHEMA_VERSION
            ));
        }
        Ok(())
    }

    /// The `STORE` file's text.
    pub(crate) fn to_file_text(&self) -> String {
        format!(
            "# capstan raft store: do not edit or delete this file\nschema_version = {}\nformat = {}\n",
            self.schema_version, self.format
        )
    }

    /// Parses [`SchemaMarker::to_file_text`].
    pub(crate) fn from_file_text(text: &str) -> Result<Self, String> {
        let mut version = None;
        let mut format = None;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| format!("{STORE_FILE} has a line without '=': {line:?}"))?;
            match key.trim() {
                "schema_version" => {
                    let v = value.trim().parse::<u32>().map_err(|e| {
                        format!("{STORE_FILE} has a bad schema_version {value:?}: {e}")
                    })?;
                    version = Some(v);
                }
                "format" => format = Some(value.trim().to_string()),
                _ => {} // Later versions may add keys; only these two matter here.
            }
        }
        match (version, format) {
            (Some(schema_version), Some(format)) => Ok(Self {
                schema_version,
                format,
            }),
            _ => Err(format!("{STORE_FILE} lacks schema_version or format")),
        }
    }
}

/// Migrations from older schema versions, applied at open. Version 1 is the
/// first, so there is nothing to migrate yet; the function is the place where
/// each `n -> n+1` step will go.
pub(crate) fn migrate(found: &SchemaMarker) -> Result<(), String> {
    found.check()
}

/// Writes `contents` to `dir/name` so that a crash leaves either the old or
/// the new file: write a temporary file, sync it, rename, sync the directory.
pub(crate) fn write_file_atomically(
    dir: &Path,
    name: &str,
    contents: &[u8],
) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_file_round_trips() {
        let m = SchemaMarker::current();
        assert_eq!(
            SchemaMarker::from_file_text(&m.to_file_text()),
            Ok(m.clone())
        );
        assert_eq!(m.check(), Ok(()));
    }

    #[test]
    fn unknown_versions_and_formats_are_refused() {
        let newer = SchemaMarker {
            schema_version: SCHEMA_VERSION + 1,
            format: FORMAT.into(),
        };
        assert!(newer.check().unwrap_err().contains("newer"));
        let zero = SchemaMarker {
            schema_version: 0,
            format: FORMAT.into(),
        };
        assert!(zero.check().is_err());
        let other = SchemaMarker {
            schema_version: SCHEMA_VERSION,
            format: "rocksdb".into(),
        };
        assert!(other.check().unwrap_err().contains("format"));
        assert!(SchemaMarker::from_file_text("garbage").is_err());
        assert!(SchemaMarker::from_file_text("schema_version = x\nformat = y").is_err());
    }
}
