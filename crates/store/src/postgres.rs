//! The PostgreSQL backend, for multi-node deployments sharing one database.
//!
//! Atomicity rests on row locks under READ COMMITTED: a conditional
//! `UPDATE … WHERE consumed_at IS NULL` (or `used_at IS NULL`) blocks on a
//! concurrent writer of the same row and then re-evaluates its condition
//! against the committed row, so exactly one of N concurrent redeemers wins.

use crate::error::{parse_column, sql_limit};
use crate::migrations::{self, POSTGRES};
use crate::*;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgConnection, PgPool, Row};
use std::str::FromStr;
use std::time::Duration;
use steward_core::{LifecycleState, UnixTime};

/// Connections per node. The token endpoint does one or two short statements
/// per request, so a small pool saturates the database before the pool.
const POOL_SIZE: u32 = 16;
/// How long the server gets to answer the first connection: an unreachable
/// database stops start-up in seconds, with the reason.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How a node's connection pool waits for the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSettings {
    /// How long a request waits for a connection before the store answers
    /// [`StoreError::Unavailable`]. Short, so that with the database
    /// unreachable (refused, or connections hanging) every request is
    /// answered 503 in about this long instead of queueing: sqlx retries a
    /// refused connection until this deadline.
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            acquire_timeout: Duration::from_millis(1_000),
        }
    }
}
mod dcr;
mod governance;

#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
}

/// One direct connection, failing within [`CONNECT_TIMEOUT`] with the cause
/// (a pool would retry a refused or unanswered connection until its acquire
/// timeout and then report only "pool timed out").
async fn one_connection(options: &PgConnectOptions) -> Result<sqlx::PgConnection, StoreError> {
    tokio::time::timeout(
        CONNECT_TIMEOUT,
        <sqlx::PgConnection as sqlx::Connection>::connect_with(options),
    )
    .await
    .map_err(|_| StoreError::Database {
        reason: "cannot connect to PostgreSQL",
        source: Box::new(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
        )),
    })?
    .map_err(|source| StoreError::Database {
        reason: "cannot connect to PostgreSQL",
        source: Box::new(source),
    })
}

impl PostgresStore {
    /// Connects to `url` (which may carry `?options=-c%20search_path%3D…`)
    /// and migrates the database.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_pooled(url, PoolSettings::default()).await
    }

    /// [`PostgresStore::connect`] with the pool's settings.
    pub async fn connect_pooled(url: &str, pool: PoolSettings) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(|e| StoreError::InvalidUrl(Box::new(e)))?;
        Self::connect_with(options, pool).await
    }

    /// Whether Steward has ever migrated the database at `url` (its
    /// bookkeeping table is on the search path). Nothing is created: the
    /// CLI's read-only commands ask this before opening a store, which would
    /// migrate an empty database (issue 15 item 4).
    pub async fn is_initialized(url: &str) -> Result<bool, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(|e| StoreError::InvalidUrl(Box::new(e)))?;
        let mut conn = one_connection(&options).await?;
        let found: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(&mut conn)
            .await?;
        let _ = sqlx::Connection::close(conn).await;
        Ok(found)
    }

    /// Connects with every table in `schema` (via `search_path`), e.g. one
    /// schema per test or per tenant. The schema must already exist.
    pub async fn connect_with_schema(url: &str, schema: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::InvalidUrl(Box::new(e)))?
            .options([("search_path", schema)]);
        Self::connect_with(options, PoolSettings::default()).await
    }

    async fn connect_with(options: PgConnectOptions, pool: PoolSettings) -> Result<Self, StoreError> {
        // One direct connection first, for a fast and specific failure.
        let probe = one_connection(&options).await?;
        let _ = sqlx::Connection::close(probe).await;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(pool.acquire_timeout)
            .connect_with(options)
            .await?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending embedded migrations; a no-op when up to date.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = migrations::migrator(POSTGRES).await?;
        migrator
            .run(&self.pool)
            .await
            .map_err(|e| migrations::map_migrate_error(POSTGRES, e))
    }

    /// The underlying pool (for tests and maintenance commands).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn t(v: i64) -> UnixTime {
    UnixTime(v)
}

fn ot(v: Option<i64>) -> Option<UnixTime> {
    v.map(UnixTime)
}

const CLIENT_COLS: &str = "client_id, kind, display_name, first_seen, last_seen, state, owner_organization, \
    owner_business, owner_technical, owner_contact, trust_tier, secret_hash, registration, created_at, updated_at";

/// A client row read with `", governance_rev"` after [`CLIENT_COLS`].
fn client_rev_row(r: &PgRow) -> Result<(ClientRecord, i64), StoreError> {
    Ok((client_row(r)?, r.try_get("governance_rev")?))
}

fn client_row(r: &PgRow) -> Result<ClientRecord, StoreError> {
    Ok(ClientRecord {
        client_id: r.try_get("client_id")?,
        kind: parse_column("kind", r.try_get::<&str, _>("kind")?)?,
        display_name: r.try_get("display_name")?,
        first_seen: t(r.try_get("first_seen")?),
        last_seen: t(r.try_get("last_seen")?),
        state: parse_column("state", r.try_get::<&str, _>("state")?)?,
        owner_organization: r.try_get("owner_organization")?,
        owner_business: r.try_get("owner_business")?,
        owner_technical: r.try_get("owner_technical")?,
        owner_contact: r.try_get("owner_contact")?,
        trust_tier: parse_column("trust_tier", r.try_get::<&str, _>("trust_tier")?)?,
        secret_hash: r.try_get("secret_hash")?,
        registration: r.try_get("registration")?,
        created_at: t(r.try_get("created_at")?),
        updated_at: t(r.try_get("updated_at")?),
    })
}

