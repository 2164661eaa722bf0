use crate::common::{b64, es256_raw_signer, kek, new_key, raw_jws, signing_key};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PSS_SHA256, RsaKeyPair,
};
use serde_json::{Value, json};
use steward_core::UnixTime;
use steward_jose::{Algorithm, AssertionError, SigningKey, verify_client_assertion};

const CLIENT: &str = "https://client.example/cimd.json";
const ISSUER: &str = "https://as.example";
const NOW: i64 = 1_800_000_000;
const MAX: u64 = 300;

fn claims() -> Value {
    json!({"iss": CLIENT, "sub": CLIENT, "aud": ISSUER, "exp": NOW + 60, "iat": NOW, "jti": "a-unique-id"})
}

fn jwks_of(keys: &[&SigningKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.public_jwk().clone()).collect::<Vec<_>>()})
}

fn check(assertion: &str, jwks: &Value) -> Result<steward_jose::AssertionClaims, AssertionError> {
    verify_client_assertion(assertion, CLIENT, ISSUER, jwks, UnixTime(NOW), MAX)
}

fn es256() -> SigningKey {
    signing_key(Algorithm::Es256)
}

#[test]
fn valid_assertions_verify_for_steward_algorithms() {
    for alg in [Algorithm::Es256, Algorithm::EdDsa, Algorithm::Rs256] {
        let key = signing_key(alg);
        let token = key.sign("JWT", &claims()).unwrap();
        let out = check(&token, &jwks_of(&[&key])).unwrap();
        assert_eq!(out.jti, "a-unique-id", "{alg}");
        assert_eq!(out.exp, UnixTime(NOW + 60));
    }
}

#[test]
fn es384_and_ps256_assertions_verify() {
    let p384 = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
    let point = p384.public_key().as_ref();
    let jwk =
        json!({"kty": "EC", "crv": "P-384", "x": b64(&point[1..49]), "y": b64(&point[49..]), "kid": "p384"});
    let token = raw_jws(&json!({"alg": "ES384", "kid": "p384"}), &claims(), |m| {
        p384.sign(&SystemRandom::new(), m).unwrap().as_ref().to_vec()
    });
    assert!(check(&token, &json!({"keys": [jwk]})).is_ok());

    let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let public = rsa.public_key();
    let jwk = json!({
        "kty": "RSA",
        "n": b64(public.modulus().big_endian_without_leading_zero()),
        "e": b64(public.exponent().big_endian_without_leading_zero()),
    });
    let token = raw_jws(&json!({"alg": "PS256"}), &claims(), |m| {
        let mut sig = vec![0; rsa.public_modulus_len()];
        rsa.sign(&RSA_PSS_SHA256, &SystemRandom::new(), m, &mut sig)
            .unwrap();
        sig
    });
    assert!(check(&token, &json!({"keys": [jwk]})).is_ok());
}

#[test]
fn iss_must_be_the_client_id() {
    let key = es256();
    let mut c = claims();
    c["iss"] = json!("https://evil.example");
    assert_eq!(
        check(&key.sign("JWT", &c).unwrap(), &jwks_of(&[&key])),
        Err(AssertionError::WrongIssuer)
    );
}

#[test]
fn sub_must_be_the_client_id() {
    let key = es256();
    let mut c = claims();
    c["sub"] = json!("someone-else");
    assert_eq!(
        check(&key.sign("JWT", &c).unwrap(), &jwks_of(&[&key])),
        Err(AssertionError::WrongSubject)
    );
    c.as_object_mut().unwrap().remove("sub");
    assert_eq!(
        check(&key.sign("JWT", &c).unwrap(), &jwks_of(&[&key])),
        Err(AssertionError::WrongSubject)
    );
}

