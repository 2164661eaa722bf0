//! The only way Steward talks to the outside world.
//!
//! Steward fetches Client ID Metadata Documents (and the `jwks_uri` /
//! `logo_uri` inside them) at URLs chosen by whoever starts an authorization
//! request, i.e. by attackers. CIMD -01 §6.5 and MCP's security guidance make
//! this the SSRF front line, so every fetch here:
//! - is https only, GET only, never follows redirects (CIMD -01 §4);
//! - resolves names itself and refuses the name if ANY answer is a
//!   special-purpose address ([`address`]), then connects only to the vetted
//!   addresses (DNS rebinding defence), verifying TLS against the name;
//! - caps header and body size and runs under one total deadline;
//! - is limited per host in concurrency and rate (no starvation, no reflector).

pub mod address;
mod config;
mod error;
mod fetch;
mod limit;
mod request;
mod resolve;
mod tls;

use std::sync::Arc;

pub use config::EgressConfig;
pub use error::{EgressConfigError, FetchError};
pub use request::{
    CacheHeaders, Expect, FetchRequest, FetchResponse, FetchStatus, METADATA_DOCUMENT_ACCEPT, Validators,
};

use crate::fetch::Limits;
use crate::limit::HostLimiter;
use crate::resolve::Resolver;

/// The egress client. Cheap to clone; clones share limits and resolver.
#[derive(Clone)]
pub struct Egress {
    inner: Arc<Inner>,
}

struct Inner {
    config: EgressConfig,
    resolver: Resolver,
    tls: Arc<rustls::ClientConfig>,
    limiter: HostLimiter,
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Egress")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Egress {
    /// Build the client. Reads the system DNS configuration (resolv.conf)
    /// when `dns_servers` is empty. Sends nothing and needs no runtime;
    /// `fetch` must run on a Tokio runtime.
    pub fn new(config: EgressConfig) -> Result<Egress, EgressConfigError> {
        for (field, zero) in [
            ("timeout", config.timeout.is_zero()),
            ("max_document_bytes", config.max_document_bytes == 0),
            ("max_header_bytes", config.max_header_bytes == 0),
            ("per_host_concurrency", config.per_host_concurrency == 0),
            ("per_host_per_minute", config.per_host_per_minute == 0),
            ("total_concurrency", config.total_concurrency == 0),
        ] {
            if zero {
                return Err(EgressConfigError::Zero { field });
            }
        }
        let tls = tls::client_config(&config.extra_root_certs_pem)?;
        let resolver = Resolver::new(&config)?;
        let limiter = HostLimiter::new(
            config.per_host_concurrency,
            config.per_host_per_minute,
            config.total_concurrency,
        );
        Ok(Egress {
            inner: Arc::new(Inner {
                config,
                resolver,
                tls,
                limiter,
            }),
        })
    }

    /// Fetch one document. Every outcome is counted in
    /// `steward_egress_fetch_total{outcome}` ("ok" or [`FetchError::reason`]).
    pub async fn fetch(&self, request: &FetchRequest) -> Result<FetchResponse, FetchError> {
        let result = self.fetch_uncounted(request).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.reason(),
        };
        metrics::counter!("steward_egress_fetch_total", "outcome" => outcome).increment(1);
        if let Err(e) = &result {
            tracing::debug!(url = %request.url, reason = e.reason(), error = %e, "egress fetch failed");
        }
        result
    }

    async fn fetch_uncounted(&self, request: &FetchRequest) -> Result<FetchResponse, FetchError> {
        let inner = &*self.inner;
        let target = fetch::target(&request.url)?;
        let _permit = inner.limiter.acquire(&target.authority)?;
        let limits = Limits {
            max_body: request.max_bytes.unwrap_or(inner.config.max_document_bytes),
            max_header: inner.config.max_header_bytes,
        };
        let work = fetch::fetch(
            &inner.resolver,
            &inner.tls,
            &inner.config.allow_networks,
            &target,
            request,
            &limits,
        );
        tokio::time::timeout(inner.config.timeout, work)
            .await
            .map_err(|_| FetchError::Timeout)?
    }
}
