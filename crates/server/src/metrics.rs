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
            let handle = builder.install_recorder().ok()?;
            describe();
            Some(handle)
        })
        .clone()
}

/// What a metric is: a counter, a gauge or a histogram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric Steward records, in any crate, with its `# HELP` text. A
/// test (`every_metric_in_the_sources_is_described`) reads the workspace's
/// sources and fails on a name missing here, so a new metric cannot ship
/// without its description.
pub const DESCRIPTIONS: &[(&str, Kind, &str)] = &[
    (
        "steward_http_requests_total",
        Kind::Counter,
        "HTTP requests answered, by route template, method and status.",
    ),
    (
        "steward_http_request_duration_seconds",
        Kind::Histogram,
        "Time to answer an HTTP request, by route template, method and status.",
    ),
    (
        "steward_connections_open",
        Kind::Gauge,
        "Open client connections on the main listener and the metrics listener.",
    ),
    (
        "steward_connections_refused_total",
        Kind::Counter,
        "Connections closed on accept because a connection cap was reached, by cap (total, per_address).",
    ),
    (
        "steward_dcr_requests_total",
        Kind::Counter,
        "Dynamic registration requests by outcome (registered, deduplicated, invalid, unauthorized, rate_limited, error).",
    ),
    (
        "steward_tokens_issued_total",
        Kind::Counter,
        "Successful token responses, by grant type and client kind.",
    ),
    (
        "steward_token_errors_total",
        Kind::Counter,
        "Token endpoint error responses, by OAuth error code.",
    ),
    (
        "steward_logins_total",
        Kind::Counter,
        "Password checks at sign-in, by outcome (succeeded, failed); refused attempts are in steward_auth_lockouts_total.",
    ),
    (
        "steward_auth_lockouts_total",
        Kind::Counter,
        "Sign-in and client-authentication attempts refused because a failure limit was reached, by limit.",
    ),
    (
        "steward_cimd_fetches_total",
        Kind::Counter,
        "Client ID Metadata Document fetches, by how the origin answered (ok, not_modified, or the failure reason).",
    ),
    (
        "steward_cimd_resolutions_total",
        Kind::Counter,
        "Metadata-document client resolutions, by outcome (ok, cache_hit, revalidated, stale, or the refusal reason).",
    ),
    (
        "steward_cimd_unused_client_cap_refusals_total",
        Kind::Counter,
        "Metadata-document clients not stored because cimd.max_unused_clients was reached.",
    ),
    (
        "steward_egress_fetch_total",
        Kind::Counter,
        "Outbound fetches (metadata documents, jwks_uri, logo_uri), by outcome.",
    ),
    (
        "steward_egress_global_limit_refusals_total",
        Kind::Counter,
        "Outbound fetches refused because the global concurrent-fetch limit was reached.",
    ),
    (
        "steward_policy_errors_total",
        Kind::Counter,
        "Policies that failed to evaluate (each such failure refuses the request).",
    ),
    (
        "steward_policy_refusals_total",
        Kind::Counter,
        "Scopes refused by governance, by action and reason.",
    ),
    (
        "steward_purge_rows_total",
        Kind::Counter,
        "Expired rows removed by the scheduled purge, by kind.",
    ),
    (
        "steward_purge_failures_total",
        Kind::Counter,
        "Scheduled purge passes that failed.",
    ),
    (
        "steward_store_queue_full_total",
        Kind::Counter,
        "SQLite writes that waited because the write queue was full.",
    ),
    (
        "steward_store_batch_jobs",
        Kind::Histogram,
        "Writes committed together in one SQLite transaction.",
    ),
];

fn describe() {
    for (name, kind, help) in DESCRIPTIONS {
        match kind {
            Kind::Counter => metrics::describe_counter!(*name, *help),
            Kind::Gauge => metrics::describe_gauge!(*name, *help),
            Kind::Histogram => metrics::describe_histogram!(*name, *help),
        }
    }
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

    /// Every `metrics::counter!/gauge!/histogram!("name"` in the workspace's
    /// sources, with its kind.
    fn used_in_sources() -> Vec<(String, Kind, String)> {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    if path.file_name().is_some_and(|n| n != "target") {
                        walk(&path, out);
                    }
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push(path);
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut files = Vec::new();
        for top in ["crates", "bench"] {
            walk(&root.join(top), &mut files);
        }
        let mut used = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for (macro_name, kind) in [
                ("metrics::counter!(", Kind::Counter),
                ("metrics::gauge!(", Kind::Gauge),
                ("metrics::histogram!(", Kind::Histogram),
            ] {
                for (at, _) in text.match_indices(macro_name) {
                    let rest = text[at + macro_name.len()..].trim_start();
                    // A name passed as a variable is this file's own business (the describer).
                    let Some(rest) = rest.strip_prefix('"') else {
                        continue;
                    };
                    let name = rest.split('"').next().unwrap().to_owned();
                    // (This scan's own string literals are not metric names.)
                    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                        continue;
                    }
                    used.push((name, kind, file.display().to_string()));
                }
            }
        }
        used
    }

    #[test]
    fn every_metric_in_the_sources_is_described() {
        let used = used_in_sources();
        assert!(used.len() > 15, "the scan found too few metrics: {used:?}");
        for (name, kind, file) in &used {
            let described = DESCRIPTIONS.iter().find(|(n, _, _)| n == name);
            let Some((_, described_kind, help)) = described else {
                panic!("{name} (in {file}) has no entry in metrics::DESCRIPTIONS");
            };
            assert_eq!(described_kind, kind, "{name}: described as the wrong kind");
            assert!(
                help.ends_with('.') && help.len() > 20,
                "{name}: write a real description"
            );
        }
        for (name, _, _) in DESCRIPTIONS {
            assert!(
                used.iter().any(|(n, _, _)| n == name),
                "{name} is described but never recorded"
            );
        }
    }

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