#[test]
fn aud_must_name_the_issuer() {
    let key = es256();
    let jwks = jwks_of(&[&key]);
    let mut c = claims();
    c["aud"] = json!("https://as.example/token");
    assert_eq!(
        check(&key.sign("JWT", &c).unwrap(), &jwks),
        Err(AssertionError::WrongAudience)
    );
    c["aud"] = json!([ISSUER]);
    assert!(
        check(&key.sign("JWT", &c).unwrap(), &jwks).is_ok(),
        "a one-element array is the issuer alone"
    );
    c.as_object_mut().unwrap().remove("aud");
    assert_eq!(
        check(&key.sign("JWT", &c).unwrap(), &jwks),
        Err(AssertionError::WrongAudience)
    );
}

/// RFC 7523bis / OAuth 2.1 §2.4: the issuer must be the sole audience. An
/// assertion also minted for another server could be replayed between them
/// (the audience-injection attack).
#[test]
fn assertion_with_extra_audience_is_refused() {
    let key = es256();
    let jwks = jwks_of(&[&key]);
    for aud in [
        json!([ISSUER, "https://attacker-as.example"]),
        json!(["https://attacker-as.example", ISSUER]),
        json!([ISSUER, ISSUER]),
        json!([]),
    ] {
        let mut c = claims();
        c["aud"] = aud.clone();
        assert_eq!(
            check(&key.sign("JWT", &c).unwrap(), &jwks),
            Err(AssertionError::WrongAudience),
            "{aud}"
        );
    }
}

/// Only what `token_endpoint_auth_signing_alg_values_supported` advertises
/// is accepted: RS384 verifies cryptographically but is not on the list.
#[test]
fn assertion_with_an_algorithm_not_advertised_is_refused() {
    use aws_lc_rs::signature::RSA_PKCS1_SHA384;
    assert_eq!(
        steward_jose::CLIENT_ASSERTION_ALGORITHMS,
        ["ES256", "ES384", "EdDSA", "RS256", "PS256"]
    );
    let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let public = rsa.public_key();
    let jwk = json!({
        "kty": "RSA",
        "n": b64(public.modulus().big_endian_without_leading_zero()),
        "e": b64(public.exponent().big_endian_without_leading_zero()),
    });
    for alg in ["RS384", "PS384", "PS512", "RS512", "ES512"] {
        let token = raw_jws(&json!({"alg": alg}), &claims(), |m| {
            let mut sig = vec![0; rsa.public_modulus_len()];
            rsa.sign(&RSA_PKCS1_SHA384, &SystemRandom::new(), m, &mut sig)
                .unwrap();
            sig
        });
        assert_eq!(
            check(&token, &json!({"keys": [jwk]})),
            Err(AssertionError::UnsupportedAlgorithm(alg.to_owned())),
            "{alg}"
        );
    }
}

/// RFC 7523 §3 item 7: the jti must be remembered for as long as the
/// assertion is acceptable — through the leeway after `exp`, not until `exp`.
#[test]
fn assertion_jti_is_remembered_while_the_assertion_is_acceptable() {
    let key = es256();
    let jwks = jwks_of(&[&key]);
    let token = key.sign("JWT", &claims()).unwrap();
    let out = check(&token, &jwks).unwrap();
    let exp = NOW + 60;
    assert_eq!(out.remember_until, UnixTime(exp + 31));
    let at = |t: i64| verify_client_assertion(&token, CLIENT, ISSUER, &jwks, UnixTime(t), MAX);
    assert!(at(out.remember_until.0 - 1).is_ok(), "still acceptable");
    assert_eq!(
        at(out.remember_until.0),
        Err(AssertionError::Expired),
        "refused from remember_until on"
    );
}

#[test]
fn exp_is_required_and_must_not_be_past() {
    let key = es256();
    let jwks = jwks_of(&[&key]);
    let mut c = claims();
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        check(&key.sign("JWT", &c).unwrap(), &jwks),
        Err(AssertionError::MissingExp)
    );
    c["exp"] = json!(NOW - 31);
    assert_eq!(
        check(&key.sign("JWT", &c).unwrap(), &jwks),
        Err(AssertionError::Expired)
    );
    c["exp"] = json!(NOW - 30);
    assert!(
        check(&key.sign("JWT", &c).unwrap(), &jwks).is_ok(),
        "within leeway"
    );
}

