//! Conformance checks for the governance port (`GovernanceStore`): roles,
//! owners, lifecycle compare-and-set, access requests and approvals, and the
//! rule that every change and its audit event land together or not at all.
//! Registered in the `conformance!` list of `conformance.rs`, so each runs on
//! SQLite and PostgreSQL.

use super::{CLIENT, Harness, T0, USER, access_token, client, family, seed, user};
use std::sync::Arc;
use steward_core::{ClientKind, LifecycleState};
use steward_governance::model::{
    AccessRequest, Actor, Approval, GovernanceAction, GovernanceEvent, Owner, OwnerKind, RequestDecision,
    RequestFilter, RequestState, Role,
};
use steward_governance::port::{Decided, OwnerChange, Transition};
use steward_store::*;

const RESOURCE: &str = "https://mcp.example/";

fn event(action: GovernanceAction) -> GovernanceEvent {
    GovernanceEvent::new(T0.plus_secs(30), "bob", action).client(CLIENT)
}

async fn actions(s: &Arc<dyn Store>) -> Vec<String> {
    s.list_audit(&AuditFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect()
}

fn owner(user_id: &str, username: &str, kind: OwnerKind) -> Owner {
    Owner {
        user_id: user_id.into(),
        username: username.into(),
        kind,
    }
}

fn request(id: &str, created: i64) -> AccessRequest {
    AccessRequest {
        id: id.into(),
        client_id: CLIENT.into(),
        resource: RESOURCE.into(),
        scopes: vec!["files:read".into(), "files:write".into()],
        requested_by: USER.into(),
        requested_by_name: "alice".into(),
        justification: "quarterly report".into(),
        metadata_digest: Some("digest-1".into()),
        state: RequestState::Pending,
        created_at: T0.plus_secs(created),
        expires_at: T0.plus_secs(14 * 86_400),
        decided_by: None,
        decided_by_name: None,
        decided_at: None,
        decision_justification: None,
        granted_scopes: Vec::new(),
        approval_expires_at: None,
    }
}

fn approval(id: &str, request_id: &str, approver: &str) -> Approval {
    Approval {
        id: id.into(),
        client_id: CLIENT.into(),
        resource: RESOURCE.into(),
        scopes: vec!["files:read".into()],
        metadata_digest: Some("digest-1".into()),
        approved_by: approver.into(),
        approved_at: T0.plus_secs(40),
        expires_at: Some(T0.plus_secs(90 * 86_400)),
        request_id: Some(request_id.into()),
        self_approved: false,
    }
}

fn approver(id: &str, name: &str) -> Actor {
    Actor {
        user_id: Some(id.into()),
        username: name.into(),
    }
}

/// The seeded client, user `alice` (USER) and approvers `bob`, `carol`.
async fn seed_people(s: &Arc<dyn Store>) -> String {
    let grant = seed(s).await;
    s.create_user(&user("u-bob", "bob")).await.unwrap();
    s.create_user(&user("u-carol", "carol")).await.unwrap();
    grant
}

pub async fn roles_are_replaced_with_their_event(s: Arc<dyn Store>) {
    seed_people(&s).await;
    let alice = s.user_by_name("alice").await.unwrap().unwrap();
    assert_eq!(
        (alice.id.as_str(), alice.roles.len(), alice.disabled),
        (USER, 0, false)
    );

    let e = GovernanceEvent::new(T0, "root", GovernanceAction::RolesSet).subject("alice");
    assert!(
        s.set_roles(USER, &[Role::Operator, Role::Approver], &e)
            .await
            .unwrap()
    );
    let alice = s.user_by_id(USER).await.unwrap().unwrap();
    assert_eq!(alice.roles, [Role::Approver, Role::Operator]);
    assert!(s.set_roles(USER, &[Role::Auditor], &e).await.unwrap());
    assert_eq!(
        s.user_by_name("alice").await.unwrap().unwrap().roles,
        [Role::Auditor],
        "roles are replaced, not added"
    );
    assert!(!s.set_roles("nobody", &[Role::Operator], &e).await.unwrap());
    assert_eq!(s.user_by_name("nobody").await.unwrap(), None);
    assert_eq!(s.user_by_id("nobody").await.unwrap(), None);
    assert_eq!(
        actions(&s).await,
        ["user.roles_set", "user.roles_set"],
        "no event for an unknown user"
    );

    s.set_user_disabled(USER, true).await.unwrap();
    assert!(s.user_by_id(USER).await.unwrap().unwrap().disabled);
}

pub async fn owners_keep_succession_order_and_skip_disabled_accounts(s: Arc<dyn Store>) {
    seed_people(&s).await;
    let add = event(GovernanceAction::OwnerAdded);
    let bob_b = owner("u-bob", "bob", OwnerKind::Business);
    let carol_b = owner("u-carol", "carol", OwnerKind::Business);
    let alice_t = owner(USER, "alice", OwnerKind::Technical);
    assert_eq!(
        s.add_owner(CLIENT, &bob_b, &add).await.unwrap(),
        OwnerChange::Applied
    );
    assert_eq!(
        s.add_owner(CLIENT, &carol_b, &add).await.unwrap(),
        OwnerChange::Applied
    );
    assert_eq!(
        s.add_owner(CLIENT, &alice_t, &add).await.unwrap(),
        OwnerChange::Applied
    );
    assert_eq!(
        s.add_owner(CLIENT, &bob_b, &add).await.unwrap(),
        OwnerChange::Unchanged
    );
    assert_eq!(
        s.add_owner("https://nobody.example/", &bob_b, &add)
            .await
            .unwrap(),
        OwnerChange::UnknownClient
    );
    let view = s.client_view(CLIENT).await.unwrap().unwrap();
    assert_eq!(
        view.ownership.owners,
        [bob_b.clone(), carol_b.clone(), alice_t.clone()]
    );
    assert!(view.ownership.is_complete());
    assert_eq!(s.clients_owned_by("u-bob").await.unwrap(), [CLIENT]);
    assert!(s.clients_owned_by("u-nobody").await.unwrap().is_empty());

    // A disabled owner answers for nothing: the next of the same kind does.
    s.set_user_disabled("u-bob", true).await.unwrap();
    let view = s.client_view(CLIENT).await.unwrap().unwrap();
    assert_eq!(view.ownership.of_kind(OwnerKind::Business).next(), Some(&carol_b));
    s.set_user_disabled("u-bob", false).await.unwrap();

    let remove = event(GovernanceAction::OwnerRemoved);
    assert_eq!(
        s.remove_owner(CLIENT, "u-bob", Some(OwnerKind::Technical), &remove)
            .await
            .unwrap(),
        OwnerChange::Unchanged
    );
    assert_eq!(
        s.remove_owner(CLIENT, "u-bob", None, &remove).await.unwrap(),
        OwnerChange::Applied
    );
    assert_eq!(
        s.remove_owner("https://nobody.example/", "u-bob", None, &remove)
            .await
            .unwrap(),
        OwnerChange::UnknownClient
    );
    // A deleted account's ownership goes with it.
    s.delete_user("u-carol").await.unwrap();
    let view = s.client_view(CLIENT).await.unwrap().unwrap();
    assert_eq!(view.ownership.owners, [alice_t]);
    assert!(!view.ownership.is_complete());
    assert_eq!(
        actions(&s).await,
        [
            "client.owner_removed",
            "client.owner_added",
            "client.owner_added",
            "client.owner_added"
        ],
        "one event per applied change, none for unchanged or unknown"
    );
}

pub async fn organization_and_contact_are_set_with_their_event(s: Arc<dyn Store>) {
    seed(&s).await;
    let e = event(GovernanceAction::OrganizationSet);
    assert!(s.set_organization(CLIENT, Some("Acme Ltd"), &e).await.unwrap());
    let c = event(GovernanceAction::ContactSet);
    assert!(
        s.set_contact(CLIENT, Some("security@acme.example"), &c)
            .await
            .unwrap()
    );
    assert!(!s.set_contact("https://nobody.example/", None, &c).await.unwrap());
    let view = s.client_view(CLIENT).await.unwrap().unwrap();
    assert_eq!(view.ownership.organization.as_deref(), Some("Acme Ltd"));
    assert_eq!(view.ownership.contact.as_deref(), Some("security@acme.example"));
    // The inventory record shows the same.
    let record = s.get_client(CLIENT).await.unwrap().unwrap();
    assert_eq!(record.owner_organization.as_deref(), Some("Acme Ltd"));
    assert!(s.set_organization(CLIENT, None, &e).await.unwrap());
    assert_eq!(
        s.get_client(CLIENT).await.unwrap().unwrap().owner_organization,
        None
    );
    assert_eq!(
        actions(&s).await,
        [
            "client.organization_set",
            "client.contact_set",
            "client.organization_set"
        ]
    );
}

pub async fn transition_is_compare_and_set(s: Arc<dyn Store>) {
    seed(&s).await;
    let e =
        event(GovernanceAction::ClientSuspended).states(LifecycleState::Active, LifecycleState::Suspended);
    let now = T0.plus_secs(30);
    assert_eq!(
        s.transition_client(
            CLIENT,
            LifecycleState::Active,
            LifecycleState::Suspended,
            false,
            now,
            &e
        )
        .await
        .unwrap(),
        Transition::Applied
    );
    let c = s.get_client(CLIENT).await.unwrap().unwrap();
    assert_eq!((c.state, c.updated_at), (LifecycleState::Suspended, now));
    // A second mover that still believes the client active loses, changes nothing.
    let revoke = event(GovernanceAction::ClientRevoked);
    assert_eq!(
        s.transition_client(
            CLIENT,
            LifecycleState::Active,
            LifecycleState::Revoked,
            true,
            now,
            &revoke
        )
        .await
        .unwrap(),
        Transition::Conflict {
            actual: LifecycleState::Suspended
        }
    );
    assert_eq!(
        s.transition_client(
            "https://nobody.example/",
            LifecycleState::Active,
            LifecycleState::Suspended,
            false,
            now,
            &e
        )
        .await
        .unwrap(),
        Transition::Unknown
    );
    assert_eq!(
        s.get_client(CLIENT).await.unwrap().unwrap().state,
        LifecycleState::Suspended
    );
    let audit = s.list_audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(audit.len(), 1, "only the applied move is audited");
    assert_eq!(
        (
            audit[0].action.as_str(),
            audit[0].actor.as_str(),
            audit[0].client_id.as_deref()
        ),
        ("client.suspended", "bob", Some(CLIENT))
    );
    let detail: serde_json::Value = serde_json::from_str(&audit[0].detail).unwrap();
    assert_eq!(
        (detail["before"].as_str(), detail["after"].as_str()),
        (Some("active"), Some("suspended"))
    );
    // Every state of the table is storable.
    for (from, to) in [
        (LifecycleState::Suspended, LifecycleState::Active),
        (LifecycleState::Active, LifecycleState::Pending),
        (LifecycleState::Pending, LifecycleState::Expired),
        (LifecycleState::Expired, LifecycleState::Revoked),
    ] {
        assert_eq!(
            s.transition_client(CLIENT, from, to, false, now, &e)
                .await
                .unwrap(),
            Transition::Applied
        );
        assert_eq!(s.get_client(CLIENT).await.unwrap().unwrap().state, to);
    }
}

pub async fn suspension_keeps_refresh_families_and_revocation_ends_them(s: Arc<dyn Store>) {
    let grant = seed(&s).await;
    family(&s, "fam-1", &grant, "rt-1").await;
    s.insert_access_token(&access_token(
        "at-1",
        Some(&grant),
        Some("fam-1"),
        T0.plus_secs(600),
    ))
    .await
    .unwrap();
    let now = T0.plus_secs(30);
    let e = event(GovernanceAction::ClientSuspended);
    s.transition_client(
        CLIENT,
        LifecycleState::Active,
        LifecycleState::Suspended,
        false,
        now,
        &e,
    )
    .await
    .unwrap();
    let rt = s.get_refresh("rt-1").await.unwrap().unwrap();
    assert_eq!(rt.family.revoked_at, None, "a suspension keeps the family");
    assert_eq!(
        s.get_access_token("at-1").await.unwrap().unwrap().revoked_at,
        None
    );

    let e = event(GovernanceAction::ClientRevoked);
    s.transition_client(
        CLIENT,
        LifecycleState::Suspended,
        LifecycleState::Revoked,
        true,
        now,
        &e,
    )
    .await
    .unwrap();
    assert_eq!(
        s.get_refresh("rt-1").await.unwrap().unwrap().family.revoked_at,
        Some(now)
    );
    assert_eq!(
        s.get_access_token("at-1").await.unwrap().unwrap().revoked_at,
        Some(now)
    );
}

pub async fn two_transitions_at_once_exactly_one_wins(h: Arc<dyn Harness>) {
    // Two stores on one database: two connections, as two nodes would be.
    let a = h.open().await.unwrap();
    let b = h.open().await.unwrap();
    seed(&a).await;
    for round in 0..10 {
        let (from, to_a, to_b) = if round % 2 == 0 {
            (
                LifecycleState::Active,
                LifecycleState::Suspended,
                LifecycleState::Expired,
            )
        } else {
            (
                LifecycleState::Suspended,
                LifecycleState::Active,
                LifecycleState::Active,
            )
        };
        let now = T0.plus_secs(round);
        let (ea, eb) = (
            event(GovernanceAction::ClientSuspended),
            event(GovernanceAction::ClientExpired),
        );
        let (ra, rb) = tokio::join!(
            {
                let a = a.clone();
                tokio::spawn(async move {
                    a.transition_client(CLIENT, from, to_a, false, now, &ea)
                        .await
                        .unwrap()
                })
            },
            {
                let b = b.clone();
                tokio::spawn(async move {
                    b.transition_client(CLIENT, from, to_b, false, now, &eb)
                        .await
                        .unwrap()
                })
            }
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let wins = [ra, rb].iter().filter(|r| **r == Transition::Applied).count();
        assert_eq!(wins, 1, "round {round}: {ra:?} {rb:?}");
        let state = a.get_client(CLIENT).await.unwrap().unwrap().state;
        let expected = if ra == Transition::Applied { to_a } else { to_b };
        assert_eq!(state, expected);
        assert!(matches!(
            if ra == Transition::Applied { rb } else { ra },
            Transition::Conflict { actual } if actual == expected
        ));
        if round % 2 == 0 && state == LifecycleState::Expired {
            // Put it back where the odd rounds expect it.
            let e = event(GovernanceAction::ClientSuspended);
            a.transition_client(
                CLIENT,
                LifecycleState::Expired,
                LifecycleState::Suspended,
                false,
                now,
                &e,
            )
            .await
            .unwrap();
        }
    }
}

pub async fn access_requests_are_stored_listed_and_filtered(s: Arc<dyn Store>) {
    seed(&s).await;
    let opened = event(GovernanceAction::RequestOpened);
    assert!(s.create_access_request(&request("r1", 1), &opened).await.unwrap());
    assert!(s.create_access_request(&request("r2", 2), &opened).await.unwrap());
    let mut stray = request("r3", 3);
    stray.client_id = "https://nobody.example/".into();
    assert!(
        !s.create_access_request(&stray, &opened).await.unwrap(),
        "unknown client"
    );
    assert_eq!(actions(&s).await.len(), 2, "no event for the refused request");

    assert_eq!(s.get_access_request("r1").await.unwrap(), Some(request("r1", 1)));
    assert_eq!(s.get_access_request("r9").await.unwrap(), None);
    let ids = |v: Vec<AccessRequest>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.list_access_requests(&RequestFilter::default()).await.unwrap()),
        ["r2", "r1"],
        "newest first"
    );
    let e = event(GovernanceAction::RequestDenied);
    s.decide_access_request(
        "r2",
        RequestState::Pending,
        &RequestDecision::Deny,
        &approver("u-bob", "bob"),
        "not needed",
        T0.plus_secs(50),
        &e,
    )
    .await
    .unwrap();
    let pending = RequestFilter {
        state: Some(RequestState::Pending),
        ..Default::default()
    };
    assert_eq!(ids(s.list_access_requests(&pending).await.unwrap()), ["r1"]);
    let other = RequestFilter {
        client_id: Some("https://other.example/".into()),
        ..Default::default()
    };
    assert!(s.list_access_requests(&other).await.unwrap().is_empty());
    let denied = s.get_access_request("r2").await.unwrap().unwrap();
    assert_eq!(denied.state, RequestState::Denied);
    assert_eq!(denied.decided_by.as_deref(), Some("u-bob"));
    assert_eq!(denied.decided_by_name.as_deref(), Some("bob"));
    assert_eq!(denied.decided_at, Some(T0.plus_secs(50)));
    assert_eq!(denied.decision_justification.as_deref(), Some("not needed"));
    assert!(denied.granted_scopes.is_empty());
}

