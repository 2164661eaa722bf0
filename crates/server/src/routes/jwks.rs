//! The public JWKS (RFC 7517), advertised as `jwks_uri`: every key that may
//! still verify a live token, public members only.

use axum::extract::State;
use axum::response::Response;

use crate::routes::discovery::json_bytes;
use crate::state::AppState;

pub async fn jwks(State(state): State<AppState>) -> Response {
    json_bytes(state.keys.jwks_bytes())
}
