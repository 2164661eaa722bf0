//! Issue 2 acceptance, end to end on loopback: discovery, JWKS, operations
//! endpoints, key persistence and rotation, graceful shutdown, PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{TestServer, client, test_settings};
use serde_json::Value;
use std::sync::Arc;

const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

async fn get_json(url: &str) -> (reqwest::StatusCode, reqwest::header::HeaderMap, Value) {
    let res = client().get(url).send().await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    (status, headers, res.json().await.unwrap())
}

#[tokio::test]
async fn metadata_issuer_is_byte_identical_and_json() {
    let server = TestServer::start().await;
    let (status, headers, doc) = get_json(&server.url("/.well-known/oauth-authorization-server")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(doc["issuer"].as_str().unwrap(), server.base);
    assert_eq!(
        doc["jwks_uri"].as_str().unwrap(),
        format!("{}/jwks.json", server.base)
    );
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(doc["client_id_metadata_document_supported"], true);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn metadata_allows_cors() {
    let server = TestServer::start().await;
    let res = client()
        .get(server.url("/.well-known/oauth-authorization-server"))
        .header("Origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn jwks_serves_public_keys_only() {
    let server = TestServer::start().await;
    let (status, _, jwks) = get_json(&server.url("/jwks.json")).await;
    assert_eq!(status, 200);
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    for k in keys {
        for m in PRIVATE_MEMBERS {
            assert!(k.get(m).is_none(), "private member {m} served");
        }
        assert_eq!(k["kid"].as_str().unwrap(), server.state.keys.active().kid());
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn path_issuer_gets_path_inserted_metadata() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut settings = test_settings(dir.path());
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    settings.listen = format!("127.0.0.1:{port}").parse().unwrap();
    settings.issuer = format!("http://127.0.0.1:{port}/tenant1");
    let server = TestServer::start_with(settings, dir).await;
    let (status, _, doc) = get_json(&server.url("/.well-known/oauth-authorization-server/tenant1")).await;
    assert_eq!(status, 200);
    assert_eq!(
        doc["issuer"].as_str().unwrap(),
        format!("http://127.0.0.1:{port}/tenant1")
    );
    let (status, _, _) = get_json(&server.url("/tenant1/jwks.json")).await;
    assert_eq!(status, 200);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let server = TestServer::start().await;
    let res = client().get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let (status, _, ready) = get_json(&server.url("/readyz")).await;
    assert_eq!(status, 200);
    assert_eq!(ready["database"], true);
    assert_eq!(ready["keys"], true);
    let metrics = client()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("steward_http_requests_total"), "{metrics}");
    assert!(metrics.contains("route=\"/readyz\""), "{metrics}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn oversized_body_is_refused() {
    let server = TestServer::start().await;
    let big = vec![b'a'; 200 * 1024];
    let res = client()
        .post(server.url("/admin/cimd/check"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert!(res.status() == 413 || res.status() == 403, "{}", res.status());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn admin_api_requires_the_token() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut settings = test_settings(dir.path());
    settings.admin.token = Some("t".repeat(40));
    let server = TestServer::start_with(settings, dir).await;
    let res = client()
        .post(server.url("/admin/cimd/check"))
        .json(&serde_json::json!({"url": "https://app.example/client"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = client()
        .post(server.url("/admin/cimd/check"))
        .bearer_auth("x".repeat(40))
        .json(&serde_json::json!({"url": "https://app.example/client"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn restart_keeps_keys_and_rotation_publishes_two() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let settings = test_settings(dir.path());
    let first = TestServer::start_with(settings.clone(), dir.clone()).await;
    let kid = first.state.keys.active().kid().to_owned();
    first.stop().await.unwrap();

    let second = TestServer::start_with(settings.clone(), dir.clone()).await;
    assert_eq!(
        second.state.keys.active().kid(),
        kid,
        "restart keeps the signing key"
    );

    // Rotate through the same path `steward keys rotate` uses, then reload.
    let (kek, created) = steward_jose::Kek::load_or_create(&settings.keys.encryption_key_file).unwrap();
    assert!(!created);
    let now = steward_core::Clock::now(second.state.clock.as_ref());
    let new_kid = steward_server::keyring::rotate(
        second.state.store.as_ref(),
        &kek,
        steward_jose::Algorithm::Es256,
        now,
        600,
    )
    .await
    .unwrap();
    second.state.keys.reload().await.unwrap();
    assert_eq!(second.state.keys.active().kid(), new_kid, "the new key signs");
    let (_, _, jwks) = get_json(&second.url("/jwks.json")).await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), 2, "{kids:?}");
    assert!(kids.contains(&kid.as_str()) && kids.contains(&new_kid.as_str()));

    // Once every token the old key signed has expired, it is retired.
    second.clock.advance(600 + 120); // lifetime plus the clock-skew margin of retire_after
    second.state.keys.reload().await.unwrap();
    let (_, _, jwks) = get_json(&second.url("/jwks.json")).await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, vec![new_kid.as_str()]);
    second.stop().await.unwrap();
}

#[cfg(unix)]
#[tokio::test]
async fn key_encryption_key_is_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::start().await;
    let mode = std::fs::metadata(server.dir.path().join("kek"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn graceful_shutdown_finishes_and_returns() {
    let server = TestServer::start().await;
    let base = server.base.clone();
    server.stop().await.unwrap();
    assert!(
        client().get(format!("{base}/healthz")).send().await.is_err(),
        "listener closed"
    );
}

/// The same acceptance on PostgreSQL: a fresh schema, served, restarted.
#[tokio::test]
async fn serves_on_postgresql() {
    let base = std::env::var("STEWARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let Some(url) = common::postgres_schema_url(&base).await else {
        return;
    };
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut settings = test_settings(dir.path());
    settings.database.url = url;
    let server = TestServer::start_with(settings.clone(), dir.clone()).await;
    let (status, _, doc) = get_json(&server.url("/.well-known/oauth-authorization-server")).await;
    assert_eq!(status, 200);
    assert_eq!(doc["issuer"].as_str().unwrap(), server.base);
    let (_, _, jwks) = get_json(&server.url("/jwks.json")).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    let kid = server.state.keys.active().kid().to_owned();
    server.stop().await.unwrap();
    let again = TestServer::start_with(settings, dir).await;
    assert_eq!(again.state.keys.active().kid(), kid);
    again.stop().await.unwrap();
}
