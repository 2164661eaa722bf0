//! Issue 4 flows end to end on loopback: authorize (dev auto-approve and the
//! real login and consent forms), token (all three grants), client
//! authentication, refusals, and the concurrency rules.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::Engine;
use common::flows::*;
use common::{TestServer, client};
use serde_json::Value;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use steward_core::pkce::s256_challenge;
use steward_testkit::{DocumentHost, TestCa, TestNameserver, TestResponse};

#[tokio::test]
async fn code_flow_with_refresh_rotation_and_reuse_detection() {
    let server = start(true).await;
    let res = client()
        .get(authorize_url(&server, "public-app", "https://app.example/cb", ""))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let (loc, p) = location_params(&res);
    assert!(loc.starts_with("https://app.example/cb?"));
    assert_eq!(p["state"], "xyz");
    assert_eq!(p["iss"], server.base);

    let res = token(
        &server,
        &[
            ("grant_type", "authorization_code"),
            ("code", &p["code"]),
            ("client_id", "public-app"),
            ("redirect_uri", "https://app.example/cb"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "mcp:tools");
    let at = body["access_token"].as_str().unwrap();
    let now = steward_core::Clock::now(server.state.clock.as_ref());
    let claims: Value = server
        .state
        .keys
        .verifier()
        .verify(
            at,
            &steward_jose::Expectations {
                typ: Some("at+jwt"),
                issuer: &server.base,
                audience: Some(RESOURCE),
                now,
                leeway: 0,
            },
        )
        .unwrap();
    assert_eq!(claims["client_id"], "public-app");
    assert!(claims["sub"].as_str().unwrap().starts_with("usr_"));

    let rt1 = body["refresh_token"].as_str().unwrap().to_owned();
    let res = token(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt1),
            ("client_id", "public-app"),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    let rt2 = res.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(rt1, rt2, "rotated on every use");
    // Reusing the old token revokes the whole family, the new token included.
    let res = token(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt1),
            ("client_id", "public-app"),
        ],
    )
    .await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let res = token(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt2),
            ("client_id", "public-app"),
        ],
    )
    .await;
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_grant");
}

