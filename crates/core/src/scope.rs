//! Scopes (OAuth 2.1 §1.4.1): space-delimited, case-sensitive tokens of
//! `%x21 / %x23-5B / %x5D-7E`.

use std::collections::BTreeSet;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("scope contains a character outside %x21 / %x23-5B / %x5D-7E, or an empty token")]
pub struct InvalidScope;

/// A set of scope tokens, kept sorted so that stored and compared forms are stable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet(BTreeSet<String>);

fn valid_token(t: &str) -> bool {
    !t.is_empty()
        && t.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

impl ScopeSet {
    /// Parses a `scope` parameter. Tokens are separated by single spaces;
    /// leading, trailing or doubled spaces make an empty token and are refused.
    pub fn parse(s: &str) -> Result<Self, InvalidScope> {
        let mut set = BTreeSet::new();
        for t in s.split(' ') {
            if !valid_token(t) {
                return Err(InvalidScope);
            }
            set.insert(t.to_owned());
        }
        Ok(Self(set))
    }

    pub fn from_tokens<I: IntoIterator<Item = S>, S: Into<String>>(it: I) -> Result<Self, InvalidScope> {
        let mut set = BTreeSet::new();
        for t in it {
            let t = t.into();
            if !valid_token(&t) {
                return Err(InvalidScope);
            }
            set.insert(t);
        }
        Ok(Self(set))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, t: &str) -> bool {
        self.0.contains(t)
    }

    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn intersection(&self, other: &ScopeSet) -> ScopeSet {
        ScopeSet(self.0.intersection(&other.0).cloned().collect())
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for t in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(t)?;
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_sorts() {
        let s = ScopeSet::parse("mcp:tools mcp:admin").unwrap();
        assert_eq!(s.to_string(), "mcp:admin mcp:tools");
    }

    #[test]
    fn refuses_bad_characters_and_empty_tokens() {
        assert!(ScopeSet::parse("a\"b").is_err());
        assert!(ScopeSet::parse("a\\b").is_err());
        assert!(ScopeSet::parse("a  b").is_err());
        assert!(ScopeSet::parse("").is_err());
        assert!(ScopeSet::parse("é").is_err());
    }

    #[test]
    fn subset_and_intersection() {
        let a = ScopeSet::parse("x y").unwrap();
        let b = ScopeSet::parse("x").unwrap();
        assert!(b.is_subset(&a));
        assert!(!a.is_subset(&b));
        assert_eq!(a.intersection(&b), b);
    }
}
