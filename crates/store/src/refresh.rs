//! Refresh token families with rotation and reuse detection.
//!
//! OAuth 2.1 §4.3.1 / RFC 9700 §4.14.2: public clients' refresh tokens are
//! rotated on every use; if an already-used token is presented again, either
//! the legitimate client or an attacker holds a stolen copy, so the whole
//! family (and every access token issued from it) is revoked. Rotation is a
//! conditional UPDATE inside one transaction: of N concurrent rotations of one
//! token exactly one succeeds, and the family never forks.

use crate::{AccessTokenRecord, StoreError};
use async_trait::async_trait;
use steward_core::UnixTime;

/// A new family: one consent's chain of rotating refresh tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRefreshFamily {
    pub id: String,
    pub grant_id: String,
    pub client_id: String,
    pub user_id: Option<String>,
    pub scopes: String,
    pub resource: Option<String>,
    /// When the user behind the grant authenticated (RFC 9068 §2.2.1
    /// `auth_time`), carried into every access token of the family.
    pub auth_time: Option<UnixTime>,
    pub created_at: UnixTime,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshFamily {
    pub id: String,
    pub grant_id: String,
    pub client_id: String,
    pub user_id: Option<String>,
    pub scopes: String,
    pub resource: Option<String>,
    pub auth_time: Option<UnixTime>,
    pub created_at: UnixTime,
    pub revoked_at: Option<UnixTime>,
}

/// A token to add to a family (hash only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRefreshToken {
    pub token_hash: String,
    pub expires_at: UnixTime,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshToken {
    pub token_hash: String,
    pub family_id: String,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    pub used_at: Option<UnixTime>,
}

/// A token together with its family, for revocation and introspection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshRecord {
    pub token: RefreshToken,
    pub family: RefreshFamily,
}

/// The outcome of presenting a refresh token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The token was current: it is now used and the new one is stored.
    Rotated(RefreshFamily),
    /// The token had been used before: the family and its access tokens were
    /// revoked in the same transaction.
    Reused {
        family_id: String,
    },
    /// The family was already revoked.
    Revoked,
    /// Current but past `expires_at`.
    Expired,
    NotFound,
}

#[async_trait]
pub trait RefreshStore: Send + Sync {
    /// Creates the family and its first token in one transaction.
    async fn create_family(
        &self,
        family: &NewRefreshFamily,
        first: &NewRefreshToken,
    ) -> Result<RefreshFamily, StoreError>;
    /// Atomically rotates `old_hash` to `new` (see module docs) and, when
    /// it rotates, records `access` (the access token issued with the new
    /// refresh token) in the same transaction.
    async fn rotate_refresh(
        &self,
        old_hash: &str,
        new: &NewRefreshToken,
        now: UnixTime,
        access: Option<&AccessTokenRecord>,
    ) -> Result<Rotation, StoreError>;
    async fn get_refresh(&self, token_hash: &str) -> Result<Option<RefreshRecord>, StoreError>;
    /// Revokes one family (RFC 7009 revocation of a refresh token). `false`
    /// if unknown or already revoked. Access tokens are revoked separately.
    async fn revoke_family(&self, family_id: &str, now: UnixTime) -> Result<bool, StoreError>;
    /// Revokes every family under a grant; returns how many were revoked.
    async fn revoke_families_of_grant(&self, grant_id: &str, now: UnixTime) -> Result<u64, StoreError>;
}
