//! Software statements (RFC 7591 §2.3): a JWT, signed by a party the
//! operator already trusts, asserting a client's metadata.
//!
//! The issuer is read from the unverified claims first ([`statement_issuer`])
//! only to pick *which* trusted key set to verify with; nothing else in the
//! statement is believed until [`verify_software_statement`] has checked the
//! signature with that issuer's keys. Algorithms are the asymmetric ones
//! Steward accepts on client assertions: `none` and HMAC are refused (RFC
//! 8725 §3.1, §3.2), as is a critical header extension.
//!
//! RFC 7591 requires no `exp` or `aud` on a statement — a statement is often
//! a long-lived credential of one software product — so both are optional,
//! but honoured when present: an expired statement, one not valid yet, or
//! one addressed to other servers only is refused.

use crate::client_assertion::ASSERTION_LEEWAY_SECS;
use crate::key_select::{self, KeyError};
use crate::token_parts::{self, PartsError, audience_contains, numeric_date};
use serde_json::{Map, Value};
use steward_core::UnixTime;

/// Why a statement was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StatementError {
    #[error("the software statement is not a compact JWS with a JSON object of claims")]
    Malformed,
    #[error(
        "the software statement's algorithm {0:?} is not accepted (asymmetric algorithms only, never none)"
    )]
    UnsupportedAlgorithm(String),
    #[error("the software statement carries a critical header extension")]
    UnsupportedCritical,
    #[error("the software statement has no iss claim naming its issuer")]
    MissingIssuer,
    #[error("the trusted issuer's key set is not a usable JWK set")]
    InvalidIssuerJwks,
    #[error("the trusted issuer has no key with kid {0:?}")]
    UnknownKid(String),
    #[error("no key of the trusted issuer fits the statement's algorithm")]
    NoMatchingKey,
    #[error("several keys of the trusted issuer fit; the statement must name one with kid")]
    AmbiguousKey,
    #[error("the statement's key cannot be used with its algorithm")]
    KeyAlgorithmMismatch,
    #[error("the software statement's signature is invalid")]
    BadSignature,
    #[error("the software statement's iss is not the trusted issuer")]
    WrongIssuer,
    #[error("the software statement has expired")]
    Expired,
    #[error("the software statement is not valid yet")]
    NotYetValid,
    #[error("the software statement's aud does not name this authorization server")]
    WrongAudience,
}

impl From<KeyError> for StatementError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::UnsupportedAlgorithm(alg) => Self::UnsupportedAlgorithm(alg),
            KeyError::BadSignature => Self::BadSignature,
            KeyError::UnknownKid(k) => Self::UnknownKid(k),
            KeyError::NoMatchingKey => Self::NoMatchingKey,
            KeyError::AmbiguousKey => Self::AmbiguousKey,
            KeyError::KeyAlgorithmMismatch => Self::KeyAlgorithmMismatch,
            KeyError::InvalidJwks | KeyError::PrivateKeyInJwks | KeyError::InvalidKey => {
                Self::InvalidIssuerJwks
            }
        }
    }
}

fn parts(statement: &str) -> Result<token_parts::Parts<'_>, StatementError> {
    token_parts::split(statement).map_err(|e| match e {
        PartsError::Malformed => StatementError::Malformed,
        PartsError::Critical => StatementError::UnsupportedCritical,
    })
}

fn claims_of(payload: &[u8]) -> Result<Map<String, Value>, StatementError> {
    match serde_json::from_slice(payload) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(StatementError::Malformed),
    }
}

/// The `iss` a statement claims, **unverified**: only for choosing which
/// trusted issuer's keys to verify it with.
pub fn statement_issuer(statement: &str) -> Result<String, StatementError> {
    let p = parts(statement)?;
    claims_of(&p.payload)?
        .get("iss")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or(StatementError::MissingIssuer)
}

/// Verifies `statement` as issued by `issuer` with the issuer's key set
/// `jwks`, for the authorization server `audience`, and returns its claims.
pub fn verify_software_statement(
    statement: &str,
    issuer: &str,
    jwks: &Value,
    audience: &str,
    now: UnixTime,
) -> Result<Map<String, Value>, StatementError> {
    let p = parts(statement)?;
    key_select::verify_signature(&p, jwks)?;
    let claims = claims_of(&p.payload)?;
    if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err(StatementError::WrongIssuer);
    }
    let leeway = ASSERTION_LEEWAY_SECS;
    if let Some(exp) = claims.get("exp") {
        let exp = numeric_date(exp).ok_or(StatementError::Malformed)?;
        if now.seconds() > exp.saturating_add(leeway) {
            return Err(StatementError::Expired);
        }
    }
    for early in ["nbf", "iat"] {
        if let Some(v) = claims.get(early) {
            let at = numeric_date(v).ok_or(StatementError::Malformed)?;
            if at > now.seconds().saturating_add(leeway) {
                return Err(StatementError::NotYetValid);
            }
        }
    }
    if claims.contains_key("aud") && !audience_contains(claims.get("aud"), audience) {
        return Err(StatementError::WrongAudience);
    }
    Ok(claims)
}

/// Checks a trusted issuer's key set when the configuration is loaded: a
/// JWK set of at least one usable public key, and no private key material
/// anywhere (a set holding it means the issuer's key has leaked).
pub fn check_issuer_jwks(jwks: &Value) -> Result<(), String> {
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("not a JWK set: it needs a keys array")?;
    if keys.is_empty() {
        return Err("the keys array is empty".to_owned());
    }
    for (n, jwk) in keys.iter().enumerate() {
        if crate::public_jwk::has_private_members(jwk) {
            return Err(format!("key {n} contains private key material"));
        }
        crate::public_jwk::decoding_key(jwk).map_err(|e| format!("key {n}: {e}"))?;
    }
    Ok(())
}
