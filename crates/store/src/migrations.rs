//! Embedded, versioned migrations per backend, and the no-downgrade rule.
//!
//! The SQL files are compiled into the binary (`include_str!`), so a deployed
//! binary always carries exactly the schema it was built for. Each migration
//! runs in its own transaction (sqlx's migrator); applied versions and their
//! checksums are recorded in `_sqlx_migrations`. A database that has a version
//! this binary does not know was migrated by a newer Steward: we stop with
//! [`StoreError::SchemaTooNew`] rather than run old code against a new schema.

use crate::StoreError;
use sqlx::error::BoxDynError;
use sqlx::migrate::{MigrateError, Migration, MigrationSource, MigrationType, Migrator};
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

/// One embedded migration: version, description, SQL. Versions only grow;
/// 3 was never used (versions were reserved per change and 3 was not needed).
pub(crate) type Embedded = (i64, &'static str, &'static str);

pub(crate) const SQLITE: &[Embedded] = &[
    (
        1,
        "initial",
        include_str!("../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "logos and auth_time",
        include_str!("../migrations/sqlite/0002_logos_and_auth_time.sql"),
    ),
    (
        4,
        "code access token",
        include_str!("../migrations/sqlite/0004_code_access_token.sql"),
    ),
    (
        5,
        "attempt counters and purge indexes",
        include_str!("../migrations/sqlite/0005_attempts_and_purge.sql"),
    ),
    (
        6,
        "multi node",
        include_str!("../migrations/sqlite/0006_multi_node.sql"),
    ),
    (
        7,
        "governance",
        include_str!("../migrations/sqlite/0007_governance.sql"),
    ),
    (
        8,
        "policy generation",
        include_str!("../migrations/sqlite/0008_policy_generation.sql"),
    ),
    (
        9,
        "governance revision",
        include_str!("../migrations/sqlite/0009_governance_revision.sql"),
    ),
    (
        10,
        "dynamic registration",
        include_str!("../migrations/sqlite/0010_dynamic_registration.sql"),
    ),
    (
        11,
        "client name index",
        include_str!("../migrations/sqlite/0011_client_name_index.sql"),
    ),
];

pub(crate) const POSTGRES: &[Embedded] = &[
    (
        1,
        "initial",
        include_str!("../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "logos and auth_time",
        include_str!("../migrations/postgres/0002_logos_and_auth_time.sql"),
    ),
    (
        4,
        "code access token",
        include_str!("../migrations/postgres/0004_code_access_token.sql"),
    ),
    (
        5,
        "attempt counters and purge indexes",
        include_str!("../migrations/postgres/0005_attempts_and_purge.sql"),
    ),
    (
        6,
        "multi node",
        include_str!("../migrations/postgres/0006_multi_node.sql"),
    ),
    (
        7,
        "governance",
        include_str!("../migrations/postgres/0007_governance.sql"),
    ),
    (
        8,
        "policy generation",
        include_str!("../migrations/postgres/0008_policy_generation.sql"),
    ),
    (
        9,
        "governance revision",
        include_str!("../migrations/postgres/0009_governance_revision.sql"),
    ),
    (
        10,
        "dynamic registration",
        include_str!("../migrations/postgres/0010_dynamic_registration.sql"),
    ),
    (
        11,
        "client name index",
        include_str!("../migrations/postgres/0011_client_name_index.sql"),
    ),
];

/// A [`MigrationSource`] over SQL compiled into the binary.
#[derive(Debug, Clone, Copy)]
struct EmbeddedSource(&'static [Embedded]);

impl MigrationSource<'static> for EmbeddedSource {
    fn resolve(self) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// The newest schema version this build knows for the given set.
pub(crate) fn supported_version(set: &[Embedded]) -> i64 {
    set.iter().map(|m| m.0).max().unwrap_or(0)
}

/// Builds the migrator for one backend's embedded set.
pub(crate) async fn migrator(set: &'static [Embedded]) -> Result<Migrator, StoreError> {
    Migrator::new(EmbeddedSource(set))
        .await
        .map_err(|source| StoreError::Migration {
            reason: "cannot load embedded migrations",
            source: source.into(),
        })
}

/// Maps the migrator's failures, turning "applied version unknown to us"
/// into the explicit no-downgrade error.
pub(crate) fn map_migrate_error(set: &[Embedded], e: MigrateError) -> StoreError {
    let supported = supported_version(set);
    match e {
        MigrateError::VersionMissing(found) if found > supported => {
            StoreError::SchemaTooNew { found, supported }
        }
        MigrateError::VersionMissing(_) => StoreError::Migration {
            reason: "database has a migration this build does not know",
            source: e.into(),
        },
        MigrateError::VersionMismatch(_) => StoreError::Migration {
            reason: "an applied migration differs from the embedded one",
            source: e.into(),
        },
        MigrateError::Dirty(_) => StoreError::Migration {
            reason: "a previous migration failed part-way; repair required",
            source: e.into(),
        },
        other => StoreError::Migration {
            reason: "migration failed",
            source: other.into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_backends_have_the_same_versions() {
        let s: Vec<(i64, &str)> = SQLITE.iter().map(|m| (m.0, m.1)).collect();
        let p: Vec<(i64, &str)> = POSTGRES.iter().map(|m| (m.0, m.1)).collect();
        assert_eq!(s, p);
    }

    #[test]
    fn versions_strictly_increase() {
        for set in [SQLITE, POSTGRES] {
            assert!(set.windows(2).all(|w| w[0].0 < w[1].0));
        }
    }

    #[test]
    fn a_newer_applied_version_is_schema_too_new() {
        let e = map_migrate_error(
            SQLITE,
            MigrateError::VersionMissing(supported_version(SQLITE) + 1),
        );
        assert!(matches!(e, StoreError::SchemaTooNew { .. }));
    }

    /// Cheap drift guard: both schemas create the same tables and indexes.
    #[test]
    fn schemas_declare_the_same_objects() {
        fn objects(sql: &str) -> Vec<String> {
            sql.lines()
                .filter_map(|l| {
                    let l = l.trim();
                    let rest = l
                        .strip_prefix("CREATE TABLE ")
                        .or_else(|| l.strip_prefix("CREATE INDEX "))
                        .or_else(|| l.strip_prefix("CREATE UNIQUE INDEX "))
                        .or_else(|| l.strip_prefix("ALTER TABLE "))?;
                    Some(rest.split_whitespace().take(4).collect::<Vec<_>>().join(" "))
                })
                .map(|o| o.trim_end_matches(['(', ';']).trim().to_owned())
                .collect()
        }
        assert_eq!(SQLITE.len(), POSTGRES.len());
        let mut total = 0;
        for (s, p) in SQLITE.iter().zip(POSTGRES) {
            assert_eq!((s.0, s.1), (p.0, p.1), "migrations pair up by version");
            let so = objects(s.2);
            total += so.len();
            assert_eq!(so, objects(p.2), "migration {}", s.0);
        }
        assert!(total > 20);
    }
}
