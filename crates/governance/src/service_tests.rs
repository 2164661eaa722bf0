//! The `Governance` service's rules, against the in-memory fake store.

use crate::domains::{DomainLists, DomainStatus};
use crate::error::GovernanceError;
use crate::fake::FakeStore;
use crate::model::{
    ClientView, GovernanceAction, GovernanceUser, Owner, OwnerKind, Ownership, RequestState, Role,
};
use crate::policy::{Action, PolicyConfig, RefusalReason, ResourceInfo, UserContext};
use crate::separation::SeparationError;
use crate::service::{ApproveOptions, By, DecideRequest, Governance, GovernanceSettings};
use std::sync::Arc;
use steward_core::{ClientKind, LifecycleState, ManualClock, TrustTier, UnixTime};

const RES: &str = "https://mcp.example.com/";
const CLIENT: &str = "https://agent.example.com/client.json";
const T0: i64 = 1_000_000;

fn scopes(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| (*x).to_owned()).collect()
}

fn user(id: &str, roles: &[Role]) -> GovernanceUser {
    GovernanceUser {
        id: format!("u_{id}"),
        username: id.to_owned(),
        disabled: false,
        roles: roles.to_vec(),
    }
}

fn owner(id: &str, kind: OwnerKind) -> Owner {
    Owner {
        user_id: format!("u_{id}"),
        username: id.to_owned(),
        kind,
    }
}

fn client(owners: Vec<Owner>) -> ClientView {
    ClientView {
        client_id: CLIENT.into(),
        kind: ClientKind::MetadataDocument,
        state: LifecycleState::Active,
        tier: TrustTier::Unverified,
        display_name: Some("Agent".into()),
        registration: "{}".into(),
        metadata_document: Some(
            r#"{"client_uri":"https://agent.example.com/","redirect_uris":["https://agent.example.com/cb"]}"#
                .into(),
        ),
        metadata_digest: Some("digest-1".into()),
        first_seen: UnixTime(T0 - 86_400),
        last_seen: UnixTime(T0),
        ownership: Ownership {
            organization: None,
            contact: None,
            owners,
        },
        approvals: vec![],
        revision: 0,
    }
}

fn settings() -> GovernanceSettings {
    GovernanceSettings {
        resources: vec![ResourceInfo {
            uri: RES.into(),
            scopes: scopes(&["files:read", "files:write", "admin"]),
            self_service_scopes: scopes(&["files:read"]),
        }],
        ..GovernanceSettings::default()
    }
}

struct World {
    gov: Governance,
    store: Arc<FakeStore>,
    clock: ManualClock,
}

/// Users: alice and dave approve, oscar operates, bob (business) and tina
/// (technical) own the client, carol has no role.
fn world_with(settings: GovernanceSettings, owners: Vec<Owner>) -> World {
    let store = Arc::new(FakeStore::default());
    store.with(|s| {
        for u in [
            user("alice", &[Role::Approver]),
            user("dave", &[Role::Approver]),
            user("oscar", &[Role::Operator]),
            user("bob", &[]),
            user("tina", &[]),
            user("carol", &[]),
        ] {
            s.users.insert(u.id.clone(), u);
        }
        s.clients.insert(CLIENT.into(), client(owners));
    });
    let clock = ManualClock::new(UnixTime(T0));
    let gov = Governance::new(settings, store.clone(), Arc::new(clock.clone())).unwrap();
    World { gov, store, clock }
}

fn world() -> World {
    world_with(
        settings(),
        vec![
            owner("bob", OwnerKind::Business),
            owner("tina", OwnerKind::Technical),
        ],
    )
}

fn carol() -> UserContext {
    UserContext {
        id: "u_carol".into(),
        username: "carol".into(),
    }
}

impl World {
    async fn granted(&self, asked: &[&str]) -> Vec<String> {
        self.decide(asked).await.granted
    }

    async fn decide(&self, asked: &[&str]) -> crate::policy::Decision {
        let s = scopes(asked);
        self.gov
            .decide(&DecideRequest {
                client_id: CLIENT,
                action: Action::Authorize,
                resource: RES,
                scopes: &s,
                user: None,
                address: None,
                facts: None,
            })
            .await
            .unwrap()
    }

    fn state(&self) -> LifecycleState {
        self.store.with(|s| s.clients[CLIENT].state)
    }

