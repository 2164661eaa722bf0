//! `private_key_jwt` client authentication: RFC 7523 §3 as tightened by
//! RFC 7523bis (audience = the issuer identifier, and nothing else) and
//! RFC 8725.
//!
//! The caller supplies the client's registered key set; this module never
//! fetches anything. It returns the `jti` and the instant until which the
//! assertion stays acceptable, so the caller can remember the `jti` for as
//! long as a replay could still be accepted (RFC 7523 §3 item 7).

use crate::key_select::{self, KeyError};
use crate::token_parts::{self, PartsError, audience_is_only, numeric_date};
use serde::Deserialize;
use serde_json::Value;
use steward_core::UnixTime;

/// Clock skew tolerated on `exp` and `nbf`.
pub const ASSERTION_LEEWAY_SECS: i64 = 30;

/// The JWS algorithms accepted on client assertions, and no others. The
/// server advertises exactly this list as
/// `token_endpoint_auth_signing_alg_values_supported` (RFC 8414 §2), so
/// what is accepted is what is advertised: an algorithm a client was never
/// told about (ES512, RS384, PS512 …) is refused, not silently honoured.
pub const CLIENT_ASSERTION_ALGORITHMS: [&str; 5] = ["ES256", "ES384", "EdDSA", "RS256", "PS256"];

/// What the caller needs after a successful verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssertionClaims {
    /// A second use of the same `jti` is a replay.
    pub jti: String,
    pub exp: UnixTime,
    /// The first second at which this assertion is refused as expired:
    /// `exp` + [`ASSERTION_LEEWAY_SECS`] + 1. The `jti` must be remembered
    /// until then, not merely until `exp` — otherwise every replay inside
    /// the leeway is a "first use" (RFC 7523 §3 item 7).
    pub remember_until: UnixTime,
}

/// Why a client assertion was refused. All map to `invalid_client`.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    #[error("assertion is not a compact JWS")]
    Malformed,
    /// `none`, HMAC (which would let a public key be used as a MAC secret),
    /// or any name that is not an asymmetric JWS algorithm.
    #[error("assertion algorithm {0:?} is not accepted")]
    UnsupportedAlgorithm(String),
    #[error("assertion carries a critical header extension")]
    UnsupportedCritical,
    #[error("the client's key set is not a JWKS")]
    InvalidClientJwks,
    #[error("no client key has kid {0:?}")]
    UnknownKid(String),
    #[error("no client key fits the assertion's algorithm")]
    NoMatchingKey,
    /// Several keys fit and the assertion names none with `kid`.
    #[error("several client keys fit; the assertion must name one with kid")]
    AmbiguousKey,
    #[error("the client's key set contains private key material")]
    PrivateKeyInJwks,
    #[error("the selected key cannot be used with the assertion's algorithm")]
    KeyAlgorithmMismatch,
    #[error("the selected client key is invalid")]
    InvalidKey,
    #[error("assertion signature is invalid")]
    BadSignature,
    #[error("assertion iss is not the client_id")]
    WrongIssuer,
    #[error("assertion sub is not the client_id")]
    WrongSubject,
    /// `aud` is not exactly the issuer identifier: absent, another value,
    /// or an array that also names other audiences (RFC 7523bis, adopted by
    /// OAuth 2.1 §2.4: an assertion minted for several audiences could be
    /// replayed by any of them, the audience-injection attack).
    #[error("assertion aud is not solely this authorization server's issuer")]
    WrongAudience,
    #[error("assertion has no exp")]
    MissingExp,
    #[error("assertion expired")]
    Expired,
    #[error("assertion lifetime exceeds the allowed maximum")]
    LifetimeTooLong,
    #[error("assertion is not valid yet (nbf)")]
    NotYetValid,
    #[error("assertion has no jti")]
    MissingJti,
    #[error("assertion claims are not a JSON object of the expected shape")]
    InvalidClaims,
}

