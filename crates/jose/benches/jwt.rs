//! Sign and verify throughput per algorithm. Product target: 15,000 ES256
//! access tokens per second on one core (≤ 66 µs per token).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use steward_core::UnixTime;
use steward_jose::{
    AccessTokenClaims, Algorithm, Expectations, Jwks, Kek, SigningKey, generate_signing_key,
    sign_access_token,
};

fn claims() -> AccessTokenClaims {
    AccessTokenClaims {
        iss: "https://as.example".into(),
        sub: "user-1234".into(),
        aud: "https://mcp.example/mcp".into(),
        client_id: "https://client.example/metadata.json".into(),
        scope: "tools:read tools:call".into(),
        iat: 1_800_000_000,
        exp: 1_800_000_300,
        jti: "Zx1c0qH3rHn6b2sXb4o0w8iG1g5b9wq2xH0QmJZ6s0k".into(),
        auth_time: Some(1_799_999_000),
    }
}

fn bench(c: &mut Criterion) {
    let kek = Kek::from_bytes([7; 32]);
    for alg in [Algorithm::Es256, Algorithm::EdDsa, Algorithm::Rs256] {
        let new = generate_signing_key(alg, &kek).unwrap();
        let key = SigningKey::decrypt(&new.kid, alg, &new.encrypted_private, &kek).unwrap();
        let verifier = Jwks::from_public_jwks(std::slice::from_ref(&new.public_jwk))
            .unwrap()
            .verifier()
            .unwrap();
        let claims = claims();
        let token = sign_access_token(&key, &claims).unwrap();
        let expected = Expectations {
            typ: Some("at+jwt"),
            issuer: "https://as.example",
            audience: Some("https://mcp.example/mcp"),
            now: UnixTime(1_800_000_100),
            leeway: 30,
        };
        c.bench_function(&format!("sign_access_token/{alg}"), |b| {
            b.iter(|| sign_access_token(black_box(&key), black_box(&claims)).unwrap())
        });
        c.bench_function(&format!("verify_access_token/{alg}"), |b| {
            b.iter(|| {
                verifier
                    .verify::<AccessTokenClaims>(black_box(&token), black_box(&expected))
                    .unwrap()
            })
        });
    }

    // For comparison: jsonwebtoken::encode parses the PKCS#8 key on every
    // call, which is why SigningKey keeps the parsed key pair instead.
    let pkcs8 = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
        .unwrap()
        .to_pkcs8v1()
        .unwrap();
    let encoding_key = jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref());
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    let claims = claims();
    c.bench_function("jsonwebtoken_encode_reparsing_key/ES256", |b| {
        b.iter(|| jsonwebtoken::encode(black_box(&header), black_box(&claims), &encoding_key).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
