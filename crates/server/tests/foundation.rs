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
    // /token reads its form body: a body over http.max_body_bytes is 413.
    let limit = server.state.settings.http.max_body_bytes;
    let big = format!("grant_type=client_credentials&pad={}", "a".repeat(limit + 1));
    let res = client()
        .post(server.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    // Just under the limit the same request is read and judged (not 413).
    let fits = format!("grant_type=client_credentials&pad={}", "a".repeat(limit / 2));
    let res = client()
        .post(server.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(fits)
        .send()
        .await
        .unwrap();
    assert_ne!(res.status(), 413);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn oversized_header_is_refused_with_431() {
    let server = TestServer::start().await;
    let limit = server.state.settings.http.max_header_bytes;
    let res = client()
        .get(server.url("/healthz"))
        .header("x-padding", "a".repeat(limit + 1024))
        .send()
        .await;
    match res {
        Ok(res) => assert_eq!(res.status(), 431),
        Err(e) => panic!("expected a 431 answer, got {e}"),
    }
    let res = client()
        .get(server.url("/healthz"))
        .header("x-padding", "a".repeat(limit / 2))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "a head within the limit is served");
    server.stop().await.unwrap();
}

/// Label values of every `steward_http_…` sample for `label`.
fn label_values(metrics: &str, label: &str) -> std::collections::BTreeSet<String> {
    let needle = format!("{label}=\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("steward_http_"))
        .filter_map(|l| {
            let start = l.find(&needle)? + needle.len();
            let end = start + l[start..].find('"')?;
            Some(l[start..end].to_owned())
        })
        .collect()
}

#[tokio::test]
async fn metrics_labels_stay_bounded() {
    let server = TestServer::start().await;
    let http = client();
    for i in 0..5 {
        let method = reqwest::Method::from_bytes(format!("XMETHOD{i}").as_bytes()).unwrap();
        http.request(method, server.url("/healthz")).send().await.unwrap();
        http.get(server.url(&format!("/no-such-route-{i}")))
            .send()
            .await
            .unwrap();
        http.get(server.url(&format!("/token?client_id=secret-client-{i}")))
            .send()
            .await
            .unwrap();
    }
    let text = http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("XMETHOD"), "raw methods are never labels");
    assert!(!text.contains("no-such-route"), "raw paths are never labels");
    assert!(!text.contains("secret-client"), "query values are never labels");
    let fixed: std::collections::BTreeSet<&str> = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "other",
    ]
    .into_iter()
    .collect();
    let methods = label_values(&text, "method");
    assert!(methods.contains("other"), "{methods:?}");
    assert!(methods.iter().all(|m| fixed.contains(m.as_str())), "{methods:?}");
    let routes = label_values(&text, "route");
    assert!(routes.contains("unmatched"), "{routes:?}");
    assert!(
        routes.iter().all(|r| r == "unmatched" || r.starts_with('/')),
        "{routes:?}"
    );
    for r in &routes {
        assert!(!r.contains('?'), "{r}");
    }
    let statuses = label_values(&text, "status");
    assert!(
        statuses
            .iter()
            .all(|s| s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit())),
        "{statuses:?}"
    );
    for label in ["client_id", "user", "path"] {
        assert!(label_values(&text, label).is_empty(), "label {label} exists");
    }
    // The latency histogram carries the route, the method and the status.
    let histogram = text
        .lines()
        .find(|l| {
            l.starts_with("steward_http_request_duration_seconds")
                && l.contains("route=\"/healthz\"")
                && l.contains("method=\"other\"")
        })
        .unwrap_or_else(|| panic!("no latency sample for /healthz: {text}"));
    assert!(histogram.contains("status=\""), "{histogram}");
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
async fn restart_keeps_keys_and_a_rotated_key_is_published_before_it_signs() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let settings = test_settings(dir.path());
    let first = TestServer::start_with(settings.clone(), dir.clone()).await;
    let kid = first.state.keys.active().kid().to_owned();
    // The restart listens elsewhere but is the same deployment: same issuer.
    let mut settings = settings;
    settings.issuer = first.base.clone();
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
    let rotation = steward_server::keyring::rotate(
        second.state.store.as_ref(),
        &kek,
        steward_jose::Algorithm::Es256,
        now,
        &settings,
    )
    .await
    .unwrap();
    let new_kid = rotation.kid.clone();
    second.state.keys.reload().await.unwrap();
    // Published at once, but the old key signs until every node must have
    // reloaded: keys.reload_seconds + keys.activation_margin_seconds.
    assert_eq!(second.state.keys.active().kid(), kid, "the old key still signs");
    let (_, _, jwks) = get_json(&second.url("/jwks.json")).await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), 2, "{kids:?}");
    assert!(kids.contains(&kid.as_str()) && kids.contains(&new_kid.as_str()));
    let reload = i64::try_from(settings.keys.reload_seconds).unwrap();
    let margin = i64::try_from(settings.keys.activation_margin_seconds).unwrap();
    assert_eq!(rotation.activates_at, now.plus_secs(reload + margin));
    second.clock.advance(reload + margin - 1);
    assert_eq!(second.state.keys.active().kid(), kid, "not yet");
    // At the activation instant the new key signs, by the clock, without
    // waiting for this node's next reload: every node switches together.
    second.clock.advance(1);
    assert_eq!(second.state.keys.active().kid(), new_kid, "the new key signs");

    // A node that missed the new key at one reload may sign with the old key
    // for up to keys.reload_seconds after the activation: past lifetime +
    // leeway alone, such a token is still valid, so the old key must still
    // be published.
    let lifetime = i64::try_from(settings.tokens.access_token_lifetime_secs).unwrap();
    let leeway = 60;
    assert!(reload > 1);
    second.clock.advance(lifetime + leeway + 1);
    second.state.keys.reload().await.unwrap();
    let (_, _, jwks) = get_json(&second.url("/jwks.json")).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2, "{jwks}");

    // Once every token the old key could have signed has expired, it is retired.
    second.clock.advance(reload);
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

