//! Content-addressed storage on the filesystem: blobs (layers, configs and
//! manifests) under `blobs/sha256/<2 hex>/<hex>`, and uploads in progress
//! under `uploads/<id>/`.
//!
//! A blob appears only by `rename` of a fully written, fsynced file whose
//! digest was checked while it was written, so a crash at any point leaves
//! either no blob or the whole blob; uploads interrupted by a crash stay
//! resumable until they expire.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{RegistryError, RegistryResult};
use crate::names::Digest;

/// The blob store.
pub struct BlobStore {
    root: PathBuf,
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl BlobStore {
    /// Opens (and makes) the store under `root`.
    pub fn open(root: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(root.join("blobs/sha256"))?;
        std::fs::create_dir_all(root.join("uploads"))?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    /// Where a blob lives.
    pub fn path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("blobs/sha256")
            .join(&d.hex()[..2])
            .join(d.hex())
    }

    /// The blob's size, if it is stored.
    pub fn size(&self, d: &Digest) -> io::Result<Option<u64>> {
        match std::fs::metadata(self.path(d)) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Marks a blob as just used, so that a garbage collection running now
    /// keeps it for the push that is about to reference it.
    pub fn touch(&self, d: &Digest) {
        if let Ok(f) = std::fs::File::options().append(true).open(self.path(d)) {
            let _ = f.set_modified(SystemTime::now());
        }
    }

    /// Reads a whole (small) blob.
    pub fn read(&self, d: &Digest) -> io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.path(d)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stores bytes whose digest the caller computed.
    pub fn put(&self, d: &Digest, bytes: &[u8]) -> io::Result<()> {
        if self.size(d)?.is_some() {
            return Ok(());
        }
        let tmp = self
            .root
            .join("uploads")
            .join(format!("put-{}", uuid::Uuid::new_v4().simple()));
        let written = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut f, bytes)?;
            f.sync_all()
        })();
        match written.and_then(|()| self.commit(&tmp, d)) {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// Moves a fully written and fsynced file into place as blob `d`.
    fn commit(&self, file: &Path, d: &Digest) -> io::Result<()> {
        let dest = self.path(d);
        let dir = dest.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir)?;
        std::fs::rename(file, &dest)?;
        sync_dir(dir)
    }

