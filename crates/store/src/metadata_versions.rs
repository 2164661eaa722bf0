//! Every distinct Client ID Metadata Document body Steward has fetched.
//!
//! A consent and the codes issued under it point at the exact version the user
//! saw (CIMD: metadata can change between consent and redemption); keeping
//! versions by content hash also gives operators an audit trail of changes.

use crate::StoreError;
use async_trait::async_trait;
use steward_core::UnixTime;

/// A freshly fetched document, as the resolver saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMetadataVersion {
    pub client_id: String,
    /// Lowercase hex SHA-256 of `body`.
    pub content_hash: String,
    pub body: String,
    pub fetched_at: UnixTime,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// The address the document was fetched from (for incident review).
    pub peer_addr: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataVersion {
    pub id: i64,
    pub client_id: String,
    pub content_hash: String,
    pub body: String,
    /// When this content was first fetched.
    pub fetched_at: UnixTime,
    /// When this content was most recently fetched.
    pub last_seen_at: UnixTime,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub peer_addr: Option<String>,
}

#[async_trait]
pub trait MetadataVersionStore: Send + Sync {
    /// Stores a version, idempotently: when `(client_id, content_hash)` is
    /// already known the existing row is returned with `last_seen_at`,
    /// `etag` and `last_modified` refreshed from this fetch. The client row
    /// must exist (else [`StoreError::NotFound`]).
    async fn record_metadata_version(&self, v: &NewMetadataVersion) -> Result<MetadataVersion, StoreError>;
    /// The most recently seen version of the client's document.
    async fn latest_metadata_version(&self, client_id: &str) -> Result<Option<MetadataVersion>, StoreError>;
    async fn get_metadata_version(&self, id: i64) -> Result<Option<MetadataVersion>, StoreError>;
    /// All versions of the client's document, oldest first.
    async fn list_metadata_versions(&self, client_id: &str) -> Result<Vec<MetadataVersion>, StoreError>;
}