const MV_COLS: &str =
    "id, client_id, content_hash, body, fetched_at, last_seen_at, etag, last_modified, peer_addr";

fn mv_row(r: &PgRow) -> Result<MetadataVersion, StoreError> {
    Ok(MetadataVersion {
        id: r.try_get("id")?,
        client_id: r.try_get("client_id")?,
        content_hash: r.try_get("content_hash")?,
        body: r.try_get("body")?,
        fetched_at: t(r.try_get("fetched_at")?),
        last_seen_at: t(r.try_get("last_seen_at")?),
        etag: r.try_get("etag")?,
        last_modified: r.try_get("last_modified")?,
        peer_addr: r.try_get("peer_addr")?,
    })
}

const USER_COLS: &str = "id, username, password_hash, created_at, disabled";

fn user_row(r: &PgRow) -> Result<User, StoreError> {
    Ok(User {
        id: r.try_get("id")?,
        username: r.try_get("username")?,
        password_hash: r.try_get("password_hash")?,
        created_at: t(r.try_get("created_at")?),
        disabled: r.try_get("disabled")?,
    })
}

const SESSION_COLS: &str = "id_hash, user_id, created_at, expires_at, auth_time";

fn session_row(r: &PgRow) -> Result<Session, StoreError> {
    Ok(Session {
        id_hash: r.try_get("id_hash")?,
        user_id: r.try_get("user_id")?,
        created_at: t(r.try_get("created_at")?),
        expires_at: t(r.try_get("expires_at")?),
        auth_time: t(r.try_get("auth_time")?),
    })
}

const GRANT_COLS: &str = "id, user_id, client_id, redirect_uri, scopes, resource, metadata_version_id, \
    created_at, updated_at, revoked_at";

fn grant_row(r: &PgRow) -> Result<Grant, StoreError> {
    Ok(Grant {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        client_id: r.try_get("client_id")?,
        redirect_uri: r.try_get("redirect_uri")?,
        scopes: r.try_get("scopes")?,
        resource: r.try_get("resource")?,
        metadata_version_id: r.try_get("metadata_version_id")?,
        created_at: t(r.try_get("created_at")?),
        updated_at: t(r.try_get("updated_at")?),
        revoked_at: ot(r.try_get("revoked_at")?),
    })
}

const CODE_COLS: &str = "code_hash, client_id, user_id, grant_id, redirect_uri, code_challenge, scopes, \
    resource, metadata_version_id, auth_time, created_at, expires_at, consumed_at, family_id";

fn code_row(r: &PgRow) -> Result<AuthorizationCode, StoreError> {
    Ok(AuthorizationCode {
        code_hash: r.try_get("code_hash")?,
        client_id: r.try_get("client_id")?,
        user_id: r.try_get("user_id")?,
        grant_id: r.try_get("grant_id")?,
        redirect_uri: r.try_get("redirect_uri")?,
        code_challenge: r.try_get("code_challenge")?,
        scopes: r.try_get("scopes")?,
        resource: r.try_get("resource")?,
        metadata_version_id: r.try_get("metadata_version_id")?,
        auth_time: t(r.try_get("auth_time")?),
        created_at: t(r.try_get("created_at")?),
        expires_at: t(r.try_get("expires_at")?),
        consumed_at: ot(r.try_get("consumed_at")?),
        family_id: r.try_get("family_id")?,
    })
}

const FAMILY_COLS: &str =
    "id, grant_id, client_id, user_id, scopes, resource, auth_time, created_at, revoked_at";

fn family_row(r: &PgRow) -> Result<RefreshFamily, StoreError> {
    Ok(RefreshFamily {
        id: r.try_get("id")?,
        grant_id: r.try_get("grant_id")?,
        client_id: r.try_get("client_id")?,
        user_id: r.try_get("user_id")?,
        scopes: r.try_get("scopes")?,
        resource: r.try_get("resource")?,
        auth_time: ot(r.try_get("auth_time")?),
        created_at: t(r.try_get("created_at")?),
        revoked_at: ot(r.try_get("revoked_at")?),
    })
}

const AT_COLS: &str = "jti, token_hash, client_id, user_id, grant_id, family_id, scopes, resource, \
    issued_at, expires_at, revoked_at";

fn at_row(r: &PgRow) -> Result<AccessTokenRecord, StoreError> {
    Ok(AccessTokenRecord {
        jti: r.try_get("jti")?,
        token_hash: r.try_get("token_hash")?,
        client_id: r.try_get("client_id")?,
        user_id: r.try_get("user_id")?,
        grant_id: r.try_get("grant_id")?,
        family_id: r.try_get("family_id")?,
        scopes: r.try_get("scopes")?,
        resource: r.try_get("resource")?,
        issued_at: t(r.try_get("issued_at")?),
        expires_at: t(r.try_get("expires_at")?),
        revoked_at: ot(r.try_get("revoked_at")?),
    })
}

const KEY_COLS: &str = "kid, algorithm, public_jwk, private_key_encrypted, created_at, activated_at, retire_after, \
    retired_at, published_at";

fn key_row(r: &PgRow) -> Result<SigningKey, StoreError> {
    Ok(SigningKey {
        kid: r.try_get("kid")?,
        algorithm: r.try_get("algorithm")?,
        public_jwk: r.try_get("public_jwk")?,
        private_key_encrypted: r.try_get("private_key_encrypted")?,
        created_at: t(r.try_get("created_at")?),
        activated_at: ot(r.try_get("activated_at")?),
        retire_after: ot(r.try_get("retire_after")?),
        retired_at: ot(r.try_get("retired_at")?),
        published_at: ot(r.try_get("published_at")?),
    })
}

const AUDIT_COLS: &str = "id, at, actor, action, client_id, subject, detail";

