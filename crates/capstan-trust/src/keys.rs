//! Public keys as TUF writes them (`{"keytype", "keyval": {"public",
//! "private"}}`), their ids, signature checks, and the ECDSA P-256 keys a
//! trust server signs with.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self as sig, EcdsaKeyPair, KeyPair as _, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use x509_parser::prelude::FromDer as _;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::canonical;
use crate::error::TrustError;

/// The key types TUF (as Notary writes it) names.
pub mod keytype {
    /// Raw 32-byte Ed25519 public key.
    pub const ED25519: &str = "ed25519";
    /// ECDSA public key, DER SubjectPublicKeyInfo.
    pub const ECDSA: &str = "ecdsa";
    /// ECDSA public key inside a PEM certificate.
    pub const ECDSA_X509: &str = "ecdsa-x509";
    /// RSA public key, DER SubjectPublicKeyInfo.
    pub const RSA: &str = "rsa";
    /// RSA public key inside a PEM certificate.
    pub const RSA_X509: &str = "rsa-x509";
}

/// A public key of TUF metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    /// One of [`keytype`].
    pub keytype: String,
    /// The key material.
    pub keyval: KeyVal,
}

/// A key's material: the public part, and `private` always null in
/// metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyVal {
    /// The public bytes (see [`keytype`]), base64.
    #[serde(with = "b64")]
    pub public: Vec<u8>,
    /// Always null in published metadata.
    #[serde(default)]
    pub private: Option<serde_json::Value>,
}

impl PublicKey {
    /// A key of `keytype` with these public bytes.
    pub fn new(keytype: &str, public: Vec<u8>) -> Self {
        Self {
            keytype: keytype.into(),
            keyval: KeyVal {
                public,
                private: None,
            },
        }
    }

    /// The key id: SHA-256 (hex) of the canonical JSON of the key with a
    /// null private part.
    pub fn id(&self) -> String {
        let v = serde_json::json!({
            "keytype": self.keytype,
            "keyval": {"private": null, "public": STANDARD.encode(&self.keyval.public)},
        });
        // Strings and nulls always have a canonical form.
        let bytes = canonical::to_vec(&v).unwrap_or_default();
        hex::encode(Sha256::digest(bytes))
    }

    /// The key's DER SubjectPublicKeyInfo (taken out of the certificate
    /// for x509 keys); `None` for Ed25519 keys, which TUF writes raw.
    pub fn spki_der(&self) -> Result<Option<Vec<u8>>, TrustError> {
        let bad = |reason: String| TrustError::Key {
            key_id: self.id(),
            reason,
        };
        match self.keytype.as_str() {
            keytype::ED25519 => Ok(None),
            keytype::ECDSA | keytype::RSA => Ok(Some(self.keyval.public.clone())),
            keytype::ECDSA_X509 | keytype::RSA_X509 => {
                let (_, pem) = x509_parser::pem::parse_x509_pem(&self.keyval.public)
                    .map_err(|e| bad(format!("the public part is not a PEM certificate: {e}")))?;
                let cert = pem
                    .parse_x509()
                    .map_err(|e| bad(format!("the certificate does not parse: {e}")))?;
                Ok(Some(cert.tbs_certificate.subject_pki.raw.to_vec()))
            }
            other => Err(bad(format!(
                "key type {other:?} is not one of ed25519, ecdsa, ecdsa-x509, rsa, rsa-x509"
            ))),
        }
    }

    /// SHA-256 (hex) of [`Self::spki_der`]: how a client bundle's key is
    /// recognised.
    pub fn spki_sha256(&self) -> Option<String> {
        self.spki_der()
            .ok()
            .flatten()
            .map(|der| hex::encode(Sha256::digest(der)))
    }

