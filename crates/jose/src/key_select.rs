//! Verifying a JWS signature with a key set, shared by client assertions
//! (RFC 7523) and software statements (RFC 7591 §2.3): the algorithm must
//! be one of [`CLIENT_ASSERTION_ALGORITHMS`] (asymmetric only: never `none`,
//! never HMAC); the key is the one named by `kid`, else the only key whose
//! type fits the algorithm; a set holding private key material is refused
//! as a whole.

use crate::client_assertion::CLIENT_ASSERTION_ALGORITHMS;
use crate::error::JoseError;
use crate::public_jwk::{self, KeyType, has_private_members};
use crate::token_parts::Parts;
use jsonwebtoken::Algorithm as JwtAlg;
use serde_json::Value;
use std::str::FromStr;

/// Why the JWS did not verify with the set.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum KeyError {
    UnsupportedAlgorithm(String),
    BadSignature,
    InvalidJwks,
    UnknownKid(String),
    NoMatchingKey,
    AmbiguousKey,
    PrivateKeyInJwks,
    KeyAlgorithmMismatch,
    InvalidKey,
}

/// An algorithm of [`CLIENT_ASSERTION_ALGORITHMS`] (all asymmetric, RFC 7518
/// §3.3–3.5, RFC 8037): never `none`, never HMAC, never one not advertised.
fn accepted(alg: &str) -> Option<JwtAlg> {
    if !CLIENT_ASSERTION_ALGORITHMS.contains(&alg) {
        return None;
    }
    match JwtAlg::from_str(alg).ok()? {
        JwtAlg::HS256 | JwtAlg::HS384 | JwtAlg::HS512 => None,
        other => Some(other),
    }
}

/// Checks the signature of `parts` with a key of `jwks`; nothing in the
/// payload is read.
pub(crate) fn verify_signature(parts: &Parts<'_>, jwks: &Value) -> Result<(), KeyError> {
    let alg = accepted(&parts.header.alg)
        .ok_or_else(|| KeyError::UnsupportedAlgorithm(parts.header.alg.clone()))?;
    let jwk = select_key(jwks, parts.header.kid.as_deref(), alg)?;
    let key = usable_key(jwk, alg)?;
    match jsonwebtoken::crypto::verify(parts.signature, parts.signing_input.as_bytes(), &key, alg) {
        Ok(true) => Ok(()),
        _ => Err(KeyError::BadSignature),
    }
}

fn select_key<'a>(jwks: &'a Value, kid: Option<&str>, alg: JwtAlg) -> Result<&'a Value, KeyError> {
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or(KeyError::InvalidJwks)?;
    // A registered set with private material is refused as a whole: the
    // key holder has leaked its key, and Steward must not treat it as valid.
    if keys.iter().any(has_private_members) {
        return Err(KeyError::PrivateKeyInJwks);
    }
    let candidates: Vec<&Value> = match kid {
        Some(kid) => {
            let named: Vec<&Value> = keys
                .iter()
                .filter(|k| k.get("kid").and_then(Value::as_str) == Some(kid))
                .collect();
            if named.is_empty() {
                return Err(KeyError::UnknownKid(kid.to_owned()));
            }
            named
        }
        None => keys.iter().filter(|k| fits(k, alg)).collect(),
    };
    match candidates.as_slice() {
        [one] => Ok(one),
        [] => Err(KeyError::NoMatchingKey),
        _ => Err(KeyError::AmbiguousKey),
    }
}

/// Whether a key could verify `alg`: right type and curve, `use` absent or
/// `sig`, `alg` absent or equal.
fn fits(jwk: &Value, alg: JwtAlg) -> bool {
    let type_fits = match (
        jwk.get("kty").and_then(Value::as_str),
        jwk.get("crv").and_then(Value::as_str),
    ) {
        (Some("EC"), Some("P-256")) => KeyType::P256.accepts(alg),
        (Some("EC"), Some("P-384")) => KeyType::P384.accepts(alg),
        (Some("OKP"), Some("Ed25519")) => KeyType::Ed25519.accepts(alg),
        (Some("RSA"), _) => KeyType::Rsa.accepts(alg),
        _ => false,
    };
    type_fits && jwk.get("use").is_none_or(|u| u.as_str() == Some("sig")) && declared_alg_allows(jwk, alg)
}

fn declared_alg_allows(jwk: &Value, alg: JwtAlg) -> bool {
    match jwk.get("alg") {
        None => true,
        Some(declared) => declared.as_str().and_then(|s| JwtAlg::from_str(s).ok()) == Some(alg),
    }
}

fn usable_key(jwk: &Value, alg: JwtAlg) -> Result<jsonwebtoken::DecodingKey, KeyError> {
    let (kind, key) = public_jwk::decoding_key(jwk).map_err(|e| match e {
        JoseError::PrivateJwk => KeyError::PrivateKeyInJwks,
        _ => KeyError::InvalidKey,
    })?;
    if !kind.accepts(alg) || !declared_alg_allows(jwk, alg) {
        return Err(KeyError::KeyAlgorithmMismatch);
    }
    Ok(key)
}
