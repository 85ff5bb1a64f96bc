//! The distribution API (Docker Registry HTTP API V2 / OCI distribution
//! 1.1): base, catalog, tags, manifests, blobs, uploads and referrers.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::access::{access_level, repository_scope, Auth};
use crate::error::{RegistryError, RegistryResult};
use crate::manifest::{self, MAX_MANIFEST, OCI_INDEX};
use crate::meta::{ManifestRecord, RepoRecord, TagRecord, Visibility};
use crate::names::{Digest, Reference, RepoName};
use crate::Registry;

type Reg = State<Arc<Registry>>;

fn answer(status: StatusCode, headers: Vec<(&'static str, String)>, body: Body) -> Response {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

fn json(status: StatusCode, v: &serde_json::Value, extra: Vec<(&'static str, String)>) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut headers = vec![
        ("content-type", "application/json".to_string()),
        ("content-length", body.len().to_string()),
    ];
    headers.extend(extra);
    answer(status, headers, Body::from(body))
}

/// `GET /v2/`: 200 for an authenticated caller, else the challenge.
pub async fn base(State(reg): Reg, headers: HeaderMap) -> Response {
    match reg.authenticate(&headers, None).await {
        Ok(_) => json(StatusCode::OK, &serde_json::json!({}), vec![]),
        Err(e) => e.into_response(),
    }
}

/// Pagination parameters.
#[derive(Deserialize)]
pub struct Page {
    n: Option<String>,
    last: Option<String>,
}

fn page_size(n: Option<&str>) -> RegistryResult<usize> {
    match n {
        None => Ok(1000),
        Some(s) => s.parse::<usize>().map(|n| n.min(10_000)).map_err(|_| {
            RegistryError::new(
                StatusCode::BAD_REQUEST,
                "PAGINATION_NUMBER_INVALID",
                format!("n={s:?} is not a non-negative integer"),
            )
        }),
    }
}

/// Cuts a sorted list to a page, with the `Link` to the next one.
fn paginate(
    mut items: Vec<String>,
    page: &Page,
    path: &str,
) -> RegistryResult<(Vec<String>, Option<String>)> {
    let n = page_size(page.n.as_deref())?;
    if let Some(last) = &page.last {
        items.retain(|i| i > last);
    }
    let more = items.len() > n;
    items.truncate(n);
    let link = match (more, items.last()) {
        (true, Some(last)) => Some(format!("<{path}?n={n}&last={last}>; rel=\"next\"")),
        _ => None,
    };
    Ok((items, link))
}

/// `GET /v2/_catalog`: the repositories the caller may pull.
pub async fn catalog(
    State(reg): Reg,
    headers: HeaderMap,
    Query(page): Query<Page>,
) -> RegistryResult<Response> {
    let auth = reg
        .authenticate(&headers, Some("registry:catalog:*"))
        .await?;
    if !auth.may_list_catalog() {
        return Err(RegistryError::unauthorized(
            "the token does not grant registry:catalog:*",
            reg.challenge(Some("registry:catalog:*")),
        ));
    }
    let dir = reg.control.directory().await?;
    let mut names = Vec::new();
    for r in reg.meta.repos()? {
        if access_level(&dir, auth.user.as_deref(), &r.namespace, Some(&r)).is_some() {
            names.push(r.full_name());
        }
    }
    names.sort();
    let (names, link) = paginate(names, &page, "/v2/_catalog")?;
    let extra = link.map(|l| vec![("link", l)]).unwrap_or_default();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "repositories": names }),
        extra,
    ))
}

enum Route<'a> {
    Tags(&'a str),
    Manifest(&'a str, &'a str),
    Upload(&'a str, &'a str),
    Blob(&'a str, &'a str),
    Referrers(&'a str, &'a str),
}

fn route(rest: &str) -> Option<Route<'_>> {
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(Route::Tags(name));
    }
    if let Some(name) = rest
        .strip_suffix("/blobs/uploads")
        .or_else(|| rest.strip_suffix("/blobs/uploads/"))
    {
        return Some(Route::Upload(name, ""));
    }
    if let Some((name, id)) = rest.rsplit_once("/blobs/uploads/") {
        return Some(Route::Upload(name, id));
    }
    if let Some((name, r)) = rest.rsplit_once("/manifests/") {
        return Some(Route::Manifest(name, r));
    }
    if let Some((name, d)) = rest.rsplit_once("/blobs/") {
        return Some(Route::Blob(name, d));
    }
    if let Some((name, d)) = rest.rsplit_once("/referrers/") {
        return Some(Route::Referrers(name, d));
    }
    None
}

