//! JWT access tokens, RFC 9068.

use crate::error::JoseError;
use crate::signing_key::SigningKey;
use serde::{Deserialize, Serialize};

/// The `typ` header of an access token (RFC 9068 §2.1). Resource servers
/// check it so that an ID token or client assertion signed by the same key
/// cannot be passed off as an access token (§4, RFC 8725 §3.11).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// The claims RFC 9068 §2.2 requires, plus `scope` (§2.2.3) and `auth_time`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// The issuer identifier (RFC 8414).
    pub iss: String,
    /// The resource owner, or the client for client_credentials (§2.2).
    pub sub: String,
    /// The one resource the token is for (RFC 8707 audience restriction;
    /// MCP binds each token to a single resource server).
    pub aud: String,
    pub client_id: String,
    /// Space-separated granted scopes (RFC 9068 §2.2.3.1).
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
    /// Unique per token, for revocation lists and replay detection.
    pub jti: String,
    /// When the user authenticated, if a user did (§2.2.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
}

/// Signs `claims` as an RFC 9068 access token (`typ: at+jwt`).
pub fn sign_access_token(key: &SigningKey, claims: &AccessTokenClaims) -> Result<String, JoseError> {
    key.sign(ACCESS_TOKEN_TYP, claims)
}