    fn events(&self) -> Vec<GovernanceAction> {
        self.store.with(|s| s.events.iter().map(|e| e.action).collect())
    }

    async fn open(&self, asked: &[&str]) -> String {
        self.gov
            .open_request(
                CLIENT,
                RES,
                &scopes(asked),
                &carol(),
                "need to write reports",
                None,
            )
            .await
            .unwrap()
            .id
    }
}

#[tokio::test]
async fn self_service_scope_is_granted_and_the_rest_needs_approval() {
    let w = world();
    let d = w.decide(&["files:read", "files:write"]).await;
    assert_eq!(d.granted, vec!["files:read"]);
    assert_eq!(
        d.refusal("files:write").unwrap().reason,
        RefusalReason::NeedsApproval
    );
}

#[tokio::test]
async fn unknown_client_and_unknown_resource_are_named() {
    let w = world();
    let s = scopes(&["files:read"]);
    let mut req = DecideRequest {
        client_id: "https://nobody.example/c.json",
        action: Action::Authorize,
        resource: RES,
        scopes: &s,
        user: None,
        address: None,
        facts: None,
    };
    let e = w.gov.decide(&req).await.unwrap_err();
    assert_eq!(e.to_string(), "unknown client https://nobody.example/c.json");
    req.client_id = CLIENT;
    req.resource = "https://other.example/";
    let e = w.gov.decide(&req).await.unwrap_err();
    assert_eq!(e.to_string(), "unknown resource https://other.example/");
}

#[tokio::test]
async fn owner_may_suspend_but_not_resume_alone() {
    let w = world();
    w.gov.suspend(CLIENT, "bob", "leaked key").await.unwrap();
    assert_eq!(w.state(), LifecycleState::Suspended);
    let e = w.gov.resume(CLIENT, "bob", "fixed").await.unwrap_err();
    assert!(matches!(e, GovernanceError::Lifecycle(_)), "{e}");
    assert_eq!(w.state(), LifecycleState::Suspended);
    w.gov.resume(CLIENT, "oscar", "key rotated").await.unwrap();
    assert_eq!(w.state(), LifecycleState::Active);
    assert!(
        w.store.with(|s| s.revoked_families.is_empty()),
        "a suspension keeps refresh families"
    );
}

#[tokio::test]
async fn user_without_role_or_ownership_may_not_suspend() {
    let w = world();
    let e = w.gov.suspend(CLIENT, "carol", "dislike").await.unwrap_err();
    assert!(matches!(e, GovernanceError::Lifecycle(_)), "{e}");
    assert_eq!(w.state(), LifecycleState::Active);
    assert!(w.events().is_empty(), "a refused change writes no event");
}

#[tokio::test]
async fn state_change_needs_a_reason() {
    let w = world();
    let e = w.gov.suspend(CLIENT, "oscar", "  ").await.unwrap_err();
    assert!(matches!(e, GovernanceError::JustificationRequired(_)), "{e}");
    assert_eq!(w.state(), LifecycleState::Active);
}

#[tokio::test]
async fn suspended_client_gets_nothing_at_the_next_request() {
    let w = world();
    assert_eq!(w.granted(&["files:read"]).await, vec!["files:read"]);
    w.gov.suspend(CLIENT, "alice", "incident").await.unwrap();
    assert!(w.granted(&["files:read"]).await.is_empty());
}

#[tokio::test]
async fn revoked_is_final() {
    let w = world();
    w.gov.revoke(CLIENT, "oscar", "compromised").await.unwrap();
    assert_eq!(w.state(), LifecycleState::Revoked);
    assert_eq!(
        w.store.with(|s| s.revoked_families.clone()),
        vec![CLIENT.to_owned()]
    );
    for to in [
        LifecycleState::Active,
        LifecycleState::Suspended,
        LifecycleState::Pending,
    ] {
        let e = w
            .gov
            .transition(CLIENT, to, By::User("oscar"), "undo")
            .await
            .unwrap_err();
        assert!(matches!(e, GovernanceError::Lifecycle(_)), "{e}");
    }
    assert_eq!(w.state(), LifecycleState::Revoked);
    assert!(w.granted(&["files:read"]).await.is_empty());
    let e = w
        .gov
        .open_request(CLIENT, RES, &scopes(&["files:read"]), &carol(), "please", None)
        .await
        .unwrap_err();
    assert!(matches!(e, GovernanceError::ClientState { .. }), "{e}");
}

