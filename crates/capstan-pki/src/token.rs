//! Join tokens: `CAPTKN-1-<ca digest>-<secret>`, like Docker swarm's `SWMTKN-1-...`.
//!
//! The digest lets a joining node authenticate the manager's CA before it
//! sends anything; the secret then proves to the manager that the node may join.

use std::fmt;
use std::str::FromStr;

use rand::rngs::OsRng;
use rand::Rng;

use crate::digest::CaDigest;
use crate::error::PkiError;

const PREFIX: &str = "CAPTKN-";
const VERSION: &str = "1";
/// Length of the random secret.
pub const SECRET_LEN: usize = 25;
const SECRET_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Why a string is not a usable join token. No message contains the secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenProblem {
    /// It does not start with `CAPTKN-`.
    #[error("not a Capstan join token: it must start with CAPTKN-{hint}")]
    WrongPrefix {
        /// Extra advice for well-known look-alikes (a Docker swarm token).
        hint: &'static str,
    },
    /// A version this build does not know.
    #[error("join token version {0} is not supported by this capstan; expected version 1")]
    UnsupportedVersion(u32),
    /// The version field is not a number.
    #[error("join token has a malformed version field; expected CAPTKN-1-<digest>-<secret>")]
    MalformedVersion,
    /// Fewer than three dash-separated parts after the prefix.
    #[error("join token is incomplete: expected CAPTKN-1-<digest>-<secret>; copy the whole token printed by `capstan token`")]
    MissingParts,
    /// The CA digest part is not 64 hex characters.
    #[error("join token has an invalid CA digest: expected 64 hex characters; copy the whole token printed by `capstan token`")]
    BadDigest,
    /// The secret part has the wrong length.
    #[error("join token secret has the wrong length: expected 25 characters, got {0}; copy the whole token printed by `capstan token`")]
    SecretLength(usize),
    /// The secret part has characters outside `[a-z0-9]`.
    #[error("join token secret may contain only a-z and 0-9; copy the token exactly as printed by `capstan token`")]
    SecretCharset,
}

/// A join token: the CA digest to pin plus the secret that admits a node.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// The cluster CA the joining node must see before it sends the secret.
    pub ca_digest: CaDigest,
    /// 25 characters `[a-z0-9]`; the manager maps it to a role.
    pub secret: String,
}

impl JoinToken {
    /// A token with a fresh 25-character secret from the OS random source.
    pub fn generate(ca_digest: CaDigest) -> Self {
        let secret = (0..SECRET_LEN)
            .map(|_| char::from(SECRET_ALPHABET[OsRng.gen_range(0..SECRET_ALPHABET.len())]))
            .collect();
        JoinToken { ca_digest, secret }
    }

    /// Compares `other_secret` with ours in time independent of where they differ.
    pub fn secret_matches(&self, other_secret: &str) -> bool {
        let ours = self.secret.as_bytes();
        let theirs = other_secret.as_bytes();
        // The length is public (always 25), so an early return leaks nothing.
        if ours.len() != theirs.len() {
            return false;
        }
        let diff = ours
            .iter()
            .zip(theirs)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{VERSION}-{}-{}", self.ca_digest, self.secret)
    }
}

/// Shows the digest only, so tokens can be logged by accident without harm.
impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("ca_digest", &self.ca_digest)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl FromStr for JoinToken {
    type Err = PkiError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s.trim()).map_err(PkiError::InvalidToken)
    }
}

