//! Operations endpoints: liveness, readiness, Prometheus metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::state::AppState;

/// Liveness: the process is up and serving.
pub async fn healthz() -> &'static str {
    "ok"
}

/// How long `/readyz` waits for the database. A load balancer's probe has a
/// timeout of its own, usually about a second; a probe that outlives it is
/// counted as a failure anyway, and one that hangs for the pool's acquire
/// timeout ties up the prober. Past this the answer is 503.
const READINESS_DATABASE_WAIT: std::time::Duration = std::time::Duration::from_millis(800);

/// Readiness: the database answers (within [`READINESS_DATABASE_WAIT`]) and
/// signing keys are loaded.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let database = matches!(
        tokio::time::timeout(READINESS_DATABASE_WAIT, state.store.ping()).await,
        Ok(Ok(()))
    );
    let keys = state.keys.is_loaded();
    let status = if database && keys {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut res = (status, Json(json!({ "database": database, "keys": keys }))).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Prometheus text exposition format.
pub async fn metrics() -> Response {
    let body = crate::metrics::handle().map(|h| h.render()).unwrap_or_default();
    let mut res = body.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}
