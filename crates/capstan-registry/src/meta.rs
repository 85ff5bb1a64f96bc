//! Repository records, manifests, tags and blob links, in sled.
//!
//! Keys are `<repo>\0<digest or tag>` so that a repository's entries list
//! in order by prefix (tags come out sorted, as `tags/list` wants).

use std::collections::BTreeMap;
use std::path::Path;

use capstan_core::registry::{AccessLevel, NamespaceKind};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{RegistryError, RegistryResult};

/// Who may see a repository without a grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Anyone may pull, anonymous users included.
    Public,
    /// Only those with access.
    Private,
}

/// A repository (MSR's fields).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RepoRecord {
    /// Random id.
    pub id: String,
    /// User or organisation.
    pub namespace: String,
    /// Whether the namespace is a user's or an organisation's.
    pub namespace_type: NamespaceKind,
    /// Name within the namespace.
    pub name: String,
    /// One line.
    #[serde(default)]
    pub short_description: String,
    /// Markdown.
    #[serde(default)]
    pub long_description: String,
    /// Public or private.
    pub visibility: Visibility,
    /// Tags cannot be overwritten once pushed.
    #[serde(default)]
    pub immutable_tags: bool,
    /// Keep at most this many tags (the most recently pushed); 0 keeps all.
    #[serde(default)]
    pub tag_limit: u32,
    /// Access of the organisation's teams, by team name.
    #[serde(default)]
    pub team_access: BTreeMap<String, AccessLevel>,
    /// When made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl RepoRecord {
    /// `namespace/name`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// A blob a manifest references.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    /// Its digest.
    pub digest: String,
    /// Its size.
    pub size: u64,
}

/// An OS and architecture an image runs on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// `linux`, ...
    pub os: String,
    /// `amd64`, ...
    pub architecture: String,
    /// `v8`, ...
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

/// A stored manifest of a repository.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestRecord {
    /// Its digest.
    pub digest: String,
    /// Its media type (the stored `Content-Type`).
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// Blobs it references (config and layers).
    #[serde(default)]
    pub blobs: Vec<BlobRef>,
    /// Manifests it references (an index).
    #[serde(default)]
    pub children: Vec<String>,
    /// The manifest it refers to (OCI `subject`).
    #[serde(default)]
    pub subject: Option<String>,
    /// OCI `artifactType` (or the config's media type for artifacts).
    #[serde(default)]
    pub artifact_type: Option<String>,
    /// OCI annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// What it runs on.
    #[serde(default)]
    pub platforms: Vec<Platform>,
    /// Who pushed it.
    pub pushed_by: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub pushed_at: OffsetDateTime,
}

impl ManifestRecord {
    /// The manifest and what it references, in bytes (an image's size).
    pub fn total_size(&self) -> u64 {
        self.size + self.blobs.iter().map(|b| b.size).sum::<u64>()
    }
}

/// A tag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagRecord {
    /// The manifest it points at.
    pub digest: String,
    /// Who pushed it last.
    pub pushed_by: String,
    /// When it was first made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last moved.
    #[serde(with = "time::serde::rfc3339")]
    pub pushed_at: OffsetDateTime,
}

/// The metadata store.
pub struct Meta {
    db: sled::Db,
    repos: sled::Tree,
    manifests: sled::Tree,
    tags: sled::Tree,
    links: sled::Tree,
}

fn key(repo: &str, item: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(repo.len() + 1 + item.len());
    k.extend_from_slice(repo.as_bytes());
    k.push(0);
    k.extend_from_slice(item.as_bytes());
    k
}

fn prefix(repo: &str) -> Vec<u8> {
    key(repo, "")
}

fn item_of(k: &[u8]) -> String {
    let at = k.iter().position(|&b| b == 0).map_or(0, |i| i + 1);
    String::from_utf8_lossy(&k[at..]).into_owned()
}

fn decode<T: DeserializeOwned>(v: &[u8]) -> RegistryResult<T> {
    serde_json::from_slice(v).map_err(RegistryError::internal)
}

fn encode<T: Serialize>(v: &T) -> RegistryResult<Vec<u8>> {
    serde_json::to_vec(v).map_err(RegistryError::internal)
}

impl Meta {
    /// Opens the store in `dir`.
    pub fn open(dir: &Path) -> RegistryResult<Self> {
        let db = sled::Config::new().path(dir).open()?;
        Ok(Self {
            repos: db.open_tree("repos")?,
            manifests: db.open_tree("manifests")?,
            tags: db.open_tree("tags")?,
            links: db.open_tree("links")?,
            db,
        })
    }

    /// The database, for the trees other stores keep in it.
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Makes what was written durable before the caller answers.
    pub async fn flush(&self) -> RegistryResult<()> {
        self.db.flush_async().await?;
        Ok(())
    }

