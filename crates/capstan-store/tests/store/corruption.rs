//! A damaged store directory is refused, never served empty or rolled back.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use capstan_store::{open, Expect, StoreError};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::Vote;
use tempfile::TempDir;

use crate::support::{fresh_store, put, write_entry};

const OBJECTS: u64 = 300;

/// A closed store holding OBJECTS objects of 1 KiB each, plus a vote; opened
/// and closed twice so the engine also wrote its own snapshot files.
fn closed_store_with_data() -> (TempDir, PathBuf) {
    let (tmp, dir) = closed_store_written_once();
    drop(open(&dir).expect("reopen an intact store"));
    (tmp, dir)
}

/// Like [`closed_store_with_data`] but closed right after the writes: the
/// engine has no snapshot file yet and recovers from its log alone, which it
/// does silently up to the damage.
fn closed_store_written_once() -> (TempDir, PathBuf) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (tmp, dir, mut log, mut sm) = fresh_store();
    runtime.block_on(async {
        log.save_vote(&Vote::new(2, 1)).await.expect("vote");
        let value = "x".repeat(1024);
        for i in 1..=OBJECTS {
            let entry = write_entry(
                i,
                vec![put("services", &format!("s{i:04}"), &value, Expect::Absent)],
            );
            log.blocking_append([entry.clone()]).await.expect("append");
            sm.apply([entry]).await.expect("apply");
        }
    });
    drop((log, sm));
    (tmp, dir)
}

fn engine_file(dir: &Path, name: &str) -> PathBuf {
    dir.join("sled").join(name)
}

fn snap_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("sled"))
        .expect("list engine dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("snap."))
        })
        .collect()
}

fn truncate_to(path: &Path, fraction: f64) {
    let len = std::fs::metadata(path).expect("stat").len();
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open for truncation");
    file.set_len((len as f64 * fraction) as u64)
        .expect("truncate");
}

fn garble(path: &Path, at_fraction: f64, bytes: usize) {
    let len = std::fs::metadata(path).expect("stat").len();
    let mut file = OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open for garbling");
    file.seek(SeekFrom::Start((len as f64 * at_fraction) as u64))
        .expect("seek");
    file.write_all(&vec![0xA5; bytes.min(len as usize)])
        .expect("garble");
}

/// `open` must fail with Corrupt naming `dir`.
fn assert_corrupt(dir: &Path, case: &str) -> String {
    match open(dir) {
        Err(StoreError::Corrupt { path, reason }) => {
            assert_eq!(path, dir, "{case}: error names the store directory");
            println!("{case}: refused: {reason}");
            reason
        }
        Err(other) => panic!("{case}: expected Corrupt, got: {other}"),
        Ok((_, sm)) => panic!(
            "{case}: a damaged store was opened, serving {} objects at applied index {}",
            sm.list("services", "", 0).map(|l| l.len()).unwrap_or(0),
            sm.applied_index()
        ),
    }
}

/// `open` must fail with Corrupt, or serve all the data (when the engine
/// recovers fully from a damaged auxiliary file); never less.
fn assert_corrupt_or_intact(dir: &Path, case: &str) {
    match open(dir) {
        Err(StoreError::Corrupt { path, reason }) => {
            assert_eq!(path, dir, "{case}");
            println!("{case}: refused: {reason}");
        }
        Err(other) => panic!("{case}: expected Corrupt, got: {other}"),
        Ok((_, sm)) => {
            assert_eq!(
                sm.applied_index(),
                OBJECTS,
                "{case}: opened with rolled-back state"
            );
            assert_eq!(
                sm.list("services", "", 0).expect("list").len() as u64,
                OBJECTS,
                "{case}"
            );
            println!("{case}: opened with all data intact");
        }
    }
}

#[test]
fn database_file_truncated_to_nothing() {
    let (_tmp, dir) = closed_store_with_data();
    truncate_to(&engine_file(&dir, "db"), 0.0);
    assert_corrupt(&dir, "db truncated to 0");
}

#[test]
fn database_file_truncated_by_half() {
    let (_tmp, dir) = closed_store_with_data();
    truncate_to(&engine_file(&dir, "db"), 0.5);
    assert_corrupt(&dir, "db truncated by half");
}

#[test]
fn database_without_engine_snapshot_truncated() {
    // Without its snapshot file the engine opens what is left of a truncated
    // file as if nothing happened; the marker and watermark must catch it.
    for (fraction, case) in [
        (0.0, "unsnapshotted db truncated to 0"),
        (0.5, "unsnapshotted db truncated by half"),
        (0.9, "unsnapshotted db truncated by a tenth"),
    ] {
        let (_tmp, dir) = closed_store_written_once();
        assert!(
            snap_files(&dir).is_empty(),
            "{case}: no engine snapshot yet"
        );
        truncate_to(&engine_file(&dir, "db"), fraction);
        assert_corrupt(&dir, case);
    }
}