#[tokio::test]
async fn refresh_may_narrow_but_not_widen() {
    let server = start(true).await;
    let res = client()
        .get(authorize_url(
            &server,
            "public-app",
            "https://app.example/cb",
            "&scope=mcp%3Atools%20mcp%3Aadmin",
        ))
        .send()
        .await
        .unwrap();
    let (_, p) = location_params(&res);
    let body: Value = token(
        &server,
        &[
            ("grant_type", "authorization_code"),
            ("code", &p["code"]),
            ("client_id", "public-app"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["scope"], "mcp:admin mcp:tools");
    let rt = body["refresh_token"].as_str().unwrap();
    let narrowed: Value = token(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", "public-app"),
            ("scope", "mcp:tools"),
        ],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(narrowed["scope"], "mcp:tools");
    let rt = narrowed["refresh_token"].as_str().unwrap();
    let widened: Value = token(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", "public-app"),
            ("scope", "mcp:tools other"),
        ],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(widened["error"], "invalid_scope");
}

#[tokio::test]
async fn loopback_redirect_port_is_ignored_and_then_bound_exactly() {
    let server = start(true).await;
    let code = code_for(&server, "public-app", "http://127.0.0.1:54321/cb").await;
    let wrong_port = token(
        &server,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", "public-app"),
            ("redirect_uri", "http://127.0.0.1:54322/cb"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(
        wrong_port.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );

    let code = code_for(&server, "public-app", "http://127.0.0.1:54321/cb").await;
    let ok = token(
        &server,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", "public-app"),
            ("redirect_uri", "http://127.0.0.1:54321/cb"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(ok.status(), 200);
    // The path still matches exactly.
    let res = client()
        .get(authorize_url(
            &server,
            "public-app",
            "http://127.0.0.1:54321/cb2",
            "",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("location").is_none());
}

#[tokio::test]
async fn unknown_client_and_bad_redirect_uri_never_redirect() {
    let server = start(true).await;
    for url in [
        authorize_url(&server, "nobody", "https://app.example/cb", ""),
        authorize_url(&server, "public-app", "https://evil.example/cb", ""),
        authorize_url(&server, "public-app", "https://app.example:443/cb", ""),
        server.url("/authorize?response_type=code&client_id=public-app"),
        server.url("/authorize?response_type=code&client_id=public-app&client_id=bench"),
    ] {
        let res = client().get(&url).send().await.unwrap();
        assert_eq!(res.status(), 400, "{url}");
        assert!(res.headers().get("location").is_none(), "{url}");
        assert!(
            res.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
    }
}

async fn error_of(server: &TestServer, url: &str) -> HashMap<String, String> {
    let res = client().get(url).send().await.unwrap();
    assert_eq!(res.status(), 302, "{url}");
    let (_, p) = location_params(&res);
    assert_eq!(p["iss"], server.base, "iss on error responses too");
    assert_eq!(p["state"], "xyz");
    p
}

#[tokio::test]
async fn refusals_after_the_redirect_uri_is_trusted_redirect_with_iss_and_state() {
    let server = start(true).await;
    let base = |q: &str| {
        server.url(&format!(
            "/authorize?client_id=public-app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=xyz{q}"
        ))
    };
    let challenge = s256_challenge(VERIFIER);
    let p = error_of(&server, &base("&response_type=code")).await;
    assert_eq!(p["error"], "invalid_request", "PKCE is required");
    let p = error_of(
        &server,
        &base(&format!("&response_type=code&code_challenge={challenge}")),
    )
    .await;
    assert_eq!(
        p["error"], "invalid_request",
        "a challenge without a method means plain"
    );
    let p = error_of(
        &server,
        &base(&format!(
            "&response_type=code&code_challenge={challenge}&code_challenge_method=plain"
        )),
    )
    .await;
    assert_eq!(p["error"], "invalid_request");
    let p = error_of(
        &server,
        &base(&format!(
            "&response_type=token&code_challenge={challenge}&code_challenge_method=S256"
        )),
    )
    .await;
    assert_eq!(p["error"], "unsupported_response_type");
    let p = error_of(
        &server,
        &base(&format!(
            "&response_type=code&response_type=code&code_challenge={challenge}&code_challenge_method=S256"
        )),
    )
    .await;
    assert_eq!(p["error"], "invalid_request", "repeated parameter");
    let p = error_of(&server, &base(&format!("&response_type=code&code_challenge={challenge}&code_challenge_method=S256&resource=https%3A%2F%2Fother.example%2F"))).await;
    assert_eq!(p["error"], "invalid_target");
    let p = error_of(&server, &base(&format!("&response_type=code&code_challenge={challenge}&code_challenge_method=S256&resource=https%3A%2F%2Fmcp.example.com%2Fmcp%23frag"))).await;
    assert_eq!(p["error"], "invalid_target");
    let p = error_of(
        &server,
        &base(&format!(
            "&response_type=code&code_challenge={challenge}&code_challenge_method=S256&scope=unknown"
        )),
    )
    .await;
    assert_eq!(p["error"], "invalid_scope");
}

#[tokio::test]
async fn code_replay_is_refused_and_revokes_what_it_issued() {
    let server = start(true).await;
    let code = code_for(&server, "public-app", "https://app.example/cb").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("client_id", "public-app"),
        ("code_verifier", VERIFIER),
    ];
    let first: Value = token(&server, &form).await.json().await.unwrap();
    let at = first["access_token"].as_str().unwrap();
    let jti = {
        let now = steward_core::Clock::now(server.state.clock.as_ref());
        let claims: Value = server
            .state
            .keys
            .verifier()
            .verify(
                at,
                &steward_jose::Expectations {
                    typ: Some("at+jwt"),
                    issuer: &server.base,
                    audience: None,
                    now,
                    leeway: 0,
                },
            )
            .unwrap();
        claims["jti"].as_str().unwrap().to_owned()
    };
    let second = token(&server, &form).await;
    assert_eq!(second.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let record = server.state.store.get_access_token(&jti).await.unwrap().unwrap();
    assert!(
        record.revoked_at.is_some(),
        "tokens from the code are revoked on replay"
    );
    let rt = first["refresh_token"].as_str().unwrap();
    let res = token(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", "public-app"),
        ],
    )
    .await;
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_grant");
}

#[tokio::test]
async fn pkce_mismatch_and_wrong_client_are_invalid_grant() {
    let server = start(true).await;
    let code = code_for(&server, "public-app", "https://app.example/cb").await;
    let res = token(
        &server,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", "public-app"),
            (
                "code_verifier",
                "another-verifier-that-is-long-enough-to-be-valid-000000",
            ),
        ],
    )
    .await;
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let code = code_for(&server, "public-app", "https://app.example/cb").await;
    let res = token(
        &server,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", "public-app"),
        ],
    )
    .await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "invalid_request",
        "code_verifier is required"
    );
}

#[tokio::test]
async fn hundred_parallel_redemptions_give_exactly_one_token() {
    let server = start(true).await;
    let code = code_for(&server, "public-app", "https://app.example/cb").await;
    let url = server.url("/token");
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let url = url.clone();
        let code = code.clone();
        tasks.push(tokio::spawn(async move {
            client()
                .post(url)
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("client_id", "public-app"),
                    ("code_verifier", VERIFIER),
                ])
                .send()
                .await
                .unwrap()
        }));
    }
    let mut issued = Vec::new();
    for t in tasks {
        let res = t.await.unwrap();
        if res.status() == 200 {
            issued.push(res.json::<Value>().await.unwrap());
        }
    }
    assert_eq!(issued.len(), 1, "exactly one redemption succeeds");
    // The other 99 were valid replays (same client and verifier): whatever
    // the interleaving, including replays that arrived while the winner was
    // still issuing, the one issuance ends revoked (OAuth 2.1 §4.1.3).
    let at = issued[0]["access_token"].as_str().unwrap();
    assert_eq!(introspect(&server, at).await["active"], false);
    let res = token(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", issued[0]["refresh_token"].as_str().unwrap()),
            ("client_id", "public-app"),
        ],
    )
    .await;
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_grant");
}