#[test]
fn exp_must_not_be_absurdly_far() {
    let key = es256();
    let jwks = jwks_of(&[&key]);
    let mut c = claims();
    c["exp"] = json!(NOW + 10 * 365 * 86_400);
    assert_eq!(
        check(&key.sign("JWT", &c).unwrap(), &jwks),
        Err(AssertionError::LifetimeTooLong)
    );
    c["exp"] = json!(NOW + MAX as i64);
    assert!(check(&key.sign("JWT", &c).unwrap(), &jwks).is_ok());
}

#[test]
fn jti_is_required() {
    let key = es256();
    let mut c = claims();
    c.as_object_mut().unwrap().remove("jti");
    assert_eq!(
        check(&key.sign("JWT", &c).unwrap(), &jwks_of(&[&key])),
        Err(AssertionError::MissingJti)
    );
    c["jti"] = json!("");
    assert_eq!(
        check(&key.sign("JWT", &c).unwrap(), &jwks_of(&[&key])),
        Err(AssertionError::MissingJti)
    );
}

#[test]
fn future_nbf_is_refused() {
    let key = es256();
    let mut c = claims();
    c["nbf"] = json!(NOW + 120);
    assert_eq!(
        check(&key.sign("JWT", &c).unwrap(), &jwks_of(&[&key])),
        Err(AssertionError::NotYetValid)
    );
}

#[test]
fn none_and_hmac_are_refused() {
    let key = es256();
    let jwks = jwks_of(&[&key]);
    let none = raw_jws(&json!({"alg": "none"}), &claims(), |_| b"x".to_vec());
    assert_eq!(
        check(&none, &jwks),
        Err(AssertionError::UnsupportedAlgorithm("none".into()))
    );
    // HS256 keyed with the client's public key, which the attacker knows.
    let secret = serde_json::to_vec(key.public_jwk()).unwrap();
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(),
        &jsonwebtoken::EncodingKey::from_secret(&secret),
    )
    .unwrap();
    assert_eq!(
        check(&hs, &jwks),
        Err(AssertionError::UnsupportedAlgorithm("HS256".into()))
    );
}

#[test]
fn a_jwks_with_private_members_is_refused() {
    let key = es256();
    let mut jwks = jwks_of(&[&key]);
    jwks["keys"][0]["d"] = json!(b64(&[9; 32]));
    assert_eq!(
        check(&key.sign("JWT", &claims()).unwrap(), &jwks),
        Err(AssertionError::PrivateKeyInJwks)
    );
}

#[test]
fn signature_by_another_key_is_refused() {
    let registered = es256();
    let other = steward_jose::generate_signing_key(Algorithm::Es256, &kek()).unwrap();
    // Names the registered key's kid, signed by a different private key.
    let forged = raw_jws(
        &json!({"alg": "ES256", "kid": registered.kid()}),
        &claims(),
        es256_raw_signer(&other),
    );
    assert_eq!(
        check(&forged, &jwks_of(&[&registered])),
        Err(AssertionError::BadSignature)
    );
    let mut tampered = registered.sign("JWT", &claims()).unwrap();
    tampered.replace_range(tampered.len() - 3.., "AAA");
    assert_eq!(
        check(&tampered, &jwks_of(&[&registered])),
        Err(AssertionError::BadSignature)
    );
}

#[test]
fn key_is_chosen_by_kid() {
    let es = es256();
    let ed = signing_key(Algorithm::EdDsa);
    let jwks = jwks_of(&[&es, &ed]);
    assert!(check(&ed.sign("JWT", &claims()).unwrap(), &jwks).is_ok());
    let unknown = raw_jws(&json!({"alg": "ES256", "kid": "nope"}), &claims(), |_| {
        vec![1; 64]
    });
    assert_eq!(
        check(&unknown, &jwks),
        Err(AssertionError::UnknownKid("nope".into()))
    );
    // kid names the Ed25519 key but the header says ES256.
    let mismatched = raw_jws(&json!({"alg": "ES256", "kid": ed.kid()}), &claims(), |_| {
        vec![1; 64]
    });
    assert_eq!(
        check(&mismatched, &jwks),
        Err(AssertionError::KeyAlgorithmMismatch)
    );
}