fn audit_row(r: &PgRow) -> Result<AuditEvent, StoreError> {
    Ok(AuditEvent {
        id: r.try_get("id")?,
        at: t(r.try_get("at")?),
        actor: r.try_get("actor")?,
        action: r.try_get("action")?,
        client_id: r.try_get("client_id")?,
        subject: r.try_get("subject")?,
        detail: r.try_get("detail")?,
    })
}

/// Binds a client record's columns, in [`CLIENT_COLS`] order, as `$1`…`$15`.
pub(crate) fn bind_client<'q>(
    q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    c: &'q ClientRecord,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    q.bind(&c.client_id)
        .bind(c.kind.as_str())
        .bind(&c.display_name)
        .bind(c.first_seen.0)
        .bind(c.last_seen.0)
        .bind(c.state.as_str())
        .bind(&c.owner_organization)
        .bind(&c.owner_business)
        .bind(&c.owner_technical)
        .bind(&c.owner_contact)
        .bind(c.trust_tier.as_str())
        .bind(&c.secret_hash)
        .bind(&c.registration)
        .bind(c.created_at.0)
        .bind(c.updated_at.0)
}

fn collect<T>(rows: &[PgRow], f: fn(&PgRow) -> Result<T, StoreError>) -> Result<Vec<T>, StoreError> {
    rows.iter().map(f).collect()
}

// Statements shared by a store call of their own and the combined calls
// of a flow (one transaction).

async fn upsert_grant_on(conn: &mut PgConnection, g: &NewGrant) -> Result<Grant, StoreError> {
    let row = sqlx::query(&format!(
        "INSERT INTO grants (id, user_id, client_id, redirect_uri, scopes, resource, metadata_version_id, \
             created_at, updated_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, NULL) \
             ON CONFLICT (user_id, client_id, redirect_uri) DO UPDATE SET scopes = excluded.scopes, \
             resource = excluded.resource, metadata_version_id = excluded.metadata_version_id, \
             updated_at = excluded.updated_at, revoked_at = NULL \
             RETURNING {GRANT_COLS}"
    ))
    .bind(&g.id)
    .bind(&g.user_id)
    .bind(&g.client_id)
    .bind(&g.redirect_uri)
    .bind(&g.scopes)
    .bind(&g.resource)
    .bind(g.metadata_version_id)
    .bind(g.now.0)
    .fetch_one(&mut *conn)
    .await?;
    grant_row(&row)
}

async fn insert_code_on(conn: &mut PgConnection, c: &AuthorizationCode) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "INSERT INTO authorization_codes ({CODE_COLS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    ))
    .bind(&c.code_hash)
    .bind(&c.client_id)
    .bind(&c.user_id)
    .bind(&c.grant_id)
    .bind(&c.redirect_uri)
    .bind(&c.code_challenge)
    .bind(&c.scopes)
    .bind(&c.resource)
    .bind(c.metadata_version_id)
    .bind(c.auth_time.0)
    .bind(c.created_at.0)
    .bind(c.expires_at.0)
    .bind(c.consumed_at.map(|t| t.0))
    .bind(&c.family_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn insert_access_token_on(conn: &mut PgConnection, a: &AccessTokenRecord) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "INSERT INTO access_tokens ({AT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(&a.jti)
    .bind(&a.token_hash)
    .bind(&a.client_id)
    .bind(&a.user_id)
    .bind(&a.grant_id)
    .bind(&a.family_id)
    .bind(&a.scopes)
    .bind(&a.resource)
    .bind(a.issued_at.0)
    .bind(a.expires_at.0)
    .bind(a.revoked_at.map(|t| t.0))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn complete_redemption_on(
    conn: &mut PgConnection,
    code_hash: &str,
    family_id: Option<&str>,
    access_jti: Option<&str>,
) -> Result<bool, StoreError> {
    let r = sqlx::query(
        "UPDATE authorization_codes SET family_id = $1, access_jti = $2 \
         WHERE code_hash = $3 AND replayed_at IS NULL",
    )
    .bind(family_id)
    .bind(access_jti)
    .bind(code_hash)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() > 0)
}

/// Appends one audit event on the caller's connection, inside its
/// transaction when it has one (governance changes write theirs with the
/// change, issue 13 §8).
async fn append_audit_on(conn: &mut PgConnection, e: &NewAuditEvent) -> Result<AuditEvent, StoreError> {
    let row = sqlx::query(&format!(
        "INSERT INTO audit_events (at, actor, action, client_id, subject, detail) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {AUDIT_COLS}"
    ))
    .bind(e.at.0)
    .bind(&e.actor)
    .bind(&e.action)
    .bind(&e.client_id)
    .bind(&e.subject)
    .bind(&e.detail)
    .fetch_one(&mut *conn)
    .await?;
    audit_row(&row)
}

async fn touch_client_on(
    conn: &mut PgConnection,
    client_id: &str,
    now: UnixTime,
) -> Result<bool, StoreError> {
    let r = sqlx::query("UPDATE clients SET last_seen = $1 WHERE client_id = $2")
        .bind(now.0)
        .bind(client_id)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() > 0)
}

async fn create_family_on(
    conn: &mut PgConnection,
    f: &NewRefreshFamily,
    first: &NewRefreshToken,
) -> Result<RefreshFamily, StoreError> {
    let row = sqlx::query(&format!(
            "INSERT INTO refresh_families (id, grant_id, client_id, user_id, scopes, resource, auth_time, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {FAMILY_COLS}"
        ))
        .bind(&f.id)
        .bind(&f.grant_id)
        .bind(&f.client_id)
        .bind(&f.user_id)
        .bind(&f.scopes)
        .bind(&f.resource)
        .bind(f.auth_time.map(|a| a.0))
        .bind(f.created_at.0)
        .fetch_one(&mut *conn)
        .await?;
    let family = family_row(&row)?;
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, family_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&first.token_hash)
    .bind(&f.id)
    .bind(f.created_at.0)
    .bind(first.expires_at.0)
    .execute(&mut *conn)
    .await?;
    Ok(family)
}

