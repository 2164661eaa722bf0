//! Steward's persistence: async storage traits grouped by what they store,
//! one SQLite and one PostgreSQL implementation, embedded migrations per
//! backend, and one conformance suite (`tests/conformance.rs`) run unchanged
//! against both.
//!
//! The server holds an `Arc<dyn Store>` from [`connect`]; nothing outside this
//! crate knows which backend is in use. Codes, tokens, secrets and session ids
//! arrive here already hashed: the store never sees a usable credential.

pub mod access_tokens;
pub mod assertions;
pub mod attempts;
pub mod audit;
pub mod clients;
pub mod codes;
pub mod dcr;
pub mod deployment;
pub mod error;
mod governance;
pub mod grants;
pub mod keys;
pub mod logos;
pub mod maintenance;
pub mod metadata_versions;
mod migrations;
pub mod postgres;
mod purge_sql;
pub mod refresh;
pub mod sessions;
pub mod sqlite;
pub mod users;

pub use access_tokens::{AccessTokenRecord, AccessTokenStore};
pub use assertions::AssertionStore;
pub use attempts::AttemptStore;
pub use audit::{AuditEvent, AuditFilter, AuditStore, NewAuditEvent};
pub use clients::{ClientFilter, ClientRecord, ClientStore, name_key};
pub use codes::{AuthorizationCode, CodeConsumption, CodeIssuance, CodeStore};
pub use dcr::{DcrRegistration, DcrStore, DcrUse, InitialToken, NewRegistration, RegisterOutcome};
pub use deployment::DeploymentStore;
pub use error::StoreError;
pub use grants::{Grant, GrantStore, NewGrant};
pub use keys::{KeyStore, SigningKey};
pub use logos::{Logo, LogoStore};
pub use maintenance::{MaintenanceStore, PurgePlan, PurgeReport, REFUSAL_AUDIT_ACTIONS};
pub use metadata_versions::{MetadataVersion, MetadataVersionStore, NewMetadataVersion};
pub use postgres::{PoolSettings, PostgresStore};
pub use refresh::{
    NewRefreshFamily, NewRefreshToken, RefreshFamily, RefreshRecord, RefreshStore, RefreshToken, Rotation,
};
pub use sessions::{Session, SessionStore};
pub use sqlite::SqliteStore;
pub use users::{User, UserStore};

use async_trait::async_trait;
use std::sync::Arc;

/// Which database a [`Store`] talks to (for diagnostics and metrics labels).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub const fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Everything Steward persists, including what the governance room reads
/// and changes through its port (`steward_governance::port::GovernanceStore`).
#[async_trait]
pub trait Store:
    ClientStore
    + MetadataVersionStore
    + UserStore
    + SessionStore
    + GrantStore
    + CodeStore
    + RefreshStore
    + AccessTokenStore
    + KeyStore
    + AuditStore
    + AssertionStore
    + LogoStore
    + AttemptStore
    + MaintenanceStore
    + DeploymentStore
    + DcrStore
    + steward_governance::port::GovernanceStore
    + Send
    + Sync
{
    /// A round trip to the database (readiness probes).
    async fn ping(&self) -> Result<(), StoreError>;
    /// The client's record and its governance view, read together (one
    /// round trip on PostgreSQL): the token endpoint authenticates the
    /// client from the record and asks the policy with the view, and two
    /// reads per request cost a round trip each.
    async fn client_with_view(
        &self,
        client_id: &str,
    ) -> Result<Option<(ClientRecord, steward_governance::model::ClientView)>, StoreError>;
    /// The client's record and its governance revision (one row): a node
    /// keeping the client's view reuses it while the revision is unchanged.
    async fn client_and_revision(&self, client_id: &str) -> Result<Option<(ClientRecord, i64)>, StoreError>;
    fn backend(&self) -> Backend;
}

/// Opens the database named by `url`, applies the embedded migrations and
/// returns the store.
///
/// - `sqlite://path/to/file.db` (or `sqlite:path`): creates the file and its
///   parent directory; WAL, `synchronous=NORMAL`, foreign keys, busy timeout.
/// - `sqlite::memory:`: a private in-memory database (tests).
/// - `postgres://…` / `postgresql://…`: a search path can be given with
///   `?options=-c%20search_path%3Dmyschema`.
///
/// Fails with [`StoreError::SchemaTooNew`] if a newer Steward migrated the
/// database: never silently downgrade.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    connect_pooled(url, PoolSettings::default()).await
}

/// Whether a Steward database is already at `url`, without creating one:
/// a SQLite file exists (an in-memory database always does), a PostgreSQL
/// database has been migrated.
pub async fn database_exists(url: &str) -> Result<bool, StoreError> {
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        "sqlite" => Ok(match SqliteStore::file_of(url) {
            Some(path) => path.exists(),
            None => true,
        }),
        "postgres" | "postgresql" => PostgresStore::is_initialized(url).await,
        other => Err(StoreError::UnsupportedUrl {
            scheme: other.chars().take(32).collect(),
        }),
    }
}

/// [`connect`] with the PostgreSQL pool's settings (SQLite has no pool to
/// wait for: its file is local).
pub async fn connect_pooled(url: &str, pool: PoolSettings) -> Result<Arc<dyn Store>, StoreError> {
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        "sqlite" => Ok(Arc::new(SqliteStore::connect(url).await?)),
        "postgres" | "postgresql" => Ok(Arc::new(PostgresStore::connect_pooled(url, pool).await?)),
        // Only the scheme is echoed: the rest may hold a password.
        other => Err(StoreError::UnsupportedUrl {
            scheme: other.chars().take(32).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_scheme_is_refused_without_echoing_the_url() {
        let Err(e) = connect("mysql://root:hunter2@127.0.0.1/db").await else {
            panic!("mysql must be refused");
        };
        assert!(matches!(&e, StoreError::UnsupportedUrl { scheme } if scheme == "mysql"));
        assert!(!e.to_string().contains("hunter2"));
    }
}
