//! Issue 4, one test per rule: prompt handling, consent rules and warnings,
//! the login and client-authentication limits, code and token refusals,
//! opaque tokens, revocation and introspection boundaries, installations,
//! private_key_jwt at the token endpoint, logos and the CIMD allow-list.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::flows::*;
use common::{TestServer, client};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use steward_testkit::TestResponse;

const PASSWORD: &str = "a-long-enough-password";

/// A browser: a cookie jar and the last page's form values.
struct Browser<'a> {
    server: &'a TestServer,
    jar: HashMap<String, String>,
}

impl<'a> Browser<'a> {
    fn new(server: &'a TestServer) -> Self {
        Browser {
            server,
            jar: HashMap::new(),
        }
    }

    async fn get(&mut self, url: &str) -> reqwest::Response {
        let res = client()
            .get(url)
            .header("cookie", jar_string(&self.jar))
            .send()
            .await
            .unwrap();
        cookie_header(&res, &mut self.jar);
        res
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let res = client()
            .post(self.server.url(path))
            .header("cookie", jar_string(&self.jar))
            .form(form)
            .send()
            .await
            .unwrap();
        cookie_header(&res, &mut self.jar);
        res
    }

    /// Submits the login form found in `html`.
    async fn login(&mut self, html: &str, user: &str, password: &str) -> reqwest::Response {
        let (csrf, request) = (hidden_value(html, "csrf"), hidden_value(html, "request"));
        self.post(
            "/authorize/login",
            &[
                ("username", user),
                ("password", password),
                ("csrf", &csrf),
                ("request", &request),
            ],
        )
        .await
    }

    /// Opens `url` (the login page) and signs in as `user`.
    async fn sign_in(&mut self, url: &str, user: &str) -> reqwest::Response {
        let html = self.get(url).await.text().await.unwrap();
        self.login(&html, user, PASSWORD).await
    }

    /// Submits the consent form found in `html`.
    async fn decide(&mut self, html: &str, decision: &str) -> reqwest::Response {
        let (csrf, request) = (hidden_value(html, "csrf"), hidden_value(html, "request"));
        self.post(
            "/authorize/consent",
            &[("decision", decision), ("csrf", &csrf), ("request", &request)],
        )
        .await
    }

    /// Signs in as `user` through the forms, approving consent; returns the code.
    async fn code_via_forms(&mut self, url: &str, user: &str) -> String {
        let res = self.get(url).await;
        let mut html = res.text().await.unwrap();
        if html.contains("name=\"password\"") {
            let res = self.login(&html, user, PASSWORD).await;
            if res.status() == 302 {
                return location_params(&res).1["code"].clone();
            }
            html = res.text().await.unwrap();
        }
        let res = self.decide(&html, "approve").await;
        assert_eq!(res.status(), 302);
        location_params(&res).1["code"].clone()
    }
}

async fn add_user(server: &TestServer, name: &str) {
    let hash = steward_server::oauth::users::hash_password(PASSWORD).unwrap();
    let now = server.state.clock.now();
    steward_server::oauth::users::create_user(server.state.store.as_ref(), name, hash, now)
        .await
        .unwrap();
}

async fn redeem(server: &TestServer, code: &str, client_id: &str) -> Value {
    let res = token(
        server,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", client_id),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    res.json().await.unwrap()
}

fn jwt_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

// ---- prompt ------------------------------------------------------------------

#[tokio::test]
async fn prompt_login_asks_again_once_and_then_completes() {
    let server = start(false).await;
    add_user(&server, "bob").await;
    let mut b = Browser::new(&server);
    let url = authorize_url(&server, "public-app", "https://app.example/cb", "");
    b.code_via_forms(&url, "bob").await;

    // Signed in, with a grant: prompt=login still shows the login form ...
    let url = authorize_url(&server, "public-app", "https://app.example/cb", "&prompt=login");
    let res = b.get(&url).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("name=\"password\""),
        "prompt=login re-authenticates"
    );
    // ... and signing in completes the request instead of asking forever.
    let res = b.login(&html, "bob", PASSWORD).await;
    assert_eq!(res.status(), 302, "the request completes after one login");
    let (_, p) = location_params(&res);
    assert!(p.contains_key("code"));
    assert_eq!(p["iss"], server.base);
}