#[async_trait]
impl ClientStore for PostgresStore {
    async fn upsert_client(&self, c: &ClientRecord) -> Result<(), StoreError> {
        bind_client(
            sqlx::query(
            "INSERT INTO clients (client_id, kind, display_name, first_seen, last_seen, state, \
             owner_organization, owner_business, owner_technical, owner_contact, trust_tier, secret_hash, \
             registration, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             ON CONFLICT (client_id) DO UPDATE SET kind = excluded.kind, display_name = excluded.display_name, \
             last_seen = excluded.last_seen, \
             owner_organization = excluded.owner_organization, owner_business = excluded.owner_business, \
             owner_technical = excluded.owner_technical, owner_contact = excluded.owner_contact, \
             trust_tier = excluded.trust_tier, secret_hash = excluded.secret_hash, \
             registration = excluded.registration, updated_at = excluded.updated_at",
        ),
            c,
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn insert_client(&self, c: &ClientRecord) -> Result<bool, StoreError> {
        let r = bind_client(
            sqlx::query(&format!(
                "INSERT INTO clients ({CLIENT_COLS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             ON CONFLICT (client_id) DO NOTHING"
            )),
            c,
        )
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn refresh_client_metadata(
        &self,
        client_id: &str,
        display_name: Option<&str>,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE clients SET last_seen = GREATEST(last_seen, $1), updated_at = $1, \
             display_name = COALESCE($2, display_name) WHERE client_id = $3",
        )
        .bind(now.0)
        .bind(display_name)
        .bind(client_id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn get_client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {CLIENT_COLS} FROM clients WHERE client_id = $1"))
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(client_row).transpose()
    }

    async fn list_clients(&self, f: &ClientFilter) -> Result<Vec<ClientRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CLIENT_COLS} FROM clients WHERE ($1 IS NULL OR kind = $1) AND ($2 IS NULL OR state = $2) \
             AND ($5::TEXT IS NULL OR lower(trim(display_name)) = $5) \
             ORDER BY client_id LIMIT $3 OFFSET $4"
        ))
        .bind(f.kind.map(|k| k.as_str()))
        .bind(f.state.map(|s| s.as_str()))
        .bind(sql_limit(f.limit))
        .bind(i64::from(f.offset))
        .bind(f.name.as_deref().map(crate::clients::name_key))
        .fetch_all(&self.pool)
        .await?;
        collect(&rows, client_row)
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM clients WHERE client_id = $1")
            .bind(client_id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn touch_client(&self, client_id: &str, now: UnixTime) -> Result<bool, StoreError> {
        let mut conn = self.pool.acquire().await?;
        touch_client_on(&mut conn, client_id, now).await
    }

    async fn set_client_state(
        &self,
        client_id: &str,
        state: LifecycleState,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE clients SET state = $1, updated_at = $2 WHERE client_id = $3")
            .bind(state.as_str())
            .bind(now.0)
            .bind(client_id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }
}

#[async_trait]
impl MetadataVersionStore for PostgresStore {
    async fn record_metadata_version(&self, v: &NewMetadataVersion) -> Result<MetadataVersion, StoreError> {
        let row = sqlx::query(&format!(
            "INSERT INTO client_metadata_versions \
             (client_id, content_hash, body, fetched_at, last_seen_at, etag, last_modified, peer_addr) \
             VALUES ($1, $2, $3, $4, $4, $5, $6, $7) \
             ON CONFLICT (client_id, content_hash) DO UPDATE SET last_seen_at = excluded.last_seen_at, \
             etag = excluded.etag, last_modified = excluded.last_modified \
             RETURNING {MV_COLS}"
        ))
        .bind(&v.client_id)
        .bind(&v.content_hash)
        .bind(&v.body)
        .bind(v.fetched_at.0)
        .bind(&v.etag)
        .bind(&v.last_modified)
        .bind(&v.peer_addr)
        .fetch_one(&self.pool)
        .await?;
        mv_row(&row)
    }

    async fn latest_metadata_version(&self, client_id: &str) -> Result<Option<MetadataVersion>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {MV_COLS} FROM client_metadata_versions WHERE client_id = $1 \
             ORDER BY last_seen_at DESC, id DESC LIMIT 1"
        ))
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(mv_row).transpose()
    }

    async fn get_metadata_version(&self, id: i64) -> Result<Option<MetadataVersion>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {MV_COLS} FROM client_metadata_versions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(mv_row).transpose()
    }

    async fn list_metadata_versions(&self, client_id: &str) -> Result<Vec<MetadataVersion>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {MV_COLS} FROM client_metadata_versions WHERE client_id = $1 ORDER BY id"
        ))
        .bind(client_id)
        .fetch_all(&self.pool)
        .await?;
        collect(&rows, mv_row)
    }
}

#[async_trait]
impl UserStore for PostgresStore {
    async fn create_user(&self, u: &User) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO users (id, username, password_hash, created_at, disabled) VALUES ($1, $2, $3, $4, $5)")
            .bind(&u.id)
            .bind(&u.username)
            .bind(&u.password_hash)
            .bind(u.created_at.0)
            .bind(u.disabled)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn get_user(&self, id: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_row).transpose()
    }

    async fn get_user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE username = $1"))
            .bind(username)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_row).transpose()
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {USER_COLS} FROM users ORDER BY username"))
            .fetch_all(&self.pool)
            .await?;
        collect(&rows, user_row)
    }

    async fn set_user_disabled(&self, id: &str, disabled: bool) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2")
            .bind(disabled)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn delete_user(&self, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }
}

