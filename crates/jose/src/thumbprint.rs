//! RFC 7638 JWK thumbprints, used as Steward's `kid`.
//!
//! A thumbprint is a pure function of the public key, so a `kid` cannot be
//! reused for a different key, and anyone can recompute it from the JWKS.

use crate::error::JoseError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The members that enter the thumbprint for each `kty`, already in the
/// lexicographic order RFC 7638 §3.2 prescribes.
fn required_members(kty: &str) -> Option<&'static [&'static str]> {
    match kty {
        "EC" => Some(&["crv", "kty", "x", "y"]),
        "OKP" => Some(&["crv", "kty", "x"]), // RFC 8037 §2
        "RSA" => Some(&["e", "kty", "n"]),
        _ => None,
    }
}

/// base64url(SHA-256(canonical JSON of the required members)), RFC 7638 §3.
///
/// Optional members (`kid`, `alg`, `use`) are ignored, as §3.2 requires, so
/// the thumbprint of a published JWK equals that of the bare key.
pub fn jwk_thumbprint(jwk: &Value) -> Result<String, JoseError> {
    let kty = jwk
        .get("kty")
        .and_then(Value::as_str)
        .ok_or(JoseError::InvalidJwk("missing kty"))?;
    let members = required_members(kty).ok_or(JoseError::InvalidJwk("unsupported kty"))?;
    // §3.3: no whitespace, members in order, values as JSON strings.
    let mut canonical = String::from("{");
    for (i, name) in members.iter().enumerate() {
        let value = jwk
            .get(*name)
            .and_then(Value::as_str)
            .ok_or(JoseError::InvalidJwk("missing required member"))?;
        if i > 0 {
            canonical.push(',');
        }
        canonical.push_str(&serde_json::to_string(name)?);
        canonical.push(':');
        canonical.push_str(&serde_json::to_string(value)?);
    }
    canonical.push('}');
    Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The worked example of RFC 7638 §3.1.
    #[test]
    fn rfc7638_section_3_1_example() {
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            jwk_thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn optional_members_do_not_change_the_thumbprint() {
        let bare =
            json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        let mut decorated = bare.clone();
        decorated["kid"] = json!("anything");
        decorated["use"] = json!("sig");
        assert_eq!(
            jwk_thumbprint(&bare).unwrap(),
            jwk_thumbprint(&decorated).unwrap()
        );
    }

    #[test]
    fn unknown_kty_and_missing_members_are_errors() {
        assert!(jwk_thumbprint(&json!({"kty": "oct", "k": "AAAA"})).is_err());
        assert!(jwk_thumbprint(&json!({"kty": "EC", "crv": "P-256", "x": "AA"})).is_err());
        assert!(jwk_thumbprint(&json!({"n": "AA", "e": "AQAB"})).is_err());
    }
}
