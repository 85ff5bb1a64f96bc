//! A client of the OCI distribution API for `capstan bench registry`: it
//! follows Docker's token challenge, pushes blobs the way `docker push`
//! does (POST, one PATCH with the data, PUT with the digest), puts Docker
//! schema 2 manifests, and pulls images with every digest and size checked
//! while the data streams in, so that nothing is held in memory.

use std::sync::Arc;

use anyhow::{bail, ensure, Context};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use rand::{RngCore, SeedableRng};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Client, RequestBuilder, Response, StatusCode, Url};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Docker's image manifest, schema 2.
const MANIFEST_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// What a pull accepts, as `docker pull` sends it.
const ACCEPTED_MANIFESTS: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.docker.container.image.v1+json";
const LAYER_TYPE: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// A blob and its digest.
#[derive(Clone)]
pub struct Blob {
    /// `sha256:<hex>`.
    pub digest: String,
    /// The content (cheap to clone: it is shared).
    pub data: Bytes,
}

impl Blob {
    /// `data` with its digest.
    pub fn new(data: Vec<u8>) -> Blob {
        Blob {
            digest: sha256_digest(&data),
            data: Bytes::from(data),
        }
    }
}

/// An image: its config blob, its layers and its manifest.
pub struct Image {
    /// The image configuration.
    pub config: Blob,
    /// The layers (random bytes: a registry never looks inside them).
    pub layers: Vec<Blob>,
    /// The manifest as pushed, and its digest.
    pub manifest: Blob,
}

impl Image {
    /// An image of `layers` random layers of `layer_bytes` each; the same
    /// `seed` makes the same image, so every system gets the same bytes.
    pub fn random(seed: u64, layers: usize, layer_bytes: usize) -> Image {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let layers: Vec<Blob> = (0..layers)
            .map(|_| {
                let mut data = vec![0u8; layer_bytes];
                rng.fill_bytes(&mut data);
                Blob::new(data)
            })
            .collect();
        let diff_ids: Vec<&str> = layers.iter().map(|l| l.digest.as_str()).collect();
        let config = Blob::new(
            json!({
                "architecture": "amd64",
                "os": "linux",
                "config": {"Labels": {"capstan.bench.seed": seed.to_string()}},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            })
            .to_string()
            .into_bytes(),
        );
        let descriptors: Vec<Value> = layers
            .iter()
            .map(|l| json!({"mediaType": LAYER_TYPE, "size": l.data.len(), "digest": l.digest}))
            .collect();
        let manifest = Blob::new(
            json!({
                "schemaVersion": 2,
                "mediaType": MANIFEST_TYPE,
                "config": {"mediaType": CONFIG_TYPE, "size": config.data.len(), "digest": config.digest},
                "layers": descriptors,
            })
            .to_string()
            .into_bytes(),
        );
        Image {
            config,
            layers,
            manifest,
        }
    }

    /// Bytes of the config and the layers: what a push uploads and a pull
    /// downloads, the manifest aside.
    pub fn blob_bytes(&self) -> u64 {
        self.blobs().map(|b| b.data.len() as u64).sum()
    }

    fn blobs(&self) -> impl Iterator<Item = &Blob> {
        std::iter::once(&self.config).chain(&self.layers)
    }
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex_lower(&Sha256::digest(data)))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A registry: where it answers, whom it trusts, and who we are there.
#[derive(Clone)]
pub struct Endpoint {
    /// `https://host:port/`.
    pub base: Url,
    tls: Arc<rustls::ClientConfig>,
    /// Basic credentials for the token service; `None` for a registry
    /// without authentication.
    credentials: Option<(String, String)>,
}

impl Endpoint {
    /// The registry at `base`, whose certificate `tls` trusts.
    pub fn new(
        base: &str,
        tls: Arc<rustls::ClientConfig>,
        credentials: Option<(String, String)>,
    ) -> anyhow::Result<Endpoint> {
        Ok(Endpoint {
            base: Url::parse(base).with_context(|| format!("registry URL {base}"))?,
            tls,
            credentials,
        })
    }

    /// A new client with its own connections, like another `docker` daemon.
    pub fn client(&self) -> anyhow::Result<Client> {
        Client::builder()
            .use_preconfigured_tls((*self.tls).clone())
            .build()
            .context("build the registry client")
    }

