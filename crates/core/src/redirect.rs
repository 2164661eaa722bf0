//! Redirect URIs: what may be registered and how a requested one matches.
//!
//! OAuth 2.1 §2.3 / RFC 9700 §2.1 require exact string comparison (RFC 3986
//! §6.2.1) against registered values, with one exception (OAuth 2.1 §8.4.2,
//! RFC 8252 §7.3): for `http` loopback redirect URIs the port is chosen at
//! request time. Steward applies that exception to `localhost`, `127.0.0.1`
//! and `[::1]` (SPEC_CHECKLIST §20.4) — real MCP clients register
//! `http://localhost/callback` and return on an ephemeral port — and to
//! nothing else: never to https, never across host spellings.

use serde::{Serialize, Serializer};
use std::fmt;

/// Which redirect URI forms a deployment accepts at registration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RedirectUriRules {
    /// Accept private-use schemes in reverse-domain form (`com.example.app:/cb`).
    /// MCP says redirect URIs MUST be localhost or https, so this is off by default.
    pub allow_private_use_schemes: bool,
}

/// Why a redirect URI cannot be registered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RedirectUriError {
    #[error("redirect URI is not an absolute URI")]
    NotAbsolute,
    #[error("redirect URI contains whitespace, a control character or a backslash")]
    BadCharacter,
    #[error("redirect URI has a fragment (OAuth 2.1 §2.3)")]
    Fragment,
    #[error("redirect URI has userinfo")]
    Userinfo,
    #[error("http redirect URIs are allowed only on a loopback host (RFC 9700 §2.6)")]
    HttpNotLoopback,
    #[error("private-use URI schemes are not allowed here")]
    PrivateUseSchemeNotAllowed,
    #[error("private-use URI schemes must be in reverse-domain form (OAuth 2.1 §2.3.1)")]
    PrivateUseSchemeNotReverseDomain,
    #[error("redirect URI scheme is not allowed")]
    SchemeNotAllowed,
}

/// A redirect URI that passed registration rules. Holds the exact string
/// registered; comparison never normalizes it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RedirectUri {
    raw: String,
    loopback: Option<LoopbackParts>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct LoopbackParts {
    host: String,
    rest: String,
}

impl RedirectUri {
    pub fn parse(raw: &str, rules: RedirectUriRules) -> Result<Self, RedirectUriError> {
        if raw
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
        {
            return Err(RedirectUriError::BadCharacter);
        }
        if raw.contains('#') {
            return Err(RedirectUriError::Fragment);
        }
        let parsed = url::Url::parse(raw).map_err(|_| RedirectUriError::NotAbsolute)?;
        if parsed.cannot_be_a_base() && parsed.scheme() != "urn" && !raw.contains(':') {
            return Err(RedirectUriError::NotAbsolute);
        }
        let scheme = scheme_of(raw).ok_or(RedirectUriError::NotAbsolute)?;
        match scheme.to_ascii_lowercase().as_str() {
            "https" => {
                if parsed.host_str().is_none_or(str::is_empty) {
                    return Err(RedirectUriError::NotAbsolute);
                }
                if !parsed.username().is_empty() || parsed.password().is_some() || authority_has_at(raw) {
                    return Err(RedirectUriError::Userinfo);
                }
                Ok(Self {
                    raw: raw.to_owned(),
                    loopback: None,
                })
            }
            "http" => {
                if authority_has_at(raw) {
                    return Err(RedirectUriError::Userinfo);
                }
                match split_loopback(raw) {
                    Some(parts) => Ok(Self {
                        raw: raw.to_owned(),
                        loopback: Some(parts),
                    }),
                    None => Err(RedirectUriError::HttpNotLoopback),
                }
            }
            "javascript" | "data" | "file" | "vbscript" | "blob" | "about" | "ftp" | "ws" | "wss" => {
                Err(RedirectUriError::SchemeNotAllowed)
            }
            _ => {
                if !rules.allow_private_use_schemes {
                    return Err(RedirectUriError::PrivateUseSchemeNotAllowed);
                }
                // Reverse-domain form: at least two labels separated by '.'.
                if !scheme.contains('.') || scheme.starts_with('.') || scheme.ends_with('.') {
                    return Err(RedirectUriError::PrivateUseSchemeNotReverseDomain);
                }
                Ok(Self {
                    raw: raw.to_owned(),
                    loopback: None,
                })
            }
        }
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// True for `http` on `localhost`, `127.0.0.1` or `[::1]`.
    pub fn is_loopback(&self) -> bool {
        self.loopback.is_some()
    }

    /// Does the redirect URI sent in a request match this registered one?
    ///
    /// Exact string equality, except that for a registered http loopback URI
    /// the port of the requested URI is ignored (whether or not either has one)
    /// while scheme, host literal, path and query must still match exactly.
    pub fn matches(&self, requested: &str) -> bool {
        if self.raw == requested {
            return true;
        }
        let Some(reg) = &self.loopback else {
            return false;
        };
        if requested.contains('#') || authority_has_at(requested) {
            return false;
        }
        match split_loopback(requested) {
            Some(req) => req == *reg,
            None => false,
        }
    }
}

impl fmt::Debug for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RedirectUri").field(&self.raw).finish()
    }
}