pub async fn decision_is_compare_and_set_and_approval_lands_whole(s: Arc<dyn Store>) {
    seed_people(&s).await;
    // A pending client that gets owners and becomes active with the approval.
    let e = event(GovernanceAction::ClientPending);
    s.transition_client(
        CLIENT,
        LifecycleState::Active,
        LifecycleState::Pending,
        false,
        T0,
        &e,
    )
    .await
    .unwrap();
    s.create_access_request(&request("r1", 1), &event(GovernanceAction::RequestOpened))
        .await
        .unwrap();
    let decision = RequestDecision::Approve {
        approval: approval("a1", "r1", "u-bob"),
        assign_owners: vec![
            owner("u-carol", "carol", OwnerKind::Business),
            owner(USER, "alice", OwnerKind::Technical),
        ],
        activate_pending: true,
    };
    let now = T0.plus_secs(40);
    let approved = event(GovernanceAction::RequestApproved).subject("r1");
    assert_eq!(
        s.decide_access_request(
            "r1",
            RequestState::Pending,
            &decision,
            &approver("u-bob", "bob"),
            "ok",
            now,
            &approved
        )
        .await
        .unwrap(),
        Decided::Applied
    );
    let r = s.get_access_request("r1").await.unwrap().unwrap();
    assert_eq!(r.state, RequestState::Approved);
    assert_eq!(r.granted_scopes, ["files:read"]);
    assert_eq!(r.approval_expires_at, Some(T0.plus_secs(90 * 86_400)));
    let view = s.client_view(CLIENT).await.unwrap().unwrap();
    assert_eq!(view.state, LifecycleState::Active, "activated with the approval");
    assert_eq!(view.approvals, [approval("a1", "r1", "u-bob")]);
    assert_eq!(s.approvals_for_client(CLIENT).await.unwrap(), view.approvals);
    assert!(view.ownership.is_complete());

    // A second decision on a decided request changes nothing.
    let deny = event(GovernanceAction::RequestDenied);
    assert_eq!(
        s.decide_access_request(
            "r1",
            RequestState::Pending,
            &RequestDecision::Deny,
            &approver("u-carol", "carol"),
            "no",
            now,
            &deny
        )
        .await
        .unwrap(),
        Decided::Conflict {
            actual: RequestState::Approved
        }
    );
    assert_eq!(
        s.decide_access_request(
            "r9",
            RequestState::Pending,
            &RequestDecision::Deny,
            &approver("u-carol", "carol"),
            "no",
            now,
            &deny
        )
        .await
        .unwrap(),
        Decided::Unknown
    );
    assert_eq!(
        s.get_access_request("r1")
            .await
            .unwrap()
            .unwrap()
            .decided_by_name
            .as_deref(),
        Some("bob")
    );
    let audit = actions(&s).await;
    assert_eq!(audit.iter().filter(|a| *a == "request.approved").count(), 1);
    assert_eq!(audit.iter().filter(|a| *a == "request.denied").count(), 0);

    // The system expires a request: no person decided it.
    s.create_access_request(&request("r2", 2), &event(GovernanceAction::RequestOpened))
        .await
        .unwrap();
    let system = Actor::system("request_expiry");
    assert_eq!(
        s.decide_access_request(
            "r2",
            RequestState::Pending,
            &RequestDecision::Expire,
            &system,
            "expired",
            now,
            &deny
        )
        .await
        .unwrap(),
        Decided::Applied
    );
    let r2 = s.get_access_request("r2").await.unwrap().unwrap();
    assert_eq!(
        (r2.state, r2.decided_by, r2.decided_by_name.as_deref()),
        (RequestState::Expired, None, Some("system:request_expiry"))
    );
}