/// Everything under `/v2/<name>/...`.
pub async fn dispatch(
    State(reg): Reg,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
    body: Body,
) -> Response {
    let rest = uri.path().strip_prefix("/v2/").unwrap_or_default();
    if let Some((gun, file)) = super::trust::split(rest) {
        return super::trust::handle(&reg, &method, gun, file, &headers, body)
            .await
            .into_response();
    }
    let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let result = match route(rest) {
        None => Err(RegistryError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("no registry route matches {}", uri.path()),
        )),
        Some(r) => {
            let name = match &r {
                Route::Tags(n)
                | Route::Manifest(n, _)
                | Route::Upload(n, _)
                | Route::Blob(n, _)
                | Route::Referrers(n, _) => *n,
            };
            match RepoName::parse(name) {
                Err(e) => Err(e),
                Ok(repo) => {
                    let page = Page {
                        n: q("n").map(str::to_string),
                        last: q("last").map(str::to_string),
                    };
                    match (r, method.as_str()) {
                        (Route::Tags(_), "GET") => tags(&reg, &headers, &repo, &page).await,
                        (Route::Manifest(_, r), "GET" | "HEAD") => {
                            get_manifest(&reg, &headers, &repo, r, method == Method::HEAD).await
                        }
                        (Route::Manifest(_, r), "PUT") => {
                            put_manifest(&reg, &headers, &repo, r, body).await
                        }
                        (Route::Manifest(_, r), "DELETE") => {
                            delete_manifest(&reg, &headers, &repo, r).await
                        }
                        (Route::Blob(_, d), "GET" | "HEAD") => {
                            get_blob(&reg, &headers, &repo, d, method == Method::HEAD).await
                        }
                        (Route::Blob(_, d), "DELETE") => {
                            delete_blob(&reg, &headers, &repo, d).await
                        }
                        (Route::Upload(_, ""), "POST") => {
                            start_upload(
                                &reg,
                                &headers,
                                &repo,
                                q("digest"),
                                q("mount"),
                                q("from"),
                                body,
                            )
                            .await
                        }
                        (Route::Upload(_, id), "PATCH") if !id.is_empty() => {
                            patch_upload(&reg, &headers, &repo, id, body).await
                        }
                        (Route::Upload(_, id), "PUT") if !id.is_empty() => {
                            put_upload(&reg, &headers, &repo, id, q("digest"), body).await
                        }
                        (Route::Upload(_, id), "GET") if !id.is_empty() => {
                            upload_status(&reg, &headers, &repo, id).await
                        }
                        (Route::Upload(_, id), "DELETE") if !id.is_empty() => {
                            cancel_upload(&reg, &headers, &repo, id).await
                        }
                        (Route::Referrers(_, d), "GET") => {
                            referrers(&reg, &headers, &repo, d, q("artifactType")).await
                        }
                        _ => Err(RegistryError::unsupported(format!(
                            "{method} is not supported on {}",
                            uri.path()
                        ))),
                    }
                }
            }
        }
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn caller(
    reg: &Registry,
    headers: &HeaderMap,
    repo: &RepoName,
    action: &str,
) -> RegistryResult<Auth> {
    let auth = reg
        .authenticate(headers, Some(&repository_scope(repo, action)))
        .await?;
    reg.permit(&auth, repo, action).await?;
    Ok(auth)
}

/// Checks a write: the permission, then the license.
async fn writer(reg: &Registry, headers: &HeaderMap, repo: &RepoName) -> RegistryResult<Auth> {
    let auth = caller(reg, headers, repo, "push").await?;
    let mut dir = reg.control.directory().await?;
    if !dir.licensed {
        // A license uploaded a moment ago counts at once.
        reg.control.refresh().await;
        dir = reg.control.directory().await?;
    }
    if !dir.licensed {
        return Err(RegistryError::unlicensed(&dir.license_status));
    }
    ensure_repo(reg, repo).await?;
    Ok(auth)
}

/// Makes the repository on the first push into it (the caller administers
/// the namespace, or permission would have been refused).
async fn ensure_repo(reg: &Registry, repo: &RepoName) -> RegistryResult<()> {
    if reg.meta.repo(repo.as_str())?.is_some() {
        return Ok(());
    }
    let dir = reg.control.directory().await?;
    let kind = dir.namespace_kind(repo.namespace()).ok_or_else(|| {
        RegistryError::name_unknown(repo.as_str()).with_detail(serde_json::json!({
            "name": repo.as_str(),
            "reason": format!("namespace {} is neither a user nor an organisation", repo.namespace()),
        }))
    })?;
    reg.meta.create_repo(&RepoRecord {
        id: uuid::Uuid::new_v4().to_string(),
        namespace: repo.namespace().into(),
        namespace_type: kind,
        name: repo.repo().into(),
        short_description: String::new(),
        long_description: String::new(),
        visibility: Visibility::Private,
        immutable_tags: false,
        tag_limit: 0,
        team_access: BTreeMap::new(),
        created_at: OffsetDateTime::now_utc(),
    })?;
    reg.meta.flush().await
}

fn existing_repo(reg: &Registry, repo: &RepoName) -> RegistryResult<RepoRecord> {
    reg.meta
        .repo(repo.as_str())?
        .ok_or_else(|| RegistryError::name_unknown(repo.as_str()))
}

async fn tags(
    reg: &Registry,
    headers: &HeaderMap,
    repo: &RepoName,
    page: &Page,
) -> RegistryResult<Response> {
    caller(reg, headers, repo, "pull").await?;
    existing_repo(reg, repo)?;
    let names: Vec<String> = reg
        .meta
        .tags(repo.as_str())?
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    let (names, link) = paginate(names, page, &format!("/v2/{repo}/tags/list"))?;
    let extra = link.map(|l| vec![("link", l)]).unwrap_or_default();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "name": repo.as_str(), "tags": names }),
        extra,
    ))
}

