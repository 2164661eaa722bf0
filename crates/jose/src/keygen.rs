//! New signing keys: generated, named by their RFC 7638 thumbprint, and
//! sealed under the KEK before they leave this module.

use crate::algorithm::Algorithm;
use crate::at_rest;
use crate::error::JoseError;
use crate::kek::Kek;
use crate::signing_key::KeyPair;
use crate::thumbprint::jwk_thumbprint;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use serde_json::Value;
use zeroize::Zeroizing;

/// A freshly generated key, ready to be stored. The private half exists only
/// encrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewKey {
    /// RFC 7638 thumbprint of the public key.
    pub kid: String,
    pub algorithm: Algorithm,
    /// The JWK to publish: key members plus `kid`, `alg`, `use: "sig"`.
    pub public_jwk: Value,
    /// `0x01 || nonce || AES-256-GCM(PKCS#8)`, AAD = `kid` (see [`at_rest`]).
    pub encrypted_private: Vec<u8>,
}

/// Generates a key for `alg` (P-256, Ed25519 or RSA-2048) and seals its
/// PKCS#8 encoding under `kek`.
pub fn generate_signing_key(alg: Algorithm, kek: &Kek) -> Result<NewKey, JoseError> {
    let pkcs8 = generate_pkcs8(alg)?;
    let pair = KeyPair::from_pkcs8(alg, &pkcs8)?;
    let public_jwk = pair.public_jwk()?;
    let kid = jwk_thumbprint(&public_jwk)?;
    let encrypted_private = at_rest::seal(kek, &kid, &pkcs8)?;
    Ok(NewKey {
        public_jwk: published(public_jwk, &kid, alg),
        kid,
        algorithm: alg,
        encrypted_private,
    })
}

fn generate_pkcs8(alg: Algorithm) -> Result<Zeroizing<Vec<u8>>, JoseError> {
    let der = match alg {
        Algorithm::Es256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .and_then(|k| k.to_pkcs8v1())
            .map(|doc| doc.as_ref().to_vec()),
        Algorithm::EdDsa => Ed25519KeyPair::generate()
            .and_then(|k| k.to_pkcs8v1())
            .map(|doc| doc.as_ref().to_vec()),
        Algorithm::Rs256 => RsaKeyPair::generate(KeySize::Rsa2048)
            .and_then(|k| k.as_der())
            .map(|der| der.as_ref().to_vec()),
    };
    der.map(Zeroizing::new).map_err(|_| JoseError::KeyGeneration)
}

/// Adds the optional members RFC 7517 §4 defines for a published signing key.
pub(crate) fn published(mut members: Value, kid: &str, alg: Algorithm) -> Value {
    if let Some(obj) = members.as_object_mut() {
        obj.insert("kid".into(), Value::from(kid));
        obj.insert("alg".into(), Value::from(alg.as_str()));
        obj.insert("use".into(), Value::from("sig"));
    }
    members
}