#[tokio::test]
async fn concurrent_revocation_is_not_undone_by_a_resume() {
    // oscar read the client while it was suspended; alice revoked it before
    // oscar's resume landed. The compare-and-set refuses the resume.
    let w = world();
    w.gov.suspend(CLIENT, "alice", "incident").await.unwrap();
    let stale = w.store.with(|s| s.clients[CLIENT].clone());
    w.gov
        .revoke(CLIENT, "alice", "confirmed compromise")
        .await
        .unwrap();
    w.store.with(|s| s.stale_client = Some(stale));
    let before = w.events().len();
    let e = w.gov.resume(CLIENT, "oscar", "false alarm").await.unwrap_err();
    assert!(matches!(e, GovernanceError::Conflict(_)), "{e}");
    assert!(e.to_string().contains("now revoked"), "{e}");
    w.store.with(|s| s.stale_client = None);
    assert_eq!(w.state(), LifecycleState::Revoked);
    assert_eq!(w.events().len(), before, "a refused change writes no event");
}

#[tokio::test]
async fn approval_grants_at_the_next_request() {
    let w = world();
    let id = w.open(&["files:write"]).await;
    assert!(
        !w.granted(&["files:write"])
            .await
            .contains(&"files:write".to_owned())
    );
    let a = w
        .gov
        .approve(&id, "alice", "reports team", &ApproveOptions::default())
        .await
        .unwrap();
    assert!(!a.self_approved);
    assert_eq!(a.metadata_digest.as_deref(), Some("digest-1"));
    assert_eq!(
        w.granted(&["files:read", "files:write"]).await,
        vec!["files:read", "files:write"]
    );
    let r = w.store.with(|s| s.requests[&id].clone());
    assert_eq!(r.state, RequestState::Approved);
    assert_eq!(r.decided_by_name.as_deref(), Some("alice"));
    assert_eq!(r.decision_justification.as_deref(), Some("reports team"));
}

#[tokio::test]
async fn identical_pending_request_is_not_duplicated() {
    let w = world();
    let a = w.open(&["files:write"]).await;
    let b = w.open(&["files:write"]).await;
    assert_eq!(a, b);
    assert_eq!(w.store.with(|s| s.requests.len()), 1);
}

#[tokio::test]
async fn request_for_an_undefined_scope_is_refused() {
    let w = world();
    let e = w
        .gov
        .open_request(CLIENT, RES, &scopes(&["files:delete"]), &carol(), "x", None)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "scope files:delete is not defined by resource https://mcp.example.com/"
    );
    assert!(w.store.with(|s| s.requests.is_empty()));
}

#[tokio::test]
async fn approval_may_narrow_to_a_subset_but_not_widen() {
    let w = world();
    let id = w.open(&["files:write"]).await;
    let wider = ApproveOptions {
        scopes: Some(scopes(&["files:write", "admin"])),
        ..ApproveOptions::default()
    };
    let e = w.gov.approve(&id, "alice", "ok", &wider).await.unwrap_err();
    assert!(matches!(e, GovernanceError::NotRequested { .. }), "{e}");
    assert_eq!(w.store.with(|s| s.requests[&id].state), RequestState::Pending);

    let id = w.open(&["files:write", "admin"]).await;
    let narrow = ApproveOptions {
        scopes: Some(scopes(&["files:write"])),
        ..ApproveOptions::default()
    };
    w.gov.approve(&id, "alice", "write only", &narrow).await.unwrap();
    let d = w.decide(&["files:write", "admin"]).await;
    assert_eq!(d.granted, vec!["files:write"]);
    assert_eq!(d.refusal("admin").unwrap().reason, RefusalReason::NeedsApproval);
}

#[tokio::test]
async fn approval_lapses_at_its_expiry() {
    let w = world();
    let id = w.open(&["files:write"]).await;
    let opts = ApproveOptions {
        expires_in_secs: Some(3600),
        ..ApproveOptions::default()
    };
    let a = w
        .gov
        .approve(&id, "alice", "for the audit week", &opts)
        .await
        .unwrap();
    assert_eq!(a.expires_at, Some(UnixTime(T0 + 3600)));
    assert!(
        w.granted(&["files:write"])
            .await
            .contains(&"files:write".to_owned())
    );
    w.clock.advance(3600);
    assert!(
        !w.granted(&["files:write"])
            .await
            .contains(&"files:write".to_owned())
    );
}

