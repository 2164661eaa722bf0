//! `DcrStore` on SQLite. Each registration is one write job: the worker
//! runs it in one savepoint, so the client, its registration, the token use
//! and the audit event land together or not at all.

use super::{SqliteStore, all, append_audit_in, enum_col, exec, insert_client_in, one, ot, t, text_row, ut};
use crate::StoreError;
use crate::audit::NewAuditEvent;
use crate::dcr::{
    DcrRegistration, DcrStore, DcrUse, InitialToken, NewRegistration, RegisterOutcome, USE_RESOLUTION_SECS,
};
use async_trait::async_trait;
use rusqlite::{Connection, Row, params};
use steward_core::UnixTime;

macro_rules! registration_cols {
    () => {
        "client_id, source_address, software_id, statement_issuer, initial_token_id, dedupe_key, \
         access_token_hash, registered_at, last_authorized_at, last_token_at"
    };
}

fn registration_row(r: &Row) -> Result<DcrRegistration, StoreError> {
    Ok(DcrRegistration {
        client_id: r.get(0)?,
        source_address: r.get(1)?,
        software_id: r.get(2)?,
        statement_issuer: r.get(3)?,
        initial_token_id: r.get(4)?,
        dedupe_key: r.get(5)?,
        access_token_hash: r.get(6)?,
        registered_at: t(r.get(7)?),
        last_authorized_at: ot(r.get(8)?),
        last_token_at: ot(r.get(9)?),
    })
}

macro_rules! token_cols {
    () => {
        "id, token_hash, tier, max_uses, uses, expires_at, created_at, created_by, revoked_at"
    };
}

fn token_row(r: &Row) -> Result<InitialToken, StoreError> {
    Ok(InitialToken {
        id: r.get(0)?,
        token_hash: r.get(1)?,
        tier: enum_col(r, 2, "dcr_initial_tokens.tier")?,
        max_uses: r.get(3)?,
        uses: r.get(4)?,
        expires_at: ot(r.get(5)?),
        created_at: t(r.get(6)?),
        created_by: r.get(7)?,
        revoked_at: ot(r.get(8)?),
    })
}

fn take_token_use(db: &Connection, id: &str, now: UnixTime) -> Result<bool, StoreError> {
    Ok(exec(
        db,
        "UPDATE dcr_initial_tokens SET uses = uses + 1 WHERE id = ?1 AND revoked_at IS NULL \
         AND (expires_at IS NULL OR expires_at > ?2) AND (max_uses IS NULL OR uses < max_uses)",
        params![id, now.0],
    )? == 1)
}

/// Records the registration document as the client's latest metadata
/// version, so a dynamic client's history reads like a metadata document's
/// (issue 14 §2) and its digest is the version's content hash.
fn record_version(db: &Connection, client_id: &str, body: &str, now: UnixTime) -> Result<(), StoreError> {
    exec(
        db,
        "INSERT INTO client_metadata_versions (client_id, content_hash, body, fetched_at, last_seen_at) \
         VALUES (?1, ?2, ?3, ?4, ?4) \
         ON CONFLICT (client_id, content_hash) DO UPDATE SET last_seen_at = excluded.last_seen_at",
        params![
            client_id,
            steward_governance::facts::sha256_hex(body),
            body,
            now.0
        ],
    )?;
    Ok(())
}

/// One statement guarded by its condition and, when it changed a row, its
/// audit event, in the caller's write job: both or neither.
fn guarded_with_event(
    db: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
    event: &NewAuditEvent,
) -> Result<bool, StoreError> {
    if exec(db, sql, p)? == 0 {
        return Ok(false);
    }
    append_audit_in(db, event)?;
    Ok(true)
}

