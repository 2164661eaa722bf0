use crate::common::{b64, es256_raw_signer, new_key, raw_jws, signing_key};
use serde_json::{Value, json};
use steward_core::UnixTime;
use steward_jose::{Algorithm, SigningKey, StatementError, statement_issuer, verify_software_statement};

const ISSUER: &str = "https://federation.example";
const AS: &str = "https://as.example";
const NOW: i64 = 1_800_000_000;

fn claims() -> Value {
    json!({"iss": ISSUER, "software_id": "acme-agent", "client_name": "Acme Agent",
           "redirect_uris": ["https://acme.example/cb"], "iat": NOW - 3600})
}

fn jwks_of(keys: &[&SigningKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.public_jwk().clone()).collect::<Vec<_>>()})
}

fn check(statement: &str, jwks: &Value) -> Result<serde_json::Map<String, Value>, StatementError> {
    verify_software_statement(statement, ISSUER, jwks, AS, UnixTime(NOW))
}

#[test]
fn a_statement_from_the_issuer_verifies_and_yields_its_claims() {
    for alg in [Algorithm::Es256, Algorithm::EdDsa, Algorithm::Rs256] {
        let key = signing_key(alg);
        let s = key.sign("JWT", &claims()).unwrap();
        assert_eq!(statement_issuer(&s).unwrap(), ISSUER);
        let out = check(&s, &jwks_of(&[&key])).unwrap();
        assert_eq!(out["software_id"], "acme-agent", "{alg}");
        assert_eq!(out["iss"], ISSUER);
    }
}

#[test]
fn alg_none_and_hmac_are_refused_before_any_key_is_chosen() {
    let key = signing_key(Algorithm::Es256);
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none"}"#),
        b64(&serde_json::to_vec(&claims()).unwrap())
    );
    // An empty signature is not even a JWS.
    assert_eq!(check(&none, &jwks_of(&[&key])), Err(StatementError::Malformed));
    let none = raw_jws(&json!({"alg": "none"}), &claims(), |_| b"x".to_vec());
    assert_eq!(
        check(&none, &jwks_of(&[&key])),
        Err(StatementError::UnsupportedAlgorithm("none".into()))
    );
    let hs = raw_jws(&json!({"alg": "HS256"}), &claims(), |_| vec![1; 32]);
    assert_eq!(
        check(&hs, &jwks_of(&[&key])),
        Err(StatementError::UnsupportedAlgorithm("HS256".into()))
    );
}

#[test]
fn a_statement_signed_by_another_key_is_refused() {
    let trusted = signing_key(Algorithm::Es256);
    let other = signing_key(Algorithm::EdDsa);
    let forged = other.sign("JWT", &claims()).unwrap();
    // The forger's kid is not in the trusted set.
    assert!(matches!(
        check(&forged, &jwks_of(&[&trusted])),
        Err(StatementError::UnknownKid(_))
    ));
    // Same kid, wrong key: the signature fails.
    let kid = trusted.public_jwk()["kid"].as_str().unwrap().to_owned();
    let signer = es256_raw_signer(new_key(Algorithm::Es256));
    let good = raw_jws(&json!({"alg": "ES256", "kid": kid}), &claims(), &signer);
    assert!(check(&good, &jwks_of(&[&trusted])).is_ok());
    let (input, _) = good.rsplit_once('.').unwrap();
    let mut tampered_claims = claims();
    tampered_claims["software_id"] = json!("someone-else");
    let tampered = format!(
        "{}.{}.{}",
        input.split_once('.').unwrap().0,
        b64(&serde_json::to_vec(&tampered_claims).unwrap()),
        good.rsplit_once('.').unwrap().1
    );
    assert_eq!(
        check(&tampered, &jwks_of(&[&trusted])),
        Err(StatementError::BadSignature)
    );
}

#[test]
fn iss_exp_nbf_and_aud_are_honoured() {
    let key = signing_key(Algorithm::Es256);
    let jwks = jwks_of(&[&key]);
    let with = |k: &str, v: Value| {
        let mut c = claims();
        c[k] = v;
        key.sign("JWT", &c).unwrap()
    };
    assert_eq!(
        check(&with("iss", json!("https://other.example")), &jwks),
        Err(StatementError::WrongIssuer)
    );
    assert_eq!(
        check(&with("exp", json!(NOW - 120)), &jwks),
        Err(StatementError::Expired)
    );
    assert!(check(&with("exp", json!(NOW + 120)), &jwks).is_ok());
    assert_eq!(
        check(&with("nbf", json!(NOW + 3600)), &jwks),
        Err(StatementError::NotYetValid)
    );
    assert_eq!(
        check(&with("aud", json!("https://elsewhere.example")), &jwks),
        Err(StatementError::WrongAudience)
    );
    assert!(check(&with("aud", json!([AS, "https://elsewhere.example"])), &jwks).is_ok());
}

#[test]
fn a_statement_without_iss_names_no_issuer() {
    let key = signing_key(Algorithm::Es256);
    let mut c = claims();
    c.as_object_mut().unwrap().remove("iss");
    let s = key.sign("JWT", &c).unwrap();
    assert_eq!(statement_issuer(&s), Err(StatementError::MissingIssuer));
    assert_eq!(statement_issuer("not a jwt"), Err(StatementError::Malformed));
}

#[test]
fn an_issuer_key_set_with_private_members_is_unusable() {
    let key = signing_key(Algorithm::Es256);
    let mut jwk = key.public_jwk().clone();
    jwk["d"] = json!("c2VjcmV0");
    let s = key.sign("JWT", &claims()).unwrap();
    assert_eq!(
        check(&s, &json!({"keys": [jwk]})),
        Err(StatementError::InvalidIssuerJwks)
    );
}
