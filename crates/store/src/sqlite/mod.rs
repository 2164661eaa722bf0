//! The SQLite backend: a single file (or memory) database for single-node
//! deployments.
//!
//! One connection, owned by one thread ([`worker`]): every store call runs
//! there synchronously, and calls that arrive together commit together. WAL
//! lets other processes (the CLI) read while the server writes;
//! `synchronous=NORMAL` is durable across application crashes in WAL mode
//! and avoids an fsync per commit. Write batches begin with `BEGIN
//! IMMEDIATE`, so the write lock is taken up front and waits on the busy
//! timeout when another process holds it.

mod migrate;
mod worker;

use crate::error::{parse_column, sql_limit};
use crate::migrations::SQLITE;
use crate::*;
use rusqlite::{Connection, OpenFlags, Params, Row, params};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use steward_core::{LifecycleState, UnixTime};
use worker::{Access, Worker};

/// How long a writer waits for another process's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// WAL pages after which the writer checkpoints by itself. Normally the
/// checkpoint thread has done it long before: this is only the backstop
/// that bounds the WAL if that thread falls behind.
const WRITER_AUTOCHECKPOINT_PAGES: u32 = 8192;
/// How often the checkpoint thread copies the WAL back into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// Page size of new databases. Every page a transaction changes is written
/// to the WAL whole, and again to the database at the checkpoint; a token
/// insert changes one or two pages at random positions in its indexes (the
/// hashed keys), so bytes written grow with the page size, not the row
/// size. 1 KiB pages hold every index key of the schema inline.
const PAGE_SIZE: i64 = 1024;
/// The writer's page cache, in KiB (SQLite's default is 2,000 KiB).
const CACHE_KIB: i64 = 4096;
/// Prepared statements kept per connection: every statement of the store
/// fits, so none is compiled twice.
const STATEMENT_CACHE: usize = 128;

#[derive(Clone, Debug)]
pub struct SqliteStore {
    worker: Worker,
    clients: Arc<ClientCache>,
    /// Dropping the last clone stops the checkpoint thread.
    _checkpoints: Option<std::sync::mpsc::Sender<()>>,
}

/// Client records cached in memory: every token and authorization request
/// reads its client, and that read was a round trip to the database thread.
///
/// Kept exact: a write of this process through the store drops the entry
/// (after it commits, with a generation count so that a read racing the
/// write cannot put the old record back); a commit by another process (the
/// `steward` CLI on the same file) is seen through `PRAGMA data_version`
/// before every batch and drops all entries; entries also expire after
/// [`CLIENT_CACHE_TTL`]. Only found clients are cached, so a client created
/// elsewhere is seen at once.
///
/// Each entry carries the client's `governance_rev` (issue 13: the token
/// endpoint reads it to know whether this node's governance view is still
/// current). The revision also moves, by trigger, when a client's owners,
/// approvals or metadata versions, or an owner's account, change: rows
/// written through other methods than the client's own. Those tables are
/// watched by SQLite's update hook on the one connection ([`watch_governance_tables`]),
/// which drops every entry before the batch that wrote them answers. A
/// `last_seen` update ([`ClientCache::seen`]) moves the revision in the
/// database but not here: it changes nothing the policy sees.
#[derive(Debug)]
struct ClientCache {
    entries: moka::sync::Cache<String, (ClientRecord, i64)>,
    generation: std::sync::atomic::AtomicU64,
}

const CLIENT_CACHE_ENTRIES: u64 = 10_000;
/// The longest a change made by another process (the CLI) can go unseen
/// when no batch ran in between. Under load a batch runs every few
/// milliseconds, and changes made through this process are seen at once.
const CLIENT_CACHE_TTL: Duration = Duration::from_secs(1);

impl ClientCache {
    fn new() -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(CLIENT_CACHE_ENTRIES)
                .time_to_live(CLIENT_CACHE_TTL)
                .build(),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Caches a record read under `generation`, unless a write came since.
    fn fill(&self, generation: u64, record: &ClientRecord, revision: i64) {
        if self.generation() == generation {
            self.entries
                .insert(record.client_id.clone(), (record.clone(), revision));
        }
    }

    fn forget(&self, client_id: &str) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.entries.invalidate(client_id);
    }

    fn forget_all(&self) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.entries.invalidate_all();
    }

    /// Moves a cached record's `last_seen` forward, atomically per entry,
    /// without making a record that was dropped reappear.
    fn seen(&self, client_id: &str, now: UnixTime) {
        self.entries
            .entry_by_ref(client_id)
            .and_compute_with(|entry| match entry {
                Some(entry) => {
                    let (mut record, revision) = entry.into_value();
                    record.last_seen = record.last_seen.max(now);
                    moka::ops::compute::Op::Put((record, revision))
                }
                None => moka::ops::compute::Op::Nop,
            });
    }
}

/// Drops every cached client when another connection has committed since
/// the last batch (`data_version` changes only for other connections' commits).
fn watch_other_writers(clients: Arc<ClientCache>) -> impl FnMut(&Connection) + Send + 'static {
    let mut last: Option<i64> = None;
    move |conn| {
        let version = conn
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)));
        match version {
            Ok(v) => {
                if last.is_some_and(|l| l != v) {
                    clients.forget_all();
                }
                last = Some(v);
            }
            Err(_) => clients.forget_all(),
        }
    }
}

/// The tables whose rows move a client's `governance_rev` by trigger
/// without a write to the client's own row (migrations/sqlite/0009).
const GOVERNANCE_TABLES: &[&str] = &["client_owners", "approvals", "client_metadata_versions", "users"];

/// Registers the update hook that keeps [`ClientCache`] revisions exact:
/// a row of a [`GOVERNANCE_TABLES`] table inserted, updated or deleted on
/// this connection drops every cached client at once, inside the batch,
/// so no caller is answered before the cache has forgotten. Such writes
/// are rare (an owner added, an approval decided, a new document version);
/// token traffic writes none of them.
fn watch_governance_tables(conn: &Connection, clients: Arc<ClientCache>) {
    conn.update_hook(Some(
        move |_: rusqlite::hooks::Action, _: &str, table: &str, _: i64| {
            if GOVERNANCE_TABLES.contains(&table) {
                clients.forget_all();
            }
        },
    ));
}

/// Where a `sqlite:` URL points.
#[derive(Debug, PartialEq, Eq)]
enum Location {
    Memory,
    File(PathBuf),
}

/// `sqlite://PATH`, `sqlite:PATH` or `sqlite::memory:`. The only query
/// parameter accepted is `mode=rwc` (what Steward always does) or
/// `mode=memory`; anything else is refused rather than silently ignored.
fn parse_url(url: &str) -> Result<Location, StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| invalid_url("not a sqlite: URL"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut memory = path == ":memory:";
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair {
            "mode=rwc" => {}
            "mode=memory" => memory = true,
            _ => return Err(invalid_url("unsupported sqlite URL parameter (only mode=rwc)")),
        }
    }
    if memory {
        return Ok(Location::Memory);
    }
    if path.is_empty() {
        return Err(invalid_url("sqlite URL names no file"));
    }
    Ok(Location::File(PathBuf::from(path)))
}

fn invalid_url(why: &'static str) -> StoreError {
    StoreError::InvalidUrl(why.into())
}

