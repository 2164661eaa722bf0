//! Issue 11, items 5–9, one test per rule, attacking a running server:
//! code redemption that a leaked code cannot sabotage and replays that
//! revoke exactly what their code produced; client assertions (sole
//! audience, replay window through the leeway); `jwks_uri` key sets held
//! off the request path; and `cimd.max_cache_seconds` bounding what the
//! token endpoint trusts of a metadata document. Rules that touch storage
//! run on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::flows::*;
use common::{TestServer, client, postgres_schema_url};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use steward_server::settings::{ClientSettings, Settings};
use steward_testkit::{DocumentHost, TestResponse};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

// ---- harness -------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Db {
    Sqlite,
    Postgres,
}

impl Db {
    /// The database URL to use, `Some(None)` for the default SQLite file,
    /// `None` when PostgreSQL is unreachable (the test is skipped; with
    /// `CI=true` it fails instead).
    async fn url(self) -> Option<Option<String>> {
        match self {
            Db::Sqlite => Some(None),
            Db::Postgres => {
                let base = std::env::var("STEWARD_TEST_POSTGRES_URL")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
                postgres_schema_url(&base).await.map(Some)
            }
        }
    }
}

/// Runs each named check once per backend, as `sqlite::name` and `postgres::name`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::$name(crate::Db::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::$name(crate::Db::Postgres).await;
                }
            )*
        }
    };
}

on_both_backends!(
    a_redemption_failing_pkce_or_client_binding_leaves_the_code_usable,
    a_code_replay_revokes_only_what_that_code_produced,
    assertion_replayed_within_the_exp_leeway_is_refused,
    token_refuses_a_client_whose_document_is_gone_within_max_cache_seconds,
);

fn use_database(s: &mut Settings, url: Option<String>) {
    if let Some(url) = url {
        s.database.url = url;
    }
}

/// The flow fixture (auto-approving alice) on `url`, plus a public client
/// that gets no refresh tokens.
async fn code_server(url: Option<String>) -> TestServer {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut s = base_settings(dir.path());
    s.dev.auto_approve_user = Some("alice".to_owned());
    s.clients.push(ClientSettings {
        client_id: "code-only-app".to_owned(),
        name: Some("Code Only".to_owned()),
        secret_env: None,
        secret_hash: None,
        grant_types: vec!["authorization_code".to_owned()],
        scopes: vec![],
        redirect_uris: vec!["https://app.example/cb".to_owned()],
        ..Default::default()
    });
    use_database(&mut s, url);
    TestServer::start_with(s, dir).await
}

async fn redeem_with(server: &TestServer, code: &str, client_id: &str, verifier: &str) -> (u16, Value) {
    let res = token(
        server,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", client_id),
            ("code_verifier", verifier),
        ],
    )
    .await;
    (res.status().as_u16(), res.json().await.unwrap())
}

const WRONG_VERIFIER: &str = "a-wrong-verifier-that-is-also-long-enough-0123456789";

// ---- item 9: codes ------------------------------------------------------------

/// A holder of a leaked code with the wrong verifier, or another client,
/// must not burn the code: the rightful redemption still succeeds.
async fn a_redemption_failing_pkce_or_client_binding_leaves_the_code_usable(db: Db) {
    let Some(url) = db.url().await else { return };
    let server = code_server(url).await;
    let code = code_for(&server, "public-app", "https://app.example/cb").await;
    let (status, body) = redeem_with(&server, &code, "public-app", WRONG_VERIFIER).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    let (status, body) = redeem_with(&server, &code, "loopback-app", VERIFIER).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    let (status, body) = redeem_with(&server, &code, "public-app", VERIFIER).await;
    assert_eq!(status, 200, "the rightful redemption is not a replay: {body}");
    assert!(body["access_token"].is_string());
}

