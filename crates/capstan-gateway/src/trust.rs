//! "Run only signed images": with `require_content_trust` on, a workload's
//! image must be a tag (or digest) that the trust data in this cluster's
//! registry signs, and, with `require_signature_from`, signed by a member
//! of one of those teams. The image is then pinned to the signed digest,
//! so what runs is exactly what was signed.
//!
//! The trust data is read from the registry the image names, as the caller
//! (with a short pull ticket), and verified here from root down; signing
//! keys are recognised as users by the client bundle whose public key they
//! are.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use capstan_core::registry::{url_host, RegistryRecord, PULL_TICKET_SESSION};
use capstan_core::{decode, Table};
use capstan_trust::resolve::{delegated_roles, SignedTag, Verified};
use capstan_trust::role;
use time::OffsetDateTime;

use crate::auth::Caller;
use crate::directory::Snapshot;
use crate::error::{ApiError, ApiResult};
use crate::session::Claims;
use crate::Gateway;

/// The audit log's operation name for a refused image.
pub const AUDIT_OPERATION: &str = "content-trust";

/// Most delegations read for one repository.
const MAX_ROLES: usize = 200;

/// An image reference: `host/path[:tag][@sha256:hex]`.
#[derive(Debug, PartialEq, Eq)]
pub struct ImageRef<'a> {
    /// The registry host, when the reference names one.
    pub host: Option<&'a str>,
    /// The repository path.
    pub path: &'a str,
    /// The tag (`latest` when neither tag nor digest is given).
    pub tag: Option<&'a str>,
    /// The digest's hex, when pinned.
    pub digest: Option<&'a str>,
}

/// Splits an image reference.
pub fn parse_image(image: &str) -> ImageRef<'_> {
    let (name, digest) = match image.split_once("@sha256:") {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    let host = capstan_core::registry::image_registry_host(name);
    let path = host.map_or(name, |h| &name[h.len() + 1..]);
    let tag = tag.or(if digest.is_none() {
        Some("latest")
    } else {
        None
    });
    ImageRef {
        host,
        path,
        tag,
        digest,
    }
}

fn refuse(caller: &Caller, image: &str, why: String) -> ApiError {
    caller.note_refusal(AUDIT_OPERATION, image);
    ApiError::forbidden(format!(
        "content trust is required in this cluster: {image} {why}"
    ))
}

/// Checks `image` against the cluster's content trust settings. `Ok(None)`
/// when trust is not required; otherwise the image pinned to the signed
/// digest, or a refusal naming the image and the missing signature (and
/// audited as denied).
pub async fn check_image(gw: &Gateway, caller: &Caller, image: &str) -> ApiResult<Option<String>> {
    let snap = &caller.snap;
    let cfg = &snap.config.trust_configuration;
    if !cfg.require_content_trust {
        return Ok(None);
    }
    let r = parse_image(image);
    let registries: Vec<RegistryRecord> = gw
        .manager
        .sm
        .list(RegistryRecord::TABLE, "", 0)
        .map_err(ApiError::internal)?
        .iter()
        .filter_map(|o| decode::<RegistryRecord>(&o.value).ok())
        .collect();
    let Some(registry) = r
        .host
        .and_then(|h| registries.iter().find(|x| url_host(&x.url) == h))
    else {
        return Err(refuse(
            caller,
            image,
            "is not in a registry of this cluster, so it cannot carry a signature this cluster trusts; push and sign it in the cluster's registry".into(),
        ));
    };
    let host = r.host.unwrap_or_default();
    let gun = format!("{host}/{}", r.path);
    let files = fetch_trust_data(gw, caller, &registry.url, &gun)
        .await
        .map_err(|why| refuse(caller, image, why))?;
    let verified = Verified::check(&files, OffsetDateTime::now_utc()).map_err(|e| {
        refuse(
            caller,
            image,
            format!("has trust data that does not verify: {e}"),
        )
    })?;
    let found = match (r.digest, r.tag) {
        (Some(hex), _) => verified.lookup_digest(hex),
        (None, Some(tag)) => verified.lookup(tag),
        (None, None) => vec![],
    };
    let Some(first) = found.first() else {
        let what = match (r.digest, r.tag) {
            (Some(d), _) => format!("digest sha256:{d}"),
            (None, t) => format!("tag {:?}", t.unwrap_or("latest")),
        };
        return Err(refuse(
            caller,
            image,
            format!("is not signed: the trust data of {gun} signs no {what}"),
        ));
    };
    let Some(hex) = first.meta.sha256_hex() else {
        return Err(refuse(
            caller,
            image,
            "is signed without a SHA-256 digest".into(),
        ));
    };
    let same: Vec<&SignedTag> = found
        .iter()
        .filter(|s| s.meta.sha256_hex().as_deref() == Some(hex.as_str()))
        .collect();
    if !cfg.require_signature_from.is_empty() {
        let signers = signer_names(snap, &same);
        let ok = signers.iter().any(|u| {
            cfg.require_signature_from
                .iter()
                .any(|t| in_team(snap, u, t))
        });
        if !ok {
            let by = if signers.is_empty() {
                "keys that belong to no user's client bundle".to_string()
            } else {
                signers.iter().cloned().collect::<Vec<_>>().join(", ")
            };
            return Err(refuse(
                caller,
                image,
                format!(
                    "is signed by {by}, but a signature from a member of {} is required",
                    cfg.require_signature_from.join(" or ")
                ),
            ));
        }
    }
    let pinned = match r.tag {
        Some(tag) => format!("{host}/{}:{tag}@sha256:{hex}", r.path),
        None => format!("{host}/{}@sha256:{hex}", r.path),
    };
    Ok(Some(pinned))
}

