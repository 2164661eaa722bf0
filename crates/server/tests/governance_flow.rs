//! Issue 13 end to end, through the real HTTP server: policy above identity
//! at /authorize and /token, access requests and approval with separation
//! of duties, lifecycle taking effect on the next request, domain lists
//! before any fetch, and a policy reload that refuses a broken set. Run on
//! SQLite, and on PostgreSQL when one answers (the store is involved).
//!
//! All traffic is loopback: the document host is 127.0.0.2, named by a
//! loopback test nameserver. Redirect URIs are never followed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::flows::*;
use common::{TestServer, client};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::sync::Arc;
use steward_core::pkce::s256_challenge;
use steward_governance::model::{GovernanceAction, GovernanceEvent, OwnerKind, Role};
use steward_governance::{ApproveOptions, GovernanceError};
use steward_server::settings::Settings;
use steward_testkit::{DocumentHost, TestCa, TestNameserver, TestResponse};

const FILES: &str = "mcp:files";

struct World {
    server: TestServer,
    host: DocumentHost,
    _ns: TestNameserver,
    pg: Option<(String, String)>,
}

impl World {
    async fn stop(self) {
        let pg = self.pg.clone();
        drop(self);
        if let Some((base, url)) = pg {
            common::drop_schema(&base, &url).await;
        }
    }
}

/// Steward with a third scope on the resource (`mcp:files`), beside a
/// document host answering for `agent.test`, `denied.test`, `quar.test` and
/// `other.test`.
async fn world(pg: bool, tune: impl FnOnce(&mut Settings)) -> Option<World> {
    let names = ["agent.test", "denied.test", "quar.test", "other.test"];
    let base = std::env::var("STEWARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let pg_url = if pg {
        Some(common::postgres_schema_url(&base).await?)
    } else {
        None
    };
    let ca = TestCa::new();
    let host = DocumentHost::start("127.0.0.2".parse::<IpAddr>().unwrap(), &ca, &names).await;
    let ns = TestNameserver::start("127.0.0.1".parse::<IpAddr>().unwrap()).await;
    for n in names {
        ns.set(n, vec!["127.0.0.2".parse().unwrap()]);
    }
    let dir = Arc::new(tempfile::tempdir().unwrap());
    std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).unwrap();
    let mut s = base_settings(dir.path());
    s.egress.allow_networks = vec!["127.0.0.2/32".parse().unwrap()];
    s.egress.extra_root_certs = vec![dir.path().join("ca.pem")];
    s.egress.dns_servers = vec![ns.addr()];
    for r in &mut s.resources {
        r.scopes
            .insert(FILES.to_owned(), "Read and write files".to_owned());
    }
    s.governance.domains.deny = vec!["denied.test".to_owned()];
    s.governance.domains.quarantine = vec!["quar.test".to_owned()];
    if let Some(url) = &pg_url {
        s.database.url = url.clone();
    }
    tune(&mut s);
    let server = TestServer::start_with(s, dir).await;
    Some(World {
        server,
        host,
        _ns: ns,
        pg: pg_url.map(|u| (base, u)),
    })
}

/// Publishes a metadata document for `host` and returns its client_id.
fn publish(w: &World, host: &str) -> String {
    let id = w.host.url(host, "/client.json");
    let doc = json!({
        "client_id": id,
        "client_name": "Research Agent",
        "client_uri": w.host.url(host, "/"),
        "redirect_uris": [w.host.url(host, "/cb")],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "none",
    });
    w.host.set("/client.json", TestResponse::json(doc.to_string()));
    id
}

fn authorize_for(server: &TestServer, client_id: &str, redirect_uri: &str, scope: &str) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("code_challenge", &s256_challenge(VERIFIER))
        .append_pair("code_challenge_method", "S256")
        .append_pair("scope", scope)
        .append_pair("state", "s1")
        .finish();
    server.url(&format!("/authorize?{q}"))
}

/// Gives `name` the roles, through the room's store port (the CLI's own
/// path is tested in crates/cli).
async fn grant_roles(server: &TestServer, name: &str, roles: &[Role]) {
    let u = server.state.store.get_user_by_name(name).await.unwrap().unwrap();
    let e = GovernanceEvent::new(
        server.state.clock.now(),
        "system:test",
        GovernanceAction::RolesSet,
    )
    .subject(name);
    assert!(
        steward_governance::port::GovernanceStore::set_roles(server.state.store.as_ref(), &u.id, roles, &e)
            .await
            .unwrap()
    );
}

async fn people(server: &TestServer) {
    for n in ["alice", "bob", "carol", "dave"] {
        add_user(server, n).await;
    }
    grant_roles(server, "bob", &[Role::Approver]).await;
    grant_roles(server, "alice", &[Role::Approver]).await;
}

