//! Request parameters as OAuth reads them: each at most once (OAuth 2.1
//! §3.1 / §3.2: "Request and response parameters MUST NOT be included more
//! than once"), except `resource`, which RFC 8707 lets repeat.

use std::collections::HashMap;

#[derive(Debug, Default)]
pub struct Params {
    single: HashMap<String, String>,
    repeated: Vec<String>,
    resources: Vec<String>,
}

impl Params {
    /// Parses `application/x-www-form-urlencoded` (a query string or a form body).
    pub fn parse(encoded: &str) -> Params {
        let mut p = Params::default();
        for (k, v) in url::form_urlencoded::parse(encoded.as_bytes()) {
            if k == "resource" {
                p.resources.push(v.into_owned());
                continue;
            }
            // An empty value counts as absent (RFC 6749 §3.1).
            if v.is_empty() {
                continue;
            }
            if p.single.contains_key(k.as_ref()) {
                if !p.repeated.iter().any(|r| r == k.as_ref()) {
                    p.repeated.push(k.into_owned());
                }
            } else {
                p.single.insert(k.into_owned(), v.into_owned());
            }
        }
        p
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.single.get(name).map(String::as_str)
    }

    pub fn is_repeated(&self, name: &str) -> bool {
        self.repeated.iter().any(|r| r == name)
    }

    /// The first repeated parameter, if any.
    pub fn first_repeated(&self) -> Option<&str> {
        self.repeated.first().map(String::as_str)
    }

    pub fn resources(&self) -> &[String] {
        &self.resources
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_noticed() {
        let p = Params::parse("a=1&b=2&a=3&resource=x&resource=y&c=");
        assert_eq!(p.get("b"), Some("2"));
        assert!(p.is_repeated("a"));
        assert!(!p.is_repeated("b"));
        assert_eq!(p.resources(), ["x", "y"]);
        assert_eq!(p.get("c"), None);
    }
}
