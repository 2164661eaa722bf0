//! Browser login sessions. Only the SHA-256 of the session cookie value is
//! stored, so a database leak does not hand out live sessions.

use crate::StoreError;
use async_trait::async_trait;
use steward_core::UnixTime;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub id_hash: String,
    pub user_id: String,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    /// When the user last actively authenticated (OIDC `auth_time`, max_age checks).
    pub auth_time: UnixTime,
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// [`StoreError::NotFound`] if the user does not exist.
    async fn create_session(&self, session: &Session) -> Result<(), StoreError>;
    /// The session, or `None` if unknown or expired at `now` (`expires_at <= now`).
    async fn get_session(&self, id_hash: &str, now: UnixTime) -> Result<Option<Session>, StoreError>;
    async fn delete_session(&self, id_hash: &str) -> Result<bool, StoreError>;
    /// Logs the user out everywhere; returns how many sessions ended.
    async fn delete_sessions_of_user(&self, user_id: &str) -> Result<u64, StoreError>;
}