#[tokio::test]
async fn graceful_shutdown_lets_an_in_flight_request_finish() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start().await;
    let addr = server.addr;
    // The head and half the body arrive; then shutdown begins.
    let body = "grant_type=authorization_code&code=nope&client_id=nobody";
    let (first, rest) = body.split_at(20);
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /token HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n{first}",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let stopping = tokio::spawn(server.stop());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !stopping.is_finished(),
        "shutdown waits for the in-flight request"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no new connections once shutdown began"
    );
    conn.write_all(rest.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), conn.read_to_end(&mut reply))
        .await
        .unwrap()
        .unwrap();
    let reply = String::from_utf8(reply).unwrap();
    assert!(
        reply.starts_with("HTTP/1.1 400") || reply.starts_with("HTTP/1.1 401"),
        "{reply}"
    );
    assert!(reply.contains("\"error\""), "the whole answer arrived: {reply}");
    tokio::time::timeout(std::time::Duration::from_secs(10), stopping)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
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
    // The restart listens elsewhere but is the same deployment: same issuer.
    settings.issuer = server.base.clone();
    server.stop().await.unwrap();
    let again = TestServer::start_with(settings.clone(), dir).await;
    assert_eq!(again.state.keys.active().kid(), kid);
    again.stop().await.unwrap();
    drop_schema(&base, &settings.database.url).await;
}

/// Drops the schema `common::postgres_schema_url` made (named in the URL's
/// `search_path` option), so test runs leave nothing behind.
async fn drop_schema(base: &str, url: &str) {
    use sqlx::Connection;
    let schema = url
        .rsplit_once("search_path%3D")
        .map(|(_, s)| s.split('&').next().unwrap_or(s))
        .expect("the URL names its schema");
    assert!(
        schema.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "{schema}"
    );
    let mut conn = sqlx::PgConnection::connect(base).await.unwrap();
    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&mut conn)
        .await
        .unwrap();
    let left: (i64,) = sqlx::query_as("SELECT count(*) FROM pg_namespace WHERE nspname = $1")
        .bind(schema)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(left.0, 0);
}
