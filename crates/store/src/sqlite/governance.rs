//! `steward_governance::port::GovernanceStore` on SQLite.
//!
//! Each state change and its audit event are one job: the worker runs a
//! write job inside one savepoint of one transaction, so both land or
//! neither does. Compare-and-set is a conditional `UPDATE … WHERE state = ?`:
//! write jobs run one after another on the connection's thread, and another
//! process (the CLI) writes only under the same database write lock
//! (`BEGIN IMMEDIATE`), so the condition is evaluated against every change
//! committed before it and of two concurrent deciders exactly one matches.

use super::{SqliteStore, append_audit_in, client_rev_row};
use super::{all, enum_col, exec, one, text_row};
use crate::governance::{Latest, audit_of, join_scopes, port_error, split_scopes, view_of, views_of};
use crate::{ClientRecord, StoreError};
use async_trait::async_trait;
use rusqlite::{Connection, Row, params};
use std::collections::HashMap;
use steward_core::{LifecycleState, UnixTime};
use steward_governance::model::{
    AccessRequest, Actor, Approval, ClientView, GovernanceEvent, GovernanceUser, Owner, OwnerKind,
    RequestDecision, RequestFilter, RequestState, Role,
};
use steward_governance::port::{Decided, GovernanceStore, OwnerChange, PortError, Transition};

macro_rules! request_cols {
    () => {
        "id, client_id, resource, scopes, requested_by, requested_by_name, justification, \
         metadata_digest, state, created_at, expires_at, decided_by, decided_by_name, decided_at, \
         decision_justification, granted_scopes, approval_expires_at"
    };
}

fn request_row(r: &Row) -> Result<AccessRequest, StoreError> {
    Ok(AccessRequest {
        id: r.get(0)?,
        client_id: r.get(1)?,
        resource: r.get(2)?,
        scopes: split_scopes(&r.get::<_, String>(3)?),
        requested_by: r.get(4)?,
        requested_by_name: r.get(5)?,
        justification: r.get(6)?,
        metadata_digest: r.get(7)?,
        state: enum_col(r, 8, "access_requests.state")?,
        created_at: UnixTime(r.get(9)?),
        expires_at: UnixTime(r.get(10)?),
        decided_by: r.get(11)?,
        decided_by_name: r.get(12)?,
        decided_at: r.get::<_, Option<i64>>(13)?.map(UnixTime),
        decision_justification: r.get(14)?,
        granted_scopes: split_scopes(&r.get::<_, String>(15)?),
        approval_expires_at: r.get::<_, Option<i64>>(16)?.map(UnixTime),
    })
}

macro_rules! approval_cols {
    () => {
        "id, client_id, resource, scopes, metadata_digest, approved_by, approved_at, expires_at, \
         request_id, self_approved"
    };
}

fn approval_row(r: &Row) -> Result<Approval, StoreError> {
    Ok(Approval {
        id: r.get(0)?,
        client_id: r.get(1)?,
        resource: r.get(2)?,
        scopes: split_scopes(&r.get::<_, String>(3)?),
        metadata_digest: r.get(4)?,
        approved_by: r.get(5)?,
        approved_at: UnixTime(r.get(6)?),
        expires_at: r.get::<_, Option<i64>>(7)?.map(UnixTime),
        request_id: r.get(8)?,
        self_approved: r.get(9)?,
    })
}

/// `(client_id, owner)`; disabled accounts are left out: a disabled owner
/// answers for nothing, so the next owner of the same kind does (issue 13 §3).
fn owner_row(r: &Row) -> Result<(String, Owner), StoreError> {
    Ok((
        r.get(0)?,
        Owner {
            user_id: r.get(1)?,
            username: r.get(2)?,
            kind: enum_col(r, 3, "client_owners.kind")?,
        },
    ))
}

const OWNERS: &str = "SELECT o.client_id, o.user_id, u.username, o.kind FROM client_owners o \
     JOIN users u ON u.id = o.user_id WHERE NOT u.disabled";

fn latest_row(r: &Row) -> Result<(String, Latest), StoreError> {
    Ok((
        r.get(0)?,
        Latest {
            body: r.get(1)?,
            digest: r.get(2)?,
        },
    ))
}

