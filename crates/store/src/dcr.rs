//! Dynamic Client Registration (RFC 7591/7592, issue 14): what only
//! registration knows about a `dynamic` client, and the initial access
//! tokens an operator hands out. Tokens arrive hashed.

use crate::StoreError;
use crate::audit::NewAuditEvent;
use crate::clients::ClientRecord;
use async_trait::async_trait;
use steward_core::{TrustTier, UnixTime};

/// A dynamically registered client's registration facts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DcrRegistration {
    pub client_id: String,
    /// The client address the registration came from (after trusted proxies).
    pub source_address: Option<String>,
    pub software_id: Option<String>,
    /// The issuer of the software statement that backed it, if any.
    pub statement_issuer: Option<String>,
    /// The initial access token that backed it, if any (its id, not the token).
    pub initial_token_id: Option<String>,
    /// See `steward_dcr::dedupe_key`.
    pub dedupe_key: String,
    /// SHA-256 of the registration access token (RFC 7592 §3).
    pub access_token_hash: String,
    pub registered_at: UnixTime,
    /// The last authorization (a code issued) for this client.
    pub last_authorized_at: Option<UnixTime>,
    /// The last token issued to this client.
    pub last_token_at: Option<UnixTime>,
}

/// An initial access token (RFC 7591 §3), by the SHA-256 of its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitialToken {
    pub id: String,
    pub token_hash: String,
    /// The tier a client registered with it starts at.
    pub tier: TrustTier,
    /// `None`: unlimited.
    pub max_uses: Option<u32>,
    pub uses: u32,
    pub expires_at: Option<UnixTime>,
    pub created_at: UnixTime,
    pub created_by: String,
    pub revoked_at: Option<UnixTime>,
}

impl InitialToken {
    /// Whether it may back one more registration at `now`.
    pub fn usable(&self, now: UnixTime) -> bool {
        self.revoked_at.is_none()
            && self.expires_at.is_none_or(|e| now < e)
            && self.max_uses.is_none_or(|m| self.uses < m)
    }
}

/// One registration to store, all at once or not at all.
#[derive(Clone, Debug)]
pub struct NewRegistration<'a> {
    pub client: &'a ClientRecord,
    pub registration: &'a DcrRegistration,
    /// A live registration (client `active` or `pending`) with the same
    /// dedupe key registered at or after this moment is returned instead
    /// of creating another.
    pub dedupe_since: UnixTime,
    /// Recorded when the client is created.
    pub created_event: &'a NewAuditEvent,
    /// Recorded when an existing registration is returned instead (its
    /// `client_id` is filled in by the store).
    pub dedupe_event: &'a NewAuditEvent,
}

/// What [`DcrStore::register_client`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// The client and its registration were created.
    Created,
    /// An existing registration with the same dedupe key is returned: its
    /// registration access token (and client secret, when a new one was
    /// given) were replaced by the new ones, since the old values were
    /// shown once and are not stored.
    Existing { client_id: String, registration: String },
    /// The initial access token is unknown, revoked, expired or used up
    /// (a concurrent registration took its last use): nothing was stored.
    TokenRefused,
}

/// Which use of a registered client to record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DcrUse {
    /// A code was issued.
    Authorized,
    /// A token was issued.
    Token,
}

/// How old a recorded use may be before a new one is written: the sweeps
/// count in hours and days, so one write an hour per client is exact enough
/// and keeps the token path from writing at every request.
pub const USE_RESOLUTION_SECS: i64 = 3600;

#[async_trait]
pub trait DcrStore: Send + Sync {
    /// Stores the client, its registration and `created_event` — or, with a
    /// live duplicate, replaces its credentials and records `dedupe_event`.
    /// With `registration.initial_token_id`, one use of that token is taken
    /// in the same transaction; if none is left, nothing is stored.
    async fn register_client(&self, new: &NewRegistration<'_>) -> Result<RegisterOutcome, StoreError>;

    /// The registration whose access token hashes to `hash`.
    async fn registration_by_token(&self, hash: &str) -> Result<Option<DcrRegistration>, StoreError>;

    async fn dcr_registration(&self, client_id: &str) -> Result<Option<DcrRegistration>, StoreError>;

    /// Every registration, oldest first (the inventory).
    async fn list_dcr_registrations(&self) -> Result<Vec<DcrRegistration>, StoreError>;

    /// RFC 7592 §2.2: replaces a `dynamic` client's registration and
    /// display name, with `event`, atomically. `false` (and no event) when
    /// no such dynamic client exists.
    async fn update_dcr_client(
        &self,
        client_id: &str,
        registration: &str,
        display_name: Option<&str>,
        now: UnixTime,
        event: &NewAuditEvent,
    ) -> Result<bool, StoreError>;

    /// Records a use when the last one recorded is older than
    /// [`USE_RESOLUTION_SECS`] (or none is). Unknown clients are ignored.
    async fn mark_dcr_use(&self, client_id: &str, what: DcrUse, now: UnixTime) -> Result<(), StoreError>;

    /// Registered before `registered_before` and never authorized: the
    /// clients the unused sweep deletes (at most `limit`).
    async fn unused_dcr_clients(
        &self,
        registered_before: UnixTime,
        limit: u32,
    ) -> Result<Vec<String>, StoreError>;

    /// Deletes the client (and by cascade its registration, grants and
    /// tokens) with `event`, if it is still unused and registered before
    /// `registered_before`. `false` (and no event) otherwise.
    async fn delete_unused_dcr_client(
        &self,
        client_id: &str,
        registered_before: UnixTime,
        event: &NewAuditEvent,
    ) -> Result<bool, StoreError>;

    /// `active` dynamic clients whose last token (or, without one, last
    /// authorization or registration) is before `idle_before`: the clients
    /// the idle sweep expires (at most `limit`).
    async fn idle_dcr_clients(&self, idle_before: UnixTime, limit: u32) -> Result<Vec<String>, StoreError>;

    /// Stores a new initial access token with `event`.
    async fn create_initial_token(
        &self,
        token: &InitialToken,
        event: &NewAuditEvent,
    ) -> Result<(), StoreError>;

    async fn initial_token_by_hash(&self, hash: &str) -> Result<Option<InitialToken>, StoreError>;

    /// Every initial access token, newest first.
    async fn list_initial_tokens(&self) -> Result<Vec<InitialToken>, StoreError>;

    /// Revokes the token with `event`; `false` (and no event) if unknown or
    /// already revoked.
    async fn revoke_initial_token(
        &self,
        id: &str,
        now: UnixTime,
        event: &NewAuditEvent,
    ) -> Result<bool, StoreError>;
}
