//! The client inventory: every client of every kind (pre-registered,
//! metadata-document, dynamic), so operators can see and govern all
//! non-human identities in one place (CIMD -02 §7.1 kind discriminator).

use crate::StoreError;
use async_trait::async_trait;
use std::fmt;
use steward_core::{ClientKind, LifecycleState, TrustTier, UnixTime};

/// One inventory record.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientRecord {
    pub client_id: String,
    pub kind: ClientKind,
    pub display_name: Option<String>,
    pub first_seen: UnixTime,
    pub last_seen: UnixTime,
    pub state: LifecycleState,
    pub owner_organization: Option<String>,
    pub owner_business: Option<String>,
    pub owner_technical: Option<String>,
    pub owner_contact: Option<String>,
    pub trust_tier: TrustTier,
    /// Hash of the client secret, for confidential pre-registered/dynamic
    /// clients. Redacted in `Debug`: even a hash helps offline guessing of
    /// low-entropy operator-chosen secrets.
    pub secret_hash: Option<String>,
    /// Registration data as JSON text (redirect URIs, grant types, scopes,
    /// auth method …). Opaque to the store; the server owns its shape.
    pub registration: String,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
}

impl fmt::Debug for ClientRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientRecord")
            .field("client_id", &self.client_id)
            .field("kind", &self.kind)
            .field("display_name", &self.display_name)
            .field("first_seen", &self.first_seen)
            .field("last_seen", &self.last_seen)
            .field("state", &self.state)
            .field("owner_organization", &self.owner_organization)
            .field("owner_business", &self.owner_business)
            .field("owner_technical", &self.owner_technical)
            .field("owner_contact", &self.owner_contact)
            .field("trust_tier", &self.trust_tier)
            .field("secret_hash", &self.secret_hash.as_ref().map(|_| "[redacted]"))
            .field("registration", &self.registration)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// Which clients to list. `limit: None` lists all; rows come ordered by
/// `client_id` so paging with `offset` is stable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientFilter {
    pub kind: Option<ClientKind>,
    pub state: Option<LifecycleState>,
    /// Only clients whose display name equals this one, ignoring
    /// surrounding spaces and ASCII case (see [`name_key`]). Indexed, so the
    /// consent page's impersonation check reads the few clients of one name
    /// rather than the whole inventory (RFC 7591 §5).
    pub name: Option<String>,
    pub limit: Option<u32>,
    pub offset: u32,
}

/// How display names are compared: surrounding spaces and ASCII case do not
/// count. Both stores compare `lower(trim(display_name))` with this, by the
/// same expression their index is built on; SQLite's `lower` folds ASCII
/// only, so non-ASCII letters must match exactly on every store.
pub fn name_key(name: &str) -> String {
    name.trim_matches(' ').to_ascii_lowercase()
}

#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Inserts or replaces a client. On update `first_seen` and `created_at`
    /// keep their original values: the inventory remembers when a client
    /// first appeared even after its metadata changes. On update `state` is
    /// never written: a lifecycle move goes through governance's
    /// compare-and-set transition only, so a writer holding an older copy of
    /// the record cannot undo a concurrent suspension (issue 13 §9).
    async fn upsert_client(&self, client: &ClientRecord) -> Result<(), StoreError>;
    /// Creates the client if no client has its id. `false` (and nothing
    /// changed) if one does: two nodes meeting a new client at once create
    /// it once.
    async fn insert_client(&self, client: &ClientRecord) -> Result<bool, StoreError>;
    /// What a metadata fetch changes, and nothing else: `last_seen` and
    /// `updated_at` become `now`, and the display name is replaced when one
    /// is given. A targeted update, never read-modify-write of the whole
    /// record, so it cannot overwrite a lifecycle move, an owner change or a
    /// tier made meanwhile. `false` if the client is unknown.
    async fn refresh_client_metadata(
        &self,
        client_id: &str,
        display_name: Option<&str>,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    async fn get_client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError>;
    async fn list_clients(&self, filter: &ClientFilter) -> Result<Vec<ClientRecord>, StoreError>;
    /// Deletes the client and, by cascade, its metadata versions, grants,
    /// codes, refresh families and access tokens. `false` if it did not exist.
    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError>;
    /// Records that the client was just seen (`last_seen`). `false` if unknown.
    async fn touch_client(&self, client_id: &str, now: UnixTime) -> Result<bool, StoreError>;
    /// Moves the client to `state` and sets `updated_at`. `false` if unknown.
    async fn set_client_state(
        &self,
        client_id: &str,
        state: LifecycleState,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_secret_hash() {
        let c = ClientRecord {
            client_id: "cli".into(),
            kind: ClientKind::PreRegistered,
            display_name: None,
            first_seen: UnixTime(0),
            last_seen: UnixTime(0),
            state: LifecycleState::Active,
            owner_organization: None,
            owner_business: None,
            owner_technical: None,
            owner_contact: None,
            trust_tier: TrustTier::Trusted,
            secret_hash: Some("deadbeefcafe".into()),
            registration: "{}".into(),
            created_at: UnixTime(0),
            updated_at: UnixTime(0),
        };
        let shown = format!("{c:?}");
        assert!(shown.contains("cli") && shown.contains("[redacted]"));
        assert!(!shown.contains("deadbeefcafe"));
    }
}
