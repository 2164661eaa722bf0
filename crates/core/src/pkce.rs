//! PKCE (RFC 7636, OAuth 2.1 §4.1.1, §7.5.1): S256 only.
//!
//! A `code_challenge` without `code_challenge_method` means `plain` (OAuth
//! 2.1 §4.1.1), which Steward refuses, so there is no `plain` variant at all.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Verifier and challenge alphabet and length (OAuth 2.1 Appendix A).
fn is_pkce_string(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// An S256 code challenge as sent in the authorization request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeChallenge(String);

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PkceError {
    #[error("code_challenge is required (PKCE with S256)")]
    MissingChallenge,
    #[error("code_challenge_method must be S256; a missing method means plain, which is not supported")]
    UnsupportedMethod,
    #[error("code_challenge is malformed")]
    MalformedChallenge,
}

impl CodeChallenge {
    /// Validates the pair of authorization request parameters.
    pub fn from_request(challenge: Option<&str>, method: Option<&str>) -> Result<Self, PkceError> {
        let challenge = challenge.ok_or(PkceError::MissingChallenge)?;
        if method != Some("S256") {
            return Err(PkceError::UnsupportedMethod);
        }
        // BASE64URL(SHA-256) without padding is exactly 43 characters.
        if challenge.len() != 43 || !is_pkce_string(challenge) {
            return Err(PkceError::MalformedChallenge);
        }
        Ok(Self(challenge.to_owned()))
    }

    /// Rebuilds a challenge stored with an authorization code.
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `BASE64URL(SHA256(ASCII(code_verifier))) == code_challenge`, compared
    /// in constant time. A malformed verifier never matches.
    pub fn verify(&self, verifier: &str) -> bool {
        if !is_pkce_string(verifier) {
            return false;
        }
        let digest = Sha256::digest(verifier.as_bytes());
        let computed = URL_SAFE_NO_PAD.encode(digest);
        computed.as_bytes().ct_eq(self.0.as_bytes()).into()
    }
}

/// Computes the S256 challenge of a verifier (for clients, tests, benches).
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Challenge computed independently (Python hashlib + base64url).
    const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K1s6tSjAQ4Ag7J2BcaEkxc0-7Ac";
    const CHALLENGE: &str = "gXJXsT3yuWVgwHE93_Em2CA-PGIRPq9CQocTytmScck";

    #[test]
    fn s256_matches_independent_computation() {
        let c = CodeChallenge::from_request(Some(CHALLENGE), Some("S256")).unwrap();
        assert!(c.verify(VERIFIER));
        assert!(!c.verify("dBjftJeZ4CVP-mJ92K1s6tSjAQ4Ag7J2BcaEkxc0-7Ad"));
        assert_eq!(s256_challenge(VERIFIER), CHALLENGE);
    }

    #[test]
    fn missing_method_means_plain_and_is_refused() {
        assert_eq!(
            CodeChallenge::from_request(Some(CHALLENGE), None),
            Err(PkceError::UnsupportedMethod)
        );
        assert_eq!(
            CodeChallenge::from_request(Some(CHALLENGE), Some("plain")),
            Err(PkceError::UnsupportedMethod)
        );
        assert_eq!(
            CodeChallenge::from_request(None, Some("S256")),
            Err(PkceError::MissingChallenge)
        );
        assert_eq!(
            CodeChallenge::from_request(Some("short"), Some("S256")),
            Err(PkceError::MalformedChallenge)
        );
    }

    #[test]
    fn short_verifier_never_matches() {
        let c = CodeChallenge::from_stored(s256_challenge("abc"));
        assert!(!c.verify("abc"));
    }
}
