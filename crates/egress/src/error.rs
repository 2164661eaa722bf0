//! Typed fetch failures.
//!
//! Callers (CIMD resolution, logo and JWKS fetches) map these to OAuth errors
//! and audit records; `reason()` is the stable label used in metrics and logs,
//! `is_transient()` tells a cache whether serving a stale copy is reasonable.

use std::net::IpAddr;

use thiserror::Error;

/// Why a fetch failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The URL cannot be fetched as given (no host, credentials, fragment...).
    #[error("invalid URL: {0}")]
    InvalidUrl(&'static str),
    /// Only `https` is fetched (CIMD -01 §3: client_id URLs use https).
    #[error("only https URLs are fetched")]
    NotHttps,
    /// SSRF defence: the target resolved to a special-purpose address (CIMD -01 §6.5).
    #[error("address {ip} is in a special-purpose range ({range})")]
    BlockedAddress { ip: IpAddr, range: &'static str },
    #[error("DNS resolution failed: {0}")]
    DnsFailure(#[source] hickory_resolver::ResolveError),
    #[error("the name has no addresses")]
    NoAddresses,
    #[error("connect failed: {0}")]
    Connect(#[source] std::io::Error),
    #[error("TLS failed: {0}")]
    Tls(#[source] std::io::Error),
    /// The single deadline covering DNS, connect, TLS, headers and body expired.
    #[error("the fetch deadline expired")]
    Timeout,
    /// The body exceeds the cap (CIMD -01 §6.6 recommends 5 KB).
    #[error("response body exceeds {limit} bytes")]
    TooLarge { limit: usize },
    #[error("response headers are too large")]
    HeadersTooLarge,
    /// Redirects are never followed (CIMD -01 §4).
    #[error("redirect (status {status}) refused")]
    Redirect { status: u16 },
    /// Only 200 counts as success (CIMD -01 §4.1).
    #[error("unexpected status {status}")]
    BadStatus { status: u16 },
    #[error("unexpected content type {content_type:?}")]
    BadContentType { content_type: Option<String> },
    /// We ask for `identity`; a compressed body could bypass the size cap.
    #[error("compressed response refused")]
    Compressed,
    /// Per-host concurrency or rate limit reached (reflection / starvation defence).
    #[error("per-host fetch limit reached")]
    RateLimited,
    #[error("HTTP protocol error: {0}")]
    Protocol(#[source] hyper::Error),
}

impl FetchError {
    /// Stable snake_case label for metrics and audit records.
    pub fn reason(&self) -> &'static str {
        match self {
            FetchError::InvalidUrl(_) => "invalid_url",
            FetchError::NotHttps => "not_https",
            FetchError::BlockedAddress { .. } => "blocked_address",
            FetchError::DnsFailure(_) => "dns_failure",
            FetchError::NoAddresses => "no_addresses",
            FetchError::Connect(_) => "connect",
            FetchError::Tls(_) => "tls",
            FetchError::Timeout => "timeout",
            FetchError::TooLarge { .. } => "too_large",
            FetchError::HeadersTooLarge => "headers_too_large",
            FetchError::Redirect { .. } => "redirect",
            FetchError::BadStatus { .. } => "bad_status",
            FetchError::BadContentType { .. } => "bad_content_type",
            FetchError::Compressed => "compressed",
            FetchError::RateLimited => "rate_limited",
            FetchError::Protocol(_) => "protocol",
        }
    }

    /// Whether retrying later may succeed (network trouble, overload, 5xx),
    /// as opposed to a verdict about the document or its address.
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::DnsFailure(_)
            | FetchError::Connect(_)
            | FetchError::Timeout
            | FetchError::RateLimited => true,
            FetchError::BadStatus { status } => (500..600).contains(status),
            _ => false,
        }
    }
}

/// Invalid [`crate::EgressConfig`].
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EgressConfigError {
    #[error("extra root certificate #{index} is not valid PEM: {source}")]
    RootPem { index: usize, source: std::io::Error },
    #[error("extra root certificate #{index} contains no certificate")]
    RootEmpty { index: usize },
    #[error("extra root certificate rejected: {0}")]
    RootRejected(#[source] rustls::Error),
    #[error("TLS configuration: {0}")]
    Tls(#[source] rustls::Error),
    #[error("system DNS configuration: {0}")]
    SystemDns(#[source] hickory_resolver::ResolveError),
    #[error("{field} must be greater than zero")]
    Zero { field: &'static str },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_covers_network_trouble_and_5xx_only() {
        assert!(FetchError::Timeout.is_transient());
        assert!(FetchError::RateLimited.is_transient());
        assert!(FetchError::DnsFailure(hickory_resolver::ResolveError::from("servfail")).is_transient());
        assert!(FetchError::Connect(std::io::ErrorKind::ConnectionRefused.into()).is_transient());
        assert!(FetchError::BadStatus { status: 503 }.is_transient());
        assert!(!FetchError::BadStatus { status: 404 }.is_transient());
        assert!(!FetchError::Redirect { status: 302 }.is_transient());
        assert!(
            !FetchError::BlockedAddress {
                ip: "127.0.0.1".parse().unwrap(),
                range: "loopback"
            }
            .is_transient()
        );
        assert!(!FetchError::TooLarge { limit: 5120 }.is_transient());
    }

    #[test]
    fn reasons_are_snake_case_labels() {
        let errors = [
            FetchError::InvalidUrl("x"),
            FetchError::NotHttps,
            FetchError::Timeout,
            FetchError::Compressed,
            FetchError::HeadersTooLarge,
            FetchError::BadContentType { content_type: None },
        ];
        let reasons: Vec<_> = errors.iter().map(FetchError::reason).collect();
        assert_eq!(
            reasons,
            [
                "invalid_url",
                "not_https",
                "timeout",
                "compressed",
                "headers_too_large",
                "bad_content_type"
            ]
        );
    }
}