fn resolve(
    reg: &Registry,
    repo: &RepoName,
    reference: &Reference,
) -> RegistryResult<ManifestRecord> {
    let digest = match reference {
        Reference::Digest(d) => d.to_string(),
        Reference::Tag(t) => {
            reg.meta
                .tag(repo.as_str(), t)?
                .ok_or_else(|| RegistryError::manifest_unknown(t))?
                .digest
        }
    };
    reg.meta
        .manifest(repo.as_str(), &digest)?
        .ok_or_else(|| RegistryError::manifest_unknown(&reference.to_string()))
}

async fn get_manifest(
    reg: &Registry,
    headers: &HeaderMap,
    repo: &RepoName,
    reference: &str,
    head: bool,
) -> RegistryResult<Response> {
    let reference = Reference::parse(reference)?;
    caller(reg, headers, repo, "pull").await?;
    existing_repo(reg, repo)?;
    let m = resolve(reg, repo, &reference)?;
    let digest = Digest::parse(&m.digest)?;
    let bytes = reg
        .blobs
        .read(&digest)?
        .ok_or_else(|| RegistryError::manifest_unknown(&reference.to_string()))?;
    let headers = vec![
        ("content-type", m.media_type.clone()),
        ("content-length", bytes.len().to_string()),
        ("docker-content-digest", m.digest.clone()),
        ("etag", format!("\"{}\"", m.digest)),
    ];
    let body = if head {
        Body::empty()
    } else {
        Body::from(bytes)
    };
    Ok(answer(StatusCode::OK, headers, body))
}