/// The latest version by the same order as `latest_metadata_version`.
const LATEST: &str = "SELECT v.client_id, v.body, v.content_hash FROM client_metadata_versions v \
     WHERE v.id = (SELECT w.id FROM client_metadata_versions w WHERE w.client_id = v.client_id \
     ORDER BY w.last_seen_at DESC, w.id DESC LIMIT 1)";

fn gov_user_in(db: &Connection, sql: &str, key: &str) -> Result<Option<GovernanceUser>, StoreError> {
    let mut stmt = db.prepare_cached(sql)?;
    let mut rows = stmt.query([key])?;
    let Some(r) = rows.next()? else {
        return Ok(None);
    };
    let (id, username, disabled): (String, String, bool) = (r.get(0)?, r.get(1)?, r.get(2)?);
    drop(rows);
    let roles = all(
        db,
        "SELECT role FROM user_roles WHERE user_id = ?1 ORDER BY role",
        [&id],
        |r| enum_col::<Role>(r, 0, "user_roles.role"),
    )?;
    Ok(Some(GovernanceUser {
        id,
        username,
        disabled,
        roles,
    }))
}

fn client_view_in(db: &Connection, client_id: &str) -> Result<Option<ClientView>, StoreError> {
    Ok(client_and_view_in(db, client_id)?.map(|(_, v)| v))
}

/// The client's record and its view, from one read.
pub(crate) fn client_and_view_in(
    db: &Connection,
    client_id: &str,
) -> Result<Option<(ClientRecord, ClientView)>, StoreError> {
    // The revision is read first: should a writer commit between this and
    // the reads below, the view is newer than its revision says, and a node
    // keeping it reads it again at the next request — never the reverse.
    let Some((c, revision)) = one(
        db,
        concat!(
            "SELECT ",
            client_cols!(),
            ", governance_rev FROM clients WHERE client_id = ?1"
        ),
        [client_id],
        client_rev_row,
    )?
    else {
        return Ok(None);
    };
    let latest = one(
        db,
        "SELECT client_id, body, content_hash FROM client_metadata_versions WHERE client_id = ?1 \
         ORDER BY last_seen_at DESC, id DESC LIMIT 1",
        [client_id],
        latest_row,
    )?
    .map(|(_, l)| l);
    let owners = all(
        db,
        &format!("{OWNERS} AND o.client_id = ?1 ORDER BY o.seq"),
        [client_id],
        owner_row,
    )?
    .into_iter()
    .map(|(_, o)| o)
    .collect();
    let approvals = approvals_in(db, client_id)?;
    Ok(Some((c.clone(), view_of(c, revision, latest, owners, approvals))))
}

fn approvals_in(db: &Connection, client_id: &str) -> Result<Vec<Approval>, StoreError> {
    all(
        db,
        concat!(
            "SELECT ",
            approval_cols!(),
            " FROM approvals WHERE client_id = ?1 ORDER BY approved_at, id"
        ),
        [client_id],
        approval_row,
    )
}

fn client_exists(db: &Connection, client_id: &str) -> Result<bool, StoreError> {
    Ok(one(
        db,
        "SELECT client_id FROM clients WHERE client_id = ?1",
        [client_id],
        text_row,
    )?
    .is_some())
}

fn client_state_in(db: &Connection, client_id: &str) -> Result<Option<LifecycleState>, StoreError> {
    one(
        db,
        "SELECT state FROM clients WHERE client_id = ?1",
        [client_id],
        |r| enum_col(r, 0, "state"),
    )
}

fn insert_owner_in(
    db: &Connection,
    client_id: &str,
    owner: &Owner,
    now: UnixTime,
) -> Result<bool, StoreError> {
    Ok(exec(
        db,
        "INSERT INTO client_owners (client_id, user_id, kind, added_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (client_id, user_id, kind) DO NOTHING",
        params![client_id, owner.user_id, owner.kind.as_str(), now.0],
    )? > 0)
}

