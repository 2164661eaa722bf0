//! The authorization server's signing keys: discovered through its RFC 8414
//! metadata (`jwks_uri`), cached, and refetched so that key rotation needs no
//! restart.
//!
//! Refetch rules:
//! - a key set older than `max_age` is refreshed on the next request, so a key
//!   the issuer stopped publishing stops being accepted;
//! - a token naming an unknown `kid` triggers a refetch (the issuer has just
//!   rotated, RFC 7517 §4.5 / RFC 8414 §2 `jwks_uri`), but at most once per
//!   `min_refetch` interval, so a stream of tokens with made-up `kid`s cannot
//!   turn the resource server into a load generator against its issuer;
//! - before the first successful fetch, attempts are spaced one second apart;
//! - only one fetch runs at a time (single flight); the others wait for it;
//! - when a refresh fails, the previous key set stays in use.
//!
//! Time comes from the [`Clock`], never from the OS directly.

use crate::fetch::{FetchError, Fetcher};
use jsonwebtoken::{Algorithm, DecodingKey, jwk::Jwk};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use steward_core::{Clock, UnixTime};
use url::Url;

/// A public key ready to verify, with the one algorithm it verifies.
pub(crate) struct VerifyKey {
    pub(crate) alg: Algorithm,
    pub(crate) key: DecodingKey,
}

/// The algorithms Steward signs with (its `keys.algorithm` setting).
pub(crate) const SUPPORTED: [Algorithm; 3] = [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256];

/// Parses one JWK into a verification key, or `None` when it is not a
/// signing key this guard can use. Such keys are skipped rather than failing
/// the whole set (RFC 7517 §5: "implementations SHOULD ignore JWKs within a
/// JWK Set that use "kty" values that are not understood").
///
/// The algorithm is fixed by the key (its `kty`/`crv` and, when present,
/// its `alg`), so a token can never choose how it is verified (RFC 8725 §3.1).
fn parse_jwk(jwk: &Value) -> Option<(String, VerifyKey)> {
    let obj = jwk.as_object()?;
    let kid = obj.get("kid")?.as_str()?.to_owned();
    // RFC 7517 §4.2: a key marked for encryption is not for verifying signatures.
    if obj.get("use").is_some_and(|u| u.as_str() != Some("sig")) {
        return None;
    }
    let by_type = match (
        obj.get("kty").and_then(Value::as_str),
        obj.get("crv").and_then(Value::as_str),
    ) {
        (Some("EC"), Some("P-256")) => Algorithm::ES256,
        (Some("OKP"), Some("Ed25519")) => Algorithm::EdDSA,
        (Some("RSA"), _) => Algorithm::RS256,
        _ => return None,
    };
    if let Some(alg) = obj.get("alg") {
        let stated: Algorithm = alg.as_str()?.parse().ok()?;
        if stated != by_type {
            return None;
        }
    }
    let parsed: Jwk = serde_json::from_value(jwk.clone()).ok()?;
    let key = DecodingKey::from_jwk(&parsed).ok()?;
    Some((kid, VerifyKey { alg: by_type, key }))
}

/// Parses a JWK Set document (RFC 7517 §5), keeping the usable keys.
pub(crate) fn parse_jwks(doc: &Value) -> Option<HashMap<String, Arc<VerifyKey>>> {
    let keys = doc.get("keys")?.as_array()?;
    let mut out = HashMap::with_capacity(keys.len());
    for jwk in keys {
        if let Some((kid, key)) = parse_jwk(jwk) {
            out.insert(kid, Arc::new(key));
        }
    }
    Some(out)
}

/// RFC 8414 §3.1: the metadata URL inserts the well-known suffix between the
/// host and the issuer's path (`https://as/t1` ->
/// `https://as/.well-known/oauth-authorization-server/t1`).
pub(crate) fn metadata_url(issuer: &Url) -> Url {
    let mut url = issuer.clone();
    let path = issuer.path().trim_end_matches('/');
    url.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    url
}

/// Where the keys come from.
#[derive(Debug, Clone)]
pub(crate) enum KeySource {
    /// Discover `jwks_uri` from the issuer's metadata.
    Discover { issuer: String, metadata_url: Url },
    /// A `jwks_uri` the operator configured directly.
    Fixed(Url),
}

#[derive(Default)]
struct State {
    keys: HashMap<String, Arc<VerifyKey>>,
    /// When the current set was fetched; `None` before the first success.
    fetched_at: Option<UnixTime>,
    last_attempt: Option<UnixTime>,
    jwks_uri: Option<Url>,
}

/// What a key lookup found.
pub(crate) enum Lookup {
    Found(Arc<VerifyKey>),
    /// The key set is known and, even after any refetch allowed now, has no such `kid`.
    Unknown,
    /// No key set could be fetched yet.
    Unavailable,
}

