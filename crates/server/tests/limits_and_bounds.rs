//! Issue 11, items 10, 11, 12 and 14, one test per rule: limits keyed by
//! account and address in fixed windows, reserved before verifying and
//! shared by nodes on one database; replays not counted against the
//! client; anonymous requests writing a bounded amount; the scheduled
//! purge; connection caps. Different source addresses are different
//! loopback addresses (127.0.0.x): nothing leaves the machine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::flows::*;
use common::{TestServer, client};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use steward_testkit::TestResponse;

const PASSWORD: &str = "a-long-enough-password";

/// A client whose connections come from `ip` (a loopback address).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(ip.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn add_user(server: &TestServer, name: &str) {
    let hash = steward_server::oauth::users::hash_password(PASSWORD).unwrap();
    let now = server.state.clock.now();
    steward_server::oauth::users::create_user(server.state.store.as_ref(), name, hash, now)
        .await
        .unwrap();
}

/// A sign-in form opened from `ip`: its cookies and hidden fields.
struct LoginForm {
    cookies: String,
    csrf: String,
    request: String,
    from: reqwest::Client,
}

async fn login_form(server: &TestServer, ip: &str) -> LoginForm {
    let from = client_from(ip);
    let res = from
        .get(authorize_url(server, "public-app", "https://app.example/cb", ""))
        .send()
        .await
        .unwrap();
    let mut jar = HashMap::new();
    cookie_header(&res, &mut jar);
    let html = res.text().await.unwrap();
    LoginForm {
        cookies: jar_string(&jar),
        csrf: hidden_value(&html, "csrf"),
        request: hidden_value(&html, "request"),
        from,
    }
}

impl LoginForm {
    async fn submit(&self, server: &TestServer, user: &str, password: &str) -> reqwest::StatusCode {
        self.from
            .post(server.url("/authorize/login"))
            .header("cookie", &self.cookies)
            .form(&[
                ("username", user),
                ("password", password),
                ("csrf", &self.csrf),
                ("request", &self.request),
            ])
            .send()
            .await
            .unwrap()
            .status()
    }
}

async fn client_credentials(server: &TestServer, ip: &str, secret: &str) -> (u16, Value) {
    let res = client_from(ip)
        .post(server.url("/token"))
        .basic_auth("bench", Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn metrics_text(server: &TestServer) -> String {
    client()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

// ---- item 10: keyed by account and address, fixed windows, metrics ----------------

#[tokio::test]
async fn a_strangers_failed_logins_do_not_lock_out_the_user() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut s = base_settings(dir.path());
    s.login.max_failures_per_account = 3;
    let server = TestServer::start_with(s, dir).await;
    add_user(&server, "bob").await;
    let stranger = login_form(&server, "127.0.0.5").await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            stranger
                .submit(&server, "bob", "wrong-password-123")
                .await
                .as_u16(),
        );
    }
    assert_eq!(statuses, vec![401, 401, 401, 429, 429]);
    // Bob, from his own address, is not locked out by the stranger.
    let bob = login_form(&server, "127.0.0.1").await;
    let status = bob.submit(&server, "bob", PASSWORD).await;
    assert_ne!(status, 429);
    assert!(status.is_success() || status.is_redirection(), "{status}");
}

#[tokio::test]
async fn a_strangers_wrong_secrets_do_not_lock_out_the_client() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut s = base_settings(dir.path());
    s.tokens.client_auth_max_failures = 3;
    let server = TestServer::start_with(s, dir).await;
    for _ in 0..5 {
        let (status, _) = client_credentials(&server, "127.0.0.5", "wrong-secret-000000000").await;
        assert_eq!(status, 401);
    }
    let (_, body) = client_credentials(&server, "127.0.0.5", BENCH_SECRET).await;
    assert_eq!(
        body["error"], "invalid_client",
        "the stranger's address is locked"
    );
    let (status, body) = client_credentials(&server, "127.0.0.1", BENCH_SECRET).await;
    assert_eq!(status, 200, "the real client is not: {body}");
    // The lockout is visible in the metrics, by limit.
    assert!(
        metrics_text(&server)
            .await
            .contains("steward_auth_lockouts_total{limit=\"client_auth_client_address\"}"),
        "lockouts are counted"
    );
}

#[tokio::test]
async fn per_account_ceiling_applies_across_addresses() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut s = base_settings(dir.path());
    s.tokens.client_auth_max_failures = 3;
    s.tokens.client_auth_max_failures_total = 4;
    let server = TestServer::start_with(s, dir).await;
    for ip in ["127.0.0.5", "127.0.0.5", "127.0.0.6", "127.0.0.6"] {
        assert_eq!(
            client_credentials(&server, ip, "wrong-secret-000000000").await.0,
            401
        );
    }
    let (_, body) = client_credentials(&server, "127.0.0.1", BENCH_SECRET).await;
    assert_eq!(
        body["error"], "invalid_client",
        "a distributed attack meets the ceiling"
    );
}

