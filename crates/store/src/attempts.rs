//! Attempt counters shared by every node on one database: the brute-force
//! limits of logins and client authentication (OAuth 2.1 §2.4.1, RFC 9700
//! §4.x spirit; issue 11 items 10–11).
//!
//! A counter is keyed by an opaque key (the server hashes account and
//! address into it) and a fixed window start. Windows are fixed — the start
//! is `now` rounded down to the window length — so a failure never extends
//! a lockout: the count simply stops at the window's end. An attempt is
//! *reserved* before the credential is checked, in one atomic statement, so
//! parallel guesses cannot all pass a check made before any was counted.

use crate::StoreError;
use async_trait::async_trait;
use steward_core::UnixTime;

#[async_trait]
pub trait AttemptStore: Send + Sync {
    /// Reserves one attempt in `(key, window_start)` if fewer than `limit`
    /// are already counted, returning the count including this one; `None`
    /// when the limit is reached (nothing is counted then). The row expires
    /// at `expires_at` (the window's end). Atomic under concurrency, across
    /// nodes sharing the database.
    async fn reserve_attempt(
        &self,
        key: &str,
        window_start: UnixTime,
        expires_at: UnixTime,
        limit: u32,
    ) -> Result<Option<u32>, StoreError>;

    /// Gives back one reserved attempt (the credential turned out right).
    /// Never goes below zero; unknown keys are ignored.
    async fn release_attempt(&self, key: &str, window_start: UnixTime) -> Result<(), StoreError>;
}
