//! Client Identifier URLs: which `client_id` strings are metadata-document ids.
//!
//! CIMD -02 §3 lists the rules and -02 §2 makes the raw string the identity:
//! client ids are compared byte for byte (RFC 3986 §6.2.1) with no case,
//! default-port or dot normalisation (SPEC_CHECKLIST §0.2 items 1–2). Every
//! check therefore runs on the string exactly as the client sent it; a URL
//! parser is consulted only to learn what a fetcher would do with it, never to
//! rewrite it.

use serde::{Serialize, Serializer};
use std::fmt;

/// Local policy for client id URLs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UrlRules {
    /// Accept a query component. CIMD -01 §3 says clients SHOULD NOT use one
    /// ("encourages bad security practices"); Steward refuses it unless
    /// `cimd.allow_query` is set (SPEC_CHECKLIST §20.1).
    pub allow_query: bool,
}

/// Why a string is not an acceptable Client Identifier URL.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientIdError {
    #[error("client_id must use the https scheme (CIMD §3)")]
    NotHttps,
    #[error("client_id contains whitespace, a control character or a backslash")]
    BadCharacter,
    #[error("client_id has no host")]
    EmptyHost,
    #[error("client_id must contain a path component (CIMD §3)")]
    MissingPath,
    #[error("client_id must not contain a '.' or '..' path segment, encoded or not (CIMD §3)")]
    DotSegment,
    #[error("client_id must not contain a fragment, not even an empty '#' (CIMD §3)")]
    Fragment,
    #[error("client_id must not contain userinfo, not even an empty '@' (CIMD §3)")]
    Userinfo,
    #[error("client_id must name a host, not an IP address in any spelling")]
    IpHost,
    #[error("client_id must not contain a query component (CIMD §3 SHOULD NOT; local policy)")]
    Query,
    #[error("client_id is not a valid URL")]
    Unparseable,
    #[error("client_id is not in canonical form (a URL parser would rewrite it)")]
    NotCanonical,
}

impl ClientIdError {
    /// Stable snake_case reason for logs, metrics and the checker.
    pub const fn reason(&self) -> &'static str {
        match self {
            Self::NotHttps => "client_id_not_https",
            Self::BadCharacter => "client_id_bad_character",
            Self::EmptyHost => "client_id_empty_host",
            Self::MissingPath => "client_id_missing_path",
            Self::DotSegment => "client_id_dot_segment",
            Self::Fragment => "client_id_fragment",
            Self::Userinfo => "client_id_userinfo",
            Self::IpHost => "client_id_ip_host",
            Self::Query => "client_id_query",
            Self::Unparseable => "client_id_unparseable",
            Self::NotCanonical => "client_id_not_canonical",
        }
    }
}

/// Routes a `client_id`: ids that start with `https://` (scheme compared
/// case-insensitively, CIMD -02 §3) are metadata-document ids and are never
/// looked up as pre-registered or DCR ids (-01 §7: generated ids SHOULD NOT
/// start with `https://`, so the two spaces do not overlap).
pub fn looks_like_metadata_document_id(raw: &str) -> bool {
    raw.get(..8).is_some_and(|p| p.eq_ignore_ascii_case("https://"))
}

/// A `client_id` that passed every CIMD URL rule. Only [`ClientIdUrl::parse`]
/// builds one, so holding one proves the rules were checked.
#[derive(Clone)]
pub struct ClientIdUrl {
    raw: String,
    url: url::Url,
}

impl ClientIdUrl {
    /// Checks `raw` against CIMD -02 §3 and Steward's policy (SPEC_CHECKLIST §4.1, §20.1).
    pub fn parse(raw: &str, rules: &UrlRules) -> Result<Self, ClientIdError> {
        if raw
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
        {
            // A parser strips or rewrites these (tabs and newlines are removed,
            // `\` becomes `/`), so two different raw ids could fetch one URL.
            return Err(ClientIdError::BadCharacter);
        }
        if !looks_like_metadata_document_id(raw) {
            return Err(ClientIdError::NotHttps);
        }
        let after_scheme = &raw[8..];
        if raw.contains('#') {
            return Err(ClientIdError::Fragment);
        }
        let authority_end = after_scheme.find(['/', '?']).unwrap_or(after_scheme.len());
        let (authority, rest) = after_scheme.split_at(authority_end);
        if authority.contains('@') {
            return Err(ClientIdError::Userinfo);
        }
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        if path.is_empty() {
            return Err(ClientIdError::MissingPath);
        }
        if path.split('/').any(is_dot_segment) {
            return Err(ClientIdError::DotSegment);
        }
        if query.is_some() && !rules.allow_query {
            return Err(ClientIdError::Query);
        }
        let (host, port) = split_host_port(authority);
        if host.starts_with('[') {
            return Err(ClientIdError::IpHost);
        }
        if host.is_empty() {
            return Err(ClientIdError::EmptyHost);
        }
        if ends_in_a_number(host) {
            return Err(ClientIdError::IpHost);
        }
        let url = url::Url::parse(raw).map_err(|_| ClientIdError::Unparseable)?;
        if !matches!(url.host(), Some(url::Host::Domain(_))) {
            return Err(ClientIdError::IpHost);
        }
        if !is_canonical(raw, &url, host, port) {
            return Err(ClientIdError::NotCanonical);
        }
        Ok(Self {
            raw: raw.to_owned(),
            url,
        })
    }

