//! `AppState`: everything a handler may use, built once at start-up. External
//! systems sit behind `Arc<dyn …>` so tests can swap them.

use bytes::Bytes;
use std::sync::Arc;
use steward_cimd::{CheckReport, ValidationPolicy};
use steward_core::Clock;
use steward_egress::Egress;
use steward_store::Store;

use crate::keyring::KeyRing;
use crate::settings::Settings;

/// Cloned into every request by axum's `State` extractor: one `Arc`, so a
/// clone is one atomic increment rather than one per field (profiles showed
/// the field-by-field clone and drop at 2% of a token request).
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

impl AppState {
    pub fn new(inner: AppStateInner) -> Self {
        Self(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppStateInner;
    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

pub struct AppStateInner {
    /// The issuer identifier, byte for byte as configured.
    pub issuer: Arc<str>,
    pub settings: Arc<Settings>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub keys: Arc<KeyRing>,
    /// The guarded outbound fetcher (metadata documents, jwks_uri, logos).
    pub egress: Egress,
    /// Resolves metadata-document clients: cache, versions, validation.
    pub cimd: Arc<steward_cimd::Resolver>,
    /// The RFC 8414 metadata document, serialized once.
    pub metadata: Bytes,
    /// SHA-256 of the admin token; `None` disables the admin API.
    pub admin_token_digest: Option<[u8; 32]>,
    /// Refused-document audit events, aggregated per host and window so
    /// anonymous requests cannot grow the audit trail without bound.
    pub refusals: crate::cimd::RefusalAudit,
    /// Protocol state: resources, client-secret key, login limits.
    pub oauth: Arc<crate::oauth::OAuth>,
    /// The governance room: every protocol decision and lifecycle change.
    pub governance: Arc<steward_governance::Governance>,
}

impl AppState {
    /// The CIMD validation policy the settings call for.
    pub fn cimd_policy(&self) -> ValidationPolicy {
        cimd_policy(&self.settings)
    }

    /// Runs the metadata-document checker exactly as resolution would judge.
    pub async fn cimd_check(&self, url: &str) -> CheckReport {
        steward_cimd::check(&self.egress, url, &self.cimd_policy()).await
    }
}

pub fn cimd_policy(settings: &Settings) -> ValidationPolicy {
    ValidationPolicy {
        allow_query: settings.cimd.allow_query,
        allow_private_use_schemes: settings.cimd.allow_private_use_schemes,
    }
}