    /// Removes a blob; whether it was there.
    pub fn delete(&self, d: &Digest) -> io::Result<bool> {
        match std::fs::remove_file(self.path(d)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every stored blob with its size and last use.
    pub fn all(&self) -> io::Result<Vec<(Digest, u64, SystemTime)>> {
        let mut out = Vec::new();
        for prefix in std::fs::read_dir(self.root.join("blobs/sha256"))? {
            let prefix = prefix?;
            if !prefix.file_type()?.is_dir() {
                continue;
            }
            for blob in std::fs::read_dir(prefix.path())? {
                let blob = blob?;
                let name = blob.file_name().to_string_lossy().to_string();
                if let Ok(d) = Digest::parse(&format!("sha256:{name}")) {
                    let m = blob.metadata()?;
                    out.push((d, m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
                }
            }
        }
        Ok(out)
    }

    fn upload_dir(&self, id: &str) -> PathBuf {
        self.root.join("uploads").join(id)
    }
}

/// What is kept on disk beside an upload's data.
#[derive(Serialize, Deserialize)]
struct UploadInfo {
    repo: String,
}

/// An upload in progress.
pub struct Upload {
    /// Its id (the `Docker-Upload-UUID`).
    pub id: String,
    /// The repository it was started in.
    pub repo: String,
    /// Bytes received so far.
    pub size: u64,
    hasher: Sha256,
    data: PathBuf,
}

/// Uploads in progress, resumable across requests and restarts.
pub struct Uploads {
    store: Arc<BlobStore>,
    open: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Upload>>>>,
    /// Uploads untouched for this long are removed.
    pub timeout: Duration,
}

/// Checks an upload id from a URL (a simple UUID) before it names a folder.
fn check_id(id: &str) -> RegistryResult<()> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(RegistryError::upload_unknown(id))
    }
}

impl Uploads {
    /// Uploads of a blob store.
    pub fn new(store: Arc<BlobStore>, timeout: Duration) -> Self {
        Self {
            store,
            open: Mutex::new(HashMap::new()),
            timeout,
        }
    }

    /// Starts an upload into `repo`.
    pub async fn start(&self, repo: &str) -> RegistryResult<Arc<tokio::sync::Mutex<Upload>>> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = self.store.upload_dir(&id);
        tokio::fs::create_dir_all(&dir).await?;
        let info = serde_json::to_vec(&UploadInfo { repo: repo.into() })
            .map_err(RegistryError::internal)?;
        tokio::fs::write(dir.join("info.json"), info).await?;
        tokio::fs::File::create(dir.join("data")).await?;
        let up = Arc::new(tokio::sync::Mutex::new(Upload {
            id: id.clone(),
            repo: repo.into(),
            size: 0,
            hasher: Sha256::new(),
            data: dir.join("data"),
        }));
        self.lock().insert(id, up.clone());
        Ok(up)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<Upload>>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An upload of `repo` by id: in memory, or found on disk after a
    /// restart (its hash state is rebuilt from the bytes received).
    pub async fn get(
        &self,
        repo: &str,
        id: &str,
    ) -> RegistryResult<Arc<tokio::sync::Mutex<Upload>>> {
        check_id(id)?;
        let found = self.lock().get(id).cloned();
        let up = match found {
            Some(up) => up,
            None => {
                let dir = self.store.upload_dir(id);
                let info: UploadInfo = match tokio::fs::read(dir.join("info.json")).await {
                    Ok(b) => {
                        serde_json::from_slice(&b).map_err(|_| RegistryError::upload_unknown(id))?
                    }
                    Err(_) => return Err(RegistryError::upload_unknown(id)),
                };
                let data = dir.join("data");
                let mut f = tokio::fs::File::open(&data)
                    .await
                    .map_err(|_| RegistryError::upload_unknown(id))?;
                let mut hasher = Sha256::new();
                let mut size = 0u64;
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = f.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                    size += n as u64;
                }
                let up = Arc::new(tokio::sync::Mutex::new(Upload {
                    id: id.into(),
                    repo: info.repo,
                    size,
                    hasher,
                    data,
                }));
                self.lock().entry(id.into()).or_insert(up).clone()
            }
        };
        if up.lock().await.repo != repo {
            return Err(RegistryError::upload_unknown(id));
        }
        Ok(up)
    }

    /// Appends a body to an upload, hashing as it goes. On a broken stream
    /// the bytes received so far stay (the client resumes from `size`).
    pub async fn append<S, E>(&self, up: &mut Upload, mut body: S) -> RegistryResult<()>
    where
        S: futures::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let mut f = tokio::fs::File::options()
            .append(true)
            .open(&up.data)
            .await?;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    f.flush().await?;
                    return Err(RegistryError::new(
                        axum::http::StatusCode::BAD_REQUEST,
                        "BLOB_UPLOAD_INVALID",
                        format!("the upload stream broke after {} bytes: {e}", up.size),
                    ));
                }
            };
            if let Err(e) = f.write_all(&chunk).await {
                // Keep the file and the hash in step: cut back to what was hashed.
                let _ = f.set_len(up.size).await;
                return Err(e.into());
            }
            up.hasher.update(&chunk);
            up.size += chunk.len() as u64;
        }
        f.flush().await?;
        Ok(())
    }

    /// Finishes an upload: checks the digest, fsyncs and moves the data
    /// into the blob store. A mismatch removes the upload.
    pub async fn finish(&self, up: &mut Upload, expected: &Digest) -> RegistryResult<u64> {
        let got = Digest::from_hash(up.hasher.clone().finalize().as_slice());
        let dir = self.store.upload_dir(&up.id);
        if &got != expected {
            self.remove(&up.id).await;
            return Err(RegistryError::digest_invalid(format!(
                "the uploaded content has digest {got}, not {expected}; the upload was discarded"
            ))
            .with_detail(
                serde_json::json!({ "expected": expected.as_str(), "actual": got.as_str() }),
            ));
        }
        let size = up.size;
        let store = self.store.clone();
        let data = up.data.clone();
        let digest = got.clone();
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            if store.size(&digest)?.is_some() {
                return Ok(());
            }
            std::fs::File::open(&data)?.sync_all()?;
            store.commit(&data, &digest)
        })
        .await
        .map_err(RegistryError::internal)??;
        let _ = tokio::fs::remove_dir_all(&dir).await;
        self.lock().remove(&up.id);
        Ok(size)
    }

    /// Cancels an upload.
    pub async fn remove(&self, id: &str) {
        self.lock().remove(id);
        let _ = tokio::fs::remove_dir_all(self.store.upload_dir(id)).await;
    }

    /// Removes uploads whose data was not written for [`Self::timeout`];
    /// returns how many.
    pub async fn expire(&self) -> usize {
        let mut gone = 0;
        let Ok(mut rd) = tokio::fs::read_dir(self.store.root.join("uploads")).await else {
            return 0;
        };
        while let Ok(Some(e)) = rd.next_entry().await {
            let path = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            let probe = if path.is_dir() {
                path.join("data")
            } else {
                path.clone()
            };
            let age = tokio::fs::metadata(&probe)
                .await
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .unwrap_or(Duration::MAX);
            if age >= self.timeout {
                self.lock().remove(&name);
                let _ = if path.is_dir() {
                    tokio::fs::remove_dir_all(&path).await
                } else {
                    tokio::fs::remove_file(&path).await
                };
                gone += 1;
            }
        }
        gone
    }
}
