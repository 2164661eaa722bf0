//! steward-guard end to end: a stand-in authorization server on 127.0.0.1
//! publishing RFC 8414 metadata and a JWKS, real tokens minted with
//! steward-jose, and the layer called as a tower service.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use steward_core::{ManualClock, UnixTime};
use steward_guard::{AccessClaims, Guard};
use steward_jose::{AccessTokenClaims, Algorithm, Kek, SigningKey, generate_signing_key, sign_access_token};
use tower::{Layer, ServiceExt};

const RESOURCE: &str = "http://127.0.0.1:3000/mcp";
const PRM: &str = "http://127.0.0.1:3000/.well-known/oauth-protected-resource/mcp";
const NOW: i64 = 1_800_000_000;

fn key(alg: Algorithm) -> SigningKey {
    let kek = Kek::from_bytes([7; 32]);
    let new = generate_signing_key(alg, &kek).unwrap();
    SigningKey::decrypt(&new.kid, alg, &new.encrypted_private, &kek).unwrap()
}

/// A stand-in authorization server: metadata, a mutable JWKS, fetch counts.
struct FakeAs {
    issuer: String,
    keys: Arc<Mutex<Vec<Value>>>,
    jwks_fetches: Arc<AtomicUsize>,
    metadata_fetches: Arc<AtomicUsize>,
}

