//! Authorization codes (OAuth 2.1 §4.1.2), stored by hash.
//!
//! OAuth 2.1 §4.1.3 and RFC 9700 §4.5: a code is single-use, and a second
//! redemption should revoke what the first produced. Redemption is therefore
//! one atomic conditional UPDATE: of any number of concurrent redeemers
//! exactly one sees `Consumed`; the rest see `Replayed` with the code's
//! `family_id`, so the caller can revoke that family.

use crate::{AccessTokenRecord, Grant, NewGrant, NewRefreshFamily, NewRefreshToken, StoreError};
use async_trait::async_trait;
use steward_core::UnixTime;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizationCode {
    pub code_hash: String,
    pub client_id: String,
    pub user_id: String,
    pub grant_id: String,
    pub redirect_uri: String,
    /// PKCE S256 challenge (OAuth 2.1 §4.1.1: PKCE is mandatory).
    pub code_challenge: String,
    pub scopes: String,
    pub resource: Option<String>,
    /// The metadata version consented to, so redemption can detect changes.
    pub metadata_version_id: Option<i64>,
    pub auth_time: UnixTime,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    pub consumed_at: Option<UnixTime>,
    /// The refresh family the redemption produced (set after issuance).
    pub family_id: Option<String>,
}

/// What a completed redemption issued, so that a replay revokes exactly
/// that and nothing else of the grant (OAuth 2.1 §4.1.3).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodeIssuance {
    /// The refresh family the redemption created, if the client got one.
    pub family_id: Option<String>,
    /// The access token the redemption issued (`None` for redemptions
    /// completed before this was recorded).
    pub access_jti: Option<String>,
}

/// The outcome of redeeming a code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodeConsumption {
    /// First redemption: the caller may issue tokens.
    Consumed(AuthorizationCode),
    /// Already redeemed: refuse, and revoke `family_id` if set.
    Replayed(AuthorizationCode),
    /// Never redeemed but past `expires_at`.
    Expired,
    NotFound,
}

#[async_trait]
pub trait CodeStore: Send + Sync {
    async fn insert_code(&self, code: &AuthorizationCode) -> Result<(), StoreError>;
    /// Reads a code without consuming it, so the token endpoint can check
    /// the client binding and PKCE before the code is spent: a presenter
    /// who fails them must leave the code as it was (a leaked code alone
    /// must neither burn it nor turn the rightful redemption into a replay).
    async fn get_code(&self, code_hash: &str) -> Result<Option<AuthorizationCode>, StoreError>;
    /// Atomically marks the code consumed at `now` (see module docs).
    async fn consume_code(&self, code_hash: &str, now: UnixTime) -> Result<CodeConsumption, StoreError>;
    /// Finishes a redemption once its tokens are stored, remembering the
    /// refresh family it produced. `false` if the code is unknown or a replay
    /// was marked meanwhile: the caller must then revoke what it issued.
    ///
    /// With [`CodeStore::mark_code_replayed`] this closes the race between
    /// a first redemption still issuing and a replay revoking (OAuth 2.1
    /// §4.1.3): either the replay sees the finished redemption's family, or
    /// the redemption sees the replay.
    async fn complete_redemption(&self, code_hash: &str, family_id: Option<&str>)
    -> Result<bool, StoreError>;
    /// Marks a (valid) replay of a consumed code and returns what the first
    /// redemption issued if that redemption has completed (`None` while it
    /// is still issuing: it will then see the mark and revoke its own).
    async fn mark_code_replayed(
        &self,
        code_hash: &str,
        now: UnixTime,
    ) -> Result<Option<CodeIssuance>, StoreError>;
    /// Records an approval and its code in one transaction: upserts the
    /// grant as [`crate::GrantStore::upsert_grant`] does, stores `code` bound
    /// to that grant (its `grant_id` is replaced by the grant's id); then
    /// marks the client seen at `grant.now` (a backend may do this last step
    /// after the commit). Returns the grant.
    async fn record_authorization(
        &self,
        grant: &NewGrant,
        code: &AuthorizationCode,
    ) -> Result<Grant, StoreError>;
    /// Stores what a first redemption issued and completes it, in one
    /// transaction: the refresh family with its first token (if any), the
    /// access token, then [`CodeStore::complete_redemption`] (remembering
    /// the access token's `jti` as well), whose answer is returned. On `false` the records are kept, so that the caller's
    /// revocation finds them.
    async fn record_redemption(
        &self,
        code_hash: &str,
        refresh: Option<(&NewRefreshFamily, &NewRefreshToken)>,
        access: &AccessTokenRecord,
    ) -> Result<bool, StoreError>;
}
