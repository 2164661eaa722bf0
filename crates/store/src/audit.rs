//! The append-only audit trail of security-relevant events (client
//! registration and state changes, consents, revocations, key rotation).
//! No foreign keys: events outlive the records they describe.

use crate::StoreError;
use async_trait::async_trait;
use steward_core::UnixTime;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAuditEvent {
    pub at: UnixTime,
    pub actor: String,
    pub action: String,
    pub client_id: Option<String>,
    pub subject: Option<String>,
    /// JSON text; must not contain secrets.
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    pub id: i64,
    pub at: UnixTime,
    pub actor: String,
    pub action: String,
    pub client_id: Option<String>,
    pub subject: Option<String>,
    pub detail: String,
}

/// `limit: None` returns all matching events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub client_id: Option<String>,
    pub action: Option<String>,
    pub limit: Option<u32>,
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn append_audit(&self, event: &NewAuditEvent) -> Result<AuditEvent, StoreError>;
    /// Matching events, newest first.
    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError>;
}