pub async fn a_failed_approval_changes_nothing_and_writes_no_event(s: Arc<dyn Store>) {
    seed_people(&s).await;
    s.create_access_request(&request("r1", 1), &event(GovernanceAction::RequestOpened))
        .await
        .unwrap();
    // The owner to assign names no account: the insert fails part-way.
    let decision = RequestDecision::Approve {
        approval: approval("a1", "r1", "u-bob"),
        assign_owners: vec![owner("u-ghost", "ghost", OwnerKind::Business)],
        activate_pending: false,
    };
    let e = event(GovernanceAction::RequestApproved);
    assert!(
        s.decide_access_request(
            "r1",
            RequestState::Pending,
            &decision,
            &approver("u-bob", "bob"),
            "ok",
            T0,
            &e
        )
        .await
        .is_err()
    );
    assert_eq!(
        s.get_access_request("r1").await.unwrap().unwrap().state,
        RequestState::Pending
    );
    assert!(s.approvals_for_client(CLIENT).await.unwrap().is_empty());
    assert_eq!(actions(&s).await, ["request.opened"]);
}

pub async fn two_approvers_at_once_exactly_one_wins(h: Arc<dyn Harness>) {
    // Two stores on one database: two connections, as two nodes would be.
    let a = h.open().await.unwrap();
    let b = h.open().await.unwrap();
    seed_people(&a).await;
    for round in 0..10 {
        let id = format!("r{round}");
        a.create_access_request(&request(&id, round), &event(GovernanceAction::RequestOpened))
            .await
            .unwrap();
        let approve = RequestDecision::Approve {
            approval: approval(&format!("a{round}"), &id, "u-bob"),
            assign_owners: Vec::new(),
            activate_pending: false,
        };
        let bob = {
            let (a, id) = (a.clone(), id.clone());
            tokio::spawn(async move {
                let e = event(GovernanceAction::RequestApproved).subject(id.clone());
                a.decide_access_request(
                    &id,
                    RequestState::Pending,
                    &approve,
                    &approver("u-bob", "bob"),
                    "yes",
                    T0,
                    &e,
                )
                .await
                .unwrap()
            })
        };
        let carol = {
            let (b, id) = (b.clone(), id.clone());
            tokio::spawn(async move {
                let e = event(GovernanceAction::RequestDenied).subject(id.clone());
                b.decide_access_request(
                    &id,
                    RequestState::Pending,
                    &RequestDecision::Deny,
                    &approver("u-carol", "carol"),
                    "no",
                    T0,
                    &e,
                )
                .await
                .unwrap()
            })
        };
        let (rb, rc) = (bob.await.unwrap(), carol.await.unwrap());
        let stored = a.get_access_request(&id).await.unwrap().unwrap();
        match (rb, rc) {
            (Decided::Applied, Decided::Conflict { actual }) => {
                assert_eq!(
                    (actual, stored.state),
                    (RequestState::Approved, RequestState::Approved)
                );
                assert_eq!(stored.decided_by_name.as_deref(), Some("bob"));
            }
            (Decided::Conflict { actual }, Decided::Applied) => {
                assert_eq!(
                    (actual, stored.state),
                    (RequestState::Denied, RequestState::Denied)
                );
                assert_eq!(stored.decided_by_name.as_deref(), Some("carol"));
            }
            other => panic!("round {round}: exactly one decision must win, got {other:?}"),
        }
        // The loser wrote nothing: one decision event per request, and an
        // approval only if the approver won.
        let decided = a
            .list_audit(&AuditFilter::default())
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.subject.as_deref() == Some(id.as_str()))
            .count();
        assert_eq!(decided, 1, "round {round}");
        let approvals = a.approvals_for_client(CLIENT).await.unwrap();
        assert_eq!(
            approvals
                .iter()
                .any(|x| x.request_id.as_deref() == Some(id.as_str())),
            stored.state == RequestState::Approved
        );
    }
}

