//! Replay protection for client assertions (RFC 7523 §3 item 7: the
//! authorization server may reject a JWT whose `jti` it has already seen).
//!
//! The seen-set lives in the database so every node behind a load balancer
//! shares it; entries expire with the assertion, after which the JWT itself is
//! no longer acceptable and the entry can go.

use crate::StoreError;
use async_trait::async_trait;
use steward_core::UnixTime;

#[async_trait]
pub trait AssertionStore: Send + Sync {
    /// `true` if `(client_id, jti)` is used for the first time (now recorded
    /// until `expires_at`); `false` if already seen and not yet expired.
    /// Expired entries are deleted opportunistically. Atomic under concurrency.
    async fn record_assertion_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
}
