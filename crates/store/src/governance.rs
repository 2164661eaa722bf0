//! What both backends share in implementing `steward_governance`'s storage
//! port: how a governance event becomes an audit row, how scopes are
//! stored, and how store errors are reported to the governance room.
//!
//! The port itself is implemented next to each backend's connection
//! handling (`sqlite/governance.rs`, `postgres/governance.rs`), because each
//! state change and its audit event must run in one of that backend's
//! transactions.

use crate::{ClientRecord, NewAuditEvent, StoreError};
use std::collections::HashMap;
use steward_governance::model::{Approval, ClientView, GovernanceEvent, Owner, Ownership};
use steward_governance::port::PortError;

/// The latest stored metadata version of a client: its body and digest.
pub(crate) struct Latest {
    pub body: String,
    pub digest: String,
}

/// One client's governance view from its rows, at `revision` (its
/// `governance_rev`, read no later than the rest). `owners` in succession
/// order, `approvals` oldest first.
pub(crate) fn view_of(
    c: ClientRecord,
    revision: i64,
    latest: Option<Latest>,
    owners: Vec<Owner>,
    approvals: Vec<Approval>,
) -> ClientView {
    let (metadata_document, metadata_digest) = match latest {
        Some(l) => (Some(l.body), Some(l.digest)),
        None => (None, None),
    };
    ClientView {
        client_id: c.client_id,
        kind: c.kind,
        state: c.state,
        tier: c.trust_tier,
        display_name: c.display_name,
        registration: c.registration,
        metadata_document,
        metadata_digest,
        first_seen: c.first_seen,
        last_seen: c.last_seen,
        ownership: Ownership {
            organization: c.owner_organization,
            contact: c.owner_contact,
            owners,
        },
        approvals,
        revision,
    }
}

/// Every client's view from the whole inventory read at once (four
/// queries, not four per client). Order of `clients` is kept.
pub(crate) fn views_of(
    clients: Vec<(ClientRecord, i64)>,
    mut latest: HashMap<String, Latest>,
    owners: Vec<(String, Owner)>,
    approvals: Vec<Approval>,
) -> Vec<ClientView> {
    let mut owners_of: HashMap<String, Vec<Owner>> = HashMap::new();
    for (client_id, owner) in owners {
        owners_of.entry(client_id).or_default().push(owner);
    }
    let mut approvals_of: HashMap<String, Vec<Approval>> = HashMap::new();
    for a in approvals {
        approvals_of.entry(a.client_id.clone()).or_default().push(a);
    }
    clients
        .into_iter()
        .map(|(c, revision)| {
            let id = c.client_id.clone();
            view_of(
                c,
                revision,
                latest.remove(&id),
                owners_of.remove(&id).unwrap_or_default(),
                approvals_of.remove(&id).unwrap_or_default(),
            )
        })
        .collect()
}

/// The audit row recording `event` (issue 13 §8: actor, action, client,
/// before/after, reason, policy ids, in the versioned detail object).
pub(crate) fn audit_of(event: &GovernanceEvent) -> NewAuditEvent {
    NewAuditEvent {
        at: event.at,
        actor: event.actor.clone(),
        action: event.action.as_str().to_owned(),
        client_id: event.client_id.clone(),
        subject: event.subject.clone(),
        detail: event.audit_detail().to_string(),
    }
}

/// Scopes are stored space-separated, as in grants and tokens (a scope
/// token never contains a space, RFC 6749 §3.3).
pub(crate) fn join_scopes(scopes: &[String]) -> String {
    scopes.join(" ")
}

pub(crate) fn split_scopes(text: &str) -> Vec<String> {
    text.split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Store errors as the port names them: a database that cannot be reached
/// (or is locked past its timeout) is `Unavailable`, anything else is
/// `Storage`. Only the store error's short reason crosses: never SQL or
/// bound values.
pub(crate) fn port_error(e: StoreError) -> PortError {
    match &e {
        StoreError::Database { reason, .. }
            if matches!(
                *reason,
                "pool timed out" | "pool closed" | "connection failed" | "database is locked"
            ) =>
        {
            PortError::Unavailable(e.to_string())
        }
        _ => PortError::Storage(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use steward_core::UnixTime;
    use steward_governance::model::GovernanceAction;

    #[test]
    fn scopes_round_trip_without_empty_entries() {
        let s = vec!["files:read".to_owned(), "files:write".to_owned()];
        assert_eq!(split_scopes(&join_scopes(&s)), s);
        assert!(split_scopes("").is_empty());
    }

    #[test]
    fn an_event_keeps_actor_action_client_and_versioned_detail() {
        let e = GovernanceEvent::new(UnixTime(9), "alice", GovernanceAction::ClientSuspended)
            .client("c1")
            .reason("incident");
        let row = audit_of(&e);
        assert_eq!(
            (row.actor.as_str(), row.action.as_str(), row.client_id.as_deref()),
            ("alice", "client.suspended", Some("c1"))
        );
        let detail: serde_json::Value = serde_json::from_str(&row.detail).unwrap();
        assert_eq!(detail["v"], 1);
        assert_eq!(detail["reason"], "incident");
    }

    #[test]
    fn a_locked_database_is_unavailable_not_a_storage_failure() {
        let e = StoreError::Database {
            reason: "database is locked",
            source: "busy".into(),
        };
        assert!(matches!(port_error(e), PortError::Unavailable(_)));
        assert!(matches!(port_error(StoreError::Conflict), PortError::Storage(_)));
    }
}
