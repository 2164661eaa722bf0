//! Facts about a client the policy reads but governance does not store:
//! its host, whether `client_uri` is same-origin with the `client_id`,
//! whether every redirect URI is loopback, and the digest of the metadata
//! version in question. Derived from the document itself (RFC 7591 member
//! names), so the server, the CLI and `policy impact` derive them alike.

use crate::model::ClientView;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use url::Url;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientFacts {
    /// The `client_id` URL's host (metadata documents), else the host of
    /// `client_uri` if any.
    pub host: Option<String>,
    /// `client_uri` has the same origin as the `client_id` URL: the
    /// document's claimed home page is the domain that serves it.
    pub same_origin: bool,
    /// Every redirect URI is http(s) loopback: any program on the device
    /// can receive the code (MCP Security "Localhost Redirect URI Risks").
    pub loopback_only: bool,
    /// The digest an approval must be bound to.
    pub digest: Option<String>,
}

/// Lowercase hex SHA-256, the digest of a registration without a metadata
/// document version.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn is_loopback_uri(u: &str) -> bool {
    let Ok(url) = Url::parse(u) else {
        return false;
    };
    if !matches!(url.scheme(), "http" | "https") {
        return false;
    }
    match url.host() {
        Some(url::Host::Ipv4(a)) => IpAddr::V4(a).is_loopback(),
        Some(url::Host::Ipv6(a)) => IpAddr::V6(a).is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

impl ClientFacts {
    /// Derives the facts from the client's id and its document (the
    /// metadata document body, or the registration JSON), with `digest`.
    pub fn from_document(client_id: &str, document: &str, digest: Option<String>) -> Self {
        let doc: Value = serde_json::from_str(document).unwrap_or(Value::Null);
        let id_url = Url::parse(client_id).ok().filter(|u| u.scheme() == "https");
        let client_uri = doc
            .get("client_uri")
            .and_then(Value::as_str)
            .and_then(|s| Url::parse(s).ok());
        let host = id_url
            .as_ref()
            .or(client_uri.as_ref())
            .and_then(|u| u.host_str())
            .map(|h| {
                h.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_ascii_lowercase()
            });
        let same_origin = matches!((&id_url, &client_uri), (Some(a), Some(b)) if a.origin() == b.origin());
        let redirects: Vec<&str> = doc
            .get("redirect_uris")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        Self {
            host,
            same_origin,
            loopback_only: !redirects.is_empty() && redirects.iter().all(|u| is_loopback_uri(u)),
            digest,
        }
    }

    /// The facts of the client's latest version, from its stored view.
    pub fn derive(view: &ClientView) -> Self {
        let document = view.metadata_document.as_deref().unwrap_or(&view.registration);
        let digest = view
            .metadata_digest
            .clone()
            .unwrap_or_else(|| sha256_hex(&view.registration));
        Self::from_document(&view.client_id, document, Some(digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_document_host_and_same_origin() {
        let f = ClientFacts::from_document(
            "https://Agent.Example.com/client.json",
            r#"{"client_uri":"https://agent.example.com/about","redirect_uris":["https://agent.example.com/cb"]}"#,
            Some("d".into()),
        );
        assert_eq!(f.host.as_deref(), Some("agent.example.com"));
        assert!(f.same_origin);
        assert!(!f.loopback_only);
    }

    #[test]
    fn client_uri_on_another_origin_is_not_same_origin() {
        let f = ClientFacts::from_document(
            "https://agent.example.com/client.json",
            r#"{"client_uri":"https://bank.example.net/"}"#,
            None,
        );
        assert!(!f.same_origin);
        assert_eq!(f.host.as_deref(), Some("agent.example.com"));
    }

    #[test]
    fn loopback_only_means_every_redirect_is_loopback() {
        let lo = r#"{"redirect_uris":["http://127.0.0.1:3000/cb","http://[::1]/cb","http://localhost/cb"]}"#;
        assert!(ClientFacts::from_document("cli", lo, None).loopback_only);
        let mixed = r#"{"redirect_uris":["http://127.0.0.1/cb","https://app.example.com/cb"]}"#;
        assert!(!ClientFacts::from_document("cli", mixed, None).loopback_only);
        assert!(!ClientFacts::from_document("cli", "{}", None).loopback_only);
    }

    #[test]
    fn registration_digest_is_its_sha256() {
        assert_eq!(
            sha256_hex("{}"),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }
}