    /// Checks `signature` over `msg` made with `method`.
    pub fn verify(&self, method: &str, msg: &[u8], signature: &[u8]) -> Result<(), TrustError> {
        let bad = |reason: String| TrustError::Key {
            key_id: self.id(),
            reason,
        };
        let (alg, public): (&dyn sig::VerificationAlgorithm, Vec<u8>) =
            match (self.keytype.as_str(), method) {
                (keytype::ED25519, "ed25519") => (&sig::ED25519, self.keyval.public.clone()),
                (keytype::ECDSA | keytype::ECDSA_X509, "ecdsa") => {
                    let point = self.subject_key_bits()?;
                    if point.len() != 65 || signature.len() != 64 {
                        return Err(bad(
                            "only ECDSA P-256 keys (with SHA-256) are supported".into()
                        ));
                    }
                    (&sig::ECDSA_P256_SHA256_FIXED, point)
                }
                (keytype::RSA | keytype::RSA_X509, "rsapss") => {
                    (&sig::RSA_PSS_2048_8192_SHA256, self.subject_key_bits()?)
                }
                (keytype::RSA | keytype::RSA_X509, "rsapkcs1v15") => {
                    (&sig::RSA_PKCS1_2048_8192_SHA256, self.subject_key_bits()?)
                }
                (kt, m) => {
                    return Err(bad(format!(
                        "signature method {m:?} does not apply to a {kt:?} key"
                    )))
                }
            };
        UnparsedPublicKey::new(alg, public)
            .verify(msg, signature)
            .map_err(|_| bad("the signature does not verify".into()))
    }

    /// The subject public key bits of an ECDSA or RSA key (the EC point, or
    /// the DER RSAPublicKey).
    fn subject_key_bits(&self) -> Result<Vec<u8>, TrustError> {
        let der = self.spki_der()?.unwrap_or_default();
        let (_, spki) = SubjectPublicKeyInfo::from_der(&der).map_err(|e| TrustError::Key {
            key_id: self.id(),
            reason: format!("the public key does not parse: {e}"),
        })?;
        Ok(spki.subject_public_key.data.to_vec())
    }
}

/// The DER SubjectPublicKeyInfo prefix of a P-256 public key; the 65-byte
/// uncompressed point follows.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// An ECDSA P-256 signing key (what a trust server holds for timestamps
/// and snapshots, and what tests sign with).
pub struct PrivateKey {
    pair: EcdsaKeyPair,
    pkcs8: Vec<u8>,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey")
            .field("id", &self.public().id())
            .finish_non_exhaustive()
    }
}

/// Why a private key cannot be made or read.
#[derive(Debug, thiserror::Error)]
#[error("ECDSA key: {0}")]
pub struct KeyError(String);

impl PrivateKey {
    /// A new random key.
    pub fn generate() -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|e| KeyError(e.to_string()))?;
        Self::from_pkcs8(doc.as_ref())
    }

    /// A key from its PKCS#8 DER form.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
            .map_err(|e| KeyError(e.to_string()))?;
        Ok(Self {
            pair,
            pkcs8: pkcs8.to_vec(),
        })
    }

    /// Its PKCS#8 DER form, to store.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// Its public key, as an `ecdsa` TUF key.
    pub fn public(&self) -> PublicKey {
        let mut der = P256_SPKI_PREFIX.to_vec();
        der.extend_from_slice(self.pair.public_key().as_ref());
        PublicKey::new(keytype::ECDSA, der)
    }

    /// Signs `msg` (method `ecdsa`: SHA-256, r‖s).
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.pair
            .sign(&SystemRandom::new(), msg)
            .map(|s| s.as_ref().to_vec())
            .map_err(|e| KeyError(e.to_string()))
    }
}

/// Base64 (standard, padded) for byte fields, as Go writes `[]byte`.
pub(crate) mod b64 {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD
            .decode(s.trim())
            .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let k = PrivateKey::generate().unwrap();
        let public = k.public();
        let s = k.sign(b"hello").unwrap();
        public.verify("ecdsa", b"hello", &s).unwrap();
        assert!(public.verify("ecdsa", b"hullo", &s).is_err());
        assert!(public.verify("ed25519", b"hello", &s).is_err());
        let again = PrivateKey::from_pkcs8(k.pkcs8()).unwrap();
        assert_eq!(again.public().id(), public.id());
        assert_eq!(public.spki_der().unwrap().unwrap().len(), 91);
    }

    #[test]
    fn key_id_is_notarys() {
        // The id Notary computes for this ed25519 key: SHA-256 of
        // {"keytype":"ed25519","keyval":{"private":null,"public":"AAAA"}}.
        let k = PublicKey::new(keytype::ED25519, vec![0, 0, 0]);
        let expected = hex::encode(Sha256::digest(
            br#"{"keytype":"ed25519","keyval":{"private":null,"public":"AAAA"}}"#,
        ));
        assert_eq!(k.id(), expected);
    }
}
