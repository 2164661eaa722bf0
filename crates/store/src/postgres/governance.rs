//! `steward_governance::port::GovernanceStore` on PostgreSQL.
//!
//! Each state change and its audit event share one transaction. Compare-
//! and-set rests on row locks under READ COMMITTED: `UPDATE … WHERE state =
//! $expected` blocks on a concurrent writer of the same row, then re-checks
//! its condition against the committed row, so of two nodes deciding one
//! request at once exactly one matches and the other sees the new state.

use super::{CLIENT_COLS, PostgresStore, append_audit_on, client_rev_row, client_row, collect};
use crate::governance::{Latest, audit_of, join_scopes, port_error, split_scopes, view_of, views_of};
use crate::{ClientRecord, StoreError, error::parse_column};
use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use std::collections::HashMap;
use steward_core::{LifecycleState, UnixTime};
use steward_governance::model::{
    AccessRequest, Actor, Approval, ClientView, GovernanceEvent, GovernanceUser, Owner, OwnerKind,
    RequestDecision, RequestFilter, RequestState, Role,
};
use steward_governance::port::{Decided, GovernanceStore, OwnerChange, PortError, Transition};

const REQUEST_COLS: &str = "id, client_id, resource, scopes, requested_by, requested_by_name, justification, \
    metadata_digest, state, created_at, expires_at, decided_by, decided_by_name, decided_at, \
    decision_justification, granted_scopes, approval_expires_at";

fn request_row(r: &PgRow) -> Result<AccessRequest, StoreError> {
    Ok(AccessRequest {
        id: r.try_get("id")?,
        client_id: r.try_get("client_id")?,
        resource: r.try_get("resource")?,
        scopes: split_scopes(r.try_get("scopes")?),
        requested_by: r.try_get("requested_by")?,
        requested_by_name: r.try_get("requested_by_name")?,
        justification: r.try_get("justification")?,
        metadata_digest: r.try_get("metadata_digest")?,
        state: parse_column("access_requests.state", r.try_get::<&str, _>("state")?)?,
        created_at: UnixTime(r.try_get("created_at")?),
        expires_at: UnixTime(r.try_get("expires_at")?),
        decided_by: r.try_get("decided_by")?,
        decided_by_name: r.try_get("decided_by_name")?,
        decided_at: r.try_get::<Option<i64>, _>("decided_at")?.map(UnixTime),
        decision_justification: r.try_get("decision_justification")?,
        granted_scopes: split_scopes(r.try_get("granted_scopes")?),
        approval_expires_at: r.try_get::<Option<i64>, _>("approval_expires_at")?.map(UnixTime),
    })
}

const APPROVAL_COLS: &str = "id, client_id, resource, scopes, metadata_digest, approved_by, approved_at, \
    expires_at, request_id, self_approved";

fn approval_row(r: &PgRow) -> Result<Approval, StoreError> {
    Ok(Approval {
        id: r.try_get("id")?,
        client_id: r.try_get("client_id")?,
        resource: r.try_get("resource")?,
        scopes: split_scopes(r.try_get("scopes")?),
        metadata_digest: r.try_get("metadata_digest")?,
        approved_by: r.try_get("approved_by")?,
        approved_at: UnixTime(r.try_get("approved_at")?),
        expires_at: r.try_get::<Option<i64>, _>("expires_at")?.map(UnixTime),
        request_id: r.try_get("request_id")?,
        self_approved: r.try_get("self_approved")?,
    })
}

/// Disabled accounts are left out: a disabled owner answers for nothing, so
/// the next owner of the same kind does (issue 13 §3).
const OWNERS: &str = "SELECT o.client_id, o.user_id, u.username, o.kind FROM client_owners o \
     JOIN users u ON u.id = o.user_id WHERE NOT u.disabled";

fn owner_row(r: &PgRow) -> Result<(String, Owner), StoreError> {
    Ok((
        r.try_get("client_id")?,
        Owner {
            user_id: r.try_get("user_id")?,
            username: r.try_get("username")?,
            kind: parse_column("client_owners.kind", r.try_get::<&str, _>("kind")?)?,
        },
    ))
}

