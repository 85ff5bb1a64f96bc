//! The data disk guard: a manager whose data disk is nearly full refuses
//! new writes with an error that says so, instead of failing inside its
//! store, keeps serving reads, and takes writes again by itself once space
//! is freed. The reserve it keeps is room for the store's own bookkeeping
//! (Raft votes, log compaction, snapshots), so nothing acknowledged is
//! ever at risk.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::error::ManagerError;

/// Free space below which writes are refused, unless configured.
pub const DEFAULT_RESERVE: u64 = 64 << 20;
/// How often free space is measured.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);

/// Free space of one data directory, sampled in the background.
#[derive(Debug)]
pub struct DiskGuard {
    path: PathBuf,
    reserve: u64,
    /// Bytes free at the last sample (`u64::MAX` before the first, or when
    /// the file system cannot say).
    free: AtomicU64,
}

/// Free bytes of the file system holding `path`.
pub fn free_bytes(path: &std::path::Path) -> Option<(u64, u64)> {
    let st = rustix::fs::statvfs(path).ok()?;
    let unit = if st.f_frsize > 0 {
        st.f_frsize
    } else {
        st.f_bsize
    };
    Some((
        st.f_bavail.saturating_mul(unit),
        st.f_blocks.saturating_mul(unit),
    ))
}

impl DiskGuard {
    /// A guard of `path` keeping `reserve` bytes free.
    pub fn new(path: PathBuf, reserve: u64) -> Self {
        let guard = Self {
            path,
            reserve,
            free: AtomicU64::new(u64::MAX),
        };
        guard.sample();
        guard
    }

    /// Measures free space now.
    pub fn sample(&self) {
        let free = free_bytes(&self.path).map_or(u64::MAX, |(free, _)| free);
        self.free.store(free, Ordering::Relaxed);
    }

    /// Refuses when the disk is below its reserve.
    pub fn check(&self) -> Result<(), ManagerError> {
        let free = self.free.load(Ordering::Relaxed);
        if free >= self.reserve {
            return Ok(());
        }
        Err(ManagerError::DiskFull(format!(
            "the data disk of this manager is full ({} MiB free under {}, writes need {} MiB): writes are refused and reads still work; free space and writes resume by themselves",
            free >> 20,
            self.path.display(),
            self.reserve >> 20
        )))
    }

    /// Samples until cancelled, logging when the disk fills and recovers.
    pub async fn watch(&self, cancel: CancellationToken) -> Result<(), ManagerError> {
        let mut full = false;
        loop {
            self.sample();
            match (self.check(), full) {
                (Err(e), false) => {
                    tracing::error!(error = %e, "data disk full");
                    full = true;
                }
                (Ok(()), true) => {
                    tracing::info!("data disk has room again: writes resume");
                    full = false;
                }
                _ => {}
            }
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(SAMPLE_EVERY) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_below_the_reserve_and_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let guard = DiskGuard::new(dir.path().to_path_buf(), 0);
        assert!(guard.check().is_ok());
        let (free, total) = free_bytes(dir.path()).unwrap();
        assert!(free > 0 && total >= free);
        let guard = DiskGuard::new(dir.path().to_path_buf(), u64::MAX - 1);
        let err = guard.check().unwrap_err().to_string();
        assert!(err.contains("data disk of this manager is full"), "{err}");
    }
}