impl FakeAs {
    async fn start(published: &[&SigningKey]) -> FakeAs {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let issuer = format!("http://{addr}");
        let keys: Arc<Mutex<Vec<Value>>> = Arc::new(Mutex::new(
            published.iter().map(|k| k.public_jwk().clone()).collect(),
        ));
        let jwks_fetches = Arc::new(AtomicUsize::new(0));
        let metadata_fetches = Arc::new(AtomicUsize::new(0));
        let metadata = json!({ "issuer": issuer, "jwks_uri": format!("{issuer}/jwks.json") });
        let app = Router::new()
            .route(
                "/.well-known/oauth-authorization-server",
                get({
                    let n = metadata_fetches.clone();
                    move || async move {
                        n.fetch_add(1, Ordering::SeqCst);
                        axum::Json(metadata)
                    }
                }),
            )
            .route(
                "/jwks.json",
                get({
                    let n = jwks_fetches.clone();
                    let keys = keys.clone();
                    move || async move {
                        n.fetch_add(1, Ordering::SeqCst);
                        let keys = keys.lock().unwrap().clone();
                        axum::Json(json!({ "keys": keys }))
                    }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeAs {
            issuer,
            keys,
            jwks_fetches,
            metadata_fetches,
        }
    }

    fn publish(&self, key: &SigningKey) {
        self.keys.lock().unwrap().push(key.public_jwk().clone());
    }

    fn jwks_fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }
}

fn claims(issuer: &str, scope: &str) -> AccessTokenClaims {
    AccessTokenClaims {
        iss: issuer.to_owned(),
        sub: "alice".to_owned(),
        aud: RESOURCE.to_owned(),
        client_id: "https://app.example/client.json".to_owned(),
        scope: scope.to_owned(),
        iat: NOW,
        exp: NOW + 600,
        jti: "jti-1".to_owned(),
        auth_time: None,
    }
}

struct Setup {
    fake: FakeAs,
    clock: ManualClock,
    app: Router,
}

/// A protected route that answers with the claims the layer put in.
fn app(guard: &Guard) -> Router {
    let protected = axum::routing::post(|axum::Extension(c): axum::Extension<AccessClaims>| async move {
        axum::Json(json!({ "sub": c.sub, "client_id": c.client_id, "scope": c.scope() }))
    });
    Router::new()
        .route_service("/mcp", guard.layer().layer(protected))
        .merge(guard.metadata_router())
}

async fn setup(published: &[&SigningKey]) -> Setup {
    let fake = FakeAs::start(published).await;
    let clock = ManualClock::new(UnixTime(NOW + 10));
    let guard = Guard::builder(fake.issuer.clone(), RESOURCE)
        .required_scopes(["mcp:tools"])
        .clock(Arc::new(clock.clone()))
        .leeway(Duration::from_secs(30))
        .min_refetch_interval(Duration::from_secs(10))
        .build()
        .unwrap();
    let app = app(&guard);
    Setup { fake, clock, app }
}

struct Answer {
    status: StatusCode,
    challenge: Option<String>,
    body: Value,
}

async fn call(app: &Router, token: Option<&str>) -> Answer {
    let mut req = Request::post("/mcp");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        challenge,
        body,
    }
}

fn invalid_token() -> Option<String> {
    Some(format!(
        "Bearer error=\"invalid_token\", resource_metadata=\"{PRM}\""
    ))
}

#[tokio::test]
async fn valid_tokens_of_each_algorithm_are_accepted_with_their_claims() {
    let keys = [
        key(Algorithm::Es256),
        key(Algorithm::EdDsa),
        key(Algorithm::Rs256),
    ];
    let s = setup(&keys.iter().collect::<Vec<_>>()).await;
    for k in &keys {
        let token = sign_access_token(k, &claims(&s.fake.issuer, "mcp:tools other")).unwrap();
        let a = call(&s.app, Some(&token)).await;
        assert_eq!(a.status, StatusCode::OK, "{}: {}", k.algorithm(), a.body);
        assert_eq!(
            a.body,
            json!({"sub": "alice", "client_id": "https://app.example/client.json", "scope": "mcp:tools other"})
        );
    }
    // Discovery once, keys once: the cache served the rest.
    assert_eq!(s.fake.metadata_fetches.load(Ordering::SeqCst), 1);
    assert_eq!(s.fake.jwks_fetches(), 1);
}

#[tokio::test]
async fn no_token_gets_the_exact_resource_metadata_challenge() {
    let k = key(Algorithm::Es256);
    let s = setup(&[&k]).await;
    let a = call(&s.app, None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        a.challenge.as_deref(),
        Some(format!("Bearer resource_metadata=\"{PRM}\"").as_str())
    );
    // Another scheme counts as no token (RFC 6750 §3.1: no error code).
    let res = s
        .app
        .clone()
        .oneshot(
            Request::post("/mcp")
                .header("authorization", "Basic Zm9vOmJhcg==")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers()["www-authenticate"],
        format!("Bearer resource_metadata=\"{PRM}\"")
    );
    // Nothing was fetched for requests without a token.
    assert_eq!(s.fake.jwks_fetches(), 0);
}

#[tokio::test]
async fn wrong_issuer_wrong_audience_and_wrong_type_are_invalid_tokens() {
    let k = key(Algorithm::Es256);
    let s = setup(&[&k]).await;

    let wrong_iss = sign_access_token(&k, &claims("http://127.0.0.1:1", "mcp:tools")).unwrap();
    let a = call(&s.app, Some(&wrong_iss)).await;
    assert_eq!(
        (a.status, a.challenge),
        (StatusCode::UNAUTHORIZED, invalid_token())
    );
    assert_eq!(a.body["error"], "invalid_token");

    // The issuer with a trailing slash is a different issuer (exact match).
    let slash = sign_access_token(&k, &claims(&format!("{}/", s.fake.issuer), "mcp:tools")).unwrap();
    assert_eq!(call(&s.app, Some(&slash)).await.status, StatusCode::UNAUTHORIZED);

    let mut c = claims(&s.fake.issuer, "mcp:tools");
    c.aud = "http://127.0.0.1:3000/other".to_owned();
    let wrong_aud = sign_access_token(&k, &c).unwrap();
    let a = call(&s.app, Some(&wrong_aud)).await;
    assert_eq!(
        (a.status, a.challenge),
        (StatusCode::UNAUTHORIZED, invalid_token())
    );

    // Signed by the right key, but not an access token (RFC 9068 §4 typ).
    let id_token = k.sign("JWT", &claims(&s.fake.issuer, "mcp:tools")).unwrap();
    let a = call(&s.app, Some(&id_token)).await;
    assert_eq!(
        (a.status, a.challenge),
        (StatusCode::UNAUTHORIZED, invalid_token())
    );

    // Required claims (RFC 9068 §2.2) missing.
    let bare = k
        .sign(
            "at+jwt",
            &json!({"iss": s.fake.issuer, "aud": RESOURCE, "exp": NOW + 600}),
        )
        .unwrap();
    assert_eq!(call(&s.app, Some(&bare)).await.status, StatusCode::UNAUTHORIZED);

    // aud as an array that contains the resource is fine (RFC 7519 §4.1.3).
    let mut c = json!(claims(&s.fake.issuer, "mcp:tools"));
    c["aud"] = json!(["http://other.example", RESOURCE]);
    let array_aud = k.sign("at+jwt", &c).unwrap();
    assert_eq!(call(&s.app, Some(&array_aud)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn expiry_and_not_before_follow_the_clock_with_leeway() {
    let k = key(Algorithm::EdDsa);
    let s = setup(&[&k]).await;
    let token = sign_access_token(&k, &claims(&s.fake.issuer, "mcp:tools")).unwrap();
    s.clock.set(UnixTime(NOW + 600 + 20)); // past exp, inside the 30 s leeway
    assert_eq!(call(&s.app, Some(&token)).await.status, StatusCode::OK);
    s.clock.set(UnixTime(NOW + 600 + 31));
    let a = call(&s.app, Some(&token)).await;
    assert_eq!(
        (a.status, a.challenge),
        (StatusCode::UNAUTHORIZED, invalid_token())
    );
    assert_eq!(a.body["error_description"], "expired");

    s.clock.set(UnixTime(NOW));
    let mut c = json!(claims(&s.fake.issuer, "mcp:tools"));
    c["nbf"] = json!(NOW + 100);
    let early = k.sign("at+jwt", &c).unwrap();
    let a = call(&s.app, Some(&early)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.body["error_description"], "not yet valid");
}

#[tokio::test]
async fn a_bad_signature_is_refused() {
    let k = key(Algorithm::Es256);
    let s = setup(&[&k]).await;
    let token = sign_access_token(&k, &claims(&s.fake.issuer, "mcp:tools")).unwrap();
    // Change the payload, keep the signature.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut other = claims(&s.fake.issuer, "mcp:tools");
    other.sub = "mallory".to_owned();
    let forged = sign_access_token(&k, &other).unwrap();
    parts[1] = forged.split('.').nth(1).unwrap().to_owned();
    let tampered = parts.join(".");
    let a = call(&s.app, Some(&tampered)).await;
    assert_eq!(
        (a.status, a.challenge),
        (StatusCode::UNAUTHORIZED, invalid_token())
    );
    assert_eq!(a.body["error_description"], "bad signature");

    // A different key presenting the published key's kid.
    let impostor = key(Algorithm::Es256);
    let impostor_token = sign_access_token(&impostor, &claims(&s.fake.issuer, "mcp:tools")).unwrap();
    let mut parts: Vec<String> = impostor_token.split('.').map(str::to_owned).collect();
    parts[0] = token.split('.').next().unwrap().to_owned();
    let a = call(&s.app, Some(&parts.join("."))).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.body["error_description"], "bad signature");

    // alg none is never accepted.
    let none = format!(
        "{}.{}.",
        base64url(br#"{"alg":"none","typ":"at+jwt","kid":"x"}"#),
        token.split('.').nth(1).unwrap()
    );
    assert_eq!(call(&s.app, Some(&none)).await.status, StatusCode::UNAUTHORIZED);
}

fn base64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn unknown_kid_refetches_with_a_rate_limit_and_rotation_is_picked_up() {
    let old = key(Algorithm::Es256);
    let s = setup(&[&old]).await;
    let token = sign_access_token(&old, &claims(&s.fake.issuer, "mcp:tools")).unwrap();
    assert_eq!(call(&s.app, Some(&token)).await.status, StatusCode::OK);
    assert_eq!(s.fake.jwks_fetches(), 1);

    // A kid the issuer does not publish: one refetch, then 401.
    let stranger = key(Algorithm::Es256);
    let unknown = sign_access_token(&stranger, &claims(&s.fake.issuer, "mcp:tools")).unwrap();
    s.clock.advance(11);
    let a = call(&s.app, Some(&unknown)).await;
    assert_eq!(
        (a.status, a.challenge),
        (StatusCode::UNAUTHORIZED, invalid_token())
    );
    assert_eq!(s.fake.jwks_fetches(), 2);
    // Again at once: refused without another fetch (rate limit).
    for _ in 0..5 {
        assert_eq!(
            call(&s.app, Some(&unknown)).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(s.fake.jwks_fetches(), 2);

    // The issuer rotates: its new key signs, the old stays published.
    let new = key(Algorithm::Es256);
    s.fake.publish(&new);
    let rotated = sign_access_token(&new, &claims(&s.fake.issuer, "mcp:tools")).unwrap();
    s.clock.advance(10);
    assert_eq!(call(&s.app, Some(&rotated)).await.status, StatusCode::OK);
    assert_eq!(s.fake.jwks_fetches(), 3);
    assert_eq!(call(&s.app, Some(&token)).await.status, StatusCode::OK);
    assert_eq!(s.fake.jwks_fetches(), 3);
    // Discovery happened once.
    assert_eq!(s.fake.metadata_fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_stale_key_set_is_refreshed_so_withdrawn_keys_stop_working() {
    let old = key(Algorithm::Es256);
    let s = setup(&[&old]).await;
    let token = sign_access_token(&old, &claims(&s.fake.issuer, "mcp:tools")).unwrap();
    assert_eq!(call(&s.app, Some(&token)).await.status, StatusCode::OK);
    s.fake.keys.lock().unwrap().clear();
    s.clock.advance(301); // past the default 5 minute max age
    let mut c = claims(&s.fake.issuer, "mcp:tools");
    c.exp = NOW + 3600;
    let still_valid_in_time = sign_access_token(&old, &c).unwrap();
    assert_eq!(
        call(&s.app, Some(&still_valid_in_time)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(s.fake.jwks_fetches(), 2);
}

#[tokio::test]
async fn missing_scope_is_403_insufficient_scope() {
    let k = key(Algorithm::Es256);
    let s = setup(&[&k]).await;
    let token = sign_access_token(&k, &claims(&s.fake.issuer, "mcp:other")).unwrap();
    let a = call(&s.app, Some(&token)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(
        a.challenge.as_deref(),
        Some(
            format!("Bearer error=\"insufficient_scope\", scope=\"mcp:tools\", resource_metadata=\"{PRM}\"")
                .as_str()
        )
    );
    assert_eq!(a.body["error"], "insufficient_scope");
    // No scope claim at all.
    let mut c = json!(claims(&s.fake.issuer, ""));
    c.as_object_mut().unwrap().remove("scope");
    let unscoped = k.sign("at+jwt", &c).unwrap();
    assert_eq!(call(&s.app, Some(&unscoped)).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn protected_resource_metadata_at_both_well_known_paths() {
    let k = key(Algorithm::Es256);
    let s = setup(&[&k]).await;
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let res = s
            .app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_eq!(res.headers()["content-type"], "application/json");
        let body: Value =
            serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(
            body,
            json!({
                "resource": RESOURCE,
                "authorization_servers": [s.fake.issuer],
                "scopes_supported": ["mcp:tools"],
                "bearer_methods_supported": ["header"],
            })
        );
    }
    let res = s
        .app
        .clone()
        .oneshot(
            Request::get("/.well-known/oauth-protected-resource/other")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_unreachable_issuer_is_503_not_a_client_error() {
    // A port nothing listens on.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}", probe.local_addr().unwrap());
    drop(probe);
    let clock = ManualClock::new(UnixTime(NOW));
    let guard = Guard::builder(issuer.clone(), RESOURCE)
        .clock(Arc::new(clock))
        .build()
        .unwrap();
    let k = key(Algorithm::Es256);
    let token = sign_access_token(&k, &claims(&issuer, "mcp:tools")).unwrap();
    let a = call(&app(&guard), Some(&token)).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.challenge, None);
}

#[tokio::test]
async fn metadata_naming_another_issuer_is_not_trusted() {
    let k = key(Algorithm::Es256);
    let fake = FakeAs::start(&[&k]).await;
    // Configured with localhost, the metadata says 127.0.0.1: RFC 8414 §3.3.
    let port = fake.issuer.rsplit(':').next().unwrap();
    let configured = format!("http://localhost:{port}");
    let guard = Guard::builder(configured.clone(), RESOURCE)
        .clock(Arc::new(ManualClock::new(UnixTime(NOW))))
        .build()
        .unwrap();
    let token = sign_access_token(&k, &claims(&configured, "")).unwrap();
    assert_eq!(
        call(&app(&guard), Some(&token)).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(fake.jwks_fetches(), 0);
}

#[test]
fn configuration_is_checked() {
    assert!(
        Guard::builder("http://as.example", RESOURCE).build().is_err(),
        "http off loopback"
    );
    assert!(Guard::builder("https://as.example?x", RESOURCE).build().is_err());
    assert!(
        Guard::builder("https://as.example", "http://h/mcp#f")
            .build()
            .is_err()
    );
    assert!(Guard::builder("https://as.example", "not a uri").build().is_err());
    assert!(
        Guard::builder("https://as.example", RESOURCE)
            .required_scopes(["two words"])
            .build()
            .is_err()
    );
    let g = Guard::builder("https://as.example", RESOURCE).build().unwrap();
    assert_eq!(g.metadata_url(), PRM);
}