#[tokio::test]
async fn approval_for_another_digest_does_not_grant() {
    let w = world();
    let id = w.open(&["files:write"]).await;
    w.gov
        .approve(&id, "alice", "ok", &ApproveOptions::default())
        .await
        .unwrap();
    assert!(
        w.granted(&["files:write"])
            .await
            .contains(&"files:write".to_owned())
    );
    // The document changed: the approval was bound to the old digest.
    w.store
        .with(|s| s.clients.get_mut(CLIENT).unwrap().metadata_digest = Some("digest-2".into()));
    let d = w.decide(&["files:write"]).await;
    assert!(d.granted.is_empty());
    assert_eq!(
        d.refusal("files:write").unwrap().reason,
        RefusalReason::NeedsApproval
    );
}

#[tokio::test]
async fn owners_are_required_above_self_service() {
    let w = world_with(settings(), vec![owner("bob", OwnerKind::Business)]);
    let id = w.open(&["files:write"]).await;
    let e = w
        .gov
        .approve(&id, "alice", "ok", &ApproveOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, GovernanceError::OwnersRequired { .. }), "{e}");
    assert_eq!(w.store.with(|s| s.requests[&id].state), RequestState::Pending);
    // Owners assigned with the approval count.
    let opts = ApproveOptions {
        owners: vec![("tina".into(), OwnerKind::Technical)],
        ..ApproveOptions::default()
    };
    w.gov
        .approve(&id, "alice", "ok, tina answers", &opts)
        .await
        .unwrap();
    assert!(w.store.with(|s| s.clients[CLIENT].ownership.is_complete()));
}

#[tokio::test]
async fn self_approval_is_refused_by_default() {
    let w = world();
    let alice = UserContext {
        id: "u_alice".into(),
        username: "alice".into(),
    };
    let r = w
        .gov
        .open_request(CLIENT, RES, &scopes(&["files:write"]), &alice, "mine", None)
        .await
        .unwrap();
    let e = w
        .gov
        .approve(&r.id, "alice", "trust me", &ApproveOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            GovernanceError::Separation(SeparationError::SelfApproval { .. })
        ),
        "{e}"
    );
    assert_eq!(w.store.with(|s| s.requests[&r.id].state), RequestState::Pending);
}

#[tokio::test]
async fn owner_may_not_approve_for_their_client() {
    let w = world();
    w.store.with(|s| {
        s.users.get_mut("u_bob").unwrap().roles = vec![Role::Approver];
    });
    let id = w.open(&["files:write"]).await;
    let e = w
        .gov
        .approve(&id, "bob", "my own client", &ApproveOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            GovernanceError::Separation(SeparationError::SelfApproval { .. })
        ),
        "{e}"
    );
}

#[tokio::test]
async fn allowed_self_approval_is_marked() {
    let w = world_with(
        GovernanceSettings {
            allow_self_approval: true,
            ..settings()
        },
        vec![
            owner("bob", OwnerKind::Business),
            owner("tina", OwnerKind::Technical),
        ],
    );
    let alice = UserContext {
        id: "u_alice".into(),
        username: "alice".into(),
    };
    let r = w
        .gov
        .open_request(CLIENT, RES, &scopes(&["files:write"]), &alice, "mine", None)
        .await
        .unwrap();
    let a = w
        .gov
        .approve(
            &r.id,
            "alice",
            "single-person install",
            &ApproveOptions::default(),
        )
        .await
        .unwrap();
    assert!(a.self_approved);
    let marked = w.store.with(|s| {
        s.events
            .iter()
            .any(|e| e.action == GovernanceAction::RequestApproved && e.detail["self_approved"] == true)
    });
    assert!(marked);
}

#[tokio::test]
async fn user_without_approver_role_may_not_decide() {
    let w = world();
    let id = w.open(&["files:write"]).await;
    let e = w.gov.deny(&id, "oscar", "no").await.unwrap_err();
    assert!(
        matches!(
            e,
            GovernanceError::Separation(SeparationError::MissingRole { .. })
        ),
        "{e}"
    );
    let e = w
        .gov
        .approve(&id, "oscar", "yes", &ApproveOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            GovernanceError::Separation(SeparationError::MissingRole { .. })
        ),
        "{e}"
    );
}