async fn read_limited(body: Body, limit: usize) -> RegistryResult<Vec<u8>> {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            RegistryError::manifest_invalid(format!("the manifest body broke: {e}"))
        })?;
        if out.len() + chunk.len() > limit {
            // Read on (within reason) so the client sees the answer rather
            // than a connection cut while it was still sending.
            let mut seen = out.len() + chunk.len();
            while seen < 8 * limit {
                match stream.next().await {
                    Some(Ok(c)) => seen += c.len(),
                    _ => break,
                }
            }
            return Err(RegistryError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "MANIFEST_INVALID",
                format!("manifest is larger than the limit of {limit} bytes"),
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

async fn put_manifest(
    reg: &Registry,
    headers: &HeaderMap,
    repo: &RepoName,
    reference: &str,
    body: Body,
) -> RegistryResult<Response> {
    let reference = Reference::parse(reference)?;
    let auth = writer(reg, headers, repo).await?;
    let bytes = read_limited(body, MAX_MANIFEST).await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let parsed = manifest::parse(content_type, &bytes)?;
    let digest = Digest::of(&bytes);
    if let Reference::Digest(d) = &reference {
        if d != &digest {
            return Err(RegistryError::digest_invalid(format!(
                "the manifest's digest is {digest}, not {d}"
            )));
        }
    }
    let record = existing_repo(reg, repo)?;
    let _pushing = reg.gc_lock.read().await;
    // Everything the manifest references must already be in the repository.
    let mut platforms = Vec::new();
    for b in parsed.blobs() {
        let d = Digest::parse(&b.digest)?;
        let size = match reg.blobs.size(&d)? {
            Some(s) if reg.meta.linked(repo.as_str(), d.as_str())? => s,
            _ => {
                return Err(RegistryError::new(
                    StatusCode::BAD_REQUEST,
                    "MANIFEST_BLOB_UNKNOWN",
                    format!("blob {d} is not in {repo}; push it before the manifest"),
                )
                .with_detail(serde_json::json!({ "digest": d.as_str() })))
            }
        };
        if size != b.size {
            return Err(RegistryError::manifest_invalid(format!(
                "the manifest says blob {d} has {} bytes; it has {size}",
                b.size
            )));
        }
        reg.blobs.touch(&d);
    }
    for child in &parsed.manifests {
        if reg
            .meta
            .manifest(repo.as_str(), child.digest.as_str())?
            .is_none()
        {
            return Err(RegistryError::new(
                StatusCode::BAD_REQUEST,
                "MANIFEST_BLOB_UNKNOWN",
                format!(
                    "manifest {} is not in {repo}; push it before the index",
                    child.digest
                ),
            )
            .with_detail(serde_json::json!({ "digest": child.digest.as_str() })));
        }
        platforms.extend(child.platform.clone());
    }
    if let Some(config) = &parsed.config {
        if config.size <= 1 << 20 {
            if let Some(p) = reg
                .blobs
                .read(&config.digest)?
                .as_deref()
                .and_then(manifest::config_platform)
            {
                platforms.push(p);
            }
        }
    }
    if let Reference::Tag(tag) = &reference {
        if record.immutable_tags {
            if let Some(existing) = reg.meta.tag(repo.as_str(), tag)? {
                if existing.digest != digest.as_str() {
                    return Err(RegistryError::denied(format!(
                        "tag {tag} of {repo} is immutable: it already points at {}; push a new tag",
                        existing.digest
                    )));
                }
            }
        }
    }
    let who = auth.user.clone().unwrap_or_default();
    let now = OffsetDateTime::now_utc();
    reg.blobs.put(&digest, &bytes)?;
    reg.meta.link(repo.as_str(), digest.as_str())?;
    let artifact_type = parsed.artifact_type.clone().or_else(|| {
        parsed
            .config
            .as_ref()
            .map(|c| c.media_type.clone())
            .filter(|t| !t.contains("container.image") && !t.contains("image.config"))
    });
    reg.meta.put_manifest(
        repo.as_str(),
        &ManifestRecord {
            digest: digest.to_string(),
            media_type: parsed.media_type.clone(),
            size: bytes.len() as u64,
            blobs: parsed.blobs(),
            children: parsed
                .manifests
                .iter()
                .map(|m| m.digest.to_string())
                .collect(),
            subject: parsed.subject.as_ref().map(|s| s.digest.to_string()),
            artifact_type,
            annotations: parsed.annotations.clone(),
            platforms,
            pushed_by: who.clone(),
            pushed_at: now,
        },
    )?;
    if let Reference::Tag(tag) = &reference {
        let created_at = reg
            .meta
            .tag(repo.as_str(), tag)?
            .map(|t| t.created_at)
            .unwrap_or(now);
        reg.meta.put_tag(
            repo.as_str(),
            tag,
            &TagRecord {
                digest: digest.to_string(),
                pushed_by: who,
                created_at,
                pushed_at: now,
            },
        )?;
        crate::gc::enforce_retention(reg, repo.as_str())?;
    }
    reg.meta.flush().await?;
    let mut out = vec![
        ("location", format!("/v2/{repo}/manifests/{digest}")),
        ("docker-content-digest", digest.to_string()),
        ("content-length", "0".into()),
    ];
    if let Some(s) = &parsed.subject {
        out.push(("oci-subject", s.digest.to_string()));
    }
    Ok(answer(StatusCode::CREATED, out, Body::empty()))
}

fn deletes_enabled(reg: &Registry) -> RegistryResult<()> {
    if reg.config.delete_enabled {
        Ok(())
    } else {
        Err(RegistryError::unsupported(
            "deletes are disabled on this registry",
        ))
    }
}

async fn delete_manifest(
    reg: &Registry,
    headers: &HeaderMap,
    repo: &RepoName,
    reference: &str,
) -> RegistryResult<Response> {
    let reference = Reference::parse(reference)?;
    caller(reg, headers, repo, "delete").await?;
    deletes_enabled(reg)?;
    existing_repo(reg, repo)?;
    let found = match &reference {
        Reference::Tag(t) => reg.meta.delete_tag(repo.as_str(), t)?,
        Reference::Digest(d) => reg.meta.delete_manifest(repo.as_str(), d.as_str())?,
    };
    if !found {
        return Err(RegistryError::manifest_unknown(&reference.to_string()));
    }
    reg.meta.flush().await?;
    Ok(answer(
        StatusCode::ACCEPTED,
        vec![("content-length", "0".into())],
        Body::empty(),
    ))
}

/// Parses `Range: bytes=a-b` (one range).
fn byte_range(headers: &HeaderMap, size: u64) -> Option<(u64, u64)> {
    let v = headers.get(header::RANGE)?.to_str().ok()?;
    let (a, b) = v.strip_prefix("bytes=")?.split_once('-')?;
    let start: u64 = a.parse().ok()?;
    let end: u64 = if b.is_empty() {
        size.checked_sub(1)?
    } else {
        b.parse().ok()?
    };
    (start <= end && end < size).then_some((start, end))
}

async fn get_blob(
    reg: &Registry,
    headers: &HeaderMap,
    repo: &RepoName,
    digest: &str,
    head: bool,
) -> RegistryResult<Response> {
    let digest = Digest::parse(digest)?;
    caller(reg, headers, repo, "pull").await?;
    // A HEAD precedes a push that references the blob: answer it and touch
    // the blob where a collection cannot slip in between.
    let _pushing = if head {
        Some(reg.gc_lock.read().await)
    } else {
        None
    };
    let size = match reg.blobs.size(&digest)? {
        Some(s) if reg.meta.linked(repo.as_str(), digest.as_str())? => s,
        _ => return Err(RegistryError::blob_unknown(digest.as_str())),
    };
    let mut out = vec![
        ("docker-content-digest", digest.to_string()),
        ("content-type", "application/octet-stream".to_string()),
        ("accept-ranges", "bytes".to_string()),
        ("etag", format!("\"{digest}\"")),
    ];
    if head {
        // A client asking whether a blob exists is about to reference it.
        reg.blobs.touch(&digest);
        out.push(("content-length", size.to_string()));
        return Ok(answer(StatusCode::OK, out, Body::empty()));
    }
    let mut file = tokio::fs::File::open(reg.blobs.path(&digest)).await?;
    let (status, start, len) = match byte_range(headers, size) {
        Some((a, b)) => {
            out.push(("content-range", format!("bytes {a}-{b}/{size}")));
            (StatusCode::PARTIAL_CONTENT, a, b - a + 1)
        }
        None => (StatusCode::OK, 0, size),
    };
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start)).await?;
    }
    out.push(("content-length", len.to_string()));
    let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), 256 << 10);
    Ok(answer(status, out, Body::from_stream(stream)))
}