pub async fn client_views_carry_the_latest_digest_owners_and_approvals(s: Arc<dyn Store>) {
    seed_people(&s).await;
    s.upsert_client(&client(
        "a-pre",
        ClientKind::PreRegistered,
        LifecycleState::Active,
    ))
    .await
    .unwrap();
    for (hash, at) in [("digest-old", 0), ("digest-new", 10)] {
        s.record_metadata_version(&NewMetadataVersion {
            client_id: CLIENT.into(),
            content_hash: hash.into(),
            body: format!("{{\"v\":\"{hash}\"}}"),
            fetched_at: T0.plus_secs(at),
            etag: None,
            last_modified: None,
            peer_addr: None,
        })
        .await
        .unwrap();
    }
    s.add_owner(
        CLIENT,
        &owner("u-bob", "bob", OwnerKind::Business),
        &event(GovernanceAction::OwnerAdded),
    )
    .await
    .unwrap();
    s.create_access_request(&request("r1", 1), &event(GovernanceAction::RequestOpened))
        .await
        .unwrap();
    let decision = RequestDecision::Approve {
        approval: approval("a1", "r1", "u-carol"),
        assign_owners: Vec::new(),
        activate_pending: false,
    };
    s.decide_access_request(
        "r1",
        RequestState::Pending,
        &decision,
        &approver("u-carol", "carol"),
        "ok",
        T0,
        &event(GovernanceAction::RequestApproved),
    )
    .await
    .unwrap();

    let one = s.client_view(CLIENT).await.unwrap().unwrap();
    assert_eq!(one.metadata_digest.as_deref(), Some("digest-new"));
    assert_eq!(one.metadata_document.as_deref(), Some("{\"v\":\"digest-new\"}"));
    assert_eq!(one.kind, ClientKind::MetadataDocument);
    assert_eq!(one.ownership.organization.as_deref(), Some("Example Org"));
    assert_eq!(s.client_view("https://nobody.example/").await.unwrap(), None);

    let all = s.list_client_views().await.unwrap();
    assert_eq!(
        all.iter().map(|v| v.client_id.as_str()).collect::<Vec<_>>(),
        ["a-pre", CLIENT]
    );
    assert_eq!(all[1], one, "the list and the single view agree");
    assert_eq!(
        (
            all[0].metadata_digest.as_ref(),
            all[0].ownership.owners.len(),
            all[0].approvals.len()
        ),
        (None, 0, 0)
    );
}