#[tokio::test]
async fn denial_needs_a_justification_and_grants_nothing() {
    let w = world();
    let id = w.open(&["files:write"]).await;
    let e = w.gov.deny(&id, "alice", "").await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "a justification is required to deny an access request"
    );
    w.gov.deny(&id, "alice", "no business need").await.unwrap();
    assert_eq!(w.store.with(|s| s.requests[&id].state), RequestState::Denied);
    assert!(
        !w.granted(&["files:write"])
            .await
            .contains(&"files:write".to_owned())
    );
    let e = w
        .gov
        .approve(&id, "dave", "override", &ApproveOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, GovernanceError::RequestDecided { .. }), "{e}");
}

#[tokio::test]
async fn expired_request_cannot_be_approved() {
    let w = world();
    let id = w.open(&["files:write"]).await;
    w.clock.advance(crate::requests::DEFAULT_REQUEST_EXPIRY_SECS);
    let e = w
        .gov
        .approve(&id, "alice", "late", &ApproveOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, GovernanceError::RequestExpired { .. }), "{e}");
    assert_eq!(w.gov.expire_requests().await.unwrap(), vec![id.clone()]);
    assert_eq!(w.store.with(|s| s.requests[&id].state), RequestState::Expired);
}

#[tokio::test]
async fn pending_client_expires_with_its_last_request() {
    let w = world();
    w.store
        .with(|s| s.clients.get_mut(CLIENT).unwrap().state = LifecycleState::Pending);
    let _ = w.open(&["files:write"]).await;
    w.clock.advance(crate::requests::DEFAULT_REQUEST_EXPIRY_SECS + 1);
    w.gov.expire_requests().await.unwrap();
    assert_eq!(w.state(), LifecycleState::Expired);
}

#[tokio::test]
async fn approval_activates_a_pending_client() {
    let w = world();
    w.store
        .with(|s| s.clients.get_mut(CLIENT).unwrap().state = LifecycleState::Pending);
    let id = w.open(&["files:write"]).await;
    w.gov
        .approve(&id, "alice", "reviewed", &ApproveOptions::default())
        .await
        .unwrap();
    assert_eq!(w.state(), LifecycleState::Active);
}

#[tokio::test]
async fn two_approvers_second_gets_conflict() {
    let w = world();
    let id = w.open(&["files:write"]).await;
    // dave read the request while it was pending; alice's approval lands
    // first. dave's compare-and-set must fail, not record a second approval.
    let stale = w.store.with(|s| s.requests[&id].clone());
    w.gov
        .approve(&id, "alice", "first", &ApproveOptions::default())
        .await
        .unwrap();
    w.store.with(|s| s.stale_request = Some(stale));
    let e = w
        .gov
        .approve(&id, "dave", "second", &ApproveOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, GovernanceError::Conflict(_)), "{e}");
    assert!(e.to_string().contains("decided concurrently"), "{e}");
    assert_eq!(w.store.with(|s| s.clients[CLIENT].approvals.len()), 1);
    let approvals = w
        .events()
        .into_iter()
        .filter(|a| *a == GovernanceAction::RequestApproved)
        .count();
    assert_eq!(approvals, 1);
    assert_eq!(
        w.store
            .with(|s| s.requests[&id].decided_by_name.clone())
            .as_deref(),
        Some("alice")
    );
}

#[tokio::test]
async fn denied_domain_gets_nothing() {
    let w = world_with(
        GovernanceSettings {
            domains: DomainLists::parse(&[] as &[&str], &["agent.example.com"], &[]).unwrap(),
            ..settings()
        },
        vec![],
    );
    assert_eq!(w.gov.check_host("agent.example.com"), DomainStatus::Denied);
    let d = w.decide(&["files:read", "files:write"]).await;
    assert!(d.granted.is_empty());
    assert_eq!(d.refusal("files:read").unwrap().reason, RefusalReason::Forbidden);
}

