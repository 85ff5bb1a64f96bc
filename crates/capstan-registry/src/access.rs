//! Who is calling and what they may do: the registry's bearer tokens
//! (Docker's token spec), scopes, and the permission decision they carry.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use axum::http::HeaderMap;
use base64::Engine as _;
use capstan_core::registry::{repository_access, AccessLevel, DirectoryView};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::{RegistryError, RegistryResult};
use crate::meta::{Meta, RepoRecord, Visibility};
use crate::names::RepoName;
use crate::Registry;

/// Access to one resource, as a token scope names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    /// `repository` or `registry`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The repository name, or `catalog`.
    pub name: String,
    /// `pull`, `push`, `delete`, `*`.
    pub actions: Vec<String>,
}

/// A registry token's claims.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer: `capstan-registry`.
    pub iss: String,
    /// Username; empty for anonymous.
    pub sub: String,
    /// The service (this registry).
    pub aud: String,
    /// Expiry (unix seconds).
    pub exp: i64,
    /// Not before.
    pub nbf: i64,
    /// Issued at.
    pub iat: i64,
    /// Token id.
    pub jti: String,
    /// What the token grants.
    pub access: Vec<Access>,
}

/// The issuer of every token.
pub const ISSUER: &str = "capstan-registry";

/// Signing keys of registry tokens.
pub struct Tokens {
    enc: EncodingKey,
    dec: DecodingKey,
    validation: Validation,
    /// Token lifetime.
    pub ttl: Duration,
}

impl Tokens {
    /// Loads the key in `path`, or makes one (mode 0600).
    pub fn load_or_create(path: &Path, service: &str, ttl: Duration) -> std::io::Result<Self> {
        let key = match std::fs::read(path) {
            Ok(k) if k.len() >= 32 => k,
            _ => {
                let k: [u8; 32] = rand::random();
                capstan_pki::write_private_file(path, &k)
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                k.to_vec()
            }
        };
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[service]);
        validation.leeway = 5;
        Ok(Self {
            enc: EncodingKey::from_secret(&key),
            dec: DecodingKey::from_secret(&key),
            validation,
            ttl,
        })
    }

    /// Signs claims.
    pub fn sign(&self, claims: &Claims) -> RegistryResult<String> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.enc)
            .map_err(RegistryError::internal)
    }

    /// Checks a token: signature, issuer, audience, expiry.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.dec, &self.validation)
            .ok()
            .map(|d| d.claims)
    }
}

/// Parses a scope: `repository:<name>:<actions>` or `registry:catalog:*`.
pub fn parse_scope(scope: &str) -> Option<Access> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    let kind = kind.split('(').next().unwrap_or(kind);
    Some(Access {
        kind: kind.into(),
        name: name.into(),
        actions: actions
            .split(',')
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect(),
    })
}

/// The scope a client asks a token for before doing `action` in `repo`
/// (what a challenge names).
pub fn repository_scope(repo: &RepoName, action: &str) -> String {
    let actions = if action == "pull" {
        "pull"
    } else {
        "pull,push"
    };
    format!("repository:{repo}:{actions}")
}

/// The level `user` (or anonymous) has in a repository of namespace `ns`;
/// `record` is `None` when the repository does not exist yet.
pub fn access_level(
    dir: &DirectoryView,
    user: Option<&str>,
    ns: &str,
    record: Option<&RepoRecord>,
) -> Option<AccessLevel> {
    static NO_TEAMS: BTreeMap<String, AccessLevel> = BTreeMap::new();
    repository_access(
        dir,
        user,
        ns,
        record.map(|r| r.visibility == Visibility::Public),
        record.map_or(&NO_TEAMS, |r| &r.team_access),
    )
}

/// The actions `user` (or anonymous) may do in `repo`.
pub fn allowed_actions(
    meta: &Meta,
    dir: &DirectoryView,
    user: Option<&str>,
    repo: &RepoName,
) -> RegistryResult<Vec<&'static str>> {
    let record = meta.repo(repo.as_str())?;
    Ok(
        match access_level(dir, user, repo.namespace(), record.as_ref()) {
            None => vec![],
            Some(AccessLevel::ReadOnly) => vec!["pull"],
            Some(AccessLevel::ReadWrite) => vec!["pull", "push", "delete"],
            Some(AccessLevel::Admin) => vec!["pull", "push", "delete", "*"],
        },
    )
}

/// The authenticated caller of one request.
pub struct Auth {
    /// Username; `None` for anonymous.
    pub user: Option<String>,
    /// What the bearer token grants; `None` when the caller logged in on
    /// this request (Basic) and is decided live.
    grants: Option<Vec<Access>>,
}