/// A replay revokes what its code produced and nothing of earlier codes of
/// the same grant — with a refresh family and without one.
async fn a_code_replay_revokes_only_what_that_code_produced(db: Db) {
    let Some(url) = db.url().await else { return };
    let server = code_server(url).await;

    // Without refresh tokens: the access token is the code's only product.
    let first = code_for(&server, "code-only-app", "https://app.example/cb").await;
    let (_, first) = redeem_with(&server, &first, "code-only-app", VERIFIER).await;
    let at_1 = first["access_token"].as_str().unwrap().to_owned();
    let second = code_for(&server, "code-only-app", "https://app.example/cb").await;
    let (_, issued) = redeem_with(&server, &second, "code-only-app", VERIFIER).await;
    let at_2 = issued["access_token"].as_str().unwrap().to_owned();
    let (status, body) = redeem_with(&server, &second, "code-only-app", VERIFIER).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(
        introspect(&server, &at_2).await["active"],
        false,
        "the replayed code's token"
    );
    assert_eq!(
        introspect(&server, &at_1).await["active"],
        true,
        "an earlier code's token"
    );

    // With a refresh family, after a leaked-code attempt with a wrong verifier.
    let first = code_for(&server, "public-app", "https://app.example/cb").await;
    let (_, first) = redeem_with(&server, &first, "public-app", VERIFIER).await;
    let at_1 = first["access_token"].as_str().unwrap().to_owned();
    let leaked = code_for(&server, "public-app", "https://app.example/cb").await;
    redeem_with(&server, &leaked, "public-app", WRONG_VERIFIER).await;
    let (status, rightful) = redeem_with(&server, &leaked, "public-app", VERIFIER).await;
    assert_eq!(status, 200, "{rightful}");
    assert_eq!(introspect(&server, &at_1).await["active"], true);
    let (status, _) = redeem_with(&server, &leaked, "public-app", VERIFIER).await;
    assert_eq!(status, 400);
    let at_2 = rightful["access_token"].as_str().unwrap();
    assert_eq!(introspect(&server, at_2).await["active"], false);
    assert_eq!(introspect(&server, &at_1).await["active"], true);
    let res = token(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", first["refresh_token"].as_str().unwrap()),
            ("client_id", "public-app"),
        ],
    )
    .await;
    assert_eq!(
        res.status(),
        200,
        "the earlier code's refresh family is untouched"
    );
}

// ---- private_key_jwt clients ----------------------------------------------------

fn client_key() -> steward_jose::SigningKey {
    let kek = steward_jose::Kek::from_bytes([9; 32]);
    let k = steward_jose::generate_signing_key(steward_jose::Algorithm::Es256, &kek).unwrap();
    steward_jose::SigningKey::decrypt(&k.kid, k.algorithm, &k.encrypted_private, &kek).unwrap()
}

static JTI: AtomicUsize = AtomicUsize::new(0);

fn assertion_for(server: &TestServer, id: &str, key: &steward_jose::SigningKey, aud: Value) -> String {
    let now = server.state.clock.now().seconds();
    let jti = format!("jti-{}", JTI.fetch_add(1, Ordering::SeqCst));
    key.sign(
        "JWT",
        &json!({"iss": id, "sub": id, "aud": aud, "exp": now + 60, "iat": now, "jti": jti}),
    )
    .unwrap()
}