    /// Waits until `GET /v2/` answers (200, or 401 with a challenge).
    pub async fn wait_ready(&self, timeout: std::time::Duration) -> anyhow::Result<()> {
        let client = self.client()?;
        let url = self.base.join("/v2/")?;
        let started = std::time::Instant::now();
        loop {
            let err = match client.get(url.clone()).send().await {
                Ok(r) if r.status().is_success() || r.status() == StatusCode::UNAUTHORIZED => {
                    return Ok(())
                }
                Ok(r) => anyhow::anyhow!("GET {url} answered {}", r.status()),
                Err(e) => anyhow::Error::new(e).context(format!("GET {url}")),
            };
            if started.elapsed() > timeout {
                return Err(err.context(format!("the registry did not answer within {timeout:?}")));
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// A session on `repo` allowed `actions` (`pull` or `pull,push`): a new
    /// client and, when the registry challenges, a token from its token
    /// service.
    pub async fn session(&self, repo: &str, actions: &str) -> anyhow::Result<Session> {
        let client = self.client()?;
        let token = self.token(&client, repo, actions).await?;
        Ok(Session {
            client,
            base: self.base.clone(),
            repo: repo.to_string(),
            authorization: token.map(|t| format!("Bearer {t}")),
        })
    }

    /// Follows the challenge of `GET /v2/`, as `docker` does; `None` when
    /// the registry asks for no authentication.
    async fn token(
        &self,
        client: &Client,
        repo: &str,
        actions: &str,
    ) -> anyhow::Result<Option<String>> {
        let resp = client.get(self.base.join("/v2/")?).send().await?;
        if resp.status().is_success() {
            return Ok(None);
        }
        ensure!(
            resp.status() == StatusCode::UNAUTHORIZED,
            "GET /v2/ answered {}",
            resp.status()
        );
        let challenge = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .context("GET /v2/ answered 401 without a WWW-Authenticate challenge")?;
        let (realm, service) = bearer_challenge(challenge)?;
        let mut url = Url::parse(&realm).with_context(|| format!("token realm {realm:?}"))?;
        url.query_pairs_mut()
            .append_pair("service", &service)
            .append_pair("scope", &format!("repository:{repo}:{actions}"));
        let mut req = client.get(url);
        if let Some((user, password)) = &self.credentials {
            req = req.basic_auth(user, Some(password));
        }
        let answer: Value = serde_json::from_slice(&expect(req, StatusCode::OK, "token").await?)
            .context("the token answer is not JSON")?;
        let token = answer["token"]
            .as_str()
            .or_else(|| answer["access_token"].as_str())
            .context("the token answer has no token")?;
        Ok(Some(token.to_string()))
    }
}

/// `realm` and `service` of a `Bearer realm="...",service="..."` challenge.
fn bearer_challenge(header: &str) -> anyhow::Result<(String, String)> {
    let params = header
        .strip_prefix("Bearer ")
        .with_context(|| format!("challenge {header:?} is not a Bearer challenge"))?;
    let mut realm = None;
    let mut service = String::new();
    for part in params.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            continue;
        };
        let value = value.trim_matches('"').to_string();
        match key {
            "realm" => realm = Some(value),
            "service" => service = value,
            _ => {}
        }
    }
    let realm = realm.with_context(|| format!("challenge {header:?} has no realm"))?;
    Ok((realm, service))
}

/// A client on one repository, with its token if the registry wants one.
/// Cheap to clone: clones share the client's connection pool.
#[derive(Clone)]
pub struct Session {
    client: Client,
    base: Url,
    repo: String,
    authorization: Option<String>,
}

impl Session {
    fn url(&self, path: &str) -> anyhow::Result<Url> {
        Ok(self.base.join(&format!("/v2/{}/{path}", self.repo))?)
    }

    fn authorized(&self, req: RequestBuilder) -> RequestBuilder {
        match &self.authorization {
            Some(a) => req.header(AUTHORIZATION, a),
            None => req,
        }
    }

    /// Pushes `image` as `tag`: its blobs `uploads` at a time, then the
    /// manifest. Each blob is a task of its own, so that the client's TLS
    /// and hashing are spread over the cores like the server's work.
    pub async fn push(&self, image: &Image, tag: &str, uploads: usize) -> anyhow::Result<()> {
        let blobs = image.blobs().map(|blob| {
            let (session, blob) = (self.clone(), blob.clone());
            async move { tokio::spawn(async move { session.push_blob(&blob).await }).await? }
        });
        futures::stream::iter(blobs)
            .buffer_unordered(uploads)
            .try_collect::<Vec<()>>()
            .await?;
        let req = self
            .authorized(self.client.put(self.url(&format!("manifests/{tag}"))?))
            .header(CONTENT_TYPE, MANIFEST_TYPE)
            .body(image.manifest.data.clone());
        expect(req, StatusCode::CREATED, "PUT manifest").await?;
        Ok(())
    }

    /// Uploads one blob: start an upload, send the data in one PATCH,
    /// finish with its digest.
    pub async fn push_blob(&self, blob: &Blob) -> anyhow::Result<()> {
        let started = self
            .authorized(self.client.post(self.url("blobs/uploads/")?))
            .send()
            .await?;
        let location = upload_location(started, StatusCode::ACCEPTED, "POST blobs/uploads/")?;
        let req = self
            .authorized(self.client.patch(self.base.join(&location)?))
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(blob.data.clone());
        let location = upload_location(req.send().await?, StatusCode::ACCEPTED, "PATCH upload")?;
        let mut finish = self.base.join(&location)?;
        finish.query_pairs_mut().append_pair("digest", &blob.digest);
        let req = self
            .authorized(self.client.put(finish))
            .header(CONTENT_TYPE, "application/octet-stream");
        expect(req, StatusCode::CREATED, "PUT upload").await?;
        Ok(())
    }

