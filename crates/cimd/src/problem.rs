//! What is wrong with a metadata document, one entry per broken rule.

use serde::Serialize;
use std::fmt;

/// Which validation rule a document breaks. The string forms are stable: they
/// appear in logs, metrics labels, the checker and failure reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidationFailure {
    /// The body is not UTF-8 (RFC 8259 §8.1).
    NotUtf8,
    /// The body is not JSON (CIMD -01 §4.1).
    InvalidJson,
    /// One object repeats a key; parsers disagree on which one wins.
    DuplicateKey,
    /// The document is not a JSON object (CIMD -02 §4).
    NotAnObject,
    /// `client_id` is absent (CIMD -01 §4.1 requires it).
    ClientIdMissing,
    /// `client_id` differs from the document URL (CIMD -02 §4, simple string comparison).
    ClientIdMismatch,
    /// `client_name` is absent or empty (MCP client-registration; SPEC_CHECKLIST §20.3).
    ClientNameRequired,
    /// `redirect_uris` is absent or empty (MCP client-registration, CIMD -01 §4.5).
    RedirectUrisRequired,
    /// A redirect URI fails OAuth 2.1 §2.3 / RFC 9700 §2.6 registration rules.
    InvalidRedirectUri,
    /// `client_secret` / `client_secret_expires_at` present (CIMD -01 §4.1).
    ForbiddenMember,
    /// A shared-secret or unknown `token_endpoint_auth_method` (CIMD -01 §4.1).
    ForbiddenAuthMethod,
    /// `token_endpoint_auth_methods_supported` shares nothing with Steward's methods.
    NoSupportedAuthMethod,
    /// `private_key_jwt` without exactly one of `jwks` / `jwks_uri` (CIMD #100).
    KeysRequired,
    /// Private or symmetric key material in a JWK (CIMD -02 §4.1).
    PrivateKeyMaterial,
    /// `jwks` is not a JWK Set (RFC 7517 §5).
    InvalidJwks,
    /// A URI member is not an absolute https URL (CIMD PR #50).
    UriNotHttps,
    /// No supported value remains in `grant_types` after filtering (SPEC_CHECKLIST §20.11).
    UnsupportedGrantTypes,
    /// No supported value remains in `response_types` after filtering.
    UnsupportedResponseTypes,
    /// A known member has the wrong JSON type (RFC 7591 §2).
    InvalidMemberType,
    /// The checker's URL is not a Client Identifier URL; `Problem::rule`
    /// carries the precise [`crate::ClientIdError::reason`].
    ClientIdUrl,
    /// The checker could not fetch the document; `Problem::rule` carries the
    /// egress failure reason.
    Fetch,
}

impl ValidationFailure {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NotUtf8 => "not_utf8",
            Self::InvalidJson => "invalid_json",
            Self::DuplicateKey => "duplicate_key",
            Self::NotAnObject => "not_an_object",
            Self::ClientIdMissing => "client_id_missing",
            Self::ClientIdMismatch => "client_id_mismatch",
            Self::ClientNameRequired => "client_name_required",
            Self::RedirectUrisRequired => "redirect_uris_required",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::ForbiddenMember => "forbidden_member",
            Self::ForbiddenAuthMethod => "forbidden_auth_method",
            Self::NoSupportedAuthMethod => "no_supported_auth_method",
            Self::KeysRequired => "keys_required",
            Self::PrivateKeyMaterial => "private_key_material",
            Self::InvalidJwks => "invalid_jwks",
            Self::UriNotHttps => "uri_not_https",
            Self::UnsupportedGrantTypes => "unsupported_grant_types",
            Self::UnsupportedResponseTypes => "unsupported_response_types",
            Self::InvalidMemberType => "invalid_member_type",
            Self::ClientIdUrl => "client_id_url",
            Self::Fetch => "fetch_failed",
        }
    }
}

impl fmt::Display for ValidationFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One broken rule in a document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Stable rule id (`kind.as_str()`), kept as a field for printing and JSON.
    pub rule: &'static str,
    pub kind: ValidationFailure,
    /// The top-level member at fault, when there is one.
    pub member: Option<String>,
    /// What is wrong, for the client developer.
    pub message: String,
}

impl Problem {
    pub fn new(kind: ValidationFailure, member: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            rule: kind.as_str(),
            kind,
            member: member.map(str::to_owned),
            message: message.into(),
        }
    }
}

/// The members of a metadata document Steward knows by name (RFC 7591 §2,
/// CIMD). A problem's member is shown on a user-facing page only when it is
/// one of these: any other member name is text chosen by whoever published
/// the document.
const KNOWN_MEMBERS: [&str; 18] = [
    "client_id",
    "client_name",
    "redirect_uris",
    "client_secret",
    "client_secret_expires_at",
    "token_endpoint_auth_method",
    "token_endpoint_auth_methods_supported",
    "jwks",
    "jwks_uri",
    "client_uri",
    "logo_uri",
    "tos_uri",
    "policy_uri",
    "grant_types",
    "response_types",
    "scope",
    "software_statement",
    "contacts",
];

impl Problem {
    /// The member at fault when it is a member Steward knows by name, else
    /// `None`: safe to print on Steward's own pages.
    pub fn known_member(&self) -> Option<&str> {
        self.member.as_deref().filter(|m| KNOWN_MEMBERS.contains(m))
    }

    /// A problem whose rule id is more precise than its kind (URL and fetch
    /// failures reported by the checker).
    pub(crate) fn with_rule(kind: ValidationFailure, rule: &'static str, message: impl Into<String>) -> Self {
        Self {
            rule,
            kind,
            member: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] ", self.rule)?;
        if let Some(m) = &self.member {
            write!(f, "{m}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// The failure to count for a list of problems: the first one found.
pub fn first_failure(problems: &[Problem]) -> Option<ValidationFailure> {
    problems.first().map(|p| p.kind)
}