fn insert_approval_in(db: &Connection, a: &Approval) -> Result<(), StoreError> {
    exec(
        db,
        concat!(
            "INSERT INTO approvals (",
            approval_cols!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        ),
        params![
            a.id,
            a.client_id,
            a.resource,
            join_scopes(&a.scopes),
            a.metadata_digest,
            a.approved_by,
            a.approved_at.0,
            a.expires_at.map(|t| t.0),
            a.request_id,
            a.self_approved
        ],
    )?;
    Ok(())
}

#[async_trait]
impl GovernanceStore for SqliteStore {
    async fn user_by_name(&self, username: &str) -> Result<Option<GovernanceUser>, PortError> {
        let name = username.to_owned();
        self.read(move |db| {
            gov_user_in(
                db,
                "SELECT id, username, disabled FROM users WHERE username = ?1",
                &name,
            )
        })
        .await
        .map_err(port_error)
    }

    async fn user_by_id(&self, user_id: &str) -> Result<Option<GovernanceUser>, PortError> {
        let id = user_id.to_owned();
        self.read(move |db| gov_user_in(db, "SELECT id, username, disabled FROM users WHERE id = ?1", &id))
            .await
            .map_err(port_error)
    }

    async fn set_roles(
        &self,
        user_id: &str,
        roles: &[Role],
        event: &GovernanceEvent,
    ) -> Result<bool, PortError> {
        let id = user_id.to_owned();
        let roles = roles.to_vec();
        let audit = audit_of(event);
        self.write(move |db| {
            if one(db, "SELECT id FROM users WHERE id = ?1", [&id], text_row)?.is_none() {
                return Ok(false);
            }
            exec(db, "DELETE FROM user_roles WHERE user_id = ?1", [&id])?;
            for role in &roles {
                exec(
                    db,
                    "INSERT INTO user_roles (user_id, role, granted_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (user_id, role) DO NOTHING",
                    params![id, role.as_str(), audit.at.0],
                )?;
            }
            append_audit_in(db, &audit)?;
            Ok(true)
        })
        .await
        .map_err(port_error)
    }

    async fn client_view(&self, client_id: &str) -> Result<Option<ClientView>, PortError> {
        let id = client_id.to_owned();
        self.read(move |db| client_view_in(db, &id))
            .await
            .map_err(port_error)
    }

    async fn list_client_views(&self) -> Result<Vec<ClientView>, PortError> {
        self.read(|db| {
            let clients = all(
                db,
                concat!(
                    "SELECT ",
                    client_cols!(),
                    ", governance_rev FROM clients ORDER BY client_id"
                ),
                [],
                client_rev_row,
            )?;
            let latest: HashMap<String, Latest> = all(db, LATEST, [], latest_row)?.into_iter().collect();
            let owners = all(db, &format!("{OWNERS} ORDER BY o.seq"), [], owner_row)?;
            let approvals = all(
                db,
                concat!(
                    "SELECT ",
                    approval_cols!(),
                    " FROM approvals ORDER BY approved_at, id"
                ),
                [],
                approval_row,
            )?;
            Ok(views_of(clients, latest, owners, approvals))
        })
        .await
        .map_err(port_error)
    }

    async fn clients_owned_by(&self, user_id: &str) -> Result<Vec<String>, PortError> {
        let id = user_id.to_owned();
        self.read(move |db| {
            all(
                db,
                "SELECT DISTINCT client_id FROM client_owners WHERE user_id = ?1 ORDER BY client_id",
                [id],
                text_row,
            )
        })
        .await
        .map_err(port_error)
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
        let id = client_id.to_owned();
        let audit = audit_of(event);
        let result = self
            .write(move |db| {
                let moved = exec(
                    db,
                    "UPDATE clients SET state = ?1, updated_at = ?2 WHERE client_id = ?3 AND state = ?4",
                    params![to.as_str(), now.0, id, expected_from.as_str()],
                )?;
                if moved == 0 {
                    return Ok(match client_state_in(db, &id)? {
                        Some(actual) => Transition::Conflict { actual },
                        None => Transition::Unknown,
                    });
                }
                if revoke_families {
                    // RFC 7009 §2.1 spirit: the client's whole standing access ends with it.
                    exec(
                        db,
                        "UPDATE refresh_families SET revoked_at = ?1 WHERE client_id = ?2 AND revoked_at IS NULL",
                        params![now.0, id],
                    )?;
                    exec(
                        db,
                        "UPDATE access_tokens SET revoked_at = ?1 WHERE client_id = ?2 AND revoked_at IS NULL",
                        params![now.0, id],
                    )?;
                }
                append_audit_in(db, &audit)?;
                Ok(Transition::Applied)
            })
            .await;
        self.clients.forget(client_id);
        result.map_err(port_error)
    }

