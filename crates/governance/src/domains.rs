//! Domain lists (`governance.domains.allow`, `.deny`, `.quarantine`; issue
//! 13 §6): which client hosts Steward will deal with at all.
//!
//! A pure matcher, cheap enough to run before any DNS lookup or fetch, so a
//! denied `client_id` host costs Steward nothing (no request to an
//! attacker-chosen name). Deny is checked first: a host on the deny list
//! stays denied whatever else lists it. The result is also a Cedar attribute
//! (`principal.domain_status`), so the policy can see it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One entry of a list: an exact host, or `*.example.com` for every name
/// strictly below `example.com` (the apex itself is listed separately, so a
/// list never says more than it reads).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HostPattern {
    Exact(String),
    /// The suffix without the `*.`, lowercase.
    Subdomains(String),
}

/// A list entry that is not a host or a `*.` suffix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("domain list entry {entry:?} is not a host name or a `*.example.com` suffix: {why}")]
pub struct PatternError {
    pub entry: String,
    pub why: &'static str,
}

/// Lowercase, without one trailing dot: hosts compare as DNS compares them.
fn normalize(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

fn valid_host(h: &str) -> Result<(), &'static str> {
    if h.is_empty() {
        return Err("empty");
    }
    if h.len() > 253 {
        return Err("longer than 253 characters");
    }
    for label in h.split('.') {
        if label.is_empty() {
            return Err("an empty label");
        }
        if label.len() > 63 {
            return Err("a label longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(
                "a character other than letters, digits, '-' or '_' (IDNs are listed in their xn-- form)",
            );
        }
    }
    Ok(())
}

impl HostPattern {
    pub fn parse(entry: &str) -> Result<Self, PatternError> {
        let err = |why| PatternError {
            entry: entry.to_owned(),
            why,
        };
        let e = normalize(entry.trim());
        if let Some(suffix) = e.strip_prefix("*.") {
            valid_host(suffix).map_err(err)?;
            if !suffix.contains('.') {
                return Err(err(
                    "a suffix must have at least two labels (`*.com` lists a whole TLD)",
                ));
            }
            return Ok(Self::Subdomains(suffix.to_owned()));
        }
        if e.contains('*') {
            return Err(err("'*' is only allowed as a leading `*.`"));
        }
        valid_host(&e).map_err(err)?;
        Ok(Self::Exact(e))
    }

    /// `host` must already be normalized.
    fn matches_normalized(&self, host: &str) -> bool {
        match self {
            Self::Exact(h) => host == h,
            Self::Subdomains(s) => host
                .strip_suffix(s.as_str())
                .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
        }
    }

    pub fn matches(&self, host: &str) -> bool {
        self.matches_normalized(&normalize(host))
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(h) => f.write_str(h),
            Self::Subdomains(s) => write!(f, "*.{s}"),
        }
    }
}

/// Where a host stands with the lists. The string forms are the Cedar
/// attribute values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DomainStatus {
    /// On the deny list: refused, before any lookup.
    Denied,
    /// On the quarantine list: the client can only be `pending` until an
    /// approver decides.
    Quarantined,
    /// On a non-empty allow list.
    Allowed,
    /// The allow list is not empty and does not name this host: refused.
    NotAllowed,
    /// No list names it and there is no allow list.
    Unlisted,
}

impl DomainStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Denied => "denied",
            Self::Quarantined => "quarantined",
            Self::Allowed => "allowed",
            Self::NotAllowed => "not_allowed",
            Self::Unlisted => "unlisted",
        }
    }

    /// Denied or not on a non-empty allow list: nothing may be granted.
    pub const fn is_refused(self) -> bool {
        matches!(self, Self::Denied | Self::NotAllowed)
    }
}

impl fmt::Display for DomainStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The three lists, parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DomainLists {
    pub allow: Vec<HostPattern>,
    pub deny: Vec<HostPattern>,
    pub quarantine: Vec<HostPattern>,
}