impl From<KeyError> for AssertionError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::UnsupportedAlgorithm(alg) => Self::UnsupportedAlgorithm(alg),
            KeyError::BadSignature => Self::BadSignature,
            KeyError::InvalidJwks => Self::InvalidClientJwks,
            KeyError::UnknownKid(k) => Self::UnknownKid(k),
            KeyError::NoMatchingKey => Self::NoMatchingKey,
            KeyError::AmbiguousKey => Self::AmbiguousKey,
            KeyError::PrivateKeyInJwks => Self::PrivateKeyInJwks,
            KeyError::KeyAlgorithmMismatch => Self::KeyAlgorithmMismatch,
            KeyError::InvalidKey => Self::InvalidKey,
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    iss: Option<Value>,
    #[serde(default)]
    sub: Option<Value>,
    #[serde(default)]
    aud: Option<Value>,
    #[serde(default)]
    exp: Option<Value>,
    #[serde(default)]
    nbf: Option<Value>,
    #[serde(default)]
    jti: Option<Value>,
}

/// Verifies a client assertion for `client_id` presented to `issuer`.
///
/// Rules: the algorithm is one of [`CLIENT_ASSERTION_ALGORITHMS`];
/// `iss` = `sub` = `client_id` (RFC 7523 §3 items 1–2); `aud` is the issuer
/// identifier and nothing else, as a string or a one-element array (item 3
/// as updated by RFC 7523bis and OAuth 2.1 §2.4);
/// `exp` present, not past (with [`ASSERTION_LEEWAY_SECS`]) and at most
/// `max_lifetime_secs` ahead, bounding how long the caller must remember the
/// `jti` (item 4); `jti` present (item 7). The key is the one named by
/// `kid`, or, without `kid`, the only key whose type fits the algorithm.
pub fn verify_client_assertion(
    assertion: &str,
    client_id: &str,
    issuer: &str,
    client_jwks: &Value,
    now: UnixTime,
    max_lifetime_secs: u64,
) -> Result<AssertionClaims, AssertionError> {
    let parts = token_parts::split(assertion).map_err(|e| match e {
        PartsError::Malformed => AssertionError::Malformed,
        PartsError::Critical => AssertionError::UnsupportedCritical,
    })?;
    key_select::verify_signature(&parts, client_jwks)?;

    let claims: Claims = serde_json::from_slice(&parts.payload).map_err(|_| AssertionError::InvalidClaims)?;
    if claims.iss.as_ref().and_then(Value::as_str) != Some(client_id) {
        return Err(AssertionError::WrongIssuer);
    }
    if claims.sub.as_ref().and_then(Value::as_str) != Some(client_id) {
        return Err(AssertionError::WrongSubject);
    }
    if !audience_is_only(claims.aud.as_ref(), issuer) {
        return Err(AssertionError::WrongAudience);
    }
    let exp = claims
        .exp
        .as_ref()
        .and_then(numeric_date)
        .ok_or(AssertionError::MissingExp)?;
    if now.seconds() > exp.saturating_add(ASSERTION_LEEWAY_SECS) {
        return Err(AssertionError::Expired);
    }
    let max_lifetime = i64::try_from(max_lifetime_secs).unwrap_or(i64::MAX);
    if now.until(UnixTime(exp)) > max_lifetime.saturating_add(ASSERTION_LEEWAY_SECS) {
        return Err(AssertionError::LifetimeTooLong);
    }
    if let Some(nbf) = claims.nbf.as_ref().and_then(numeric_date)
        && nbf > now.seconds().saturating_add(ASSERTION_LEEWAY_SECS)
    {
        return Err(AssertionError::NotYetValid);
    }
    let jti = claims
        .jti
        .as_ref()
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty())
        .ok_or(AssertionError::MissingJti)?;
    Ok(AssertionClaims {
        jti: jti.to_owned(),
        exp: UnixTime(exp),
        remember_until: UnixTime(exp.saturating_add(ASSERTION_LEEWAY_SECS).saturating_add(1)),
    })
}
