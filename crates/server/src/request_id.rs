//! Request ids for the pages a person sees.
//!
//! An error page tells the user a short reason and an id, and nothing else
//! (issue 11 item 3: a metadata error page must not tell an anonymous visitor
//! what an internal name resolves to, or whether a port is open). The id is
//! logged on the same line as the details, and written into the audit event,
//! so an operator given the id finds them.
//!
//! One id per request, for the whole request: the request layer
//! ([`crate::request_log`]) takes it from a trusted proxy's `X-Request-Id`
//! (so one id follows the request through the proxy's log and ours) or
//! makes one, returns it in the `X-Request-Id` response header, and puts it
//! on the request's log line; [`RequestId::current`] hands the same id to the
//! handler that renders an error page.

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

    /// An id a trusted proxy sent: 1 to [`MAX_LEN`] characters of letters,
    /// digits and `-_.:+/=` (UUIDs, base64, most tracing ids). Anything else —
    /// long, blank, spaces, markup, control characters — is not taken, and
    /// a fresh id is used instead: the value lands in logs and on pages.
    pub fn from_proxy(value: &[u8]) -> Option<Self> {
        let ok = !value.is_empty()
            && value.len() <= MAX_LEN
            && value
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || b"-_.:+/=".contains(&c));
        // Checked ASCII above, so this is lossless.
        ok.then(|| Self(String::from_utf8_lossy(value).into_owned()))
    }

    /// The id of the request being handled (the one in its `X-Request-Id`
    /// response header and log line); a fresh one outside a request.
    pub fn current() -> Self {
        crate::request_log::current_request_id().unwrap_or_default()
    }
}

/// The longest request id accepted from a proxy.
pub const MAX_LEN: usize = 64;

/// The request and response header carrying the id.
pub const HEADER: &str = "x-request-id";

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

    #[test]
    fn a_proxys_id_is_taken_only_when_short_and_plain() {
        for good in [
            "abc",
            "3f2b1c9e-7d4a-4e2b-9f1a-0c2d3e4f5a6b",
            "Zm9v+YmFy/eg==",
            "trace:1.2",
        ] {
            assert_eq!(RequestId::from_proxy(good.as_bytes()).unwrap().as_str(), good);
        }
        let long = "a".repeat(super::MAX_LEN + 1);
        for bad in [
            "",
            " ",
            "a b",
            "<script>",
            "a\"b",
            "a\u{7f}",
            "caf\u{e9}",
            "x\ny",
            long.as_str(),
        ] {
            assert!(RequestId::from_proxy(bad.as_bytes()).is_none(), "{bad:?}");
        }
        assert!(RequestId::from_proxy(b"ok\xff").is_none());
        // Outside a request, `current` is a fresh id.
        assert_ne!(RequestId::current(), RequestId::current());
    }
}
