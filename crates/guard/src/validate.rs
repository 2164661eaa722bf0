//! Validation of an RFC 9068 JWT access token, following its §4 step by step.

use crate::keys::{KeyCache, Lookup, SUPPORTED};
use jsonwebtoken::Validation;
use serde::Deserialize;
use steward_core::Clock;

/// The claims of a valid access token, put into the request's extensions by
/// the layer (`req.extensions().get::<AccessClaims>()`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessClaims {
    /// The resource owner, or the client itself for client_credentials (RFC 9068 §2.2).
    pub sub: String,
    /// The OAuth client the token was issued to (RFC 9068 §2.2, RFC 8693 §4.3).
    pub client_id: String,
    /// The granted scopes, from the space-separated `scope` claim (RFC 9068 §2.2.3).
    pub scopes: Vec<String>,
    /// Unique token identifier, for replay detection or logging.
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    /// When the user authenticated, when a user did (RFC 9068 §2.2.1).
    pub auth_time: Option<i64>,
}

impl AccessClaims {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// The scopes as the `scope` claim spells them.
    pub fn scope(&self) -> String {
        self.scopes.join(" ")
    }
}

/// Why a token was refused. Every variant is answered with
/// `401 error="invalid_token"` (RFC 6750 §3.1) except
/// [`TokenError::KeysUnavailable`], which is the server's problem (503).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a compact JWS")]
    Malformed,
    /// RFC 9068 §4: `typ` must be `at+jwt` (or `application/at+jwt`), so an ID
    /// token or other JWT signed by the same key is not accepted (RFC 8725 §3.11).
    #[error("typ is not at+jwt")]
    WrongType,
    /// A `crit` header names extensions this guard does not implement (RFC 7515 §4.1.11).
    #[error("unsupported critical header")]
    Critical,
    #[error("algorithm not accepted")]
    UnsupportedAlgorithm,
    #[error("no kid")]
    MissingKid,
    #[error("signing key unknown to the issuer's JWKS")]
    UnknownKey,
    #[error("the issuer's signing keys could not be fetched")]
    KeysUnavailable,
    /// The token's `alg` is not the one its key is for (RFC 8725 §3.1).
    #[error("algorithm does not match the key")]
    AlgorithmMismatch,
    #[error("bad signature")]
    BadSignature,
    /// A claim RFC 9068 §2.2 requires is missing or has the wrong type.
    #[error("required claims missing or malformed")]
    InvalidClaims,
    #[error("wrong issuer")]
    WrongIssuer,
    #[error("not issued for this resource")]
    WrongAudience,
    #[error("expired")]
    Expired,
    #[error("not yet valid")]
    NotYetValid,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, wanted: &str) -> bool {
        match self {
            Audience::One(a) => a == wanted,
            Audience::Many(all) => all.iter().any(|a| a == wanted),
        }
    }
}

/// RFC 9068 §2.2 requires iss, exp, aud, sub, client_id, iat and jti.
#[derive(Deserialize)]
struct Raw {
    iss: String,
    aud: Audience,
    exp: serde_json::Number,
    iat: serde_json::Number,
    #[serde(default)]
    nbf: Option<serde_json::Number>,
    sub: String,
    client_id: String,
    jti: String,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    auth_time: Option<serde_json::Number>,
}

/// RFC 7519 §2 NumericDate: seconds, possibly with a fraction (truncated).
fn seconds(n: &serde_json::Number) -> Option<i64> {
    n.as_i64().or_else(|| {
        n.as_f64()
            .filter(|f| f.is_finite() && f.abs() < 1e15)
            .map(|f| f.trunc() as i64)
    })
}

/// What a token must be for this resource server.
#[derive(Debug)]
pub(crate) struct Expect {
    pub(crate) issuer: String,
    pub(crate) resource: String,
    pub(crate) leeway: i64,
}

/// RFC 9068 §4, in order: type, algorithm, key, signature, issuer, audience,
/// time. The scope check is the caller's (it decides between 401 and 403).
pub(crate) async fn validate(
    token: &str,
    keys: &KeyCache,
    expect: &Expect,
    clock: &dyn Clock,
) -> Result<AccessClaims, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    let typ_ok = header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt"));
    if !typ_ok {
        return Err(TokenError::WrongType);
    }
    if header.crit.as_ref().is_some_and(|c| !c.is_empty()) {
        return Err(TokenError::Critical);
    }
    if !SUPPORTED.contains(&header.alg) {
        return Err(TokenError::UnsupportedAlgorithm);
    }
    let kid = header.kid.as_deref().ok_or(TokenError::MissingKid)?;
    let key = match keys.key(kid).await {
        Lookup::Found(k) => k,
        Lookup::Unknown => return Err(TokenError::UnknownKey),
        Lookup::Unavailable => return Err(TokenError::KeysUnavailable),
    };
    if key.alg != header.alg {
        return Err(TokenError::AlgorithmMismatch);
    }

    // jsonwebtoken checks the signature with exactly the key's algorithm.
    // Its own claim checks are off: they would read the OS clock, and this
    // crate judges time by the Clock it was given; iss/aud are compared
    // exactly below.
    let mut validation = Validation::new(key.alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let data =
        jsonwebtoken::decode::<serde_json::Value>(token, &key.key, &validation).map_err(|e| {
            match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature,
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => TokenError::AlgorithmMismatch,
                _ => TokenError::Malformed,
            }
        })?;
    let raw: Raw = serde_json::from_value(data.claims).map_err(|_| TokenError::InvalidClaims)?;

    // RFC 9068 §4: iss must exactly match the issuer of the AS (RFC 8414 §2).
    if raw.iss != expect.issuer {
        return Err(TokenError::WrongIssuer);
    }
    // RFC 9068 §4 / RFC 8707 §2: aud must name this resource server.
    if !raw.aud.contains(&expect.resource) {
        return Err(TokenError::WrongAudience);
    }
    let exp = seconds(&raw.exp).ok_or(TokenError::InvalidClaims)?;
    let iat = seconds(&raw.iat).ok_or(TokenError::InvalidClaims)?;
    let now = clock.now().seconds();
    // RFC 7519 §4.1.4: the token must not be accepted at or after exp (with leeway).
    if now >= exp.saturating_add(expect.leeway) {
        return Err(TokenError::Expired);
    }
    if let Some(nbf) = raw.nbf.as_ref() {
        let nbf = seconds(nbf).ok_or(TokenError::InvalidClaims)?;
        if nbf > now.saturating_add(expect.leeway) {
            return Err(TokenError::NotYetValid);
        }
    }
    Ok(AccessClaims {
        sub: raw.sub,
        client_id: raw.client_id,
        scopes: raw
            .scope
            .as_deref()
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        jti: raw.jti,
        iat,
        exp,
        auth_time: raw.auth_time.as_ref().and_then(seconds),
    })
}
