//! `WebError`: the single place where failures become HTTP responses.
//!
//! It decides the status, `WWW-Authenticate`, `Cache-Control: no-store`, and
//! that internal details never leak: an internal error is logged with its
//! cause and answered with a generic message.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
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
    /// A JSON error for the admin API.
    Api { status: StatusCode, message: String },
    /// The database cannot be reached: a temporary condition, answered at
    /// once with 503 `temporarily_unavailable` and `Retry-After` (RFC 9110
    /// §15.6.4, §10.2.3) so clients and load balancers retry, instead of a
    /// 500 `server_error` after a long stall.
    Unavailable { retry_after: u64 },
    /// A failure of ours; the cause is logged, not shown.
    Internal(String),
}

/// Seconds a client is asked to wait when the database is unreachable: long
/// enough not to hammer a recovering database, short enough that a brief
/// failover costs little.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 5;

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

    /// A failure of ours, answered 500 with the cause logged, except a
    /// store failure that means the database is out of reach: that is
    /// [`WebError::Unavailable`]. Every store error on the request path comes
    /// through here (`.map_err(WebError::internal)`), so every endpoint
    /// answers an outage the same way.
    pub fn internal<E: std::fmt::Display + 'static>(cause: E) -> Self {
        let any: &dyn std::any::Any = &cause;
        let store = any
            .downcast_ref::<steward_store::StoreError>()
            .or_else(|| any.downcast_ref::<&steward_store::StoreError>().copied());
        if let Some(e) = store.filter(|e| e.is_unavailable()) {
            return Self::unavailable(e);
        }
        Self::Internal(cause.to_string())
    }

    /// The database is out of reach (logged at warn: an outage, not a bug).
    pub fn unavailable(cause: &steward_store::StoreError) -> Self {
        tracing::warn!(error = %cause, "database unreachable; answering 503");
        Self::Unavailable {
            retry_after: UNAVAILABLE_RETRY_AFTER_SECS,
        }
    }

    pub fn api(status: StatusCode, message: impl Into<String>) -> Self {
        Self::Api {
            status,
            message: message.into(),
        }
    }
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
                res.extensions_mut()
                    .insert(crate::request_log::ErrorCodeSent(error.code.as_str()));
                res
            }
            WebError::Api { status, message } => {
                let mut res = (status, Json(json!({ "error": message }))).into_response();
                res.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                res
            }
            WebError::Unavailable { retry_after } => {
                let body = json!({
                    "error": ErrorCode::TemporarilyUnavailable.as_str(),
                    "error_description": "the service is temporarily unavailable; retry later",
                });
                let mut res = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
                let h = res.headers_mut();
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                h.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                res.extensions_mut().insert(crate::request_log::ErrorCodeSent(
                    ErrorCode::TemporarilyUnavailable.as_str(),
                ));
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
                res.extensions_mut()
                    .insert(crate::request_log::ErrorCodeSent(ErrorCode::ServerError.as_str()));
                res
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_do_not_leak() {
        let res = WebError::internal("password=hunter2 in SQL").into_response();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    }

    #[test]
    fn an_unreachable_database_is_503_temporarily_unavailable_with_retry_after() {
        let outage = steward_store::StoreError::Unavailable {
            reason: "no connection within the acquire timeout",
            source: "pool timed out".into(),
        };
        let res = WebError::internal(outage).into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], "5");
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
        // Any other store failure stays a 500.
        let res = WebError::internal(steward_store::StoreError::Corrupt { column: "kind" }).into_response();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn invalid_client_is_401() {
        let res = WebError::oauth(OAuthError::new(ErrorCode::InvalidClient, "x")).into_response();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
}