fn register_in(db: &Connection, new: &NewRegistration<'_>) -> Result<RegisterOutcome, StoreError> {
    let reg = new.registration;
    let c = new.client;
    if let Some(token) = &reg.initial_token_id
        && !take_token_use(db, token, reg.registered_at)?
    {
        return Ok(RegisterOutcome::TokenRefused);
    }
    let existing = one(
        db,
        "SELECT r.client_id FROM dcr_registrations r JOIN clients c ON c.client_id = r.client_id \
         WHERE r.dedupe_key = ?1 AND r.registered_at >= ?2 AND c.state IN ('active', 'pending') \
         ORDER BY r.registered_at DESC LIMIT 1",
        params![reg.dedupe_key, new.dedupe_since.0],
        text_row,
    )?;
    if let Some(client_id) = existing {
        exec(
            db,
            "UPDATE dcr_registrations SET access_token_hash = ?1 WHERE client_id = ?2",
            params![reg.access_token_hash, client_id],
        )?;
        if c.secret_hash.is_some() {
            exec(
                db,
                "UPDATE clients SET secret_hash = ?1, updated_at = ?2 WHERE client_id = ?3",
                params![c.secret_hash, reg.registered_at.0, client_id],
            )?;
        }
        let registration = one(
            db,
            "SELECT registration FROM clients WHERE client_id = ?1",
            params![client_id],
            text_row,
        )?
        .unwrap_or_default();
        let mut event = new.dedupe_event.clone();
        event.client_id = Some(client_id.clone());
        append_audit_in(db, &event)?;
        return Ok(RegisterOutcome::Existing {
            client_id,
            registration,
        });
    }
    insert_client_in(db, c, "")?;
    exec(
        db,
        concat!(
            "INSERT INTO dcr_registrations (",
            registration_cols!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        ),
        params![
            reg.client_id,
            reg.source_address,
            reg.software_id,
            reg.statement_issuer,
            reg.initial_token_id,
            reg.dedupe_key,
            reg.access_token_hash,
            reg.registered_at.0,
            ut(reg.last_authorized_at),
            ut(reg.last_token_at),
        ],
    )?;
    record_version(db, &c.client_id, &c.registration, reg.registered_at)?;
    append_audit_in(db, new.created_event)?;
    Ok(RegisterOutcome::Created)
}

#[async_trait]
impl DcrStore for SqliteStore {
    async fn register_client(&self, new: &NewRegistration<'_>) -> Result<RegisterOutcome, StoreError> {
        let client = new.client.clone();
        let registration = new.registration.clone();
        let created = new.created_event.clone();
        let dedupe = new.dedupe_event.clone();
        let since = new.dedupe_since;
        let outcome = self
            .write(move |db| {
                register_in(
                    db,
                    &NewRegistration {
                        client: &client,
                        registration: &registration,
                        dedupe_since: since,
                        created_event: &created,
                        dedupe_event: &dedupe,
                    },
                )
            })
            .await?;
        match &outcome {
            RegisterOutcome::Existing { client_id, .. } => self.clients.forget(client_id),
            _ => self.clients.forget(&new.client.client_id),
        }
        Ok(outcome)
    }

    async fn registration_by_token(&self, hash: &str) -> Result<Option<DcrRegistration>, StoreError> {
        let hash = hash.to_owned();
        self.read(move |db| {
            one(
                db,
                concat!(
                    "SELECT ",
                    registration_cols!(),
                    " FROM dcr_registrations WHERE access_token_hash = ?1"
                ),
                params![hash],
                registration_row,
            )
        })
        .await
    }

    async fn dcr_registration(&self, client_id: &str) -> Result<Option<DcrRegistration>, StoreError> {
        let id = client_id.to_owned();
        self.read(move |db| {
            one(
                db,
                concat!(
                    "SELECT ",
                    registration_cols!(),
                    " FROM dcr_registrations WHERE client_id = ?1"
                ),
                params![id],
                registration_row,
            )
        })
        .await
    }

    async fn list_dcr_registrations(&self) -> Result<Vec<DcrRegistration>, StoreError> {
        self.read(move |db| {
            all(
                db,
                concat!(
                    "SELECT ",
                    registration_cols!(),
                    " FROM dcr_registrations ORDER BY registered_at, client_id"
                ),
                [],
                registration_row,
            )
        })
        .await
    }

    async fn update_dcr_client(
        &self,
        client_id: &str,
        registration: &str,
        display_name: Option<&str>,
        now: UnixTime,
        event: &NewAuditEvent,
    ) -> Result<bool, StoreError> {
        let id = client_id.to_owned();
        let registration = registration.to_owned();
        let name = display_name.map(str::to_owned);
        let event = event.clone();
        let updated = self
            .write(move |db| {
                let n = exec(
                    db,
                    "UPDATE clients SET registration = ?1, display_name = ?2, updated_at = ?3 \
                     WHERE client_id = ?4 AND kind = 'dynamic'",
                    params![registration, name, now.0, id],
                )?;
                if n == 0 {
                    return Ok(false);
                }
                record_version(db, &id, &registration, now)?;
                append_audit_in(db, &event)?;
                Ok(true)
            })
            .await?;
        self.clients.forget(client_id);
        Ok(updated)
    }

