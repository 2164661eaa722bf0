use crate::common::{ALGS, kek, new_key, signing_key};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use steward_jose::{Algorithm, JoseError, Kek, SigningKey, at_rest, generate_signing_key};

const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// RFC 7638 computed independently of the crate: a sorted map serialized by serde_json.
fn independent_thumbprint(jwk: &Value) -> String {
    let required: &[&str] = match jwk["kty"].as_str().unwrap() {
        "EC" => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        "RSA" => &["e", "kty", "n"],
        other => panic!("kty {other}"),
    };
    let map: BTreeMap<&str, &Value> = required.iter().map(|m| (*m, &jwk[*m])).collect();
    URL_SAFE_NO_PAD.encode(Sha256::digest(serde_json::to_vec(&map).unwrap()))
}

#[test]
fn public_jwk_never_has_private_members_for_any_algorithm() {
    for alg in ALGS {
        let new = new_key(alg);
        let decrypted = signing_key(alg);
        for jwk in [&new.public_jwk, decrypted.public_jwk()] {
            for m in PRIVATE_MEMBERS {
                assert!(jwk.get(m).is_none(), "{alg}: member {m} in {jwk}");
            }
        }
    }
}

#[test]
fn public_jwk_has_the_published_members() {
    let expectations = [
        (
            Algorithm::Es256,
            json!(["alg", "crv", "kid", "kty", "use", "x", "y"]),
            "EC",
        ),
        (
            Algorithm::EdDsa,
            json!(["alg", "crv", "kid", "kty", "use", "x"]),
            "OKP",
        ),
        (
            Algorithm::Rs256,
            json!(["alg", "e", "kid", "kty", "n", "use"]),
            "RSA",
        ),
    ];
    for (alg, members, kty) in expectations {
        let jwk = &new_key(alg).public_jwk;
        // Sorted: member order is not part of the contract (serde_json keeps
        // insertion order when another crate enables `preserve_order`).
        let mut names: Vec<&String> = jwk.as_object().unwrap().keys().collect();
        names.sort();
        assert_eq!(json!(names), members, "{alg}");
        assert_eq!(jwk["kty"], kty);
        assert_eq!(jwk["alg"], alg.as_str());
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["kid"], new_key(alg).kid.as_str());
    }
    assert_eq!(new_key(Algorithm::Es256).public_jwk["crv"], "P-256");
    assert_eq!(new_key(Algorithm::EdDsa).public_jwk["crv"], "Ed25519");
    // RSA 2048: n is 256 bytes, e is 65537.
    let n = URL_SAFE_NO_PAD
        .decode(new_key(Algorithm::Rs256).public_jwk["n"].as_str().unwrap())
        .unwrap();
    assert_eq!(n.len(), 256);
    assert_eq!(new_key(Algorithm::Rs256).public_jwk["e"], "AQAB");
}

#[test]
fn kid_is_the_rfc7638_thumbprint() {
    for alg in ALGS {
        let new = new_key(alg);
        assert_eq!(new.kid, independent_thumbprint(&new.public_jwk), "{alg}");
        assert_eq!(new.kid.len(), 43);
    }
}

#[test]
fn decrypted_key_matches_the_generated_one() {
    for alg in ALGS {
        let new = new_key(alg);
        let key = signing_key(alg);
        assert_eq!(key.kid(), new.kid);
        assert_eq!(key.algorithm(), alg);
        assert_eq!(key.public_jwk(), &new.public_jwk);
    }
}

#[test]
fn each_generation_yields_a_new_key() {
    let a = generate_signing_key(Algorithm::Es256, &kek()).unwrap();
    let b = generate_signing_key(Algorithm::Es256, &kek()).unwrap();
    assert_ne!(a.kid, b.kid);
}

#[test]
fn wrong_kek_cannot_decrypt() {
    for alg in ALGS {
        let new = new_key(alg);
        let wrong = Kek::from_bytes([43; 32]);
        let err = SigningKey::decrypt(&new.kid, alg, &new.encrypted_private, &wrong).unwrap_err();
        assert!(matches!(err, JoseError::Decryption), "{alg}: {err:?}");
    }
}

#[test]
fn tampered_ciphertext_cannot_decrypt() {
    let new = new_key(Algorithm::Es256);
    for i in [
        1,
        5,
        13,
        new.encrypted_private.len() / 2,
        new.encrypted_private.len() - 1,
    ] {
        let mut t = new.encrypted_private.clone();
        t[i] ^= 0x80;
        let err = SigningKey::decrypt(&new.kid, Algorithm::Es256, &t, &kek()).unwrap_err();
        assert!(matches!(err, JoseError::Decryption), "byte {i}: {err:?}");
    }
}

#[test]
fn ciphertext_moved_to_another_kid_cannot_decrypt() {
    let a = new_key(Algorithm::Es256);
    let b = new_key(Algorithm::EdDsa);
    let err = SigningKey::decrypt(&b.kid, Algorithm::Es256, &a.encrypted_private, &kek()).unwrap_err();
    assert!(matches!(err, JoseError::Decryption));
}

#[test]
fn key_resealed_under_a_foreign_kid_is_refused() {
    // Someone with the KEK re-encrypts key A under B's kid: AAD checks pass,
    // but A's thumbprint is not B's kid.
    let a = generate_signing_key(Algorithm::Es256, &kek()).unwrap();
    let b = generate_signing_key(Algorithm::Es256, &kek()).unwrap();
    let pkcs8 = at_rest::open(&kek(), &a.kid, &a.encrypted_private).unwrap();
    let resealed = at_rest::seal(&kek(), &b.kid, &pkcs8).unwrap();
    let err = SigningKey::decrypt(&b.kid, Algorithm::Es256, &resealed, &kek()).unwrap_err();
    assert!(matches!(err, JoseError::KidMismatch), "{err:?}");
}

#[test]
fn key_of_another_algorithm_is_rejected() {
    let ed = new_key(Algorithm::EdDsa);
    let err = SigningKey::decrypt(&ed.kid, Algorithm::Es256, &ed.encrypted_private, &kek()).unwrap_err();
    assert!(matches!(err, JoseError::KeyRejected(Algorithm::Es256)), "{err:?}");
}

#[test]
fn signing_key_debug_is_redacted() {
    for alg in ALGS {
        let key = signing_key(alg);
        let shown = format!("{key:?}");
        assert!(shown.contains("[redacted]"));
        assert!(shown.contains(key.kid()));
        let pkcs8 = at_rest::open(&kek(), key.kid(), &new_key(alg).encrypted_private).unwrap();
        assert!(!shown.contains(&URL_SAFE_NO_PAD.encode(&pkcs8[pkcs8.len() - 16..])));
    }
}

#[test]
fn keys_and_verifiers_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<SigningKey>();
    shareable::<steward_jose::Verifier>();
    shareable::<Kek>();
}
