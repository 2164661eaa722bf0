//! Steward's HTTP surface: protocol endpoints, discovery, admin API,
//! operations endpoints, and the start-up wiring that joins storage, keys,
//! the guarded fetcher and the CIMD resolver.

pub mod cimd;
pub mod client_address;
pub mod error;
pub mod governance;
pub mod keyring;
pub mod metrics;
pub mod oauth;
pub mod purge;
pub mod request_id;
pub mod request_log;
pub mod routes;
pub mod serve;
pub mod settings;
pub mod startup;
pub mod state;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::routing::{get, post};
use std::time::Duration;
use tower_http::cors::{Any, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

pub use state::AppState;

/// CORS for endpoints browsers' JavaScript clients call directly (metadata,
/// JWKS, and later token, revocation, introspection). Never on /authorize
/// (OAuth 2.1 §3.1: the authorization endpoint is navigated to, not fetched).
fn public_cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(Duration::from_secs(3600))
}

/// The complete application: routes under the issuer's path, the RFC 8414
/// well-known document at the path-inserted location, operations endpoints at
/// the root, and the cross-cutting limits.
pub fn router(state: AppState) -> Router {
    let http = &state.settings.http;
    let issuer_path = url::Url::parse(&state.issuer)
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .unwrap_or_default();

    let public = Router::new()
        .route(routes::discovery::JWKS_PATH, get(routes::jwks::jwks))
        .route("/token", post(oauth::token::token))
        .route("/revoke", post(oauth::revocation::revoke))
        .route("/introspect", post(oauth::revocation::introspect));
    // RFC 7591/7592: only when registration is on (`dcr.mode`), so a
    // server with it off answers 404 and advertises no endpoint.
    let public = if state.settings.dcr.mode == steward_dcr::Mode::Off {
        public
    } else {
        use oauth::registration as reg;
        public
            .route(
                reg::REGISTER_PATH,
                post(reg::register).layer(DefaultBodyLimit::max(reg::MAX_REGISTRATION_BYTES)),
            )
            .route(
                &format!("{}/{{client_id}}", reg::REGISTER_PATH),
                get(reg::read)
                    .put(reg::update)
                    .delete(reg::delete)
                    .layer(DefaultBodyLimit::max(reg::MAX_REGISTRATION_BYTES)),
            )
    };
    let public = public.layer(public_cors());
    // No CORS on the authorization endpoint (OAuth 2.1 §3.1): it is navigated to.
    let interactive = Router::new()
        .route(
            "/authorize",
            get(oauth::authorize::authorize_get).post(oauth::authorize::authorize_post),
        )
        .route("/authorize/login", post(oauth::authorize::login_post))
        .route("/authorize/consent", post(oauth::authorize::consent_post))
        .route("/authorize/request", post(oauth::authorize::request_post))
        .route(
            "/logout",
            get(oauth::logout::logout_get).post(oauth::logout::logout_post),
        )
        .route("/logo/{hash}", get(oauth::logo::serve));
    let admin = Router::new().route("/admin/cimd/check", post(routes::admin::cimd_check));
    let issuer_routes = public.merge(admin).merge(interactive);

    let mut app = Router::new()
        .route("/healthz", get(routes::ops::healthz))
        .route("/readyz", get(routes::ops::readyz));
    // With a private metrics listener (`metrics.listen`), the public one
    // does not serve them: what is served there is for anyone who can connect.
    if state.settings.metrics.listen.is_none() {
        app = app.route("/metrics", get(routes::ops::metrics));
    }
    app = app.merge(
        Router::new()
            .route(
                &routes::discovery::well_known_path(&state.issuer),
                get(routes::discovery::metadata),
            )
            .layer(public_cors()),
    );
    app = if issuer_path.is_empty() {
        app.merge(issuer_routes)
    } else {
        app.nest(&issuer_path, issuer_routes)
    };

    // `http.trusted_proxies` was checked by `Settings::validate`; an
    // unparsable list here (a caller that skipped it) trusts no proxy.
    let proxies = client_address::TrustedProxies::parse(&http.trusted_proxies, http.forwarded_header)
        .unwrap_or_default();
    let request_layer = request_log::RequestLayer {
        proxies: std::sync::Arc::new(proxies),
        token_route: format!("{issuer_path}/token").into(),
    };

    app.layer(axum::middleware::from_fn(metrics::track))
        .layer(DefaultBodyLimit::max(http.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(http.request_timeout_ms),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(axum::middleware::from_fn_with_state(
            request_layer,
            request_log::layer,
        ))
        .with_state(state)
}

/// The private operations listener (`metrics.listen`): metrics for the
/// scraper, readiness and liveness for the orchestrator, nothing else.
pub fn operations_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(routes::ops::healthz))
        .route("/readyz", get(routes::ops::readyz))
        .route("/metrics", get(routes::ops::metrics))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(state.settings.http.request_timeout_ms),
        ))
        .with_state(state)
}