impl Auth {
    /// Whether the caller may list the catalog (filtered to what they may
    /// pull): a token that asked for `registry:catalog:*`, or a login.
    pub fn may_list_catalog(&self) -> bool {
        self.grants.as_ref().is_none_or(|g| {
            g.iter().any(|a| {
                a.kind == "registry" && a.name == "catalog" && a.actions.iter().any(|x| x == "*")
            })
        })
    }
}

/// Decodes `Authorization: Basic`.
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let b64 = v
        .strip_prefix("Basic ")
        .or_else(|| v.strip_prefix("basic "))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

impl Registry {
    /// The `WWW-Authenticate` challenge naming the token endpoint.
    pub fn challenge(&self, scope: Option<&str>) -> String {
        let mut c = format!(
            "Bearer realm=\"https://{}/auth/token\",service=\"{}\"",
            self.config.public_host, self.config.service
        );
        if let Some(s) = scope {
            c.push_str(&format!(",scope=\"{s}\""));
        }
        c
    }

    /// Authenticates a request: a registry token, or Basic credentials
    /// checked with the control plane. No credentials is a 401 challenge.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        scope: Option<&str>,
    ) -> RegistryResult<Auth> {
        let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
            return Err(RegistryError::unauthorized(
                "authentication required",
                self.challenge(scope),
            ));
        };
        let value = value.to_str().unwrap_or_default();
        if let Some(token) = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
        {
            let claims = self.tokens.verify(token.trim()).ok_or_else(|| {
                RegistryError::unauthorized(
                    "the token is invalid or has expired",
                    self.challenge(scope),
                )
            })?;
            return Ok(Auth {
                user: (!claims.sub.is_empty()).then_some(claims.sub),
                grants: Some(claims.access),
            });
        }
        let Some((user, password)) = basic_credentials(headers) else {
            return Err(RegistryError::unauthorized(
                "the Authorization header must be Bearer <token> or Basic",
                self.challenge(scope),
            ));
        };
        match self.control.authenticate(&user, &password, None).await? {
            Some(u) => Ok(Auth {
                user: Some(u.username),
                grants: None,
            }),
            None => Err(RegistryError::unauthorized(
                "invalid username or password",
                self.challenge(scope),
            )),
        }
    }

    /// Checks that the caller may do `action` in `repo`. A refusal does not
    /// tell an outsider whether a private repository exists.
    pub async fn permit(&self, auth: &Auth, repo: &RepoName, action: &str) -> RegistryResult<()> {
        self.permit_scoped(auth, repo.as_str(), repo, action).await
    }

    /// [`Self::permit`] for a resource a token names `scope_name` (a trust
    /// GUN names its repository with the registry host in front).
    pub async fn permit_scoped(
        &self,
        auth: &Auth,
        scope_name: &str,
        repo: &RepoName,
        action: &str,
    ) -> RegistryResult<()> {
        let scope = if scope_name == repo.as_str() {
            repository_scope(repo, action)
        } else {
            let actions = match action {
                "pull" => "pull",
                "*" => "*",
                _ => "push,pull",
            };
            format!("repository:{scope_name}:{actions}")
        };
        let actions: Vec<String> = match &auth.grants {
            Some(grants) => {
                let mut found = false;
                let mut acts = vec![];
                for g in grants
                    .iter()
                    .filter(|g| g.kind == "repository" && g.name == scope_name)
                {
                    found = true;
                    acts.extend(g.actions.iter().cloned());
                }
                if !found {
                    return Err(RegistryError::unauthorized(
                        format!("the token grants nothing in {repo}"),
                        self.challenge(Some(&scope)),
                    ));
                }
                acts
            }
            None => {
                let dir = self.control.directory().await?;
                allowed_actions(&self.meta, &dir, auth.user.as_deref(), repo)?
                    .into_iter()
                    .map(str::to_string)
                    .collect()
            }
        };
        if actions.iter().any(|a| a == action || a == "*") {
            return Ok(());
        }
        match (&auth.user, action) {
            (None, _) => Err(RegistryError::unauthorized(
                "authentication required",
                self.challenge(Some(&scope)),
            )),
            (Some(u), "pull") => {
                let mut e = RegistryError::name_unknown(repo.as_str());
                e.message = format!("repository {repo} does not exist or {u} may not pull from it");
                Err(e)
            }
            (Some(u), _) if actions.iter().any(|a| a == "pull") => {
                Err(RegistryError::denied(format!(
                    "requested access to the resource is denied: {u} may not {action} in {repo}"
                )))
            }
            (Some(_), _) => Err(RegistryError::denied(
                "requested access to the resource is denied",
            )),
        }
    }
}