#[test]
fn stale_copy_of_the_database_is_refused() {
    // Restoring an older copy of the database (say, from a disk snapshot)
    // would roll back the vote and the log; the watermark refuses it.
    let (tmp, dir) = closed_store_with_data();
    let backup = tmp.path().join("sled-backup");
    copy_dir(&dir.join("sled"), &backup);
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (mut log, mut sm) = open(&dir).expect("reopen");
        runtime.block_on(async {
            log.save_vote(&Vote::new(3, 1)).await.expect("vote");
            let entry = write_entry(
                OBJECTS + 1,
                vec![put("services", "late", "x", Expect::Absent)],
            );
            log.blocking_append([entry.clone()]).await.expect("append");
            sm.apply([entry]).await.expect("apply");
        });
    }
    std::fs::remove_dir_all(dir.join("sled")).expect("remove current database");
    copy_dir(&backup, &dir.join("sled"));
    let reason = assert_corrupt(&dir, "stale database copy");
    assert!(reason.contains("lost durable writes"), "{reason}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create copy dir");
    for entry in std::fs::read_dir(from).expect("list") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy file");
        }
    }
}

#[test]
fn database_file_garbled_entirely() {
    let (_tmp, dir) = closed_store_with_data();
    let db = engine_file(&dir, "db");
    let len = std::fs::metadata(&db).expect("stat").len() as usize;
    garble(&db, 0.0, len);
    assert_corrupt(&dir, "db garbled entirely");
}

#[test]
fn database_file_garbled_at_start() {
    // The first pages usually hold superseded versions only, which the
    // engine never reads again: then the store is intact and may open.
    let (_tmp, dir) = closed_store_with_data();
    garble(&engine_file(&dir, "db"), 0.0, 8192);
    assert_corrupt_or_intact(&dir, "db garbled at start");
}

#[test]
fn database_file_garbled_in_the_middle() {
    let (_tmp, dir) = closed_store_with_data();
    garble(&engine_file(&dir, "db"), 0.5, 8192);
    assert_corrupt_or_intact(&dir, "db garbled in the middle");
}

#[test]
fn engine_snapshot_files_garbled() {
    let (_tmp, dir) = closed_store_with_data();
    let snaps = snap_files(&dir);
    assert!(!snaps.is_empty(), "the engine wrote snapshot files");
    for snap in &snaps {
        garble(snap, 0.0, 64);
    }
    assert_corrupt_or_intact(&dir, "snap files garbled");
}

#[test]
fn engine_snapshot_and_database_truncated() {
    let (_tmp, dir) = closed_store_with_data();
    for snap in snap_files(&dir) {
        truncate_to(&snap, 0.3);
    }
    truncate_to(&engine_file(&dir, "db"), 0.3);
    assert_corrupt(&dir, "snap and db truncated");
}

#[test]
fn database_deleted_but_marker_kept() {
    let (_tmp, dir) = closed_store_with_data();
    for entry in std::fs::read_dir(dir.join("sled")).expect("list") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path).expect("remove");
        } else {
            std::fs::remove_file(&path).expect("remove");
        }
    }
    let reason = assert_corrupt(&dir, "engine files deleted");
    assert!(reason.contains("initialised"), "{reason}");

    std::fs::remove_dir(dir.join("sled")).expect("remove engine dir");
    assert_corrupt(&dir, "engine dir deleted");
}

#[test]
fn watermark_deleted() {
    let (_tmp, dir) = closed_store_with_data();
    std::fs::remove_file(dir.join("WATERMARK")).expect("remove");
    assert_corrupt(&dir, "watermark deleted");
}

#[test]
fn unknown_schema_version_or_garbled_marker() {
    let (_tmp, dir) = closed_store_with_data();
    let marker = dir.join("STORE");
    let text = std::fs::read_to_string(&marker).expect("read marker");
    std::fs::write(
        &marker,
        text.replace("schema_version = 1", "schema_version = 99"),
    )
    .expect("write");
    let reason = assert_corrupt(&dir, "schema version 99");
    assert!(reason.contains("99"), "{reason}");

    std::fs::write(&marker, "garbage").expect("write");
    assert_corrupt(&dir, "garbled STORE file");
}

#[test]
fn foreign_directory_is_not_taken_over() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("notes.txt"), "mine").expect("write");
    let reason = assert_corrupt(tmp.path(), "foreign directory");
    assert!(reason.contains("notes.txt"), "{reason}");
}

#[test]
fn an_intact_store_reopens() {
    let (_tmp, dir) = closed_store_with_data();
    let (_log, sm) = open(&dir).expect("intact store opens");
    assert_eq!(sm.applied_index(), OBJECTS);
}
