//! `WebError`: the single place where failures become HTTP responses.
//!
//! It decides the status, `WWW-Authenticate`, `Cache-Control: no-store`, and
//! that internal details never leak: an internal error is logged with its
//! cause and answered with a generic message.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;
use steward_core::{ErrorCode, OAuthError};

#[derive(Debug)]
pub enum WebError {
    /// An OAuth error answered as JSON (RFC 6749 §5.2 shape).
    OAuth {
        error: OAuthError,
        status: StatusCode,
        www_authenticate: Option<String>,
    },
    /// An error shown to a person, never redirected (e.g. an unknown client at
    /// /authorize: OAuth 2.1 §4.1.2.1 forbids redirecting to an unvalidated URI).
    Page {
        status: StatusCode,
        title: String,
        message: String,
        retry_after: Option<u64>,
    },
    /// A JSON error for the admin API.
    Api { status: StatusCode, message: String },
    /// A failure of ours; the cause is logged, not shown.
    Internal(String),
}

impl WebError {
    pub fn oauth(error: OAuthError) -> Self {
        let status = match error.code {
            ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::OAuth {
            error,
            status,
            www_authenticate: None,
        }
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }

    pub fn api(status: StatusCode, message: impl Into<String>) -> Self {
        Self::Api {
            status,
            message: message.into(),
        }
    }
}

/// Minimal HTML escaping for text placed in element content or quoted attributes.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            WebError::OAuth {
                error,
                status,
                www_authenticate,
            } => {
                let body =
                    json!({ "error": error.code.as_str(), "error_description": error.wire_description() });
                let mut res = (status, Json(body)).into_response();
                let h = res.headers_mut();
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                if let Some(v) = www_authenticate.and_then(|v| HeaderValue::from_str(&v).ok()) {
                    h.insert(header::WWW_AUTHENTICATE, v);
                }
                res
            }
            WebError::Page {
                status,
                title,
                message,
                retry_after,
            } => {
                let html = format!(
                    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title></head>\
                     <body><main><h1>{t}</h1><p>{m}</p></main></body></html>",
                    t = escape_html(&title),
                    m = escape_html(&message)
                );
                let mut res = (status, Html(html)).into_response();
                let h = res.headers_mut();
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                if let Some(secs) = retry_after {
                    h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
                }
                res
            }
            WebError::Api { status, message } => {
                let mut res = (status, Json(json!({ "error": message }))).into_response();
                res.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                res
            }
            WebError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                let mut res = (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(json!({ "error": "server_error", "error_description": "internal error" })),
                )
                    .into_response();
                res.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                res
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape_html("<a href=\"x\">'&"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;"
        );
    }

    #[test]
    fn internal_errors_do_not_leak() {
        let res = WebError::internal("password=hunter2 in SQL").into_response();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    }

    #[test]
    fn invalid_client_is_401() {
        let res = WebError::oauth(OAuthError::new(ErrorCode::InvalidClient, "x")).into_response();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
}
