//! History: bulk rows that make the database look like one that has served
//! for a long time, to show that per-request cost does not grow with it.
//!
//! Rows go in with set-based SQL (a recursive CTE on SQLite,
//! `generate_series` on PostgreSQL) straight into Steward's schema; going
//! through the HTTP API would take hours and measure nothing extra. Run after
//! the schema exists (`steward users add` applies the migrations) and before
//! the server starts.

use anyhow::{Context, Result};
use sqlx::Connection;

/// How much history to seed.
#[derive(Clone, Copy, Debug)]
pub struct History {
    pub clients: u64,
    pub tokens: u64,
}

/// Statements for one backend; `$1` = clients, `$2` = tokens, `$3` = now are filled in.
/// Clients are pre-registered confidential ones; tokens are spread over
/// them and over the last 30 days, nine in ten already expired (nothing
/// purges them, so a long-running server keeps that many).
const SQLITE: [&str; 2] = [
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1)
     INSERT INTO clients (client_id, kind, display_name, first_seen, last_seen, state, trust_tier,
                          secret_hash, registration, created_at, updated_at)
     SELECT 'hist-client-' || i, 'pre_registered', 'History client ' || i, $3 - 2592000, $3 - (i % 86400),
            'active', 'verified', printf('%064x', i), '{\"grant_types\":[\"client_credentials\"]}',
            $3 - 2592000, $3 - 2592000
     FROM n",
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $2)
     INSERT INTO access_tokens (jti, token_hash, client_id, user_id, grant_id, family_id, scopes, resource,
                                issued_at, expires_at, revoked_at)
     SELECT 'hist' || printf('%018d', i), NULL, 'hist-client-' || (1 + i % $1), NULL, NULL, NULL, 'mcp:tools',
            'https://mcp.example.com/mcp',
            CASE WHEN i % 10 = 0 THEN $3 - (i % 300) ELSE $3 - 600 - (i % 2592000) END,
            CASE WHEN i % 10 = 0 THEN $3 - (i % 300) + 600 ELSE $3 - (i % 2592000) END,
            NULL
     FROM n",
];

const POSTGRES: [&str; 2] = [
    "INSERT INTO clients (client_id, kind, display_name, first_seen, last_seen, state, trust_tier,
                          secret_hash, registration, created_at, updated_at)
     SELECT 'hist-client-' || i, 'pre_registered', 'History client ' || i, $3 - 2592000, $3 - (i % 86400),
            'active', 'verified', lpad(to_hex(i), 64, '0'), '{\"grant_types\":[\"client_credentials\"]}',
            $3 - 2592000, $3 - 2592000
     FROM generate_series(1::bigint, $1) AS i",
    "INSERT INTO access_tokens (jti, token_hash, client_id, user_id, grant_id, family_id, scopes, resource,
                                issued_at, expires_at, revoked_at)
     SELECT 'hist' || lpad(i::text, 18, '0'), NULL, 'hist-client-' || (1 + i % $1), NULL, NULL, NULL, 'mcp:tools',
            'https://mcp.example.com/mcp',
            CASE WHEN i % 10 = 0 THEN $3 - (i % 300) ELSE $3 - 600 - (i % 2592000) END,
            CASE WHEN i % 10 = 0 THEN $3 - (i % 300) + 600 ELSE $3 - (i % 2592000) END,
            NULL
     FROM generate_series(1::bigint, $2) AS i",
];

/// Seeds `history` into the database at `url` (sqlite://… or postgres://…).
pub async fn seed(url: &str, history: History, now: i64) -> Result<()> {
    let clients = i64::try_from(history.clients)?;
    let tokens = i64::try_from(history.tokens)?;
    // The parameters are integers formatted into the text: the two backends
    // disagree on placeholders that a statement does not use.
    let fill = |sql: &str| {
        sql.replace("$1", &clients.to_string())
            .replace("$2", &tokens.to_string())
            .replace("$3", &now.to_string())
    };
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url)
            .await
            .context("opening SQLite")?;
        for sql in SQLITE {
            sqlx::query(&fill(sql))
                .execute(&mut conn)
                .await
                .context("seeding history")?;
        }
        sqlx::query("ANALYZE").execute(&mut conn).await?;
    } else {
        let mut conn = sqlx::PgConnection::connect(url)
            .await
            .context("opening PostgreSQL")?;
        for sql in POSTGRES {
            sqlx::query(&fill(sql))
                .execute(&mut conn)
                .await
                .context("seeding history")?;
        }
        sqlx::query("ANALYZE").execute(&mut conn).await?;
    }
    Ok(())
}

/// Creates `name` afresh on the PostgreSQL server of `admin_url` (dropping a
/// leftover from an interrupted run) and returns its URL.
pub async fn create_database(admin_url: &str, name: &str) -> Result<String> {
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {admin_url}"))?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await?;
    let mut url = url::Url::parse(admin_url)?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

/// Drops the benchmark database.
pub async fn drop_database(admin_url: &str, name: &str) -> Result<()> {
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    Ok(())
}
