//! Dynamic Client Registration, hardened (issue 14): RFC 7591 `POST
//! /register` in open and protected modes, RFC 7592 management, the
//! anti-sprawl rules and every refusal in RFC 7591's terms, with nothing
//! stored. Each test runs a real server on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::flows::{self, VERIFIER};
use common::{TestServer, client};
use serde_json::{Value, json};
use std::sync::Arc;
use steward_core::secret::token_hash;
use steward_core::{Clock, LifecycleState, TrustTier};
use steward_server::settings::Settings;
use steward_store::{ClientFilter, InitialToken, NewAuditEvent};

const CB: &str = "http://127.0.0.1/cb";

async fn start(tune: impl FnOnce(&mut Settings)) -> TestServer {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut s = flows::base_settings(dir.path());
    s.dev.auto_approve_user = Some("alice".to_owned());
    tune(&mut s);
    TestServer::start_with(s, dir).await
}

fn public_client() -> Value {
    json!({
        "client_name": "Example Agent",
        "redirect_uris": [CB],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    })
}

async fn post(server: &TestServer, body: &Value, bearer: Option<&str>) -> reqwest::Response {
    let mut req = client()
        .post(server.url("/register"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

async fn client_count(server: &TestServer) -> usize {
    server
        .state
        .store
        .list_clients(&ClientFilter::default())
        .await
        .unwrap()
        .len()
}

/// Creates an initial access token the way `steward dcr tokens create` does.
async fn initial_token(server: &TestServer, max_uses: Option<u32>, expires_in: Option<i64>) -> String {
    let token = steward_dcr::registered::new_initial_token();
    let now = server.clock.now();
    let id = steward_dcr::registered::initial_token_id(&token_hash(token.expose()));
    server
        .state
        .store
        .create_initial_token(
            &InitialToken {
                id: id.clone(),
                token_hash: token_hash(token.expose()),
                tier: TrustTier::Verified,
                max_uses,
                uses: 0,
                expires_at: expires_in.map(|s| now.plus_secs(s)),
                created_at: now,
                created_by: "test".into(),
                revoked_at: None,
            },
            &NewAuditEvent {
                at: now,
                actor: "test".into(),
                action: "dcr.initial_token_created".into(),
                client_id: None,
                subject: Some(id),
                detail: "{}".into(),
            },
        )
        .await
        .unwrap();
    token.expose().to_owned()
}

async fn error_of(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap();
    (status, body["error"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn an_open_registration_then_a_full_flow() {
    let server = start(|_| {}).await;
    let meta: Value = client()
        .get(server.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["registration_endpoint"], server.url("/register"));

    let res = post(&server, &public_client(), None).await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let reg: Value = res.json().await.unwrap();
    let id = reg["client_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("dcr_") && !id.starts_with("https://"), "{id}");
    assert!(
        reg.get("client_secret").is_none(),
        "a public client gets no secret"
    );
    assert_eq!(reg["token_endpoint_auth_method"], "none");
    // No scope asked: the self-service set, never everything.
    assert_eq!(reg["scope"], "mcp:tools");
    assert!(
        reg["registration_access_token"]
            .as_str()
            .unwrap()
            .starts_with("stw_rat_")
    );
    assert_eq!(
        reg["registration_client_uri"],
        server.url(&format!("/register/{id}"))
    );
    assert_eq!(reg["redirect_uris"], json!([CB]));

    let code = flows::code_for(&server, &id, CB).await;
    let res = flows::token(
        &server,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
            ("client_id", &id),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    let tokens: Value = res.json().await.unwrap();
    assert_eq!(tokens["scope"], "mcp:tools");
    let stored = server.state.store.dcr_registration(&id).await.unwrap().unwrap();
    assert_eq!(stored.last_authorized_at, Some(server.clock.now()));
    assert_eq!(stored.last_token_at, Some(server.clock.now()));
    assert_eq!(stored.source_address.as_deref(), Some("127.0.0.1"));
    let record = server.state.store.get_client(&id).await.unwrap().unwrap();
    assert_eq!(record.kind, steward_core::ClientKind::Dynamic);
    assert_eq!(record.trust_tier, TrustTier::Unverified);
}

#[tokio::test]
async fn with_dcr_off_there_is_no_endpoint_and_none_is_advertised() {
    let server = start(|s| s.dcr.mode = steward_dcr::Mode::Off).await;
    let meta: Value = client()
        .get(server.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(meta.get("registration_endpoint").is_none());
    assert_eq!(post(&server, &public_client(), None).await.status(), 404);
}

#[tokio::test]
async fn open_registration_refuses_confidential_clients_and_client_credentials() {
    let server = start(|_| {}).await;
    let before = client_count(&server).await;
    for body in [
        json!({"redirect_uris": [CB], "token_endpoint_auth_method": "client_secret_basic"}),
        json!({"redirect_uris": [CB], "token_endpoint_auth_method": "client_secret_post"}),
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}),
        json!({"grant_types": ["client_credentials"]}),
    ] {
        let (status, error) = error_of(post(&server, &body, None).await).await;
        assert_eq!(
            (status, error.as_str()),
            (400, "invalid_client_metadata"),
            "{body}"
        );
    }
    assert_eq!(client_count(&server).await, before);
}

#[tokio::test]
async fn protected_registration_needs_an_initial_access_token_used_up_exactly() {
    let server = start(|s| s.dcr.mode = steward_dcr::Mode::Protected).await;
    let before = client_count(&server).await;
    let res = post(&server, &public_client(), None).await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    let (status, error) = error_of(post(&server, &public_client(), Some("stw_iat_nope")).await).await;
    assert_eq!((status, error.as_str()), (401, "invalid_token"));

    // A confidential client_credentials client, backed by a one-use token.
    let iat = initial_token(&server, Some(1), None).await;
    let body = json!({"grant_types": ["client_credentials"], "client_name": "Batch job"});
    let res = post(&server, &body, Some(&iat)).await;
    assert_eq!(res.status(), 201);
    let reg: Value = res.json().await.unwrap();
    assert_eq!(reg["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(reg["client_secret_expires_at"], 0);
    let id = reg["client_id"].as_str().unwrap().to_owned();
    let secret = reg["client_secret"].as_str().unwrap().to_owned();
    // Stored as a keyed hash, never as the secret.
    let record = server.state.store.get_client(&id).await.unwrap().unwrap();
    assert_ne!(record.secret_hash.as_deref(), Some(secret.as_str()));
    assert!(!record.registration.contains(&secret));
    assert_eq!(record.trust_tier, TrustTier::Verified, "the token's tier");
    let res = client()
        .post(server.url("/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "mcp:tools")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());

    // Replayed (its one use is spent) and expired tokens store nothing.
    let after_one = client_count(&server).await;
    assert_eq!(after_one, before + 1);
    let (status, _) = error_of(post(&server, &public_client(), Some(&iat)).await).await;
    assert_eq!(status, 401);
    let short = initial_token(&server, None, Some(60)).await;
    server.clock.advance(61);
    let (status, _) = error_of(post(&server, &public_client(), Some(&short)).await).await;
    assert_eq!(status, 401);
    assert_eq!(client_count(&server).await, after_one);
}

#[tokio::test]
async fn bad_input_gets_an_rfc_7591_error_and_stores_nothing() {
    let server = start(|_| {}).await;
    let before = client_count(&server).await;
    let audit_before = server
        .state
        .store
        .list_audit(&Default::default())
        .await
        .unwrap()
        .len();
    let send = |body: String, content_type: &'static str| {
        let url = server.url("/register");
        async move {
            client()
                .post(url)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let big = format!(r#"{{"client_name":"x","padding":"{}"}}"#, "a".repeat(70 * 1024));
    assert_eq!(send(big, "application/json").await.status(), 413);
    let cases: Vec<(String, &str, &str)> = vec![
        (public_client().to_string(), "application/x-www-form-urlencoded", "invalid_client_metadata"),
        ("{not json".into(), "application/json", "invalid_client_metadata"),
        (
            format!(r#"{{"redirect_uris":["{CB}"],"redirect_uris":["https://evil.example/cb"]}}"#),
            "application/json",
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris":[CB],"token_endpoint_auth_method":"tls_client_auth"}).to_string(),
            "application/json",
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris":["http://evil.example/cb"]}).to_string(),
            "application/json",
            "invalid_redirect_uri",
        ),
        (json!({"client_name":"no redirect"}).to_string(), "application/json", "invalid_redirect_uri"),
        (
            json!({"redirect_uris":[CB],"token_endpoint_auth_method":"private_key_jwt",
                   "jwks":{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                   "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}]}})
            .to_string(),
            "application/json",
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris":[CB],"token_endpoint_auth_method":"private_key_jwt",
                   "jwks_uri":"https://169.254.169.254/keys"})
            .to_string(),
            "application/json",
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris":[CB],"software_statement":"eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0."}).to_string(),
            "application/json",
            "invalid_software_statement",
        ),
        (
            json!({"redirect_uris":[CB],"software_statement":"eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.eA"}).to_string(),
            "application/json",
            "unapproved_software_statement",
        ),
        (
            json!({"redirect_uris":[CB],"scope":"nonsense"}).to_string(),
            "application/json",
            "invalid_client_metadata",
        ),
    ];
    for (body, ct, want) in cases {
        let (status, error) = error_of(send(body.clone(), ct).await).await;
        assert_eq!((status, error.as_str()), (400, want), "{body}");
    }
    assert_eq!(client_count(&server).await, before);
    let audit_after = server
        .state
        .store
        .list_audit(&Default::default())
        .await
        .unwrap()
        .len();
    assert_eq!(audit_after, audit_before, "a refused registration writes nothing");
}

#[tokio::test]
async fn requested_scopes_are_kept_when_approvable_and_dropped_when_unknown() {
    let server = start(|_| {}).await;
    let mut body = public_client();
    body["scope"] = json!("mcp:admin mcp:tools nonsense");
    let reg: Value = post(&server, &body, None).await.json().await.unwrap();
    assert_eq!(reg["scope"], "mcp:tools mcp:admin");
    // The ceiling is not a grant: without an approval, authorize gives only
    // the self-service scope.
    let id = reg["client_id"].as_str().unwrap();
    let res = client()
        .get(flows::authorize_url(&server, id, CB, "&scope=mcp%3Aadmin"))
        .send()
        .await
        .unwrap();
    assert_ne!(res.status(), 302, "no code for an unapproved scope");
}

#[tokio::test]
async fn registrations_are_rate_limited_per_address_with_retry_after() {
    let server = start(|s| s.dcr.rate_limit.per_address_per_minute = 3).await;
    for i in 0..3 {
        let mut body = public_client();
        body["client_name"] = json!(format!("agent {i}"));
        assert_eq!(post(&server, &body, None).await.status(), 201);
    }
    let res = post(&server, &public_client(), None).await;
    assert_eq!(res.status(), 429);
    let retry: i64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // The next window opens again.
    server.clock.advance(60);
    assert_eq!(post(&server, &public_client(), None).await.status(), 201);
}

#[tokio::test]
async fn the_global_rate_limit_holds_across_addresses() {
    let server = start(|s| s.dcr.rate_limit.global_per_minute = 2).await;
    for _ in 0..2 {
        let mut body = public_client();
        body["client_name"] = json!(steward_core::secret::random_token().expose().to_owned());
        assert_eq!(post(&server, &body, None).await.status(), 201);
    }
    assert_eq!(post(&server, &public_client(), None).await.status(), 429);
}

#[tokio::test]
async fn a_duplicate_registration_returns_the_existing_client() {
    let server = start(|_| {}).await;
    let mut body = public_client();
    body["software_id"] = json!("4NRB1-0XZABZI9E6-5SM3R");
    let first: Value = post(&server, &body, None).await.json().await.unwrap();
    body["client_name"] = json!("Renamed");
    let second: Value = post(&server, &body, None).await.json().await.unwrap();
    assert_eq!(first["client_id"], second["client_id"]);
    assert_eq!(
        second["client_name"], "Example Agent",
        "the existing registration"
    );
    let id = first["client_id"].as_str().unwrap();
    // The first registration access token was replaced by the second.
    let read = |token: String| {
        let url = server.url(&format!("/register/{id}"));
        async move {
            client()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        read(first["registration_access_token"].as_str().unwrap().into()).await,
        401
    );
    assert_eq!(
        read(second["registration_access_token"].as_str().unwrap().into()).await,
        200
    );
    let dedupes = server
        .state
        .store
        .list_audit(&steward_store::AuditFilter {
            action: Some("client.registration_deduplicated".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(dedupes.len(), 1);
    // Outside the window, a new client.
    server.clock.advance(3601);
    let third: Value = post(&server, &body, None).await.json().await.unwrap();
    assert_ne!(third["client_id"], first["client_id"]);
}

#[tokio::test]
async fn rfc_7592_read_update_and_delete_with_the_registration_access_token() {
    let server = start(|_| {}).await;
    let reg: Value = post(&server, &public_client(), None).await.json().await.unwrap();
    let id = reg["client_id"].as_str().unwrap().to_owned();
    let rat = reg["registration_access_token"].as_str().unwrap().to_owned();
    let uri = reg["registration_client_uri"].as_str().unwrap().to_owned();

    let res = client().get(&uri).bearer_auth(&rat).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let read: Value = res.json().await.unwrap();
    assert_eq!(read["client_id"], id.as_str());
    assert!(read.get("registration_access_token").is_none());
    let res = client()
        .get(&uri)
        .bearer_auth("stw_rat_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = client().get(&uri).send().await.unwrap();
    assert_eq!(res.status(), 401);

    // Update: a new version of the client's history.
    let mut update = public_client();
    update["client_id"] = json!(id);
    update["redirect_uris"] = json!([CB, "http://127.0.0.1/other"]);
    let put = |body: Value| {
        let uri = uri.clone();
        let rat = rat.clone();
        async move {
            client()
                .put(uri)
                .bearer_auth(rat)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap()
        }
    };
    let res = put(update.clone()).await;
    assert_eq!(res.status(), 200);
    let updated: Value = res.json().await.unwrap();
    assert_eq!(updated["redirect_uris"].as_array().unwrap().len(), 2);
    assert_eq!(
        server
            .state
            .store
            .list_metadata_versions(&id)
            .await
            .unwrap()
            .len(),
        2
    );
    let mut with_rat = update.clone();
    with_rat["registration_access_token"] = json!(rat);
    assert_eq!(
        error_of(put(with_rat).await).await,
        (400, "invalid_client_metadata".into())
    );
    let mut other_method = update.clone();
    other_method["token_endpoint_auth_method"] = json!("client_secret_basic");
    assert_eq!(error_of(put(other_method).await).await.0, 400);

    // A token, then deletion: the client is revoked and its tokens with it.
    let code = flows::code_for(&server, &id, CB).await;
    let tokens: Value = flows::token(
        &server,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
            ("client_id", &id),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
    .json()
    .await
    .unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(flows::introspect(&server, access).await["active"], true);
    let res = client().delete(&uri).bearer_auth(&rat).send().await.unwrap();
    assert_eq!(res.status(), 204);
    let record = server.state.store.get_client(&id).await.unwrap().unwrap();
    assert_eq!(record.state, LifecycleState::Revoked);
    assert_eq!(flows::introspect(&server, access).await["active"], false);
    let res = flows::token(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", &id),
        ],
    )
    .await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        client()
            .get(&uri)
            .bearer_auth(&rat)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

#[tokio::test]
async fn the_sweep_deletes_unused_and_expires_idle_registrations_once_per_interval() {
    let server = start(|_| {}).await;
    let unused: Value = post(&server, &public_client(), None).await.json().await.unwrap();
    let mut body = public_client();
    body["client_name"] = json!("Used");
    let used: Value = post(&server, &body, None).await.json().await.unwrap();
    let used_id = used["client_id"].as_str().unwrap().to_owned();
    flows::code_for(&server, &used_id, CB).await;

    server.clock.advance(86_401);
    let state = &server.state;
    let r = steward_server::oauth::registration::sweep(state, 300)
        .await
        .unwrap();
    assert!(r.ran);
    assert_eq!(r.deleted, vec![unused["client_id"].as_str().unwrap().to_owned()]);
    assert!(r.expired.is_empty());
    // Another node in the same interval finds the sweep taken.
    let again = steward_server::oauth::registration::sweep(state, 300)
        .await
        .unwrap();
    assert!(!again.ran);

    server.clock.advance(30 * 86_400);
    let r = steward_server::oauth::registration::sweep(state, 300)
        .await
        .unwrap();
    assert_eq!(r.expired, vec![used_id.clone()]);
    let record = state.store.get_client(&used_id).await.unwrap().unwrap();
    assert_eq!(record.state, LifecycleState::Expired);
}

#[tokio::test]
async fn the_consent_page_warns_when_a_registered_name_is_already_known() {
    let server = start(|s| s.dev.auto_approve_user = None).await;
    flows::add_user(&server, "alice").await;
    // "Public App" is a configured client's name: claimed here by a stranger.
    let mut body = public_client();
    body["client_name"] = json!("Public App");
    let copycat: Value = post(&server, &body, None).await.json().await.unwrap();
    body["client_name"] = json!("Original Tool");
    let original: Value = post(&server, &body, None).await.json().await.unwrap();
    for (reg, warned) in [(&copycat, true), (&original, false)] {
        let id = reg["client_id"].as_str().unwrap();
        let mut browser = flows::Browser::new(&server);
        let html = browser
            .sign_in_to_consent(&flows::authorize_url(&server, id, CB, ""), "alice")
            .await;
        assert!(
            html.contains("the client&#39;s own claim") || html.contains("own claim"),
            "{html}"
        );
        assert_eq!(html.contains("uses the same name"), warned, "{html}");
    }
}

/// The namesake check reads clients by name (indexed), not the inventory:
/// case and surrounding spaces do not hide a namesake, another registration
/// from the same address is no impersonation (from another, it is), and a
/// name shared by more clients than the check reads is warned about rather
/// than looked past (or one address registering many namesakes would push a
/// genuine one out of view).
#[tokio::test]
async fn the_namesake_warning_ignores_case_and_cannot_be_crowded_out() {
    let server = start(|s| {
        s.dev.auto_approve_user = None;
        s.dcr.rate_limit.per_address_per_minute = 1000;
        s.dcr.rate_limit.global_per_minute = 1000;
        // So a registration can come from another address (a header value only).
        s.http.trusted_proxies = vec!["127.0.0.1".to_owned()];
    })
    .await;
    flows::add_user(&server, "alice").await;
    let register = |name: &str, n: usize| {
        let mut body = public_client();
        body["client_name"] = json!(name);
        // Distinct redirect URIs: not deduplicated into one registration.
        body["redirect_uris"] = json!([format!("http://127.0.0.1:{}/cb", 20_000 + n)]);
        body
    };
    let warned = |id: String, cb: String| {
        let server = &server;
        async move {
            let mut browser = flows::Browser::new(server);
            let html = browser
                .sign_in_to_consent(&flows::authorize_url(server, &id, &cb, ""), "alice")
                .await;
            html.contains("uses the same name")
        }
    };
    let id_of = |v: Value| v["client_id"].as_str().unwrap().to_owned();

    let shouting = id_of(
        post(&server, &register("  PUBLIC app ", 0), None)
            .await
            .json()
            .await
            .unwrap(),
    );
    assert!(warned(shouting, "http://127.0.0.1:20000/cb".into()).await);

    let first = id_of(
        post(&server, &register("Twin Tool", 1), None)
            .await
            .json()
            .await
            .unwrap(),
    );
    let second = id_of(
        post(&server, &register("twin tool", 2), None)
            .await
            .json()
            .await
            .unwrap(),
    );
    assert!(!warned(first, "http://127.0.0.1:20001/cb".into()).await);
    assert!(!warned(second, "http://127.0.0.1:20002/cb".into()).await);
    // The same name registered from another address is a namesake.
    let elsewhere = client()
        .post(server.url("/register"))
        .header("content-type", "application/json")
        .header("x-forwarded-for", "203.0.113.7")
        .body(register("Twin Tool", 3).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 201);
    let third = id_of(elsewhere.json().await.unwrap());
    assert!(warned(third, "http://127.0.0.1:20003/cb".into()).await);

    let mut last = String::new();
    for n in 0..50 {
        let reply = post(&server, &register("Crowd", 100 + n), None).await;
        assert_eq!(reply.status(), 201);
        last = id_of(reply.json().await.unwrap());
    }
    assert!(warned(last, "http://127.0.0.1:20149/cb".into()).await);
}

/// Issue 14 §3: the registration rate limit is counted in the database, so
/// two nodes on one PostgreSQL database share it — a per-node count would
/// let each node accept the limit again.
#[tokio::test]
async fn two_nodes_on_one_database_share_the_registration_rate_limit() {
    let base = std::env::var("STEWARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let Some(url) = common::postgres_schema_url(&base).await else {
        return;
    };
    let node = || {
        let url = url.clone();
        start(move |s| {
            s.database.url = url;
            s.issuer = "http://127.0.0.1:9/".to_owned();
            s.dcr.rate_limit.per_address_per_minute = 2;
        })
    };
    let a = node().await;
    let b = node().await;
    let named = |n: &str| {
        let mut body = public_client();
        body["client_name"] = json!(n);
        body
    };
    assert_eq!(post(&a, &named("one"), None).await.status(), 201);
    assert_eq!(post(&b, &named("two"), None).await.status(), 201);
    assert_eq!(post(&a, &named("three"), None).await.status(), 429);
    assert_eq!(post(&b, &named("four"), None).await.status(), 429);
    a.stop().await.unwrap();
    b.stop().await.unwrap();
    common::drop_schema(&base, &url).await;
}

// ---- software statements (RFC 7591 §2.3) ---------------------------------------------

const FEDERATION: &str = "https://federation.example";

fn statement_key() -> steward_jose::SigningKey {
    let kek = steward_jose::Kek::from_bytes([7; 32]);
    let k = steward_jose::generate_signing_key(steward_jose::Algorithm::Es256, &kek).unwrap();
    steward_jose::SigningKey::decrypt(&k.kid, k.algorithm, &k.encrypted_private, &kek).unwrap()
}

fn trusted(keys: steward_dcr::TrustedIssuer) -> impl FnOnce(&mut Settings) {
    move |s| {
        s.dcr.mode = steward_dcr::Mode::Protected;
        s.dcr.trusted_issuers = vec![keys];
    }
}

fn federation(key: &steward_jose::SigningKey) -> steward_dcr::TrustedIssuer {
    steward_dcr::TrustedIssuer {
        issuer: FEDERATION.into(),
        jwks: Some(json!({"keys": [key.public_jwk()]})),
        jwks_uri: None,
        tier: TrustTier::Verified,
        scopes: vec!["mcp:tools".into()],
    }
}

fn statement(key: &steward_jose::SigningKey, extra: Value) -> String {
    let mut claims = json!({
        "iss": FEDERATION,
        "software_id": "acme-agent",
        "client_name": "Acme Agent (signed)",
        "redirect_uris": [CB],
        "token_endpoint_auth_method": "none",
    });
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    key.sign("JWT", &claims).unwrap()
}

#[tokio::test]
async fn a_statement_from_a_trusted_issuer_backs_a_registration_and_its_claims_win() {
    let key = statement_key();
    let server = start(trusted(federation(&key))).await;
    let body = json!({
        "client_name": "Body Name",
        "redirect_uris": ["http://127.0.0.1/elsewhere"],
        "scope": "mcp:tools mcp:admin",
        "software_statement": statement(&key, json!({"aud": server.state.issuer.to_string()})),
    });
    // Protected mode, no initial access token: the statement is the backing.
    let res = post(&server, &body, None).await;
    assert_eq!(res.status(), 201);
    let reg: Value = res.json().await.unwrap();
    assert_eq!(reg["client_name"], "Acme Agent (signed)", "the statement wins");
    assert_eq!(reg["redirect_uris"], json!([CB]));
    assert_eq!(reg["software_id"], "acme-agent");
    assert!(
        reg["software_statement"].is_string(),
        "returned as RFC 7591 §3.2.1 asks"
    );
    assert_eq!(
        reg["scope"], "mcp:tools",
        "mcp:admin is beyond the issuer's ceiling"
    );
    let id = reg["client_id"].as_str().unwrap();
    let stored = server.state.store.dcr_registration(id).await.unwrap().unwrap();
    assert_eq!(stored.statement_issuer.as_deref(), Some(FEDERATION));
    assert_eq!(stored.software_id.as_deref(), Some("acme-agent"));
    let record = server.state.store.get_client(id).await.unwrap().unwrap();
    assert_eq!(record.trust_tier, TrustTier::Verified, "the issuer's tier");

    // RFC 7592 update: signed claims change only with a statement from the
    // same issuer; an unsigned PUT cannot rewrite the redirect URIs.
    let rat = reg["registration_access_token"].as_str().unwrap();
    let put = |b: Value| {
        client()
            .put(reg["registration_client_uri"].as_str().unwrap())
            .bearer_auth(rat)
            .header("content-type", "application/json")
            .body(b.to_string())
            .send()
    };
    let unsigned = json!({"client_id": id, "redirect_uris": ["https://evil.example/cb"],
                          "token_endpoint_auth_method": "none"});
    let (status, error) = error_of(put(unsigned).await.unwrap()).await;
    assert_eq!((status, error.as_str()), (400, "invalid_software_statement"));
    let signed = json!({"client_id": id, "token_endpoint_auth_method": "none",
                        "software_statement": statement(&key, json!({"client_name": "Acme Agent v2"}))});
    let res = put(signed).await.unwrap();
    assert_eq!(res.status(), 200);
    let updated: Value = res.json().await.unwrap();
    assert_eq!(updated["client_name"], "Acme Agent v2");
    assert_eq!(updated["redirect_uris"], json!([CB]));
}

#[tokio::test]
async fn bad_statements_get_rfc_7591_errors_and_store_nothing() {
    let key = statement_key();
    let server = start(trusted(federation(&key))).await;
    let before = client_count(&server).await;
    let now = server.clock.now().seconds();
    let stranger = statement_key();
    let forged = {
        let mut c = json!({"iss": "https://stranger.example", "redirect_uris": [CB]});
        c["software_id"] = json!("x");
        stranger.sign("JWT", &c).unwrap()
    };
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let none = format!(
        "{}.{}.eA",
        b64(&json!({"alg": "none"})),
        b64(&json!({"iss": FEDERATION, "redirect_uris": [CB]}))
    );
    let cases = [
        (forged, "unapproved_software_statement"),
        (none, "invalid_software_statement"),
        // Signed by a key the issuer does not hold.
        (statement(&stranger, json!({})), "invalid_software_statement"),
        (
            statement(&key, json!({"exp": now - 3600})),
            "invalid_software_statement",
        ),
        (
            statement(&key, json!({"aud": "https://another-as.example"})),
            "invalid_software_statement",
        ),
        // Its claims obey the same rules as a body's.
        (
            statement(&key, json!({"redirect_uris": ["http://evil.example/cb"]})),
            "invalid_redirect_uri",
        ),
    ];
    for (s, want) in cases {
        let body = json!({"redirect_uris": [CB], "software_statement": s});
        let (status, error) = error_of(post(&server, &body, None).await).await;
        assert_eq!((status, error.as_str()), (400, want), "{s}");
    }
    assert_eq!(client_count(&server).await, before, "nothing stored");
}

#[tokio::test]
async fn an_issuer_key_set_is_fetched_from_its_jwks_uri_through_the_guarded_fetcher() {
    let key = statement_key();
    let w = flows::doc_world(|s, host| {
        let mut issuer = federation(&key);
        issuer.jwks = None;
        issuer.jwks_uri = Some(host.url("cimd.test", "/federation/jwks.json"));
        s.dcr.trusted_issuers = vec![issuer];
    })
    .await;
    w.host.set(
        "/federation/jwks.json",
        steward_testkit::TestResponse::json(json!({"keys": [key.public_jwk()]}).to_string())
            .with_header("cache-control", "max-age=3600"),
    );
    for n in 0..2 {
        let body = json!({"software_statement": statement(&key, json!({"software_id": format!("sw-{n}")}))});
        let res = post(&w.server, &body, None).await;
        assert_eq!(res.status(), 201);
        let reg: Value = res.json().await.unwrap();
        assert_eq!(reg["software_id"], format!("sw-{n}"), "the verified claims");
    }
    assert_eq!(
        w.host.hits("/federation/jwks.json"),
        1,
        "held, not refetched per registration"
    );
}

#[tokio::test]
async fn a_registered_logo_and_name_are_shown_as_claims_and_a_configured_name_is_not() {
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
    let w = flows::doc_world(|s, _| s.dev.auto_approve_user = None).await;
    flows::add_user(&w.server, "alice").await;
    let logo_uri = w.host.url("cimd.test", "/agent-logo.png");
    w.host.set(
        "/agent-logo.png",
        steward_testkit::TestResponse::new(200)
            .with_header("content-type", "image/png")
            .with_body(PNG.to_vec()),
    );
    let mut body = public_client();
    body["logo_uri"] = json!(logo_uri);
    let reg: Value = post(&w.server, &body, None).await.json().await.unwrap();
    let id = reg["client_id"].as_str().unwrap();
    let mut browser = flows::Browser::new(&w.server);
    let html = browser
        .sign_in_to_consent(&flows::authorize_url(&w.server, id, CB, ""), "alice")
        .await;
    flows::dump_page("consent-dcr-logo", &html);
    assert!(
        html.contains("An application that registered itself with this server wants to access"),
        "{html}"
    );
    assert!(
        html.contains("the client&#39;s own claim") || html.contains("own claim"),
        "{html}"
    );
    assert!(!html.contains(&logo_uri), "never hot-linked");
    let start = html.find("<img src=\"").expect("the registered logo is shown") + "<img src=\"".len();
    let src = &html[start..start + html[start..].find('"').unwrap()];
    assert!(src.starts_with(&format!("{}/logo/", w.server.base)), "{src}");

    // An operator-configured client's name is the operator's, not a claim.
    let mut browser = flows::Browser::new(&w.server);
    let html = browser
        .sign_in_to_consent(&flows::authorize_url(&w.server, "public-app", CB, ""), "alice")
        .await;
    flows::dump_page("consent-preregistered", &html);
    assert!(
        html.contains("<strong>Public App</strong>, registered on this server, wants to access"),
        "{html}"
    );
    assert!(!html.contains("own claim"), "{html}");
}

#[tokio::test]
async fn an_issuer_jwks_uri_at_a_forbidden_address_is_never_fetched() {
    let key = statement_key();
    let mut issuer = federation(&key);
    issuer.jwks = None;
    // Link-local metadata service: refused by the guarded fetcher's address
    // table before any connection is attempted.
    issuer.jwks_uri = Some("https://169.254.169.254/jwks.json".into());
    let server = start(trusted(issuer)).await;
    let before = client_count(&server).await;
    let body = json!({"software_statement": statement(&key, json!({}))});
    let res = post(&server, &body, None).await;
    assert_eq!(res.status(), 400);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"], "invalid_software_statement");
    assert!(
        err["error_description"]
            .as_str()
            .unwrap()
            .contains("could not be fetched"),
        "{err}"
    );
    assert_eq!(client_count(&server).await, before, "nothing stored");
}

/// The pages are templates that escape every value: a registered name made
/// of markup is shown as text on the login and consent pages, never run.
#[tokio::test]
async fn a_registered_name_made_of_markup_is_shown_as_text() {
    let server = start(|s| s.dev.auto_approve_user = None).await;
    flows::add_user(&server, "alice").await;
    let mut body = public_client();
    body["client_name"] = json!("<script>alert(\"x\")</script><img src=x onerror=alert(1)>");
    let reg: Value = post(&server, &body, None).await.json().await.unwrap();
    let id = reg["client_id"].as_str().unwrap();
    let mut browser = flows::Browser::new(&server);
    let login = browser
        .get(&flows::authorize_url(&server, id, CB, ""))
        .await
        .text()
        .await
        .unwrap();
    let res = browser.login(&login, "alice").await;
    let consent = res.text().await.unwrap();
    for html in [&login, &consent] {
        assert!(
            !html.contains("<script>") && !html.contains("<img src=x"),
            "{html}"
        );
        assert!(html.contains("&#60;script&#62;alert(&#34;x&#34;)"), "{html}");
    }
}
