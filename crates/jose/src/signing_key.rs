//! A decrypted signing key that signs compact JWS (RFC 7515 §7.1).
//!
//! The key pair is parsed once, at decrypt time, and kept parsed: parsing a
//! PKCS#8 document validates the key (a full scalar multiplication for
//! P-256), which would otherwise double the cost of every token. This is
//! also why signing does not go through `jsonwebtoken::encode`, which
//! re-parses its `EncodingKey` bytes on every call.

use crate::algorithm::Algorithm;
use crate::at_rest;
use crate::error::JoseError;
use crate::kek::Kek;
use crate::keygen::published;
use crate::public_jwk;
use crate::thumbprint::jwk_thumbprint;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::Value;
use std::fmt;

/// A parsed private key of one of Steward's algorithms.
pub(crate) enum KeyPair {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
    Rs256(RsaKeyPair),
}

impl KeyPair {
    pub(crate) fn from_pkcs8(alg: Algorithm, der: &[u8]) -> Result<KeyPair, JoseError> {
        let parsed = match alg {
            Algorithm::Es256 => {
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).map(KeyPair::Es256)
            }
            Algorithm::EdDsa => Ed25519KeyPair::from_pkcs8(der).map(KeyPair::EdDsa),
            Algorithm::Rs256 => RsaKeyPair::from_pkcs8(der).map(KeyPair::Rs256),
        };
        parsed.map_err(|_| JoseError::KeyRejected(alg))
    }

    /// The public key as a JWK with only its key members.
    pub(crate) fn public_jwk(&self) -> Result<Value, JoseError> {
        match self {
            KeyPair::Es256(k) => public_jwk::ec_p256(k.public_key().as_ref()),
            KeyPair::EdDsa(k) => Ok(public_jwk::okp_ed25519(k.public_key().as_ref())),
            KeyPair::Rs256(k) => {
                let public = k.public_key();
                Ok(public_jwk::rsa(
                    public.modulus().big_endian_without_leading_zero(),
                    public.exponent().big_endian_without_leading_zero(),
                ))
            }
        }
    }

    /// The JWS signature over `input`. ECDSA signatures are the fixed-width
    /// `R || S` form RFC 7518 §3.4 requires, not DER.
    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, JoseError> {
        match self {
            KeyPair::Es256(k) => k
                .sign(&SystemRandom::new(), input)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| JoseError::Signing),
            KeyPair::EdDsa(k) => Ok(k.sign(input).as_ref().to_vec()),
            KeyPair::Rs256(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), input, &mut sig)
                    .map_err(|_| JoseError::Signing)?;
                Ok(sig)
            }
        }
    }
}

/// A signing key, decrypted and ready. `Debug` shows only the `kid` and algorithm.
pub struct SigningKey {
    kid: String,
    algorithm: Algorithm,
    public_jwk: Value,
    pair: KeyPair,
}

#[derive(Serialize)]
struct JwsHeader<'a> {
    alg: &'static str,
    kid: &'a str,
    typ: &'a str,
}

impl SigningKey {
    /// Decrypts a stored key. Fails on a wrong KEK, a ciphertext that was
    /// tampered with or moved to another `kid` (AES-GCM with the `kid` as
    /// AAD), a key that is not of `alg`, or a key whose thumbprint is not `kid`.
    pub fn decrypt(kid: &str, alg: Algorithm, encrypted: &[u8], kek: &Kek) -> Result<SigningKey, JoseError> {
        let pkcs8 = at_rest::open(kek, kid, encrypted)?;
        let pair = KeyPair::from_pkcs8(alg, &pkcs8)?;
        let members = pair.public_jwk()?;
        if jwk_thumbprint(&members)? != kid {
            return Err(JoseError::KidMismatch);
        }
        Ok(SigningKey {
            kid: kid.to_owned(),
            algorithm: alg,
            public_jwk: published(members, kid, alg),
            pair,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The JWK to publish (key members, `kid`, `alg`, `use`); never private members.
    pub fn public_jwk(&self) -> &Value {
        &self.public_jwk
    }

    /// A compact JWS over `claims` with header `{"alg","kid","typ"}`.
    ///
    /// `typ` names the token's kind (RFC 8725 §3.11: explicit typing), so a
    /// token minted for one purpose cannot be replayed as another.
    pub fn sign<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String, JoseError> {
        let header = serde_json::to_vec(&JwsHeader {
            alg: self.algorithm.as_str(),
            kid: &self.kid,
            typ,
        })?;
        let payload = serde_json::to_vec(claims)?;
        let mut token = String::with_capacity((header.len() + payload.len()) * 4 / 3 + 400);
        URL_SAFE_NO_PAD.encode_string(&header, &mut token);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = self.pair.sign(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(token)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("private", &"[redacted]")
            .finish()
    }
}