async fn delete_blob(
    reg: &Registry,
    headers: &HeaderMap,
    repo: &RepoName,
    digest: &str,
) -> RegistryResult<Response> {
    let digest = Digest::parse(digest)?;
    caller(reg, headers, repo, "delete").await?;
    deletes_enabled(reg)?;
    if !reg.meta.unlink(repo.as_str(), digest.as_str())? {
        return Err(RegistryError::blob_unknown(digest.as_str()));
    }
    reg.meta.flush().await?;
    Ok(answer(
        StatusCode::ACCEPTED,
        vec![("content-length", "0".into())],
        Body::empty(),
    ))
}

fn upload_headers(repo: &RepoName, id: &str, size: u64) -> Vec<(&'static str, String)> {
    vec![
        ("location", format!("/v2/{repo}/blobs/uploads/{id}")),
        ("docker-upload-uuid", id.to_string()),
        ("range", format!("0-{}", size.saturating_sub(1))),
        ("content-length", "0".into()),
    ]
}

fn created_blob(repo: &RepoName, digest: &Digest) -> Response {
    answer(
        StatusCode::CREATED,
        vec![
            ("location", format!("/v2/{repo}/blobs/{digest}")),
            ("docker-content-digest", digest.to_string()),
            ("content-length", "0".into()),
        ],
        Body::empty(),
    )
}