    async fn add_owner(
        &self,
        client_id: &str,
        owner: &Owner,
        event: &GovernanceEvent,
    ) -> Result<OwnerChange, PortError> {
        let id = client_id.to_owned();
        let owner = owner.clone();
        let audit = audit_of(event);
        self.write(move |db| {
            if !client_exists(db, &id)? {
                return Ok(OwnerChange::UnknownClient);
            }
            if !insert_owner_in(db, &id, &owner, audit.at)? {
                return Ok(OwnerChange::Unchanged);
            }
            append_audit_in(db, &audit)?;
            Ok(OwnerChange::Applied)
        })
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
        let id = client_id.to_owned();
        let user = user_id.to_owned();
        let audit = audit_of(event);
        self.write(move |db| {
            if !client_exists(db, &id)? {
                return Ok(OwnerChange::UnknownClient);
            }
            let removed = exec(
                db,
                "DELETE FROM client_owners WHERE client_id = ?1 AND user_id = ?2 AND (?3 IS NULL OR kind = ?3)",
                params![id, user, kind.map(OwnerKind::as_str)],
            )?;
            if removed == 0 {
                return Ok(OwnerChange::Unchanged);
            }
            append_audit_in(db, &audit)?;
            Ok(OwnerChange::Applied)
        })
        .await
        .map_err(port_error)
    }

    async fn set_organization(
        &self,
        client_id: &str,
        organization: Option<&str>,
        event: &GovernanceEvent,
    ) -> Result<bool, PortError> {
        self.set_client_text(client_id, "owner_organization", organization, event)
            .await
    }

    async fn set_contact(
        &self,
        client_id: &str,
        contact: Option<&str>,
        event: &GovernanceEvent,
    ) -> Result<bool, PortError> {
        self.set_client_text(client_id, "owner_contact", contact, event)
            .await
    }

    async fn create_access_request(
        &self,
        request: &AccessRequest,
        event: &GovernanceEvent,
    ) -> Result<bool, PortError> {
        let q = request.clone();
        let audit = audit_of(event);
        self.write(move |db| {
            if !client_exists(db, &q.client_id)? {
                return Ok(false);
            }
            exec(
                db,
                concat!(
                    "INSERT INTO access_requests (",
                    request_cols!(),
                    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
                ),
                params![
                    q.id,
                    q.client_id,
                    q.resource,
                    join_scopes(&q.scopes),
                    q.requested_by,
                    q.requested_by_name,
                    q.justification,
                    q.metadata_digest,
                    RequestState::Pending.as_str(),
                    q.created_at.0,
                    q.expires_at.0,
                    q.decided_by,
                    q.decided_by_name,
                    q.decided_at.map(|t| t.0),
                    q.decision_justification,
                    join_scopes(&q.granted_scopes),
                    q.approval_expires_at.map(|t| t.0)
                ],
            )?;
            append_audit_in(db, &audit)?;
            Ok(true)
        })
        .await
        .map_err(port_error)
    }

    async fn get_access_request(&self, id: &str) -> Result<Option<AccessRequest>, PortError> {
        let id = id.to_owned();
        self.read(move |db| {
            one(
                db,
                concat!("SELECT ", request_cols!(), " FROM access_requests WHERE id = ?1"),
                [id],
                request_row,
            )
        })
        .await
        .map_err(port_error)
    }