    /// The identity: the exact string the client sent.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The URL to fetch. For `https://h:443/c` this serializes without the
    /// port; it names the same resource, while the identity stays `raw`.
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    /// The hostname to display on the consent screen (CIMD -02 §8.5).
    pub fn host(&self) -> &str {
        self.url.host_str().unwrap_or_default()
    }

    /// True when the path is exactly `/`: allowed but NOT RECOMMENDED
    /// (CIMD -02 §3), so the checker warns.
    pub fn has_root_path(&self) -> bool {
        self.url.path() == "/"
    }
}

fn is_dot_segment(segment: &str) -> bool {
    let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
    decoded == "." || decoded == ".."
}

/// Splits `host[:port]`; an IPv6 literal keeps its brackets.
fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(close) => {
                let (h, p) = authority.split_at(close + 1);
                (h, p.strip_prefix(':'))
            }
            None => (authority, None),
        };
    }
    match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    }
}

/// The WHATWG URL Standard's "ends in a number" test: when the last label
/// (ignoring one trailing dot) is all decimal digits, or `0x` followed by hex
/// digits, a WHATWG parser treats the whole host as IPv4 (`2130706433`,
/// `0x7f.1`, `017700000001`, `127.1`). Browsers and fetchers disagree on such
/// spellings, so any host shaped like this is refused, parseable or not.
fn ends_in_a_number(host: &str) -> bool {
    let trimmed = host.strip_suffix('.').unwrap_or(host);
    let last = trimmed.rsplit('.').next().unwrap_or(trimmed);
    if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    match last.strip_prefix("0x").or_else(|| last.strip_prefix("0X")) {
        Some(hex) => hex.bytes().all(|b| b.is_ascii_hexdigit()),
        None => false,
    }
}

/// Does the parser's serialization reproduce `raw` byte for byte?
///
/// Any difference means the parser would rewrite the id (uppercase scheme or
/// host, percent-encoding, `\`, an empty port, IDNA), so two distinct raw ids
/// would fetch one document: refused. The single tolerated difference is an
/// explicit `:443`, which the url crate drops as the default https port. CIMD
/// -02 §2 says `https://h/c` and `https://h:443/c` are two distinct clients
/// that both serve from the same origin, so `:443` is legitimate and stays in
/// the identity even though the fetch URL omits it.
fn is_canonical(raw: &str, url: &url::Url, host: &str, port: Option<&str>) -> bool {
    let serialized = url.as_str();
    if serialized == raw {
        return true;
    }
    if port == Some("443") {
        let prefix_len = 8 + host.len();
        let without_port = format!("{}{}", &raw[..prefix_len], &raw[prefix_len + 4..]);
        return serialized == without_port;
    }
    false
}

impl PartialEq for ClientIdUrl {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Eq for ClientIdUrl {}

impl std::hash::Hash for ClientIdUrl {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.raw.hash(state);
    }
}

impl fmt::Debug for ClientIdUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ClientIdUrl").field(&self.raw).finish()
    }
}

