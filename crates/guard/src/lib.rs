//! `steward-guard`: protect a Rust MCP server (axum, hyper, any tower stack)
//! with access tokens issued by Steward, or by any authorization server that
//! issues RFC 9068 JWT access tokens and publishes RFC 8414 metadata.
//!
//! ```no_run
//! # fn demo() -> Result<(), steward_guard::GuardError> {
//! use steward_guard::{AccessClaims, Guard};
//! use tower::Layer;
//!
//! // Any tower service: rmcp's StreamableHttpService, an axum handler, ...
//! let mcp_service = axum::routing::post(|claims: axum::Extension<AccessClaims>| async move {
//!     format!("hello {}", claims.sub)
//! });
//! let guard = Guard::builder("https://as.example", "https://mcp.example/mcp")
//!     .required_scopes(["mcp:tools"])
//!     .build()?;
//! let app: axum::Router = axum::Router::new()
//!     .route_service("/mcp", guard.layer().layer(mcp_service))
//!     .merge(guard.metadata_router());
//! # Ok(()) }
//! ```
//!
//! What the layer does, per request (MCP authorization; RFC 6750, 9068, 9728):
//! - no `Authorization: Bearer` → `401`, `WWW-Authenticate: Bearer
//!   resource_metadata="<metadata URL>"`, so the client can discover the
//!   authorization server (RFC 9728 §5.1);
//! - a token that is not valid here → `401 error="invalid_token"`: `typ`
//!   must be `at+jwt`, the signature must verify with a key from the
//!   issuer's JWKS (ES256, EdDSA or RS256, the algorithm fixed by the key),
//!   `iss` must equal the issuer exactly, `aud` must contain this server's
//!   resource URI, `exp`/`nbf` hold with a small leeway;
//! - a valid token missing a required scope → `403 error="insufficient_scope"`
//!   with the needed `scope` (RFC 6750 §3.1);
//! - otherwise the request goes on with [`AccessClaims`] in its extensions.
//!
//! The JWKS location is discovered from the issuer's metadata (`jwks_uri`),
//! cached, refreshed after [`GuardBuilder::jwks_max_age`], and refetched when
//! a token names an unknown `kid`, at most once per
//! [`GuardBuilder::min_refetch_interval`], so the issuer's key rotation needs
//! no restart here. Why the fetch does not go through `steward-egress` is
//! explained in the `fetch` module: the issuer is the operator's choice, not
//! an attacker's, and often sits on loopback or a private network.

mod fetch;
mod keys;
mod layer;
mod metadata;
mod validate;

pub use fetch::FetchError;
pub use layer::{Rejection, RequireBearer, RequireBearerLayer};
pub use validate::{AccessClaims, TokenError};

use http::HeaderMap;
use std::sync::Arc;
use std::time::Duration;
use steward_core::{Clock, SystemClock};
use url::Url;

