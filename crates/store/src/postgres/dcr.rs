//! `DcrStore` on PostgreSQL. A registration is one transaction; two nodes
//! registering the same dedupe key at once are serialised by a transaction
//! advisory lock on the key, so the second sees the first's client.

use super::{CLIENT_COLS, PostgresStore, append_audit_on, bind_client, collect, ot, t};
use crate::StoreError;
use crate::audit::NewAuditEvent;
use crate::dcr::{
    DcrRegistration, DcrStore, DcrUse, InitialToken, NewRegistration, RegisterOutcome, USE_RESOLUTION_SECS,
};
use crate::error::parse_column;
use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;
use steward_core::UnixTime;

const REGISTRATION_COLS: &str = "client_id, source_address, software_id, statement_issuer, initial_token_id, \
    dedupe_key, access_token_hash, registered_at, last_authorized_at, last_token_at";

fn registration_row(r: &PgRow) -> Result<DcrRegistration, StoreError> {
    Ok(DcrRegistration {
        client_id: r.try_get("client_id")?,
        source_address: r.try_get("source_address")?,
        software_id: r.try_get("software_id")?,
        statement_issuer: r.try_get("statement_issuer")?,
        initial_token_id: r.try_get("initial_token_id")?,
        dedupe_key: r.try_get("dedupe_key")?,
        access_token_hash: r.try_get("access_token_hash")?,
        registered_at: t(r.try_get("registered_at")?),
        last_authorized_at: ot(r.try_get("last_authorized_at")?),
        last_token_at: ot(r.try_get("last_token_at")?),
    })
}

const TOKEN_COLS: &str =
    "id, token_hash, tier, max_uses, uses, expires_at, created_at, created_by, revoked_at";

fn token_row(r: &PgRow) -> Result<InitialToken, StoreError> {
    let count = |v: Option<i32>| v.and_then(|n| u32::try_from(n).ok());
    Ok(InitialToken {
        id: r.try_get("id")?,
        token_hash: r.try_get("token_hash")?,
        tier: parse_column("dcr_initial_tokens.tier", r.try_get::<&str, _>("tier")?)?,
        max_uses: count(r.try_get("max_uses")?),
        uses: count(Some(r.try_get("uses")?)).unwrap_or(0),
        expires_at: ot(r.try_get("expires_at")?),
        created_at: t(r.try_get("created_at")?),
        created_by: r.try_get("created_by")?,
        revoked_at: ot(r.try_get("revoked_at")?),
    })
}

fn text(r: &PgRow) -> Result<String, StoreError> {
    Ok(r.try_get(0)?)
}

