//! This manager's audit log: one JSON line per entry in
//! `<data dir>/audit/audit.jsonl`, each chained to the previous one by
//! hash (`capstan audit verify` checks the chain).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use capstan_core::audit::{chain, AuditEntry};

/// The audit log file of a data directory.
pub fn audit_file(data_dir: &Path) -> PathBuf {
    data_dir.join("audit").join("audit.jsonl")
}

struct Writer {
    file: File,
    last: Option<AuditEntry>,
    dirty: bool,
}

/// Appends chained entries to the audit file.
pub struct AuditLog {
    path: PathBuf,
    inner: Mutex<Writer>,
}

impl AuditLog {
    /// Opens (or creates) the log and finds its last entry to chain to.
    pub fn open(path: PathBuf) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)?;
        let last = last_entry(&mut file)?;
        Ok(Self {
            path,
            inner: Mutex::new(Writer {
                file,
                last,
                dirty: false,
            }),
        })
    }

    /// Path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Chains and appends one entry.
    pub fn record(&self, entry: AuditEntry) {
        let mut w = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let entry = chain(w.last.as_ref(), entry);
        let mut line = match serde_json::to_vec(&entry) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode an audit entry");
                return;
            }
        };
        line.push(b'\n');
        if let Err(e) = w.file.write_all(&line) {
            tracing::error!(error = %e, path = %self.path.display(), "cannot append to the audit log");
            return;
        }
        w.last = Some(entry);
        w.dirty = true;
    }

    /// Flushes appended entries to disk (run every second).
    pub fn sync(&self) {
        let mut w = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if w.dirty {
            if let Err(e) = w.file.sync_data() {
                tracing::error!(error = %e, "cannot sync the audit log");
            }
            w.dirty = false;
        }
    }

    /// Entries with `seq >= start`, at most `limit`, oldest first.
    pub fn page(&self, start: u64, limit: usize) -> std::io::Result<Vec<AuditEntry>> {
        let file = File::open(&self.path)?;
        let mut out = Vec::new();
        for line in BufReader::new(file).lines() {
            let line = line?;
            let Ok(e) = serde_json::from_str::<AuditEntry>(&line) else {
                continue;
            };
            if e.seq >= start {
                out.push(e);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }
}

/// The last complete entry of the file. A torn final line (a crash mid
/// write) is cut off so that the chain continues from the last whole entry.
fn last_entry(file: &mut File) -> std::io::Result<Option<AuditEntry>> {
    file.seek(SeekFrom::Start(0))?;
    let mut last = None;
    let mut good_len = 0u64;
    let mut pos = 0u64;
    let mut reader = BufReader::new(&*file);
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        if n == 0 {
            break;
        }
        pos += n as u64;
        if !line.ends_with('\n') {
            break;
        }
        if let Ok(e) = serde_json::from_str::<AuditEntry>(line.trim_end()) {
            last = Some(e);
        }
        good_len = pos;
    }
    if good_len < file.metadata()?.len() {
        tracing::warn!("the audit log ends with a torn line; cutting it off");
        file.set_len(good_len)?;
    }
    Ok(last)
}