/// A configuration the guard cannot work with.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("issuer {0:?}: {1}")]
    Issuer(String, &'static str),
    #[error("resource {0:?}: {1}")]
    Resource(String, &'static str),
    #[error("jwks_uri {0:?}: {1}")]
    JwksUri(String, &'static str),
    #[error("scope {0:?}: scope tokens are non-empty and contain no spaces or quotes (RFC 6749 §3.3)")]
    Scope(String),
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
}

/// Validates access tokens for one resource; cheap to clone (shared state).
#[derive(Clone, Debug)]
pub struct Guard {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    expect: validate::Expect,
    required: Vec<String>,
    required_scope: String,
    metadata: serde_json::Value,
    metadata_url: String,
    resource_path: String,
    keys: keys::KeyCache,
    clock: Arc<dyn Clock>,
}

/// Configures a [`Guard`]; see [`Guard::builder`].
#[derive(Debug)]
pub struct GuardBuilder {
    issuer: String,
    resource: String,
    required: Vec<String>,
    supported: Option<Vec<String>>,
    resource_name: Option<String>,
    leeway: Duration,
    clock: Arc<dyn Clock>,
    jwks_uri: Option<String>,
    min_refetch: Duration,
    max_age: Duration,
    timeout: Duration,
    max_bytes: usize,
    roots: Option<rustls::RootCertStore>,
}

impl Guard {
    /// `issuer`: the authorization server's issuer identifier, compared byte
    /// for byte with `iss` and with the `issuer` of its metadata (RFC 8414
    /// §3.3). `resource`: this server's canonical URI (RFC 8707 §2, MCP
    /// "Canonical Server URI"), compared byte for byte with `aud` and
    /// published as `resource` in the metadata; it must be exactly the
    /// `[[resources]] uri` configured in Steward.
    pub fn builder(issuer: impl Into<String>, resource: impl Into<String>) -> GuardBuilder {
        GuardBuilder {
            issuer: issuer.into(),
            resource: resource.into(),
            required: Vec::new(),
            supported: None,
            resource_name: None,
            leeway: Duration::from_secs(30),
            clock: Arc::new(SystemClock),
            jwks_uri: None,
            min_refetch: Duration::from_secs(10),
            max_age: Duration::from_secs(300),
            timeout: Duration::from_secs(5),
            max_bytes: 256 * 1024,
            roots: None,
        }
    }

    /// The tower layer that enforces this guard.
    pub fn layer(&self) -> RequireBearerLayer {
        RequireBearerLayer { guard: self.clone() }
    }

    /// The issuer this guard trusts.
    pub fn issuer(&self) -> &str {
        &self.inner.expect.issuer
    }

    /// This server's canonical resource URI (the expected `aud`).
    pub fn resource(&self) -> &str {
        &self.inner.expect.resource
    }

    /// Validates a token without the scope check, for callers that do not use
    /// the layer (another transport, a websocket upgrade, ...).
    pub async fn validate(&self, token: &str) -> Result<AccessClaims, TokenError> {
        validate::validate(
            token,
            &self.inner.keys,
            &self.inner.expect,
            self.inner.clock.as_ref(),
        )
        .await
    }

    /// What the layer decides for a request with these headers.
    pub async fn authorize(&self, headers: &HeaderMap) -> Result<AccessClaims, Rejection> {
        let token = layer::bearer_token(headers)?;
        let claims = self.validate(token).await.map_err(|e| match e {
            TokenError::KeysUnavailable => Rejection::Unavailable,
            e => Rejection::InvalidToken(e),
        })?;
        if self.inner.required.iter().all(|s| claims.has_scope(s)) {
            Ok(claims)
        } else {
            Err(Rejection::InsufficientScope)
        }
    }
}

fn valid_scope_token(s: &str) -> bool {
    // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

impl GuardBuilder {
    /// Scopes every request needs (all of them); default none.
    pub fn required_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// `scopes_supported` of the metadata (RFC 9728 §2); defaults to the
    /// required scopes. MCP clients request these when the challenge names none.
    pub fn scopes_supported<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.supported = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// `resource_name` of the metadata (RFC 9728 §2), shown by some clients.
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// Allowed clock skew for `exp` and `nbf`; default 30 seconds.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The source of time; default the system clock. Tests pass a manual one.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Use this `jwks_uri` instead of discovering it from the issuer's metadata.
    pub fn jwks_uri(mut self, uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(uri.into());
        self
    }

    /// Least time between two fetches of the key set caused by unknown
    /// `kid`s; default 10 seconds.
    pub fn min_refetch_interval(mut self, d: Duration) -> Self {
        self.min_refetch = d;
        self
    }

    /// Age after which the key set is refreshed on the next request, so keys
    /// the issuer stopped publishing stop being accepted; default 5 minutes.
    pub fn jwks_max_age(mut self, d: Duration) -> Self {
        self.max_age = d;
        self
    }

    /// One deadline for each metadata or JWKS fetch; default 5 seconds.
    pub fn fetch_timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// Trusted roots for an https issuer; default the Mozilla set (webpki-roots).
    pub fn tls_roots(mut self, roots: rustls::RootCertStore) -> Self {
        self.roots = Some(roots);
        self
    }

    pub fn build(self) -> Result<Guard, GuardError> {
        let issuer_url =
            Url::parse(&self.issuer).map_err(|_| GuardError::Issuer(self.issuer.clone(), "not a URL"))?;
        // RFC 8414 §2: https, no query, no fragment (http only on loopback).
        if self.issuer.contains('?') || self.issuer.contains('#') {
            return Err(GuardError::Issuer(self.issuer, "must have no query or fragment"));
        }
        if fetch::check_scheme(&issuer_url).is_err() {
            return Err(GuardError::Issuer(
                self.issuer,
                "must use https (http only on a loopback host)",
            ));
        }
        let resource_url = Url::parse(&self.resource)
            .map_err(|_| GuardError::Resource(self.resource.clone(), "not an absolute URI"))?;
        // RFC 8707 §2: no fragment; a query would make the RFC 9728 §3.1
        // metadata URL ambiguous, so it is refused as well.
        if self.resource.contains('#') || self.resource.contains('?') {
            return Err(GuardError::Resource(
                self.resource,
                "must have no query or fragment",
            ));
        }
        if resource_url.cannot_be_a_base() || !matches!(resource_url.scheme(), "https" | "http") {
            return Err(GuardError::Resource(self.resource, "must be an http(s) URL"));
        }
        for s in self.required.iter().chain(self.supported.iter().flatten()) {
            if !valid_scope_token(s) {
                return Err(GuardError::Scope(s.clone()));
            }
        }
        let source = match &self.jwks_uri {
            Some(u) => {
                let url = Url::parse(u).map_err(|_| GuardError::JwksUri(u.clone(), "not a URL"))?;
                if fetch::check_scheme(&url).is_err() {
                    return Err(GuardError::JwksUri(
                        u.clone(),
                        "must use https (http only on a loopback host)",
                    ));
                }
                keys::KeySource::Fixed(url)
            }
            None => keys::KeySource::Discover {
                issuer: self.issuer.clone(),
                metadata_url: keys::metadata_url(&issuer_url),
            },
        };
        let fetcher = fetch::Fetcher::new(self.roots, self.timeout, self.max_bytes)?;
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        let keys = keys::KeyCache::new(
            source,
            fetcher,
            self.clock.clone(),
            secs(self.min_refetch),
            secs(self.max_age).max(1),
        );
        let supported = self.supported.unwrap_or_else(|| self.required.clone());
        let metadata = metadata::document(
            &self.resource,
            &self.issuer,
            &supported,
            self.resource_name.as_deref(),
        );
        Ok(Guard {
            inner: Arc::new(Inner {
                required_scope: self.required.join(" "),
                required: self.required,
                metadata,
                metadata_url: metadata::metadata_url(&resource_url),
                resource_path: metadata::resource_path(&resource_url).to_owned(),
                keys,
                clock: self.clock,
                expect: validate::Expect {
                    issuer: self.issuer,
                    resource: self.resource,
                    leeway: secs(self.leeway),
                },
            }),
        })
    }
}
