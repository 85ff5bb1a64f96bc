//! `/api/clientbundle`: client bundles, MKE's `ucp-bundle-<user>.zip`.
//!
//! A bundle is a new key pair and a certificate the cluster CA issues to a
//! user (CN = username, UID = user id), zipped with the cluster CA, shell
//! and Windows scripts that point the docker CLI at this gateway, a
//! kubeconfig and a docker context description. The private key is made
//! here, answered once and never stored; the store keeps a record per
//! certificate (serial, owner, fingerprint, expiry, revocation) that the
//! client-certificate authentication in [`crate::auth`] checks on every
//! request.
//!
//! Managing bundles (making, listing, revoking) is `account.update` on the
//! owner's account: self-service for one's own, admins for anyone's, and a
//! grant of it on `/` otherwise (the same right that changes another
//! user's password).

use std::io::{Cursor, Write};

use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, HOST};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use capstan_core::bundle::{parse_bundle_id, parse_ttl_days, validate_label, ClientBundle};
use capstan_core::rbac::Resource;
use capstan_core::user::validate_username;
use capstan_core::User;
use capstan_manager::config::join_host_port;
use capstan_pki::{ClientCert, ClientSubject, PkiError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use zip::write::SimpleFileOptions;

use super::{commit, create_op, op, put_op};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiQuery;
use crate::AppState;

/// The port a `Host` header without one means (HTTPS).
const DEFAULT_HTTPS_PORT: u16 = 443;

/// What to put in a new bundle.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BundleQuery {
    /// A description of the bundle, at most 100 printable characters.
    #[param(max_length = 100)]
    pub label: Option<String>,
    /// Whose bundle (default: the caller). Only admins (or holders of
    /// `account.update` on `/`) may name another user.
    pub user: Option<String>,
    /// Lifetime of the certificate in days, 1 to 365 (default 90). Taken
    /// as text so that a bad value gets an error naming the parameter.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 365)]
    pub ttl_days: Option<String>,
}

/// Whose bundles to list.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CertsQuery {
    /// The user (default: the caller).
    pub user: Option<String>,
}

/// A bundle as listed; the certificate and key are never shown again.
#[derive(Serialize, ToSchema)]
pub struct BundleView {
    /// The certificate serial number (hex): the bundle's id.
    pub id: String,
    /// The owner's username.
    pub user: String,
    /// Its description.
    pub label: String,
    /// When it was made (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When the certificate expires (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub not_after: OffsetDateTime,
    /// Whether it was revoked (it no longer authenticates).
    pub revoked: bool,
    /// When it was revoked (RFC 3339), if it was.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<OffsetDateTime>,
    /// SHA-256 of the certificate's public key (DER SubjectPublicKeyInfo), hex.
    pub fingerprint: String,
}

impl From<&ClientBundle> for BundleView {
    fn from(b: &ClientBundle) -> Self {
        Self {
            id: b.id.clone(),
            user: b.username.clone(),
            label: b.label.clone(),
            created_at: b.created_at,
            not_after: b.not_after,
            revoked: b.revoked(),
            revoked_at: b.revoked_at,
            fingerprint: b.public_key_sha256.clone(),
        }
    }
}

/// The bundle archive, as the OpenAPI document describes it.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
// Only its schema is used: the answer is the archive's bytes.
#[allow(dead_code)]
pub struct BundleZip(Vec<u8>);

