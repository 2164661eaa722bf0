//! The history of each client's metadata documents.
//!
//! CIMD -02 §8.4 asks the AS to notice when a document changes (redirect
//! URIs, keys, name). Every distinct validated body is recorded once, keyed by
//! its SHA-256, so an authorization code can remember the exact version the
//! user consented to and the token endpoint can re-read it without fetching.

use async_trait::async_trait;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use steward_core::UnixTime;

/// A validated document to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewVersion {
    pub client_id: String,
    /// Lowercase hex SHA-256 of `body` (see [`content_hash`]).
    pub content_hash: String,
    pub body: String,
    pub fetched_at: UnixTime,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// The address the document was fetched from, for audit.
    pub peer_addr: String,
    /// Redirect URIs of this document that Steward will not use, for the
    /// audit trail (a new version is the moment an operator should hear of them).
    pub dropped_redirect_uris: Vec<crate::validate::DroppedRedirectUri>,
}

/// A recorded document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VersionRecord {
    pub id: i64,
    pub client_id: String,
    pub content_hash: String,
    pub body: String,
    /// When this content was first fetched.
    #[serde(serialize_with = "ser_time")]
    pub fetched_at: UnixTime,
    /// When a fetch last recorded this content (any node): the latest
    /// confirmation the database knows of, which bounds how long the token
    /// endpoint may trust it on a node that has not confirmed it itself.
    #[serde(serialize_with = "ser_time")]
    pub last_seen_at: UnixTime,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub peer_addr: String,
}

fn ser_time<S: serde::Serializer>(t: &UnixTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i64(t.seconds())
}

/// Why the version store failed.
#[derive(Debug, thiserror::Error)]
pub enum VersionStoreError {
    /// The backing store is unreachable or failed; worth retrying.
    #[error("version store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A stored record cannot be read back (e.g. a malformed peer address).
    #[error("stored version {0} is corrupt")]
    Corrupt(i64),
}

/// Where versions live. The server adapts this to the database.
#[async_trait]
pub trait VersionStore: Send + Sync {
    /// Records `v`, or returns the existing record with the same
    /// `(client_id, content_hash)` with `last_seen_at` moved to this fetch:
    /// re-fetching an unchanged document must not create a new version.
    async fn record(&self, v: NewVersion) -> Result<VersionRecord, VersionStoreError>;
    async fn latest(&self, client_id: &str) -> Result<Option<VersionRecord>, VersionStoreError>;
    async fn get(&self, version_id: i64) -> Result<Option<VersionRecord>, VersionStoreError>;
}

/// Lowercase hex SHA-256 of a document body.
pub fn content_hash(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// An in-memory [`VersionStore`] for tests and single-process development.
#[derive(Debug, Default)]
pub struct MemoryVersionStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    records: Vec<VersionRecord>,
    by_hash: HashMap<(String, String), usize>,
}

impl MemoryVersionStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many versions are recorded, over all clients.
    pub fn len(&self) -> usize {
        self.lock().records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        // A poisoned lock only means another test thread panicked mid-insert;
        // the vectors are still consistent, so keep going.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl VersionStore for MemoryVersionStore {
    async fn record(&self, v: NewVersion) -> Result<VersionRecord, VersionStoreError> {
        let mut inner = self.lock();
        let key = (v.client_id.clone(), v.content_hash.clone());
        if let Some(&i) = inner.by_hash.get(&key) {
            let seen = &mut inner.records[i];
            seen.last_seen_at = seen.last_seen_at.max(v.fetched_at);
            return Ok(seen.clone());
        }
        let id = i64::try_from(inner.records.len())
            .unwrap_or(i64::MAX)
            .saturating_add(1);
        let record = VersionRecord {
            id,
            client_id: v.client_id,
            content_hash: v.content_hash,
            body: v.body,
            fetched_at: v.fetched_at,
            last_seen_at: v.fetched_at,
            etag: v.etag,
            last_modified: v.last_modified,
            peer_addr: v.peer_addr,
        };
        let index = inner.records.len();
        inner.records.push(record.clone());
        inner.by_hash.insert(key, index);
        Ok(record)
    }

    async fn latest(&self, client_id: &str) -> Result<Option<VersionRecord>, VersionStoreError> {
        Ok(self
            .lock()
            .records
            .iter()
            .rev()
            .find(|r| r.client_id == client_id)
            .cloned())
    }

    async fn get(&self, version_id: i64) -> Result<Option<VersionRecord>, VersionStoreError> {
        let inner = self.lock();
        let found = usize::try_from(version_id.saturating_sub(1))
            .ok()
            .and_then(|i| inner.records.get(i))
            .filter(|r| r.id == version_id)
            .cloned();
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(client: &str, body: &str) -> NewVersion {
        NewVersion {
            client_id: client.into(),
            content_hash: content_hash(body.as_bytes()),
            body: body.into(),
            fetched_at: UnixTime(10),
            etag: None,
            last_modified: None,
            peer_addr: "127.0.0.2:443".into(),
            dropped_redirect_uris: Vec::new(),
        }
    }

    #[test]
    fn content_hash_is_sha256_hex() {
        assert_eq!(
            content_hash(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[tokio::test]
    async fn record_is_idempotent_per_client_and_hash() {
        let s = MemoryVersionStore::new();
        let a = s.record(new("https://a.example/c", "{1}")).await.unwrap();
        let again = s.record(new("https://a.example/c", "{1}")).await.unwrap();
        assert_eq!(a, again);
        let other_client = s.record(new("https://b.example/c", "{1}")).await.unwrap();
        assert_ne!(a.id, other_client.id);
        let b = s.record(new("https://a.example/c", "{2}")).await.unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s.latest("https://a.example/c").await.unwrap(), Some(b.clone()));
        assert_eq!(s.get(a.id).await.unwrap(), Some(a));
        assert_eq!(s.get(99).await.unwrap(), None);
        assert_eq!(s.get(0).await.unwrap(), None);
    }
}
