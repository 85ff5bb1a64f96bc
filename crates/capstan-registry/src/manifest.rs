//! Manifest parsing and validation: Docker v2 schema 2 and manifest lists,
//! OCI image manifests and indexes. Anything else is refused.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::{RegistryError, RegistryResult};
use crate::meta::{BlobRef, Platform};
use crate::names::Digest;

/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The media types this registry stores.
pub const SUPPORTED: [&str; 4] = [DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX];
/// The largest manifest accepted.
pub const MAX_MANIFEST: usize = 4 << 20;

/// A descriptor of content a manifest points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// Media type.
    pub media_type: String,
    /// Digest.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Platform (index entries).
    pub platform: Option<Platform>,
    /// Foreign layers name URLs and are not in the registry.
    pub foreign: bool,
}

/// What a manifest holds, once validated.
#[derive(Clone, Debug)]
pub struct Parsed {
    /// Its media type.
    pub media_type: String,
    /// The image config (image manifests).
    pub config: Option<Descriptor>,
    /// Layers (image manifests).
    pub layers: Vec<Descriptor>,
    /// Manifests (indexes).
    pub manifests: Vec<Descriptor>,
    /// OCI `subject`.
    pub subject: Option<Descriptor>,
    /// OCI `artifactType`.
    pub artifact_type: Option<String>,
    /// OCI annotations.
    pub annotations: BTreeMap<String, String>,
}

impl Parsed {
    /// Whether it is an index or a manifest list.
    pub fn is_index(&self) -> bool {
        self.media_type == OCI_INDEX || self.media_type == DOCKER_LIST
    }

    /// The blobs it references that the registry must hold.
    pub fn blobs(&self) -> Vec<BlobRef> {
        self.config
            .iter()
            .chain(self.layers.iter().filter(|l| !l.foreign))
            .map(|d| BlobRef {
                digest: d.digest.to_string(),
                size: d.size,
            })
            .collect()
    }
}

fn invalid(msg: impl Into<String>) -> RegistryError {
    RegistryError::manifest_invalid(msg)
}

fn descriptor(v: &Value, at: &str) -> RegistryResult<Descriptor> {
    let obj = v
        .as_object()
        .ok_or_else(|| invalid(format!("{at} must be a descriptor object")))?;
    let media_type = obj
        .get("mediaType")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{at}.mediaType is missing or not a string")))?
        .to_string();
    let digest = obj
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{at}.digest is missing or not a string")))?;
    let digest =
        Digest::parse(digest).map_err(|e| invalid(format!("{at}.digest: {}", e.message)))?;
    let size = obj.get("size").and_then(Value::as_u64).ok_or_else(|| {
        invalid(format!(
            "{at}.size is missing or not a non-negative integer"
        ))
    })?;
    let platform = obj.get("platform").map(|p| Platform {
        os: p["os"].as_str().unwrap_or_default().into(),
        architecture: p["architecture"].as_str().unwrap_or_default().into(),
        variant: p["variant"].as_str().unwrap_or_default().into(),
    });
    let foreign = obj
        .get("urls")
        .and_then(Value::as_array)
        .is_some_and(|u| !u.is_empty());
    Ok(Descriptor {
        media_type,
        digest,
        size,
        platform,
        foreign,
    })
}

fn base_type(ct: &str) -> &str {
    ct.split(';').next().unwrap_or("").trim()
}

