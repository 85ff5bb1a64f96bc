//! Storage housekeeping: expired uploads, per-repository tag retention,
//! storage usage, and online mark-and-sweep garbage collection.
//!
//! A collection first deletes untagged manifests (ones no tag reaches,
//! directly, through an index or as a referrer) pushed before its grace
//! period, then marks every blob the remaining manifests reference.
//! Garbage collection never blocks pushes for long and never removes a
//! blob a push needs: it takes the write side of [`Registry::gc_lock`] only
//! to compute the marks and the candidates, and again to remove the files;
//! it sweeps only blobs that were last written or used (HEAD, mount)
//! before the collection began, minus the upload timeout, and that no
//! repository links again — a push in flight touches what it reuses.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::error::RegistryResult;
use crate::Registry;

/// What a collection did.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs examined.
    pub blobs: usize,
    /// Blobs still referenced.
    pub kept: usize,
    /// Blobs removed.
    pub removed: usize,
    /// Bytes freed.
    pub freed_bytes: u64,
    /// Stale blob links dropped.
    pub links_dropped: usize,
    /// Untagged manifests deleted.
    pub manifests_deleted: usize,
}

/// Runs one garbage collection.
pub async fn collect(reg: &Registry) -> RegistryResult<GcReport> {
    let started = SystemTime::now();
    let cutoff = started
        .checked_sub(reg.config.upload_timeout)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut manifests_deleted = 0;
    let (candidates, stale_links) = {
        // Pushes hold the read side while they link and reference blobs.
        let _marking = reg.gc_lock.write().await;
        manifests_deleted += delete_untagged(reg, cutoff)?;
        let mut marked: HashSet<String> = HashSet::new();
        for m in reg.meta.all_manifests()? {
            marked.insert(m.digest.clone());
            marked.extend(m.blobs.iter().map(|b| b.digest.clone()));
        }
        let all = reg.blobs.all()?;
        let candidates: Vec<_> = all
            .into_iter()
            .filter(|(d, _, used)| !marked.contains(d.as_str()) && *used < cutoff)
            .collect();
        let gone: HashSet<&str> = candidates.iter().map(|(d, _, _)| d.as_str()).collect();
        let stale_links: Vec<_> = reg
            .meta
            .all_links()?
            .into_iter()
            .filter(|(_, d)| gone.contains(d.as_str()))
            .collect();
        (candidates, stale_links)
    };
    let mut report = GcReport {
        blobs: candidates.len(),
        manifests_deleted,
        ..GcReport::default()
    };
    for (repo, digest) in &stale_links {
        if reg.meta.unlink(repo, digest)? {
            report.links_dropped += 1;
        }
    }
    reg.meta.flush().await?;
    // Pushes wait only while the files are removed: a push that linked or
    // touched a candidate since the marks were taken keeps it.
    let _sweep = reg.gc_lock.write().await;
    let linked: HashSet<String> = reg.meta.all_links()?.into_iter().map(|(_, d)| d).collect();
    for (digest, size, _) in candidates {
        let used = std::fs::metadata(reg.blobs.path(&digest))
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        if used >= cutoff || linked.contains(digest.as_str()) {
            report.kept += 1;
            continue;
        }
        if reg.blobs.delete(&digest)? {
            report.removed += 1;
            report.freed_bytes += size;
        }
    }
    tracing::info!(?report, "registry garbage collection done");
    Ok(report)
}

/// Deletes the manifests of every repository that no tag reaches (through
/// indexes, or as a referrer of what is reached) and that were pushed
/// before `cutoff`, as MSR's collection does; returns how many.
fn delete_untagged(reg: &Registry, cutoff: SystemTime) -> RegistryResult<usize> {
    let cutoff = OffsetDateTime::from(cutoff);
    let mut deleted = 0;
    for repo in reg.meta.repos()? {
        let name = repo.full_name();
        let manifests = reg.meta.manifests(&name)?;
        let mut reached: HashSet<String> = reg
            .meta
            .tags(&name)?
            .into_iter()
            .map(|(_, t)| t.digest)
            .collect();
        loop {
            let before = reached.len();
            for m in &manifests {
                if reached.contains(&m.digest) {
                    reached.extend(m.children.iter().cloned());
                } else if m.subject.as_ref().is_some_and(|s| reached.contains(s)) {
                    reached.insert(m.digest.clone());
                }
            }
            if reached.len() == before {
                break;
            }
        }
        for m in manifests {
            if !reached.contains(&m.digest) && m.pushed_at < cutoff {
                reg.meta.delete_manifest(&name, &m.digest)?;
                reg.meta.unlink(&name, &m.digest)?;
                deleted += 1;
            }
        }
    }
    Ok(deleted)
}

/// Applies a repository's tag limit: removes the least recently pushed
/// tags beyond it. Returns the removed tags.
pub fn enforce_retention(reg: &Registry, repo: &str) -> RegistryResult<Vec<String>> {
    let Some(record) = reg.meta.repo(repo)? else {
        return Ok(vec![]);
    };
    if record.tag_limit == 0 {
        return Ok(vec![]);
    }
    let mut tags = reg.meta.tags(repo)?;
    let limit = record.tag_limit as usize;
    if tags.len() <= limit {
        return Ok(vec![]);
    }
    tags.sort_by(|a, b| b.1.pushed_at.cmp(&a.1.pushed_at).then(b.0.cmp(&a.0)));
    let mut removed = vec![];
    for (tag, _) in tags.into_iter().skip(limit) {
        if reg.meta.delete_tag(repo, &tag)? {
            removed.push(tag);
        }
    }
    Ok(removed)
}

/// Bytes a repository uses: its manifests and the distinct blobs they
/// reference.
pub fn storage_usage(reg: &Registry, repo: &str) -> RegistryResult<u64> {
    let mut seen = HashSet::new();
    let mut total = 0;
    for m in reg.meta.manifests(repo)? {
        if seen.insert(m.digest.clone()) {
            total += m.size;
        }
        for b in &m.blobs {
            if seen.insert(b.digest.clone()) {
                total += b.size;
            }
        }
    }
    Ok(total)
}

/// The background loop: expire uploads, apply retention, collect garbage.
pub async fn housekeeping(reg: Arc<Registry>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(reg.config.housekeeping_interval);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let expired = reg.uploads.expire().await;
        if expired > 0 {
            tracing::info!(expired, "expired registry uploads removed");
        }
        match reg.meta.repos() {
            Ok(repos) => {
                for r in repos {
                    if let Err(e) = enforce_retention(&reg, &r.full_name()) {
                        tracing::warn!(repo = %r.full_name(), error = %e, "retention failed");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list repositories"),
        }
        if let Err(e) = collect(&reg).await {
            tracing::warn!(error = %e, "registry garbage collection failed");
        }
    }
}