#[tokio::test]
async fn quarantined_domain_gets_only_what_was_approved() {
    let w = world_with(
        GovernanceSettings {
            domains: DomainLists::parse(&[] as &[&str], &[], &["*.example.com"]).unwrap(),
            ..settings()
        },
        vec![
            owner("bob", OwnerKind::Business),
            owner("tina", OwnerKind::Technical),
        ],
    );
    assert!(w.granted(&["files:read"]).await.is_empty());
    let id = w.open(&["files:read"]).await;
    w.gov
        .approve(&id, "alice", "reviewed", &ApproveOptions::default())
        .await
        .unwrap();
    assert_eq!(w.granted(&["files:read"]).await, vec!["files:read"]);
}

fn policy_file(text: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("{}.cedar", crate::requests::new_id("steward-policy")));
    std::fs::write(&p, text).unwrap();
    p
}

fn with_files(files: Vec<std::path::PathBuf>) -> World {
    world_with(
        GovernanceSettings {
            policy: PolicyConfig {
                include_default: true,
                files,
            },
            ..settings()
        },
        vec![
            owner("bob", OwnerKind::Business),
            owner("tina", OwnerKind::Technical),
        ],
    )
}

#[tokio::test]
async fn policy_error_fails_closed() {
    let f = policy_file(
        r#"@id("ops.overflowing_forbid")
forbid (principal is Client, action, resource)
when { (principal.age_days + 2) * 9223372036854775807 > 0 };"#,
    );
    let w = with_files(vec![f.clone()]);
    let d = w.decide(&["files:read"]).await;
    assert!(d.granted.is_empty());
    assert_eq!(
        d.refusal("files:read").unwrap().reason,
        RefusalReason::PolicyError
    );
    let _ = std::fs::remove_file(f);
}

#[tokio::test]
async fn broken_policy_reload_keeps_running_set() {
    let f = policy_file(
        r#"@id("ops.no_admin")
forbid (principal is Client, action, resource is Scope) when { resource.name == "admin" };"#,
    );
    let w = with_files(vec![f.clone()]);
    let before = w.gov.engine().running().policy_ids();
    assert!(before.contains(&"ops.no_admin".to_owned()));
    std::fs::write(
        &f,
        "permit (principal, action, resource) when { principal.state == };",
    )
    .unwrap();
    let e = w.gov.reload("oscar").await.unwrap_err();
    assert!(matches!(e, GovernanceError::Policy(_)), "{e}");
    assert_eq!(w.gov.engine().running().policy_ids(), before);
    assert_eq!(w.events(), vec![GovernanceAction::PolicyReloadRefused]);
    // A valid file is swapped in at reload, and audited.
    std::fs::write(
        &f,
        r#"@id("ops.no_write")
forbid (principal is Client, action, resource is Scope) when { resource.name == "files:write" };"#,
    )
    .unwrap();
    let ids = w.gov.reload("oscar").await.unwrap();
    assert!(ids.contains(&"ops.no_write".to_owned()) && !ids.contains(&"ops.no_admin".to_owned()));
    assert_eq!(w.events().last(), Some(&GovernanceAction::PolicyReloaded));
    let _ = std::fs::remove_file(f);
}

#[tokio::test]
async fn invalid_policy_set_refuses_to_start() {
    let f = policy_file("forbid (principal, action, resource) when { principal.nonexistent };");
    let store = Arc::new(FakeStore::default());
    let r = Governance::new(
        GovernanceSettings {
            policy: PolicyConfig {
                include_default: true,
                files: vec![f.clone()],
            },
            ..settings()
        },
        store,
        Arc::new(ManualClock::new(UnixTime(T0))),
    );
    assert!(matches!(r, Err(GovernanceError::Policy(_))));
    let _ = std::fs::remove_file(f);
}

#[tokio::test]
async fn policy_impact_names_what_a_candidate_removes() {
    let w = world();
    let f = policy_file(
        r#"@id("ops.no_self_service")
forbid (principal is Client, action, resource is Scope) when { resource.self_service };"#,
    );
    let rows = w.gov.impact(std::slice::from_ref(&f)).await.unwrap();
    let authorize = rows
        .iter()
        .find(|r| r.client_id == CLIENT && r.action == Action::Authorize)
        .unwrap();
    assert_eq!(authorize.lost, vec!["files:read"]);
    // Impact changes nothing.
    assert_eq!(w.granted(&["files:read"]).await, vec!["files:read"]);
    let _ = std::fs::remove_file(f);
}