async fn redeem(server: &TestServer, client_id: &str, code: &str, redirect_uri: &str) -> Value {
    let res = token(
        server,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", client_id),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn refresh(server: &TestServer, client_id: &str, rt: &str) -> reqwest::Response {
    token(
        server,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", client_id),
        ],
    )
    .await
}

/// The whole story: unknown client asks beyond self-service → pending page,
/// no code → an approver approves with narrowing and assigns owners → the
/// same request yields a code and a token with only the approved scopes →
/// suspension fails refresh and makes introspection inactive at once →
/// resume restores it with the same refresh token.
async fn approval_story(pg: bool) {
    let Some(w) = world(pg, |_| {}).await else {
        return;
    };
    let server = &w.server;
    people(server).await;
    let id = publish(&w, "agent.test");
    let redirect = w.host.url("agent.test", "/cb");
    let asked = format!("mcp:tools mcp:admin {FILES}");
    let url = authorize_for(server, &id, &redirect, &asked);

    let mut carol = Browser::new(server);
    let html = carol.get(&url).await.text().await.unwrap();
    let res = carol.login(&html, "carol").await;
    assert_eq!(res.status(), 403, "the access-request page");
    assert!(res.headers().get("location").is_none(), "no code, no redirect");
    let page = res.text().await.unwrap();
    dump_page("access_request", &page);
    assert!(page.contains("Approval needed"), "{page}");
    assert!(page.contains("agent.test"), "names the client's host");
    assert!(
        page.contains("Signed in as <strong>carol</strong>") && page.contains("value=\"switch\""),
        "says who is asking, with a way to switch account: {page}"
    );
    assert!(
        page.contains("(mcp:admin)") && page.contains("(mcp:files)"),
        "{page}"
    );
    assert!(
        !page.contains("(mcp:tools)"),
        "a self-service scope needs no approval"
    );

    let (csrf, request) = (hidden_value(&page, "csrf"), hidden_value(&page, "request"));
    let res = carol
        .post(
            "/authorize/request",
            &[
                ("csrf", &csrf),
                ("request", &request),
                ("justification", "quarterly research"),
            ],
        )
        .await;
    assert_eq!(res.status(), 202);
    let sent = res.text().await.unwrap();
    dump_page("request_sent", &sent);
    assert!(sent.contains("Request sent"));

    let gov = &server.state.governance;
    let pending = server
        .state
        .store
        .list_access_requests(&steward_governance::model::RequestFilter {
            state: Some(steward_governance::model::RequestState::Pending),
            client_id: Some(id.clone()),
        })
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    let req = &pending[0];
    assert_eq!(req.requested_by_name, "carol");
    assert_eq!(req.justification, "quarterly research");
    assert_eq!(req.scopes, vec!["mcp:admin".to_owned(), FILES.to_owned()]);
    assert!(req.metadata_digest.is_some(), "bound to the document's digest");

    // Separation of duties: the requester may not approve (carol has no
    // role anyway); an owner may not approve a request for their client.
    let narrowing = ApproveOptions {
        scopes: Some(vec!["mcp:admin".to_owned()]),
        owners: vec![
            ("alice".to_owned(), OwnerKind::Business),
            ("dave".to_owned(), OwnerKind::Technical),
        ],
        ..ApproveOptions::default()
    };
    assert!(gov.approve(&req.id, "carol", "mine", &narrowing).await.is_err());
    gov.approve(&req.id, "bob", "research needs admin only", &narrowing)
        .await
        .unwrap();
    let again = gov
        .approve(&req.id, "alice", "twice", &ApproveOptions::default())
        .await;
    assert!(
        matches!(again, Err(GovernanceError::RequestDecided { .. })),
        "{again:?}"
    );

    // The same request now reaches consent, then a code.
    let res = carol.get(&url).await;
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    assert!(page.contains("name=\"decision\""), "consent: {page}");
    assert!(
        !page.contains("(mcp:files)"),
        "a narrowed-away scope is dropped: {page}"
    );
    let res = carol.decide(&page, "approve").await;
    assert_eq!(res.status(), 302);
    let (_, p) = location_params(&res);
    let tokens = redeem(server, &id, &p["code"], &redirect).await;
    assert_eq!(tokens["scope"], "mcp:admin mcp:tools");
    let at = tokens["access_token"].as_str().unwrap().to_owned();
    let rt = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(introspect(server, &at).await["active"], true);

    // Suspension takes effect on the very next request.
    gov.suspend(&id, "bob", "incident 42").await.unwrap();
    let res = refresh(server, &id, &rt).await;
    assert_eq!(res.status(), 401, "{}", res.text().await.unwrap());
    assert_eq!(introspect(server, &at).await["active"], false);
    let res = carol.get(&url).await;
    assert_eq!(res.status(), 403, "no new authorization while suspended");

    // Resume: the same refresh token works (a refused refresh consumed nothing).
    gov.resume(&id, "bob", "resolved").await.unwrap();
    assert_eq!(introspect(server, &at).await["active"], true);
    let res = refresh(server, &id, &rt).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["scope"], "mcp:admin mcp:tools");

    // Revocation is final, and revokes the refresh families.
    let rt2 = body["refresh_token"].as_str().unwrap().to_owned();
    gov.revoke(&id, "bob", "retired").await.unwrap();
    assert!(gov.resume(&id, "bob", "undo").await.is_err(), "revoked is final");
    assert_eq!(refresh(server, &id, &rt2).await.status(), 401);
    w.stop().await;
}

