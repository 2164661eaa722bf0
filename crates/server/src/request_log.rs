//! The request layer: for every request, the client address
//! ([`crate::client_address`]), the request id ([`crate::request_id`]), and
//! one structured `info` line when it is answered:
//!
//! `method route status duration_ms client_address client_id request_id`
//!
//! The route is the matched template (`/authorize`, `/logo/{hash}`), never
//! the raw path or query: a query carries authorization codes, `state`, PKCE
//! verifiers in the wrong place, and an attacker-chosen path would make the
//! log whatever they want it to be. No header, body or form value is logged,
//! so no token, code, secret or password can be. The client_id is the one
//! the request was resolved to (a configured id or a metadata-document URL),
//! noted by the code that resolved it.
//!
//! Security events (failed sign-in, lockout, failed client authentication,
//! code replay, refresh-token reuse, refused metadata document) get their
//! own `warn` line through [`security_event`], carrying the same request id
//! and client address, so an operator can alert on `warn` alone.

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use crate::client_address::{ClientAddress, TrustedProxies};
use crate::request_id::RequestId;

/// What the layer needs, built once from the settings by [`crate::router`].
#[derive(Clone)]
pub struct RequestLayer {
    pub proxies: Arc<TrustedProxies>,
    /// The token endpoint's route template, for the token metrics.
    pub token_route: Arc<str>,
}

/// What code handling the request may add to its log line.
#[derive(Default)]
struct Noted {
    client_id: Option<String>,
    client_kind: Option<&'static str>,
    grant_type: Option<&'static str>,
}

/// The request being handled, visible to everything it calls.
struct Context {
    id: RequestId,
    client_address: Option<IpAddr>,
    noted: Mutex<Noted>,
}

tokio::task_local! {
    static CONTEXT: Arc<Context>;
}

/// The request id of the request being handled, if any.
pub fn current_request_id() -> Option<RequestId> {
    CONTEXT.try_with(|c| c.id.clone()).ok()
}

/// The client address of the request being handled (after trusted
/// proxies, as for limits and the log), for the policy's `context.address`.
pub fn current_client_address() -> Option<IpAddr> {
    CONTEXT.try_with(|c| c.client_address).ok().flatten()
}

/// The longest client_id written to a log line; metadata-document URLs are
/// capped in length elsewhere, this keeps the line bounded regardless.
const MAX_LOGGED_CLIENT_ID: usize = 256;

/// Records which client the request is for, once it is known to exist
/// (resolved, not merely presented), with its kind and — at the token
/// endpoint — the grant type asked for (from a fixed set, for the metric).
pub fn note_client(client_id: &str, kind: steward_core::client::ClientKind, grant_type: Option<&str>) {
    let _ = CONTEXT.try_with(|c| {
        let mut noted = c.noted.lock().unwrap_or_else(PoisonError::into_inner);
        noted.client_id = Some(cut(client_id, MAX_LOGGED_CLIENT_ID).to_owned());
        noted.client_kind = Some(kind.as_str());
        noted.grant_type = grant_type.map(grant_type_label);
    });
}

/// `grant_type` as a label: the grants Steward knows, anything else `other`.
fn grant_type_label(g: &str) -> &'static str {
    match g {
        "authorization_code" => "authorization_code",
        "refresh_token" => "refresh_token",
        "client_credentials" => "client_credentials",
        _ => "other",
    }
}

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Audit actions that are security events: each also gets a `warn` line.
const SECURITY_ACTIONS: &[&str] = &["user.login_failed", "token.code_replayed", "token.refresh_reused"];

/// Called by the audit writers: an audit event of a security kind
/// ([`SECURITY_ACTIONS`]) is also logged at `warn`.
pub fn audited(action: &str, client_id: Option<&str>) {
    if let Some(event) = SECURITY_ACTIONS.iter().find(|a| **a == action) {
        security_event(event, client_id, "");
    }
}

