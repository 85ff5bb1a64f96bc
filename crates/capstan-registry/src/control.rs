//! The registry's connection to the control plane: the accounts and
//! license it decides with (cached for a moment) and credential checks,
//! over HTTPS with the node's certificate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use capstan_core::registry::{AuthenticateRequest, AuthenticatedUser, DirectoryView};
use sha2::{Digest as _, Sha256};

use crate::error::{RegistryError, RegistryResult};

/// How long a directory answer is used before it is asked again.
const DIRECTORY_TTL: Duration = Duration::from_secs(2);
/// How long checked credentials are remembered.
const CREDENTIAL_TTL: Duration = Duration::from_secs(30);
/// The longest wait for the control plane.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A client of the control plane.
pub struct ControlPlane {
    client: reqwest::Client,
    base: String,
    directory: tokio::sync::Mutex<Option<(Instant, Arc<DirectoryView>)>>,
    credentials: Mutex<HashMap<[u8; 32], (Instant, AuthenticatedUser)>>,
}

/// Why the control plane could not be used.
#[derive(Debug, thiserror::Error)]
#[error("control plane client: {0}")]
pub struct ClientError(String);

impl ControlPlane {
    /// A client of the gateway at `base` (`https://host:port`) that trusts
    /// `ca_pem` and presents the node certificate.
    pub fn new(
        base: &str,
        ca_pem: &str,
        cert_pem: &str,
        key_pem: &str,
    ) -> Result<Self, ClientError> {
        let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes())
            .map_err(|e| ClientError(format!("the control plane CA: {e}")))?;
        let identity = reqwest::Identity::from_pem(format!("{cert_pem}\n{key_pem}").as_bytes())
            .map_err(|e| ClientError(format!("the node certificate: {e}")))?;
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .identity(identity)
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| ClientError(e.to_string()))?;
        Ok(Self {
            client,
            base: base.trim_end_matches('/').to_string(),
            directory: tokio::sync::Mutex::new(None),
            credentials: Mutex::new(HashMap::new()),
        })
    }

    /// The accounts and license, at most [`DIRECTORY_TTL`] old; when the
    /// control plane cannot be reached, the last answer.
    pub async fn directory(&self) -> RegistryResult<Arc<DirectoryView>> {
        let mut slot = self.directory.lock().await;
        if let Some((at, view)) = slot.as_ref() {
            if at.elapsed() < DIRECTORY_TTL {
                return Ok(view.clone());
            }
        }
        match self.fetch_directory().await {
            Ok(view) => {
                let view = Arc::new(view);
                *slot = Some((Instant::now(), view.clone()));
                Ok(view)
            }
            Err(e) => match slot.as_ref() {
                Some((_, stale)) => {
                    tracing::warn!(error = %e.message, "control plane unreachable; using the last directory");
                    Ok(stale.clone())
                }
                None => Err(e),
            },
        }
    }

    /// Forgets the cached directory (after a change the registry made).
    pub async fn refresh(&self) {
        *self.directory.lock().await = None;
    }

    /// One call to the control plane: the status and body of its answer.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> RegistryResult<(reqwest::StatusCode, bytes::Bytes)> {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req.send().await.map_err(|e| {
            RegistryError::unavailable(format!("the control plane is unreachable: {e}"))
        })?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| {
            RegistryError::unavailable(format!("the control plane answer broke: {e}"))
        })?;
        Ok((status, body))
    }

    async fn fetch_directory(&self) -> RegistryResult<DirectoryView> {
        let (status, body) = self
            .call(reqwest::Method::GET, "/api/registry/directory", None)
            .await?;
        if !status.is_success() {
            return Err(RegistryError::unavailable(format!(
                "the control plane refused the registry ({status}): {}",
                String::from_utf8_lossy(&body)
            )));
        }
        serde_json::from_slice(&body).map_err(RegistryError::internal)
    }

    /// Tells the control plane where this registry serves; with a CSR,
    /// the answer is the server certificate for that name.
    pub async fn announce(&self, url: &str, csr: Option<String>) -> RegistryResult<Option<String>> {
        let body = serde_json::to_vec(&capstan_core::registry::AnnounceRequest {
            url: url.into(),
            csr,
        })
        .map_err(RegistryError::internal)?;
        let (status, body) = self
            .call(reqwest::Method::POST, "/api/registry/announce", Some(body))
            .await?;
        if !status.is_success() {
            return Err(RegistryError::unavailable(format!(
                "the control plane refused the announcement ({status}): {}",
                String::from_utf8_lossy(&body)
            )));
        }
        let answer: capstan_core::registry::AnnounceAnswer =
            serde_json::from_slice(&body).map_err(RegistryError::internal)?;
        Ok(answer.certificate)
    }

    /// Checks a username and password (or session token); `None` when they
    /// are wrong.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &str,
        source: Option<String>,
    ) -> RegistryResult<Option<AuthenticatedUser>> {
        let mut h = Sha256::new();
        h.update(username.as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        let key: [u8; 32] = h.finalize().into();
        {
            let mut cache = self.credentials.lock().unwrap_or_else(|p| p.into_inner());
            cache.retain(|_, (at, _)| at.elapsed() < CREDENTIAL_TTL);
            if let Some((_, user)) = cache.get(&key) {
                return Ok(Some(user.clone()));
            }
        }
        let request = serde_json::to_vec(&AuthenticateRequest {
            username: username.into(),
            password: password.into(),
            source,
        })
        .map_err(RegistryError::internal)?;
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/api/registry/authenticate",
                Some(request),
            )
            .await?;
        match status.as_u16() {
            200 => {
                let user: AuthenticatedUser =
                    serde_json::from_slice(&body).map_err(RegistryError::internal)?;
                self.credentials
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key, (Instant::now(), user.clone()));
                Ok(Some(user))
            }
            400 | 401 => Ok(None),
            429 => Err(RegistryError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TOOMANYREQUESTS",
                "too many failed logins; wait and try again",
            )),
            _ => Err(RegistryError::unavailable(format!(
                "the control plane could not check the credentials ({status}): {}",
                String::from_utf8_lossy(&body)
            ))),
        }
    }
}