#[tokio::test]
async fn explain_names_the_deciding_policy() {
    let w = world();
    let s = scopes(&["files:read"]);
    let x = w
        .gov
        .explain(&DecideRequest {
            client_id: CLIENT,
            action: Action::Refresh,
            resource: RES,
            scopes: &s,
            user: None,
            address: None,
            facts: None,
        })
        .await
        .unwrap();
    assert_eq!(x.decision.granted, vec!["files:read"]);
    assert!(
        x.scopes[0]
            .policy_ids
            .contains(&"steward.self_service".to_owned())
    );
}

#[tokio::test]
async fn disabled_owner_passes_to_the_next_owner_or_orphans() {
    let w = world_with(
        settings(),
        vec![
            owner("bob", OwnerKind::Business),
            owner("tina", OwnerKind::Technical),
            owner("carol", OwnerKind::Business),
        ],
    );
    let r = w.gov.on_user_disabled("bob").await.unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].successor.as_deref(), Some("carol"));
    let r = w.gov.on_user_disabled("tina").await.unwrap();
    assert_eq!(r[0].kind, OwnerKind::Technical);
    assert_eq!(r[0].successor, None);
    assert_eq!(
        w.events(),
        vec![GovernanceAction::OwnerSucceeded, GovernanceAction::ClientOrphaned]
    );
    let owners: Vec<String> = w.store.with(|s| {
        s.clients[CLIENT]
            .ownership
            .owners
            .iter()
            .map(|o| o.username.clone())
            .collect()
    });
    assert_eq!(owners, vec!["carol"]);
}

#[tokio::test]
async fn owner_may_add_but_not_remove_owners() {
    let w = world();
    w.gov
        .add_owner(CLIENT, "carol", OwnerKind::Technical, "bob")
        .await
        .unwrap();
    let e = w
        .gov
        .remove_owner(CLIENT, "carol", None, "bob")
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            GovernanceError::Separation(SeparationError::MissingRole { .. })
        ),
        "{e}"
    );
    w.gov.remove_owner(CLIENT, "carol", None, "alice").await.unwrap();
    let e = w
        .gov
        .add_owner(CLIENT, "bob", OwnerKind::Business, "alice")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("already a business owner"), "{e}");
    let e = w
        .gov
        .add_owner(CLIENT, "tina", OwnerKind::Business, "carol")
        .await
        .unwrap_err();
    assert!(matches!(e, GovernanceError::NotPermitted { .. }), "{e}");
}

#[tokio::test]
async fn disabled_user_may_not_act() {
    let w = world();
    w.store
        .with(|s| s.users.get_mut("u_alice").unwrap().disabled = true);
    let e = w.gov.suspend(CLIENT, "alice", "x").await.unwrap_err();
    assert!(
        matches!(e, GovernanceError::Separation(SeparationError::Disabled { .. })),
        "{e}"
    );
}

#[tokio::test]
async fn scopes_narrowed_away_or_denied_are_already_decided_not_asked_again() {
    let w = world();
    let id = w.open(&["files:write", "admin"]).await;
    let opts = ApproveOptions {
        scopes: Some(scopes(&["files:write"])),
        ..ApproveOptions::default()
    };
    w.gov.approve(&id, "alice", "writes only", &opts).await.unwrap();
    // The approved scope is granted; the narrowed-away one is settled.
    assert_eq!(
        w.granted(&["files:read", "files:write", "admin"]).await,
        scopes(&["files:read", "files:write"])
    );
    let settled = w
        .gov
        .already_decided(CLIENT, RES, &scopes(&["admin"]))
        .await
        .unwrap();
    assert_eq!(settled, scopes(&["admin"]));
    // A pending request settles nothing.
    let w = world();
    w.open(&["admin"]).await;
    assert!(
        w.gov
            .already_decided(CLIENT, RES, &scopes(&["admin"]))
            .await
            .unwrap()
            .is_empty()
    );
}

fn dynamic_candidate() -> ClientView {
    ClientView {
        client_id: "dcr_new".into(),
        kind: ClientKind::Dynamic,
        registration: r#"{"redirect_uris":["http://127.0.0.1/cb"]}"#.into(),
        metadata_document: None,
        metadata_digest: None,
        ownership: Ownership::default(),
        ..client(vec![])
    }
}

#[test]
fn a_registration_without_scope_gets_the_self_service_set() {
    let w = world();
    let r = w
        .gov
        .registrable_scopes(&dynamic_candidate(), None, None, None)
        .unwrap();
    assert_eq!(r.accepted, scopes(&["files:read"]));
    assert!(r.dropped.is_empty());
}