pub async fn policy_events_are_appended_alone(s: Arc<dyn Store>) {
    let e = GovernanceEvent::new(T0, "operator", GovernanceAction::PolicyReloaded)
        .detail(serde_json::json!({"files": 2}));
    s.append_event(&e).await.unwrap();
    let got = s.list_audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(
        (got.len(), got[0].action.as_str(), got[0].client_id.as_ref()),
        (1, "policy.reloaded", None)
    );
    let detail: serde_json::Value = serde_json::from_str(&got[0].detail).unwrap();
    assert_eq!(detail["detail"]["files"], 2);
}

pub async fn metadata_refresh_never_undoes_a_suspension(s: Arc<dyn Store>) {
    seed(&s).await;
    // The old path: a fetch read the whole record, then wrote it back.
    let stale = s.get_client(CLIENT).await.unwrap().unwrap();
    let e = event(GovernanceAction::ClientSuspended);
    let suspend = {
        let s = s.clone();
        tokio::spawn(async move {
            s.transition_client(
                CLIENT,
                LifecycleState::Active,
                LifecycleState::Suspended,
                false,
                T0,
                &e,
            )
            .await
            .unwrap()
        })
    };
    let refresh = {
        let s = s.clone();
        tokio::spawn(async move {
            for i in 0..20 {
                s.refresh_client_metadata(CLIENT, Some("Renamed"), T0.plus_secs(i))
                    .await
                    .unwrap();
            }
        })
    };
    assert_eq!(suspend.await.unwrap(), Transition::Applied);
    refresh.await.unwrap();
    // Even a writer holding a copy from before the suspension cannot undo it.
    let mut stale_write = stale;
    stale_write.display_name = Some("Stale".into());
    s.upsert_client(&stale_write).await.unwrap();
    assert!(
        s.refresh_client_metadata(CLIENT, None, T0.plus_secs(100))
            .await
            .unwrap()
    );
    let c = s.get_client(CLIENT).await.unwrap().unwrap();
    assert_eq!(c.state, LifecycleState::Suspended, "the suspension survives");
    assert_eq!(
        c.display_name.as_deref(),
        Some("Stale"),
        "a None name keeps the stored one"
    );
    assert_eq!(c.last_seen, T0.plus_secs(100));
    assert!(
        !s.refresh_client_metadata("https://nobody.example/", None, T0)
            .await
            .unwrap()
    );
}