/// Registers a registry with the control plane at `base` with an admin's
/// credentials (what `capstan registry install` does): logs in, then
/// `POST /api/registries`.
pub async fn register(
    base: &str,
    ca_pem: &str,
    username: &str,
    password: &str,
    request: &capstan_core::registry::RegisterRequest,
) -> Result<capstan_core::registry::RegistryRecord, ClientError> {
    let base = base.trim_end_matches('/');
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes())
        .map_err(|e| ClientError(format!("--ucp-ca is not a PEM certificate: {e}")))?;
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| ClientError(e.to_string()))?;
    let call = |req: reqwest::RequestBuilder, body: Vec<u8>| async move {
        let resp = req
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| ClientError(format!("cannot reach the control plane at {base}: {e}")))?;
        let status = resp.status();
        let body = resp.bytes().await.unwrap_or_default();
        if status.is_success() {
            Ok(body)
        } else {
            Err(ClientError(format!(
                "the control plane answered {status}: {}",
                String::from_utf8_lossy(&body)
            )))
        }
    };
    let login = serde_json::json!({ "username": username, "password": password });
    let body = call(
        client.post(format!("{base}/auth/login")),
        login.to_string().into_bytes(),
    )
    .await?;
    let token = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["auth_token"].as_str().map(str::to_string))
        .ok_or_else(|| ClientError("the login answer holds no auth_token".into()))?;
    let body = call(
        client
            .post(format!("{base}/api/registries"))
            .bearer_auth(token),
        serde_json::to_vec(request).map_err(|e| ClientError(e.to_string()))?,
    )
    .await?;
    serde_json::from_slice(&body)
        .map_err(|e| ClientError(format!("unexpected registration answer: {e}")))
}
