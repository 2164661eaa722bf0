//! The client's address: the TCP peer, or — only when that peer is a
//! configured reverse proxy (`http.trusted_proxies`) — the address the proxy
//! reports in `X-Forwarded-For` or `Forwarded` (RFC 7239).
//!
//! Why it matters: behind a TLS-terminating proxy every connection comes from
//! the proxy, so limits keyed by address (failed sign-ins, failed client
//! authentications) would lock every user out after one attacker's failures
//! (issue 15). Why only from a trusted peer: the headers are written by
//! whoever sends the request, so a client talking to Steward directly could
//! choose the address its failures are counted against — and lock out
//! someone else, or never be locked out at all.
//!
//! Which hop: each proxy *appends* the address it received the request from,
//! so only the right end of the list is written by proxies we trust; anything
//! to its left may be the client's own forgery. We walk from the right,
//! skipping hops that are themselves trusted proxies, and take the first one
//! that is not. A hop that is not an address (`unknown`, an obfuscated
//! identifier `_hidden`, garbage) ends the walk: nothing to its left can be
//! trusted, so the last trusted hop is used — never a value a client chose.
//!
//! `X-Forwarded-Proto` and `X-Forwarded-Host` are never read: the issuer is
//! configured, not inferred from a request (RFC 8414 §2 and RFC 9207 need
//! one stable issuer), so no header can change it.

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::{HeaderMap, StatusCode, request::Parts};
use ipnet::IpNet;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use crate::settings::ForwardedHeader;

/// At most this many hops are examined from the right. A real chain of
/// proxies is a handful long; the bound keeps a hostile header's cost fixed.
const MAX_HOPS: usize = 32;

/// The configured reverse proxies: single addresses and CIDR ranges.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    header: ForwardedHeader,
}

impl TrustedProxies {
    /// Parses `http.trusted_proxies`: each entry an address (`10.0.0.5`,
    /// `::1`) or a CIDR range (`10.0.0.0/8`, `2001:db8::/32`).
    pub fn parse(entries: &[String], header: ForwardedHeader) -> Result<Self, String> {
        let mut nets = Vec::with_capacity(entries.len());
        for entry in entries {
            let e = entry.trim();
            let net = match e.parse::<IpNet>() {
                Ok(n) => n,
                Err(_) => match e.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(canonical(ip)),
                    Err(_) => {
                        return Err(format!(
                            "{entry:?} is neither an IP address nor a CIDR range (e.g. 10.0.0.5 or 10.0.0.0/8)"
                        ));
                    }
                },
            };
            nets.push(net);
        }
        Ok(Self { nets, header })
    }

    /// No proxies configured: the TCP peer is always the client.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client address of a request from `peer` carrying `headers`.
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.contains(peer) {
            return peer;
        }
        let values = headers
            .get_all(self.header.name())
            .iter()
            .map(|v| v.to_str().unwrap_or("\u{0}"));
        let hops = match self.header {
            ForwardedHeader::XForwardedFor => x_forwarded_for(values),
            ForwardedHeader::Forwarded => forwarded(values),
        };
        rightmost_untrusted(peer, &hops, |ip| self.contains(ip))
    }
}

/// Walks `hops` (left to right as sent) from the right: the first address
/// not trusted is the client; an unparsable hop stops at the last trusted
/// one; a chain of trusted hops only gives its leftmost.
pub fn rightmost_untrusted(
    peer: IpAddr,
    hops: &[Option<IpAddr>],
    trusted: impl Fn(IpAddr) -> bool,
) -> IpAddr {
    let mut last_trusted = peer;
    for hop in hops.iter().rev().take(MAX_HOPS) {
        match hop {
            Some(ip) if trusted(*ip) => last_trusted = *ip,
            Some(ip) => return *ip,
            None => return last_trusted,
        }
    }
    last_trusted
}

/// IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`, what a dual-stack socket
/// reports) are the IPv4 address, so one client has one address.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// `X-Forwarded-For: client, proxy1, proxy2` — every header line, in order,
/// as one list. Each element an address, optionally with a port
/// (`192.0.2.1:4711`, `[2001:db8::1]:4711`); anything else is `None`.
pub fn x_forwarded_for<'a>(values: impl Iterator<Item = &'a str>) -> Vec<Option<IpAddr>> {
    let mut hops = Vec::new();
    for value in values {
        for element in value.split(',') {
            hops.push(node(element.trim()));
        }
    }
    hops
}

/// `Forwarded: for=192.0.2.60;proto=https, for="[2001:db8::1]:4711"` (RFC
/// 7239 §4): the `for` parameter of each element, in order, over every
/// header line. An element without `for`, or whose `for` is `unknown` or an
/// obfuscated identifier (§6.2, §6.3), is `None`.
pub fn forwarded<'a>(values: impl Iterator<Item = &'a str>) -> Vec<Option<IpAddr>> {
    let mut hops = Vec::new();
    for value in values {
        for element in split_unquoted(value, ',') {
            if element.trim().is_empty() {
                continue;
            }
            let mut found = None;
            let mut seen_for = false;
            for pair in split_unquoted(element, ';') {
                let Some((name, raw)) = pair.split_once('=') else {
                    continue;
                };
                if !name.trim().eq_ignore_ascii_case("for") {
                    continue;
                }
                if seen_for {
                    // Two `for` in one element: which one is the proxy's?
                    found = None;
                    break;
                }
                seen_for = true;
                found = unquote(raw.trim()).and_then(|v| node(&v));
            }
            hops.push(found);
        }
    }
    hops
}

/// Splits on `sep` outside double-quoted strings (RFC 7230 quoted-string,
/// with backslash escapes), so `for="a,b"` stays one piece.
fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

/// A token or a quoted-string's content; `None` for an unterminated quote.
fn unquote(v: &str) -> Option<String> {
    let Some(inner) = v.strip_prefix('"') else {
        return Some(v.to_owned());
    };
    let inner = inner.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push(chars.next()?);
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// One node: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]`,
/// `[2001:db8::1]:4711`. The port, when present, must be digits.
fn node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        let ip = inner.parse::<Ipv6Addr>().ok()?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return Some(canonical(IpAddr::V6(ip)));
    }
    let (host, port) = s.rsplit_once(':')?;
    if !is_port(port) {
        return None;
    }
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

fn is_port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
}

/// The client address of this request, put into the request's extensions by
/// the request layer ([`crate::request_log`]) — the one value limits, logs
/// and audit use. Handlers take it as an extractor instead of `ConnectInfo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

