use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::sync::OnceLock;
use steward_jose::{Algorithm, Kek, NewKey, SigningKey, generate_signing_key};

pub const ALGS: [Algorithm; 3] = [Algorithm::Es256, Algorithm::EdDsa, Algorithm::Rs256];

pub fn kek() -> Kek {
    Kek::from_bytes([42; 32])
}

/// One generated key per algorithm, shared: RSA generation is slow.
pub fn new_key(alg: Algorithm) -> &'static NewKey {
    static KEYS: OnceLock<Vec<NewKey>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        ALGS.iter()
            .map(|a| generate_signing_key(*a, &kek()).unwrap())
            .collect()
    });
    keys.iter().find(|k| k.algorithm == alg).unwrap()
}

pub fn signing_key(alg: Algorithm) -> SigningKey {
    let k = new_key(alg);
    SigningKey::decrypt(&k.kid, alg, &k.encrypted_private, &kek()).unwrap()
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A compact JWS assembled by hand, for headers Steward would never produce.
pub fn raw_jws(
    header: &serde_json::Value,
    claims: &serde_json::Value,
    sign: impl Fn(&[u8]) -> Vec<u8>,
) -> String {
    let input = format!(
        "{}.{}",
        b64(&serde_json::to_vec(header).unwrap()),
        b64(&serde_json::to_vec(claims).unwrap())
    );
    let sig = sign(input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

/// Signs arbitrary input with an ES256 key's private half, recovered from
/// its sealed form, for tokens whose header `SigningKey::sign` would not write.
pub fn es256_raw_signer(new: &NewKey) -> impl Fn(&[u8]) -> Vec<u8> {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let pkcs8 = steward_jose::at_rest::open(&kek(), &new.kid, &new.encrypted_private).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8).unwrap();
    move |m| pair.sign(&SystemRandom::new(), m).unwrap().as_ref().to_vec()
}
