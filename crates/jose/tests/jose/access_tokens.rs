use crate::common::{ALGS, b64, new_key, raw_jws, signing_key};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use steward_core::UnixTime;
use steward_jose::{
    AccessTokenClaims, Algorithm, Expectations, JoseError, Jwks, Verifier, sign_access_token,
};

const ISS: &str = "https://as.example";
const AUD: &str = "https://mcp.example/mcp";
const IAT: i64 = 1_800_000_000;
const EXP: i64 = IAT + 300;

fn claims() -> AccessTokenClaims {
    AccessTokenClaims {
        iss: ISS.into(),
        sub: "user-1".into(),
        aud: AUD.into(),
        client_id: "https://client.example/cimd.json".into(),
        scope: "tools:read tools:call".into(),
        iat: IAT,
        exp: EXP,
        jti: "jti-1".into(),
        auth_time: Some(IAT - 60),
    }
}

fn expect(now: i64) -> Expectations<'static> {
    Expectations {
        typ: Some("at+jwt"),
        issuer: ISS,
        audience: Some(AUD),
        now: UnixTime(now),
        leeway: 30,
    }
}

fn verifier() -> Verifier {
    let jwks: Vec<Value> = ALGS.iter().map(|a| new_key(*a).public_jwk.clone()).collect();
    Jwks::from_public_jwks(&jwks).unwrap().verifier().unwrap()
}

fn verify(token: &str, e: &Expectations<'_>) -> Result<AccessTokenClaims, JoseError> {
    verifier().verify::<AccessTokenClaims>(token, e)
}

fn header(token: &str) -> Value {
    let h = token.split('.').next().unwrap();
    serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, h).unwrap(),
    )
    .unwrap()
}

#[test]
fn round_trip_for_every_algorithm() {
    for alg in ALGS {
        let key = signing_key(alg);
        let token = sign_access_token(&key, &claims()).unwrap();
        assert_eq!(
            header(&token),
            json!({"alg": alg.as_str(), "kid": key.kid(), "typ": "at+jwt"})
        );
        assert_eq!(verify(&token, &expect(IAT)).unwrap(), claims(), "{alg}");
    }
}

#[test]
fn tokens_verify_with_an_independent_jwt_library() {
    for alg in ALGS {
        let key = signing_key(alg);
        let token = sign_access_token(&key, &claims()).unwrap();
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.public_jwk().clone()).unwrap();
        let dk = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
        let jwt_alg: jsonwebtoken::Algorithm = alg.as_str().parse().unwrap();
        let mut v = jsonwebtoken::Validation::new(jwt_alg);
        v.validate_exp = false;
        v.set_audience(&[AUD]);
        let data = jsonwebtoken::decode::<AccessTokenClaims>(&token, &dk, &v).unwrap();
        assert_eq!(data.claims, claims(), "{alg}");
    }
}

#[test]
fn auth_time_is_omitted_when_absent() {
    let mut c = claims();
    c.auth_time = None;
    let token = sign_access_token(&signing_key(Algorithm::Es256), &c).unwrap();
    let payload: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            token.split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(payload.get("auth_time").is_none());
    assert_eq!(verify(&token, &expect(IAT)).unwrap(), c);
}

#[test]
fn alg_none_is_refused() {
    let kid = new_key(Algorithm::Es256).kid.clone();
    let h = json!({"alg": "none", "kid": kid, "typ": "at+jwt"});
    let c = serde_json::to_value(claims()).unwrap();
    let with_sig = raw_jws(&h, &c, |_| b"x".to_vec());
    assert!(
        matches!(verify(&with_sig, &expect(IAT)), Err(JoseError::UnsupportedAlgorithm(a)) if a == "none")
    );
    let unsigned = format!(
        "{}.{}.",
        b64(&serde_json::to_vec(&h).unwrap()),
        b64(&serde_json::to_vec(&c).unwrap())
    );
    assert!(matches!(
        verify(&unsigned, &expect(IAT)),
        Err(JoseError::Malformed)
    ));
}

#[test]
fn hmac_with_the_public_key_as_secret_is_refused() {
    // The classic algorithm-confusion attack: HS256 keyed with the public JWK.
    let jwk = &new_key(Algorithm::Es256).public_jwk;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(jwk["kid"].as_str().unwrap().to_owned());
    header.typ = Some("at+jwt".into());
    let secret = serde_json::to_vec(jwk).unwrap();
    let token = jsonwebtoken::encode(
        &header,
        &claims(),
        &jsonwebtoken::EncodingKey::from_secret(&secret),
    )
    .unwrap();
    assert!(matches!(verify(&token, &expect(IAT)), Err(JoseError::UnsupportedAlgorithm(a)) if a == "HS256"));
}