#[tokio::test]
async fn lockout_window_is_fixed_and_failures_do_not_extend_it() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut s = base_settings(dir.path());
    s.tokens.client_auth_max_failures = 3;
    s.tokens.client_auth_window_secs = 300;
    let server = TestServer::start_with(s, dir).await;
    // The test clock starts on a window boundary.
    assert_eq!(server.state.clock.now().seconds() % 300, 0);
    for _ in 0..3 {
        assert_eq!(
            client_credentials(&server, "127.0.0.1", "wrong-secret-0000")
                .await
                .0,
            401
        );
    }
    server.clock.advance(299);
    // Still locked, and this refused attempt does not push the end back.
    let (_, body) = client_credentials(&server, "127.0.0.1", BENCH_SECRET).await;
    assert_eq!(body["error"], "invalid_client");
    server.clock.advance(1);
    let (status, body) = client_credentials(&server, "127.0.0.1", BENCH_SECRET).await;
    assert_eq!(status, 200, "a new window has begun: {body}");
}

// ---- item 11: reserve before verifying; shared across nodes ------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_wrong_passwords_are_counted_before_checking() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut s = base_settings(dir.path());
    s.login.max_failures_per_account = 5;
    s.login.max_failures_per_address = 1000;
    let server = Arc::new(TestServer::start_with(s, dir).await);
    add_user(&server, "bob").await;
    let form = Arc::new(login_form(&server, "127.0.0.1").await);
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let (server, form) = (server.clone(), form.clone());
            tokio::spawn(async move { form.submit(&server, "bob", "wrong-password-123").await.as_u16() })
        })
        .collect();
    let mut checked = 0;
    for t in tasks {
        match t.await.unwrap() {
            401 => checked += 1,
            429 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(checked, 5, "only five of forty parallel guesses were checked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_wrong_client_secrets_are_counted_before_checking() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut s = base_settings(dir.path());
    s.tokens.client_auth_max_failures = 5;
    let server = Arc::new(TestServer::start_with(s, dir).await);
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let server = server.clone();
            tokio::spawn(async move { client_credentials(&server, "127.0.0.1", "wrong-secret-0000").await })
        })
        .collect();
    let mut checked = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 401);
        if body["error_description"] == "client authentication failed" {
            checked += 1;
        }
    }
    assert_eq!(checked, 5, "only five of forty parallel guesses were checked");
}

/// Two nodes on one database: failures seen by one lock out on the other.
async fn login_failures_are_shared_by_nodes(database_url: Option<String>) {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut s = base_settings(dir.path());
    if let Some(url) = database_url {
        s.database.url = url;
    }
    s.login.max_failures_per_account = 3;
    let a = TestServer::start_with(s.clone(), dir.clone()).await;
    s.listen = "127.0.0.1:0".parse().unwrap();
    // Every node of one database shares its issuer (a node with another refuses to start).
    s.issuer = a.base.clone();
    let b = TestServer::start_with(s, dir).await;
    add_user(&a, "bob").await;
    let on_a = login_form(&a, "127.0.0.1").await;
    for _ in 0..3 {
        assert_eq!(on_a.submit(&a, "bob", "wrong-password-123").await, 401);
    }
    let on_b = login_form(&b, "127.0.0.1").await;
    assert_eq!(
        on_b.submit(&b, "bob", PASSWORD).await,
        429,
        "node b sees node a's failures"
    );
}

#[tokio::test]
async fn login_failures_are_shared_by_nodes_on_one_database_sqlite() {
    login_failures_are_shared_by_nodes(None).await;
}

#[tokio::test]
async fn login_failures_are_shared_by_nodes_on_one_database_postgresql() {
    let base = std::env::var("STEWARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let Some(url) = common::postgres_schema_url(&base).await else {
        return;
    };
    login_failures_are_shared_by_nodes(Some(url.clone())).await;
    common::drop_schema(&base, &url).await;
}

// ---- item 17 folded into 10: a replay is no guess ----------------------------------

fn client_signing_key() -> steward_jose::SigningKey {
    let kek = steward_jose::Kek::from_bytes([9; 32]);
    let k = steward_jose::generate_signing_key(steward_jose::Algorithm::Es256, &kek).unwrap();
    steward_jose::SigningKey::decrypt(&k.kid, k.algorithm, &k.encrypted_private, &kek).unwrap()
}