/// One `warn` line for a security event, with the request's id and client
/// address. `reason` is a fixed phrase or reason code, never a credential.
pub fn security_event(event: &'static str, client_id: Option<&str>, reason: &str) {
    let (request_id, client_address) = CONTEXT
        .try_with(|c| (Some(c.id.to_string()), c.client_address.map(|a| a.to_string())))
        .unwrap_or((None, None));
    let client_id = client_id.map(|c| cut(c, MAX_LOGGED_CLIENT_ID));
    let reason = (!reason.is_empty()).then_some(reason);
    tracing::warn!(
        event,
        client_id,
        reason,
        client_address = client_address.as_deref(),
        request_id = request_id.as_deref(),
        "security event"
    );
}

/// The OAuth error code of an error response, set by
/// [`crate::error::WebError`] so the layer can count it without reading the body.
#[derive(Clone, Copy, Debug)]
pub struct ErrorCodeSent(pub &'static str);

/// The middleware. Outermost of the per-route layers, so a request that
/// times out or is too large is logged like any other.
pub async fn layer(State(layer): State<RequestLayer>, mut req: Request, next: Next) -> Response {
    // Request duration: elapsed monotonic time only.
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    let client_address = ClientAddress::insert(&mut req, &layer.proxies).map(|a| a.0);
    let from_proxy = crate::serve::peer(req.extensions()).is_some_and(|p| layer.proxies.contains(p.ip()));
    let id = from_proxy
        .then(|| req.headers().get(crate::request_id::HEADER))
        .flatten()
        .and_then(|v| RequestId::from_proxy(v.as_bytes()))
        .unwrap_or_default();
    req.extensions_mut().insert(id.clone());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or(crate::metrics::UNMATCHED, |p| p.as_str())
        .to_owned();
    let method = crate::metrics::method_label(req.method());
    let context = Arc::new(Context {
        id: id.clone(),
        client_address,
        noted: Mutex::default(),
    });
    let mut response = CONTEXT.scope(context.clone(), next.run(req)).await;
    let status = response.status().as_u16();
    let noted = std::mem::take(&mut *context.noted.lock().unwrap_or_else(PoisonError::into_inner));
    if route == *layer.token_route {
        count_token_outcome(&response, &noted);
    }
    tracing::info!(
        method,
        route = route.as_str(),
        status,
        duration_ms = start.elapsed().as_secs_f64() * 1000.0,
        client_address = client_address.map(|a| a.to_string()).as_deref(),
        client_id = noted.client_id.as_deref(),
        request_id = id.as_str(),
        "request"
    );
    if let Ok(v) = HeaderValue::from_str(id.as_str()) {
        response.headers_mut().insert(crate::request_id::HEADER, v);
    }
    response
}

/// `steward_tokens_issued_total{grant_type, client_kind}` for a token
/// response, `steward_token_errors_total{error}` for an error.
fn count_token_outcome(response: &Response, noted: &Noted) {
    if response.status().is_success() {
        metrics::counter!(
            "steward_tokens_issued_total",
            "grant_type" => noted.grant_type.unwrap_or("other"),
            "client_kind" => noted.client_kind.unwrap_or("unknown")
        )
        .increment(1);
    } else {
        let error = response
            .extensions()
            .get::<ErrorCodeSent>()
            .map_or("other", |e| e.0);
        metrics::counter!("steward_token_errors_total", "error" => error).increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_types_map_to_a_fixed_set() {
        assert_eq!(grant_type_label("refresh_token"), "refresh_token");
        assert_eq!(grant_type_label("urn:x:anything"), "other");
    }

    #[test]
    fn long_client_ids_are_cut_at_a_character_boundary() {
        let id = format!("https://a.example/{}", "é".repeat(300));
        let c = cut(&id, MAX_LOGGED_CLIENT_ID);
        assert!(c.len() <= MAX_LOGGED_CLIENT_ID && id.starts_with(c));
    }
}
