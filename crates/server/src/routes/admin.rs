//! The admin HTTP API. Every route requires `Authorization: Bearer <admin.token>`;
//! with no token configured the API is disabled.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::WebError;
use crate::state::AppState;

/// Proof that the request carried the admin token.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(expected) = state.admin_token_digest.as_ref() else {
            return Err(WebError::api(
                StatusCode::FORBIDDEN,
                "the admin API is disabled: set admin.token",
            ));
        };
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| WebError::api(StatusCode::UNAUTHORIZED, "admin token required"))?;
        let digest = Sha256::digest(presented.as_bytes());
        if bool::from(digest.as_slice().ct_eq(expected.as_slice())) {
            Ok(Admin)
        } else {
            Err(WebError::api(StatusCode::UNAUTHORIZED, "admin token required"))
        }
    }
}

#[derive(Deserialize)]
pub struct CheckRequest {
    pub url: String,
}

/// `POST /admin/cimd/check {"url": "..."}`: fetch and validate a metadata
/// document exactly as the authorization endpoint would, and explain every
/// problem (one entry per broken rule).
pub async fn cimd_check(
    _admin: Admin,
    State(state): State<AppState>,
    Json(req): Json<CheckRequest>,
) -> Result<Json<Value>, WebError> {
    let report = state.cimd_check(&req.url).await;
    Ok(Json(crate::cimd::report_json(&report)))
}

/// Digest of the configured admin token, computed once at start-up.
pub fn token_digest(token: Option<&str>) -> Option<[u8; 32]> {
    token.map(|t| Sha256::digest(t.as_bytes()).into())
}
