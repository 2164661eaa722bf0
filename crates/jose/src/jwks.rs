//! The published key set (`/jwks.json`, RFC 7517 §5) and verification of
//! Steward's own tokens against it.

use crate::algorithm::Algorithm;
use crate::error::JoseError;
use crate::public_jwk::{self, has_private_members};
use crate::token_parts::{self, PartsError, audience_contains, numeric_date, typ_matches};
use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::HashMap;
use steward_core::UnixTime;

/// Public signing keys: the active key, the next key being pre-published,
/// and retired keys still inside their [`crate::retire_after`] window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Jwks {
    keys: Vec<Value>,
}

impl Jwks {
    /// Accepts only public keys that carry a `kid` (unique in the set) and an
    /// `alg` Steward signs with, matching the key type. A private member
    /// anywhere is an error: publishing it would hand out a signing key.
    pub fn from_public_jwks(keys: &[Value]) -> Result<Jwks, JoseError> {
        let mut seen = std::collections::HashSet::new();
        for jwk in keys {
            let (kid, _, _) = parse_entry(jwk)?;
            if !seen.insert(kid) {
                return Err(JoseError::InvalidJwk("duplicate kid"));
            }
        }
        Ok(Jwks { keys: keys.to_vec() })
    }

    pub fn keys(&self) -> &[Value] {
        &self.keys
    }

    /// The `/jwks.json` document: `{"keys":[...]}`.
    pub fn to_json(&self) -> Value {
        json!({ "keys": self.keys })
    }

    pub fn verifier(&self) -> Result<Verifier, JoseError> {
        Verifier::new(self)
    }
}

fn parse_entry(jwk: &Value) -> Result<(&str, Algorithm, DecodingKey), JoseError> {
    if !jwk.is_object() {
        return Err(JoseError::InvalidJwk("not a JSON object"));
    }
    if has_private_members(jwk) {
        return Err(JoseError::PrivateJwk);
    }
    let kid = jwk
        .get("kid")
        .and_then(Value::as_str)
        .ok_or(JoseError::InvalidJwk("missing kid"))?;
    let alg: Algorithm = jwk
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(JoseError::InvalidJwk("missing alg"))?
        .parse()
        .map_err(|_| JoseError::InvalidJwk("unsupported alg"))?;
    let (kind, key) = public_jwk::decoding_key(jwk)?;
    if !kind.accepts(alg.jwt()) {
        return Err(JoseError::InvalidJwk("alg does not match the key type"));
    }
    Ok((kid, alg, key))
}

/// What a token must satisfy beyond its signature.
#[derive(Clone, Copy, Debug)]
pub struct Expectations<'a> {
    /// Required `typ` header (e.g. `"at+jwt"`, RFC 9068 §4); `None` skips the check.
    pub typ: Option<&'a str>,
    /// Required `iss`.
    pub issuer: &'a str,
    /// Required member of `aud`. `None` only for Steward's own endpoints
    /// (introspection, revocation) that accept a token for any resource.
    pub audience: Option<&'a str>,
    /// The time to judge `exp`/`nbf` against, from the caller's `Clock`.
    pub now: UnixTime,
    /// Allowed clock skew in seconds.
    pub leeway: u64,
}

struct VerifierKey {
    alg: Algorithm,
    key: DecodingKey,
}

/// Verifies Steward's tokens. Keys are parsed once when it is built.
pub struct Verifier {
    keys: HashMap<String, VerifierKey>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Deserialize)]
struct Registered {
    #[serde(default)]
    iss: Option<Value>,
    #[serde(default)]
    aud: Option<Value>,
    #[serde(default)]
    exp: Option<Value>,
    #[serde(default)]
    nbf: Option<Value>,
}

impl Verifier {
    pub fn new(jwks: &Jwks) -> Result<Verifier, JoseError> {
        let mut keys = HashMap::with_capacity(jwks.keys.len());
        for jwk in &jwks.keys {
            let (kid, alg, key) = parse_entry(jwk)?;
            keys.insert(kid.to_owned(), VerifierKey { alg, key });
        }
        Ok(Verifier { keys })
    }

    /// Verifies signature and claims and returns the claims as `T`.
    ///
    /// The algorithm is taken from the key, never trusted from the token:
    /// `none`, HMAC, and any `alg` other than the key's own are refused
    /// (RFC 8725 §3.1). A token without a `kid` is refused, since Steward
    /// always sets one. Time checks use `expected.now`, never the OS clock.
    pub fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        expected: &Expectations<'_>,
    ) -> Result<T, JoseError> {
        let parts = token_parts::split(token).map_err(|e| match e {
            PartsError::Malformed => JoseError::Malformed,
            PartsError::Critical => JoseError::UnsupportedCritical,
        })?;
        let header = &parts.header;
        let alg: Algorithm = header
            .alg
            .parse()
            .map_err(|_| JoseError::UnsupportedAlgorithm(header.alg.clone()))?;
        let kid = header.kid.as_deref().ok_or(JoseError::UnknownKey(None))?;
        let key = self
            .keys
            .get(kid)
            .ok_or_else(|| JoseError::UnknownKey(Some(kid.to_owned())))?;
        if key.alg != alg {
            return Err(JoseError::AlgorithmMismatch);
        }
        let valid = jsonwebtoken::crypto::verify(
            parts.signature,
            parts.signing_input.as_bytes(),
            &key.key,
            alg.jwt(),
        )
        .map_err(|_| JoseError::BadSignature)?;
        if !valid {
            return Err(JoseError::BadSignature);
        }

        if let Some(typ) = expected.typ
            && !header.typ.as_deref().is_some_and(|found| typ_matches(found, typ))
        {
            return Err(JoseError::WrongType {
                expected: typ.to_owned(),
                found: header.typ.clone(),
            });
        }

        let claims: Registered = serde_json::from_slice(&parts.payload).map_err(JoseError::InvalidClaims)?;
        if claims.iss.as_ref().and_then(Value::as_str) != Some(expected.issuer) {
            return Err(JoseError::WrongIssuer);
        }
        if let Some(aud) = expected.audience
            && !audience_contains(claims.aud.as_ref(), aud)
        {
            return Err(JoseError::WrongAudience);
        }
        let leeway = i64::try_from(expected.leeway).unwrap_or(i64::MAX);
        let exp = claims
            .exp
            .as_ref()
            .and_then(numeric_date)
            .ok_or(JoseError::MissingExp)?;
        if expected.now.seconds() > exp.saturating_add(leeway) {
            return Err(JoseError::Expired);
        }
        if let Some(nbf) = claims.nbf.as_ref().and_then(numeric_date)
            && nbf > expected.now.seconds().saturating_add(leeway)
        {
            return Err(JoseError::NotYetValid);
        }
        serde_json::from_slice(&parts.payload).map_err(JoseError::InvalidClaims)
    }
}