    async fn mark_dcr_use(&self, client_id: &str, what: DcrUse, now: UnixTime) -> Result<(), StoreError> {
        let id = client_id.to_owned();
        let sql = match what {
            DcrUse::Authorized => {
                "UPDATE dcr_registrations SET last_authorized_at = ?1 WHERE client_id = ?2 \
                 AND (last_authorized_at IS NULL OR last_authorized_at < ?3)"
            }
            DcrUse::Token => {
                "UPDATE dcr_registrations SET last_token_at = ?1 WHERE client_id = ?2 \
                 AND (last_token_at IS NULL OR last_token_at < ?3)"
            }
        };
        self.write(move |db| exec(db, sql, params![now.0, id, now.0 - USE_RESOLUTION_SECS]).map(|_| ()))
            .await
    }

    async fn unused_dcr_clients(
        &self,
        registered_before: UnixTime,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        self.read(move |db| {
            all(
                db,
                "SELECT client_id FROM dcr_registrations WHERE registered_at < ?1 \
                 AND last_authorized_at IS NULL ORDER BY registered_at LIMIT ?2",
                params![registered_before.0, limit],
                text_row,
            )
        })
        .await
    }

    async fn delete_unused_dcr_client(
        &self,
        client_id: &str,
        registered_before: UnixTime,
        event: &NewAuditEvent,
    ) -> Result<bool, StoreError> {
        let id = client_id.to_owned();
        let event = event.clone();
        let deleted = self
            .write(move |db| {
                guarded_with_event(
                    db,
                    "DELETE FROM clients WHERE client_id = ?1 AND kind = 'dynamic' AND client_id IN \
                     (SELECT client_id FROM dcr_registrations WHERE registered_at < ?2 \
                      AND last_authorized_at IS NULL)",
                    params![id, registered_before.0],
                    &event,
                )
            })
            .await?;
        self.clients.forget(client_id);
        Ok(deleted)
    }

    async fn idle_dcr_clients(&self, idle_before: UnixTime, limit: u32) -> Result<Vec<String>, StoreError> {
        self.read(move |db| {
            all(
                db,
                "SELECT r.client_id FROM dcr_registrations r JOIN clients c ON c.client_id = r.client_id \
                 WHERE c.state = 'active' \
                 AND COALESCE(r.last_token_at, r.last_authorized_at, r.registered_at) < ?1 \
                 ORDER BY r.registered_at LIMIT ?2",
                params![idle_before.0, limit],
                text_row,
            )
        })
        .await
    }

    async fn create_initial_token(
        &self,
        token: &InitialToken,
        event: &NewAuditEvent,
    ) -> Result<(), StoreError> {
        let tk = token.clone();
        let event = event.clone();
        self.write(move |db| {
            exec(
                db,
                concat!(
                    "INSERT INTO dcr_initial_tokens (",
                    token_cols!(),
                    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                ),
                params![
                    tk.id,
                    tk.token_hash,
                    tk.tier.as_str(),
                    tk.max_uses,
                    tk.uses,
                    ut(tk.expires_at),
                    tk.created_at.0,
                    tk.created_by,
                    ut(tk.revoked_at),
                ],
            )?;
            append_audit_in(db, &event).map(|_| ())
        })
        .await
    }

    async fn initial_token_by_hash(&self, hash: &str) -> Result<Option<InitialToken>, StoreError> {
        let hash = hash.to_owned();
        self.read(move |db| {
            one(
                db,
                concat!(
                    "SELECT ",
                    token_cols!(),
                    " FROM dcr_initial_tokens WHERE token_hash = ?1"
                ),
                params![hash],
                token_row,
            )
        })
        .await
    }

    async fn list_initial_tokens(&self) -> Result<Vec<InitialToken>, StoreError> {
        self.read(move |db| {
            all(
                db,
                concat!(
                    "SELECT ",
                    token_cols!(),
                    " FROM dcr_initial_tokens ORDER BY created_at DESC, id"
                ),
                [],
                token_row,
            )
        })
        .await
    }

    async fn revoke_initial_token(
        &self,
        id: &str,
        now: UnixTime,
        event: &NewAuditEvent,
    ) -> Result<bool, StoreError> {
        let id = id.to_owned();
        let event = event.clone();
        self.write(move |db| {
            guarded_with_event(
                db,
                "UPDATE dcr_initial_tokens SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
                params![now.0, id],
                &event,
            )
        })
        .await
    }
}
