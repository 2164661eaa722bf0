//! Issued access tokens, by `jti`, so that revocation (RFC 7009) and
//! introspection (RFC 7662) work even for self-contained JWTs.

use crate::StoreError;
use async_trait::async_trait;
use steward_core::UnixTime;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessTokenRecord {
    pub jti: String,
    /// SHA-256 of the token, for opaque tokens looked up by value.
    pub token_hash: Option<String>,
    pub client_id: String,
    pub user_id: Option<String>,
    pub grant_id: Option<String>,
    pub family_id: Option<String>,
    pub scopes: String,
    pub resource: Option<String>,
    pub issued_at: UnixTime,
    pub expires_at: UnixTime,
    pub revoked_at: Option<UnixTime>,
}

#[async_trait]
pub trait AccessTokenStore: Send + Sync {
    async fn insert_access_token(&self, token: &AccessTokenRecord) -> Result<(), StoreError>;
    async fn get_access_token(&self, jti: &str) -> Result<Option<AccessTokenRecord>, StoreError>;
    async fn get_access_token_by_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<AccessTokenRecord>, StoreError>;
    /// `false` if unknown or already revoked.
    async fn revoke_access_token(&self, jti: &str, now: UnixTime) -> Result<bool, StoreError>;
    async fn revoke_access_tokens_of_family(&self, family_id: &str, now: UnixTime)
    -> Result<u64, StoreError>;
    async fn revoke_access_tokens_of_grant(&self, grant_id: &str, now: UnixTime) -> Result<u64, StoreError>;
    /// Deletes everything whose lifetime is over at `now`: access tokens,
    /// authorization codes, refresh tokens, sessions, assertion jtis, and refresh
    /// families left with no token pointing at them, so
    /// storage and index cost follow live state, not history. Returns the
    /// number of rows deleted.
    async fn purge_expired(&self, now: UnixTime) -> Result<u64, StoreError>;
}
