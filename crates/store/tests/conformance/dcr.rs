//! Conformance checks for dynamic registration (`DcrStore`): a registration
//! lands whole or not at all, initial access tokens are used up exactly,
//! duplicates within the window return the existing client, and the
//! liveness sweeps find what they should. Registered in `conformance.rs`.

use super::{T0, client};
use std::sync::Arc;
use steward_core::{ClientKind, LifecycleState, TrustTier};
use steward_store::*;

fn event(action: &str, client_id: &str) -> NewAuditEvent {
    NewAuditEvent {
        at: T0,
        actor: "system:dcr".into(),
        action: action.into(),
        client_id: Some(client_id.into()),
        subject: None,
        detail: "{}".into(),
    }
}

fn registration(id: &str, key: &str, rat: &str, token: Option<&str>, at: i64) -> DcrRegistration {
    DcrRegistration {
        client_id: id.into(),
        source_address: Some("127.0.0.1".into()),
        software_id: None,
        statement_issuer: None,
        initial_token_id: token.map(str::to_owned),
        dedupe_key: key.into(),
        access_token_hash: rat.into(),
        registered_at: T0.plus_secs(at),
        last_authorized_at: None,
        last_token_at: None,
    }
}

async fn register(
    s: &Arc<dyn Store>,
    id: &str,
    key: &str,
    rat: &str,
    token: Option<&str>,
    at: i64,
    window: i64,
) -> Result<RegisterOutcome, StoreError> {
    let c = client(id, ClientKind::Dynamic, LifecycleState::Active);
    let r = registration(id, key, rat, token, at);
    s.register_client(&NewRegistration {
        client: &c,
        registration: &r,
        dedupe_since: T0.plus_secs(at - window),
        created_event: &event("client.registered", id),
        dedupe_event: &event("client.registration_deduplicated", id),
    })
    .await
}

fn iat(id: &str, hash: &str, max_uses: Option<u32>, expires: Option<i64>) -> InitialToken {
    InitialToken {
        id: id.into(),
        token_hash: hash.into(),
        tier: TrustTier::Verified,
        max_uses,
        uses: 0,
        expires_at: expires.map(|e| T0.plus_secs(e)),
        created_at: T0,
        created_by: "operator".into(),
        revoked_at: None,
    }
}

async fn audit_count(s: &Arc<dyn Store>) -> usize {
    s.list_audit(&AuditFilter::default()).await.unwrap().len()
}

