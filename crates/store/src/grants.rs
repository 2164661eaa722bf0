//! Consents: a user allowed a client, at one redirect URI, some scopes for a
//! resource. One row per (user, client, redirect URI) so a later consent
//! updates the earlier one instead of piling up.

use crate::StoreError;
use async_trait::async_trait;
use steward_core::UnixTime;

/// What the consent screen produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewGrant {
    /// Used only when no grant exists yet for (user, client, redirect URI).
    pub id: String,
    pub user_id: String,
    pub client_id: String,
    pub redirect_uri: String,
    /// Space-separated scope set.
    pub scopes: String,
    /// RFC 8707 resource indicator the consent covers.
    pub resource: Option<String>,
    /// The metadata document version the user was shown.
    pub metadata_version_id: Option<i64>,
    pub now: UnixTime,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub id: String,
    pub user_id: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: String,
    pub resource: Option<String>,
    pub metadata_version_id: Option<i64>,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
    pub revoked_at: Option<UnixTime>,
}

#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Creates the grant, or updates the existing one for (user, client,
    /// redirect URI): new scopes/resource/metadata version, `updated_at = now`,
    /// and `revoked_at` cleared (a fresh consent re-activates it). Returns the
    /// stored row, whose `id` is the existing one on update.
    async fn upsert_grant(&self, grant: &NewGrant) -> Result<Grant, StoreError>;
    async fn get_grant(&self, id: &str) -> Result<Option<Grant>, StoreError>;
    async fn find_grant(
        &self,
        user_id: &str,
        client_id: &str,
        redirect_uri: &str,
    ) -> Result<Option<Grant>, StoreError>;
    /// All grants of a client, oldest first.
    async fn list_grants(&self, client_id: &str) -> Result<Vec<Grant>, StoreError>;
    /// Marks the grant revoked. Refresh families and access tokens under it
    /// are revoked separately (`revoke_families_of_grant`,
    /// `revoke_access_tokens_of_grant`). `false` if unknown or already revoked.
    async fn revoke_grant(&self, id: &str, now: UnixTime) -> Result<bool, StoreError>;
}
