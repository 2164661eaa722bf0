//! OAuth 2.0 Protected Resource Metadata (RFC 9728): the document that tells
//! an MCP client which authorization server protects this resource.

use crate::Guard;
use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};
use url::Url;

pub(crate) const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// RFC 9728 §3.1: the metadata URL inserts the well-known suffix between the
/// host and the resource's path, after removing a terminating slash
/// (`http://h/mcp` -> `http://h/.well-known/oauth-protected-resource/mcp`).
pub(crate) fn metadata_url(resource: &Url) -> String {
    let origin = &resource[..url::Position::BeforePath];
    format!("{origin}{WELL_KNOWN}{}", resource_path(resource))
}

/// The resource's path without a terminating slash; empty for the root.
pub(crate) fn resource_path(resource: &Url) -> &str {
    resource.path().trim_end_matches('/')
}

/// RFC 9728 §2: `resource` (required, the identifier the client derived the
/// metadata URL from, §3.3), `authorization_servers` (the issuer, RFC 8414),
/// `scopes_supported`, and `bearer_methods_supported` (RFC 6750 §2.1, the
/// header only).
pub(crate) fn document(resource: &str, issuer: &str, scopes: &[String], name: Option<&str>) -> Value {
    let mut doc = json!({
        "resource": resource,
        "authorization_servers": [issuer],
        "scopes_supported": scopes,
        "bearer_methods_supported": ["header"],
    });
    if let (Some(name), Some(obj)) = (name, doc.as_object_mut()) {
        obj.insert("resource_name".into(), Value::from(name));
    }
    doc
}

fn respond(body: &str) -> Response {
    let mut res = (StatusCode::OK, body.to_owned()).into_response();
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // Public metadata: browser-based MCP clients fetch it cross-origin.
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    res
}

impl Guard {
    /// The protected resource metadata document (RFC 9728 §2).
    pub fn metadata_document(&self) -> &Value {
        &self.inner.metadata
    }

    /// Where the document is served, the `resource_metadata` of every challenge.
    pub fn metadata_url(&self) -> &str {
        &self.inner.metadata_url
    }

    /// Routes serving the document at `/.well-known/oauth-protected-resource`
    /// and at the path-inserted form for this resource (RFC 9728 §3.1), e.g.
    /// `/.well-known/oauth-protected-resource/mcp` for `http://host/mcp`.
    /// MCP clients try the path-inserted form first and the root form after
    /// it, so both answer. Merge it into the server's router:
    /// `app.merge(guard.metadata_router())`.
    pub fn metadata_router<S>(&self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let body = self.inner.metadata.to_string();
        let root = body.clone();
        let path = self.inner.resource_path.clone();
        let mut router = Router::new().route(WELL_KNOWN, get(move || async move { respond(&root) }));
        if !path.is_empty() {
            // A catch-all compared by hand, so no operator-chosen path is ever
            // parsed as an axum route pattern.
            router = router.route(
                &format!("{WELL_KNOWN}/{{*rest}}"),
                get(move |uri: http::Uri| async move {
                    if uri.path().strip_prefix(WELL_KNOWN) == Some(path.as_str()) {
                        respond(&body)
                    } else {
                        StatusCode::NOT_FOUND.into_response()
                    }
                }),
            );
        }
        router
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn metadata_urls() {
        let u = |s: &str| metadata_url(&Url::parse(s).unwrap());
        assert_eq!(
            u("http://127.0.0.1:3000/mcp"),
            "http://127.0.0.1:3000/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            u("https://mcp.example/a/b/"),
            "https://mcp.example/.well-known/oauth-protected-resource/a/b"
        );
        assert_eq!(
            u("https://mcp.example"),
            "https://mcp.example/.well-known/oauth-protected-resource"
        );
    }
}