/// Makes a new client bundle (MKE's `GET /api/clientbundle`).
#[utoipa::path(get, path = "/api/clientbundle", tag = "clientbundle", params(BundleQuery), security(("bearer" = [])),
    responses((status = 200, description = "The bundle: ca.pem, cert.pem, key.pem, cert.pub, env.sh, env.ps1, env.cmd, kube.yml, meta.json",
                  body = BundleZip, content_type = "application/zip"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_bundle(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
    ApiQuery(q): ApiQuery<BundleQuery>,
) -> ApiResult<Response> {
    make_bundle(&gw, &caller, &headers, &uri, q).await
}

/// Makes a new client bundle (MKE's `POST /api/clientbundle`).
#[utoipa::path(post, path = "/api/clientbundle", tag = "clientbundle", params(BundleQuery), security(("bearer" = [])),
    responses((status = 200, description = "The bundle: ca.pem, cert.pem, key.pem, cert.pub, env.sh, env.ps1, env.cmd, kube.yml, meta.json",
                  body = BundleZip, content_type = "application/zip"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn post_bundle(
    State(gw): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
    ApiQuery(q): ApiQuery<BundleQuery>,
) -> ApiResult<Response> {
    make_bundle(&gw, &caller, &headers, &uri, q).await
}

/// Lists a user's bundles, revoked ones included, oldest first.
#[utoipa::path(get, path = "/api/clientbundle/certs", tag = "clientbundle", params(CertsQuery), security(("bearer" = [])),
    responses((status = 200, body = [BundleView]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_certs(
    caller: Caller,
    ApiQuery(q): ApiQuery<CertsQuery>,
) -> ApiResult<Json<Vec<BundleView>>> {
    let owner = owner(&caller, q.user.as_deref())?;
    let mut list: Vec<&ClientBundle> = caller
        .snap
        .client_bundles
        .values()
        .filter(|b| b.user_id == owner.id)
        .collect();
    list.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(Json(list.into_iter().map(BundleView::from).collect()))
}

/// Revokes a bundle: its certificate stops authenticating at once. Bundles
/// the caller may not manage answer 404, like ones that do not exist.
#[utoipa::path(delete, path = "/api/clientbundle/certs/{id}", tag = "clientbundle", security(("bearer" = [])),
    params(("id" = String, Path, description = "The bundle id: its certificate serial in hex")),
    responses((status = 204, description = "Revoked (or already revoked)"), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_cert(
    State(gw): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_bundle_id(&id).map_err(ApiError::invalid)?;
    let hidden = || ApiError::not_found(format!("client bundle {id} does not exist"));
    let bundle = caller.snap.client_bundles.get(&id).ok_or_else(hidden)?;
    // Denied is audited, but answered like a missing bundle so that serials
    // of other users' bundles cannot be probed.
    caller
        .authorize(
            op!("account.update"),
            Resource::Account(&bundle.user_id),
            &format!("client bundle {id} of {}", bundle.username),
        )
        .map_err(|_| hidden())?;
    if bundle.revoked() {
        return Ok(StatusCode::NO_CONTENT);
    }
    let mut revoked = bundle.clone();
    revoked.revoked_at = Some(OffsetDateTime::now_utc());
    commit(&gw, vec![put_op(&revoked)]).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The user whose bundles are managed, once the caller may manage them.
/// A caller who could not manage another user's bundles learns nothing
/// about whether that user exists (403, not 404).
fn owner<'a>(caller: &'a Caller, user: Option<&str>) -> ApiResult<&'a User> {
    let name = user.unwrap_or(&caller.username);
    if user.is_some() {
        validate_username(name)
            .map_err(|e| ApiError::invalid(format!("invalid user parameter: {e}")))?;
    }
    let object = format!("client bundles of {name}");
    match caller.snap.users.get(name) {
        Some(u) => {
            caller.authorize(op!("account.update"), Resource::Account(&u.id), &object)?;
            Ok(u)
        }
        None => {
            caller.authorize(op!("account.update"), Resource::Collection("/"), &object)?;
            Err(ApiError::not_found(format!(
                "user {name:?} (the user parameter) does not exist"
            )))
        }
    }
}

async fn make_bundle(
    gw: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    uri: &Uri,
    q: BundleQuery,
) -> ApiResult<Response> {
    caller.audit_always();
    let user = owner(caller, q.user.as_deref())?;
    let label = q.label.unwrap_or_default();
    validate_label(&label).map_err(ApiError::invalid)?;
    let days = parse_ttl_days(q.ttl_days.as_deref()).map_err(ApiError::invalid)?;
    let now = OffsetDateTime::now_utc();
    check_within_ca(gw, now, days)?;
    let (cert, record) = issue(gw, user, label, days, now)?;
    let endpoint = Endpoint::of_request(gw, headers, uri);
    let files = BundleFiles {
        ca_pem: gw.manager.ca.cert_pem(),
        cert: &cert,
        endpoint: &endpoint,
        username: &user.username,
        label: &record.label,
    };
    // Packed first: a failure to pack leaves no record behind.
    let archive = files.zip(now).map_err(ApiError::internal)?;
    commit(gw, vec![create_op(&record)]).await?;
    caller.note_object(&format!(
        "client bundle {} of {}",
        record.id, record.username
    ));
    Ok(zip_answer(&user.username, archive))
}

/// A new certificate for `user` and the record that stands for it.
fn issue(
    gw: &AppState,
    user: &User,
    label: String,
    days: u32,
    now: OffsetDateTime,
) -> ApiResult<(ClientCert, ClientBundle)> {
    let subject = ClientSubject {
        username: &user.username,
        user_id: &user.id,
    };
    let ttl = std::time::Duration::from_secs(u64::from(days) * 86_400);
    let cert = gw
        .manager
        .ca
        .issue_client_cert(subject, ttl)
        .map_err(pki_error)?;
    let record = ClientBundle {
        id: cert.issued.serial.clone(),
        user_id: user.id.clone(),
        username: user.username.clone(),
        label,
        created_at: now,
        not_after: cert.issued.not_after,
        public_key_sha256: cert.public_key_sha256.clone(),
        revoked_at: None,
    };
    Ok((cert, record))
}

/// The archive as a download named like MKE's.
fn zip_answer(username: &str, archive: Vec<u8>) -> Response {
    (
        [
            (CONTENT_TYPE, "application/zip".to_string()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"ucp-bundle-{username}.zip\""),
            ),
            // It holds a private key: no cache may keep it.
            (CACHE_CONTROL, "no-store".to_string()),
        ],
        archive,
    )
        .into_response()
}

/// A certificate outliving its CA would stop working with it; say so now.
fn check_within_ca(gw: &AppState, now: OffsetDateTime, days: u32) -> ApiResult<()> {
    let ca_end = gw.manager.ca.not_after();
    if now + time::Duration::days(i64::from(days)) > ca_end {
        let left = (ca_end - now).whole_days().max(0);
        return Err(ApiError::invalid(format!(
            "ttl_days {days} reaches past the cluster CA's expiry ({ca_end}): use at most {left}"
        )));
    }
    Ok(())
}

fn pki_error(e: PkiError) -> ApiError {
    match e {
        PkiError::InvalidName { .. } | PkiError::InvalidTtl { .. } => {
            ApiError::invalid(format!("cannot issue a client certificate: {e}"))
        }
        other => ApiError::internal(other),
    }
}

/// Where the bundle's clients reach this cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// Host name or IP (without brackets).
    host: String,
    /// The gateway port (docker CLI).
    docker_port: u16,
    /// The Kubernetes API port.
    kube_port: u16,
}

impl Endpoint {
    /// The host the client used, when it is one the node certificate names
    /// (else the bundle would not verify); otherwise the manager's address.
    pub(crate) fn of_request(gw: &AppState, headers: &HeaderMap, uri: &Uri) -> Self {
        let config = &gw.manager.config;
        let known = capstan_manager::bootstrap::manager_hosts(config);
        let asked = headers
            .get(HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| uri.authority().map(|a| a.as_str()));
        let (host, docker_port) = asked
            .and_then(split_host_port)
            .and_then(|(host, port)| {
                known
                    .iter()
                    .find(|k| k.eq_ignore_ascii_case(&host))
                    .map(|k| (k.clone(), port.unwrap_or(DEFAULT_HTTPS_PORT)))
            })
            .unwrap_or_else(|| (config.host_address.clone(), config.controller_port));
        Self {
            host,
            docker_port,
            kube_port: config.kube_apiserver_port,
        }
    }

    /// The gateway's URL (`https://host[:port]`).
    pub(crate) fn gateway_url(&self) -> String {
        if self.docker_port == DEFAULT_HTTPS_PORT {
            format!(
                "https://{}",
                join_host_port(&self.host, DEFAULT_HTTPS_PORT).trim_end_matches(":443")
            )
        } else {
            format!("https://{}", join_host_port(&self.host, self.docker_port))
        }
    }

    fn docker_host(&self) -> String {
        format!("tcp://{}", join_host_port(&self.host, self.docker_port))
    }

    fn kube_server(&self) -> String {
        format!("https://{}", join_host_port(&self.host, self.kube_port))
    }

    /// The kubeconfig name of cluster, user and context, as MKE names them.
    fn kube_name(&self, username: &str) -> String {
        format!(
            "ucp_{}_{username}",
            join_host_port(&self.host, self.kube_port)
        )
    }
}

/// Splits a `Host` value into host and optional port; `None` when it is
/// not `host[:port]` (IPv6 literals in brackets).
fn split_host_port(value: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        match after {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?)),
        }
    } else {
        match value.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (value, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p != 0)?),
    };
    Some((host.to_string(), port))
}

