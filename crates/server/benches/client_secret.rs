//! Client secret verification at the token endpoint: HMAC-SHA256 under a key
//! derived from the key-encryption key, compared in constant time. It runs on
//! every client_credentials and introspection request, so it must be a few
//! microseconds — which is why secrets are not hashed with a password KDF
//! (they are 256-bit random values; a slow hash would buy nothing).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use steward_server::oauth::client_auth::{hash_client_secret, verify_client_secret};

fn secret(c: &mut Criterion) {
    let key = [42u8; 32];
    let secret = "bench-secret-0123456789abcdef-0123456789abcdef";
    let stored = hash_client_secret(&key, secret);
    c.bench_function("client_secret/hash", |b| {
        b.iter(|| hash_client_secret(black_box(&key), black_box(secret)))
    });
    c.bench_function("client_secret/verify_ok", |b| {
        b.iter(|| assert!(verify_client_secret(&key, black_box(secret), &stored)))
    });
    c.bench_function("client_secret/verify_wrong", |b| {
        b.iter(|| assert!(!verify_client_secret(&key, black_box("not-the-secret"), &stored)))
    });
}

criterion_group!(benches, secret);
criterion_main!(benches);