pub(crate) struct KeyCache {
    source: KeySource,
    fetcher: Fetcher,
    clock: Arc<dyn Clock>,
    min_refetch: i64,
    max_age: i64,
    state: RwLock<State>,
    refresh: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("source", &self.source)
            .field("min_refetch", &self.min_refetch)
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
enum RefreshError {
    #[error("{url}: {source}")]
    Fetch { url: Url, source: FetchError },
    #[error("{0}: metadata has no usable jwks_uri")]
    NoJwksUri(Url),
    #[error("{url}: metadata names issuer {found:?}, expected {expected:?} (RFC 8414 §3.3)")]
    IssuerMismatch {
        url: Url,
        found: String,
        expected: String,
    },
    #[error("{0}: not a JWK Set")]
    NotJwks(Url),
}

impl KeyCache {
    pub(crate) fn new(
        source: KeySource,
        fetcher: Fetcher,
        clock: Arc<dyn Clock>,
        min_refetch: i64,
        max_age: i64,
    ) -> KeyCache {
        let jwks_uri = match &source {
            KeySource::Fixed(u) => Some(u.clone()),
            KeySource::Discover { .. } => None,
        };
        KeyCache {
            source,
            fetcher,
            clock,
            min_refetch,
            max_age,
            state: RwLock::new(State {
                jwks_uri,
                ..State::default()
            }),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    fn fresh(&self, state: &State, now: UnixTime) -> bool {
        state.fetched_at.is_some_and(|t| t.until(now) < self.max_age)
    }

    fn may_fetch(&self, state: &State, now: UnixTime) -> bool {
        let spacing = if state.fetched_at.is_some() {
            self.min_refetch
        } else {
            1
        };
        state.last_attempt.is_none_or(|t| t.until(now) >= spacing)
    }

    /// The key named `kid`, refetching the set when the rules above allow.
    pub(crate) async fn key(&self, kid: &str) -> Lookup {
        {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(k) = state.keys.get(kid)
                && self.fresh(&state, self.clock.now())
            {
                return Lookup::Found(k.clone());
            }
        }
        let _single_flight = self.refresh.lock().await;
        let now = self.clock.now();
        let should_fetch = {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            let known = state.keys.contains_key(kid);
            // Re-checked under the lock: a fetch that finished while this
            // request waited may already have brought the key.
            if known && self.fresh(&state, now) {
                false
            } else {
                self.may_fetch(&state, now)
            }
        };
        if should_fetch {
            self.refresh(now).await;
        }
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        match state.keys.get(kid) {
            Some(k) => Lookup::Found(k.clone()),
            None if state.fetched_at.is_none() => Lookup::Unavailable,
            None => Lookup::Unknown,
        }
    }

    async fn refresh(&self, now: UnixTime) {
        let known_uri = {
            let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
            state.last_attempt = Some(now);
            state.jwks_uri.clone()
        };
        let uri = match known_uri {
            Some(u) => Ok(u),
            None => match &self.source {
                KeySource::Fixed(u) => Ok(u.clone()),
                KeySource::Discover { issuer, metadata_url } => self.discover(issuer, metadata_url).await,
            },
        };
        let result = match uri {
            Ok(uri) => self.fetch_keys(&uri).await.map(|k| (uri, k)),
            Err(e) => Err(e),
        };
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok((uri, keys)) => {
                tracing::debug!(jwks_uri = %uri, keys = keys.len(), "fetched the issuer's signing keys");
                state.keys = keys;
                state.fetched_at = Some(now);
                state.jwks_uri = Some(uri);
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not refresh the issuer's signing keys");
                // Rediscover next time: the issuer may have moved its keys.
                if matches!(self.source, KeySource::Discover { .. }) {
                    state.jwks_uri = None;
                }
            }
        }
    }

    async fn discover(&self, issuer: &str, metadata_url: &Url) -> Result<Url, RefreshError> {
        let doc = self
            .fetcher
            .get_json(metadata_url)
            .await
            .map_err(|source| RefreshError::Fetch {
                url: metadata_url.clone(),
                source,
            })?;
        let found = doc.get("issuer").and_then(Value::as_str).unwrap_or_default();
        if found != issuer {
            return Err(RefreshError::IssuerMismatch {
                url: metadata_url.clone(),
                found: found.to_owned(),
                expected: issuer.to_owned(),
            });
        }
        doc.get("jwks_uri")
            .and_then(Value::as_str)
            .and_then(|u| Url::parse(u).ok())
            .ok_or_else(|| RefreshError::NoJwksUri(metadata_url.clone()))
    }

    async fn fetch_keys(&self, uri: &Url) -> Result<HashMap<String, Arc<VerifyKey>>, RefreshError> {
        let doc = self
            .fetcher
            .get_json(uri)
            .await
            .map_err(|source| RefreshError::Fetch {
                url: uri.clone(),
                source,
            })?;
        parse_jwks(&doc).ok_or_else(|| RefreshError::NotJwks(uri.clone()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_url_inserts_the_well_known_suffix() {
        let u = |s: &str| metadata_url(&Url::parse(s).unwrap()).to_string();
        assert_eq!(
            u("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            u("https://as.example/tenant1"),
            "https://as.example/.well-known/oauth-authorization-server/tenant1"
        );
    }

    #[test]
    fn unusable_keys_are_skipped_not_fatal() {
        let doc = json!({"keys": [
            {"kty": "oct", "kid": "h", "k": "c2VjcmV0"},
            {"kty": "EC", "crv": "P-384", "kid": "p384", "x": "AA", "y": "AA"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "enc", "use": "enc",
             "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "lying", "alg": "ES256",
             "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "alg": "EdDSA", "use": "sig",
             "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
        ]});
        let keys = parse_jwks(&doc).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["ed"]);
        assert_eq!(keys["ed"].alg, Algorithm::EdDSA);
        assert!(parse_jwks(&json!({"nokeys": []})).is_none());
    }
}