/// Authenticates as `id` at the revocation endpoint (RFC 7009 answers 200
/// for any token once the client is authenticated; 401 when it is not).
async fn revoke_as(server: &TestServer, id: &str, assertion: &str) -> (u16, Value) {
    let res = client()
        .post(server.url("/revoke"))
        .form(&[
            ("token", "not-a-token"),
            ("client_id", id),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ])
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body = res.text().await.unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn signed_doc(id: &str, keys: Value) -> Value {
    let mut doc = json!({
        "client_id": id, "client_name": "Signed Client",
        "redirect_uris": ["https://app.example/cb"],
        "token_endpoint_auth_method": "private_key_jwt",
    });
    for (k, v) in keys.as_object().unwrap() {
        doc[k] = v.clone();
    }
    doc
}

fn serve(host: &DocumentHost, path: &str, body: &Value, max_age: u32) {
    host.set(
        path,
        TestResponse::json(body.to_string()).with_header("cache-control", format!("max-age={max_age}")),
    );
}

/// Polls until `f` holds (background work is asynchronous), for at most 10 s.
async fn eventually(mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..1_000 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the condition never held");
}

async fn signed_world(url: Option<String>, max_cache_seconds: u64) -> DocWorld {
    doc_world(move |s, _| {
        s.dev.auto_approve_user = Some("alice".to_owned());
        s.cimd.max_cache_seconds = max_cache_seconds;
        use_database(s, url);
    })
    .await
}

// ---- item 8: audience ------------------------------------------------------------

#[tokio::test]
async fn assertion_with_extra_audience_is_refused() {
    let w = signed_world(None, 86_400).await;
    let id = w.host.url("cimd.test", "/client.json");
    let key = client_key();
    serve(
        &w.host,
        "/client.json",
        &signed_doc(&id, json!({"jwks": {"keys": [key.public_jwk()]}})),
        3_600,
    );
    code_for(&w.server, &id, "https://app.example/cb").await;
    let issuer = w.server.base.clone();
    let injected = assertion_for(
        &w.server,
        &id,
        &key,
        json!([issuer, "https://attacker-as.example"]),
    );
    let (status, body) = revoke_as(&w.server, &id, &injected).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    let sole = assertion_for(&w.server, &id, &key, json!([issuer]));
    assert_eq!(revoke_as(&w.server, &id, &sole).await.0, 200);
}

// ---- item 7: the replay window ----------------------------------------------------

async fn assertion_replayed_within_the_exp_leeway_is_refused(db: Db) {
    let Some(url) = db.url().await else { return };
    let w = signed_world(url, 86_400).await;
    let id = w.host.url("cimd.test", "/client.json");
    let key = client_key();
    serve(
        &w.host,
        "/client.json",
        &signed_doc(&id, json!({"jwks": {"keys": [key.public_jwk()]}})),
        3_600,
    );
    code_for(&w.server, &id, "https://app.example/cb").await;
    let once = assertion_for(&w.server, &id, &key, json!(w.server.base));
    assert_eq!(revoke_as(&w.server, &id, &once).await.0, 200);
    // Past exp, inside the 30 s leeway: the assertion is still acceptable,
    // so its jti must still be remembered.
    w.server.clock.advance(60 + 10);
    let (status, body) = revoke_as(&w.server, &id, &once).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    let fresh = assertion_for(&w.server, &id, &key, json!(w.server.base));
    assert_eq!(revoke_as(&w.server, &id, &fresh).await.0, 200);
    // Past the leeway the assertion is refused as expired, remembered or not.
    w.server.clock.advance(30);
    assert_eq!(revoke_as(&w.server, &id, &once).await.0, 401);
}

// ---- item 5: jwks_uri key sets ------------------------------------------------------

/// Junk assertions drive no outbound fetch: the key set is held, fetched at
/// the authorization endpoint and refreshed only off the request path.
#[tokio::test]
async fn jwks_uri_key_sets_are_held_and_junk_assertions_fetch_nothing() {
    let w = signed_world(None, 86_400).await;
    let id = w.host.url("cimd.test", "/client.json");
    let key = client_key();
    let jwks_uri = w.host.url("cimd.test", "/jwks.json");
    serve(&w.host, "/jwks.json", &json!({"keys": [key.public_jwk()]}), 3_600);
    serve(
        &w.host,
        "/client.json",
        &signed_doc(&id, json!({"jwks_uri": jwks_uri})),
        3_600,
    );
    code_for(&w.server, &id, "https://app.example/cb").await;
    assert_eq!(
        w.host.hits("/jwks.json"),
        1,
        "fetched once, at the authorization endpoint"
    );
    let good = assertion_for(&w.server, &id, &key, json!(w.server.base));
    assert_eq!(revoke_as(&w.server, &id, &good).await.0, 200);
    // Right kid, forged signature: refused from the held keys.
    for _ in 0..8 {
        let a = assertion_for(&w.server, &id, &key, json!(w.server.base));
        let (signing_input, _) = a.rsplit_once('.').unwrap();
        let forged = format!("{signing_input}.{}", "A".repeat(86));
        assert_eq!(revoke_as(&w.server, &id, &forged).await.0, 401);
    }
    assert_eq!(w.host.hits("/jwks.json"), 1, "junk assertions fetch nothing");
    // Unknown kids: one background refetch per cache lifetime, however many.
    let stranger = client_key();
    for _ in 0..6 {
        let a = assertion_for(&w.server, &id, &stranger, json!(w.server.base));
        assert_eq!(revoke_as(&w.server, &id, &a).await.0, 401);
    }
    eventually(async || w.host.hits("/jwks.json") >= 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(w.host.hits("/jwks.json"), 2);
    let good = assertion_for(&w.server, &id, &key, json!(w.server.base));
    assert_eq!(revoke_as(&w.server, &id, &good).await.0, 200);
}

/// A client that rotates to a new key is picked up by the refetch an
/// unknown kid starts; the token request itself never waits on a fetch.
#[tokio::test]
async fn a_rotated_jwks_uri_key_is_picked_up_off_the_request_path() {
    let w = signed_world(None, 86_400).await;
    let id = w.host.url("cimd.test", "/client.json");
    let (old, new) = (client_key(), client_key());
    let jwks_uri = w.host.url("cimd.test", "/jwks.json");
    serve(&w.host, "/jwks.json", &json!({"keys": [old.public_jwk()]}), 3_600);
    serve(
        &w.host,
        "/client.json",
        &signed_doc(&id, json!({"jwks_uri": jwks_uri})),
        3_600,
    );
    code_for(&w.server, &id, "https://app.example/cb").await;
    serve(&w.host, "/jwks.json", &json!({"keys": [new.public_jwk()]}), 3_600);
    let first = assertion_for(&w.server, &id, &new, json!(w.server.base));
    assert_eq!(revoke_as(&w.server, &id, &first).await.0, 401, "not held yet");
    eventually(async || w.host.hits("/jwks.json") >= 2).await;
    eventually(async || {
        let a = assertion_for(&w.server, &id, &new, json!(w.server.base));
        revoke_as(&w.server, &id, &a).await.0 == 200
    })
    .await;
    let stale = assertion_for(&w.server, &id, &old, json!(w.server.base));
    assert_eq!(revoke_as(&w.server, &id, &stale).await.0, 401, "the dropped key");
}

// ---- item 6: max_cache_seconds bounds what the token endpoint trusts -------------------

/// The document disappears (404): within `max_cache_seconds` — here once
/// the cached copy is stale and revalidated in the background — the token
/// endpoint refuses the client, though nobody went through /authorize.
async fn token_refuses_a_client_whose_document_is_gone_within_max_cache_seconds(db: Db) {
    let Some(url) = db.url().await else { return };
    let w = signed_world(url, 3_600).await;
    let id = w.host.url("cimd.test", "/client.json");
    let key = client_key();
    serve(
        &w.host,
        "/client.json",
        &signed_doc(&id, json!({"jwks": {"keys": [key.public_jwk()]}})),
        300,
    );
    code_for(&w.server, &id, "https://app.example/cb").await;
    assert_eq!(w.host.hits("/client.json"), 1);
    w.host.set("/client.json", TestResponse::new(404));
    w.server.clock.advance(400);
    // Stale but confirmed within the bound: answered from stored data, and
    // a revalidation starts off the request path.
    let a = assertion_for(&w.server, &id, &key, json!(w.server.base));
    assert_eq!(revoke_as(&w.server, &id, &a).await.0, 200);
    eventually(async || w.host.hits("/client.json") >= 2).await;
    eventually(async || {
        let a = assertion_for(&w.server, &id, &key, json!(w.server.base));
        revoke_as(&w.server, &id, &a).await.0 == 401
    })
    .await;
    let a = assertion_for(&w.server, &id, &key, json!(w.server.base));
    let (status, body) = revoke_as(&w.server, &id, &a).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
}

/// The document drops a (compromised) key: the old key stops working at the
/// token endpoint within the bound, and the new one works.
#[tokio::test]
async fn token_stops_accepting_a_dropped_key_within_max_cache_seconds() {
    let w = signed_world(None, 3_600).await;
    let id = w.host.url("cimd.test", "/client.json");
    let (old, new) = (client_key(), client_key());
    serve(
        &w.host,
        "/client.json",
        &signed_doc(&id, json!({"jwks": {"keys": [old.public_jwk()]}})),
        300,
    );
    code_for(&w.server, &id, "https://app.example/cb").await;
    serve(
        &w.host,
        "/client.json",
        &signed_doc(&id, json!({"jwks": {"keys": [new.public_jwk()]}})),
        300,
    );
    w.server.clock.advance(400);
    let a = assertion_for(&w.server, &id, &old, json!(w.server.base));
    assert_eq!(
        revoke_as(&w.server, &id, &a).await.0,
        200,
        "stale, within the bound"
    );
    eventually(async || w.host.hits("/client.json") >= 2).await;
    eventually(async || {
        let a = assertion_for(&w.server, &id, &new, json!(w.server.base));
        revoke_as(&w.server, &id, &a).await.0 == 200
    })
    .await;
    let a = assertion_for(&w.server, &id, &old, json!(w.server.base));
    assert_eq!(revoke_as(&w.server, &id, &a).await.0, 401, "the dropped key");
}

/// Past `max_cache_seconds` without a successful revalidation the token
/// endpoint fails closed: 503 `temporarily_unavailable`, never the old document.
#[tokio::test]
async fn token_fails_closed_when_metadata_is_older_than_max_cache_seconds() {
    let w = signed_world(None, 3_600).await;
    let id = w.host.url("cimd.test", "/client.json");
    let key = client_key();
    serve(
        &w.host,
        "/client.json",
        &signed_doc(&id, json!({"jwks": {"keys": [key.public_jwk()]}})),
        300,
    );
    code_for(&w.server, &id, "https://app.example/cb").await;
    w.host.set("/client.json", TestResponse::new(503));
    w.server.clock.advance(3_600);
    let a = assertion_for(&w.server, &id, &key, json!(w.server.base));
    let (status, body) = revoke_as(&w.server, &id, &a).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("temporarily_unavailable"))
    );
    // The origin answers again: once revalidated, the client is served.
    serve(
        &w.host,
        "/client.json",
        &signed_doc(&id, json!({"jwks": {"keys": [key.public_jwk()]}})),
        300,
    );
    w.server.clock.advance(600);
    eventually(async || {
        let a = assertion_for(&w.server, &id, &key, json!(w.server.base));
        revoke_as(&w.server, &id, &a).await.0 == 200
    })
    .await;
}
