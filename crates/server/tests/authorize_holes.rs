//! Issue 11, items 1-4 and 13, one test per rule: errors of unverified
//! clients are not redirected before the user approved them; loopback
//! consent is judged per request; metadata error pages say a reason and a
//! request id and nothing of the network; unusable redirect URIs are
//! dropped, not fatal; CSRF values are bound to the login nonce and the
//! session, sign-in ends the old session, and there is a logout.
//!
//! All traffic is loopback: document hosts on 127.0.0.2, names (including
//! `evil.example` and `payroll-db.corp.example`) answered by a loopback test
//! nameserver. Redirect URIs are never followed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::flows::*;
use common::{TestServer, client};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use steward_core::pkce::s256_challenge;
use steward_server::settings::{ClientSettings, Settings};
use steward_store::AuditFilter;
use steward_testkit::{DocumentHost, TestCa, TestNameserver, TestResponse};

/// An authorization request without `redirect_uri` (the sole registered one
/// is used), with `extra` appended.
fn bare_authorize_url(server: &TestServer, client_id: &str, extra: &str) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", client_id)
        .append_pair("code_challenge", &s256_challenge(VERIFIER))
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", "xyz")
        .finish();
    server.url(&format!("/authorize?{q}{extra}"))
}

fn assert_page_headers(res: &reqwest::Response) {
    assert!(
        res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(res.headers()["cache-control"], "no-store");
}

/// A Steward beside an HTTPS document host on 127.0.0.2 that answers for
/// `names`, each resolved to 127.0.0.2 by a loopback nameserver.
struct World {
    server: TestServer,
    host: DocumentHost,
    ns: TestNameserver,
}

async fn world(names: &[&str], tune: impl FnOnce(&mut Settings, &DocumentHost)) -> World {
    let ca = TestCa::new();
    let host = DocumentHost::start("127.0.0.2".parse::<IpAddr>().unwrap(), &ca, names).await;
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
    tune(&mut s, &host);
    let server = TestServer::start_with(s, dir).await;
    World { server, host, ns }
}

async fn audit_of(server: &TestServer, client_id: &str, action: &str) -> Vec<Value> {
    server
        .state
        .store
        .list_audit(&AuditFilter {
            client_id: Some(client_id.to_owned()),
            action: Some(action.to_owned()),
            limit: None,
        })
        .await
        .unwrap()
        .iter()
        .map(|e| serde_json::from_str(&e.detail).unwrap())
        .collect()
}

// ---- item 1: no open redirector for self-published clients --------------------

fn evil_doc(id: &str) -> String {
    json!({
        "client_id": id,
        "client_name": "Totally Legit",
        "redirect_uris": ["https://evil.example/landing"],
    })
    .to_string()
}

#[tokio::test]
async fn errors_of_an_unverified_client_before_sign_in_are_shown_not_redirected() {
    let w = world(&["evil.example"], |_, _| {}).await;
    let id = w.host.url("evil.example", "/client.json");
    w.host.set("/client.json", TestResponse::json(evil_doc(&id)));
    for extra in [
        "&response_type=code&prompt=none",
        "&response_type=code&scope=bogus",
        "&response_type=token",
        "",
    ] {
        let res = client()
            .get(bare_authorize_url(&w.server, &id, extra))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{extra}");
        assert!(
            res.headers().get("location").is_none(),
            "{extra}: never a redirect"
        );
        assert_page_headers(&res);
        let page = res.text().await.unwrap();
        assert!(
            page.contains("<span class=\"host\">evil.example</span>"),
            "{extra}: the page names the destination host: {page}"
        );
        assert!(!page.contains("http-equiv"), "{extra}: no meta refresh");
        assert!(page.contains("request-id"), "{extra}");
    }
    // A valid request is the login page, as before.
    let res = client()
        .get(bare_authorize_url(&w.server, &id, "&response_type=code"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("name=\"password\""));
}

#[tokio::test]
async fn an_operator_verified_metadata_client_gets_its_errors_redirected() {
    let w = world(&["evil.example"], |s, host| {
        s.clients.push(ClientSettings {
            client_id: host.url("evil.example", "/client.json"),
            name: None,
            secret_env: None,
            secret_hash: None,
            grant_types: vec![],
            scopes: vec![],
            redirect_uris: vec![],
            ..Default::default()
        });
    })
    .await;
    let id = w.host.url("evil.example", "/client.json");
    w.host.set("/client.json", TestResponse::json(evil_doc(&id)));
    let res = client()
        .get(bare_authorize_url(
            &w.server,
            &id,
            "&response_type=code&prompt=none",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let (loc, p) = location_params(&res);
    assert!(loc.starts_with("https://evil.example/landing?"), "{loc}");
    assert_eq!(p["error"], "login_required");
}

#[tokio::test]
async fn an_unverified_client_the_user_approved_gets_its_errors_redirected() {
    let w = world(&["evil.example"], |_, _| {}).await;
    add_user(&w.server, "bob").await;
    let id = w.host.url("evil.example", "/client.json");
    w.host.set(
        "/client.json",
        TestResponse::json(evil_doc(&id)).with_header("cache-control", "max-age=3600"),
    );
    let mut b = Browser::new(&w.server);
    let html = b
        .sign_in_to_consent(&bare_authorize_url(&w.server, &id, "&response_type=code"), "bob")
        .await;
    // The consent page named the destination before the user chose it.
    assert!(html.contains("<span class=\"host\">evil.example</span>"));
    let res = b.decide(&html, "approve").await;
    assert_eq!(res.status(), 302);
    // Approved by this user: errors now go back to the client.
    let res = b
        .get(&bare_authorize_url(
            &w.server,
            &id,
            "&response_type=code&scope=bogus",
        ))
        .await;
    assert_eq!(res.status(), 302);
    assert_eq!(location_params(&res).1["error"], "invalid_scope");
    // Another browser, not signed in: still shown, not redirected.
    let res = client()
        .get(bare_authorize_url(
            &w.server,
            &id,
            "&response_type=code&scope=bogus",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("location").is_none());
}

// ---- item 2: loopback consent is judged per request ---------------------------

#[tokio::test]
async fn a_loopback_redirect_of_a_mixed_public_client_asks_every_time() {
    let server = start(false).await;
    add_user(&server, "bob").await;
    let mut b = Browser::new(&server);
    // public-app registers http://127.0.0.1/cb and https://app.example/cb.
    let first = authorize_url(&server, "public-app", "http://127.0.0.1:5000/cb", "");
    let html = b.sign_in_to_consent(&first, "bob").await;
    assert!(
        html.contains("any program on this device can use this client"),
        "{html}"
    );
    assert_eq!(b.decide(&html, "approve").await.status(), 302);

    // Approved once; another local port asks again, with the warning.
    let other_port = authorize_url(&server, "public-app", "http://127.0.0.1:6000/cb", "");
    let res = b.get(&other_port).await;
    assert_eq!(res.status(), 200, "no silent code for a loopback redirect");
    let html = res.text().await.unwrap();
    assert!(html.contains("name=\"decision\" value=\"approve\""));
    assert!(html.contains("any program on this device can use this client"));
    // And prompt=none cannot skip it.
    let res = b
        .get(&authorize_url(
            &server,
            "public-app",
            "http://127.0.0.1:6000/cb",
            "&prompt=none",
        ))
        .await;
    assert_eq!(res.status(), 302);
    let (_, p) = location_params(&res);
    assert_eq!(p["error"], "consent_required");
    assert!(!p.contains_key("code"));

    // The https redirect URI of the same client, once approved, is silent.
    let https = authorize_url(&server, "public-app", "https://app.example/cb", "");
    let html = b.get(&https).await.text().await.unwrap();
    assert!(!html.contains("any program on this device"), "{html}");
    assert_eq!(b.decide(&html, "approve").await.status(), 302);
    let res = b.get(&https).await;
    assert_eq!(res.status(), 302);
    assert!(location_params(&res).1.contains_key("code"));
}

// ---- item 3: metadata error pages keep the network to themselves -------------

fn request_id_of(page: &str) -> String {
    let start = page.find("<code class=\"request-id\">").unwrap() + "<code class=\"request-id\">".len();
    let end = start + page[start..].find('<').unwrap();
    page[start..end].to_owned()
}

#[tokio::test]
async fn metadata_error_pages_give_a_reason_and_a_request_id_never_network_details() {
    let w = world(&["cimd.test"], |_, _| {}).await;
    // An internal name resolving to a loopback address outside allow_networks.
    w.ns.set("payroll-db.corp.example", vec!["127.0.0.9".parse().unwrap()]);
    // A closed port inside allow_networks.
    let closed = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    // An open port that does not speak TLS.
    let plain = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let plain_port = plain.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut s, _)) = plain.accept().await {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
        }
    });
    // A TLS port whose document is missing.
    w.host.set("/gone.json", TestResponse::new(404));
    let cases = [
        format!("https://cimd.test:{closed_port}/client.json"),
        format!("https://cimd.test:{plain_port}/client.json"),
        w.host.url("cimd.test", "/gone.json"),
        "https://payroll-db.corp.example/client.json".to_owned(),
    ];
    let mut seen = Vec::new();
    for id in &cases {
        let res = client()
            .get(bare_authorize_url(&w.server, id, "&response_type=code"))
            .send()
            .await
            .unwrap();
        assert!(res.headers().get("location").is_none(), "{id}");
        assert_page_headers(&res);
        let status = res.status().as_u16();
        let retry_after = res.headers().get("retry-after").is_some();
        let page = res.text().await.unwrap();
        let rid = request_id_of(&page);
        let shown = page.replace(&rid, "RID");
        for leak in [
            "127.0.0",
            "payroll",
            "corp.example",
            "connect",
            "tls",
            "TLS",
            "bad_status",
            "404",
            "blocked",
            "refused",
        ] {
            assert!(!shown.contains(leak), "{id}: the page shows {leak:?}: {page}");
        }
        // The details are in the audit trail, under the page's request id.
        let audited = audit_of(&w.server, id, "client.metadata_rejected").await;
        assert_eq!(audited.len(), 1, "{id}");
        assert_eq!(audited[0]["request_id"], rid.as_str(), "{id}");
        seen.push((status, retry_after, shown));
    }
    let reasons: Vec<Value> = {
        let mut r = Vec::new();
        for id in &cases {
            r.push(audit_of(&w.server, id, "client.metadata_rejected").await[0]["reason"].clone());
        }
        r
    };
    assert_eq!(
        reasons,
        [
            json!("connect"),
            json!("tls"),
            json!("bad_status"),
            json!("blocked_address")
        ]
    );
    for other in &seen[1..] {
        assert_eq!(
            other, &seen[0],
            "every fetch failure looks the same to the visitor"
        );
    }

    // A document's own text never appears on Steward's page.
    let liar = "Your account is locked: call +1 555 0100 now";
    w.host.set(
        "/liar.json",
        TestResponse::json(
            json!({"client_id": liar, "client_name": "x", "redirect_uris": ["http://localhost/cb"]})
                .to_string(),
        ),
    );
    let id = w.host.url("cimd.test", "/liar.json");
    let res = client()
        .get(bare_authorize_url(&w.server, &id, "&response_type=code"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let page = res.text().await.unwrap();
    assert!(page.contains("client_id_mismatch"), "{page}");
    assert!(!page.contains("call +1 555"), "{page}");
    assert!(!page.contains("127.0.0"), "{page}");
    let rid = request_id_of(&page);
    let audited = audit_of(&w.server, &id, "client.metadata_rejected").await;
    assert_eq!(audited[0]["request_id"], rid.as_str());
    assert!(
        audited[0]["problems"][0]
            .as_str()
            .unwrap()
            .contains("call +1 555")
    );
}

// ---- item 4: unusable redirect URIs are dropped, not fatal --------------------

#[tokio::test]
async fn a_document_with_unusable_redirect_uris_signs_in_with_the_usable_one() {
    let w = world(&["cimd.test"], |s, _| {
        s.dev.auto_approve_user = Some("alice".to_owned());
    })
    .await;
    let id = w.host.url("cimd.test", "/inspector.json");
    w.host.set(
        "/inspector.json",
        TestResponse::json(
            json!({
                "client_id": id,
                "client_name": "MCP Inspector",
                "redirect_uris": [
                    "cursor://anysphere.cursor-retrieval/cb",
                    "com.example.inspector:/cb",
                    "http://localhost/callback",
                ],
            })
            .to_string(),
        )
        .with_header("cache-control", "max-age=3600"),
    );
    let res = client()
        .get(authorize_url(
            &w.server,
            &id,
            "http://localhost:61000/callback",
            "",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302, "{}", res.text().await.unwrap());
    let (loc, p) = location_params(&res);
    assert!(loc.starts_with("http://localhost:61000/callback?"));
    assert!(p.contains_key("code"));
    // A dropped entry is never redirected to.
    for dropped in [
        "com.example.inspector:/cb",
        "cursor://anysphere.cursor-retrieval/cb",
    ] {
        let res = client()
            .get(authorize_url(&w.server, &id, dropped, ""))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{dropped}");
        assert!(res.headers().get("location").is_none(), "{dropped}");
    }
    // Each dropped entry is in the audit trail, once for the version.
    let events = audit_of(&w.server, &id, "client.redirect_uris_dropped").await;
    assert_eq!(events.len(), 1, "{events:?}");
    let dropped = events[0]["dropped"].as_array().unwrap();
    assert_eq!(dropped.len(), 2);
    assert_eq!(dropped[0]["index"], 0);
    assert_eq!(dropped[0]["uri"], "cursor://anysphere.cursor-retrieval/cb");
    assert_eq!(dropped[1]["index"], 1);
    assert!(dropped[1]["reason"].as_str().unwrap().contains("private-use"));
    assert!(events[0]["version_id"].is_i64());
}

// ---- item 13: sessions and CSRF ------------------------------------------------

#[tokio::test]
async fn consent_csrf_is_bound_to_the_session() {
    let server = start(false).await;
    add_user(&server, "bob").await;
    add_user(&server, "mallory").await;
    let url = authorize_url(&server, "public-app", "https://app.example/cb", "");
    // The attacker's own browser: a valid consent form and its cookies.
    let mut attacker = Browser::new(&server);
    let attacker_html = attacker.sign_in_to_consent(&url, "mallory").await;
    // The victim's browser is signed in; the attacker plants every cookie
    // except the session and submits the attacker's form values.
    let mut victim = Browser::new(&server);
    victim.sign_in_to_consent(&url, "bob").await;
    let mut planted = attacker.jar.clone();
    planted.insert("steward_session".to_owned(), victim.session());
    victim.jar = planted;
    let res = victim.decide(&attacker_html, "approve").await;
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("location").is_none(), "no code, no redirect");
    assert_page_headers(&res);
}

#[tokio::test]
async fn csrf_rotates_at_sign_in() {
    let server = start(false).await;
    add_user(&server, "bob").await;
    let mut b = Browser::new(&server);
    let url = authorize_url(&server, "public-app", "https://app.example/cb", "");
    let login_html = b.get(&url).await.text().await.unwrap();
    let before = hidden_value(&login_html, "csrf");
    let res = b.login(&login_html, "bob").await;
    assert_eq!(res.status(), 200);
    let consent_html = res.text().await.unwrap();
    let after = hidden_value(&consent_html, "csrf");
    assert_ne!(before, after, "the CSRF value changes at sign-in");
    // The pre-login value no longer opens the consent form.
    let request = hidden_value(&consent_html, "request");
    let res = b
        .post(
            "/authorize/consent",
            &[("decision", "approve"), ("csrf", &before), ("request", &request)],
        )
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(b.decide(&consent_html, "approve").await.status(), 302);
}

#[tokio::test]
async fn a_login_post_from_another_origin_is_refused() {
    let server = start(false).await;
    add_user(&server, "bob").await;
    let mut b = Browser::new(&server);
    let url = authorize_url(&server, "public-app", "https://app.example/cb", "");
    let html = b.get(&url).await.text().await.unwrap();
    let (csrf, request) = (hidden_value(&html, "csrf"), hidden_value(&html, "request"));
    let form = [
        ("username", "bob"),
        ("password", PASSWORD),
        ("csrf", csrf.as_str()),
        ("request", request.as_str()),
    ];
    // A sibling port on localhost is the same site, not the same origin.
    for headers in [
        &[("origin", "http://localhost:1")][..],
        &[("origin", "null")][..],
        &[("sec-fetch-site", "same-site")][..],
        &[("sec-fetch-site", "cross-site")][..],
    ] {
        let res = b.post_with("/authorize/login", &form, headers).await;
        assert_eq!(res.status(), 403, "{headers:?}");
        assert!(!b.jar.contains_key("steward_session"), "{headers:?}");
    }
    let base = server.base.clone();
    let res = b
        .post_with(
            "/authorize/login",
            &form,
            &[("origin", base.as_str()), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(res.status(), 200, "our own origin signs in");
}

#[tokio::test]
async fn a_login_nonce_from_another_browser_does_not_open_the_login_form() {
    let server = start(false).await;
    add_user(&server, "bob").await;
    let url = authorize_url(&server, "public-app", "https://app.example/cb", "");
    let mut a = Browser::new(&server);
    let html = a.get(&url).await.text().await.unwrap();
    let mut b = Browser::new(&server);
    b.get(&url).await;
    // b's nonce with a's form value.
    let res = b.login(&html, "bob").await;
    assert_eq!(res.status(), 403);
}

/// Runs `check` on a server over SQLite, and over PostgreSQL when one answers.
async fn on_both_backends<F, Fut>(check: F)
where
    F: Fn(TestServer) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    check(start(false).await).await;
    let base = std::env::var("STEWARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let Some(url) = common::postgres_schema_url(&base).await else {
        return;
    };
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut s = base_settings(dir.path());
    s.database.url = url.clone();
    check(TestServer::start_with(s, dir).await).await;
    common::drop_schema(&base, &url).await;
}

async fn session_is_live(server: &TestServer, cookie: &str) -> bool {
    let now = server.state.clock.now();
    server
        .state
        .store
        .get_session(&steward_core::secret::token_hash(cookie), now)
        .await
        .unwrap()
        .is_some()
}

async fn prompt_none_with(server: &TestServer, session: &str) -> HashMap<String, String> {
    let res = client()
        .get(authorize_url(
            server,
            "public-app",
            "https://app.example/cb",
            "&prompt=none",
        ))
        .header("cookie", format!("steward_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    location_params(&res).1
}

#[tokio::test]
async fn a_new_sign_in_ends_the_previous_session() {
    on_both_backends(|server| async move {
        add_user(&server, "bob").await;
        let mut b = Browser::new(&server);
        let url = authorize_url(&server, "public-app", "https://app.example/cb", "");
        let html = b.sign_in_to_consent(&url, "bob").await;
        assert_eq!(b.decide(&html, "approve").await.status(), 302);
        let first = b.session();
        assert!(prompt_none_with(&server, &first).await.contains_key("code"));
        // Sign in again in the same browser (prompt=login).
        let again = authorize_url(&server, "public-app", "https://app.example/cb", "&prompt=login");
        let html = b.get(&again).await.text().await.unwrap();
        let res = b.login(&html, "bob").await;
        assert_eq!(res.status(), 302);
        let second = b.session();
        assert_ne!(first, second, "a fresh session id");
        assert!(!session_is_live(&server, &first).await, "the old session ended");
        assert!(session_is_live(&server, &second).await);
        assert_eq!(prompt_none_with(&server, &first).await["error"], "login_required");
        assert!(prompt_none_with(&server, &second).await.contains_key("code"));
    })
    .await;
}

#[tokio::test]
async fn logout_ends_the_session_and_clears_the_cookie() {
    on_both_backends(|server| async move {
        add_user(&server, "bob").await;
        let mut b = Browser::new(&server);
        let url = authorize_url(&server, "public-app", "https://app.example/cb", "");
        let html = b.sign_in_to_consent(&url, "bob").await;
        assert_eq!(b.decide(&html, "approve").await.status(), 302);
        let session = b.session();

        let res = b.get(&server.url("/logout")).await;
        assert_eq!(res.status(), 200);
        assert_page_headers(&res);
        let html = res.text().await.unwrap();
        let csrf = hidden_value(&html, "csrf");
        // Without the session-bound value, or from elsewhere: refused, still signed in.
        assert_eq!(b.post("/logout", &[]).await.status(), 403);
        assert_eq!(
            b.post(
                "/logout",
                &[("csrf", "forged-forged-forged-forged-forged-forged")]
            )
            .await
            .status(),
            403
        );
        let res = b
            .post_with("/logout", &[("csrf", &csrf)], &[("origin", "http://localhost:1")])
            .await;
        assert_eq!(res.status(), 403);
        assert!(session_is_live(&server, &session).await);

        let res = b.post("/logout", &[("csrf", &csrf)]).await;
        assert_eq!(res.status(), 200);
        assert_page_headers(&res);
        let cleared = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|c| c.starts_with("steward_session="))
            .unwrap();
        assert!(cleared.starts_with("steward_session=;"), "{cleared}");
        assert!(cleared.contains("Max-Age=0"), "{cleared}");
        assert!(res.text().await.unwrap().contains("signed out"));
        assert!(
            !session_is_live(&server, &session).await,
            "the session row is gone"
        );
        assert_eq!(
            prompt_none_with(&server, &session).await["error"],
            "login_required"
        );
        let events = server
            .state
            .store
            .list_audit(&AuditFilter {
                client_id: None,
                action: Some("user.logout".to_owned()),
                limit: None,
            })
            .await
            .unwrap();
        assert_eq!(events.len(), 1);
    })
    .await;
}