#[tokio::test]
async fn assertion_replays_do_not_lock_out_the_client() {
    let w = doc_world(|s, _| {
        s.dev.auto_approve_user = Some("alice".to_owned());
        s.tokens.client_auth_max_failures = 2;
        s.tokens.client_auth_max_failures_total = 2;
    })
    .await;
    let id = w.host.url("cimd.test", "/client.json");
    let key = client_signing_key();
    let doc = json!({
        "client_id": id, "client_name": "Signed Client",
        "redirect_uris": ["https://app.example/cb"],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [key.public_jwk()]},
    });
    w.host.set(
        "/client.json",
        TestResponse::json(doc.to_string()).with_header("cache-control", "max-age=3600"),
    );
    let assertion = |jti: &str| {
        let now = w.server.state.clock.now().seconds();
        key.sign(
            "JWT",
            &json!({"iss": id, "sub": id, "aud": w.server.base, "exp": now + 60, "iat": now, "jti": jti}),
        )
        .unwrap()
    };
    let exchange = |code: String, assertion: String| {
        let url = w.server.url("/token");
        let id = id.clone();
        async move {
            client()
                .post(url)
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("client_id", id.as_str()),
                    ("code_verifier", VERIFIER),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", assertion.as_str()),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let captured = assertion("captured");
    let code = code_for(&w.server, &id, "https://app.example/cb").await;
    assert_eq!(exchange(code, captured.clone()).await.status(), 200);
    // A thief replays the captured assertion, from the client's own address.
    for _ in 0..4 {
        let code = code_for(&w.server, &id, "https://app.example/cb").await;
        let res = exchange(code, captured.clone()).await;
        assert_eq!(res.status(), 401);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error_description"], "client assertion replayed");
    }
    // The real client, with a fresh assertion, is not locked out.
    let code = code_for(&w.server, &id, "https://app.example/cb").await;
    let res = exchange(code, assertion("fresh")).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
}

// ---- item 12: bounded anonymous writes; the scheduled purge -----------------------

/// 10,000 anonymous authorization requests, each with a distinct refused
/// `client_id` on a distinct host, leave at most `2 × (max_hosts + 1)`
/// audit rows (first refusals plus per-host aggregates) and no client row.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_anonymous_authorization_requests_leave_the_database_within_a_bound() {
    const REQUESTS: usize = 10_000;
    const MAX_HOSTS: u64 = 100;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut s = base_settings(dir.path());
    s.cimd.refusal_audit_max_hosts = MAX_HOSTS;
    let server = Arc::new(TestServer::start_with(s, dir).await);
    let http = client();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let (server, http, next) = (server.clone(), http.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= REQUESTS {
                        break;
                    }
                    // A dot segment: refused without any fetch.
                    let id = format!("https://h{i}.attacker.test/x/../client-{i}.json");
                    let res = http
                        .get(authorize_url(&server, &id, "https://app.example/cb", ""))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(res.status(), 400);
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    // The window ends; the purge writes the aggregates.
    server.clock.advance(300);
    steward_server::purge::purge_now(&server.state).await.unwrap();
    let audit = server
        .state
        .store
        .list_audit(&steward_store::AuditFilter::default())
        .await
        .unwrap();
    let bound = usize::try_from(2 * (MAX_HOSTS + 1)).unwrap();
    assert!(audit.len() <= bound, "{} audit rows", audit.len());
    let aggregated: u64 = audit
        .iter()
        .filter(|e| e.action == "client.metadata_rejected_aggregate")
        .map(|e| {
            serde_json::from_str::<Value>(&e.detail).unwrap()["count"]
                .as_u64()
                .unwrap()
        })
        .sum();
    let full = audit
        .iter()
        .filter(|e| e.action == "client.metadata_rejected")
        .count();
    assert_eq!(
        full + usize::try_from(aggregated).unwrap(),
        REQUESTS,
        "every refusal is accounted for"
    );
    let clients = server
        .state
        .store
        .list_clients(&steward_store::ClientFilter {
            kind: Some(steward_core::ClientKind::MetadataDocument),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(clients.is_empty());
}

fn good_doc(id: &str) -> String {
    json!({ "client_id": id, "client_name": "Unused", "redirect_uris": ["https://app.example/cb"] })
        .to_string()
}

/// Metadata-document clients nobody uses are capped in number and reaped by
/// the purge; a reaped client whose document a node still caches is stored
/// again on its next authorization request.
#[tokio::test]
async fn unused_metadata_clients_are_capped_and_reaped() {
    let w = doc_world(|s, _| {
        s.cimd.max_unused_clients = 3;
    })
    .await;
    let ids: Vec<String> = (0..4)
        .map(|i| w.host.url("cimd.test", &format!("/c{i}.json")))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        w.host.set(
            &format!("/c{i}.json"),
            TestResponse::json(good_doc(id)).with_header("cache-control", "max-age=86400"),
        );
    }
    let authorize = |id: &str| {
        let url = authorize_url(&w.server, id, "https://app.example/cb", "");
        async move { client().get(url).send().await.unwrap().status().as_u16() }
    };
    for id in &ids[..3] {
        assert_eq!(authorize(id).await, 200, "login page for {id}");
    }
    assert_eq!(authorize(&ids[3]).await, 503, "the cap on unused clients");
    assert_eq!(
        w.server
            .state
            .store
            .count_unused_metadata_clients()
            .await
            .unwrap(),
        3
    );

    w.server.clock.advance(86_401);
    let report = steward_server::purge::purge_now(&w.server.state).await.unwrap();
    assert_eq!(report.unused_clients, 3);
    assert_eq!(w.server.state.store.get_client(&ids[0]).await.unwrap(), None);
    // Still cached by the resolver, gone from the database: fetched and stored again.
    assert_eq!(authorize(&ids[0]).await, 200);
    assert!(w.server.state.store.get_client(&ids[0]).await.unwrap().is_some());
    let latest = w
        .server
        .state
        .store
        .latest_metadata_version(&ids[0])
        .await
        .unwrap();
    assert!(latest.is_some());
}

/// `purge_expired` used to have no caller: the server now purges on a
/// schedule (`purge.interval_secs`).
async fn expired_rows_are_purged_on_a_schedule(database_url: Option<String>) {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut s = base_settings(dir.path());
    if let Some(url) = database_url {
        s.database.url = url;
    }
    s.purge.interval_secs = 1;
    let server = TestServer::start_with(s, dir).await;
    add_user(&server, "bob").await;
    let user = server.state.store.get_user_by_name("bob").await.unwrap().unwrap();
    let now = server.state.clock.now();
    server
        .state
        .store
        .create_session(&steward_store::Session {
            id_hash: "expired-session".into(),
            user_id: user.id,
            created_at: now,
            expires_at: now.plus_secs(10),
            auth_time: now,
        })
        .await
        .unwrap();
    server.clock.advance(11);
    let mut gone = false;
    for _ in 0..100 {
        if server
            .state
            .store
            .get_session("expired-session", now)
            .await
            .unwrap()
            .is_none()
        {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the scheduled purge deleted the expired session");
}

#[tokio::test]
async fn expired_rows_are_purged_on_a_schedule_sqlite() {
    expired_rows_are_purged_on_a_schedule(None).await;
}

#[tokio::test]
async fn expired_rows_are_purged_on_a_schedule_postgresql() {
    let base = std::env::var("STEWARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let Some(url) = common::postgres_schema_url(&base).await else {
        return;
    };
    expired_rows_are_purged_on_a_schedule(Some(url.clone())).await;
    common::drop_schema(&base, &url).await;
}

// ---- item 14: connection caps --------------------------------------------------------

/// A connection from `ip` that sends half a request head and stops.
async fn half_sent(server: &TestServer, ip: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    stream
}

/// Whether the server closes `stream` (within a generous wait; the header
/// timeout is a minute, so only the cap can close it).
async fn closed_by_server(stream: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

async fn healthy(server: &TestServer) -> bool {
    client_from("127.0.0.1")
        .get(server.url("/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
}

#[tokio::test]
async fn half_sent_requests_cannot_exhaust_the_connections() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut s = base_settings(dir.path());
    s.http.max_connections = 9;
    s.http.max_connections_per_address = 4;
    s.http.header_timeout_ms = 60_000;
    let server = TestServer::start_with(s, dir).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(half_sent(&server, "127.0.0.5").await);
    }
    // The fifth from the same address is closed at once; others still get in.
    let mut fifth = half_sent(&server, "127.0.0.5").await;
    assert!(closed_by_server(&mut fifth).await, "per-address cap");
    assert!(healthy(&server).await);
    for ip in ["127.0.0.6", "127.0.0.7"] {
        for _ in 0..2 {
            held.push(half_sent(&server, ip).await);
        }
    }
    // Eight held, one left: a health check still gets through.
    assert!(healthy(&server).await);
    held.push(half_sent(&server, "127.0.0.8").await);
    let mut over = half_sent(&server, "127.0.0.9").await;
    assert!(closed_by_server(&mut over).await, "global cap");
    drop(held);
    let mut ok = false;
    for _ in 0..50 {
        if healthy(&server).await {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "slots come back when connections close");
    let m = metrics_text(&server).await;
    assert!(
        m.contains("steward_connections_refused_total{cap=\"per_address\"}"),
        "{m}"
    );
    assert!(m.contains("steward_connections_refused_total{cap=\"total\"}"));
}