/// The latest version by the same order as `latest_metadata_version`.
const LATEST: &str = "SELECT v.client_id, v.body, v.content_hash FROM client_metadata_versions v \
     WHERE v.id = (SELECT w.id FROM client_metadata_versions w WHERE w.client_id = v.client_id \
     ORDER BY w.last_seen_at DESC, w.id DESC LIMIT 1)";

fn latest_row(r: &PgRow) -> Result<(String, Latest), StoreError> {
    Ok((
        r.try_get("client_id")?,
        Latest {
            body: r.try_get("body")?,
            digest: r.try_get("content_hash")?,
        },
    ))
}

/// [`PostgresStore::client_view_on`]'s one statement: the client row, its
/// latest metadata version (the order of `latest_metadata_version`), its
/// owners who are not disabled in succession order, and its approvals
/// oldest first, the last two as JSON arrays.
const VIEW_OF_ONE: &str = concat!(
    "SELECT c.client_id, c.kind, c.display_name, c.first_seen, c.last_seen, c.state, c.owner_organization, ",
    "c.owner_business, c.owner_technical, c.owner_contact, c.trust_tier, c.secret_hash, c.registration, ",
    "c.created_at, c.updated_at, c.governance_rev, ",
    "lv.body AS latest_body, lv.content_hash AS latest_hash, ",
    "(SELECT COALESCE(json_agg(json_build_object('user_id', o.user_id, 'username', u.username, 'kind', o.kind) ",
    "ORDER BY o.seq), '[]'::json) FROM client_owners o JOIN users u ON u.id = o.user_id ",
    "WHERE NOT u.disabled AND o.client_id = c.client_id)::text AS owners_json, ",
    "(SELECT COALESCE(json_agg(json_build_object('id', a.id, 'resource', a.resource, 'scopes', a.scopes, ",
    "'metadata_digest', a.metadata_digest, 'approved_by', a.approved_by, 'approved_at', a.approved_at, ",
    "'expires_at', a.expires_at, 'request_id', a.request_id, 'self_approved', a.self_approved) ",
    "ORDER BY a.approved_at, a.id), '[]'::json) FROM approvals a WHERE a.client_id = c.client_id)::text AS approvals_json ",
    "FROM clients c LEFT JOIN LATERAL (SELECT v.body, v.content_hash FROM client_metadata_versions v ",
    "WHERE v.client_id = c.client_id ORDER BY v.last_seen_at DESC, v.id DESC LIMIT 1) lv ON true ",
    "WHERE c.client_id = $1"
);

#[derive(serde::Deserialize)]
struct OwnerJson {
    user_id: String,
    username: String,
    kind: String,
}

#[derive(serde::Deserialize)]
struct ApprovalJson {
    id: String,
    resource: String,
    scopes: String,
    metadata_digest: Option<String>,
    approved_by: String,
    approved_at: i64,
    expires_at: Option<i64>,
    request_id: Option<String>,
    self_approved: bool,
}

fn json_column<T: serde::de::DeserializeOwned>(row: &PgRow, column: &'static str) -> Result<T, StoreError> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Database {
        reason: "a governance view column is not the JSON it should be",
        source: format!("{column}: {e}").into(),
    })
}

async fn gov_user_on(
    conn: &mut PgConnection,
    sql: &str,
    key: &str,
) -> Result<Option<GovernanceUser>, StoreError> {
    let Some(row) = sqlx::query(sql).bind(key).fetch_optional(&mut *conn).await? else {
        return Ok(None);
    };
    let id: String = row.try_get("id")?;
    let roles: Vec<String> =
        sqlx::query_scalar("SELECT role FROM user_roles WHERE user_id = $1 ORDER BY role")
            .bind(&id)
            .fetch_all(&mut *conn)
            .await?;
    let roles = roles
        .iter()
        .map(|r| parse_column::<Role>("user_roles.role", r))
        .collect::<Result<_, _>>()?;
    Ok(Some(GovernanceUser {
        id,
        username: row.try_get("username")?,
        disabled: row.try_get("disabled")?,
        roles,
    }))
}

async fn approvals_on(conn: &mut PgConnection, client_id: &str) -> Result<Vec<Approval>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {APPROVAL_COLS} FROM approvals WHERE client_id = $1 ORDER BY approved_at, id"
    ))
    .bind(client_id)
    .fetch_all(&mut *conn)
    .await?;
    collect(&rows, approval_row)
}