/// Records the registration document as the client's latest metadata
/// version (see the SQLite implementation).
async fn record_version(
    conn: &mut sqlx::PgConnection,
    client_id: &str,
    body: &str,
    now: UnixTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO client_metadata_versions (client_id, content_hash, body, fetched_at, last_seen_at) \
         VALUES ($1, $2, $3, $4, $4) \
         ON CONFLICT (client_id, content_hash) DO UPDATE SET last_seen_at = excluded.last_seen_at",
    )
    .bind(client_id)
    .bind(steward_governance::facts::sha256_hex(body))
    .bind(body)
    .bind(now.0)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl PostgresStore {
    async fn register_on(&self, new: &NewRegistration<'_>) -> Result<RegisterOutcome, StoreError> {
        let reg = new.registration;
        let c = new.client;
        let mut tx = self.pool.begin().await?;
        if let Some(token) = &reg.initial_token_id {
            let took = sqlx::query(
                "UPDATE dcr_initial_tokens SET uses = uses + 1 WHERE id = $1 AND revoked_at IS NULL \
                 AND (expires_at IS NULL OR expires_at > $2) AND (max_uses IS NULL OR uses < max_uses)",
            )
            .bind(token)
            .bind(reg.registered_at.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if took != 1 {
                return Ok(RegisterOutcome::TokenRefused);
            }
        }
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7591))")
            .bind(&reg.dedupe_key)
            .execute(&mut *tx)
            .await?;
        let existing: Option<String> = sqlx::query_scalar(
            "SELECT r.client_id FROM dcr_registrations r JOIN clients c ON c.client_id = r.client_id \
             WHERE r.dedupe_key = $1 AND r.registered_at >= $2 AND c.state IN ('active', 'pending') \
             ORDER BY r.registered_at DESC LIMIT 1",
        )
        .bind(&reg.dedupe_key)
        .bind(new.dedupe_since.0)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(client_id) = existing {
            sqlx::query("UPDATE dcr_registrations SET access_token_hash = $1 WHERE client_id = $2")
                .bind(&reg.access_token_hash)
                .bind(&client_id)
                .execute(&mut *tx)
                .await?;
            if c.secret_hash.is_some() {
                sqlx::query("UPDATE clients SET secret_hash = $1, updated_at = $2 WHERE client_id = $3")
                    .bind(&c.secret_hash)
                    .bind(reg.registered_at.0)
                    .bind(&client_id)
                    .execute(&mut *tx)
                    .await?;
            }
            let registration: String =
                sqlx::query_scalar("SELECT registration FROM clients WHERE client_id = $1")
                    .bind(&client_id)
                    .fetch_one(&mut *tx)
                    .await?;
            let mut event = new.dedupe_event.clone();
            event.client_id = Some(client_id.clone());
            append_audit_on(&mut tx, &event).await?;
            tx.commit().await?;
            return Ok(RegisterOutcome::Existing {
                client_id,
                registration,
            });
        }
        bind_client(
            sqlx::query(&format!(
                "INSERT INTO clients ({CLIENT_COLS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
            )),
            c,
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "INSERT INTO dcr_registrations ({REGISTRATION_COLS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(&reg.client_id)
        .bind(&reg.source_address)
        .bind(&reg.software_id)
        .bind(&reg.statement_issuer)
        .bind(&reg.initial_token_id)
        .bind(&reg.dedupe_key)
        .bind(&reg.access_token_hash)
        .bind(reg.registered_at.0)
        .bind(reg.last_authorized_at.map(|t| t.0))
        .bind(reg.last_token_at.map(|t| t.0))
        .execute(&mut *tx)
        .await?;
        record_version(&mut tx, &c.client_id, &c.registration, reg.registered_at).await?;
        append_audit_on(&mut tx, new.created_event).await?;
        tx.commit().await?;
        Ok(RegisterOutcome::Created)
    }

    /// One statement guarded by a condition, with its event, in one transaction.
    async fn guarded_with_event(
        &self,
        query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
        event: &NewAuditEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        if query.execute(&mut *tx).await?.rows_affected() == 0 {
            return Ok(false);
        }
        append_audit_on(&mut tx, event).await?;
        tx.commit().await?;
        Ok(true)
    }
}

#[async_trait]
impl DcrStore for PostgresStore {
    async fn register_client(&self, new: &NewRegistration<'_>) -> Result<RegisterOutcome, StoreError> {
        self.register_on(new).await
    }