fn open(location: &Location) -> Result<Connection, StoreError> {
    let flags =
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match location {
        Location::Memory => Connection::open_in_memory_with_flags(flags)?,
        Location::File(path) => Connection::open_with_flags(path, flags)?,
    };
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Only a new, empty database takes a page size; an existing file keeps its own.
    conn.pragma_update(None, "page_size", PAGE_SIZE)?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    if matches!(location, Location::File(_)) {
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Database {
                reason: "cannot enable WAL journal mode",
                source: format!("journal_mode is {mode}").into(),
            });
        }
    }
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
    migrate::run(&conn, SQLITE)?;
    if matches!(location, Location::File(_)) {
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES)?;
    }
    Ok(conn)
}

/// Checkpoints on a connection and thread of their own.
///
/// A checkpoint copies WAL pages into the database file and, with
/// `synchronous=NORMAL`, is the one step that fsyncs. Run by the writer
/// (SQLite's default, every 1000 pages), it stalled every queued store call
/// for the length of two fsyncs, several times a second under load. A
/// PASSIVE checkpoint here never blocks the writer; the writer restarts the
/// WAL from its beginning once a checkpoint has caught up.
fn start_checkpoints(path: PathBuf) -> Result<std::sync::mpsc::Sender<()>, StoreError> {
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("steward-sqlite-checkpoint".into())
        .spawn(move || {
            // Runs until every sender (every clone of the store) is gone.
            // A failure is logged when it starts and when it ends, not ten
            // times a second while it lasts.
            let mut failing = false;
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
                match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "SQLite checkpoints fail; the writer's own checkpoints take over");
                    }
                    Ok(()) if failing => {
                        failing = false;
                        tracing::info!("SQLite checkpoints work again");
                    }
                    _ => {}
                }
            }
        })
        .map_err(StoreError::Io)?;
    Ok(stop)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` and migrates it.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let location = parse_url(url)?;
        if let Location::File(path) = &location
            && let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        {
            tokio::fs::create_dir_all(parent).await.map_err(StoreError::Io)?;
        }
        let file = match &location {
            Location::File(path) => Some(path.clone()),
            Location::Memory => None,
        };
        let clients = Arc::new(ClientCache::new());
        let hooked = clients.clone();
        let worker = Worker::start(
            move || {
                let conn = open(&location)?;
                watch_governance_tables(&conn, hooked);
                Ok(conn)
            },
            watch_other_writers(clients.clone()),
        )
        .await?;
        // After `open`: the file exists and is in WAL mode by now.
        let checkpoints = file.map(start_checkpoints).transpose()?;
        Ok(Self {
            worker,
            clients,
            _checkpoints: checkpoints,
        })
    }

    /// The file a `sqlite:` URL names (`None`: in memory, or not a SQLite URL).
    pub fn file_of(url: &str) -> Option<std::path::PathBuf> {
        match parse_url(url).ok()? {
            Location::File(path) => Some(path),
            Location::Memory => None,
        }
    }

    /// Reads one `PRAGMA` as text (tests and diagnostics).
    pub async fn pragma(&self, name: &'static str) -> Result<String, StoreError> {
        self.worker
            .call(Access::Read, move |c| {
                Ok(c.query_row(&format!("PRAGMA {name}"), [], |r| {
                    r.get_ref(0).map(|v| match v {
                        rusqlite::types::ValueRef::Integer(i) => i.to_string(),
                        rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                        _ => String::new(),
                    })
                })?)
            })
            .await
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.worker.call(Access::Read, f).await
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.worker.call(Access::Write, f).await
    }
}

fn t(v: i64) -> UnixTime {
    UnixTime(v)
}

fn ot(v: Option<i64>) -> Option<UnixTime> {
    v.map(UnixTime)
}

fn ut(v: Option<UnixTime>) -> Option<i64> {
    v.map(|t| t.0)
}

/// The first row of `sql`, mapped.
fn one<T>(
    c: &Connection,
    sql: &str,
    p: impl Params,
    f: fn(&Row) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let mut stmt = c.prepare_cached(sql)?;
    let mut rows = stmt.query(p)?;
    rows.next()?.map(f).transpose()
}

/// Every row of `sql`, mapped.
fn all<T>(
    c: &Connection,
    sql: &str,
    p: impl Params,
    f: fn(&Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = c.prepare_cached(sql)?;
    let mut rows = stmt.query(p)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(f(r)?);
    }
    Ok(out)
}

/// Rows changed by `sql`.
fn exec(c: &Connection, sql: &str, p: impl Params) -> Result<usize, StoreError> {
    Ok(c.prepare_cached(sql)?.execute(p)?)
}

fn changed(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

// Row mappers read columns by position, in the order of these lists (a
// lookup by name compares every column name on every read).

macro_rules! client_cols {
    () => {
        "client_id, kind, display_name, first_seen, last_seen, state, owner_organization, \
         owner_business, owner_technical, owner_contact, trust_tier, secret_hash, registration, created_at, updated_at"
    };
}

/// An enum stored as its `as_str()` text, read without copying it.
fn enum_col<T: std::str::FromStr>(r: &Row, i: usize, column: &'static str) -> Result<T, StoreError> {
    let text = r
        .get_ref(i)?
        .as_str()
        .map_err(|_| StoreError::Corrupt { column })?;
    parse_column(column, text)
}

fn client_row(r: &Row) -> Result<ClientRecord, StoreError> {
    Ok(ClientRecord {
        client_id: r.get(0)?,
        kind: enum_col(r, 1, "kind")?,
        display_name: r.get(2)?,
        first_seen: t(r.get(3)?),
        last_seen: t(r.get(4)?),
        state: enum_col(r, 5, "state")?,
        owner_organization: r.get(6)?,
        owner_business: r.get(7)?,
        owner_technical: r.get(8)?,
        owner_contact: r.get(9)?,
        trust_tier: enum_col(r, 10, "trust_tier")?,
        secret_hash: r.get(11)?,
        registration: r.get(12)?,
        created_at: t(r.get(13)?),
        updated_at: t(r.get(14)?),
    })
}

/// A client row read with `", governance_rev"` after [`client_cols`].
pub(crate) fn client_rev_row(r: &Row) -> Result<(ClientRecord, i64), StoreError> {
    Ok((client_row(r)?, r.get(15)?))
}

macro_rules! mv_cols {
    () => {
        "id, client_id, content_hash, body, fetched_at, last_seen_at, etag, last_modified, peer_addr"
    };
}

fn mv_row(r: &Row) -> Result<MetadataVersion, StoreError> {
    Ok(MetadataVersion {
        id: r.get(0)?,
        client_id: r.get(1)?,
        content_hash: r.get(2)?,
        body: r.get(3)?,
        fetched_at: t(r.get(4)?),
        last_seen_at: t(r.get(5)?),
        etag: r.get(6)?,
        last_modified: r.get(7)?,
        peer_addr: r.get(8)?,
    })
}

macro_rules! user_cols {
    () => {
        "id, username, password_hash, created_at, disabled"
    };
}

fn user_row(r: &Row) -> Result<User, StoreError> {
    Ok(User {
        id: r.get(0)?,
        username: r.get(1)?,
        password_hash: r.get(2)?,
        created_at: t(r.get(3)?),
        disabled: r.get(4)?,
    })
}

macro_rules! session_cols {
    () => {
        "id_hash, user_id, created_at, expires_at, auth_time"
    };
}

fn session_row(r: &Row) -> Result<Session, StoreError> {
    Ok(Session {
        id_hash: r.get(0)?,
        user_id: r.get(1)?,
        created_at: t(r.get(2)?),
        expires_at: t(r.get(3)?),
        auth_time: t(r.get(4)?),
    })
}

macro_rules! grant_cols {
    () => {
        "id, user_id, client_id, redirect_uri, scopes, resource, metadata_version_id, \
         created_at, updated_at, revoked_at"
    };
}

fn grant_row(r: &Row) -> Result<Grant, StoreError> {
    Ok(Grant {
        id: r.get(0)?,
        user_id: r.get(1)?,
        client_id: r.get(2)?,
        redirect_uri: r.get(3)?,
        scopes: r.get(4)?,
        resource: r.get(5)?,
        metadata_version_id: r.get(6)?,
        created_at: t(r.get(7)?),
        updated_at: t(r.get(8)?),
        revoked_at: ot(r.get(9)?),
    })
}

macro_rules! code_cols {
    () => {
        "code_hash, client_id, user_id, grant_id, redirect_uri, code_challenge, scopes, \
         resource, metadata_version_id, auth_time, created_at, expires_at, consumed_at, family_id"
    };
}

fn code_row(r: &Row) -> Result<AuthorizationCode, StoreError> {
    Ok(AuthorizationCode {
        code_hash: r.get(0)?,
        client_id: r.get(1)?,
        user_id: r.get(2)?,
        grant_id: r.get(3)?,
        redirect_uri: r.get(4)?,
        code_challenge: r.get(5)?,
        scopes: r.get(6)?,
        resource: r.get(7)?,
        metadata_version_id: r.get(8)?,
        auth_time: t(r.get(9)?),
        created_at: t(r.get(10)?),
        expires_at: t(r.get(11)?),
        consumed_at: ot(r.get(12)?),
        family_id: r.get(13)?,
    })
}

macro_rules! family_cols {
    () => {
        "id, grant_id, client_id, user_id, scopes, resource, auth_time, created_at, revoked_at"
    };
}

fn family_row(r: &Row) -> Result<RefreshFamily, StoreError> {
    family_at(r, 0)
}

/// A family whose columns start at index `at` (alone, or after a token's).
fn family_at(r: &Row, at: usize) -> Result<RefreshFamily, StoreError> {
    Ok(RefreshFamily {
        id: r.get(at)?,
        grant_id: r.get(at + 1)?,
        client_id: r.get(at + 2)?,
        user_id: r.get(at + 3)?,
        scopes: r.get(at + 4)?,
        resource: r.get(at + 5)?,
        auth_time: ot(r.get(at + 6)?),
        created_at: t(r.get(at + 7)?),
        revoked_at: ot(r.get(at + 8)?),
    })
}

macro_rules! at_cols {
    () => {
        "jti, token_hash, client_id, user_id, grant_id, family_id, scopes, resource, \
         issued_at, expires_at, revoked_at"
    };
}

fn at_row(r: &Row) -> Result<AccessTokenRecord, StoreError> {
    Ok(AccessTokenRecord {
        jti: r.get(0)?,
        token_hash: r.get(1)?,
        client_id: r.get(2)?,
        user_id: r.get(3)?,
        grant_id: r.get(4)?,
        family_id: r.get(5)?,
        scopes: r.get(6)?,
        resource: r.get(7)?,
        issued_at: t(r.get(8)?),
        expires_at: t(r.get(9)?),
        revoked_at: ot(r.get(10)?),
    })
}

macro_rules! key_cols {
    () => {
        "kid, algorithm, public_jwk, private_key_encrypted, created_at, activated_at, retire_after, retired_at, \
         published_at"
    };
}

fn key_row(r: &Row) -> Result<SigningKey, StoreError> {
    Ok(SigningKey {
        kid: r.get(0)?,
        algorithm: r.get(1)?,
        public_jwk: r.get(2)?,
        private_key_encrypted: r.get(3)?,
        created_at: t(r.get(4)?),
        activated_at: ot(r.get(5)?),
        retire_after: ot(r.get(6)?),
        retired_at: ot(r.get(7)?),
        published_at: ot(r.get(8)?),
    })
}

macro_rules! audit_cols {
    () => {
        "id, at, actor, action, client_id, subject, detail"
    };
}

fn audit_row(r: &Row) -> Result<AuditEvent, StoreError> {
    Ok(AuditEvent {
        id: r.get(0)?,
        at: t(r.get(1)?),
        actor: r.get(2)?,
        action: r.get(3)?,
        client_id: r.get(4)?,
        subject: r.get(5)?,
        detail: r.get(6)?,
    })
}

fn logo_row(r: &Row) -> Result<Logo, StoreError> {
    Ok(Logo {
        hash: r.get(0)?,
        content_type: r.get(1)?,
        body: r.get(2)?,
        fetched_at: t(r.get(3)?),
    })
}

fn text_row(r: &Row) -> Result<String, StoreError> {
    Ok(r.get(0)?)
}

// Statements shared by a store call of their own and the combined calls
// of a flow (one job, one transaction).

fn upsert_grant_in(db: &Connection, g: &NewGrant) -> Result<Grant, StoreError> {
    one(
        db,
        concat!(
            "INSERT INTO grants (id, user_id, client_id, redirect_uri, scopes, resource, \
                     metadata_version_id, created_at, updated_at, revoked_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, NULL) \
                     ON CONFLICT (user_id, client_id, redirect_uri) DO UPDATE SET scopes = excluded.scopes, \
                     resource = excluded.resource, metadata_version_id = excluded.metadata_version_id, \
                     updated_at = excluded.updated_at, revoked_at = NULL \
                     RETURNING ",
            grant_cols!()
        ),
        params![
            g.id,
            g.user_id,
            g.client_id,
            g.redirect_uri,
            g.scopes,
            g.resource,
            g.metadata_version_id,
            g.now.0
        ],
        grant_row,
    )?
    .ok_or(StoreError::NotFound)
}

fn insert_code_in(db: &Connection, c: &AuthorizationCode) -> Result<(), StoreError> {
    exec(
        db,
        concat!(
            "INSERT INTO authorization_codes (",
            code_cols!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
        ),
        params![
            c.code_hash,
            c.client_id,
            c.user_id,
            c.grant_id,
            c.redirect_uri,
            c.code_challenge,
            c.scopes,
            c.resource,
            c.metadata_version_id,
            c.auth_time.0,
            c.created_at.0,
            c.expires_at.0,
            ut(c.consumed_at),
            c.family_id
        ],
    )?;
    Ok(())
}

fn create_family_in(
    db: &Connection,
    f: &NewRefreshFamily,
    first: &NewRefreshToken,
) -> Result<RefreshFamily, StoreError> {
    let family = one(
        db,
        concat!(
            "INSERT INTO refresh_families (id, grant_id, client_id, user_id, scopes, resource, \
                     auth_time, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING ",
            family_cols!()
        ),
        params![
            f.id,
            f.grant_id,
            f.client_id,
            f.user_id,
            f.scopes,
            f.resource,
            ut(f.auth_time),
            f.created_at.0
        ],
        family_row,
    )?
    .ok_or(StoreError::NotFound)?;
    exec(
        db,
        "INSERT INTO refresh_tokens (token_hash, family_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        params![first.token_hash, f.id, f.created_at.0, first.expires_at.0],
    )?;
    Ok(family)
}

fn insert_access_token_in(db: &Connection, a: &AccessTokenRecord) -> Result<(), StoreError> {
    exec(
        db,
        concat!(
            "INSERT INTO access_tokens (",
            at_cols!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        ),
        params![
            a.jti,
            a.token_hash,
            a.client_id,
            a.user_id,
            a.grant_id,
            a.family_id,
            a.scopes,
            a.resource,
            a.issued_at.0,
            a.expires_at.0,
            ut(a.revoked_at)
        ],
    )?;
    Ok(())
}

fn complete_redemption_in(
    db: &Connection,
    hash: &str,
    family: Option<&str>,
    access_jti: Option<&str>,
) -> Result<bool, StoreError> {
    Ok(exec(
        db,
        "UPDATE authorization_codes SET family_id = ?1, access_jti = ?2 \
         WHERE code_hash = ?3 AND replayed_at IS NULL",
        params![family, access_jti, hash],
    )? > 0)
}

/// Appends one audit event inside the caller's transaction (governance
/// changes write theirs with the change, issue 13 §8).
/// Inserts a client record (columns in [`client_cols`] order), with
/// `conflict` as the statement's `ON CONFLICT` clause (or empty).
fn insert_client_in(db: &Connection, c: &ClientRecord, conflict: &str) -> Result<usize, StoreError> {
    let sql = format!(
        concat!(
            "INSERT INTO clients (",
            client_cols!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) {}"
        ),
        conflict
    );
    exec(
        db,
        &sql,
        params![
            c.client_id,
            c.kind.as_str(),
            c.display_name,
            c.first_seen.0,
            c.last_seen.0,
            c.state.as_str(),
            c.owner_organization,
            c.owner_business,
            c.owner_technical,
            c.owner_contact,
            c.trust_tier.as_str(),
            c.secret_hash,
            c.registration,
            c.created_at.0,
            c.updated_at.0,
        ],
    )
}

fn append_audit_in(db: &Connection, e: &NewAuditEvent) -> Result<AuditEvent, StoreError> {
    one(
        db,
        concat!(
            "INSERT INTO audit_events (at, actor, action, client_id, subject, detail) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING ",
            audit_cols!()
        ),
        params![e.at.0, e.actor, e.action, e.client_id, e.subject, e.detail],
        audit_row,
    )?
    .ok_or(StoreError::NotFound)
}

fn touch_client_in(db: &Connection, id: &str, now: UnixTime) -> Result<bool, StoreError> {
    Ok(exec(
        db,
        "UPDATE clients SET last_seen = ?1 WHERE client_id = ?2",
        params![now.0, id],
    )? > 0)
}

// After the column macros, which it uses.
mod dcr;
mod governance;

#[async_trait]
impl ClientStore for SqliteStore {
    async fn upsert_client(&self, c: &ClientRecord) -> Result<(), StoreError> {
        let client_id = c.client_id.as_str();
        let c = c.clone();
        let result = self
            .write(move |db| {
                // `state` is never written on update (see the trait).
                insert_client_in(
                    db,
                    &c,
                    "ON CONFLICT (client_id) DO UPDATE SET kind = excluded.kind, \
                     display_name = excluded.display_name, last_seen = excluded.last_seen, \
                     owner_organization = excluded.owner_organization, owner_business = excluded.owner_business, \
                     owner_technical = excluded.owner_technical, owner_contact = excluded.owner_contact, \
                     trust_tier = excluded.trust_tier, secret_hash = excluded.secret_hash, \
                     registration = excluded.registration, updated_at = excluded.updated_at",
                )
                .map(|_| ())
            })
        .await;
        self.clients.forget(client_id);
        result
    }

    async fn insert_client(&self, c: &ClientRecord) -> Result<bool, StoreError> {
        let client_id = c.client_id.as_str();
        let c = c.clone();
        let result = self
            .write(move |db| Ok(insert_client_in(db, &c, "ON CONFLICT (client_id) DO NOTHING")? > 0))
            .await;
        self.clients.forget(client_id);
        result
    }

    async fn refresh_client_metadata(
        &self,
        client_id: &str,
        display_name: Option<&str>,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let id = client_id.to_owned();
        let name = display_name.map(str::to_owned);
        let result = self
            .write(move |db| {
                Ok(exec(
                    db,
                    "UPDATE clients SET last_seen = max(last_seen, ?1), updated_at = ?1, \
                     display_name = coalesce(?2, display_name) WHERE client_id = ?3",
                    params![now.0, name, id],
                )? > 0)
            })
            .await;
        self.clients.forget(client_id);
        result
    }

    async fn get_client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        Ok(self
            .client_and_revision(client_id)
            .await?
            .map(|(record, _)| record))
    }

    async fn list_clients(&self, f: &ClientFilter) -> Result<Vec<ClientRecord>, StoreError> {
        let f = f.clone();
        self.read(move |db| {
            all(
                db,
                concat!(
                    "SELECT ",
                    client_cols!(),
                    " FROM clients WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR state = ?2) \
                     AND (?5 IS NULL OR lower(trim(display_name)) = ?5) \
                     ORDER BY client_id LIMIT ?3 OFFSET ?4"
                ),
                params![
                    f.kind.map(|k| k.as_str()),
                    f.state.map(|s| s.as_str()),
                    sql_limit(f.limit),
                    i64::from(f.offset),
                    f.name.as_deref().map(crate::clients::name_key)
                ],
                client_row,
            )
        })
        .await
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        let id = client_id.to_owned();
        let result = self
            .write(move |db| Ok(exec(db, "DELETE FROM clients WHERE client_id = ?1", [id])? > 0))
            .await;
        self.clients.forget(client_id);
        result
    }

    async fn touch_client(&self, client_id: &str, now: UnixTime) -> Result<bool, StoreError> {
        let id = client_id.to_owned();
        let touched = self.write(move |db| touch_client_in(db, &id, now)).await?;
        self.clients.seen(client_id, now);
        Ok(touched)
    }

    async fn set_client_state(
        &self,
        client_id: &str,
        state: LifecycleState,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let id = client_id.to_owned();
        let result = self
            .write(move |db| {
                Ok(exec(
                    db,
                    "UPDATE clients SET state = ?1, updated_at = ?2 WHERE client_id = ?3",
                    params![state.as_str(), now.0, id],
                )? > 0)
            })
            .await;
        self.clients.forget(client_id);
        result
    }
}

#[async_trait]
impl MetadataVersionStore for SqliteStore {
    async fn record_metadata_version(&self, v: &NewMetadataVersion) -> Result<MetadataVersion, StoreError> {
        let v = v.clone();
        self.write(move |db| {
            one(
                db,
                concat!(
                    "INSERT INTO client_metadata_versions \
                     (client_id, content_hash, body, fetched_at, last_seen_at, etag, last_modified, peer_addr) \
                     VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7) \
                     ON CONFLICT (client_id, content_hash) DO UPDATE SET last_seen_at = excluded.last_seen_at, \
                     etag = excluded.etag, last_modified = excluded.last_modified \
                     RETURNING ",
                    mv_cols!()
                ),
                params![
                    v.client_id,
                    v.content_hash,
                    v.body,
                    v.fetched_at.0,
                    v.etag,
                    v.last_modified,
                    v.peer_addr
                ],
                mv_row,
            )?
            .ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn latest_metadata_version(&self, client_id: &str) -> Result<Option<MetadataVersion>, StoreError> {
        let id = client_id.to_owned();
        self.read(move |db| {
            one(
                db,
                concat!(
                    "SELECT ",
                    mv_cols!(),
                    " FROM client_metadata_versions WHERE client_id = ?1 \
                     ORDER BY last_seen_at DESC, id DESC LIMIT 1"
                ),
                [id],
                mv_row,
            )
        })
        .await
    }

    async fn get_metadata_version(&self, id: i64) -> Result<Option<MetadataVersion>, StoreError> {
        self.read(move |db| {
            one(
                db,
                concat!(
                    "SELECT ",
                    mv_cols!(),
                    " FROM client_metadata_versions WHERE id = ?1"
                ),
                [id],
                mv_row,
            )
        })
        .await
    }

    async fn list_metadata_versions(&self, client_id: &str) -> Result<Vec<MetadataVersion>, StoreError> {
        let id = client_id.to_owned();
        self.read(move |db| {
            all(
                db,
                concat!(
                    "SELECT ",
                    mv_cols!(),
                    " FROM client_metadata_versions WHERE client_id = ?1 ORDER BY id"
                ),
                [id],
                mv_row,
            )
        })
        .await
    }
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, u: &User) -> Result<(), StoreError> {
        let u = u.clone();
        self.write(move |db| {
            exec(
                db,
                "INSERT INTO users (id, username, password_hash, created_at, disabled) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![u.id, u.username, u.password_hash, u.created_at.0, u.disabled],
            )?;
            Ok(())
        })
        .await
    }

    async fn get_user(&self, id: &str) -> Result<Option<User>, StoreError> {
        let id = id.to_owned();
        self.read(move |db| {
            one(
                db,
                concat!("SELECT ", user_cols!(), " FROM users WHERE id = ?1"),
                [id],
                user_row,
            )
        })
        .await
    }

    async fn get_user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        let name = username.to_owned();
        self.read(move |db| {
            one(
                db,
                concat!("SELECT ", user_cols!(), " FROM users WHERE username = ?1"),
                [name],
                user_row,
            )
        })
        .await
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.read(move |db| {
            all(
                db,
                concat!("SELECT ", user_cols!(), " FROM users ORDER BY username"),
                [],
                user_row,
            )
        })
        .await
    }

    async fn set_user_disabled(&self, id: &str, disabled: bool) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |db| {
            Ok(exec(
                db,
                "UPDATE users SET disabled = ?1 WHERE id = ?2",
                params![disabled, id],
            )? > 0)
        })
        .await
    }

    async fn delete_user(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |db| Ok(exec(db, "DELETE FROM users WHERE id = ?1", [id])? > 0))
            .await
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(&self, s: &Session) -> Result<(), StoreError> {
        let s = s.clone();
        self.write(move |db| {
            exec(
                db,
                "INSERT INTO sessions (id_hash, user_id, created_at, expires_at, auth_time) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    s.id_hash,
                    s.user_id,
                    s.created_at.0,
                    s.expires_at.0,
                    s.auth_time.0
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn get_session(&self, id_hash: &str, now: UnixTime) -> Result<Option<Session>, StoreError> {
        let id = id_hash.to_owned();
        self.read(move |db| {
            one(
                db,
                concat!(
                    "SELECT ",
                    session_cols!(),
                    " FROM sessions WHERE id_hash = ?1 AND expires_at > ?2"
                ),
                params![id, now.0],
                session_row,
            )
        })
        .await
    }

    async fn delete_session(&self, id_hash: &str) -> Result<bool, StoreError> {
        let id = id_hash.to_owned();
        self.write(move |db| Ok(exec(db, "DELETE FROM sessions WHERE id_hash = ?1", [id])? > 0))
            .await
    }

    async fn delete_sessions_of_user(&self, user_id: &str) -> Result<u64, StoreError> {
        let id = user_id.to_owned();
        self.write(move |db| {
            Ok(changed(exec(
                db,
                "DELETE FROM sessions WHERE user_id = ?1",
                [id],
            )?))
        })
        .await
    }
}

#[async_trait]
impl GrantStore for SqliteStore {
    async fn upsert_grant(&self, g: &NewGrant) -> Result<Grant, StoreError> {
        let g = g.clone();
        self.write(move |db| upsert_grant_in(db, &g)).await
    }

    async fn get_grant(&self, id: &str) -> Result<Option<Grant>, StoreError> {
        let id = id.to_owned();
        self.read(move |db| {
            one(
                db,
                concat!("SELECT ", grant_cols!(), " FROM grants WHERE id = ?1"),
                [id],
                grant_row,
            )
        })
        .await
    }

    async fn find_grant(
        &self,
        user_id: &str,
        client_id: &str,
        redirect_uri: &str,
    ) -> Result<Option<Grant>, StoreError> {
        let key = [user_id.to_owned(), client_id.to_owned(), redirect_uri.to_owned()];
        self.read(move |db| {
            one(
                db,
                concat!(
                    "SELECT ",
                    grant_cols!(),
                    " FROM grants WHERE user_id = ?1 AND client_id = ?2 AND redirect_uri = ?3"
                ),
                key,
                grant_row,
            )
        })
        .await
    }

    async fn list_grants(&self, client_id: &str) -> Result<Vec<Grant>, StoreError> {
        let id = client_id.to_owned();
        self.read(move |db| {
            all(
                db,
                concat!(
                    "SELECT ",
                    grant_cols!(),
                    " FROM grants WHERE client_id = ?1 ORDER BY created_at, id"
                ),
                [id],
                grant_row,
            )
        })
        .await
    }

    async fn revoke_grant(&self, id: &str, now: UnixTime) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |db| {
            Ok(exec(
                db,
                "UPDATE grants SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
                params![now.0, id],
            )? > 0)
        })
        .await
    }
}

#[async_trait]
impl CodeStore for SqliteStore {
    async fn insert_code(&self, c: &AuthorizationCode) -> Result<(), StoreError> {
        let c = c.clone();
        self.write(move |db| insert_code_in(db, &c)).await
    }

    async fn get_code(&self, code_hash: &str) -> Result<Option<AuthorizationCode>, StoreError> {
        let hash = code_hash.to_owned();
        self.read(move |db| {
            one(
                db,
                concat!(
                    "SELECT ",
                    code_cols!(),
                    " FROM authorization_codes WHERE code_hash = ?1"
                ),
                [hash],
                code_row,
            )
        })
        .await
    }

    async fn consume_code(&self, code_hash: &str, now: UnixTime) -> Result<CodeConsumption, StoreError> {
        let hash = code_hash.to_owned();
        self.write(move |db| {
            // One statement: the check and the mark cannot be interleaved.
            let won = one(
                db,
                concat!(
                    "UPDATE authorization_codes SET consumed_at = ?1 \
                     WHERE code_hash = ?2 AND consumed_at IS NULL AND expires_at > ?1 RETURNING ",
                    code_cols!()
                ),
                params![now.0, hash],
                code_row,
            )?;
            if let Some(code) = won {
                return Ok(CodeConsumption::Consumed(code));
            }
            let code = one(
                db,
                concat!(
                    "SELECT ",
                    code_cols!(),
                    " FROM authorization_codes WHERE code_hash = ?1"
                ),
                [hash],
                code_row,
            )?;
            Ok(match code {
                None => CodeConsumption::NotFound,
                Some(code) if code.consumed_at.is_some() => CodeConsumption::Replayed(code),
                Some(_) => CodeConsumption::Expired,
            })
        })
        .await
    }

    async fn complete_redemption(
        &self,
        code_hash: &str,
        family_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        let hash = code_hash.to_owned();
        let family = family_id.map(str::to_owned);
        self.write(move |db| complete_redemption_in(db, &hash, family.as_deref(), None))
            .await
    }

    async fn record_authorization(
        &self,
        grant: &NewGrant,
        code: &AuthorizationCode,
    ) -> Result<Grant, StoreError> {
        let (seen_id, seen_at) = (grant.client_id.clone(), grant.now);
        let (grant, mut code) = (grant.clone(), code.clone());
        let stored = self
            .write(move |db| {
                let stored = upsert_grant_in(db, &grant)?;
                code.grant_id.clone_from(&stored.id);
                insert_code_in(db, &code)?;
                touch_client_in(db, &grant.client_id, grant.now)?;
                Ok(stored)
            })
            .await?;
        self.clients.seen(&seen_id, seen_at);
        Ok(stored)
    }

    async fn record_redemption(
        &self,
        code_hash: &str,
        refresh: Option<(&NewRefreshFamily, &NewRefreshToken)>,
        access: &AccessTokenRecord,
    ) -> Result<bool, StoreError> {
        let hash = code_hash.to_owned();
        let refresh = refresh.map(|(f, t)| (f.clone(), t.clone()));
        let access = access.clone();
        self.write(move |db| {
            if let Some((family, first)) = &refresh {
                create_family_in(db, family, first)?;
            }
            insert_access_token_in(db, &access)?;
            complete_redemption_in(
                db,
                &hash,
                refresh.as_ref().map(|(f, _)| f.id.as_str()),
                Some(&access.jti),
            )
        })
        .await
    }

    async fn mark_code_replayed(
        &self,
        code_hash: &str,
        now: UnixTime,
    ) -> Result<Option<CodeIssuance>, StoreError> {
        let hash = code_hash.to_owned();
        self.write(move |db| {
            let issued = one(
                db,
                "UPDATE authorization_codes SET replayed_at = COALESCE(replayed_at, ?1) \
                 WHERE code_hash = ?2 RETURNING family_id, access_jti",
                params![now.0, hash],
                |r| {
                    Ok(CodeIssuance {
                        family_id: r.get(0)?,
                        access_jti: r.get(1)?,
                    })
                },
            )?;
            Ok(issued.filter(|i| i.family_id.is_some() || i.access_jti.is_some()))
        })
        .await
    }
}

#[async_trait]
impl RefreshStore for SqliteStore {
    async fn create_family(
        &self,
        f: &NewRefreshFamily,
        first: &NewRefreshToken,
    ) -> Result<RefreshFamily, StoreError> {
        let f = f.clone();
        let first = first.clone();
        self.write(move |db| create_family_in(db, &f, &first)).await
    }

    async fn rotate_refresh(
        &self,
        old_hash: &str,
        new: &NewRefreshToken,
        now: UnixTime,
        access: Option<&AccessTokenRecord>,
    ) -> Result<Rotation, StoreError> {
        let old = old_hash.to_owned();
        let new = new.clone();
        let access = access.cloned();
        self.write(move |db| {
            // EXISTS, not `family_id IN (SELECT …)`: SQLite materializes an IN
            // subquery by scanning every family, making each rotation O(families).
            let won = one(
                db,
                "UPDATE refresh_tokens SET used_at = ?1 \
                 WHERE token_hash = ?2 AND used_at IS NULL AND expires_at > ?1 \
                 AND EXISTS (SELECT 1 FROM refresh_families f \
                             WHERE f.id = refresh_tokens.family_id AND f.revoked_at IS NULL) \
                 RETURNING family_id",
                params![now.0, old],
                text_row,
            )?;
            if let Some(family_id) = won {
                exec(
                    db,
                    "INSERT INTO refresh_tokens (token_hash, family_id, created_at, expires_at) \
                     VALUES (?1, ?2, ?3, ?4)",
                    params![new.token_hash, family_id, now.0, new.expires_at.0],
                )?;
                let family = one(
                    db,
                    concat!("SELECT ", family_cols!(), " FROM refresh_families WHERE id = ?1"),
                    [family_id],
                    family_row,
                )?
                .ok_or(StoreError::NotFound)?;
                if let Some(access) = &access {
                    insert_access_token_in(db, access)?;
                }
                return Ok(Rotation::Rotated(family));
            }
            let state = one(
                db,
                "SELECT t.family_id, t.used_at, f.revoked_at FROM refresh_tokens t \
                 JOIN refresh_families f ON f.id = t.family_id WHERE t.token_hash = ?1",
                [old],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<i64>>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                    ))
                },
            )?;
            let Some((family_id, used_at, revoked_at)) = state else {
                return Ok(Rotation::NotFound);
            };
            if revoked_at.is_some() {
                return Ok(Rotation::Revoked);
            }
            if used_at.is_none() {
                return Ok(Rotation::Expired);
            }
            // Reuse of a rotated token: revoke the family and its access tokens.
            exec(
                db,
                "UPDATE refresh_families SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
                params![now.0, family_id],
            )?;
            exec(
                db,
                "UPDATE access_tokens SET revoked_at = ?1 WHERE family_id = ?2 AND revoked_at IS NULL",
                params![now.0, family_id],
            )?;
            Ok(Rotation::Reused { family_id })
        })
        .await
    }

    async fn get_refresh(&self, token_hash: &str) -> Result<Option<RefreshRecord>, StoreError> {
        let hash = token_hash.to_owned();
        self.read(move |db| {
            one(
                db,
                "SELECT t.token_hash, t.family_id, t.created_at, t.expires_at, t.used_at, \
                 f.id, f.grant_id, f.client_id, f.user_id, f.scopes, f.resource, f.auth_time, f.created_at, \
                 f.revoked_at \
                 FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id WHERE t.token_hash = ?1",
                [hash],
                |r| {
                    Ok(RefreshRecord {
                        token: RefreshToken {
                            token_hash: r.get(0)?,
                            family_id: r.get(1)?,
                            created_at: t(r.get(2)?),
                            expires_at: t(r.get(3)?),
                            used_at: ot(r.get(4)?),
                        },
                        family: family_at(r, 5)?,
                    })
                },
            )
        })
        .await
    }

    async fn revoke_family(&self, family_id: &str, now: UnixTime) -> Result<bool, StoreError> {
        let id = family_id.to_owned();
        self.write(move |db| {
            Ok(exec(
                db,
                "UPDATE refresh_families SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
                params![now.0, id],
            )? > 0)
        })
        .await
    }

    async fn revoke_families_of_grant(&self, grant_id: &str, now: UnixTime) -> Result<u64, StoreError> {
        let id = grant_id.to_owned();
        self.write(move |db| {
            Ok(changed(exec(
                db,
                "UPDATE refresh_families SET revoked_at = ?1 WHERE grant_id = ?2 AND revoked_at IS NULL",
                params![now.0, id],
            )?))
        })
        .await
    }
}

#[async_trait]
impl AccessTokenStore for SqliteStore {
    async fn insert_access_token(&self, a: &AccessTokenRecord) -> Result<(), StoreError> {
        let a = a.clone();
        self.write(move |db| insert_access_token_in(db, &a)).await
    }

    async fn get_access_token(&self, jti: &str) -> Result<Option<AccessTokenRecord>, StoreError> {
        let jti = jti.to_owned();
        self.read(move |db| {
            one(
                db,
                concat!("SELECT ", at_cols!(), " FROM access_tokens WHERE jti = ?1"),
                [jti],
                at_row,
            )
        })
        .await
    }

    async fn get_access_token_by_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<AccessTokenRecord>, StoreError> {
        let hash = token_hash.to_owned();
        self.read(move |db| {
            one(
                db,
                concat!("SELECT ", at_cols!(), " FROM access_tokens WHERE token_hash = ?1"),
                [hash],
                at_row,
            )
        })
        .await
    }

    async fn revoke_access_token(&self, jti: &str, now: UnixTime) -> Result<bool, StoreError> {
        let jti = jti.to_owned();
        self.write(move |db| {
            Ok(exec(
                db,
                "UPDATE access_tokens SET revoked_at = ?1 WHERE jti = ?2 AND revoked_at IS NULL",
                params![now.0, jti],
            )? > 0)
        })
        .await
    }

    async fn revoke_access_tokens_of_family(
        &self,
        family_id: &str,
        now: UnixTime,
    ) -> Result<u64, StoreError> {
        let id = family_id.to_owned();
        self.write(move |db| {
            Ok(changed(exec(
                db,
                "UPDATE access_tokens SET revoked_at = ?1 WHERE family_id = ?2 AND revoked_at IS NULL",
                params![now.0, id],
            )?))
        })
        .await
    }

    async fn revoke_access_tokens_of_grant(&self, grant_id: &str, now: UnixTime) -> Result<u64, StoreError> {
        let id = grant_id.to_owned();
        self.write(move |db| {
            Ok(changed(exec(
                db,
                "UPDATE access_tokens SET revoked_at = ?1 WHERE grant_id = ?2 AND revoked_at IS NULL",
                params![now.0, id],
            )?))
        })
        .await
    }

    async fn purge_expired(&self, now: UnixTime) -> Result<u64, StoreError> {
        self.write(move |db| {
            let mut deleted = 0;
            for sql in [
                "DELETE FROM access_tokens WHERE expires_at <= ?1",
                "DELETE FROM authorization_codes WHERE expires_at <= ?1",
                "DELETE FROM refresh_tokens WHERE expires_at <= ?1",
                "DELETE FROM sessions WHERE expires_at <= ?1",
                "DELETE FROM client_assertion_jtis WHERE expires_at <= ?1",
                // A family with no refresh token left can never be presented
                // again; once no access token points at it either, it is history.
                "DELETE FROM refresh_families WHERE created_at <= ?1 \
                 AND NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = refresh_families.id) \
                 AND NOT EXISTS (SELECT 1 FROM access_tokens a WHERE a.family_id = refresh_families.id)",
            ] {
                deleted += changed(exec(db, sql, [now.0])?);
            }
            Ok(deleted)
        })
        .await
    }
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn insert_signing_key(&self, k: &SigningKey) -> Result<(), StoreError> {
        let k = k.clone();
        self.write(move |db| {
            exec(
                db,
                concat!(
                    "INSERT INTO signing_keys (",
                    key_cols!(),
                    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                ),
                params![
                    k.kid,
                    k.algorithm,
                    k.public_jwk,
                    k.private_key_encrypted,
                    k.created_at.0,
                    ut(k.activated_at),
                    ut(k.retire_after),
                    ut(k.retired_at),
                    ut(k.published_at)
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn list_signing_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
        self.read(move |db| {
            all(
                db,
                concat!(
                    "SELECT ",
                    key_cols!(),
                    " FROM signing_keys ORDER BY created_at DESC, kid DESC"
                ),
                [],
                key_row,
            )
        })
        .await
    }

    async fn activate_signing_key(
        &self,
        kid: &str,
        published_at: UnixTime,
        activated_at: UnixTime,
        previous_retire_after: UnixTime,
    ) -> Result<(), StoreError> {
        let kid = kid.to_owned();
        self.write(move |db| {
            exec(
                db,
                "UPDATE signing_keys SET retire_after = ?1 WHERE kid <> ?2 AND activated_at IS NOT NULL \
                 AND retire_after IS NULL AND retired_at IS NULL",
                params![previous_retire_after.0, kid],
            )?;
            let activated = exec(
                db,
                "UPDATE signing_keys SET published_at = ?1, activated_at = ?2, retire_after = NULL \
                 WHERE kid = ?3 AND retired_at IS NULL",
                params![published_at.0, activated_at.0, kid],
            )?;
            if activated == 0 {
                // An error rolls this job's savepoint back: the old key stays active.
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
    }

    async fn active_signing_key(&self) -> Result<Option<SigningKey>, StoreError> {
        self.read(move |db| {
            one(
                db,
                concat!(
                    "SELECT ",
                    key_cols!(),
                    " FROM signing_keys \
                     WHERE activated_at IS NOT NULL AND retire_after IS NULL AND retired_at IS NULL"
                ),
                [],
                key_row,
            )
        })
        .await
    }

    async fn retire_expired_keys(&self, now: UnixTime) -> Result<Vec<String>, StoreError> {
        self.write(move |db| {
            let mut kids = all(
                db,
                "UPDATE signing_keys SET retired_at = ?1 \
                 WHERE retire_after IS NOT NULL AND retire_after <= ?1 AND retired_at IS NULL RETURNING kid",
                [now.0],
                text_row,
            )?;
            kids.sort();
            Ok(kids)
        })
        .await
    }
}

#[async_trait]
impl DeploymentStore for SqliteStore {
    async fn claim_issuer(&self, issuer: &str) -> Result<String, StoreError> {
        let issuer = issuer.to_owned();
        self.write(move |db| {
            exec(
                db,
                "INSERT INTO deployment (name, value) VALUES ('issuer', ?1) ON CONFLICT (name) DO NOTHING",
                [&issuer],
            )?;
            one(
                db,
                "SELECT value FROM deployment WHERE name = 'issuer'",
                [],
                text_row,
            )?
            .ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn replace_issuer(&self, issuer: &str) -> Result<Option<String>, StoreError> {
        let issuer = issuer.to_owned();
        self.write(move |db| {
            let previous = one(
                db,
                "SELECT value FROM deployment WHERE name = 'issuer'",
                [],
                text_row,
            )?;
            exec(
                db,
                "INSERT INTO deployment (name, value) VALUES ('issuer', ?1) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                [&issuer],
            )?;
            Ok(previous)
        })
        .await
    }

    async fn request_policy_reload(&self, now: UnixTime) -> Result<i64, StoreError> {
        // One statement on the single writer: the increment cannot be lost
        // to a concurrent request, on this node or another process.
        self.write(move |db| {
            one(
                db,
                "INSERT INTO policy_generation (id, generation, requested_at) VALUES (1, 1, ?1) \
                 ON CONFLICT (id) DO UPDATE SET generation = policy_generation.generation + 1, \
                 requested_at = excluded.requested_at RETURNING generation",
                [now.0],
                |r| Ok(r.get::<_, i64>(0)?),
            )?
            .ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn policy_generation(&self) -> Result<i64, StoreError> {
        self.read(|db| {
            Ok(one(
                db,
                "SELECT generation FROM policy_generation WHERE id = 1",
                [],
                |r| Ok(r.get::<_, i64>(0)?),
            )?
            .unwrap_or(0))
        })
        .await
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, e: &NewAuditEvent) -> Result<AuditEvent, StoreError> {
        let e = e.clone();
        self.write(move |db| append_audit_in(db, &e)).await
    }

    async fn list_audit(&self, f: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        let f = f.clone();
        self.read(move |db| {
            all(
                db,
                concat!(
                    "SELECT ",
                    audit_cols!(),
                    " FROM audit_events WHERE (?1 IS NULL OR client_id = ?1) \
                     AND (?2 IS NULL OR action = ?2) ORDER BY id DESC LIMIT ?3"
                ),
                params![f.client_id, f.action, sql_limit(f.limit)],
                audit_row,
            )
        })
        .await
    }
}

#[async_trait]
impl AssertionStore for SqliteStore {
    async fn record_assertion_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let (client_id, jti) = (client_id.to_owned(), jti.to_owned());
        self.write(move |db| {
            exec(
                db,
                "DELETE FROM client_assertion_jtis WHERE expires_at <= ?1",
                [now.0],
            )?;
            let inserted = exec(
                db,
                "INSERT INTO client_assertion_jtis (client_id, jti, expires_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (client_id, jti) DO NOTHING",
                params![client_id, jti, expires_at.0],
            )?;
            Ok(inserted == 1)
        })
        .await
    }
}

#[async_trait]
impl LogoStore for SqliteStore {
    async fn put_logo(&self, logo: &Logo) -> Result<(), StoreError> {
        let logo = logo.clone();
        self.write(move |db| {
            exec(
                db,
                "INSERT INTO logos (hash, content_type, body, fetched_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (hash) DO UPDATE SET fetched_at = max(logos.fetched_at, excluded.fetched_at)",
                params![logo.hash, logo.content_type, logo.body, logo.fetched_at.0],
            )?;
            Ok(())
        })
        .await
    }

    async fn get_logo(&self, hash: &str) -> Result<Option<Logo>, StoreError> {
        let hash = hash.to_owned();
        self.read(move |db| {
            one(
                db,
                "SELECT hash, content_type, body, fetched_at FROM logos WHERE hash = ?1",
                [hash],
                logo_row,
            )
        })
        .await
    }
}

#[async_trait]
impl AttemptStore for SqliteStore {
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
        let key = key.to_owned();
        self.write(move |db| {
            let count = one(
                db,
                "INSERT INTO attempt_counters (key, window_start, count, expires_at) VALUES (?1, ?2, 1, ?3) \
                 ON CONFLICT (key, window_start) DO UPDATE SET count = attempt_counters.count + 1 \
                 WHERE attempt_counters.count < ?4 RETURNING count",
                params![key, window_start.0, expires_at.0, i64::from(limit)],
                |r| Ok(r.get::<_, i64>(0)?),
            )?;
            Ok(count.map(|c| u32::try_from(c).unwrap_or(u32::MAX)))
        })
        .await
    }

    async fn release_attempt(&self, key: &str, window_start: UnixTime) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.write(move |db| {
            exec(
                db,
                "UPDATE attempt_counters SET count = count - 1 WHERE key = ?1 AND window_start = ?2 AND count > 0",
                params![key, window_start.0],
            )?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl MaintenanceStore for SqliteStore {
    async fn purge(&self, plan: &PurgePlan) -> Result<PurgeReport, StoreError> {
        let plan = *plan;
        let report = self
            .write(move |db| {
                let mut report = PurgeReport::default();
                for (table, condition, cutoff, kind) in crate::purge_sql::selections() {
                    let condition = condition.replace("$CUTOFF", "?1");
                    let sql = format!(
                        "DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE {condition} LIMIT ?2)"
                    );
                    let n = changed(exec(db, &sql, params![cutoff.of(&plan), plan.max_rows_per_table])?);
                    report.more |= n >= u64::from(plan.max_rows_per_table);
                    kind.add(&mut report, n);
                }
                Ok(report)
            })
            .await?;
        if report.unused_clients > 0 {
            self.clients.forget_all();
        }
        Ok(report)
    }

    async fn count_unused_metadata_clients(&self) -> Result<u64, StoreError> {
        self.read(move |db| {
            let sql = format!(
                "SELECT count(*) FROM clients WHERE {}",
                crate::purge_sql::UNUSED_METADATA_CLIENT
            );
            let n = one(db, &sql, [], |r| Ok(r.get::<_, i64>(0)?))?;
            Ok(n.map_or(0, |n| u64::try_from(n).unwrap_or(0)))
        })
        .await
    }

    async fn trim_unused_metadata_versions(&self, client_id: &str, keep: u32) -> Result<u64, StoreError> {
        let id = client_id.to_owned();
        self.write(move |db| {
            let sql = format!(
                "DELETE FROM client_metadata_versions WHERE {}",
                crate::purge_sql::TRIM_VERSIONS.replace('$', "?")
            );
            Ok(changed(exec(db, &sql, params![id, keep])?))
        })
        .await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn client_with_view(
        &self,
        client_id: &str,
    ) -> Result<Option<(ClientRecord, steward_governance::model::ClientView)>, StoreError> {
        let id = client_id.to_owned();
        self.read(move |db| governance::client_and_view_in(db, &id)).await
    }

    async fn client_and_revision(&self, client_id: &str) -> Result<Option<(ClientRecord, i64)>, StoreError> {
        if let Some(entry) = self.clients.entries.get(client_id) {
            return Ok(Some(entry));
        }
        let generation = self.clients.generation();
        let id = client_id.to_owned();
        let found = self
            .read(move |db| {
                one(
                    db,
                    concat!(
                        "SELECT ",
                        client_cols!(),
                        ", governance_rev FROM clients WHERE client_id = ?1"
                    ),
                    [id.as_str()],
                    client_rev_row,
                )
            })
            .await?;
        if let Some((record, revision)) = &found {
            self.clients.fill(generation, record, *revision);
        }
        Ok(found)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|db| {
            db.prepare_cached("SELECT 1")?.query_row([], |_| Ok(()))?;
            Ok(())
        })
        .await
    }

    fn backend(&self) -> Backend {
        Backend::Sqlite
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use steward_core::{ClientKind, TrustTier};

    fn record(id: &str) -> ClientRecord {
        ClientRecord {
            client_id: id.to_owned(),
            kind: ClientKind::PreRegistered,
            display_name: None,
            first_seen: UnixTime(1),
            last_seen: UnixTime(1),
            state: LifecycleState::Active,
            owner_organization: None,
            owner_business: None,
            owner_technical: None,
            owner_contact: None,
            trust_tier: TrustTier::Verified,
            secret_hash: None,
            registration: "{}".into(),
            created_at: UnixTime(1),
            updated_at: UnixTime(1),
        }
    }

    /// The CLI writes the same file from another process: its commit must
    /// reach a cached client by the next batch, and otherwise within the TTL.
    #[tokio::test]
    async fn another_process_suspending_a_client_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        store.upsert_client(&record("a")).await.unwrap();
        store.upsert_client(&record("b")).await.unwrap();
        for id in ["a", "b"] {
            assert_eq!(
                store.get_client(id).await.unwrap().unwrap().state,
                LifecycleState::Active
            );
        }
        let other = Connection::open(&path).unwrap();
        other
            .execute(
                "UPDATE clients SET state = 'suspended' WHERE client_id IN ('a', 'b')",
                [],
            )
            .unwrap();
        // Any batch (here one that touches neither client) notices the commit.
        store.touch_client("nobody", UnixTime(2)).await.unwrap();
        assert_eq!(
            store.get_client("a").await.unwrap().unwrap().state,
            LifecycleState::Suspended
        );
        // With no batch in between, the entry's time to live bounds it.
        assert_eq!(
            store.get_client("b").await.unwrap().unwrap().state,
            LifecycleState::Suspended
        );
        other
            .execute("UPDATE clients SET state = 'active' WHERE client_id = 'b'", [])
            .unwrap();
        tokio::time::sleep(CLIENT_CACHE_TTL + Duration::from_millis(200)).await;
        assert_eq!(
            store.get_client("b").await.unwrap().unwrap().state,
            LifecycleState::Active
        );
    }

    #[test]
    fn urls_name_a_file_or_memory() {
        assert_eq!(parse_url("sqlite::memory:").ok(), Some(Location::Memory));
        assert_eq!(parse_url("sqlite://?mode=memory").ok(), Some(Location::Memory));
        assert_eq!(
            parse_url("sqlite://./data/steward.db?mode=rwc").ok(),
            Some(Location::File(PathBuf::from("./data/steward.db")))
        );
        assert_eq!(
            parse_url("sqlite:steward.db").ok(),
            Some(Location::File(PathBuf::from("steward.db")))
        );
        assert!(matches!(parse_url("sqlite://"), Err(StoreError::InvalidUrl(_))));
        assert!(matches!(
            parse_url("sqlite://x.db?cache=shared"),
            Err(StoreError::InvalidUrl(_))
        ));
    }
}
