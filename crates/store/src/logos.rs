//! Client logos, stored by Steward and served from its own origin.
//!
//! A consent page that hot-linked `logo_uri` would let the client's host see
//! who is consenting and when, and swap the image after review; so Steward
//! fetches the logo once through the guarded fetcher and serves the stored
//! bytes. Logos are addressed by the SHA-256 of their bytes: the same image
//! is stored once, and any node can serve a logo another node fetched.

use crate::StoreError;
use async_trait::async_trait;
use steward_core::UnixTime;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logo {
    /// Lowercase hex SHA-256 of `body`.
    pub hash: String,
    /// One of the raster image types Steward accepts (never SVG: it can carry script).
    pub content_type: String,
    pub body: Vec<u8>,
    pub fetched_at: UnixTime,
}

#[async_trait]
pub trait LogoStore: Send + Sync {
    /// Stores the logo; storing the same hash again keeps the row and moves
    /// `fetched_at` forward, so the purge (which deletes logos not fetched
    /// for a while) measures the last fetch, not the first.
    async fn put_logo(&self, logo: &Logo) -> Result<(), StoreError>;
    async fn get_logo(&self, hash: &str) -> Result<Option<Logo>, StoreError>;
}