impl fmt::Display for ClientIdUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl Serialize for ClientIdUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: UrlRules = UrlRules { allow_query: false };

    fn err(raw: &str) -> ClientIdError {
        ClientIdUrl::parse(raw, &STRICT).unwrap_err()
    }

    fn ok(raw: &str) -> ClientIdUrl {
        ClientIdUrl::parse(raw, &STRICT).unwrap()
    }

    #[test]
    fn accepts_a_plain_document_url() {
        let id = ok("https://client.example.com/oauth/metadata.json");
        assert_eq!(id.as_str(), "https://client.example.com/oauth/metadata.json");
        assert_eq!(id.host(), "client.example.com");
        assert!(!id.has_root_path());
    }

    #[test]
    fn scheme_must_be_https() {
        assert_eq!(err("http://client.example/c"), ClientIdError::NotHttps);
        assert_eq!(err("ftp://client.example/c"), ClientIdError::NotHttps);
        assert_eq!(err("client.example/c"), ClientIdError::NotHttps);
    }

    #[test]
    fn uppercase_scheme_is_https_but_not_canonical() {
        assert!(looks_like_metadata_document_id("HTTPS://client.example/c"));
        assert_eq!(err("HTTPS://client.example/c"), ClientIdError::NotCanonical);
    }

    #[test]
    fn path_is_required() {
        assert_eq!(err("https://client.example"), ClientIdError::MissingPath);
        assert_eq!(err("https://client.example?x=1"), ClientIdError::MissingPath);
    }

    #[test]
    fn root_path_is_accepted_and_flagged() {
        assert!(ok("https://client.example/").has_root_path());
    }

    #[test]
    fn dot_segments_are_refused_in_every_spelling() {
        for raw in [
            "https://c.example/./c",
            "https://c.example/a/../c",
            "https://c.example/a/%2e/c",
            "https://c.example/a/%2E%2E/c",
            "https://c.example/a/.%2e/c",
            "https://c.example/a/%2e.",
            "https://c.example/..",
        ] {
            assert_eq!(err(raw), ClientIdError::DotSegment, "{raw}");
        }
        // Dots inside a segment are ordinary characters.
        ok("https://c.example/client.json");
        ok("https://c.example/.well-known/client");
    }

    #[test]
    fn fragment_is_refused_even_empty() {
        assert_eq!(err("https://c.example/c#"), ClientIdError::Fragment);
        assert_eq!(err("https://c.example/c#frag"), ClientIdError::Fragment);
    }

    #[test]
    fn userinfo_is_refused_even_empty() {
        assert_eq!(err("https://@c.example/c"), ClientIdError::Userinfo);
        assert_eq!(err("https://u:p@c.example/c"), ClientIdError::Userinfo);
        assert_eq!(err("https://u@c.example/c"), ClientIdError::Userinfo);
    }

    #[test]
    fn ip_hosts_are_refused_in_every_spelling() {
        for raw in [
            "https://127.0.0.1/c",
            "https://2130706433/c",
            "https://0x7f.1/c",
            "https://017700000001/c",
            "https://127.1/c",
            "https://0x7f000001/c",
            "https://[::1]/c",
            "https://[::ffff:127.0.0.1]/c",
            "https://[::1]:8443/c",
            "https://10.0.0.1:443/c",
            "https://example.123/c",
            "https://example.0x1f/c",
            "https://1.2.3.4./c",
        ] {
            assert_eq!(err(raw), ClientIdError::IpHost, "{raw}");
        }
        // A label that merely starts with digits is a name.
        ok("https://1password.example/c");
        ok("https://example.com1/c");
    }

    #[test]
    fn whitespace_control_and_backslash_are_refused() {
        for raw in [
            "https://c.example/a b",
            "https://c.example/a\tb",
            "https://c.example/a\nb",
            "https://c.example\\c",
            "https://c.example/c\u{0}",
            " https://c.example/c",
        ] {
            assert_eq!(err(raw), ClientIdError::BadCharacter, "{raw:?}");
        }
    }

    #[test]
    fn query_is_refused_unless_allowed() {
        assert_eq!(err("https://c.example/c?v=1"), ClientIdError::Query);
        let lax = UrlRules { allow_query: true };
        assert!(ClientIdUrl::parse("https://c.example/c?v=1", &lax).is_ok());
    }

    #[test]
    fn serialization_must_reproduce_the_raw_string() {
        for raw in [
            "https://Client.Example/c",
            "https://c.example:/c",
            "https://c.example/a\"b",
            "https://c.example/<c>",
            "https://bücher.example/c",
            "https://c.example/ü",
            "https://c.example:0443/c",
        ] {
            assert_eq!(err(raw), ClientIdError::NotCanonical, "{raw}");
        }
    }

    #[test]
    fn explicit_default_port_is_a_distinct_valid_client() {
        let plain = ok("https://c.example/c");
        let with_port = ok("https://c.example:443/c");
        assert_ne!(plain, with_port);
        assert_eq!(with_port.as_str(), "https://c.example:443/c");
        assert_eq!(with_port.url().as_str(), "https://c.example/c");
        ok("https://c.example:8443/c");
    }

    #[test]
    fn empty_host_is_refused() {
        assert_eq!(err("https:///c"), ClientIdError::EmptyHost);
        assert_eq!(err("https://:443/c"), ClientIdError::EmptyHost);
    }

    #[test]
    fn routing_prefix_is_case_insensitive() {
        assert!(looks_like_metadata_document_id("https://c.example/c"));
        assert!(looks_like_metadata_document_id("hTTpS://c"));
        assert!(!looks_like_metadata_document_id("http://c.example/c"));
        assert!(!looks_like_metadata_document_id("mcp-client-1"));
        assert!(!looks_like_metadata_document_id("https:/"));
    }
}
