//! Issue 15 item 1: behind a reverse proxy. The client address comes from
//! `X-Forwarded-For` only when the TCP peer is a trusted proxy; limits are
//! keyed by it, so one client's failures do not lock out another behind the
//! same proxy — and without a trusted proxy a forged header changes nothing.
//! The test client connects from 127.0.0.1, which plays the proxy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::flows::*;
use common::{TestServer, client};
use std::collections::HashMap;
use std::sync::Arc;

/// A sign-in form, opened as the forwarded client `forwarded_for`.
struct LoginForm {
    cookies: String,
    csrf: String,
    request: String,
}

async fn login_form(server: &TestServer) -> LoginForm {
    let res = client()
        .get(authorize_url(server, "public-app", "https://app.example/cb", ""))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut jar = HashMap::new();
    cookie_header(&res, &mut jar);
    let html = res.text().await.unwrap();
    LoginForm {
        cookies: jar_string(&jar),
        csrf: hidden_value(&html, "csrf"),
        request: hidden_value(&html, "request"),
    }
}

impl LoginForm {
    /// A wrong password for `user`, sent with `X-Forwarded-For: {forwarded_for}`.
    async fn fail(&self, server: &TestServer, user: &str, forwarded_for: &str) -> u16 {
        client()
            .post(server.url("/authorize/login"))
            .header("cookie", &self.cookies)
            .header("x-forwarded-for", forwarded_for)
            .form(&[
                ("username", user),
                ("password", "wrong-password-123"),
                ("csrf", &self.csrf),
                ("request", &self.request),
            ])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

/// A server whose per-address sign-in limit is 3 (and per-account limits
/// out of the way: each attempt names another user).
async fn server(trusted_proxies: &[&str]) -> TestServer {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut s = base_settings(dir.path());
    s.login.max_failures_per_address = 3;
    s.http.trusted_proxies = trusted_proxies.iter().map(|p| (*p).to_owned()).collect();
    TestServer::start_with(s, dir).await
}

#[tokio::test]
async fn behind_a_trusted_proxy_one_clients_failures_do_not_lock_out_another() {
    let server = server(&["127.0.0.1"]).await;
    let form = login_form(&server).await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        // The leftmost value is the attacker's own forgery; the proxy appended the real one.
        statuses.push(
            form.fail(&server, &format!("user{i}"), "198.51.100.1, 203.0.113.7")
                .await,
        );
    }
    assert_eq!(
        statuses,
        vec![401, 401, 401, 429],
        "the attacker's address is locked"
    );
    // Another client behind the same proxy is not.
    assert_eq!(form.fail(&server, "user9", "203.0.113.8").await, 401);
    // Nor is the address the attacker wrote at the left.
    assert_eq!(form.fail(&server, "user10", "198.51.100.1").await, 401);
    // The audit trail names the forwarded address, not the proxy's.
    let filter = steward_store::AuditFilter {
        action: Some("user.login_failed".to_owned()),
        ..Default::default()
    };
    let audit = server.state.store.list_audit(&filter).await.unwrap();
    let addresses: Vec<String> = audit.iter().map(|e| e.detail.clone()).collect();
    assert!(
        addresses.iter().any(|d| d.contains("203.0.113.7")),
        "{addresses:?}"
    );
    assert!(
        !addresses.iter().any(|d| d.contains("127.0.0.1")),
        "{addresses:?}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn without_a_trusted_proxy_forged_headers_change_nothing() {
    let server = server(&[]).await;
    let form = login_form(&server).await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        statuses.push(
            form.fail(&server, &format!("user{i}"), &format!("203.0.113.{i}"))
                .await,
        );
    }
    // Every attempt counted against the peer (127.0.0.1), whatever the header said.
    assert_eq!(statuses, vec![401, 401, 401, 429]);
    assert_eq!(form.fail(&server, "user9", "203.0.113.99").await, 429);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_proxy_outside_the_list_is_not_believed() {
    // 127.0.0.2 is trusted; the requests come from 127.0.0.1.
    let server = server(&["127.0.0.2", "10.0.0.0/8"]).await;
    let form = login_form(&server).await;
    for i in 0..3 {
        form.fail(&server, &format!("user{i}"), "203.0.113.7").await;
    }
    assert_eq!(form.fail(&server, "user9", "203.0.113.8").await, 429);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn forwarded_proto_and_host_never_change_the_issuer() {
    let server = server(&["127.0.0.1"]).await;
    let res = client()
        .get(server.url("/.well-known/oauth-authorization-server"))
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .header("forwarded", "for=203.0.113.7;host=evil.example;proto=https")
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["issuer"], server.base.as_str());
    assert!(!body.to_string().contains("evil.example"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_request_id_is_taken_from_a_trusted_proxy_and_shown_on_the_error_page() {
    let server = server(&["127.0.0.1"]).await;
    let res = client()
        .get(authorize_url(
            &server,
            "no-such-client",
            "https://app.example/cb",
            "",
        ))
        .header("x-request-id", "edge-4f1c2a")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "edge-4f1c2a");
    let page = res.text().await.unwrap();
    assert!(
        page.contains("edge-4f1c2a"),
        "the error page carries the id: {page}"
    );
    // A hostile id is replaced by a fresh one.
    let res = client()
        .get(server.url("/healthz"))
        .header("x-request-id", "<script>alert(1)</script>")
        .send()
        .await
        .unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 16, "{id}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_request_id_from_an_untrusted_peer_is_not_taken() {
    let server = server(&[]).await;
    let res = client()
        .get(authorize_url(
            &server,
            "no-such-client",
            "https://app.example/cb",
            "",
        ))
        .header("x-request-id", "forged-id-123")
        .send()
        .await
        .unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(id, "forged-id-123");
    let page = res.text().await.unwrap();
    assert!(!page.contains("forged-id-123"));
    assert!(page.contains(&id), "the page shows the id in the header: {page}");
    server.stop().await.unwrap();
}
