//! Bounded housekeeping: what a scheduled purge deletes (issue 11 item 12).
//!
//! Every table an anonymous request can make grow is emptied of what is no
//! longer needed: expired codes, sessions, tokens, refresh rows, assertion
//! jtis and attempt counters; refused-document audit events past their
//! retention; logos not fetched for a while; and metadata-document clients
//! that no user ever signed in for, with their versions. Each table loses at
//! most `max_rows_per_table` rows per pass, so one pass never holds the
//! database for long. Every delete is idempotent (a row already gone is not
//! an error), so several nodes may run passes at the same time.

use crate::StoreError;
use async_trait::async_trait;
use steward_core::UnixTime;

/// Audit actions written for refused metadata documents (and their per-host
/// aggregates): the only audit events an anonymous request can cause, and
/// so the only ones the purge ages out.
pub const REFUSAL_AUDIT_ACTIONS: [&str; 2] =
    ["client.metadata_rejected", "client.metadata_rejected_aggregate"];

/// What one purge pass may delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PurgePlan {
    /// Expired rows (`expires_at <= now`) go.
    pub now: UnixTime,
    /// Refused-document audit events at or before this go.
    pub refusals_before: UnixTime,
    /// Logos last fetched at or before this go.
    pub logos_before: UnixTime,
    /// Never-used metadata-document clients first seen at or before this go.
    pub unused_clients_before: UnixTime,
    /// Most rows deleted per table per pass.
    pub max_rows_per_table: u32,
}

/// Rows deleted by one pass, per kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Codes, sessions, access and refresh tokens, families, jtis, counters.
    pub expired: u64,
    pub refusal_events: u64,
    pub logos: u64,
    /// Never-used metadata-document clients (their versions go with them).
    pub unused_clients: u64,
    /// Some table had more to delete than the per-pass bound allowed.
    pub more: bool,
}

impl PurgeReport {
    pub fn total(&self) -> u64 {
        self.expired + self.refusal_events + self.logos + self.unused_clients
    }
}

#[async_trait]
pub trait MaintenanceStore: Send + Sync {
    /// One bounded purge pass (see the module documentation).
    async fn purge(&self, plan: &PurgePlan) -> Result<PurgeReport, StoreError>;

    /// Metadata-document clients no user ever used: no grant, no token, no
    /// owner set, still `active` (never touched by an operator). These are
    /// the clients anonymous requests can create.
    async fn count_unused_metadata_clients(&self) -> Result<u64, StoreError>;

    /// For a client without grants, deletes its document versions beyond the
    /// newest `keep` (that no code points at), so a document that changes at
    /// every fetch cannot grow its history without bound. Returns rows deleted.
    async fn trim_unused_metadata_versions(&self, client_id: &str, keep: u32) -> Result<u64, StoreError>;
}