async fn start_upload(
    reg: &Registry,
    headers: &HeaderMap,
    repo: &RepoName,
    digest: Option<&str>,
    mount: Option<&str>,
    from: Option<&str>,
    body: Body,
) -> RegistryResult<Response> {
    let auth = writer(reg, headers, repo).await?;
    if let (Some(mount), Some(from)) = (mount, from) {
        let d = Digest::parse(mount)?;
        let source = RepoName::parse(from)?;
        // Mount only what the caller may pull from the source; otherwise
        // fall back to an ordinary upload, as the spec says.
        let allowed = reg.permit(&auth, &source, "pull").await.is_ok();
        let _pushing = reg.gc_lock.read().await;
        if allowed && reg.meta.linked(source.as_str(), d.as_str())? && reg.blobs.size(&d)?.is_some()
        {
            reg.blobs.touch(&d);
            reg.meta.link(repo.as_str(), d.as_str())?;
            reg.meta.flush().await?;
            return Ok(created_blob(repo, &d));
        }
    }
    let digest = digest.map(Digest::parse).transpose()?;
    let up = reg.uploads.start(repo.as_str()).await?;
    let mut up = up.lock().await;
    if let Some(d) = digest {
        if let Err(e) = reg.uploads.append(&mut up, body.into_data_stream()).await {
            // A monolithic upload is not resumable: nothing names it.
            reg.uploads.remove(&up.id).await;
            return Err(e);
        }
        return finish(reg, repo, &mut up, &d).await;
    }
    Ok(answer(
        StatusCode::ACCEPTED,
        upload_headers(repo, &up.id, 0),
        Body::empty(),
    ))
}

async fn finish(
    reg: &Registry,
    repo: &RepoName,
    up: &mut crate::blobs::Upload,
    d: &Digest,
) -> RegistryResult<Response> {
    let _pushing = reg.gc_lock.read().await;
    reg.uploads.finish(up, d).await?;
    reg.meta.link(repo.as_str(), d.as_str())?;
    reg.meta.flush().await?;
    Ok(created_blob(repo, d))
}

/// Checks `Content-Range: <start>-<end>` against what the upload holds.
fn check_range(
    headers: &HeaderMap,
    repo: &RepoName,
    up: &crate::blobs::Upload,
) -> RegistryResult<()> {
    let Some(v) = headers.get(header::CONTENT_RANGE) else {
        return Ok(());
    };
    let v = v.to_str().unwrap_or_default();
    let v = v
        .strip_prefix("bytes ")
        .or_else(|| v.strip_prefix("bytes="))
        .unwrap_or(v);
    let start = v
        .split_once('-')
        .and_then(|(a, _)| a.trim().parse::<u64>().ok());
    if start != Some(up.size) {
        let mut e = RegistryError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "BLOB_UPLOAD_INVALID",
            format!(
                "Content-Range {v:?} does not continue the upload, which holds {} bytes",
                up.size
            ),
        );
        e.detail = Some(
            serde_json::json!({ "uuid": up.id, "range": format!("0-{}", up.size.saturating_sub(1)), "location": format!("/v2/{repo}/blobs/uploads/{}", up.id) }),
        );
        return Err(e);
    }
    Ok(())
}

