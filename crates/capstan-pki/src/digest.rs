//! The CA digest: how a joining node names the cluster CA it expects.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::error::PkiError;
use crate::pem::cert_der_from_pem;

/// Lowercase hex SHA-256 of a CA certificate's DER encoding.
///
/// Join tokens carry it so that a joining node can authenticate the manager's
/// CA before it sends any secret.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CaDigest(String);

impl CaDigest {
    /// The digest of a DER-encoded certificate.
    pub fn of_der(cert_der: &[u8]) -> Self {
        CaDigest(hex::encode(Sha256::digest(cert_der)))
    }

    /// The 64 lowercase hex characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CaDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for CaDigest {
    type Err = PkiError;

    /// Accepts 64 hex characters in either case and normalizes to lowercase.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| PkiError::InvalidDigest {
            value: s.to_string(),
            reason,
        };
        if s.len() != 64 {
            return Err(invalid("it is not 64 characters long"));
        }
        if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid("it contains characters other than 0-9 and a-f"));
        }
        Ok(CaDigest(s.to_ascii_lowercase()))
    }
}

impl TryFrom<String> for CaDigest {
    type Error = PkiError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<CaDigest> for String {
    fn from(digest: CaDigest) -> String {
        digest.0
    }
}

/// The digest of the first certificate in a PEM document.
pub fn digest_of_cert_pem(pem: &str) -> Result<CaDigest, PkiError> {
    let der = cert_der_from_pem(pem, "CA certificate")?;
    Ok(CaDigest::of_der(&der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_known_bytes_is_lowercase_sha256() {
        let digest = CaDigest::of_der(b"abc");
        assert_eq!(
            digest.as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn parse_accepts_hex_and_normalizes_case() {
        let upper = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD";
        let parsed: CaDigest = upper.parse().expect("valid digest");
        assert_eq!(parsed, CaDigest::of_der(b"abc"));
        assert_eq!(parsed.to_string(), upper.to_ascii_lowercase());
    }

    #[test]
    fn serde_uses_the_hex_string_and_validates_it() {
        let digest = CaDigest::of_der(b"abc");
        let json = serde_json::to_string(&digest).expect("serialize");
        assert_eq!(json, format!("\"{digest}\""));
        let back: CaDigest = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, digest);
        assert!(serde_json::from_str::<CaDigest>("\"abc\"").is_err());
    }

    #[test]
    fn parse_rejects_wrong_length_and_non_hex() {
        let short = "abcd".parse::<CaDigest>().unwrap_err().to_string();
        assert!(short.contains("64 characters"), "{short}");
        let non_hex = "g".repeat(64).parse::<CaDigest>().unwrap_err().to_string();
        assert!(non_hex.contains("0-9 and a-f"), "{non_hex}");
    }
}