    async fn list_access_requests(&self, filter: &RequestFilter) -> Result<Vec<AccessRequest>, PortError> {
        let f = filter.clone();
        self.read(move |db| {
            all(
                db,
                concat!(
                    "SELECT ",
                    request_cols!(),
                    " FROM access_requests WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR client_id = ?2) \
                     ORDER BY created_at DESC, id DESC"
                ),
                params![f.state.map(RequestState::as_str), f.client_id],
                request_row,
            )
        })
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
        let id = id.to_owned();
        let decision = decision.clone();
        let actor = decided_by.clone();
        let justification = justification.to_owned();
        let audit = audit_of(event);
        let (granted, approval_expires) = match &decision {
            RequestDecision::Approve { approval, .. } => (join_scopes(&approval.scopes), approval.expires_at),
            RequestDecision::Deny | RequestDecision::Expire => (String::new(), None),
        };
        let result = self
            .write(move |db| {
                let won = one(
                    db,
                    "UPDATE access_requests SET state = ?1, decided_by = ?2, decided_by_name = ?3, \
                     decided_at = ?4, decision_justification = ?5, granted_scopes = ?6, \
                     approval_expires_at = ?7 WHERE id = ?8 AND state = ?9 RETURNING client_id",
                    params![
                        decision.resulting_state().as_str(),
                        actor.user_id,
                        actor.username,
                        now.0,
                        justification,
                        granted,
                        approval_expires.map(|t| t.0),
                        id,
                        expected.as_str()
                    ],
                    text_row,
                )?;
                let Some(client_id) = won else {
                    return Ok((
                        None,
                        match one(
                            db,
                            "SELECT state FROM access_requests WHERE id = ?1",
                            [&id],
                            |r| enum_col(r, 0, "access_requests.state"),
                        )? {
                            Some(actual) => Decided::Conflict { actual },
                            None => Decided::Unknown,
                        },
                    ));
                };
                if let RequestDecision::Approve {
                    approval,
                    assign_owners,
                    activate_pending,
                } = &decision
                {
                    insert_approval_in(db, approval)?;
                    for owner in assign_owners {
                        insert_owner_in(db, &client_id, owner, now)?;
                    }
                    if *activate_pending {
                        exec(
                            db,
                            "UPDATE clients SET state = ?1, updated_at = ?2 WHERE client_id = ?3 AND state = ?4",
                            params![
                                LifecycleState::Active.as_str(),
                                now.0,
                                client_id,
                                LifecycleState::Pending.as_str()
                            ],
                        )?;
                    }
                }
                append_audit_in(db, &audit)?;
                Ok((Some(client_id), Decided::Applied))
            })
            .await;
        match result {
            Ok((client_id, decided)) => {
                if let Some(client_id) = client_id {
                    self.clients.forget(&client_id);
                }
                Ok(decided)
            }
            Err(e) => Err(port_error(e)),
        }
    }

    async fn approvals_for_client(&self, client_id: &str) -> Result<Vec<Approval>, PortError> {
        let id = client_id.to_owned();
        self.read(move |db| approvals_in(db, &id))
            .await
            .map_err(port_error)
    }

    async fn append_event(&self, event: &GovernanceEvent) -> Result<(), PortError> {
        let audit = audit_of(event);
        self.write(move |db| append_audit_in(db, &audit).map(|_| ()))
            .await
            .map_err(port_error)
    }
}

impl SqliteStore {
    /// Sets one free-text governance column of a client with its event.
    /// `column` is one of two constants, never input.
    async fn set_client_text(
        &self,
        client_id: &str,
        column: &'static str,
        value: Option<&str>,
        event: &GovernanceEvent,
    ) -> Result<bool, PortError> {
        let id = client_id.to_owned();
        let value = value.map(str::to_owned);
        let audit = audit_of(event);
        let result = self
            .write(move |db| {
                let sql = format!("UPDATE clients SET {column} = ?1, updated_at = ?2 WHERE client_id = ?3");
                if exec(db, &sql, params![value, audit.at.0, id])? == 0 {
                    return Ok(false);
                }
                append_audit_in(db, &audit)?;
                Ok(true)
            })
            .await;
        self.clients.forget(client_id);
        result.map_err(port_error)
    }
}