fn parse(s: &str) -> Result<JoinToken, TokenProblem> {
    let Some(rest) = s.strip_prefix(PREFIX) else {
        let hint = if s.starts_with("SWMTKN-") {
            " (this is a Docker swarm token; use `capstan token` on a Capstan manager)"
        } else {
            ""
        };
        return Err(TokenProblem::WrongPrefix { hint });
    };
    let mut parts = rest.splitn(3, '-');
    let (Some(version), Some(digest), Some(secret)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenProblem::MissingParts);
    };
    if version != VERSION {
        // Short numbers only: a longer field may be a misplaced secret.
        return Err(match version.parse::<u32>() {
            Ok(v) if version.len() <= 4 && v != 1 => TokenProblem::UnsupportedVersion(v),
            _ => TokenProblem::MalformedVersion,
        });
    }
    if digest.is_empty() || secret.is_empty() {
        return Err(TokenProblem::MissingParts);
    }
    let ca_digest = digest
        .parse::<CaDigest>()
        .map_err(|_| TokenProblem::BadDigest)?;
    if secret.len() != SECRET_LEN {
        return Err(TokenProblem::SecretLength(secret.chars().count()));
    }
    if !secret.bytes().all(|b| SECRET_ALPHABET.contains(&b)) {
        return Err(TokenProblem::SecretCharset);
    }
    Ok(JoinToken {
        ca_digest,
        secret: secret.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const SECRET: &str = "abcdefghijklmnopqrstuvwxy";

    fn digest() -> CaDigest {
        DIGEST.parse().expect("digest")
    }

    #[test]
    fn generated_token_round_trips() {
        let token = JoinToken::generate(digest());
        assert_eq!(token.secret.len(), SECRET_LEN);
        assert!(token.secret.bytes().all(|b| SECRET_ALPHABET.contains(&b)));
        let text = token.to_string();
        assert_eq!(text, format!("CAPTKN-1-{DIGEST}-{}", token.secret));
        let back: JoinToken = format!("  {text}\n").parse().expect("parse");
        assert_eq!(back, token);
    }

    #[test]
    fn secrets_are_random() {
        let a = JoinToken::generate(digest());
        let b = JoinToken::generate(digest());
        assert_ne!(a.secret, b.secret);
    }

    #[test]
    fn secret_matching() {
        let token = JoinToken {
            ca_digest: digest(),
            secret: SECRET.into(),
        };
        assert!(token.secret_matches(SECRET));
        assert!(!token.secret_matches("abcdefghijklmnopqrstuvwxz"));
        assert!(!token.secret_matches("abc"));
        assert!(!token.secret_matches(""));
    }

    #[test]
    fn debug_hides_the_secret() {
        let token = JoinToken {
            ca_digest: digest(),
            secret: SECRET.into(),
        };
        assert!(!format!("{token:?}").contains(SECRET));
    }

    #[test]
    fn malformed_tokens_give_distinct_errors_without_the_secret() {
        let upper = SECRET.to_ascii_uppercase();
        let cases: Vec<(String, TokenProblem)> = vec![
            (
                format!("SWMTKN-1-{DIGEST}-{SECRET}"),
                TokenProblem::WrongPrefix {
                    hint:
                        " (this is a Docker swarm token; use `capstan token` on a Capstan manager)",
                },
            ),
            (
                format!("{DIGEST}-{SECRET}"),
                TokenProblem::WrongPrefix { hint: "" },
            ),
            (
                format!("CAPTKN-2-{DIGEST}-{SECRET}"),
                TokenProblem::UnsupportedVersion(2),
            ),
            (
                format!("CAPTKN-01-{DIGEST}-{SECRET}"),
                TokenProblem::MalformedVersion,
            ),
            (
                format!("CAPTKN-v1-{DIGEST}-{SECRET}"),
                TokenProblem::MalformedVersion,
            ),
            (
                format!("CAPTKN-{SECRET}-{DIGEST}-x"),
                TokenProblem::MalformedVersion,
            ),
            (format!("CAPTKN-1-{DIGEST}"), TokenProblem::MissingParts),
            (format!("CAPTKN-1-{DIGEST}-"), TokenProblem::MissingParts),
            (format!("CAPTKN-{SECRET}"), TokenProblem::MissingParts),
            ("CAPTKN-".to_string(), TokenProblem::MissingParts),
            (
                format!("CAPTKN-1-{SECRET}-{DIGEST}"),
                TokenProblem::BadDigest,
            ),
            (format!("CAPTKN-1-abc-{SECRET}"), TokenProblem::BadDigest),
            (
                format!("CAPTKN-1-{DIGEST}-{SECRET}z"),
                TokenProblem::SecretLength(26),
            ),
            (
                format!("CAPTKN-1-{DIGEST}-abc"),
                TokenProblem::SecretLength(3),
            ),
            (
                format!("CAPTKN-1-{DIGEST}-{upper}"),
                TokenProblem::SecretCharset,
            ),
            (
                format!("CAPTKN-1-{DIGEST}-abcdefghijkl-nopqrstuvwxy"),
                TokenProblem::SecretCharset,
            ),
        ];
        for (input, expected) in cases {
            let err = input.parse::<JoinToken>().expect_err(&input);
            let PkiError::InvalidToken(problem) = &err else {
                panic!("{input}: unexpected error {err}");
            };
            assert_eq!(problem, &expected, "{input}");
            let message = err.to_string();
            for secret in [SECRET, upper.as_str(), "abcdefghijkl", "nopqrstuvwxy"] {
                assert!(!message.contains(secret), "{input}: {message}");
            }
        }
    }

    #[test]
    fn error_texts_match_the_documented_wording() {
        let prefix = "nope".parse::<JoinToken>().unwrap_err().to_string();
        assert_eq!(
            prefix,
            "not a Capstan join token: it must start with CAPTKN-"
        );
        let version = format!("CAPTKN-2-{DIGEST}-{SECRET}")
            .parse::<JoinToken>()
            .unwrap_err()
            .to_string();
        assert_eq!(
            version,
            "join token version 2 is not supported by this capstan; expected version 1"
        );
    }
}