impl ClientAddress {
    /// Computes the address for `req` and stores it in its extensions.
    /// Without a peer (a request not from a socket) nothing is stored.
    pub fn insert(req: &mut Request, proxies: &TrustedProxies) -> Option<ClientAddress> {
        let peer = req.extensions().get::<ConnectInfo<SocketAddr>>()?.0.ip();
        let address = ClientAddress(proxies.client_address(peer, req.headers()));
        req.extensions_mut().insert(address);
        Some(address)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<ClientAddress>()
            .copied()
            .ok_or((StatusCode::INTERNAL_SERVER_ERROR, "client address unknown"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(entries: &[&str], header: ForwardedHeader) -> TrustedProxies {
        let entries: Vec<String> = entries.iter().map(|s| (*s).to_owned()).collect();
        TrustedProxies::parse(&entries, header).unwrap()
    }

    fn headers(name: &str, values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    const XFF: ForwardedHeader = ForwardedHeader::XForwardedFor;
    const FWD: ForwardedHeader = ForwardedHeader::Forwarded;

    #[test]
    fn without_trusted_proxies_the_headers_are_ignored() {
        let p = proxies(&[], XFF);
        let h = headers("x-forwarded-for", &["203.0.113.9"]);
        assert_eq!(p.client_address(ip("198.51.100.1"), &h), ip("198.51.100.1"));
    }

    #[test]
    fn an_untrusted_peer_cannot_choose_its_address() {
        let p = proxies(&["10.0.0.0/8"], XFF);
        let h = headers("x-forwarded-for", &["203.0.113.9, 10.0.0.1"]);
        assert_eq!(p.client_address(ip("198.51.100.1"), &h), ip("198.51.100.1"));
    }

    #[test]
    fn a_trusted_peer_reports_the_client() {
        let p = proxies(&["10.0.0.5"], XFF);
        let h = headers("x-forwarded-for", &["203.0.113.9"]);
        assert_eq!(p.client_address(ip("10.0.0.5"), &h), ip("203.0.113.9"));
    }

    #[test]
    fn a_spoofed_leftmost_value_is_not_taken() {
        // The client sent `X-Forwarded-For: 1.2.3.4`; the proxy appended the real one.
        let p = proxies(&["10.0.0.5"], XFF);
        let h = headers("x-forwarded-for", &["1.2.3.4, 203.0.113.9"]);
        assert_eq!(p.client_address(ip("10.0.0.5"), &h), ip("203.0.113.9"));
    }

    #[test]
    fn many_hops_skip_every_trusted_proxy_from_the_right() {
        let p = proxies(&["10.0.0.0/8", "192.168.1.1"], XFF);
        let h = headers(
            "x-forwarded-for",
            &["1.2.3.4, 203.0.113.9, 10.1.1.1", "192.168.1.1, 10.2.2.2"],
        );
        assert_eq!(p.client_address(ip("10.0.0.5"), &h), ip("203.0.113.9"));
    }

    #[test]
    fn a_chain_of_only_trusted_hops_gives_its_leftmost() {
        let p = proxies(&["10.0.0.0/8"], XFF);
        let h = headers("x-forwarded-for", &["10.9.9.9, 10.1.1.1"]);
        assert_eq!(p.client_address(ip("10.0.0.5"), &h), ip("10.9.9.9"));
    }

    #[test]
    fn no_header_from_a_trusted_proxy_is_the_proxy() {
        let p = proxies(&["10.0.0.5"], XFF);
        assert_eq!(
            p.client_address(ip("10.0.0.5"), &HeaderMap::new()),
            ip("10.0.0.5")
        );
    }

    #[test]
    fn garbage_stops_the_walk_at_the_last_trusted_hop() {
        let p = proxies(&["10.0.0.0/8"], XFF);
        for garbage in [
            "1.2.3.4, not-an-address",
            "1.2.3.4, 999.1.1.1",
            "1.2.3.4, ",
            "1.2.3.4, 203.0.113.9:port",
            "1.2.3.4, [2001:db8::1",
            "1.2.3.4, 203.0.113.9 203.0.113.8",
        ] {
            let h = headers("x-forwarded-for", &[garbage]);
            assert_eq!(p.client_address(ip("10.0.0.5"), &h), ip("10.0.0.5"), "{garbage}");
        }
        let h = headers("x-forwarded-for", &["1.2.3.4, junk, 10.1.1.1"]);
        assert_eq!(p.client_address(ip("10.0.0.5"), &h), ip("10.1.1.1"));
    }

    #[test]
    fn non_utf8_header_bytes_are_garbage() {
        let p = proxies(&["10.0.0.5"], XFF);
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"1.2.3.4\xff").unwrap(),
        );
        assert_eq!(p.client_address(ip("10.0.0.5"), &h), ip("10.0.0.5"));
    }

    #[test]
    fn ipv6_with_brackets_and_ports() {
        let hops =
            x_forwarded_for(["2001:db8::1, [2001:db8::2], [2001:db8::3]:4711, 192.0.2.1:80"].into_iter());
        assert_eq!(
            hops,
            vec![
                Some(ip("2001:db8::1")),
                Some(ip("2001:db8::2")),
                Some(ip("2001:db8::3")),
                Some(ip("192.0.2.1")),
            ]
        );
        // A port on an unbracketed IPv6 address is ambiguous: not an address.
        assert_eq!(x_forwarded_for(["[2001:db8::1]:x"].into_iter()), vec![None]);
        assert_eq!(x_forwarded_for(["[2001:db8::1]4711"].into_iter()), vec![None]);
    }

    #[test]
    fn ipv4_mapped_addresses_are_ipv4() {
        let p = proxies(&["10.0.0.5"], XFF);
        let h = headers("x-forwarded-for", &["::ffff:203.0.113.9"]);
        assert_eq!(p.client_address(ip("::ffff:10.0.0.5"), &h), ip("203.0.113.9"));
    }

    #[test]
    fn forwarded_for_with_quoted_ipv6_and_port() {
        let p = proxies(&["10.0.0.5"], FWD);
        let h = headers("forwarded", &["for=\"[2001:db8::1]:4711\";proto=https"]);
        assert_eq!(p.client_address(ip("10.0.0.5"), &h), ip("2001:db8::1"));
    }

    #[test]
    fn forwarded_elements_and_parameters() {
        let hops = forwarded(
            [
                "for=192.0.2.60;proto=http;by=203.0.113.43, For=\"198.51.100.17:80\"",
                "proto=https;for=\"[2001:db8:cafe::17]\"",
            ]
            .into_iter(),
        );
        assert_eq!(
            hops,
            vec![
                Some(ip("192.0.2.60")),
                Some(ip("198.51.100.17")),
                Some(ip("2001:db8:cafe::17"))
            ]
        );
    }

    #[test]
    fn forwarded_obfuscated_and_unknown_identifiers_stop_the_walk() {
        let p = proxies(&["10.0.0.0/8"], FWD);
        for value in [
            "for=192.0.2.60, for=unknown",
            "for=192.0.2.60, for=_hidden",
            "for=192.0.2.60, for=\"_SEVKISEK\"",
            "for=192.0.2.60, proto=https",
            "for=192.0.2.60, for=\"[2001:db8::1]",
            "for=192.0.2.60, for=192.0.2.61;for=192.0.2.62",
            "for=192.0.2.60, for=\"a,b\"",
        ] {
            let h = headers("forwarded", &[value]);
            assert_eq!(p.client_address(ip("10.0.0.5"), &h), ip("10.0.0.5"), "{value}");
        }
    }

    #[test]
    fn forwarded_is_not_read_when_x_forwarded_for_is_configured_and_vice_versa() {
        let xff = proxies(&["10.0.0.5"], XFF);
        let h = headers("forwarded", &["for=203.0.113.9"]);
        assert_eq!(xff.client_address(ip("10.0.0.5"), &h), ip("10.0.0.5"));
        let fwd = proxies(&["10.0.0.5"], FWD);
        let h = headers("x-forwarded-for", &["203.0.113.9"]);
        assert_eq!(fwd.client_address(ip("10.0.0.5"), &h), ip("10.0.0.5"));
    }

    #[test]
    fn a_very_long_chain_is_examined_only_from_the_right() {
        let p = proxies(&["10.0.0.0/8"], XFF);
        let mut chain = vec!["203.0.113.9".to_owned()];
        chain.extend((0..100).map(|i| format!("10.0.{}.{}", i / 200, i % 200)));
        let h = headers("x-forwarded-for", &[&chain.join(", ")]);
        // More trusted hops than MAX_HOPS: the walk stops at a trusted one,
        // never at something further left.
        let got = p.client_address(ip("10.0.0.5"), &h);
        assert!(p.contains(got), "{got}");
    }

    #[test]
    fn trusted_proxy_entries_are_addresses_or_ranges() {
        let p = proxies(&["10.0.0.5", "192.168.0.0/16", "::1", "2001:db8::/32"], XFF);
        assert!(p.contains(ip("10.0.0.5")));
        assert!(!p.contains(ip("10.0.0.6")));
        assert!(p.contains(ip("192.168.44.1")));
        assert!(p.contains(ip("::1")));
        assert!(p.contains(ip("2001:db8:1::9")));
        let err = TrustedProxies::parse(&["10.0.0.0/33".to_owned()], XFF).unwrap_err();
        assert!(err.contains("10.0.0.0/33"), "{err}");
        assert!(TrustedProxies::parse(&["proxy.internal".to_owned()], XFF).is_err());
    }
}