#[tokio::test]
async fn prompt_consent_asks_even_with_a_grant_and_prompt_none_needs_one() {
    let server = start(false).await;
    add_user(&server, "bob").await;
    let mut b = Browser::new(&server);
    // Signed in but never approved: prompt=none is consent_required.
    let res = b
        .sign_in(
            &authorize_url(&server, "public-app", "https://app.example/cb", ""),
            "bob",
        )
        .await;
    assert_eq!(res.status(), 200, "consent page after login");
    let res = b
        .get(&authorize_url(
            &server,
            "public-app",
            "https://app.example/cb",
            "&prompt=none",
        ))
        .await;
    assert_eq!(res.status(), 302);
    let (_, p) = location_params(&res);
    assert_eq!(p["error"], "consent_required");
    assert_eq!(p["state"], "xyz");

    // Approve once; then prompt=consent still asks.
    let code = b
        .code_via_forms(
            &authorize_url(&server, "public-app", "https://app.example/cb", ""),
            "bob",
        )
        .await;
    assert!(!code.is_empty());
    let res = b
        .get(&authorize_url(
            &server,
            "public-app",
            "https://app.example/cb",
            "&prompt=consent",
        ))
        .await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("name=\"decision\""));
    // Without prompt the approved installation gets a code directly.
    let res = b
        .get(&authorize_url(
            &server,
            "public-app",
            "https://app.example/cb",
            "&prompt=none",
        ))
        .await;
    assert_eq!(res.status(), 302);
    assert!(location_params(&res).1.contains_key("code"));
}

// ---- consent -----------------------------------------------------------------

#[tokio::test]
async fn loopback_only_public_client_is_asked_every_time_with_warnings() {
    let server = start(false).await;
    add_user(&server, "bob").await;
    let mut b = Browser::new(&server);
    let url = authorize_url(&server, "loopback-app", "http://localhost:53123/callback", "");
    b.code_via_forms(&url, "bob").await;
    // The same installation again, signed in and approved: still asked.
    let res = b.get(&url).await;
    assert_eq!(res.status(), 200, "consent is asked every time");
    let html = res.text().await.unwrap();
    assert!(html.contains("name=\"decision\" value=\"approve\""));
    assert!(html.contains("any program on this device can use this client"));
    assert!(html.contains("This application is new to this server."));
    // Leads with what the server knows of the client (its operators' name
    // for a configured client) and the host of the redirect URI.
    assert!(html.contains("<strong>Loopback App</strong>, registered on this server, wants to access"));
    assert!(html.contains("Client id: loopback-app"));
    assert!(html.contains("<span class=\"host\">localhost</span>"));

    // After a day the client is no longer new; the loopback warning stays.
    server.clock.advance(2 * 86_400);
    let res = b.get(&url).await;
    let html = res.text().await.unwrap();
    if html.contains("name=\"password\"") {
        // The session may have expired; sign in again.
        let res = b.login(&html, "bob", PASSWORD).await;
        let html = res.text().await.unwrap();
        assert!(!html.contains("new to this server"));
        assert!(html.contains("any program on this device"));
    } else {
        assert!(!html.contains("new to this server"));
        assert!(html.contains("any program on this device"));
    }
}

#[tokio::test]
async fn consent_form_without_the_csrf_cookie_value_is_refused() {
    let server = start(false).await;
    add_user(&server, "bob").await;
    let mut b = Browser::new(&server);
    let res = b
        .sign_in(
            &authorize_url(&server, "public-app", "https://app.example/cb", ""),
            "bob",
        )
        .await;
    let html = res.text().await.unwrap();
    let request = hidden_value(&html, "request");
    let res = b
        .post(
            "/authorize/consent",
            &[
                ("decision", "approve"),
                ("csrf", "forged-value-forged-value-forged-value-00"),
                ("request", &request),
            ],
        )
        .await;
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("location").is_none(), "no code, no redirect");
}