    /// Pulls `tag`: the manifest (checked against `manifest_digest`), then
    /// its config and layers `downloads` at a time, each checked against
    /// its digest and size, each in a task of its own. Returns the blob
    /// bytes received.
    pub async fn pull(
        &self,
        tag: &str,
        manifest_digest: &str,
        downloads: usize,
    ) -> anyhow::Result<u64> {
        let req = self
            .authorized(self.client.get(self.url(&format!("manifests/{tag}"))?))
            .header(ACCEPT, ACCEPTED_MANIFESTS);
        let manifest = expect(req, StatusCode::OK, "GET manifest").await?;
        ensure!(
            sha256_digest(&manifest) == manifest_digest,
            "the manifest of {}:{tag} is not the one pushed",
            self.repo
        );
        let manifest: Value = serde_json::from_slice(&manifest).context("manifest JSON")?;
        let mut wanted = vec![descriptor(&manifest["config"])?];
        for layer in manifest["layers"]
            .as_array()
            .context("manifest has no layers")?
        {
            wanted.push(descriptor(layer)?);
        }
        let blobs = wanted.into_iter().map(|(digest, size)| {
            let session = self.clone();
            async move { tokio::spawn(async move { session.pull_blob(digest, size).await }).await? }
        });
        let sizes: Vec<u64> = futures::stream::iter(blobs)
            .buffer_unordered(downloads)
            .try_collect()
            .await?;
        Ok(sizes.iter().sum())
    }

    async fn pull_blob(&self, digest: String, size: u64) -> anyhow::Result<u64> {
        let req = self.authorized(self.client.get(self.url(&format!("blobs/{digest}"))?));
        let mut resp = req.send().await?;
        if resp.status() != StatusCode::OK {
            bail!("GET blob {digest} answered {}", resp.status());
        }
        let mut hash = Sha256::new();
        let mut received = 0u64;
        while let Some(chunk) = resp.chunk().await? {
            hash.update(&chunk);
            received += chunk.len() as u64;
        }
        ensure!(
            received == size,
            "blob {digest}: received {received} bytes, the manifest says {size}"
        );
        let got = format!("sha256:{}", hex_lower(&hash.finalize()));
        ensure!(got == digest, "blob {digest} arrived as {got}");
        Ok(received)
    }
}

/// `(digest, size)` of a manifest descriptor.
fn descriptor(d: &Value) -> anyhow::Result<(String, u64)> {
    let digest = d["digest"].as_str().context("descriptor without digest")?;
    let size = d["size"].as_u64().context("descriptor without size")?;
    Ok((digest.to_string(), size))
}

/// The `Location` of an upload answer that has status `want`.
fn upload_location(resp: Response, want: StatusCode, what: &str) -> anyhow::Result<String> {
    if resp.status() != want {
        bail!("{what} answered {} instead of {want}", resp.status());
    }
    let location = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .with_context(|| format!("{what} answered without a Location"))?;
    Ok(location.to_string())
}

/// Sends `req` and returns the body of an answer with status `want`, or
/// fails with the answer's status and body.
pub async fn expect(req: RequestBuilder, want: StatusCode, what: &str) -> anyhow::Result<Bytes> {
    let resp = req.send().await.with_context(|| format!("{what}: send"))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .with_context(|| format!("{what}: read the answer"))?;
    if status != want {
        bail!(
            "{what} answered {status} instead of {want}: {}",
            String::from_utf8_lossy(&body).trim()
        );
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_realm_and_service_of_a_bearer_challenge() {
        let (realm, service) = bearer_challenge(
            r#"Bearer realm="https://127.0.0.1:5443/auth/token",service="capstan-registry",scope="repository:admin/x:pull""#,
        )
        .expect("a valid challenge");
        assert_eq!(realm, "https://127.0.0.1:5443/auth/token");
        assert_eq!(service, "capstan-registry");
        assert!(bearer_challenge(r#"Basic realm="x""#).is_err());
        assert!(bearer_challenge(r#"Bearer service="x""#).is_err());
    }

    #[test]
    fn the_same_seed_makes_the_same_image() {
        let a = Image::random(7, 2, 1000);
        let b = Image::random(7, 2, 1000);
        let c = Image::random(8, 2, 1000);
        assert_eq!(a.manifest.digest, b.manifest.digest);
        assert_ne!(a.manifest.digest, c.manifest.digest);
        assert_eq!(a.blob_bytes(), 2000 + a.config.data.len() as u64);
        let manifest: Value = serde_json::from_slice(&a.manifest.data).expect("JSON");
        assert_eq!(manifest["layers"][1]["digest"], a.layers[1].digest.as_str());
        assert_eq!(manifest["config"]["digest"], a.config.digest.as_str());
    }

    #[test]
    fn digests_are_sha256_in_lowercase_hex() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