#[async_trait]
impl SessionStore for PostgresStore {
    async fn create_session(&self, s: &Session) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, created_at, expires_at, auth_time) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&s.id_hash)
        .bind(&s.user_id)
        .bind(s.created_at.0)
        .bind(s.expires_at.0)
        .bind(s.auth_time.0)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_session(&self, id_hash: &str, now: UnixTime) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE id_hash = $1 AND expires_at > $2"
        ))
        .bind(id_hash)
        .bind(now.0)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(session_row).transpose()
    }

    async fn delete_session(&self, id_hash: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn delete_sessions_of_user(&self, user_id: &str) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }
}

#[async_trait]
impl GrantStore for PostgresStore {
    async fn upsert_grant(&self, g: &NewGrant) -> Result<Grant, StoreError> {
        let mut conn = self.pool.acquire().await?;
        upsert_grant_on(&mut conn, g).await
    }

    async fn get_grant(&self, id: &str) -> Result<Option<Grant>, StoreError> {
        let row = sqlx::query(&format!("SELECT {GRANT_COLS} FROM grants WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(grant_row).transpose()
    }

    async fn find_grant(
        &self,
        user_id: &str,
        client_id: &str,
        redirect_uri: &str,
    ) -> Result<Option<Grant>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {GRANT_COLS} FROM grants WHERE user_id = $1 AND client_id = $2 AND redirect_uri = $3"
        ))
        .bind(user_id)
        .bind(client_id)
        .bind(redirect_uri)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(grant_row).transpose()
    }

    async fn list_grants(&self, client_id: &str) -> Result<Vec<Grant>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {GRANT_COLS} FROM grants WHERE client_id = $1 ORDER BY created_at, id"
        ))
        .bind(client_id)
        .fetch_all(&self.pool)
        .await?;
        collect(&rows, grant_row)
    }

    async fn revoke_grant(&self, id: &str, now: UnixTime) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE grants SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now.0)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }
}

#[async_trait]
impl CodeStore for PostgresStore {
    async fn insert_code(&self, c: &AuthorizationCode) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        insert_code_on(&mut conn, c).await
    }

    async fn get_code(&self, code_hash: &str) -> Result<Option<AuthorizationCode>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CODE_COLS} FROM authorization_codes WHERE code_hash = $1"
        ))
        .bind(code_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(code_row).transpose()
    }

    async fn consume_code(&self, code_hash: &str, now: UnixTime) -> Result<CodeConsumption, StoreError> {
        // One statement: the check and the mark cannot be interleaved.
        let won = sqlx::query(&format!(
            "UPDATE authorization_codes SET consumed_at = $1 \
             WHERE code_hash = $2 AND consumed_at IS NULL AND expires_at > $1 RETURNING {CODE_COLS}"
        ))
        .bind(now.0)
        .bind(code_hash)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = won {
            return Ok(CodeConsumption::Consumed(code_row(&row)?));
        }
        let row = sqlx::query(&format!(
            "SELECT {CODE_COLS} FROM authorization_codes WHERE code_hash = $1"
        ))
        .bind(code_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row.as_ref().map(code_row).transpose()? {
            None => CodeConsumption::NotFound,
            Some(code) if code.consumed_at.is_some() => CodeConsumption::Replayed(code),
            Some(_) => CodeConsumption::Expired,
        })
    }

    async fn complete_redemption(
        &self,
        code_hash: &str,
        family_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut conn = self.pool.acquire().await?;
        complete_redemption_on(&mut conn, code_hash, family_id, None).await
    }

    async fn record_authorization(
        &self,
        grant: &NewGrant,
        code: &AuthorizationCode,
    ) -> Result<Grant, StoreError> {
        let mut tx = self.pool.begin().await?;
        // A re-approval of what is already granted changes no grant row: a
        // shared lock is enough to keep it from being revoked under this
        // code, and unlike the upsert's row lock it does not make every
        // concurrent authorization of the same user and client wait for the
        // previous one's commit.
        let unchanged = sqlx::query(&format!(
            "SELECT {GRANT_COLS} FROM grants WHERE user_id = $1 AND client_id = $2 AND redirect_uri = $3 \
             AND scopes = $4 AND resource IS NOT DISTINCT FROM $5 \
             AND metadata_version_id IS NOT DISTINCT FROM $6 AND revoked_at IS NULL FOR SHARE"
        ))
        .bind(&grant.user_id)
        .bind(&grant.client_id)
        .bind(&grant.redirect_uri)
        .bind(&grant.scopes)
        .bind(&grant.resource)
        .bind(grant.metadata_version_id)
        .fetch_optional(&mut *tx)
        .await?;
        let stored = match unchanged {
            Some(row) => grant_row(&row)?,
            None => upsert_grant_on(&mut tx, grant).await?,
        };
        let code = AuthorizationCode {
            grant_id: stored.id.clone(),
            ..code.clone()
        };
        insert_code_on(&mut tx, &code).await?;
        tx.commit().await?;
        // Last-seen is bookkeeping, written after the commit and only when
        // the second changes: one UPDATE of the client's row per
        // authorization serialized every authorization of that client on
        // the row lock.
        // The code is committed: a failure here must not fail the approval.
        if let Err(e) =
            sqlx::query("UPDATE clients SET last_seen = $1 WHERE client_id = $2 AND last_seen < $1")
                .bind(grant.now.0)
                .bind(&grant.client_id)
                .execute(&self.pool)
                .await
        {
            tracing::warn!(error = %StoreError::from(e), "could not record when the client was last seen");
        }
        Ok(stored)
    }

    async fn record_redemption(
        &self,
        code_hash: &str,
        refresh: Option<(&NewRefreshFamily, &NewRefreshToken)>,
        access: &AccessTokenRecord,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        if let Some((family, first)) = refresh {
            create_family_on(&mut tx, family, first).await?;
        }
        insert_access_token_on(&mut tx, access).await?;
        let completed = complete_redemption_on(
            &mut tx,
            code_hash,
            refresh.map(|(f, _)| f.id.as_str()),
            Some(&access.jti),
        )
        .await?;
        tx.commit().await?;
        Ok(completed)
    }

    async fn mark_code_replayed(
        &self,
        code_hash: &str,
        now: UnixTime,
    ) -> Result<Option<CodeIssuance>, StoreError> {
        let row = sqlx::query(
            "UPDATE authorization_codes SET replayed_at = COALESCE(replayed_at, $1) \
             WHERE code_hash = $2 RETURNING family_id, access_jti",
        )
        .bind(now.0)
        .bind(code_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        let issued = CodeIssuance {
            family_id: r.try_get("family_id")?,
            access_jti: r.try_get("access_jti")?,
        };
        Ok((issued.family_id.is_some() || issued.access_jti.is_some()).then_some(issued))
    }
}