/// The users whose client bundle keys made the verified signatures.
fn signer_names(snap: &Snapshot, signed: &[&SignedTag]) -> BTreeSet<String> {
    let keys: BTreeSet<String> = signed
        .iter()
        .flat_map(|s| s.signers.iter())
        .filter_map(capstan_trust::PublicKey::spki_sha256)
        .collect();
    snap.client_bundles
        .values()
        .filter(|b| b.revoked_at.is_none() && keys.contains(&b.public_key_sha256))
        .filter_map(|b| snap.user_ids.get(&b.user_id).cloned())
        .collect()
}

/// Whether `user` is in `team` (`org/team`, or `team` of any organisation).
fn in_team(snap: &Snapshot, user: &str, team: &str) -> bool {
    match team.split_once('/') {
        Some(_) => snap.team_members.contains_key(&format!("{team}/{user}")),
        None => snap.team_members.keys().any(|k| {
            let mut parts = k.splitn(3, '/');
            let (_, t, u) = (parts.next(), parts.next(), parts.next());
            t == Some(team) && u == Some(user)
        }),
    }
}

/// An HTTPS client that trusts the cluster CA (what the cluster's registry
/// serves under). One client (and its pool of connections) is kept while
/// the CA stays the same, so reads reuse their TLS sessions.
fn registry_client(gw: &Gateway) -> Result<reqwest::Client, String> {
    static CLIENT: std::sync::Mutex<Option<(String, reqwest::Client)>> =
        std::sync::Mutex::new(None);
    let ca_pem = gw.manager.ca.cert_pem();
    let mut held = CLIENT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((pem, client)) = held.as_ref() {
        if pem == ca_pem {
            return Ok(client.clone());
        }
    }
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).map_err(|e| e.to_string())?;
    let client = reqwest::Client::builder()
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    *held = Some((ca_pem.to_string(), client.clone()));
    Ok(client)
}

/// A one-minute pull ticket of `username`: the registry takes it as their
/// password, and grants what they may do.
fn ticket(gw: &Gateway, username: &str) -> Result<String, String> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    gw.tokens
        .sign(&Claims {
            sub: username.to_string(),
            sid: PULL_TICKET_SESSION.into(),
            iss: gw.cluster_id().to_string(),
            iat: now,
            exp: now + 60,
        })
        .map_err(|e| e.to_string())
}