/// Parses and validates a manifest sent with `content_type`.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> RegistryResult<Parsed> {
    if body.len() > MAX_MANIFEST {
        return Err(RegistryError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "MANIFEST_INVALID",
            format!(
                "manifest is {} bytes; the limit is {MAX_MANIFEST} bytes",
                body.len()
            ),
        ));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("manifest is not valid JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| invalid("manifest must be a JSON object"))?;
    match obj.get("schemaVersion").and_then(Value::as_i64) {
        Some(2) => {}
        Some(n) => {
            return Err(invalid(format!(
                "schemaVersion {n} is not supported: push Docker schema 2 or OCI manifests"
            )))
        }
        None => return Err(invalid("schemaVersion is missing")),
    }
    let declared = obj.get("mediaType").and_then(Value::as_str);
    let header = content_type
        .map(base_type)
        .filter(|t| !t.is_empty() && *t != "application/json" && *t != "application/octet-stream");
    let media_type = match (header, declared) {
        (Some(h), Some(d)) if h != d => {
            return Err(invalid(format!(
                "Content-Type {h} does not match the manifest's mediaType {d}"
            )))
        }
        (Some(h), _) => h.to_string(),
        (None, Some(d)) => d.to_string(),
        (None, None) if obj.contains_key("manifests") => OCI_INDEX.into(),
        (None, None) if obj.contains_key("config") => OCI_MANIFEST.into(),
        (None, None) => {
            return Err(invalid(
                "cannot tell the manifest's media type: send Content-Type",
            ))
        }
    };
    if !SUPPORTED.contains(&media_type.as_str()) {
        return Err(invalid(format!(
            "unsupported manifest media type {media_type}: this registry stores {}",
            SUPPORTED.join(", ")
        )));
    }
    let mut parsed = Parsed {
        media_type,
        config: None,
        layers: vec![],
        manifests: vec![],
        subject: obj
            .get("subject")
            .map(|s| descriptor(s, "subject"))
            .transpose()?,
        artifact_type: obj
            .get("artifactType")
            .and_then(Value::as_str)
            .map(str::to_string),
        annotations: obj
            .get("annotations")
            .and_then(Value::as_object)
            .map(|a| {
                a.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default(),
    };
    if parsed.is_index() {
        let list = obj
            .get("manifests")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("an index needs a manifests array"))?;
        for (i, m) in list.iter().enumerate() {
            parsed
                .manifests
                .push(descriptor(m, &format!("manifests[{i}]"))?);
        }
    } else {
        parsed.config = Some(descriptor(
            obj.get("config")
                .ok_or_else(|| invalid("an image manifest needs a config"))?,
            "config",
        )?);
        let layers = obj
            .get("layers")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("an image manifest needs a layers array"))?;
        for (i, l) in layers.iter().enumerate() {
            parsed.layers.push(descriptor(l, &format!("layers[{i}]"))?);
        }
    }
    Ok(parsed)
}

/// The platform an image config names (`os`, `architecture`, `variant`).
pub fn config_platform(config: &[u8]) -> Option<Platform> {
    let v: Value = serde_json::from_slice(config).ok()?;
    let os = v["os"].as_str()?.to_string();
    Some(Platform {
        os,
        architecture: v["architecture"].as_str().unwrap_or_default().into(),
        variant: v["variant"].as_str().unwrap_or_default().into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> String {
        Digest::of(&[n]).to_string()
    }

    #[test]
    fn image_manifest_and_index() {
        let m = serde_json::json!({
            "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": d(1), "size": 10},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": d(2), "size": 20},
                       {"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "digest": d(3), "size": 30, "urls": ["https://x"]}]
        });
        let p = parse(Some(DOCKER_MANIFEST), m.to_string().as_bytes()).unwrap();
        assert_eq!(
            p.blobs().len(),
            2,
            "the foreign layer is not the registry's"
        );
        let i = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": d(4), "size": 5, "platform": {"os": "linux", "architecture": "arm64"}}]
        });
        let p = parse(None, i.to_string().as_bytes()).unwrap();
        assert_eq!(p.media_type, OCI_INDEX);
        assert_eq!(
            p.manifests[0].platform.as_ref().unwrap().architecture,
            "arm64"
        );
    }

    #[test]
    fn bad_manifests_are_refused() {
        let cases: Vec<(Option<&str>, String)> = vec![
            (Some(OCI_MANIFEST), "{not json".into()),
            (Some(OCI_MANIFEST), "[]".into()),
            (Some(OCI_MANIFEST), r#"{"schemaVersion": 1}"#.into()),
            (Some("application/vnd.example+json"), r#"{"schemaVersion": 2}"#.into()),
            (Some(DOCKER_MANIFEST), format!(r#"{{"schemaVersion": 2, "mediaType": "{OCI_MANIFEST}"}}"#)),
            (Some(OCI_MANIFEST), r#"{"schemaVersion": 2, "config": {"mediaType": "x", "digest": "sha256:zz", "size": 1}, "layers": []}"#.into()),
            (Some(OCI_MANIFEST), format!(r#"{{"schemaVersion": 2, "config": {{"mediaType": "x", "digest": "{}", "size": -1}}, "layers": []}}"#, d(1))),
            (Some(OCI_INDEX), r#"{"schemaVersion": 2}"#.into()),
        ];
        for (ct, body) in cases {
            let e = parse(ct, body.as_bytes()).unwrap_err();
            assert_eq!(e.code, "MANIFEST_INVALID", "{body}");
        }
        let big = vec![b' '; MAX_MANIFEST + 1];
        assert_eq!(parse(Some(OCI_MANIFEST), &big).unwrap_err().status, 413);
    }
}