#[test]
fn a_registration_keeps_what_an_approval_could_grant_and_drops_the_unknown() {
    let w = world();
    let asked = scopes(&["files:read", "files:write", "nonsense"]);
    let r = w
        .gov
        .registrable_scopes(&dynamic_candidate(), Some(&asked), None, None)
        .unwrap();
    assert_eq!(r.accepted, scopes(&["files:read", "files:write"]));
    assert_eq!(
        r.dropped,
        vec![("nonsense".to_owned(), RefusalReason::UnknownScope)]
    );
}

#[test]
fn an_operator_policy_forbids_registering_a_scope() {
    let f = policy_file(
        r#"@id("ops.no_admin_by_registration")
forbid (principal is Client, action == Action::"register", resource is Scope)
when { principal.kind == "dynamic" && resource.name == "admin" };"#,
    );
    let w = with_files(vec![f]);
    let asked = scopes(&["files:read", "admin"]);
    let r = w
        .gov
        .registrable_scopes(&dynamic_candidate(), Some(&asked), None, None)
        .unwrap();
    assert_eq!(r.accepted, scopes(&["files:read"]));
    assert_eq!(r.dropped, vec![("admin".to_owned(), RefusalReason::Forbidden)]);
    assert_eq!(r.policy_ids, vec!["ops.no_admin_by_registration".to_owned()]);
}

#[test]
fn a_backer_ceiling_narrows_what_a_registration_may_hold() {
    let w = world();
    let asked = scopes(&["files:read", "files:write"]);
    let ceiling = scopes(&["files:read"]);
    let r = w
        .gov
        .registrable_scopes(&dynamic_candidate(), Some(&asked), Some(&ceiling), None)
        .unwrap();
    assert_eq!(r.accepted, scopes(&["files:read"]));
    assert_eq!(
        r.dropped,
        vec![("files:write".to_owned(), RefusalReason::BeyondCeiling)]
    );
    // Without a named scope: the self-service set, still within the ceiling.
    let none = scopes(&["files:write"]);
    let r = w
        .gov
        .registrable_scopes(&dynamic_candidate(), None, Some(&none), None)
        .unwrap();
    assert!(r.accepted.is_empty(), "{r:?}");
}

/// `change_owners` checks every change before writing any: a valid
/// addition next to an invalid removal (or a user named twice, or a user
/// who does not exist) changes nothing.
#[tokio::test]
async fn one_bad_owner_change_among_several_changes_nothing() {
    let w = world();
    let owners = |w: &World| {
        let mut o: Vec<String> = w.store.with(|s| {
            s.clients[CLIENT]
                .ownership
                .owners
                .iter()
                .map(|o| format!("{}:{}", o.username, o.kind))
                .collect()
        });
        o.sort();
        o
    };
    let before = owners(&w);
    let add = vec![("carol".to_owned(), OwnerKind::Technical)];
    for (removes, says) in [
        (vec![("dave".to_owned(), None)], "does not own"),
        (
            vec![("bob".to_owned(), Some(OwnerKind::Technical))],
            "is not a technical owner",
        ),
        (vec![("carol".to_owned(), None)], "named twice"),
        (vec![("nobody".to_owned(), None)], "nobody"),
    ] {
        let e = w
            .gov
            .change_owners(CLIENT, &add, &removes, "alice")
            .await
            .unwrap_err();
        assert!(e.to_string().contains(says), "{says}: {e}");
        assert_eq!(owners(&w), before, "nothing changed ({says})");
    }
    let twice = vec![
        ("carol".to_owned(), OwnerKind::Technical),
        ("carol".to_owned(), OwnerKind::Technical),
    ];
    let e = w
        .gov
        .change_owners(CLIENT, &twice, &[], "alice")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("named twice"), "{e}");
    assert_eq!(owners(&w), before);

    // One user in both capacities is two changes, not a repetition.
    let both = vec![
        ("carol".to_owned(), OwnerKind::Technical),
        ("carol".to_owned(), OwnerKind::Business),
    ];
    let n = w
        .gov
        .change_owners(CLIENT, &both, &[("bob".to_owned(), None)], "alice")
        .await
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(
        owners(&w),
        vec!["carol:business", "carol:technical", "tina:technical"]
    );
}
