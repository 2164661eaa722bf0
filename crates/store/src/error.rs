//! The one error type of the storage layer.
//!
//! Display strings are short reasons only: SQL text, bound values and
//! connection strings (which may carry passwords) never reach a log line or
//! an HTTP response through this type. The underlying driver error stays
//! reachable through `source()` for operators who need it.

/// A driver's own error, kept for `source()` only.
pub type DriverError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record does not exist, or a record it refers to does not
    /// (a foreign-key violation: e.g. a grant for an unknown client).
    #[error("record not found")]
    NotFound,
    /// A unique constraint refused the write (duplicate id, username, or a
    /// second active signing key).
    #[error("record already exists")]
    Conflict,
    /// The database was migrated by a newer Steward. Running an older binary
    /// against it could silently misread or drop data, so we refuse.
    #[error(
        "database schema version {found} is newer than this build supports ({supported}); refusing to run"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    /// The URL's scheme names no backend this build has.
    #[error("unsupported database URL scheme {scheme:?} (expected sqlite: or postgres://)")]
    UnsupportedUrl { scheme: String },
    /// The connection string could not be parsed.
    #[error("invalid database URL")]
    InvalidUrl(#[source] DriverError),
    /// Applying the embedded migrations failed.
    #[error("database migration failed: {reason}")]
    Migration {
        reason: &'static str,
        #[source]
        source: DriverError,
    },
    /// A stored value this build cannot interpret (e.g. an unknown enum text).
    #[error("stored value in column {column} is invalid")]
    Corrupt { column: &'static str },
    /// The database cannot be reached right now: no connection within the
    /// pool's acquire timeout, a connection lost mid-statement, or the server
    /// shutting down or refusing connections. Temporary by nature, so the
    /// server answers 503 with `Retry-After` rather than 500.
    #[error("database unavailable: {reason}")]
    Unavailable {
        reason: &'static str,
        #[source]
        source: DriverError,
    },
    /// Any other driver failure: protocol, decoding, a failed statement.
    #[error("database error: {reason}")]
    Database {
        reason: &'static str,
        #[source]
        source: DriverError,
    },
    /// Creating the SQLite file's parent directory failed.
    #[error("cannot create database directory")]
    Io(#[source] std::io::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let Some(db) = e.as_database_error() {
            if db.is_unique_violation() {
                return StoreError::Conflict;
            }
            if db.is_foreign_key_violation() {
                return StoreError::NotFound;
            }
        }
        if let Some(reason) = unavailable(&e) {
            return StoreError::Unavailable {
                reason,
                source: Box::new(e),
            };
        }
        let reason = match &e {
            sqlx::Error::Protocol(_) => "protocol error",
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) | sqlx::Error::ColumnNotFound(_) => {
                "cannot decode row"
            }
            sqlx::Error::Database(_) => "query failed",
            sqlx::Error::Configuration(_) => "bad configuration",
            _ => "driver error",
        };
        StoreError::Database {
            reason,
            source: Box::new(e),
        }
    }
}

impl StoreError {
    /// Whether this failure is the database being out of reach (see
    /// [`StoreError::Unavailable`]).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

/// The sqlx failures that mean "the database is out of reach", not "this
/// statement is wrong": pool exhaustion or timeout, transport errors, and
/// the SQLSTATEs PostgreSQL sends when it cannot serve at all (class 08
/// connection exceptions, 57P01–57P03 shutdown and start-up, 53300 too many
/// connections).
fn unavailable(e: &sqlx::Error) -> Option<&'static str> {
    match e {
        sqlx::Error::PoolTimedOut => Some("no connection within the acquire timeout"),
        sqlx::Error::PoolClosed => Some("pool closed"),
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => Some("connection failed"),
        sqlx::Error::Database(db) => {
            let code = db.code()?;
            if code.starts_with("08") {
                Some("connection lost")
            } else if matches!(code.as_ref(), "57P01" | "57P02" | "57P03") {
                Some("server shutting down or starting")
            } else if code == "53300" {
                Some("too many connections")
            } else {
                None
            }
        }
        _ => None,
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ffi;
        if let rusqlite::Error::SqliteFailure(f, _) = &e {
            match f.extended_code {
                ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                    return StoreError::Conflict;
                }
                ffi::SQLITE_CONSTRAINT_FOREIGNKEY => return StoreError::NotFound,
                _ => {}
            }
        }
        let reason = match &e {
            rusqlite::Error::SqliteFailure(f, _) => match f.code {
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => {
                    "database is locked"
                }
                rusqlite::ErrorCode::DiskFull => "disk full",
                rusqlite::ErrorCode::SystemIoFailure => "I/O error",
                rusqlite::ErrorCode::CannotOpen => "cannot open database file",
                rusqlite::ErrorCode::ReadOnly => "database is read-only",
                rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase => {
                    "database file is corrupt"
                }
                _ => "query failed",
            },
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::InvalidColumnName(_)
            | rusqlite::Error::IntegralValueOutOfRange(..) => "cannot decode row",
            _ => "driver error",
        };
        StoreError::Database {
            reason,
            source: Box::new(e),
        }
    }
}

/// Parses an enum stored as its `as_str()` text.
pub(crate) fn parse_column<T: std::str::FromStr>(column: &'static str, text: &str) -> Result<T, StoreError> {
    text.parse().map_err(|_| StoreError::Corrupt { column })
}

/// Converts a bound on row counts to the SQL `LIMIT` operand; `None` means all.
pub(crate) fn sql_limit(limit: Option<u32>) -> i64 {
    limit.map_or(i64::MAX, i64::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_never_contains_sql_or_values() {
        let e = StoreError::from(sqlx::Error::Protocol(
            "SELECT secret FROM x WHERE y = 'hunter2'".into(),
        ));
        let shown = e.to_string();
        assert_eq!(shown, "database error: protocol error");
        assert!(!shown.contains("hunter2"));
    }

    #[test]
    fn an_unreachable_database_is_unavailable_not_a_query_failure() {
        assert!(StoreError::from(sqlx::Error::PoolTimedOut).is_unavailable());
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = StoreError::from(sqlx::Error::Io(refused));
        assert!(e.is_unavailable());
        assert_eq!(e.to_string(), "database unavailable: connection failed");
        assert!(!StoreError::from(sqlx::Error::RowNotFound).is_unavailable());
        assert!(!StoreError::from(sqlx::Error::Protocol("x".into())).is_unavailable());
    }

    #[test]
    fn schema_too_new_names_both_versions() {
        let e = StoreError::SchemaTooNew {
            found: 7,
            supported: 3,
        };
        assert!(e.to_string().contains('7') && e.to_string().contains('3'));
    }

    #[test]
    fn unknown_enum_text_is_corrupt_not_panic() {
        let r: Result<steward_core::ClientKind, _> = parse_column("kind", "martian");
        assert!(matches!(r, Err(StoreError::Corrupt { column: "kind" })));
    }

    #[test]
    fn no_limit_means_all_rows() {
        assert_eq!(sql_limit(None), i64::MAX);
        assert_eq!(sql_limit(Some(5)), 5);
    }
}