impl DomainLists {
    /// Parses the configured entries; the first bad entry is the error.
    pub fn parse<S: AsRef<str>>(allow: &[S], deny: &[S], quarantine: &[S]) -> Result<Self, PatternError> {
        let p = |l: &[S]| {
            l.iter()
                .map(|e| HostPattern::parse(e.as_ref()))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            allow: p(allow)?,
            deny: p(deny)?,
            quarantine: p(quarantine)?,
        })
    }

    /// The status of `host`: deny first, then quarantine, then the allow list.
    pub fn status(&self, host: &str) -> DomainStatus {
        let h = normalize(host);
        let on = |l: &[HostPattern]| l.iter().any(|p| p.matches_normalized(&h));
        if on(&self.deny) {
            DomainStatus::Denied
        } else if on(&self.quarantine) {
            DomainStatus::Quarantined
        } else if self.allow.is_empty() {
            DomainStatus::Unlisted
        } else if on(&self.allow) {
            DomainStatus::Allowed
        } else {
            DomainStatus::NotAllowed
        }
    }

    /// The status of a client that may have no host at all (a pre-registered
    /// client without `client_uri`, a dynamic client): with a non-empty allow
    /// list such a client is not on it, unless the configuration declares it
    /// (the `[[clients]]` entry is the operator's own approval).
    pub fn status_of_client(&self, host: Option<&str>, declared: bool) -> DomainStatus {
        match host {
            Some(h) if !h.is_empty() => {
                let s = self.status(h);
                if declared && s == DomainStatus::NotAllowed {
                    DomainStatus::Allowed
                } else {
                    s
                }
            }
            _ if declared || self.allow.is_empty() => DomainStatus::Unlisted,
            _ => DomainStatus::NotAllowed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists(allow: &[&str], deny: &[&str], quarantine: &[&str]) -> DomainLists {
        DomainLists::parse(allow, deny, quarantine).unwrap()
    }

    #[test]
    fn deny_is_checked_first() {
        let l = lists(&["*.example.com"], &["evil.example.com"], &["evil.example.com"]);
        assert_eq!(l.status("evil.example.com"), DomainStatus::Denied);
        assert_eq!(l.status("good.example.com"), DomainStatus::Allowed);
    }

    #[test]
    fn suffix_matches_subdomains_only_not_lookalikes() {
        let p = HostPattern::parse("*.example.com").unwrap();
        assert!(p.matches("a.example.com"));
        assert!(p.matches("a.b.EXAMPLE.com."));
        assert!(!p.matches("example.com"));
        assert!(!p.matches("badexample.com"));
        assert!(!p.matches("example.com.evil.test"));
    }

    #[test]
    fn exact_matches_only_that_host() {
        let p = HostPattern::parse("Agent.Example.com").unwrap();
        assert!(p.matches("agent.example.com"));
        assert!(p.matches("agent.example.com."));
        assert!(!p.matches("x.agent.example.com"));
    }

    #[test]
    fn non_empty_allow_list_refuses_other_hosts() {
        let l = lists(&["agents.example.com"], &[], &[]);
        assert_eq!(l.status("agents.example.com"), DomainStatus::Allowed);
        assert_eq!(l.status("other.test"), DomainStatus::NotAllowed);
        assert!(DomainStatus::NotAllowed.is_refused());
        assert_eq!(lists(&[], &[], &[]).status("other.test"), DomainStatus::Unlisted);
    }

    #[test]
    fn quarantined_host_is_quarantined_even_when_allowed() {
        let l = lists(&["*.example.com"], &[], &["new.example.com"]);
        assert_eq!(l.status("new.example.com"), DomainStatus::Quarantined);
    }

    #[test]
    fn hostless_client_is_not_on_a_non_empty_allow_list_unless_declared() {
        let l = lists(&["agents.example.com"], &[], &[]);
        assert_eq!(l.status_of_client(None, false), DomainStatus::NotAllowed);
        assert_eq!(l.status_of_client(None, true), DomainStatus::Unlisted);
        assert_eq!(l.status_of_client(Some("x.test"), true), DomainStatus::Allowed);
        let l = lists(&["agents.example.com"], &["x.test"], &[]);
        assert_eq!(l.status_of_client(Some("x.test"), true), DomainStatus::Denied);
    }

    #[test]
    fn malformed_entries_are_refused_with_the_entry_named() {
        for bad in [
            "",
            "*",
            "*.",
            "*.com",
            "a*.example.com",
            "exa mple.com",
            "https://x.test",
            "a..b",
        ] {
            let e = HostPattern::parse(bad).unwrap_err();
            assert_eq!(e.entry, bad);
        }
    }
}