pub async fn registrations_are_whole_and_initial_tokens_are_used_up_exactly(s: Arc<dyn Store>) {
    s.create_initial_token(
        &iat("t1", "h1", Some(1), None),
        &event("dcr.initial_token_created", "-"),
    )
    .await
    .unwrap();
    assert_eq!(
        register(&s, "dcr_a", "k-a", "rat-a", Some("t1"), 10, 60)
            .await
            .unwrap(),
        RegisterOutcome::Created
    );
    let a = s.dcr_registration("dcr_a").await.unwrap().unwrap();
    assert_eq!(a.initial_token_id.as_deref(), Some("t1"));
    assert_eq!(
        s.get_client("dcr_a").await.unwrap().unwrap().kind,
        ClientKind::Dynamic
    );
    assert_eq!(s.initial_token_by_hash("h1").await.unwrap().unwrap().uses, 1);

    // The token's one use is spent: a second registration stores nothing.
    let before = audit_count(&s).await;
    assert_eq!(
        register(&s, "dcr_b", "k-b", "rat-b", Some("t1"), 20, 60)
            .await
            .unwrap(),
        RegisterOutcome::TokenRefused
    );
    assert!(s.get_client("dcr_b").await.unwrap().is_none());
    assert!(s.dcr_registration("dcr_b").await.unwrap().is_none());
    assert_eq!(audit_count(&s).await, before);

    // An expired or revoked token is refused the same way.
    s.create_initial_token(
        &iat("t2", "h2", None, Some(5)),
        &event("dcr.initial_token_created", "-"),
    )
    .await
    .unwrap();
    assert_eq!(
        register(&s, "dcr_c", "k-c", "rat-c", Some("t2"), 20, 60)
            .await
            .unwrap(),
        RegisterOutcome::TokenRefused
    );
    s.create_initial_token(
        &iat("t3", "h3", None, None),
        &event("dcr.initial_token_created", "-"),
    )
    .await
    .unwrap();
    assert!(
        s.revoke_initial_token("t3", T0, &event("dcr.initial_token_revoked", "-"))
            .await
            .unwrap()
    );
    assert!(
        !s.revoke_initial_token("t3", T0, &event("dcr.initial_token_revoked", "-"))
            .await
            .unwrap()
    );
    assert_eq!(
        register(&s, "dcr_c", "k-c", "rat-c", Some("t3"), 20, 60)
            .await
            .unwrap(),
        RegisterOutcome::TokenRefused
    );

    // A registration that fails halfway (its id is taken) takes no token use.
    s.create_initial_token(
        &iat("t4", "h4", Some(5), None),
        &event("dcr.initial_token_created", "-"),
    )
    .await
    .unwrap();
    assert!(
        register(&s, "dcr_a", "k-other", "rat-x", Some("t4"), 30, 60)
            .await
            .is_err()
    );
    assert_eq!(s.initial_token_by_hash("h4").await.unwrap().unwrap().uses, 0);
    assert!(s.registration_by_token("rat-x").await.unwrap().is_none());
    let listed: Vec<String> = s
        .list_initial_tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(listed.len(), 4);
}