#[tokio::test]
async fn unknown_client_beyond_self_service_waits_for_an_approver_then_gets_only_what_was_approved() {
    approval_story(false).await;
}

#[tokio::test]
async fn unknown_client_beyond_self_service_waits_for_an_approver_on_postgres() {
    approval_story(true).await;
}

#[tokio::test]
async fn a_self_service_scope_needs_no_approval() {
    let w = world(false, |_| {}).await.unwrap();
    add_user(&w.server, "carol").await;
    let id = publish(&w, "agent.test");
    let redirect = w.host.url("agent.test", "/cb");
    let mut carol = Browser::new(&w.server);
    let html = carol
        .sign_in_to_consent(&authorize_for(&w.server, &id, &redirect, "mcp:tools"), "carol")
        .await;
    let res = carol.decide(&html, "approve").await;
    assert_eq!(res.status(), 302);
    w.stop().await;
}

#[tokio::test]
async fn self_approval_is_refused_unless_allowed() {
    let w = world(false, |_| {}).await.unwrap();
    people(&w.server).await;
    let id = publish(&w, "agent.test");
    // The document is fetched (the client exists) by a first request.
    let _ = client()
        .get(authorize_for(
            &w.server,
            &id,
            &w.host.url("agent.test", "/cb"),
            "mcp:tools",
        ))
        .send()
        .await
        .unwrap();
    let gov = &w.server.state.governance;
    let alice = steward_governance::UserContext {
        id: w
            .server
            .state
            .store
            .get_user_by_name("alice")
            .await
            .unwrap()
            .unwrap()
            .id,
        username: "alice".into(),
    };
    let r = gov
        .open_request(&id, RESOURCE, &["mcp:admin".to_owned()], &alice, "mine", None)
        .await
        .unwrap();
    let opts = ApproveOptions {
        owners: vec![
            ("carol".to_owned(), OwnerKind::Business),
            ("dave".to_owned(), OwnerKind::Technical),
        ],
        ..ApproveOptions::default()
    };
    let err = gov.approve(&r.id, "alice", "self", &opts).await.unwrap_err();
    assert!(err.to_string().contains("alice"), "{err}");
    // Nothing changed: the request is still pending and bob may decide it.
    gov.approve(&r.id, "bob", "ok", &opts).await.unwrap();
    w.stop().await;
}

#[tokio::test]
async fn a_denied_domain_is_refused_before_any_fetch() {
    let w = world(false, |_| {}).await.unwrap();
    let id = publish(&w, "denied.test");
    let res = client()
        .get(authorize_for(
            &w.server,
            &id,
            &w.host.url("denied.test", "/cb"),
            "mcp:tools",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("location").is_none());
    assert!(res.text().await.unwrap().contains("not allowed"));
    assert_eq!(w.host.hits("/client.json"), 0, "no lookup, no fetch");
    w.stop().await;
}

#[tokio::test]
async fn a_quarantined_domain_starts_pending_and_gets_nothing_unapproved() {
    let w = world(false, |_| {}).await.unwrap();
    add_user(&w.server, "carol").await;
    let id = publish(&w, "quar.test");
    let url = authorize_for(&w.server, &id, &w.host.url("quar.test", "/cb"), "mcp:tools");
    let mut carol = Browser::new(&w.server);
    let html = carol.get(&url).await.text().await.unwrap();
    let res = carol.login(&html, "carol").await;
    assert_eq!(
        res.status(),
        403,
        "even a self-service scope waits for an approver"
    );
    assert!(res.text().await.unwrap().contains("Approval needed"));
    let record = w.server.state.store.get_client(&id).await.unwrap().unwrap();
    assert_eq!(record.state, steward_core::LifecycleState::Pending);
    w.stop().await;
}

async fn client_credentials(server: &TestServer) -> reqwest::Response {
    token(
        server,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "bench"),
            ("client_secret", BENCH_SECRET),
            ("scope", "mcp:tools"),
        ],
    )
    .await
}