#[test]
fn without_kid_the_only_key_of_the_right_type_is_used() {
    let es = es256();
    let rsa = signing_key(Algorithm::Rs256);
    let es_token = raw_jws(
        &json!({"alg": "ES256"}),
        &claims(),
        es256_raw_signer(new_key(Algorithm::Es256)),
    );
    assert!(check(&es_token, &jwks_of(&[&es, &rsa])).is_ok());
    // Only an RSA key is registered: nothing fits ES256.
    assert_eq!(
        check(&es_token, &jwks_of(&[&rsa])),
        Err(AssertionError::NoMatchingKey)
    );
    // Two P-256 keys and no kid: ambiguous.
    let other = steward_jose::generate_signing_key(Algorithm::Es256, &kek()).unwrap();
    let jwks = json!({"keys": [es.public_jwk(), other.public_jwk]});
    assert_eq!(check(&es_token, &jwks), Err(AssertionError::AmbiguousKey));
    // A key declared for another alg, or for encryption, does not fit.
    let mut declared = es.public_jwk().clone();
    declared["alg"] = json!("ES384");
    assert_eq!(
        check(&es_token, &json!({"keys": [declared]})),
        Err(AssertionError::NoMatchingKey)
    );
    let mut enc = es.public_jwk().clone();
    enc["use"] = json!("enc");
    assert_eq!(
        check(&es_token, &json!({"keys": [enc]})),
        Err(AssertionError::NoMatchingKey)
    );
}

#[test]
fn malformed_inputs_are_refused() {
    let key = es256();
    let token = key.sign("JWT", &claims()).unwrap();
    assert_eq!(
        check(&token, &json!({"nokeys": []})),
        Err(AssertionError::InvalidClientJwks)
    );
    assert_eq!(check(&token, &json!([])), Err(AssertionError::InvalidClientJwks));
    assert_eq!(
        check("not.a-jwt", &jwks_of(&[&key])),
        Err(AssertionError::Malformed)
    );
    let not_object = key.sign("JWT", &json!(["array"])).unwrap();
    // RFC 7519 §7.2: the claims set must be an object, even a positional array
    // that serde could read as a struct.
    assert_eq!(
        check(&not_object, &jwks_of(&[&key])),
        Err(AssertionError::Malformed)
    );
    let wrong_types = key
        .sign(
            "JWT",
            &json!({"iss": CLIENT, "sub": CLIENT, "aud": ISSUER, "exp": "soon", "jti": 5}),
        )
        .unwrap();
    assert_eq!(
        check(&wrong_types, &jwks_of(&[&key])),
        Err(AssertionError::MissingExp)
    );
}

#[test]
fn duplicate_claims_are_refused() {
    // Two `iss` members: parsers disagree on which wins, so refuse outright.
    let payload = format!(
        r#"{{"iss":"https://evil.example","iss":"{CLIENT}","sub":"{CLIENT}","aud":"{ISSUER}","exp":{},"jti":"j"}}"#,
        NOW + 60
    );
    let header = json!({"alg": "ES256", "kid": new_key(Algorithm::Es256).kid});
    let input = format!(
        "{}.{}",
        b64(&serde_json::to_vec(&header).unwrap()),
        b64(payload.as_bytes())
    );
    let sig = es256_raw_signer(new_key(Algorithm::Es256))(input.as_bytes());
    let token = format!("{input}.{}", b64(&sig));
    assert_eq!(
        check(&token, &jwks_of(&[&es256()])),
        Err(AssertionError::InvalidClaims)
    );
}