pub async fn a_duplicate_within_the_window_returns_the_existing_client(s: Arc<dyn Store>) {
    assert_eq!(
        register(&s, "dcr_a", "same", "rat-1", None, 0, 3600)
            .await
            .unwrap(),
        RegisterOutcome::Created
    );
    let again = register(&s, "dcr_b", "same", "rat-2", None, 100, 3600)
        .await
        .unwrap();
    let RegisterOutcome::Existing {
        client_id,
        registration,
    } = again
    else {
        panic!("{again:?}");
    };
    assert_eq!(client_id, "dcr_a");
    assert_eq!(registration, r#"{"redirect_uris":["http://127.0.0.1:7777/cb"]}"#);
    assert!(s.get_client("dcr_b").await.unwrap().is_none());
    // The old registration access token no longer works; the new one does.
    assert!(s.registration_by_token("rat-1").await.unwrap().is_none());
    assert_eq!(
        s.registration_by_token("rat-2").await.unwrap().unwrap().client_id,
        "dcr_a"
    );
    let dedupes = s
        .list_audit(&AuditFilter {
            action: Some("client.registration_deduplicated".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(dedupes.len(), 1);
    assert_eq!(dedupes[0].client_id.as_deref(), Some("dcr_a"));
    // Outside the window, a new client.
    assert_eq!(
        register(&s, "dcr_c", "same", "rat-3", None, 7200, 3600)
            .await
            .unwrap(),
        RegisterOutcome::Created
    );
    assert_eq!(s.list_dcr_registrations().await.unwrap().len(), 2);
}

pub async fn liveness_sweeps_find_unused_and_idle_registrations(s: Arc<dyn Store>) {
    for (id, at) in [("dcr_used", 0), ("dcr_unused", 0), ("dcr_new", 5000)] {
        register(&s, id, id, &format!("rat-{id}"), None, at, 0)
            .await
            .unwrap();
    }
    s.mark_dcr_use("dcr_used", DcrUse::Authorized, T0.plus_secs(10))
        .await
        .unwrap();
    s.mark_dcr_use("dcr_used", DcrUse::Token, T0.plus_secs(20))
        .await
        .unwrap();
    // Within the resolution, a second mark writes nothing.
    s.mark_dcr_use("dcr_used", DcrUse::Token, T0.plus_secs(30))
        .await
        .unwrap();
    let used = s.dcr_registration("dcr_used").await.unwrap().unwrap();
    assert_eq!(used.last_authorized_at, Some(T0.plus_secs(10)));
    assert_eq!(used.last_token_at, Some(T0.plus_secs(20)));

    let cutoff = T0.plus_secs(1000);
    assert_eq!(
        s.unused_dcr_clients(cutoff, 100).await.unwrap(),
        vec!["dcr_unused".to_owned()]
    );
    assert!(
        !s.delete_unused_dcr_client("dcr_used", cutoff, &event("x", "dcr_used"))
            .await
            .unwrap()
    );
    assert!(
        !s.delete_unused_dcr_client("dcr_new", cutoff, &event("x", "dcr_new"))
            .await
            .unwrap()
    );
    assert!(
        s.delete_unused_dcr_client(
            "dcr_unused",
            cutoff,
            &event("client.registration_deleted_unused", "dcr_unused")
        )
        .await
        .unwrap()
    );
    assert!(s.get_client("dcr_unused").await.unwrap().is_none());
    assert!(s.dcr_registration("dcr_unused").await.unwrap().is_none());

    // Idle: last use (token, else authorization, else registration) before the cutoff.
    assert_eq!(
        s.idle_dcr_clients(T0.plus_secs(21), 100).await.unwrap(),
        vec!["dcr_used".to_owned()]
    );
    assert!(
        s.idle_dcr_clients(T0.plus_secs(20), 100)
            .await
            .unwrap()
            .is_empty()
    );
    let both = s.idle_dcr_clients(T0.plus_secs(6000), 100).await.unwrap();
    assert_eq!(both, vec!["dcr_used".to_owned(), "dcr_new".to_owned()]);

    // A registration update replaces what it names and writes its event.
    assert!(
        s.update_dcr_client(
            "dcr_new",
            r#"{"a":1}"#,
            Some("New name"),
            T0.plus_secs(6000),
            &event("u", "dcr_new")
        )
        .await
        .unwrap()
    );
    let c = s.get_client("dcr_new").await.unwrap().unwrap();
    assert_eq!(c.registration, r#"{"a":1}"#);
    assert_eq!(c.display_name.as_deref(), Some("New name"));
    assert!(
        !s.update_dcr_client("nobody", "{}", None, T0, &event("u", "nobody"))
            .await
            .unwrap()
    );
}

pub async fn a_registration_and_each_update_are_versions_of_its_history(s: Arc<dyn Store>) {
    let c = ClientRecord {
        registration: r#"{"v":1}"#.into(),
        ..client("dcr_h", ClientKind::Dynamic, LifecycleState::Active)
    };
    let r = registration("dcr_h", "k", "rat", None, 0);
    s.register_client(&NewRegistration {
        client: &c,
        registration: &r,
        dedupe_since: T0,
        created_event: &event("client.registered", "dcr_h"),
        dedupe_event: &event("client.registration_deduplicated", "dcr_h"),
    })
    .await
    .unwrap();
    let before = s.client_and_revision("dcr_h").await.unwrap().unwrap().1;
    s.update_dcr_client(
        "dcr_h",
        r#"{"v":2}"#,
        None,
        T0.plus_secs(60),
        &event("u", "dcr_h"),
    )
    .await
    .unwrap();
    let view = s.client_view("dcr_h").await.unwrap().unwrap();
    assert_eq!(view.metadata_document.as_deref(), Some(r#"{"v":2}"#));
    assert_eq!(
        view.metadata_digest.as_deref(),
        Some(steward_governance::facts::sha256_hex(r#"{"v":2}"#).as_str())
    );
    assert!(view.revision > before, "an update moves the governance revision");
    assert_eq!(s.list_metadata_versions("dcr_h").await.unwrap().len(), 2);
}
