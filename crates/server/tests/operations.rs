//! Issue 15 items 2 and 3: logs an operator can use and metrics that answer
//! the obvious questions. The log is captured as the CLI writes it with
//! `--log-format json` (one flattened JSON object per line) while a full
//! flow runs; then every line is read back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::flows::*;
use common::{TestServer, client, test_settings};
use serde_json::Value;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

const PASSWORD: &str = "a-long-enough-password-for-bob";
const WRONG_PASSWORD: &str = "not-bobs-password-4711";

// ---- capturing the log ------------------------------------------------------------

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The process-wide subscriber, installed once, formatted as
/// crates/cli/src/logging.rs does for `--log-format json`.
fn log() -> &'static Captured {
    static LOG: OnceLock<Captured> = OnceLock::new();
    LOG.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .json()
            .flatten_event(true)
            .try_init()
            .unwrap();
        captured
    })
}

fn log_lines() -> Vec<Value> {
    let bytes = log().0.lock().unwrap().clone();
    String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn log_text() -> String {
    String::from_utf8(log().0.lock().unwrap().clone()).unwrap()
}

// ---- a full flow, with every security event -----------------------------------------

async fn post_login(
    server: &TestServer,
    jar: &HashMap<String, String>,
    html: &str,
    password: &str,
) -> reqwest::Response {
    client()
        .post(server.url("/authorize/login"))
        .header("cookie", jar_string(jar))
        .form(&[
            ("username", "bob"),
            ("password", password),
            ("csrf", &hidden_value(html, "csrf")),
            ("request", &hidden_value(html, "request")),
        ])
        .send()
        .await
        .unwrap()
}

/// Signs bob in (after one wrong password) and approves: the session id and the code.
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
    assert_eq!(
        post_login(server, &jar, &html, WRONG_PASSWORD).await.status(),
        401
    );
    let res = post_login(server, &jar, &html, PASSWORD).await;
    cookie_header(&res, &mut jar);
    let session = jar
        .iter()
        .find(|(k, _)| k.ends_with("steward_session"))
        .map(|(_, v)| v.clone())
        .unwrap();
    if res.status() == 302 {
        // Consent given before: straight back with a code.
        let (_, p) = location_params(&res);
        return (session, p["code"].clone());
    }
    assert_eq!(res.status(), 200, "consent page");
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

fn redeem_form(code: &str) -> [(&str, &str); 5] {
    [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("client_id", "public-app"),
        ("redirect_uri", "https://app.example/cb"),
        ("code_verifier", VERIFIER),
    ]
}

fn refresh_form(refresh_token: &str) -> [(&str, &str); 3] {
    [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", "public-app"),
    ]
}

#[tokio::test]
async fn every_request_has_one_log_line_with_its_fields_and_no_secret() {
    log();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut settings = base_settings(dir.path());
    settings.tokens.format = "opaque".to_owned();
    settings.login.max_failures_per_account = 3;
    let server = TestServer::start_with(settings, dir).await;
    let hash = steward_server::oauth::users::hash_password(PASSWORD).unwrap();
    let now = steward_core::Clock::now(server.state.clock.as_ref());
    steward_server::oauth::users::create_user(server.state.store.as_ref(), "bob", hash, now)
        .await
        .unwrap();

    let (session, code) = login_and_consent(&server).await;
    let res = token(&server, &redeem_form(&code)).await;
    assert_eq!(res.status(), 200);
    let token_request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let first: Value = res.json().await.unwrap();
    // Code replay.
    assert_eq!(token(&server, &redeem_form(&code)).await.status(), 400);
    // A fresh code for the refresh part (the replay revoked the first family).
    let (_, code2) = login_and_consent(&server).await;
    let res = token(&server, &redeem_form(&code2)).await;
    let second: Value = res.json().await.unwrap();
    let rt = second["refresh_token"].as_str().unwrap().to_owned();
    let res = token(&server, &refresh_form(&rt)).await;
    assert_eq!(res.status(), 200);
    let rotated: Value = res.json().await.unwrap();
    // Refresh-token reuse.
    assert_eq!(token(&server, &refresh_form(&rt)).await.status(), 400);
    // Client credentials, then a wrong secret.
    let res = client()
        .post(server.url("/token"))
        .basic_auth("bench", Some(BENCH_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let machine: Value = res.json().await.unwrap();
    let wrong_secret = "not-the-bench-secret-0123456789";
    let res = client()
        .post(server.url("/token"))
        .basic_auth("bench", Some(wrong_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // A lockout: bob's account allows 3 failures (two were spent above).
    let mut jar = HashMap::new();
    let res = client()
        .get(authorize_url(&server, "public-app", "https://app.example/cb", ""))
        .send()
        .await
        .unwrap();
    cookie_header(&res, &mut jar);
    let html = res.text().await.unwrap();
    let mut statuses = Vec::new();
    for _ in 0..2 {
        statuses.push(
            post_login(&server, &jar, &html, WRONG_PASSWORD)
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, vec![401, 429]);
    // A query string that carries something secret-looking is never logged.
    let res = client()
        .get(server.url("/healthz?code=query-secret-0123456789"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    server.stop().await.unwrap();

    let text = |v: &Value, k: &str| v[k].as_str().unwrap().to_owned();
    let secrets = [
        ("the session id", session),
        ("the first code", code),
        ("the second code", code2),
        ("an access token", text(&first, "access_token")),
        ("a refresh token", text(&first, "refresh_token")),
        ("the second access token", text(&second, "access_token")),
        ("the rotated access token", text(&rotated, "access_token")),
        ("the rotated refresh token", text(&rotated, "refresh_token")),
        ("the client_credentials token", text(&machine, "access_token")),
        ("the client secret", BENCH_SECRET.to_owned()),
        ("a wrong client secret", wrong_secret.to_owned()),
        ("the password", PASSWORD.to_owned()),
        ("a wrong password", WRONG_PASSWORD.to_owned()),
        ("the PKCE verifier", VERIFIER.to_owned()),
        ("a query value", "query-secret-0123456789".to_owned()),
    ];
    let all = log_text();
    for (what, value) in &secrets {
        assert!(!all.contains(value.as_str()), "{what} is in the log");
    }

    let lines = log_lines();
    let requests: Vec<&Value> = lines.iter().filter(|l| l["message"] == "request").collect();
    assert!(requests.len() >= 15, "{} request lines", requests.len());
    for r in &requests {
        assert_eq!(r["level"], "INFO", "{r}");
        for field in [
            "method",
            "route",
            "status",
            "duration_ms",
            "client_address",
            "request_id",
        ] {
            assert!(!r[field].is_null(), "{field} missing in {r}");
        }
        assert!(!r["route"].as_str().unwrap().contains('?'), "{r}");
        assert_eq!(r["client_address"], "127.0.0.1", "{r}");
    }
    // The token request's line: route template, status, client, the id it returned.
    let line = requests
        .iter()
        .find(|r| r["request_id"] == token_request_id.as_str())
        .unwrap_or_else(|| panic!("no line for request {token_request_id}"));
    assert_eq!(line["route"], "/token");
    assert_eq!(line["method"], "POST");
    assert_eq!(line["status"], 200);
    assert_eq!(line["client_id"], "public-app");
    assert!(
        requests
            .iter()
            .any(|r| r["route"] == "/authorize" && r["client_id"] == "public-app")
    );
    assert!(
        requests
            .iter()
            .any(|r| r["route"] == "/token" && r["client_id"] == "bench")
    );
    assert!(requests.iter().any(|r| r["route"] == "/healthz"));

    // One warn line per security event, tied to a request line by its id.
    let events: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "security event")
        .collect();
    for wanted in [
        "user.login_failed",
        "token.code_replayed",
        "token.refresh_reused",
        "client_auth_failed",
        "lockout",
    ] {
        let e = events
            .iter()
            .find(|e| e["event"] == wanted)
            .unwrap_or_else(|| panic!("no warn line for {wanted}: {events:?}"));
        assert_eq!(e["level"], "WARN");
        assert_eq!(e["client_address"], "127.0.0.1");
        assert!(
            requests.iter().any(|r| r["request_id"] == e["request_id"]),
            "{wanted}: its request id names a request line"
        );
    }
}

// ---- metrics ---------------------------------------------------------------------

/// A server with `metrics.listen` on an ephemeral loopback port; returns
/// the server and the metrics listener's address.
async fn with_metrics_listener() -> (TestServer, std::net::SocketAddr) {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut s = base_settings(dir.path());
    s.metrics.listen = Some("127.0.0.1:0".parse().unwrap());
    let server = TestServer::start_with(s, dir).await;
    let addr = server.metrics_addr.expect("the metrics listener is bound");
    (server, addr)
}

#[tokio::test]
async fn the_metrics_listener_serves_metrics_and_readiness_and_the_main_one_does_not() {
    let (server, metrics) = with_metrics_listener().await;
    assert_ne!(metrics, server.addr);
    // Exercise the endpoints so the counters exist.
    let res = client()
        .post(server.url("/token"))
        .basic_auth("bench", Some(BENCH_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = token(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "nope"),
            ("client_id", "public-app"),
        ],
    )
    .await;
    assert_eq!(res.status(), 400);

    let main = client().get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(
        main.status(),
        404,
        "the public listener no longer serves /metrics"
    );

    let res = client()
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    assert!(
        body.contains(
            "steward_tokens_issued_total{grant_type=\"client_credentials\",client_kind=\"pre_registered\"}"
        ),
        "{body}"
    );
    assert!(
        body.contains("steward_token_errors_total{error=\"invalid_grant\"}"),
        "{body}"
    );
    // Every metric exposed carries its description.
    let mut typed = 0;
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            typed += 1;
            let name = rest.split(' ').next().unwrap();
            assert!(body.contains(&format!("# HELP {name} ")), "{name} has no # HELP");
        }
    }
    assert!(typed >= 3, "{body}");
    let ready = client()
        .get(format!("http://{metrics}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    // The private listener serves nothing else.
    let other = client()
        .get(format!("http://{metrics}/token"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    server.stop().await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(metrics).await.is_err(),
        "the metrics listener stops with the server"
    );
}

#[tokio::test]
async fn without_a_metrics_listener_metrics_are_on_the_main_one() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let server = TestServer::start_with(test_settings(dir.path()), dir).await;
    assert!(server.metrics_addr.is_none());
    let res = client().get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn logins_are_counted_by_outcome() {
    let (server, metrics) = with_metrics_listener().await;
    let hash = steward_server::oauth::users::hash_password(PASSWORD).unwrap();
    let now = steward_core::Clock::now(server.state.clock.as_ref());
    steward_server::oauth::users::create_user(server.state.store.as_ref(), "bob", hash, now)
        .await
        .unwrap();
    let scrape = || async {
        client()
            .get(format!("http://{metrics}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let count = |body: &str, series: &str| -> u64 {
        body.lines()
            .find_map(|l| l.strip_prefix(series).map(|v| v.trim().parse::<u64>().unwrap()))
            .unwrap_or(0)
    };
    let before = scrape().await;
    let mut jar = HashMap::new();
    let res = client()
        .get(authorize_url(&server, "public-app", "https://app.example/cb", ""))
        .send()
        .await
        .unwrap();
    cookie_header(&res, &mut jar);
    let html = res.text().await.unwrap();
    assert_eq!(
        post_login(&server, &jar, &html, WRONG_PASSWORD).await.status(),
        401
    );
    assert_eq!(post_login(&server, &jar, &html, PASSWORD).await.status(), 200);
    let after = scrape().await;
    // Other tests in this process count too: at least one more of each.
    for series in [
        "steward_logins_total{outcome=\"failed\"}",
        "steward_logins_total{outcome=\"succeeded\"}",
    ] {
        assert!(
            count(&after, series) > count(&before, series),
            "{series}\n{after}"
        );
    }
    server.stop().await.unwrap();
}