#[async_trait]
impl RefreshStore for PostgresStore {
    async fn create_family(
        &self,
        f: &NewRefreshFamily,
        first: &NewRefreshToken,
    ) -> Result<RefreshFamily, StoreError> {
        let mut tx = self.pool.begin().await?;
        let family = create_family_on(&mut tx, f, first).await?;
        tx.commit().await?;
        Ok(family)
    }

    async fn rotate_refresh(
        &self,
        old_hash: &str,
        new: &NewRefreshToken,
        now: UnixTime,
        access: Option<&AccessTokenRecord>,
    ) -> Result<Rotation, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Concurrent rotations block on this row's lock; when the winner
        // commits, the others re-check `used_at IS NULL` and match nothing.
        let won: Option<String> = sqlx::query_scalar(
            "UPDATE refresh_tokens SET used_at = $1 \
             WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 \
             AND family_id IN (SELECT id FROM refresh_families WHERE revoked_at IS NULL) \
             RETURNING family_id",
        )
        .bind(now.0)
        .bind(old_hash)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(family_id) = won {
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, family_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&new.token_hash)
            .bind(&family_id)
            .bind(now.0)
            .bind(new.expires_at.0)
            .execute(&mut *tx)
            .await?;
            let row = sqlx::query(&format!(
                "SELECT {FAMILY_COLS} FROM refresh_families WHERE id = $1"
            ))
            .bind(&family_id)
            .fetch_one(&mut *tx)
            .await?;
            let family = family_row(&row)?;
            if let Some(access) = access {
                insert_access_token_on(&mut tx, access).await?;
            }
            tx.commit().await?;
            return Ok(Rotation::Rotated(family));
        }
        let row = sqlx::query(
            "SELECT t.family_id, t.used_at, f.revoked_at FROM refresh_tokens t \
             JOIN refresh_families f ON f.id = t.family_id WHERE t.token_hash = $1",
        )
        .bind(old_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(Rotation::NotFound);
        };
        let family_id: String = row.try_get("family_id")?;
        let used_at: Option<i64> = row.try_get("used_at")?;
        let revoked_at: Option<i64> = row.try_get("revoked_at")?;
        if revoked_at.is_some() {
            return Ok(Rotation::Revoked);
        }
        if used_at.is_none() {
            return Ok(Rotation::Expired);
        }
        // Reuse of a rotated token: revoke the family and its access tokens.
        sqlx::query("UPDATE refresh_families SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now.0)
            .bind(&family_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE access_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL")
            .bind(now.0)
            .bind(&family_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Rotation::Reused { family_id })
    }

    async fn get_refresh(&self, token_hash: &str) -> Result<Option<RefreshRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT t.token_hash, t.family_id, t.created_at AS t_created_at, t.expires_at, t.used_at, \
             f.id, f.grant_id, f.client_id, f.user_id, f.scopes, f.resource, f.auth_time, f.created_at, f.revoked_at \
             FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id WHERE t.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let token = RefreshToken {
            token_hash: row.try_get("token_hash")?,
            family_id: row.try_get("family_id")?,
            created_at: t(row.try_get("t_created_at")?),
            expires_at: t(row.try_get("expires_at")?),
            used_at: ot(row.try_get("used_at")?),
        };
        Ok(Some(RefreshRecord {
            token,
            family: family_row(&row)?,
        }))
    }

    async fn revoke_family(&self, family_id: &str, now: UnixTime) -> Result<bool, StoreError> {
        let r =
            sqlx::query("UPDATE refresh_families SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now.0)
                .bind(family_id)
                .execute(&self.pool)
                .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn revoke_families_of_grant(&self, grant_id: &str, now: UnixTime) -> Result<u64, StoreError> {
        let r = sqlx::query(
            "UPDATE refresh_families SET revoked_at = $1 WHERE grant_id = $2 AND revoked_at IS NULL",
        )
        .bind(now.0)
        .bind(grant_id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }
}

#[async_trait]
impl AccessTokenStore for PostgresStore {
    async fn insert_access_token(&self, a: &AccessTokenRecord) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        insert_access_token_on(&mut conn, a).await
    }

    async fn get_access_token(&self, jti: &str) -> Result<Option<AccessTokenRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {AT_COLS} FROM access_tokens WHERE jti = $1"))
            .bind(jti)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(at_row).transpose()
    }

    async fn get_access_token_by_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<AccessTokenRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {AT_COLS} FROM access_tokens WHERE token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(at_row).transpose()
    }

    async fn revoke_access_token(&self, jti: &str, now: UnixTime) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE access_tokens SET revoked_at = $1 WHERE jti = $2 AND revoked_at IS NULL")
            .bind(now.0)
            .bind(jti)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn revoke_access_tokens_of_family(
        &self,
        family_id: &str,
        now: UnixTime,
    ) -> Result<u64, StoreError> {
        let r = sqlx::query(
            "UPDATE access_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
        )
        .bind(now.0)
        .bind(family_id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    async fn revoke_access_tokens_of_grant(&self, grant_id: &str, now: UnixTime) -> Result<u64, StoreError> {
        let r = sqlx::query(
            "UPDATE access_tokens SET revoked_at = $1 WHERE grant_id = $2 AND revoked_at IS NULL",
        )
        .bind(now.0)
        .bind(grant_id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    async fn purge_expired(&self, now: UnixTime) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut deleted = 0;
        for sql in [
            "DELETE FROM access_tokens WHERE expires_at <= $1",
            "DELETE FROM authorization_codes WHERE expires_at <= $1",
            "DELETE FROM refresh_tokens WHERE expires_at <= $1",
            "DELETE FROM sessions WHERE expires_at <= $1",
            "DELETE FROM client_assertion_jtis WHERE expires_at <= $1",
            // A family with no refresh token left can never be presented
            // again; once no access token points at it either, it is history.
            "DELETE FROM refresh_families WHERE created_at <= $1 \
             AND NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = refresh_families.id) \
             AND NOT EXISTS (SELECT 1 FROM access_tokens a WHERE a.family_id = refresh_families.id)",
        ] {
            deleted += sqlx::query(sql)
                .bind(now.0)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(deleted)
    }
}

#[async_trait]
impl KeyStore for PostgresStore {
    async fn insert_signing_key(&self, k: &SigningKey) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO signing_keys ({KEY_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&k.kid)
        .bind(&k.algorithm)
        .bind(&k.public_jwk)
        .bind(&k.private_key_encrypted)
        .bind(k.created_at.0)
        .bind(k.activated_at.map(|t| t.0))
        .bind(k.retire_after.map(|t| t.0))
        .bind(k.retired_at.map(|t| t.0))
        .bind(k.published_at.map(|t| t.0))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_signing_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLS} FROM signing_keys ORDER BY created_at DESC, kid DESC"
        ))
        .fetch_all(&self.pool)
        .await?;
        collect(&rows, key_row)
    }

    async fn activate_signing_key(
        &self,
        kid: &str,
        published_at: UnixTime,
        activated_at: UnixTime,
        previous_retire_after: UnixTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE signing_keys SET retire_after = $1 WHERE kid <> $2 AND activated_at IS NOT NULL \
             AND retire_after IS NULL AND retired_at IS NULL",
        )
        .bind(previous_retire_after.0)
        .bind(kid)
        .execute(&mut *tx)
        .await?;
        let r = sqlx::query(
            "UPDATE signing_keys SET published_at = $1, activated_at = $2, retire_after = NULL \
             WHERE kid = $3 AND retired_at IS NULL",
        )
        .bind(published_at.0)
        .bind(activated_at.0)
        .bind(kid)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound); // dropping `tx` rolls back
        }
        tx.commit().await?;
        Ok(())
    }

    async fn active_signing_key(&self) -> Result<Option<SigningKey>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {KEY_COLS} FROM signing_keys \
             WHERE activated_at IS NOT NULL AND retire_after IS NULL AND retired_at IS NULL"
        ))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(key_row).transpose()
    }

    async fn retire_expired_keys(&self, now: UnixTime) -> Result<Vec<String>, StoreError> {
        let mut kids: Vec<String> = sqlx::query_scalar(
            "UPDATE signing_keys SET retired_at = $1 \
             WHERE retire_after IS NOT NULL AND retire_after <= $1 AND retired_at IS NULL RETURNING kid",
        )
        .bind(now.0)
        .fetch_all(&self.pool)
        .await?;
        kids.sort();
        Ok(kids)
    }
}