/// A world whose operators add one policy file (`ops.cedar`, in the
/// returned directory, which must outlive the test) to the default set.
async fn world_with_policy(text: &str) -> (World, tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ops.cedar");
    std::fs::write(&file, text).unwrap();
    let f = file.clone();
    let w = world(false, move |s| s.governance.policy_files = vec![f])
        .await
        .unwrap();
    (w, dir, file)
}

#[tokio::test]
async fn a_policy_reload_with_a_broken_file_keeps_the_running_set() {
    let (w, _dir, file) = world_with_policy("@id(\"ops.no_tools_for_machines\")\nforbid (principal, action == Action::\"client_credentials\", resource is Scope)\nwhen { resource.name == \"mcp:tools\" };\n").await;
    let res = client_credentials(&w.server).await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_scope");

    std::fs::write(
        &file,
        "permit (principal, action, resource) when { this is not cedar };",
    )
    .unwrap();
    let err = w.server.state.governance.reload("test").await.unwrap_err();
    assert!(err.to_string().contains("ops.cedar"), "names the file: {err}");
    assert_eq!(
        client_credentials(&w.server).await.status(),
        400,
        "the old set still runs"
    );

    std::fs::write(
        &file,
        "@id(\"ops.nothing\")\nforbid (principal, action, resource) when { false };\n",
    )
    .unwrap();
    w.server.state.governance.reload("test").await.unwrap();
    assert_eq!(
        client_credentials(&w.server).await.status(),
        200,
        "the new set runs at once"
    );
    w.stop().await;
}

#[tokio::test]
async fn with_an_allow_list_other_hosts_are_refused_before_any_fetch() {
    let w = world(false, |s| {
        s.governance.domains.allow = vec!["agent.test".to_owned()]
    })
    .await
    .unwrap();
    add_user(&w.server, "carol").await;
    let other = publish(&w, "other.test");
    let res = client()
        .get(authorize_for(
            &w.server,
            &other,
            &w.host.url("other.test", "/cb"),
            "mcp:tools",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("location").is_none());
    assert_eq!(w.host.hits("/client.json"), 0, "no lookup, no fetch");
    // The listed host is served as usual.
    let id = publish(&w, "agent.test");
    let mut carol = Browser::new(&w.server);
    let html = carol
        .sign_in_to_consent(
            &authorize_for(&w.server, &id, &w.host.url("agent.test", "/cb"), "mcp:tools"),
            "carol",
        )
        .await;
    assert_eq!(carol.decide(&html, "approve").await.status(), 302);
    w.stop().await;
}

/// The token endpoint keeps each client's governance view between requests
/// and reuses it only while the client's revision is unchanged: a change
/// made elsewhere (here the room's own service, as the CLI or another node
/// would) decides the very next request, in both directions.
#[tokio::test]
async fn a_governance_change_decides_the_next_token_request() {
    let (w, _dir, _) = world_with_policy("@id(\"ops.accountable_machines\")\nforbid (principal, action == Action::\"client_credentials\", resource is Scope)\nunless { principal.organization == \"Acme\" };\n").await;
    people(&w.server).await;
    let gov = &w.server.state.governance;
    for _ in 0..2 {
        assert_eq!(
            client_credentials(&w.server).await.status(),
            400,
            "no organization yet"
        );
    }
    gov.set_accountability("bench", Some("Acme"), None, "bob")
        .await
        .unwrap();
    assert_eq!(
        client_credentials(&w.server).await.status(),
        200,
        "the organization just set counts at once"
    );
    assert_eq!(client_credentials(&w.server).await.status(), 200);
    gov.set_accountability("bench", Some("Other Inc"), None, "bob")
        .await
        .unwrap();
    assert_eq!(
        client_credentials(&w.server).await.status(),
        400,
        "and so does its change: no stale view answers"
    );
    w.stop().await;
}

/// The policy sees the requester's address at the token endpoint
/// (`context.address`, docs/policy.md): a policy refusing machine tokens to
/// loopback callers refuses this test's loopback request, and one for
/// another range lets it through. Without the address in the context the
/// first policy could never match.
#[tokio::test]
async fn the_policy_sees_the_client_address_at_the_token_endpoint() {
    for (range, refused) in [("127.0.0.0/8", true), ("192.0.2.0/24", false)] {
        let (w, _dir, _) = world_with_policy(&format!(
                "@id(\"ops.no_tokens_from_range\")\nforbid (principal, action == Action::\"client_credentials\", resource is Scope)\n\
                 when {{ context has address && context.address.isInRange(ip(\"{range}\")) }};\n"
            )).await;
        let res = client_credentials(&w.server).await;
        assert_eq!(res.status() == 400, refused, "{range}: {}", res.status());
    }
}
