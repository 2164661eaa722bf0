//! Prometheus metrics. Labels are bounded by construction: the matched route
//! template (or `unmatched`), the method mapped to a fixed set, and the
//! status — never a client_id, user, raw path or raw method, which an
//! attacker could vary to exhaust memory.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Instant;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder once and returns its handle. In a test
/// process that starts several servers they share it.
pub fn handle() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ])
                .ok()?
                // A count of jobs, not seconds (crates/store/src/sqlite/worker.rs).
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full("steward_store_batch_jobs".into()),
                    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0],
                )
                .ok()?;
            builder.install_recorder().ok()
        })
        .clone()
}

/// The `method` label: the standard methods by name, anything else (hyper
/// accepts any token as a method) as `other`, so the label set stays fixed.
pub fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::PATCH => "PATCH",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::CONNECT => "CONNECT",
        http::Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// The `route` label for a request no route matched.
pub const UNMATCHED: &str = "unmatched";

/// Counts requests and observes latency by route template, method and
/// status. Every label value comes from a fixed set: the route templates
/// the server defines (or `unmatched`), [`method_label`], and the status code.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| UNMATCHED.to_owned());
    let method = method_label(req.method());
    // Request latency: elapsed monotonic time only.
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let elapsed = start.elapsed().as_secs_f64();
    metrics::counter!(
        "steward_http_requests_total",
        "route" => route.clone(),
        "method" => method,
        "status" => status.clone()
    )
    .increment(1);
    metrics::histogram!(
        "steward_http_request_duration_seconds",
        "route" => route,
        "method" => method,
        "status" => status
    )
    .record(elapsed);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_map_to_a_fixed_set() {
        assert_eq!(method_label(&http::Method::GET), "GET");
        assert_eq!(method_label(&http::Method::POST), "POST");
        for odd in ["XYZZY", "get", "BREW", "PROPFIND"] {
            let m = http::Method::from_bytes(odd.as_bytes()).unwrap();
            assert_eq!(method_label(&m), "other", "{odd}");
        }
    }
}
