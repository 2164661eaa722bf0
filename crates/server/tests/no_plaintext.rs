//! Codes, tokens, secrets, passwords and session ids are stored only as
//! hashes: after real flows against a server on loopback, the bytes of the
//! SQLite database (main file, WAL and shared memory) contain none of them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::flows::{
    BENCH_SECRET, VERIFIER, authorize_url, base_settings, code_for, cookie_header, hidden_value, jar_string,
    location_params, token,
};
use common::{TestServer, client};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

const PASSWORD: &str = "a-long-enough-password-for-bob";

/// The database's bytes: `steward.db` and, while it is open, its WAL and
/// shared-memory files.
fn database_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for name in ["steward.db", "steward.db-wal", "steward.db-shm"] {
        if let Ok(bytes) = std::fs::read(dir.join(name)) {
            all.extend_from_slice(&bytes);
        }
    }
    assert!(!all.is_empty());
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    let needle = needle.as_bytes();
    assert!(
        needle.len() >= 8,
        "too short to be a meaningful probe: {needle:?}"
    );
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn assert_absent(db: &[u8], secrets: &[(&str, String)]) {
    // The scan sees what is stored: client ids are stored as they are.
    assert!(contains(db, "public-app"), "the scan reads the data");
    for (what, value) in secrets {
        assert!(!contains(db, value), "{what} is stored in plaintext");
    }
}

/// Signs bob in through the login form and approves the consent page:
/// returns the session id (the session cookie) and the code.
async fn login_and_consent(server: &TestServer) -> (String, String) {
    let mut jar = HashMap::new();
    let res = client()
        .get(authorize_url(server, "public-app", "https://app.example/cb", ""))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "login page");
    cookie_header(&res, &mut jar);
    let html = res.text().await.unwrap();
    let res = client()
        .post(server.url("/authorize/login"))
        .header("cookie", jar_string(&jar))
        .form(&[
            ("username", "bob"),
            ("password", PASSWORD),
            ("csrf", &hidden_value(&html, "csrf")),
            ("request", &hidden_value(&html, "request")),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "consent page");
    cookie_header(&res, &mut jar);
    let session = jar
        .iter()
        .find(|(k, _)| k.ends_with("steward_session"))
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no session cookie in {jar:?}"));
    let html = res.text().await.unwrap();
    let res = client()
        .post(server.url("/authorize/consent"))
        .header("cookie", jar_string(&jar))
        .form(&[
            ("decision", "approve"),
            ("csrf", &hidden_value(&html, "csrf")),
            ("request", &hidden_value(&html, "request")),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let (_, p) = location_params(&res);
    (session, p["code"].clone())
}

async fn redeem(server: &TestServer, code: &str) -> Value {
    let res = token(
        server,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", "public-app"),
            ("redirect_uri", "https://app.example/cb"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn refresh(server: &TestServer, refresh_token: &str) -> Value {
    let res = token(
        server,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", "public-app"),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test]
async fn no_code_token_secret_password_or_session_id_is_stored_in_plaintext() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut settings = base_settings(dir.path());
    settings.tokens.format = "opaque".to_owned();
    let server = TestServer::start_with(settings, dir.clone()).await;
    let hash = steward_server::oauth::users::hash_password(PASSWORD).unwrap();
    let now = steward_core::Clock::now(server.state.clock.as_ref());
    steward_server::oauth::users::create_user(server.state.store.as_ref(), "bob", hash, now)
        .await
        .unwrap();

    let (session, code) = login_and_consent(&server).await;
    let first = redeem(&server, &code).await;
    let second = refresh(&server, first["refresh_token"].as_str().unwrap()).await;
    let res = client()
        .post(server.url("/token"))
        .basic_auth("bench", Some(BENCH_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let machine: Value = res.json().await.unwrap();

    let text = |v: &Value, k: &str| v[k].as_str().unwrap().to_owned();
    let secrets = [
        ("the session id", session),
        ("the authorization code", code),
        ("the opaque access token", text(&first, "access_token")),
        ("the first refresh token", text(&first, "refresh_token")),
        ("the rotated access token", text(&second, "access_token")),
        ("the rotated refresh token", text(&second, "refresh_token")),
        ("the client_credentials token", text(&machine, "access_token")),
        ("the client secret", BENCH_SECRET.to_owned()),
        ("the password", PASSWORD.to_owned()),
    ];
    assert_absent(&database_bytes(dir.path()), &secrets);
    server.stop().await.unwrap();
    // And after the WAL is checkpointed into the main file.
    assert_absent(&database_bytes(dir.path()), &secrets);
}

/// JWT access tokens: the token (and its signature) is never stored. Its
/// `jti` is: an identifier, the key for revocation and introspection, not a
/// credential — knowing it grants nothing without the signed token.
#[tokio::test]
async fn jwt_access_tokens_are_not_stored() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut settings = base_settings(dir.path());
    settings.dev.auto_approve_user = Some("alice".to_owned());
    let server = TestServer::start_with(settings, dir.clone()).await;
    let code = code_for(&server, "public-app", "https://app.example/cb").await;
    let body = redeem(&server, &code).await;
    let at = body["access_token"].as_str().unwrap().to_owned();
    let signature = at.rsplit('.').next().unwrap().to_owned();
    let secrets = [
        ("the authorization code", code),
        ("the JWT access token", at),
        ("the JWT signature", signature),
        (
            "the refresh token",
            body["refresh_token"].as_str().unwrap().to_owned(),
        ),
    ];
    assert_absent(&database_bytes(dir.path()), &secrets);
    server.stop().await.unwrap();
    assert_absent(&database_bytes(dir.path()), &secrets);
}