#[tokio::test]
async fn session_cookie_is_httponly_lax_and_path_root() {
    let server = start(false).await;
    add_user(&server, "bob").await;
    let mut b = Browser::new(&server);
    let res = b
        .sign_in(
            &authorize_url(&server, "public-app", "https://app.example/cb", ""),
            "bob",
        )
        .await;
    let set: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let session = set.iter().find(|c| c.starts_with("steward_session=")).unwrap();
    for attr in ["Path=/", "HttpOnly", "SameSite=Lax", "Max-Age="] {
        assert!(session.contains(attr), "{session}");
    }
    // Plain-http loopback issuer: no Secure flag (and so no __Host- prefix);
    // the https form is covered by the unit test in authorize.rs.
    assert!(!session.contains("Secure"));
}

// ---- login limits ---------------------------------------------------------------

#[tokio::test]
async fn failed_logins_are_limited_per_client_address() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut s = base_settings(dir.path());
    s.login.max_failures_per_address = 3;
    s.login.max_failures_per_account = 100;
    let server = TestServer::start_with(s, dir).await;
    add_user(&server, "bob").await;
    let mut b = Browser::new(&server);
    let res = b
        .get(&authorize_url(
            &server,
            "public-app",
            "https://app.example/cb",
            "",
        ))
        .await;
    let html = res.text().await.unwrap();
    // Different accounts from one address: the address limit applies.
    for user in ["u1", "u2", "u3"] {
        let res = b.login(&html, user, "wrong-password-123").await;
        assert_eq!(res.status(), 401);
    }
    let res = b.login(&html, "bob", PASSWORD).await;
    assert_eq!(res.status(), 429, "even the right password waits out the window");
}

// ---- token endpoint ---------------------------------------------------------------