    /// A repository.
    pub fn repo(&self, name: &str) -> RegistryResult<Option<RepoRecord>> {
        self.repos.get(name)?.map(|v| decode(&v)).transpose()
    }

    /// Every repository, by name.
    pub fn repos(&self) -> RegistryResult<Vec<RepoRecord>> {
        self.repos.iter().values().map(|v| decode(&v?)).collect()
    }

    /// Writes a repository record.
    pub fn put_repo(&self, r: &RepoRecord) -> RegistryResult<()> {
        self.repos.insert(r.full_name(), encode(r)?)?;
        Ok(())
    }

    /// Makes a repository unless it exists; whether it was made.
    pub fn create_repo(&self, r: &RepoRecord) -> RegistryResult<bool> {
        let made =
            self.repos
                .compare_and_swap(r.full_name(), None as Option<&[u8]>, Some(encode(r)?))?;
        Ok(made.is_ok())
    }

    /// Removes a repository with its manifests, tags and links (the blobs
    /// stay for garbage collection).
    pub fn delete_repo(&self, name: &str) -> RegistryResult<bool> {
        let p = prefix(name);
        for tree in [&self.manifests, &self.tags, &self.links] {
            for k in tree.scan_prefix(&p).keys() {
                tree.remove(k?)?;
            }
        }
        Ok(self.repos.remove(name)?.is_some())
    }

    /// Lets `repo` reach blob `digest` (after an upload or a mount).
    pub fn link(&self, repo: &str, digest: &str) -> RegistryResult<()> {
        self.links.insert(key(repo, digest), &[])?;
        Ok(())
    }

    /// Whether `repo` may reach blob `digest`.
    pub fn linked(&self, repo: &str, digest: &str) -> RegistryResult<bool> {
        Ok(self.links.contains_key(key(repo, digest))?)
    }

    /// Removes a blob from a repository.
    pub fn unlink(&self, repo: &str, digest: &str) -> RegistryResult<bool> {
        Ok(self.links.remove(key(repo, digest))?.is_some())
    }

    /// A manifest of a repository.
    pub fn manifest(&self, repo: &str, digest: &str) -> RegistryResult<Option<ManifestRecord>> {
        self.manifests
            .get(key(repo, digest))?
            .map(|v| decode(&v))
            .transpose()
    }

    /// Every manifest of a repository.
    pub fn manifests(&self, repo: &str) -> RegistryResult<Vec<ManifestRecord>> {
        self.manifests
            .scan_prefix(prefix(repo))
            .values()
            .map(|v| decode(&v?))
            .collect()
    }

    /// Every manifest of every repository (garbage collection's roots).
    pub fn all_manifests(&self) -> RegistryResult<Vec<ManifestRecord>> {
        self.manifests
            .iter()
            .values()
            .map(|v| decode(&v?))
            .collect()
    }

    /// Every blob link: `(repo, digest)`.
    pub fn all_links(&self) -> RegistryResult<Vec<(String, String)>> {
        self.links
            .iter()
            .keys()
            .map(|k| {
                let k = k?;
                let at = k.iter().position(|&b| b == 0).unwrap_or(k.len());
                Ok((String::from_utf8_lossy(&k[..at]).into_owned(), item_of(&k)))
            })
            .collect()
    }

    /// Stores a manifest record.
    pub fn put_manifest(&self, repo: &str, m: &ManifestRecord) -> RegistryResult<()> {
        self.manifests.insert(key(repo, &m.digest), encode(m)?)?;
        Ok(())
    }

    /// Removes a manifest and the tags that point at it; whether it existed.
    pub fn delete_manifest(&self, repo: &str, digest: &str) -> RegistryResult<bool> {
        for (tag, t) in self.tags(repo)? {
            if t.digest == digest {
                self.tags.remove(key(repo, &tag))?;
            }
        }
        Ok(self.manifests.remove(key(repo, digest))?.is_some())
    }

    /// A tag.
    pub fn tag(&self, repo: &str, tag: &str) -> RegistryResult<Option<TagRecord>> {
        self.tags
            .get(key(repo, tag))?
            .map(|v| decode(&v))
            .transpose()
    }

    /// Every tag of a repository, sorted by name.
    pub fn tags(&self, repo: &str) -> RegistryResult<Vec<(String, TagRecord)>> {
        self.tags
            .scan_prefix(prefix(repo))
            .map(|kv| {
                let (k, v) = kv?;
                Ok((item_of(&k), decode(&v)?))
            })
            .collect()
    }

    /// Points a tag at a manifest.
    pub fn put_tag(&self, repo: &str, tag: &str, t: &TagRecord) -> RegistryResult<()> {
        self.tags.insert(key(repo, tag), encode(t)?)?;
        Ok(())
    }

    /// Removes a tag; whether it existed.
    pub fn delete_tag(&self, repo: &str, tag: &str) -> RegistryResult<bool> {
        Ok(self.tags.remove(key(repo, tag))?.is_some())
    }
}
