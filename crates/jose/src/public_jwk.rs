//! Public JWKs: building them from key pairs, refusing private members, and
//! turning them into verification keys.

use crate::error::JoseError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm as JwtAlg, DecodingKey};
use serde_json::{Value, json};

/// Members that only a private (or symmetric) JWK has: RFC 7518 §6.2.2 (EC
/// `d`), §6.3.2 (RSA), §6.4 (`oct` `k`), RFC 8037 §2 (OKP `d`). A published
/// or registered key set containing any of them leaks a signing key.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

pub(crate) fn has_private_members(jwk: &Value) -> bool {
    PRIVATE_MEMBERS.iter().any(|m| jwk.get(*m).is_some())
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The required members of a P-256 key from its uncompressed SEC1 point.
pub(crate) fn ec_p256(point: &[u8]) -> Result<Value, JoseError> {
    match point {
        [0x04, xy @ ..] if xy.len() == 64 => {
            let (x, y) = xy.split_at(32);
            Ok(json!({"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y)}))
        }
        _ => Err(JoseError::InvalidJwk("not an uncompressed P-256 point")),
    }
}

pub(crate) fn okp_ed25519(public: &[u8]) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "x": b64(public)})
}

/// RSA `n` and `e` as unsigned big-endian without leading zeros (RFC 7518 §6.3.1).
pub(crate) fn rsa(n: &[u8], e: &[u8]) -> Value {
    json!({"kty": "RSA", "n": b64(n), "e": b64(e)})
}

/// What kind of public key a JWK holds, which decides the algorithms it may
/// verify: a key is only ever used with its own family (RFC 8725 §3.1,
/// algorithm confusion).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyType {
    P256,
    P384,
    Ed25519,
    Rsa,
}

impl KeyType {
    pub(crate) fn accepts(self, alg: JwtAlg) -> bool {
        matches!(
            (self, alg),
            (Self::P256, JwtAlg::ES256)
                | (Self::P384, JwtAlg::ES384)
                | (Self::Ed25519, JwtAlg::EdDSA)
                | (
                    Self::Rsa,
                    JwtAlg::RS256
                        | JwtAlg::RS384
                        | JwtAlg::RS512
                        | JwtAlg::PS256
                        | JwtAlg::PS384
                        | JwtAlg::PS512
                )
        )
    }
}

fn member<'a>(jwk: &'a Value, name: &str) -> Result<&'a str, JoseError> {
    jwk.get(name)
        .and_then(Value::as_str)
        .ok_or(JoseError::InvalidJwk("missing or non-string key member"))
}

fn decoded_len(b64url: &str) -> Result<Vec<u8>, JoseError> {
    URL_SAFE_NO_PAD
        .decode(b64url)
        .map_err(|_| JoseError::InvalidJwk("key member is not base64url"))
}

/// RSA keys shorter than this are refused (RFC 7518 §3.3: 2048 bits or larger).
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// A verification key from a public JWK. Refuses private or symmetric keys
/// and members of the wrong size, so a malformed key fails here, at load
/// time, rather than at every verification.
pub(crate) fn decoding_key(jwk: &Value) -> Result<(KeyType, DecodingKey), JoseError> {
    if has_private_members(jwk) {
        return Err(JoseError::PrivateJwk);
    }
    if let Some(usage) = jwk.get("use")
        && usage.as_str() != Some("sig")
    {
        return Err(JoseError::InvalidJwk("key use is not sig"));
    }
    match member(jwk, "kty")? {
        "EC" => {
            let (kind, len) = match member(jwk, "crv")? {
                "P-256" => (KeyType::P256, 32),
                "P-384" => (KeyType::P384, 48),
                _ => return Err(JoseError::InvalidJwk("unsupported EC curve")),
            };
            let (x, y) = (member(jwk, "x")?, member(jwk, "y")?);
            if decoded_len(x)?.len() != len || decoded_len(y)?.len() != len {
                return Err(JoseError::InvalidJwk("EC coordinate has the wrong length"));
            }
            let key =
                DecodingKey::from_ec_components(x, y).map_err(|_| JoseError::InvalidJwk("invalid EC key"))?;
            Ok((kind, key))
        }
        "OKP" => {
            if member(jwk, "crv")? != "Ed25519" {
                return Err(JoseError::InvalidJwk("unsupported OKP curve"));
            }
            let x = member(jwk, "x")?;
            if decoded_len(x)?.len() != 32 {
                return Err(JoseError::InvalidJwk("Ed25519 key has the wrong length"));
            }
            let key = DecodingKey::from_ed_components(x)
                .map_err(|_| JoseError::InvalidJwk("invalid Ed25519 key"))?;
            Ok((KeyType::Ed25519, key))
        }
        "RSA" => {
            let n = decoded_len(member(jwk, "n")?)?;
            let e = decoded_len(member(jwk, "e")?)?;
            let significant = n.iter().skip_while(|b| **b == 0).count();
            if significant < MIN_RSA_MODULUS_BYTES {
                return Err(JoseError::InvalidJwk("RSA modulus shorter than 2048 bits"));
            }
            if e.is_empty() {
                return Err(JoseError::InvalidJwk("RSA exponent is empty"));
            }
            Ok((KeyType::Rsa, DecodingKey::from_rsa_raw_components(&n, &e)))
        }
        _ => Err(JoseError::InvalidJwk("unsupported kty")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_symmetric_keys_are_refused() {
        let ec_private =
            json!({"kty": "EC", "crv": "P-256", "x": b64(&[1; 32]), "y": b64(&[2; 32]), "d": b64(&[3; 32])});
        assert!(matches!(decoding_key(&ec_private), Err(JoseError::PrivateJwk)));
        let oct = json!({"kty": "oct", "k": "c2VjcmV0"});
        assert!(matches!(decoding_key(&oct), Err(JoseError::PrivateJwk)));
    }

    #[test]
    fn wrong_sizes_and_encryption_keys_are_refused() {
        let short = json!({"kty": "EC", "crv": "P-256", "x": b64(&[1; 31]), "y": b64(&[2; 32])});
        assert!(decoding_key(&short).is_err());
        let small_rsa = json!({"kty": "RSA", "n": b64(&[0xC3; 128]), "e": "AQAB"});
        assert!(decoding_key(&small_rsa).is_err());
        let enc = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&[1; 32]), "use": "enc"});
        assert!(decoding_key(&enc).is_err());
        let x25519 = json!({"kty": "OKP", "crv": "X25519", "x": b64(&[1; 32])});
        assert!(decoding_key(&x25519).is_err());
    }

    #[test]
    fn a_key_type_accepts_only_its_own_algorithms() {
        assert!(KeyType::P256.accepts(JwtAlg::ES256));
        assert!(!KeyType::P256.accepts(JwtAlg::ES384));
        assert!(!KeyType::Rsa.accepts(JwtAlg::HS256));
        assert!(!KeyType::Ed25519.accepts(JwtAlg::ES256));
        assert!(KeyType::Rsa.accepts(JwtAlg::PS256));
    }
}