    async fn registration_by_token(&self, hash: &str) -> Result<Option<DcrRegistration>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {REGISTRATION_COLS} FROM dcr_registrations WHERE access_token_hash = $1"
        ))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(registration_row).transpose()
    }

    async fn dcr_registration(&self, client_id: &str) -> Result<Option<DcrRegistration>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {REGISTRATION_COLS} FROM dcr_registrations WHERE client_id = $1"
        ))
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(registration_row).transpose()
    }

    async fn list_dcr_registrations(&self) -> Result<Vec<DcrRegistration>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {REGISTRATION_COLS} FROM dcr_registrations ORDER BY registered_at, client_id"
        ))
        .fetch_all(&self.pool)
        .await?;
        collect(&rows, registration_row)
    }

    async fn update_dcr_client(
        &self,
        client_id: &str,
        registration: &str,
        display_name: Option<&str>,
        now: UnixTime,
        event: &NewAuditEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE clients SET registration = $1, display_name = $2, updated_at = $3 \
             WHERE client_id = $4 AND kind = 'dynamic'",
        )
        .bind(registration)
        .bind(display_name)
        .bind(now.0)
        .bind(client_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        record_version(&mut tx, client_id, registration, now).await?;
        append_audit_on(&mut tx, event).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn mark_dcr_use(&self, client_id: &str, what: DcrUse, now: UnixTime) -> Result<(), StoreError> {
        let sql = match what {
            DcrUse::Authorized => {
                "UPDATE dcr_registrations SET last_authorized_at = $1 WHERE client_id = $2 \
                 AND (last_authorized_at IS NULL OR last_authorized_at < $3)"
            }
            DcrUse::Token => {
                "UPDATE dcr_registrations SET last_token_at = $1 WHERE client_id = $2 \
                 AND (last_token_at IS NULL OR last_token_at < $3)"
            }
        };
        sqlx::query(sql)
            .bind(now.0)
            .bind(client_id)
            .bind(now.0 - USE_RESOLUTION_SECS)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn unused_dcr_clients(
        &self,
        registered_before: UnixTime,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT client_id FROM dcr_registrations WHERE registered_at < $1 \
             AND last_authorized_at IS NULL ORDER BY registered_at LIMIT $2",
        )
        .bind(registered_before.0)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        collect(&rows, text)
    }

    async fn delete_unused_dcr_client(
        &self,
        client_id: &str,
        registered_before: UnixTime,
        event: &NewAuditEvent,
    ) -> Result<bool, StoreError> {
        let q = sqlx::query(
            "DELETE FROM clients WHERE client_id = $1 AND kind = 'dynamic' AND client_id IN \
             (SELECT client_id FROM dcr_registrations WHERE registered_at < $2 AND last_authorized_at IS NULL)",
        )
        .bind(client_id)
        .bind(registered_before.0);
        self.guarded_with_event(q, event).await
    }

    async fn idle_dcr_clients(&self, idle_before: UnixTime, limit: u32) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.client_id FROM dcr_registrations r JOIN clients c ON c.client_id = r.client_id \
             WHERE c.state = 'active' \
             AND COALESCE(r.last_token_at, r.last_authorized_at, r.registered_at) < $1 \
             ORDER BY r.registered_at LIMIT $2",
        )
        .bind(idle_before.0)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        collect(&rows, text)
    }

    async fn create_initial_token(&self, tk: &InitialToken, event: &NewAuditEvent) -> Result<(), StoreError> {
        let count = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO dcr_initial_tokens ({TOKEN_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&tk.id)
        .bind(&tk.token_hash)
        .bind(tk.tier.as_str())
        .bind(tk.max_uses.map(count))
        .bind(count(tk.uses))
        .bind(tk.expires_at.map(|t| t.0))
        .bind(tk.created_at.0)
        .bind(&tk.created_by)
        .bind(tk.revoked_at.map(|t| t.0))
        .execute(&mut *tx)
        .await?;
        append_audit_on(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn initial_token_by_hash(&self, hash: &str) -> Result<Option<InitialToken>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLS} FROM dcr_initial_tokens WHERE token_hash = $1"
        ))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(token_row).transpose()
    }

    async fn list_initial_tokens(&self) -> Result<Vec<InitialToken>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLS} FROM dcr_initial_tokens ORDER BY created_at DESC, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        collect(&rows, token_row)
    }

    async fn revoke_initial_token(
        &self,
        id: &str,
        now: UnixTime,
        event: &NewAuditEvent,
    ) -> Result<bool, StoreError> {
        let q =
            sqlx::query("UPDATE dcr_initial_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now.0)
                .bind(id);
        self.guarded_with_event(q, event).await
    }
}
