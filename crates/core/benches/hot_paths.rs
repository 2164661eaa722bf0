//! The per-request domain checks of an authorization-code flow: matching
//! the redirect URI against the registered ones, verifying PKCE, and the
//! SHA-256 storage hash every code, token and session id goes through. Each
//! is on the path of every /authorize or /token request, so each must stay
//! far below the ~300 µs a whole flow may cost at 3,000 flows/s on one core.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use steward_core::pkce::{CodeChallenge, s256_challenge};
use steward_core::secret::{random_token, token_hash};
use steward_core::{RedirectUri, RedirectUriRules};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-a-little-longer";

fn redirect(c: &mut Criterion) {
    let rules = RedirectUriRules::default();
    let registered: Vec<RedirectUri> = [
        "https://app.example/oauth/callback",
        "https://app.example/oauth/other",
        "http://localhost/callback",
        "http://127.0.0.1/callback",
    ]
    .iter()
    .map(|r| RedirectUri::parse(r, rules).unwrap())
    .collect();
    c.bench_function("redirect_uri/parse_registration", |b| {
        b.iter(|| RedirectUri::parse(black_box("https://app.example/oauth/callback"), rules).unwrap())
    });
    // The first registered URI, exact: the common case for web clients.
    c.bench_function("redirect_uri/match_exact_first", |b| {
        b.iter(|| {
            registered
                .iter()
                .find(|r| r.matches(black_box("https://app.example/oauth/callback")))
                .unwrap()
        })
    });
    // Loopback with an ephemeral port: every earlier entry is tried and the
    // port-ignoring comparison runs (native and CLI MCP clients).
    c.bench_function("redirect_uri/match_loopback_port", |b| {
        b.iter(|| {
            registered
                .iter()
                .find(|r| r.matches(black_box("http://127.0.0.1:61234/callback")))
                .unwrap()
        })
    });
    c.bench_function("redirect_uri/no_match", |b| {
        b.iter(|| {
            assert!(
                !registered
                    .iter()
                    .any(|r| r.matches(black_box("https://evil.example/oauth/callback")))
            )
        })
    });
}

fn pkce(c: &mut Criterion) {
    let challenge = CodeChallenge::from_request(Some(&s256_challenge(VERIFIER)), Some("S256")).unwrap();
    c.bench_function("pkce/challenge_from_request", |b| {
        let s = s256_challenge(VERIFIER);
        b.iter(|| CodeChallenge::from_request(Some(black_box(&s)), Some("S256")).unwrap())
    });
    c.bench_function("pkce/verify_s256", |b| {
        b.iter(|| assert!(challenge.verify(black_box(VERIFIER))))
    });
    c.bench_function("pkce/verify_s256_mismatch", |b| {
        b.iter(|| assert!(!challenge.verify(black_box("x".repeat(50).as_str()))))
    });
}

fn secrets(c: &mut Criterion) {
    let token = random_token();
    c.bench_function("secret/random_token", |b| b.iter(random_token));
    c.bench_function("secret/token_hash", |b| {
        b.iter(|| token_hash(black_box(token.expose())))
    });
}

criterion_group!(benches, redirect, pkce, secrets);
criterion_main!(benches);
