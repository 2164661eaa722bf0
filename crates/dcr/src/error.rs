//! Registration errors in RFC 7591's own terms (§3.2.2).

use serde::Serialize;
use std::fmt;

/// The `error` codes of RFC 7591 §3.2.2, answered with HTTP 400.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A redirect URI is missing or not allowed.
    InvalidRedirectUri,
    /// Any other member is missing, malformed or not allowed.
    InvalidClientMetadata,
    /// The software statement is malformed, badly signed or expired.
    InvalidSoftwareStatement,
    /// The software statement is valid but from an issuer this server does
    /// not trust.
    UnapprovedSoftwareStatement,
}

impl ErrorCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::InvalidSoftwareStatement => "invalid_software_statement",
            Self::UnapprovedSoftwareStatement => "unapproved_software_statement",
        }
    }
}

/// A refused registration: the code and a sentence for the client's
/// developer (`error_description`). Never carries secrets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RegistrationError {
    #[serde(rename = "error")]
    pub code: ErrorCode,
    #[serde(rename = "error_description")]
    pub description: String,
}

impl RegistrationError {
    pub fn metadata(description: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::InvalidClientMetadata,
            description: description.into(),
        }
    }

    pub fn redirect(description: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::InvalidRedirectUri,
            description: description.into(),
        }
    }

    pub fn statement(description: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::InvalidSoftwareStatement,
            description: description.into(),
        }
    }

    pub fn unapproved_statement(description: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::UnapprovedSoftwareStatement,
            description: description.into(),
        }
    }
}

impl fmt::Display for RegistrationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

impl std::error::Error for RegistrationError {}