async fn patch_upload(
    reg: &Registry,
    headers: &HeaderMap,
    repo: &RepoName,
    id: &str,
    body: Body,
) -> RegistryResult<Response> {
    writer(reg, headers, repo).await?;
    let up = reg.uploads.get(repo.as_str(), id).await?;
    let mut up = up.lock().await;
    check_range(headers, repo, &up)?;
    reg.uploads.append(&mut up, body.into_data_stream()).await?;
    Ok(answer(
        StatusCode::ACCEPTED,
        upload_headers(repo, &up.id, up.size),
        Body::empty(),
    ))
}

async fn put_upload(
    reg: &Registry,
    headers: &HeaderMap,
    repo: &RepoName,
    id: &str,
    digest: Option<&str>,
    body: Body,
) -> RegistryResult<Response> {
    writer(reg, headers, repo).await?;
    let d = Digest::parse(digest.ok_or_else(|| {
        RegistryError::digest_invalid("the digest query parameter is required to finish an upload")
    })?)?;
    let up = reg.uploads.get(repo.as_str(), id).await?;
    let mut up = up.lock().await;
    check_range(headers, repo, &up)?;
    reg.uploads.append(&mut up, body.into_data_stream()).await?;
    finish(reg, repo, &mut up, &d).await
}

async fn upload_status(
    reg: &Registry,
    headers: &HeaderMap,
    repo: &RepoName,
    id: &str,
) -> RegistryResult<Response> {
    caller(reg, headers, repo, "push").await?;
    let up = reg.uploads.get(repo.as_str(), id).await?;
    let up = up.lock().await;
    Ok(answer(
        StatusCode::NO_CONTENT,
        upload_headers(repo, &up.id, up.size),
        Body::empty(),
    ))
}

async fn cancel_upload(
    reg: &Registry,
    headers: &HeaderMap,
    repo: &RepoName,
    id: &str,
) -> RegistryResult<Response> {
    caller(reg, headers, repo, "push").await?;
    reg.uploads.get(repo.as_str(), id).await?;
    reg.uploads.remove(id).await;
    Ok(answer(
        StatusCode::NO_CONTENT,
        vec![("content-length", "0".into())],
        Body::empty(),
    ))
}

async fn referrers(
    reg: &Registry,
    headers: &HeaderMap,
    repo: &RepoName,
    digest: &str,
    artifact_type: Option<&str>,
) -> RegistryResult<Response> {
    let subject = Digest::parse(digest)?;
    // A `+` sent unencoded reads as a space; media types hold none.
    let artifact_type = artifact_type.map(|t| t.replace(' ', "+"));
    let artifact_type = artifact_type.as_deref();
    caller(reg, headers, repo, "pull").await?;
    existing_repo(reg, repo)?;
    let mut list = Vec::new();
    for m in reg.meta.manifests(repo.as_str())? {
        if m.subject.as_deref() != Some(subject.as_str()) {
            continue;
        }
        if artifact_type.is_some_and(|t| m.artifact_type.as_deref() != Some(t)) {
            continue;
        }
        let mut d =
            serde_json::json!({ "mediaType": m.media_type, "digest": m.digest, "size": m.size });
        if let Some(t) = &m.artifact_type {
            d["artifactType"] = serde_json::json!(t);
        }
        if !m.annotations.is_empty() {
            d["annotations"] = serde_json::json!(m.annotations);
        }
        list.push(d);
    }
    let index =
        serde_json::json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list });
    let body = serde_json::to_vec(&index).unwrap_or_default();
    let mut out = vec![
        ("content-type", OCI_INDEX.to_string()),
        ("content-length", body.len().to_string()),
    ];
    if artifact_type.is_some() {
        out.push(("oci-filters-applied", "artifactType".into()));
    }
    Ok(answer(StatusCode::OK, out, Body::from(body)))
}