#[test]
fn unknown_or_missing_kid_is_refused() {
    let key = signing_key(Algorithm::Es256);
    let token = sign_access_token(&key, &claims()).unwrap();
    let only_ed = Jwks::from_public_jwks(&[new_key(Algorithm::EdDsa).public_jwk.clone()]).unwrap();
    let err = only_ed
        .verifier()
        .unwrap()
        .verify::<Value>(&token, &expect(IAT))
        .unwrap_err();
    assert!(matches!(err, JoseError::UnknownKey(Some(k)) if k == key.kid()));

    let no_kid = raw_jws(&json!({"alg": "ES256", "typ": "at+jwt"}), &json!({}), |_| {
        vec![1; 64]
    });
    assert!(matches!(
        verify(&no_kid, &expect(IAT)),
        Err(JoseError::UnknownKey(None))
    ));
}

#[test]
fn algorithm_must_match_the_keys_algorithm() {
    // Header claims EdDSA but names the ES256 key: refused before any
    // signature check, whatever the signature bytes are.
    let es_kid = &new_key(Algorithm::Es256).kid;
    let token = raw_jws(
        &json!({"alg": "EdDSA", "kid": es_kid, "typ": "at+jwt"}),
        &serde_json::to_value(claims()).unwrap(),
        |_| vec![7; 64],
    );
    assert!(matches!(
        verify(&token, &expect(IAT)),
        Err(JoseError::AlgorithmMismatch)
    ));
}

#[test]
fn tampered_payload_or_signature_is_refused() {
    for alg in ALGS {
        let token = sign_access_token(&signing_key(alg), &claims()).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let mut evil = claims();
        evil.scope = "admin".into();
        let forged_payload = b64(&serde_json::to_vec(&evil).unwrap());
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert!(
            matches!(verify(&forged, &expect(IAT)), Err(JoseError::BadSignature)),
            "{alg}"
        );

        let mut sig =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, parts[2]).unwrap();
        sig[3] ^= 1;
        let bad_sig = format!("{}.{}.{}", parts[0], parts[1], b64(&sig));
        assert!(
            matches!(verify(&bad_sig, &expect(IAT)), Err(JoseError::BadSignature)),
            "{alg}"
        );
    }
}

#[test]
fn typ_must_be_the_expected_one() {
    let key = signing_key(Algorithm::Es256);
    let id_token_like = key.sign("JWT", &claims()).unwrap();
    assert!(matches!(
        verify(&id_token_like, &expect(IAT)),
        Err(JoseError::WrongType { found: Some(t), .. }) if t == "JWT"
    ));
    let full_media_type = key.sign("application/at+jwt", &claims()).unwrap();
    assert!(verify(&full_media_type, &expect(IAT)).is_ok());
    let untyped = Expectations {
        typ: None,
        ..expect(IAT)
    };
    assert!(verify(&id_token_like, &untyped).is_ok());
}

#[test]
fn issuer_must_match() {
    let token = sign_access_token(&signing_key(Algorithm::Es256), &claims()).unwrap();
    let e = Expectations {
        issuer: "https://other.example",
        ..expect(IAT)
    };
    assert!(matches!(verify(&token, &e), Err(JoseError::WrongIssuer)));
}

#[test]
fn audience_must_match_when_expected() {
    let key = signing_key(Algorithm::Es256);
    let token = sign_access_token(&key, &claims()).unwrap();
    let e = Expectations {
        audience: Some("https://other.example/mcp"),
        ..expect(IAT)
    };
    assert!(matches!(verify(&token, &e), Err(JoseError::WrongAudience)));
    let any = Expectations {
        audience: None,
        ..expect(IAT)
    };
    assert!(verify(&token, &any).is_ok());

    #[derive(Serialize)]
    struct MultiAud<'a> {
        iss: &'a str,
        aud: [&'a str; 2],
        exp: i64,
    }
    let multi = key
        .sign(
            "at+jwt",
            &MultiAud {
                iss: ISS,
                aud: ["https://x.example", AUD],
                exp: EXP,
            },
        )
        .unwrap();
    assert!(verifier().verify::<Value>(&multi, &expect(IAT)).is_ok());
}

#[test]
fn expiry_is_judged_against_the_given_now_with_leeway() {
    let token = sign_access_token(&signing_key(Algorithm::Es256), &claims()).unwrap();
    assert!(verify(&token, &expect(EXP)).is_ok());
    assert!(verify(&token, &expect(EXP + 30)).is_ok(), "inside leeway");
    assert!(matches!(
        verify(&token, &expect(EXP + 31)),
        Err(JoseError::Expired)
    ));
    let strict = Expectations {
        leeway: 0,
        ..expect(EXP + 1)
    };
    assert!(matches!(verify(&token, &strict), Err(JoseError::Expired)));
}

#[test]
fn the_os_clock_is_not_consulted() {
    // exp in 1970: only the passed `now` decides.
    let mut c = claims();
    c.iat = 100;
    c.exp = 1_000;
    let token = sign_access_token(&signing_key(Algorithm::Es256), &c).unwrap();
    assert!(verify(&token, &expect(900)).is_ok());
}