async fn client_exists_on(conn: &mut PgConnection, client_id: &str) -> Result<bool, StoreError> {
    Ok(
        sqlx::query_scalar::<_, String>("SELECT client_id FROM clients WHERE client_id = $1")
            .bind(client_id)
            .fetch_optional(&mut *conn)
            .await?
            .is_some(),
    )
}

async fn insert_owner_on(
    conn: &mut PgConnection,
    client_id: &str,
    owner: &Owner,
    now: UnixTime,
) -> Result<bool, StoreError> {
    let r = sqlx::query(
        "INSERT INTO client_owners (client_id, user_id, kind, added_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (client_id, user_id, kind) DO NOTHING",
    )
    .bind(client_id)
    .bind(&owner.user_id)
    .bind(owner.kind.as_str())
    .bind(now.0)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() > 0)
}

async fn insert_approval_on(conn: &mut PgConnection, a: &Approval) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "INSERT INTO approvals ({APPROVAL_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    ))
    .bind(&a.id)
    .bind(&a.client_id)
    .bind(&a.resource)
    .bind(join_scopes(&a.scopes))
    .bind(&a.metadata_digest)
    .bind(&a.approved_by)
    .bind(a.approved_at.0)
    .bind(a.expires_at.map(|t| t.0))
    .bind(&a.request_id)
    .bind(a.self_approved)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl PostgresStore {
    /// One client's view in one round trip: the token endpoint asks at
    /// every request, and four queries cost four round trips.
    async fn client_view_on(&self, client_id: &str) -> Result<Option<ClientView>, StoreError> {
        Ok(self.client_and_view_on(client_id).await?.map(|(_, v)| v))
    }

    /// The client's record and its view, from one statement.
    pub(crate) async fn client_and_view_on(
        &self,
        client_id: &str,
    ) -> Result<Option<(ClientRecord, ClientView)>, StoreError> {
        let Some(row) = sqlx::query(VIEW_OF_ONE)
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let client = client_row(&row)?;
        let revision: i64 = row.try_get("governance_rev")?;
        let latest = match (
            row.try_get::<Option<String>, _>("latest_body")?,
            row.try_get::<Option<String>, _>("latest_hash")?,
        ) {
            (Some(body), Some(digest)) => Some(Latest { body, digest }),
            _ => None,
        };
        let owners: Vec<OwnerJson> = json_column(&row, "owners_json")?;
        let owners = owners
            .into_iter()
            .map(|o| {
                Ok(Owner {
                    user_id: o.user_id,
                    username: o.username,
                    kind: parse_column("client_owners.kind", &o.kind)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let approvals: Vec<ApprovalJson> = json_column(&row, "approvals_json")?;
        let approvals = approvals
            .into_iter()
            .map(|a| Approval {
                id: a.id,
                client_id: client_id.to_owned(),
                resource: a.resource,
                scopes: split_scopes(&a.scopes),
                metadata_digest: a.metadata_digest,
                approved_by: a.approved_by,
                approved_at: UnixTime(a.approved_at),
                expires_at: a.expires_at.map(UnixTime),
                request_id: a.request_id,
                self_approved: a.self_approved,
            })
            .collect();
        Ok(Some((
            client.clone(),
            view_of(client, revision, latest, owners, approvals),
        )))
    }

    async fn list_client_views_on(&self) -> Result<Vec<ClientView>, StoreError> {
        // One snapshot, so the four reads agree with each other.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query(&format!(
            "SELECT {CLIENT_COLS}, governance_rev FROM clients ORDER BY client_id"
        ))
        .fetch_all(&mut *tx)
        .await?;
        let clients = collect(&rows, client_rev_row)?;
        let rows = sqlx::query(LATEST).fetch_all(&mut *tx).await?;
        let latest: HashMap<String, Latest> = collect(&rows, latest_row)?.into_iter().collect();
        let rows = sqlx::query(&format!("{OWNERS} ORDER BY o.seq"))
            .fetch_all(&mut *tx)
            .await?;
        let owners = collect(&rows, owner_row)?;
        let rows = sqlx::query(&format!(
            "SELECT {APPROVAL_COLS} FROM approvals ORDER BY approved_at, id"
        ))
        .fetch_all(&mut *tx)
        .await?;
        let approvals = collect(&rows, approval_row)?;
        tx.commit().await?;
        Ok(views_of(clients, latest, owners, approvals))
    }

    async fn set_roles_on(
        &self,
        user_id: &str,
        roles: &[Role],
        event: &GovernanceEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Locks the user row: two concurrent role changes apply one after the other.
        let found = sqlx::query_scalar::<_, String>("SELECT id FROM users WHERE id = $1 FOR UPDATE")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
        if found.is_none() {
            return Ok(false);
        }
        sqlx::query("DELETE FROM user_roles WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        for role in roles {
            sqlx::query(
                "INSERT INTO user_roles (user_id, role, granted_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (user_id, role) DO NOTHING",
            )
            .bind(user_id)
            .bind(role.as_str())
            .bind(event.at.0)
            .execute(&mut *tx)
            .await?;
        }
        append_audit_on(&mut tx, &audit_of(event)).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn transition_on(
        &self,
        client_id: &str,
        expected_from: LifecycleState,
        to: LifecycleState,
        revoke_families: bool,
        now: UnixTime,
        event: &GovernanceEvent,
    ) -> Result<Transition, StoreError> {
        let mut tx = self.pool.begin().await?;
        let moved =
            sqlx::query("UPDATE clients SET state = $1, updated_at = $2 WHERE client_id = $3 AND state = $4")
                .bind(to.as_str())
                .bind(now.0)
                .bind(client_id)
                .bind(expected_from.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if moved == 0 {
            let actual: Option<String> = sqlx::query_scalar("SELECT state FROM clients WHERE client_id = $1")
                .bind(client_id)
                .fetch_optional(&mut *tx)
                .await?;
            return match actual {
                Some(a) => Ok(Transition::Conflict {
                    actual: parse_column("state", &a)?,
                }),
                None => Ok(Transition::Unknown),
            };
        }
        if revoke_families {
            sqlx::query(
                "UPDATE refresh_families SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL",
            )
            .bind(now.0)
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE access_tokens SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL",
            )
            .bind(now.0)
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
        }
        append_audit_on(&mut tx, &audit_of(event)).await?;
        tx.commit().await?;
        Ok(Transition::Applied)
    }

    async fn add_owner_on(
        &self,
        client_id: &str,
        owner: &Owner,
        event: &GovernanceEvent,
    ) -> Result<OwnerChange, StoreError> {
        let mut tx = self.pool.begin().await?;
        if !client_exists_on(&mut tx, client_id).await? {
            return Ok(OwnerChange::UnknownClient);
        }
        if !insert_owner_on(&mut tx, client_id, owner, event.at).await? {
            return Ok(OwnerChange::Unchanged);
        }
        append_audit_on(&mut tx, &audit_of(event)).await?;
        tx.commit().await?;
        Ok(OwnerChange::Applied)
    }

    async fn remove_owner_on(
        &self,
        client_id: &str,
        user_id: &str,
        kind: Option<OwnerKind>,
        event: &GovernanceEvent,
    ) -> Result<OwnerChange, StoreError> {
        let mut tx = self.pool.begin().await?;
        if !client_exists_on(&mut tx, client_id).await? {
            return Ok(OwnerChange::UnknownClient);
        }
        let removed = sqlx::query(
            "DELETE FROM client_owners WHERE client_id = $1 AND user_id = $2 AND ($3::text IS NULL OR kind = $3)",
        )
        .bind(client_id)
        .bind(user_id)
        .bind(kind.map(OwnerKind::as_str))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if removed == 0 {
            return Ok(OwnerChange::Unchanged);
        }
        append_audit_on(&mut tx, &audit_of(event)).await?;
        tx.commit().await?;
        Ok(OwnerChange::Applied)
    }

    /// Sets one free-text governance column of a client with its event.
    /// `column` is one of two constants, never input.
    async fn set_client_text_on(
        &self,
        client_id: &str,
        column: &'static str,
        value: Option<&str>,
        event: &GovernanceEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(&format!(
            "UPDATE clients SET {column} = $1, updated_at = $2 WHERE client_id = $3"
        ))
        .bind(value)
        .bind(event.at.0)
        .bind(client_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Ok(false);
        }
        append_audit_on(&mut tx, &audit_of(event)).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn create_request_on(
        &self,
        q: &AccessRequest,
        event: &GovernanceEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        if !client_exists_on(&mut tx, &q.client_id).await? {
            return Ok(false);
        }
        sqlx::query(&format!(
            "INSERT INTO access_requests ({REQUEST_COLS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
        ))
        .bind(&q.id)
        .bind(&q.client_id)
        .bind(&q.resource)
        .bind(join_scopes(&q.scopes))
        .bind(&q.requested_by)
        .bind(&q.requested_by_name)
        .bind(&q.justification)
        .bind(&q.metadata_digest)
        .bind(RequestState::Pending.as_str())
        .bind(q.created_at.0)
        .bind(q.expires_at.0)
        .bind(&q.decided_by)
        .bind(&q.decided_by_name)
        .bind(q.decided_at.map(|t| t.0))
        .bind(&q.decision_justification)
        .bind(join_scopes(&q.granted_scopes))
        .bind(q.approval_expires_at.map(|t| t.0))
        .execute(&mut *tx)
        .await?;
        append_audit_on(&mut tx, &audit_of(event)).await?;
        tx.commit().await?;
        Ok(true)
    }

    #[allow(clippy::too_many_arguments)] // mirrors the port's one atomic operation
    async fn decide_on(
        &self,
        id: &str,
        expected: RequestState,
        decision: &RequestDecision,
        decided_by: &Actor,
        justification: &str,
        now: UnixTime,
        event: &GovernanceEvent,
    ) -> Result<Decided, StoreError> {
        let (granted, approval_expires) = match decision {
            RequestDecision::Approve { approval, .. } => (join_scopes(&approval.scopes), approval.expires_at),
            RequestDecision::Deny | RequestDecision::Expire => (String::new(), None),
        };
        let mut tx = self.pool.begin().await?;
        let won: Option<String> = sqlx::query_scalar(
            "UPDATE access_requests SET state = $1, decided_by = $2, decided_by_name = $3, \
             decided_at = $4, decision_justification = $5, granted_scopes = $6, \
             approval_expires_at = $7 WHERE id = $8 AND state = $9 RETURNING client_id",
        )
        .bind(decision.resulting_state().as_str())
        .bind(&decided_by.user_id)
        .bind(&decided_by.username)
        .bind(now.0)
        .bind(justification)
        .bind(granted)
        .bind(approval_expires.map(|t| t.0))
        .bind(id)
        .bind(expected.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(client_id) = won else {
            let actual: Option<String> =
                sqlx::query_scalar("SELECT state FROM access_requests WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            return match actual {
                Some(a) => Ok(Decided::Conflict {
                    actual: parse_column("access_requests.state", &a)?,
                }),
                None => Ok(Decided::Unknown),
            };
        };
        if let RequestDecision::Approve {
            approval,
            assign_owners,
            activate_pending,
        } = decision
        {
            insert_approval_on(&mut tx, approval).await?;
            for owner in assign_owners {
                insert_owner_on(&mut tx, &client_id, owner, now).await?;
            }
            if *activate_pending {
                sqlx::query(
                    "UPDATE clients SET state = $1, updated_at = $2 WHERE client_id = $3 AND state = $4",
                )
                .bind(LifecycleState::Active.as_str())
                .bind(now.0)
                .bind(&client_id)
                .bind(LifecycleState::Pending.as_str())
                .execute(&mut *tx)
                .await?;
            }
        }
        append_audit_on(&mut tx, &audit_of(event)).await?;
        tx.commit().await?;
        Ok(Decided::Applied)
    }
}

#[async_trait]
impl GovernanceStore for PostgresStore {
    async fn user_by_name(&self, username: &str) -> Result<Option<GovernanceUser>, PortError> {
        async {
            let mut conn = self.pool.acquire().await?;
            gov_user_on(
                &mut conn,
                "SELECT id, username, disabled FROM users WHERE username = $1",
                username,
            )
            .await
        }
        .await
        .map_err(port_error)
    }

    async fn user_by_id(&self, user_id: &str) -> Result<Option<GovernanceUser>, PortError> {
        async {
            let mut conn = self.pool.acquire().await?;
            gov_user_on(
                &mut conn,
                "SELECT id, username, disabled FROM users WHERE id = $1",
                user_id,
            )
            .await
        }
        .await
        .map_err(port_error)
    }

    async fn set_roles(
        &self,
        user_id: &str,
        roles: &[Role],
        event: &GovernanceEvent,
    ) -> Result<bool, PortError> {
        self.set_roles_on(user_id, roles, event).await.map_err(port_error)
    }

    async fn client_view(&self, client_id: &str) -> Result<Option<ClientView>, PortError> {
        self.client_view_on(client_id).await.map_err(port_error)
    }

    async fn list_client_views(&self) -> Result<Vec<ClientView>, PortError> {
        self.list_client_views_on().await.map_err(port_error)
    }

    async fn clients_owned_by(&self, user_id: &str) -> Result<Vec<String>, PortError> {
        sqlx::query_scalar(
            "SELECT DISTINCT client_id FROM client_owners WHERE user_id = $1 ORDER BY client_id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| port_error(e.into()))
    }

    async fn transition_client(
        &self,
        client_id: &str,
        expected_from: LifecycleState,
        to: LifecycleState,
        revoke_families: bool,
        now: UnixTime,
        event: &GovernanceEvent,
    ) -> Result<Transition, PortError> {
        self.transition_on(client_id, expected_from, to, revoke_families, now, event)
            .await
            .map_err(port_error)
    }

    async fn add_owner(
        &self,
        client_id: &str,
        owner: &Owner,
        event: &GovernanceEvent,
    ) -> Result<OwnerChange, PortError> {
        self.add_owner_on(client_id, owner, event)
            .await
            .map_err(port_error)
    }

    async fn remove_owner(
        &self,
        client_id: &str,
        user_id: &str,
        kind: Option<OwnerKind>,
        event: &GovernanceEvent,
    ) -> Result<OwnerChange, PortError> {
        self.remove_owner_on(client_id, user_id, kind, event)
            .await
            .map_err(port_error)
    }

    async fn set_organization(
        &self,
        client_id: &str,
        organization: Option<&str>,
        event: &GovernanceEvent,
    ) -> Result<bool, PortError> {
        self.set_client_text_on(client_id, "owner_organization", organization, event)
            .await
            .map_err(port_error)
    }

    async fn set_contact(
        &self,
        client_id: &str,
        contact: Option<&str>,
        event: &GovernanceEvent,
    ) -> Result<bool, PortError> {
        self.set_client_text_on(client_id, "owner_contact", contact, event)
            .await
            .map_err(port_error)
    }

    async fn create_access_request(
        &self,
        request: &AccessRequest,
        event: &GovernanceEvent,
    ) -> Result<bool, PortError> {
        self.create_request_on(request, event).await.map_err(port_error)
    }

    async fn get_access_request(&self, id: &str) -> Result<Option<AccessRequest>, PortError> {
        async {
            let row = sqlx::query(&format!(
                "SELECT {REQUEST_COLS} FROM access_requests WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(request_row).transpose()
        }
        .await
        .map_err(port_error)
    }

    async fn list_access_requests(&self, filter: &RequestFilter) -> Result<Vec<AccessRequest>, PortError> {
        async {
            let rows = sqlx::query(&format!(
                "SELECT {REQUEST_COLS} FROM access_requests WHERE ($1::text IS NULL OR state = $1) \
                 AND ($2::text IS NULL OR client_id = $2) ORDER BY created_at DESC, id DESC"
            ))
            .bind(filter.state.map(RequestState::as_str))
            .bind(&filter.client_id)
            .fetch_all(&self.pool)
            .await?;
            collect(&rows, request_row)
        }
        .await
        .map_err(port_error)
    }

    async fn decide_access_request(
        &self,
        id: &str,
        expected: RequestState,
        decision: &RequestDecision,
        decided_by: &Actor,
        justification: &str,
        now: UnixTime,
        event: &GovernanceEvent,
    ) -> Result<Decided, PortError> {
        self.decide_on(id, expected, decision, decided_by, justification, now, event)
            .await
            .map_err(port_error)
    }

    async fn approvals_for_client(&self, client_id: &str) -> Result<Vec<Approval>, PortError> {
        async {
            let mut conn = self.pool.acquire().await?;
            approvals_on(&mut conn, client_id).await
        }
        .await
        .map_err(port_error)
    }

    async fn append_event(&self, event: &GovernanceEvent) -> Result<(), PortError> {
        async {
            let mut conn = self.pool.acquire().await?;
            append_audit_on(&mut conn, &audit_of(event)).await.map(|_| ())
        }
        .await
        .map_err(port_error)
    }
}
