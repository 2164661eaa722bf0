//! The tower layer: bearer token in, claims into the request's extensions,
//! or an RFC 6750 §3 challenge out.

use crate::Guard;
use crate::validate::TokenError;
use axum::body::Body;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Why a request was not let through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// No `Authorization: Bearer` credentials at all, or another scheme.
    /// RFC 6750 §3.1: the challenge then carries no error code.
    NoToken,
    /// A malformed `Authorization` header (RFC 6750 §3.1 `invalid_request`).
    InvalidRequest,
    /// A token was presented and is not valid here (`invalid_token`).
    InvalidToken(TokenError),
    /// A valid token without every required scope (`insufficient_scope`).
    InsufficientScope,
    /// The issuer's keys could not be fetched; not the client's fault.
    Unavailable,
}

impl Rejection {
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::NoToken | Rejection::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Rejection::InvalidRequest => StatusCode::BAD_REQUEST,
            Rejection::InsufficientScope => StatusCode::FORBIDDEN,
            Rejection::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_code(&self) -> Option<&'static str> {
        match self {
            Rejection::NoToken | Rejection::Unavailable => None,
            Rejection::InvalidRequest => Some("invalid_request"),
            Rejection::InvalidToken(_) => Some("invalid_token"),
            Rejection::InsufficientScope => Some("insufficient_scope"),
        }
    }
}

/// RFC 7230 §3.2.6 quoted-string: backslash-escape `"` and `\`.
fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The `WWW-Authenticate` value for a rejection, or `None` for a 503.
///
/// RFC 6750 §3 defines `error` and `scope`; RFC 9728 §5.1 adds
/// `resource_metadata`, which is how an MCP client that knows nothing yet
/// finds this server's authorization server (MCP authorization, "Protected
/// Resource Metadata Discovery").
pub(crate) fn challenge(rejection: &Rejection, required_scope: &str, metadata_url: &str) -> Option<String> {
    if matches!(rejection, Rejection::Unavailable) {
        return None;
    }
    let mut params = Vec::with_capacity(3);
    if let Some(code) = rejection.error_code() {
        params.push(format!("error={}", quoted(code)));
    }
    if matches!(rejection, Rejection::InsufficientScope) {
        params.push(format!("scope={}", quoted(required_scope)));
    }
    params.push(format!("resource_metadata={}", quoted(metadata_url)));
    Some(format!("Bearer {}", params.join(", ")))
}

/// RFC 6750 §2.1: `Authorization: Bearer <b64token>`, scheme case-insensitive.
/// Only the header method is supported (`bearer_methods_supported: ["header"]`);
/// OAuth 2.1 §5.2 forbids tokens in the query string.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Result<&str, Rejection> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(Rejection::NoToken);
    };
    if values.next().is_some() {
        return Err(Rejection::InvalidRequest);
    }
    let value = value.to_str().map_err(|_| Rejection::InvalidRequest)?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Rejection::NoToken);
    }
    let token = rest.trim_start_matches(' ').trim_end();
    let b64token = !token.is_empty()
        && token
            .trim_end_matches('=')
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'));
    if !b64token {
        return Err(Rejection::InvalidRequest);
    }
    Ok(token)
}

/// The layer; build it with [`Guard::layer`].
#[derive(Clone, Debug)]
pub struct RequireBearerLayer {
    pub(crate) guard: Guard,
}

impl<S> Layer<S> for RequireBearerLayer {
    type Service = RequireBearer<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireBearer {
            inner,
            guard: self.guard.clone(),
        }
    }
}

/// The service the layer wraps around the protected one.
#[derive(Clone, Debug)]
pub struct RequireBearer<S> {
    inner: S,
    guard: Guard,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireBearer<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // The clone that was polled ready is the one that gets the call
        // (tower's documented pattern for services used from a future).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let guard = self.guard.clone();
        Box::pin(async move {
            match guard.authorize(req.headers()).await {
                Ok(claims) => {
                    req.extensions_mut().insert(claims);
                    let res = inner.call(req).await?;
                    Ok(res.map(Body::new))
                }
                Err(rejection) => Ok(guard.rejection_response(&rejection)),
            }
        })
    }
}

impl Guard {
    /// The response for a rejection: status, `WWW-Authenticate`, and a small
    /// JSON body (RFC 6750 §3 error codes; the description names only the
    /// category, never token contents).
    pub fn rejection_response(&self, rejection: &Rejection) -> Response<Body> {
        let (error, description) = match rejection {
            // RFC 6750 §3.1: no error code when no credentials were sent.
            Rejection::NoToken => ("", "an access token is required".to_owned()),
            Rejection::InvalidRequest => ("invalid_request", "malformed Authorization header".to_owned()),
            Rejection::InvalidToken(e) => ("invalid_token", e.to_string()),
            Rejection::InsufficientScope => (
                "insufficient_scope",
                format!("requires scope {}", self.inner.required_scope),
            ),
            Rejection::Unavailable => (
                "temporarily_unavailable",
                "the authorization server's keys are unavailable".to_owned(),
            ),
        };
        let body = if error.is_empty() {
            serde_json::json!({ "error_description": description })
        } else {
            serde_json::json!({ "error": error, "error_description": description })
        }
        .to_string();
        let mut res = Response::new(Body::from(body));
        *res.status_mut() = rejection.status();
        let headers = res.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(value) = challenge(rejection, &self.inner.required_scope, &self.inner.metadata_url)
            && let Ok(value) = HeaderValue::from_str(&value)
        {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        if matches!(rejection, Rejection::Unavailable) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        res
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(
            bearer_token(&headers(&["Bearer abc.def-_~+/=="])),
            Ok("abc.def-_~+/==")
        );
        assert_eq!(bearer_token(&headers(&["bearer  abc"])), Ok("abc"));
        assert_eq!(bearer_token(&headers(&[])), Err(Rejection::NoToken));
        assert_eq!(
            bearer_token(&headers(&["Basic Zm9vOmJhcg=="])),
            Err(Rejection::NoToken)
        );
        assert_eq!(
            bearer_token(&headers(&["Bearer"])),
            Err(Rejection::InvalidRequest)
        );
        assert_eq!(
            bearer_token(&headers(&["Bearer a b"])),
            Err(Rejection::InvalidRequest)
        );
        assert_eq!(
            bearer_token(&headers(&["Bearer a=b"])),
            Err(Rejection::InvalidRequest)
        );
        assert_eq!(
            bearer_token(&headers(&["Bearer a", "Bearer b"])),
            Err(Rejection::InvalidRequest)
        );
    }

    #[test]
    fn challenges() {
        let url = "http://h/.well-known/oauth-protected-resource/mcp";
        assert_eq!(
            challenge(&Rejection::NoToken, "mcp:tools", url).unwrap(),
            format!("Bearer resource_metadata=\"{url}\"")
        );
        assert_eq!(
            challenge(&Rejection::InvalidToken(TokenError::Expired), "mcp:tools", url).unwrap(),
            format!("Bearer error=\"invalid_token\", resource_metadata=\"{url}\"")
        );
        assert_eq!(
            challenge(&Rejection::InsufficientScope, "a b", url).unwrap(),
            format!("Bearer error=\"insufficient_scope\", scope=\"a b\", resource_metadata=\"{url}\"")
        );
        assert_eq!(challenge(&Rejection::Unavailable, "a", url), None);
        assert_eq!(quoted(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