#[test]
fn missing_exp_is_refused() {
    #[derive(Serialize)]
    struct NoExp<'a> {
        iss: &'a str,
        aud: &'a str,
    }
    let token = signing_key(Algorithm::Es256)
        .sign("at+jwt", &NoExp { iss: ISS, aud: AUD })
        .unwrap();
    assert!(matches!(
        verifier().verify::<Value>(&token, &expect(IAT)),
        Err(JoseError::MissingExp)
    ));
}

#[test]
fn future_nbf_is_refused() {
    let token = signing_key(Algorithm::Es256)
        .sign(
            "at+jwt",
            &json!({"iss": ISS, "aud": AUD, "exp": EXP, "nbf": IAT + 100}),
        )
        .unwrap();
    assert!(matches!(
        verifier().verify::<Value>(&token, &expect(IAT)),
        Err(JoseError::NotYetValid)
    ));
    assert!(verifier().verify::<Value>(&token, &expect(IAT + 100)).is_ok());
}

#[test]
fn claims_of_the_wrong_shape_are_refused() {
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct NeedsCnf {
        cnf: Value,
    }
    let token = sign_access_token(&signing_key(Algorithm::Es256), &claims()).unwrap();
    assert!(matches!(
        verifier().verify::<NeedsCnf>(&token, &expect(IAT)),
        Err(JoseError::InvalidClaims(_))
    ));
}

#[test]
fn jwks_refuses_private_duplicate_and_incomplete_keys() {
    let es = new_key(Algorithm::Es256).public_jwk.clone();
    let mut private = es.clone();
    private["d"] = json!("AAAA");
    assert!(matches!(
        Jwks::from_public_jwks(&[private]),
        Err(JoseError::PrivateJwk)
    ));
    assert!(Jwks::from_public_jwks(&[es.clone(), es.clone()]).is_err());
    for member in ["kid", "alg"] {
        let mut missing = es.clone();
        missing.as_object_mut().unwrap().remove(member);
        assert!(Jwks::from_public_jwks(&[missing]).is_err(), "{member}");
    }
    let mut wrong_alg = es.clone();
    wrong_alg["alg"] = json!("RS256");
    assert!(Jwks::from_public_jwks(&[wrong_alg]).is_err());
}

#[test]
fn jwks_document_has_keys_and_no_private_members() {
    let keys: Vec<Value> = ALGS.iter().map(|a| new_key(*a).public_jwk.clone()).collect();
    let doc = Jwks::from_public_jwks(&keys).unwrap().to_json();
    assert_eq!(doc.as_object().unwrap().len(), 1);
    assert_eq!(doc["keys"].as_array().unwrap(), &keys);
    let text = doc.to_string();
    for m in ["\"d\"", "\"p\"", "\"q\"", "\"dp\"", "\"dq\"", "\"qi\""] {
        assert!(!text.contains(m), "{m}");
    }
}

#[test]
fn a_rotated_out_key_still_verifies_until_removed() {
    let old = signing_key(Algorithm::Es256);
    let token = sign_access_token(&old, &claims()).unwrap();
    let both = Jwks::from_public_jwks(&[
        new_key(Algorithm::EdDsa).public_jwk.clone(),
        old.public_jwk().clone(),
    ])
    .unwrap();
    assert!(
        both.verifier()
            .unwrap()
            .verify::<Value>(&token, &expect(IAT))
            .is_ok()
    );
    let new_only = Jwks::from_public_jwks(&[new_key(Algorithm::EdDsa).public_jwk.clone()]).unwrap();
    assert!(matches!(
        new_only.verifier().unwrap().verify::<Value>(&token, &expect(IAT)),
        Err(JoseError::UnknownKey(_))
    ));
}

#[test]
fn critical_header_extensions_are_refused() {
    let kid = &new_key(Algorithm::Es256).kid;
    let token = raw_jws(
        &json!({"alg": "ES256", "kid": kid, "crit": ["b64"], "b64": false}),
        &json!({}),
        |_| vec![1; 64],
    );
    assert!(matches!(
        verify(&token, &expect(IAT)),
        Err(JoseError::UnsupportedCritical)
    ));
}

#[test]
fn a_token_without_typ_is_refused_when_typ_is_expected() {
    let new = new_key(Algorithm::Es256);
    let token = raw_jws(
        &json!({"alg": "ES256", "kid": new.kid}),
        &serde_json::to_value(claims()).unwrap(),
        crate::common::es256_raw_signer(new),
    );
    assert!(matches!(
        verify(&token, &expect(IAT)),
        Err(JoseError::WrongType { found: None, .. })
    ));
    let untyped = Expectations {
        typ: None,
        ..expect(IAT)
    };
    assert_eq!(verify(&token, &untyped).unwrap(), claims());
}