/// Reads JSON from the cluster's registry at `url` as `username` (the
/// dashboard's view of repositories and tags).
pub(crate) async fn registry_read(
    gw: &Gateway,
    username: &str,
    url: &str,
) -> Result<serde_json::Value, String> {
    let client = registry_client(gw)?;
    let resp = client
        .get(url)
        .basic_auth(username, Some(ticket(gw, username)?))
        .send()
        .await
        .map_err(|e| format!("the registry cannot be reached: {e}"))?;
    let status = resp.status();
    let body: serde_json::Value = resp
        .json()
        .await
        .map_err(|e| format!("the registry answered {status} with no JSON: {e}"))?;
    if !status.is_success() {
        let message = body["errors"][0]["message"]
            .as_str()
            .unwrap_or("the registry refused the request");
        return Err(format!("{message} ({status})"));
    }
    Ok(body)
}

/// Reads root, targets and every delegation of `gun` from the registry at
/// `url`, as the caller.
async fn fetch_trust_data(
    gw: &Gateway,
    caller: &Caller,
    url: &str,
    gun: &str,
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let unreachable = |e: reqwest::Error| {
        format!("cannot be checked: the registry at {url} cannot be read ({e})")
    };
    let client = registry_client(gw).map_err(|e| format!("cannot be checked: {e}"))?;
    let ticket = ticket(gw, &caller.username).map_err(|e| format!("cannot be checked: {e}"))?;
    let resp = client
        .get(format!("{url}/auth/token"))
        .query(&[("scope", format!("repository:{gun}:pull"))])
        .basic_auth(&caller.username, Some(ticket))
        .send()
        .await
        .map_err(unreachable)?;
    if !resp.status().is_success() {
        return Err(format!(
            "cannot be checked: the registry refused a token to {} ({})",
            caller.username,
            resp.status()
        ));
    }
    let token: serde_json::Value = resp.json().await.map_err(unreachable)?;
    let token = token["token"].as_str().unwrap_or_default().to_string();
    let mut files = BTreeMap::new();
    let mut queue = vec![role::ROOT.to_string(), role::TARGETS.to_string()];
    while let Some(name) = queue.pop() {
        if files.contains_key(&name) || files.len() >= MAX_ROLES {
            continue;
        }
        let resp = client
            .get(format!("{url}/v2/{gun}/_trust/tuf/{name}.json"))
            .bearer_auth(&token)
            .send()
            .await
            .map_err(unreachable)?;
        match resp.status().as_u16() {
            200 => {}
            404 if name == role::ROOT || name == role::TARGETS => {
                return Err(format!("is not signed: {gun} has no trust data"));
            }
            404 => continue,
            s => {
                return Err(format!(
                    "cannot be checked: reading the {name} trust data of {gun} answered {s}"
                ))
            }
        }
        let bytes = resp.bytes().await.map_err(unreachable)?.to_vec();
        if name != role::ROOT {
            queue.extend(delegated_roles(&bytes));
        }
        files.insert(name, bytes);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references() {
        let hex = "a".repeat(64);
        assert_eq!(
            parse_image("127.0.0.1:5443/docker-dca/app:v1"),
            ImageRef {
                host: Some("127.0.0.1:5443"),
                path: "docker-dca/app",
                tag: Some("v1"),
                digest: None
            }
        );
        assert_eq!(
            parse_image("reg.example.com/a/b"),
            ImageRef {
                host: Some("reg.example.com"),
                path: "a/b",
                tag: Some("latest"),
                digest: None
            }
        );
        let pinned = format!("reg:5000/a/b:v2@sha256:{hex}");
        assert_eq!(
            parse_image(&pinned),
            ImageRef {
                host: Some("reg:5000"),
                path: "a/b",
                tag: Some("v2"),
                digest: Some(&hex)
            }
        );
        let bare = format!("busybox@sha256:{hex}");
        assert_eq!(
            parse_image(&bare),
            ImageRef {
                host: None,
                path: "busybox",
                tag: None,
                digest: Some(&hex)
            }
        );
    }
}
