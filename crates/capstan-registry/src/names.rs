//! Repository names, tags and digests as the distribution spec writes them.

use std::fmt;

use crate::error::{RegistryError, RegistryResult};

/// The longest repository name the registry accepts.
pub const MAX_NAME: usize = 255;

/// A validated repository name, `namespace/repository` (MSR's two parts).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepoName {
    full: String,
    slash: usize,
}

impl RepoName {
    /// Checks a name: two components of lowercase letters and digits,
    /// separated inside by `.`, `_`, `__` or dashes, at most 255 bytes.
    pub fn parse(name: &str) -> RegistryResult<Self> {
        if name.len() > MAX_NAME {
            return Err(RegistryError::name_invalid(format!(
                "repository name is {} bytes long; the limit is {MAX_NAME}",
                name.len()
            )));
        }
        let parts: Vec<&str> = name.split('/').collect();
        if parts.len() != 2 {
            return Err(RegistryError::name_invalid(format!(
                "invalid repository name {name:?}: use namespace/repository, where the namespace is a user or an organisation"
            )));
        }
        for part in &parts {
            check_component(part).map_err(|why| {
                RegistryError::name_invalid(format!(
                    "invalid repository name {name:?}: component {part:?} {why}"
                ))
            })?;
        }
        Ok(Self {
            full: name.to_string(),
            slash: parts[0].len(),
        })
    }

    /// The namespace (user or organisation).
    pub fn namespace(&self) -> &str {
        &self.full[..self.slash]
    }

    /// The repository within its namespace.
    pub fn repo(&self) -> &str {
        &self.full[self.slash + 1..]
    }

    /// `namespace/repository`.
    pub fn as_str(&self) -> &str {
        &self.full
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

/// One path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
pub fn check_component(part: &str) -> Result<(), &'static str> {
    if part.is_empty() {
        return Err("is empty");
    }
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let bytes = part.as_bytes();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err("must start and end with a lowercase letter or digit");
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &part[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return Err("may only hold lowercase letters, digits and single separators (., _, __ or dashes)");
        }
    }
    Ok(())
}

/// Checks a tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn check_tag(tag: &str) -> RegistryResult<()> {
    let ok_first = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let ok = |c: u8| ok_first(c) || c == b'.' || c == b'-';
    let b = tag.as_bytes();
    if b.is_empty() || b.len() > 128 || !ok_first(b[0]) || !b.iter().all(|&c| ok(c)) {
        return Err(RegistryError::tag_invalid(format!(
            "invalid tag {tag:?}: up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'"
        )));
    }
    Ok(())
}

/// A validated `sha256:<64 hex>` digest.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(String);

impl Digest {
    /// Parses a digest; only sha256 is supported.
    pub fn parse(s: &str) -> RegistryResult<Self> {
        let Some((alg, hex)) = s.split_once(':') else {
            return Err(RegistryError::digest_invalid(format!(
                "invalid digest {s:?}: expected sha256:<64 hex digits>"
            )));
        };
        if alg != "sha256" {
            return Err(RegistryError::digest_invalid(format!(
                "unsupported digest algorithm {alg:?} in {s:?}: this registry uses sha256"
            )));
        }
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        {
            return Err(RegistryError::digest_invalid(format!(
                "invalid digest {s:?}: sha256 takes 64 lowercase hex digits"
            )));
        }
        Ok(Self(s.to_string()))
    }

    /// The digest of bytes.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        Self::from_hash(sha2::Sha256::digest(bytes).as_slice())
    }

    /// The digest of a finished SHA-256.
    pub fn from_hash(hash: &[u8]) -> Self {
        Self(format!("sha256:{}", hex::encode(hash)))
    }

    /// The hex part.
    pub fn hex(&self) -> &str {
        &self.0[7..]
    }

    /// `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A manifest reference: a tag or a digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    /// A tag.
    Tag(String),
    /// A digest.
    Digest(Digest),
}

impl Reference {
    /// Parses a reference (a digest when it holds `:`).
    pub fn parse(s: &str) -> RegistryResult<Self> {
        if s.contains(':') {
            Digest::parse(s).map(Reference::Digest)
        } else {
            check_tag(s)?;
            Ok(Reference::Tag(s.to_string()))
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => f.write_str(t),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

/// A trust GUN: `<registry host>/<namespace>/<repository>`, the name the
/// docker CLI gives a repository's trust data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gun {
    full: String,
    repo: RepoName,
}

impl Gun {
    /// Checks a GUN: a host (letters, digits, `.`, `-`, `:`, `[`, `]`)
    /// then a repository name.
    pub fn parse(gun: &str) -> RegistryResult<Self> {
        let Some((host, repo)) = gun.split_once('/') else {
            return Err(RegistryError::name_invalid(format!(
                "invalid trust name {gun:?}: use <registry host>/<namespace>/<repository>"
            )));
        };
        let host_ok = !host.is_empty()
            && host.len() <= 255
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
        if !host_ok {
            return Err(RegistryError::name_invalid(format!(
                "invalid trust name {gun:?}: {host:?} is not a registry host"
            )));
        }
        Ok(Self {
            full: gun.to_string(),
            repo: RepoName::parse(repo)?,
        })
    }

    /// The whole GUN.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// The repository it is the trust data of.
    pub fn repo(&self) -> &RepoName {
        &self.repo
    }
}

impl fmt::Display for Gun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names() {
        for ok in [
            "docker-dca/nginx",
            "a/b",
            "ana/my_app",
            "org/a__b",
            "org/a---b",
            "o.rg/x.y",
        ] {
            let n = RepoName::parse(ok).unwrap();
            assert_eq!(n.as_str(), ok);
        }
        let n = RepoName::parse("docker-dca/nginx").unwrap();
        assert_eq!((n.namespace(), n.repo()), ("docker-dca", "nginx"));
        for bad in [
            "nginx", "a/b/c", "A/b", "a/B", "a/", "/b", "a/-b", "a/b-", "a/b..c", "a/b._c",
            "../etc", "a/..", "a/b___c", "a/b c", "a/ü",
        ] {
            let e = RepoName::parse(bad).unwrap_err();
            assert_eq!(e.code, "NAME_INVALID", "{bad}");
        }
        assert!(RepoName::parse(&format!("a/{}", "b".repeat(300))).is_err());
    }

    #[test]
    fn tags_and_digests() {
        for ok in ["latest", "v1.0", "_x", "A-b.c_d"] {
            check_tag(ok).unwrap();
        }
        for bad in ["", ".x", "-x", "a/b", "a b", &"x".repeat(129)] {
            assert_eq!(check_tag(bad).unwrap_err().code, "TAG_INVALID", "{bad}");
        }
        let d = Digest::of(b"hello");
        assert_eq!(Digest::parse(d.as_str()).unwrap(), d);
        for bad in [
            "sha256:abc",
            "md5:00",
            "nocolon",
            &format!("sha256:{}", "A".repeat(64)),
        ] {
            assert_eq!(
                Digest::parse(bad).unwrap_err().code,
                "DIGEST_INVALID",
                "{bad}"
            );
        }
        assert!(matches!(Reference::parse("v1").unwrap(), Reference::Tag(_)));
        assert!(matches!(
            Reference::parse(d.as_str()).unwrap(),
            Reference::Digest(_)
        ));
    }
}