/// Everything that goes into one bundle archive.
struct BundleFiles<'a> {
    ca_pem: &'a str,
    cert: &'a ClientCert,
    endpoint: &'a Endpoint,
    username: &'a str,
    label: &'a str,
}

impl BundleFiles<'_> {
    /// The archive: each file with its name and Unix mode.
    fn zip(&self, now: OffsetDateTime) -> zip::result::ZipResult<Vec<u8>> {
        let files: [(&str, String, u32); 9] = [
            ("ca.pem", self.ca_pem.to_string(), 0o644),
            ("cert.pem", self.cert.issued.cert_pem.clone(), 0o644),
            ("key.pem", self.cert.key_pem.clone(), 0o600),
            ("cert.pub", self.cert.public_key_pem.clone(), 0o644),
            ("env.sh", self.env_sh(), 0o644),
            ("env.ps1", self.env_ps1(), 0o644),
            ("env.cmd", self.env_cmd(), 0o644),
            ("kube.yml", self.kube_yml(), 0o600),
            ("meta.json", self.meta_json(), 0o644),
        ];
        let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let base = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(zip_time(now));
        for (name, content, mode) in files {
            out.start_file(name, base.unix_permissions(mode))?;
            out.write_all(content.as_bytes())?;
        }
        Ok(out.finish()?.into_inner())
    }

    fn env_sh(&self) -> String {
        let e = self.endpoint;
        let name = self.endpoint.kube_name(self.username);
        format!(
            r#"# Capstan client bundle of {user} for {host}.
# Load it into this shell from the bundle's directory:  . ./env.sh
# It points the docker CLI and kubectl at the cluster and, when kubectl is
# installed, also adds the cluster to your own kubeconfig (~/.kube/config).
_capstan_src=
if [ -n "${{BASH_VERSION:-}}" ]; then
	eval '_capstan_src="${{BASH_SOURCE[0]}}"'
elif [ -n "${{ZSH_VERSION:-}}" ]; then
	eval '_capstan_src="${{(%):-%x}}"'
fi
case "$_capstan_src" in
*/*) DOCKER_CERT_PATH="$(cd "${{_capstan_src%/*}}" && pwd)" ;;
# sh and dash cannot tell which file they read: the bundle must be the working directory.
*) DOCKER_CERT_PATH="$(pwd)" ;;
esac
unset _capstan_src
if [ ! -f "$DOCKER_CERT_PATH/ca.pem" ]; then
	echo "env.sh: there is no ca.pem in $DOCKER_CERT_PATH; run '. ./env.sh' in the bundle's directory" >&2
fi
export DOCKER_CERT_PATH
export DOCKER_HOST='{docker_host}'
export DOCKER_TLS_VERIFY=1
export KUBECONFIG="$DOCKER_CERT_PATH/kube.yml"

if command -v kubectl >/dev/null 2>&1; then
	(
		unset KUBECONFIG
		kubectl config set-cluster '{name}' --server='{kube_server}' \
			--certificate-authority="$DOCKER_CERT_PATH/ca.pem" --embed-certs=true &&
			kubectl config set-credentials '{name}' \
				--client-certificate="$DOCKER_CERT_PATH/cert.pem" \
				--client-key="$DOCKER_CERT_PATH/key.pem" --embed-certs=true &&
			kubectl config set-context '{name}' --cluster='{name}' --user='{name}' &&
			kubectl config use-context '{name}'
	)
fi
"#,
            user = self.username,
            host = e.host,
            docker_host = e.docker_host(),
            kube_server = e.kube_server(),
        )
    }

    fn env_ps1(&self) -> String {
        let e = self.endpoint;
        let name = self.endpoint.kube_name(self.username);
        let text = format!(
            r#"# Capstan client bundle of {user} for {host}.
# Load it into this PowerShell session:  . .\env.ps1
$bundle = $PSScriptRoot
$env:DOCKER_HOST = '{docker_host}'
$env:DOCKER_TLS_VERIFY = '1'
$env:DOCKER_CERT_PATH = $bundle
$env:KUBECONFIG = Join-Path $bundle 'kube.yml'
if (Get-Command kubectl -ErrorAction SilentlyContinue) {{
    # Also add the cluster to your own kubeconfig, like MKE's bundles do.
    $own = $env:KUBECONFIG
    Remove-Item Env:KUBECONFIG
    kubectl config set-cluster '{name}' --server='{kube_server}' --certificate-authority="$bundle\ca.pem" --embed-certs=true
    kubectl config set-credentials '{name}' --client-certificate="$bundle\cert.pem" --client-key="$bundle\key.pem" --embed-certs=true
    kubectl config set-context '{name}' --cluster='{name}' --user='{name}'
    kubectl config use-context '{name}'
    $env:KUBECONFIG = $own
}}
"#,
            user = self.username,
            host = e.host,
            docker_host = e.docker_host(),
            kube_server = e.kube_server(),
        );
        crlf(&text)
    }

    fn env_cmd(&self) -> String {
        let e = self.endpoint;
        let name = self.endpoint.kube_name(self.username);
        let text = format!(
            r#"@echo off
rem Capstan client bundle of {user} for {host}.
rem Run it in a command prompt to point the docker CLI and kubectl at the cluster.
set "DOCKER_CERT_PATH=%~dp0"
set "DOCKER_CERT_PATH=%DOCKER_CERT_PATH:~0,-1%"
set "DOCKER_HOST={docker_host}"
set "DOCKER_TLS_VERIFY=1"
set "KUBECONFIG=%DOCKER_CERT_PATH%\kube.yml"
where kubectl >nul 2>nul
if %ERRORLEVEL% equ 0 (
  setlocal
  set KUBECONFIG=
  kubectl config set-cluster "{name}" --server="{kube_server}" --certificate-authority="%DOCKER_CERT_PATH%\ca.pem" --embed-certs=true
  kubectl config set-credentials "{name}" --client-certificate="%DOCKER_CERT_PATH%\cert.pem" --client-key="%DOCKER_CERT_PATH%\key.pem" --embed-certs=true
  kubectl config set-context "{name}" --cluster="{name}" --user="{name}"
  kubectl config use-context "{name}"
  endlocal
)
"#,
            user = self.username,
            host = e.host,
            docker_host = e.docker_host(),
            kube_server = e.kube_server(),
        );
        crlf(&text)
    }

    /// A kubeconfig with the credentials embedded. Scalars are written as
    /// JSON strings, which YAML reads as double-quoted scalars.
    fn kube_yml(&self) -> String {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let q = |s: &str| serde_json::Value::from(s).to_string();
        let name = q(&self.endpoint.kube_name(self.username));
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: {name}
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: {name}
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: {name}
  context:
    cluster: {name}
    user: {name}
current-context: {name}
preferences: {{}}
",
            server = q(&self.endpoint.kube_server()),
            ca = q(&b64(self.ca_pem)),
            cert = q(&b64(&self.cert.issued.cert_pem)),
            key = q(&b64(&self.cert.key_pem)),
        )
    }

    /// The docker context description (`docker context import` format).
    fn meta_json(&self) -> String {
        let e = self.endpoint;
        let description = if self.label.is_empty() {
            format!("Capstan client bundle of {}", self.username)
        } else {
            self.label.to_string()
        };
        let meta = serde_json::json!({
            "Name": format!("ucp_{}_{}", e.host, self.username),
            "Metadata": {"Description": description},
            "Endpoints": {
                "docker": {"Host": e.docker_host(), "SkipTLSVerify": false},
                "kubernetes": {
                    "Host": e.kube_server(),
                    "SkipTLSVerify": false,
                    "DefaultNamespace": "default",
                },
            },
        });
        let mut text = serde_json::to_string_pretty(&meta).unwrap_or_else(|_| meta.to_string());
        text.push('\n');
        text
    }
}

/// Windows scripts are read with CRLF line ends.
fn crlf(text: &str) -> String {
    text.replace('\n', "\r\n")
}

/// The archive's file times; zip cannot store times before 1980.
fn zip_time(t: OffsetDateTime) -> zip::DateTime {
    zip::DateTime::from_date_and_time(
        u16::try_from(t.year()).unwrap_or(1980),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
    )
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_values_split_into_host_and_port() {
        let cases = [
            ("node1.example.com", Some(("node1.example.com", None))),
            ("10.0.0.1:8443", Some(("10.0.0.1", Some(8443)))),
            ("[::1]:443", Some(("::1", Some(443)))),
            ("[::1]", Some(("::1", None))),
            ("host:0", None),
            ("host:99999", None),
            ("host:abc", None),
            (":443", None),
            ("[::1", None),
            ("[::1]x", None),
            ("::1", None),
        ];
        for (value, want) in cases {
            let got = split_host_port(value);
            let want = want.map(|(h, p)| (h.to_string(), p));
            assert_eq!(got, want, "{value}");
        }
    }

    #[test]
    fn endpoint_urls_bracket_ipv6_hosts() {
        let e = Endpoint {
            host: "::1".into(),
            docker_port: 443,
            kube_port: 6443,
        };
        assert_eq!(e.docker_host(), "tcp://[::1]:443");
        assert_eq!(e.kube_server(), "https://[::1]:6443");
        assert_eq!(e.kube_name("ana"), "ucp_[::1]:6443_ana");
    }

    #[test]
    fn zip_times_outside_the_zip_range_fall_back() {
        let t = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(zip_time(t), zip::DateTime::default());
        let t = time::macros::datetime!(2026-03-04 05:06:08 UTC);
        let z = zip_time(t);
        assert_eq!((z.year(), z.month(), z.day()), (2026, 3, 4));
    }
}
