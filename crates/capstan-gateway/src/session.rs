//! Session tokens and the login rate limit.
//!
//! A token is an HS256 JWT naming the user and a session record in the
//! replicated store; it is valid while it has not expired **and** its
//! session record exists, so logout, a password change or an admin
//! revocation (deleting the record) ends it on every manager. The signing
//! key is generated once per cluster and replicated with the store.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use capstan_core::accounts::SigningKey;
use capstan_core::{decode, encode, Table};
use capstan_manager::state::{Consistency, SharedState};
use capstan_manager::ManagerError;
use capstan_store::{Action, Expect, Op};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// What a token says.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// Username.
    pub sub: String,
    /// Session id.
    pub sid: String,
    /// Cluster id.
    pub iss: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
}

/// Signs and checks session tokens.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl TokenKeys {
    /// Reads the cluster's key, creating it if this is the first gateway
    /// of the cluster. The key never changes once made, so a copy in the
    /// local state is used at once; otherwise this retries (no leader, a
    /// leader that cannot be reached) until it succeeds or `cancel` fires:
    /// a cluster that is briefly without quorum must not stop the manager.
    pub async fn load_or_create(
        state: &SharedState,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<Self, ManagerError> {
        if let Some(o) = state.sm.get(SigningKey::TABLE, "session")? {
            return Self::from_record(&decode::<SigningKey>(&o.value)?);
        }
        loop {
            match Self::try_load_or_create(state).await {
                Ok(k) => return Ok(k),
                Err(e @ (ManagerError::Fatal(_) | ManagerError::Decode(_))) => return Err(e),
                Err(e) => {
                    tracing::info!(error = %e, "cannot read or create the session key yet; retrying");
                    tokio::select! {
                        _ = cancel.cancelled() => return Err(e),
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            }
        }
    }

    async fn try_load_or_create(state: &SharedState) -> Result<Self, ManagerError> {
        if let Some(o) = state
            .read(
                SigningKey::TABLE,
                "session",
                Consistency::Linearizable,
                false,
            )
            .await?
        {
            return Self::from_record(&decode::<SigningKey>(&o.value)?);
        }
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let record = SigningKey {
            key: STANDARD.encode(bytes),
        };
        let op = Op {
            table: SigningKey::TABLE.into(),
            id: record.id(),
            action: Action::Put(encode(&record)),
            expect: Expect::Absent,
        };
        match state.write(vec![op], false).await {
            Ok(_) => Self::from_record(&record),
            // Another manager made it first: use theirs.
            Err(ManagerError::Conflict(_)) => Box::pin(Self::try_load_or_create(state)).await,
            Err(e) => Err(e),
        }
    }

    fn from_record(r: &SigningKey) -> Result<Self, ManagerError> {
        let key = STANDARD
            .decode(&r.key)
            .map_err(|e| ManagerError::Fatal(format!("stored session key is not base64: {e}")))?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        Ok(Self {
            encoding: EncodingKey::from_secret(&key),
            decoding: DecodingKey::from_secret(&key),
            validation,
        })
    }

    /// Signs a token.
    pub fn sign(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
    }

    /// Checks a token's signature, expiry and issuer.
    pub fn verify(&self, token: &str, cluster_id: &str) -> Option<Claims> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        (data.claims.iss == cluster_id).then_some(data.claims)
    }
}

/// Counts failed logins per user and per source address.
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, (Instant, u32)>>,
}

impl LoginLimiter {
    fn keys(username: &str, source: IpAddr) -> [String; 2] {
        [format!("user:{username}"), format!("addr:{source}")]
    }

    /// Seconds to wait when either key spent its failures within `window`.
    pub fn blocked(
        &self,
        username: &str,
        source: IpAddr,
        max_failures: u32,
        window: Duration,
    ) -> Option<u64> {
        let now = Instant::now();
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        Self::keys(username, source)
            .iter()
            .filter_map(|k| map.get(k))
            .filter(|(start, n)| *n >= max_failures && now.duration_since(*start) < window)
            .map(|(start, _)| (window - now.duration_since(*start)).as_secs() + 1)
            .max()
    }

    /// Records a failed attempt.
    pub fn failed(&self, username: &str, source: IpAddr, window: Duration) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        for k in Self::keys(username, source) {
            let entry = map.entry(k).or_insert((now, 0));
            if now.duration_since(entry.0) >= window {
                *entry = (now, 0);
            }
            entry.1 += 1;
        }
    }

    /// Forgets the user's failures after a successful login.
    pub fn succeeded(&self, username: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&format!("user:{username}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_blocks_after_max_failures_per_user_and_address() {
        let l = LoginLimiter::default();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let w = Duration::from_secs(60);
        for _ in 0..3 {
            assert!(l.blocked("alice", a, 3, w).is_none());
            l.failed("alice", a, w);
        }
        assert!(l.blocked("alice", a, 3, w).is_some());
        // Same user from elsewhere: still blocked (per user).
        assert!(l.blocked("alice", b, 3, w).is_some());
        // Another user from the same address: blocked (per address).
        assert!(l.blocked("bob", a, 3, w).is_some());
        // Another user from elsewhere: free.
        assert!(l.blocked("bob", b, 3, w).is_none());
    }

    #[test]
    fn tokens_round_trip_and_reject_tampering() {
        let keys = TokenKeys::from_record(&SigningKey {
            key: STANDARD.encode([7u8; 32]),
        })
        .unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = Claims {
            sub: "alice".into(),
            sid: "s1".into(),
            iss: "c1".into(),
            iat: now,
            exp: now + 60,
        };
        let t = keys.sign(&claims).unwrap();
        assert_eq!(keys.verify(&t, "c1").unwrap().sub, "alice");
        assert!(keys.verify(&t, "other-cluster").is_none());
        let mut bad = t.clone();
        bad.pop();
        assert!(keys.verify(&bad, "c1").is_none());
        let expired = keys
            .sign(&Claims {
                exp: now - 1,
                ..claims
            })
            .unwrap();
        assert!(keys.verify(&expired, "c1").is_none());
    }
}
