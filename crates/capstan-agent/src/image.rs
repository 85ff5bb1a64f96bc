//! Making sure a task's image is on the node: pulled with the task's
//! registry credentials when it has some, else inspected and pulled when
//! missing.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use bollard::query_parameters::CreateImageOptions;
use futures::TryStreamExt;

use crate::container_spec::pull_reference;
use crate::engine::Engine;
use crate::error::{is_not_found, AgentError};

/// The header that carries registry credentials on a pull.
const REGISTRY_AUTH_HEADER: &str = "x-registry-auth";

/// Pulls `image` when the task comes with registry credentials (so that
/// the registry decides, for every task, whether its owner may have the
/// image: a copy another user pulled onto this node does not count);
/// otherwise inspects it and pulls only when the engine does not have it.
pub(crate) async fn ensure_image(
    engine: &Engine,
    task: &str,
    image: &str,
    registry_auth: Option<&str>,
) -> Result<(), AgentError> {
    let registry_auth = registry_auth.filter(|a| !a.is_empty());
    if registry_auth.is_none() {
        match engine.docker.inspect_image(image).await {
            Ok(_) => return Ok(()),
            Err(e) if is_not_found(&e) => {}
            Err(source) => {
                return Err(AgentError::InspectImage {
                    task: task.to_owned(),
                    image: image.to_owned(),
                    source,
                })
            }
        }
    }
    let mut client = engine.docker.clone();
    if let Some(auth) = registry_auth {
        let header = normalize_registry_auth(auth).map_err(|reason| AgentError::RegistryAuth {
            task: task.to_owned(),
            reason,
        })?;
        // Sent as given (re-encoded in the alphabet the engine decodes):
        // bollard would re-encode parsed credentials in another alphabet.
        client = client.with_request_modifier(move |mut request| {
            if let Ok(value) = header.parse() {
                request.headers_mut().insert(REGISTRY_AUTH_HEADER, value);
            }
            request
        });
    }
    let options = CreateImageOptions {
        from_image: Some(pull_reference(image)),
        ..Default::default()
    };
    tracing::info!(task, image, "pulling image");
    let pulled: Result<(), _> = client
        .create_image(Some(options), None, None)
        .try_for_each(|_progress| async { Ok(()) })
        .await;
    pulled.map_err(|source| AgentError::PullImage {
        task: task.to_owned(),
        image: image.to_owned(),
        source,
    })
}

/// The `X-Registry-Auth` value as the engine decodes it (URL-safe base64
/// of a JSON object), from base64 JSON in any common alphabet.
pub(crate) fn normalize_registry_auth(auth: &str) -> Result<String, String> {
    let auth = auth.trim();
    let decoded = [&URL_SAFE, &URL_SAFE_NO_PAD, &STANDARD, &STANDARD_NO_PAD]
        .iter()
        .find_map(|alphabet| alphabet.decode(auth).ok())
        .ok_or_else(|| "not base64".to_owned())?;
    let json: serde_json::Value =
        serde_json::from_slice(&decoded).map_err(|e| format!("not JSON: {e}"))?;
    if !json.is_object() {
        return Err("not a JSON object".to_owned());
    }
    Ok(URL_SAFE.encode(decoded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_auth_is_reencoded_url_safe() {
        // `?>` encodes to `Pz4` in both alphabets; `>>>` differs (`Pj4+` vs `Pj4-`).
        let json = br#"{"username":"u","password":">>>?","serveraddress":"r:5000"}"#;
        let standard = STANDARD.encode(json);
        let url_safe = URL_SAFE.encode(json);
        assert_ne!(
            standard, url_safe,
            "the sample must differ between alphabets"
        );
        assert_eq!(normalize_registry_auth(&standard).unwrap(), url_safe);
        assert_eq!(normalize_registry_auth(&url_safe).unwrap(), url_safe);
        assert!(normalize_registry_auth("!!!")
            .unwrap_err()
            .contains("base64"));
        let not_object = STANDARD.encode("[1]");
        assert!(normalize_registry_auth(&not_object).is_err());
    }
}