#[async_trait]
impl DeploymentStore for PostgresStore {
    async fn claim_issuer(&self, issuer: &str) -> Result<String, StoreError> {
        // A concurrent claim blocks on the primary key until the first
        // commits, then does nothing; both then read the winner's value.
        sqlx::query(
            "INSERT INTO deployment (name, value) VALUES ('issuer', $1) ON CONFLICT (name) DO NOTHING",
        )
        .bind(issuer)
        .execute(&self.pool)
        .await?;
        let recorded: Option<String> =
            sqlx::query_scalar("SELECT value FROM deployment WHERE name = 'issuer'")
                .fetch_optional(&self.pool)
                .await?;
        recorded.ok_or(StoreError::NotFound)
    }

    async fn replace_issuer(&self, issuer: &str) -> Result<Option<String>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let previous: Option<String> =
            sqlx::query_scalar("SELECT value FROM deployment WHERE name = 'issuer' FOR UPDATE")
                .fetch_optional(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO deployment (name, value) VALUES ('issuer', $1) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(issuer)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(previous)
    }

    async fn request_policy_reload(&self, now: UnixTime) -> Result<i64, StoreError> {
        // The upsert takes the row lock: concurrent requests queue on it and
        // each increments the value the previous one committed.
        let generation: i64 = sqlx::query_scalar(
            "INSERT INTO policy_generation (id, generation, requested_at) VALUES (1, 1, $1) \
             ON CONFLICT (id) DO UPDATE SET generation = policy_generation.generation + 1, \
             requested_at = excluded.requested_at RETURNING generation",
        )
        .bind(now.0)
        .fetch_one(&self.pool)
        .await?;
        Ok(generation)
    }