pub async fn insert_client_creates_once(s: Arc<dyn Store>) {
    let first = client(CLIENT, ClientKind::MetadataDocument, LifecycleState::Active);
    let mut second = first.clone();
    second.state = LifecycleState::Pending;
    second.display_name = Some("second".into());
    assert!(s.insert_client(&first).await.unwrap());
    assert!(!s.insert_client(&second).await.unwrap());
    assert_eq!(s.get_client(CLIENT).await.unwrap(), Some(first));
}

/// Nodes keep a client's governance view while its revision is unchanged
/// (the token endpoint's cache), so every write that changes the view must
/// move the revision, on both backends, whoever writes it; writes the view
/// does not show (tokens, another user's account) leave it.
pub async fn every_view_change_moves_the_governance_revision(s: Arc<dyn Store>) {
    let grant = seed_people(&s).await;
    s.create_user(&user("u-dave", "dave")).await.unwrap();
    let rev = |s: Arc<dyn Store>| async move { s.client_and_revision(CLIENT).await.unwrap().unwrap().1 };
    let mut last = rev(s.clone()).await;
    let view = s.client_view(CLIENT).await.unwrap().unwrap();
    assert_eq!(view.revision, last, "a view carries the revision it was read at");
    let (record, view) = s.client_with_view(CLIENT).await.unwrap().unwrap();
    assert_eq!((record.state, view.revision), (LifecycleState::Active, last));
    assert_eq!(
        s.client_and_revision("https://nobody.example/").await.unwrap(),
        None
    );

    fn moved(now: i64, what: &str, last: &mut i64) {
        assert!(now > *last, "{what} must move the revision ({last} -> {now})");
        *last = now;
    }

    let add = event(GovernanceAction::OwnerAdded);
    s.add_owner(CLIENT, &owner("u-bob", "bob", OwnerKind::Business), &add)
        .await
        .unwrap();
    moved(rev(s.clone()).await, "an owner added", &mut last);
    s.add_owner(CLIENT, &owner("u-carol", "carol", OwnerKind::Business), &add)
        .await
        .unwrap();
    moved(rev(s.clone()).await, "a second owner added", &mut last);

    s.set_organization(CLIENT, Some("Acme"), &event(GovernanceAction::OrganizationSet))
        .await
        .unwrap();
    moved(rev(s.clone()).await, "the organization set", &mut last);
    s.set_contact(
        CLIENT,
        Some("sec@acme.example"),
        &event(GovernanceAction::ContactSet),
    )
    .await
    .unwrap();
    moved(rev(s.clone()).await, "the contact set", &mut last);

    s.record_metadata_version(&NewMetadataVersion {
        client_id: CLIENT.into(),
        content_hash: "cc".repeat(32),
        body: r#"{"client_name":"changed"}"#.into(),
        fetched_at: T0.plus_secs(5),
        etag: None,
        last_modified: None,
        peer_addr: None,
    })
    .await
    .unwrap();
    moved(rev(s.clone()).await, "a new metadata version", &mut last);

    // Writes the view does not show leave the revision where it is.
    s.insert_access_token(&access_token("jti-rev", Some(&grant), None, T0.plus_secs(60)))
        .await
        .unwrap();
    s.set_user_disabled("u-dave", true).await.unwrap();
    assert_eq!(
        rev(s.clone()).await,
        last,
        "a token or a stranger's account is not the client's view"
    );

    s.set_user_disabled("u-bob", true).await.unwrap();
    moved(rev(s.clone()).await, "an owner's account disabled", &mut last);
    s.delete_user("u-carol").await.unwrap();
    moved(rev(s.clone()).await, "an owner's account deleted", &mut last);

    s.create_access_request(&request("r-rev", 1), &event(GovernanceAction::RequestOpened))
        .await
        .unwrap();
    s.decide_access_request(
        "r-rev",
        RequestState::Pending,
        &RequestDecision::Approve {
            approval: approval("a-rev", "r-rev", "u-bob"),
            assign_owners: vec![],
            activate_pending: false,
        },
        &approver("u-bob", "bob"),
        "ok",
        T0.plus_secs(40),
        &event(GovernanceAction::RequestApproved),
    )
    .await
    .unwrap();
    moved(rev(s.clone()).await, "an approval", &mut last);

    s.transition_client(
        CLIENT,
        LifecycleState::Active,
        LifecycleState::Suspended,
        false,
        T0.plus_secs(50),
        &event(GovernanceAction::ClientSuspended),
    )
    .await
    .unwrap();
    moved(rev(s.clone()).await, "a suspension", &mut last);

    let view = s.client_view(CLIENT).await.unwrap().unwrap();
    assert_eq!(
        (view.revision, view.state, view.approvals.len()),
        (last, LifecycleState::Suspended, 1),
        "the view read now is the view at the latest revision"
    );
}
