//! Applies the embedded SQLite migrations on the store's own connection.
//!
//! The bookkeeping table is the one earlier Steward releases wrote through
//! sqlx's migrator (`_sqlx_migrations`, checksum = SHA-384 of the SQL text),
//! so a database created by any release opens unchanged, and the same rules
//! hold: an applied version this build does not know is refused (newer:
//! [`StoreError::SchemaTooNew`]), an applied migration whose text differs is
//! refused, and a migration left unfinished is refused. Each migration and
//! its record commit together, so none ever runs twice.

use crate::StoreError;
use crate::migrations::{Embedded, supported_version};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha384};

pub(super) fn run(conn: &Connection, set: &[Embedded]) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
            version BIGINT PRIMARY KEY,
            description TEXT NOT NULL,
            installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
            success BOOLEAN NOT NULL,
            checksum BLOB NOT NULL,
            execution_time BIGINT NOT NULL
        );",
    )?;
    let dirty: Option<i64> = conn
        .query_row(
            "SELECT version FROM _sqlx_migrations WHERE success = false ORDER BY version LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(version) = dirty {
        return Err(refused(
            "a previous migration failed part-way; repair required",
            format!("migration {version} is marked unsuccessful"),
        ));
    }
    let applied: Vec<(i64, Vec<u8>)> = conn
        .prepare("SELECT version, checksum FROM _sqlx_migrations ORDER BY version")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let supported = supported_version(set);
    for (version, checksum) in &applied {
        match set.iter().find(|m| m.0 == *version) {
            None if *version > supported => {
                return Err(StoreError::SchemaTooNew {
                    found: *version,
                    supported,
                });
            }
            None => {
                return Err(refused(
                    "database has a migration this build does not know",
                    format!("unknown applied migration {version}"),
                ));
            }
            Some(&(_, _, sql)) if checksum.as_slice() != checksum_of(sql).as_slice() => {
                return Err(refused(
                    "an applied migration differs from the embedded one",
                    format!("checksum of migration {version} differs"),
                ));
            }
            Some(_) => {}
        }
    }
    for &(version, description, sql) in set {
        if applied.iter().any(|(v, _)| *v == version) {
            continue;
        }
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let applied = conn.execute_batch(sql).and_then(|()| {
            conn.execute(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                 VALUES (?1, ?2, TRUE, ?3, 0)",
                params![version, description, checksum_of(sql).as_slice()],
            )
        });
        match applied {
            Ok(_) => conn.execute_batch("COMMIT")?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(StoreError::Migration {
                    reason: "migration failed",
                    source: Box::new(e),
                });
            }
        }
    }
    Ok(())
}

fn checksum_of(sql: &str) -> Vec<u8> {
    Sha384::digest(sql.as_bytes()).to_vec()
}

fn refused(reason: &'static str, detail: String) -> StoreError {
    StoreError::Migration {
        reason,
        source: detail.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrations::{SQLITE, migrator};

    /// Databases made by earlier releases were migrated by sqlx's migrator:
    /// they must open unchanged (same table, same checksums), and a second
    /// run is a no-op.
    #[tokio::test]
    async fn a_database_migrated_by_sqlx_opens_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        migrator(SQLITE).await.unwrap().run(&pool).await.unwrap();
        pool.close().await;

        let conn = Connection::open(&path).unwrap();
        run(&conn, SQLITE).unwrap();
        run(&conn, SQLITE).unwrap();
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM _sqlx_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, i64::try_from(SQLITE.len()).unwrap());
    }

    #[test]
    fn an_edited_migration_is_refused() {
        let conn = Connection::open_in_memory().unwrap();
        run(&conn, SQLITE).unwrap();
        conn.execute(
            "UPDATE _sqlx_migrations SET checksum = x'00' WHERE version = 1",
            [],
        )
        .unwrap();
        assert!(matches!(
            run(&conn, SQLITE),
            Err(StoreError::Migration { reason, .. }) if reason.contains("differs")
        ));
    }

    #[test]
    fn an_unfinished_migration_is_refused() {
        let conn = Connection::open_in_memory().unwrap();
        run(&conn, SQLITE).unwrap();
        conn.execute(
            "UPDATE _sqlx_migrations SET success = false WHERE version = 2",
            [],
        )
        .unwrap();
        assert!(matches!(
            run(&conn, SQLITE),
            Err(StoreError::Migration { reason, .. }) if reason.contains("part-way")
        ));
    }
}