#[tokio::test]
async fn parallel_refreshes_give_exactly_one_success() {
    let server = start(true).await;
    let code = code_for(&server, "public-app", "https://app.example/cb").await;
    let body: Value = token(
        &server,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", "public-app"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
    .json()
    .await
    .unwrap();
    let rt = body["refresh_token"].as_str().unwrap().to_owned();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let url = server.url("/token");
        let rt = rt.clone();
        tasks.push(tokio::spawn(async move {
            let res = client()
                .post(url)
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &rt),
                    ("client_id", "public-app"),
                ])
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        if status == 200 {
            winners.push(body["refresh_token"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(winners.len(), 1, "exactly one rotation wins");
}

#[tokio::test]
async fn client_credentials_with_basic_and_post() {
    let server = start(false).await;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("bench:{BENCH_SECRET}"));
    let res = client()
        .post(server.url("/token"))
        .header("authorization", format!("Basic {basic}"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["scope"], "mcp:tools");
    assert!(body.get("refresh_token").is_none());
    let res = token(
        &server,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "bench"),
            ("client_secret", BENCH_SECRET),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);

    // Two methods at once.
    let res = client()
        .post(server.url("/token"))
        .header("authorization", format!("Basic {basic}"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "bench"),
            ("client_secret", BENCH_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_request");
    // A wrong secret through the header: 401 with WWW-Authenticate.
    let wrong = base64::engine::general_purpose::STANDARD.encode("bench:wrong-secret-0123456789");
    let res = client()
        .post(server.url("/token"))
        .header("authorization", format!("Basic {wrong}"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    assert_eq!(res.headers()["cache-control"], "no-store");
    // A public client may not use client_credentials.
    let res = token(
        &server,
        &[("grant_type", "client_credentials"), ("client_id", "public-app")],
    )
    .await;
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "unauthorized_client");
    // Unknown grant type.
    let res = token(
        &server,
        &[("grant_type", "password"), ("client_id", "public-app")],
    )
    .await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
}

#[tokio::test]
async fn login_and_consent_forms_issue_a_code() {
    let server = start(false).await;
    let hash = steward_server::oauth::users::hash_password("a-long-enough-password").unwrap();
    let now = steward_core::Clock::now(server.state.clock.as_ref());
    steward_server::oauth::users::create_user(server.state.store.as_ref(), "bob", hash, now)
        .await
        .unwrap();
    let mut jar = HashMap::new();

    let res = client()
        .get(authorize_url(&server, "public-app", "https://app.example/cb", ""))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(res.headers()["referrer-policy"], "no-referrer");
    cookie_header(&res, &mut jar);
    let html = res.text().await.unwrap();
    assert!(html.contains("name=\"username\"") && html.contains("name=\"password\""));
    let csrf = hidden_value(&html, "csrf");
    let request = hidden_value(&html, "request");

    // Unknown user and wrong password: the same answer.
    let login = |user: &'static str, pw: &'static str, csrf: String, request: String, cookies: String| {
        let url = server.url("/authorize/login");
        async move {
            client()
                .post(url)
                .header("cookie", cookies)
                .form(&[
                    ("username", user),
                    ("password", pw),
                    ("csrf", &csrf),
                    ("request", &request),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let a = login(
        "nobody",
        "whatever-password",
        csrf.clone(),
        request.clone(),
        jar_string(&jar),
    )
    .await;
    let b = login(
        "bob",
        "wrong-password-123",
        csrf.clone(),
        request.clone(),
        jar_string(&jar),
    )
    .await;
    assert_eq!(a.status(), b.status());
    let (ta, tb) = (a.text().await.unwrap(), b.text().await.unwrap());
    assert!(
        ta.contains("The username or password is incorrect.")
            && tb.contains("The username or password is incorrect.")
    );
    // Missing CSRF token: refused.
    let res = login(
        "bob",
        "a-long-enough-password",
        String::new(),
        request.clone(),
        jar_string(&jar),
    )
    .await;
    assert_eq!(res.status(), 403);

    let res = login(
        "bob",
        "a-long-enough-password",
        csrf.clone(),
        request.clone(),
        jar_string(&jar),
    )
    .await;
    // A successful login continues straight to consent (no replay of the request).
    assert_eq!(res.status(), 200, "consent page");
    cookie_header(&res, &mut jar);
    let html = res.text().await.unwrap();
    assert!(html.contains("app.example"), "redirect host shown");
    assert!(html.contains("Use the server&#39;s tools") || html.contains("Use the server's tools"));
    assert!(html.contains("name=\"decision\" value=\"approve\""));
    let csrf = hidden_value(&html, "csrf");
    let request = hidden_value(&html, "request");
    let res = client()
        .post(server.url("/authorize/consent"))
        .header("cookie", jar_string(&jar))
        .form(&[("decision", "approve"), ("csrf", &csrf), ("request", &request)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let (_, p) = location_params(&res);
    assert!(p.contains_key("code"));
    assert_eq!(p["iss"], server.base);

    // Approved once for this https redirect URI: the next request skips consent.
    let res = client()
        .get(authorize_url(&server, "public-app", "https://app.example/cb", ""))
        .header("cookie", jar_string(&jar))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);

    // A loopback-only public client is asked every time; deny answers access_denied.
    let res = client()
        .get(authorize_url(
            &server,
            "public-app",
            "http://127.0.0.1:5000/cb",
            "&prompt=consent",
        ))
        .header("cookie", jar_string(&jar))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    let res = client()
        .post(server.url("/authorize/consent"))
        .header("cookie", jar_string(&jar))
        .form(&[
            ("decision", "deny"),
            ("csrf", &hidden_value(&html, "csrf")),
            ("request", &hidden_value(&html, "request")),
        ])
        .send()
        .await
        .unwrap();
    let (_, p) = location_params(&res);
    assert_eq!(p["error"], "access_denied");
    assert_eq!(p["state"], "xyz");
}

#[tokio::test]
async fn prompt_none_without_a_session_is_login_required() {
    let server = start(false).await;
    let p = error_of(
        &server,
        &authorize_url(&server, "public-app", "https://app.example/cb", "&prompt=none"),
    )
    .await;
    assert_eq!(p["error"], "login_required");
}

#[tokio::test]
async fn failed_logins_are_limited_per_account() {
    let server = start(false).await;
    let res = client()
        .get(authorize_url(&server, "public-app", "https://app.example/cb", ""))
        .send()
        .await
        .unwrap();
    let mut jar = HashMap::new();
    cookie_header(&res, &mut jar);
    let html = res.text().await.unwrap();
    let (csrf, request) = (hidden_value(&html, "csrf"), hidden_value(&html, "request"));
    let mut last = 0;
    for _ in 0..6 {
        let res = client()
            .post(server.url("/authorize/login"))
            .header("cookie", jar_string(&jar))
            .form(&[
                ("username", "carol"),
                ("password", "nope-nope-nope"),
                ("csrf", &csrf),
                ("request", &request),
            ])
            .send()
            .await
            .unwrap();
        last = res.status().as_u16();
    }
    assert_eq!(last, 429);
}

#[tokio::test]
async fn metadata_document_client_full_flow_without_fetch_at_token() {
    let ca = TestCa::new();
    let host = DocumentHost::start("127.0.0.2".parse::<IpAddr>().unwrap(), &ca, &["cimd.test"]).await;
    let ns = TestNameserver::start("127.0.0.1".parse::<IpAddr>().unwrap()).await;
    ns.set("cimd.test", vec!["127.0.0.2".parse().unwrap()]);
    let dir = Arc::new(tempfile::tempdir().unwrap());
    std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).unwrap();
    let mut s = base_settings(dir.path());
    s.egress.allow_networks = vec!["127.0.0.2/32".parse().unwrap()];
    s.egress.extra_root_certs = vec![dir.path().join("ca.pem")];
    s.egress.dns_servers = vec![ns.addr()];
    s.dev.auto_approve_user = Some("alice".to_owned());
    let server = TestServer::start_with(s, dir).await;

    let id = host.url("cimd.test", "/client.json");
    let doc = serde_json::json!({
        "client_id": id, "client_name": "Doc Client",
        "redirect_uris": ["http://localhost/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
    });
    host.set(
        "/client.json",
        TestResponse::json(doc.to_string()).with_header("cache-control", "max-age=3600"),
    );
    let res = client()
        .get(authorize_url(&server, &id, "http://localhost:61000/callback", ""))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302, "{}", res.text().await.unwrap());
    let (_, p) = location_params(&res);
    assert_eq!(host.hits("/client.json"), 1);
    let res = token(
        &server,
        &[
            ("grant_type", "authorization_code"),
            ("code", &p["code"]),
            ("client_id", &id),
            ("redirect_uri", "http://localhost:61000/callback"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let rt = body["refresh_token"].as_str().unwrap();
    let res = token(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", &id),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(host.hits("/client.json"), 1, "the token endpoint never fetches");

    // A suspended client gets nothing, at once.
    server
        .state
        .store
        .set_client_state(
            &id,
            steward_core::LifecycleState::Suspended,
            steward_core::UnixTime(0),
        )
        .await
        .unwrap();
    let res = client()
        .get(authorize_url(&server, &id, "http://localhost:61000/callback", ""))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("location").is_none());
}

#[tokio::test]
async fn introspection_and_revocation() {
    let server = start(true).await;
    let code = code_for(&server, "public-app", "https://app.example/cb").await;
    let body: Value = token(
        &server,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", "public-app"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
    .json()
    .await
    .unwrap();
    let at = body["access_token"].as_str().unwrap();
    let rt = body["refresh_token"].as_str().unwrap();

    // `bench` is the resource's introspection client.
    let active = introspect(&server, at).await;
    assert_eq!(active["active"], true);
    assert_eq!(active["aud"], RESOURCE);
    assert_eq!(active["client_id"], "public-app");
    assert_eq!(
        introspect(&server, "not-a-token").await,
        serde_json::json!({"active": false})
    );

    // A public client cannot introspect.
    let res = client()
        .post(server.url("/introspect"))
        .form(&[("token", at), ("client_id", "public-app")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // Another client revoking it changes nothing (and learns nothing).
    let res = client()
        .post(server.url("/revoke"))
        .form(&[
            ("token", rt),
            ("client_id", "bench"),
            ("client_secret", BENCH_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(introspect(&server, at).await["active"], true);

    // Revoking the refresh token revokes its family and the grant's access tokens.
    let res = client()
        .post(server.url("/revoke"))
        .form(&[("token", rt), ("client_id", "public-app")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(introspect(&server, at).await["active"], false);
    let res = token(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", "public-app"),
        ],
    )
    .await;
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_grant");
    // Unknown tokens: 200 all the same.
    let res = client()
        .post(server.url("/revoke"))
        .form(&[("token", "unknown"), ("client_id", "public-app")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn client_credentials_token_is_introspectable_and_expires() {
    let server = start(false).await;
    let body: Value = token(
        &server,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "bench"),
            ("client_secret", BENCH_SECRET),
        ],
    )
    .await
    .json()
    .await
    .unwrap();
    let at = body["access_token"].as_str().unwrap();
    let v = introspect(&server, at).await;
    assert_eq!(v["active"], true);
    assert_eq!(v["sub"], "bench");
    server.clock.advance(601);
    assert_eq!(introspect(&server, at).await["active"], false, "expired");
}

#[tokio::test]
async fn discovery_lists_the_protocol_endpoints() {
    let server = start(false).await;
    let doc: Value = client()
        .get(server.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (k, path) in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("revocation_endpoint", "/revoke"),
        ("introspection_endpoint", "/introspect"),
    ] {
        assert_eq!(doc[k].as_str().unwrap(), format!("{}{path}", server.base));
    }
    assert_eq!(
        doc["scopes_supported"],
        serde_json::json!(["mcp:admin", "mcp:tools"])
    );
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    // CORS on the token endpoint, never on authorize.
    let res = client()
        .post(server.url("/token"))
        .header("origin", "https://app.example")
        .form(&[("grant_type", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    let res = client()
        .get(authorize_url(&server, "public-app", "https://app.example/cb", ""))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

/// Whether the session with this id hash is still live in the store.
async fn session_live(server: &TestServer, hash: &str) -> bool {
    let now = server.state.clock.now();
    server.state.store.get_session(hash, now).await.unwrap().is_some()
}

/// Issue 15 item 5: the login page names a configured client by the name
/// its operators gave it; the consent page says who is signed in and lets
/// someone else sign in instead: the session ends (its cookie is cleared
/// and it is no longer accepted) and the same request asks for a sign-in.
/// The switch is bound to the session's CSRF value like the decision.
#[tokio::test]
async fn consent_shows_who_is_signed_in_and_can_switch_account() {
    let server = start(false).await;
    add_user(&server, "alice").await;
    add_user(&server, "bob").await;
    let url = authorize_url(&server, "public-app", "https://app.example/cb", "&prompt=consent");
    let mut browser = Browser::new(&server);
    let login = browser.get(&url).await.text().await.unwrap();
    assert!(
        login.contains("to continue to <strong>Public App</strong>"),
        "{login}"
    );
    dump_page("login-configured", &login);
    let res = browser.login(&login, "alice").await;
    let consent = res.text().await.unwrap();
    dump_page("consent-signed-in", &consent);
    assert!(
        consent.contains("Signed in as <strong>alice</strong>"),
        "{consent}"
    );
    let alice_session = browser.session();

    // Another site's form (no valid CSRF value) cannot end the session.
    let request = hidden_value(&consent, "request");
    let forged = browser
        .post(
            "/authorize/consent",
            &[("decision", "switch"), ("csrf", "forged"), ("request", &request)],
        )
        .await;
    assert_ne!(forged.status(), 200);
    let hash = steward_core::secret::token_hash(&alice_session);
    assert!(
        session_live(&server, &hash).await,
        "the forged switch ended nothing"
    );

    let switched = browser.decide(&consent, "switch").await;
    assert_eq!(switched.status(), 200);
    let cleared = switched
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("steward_session=;"));
    assert!(cleared, "the session cookie is cleared");
    let page = switched.text().await.unwrap();
    assert!(page.contains("name=\"password\""), "{page}");
    assert!(!session_live(&server, &hash).await, "the session is gone");

    let res = browser.login(&page, "bob").await;
    let consent = res.text().await.unwrap();
    assert!(consent.contains("Signed in as <strong>bob</strong>"), "{consent}");
    let res = browser.decide(&consent, "approve").await;
    assert_eq!(res.status(), 302);
    let (_, p) = location_params(&res);
    let code = steward_core::secret::token_hash(&p["code"]);
    let record = server.state.store.get_code(&code).await.unwrap().unwrap();
    let bob = server.state.store.get_user_by_name("bob").await.unwrap().unwrap();
    assert_eq!(record.user_id, bob.id);
}

/// Issue 15 item 5: an error page says what the person can do next and
/// carries the request id (also in the response header); what went wrong in
/// protocol terms is set apart for the application's developer.
#[tokio::test]
async fn error_pages_say_what_to_do_next_and_carry_the_request_id() {
    let server = start(false).await;
    let unknown = client()
        .get(authorize_url(&server, "nobody", "https://app.example/cb", ""))
        .send()
        .await
        .unwrap();
    let id = unknown.headers()["x-request-id"].to_str().unwrap().to_owned();
    let html = unknown.text().await.unwrap();
    assert!(html.contains("Go back to it and check"), "{html}");
    assert!(
        html.contains(&format!("<code class=\"request-id\">{id}</code>")),
        "{html}"
    );

    let repeated = format!(
        "{}&redirect_uri=https%3A%2F%2Fapp.example%2Fcb",
        authorize_url(&server, "public-app", "https://app.example/cb", "")
    );
    let res = client().get(repeated).send().await.unwrap();
    assert_eq!(res.status(), 400);
    let html = res.text().await.unwrap();
    dump_page("error-invalid-request", &html);
    assert!(html.contains("Go back to it and try again"), "{html}");
    assert!(
        html.contains("For the application&#39;s developer: redirect_uri is repeated."),
        "{html}"
    );
    assert!(html.contains("class=\"request-id\""), "{html}");
}