#[tokio::test]
async fn expired_code_is_invalid_grant() {
    let server = start(true).await;
    let code = code_for(&server, "public-app", "https://app.example/cb").await;
    server.clock.advance(61);
    let body = redeem(&server, &code, "public-app").await;
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn repeated_token_parameters_are_invalid_request() {
    let server = start(true).await;
    let code = code_for(&server, "public-app", "https://app.example/cb").await;
    let res = token(
        &server,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code", &code),
            ("client_id", "public-app"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_request");
    // The refused request consumed nothing: the code still works once.
    let body = redeem(&server, &code, "public-app").await;
    assert!(body["access_token"].is_string(), "{body}");
}

#[tokio::test]
async fn relative_resource_is_invalid_target() {
    let server = start(true).await;
    for bad in ["/mcp", "mcp.example.com/mcp", "https://mcp.example.com/mcp#frag"] {
        let url = authorize_url(
            &server,
            "public-app",
            "https://app.example/cb",
            &format!(
                "&resource={}",
                url::form_urlencoded::byte_serialize(bad.as_bytes()).collect::<String>()
            ),
        );
        let res = client().get(url).send().await.unwrap();
        assert_eq!(res.status(), 302, "{bad}");
        let (_, p) = location_params(&res);
        assert_eq!(p["error"], "invalid_target", "{bad}");
        assert_eq!(p["iss"], server.base);
    }
}

#[tokio::test]
async fn refreshed_access_tokens_keep_auth_time() {
    let server = start(true).await;
    let code = code_for(&server, "public-app", "https://app.example/cb").await;
    let body = redeem(&server, &code, "public-app").await;
    let first = jwt_claims(body["access_token"].as_str().unwrap());
    assert!(first["auth_time"].is_i64());
    server.clock.advance(30);
    let res = token(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", body["refresh_token"].as_str().unwrap()),
            ("client_id", "public-app"),
        ],
    )
    .await;
    let refreshed: Value = res.json().await.unwrap();
    let second = jwt_claims(refreshed["access_token"].as_str().unwrap());
    assert_eq!(second["auth_time"], first["auth_time"]);
    assert!(second["iat"].as_i64() > first["iat"].as_i64());
}

#[tokio::test]
async fn repeated_client_secret_failures_lock_the_client_out_for_a_while() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut s = base_settings(dir.path());
    s.tokens.client_auth_max_failures = 3;
    let server = TestServer::start_with(s, dir).await;
    let attempt = |secret: &'static str| {
        let url = server.url("/token");
        async move {
            client()
                .post(url)
                .basic_auth("bench", Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..3 {
        assert_eq!(attempt("wrong-secret-000000000").await.status(), 401);
    }
    let res = attempt(BENCH_SECRET).await;
    assert_eq!(res.status(), 401, "locked: the right secret is not even checked");
    assert!(res.headers().contains_key("www-authenticate"));
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_client");
}

// ---- opaque tokens, revocation, introspection -------------------------------------

#[tokio::test]
async fn opaque_access_tokens_are_validated_by_introspection() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut s = base_settings(dir.path());
    s.tokens.format = "opaque".to_owned();
    s.dev.auto_approve_user = Some("alice".to_owned());
    let server = TestServer::start_with(s, dir).await;
    let code = code_for(&server, "public-app", "https://app.example/cb").await;
    let body = redeem(&server, &code, "public-app").await;
    let at = body["access_token"].as_str().unwrap();
    assert_eq!(at.matches('.').count(), 0, "not a JWT");
    let info = introspect(&server, at).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["aud"], RESOURCE);
    assert_eq!(info["client_id"], "public-app");
}

#[tokio::test]
async fn revoking_an_access_token_makes_it_inactive_at_once() {
    let server = start(true).await;
    let code = code_for(&server, "public-app", "https://app.example/cb").await;
    let body = redeem(&server, &code, "public-app").await;
    let at = body["access_token"].as_str().unwrap();
    let rt = body["refresh_token"].as_str().unwrap();
    assert_eq!(introspect(&server, at).await["active"], true);
    let res = client()
        .post(server.url("/revoke"))
        .form(&[
            ("token", at),
            ("token_type_hint", "access_token"),
            ("client_id", "public-app"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(introspect(&server, at).await["active"], false);
    // Revoking the access token alone leaves the refresh token usable.
    let res = token(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", "public-app"),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn introspection_needs_credentials_and_hides_other_audiences() {
    let server = start(true).await;
    // A token for the other resource: `bench` may introspect only RESOURCE's.
    let url = authorize_url(
        &server,
        "public-app",
        "https://app.example/cb",
        &format!(
            "&resource={}",
            url::form_urlencoded::byte_serialize(OTHER_RESOURCE.as_bytes()).collect::<String>()
        ),
    );
    let res = client().get(url).send().await.unwrap();
    let code = location_params(&res).1["code"].clone();
    let body = redeem(&server, &code, "public-app").await;
    let at = body["access_token"].as_str().unwrap();
    assert_eq!(jwt_claims(at)["aud"], OTHER_RESOURCE);
    assert_eq!(
        introspect(&server, at).await,
        json!({"active": false}),
        "another audience's token is inactive to this caller"
    );
    // No credentials at all.
    let res = client()
        .post(server.url("/introspect"))
        .form(&[("token", at)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_client");
}

#[tokio::test]
async fn revoking_one_installation_leaves_other_users_signed_in() {
    let server = start(false).await;
    add_user(&server, "bob").await;
    add_user(&server, "carol").await;
    let url = authorize_url(&server, "public-app", "https://app.example/cb", "");
    let mut bob = Browser::new(&server);
    let mut carol = Browser::new(&server);
    let bob_tokens = redeem(&server, &bob.code_via_forms(&url, "bob").await, "public-app").await;
    let carol_tokens = redeem(&server, &carol.code_via_forms(&url, "carol").await, "public-app").await;
    // Bob's installation is revoked through its refresh token.
    let res = client()
        .post(server.url("/revoke"))
        .form(&[
            ("token", bob_tokens["refresh_token"].as_str().unwrap()),
            ("client_id", "public-app"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let bob_at = bob_tokens["access_token"].as_str().unwrap();
    let carol_at = carol_tokens["access_token"].as_str().unwrap();
    assert_eq!(introspect(&server, bob_at).await["active"], false);
    assert_eq!(introspect(&server, carol_at).await["active"], true);
    let res = token(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", carol_tokens["refresh_token"].as_str().unwrap()),
            ("client_id", "public-app"),
        ],
    )
    .await;
    assert_eq!(res.status(), 200, "carol's installation is untouched");
}

// ---- metadata-document clients: private_key_jwt, logos, allow-list ---------------

fn client_signing_key() -> steward_jose::SigningKey {
    let kek = steward_jose::Kek::from_bytes([9; 32]);
    let k = steward_jose::generate_signing_key(steward_jose::Algorithm::Es256, &kek).unwrap();
    steward_jose::SigningKey::decrypt(&k.kid, k.algorithm, &k.encrypted_private, &kek).unwrap()
}

#[tokio::test]
async fn private_key_jwt_at_the_token_endpoint_refuses_a_replayed_assertion() {
    let w = doc_world(|s, _| s.dev.auto_approve_user = Some("alice".to_owned())).await;
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
    let code = code_for(&w.server, &id, "https://app.example/cb").await;
    let now = w.server.state.clock.now().seconds();
    let assertion = key
        .sign(
            "JWT",
            &json!({"iss": id, "sub": id, "aud": w.server.base, "exp": now + 60, "iat": now, "jti": "once-only"}),
        )
        .unwrap();
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
    let res = exchange(code, assertion.clone()).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    // The same assertion again, with a fresh code: replay refused.
    let code = code_for(&w.server, &id, "https://app.example/cb").await;
    let res = exchange(code.clone(), assertion).await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_client");
    // Without any assertion a private_key_jwt client is not authenticated.
    let body = redeem(&w.server, &code, &id).await;
    assert_eq!(body["error"], "invalid_client");
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

#[tokio::test]
async fn consent_shows_the_logo_from_steward_never_the_clients_host() {
    let w = doc_world(|_, _| {}).await;
    add_user(&w.server, "bob").await;
    let id = w.host.url("cimd.test", "/client.json");
    let logo_uri = w.host.url("cimd.test", "/logo.png");
    w.host.set(
        "/logo.png",
        TestResponse::new(200)
            .with_header("content-type", "image/png")
            .with_body(PNG.to_vec()),
    );
    let doc = json!({
        "client_id": id, "client_name": "Logo Client",
        "redirect_uris": ["https://app.example/cb"],
        "logo_uri": logo_uri,
    });
    w.host.set(
        "/client.json",
        TestResponse::json(doc.to_string()).with_header("cache-control", "max-age=3600"),
    );
    let mut b = Browser::new(&w.server);
    let url = authorize_url(&w.server, &id, "https://app.example/cb", "");
    let res = b.sign_in(&url, "bob").await;
    let html = res.text().await.unwrap();
    assert!(!html.contains(&logo_uri), "never hot-linked");
    let start = html.find("<img src=\"").unwrap() + "<img src=\"".len();
    let src = &html[start..start + html[start..].find('"').unwrap()];
    assert!(src.starts_with(&format!("{}/logo/", w.server.base)), "{src}");
    let img = client().get(src).send().await.unwrap();
    assert_eq!(img.status(), 200);
    assert_eq!(img.headers()["content-type"], "image/png");
    assert_eq!(img.bytes().await.unwrap().as_ref(), PNG);
    // A second consent page reuses the stored copy.
    let res = b
        .get(&authorize_url(
            &w.server,
            &id,
            "https://app.example/cb",
            "&prompt=consent",
        ))
        .await;
    assert!(res.text().await.unwrap().contains(src));
    assert_eq!(w.host.hits("/logo.png"), 1);
    // Unknown hashes are 404.
    let missing = client()
        .get(w.server.url(&format!("/logo/{}", "0".repeat(64))))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn an_svg_logo_is_never_shown() {
    let w = doc_world(|_, _| {}).await;
    add_user(&w.server, "bob").await;
    let id = w.host.url("cimd.test", "/client.json");
    // Declared as PNG, but the bytes are SVG with script.
    w.host.set(
        "/logo.png",
        TestResponse::new(200)
            .with_header("content-type", "image/png")
            .with_body(b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>".to_vec()),
    );
    let doc = json!({
        "client_id": id, "client_name": "Sneaky Client",
        "redirect_uris": ["https://app.example/cb"],
        "logo_uri": w.host.url("cimd.test", "/logo.png"),
    });
    w.host.set(
        "/client.json",
        TestResponse::json(doc.to_string()).with_header("cache-control", "max-age=3600"),
    );
    let mut b = Browser::new(&w.server);
    let res = b
        .sign_in(
            &authorize_url(&w.server, &id, "https://app.example/cb", ""),
            "bob",
        )
        .await;
    let html = res.text().await.unwrap();
    assert!(html.contains("name=\"decision\""));
    assert!(!html.contains("<img"), "no logo rather than a disguised SVG");
}

#[tokio::test]
async fn require_listed_admits_only_allow_listed_documents_with_their_settings() {
    let w = doc_world(|s, host| {
        s.cimd.require_listed = true;
        s.dev.auto_approve_user = Some("alice".to_owned());
        // The allow-list entry narrows the document's grants: no refresh tokens.
        s.clients.push(steward_server::settings::ClientSettings {
            client_id: host.url("cimd.test", "/listed.json"),
            name: None,
            secret_env: None,
            secret_hash: None,
            grant_types: vec!["authorization_code".to_owned()],
            scopes: vec![],
            redirect_uris: vec![],
            ..Default::default()
        });
    })
    .await;
    let listed = w.host.url("cimd.test", "/listed.json");
    let unlisted = w.host.url("cimd.test", "/unlisted.json");
    for (path, id) in [("/listed.json", &listed), ("/unlisted.json", &unlisted)] {
        let doc = json!({
            "client_id": id, "client_name": "Doc",
            "redirect_uris": ["https://app.example/cb"],
            "grant_types": ["authorization_code", "refresh_token"],
        });
        w.host.set(
            path,
            TestResponse::json(doc.to_string()).with_header("cache-control", "max-age=3600"),
        );
    }
    let res = client()
        .get(authorize_url(&w.server, &unlisted, "https://app.example/cb", ""))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("location").is_none());
    assert_eq!(
        w.host.hits("/unlisted.json"),
        0,
        "an unlisted document is never fetched"
    );

    let code = code_for(&w.server, &listed, "https://app.example/cb").await;
    let body = redeem(&w.server, &code, &listed).await;
    assert!(body["access_token"].is_string(), "{body}");
    assert!(
        body.get("refresh_token").is_none(),
        "the entry removed refresh_token"
    );
}

#[tokio::test]
async fn changed_metadata_asks_again_with_a_warning() {
    let w = doc_world(|_, _| {}).await;
    add_user(&w.server, "bob").await;
    let id = w.host.url("cimd.test", "/client.json");
    let publish = |name: &str| {
        let doc = json!({
            "client_id": id, "client_name": name,
            "redirect_uris": ["https://app.example/cb"],
        });
        w.host.set(
            "/client.json",
            TestResponse::json(doc.to_string()).with_header("cache-control", "max-age=300"),
        );
    };
    publish("Doc Client");
    let url = authorize_url(&w.server, &id, "https://app.example/cb", "");
    let mut b = Browser::new(&w.server);
    b.code_via_forms(&url, "bob").await;
    // Approved and unchanged: no consent page.
    let res = b.get(&url).await;
    assert_eq!(res.status(), 302);

    // The document changes; once the cached copy is stale Steward sees a new version.
    publish("Doc Client v2");
    w.server.clock.advance(3600);
    let res = b.get(&url).await;
    let mut html = res.text().await.unwrap();
    if html.contains("name=\"password\"") {
        html = b.login(&html, "bob", PASSWORD).await.text().await.unwrap();
    }
    assert!(html.contains("name=\"decision\""), "asked again");
    assert!(html.contains("metadata changed since you last approved it"));
    assert!(html.contains("Doc Client v2"));
    assert_eq!(w.host.hits("/client.json"), 2);
}