    async fn policy_generation(&self) -> Result<i64, StoreError> {
        let generation: Option<i64> =
            sqlx::query_scalar("SELECT generation FROM policy_generation WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?;
        Ok(generation.unwrap_or(0))
    }
}

#[async_trait]
impl AuditStore for PostgresStore {
    async fn append_audit(&self, e: &NewAuditEvent) -> Result<AuditEvent, StoreError> {
        let mut conn = self.pool.acquire().await?;
        append_audit_on(&mut conn, e).await
    }

    async fn list_audit(&self, f: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {AUDIT_COLS} FROM audit_events WHERE ($1 IS NULL OR client_id = $1) \
             AND ($2 IS NULL OR action = $2) ORDER BY id DESC LIMIT $3"
        ))
        .bind(&f.client_id)
        .bind(&f.action)
        .bind(sql_limit(f.limit))
        .fetch_all(&self.pool)
        .await?;
        collect(&rows, audit_row)
    }
}

#[async_trait]
impl AssertionStore for PostgresStore {
    async fn record_assertion_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM client_assertion_jtis WHERE expires_at <= $1")
            .bind(now.0)
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query(
            "INSERT INTO client_assertion_jtis (client_id, jti, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (client_id, jti) DO NOTHING",
        )
        .bind(client_id)
        .bind(jti)
        .bind(expires_at.0)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }
}

#[async_trait]
impl AttemptStore for PostgresStore {
    async fn reserve_attempt(
        &self,
        key: &str,
        window_start: UnixTime,
        expires_at: UnixTime,
        limit: u32,
    ) -> Result<Option<u32>, StoreError> {
        if limit == 0 {
            return Ok(None);
        }
        // One statement: the row lock taken by ON CONFLICT DO UPDATE orders
        // concurrent reservations of the same key, on any node.
        let row = sqlx::query(
            "INSERT INTO attempt_counters (key, window_start, count, expires_at) VALUES ($1, $2, 1, $3) \
             ON CONFLICT (key, window_start) DO UPDATE SET count = attempt_counters.count + 1 \
             WHERE attempt_counters.count < $4 RETURNING count",
        )
        .bind(key)
        .bind(window_start.0)
        .bind(expires_at.0)
        .bind(i64::from(limit))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let c: i64 = r.try_get("count")?;
            Ok(u32::try_from(c).unwrap_or(u32::MAX))
        })
        .transpose()
    }

    async fn release_attempt(&self, key: &str, window_start: UnixTime) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE attempt_counters SET count = count - 1 WHERE key = $1 AND window_start = $2 AND count > 0",
        )
        .bind(key)
        .bind(window_start.0)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[async_trait]
impl MaintenanceStore for PostgresStore {
    /// Each table's delete commits on its own: a pass holds no lock across
    /// tables, and a pass racing another node's only finds fewer rows.
    async fn purge(&self, plan: &PurgePlan) -> Result<PurgeReport, StoreError> {
        let mut report = PurgeReport::default();
        for (table, condition, cutoff, kind) in crate::purge_sql::selections() {
            let condition = condition.replace("$CUTOFF", "$1");
            let sql = format!(
                "DELETE FROM {table} WHERE ctid IN (SELECT ctid FROM {table} WHERE {condition} LIMIT $2)"
            );
            let n = sqlx::query(&sql)
                .bind(cutoff.of(plan))
                .bind(i64::from(plan.max_rows_per_table))
                .execute(&self.pool)
                .await?
                .rows_affected();
            report.more |= n >= u64::from(plan.max_rows_per_table);
            kind.add(&mut report, n);
        }
        Ok(report)
    }

    async fn count_unused_metadata_clients(&self) -> Result<u64, StoreError> {
        let sql = format!(
            "SELECT count(*) AS n FROM clients WHERE {}",
            crate::purge_sql::UNUSED_METADATA_CLIENT
        );
        let n: i64 = sqlx::query(&sql).fetch_one(&self.pool).await?.try_get("n")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn trim_unused_metadata_versions(&self, client_id: &str, keep: u32) -> Result<u64, StoreError> {
        let sql = format!(
            "DELETE FROM client_metadata_versions WHERE {}",
            crate::purge_sql::TRIM_VERSIONS
        );
        Ok(sqlx::query(&sql)
            .bind(client_id)
            .bind(i64::from(keep))
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}

#[async_trait]
impl LogoStore for PostgresStore {
    async fn put_logo(&self, logo: &Logo) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO logos (hash, content_type, body, fetched_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (hash) DO UPDATE SET fetched_at = GREATEST(logos.fetched_at, EXCLUDED.fetched_at)",
        )
        .bind(&logo.hash)
        .bind(&logo.content_type)
        .bind(&logo.body)
        .bind(logo.fetched_at.0)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_logo(&self, hash: &str) -> Result<Option<Logo>, StoreError> {
        let row = sqlx::query("SELECT hash, content_type, body, fetched_at FROM logos WHERE hash = $1")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(Logo {
                hash: r.try_get("hash")?,
                content_type: r.try_get("content_type")?,
                body: r.try_get("body")?,
                fetched_at: t(r.try_get("fetched_at")?),
            })
        })
        .transpose()
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn client_with_view(
        &self,
        client_id: &str,
    ) -> Result<Option<(ClientRecord, steward_governance::model::ClientView)>, StoreError> {
        self.client_and_view_on(client_id).await
    }

    async fn client_and_revision(&self, client_id: &str) -> Result<Option<(ClientRecord, i64)>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CLIENT_COLS}, governance_rev FROM clients WHERE client_id = $1"
        ))
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(client_rev_row).transpose()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn backend(&self) -> Backend {
        Backend::Postgres
    }
}
