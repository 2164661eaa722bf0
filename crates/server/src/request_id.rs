//! Request ids for the pages a person sees.
//!
//! An error page tells the user a short reason and an id, and nothing else
//! (issue 11 item 3: a metadata error page must not tell an anonymous visitor
//! what an internal name resolves to, or whether a port is open). The id is
//! logged on the same line as the details, and written into the audit event,
//! so an operator given the id finds them.

use std::fmt;

/// A random id for one request: 96 bits, 16 base64url characters. Not a
/// secret and not a correlation across services, just a needle for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    pub fn new() -> Self {
        let token = steward_core::secret::random_token();
        Self(token.expose().chars().take(16).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::RequestId;

    #[test]
    fn request_ids_are_random_url_safe_and_short() {
        let (a, b) = (RequestId::new(), RequestId::new());
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 16);
        assert!(
            a.as_str()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }
}