impl fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl Serialize for RedirectUri {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}

fn scheme_of(raw: &str) -> Option<&str> {
    let (scheme, _) = raw.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic() && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)))
        .then_some(scheme)
}

fn authority_of(raw: &str) -> Option<&str> {
    let after = raw.split_once("://")?.1;
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    Some(&after[..end])
}

fn authority_has_at(raw: &str) -> bool {
    authority_of(raw).is_some_and(|a| a.contains('@'))
}

/// Splits `http://HOST[:PORT]REST` for a loopback HOST, on the raw string
/// (the scheme must be exactly lowercase `http`, the host one of the three
/// literal spellings). Returns `None` for anything else.
fn split_loopback(raw: &str) -> Option<LoopbackParts> {
    let after = raw.strip_prefix("http://")?;
    let end = after.find(['/', '?']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let close = v6.find(']')?;
        (&authority[..close + 2], &v6[close + 1..])
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, &authority[h.len()..][..p.len() + 1]),
            None => (authority, ""),
        }
    };
    if !matches!(host, "localhost" | "127.0.0.1" | "[::1]") {
        return None;
    }
    if !port.is_empty() {
        let digits = port.strip_prefix(':')?;
        if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if digits.parse::<u32>().ok()? > 65_535 {
            return None;
        }
    }
    Some(LoopbackParts {
        host: host.to_owned(),
        rest: rest.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(s: &str) -> RedirectUri {
        RedirectUri::parse(s, RedirectUriRules::default()).unwrap()
    }

    #[test]
    fn https_matches_only_exactly() {
        let r = reg("https://app.example.com/cb");
        assert!(r.matches("https://app.example.com/cb"));
        assert!(!r.matches("https://app.example.com:443/cb"));
        assert!(!r.matches("https://app.example.com/cb/"));
        assert!(!r.matches("https://APP.example.com/cb"));
        assert!(!r.matches("https://app.example.com/cb?x=1"));
    }

    #[test]
    fn https_port_is_never_relaxed() {
        let r = reg("https://client.example:8443/cb");
        assert!(!r.matches("https://client.example:9443/cb"));
    }

    #[test]
    fn loopback_port_is_ignored_rest_exact() {
        let r = reg("http://localhost/callback");
        assert!(r.matches("http://localhost:58135/callback"));
        assert!(r.matches("http://localhost/callback"));
        assert!(!r.matches("http://localhost:58135/callback2"));
        assert!(!r.matches("http://localhost:58135/callback?x"));
        assert!(!r.matches("http://127.0.0.1:58135/callback"));
        assert!(!r.matches("http://localhost:58135/callback#f"));
        assert!(!r.matches("http://evil@localhost:58135/callback"));
        assert!(!r.matches("http://localhost:99999/callback"));
        assert!(!r.matches("http://localhost:/callback"));

        let v4 = reg("http://127.0.0.1:33418/");
        assert!(v4.matches("http://127.0.0.1:1234/"));
        assert!(!v4.matches("http://localhost:1234/"));

        let v6 = reg("http://[::1]/cb");
        assert!(v6.matches("http://[::1]:4000/cb"));
        assert!(!v6.matches("http://[::2]:4000/cb"));
    }

    #[test]
    fn registration_rules() {
        let d = RedirectUriRules::default();
        assert_eq!(
            RedirectUri::parse("https://a.example/cb#", d),
            Err(RedirectUriError::Fragment)
        );
        assert_eq!(RedirectUri::parse("/cb", d), Err(RedirectUriError::NotAbsolute));
        assert_eq!(
            RedirectUri::parse("http://a.example/cb", d),
            Err(RedirectUriError::HttpNotLoopback)
        );
        assert_eq!(
            RedirectUri::parse("http://127.0.0.2/cb", d),
            Err(RedirectUriError::HttpNotLoopback)
        );
        assert_eq!(
            RedirectUri::parse("https://u@a.example/cb", d),
            Err(RedirectUriError::Userinfo)
        );
        assert_eq!(
            RedirectUri::parse("https://a.example/c b", d),
            Err(RedirectUriError::BadCharacter)
        );
        assert_eq!(
            RedirectUri::parse("javascript:alert(1)", d),
            Err(RedirectUriError::SchemeNotAllowed)
        );
        assert_eq!(
            RedirectUri::parse("com.example.app:/cb", d),
            Err(RedirectUriError::PrivateUseSchemeNotAllowed)
        );
        let allow = RedirectUriRules {
            allow_private_use_schemes: true,
        };
        assert!(RedirectUri::parse("com.example.app:/cb", allow).is_ok());
        assert_eq!(
            RedirectUri::parse("cursor://cb", allow),
            Err(RedirectUriError::PrivateUseSchemeNotReverseDomain)
        );
        assert!(reg("http://localhost/callback").is_loopback());
        assert!(!reg("https://a.example/cb").is_loopback());
    }
}
