//! OAuth error codes, one variant per registered code, as the RFCs name them.

use std::borrow::Cow;
use std::fmt;

/// Error codes of OAuth 2.1 §4.1.2.1 and §3.2.4, RFC 8707 §2 and RFC 7009 §2.2.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// A required parameter is missing, repeated, invalid or malformed.
    InvalidRequest,
    /// Client authentication failed (token endpoint only).
    InvalidClient,
    /// The code or refresh token is invalid, expired, revoked, or bound elsewhere.
    InvalidGrant,
    /// The client is not allowed to use this grant or response type.
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    /// The requested scope is invalid, unknown or exceeds what was granted.
    InvalidScope,
    /// The resource owner or the server denied the request.
    AccessDenied,
    /// RFC 8707: the requested resource is invalid or unknown.
    InvalidTarget,
    /// RFC 7009: the server cannot revoke this type of token.
    UnsupportedTokenType,
    ServerError,
    TemporarilyUnavailable,
    /// The user must log in but `prompt=none` was sent (OIDC Core §3.1.2.6).
    LoginRequired,
    /// Consent is needed but `prompt=none` was sent (OIDC Core §3.1.2.6).
    ConsentRequired,
}

impl ErrorCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::AccessDenied => "access_denied",
            Self::InvalidTarget => "invalid_target",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OAuth error with a human-readable description for the client
/// developer. Descriptions are restricted to the ASCII subset RFC 6749 §5.2
/// allows; they never carry secrets or internal details.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: Cow<'static, str>,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }

    pub fn invalid_request(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, d)
    }

    pub fn server_error() -> Self {
        Self::new(
            ErrorCode::ServerError,
            "the server could not complete the request",
        )
    }

    /// The description cleaned to RFC 6749 §5.2's `%x20-21 / %x23-5B / %x5D-7E`.
    pub fn wire_description(&self) -> String {
        self.description
            .chars()
            .map(|c| match c {
                ' ' | '!' | '#'..='[' | ']'..='~' => c,
                _ => '\'',
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_cleaned_to_the_rfc_subset() {
        let e = OAuthError::invalid_request("bad \"x\" \\ é\n");
        assert_eq!(e.wire_description(), "bad 'x' ' ''");
        assert_eq!(e.code.as_str(), "invalid_request");
    }
}
