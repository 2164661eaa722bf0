//! Private keys at rest: AES-256-GCM under the KEK.
//!
//! Format: `0x01 || nonce (12 bytes) || ciphertext || tag (16 bytes)`.
//! The version byte leaves room to change the scheme without guessing.
//! The nonce is random per encryption; 96-bit random nonces are safe for far
//! more encryptions than a key store will ever perform (NIST SP 800-38D §8.3).
//! The AAD is the key's `kid`, so a ciphertext copied onto another key's row
//! fails to decrypt instead of silently signing under the wrong `kid`.

use crate::error::JoseError;
use crate::kek::Kek;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

/// The current format version byte.
pub const FORMAT_V1: u8 = 0x01;
const TAG_LEN: usize = 16;

fn aead_key(kek: &Kek) -> Result<LessSafeKey, JoseError> {
    let unbound = UnboundKey::new(&AES_256_GCM, kek.bytes()).map_err(|_| JoseError::Encryption)?;
    Ok(LessSafeKey::new(unbound))
}

/// Encrypts `plaintext` (a PKCS#8 document) bound to `kid`.
pub fn seal(kek: &Kek, kid: &str, plaintext: &[u8]) -> Result<Vec<u8>, JoseError> {
    let key = aead_key(kek)?;
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| JoseError::Encryption)?;
    let mut in_out = plaintext.to_vec();
    let sealed = key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(kid.as_bytes()),
        &mut in_out,
    );
    if sealed.is_err() {
        zeroize::Zeroize::zeroize(&mut in_out);
        return Err(JoseError::Encryption);
    }
    let mut out = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
    out.push(FORMAT_V1);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&in_out);
    Ok(out)
}

/// Decrypts what [`seal`] produced for the same `kid` under the same KEK.
pub fn open(kek: &Kek, kid: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, JoseError> {
    let (&version, rest) = sealed.split_first().ok_or(JoseError::Decryption)?;
    if version != FORMAT_V1 {
        return Err(JoseError::UnknownCiphertextVersion(version));
    }
    if rest.len() < NONCE_LEN + TAG_LEN {
        return Err(JoseError::Decryption);
    }
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| JoseError::Decryption)?;
    let key = aead_key(kek)?;
    let mut in_out = Zeroizing::new(ciphertext.to_vec());
    let plain_len = key
        .open_in_place(nonce, Aad::from(kid.as_bytes()), in_out.as_mut_slice())
        .map_err(|_| JoseError::Decryption)?
        .len();
    in_out.truncate(plain_len);
    Ok(in_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek(b: u8) -> Kek {
        Kek::from_bytes([b; 32])
    }

    #[test]
    fn round_trips_and_uses_the_documented_layout() {
        let sealed = seal(&kek(1), "kid-1", b"private").unwrap();
        assert_eq!(sealed[0], FORMAT_V1);
        assert_eq!(sealed.len(), 1 + NONCE_LEN + 7 + TAG_LEN);
        assert_eq!(open(&kek(1), "kid-1", &sealed).unwrap().as_slice(), b"private");
    }

    #[test]
    fn nonces_are_fresh_per_encryption() {
        let a = seal(&kek(1), "k", b"same").unwrap();
        let b = seal(&kek(1), "k", b"same").unwrap();
        assert_ne!(a[1..1 + NONCE_LEN], b[1..1 + NONCE_LEN]);
        assert_ne!(a, b);
    }

    #[test]
    fn wrong_kek_fails() {
        let sealed = seal(&kek(1), "k", b"private").unwrap();
        assert!(matches!(open(&kek(2), "k", &sealed), Err(JoseError::Decryption)));
    }

    #[test]
    fn kid_is_authenticated() {
        let sealed = seal(&kek(1), "k1", b"private").unwrap();
        assert!(matches!(open(&kek(1), "k2", &sealed), Err(JoseError::Decryption)));
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let sealed = seal(&kek(1), "k", b"private key bytes").unwrap();
        for i in 1..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 0x01;
            assert!(
                matches!(open(&kek(1), "k", &t), Err(JoseError::Decryption)),
                "byte {i}"
            );
        }
    }

    #[test]
    fn truncation_and_unknown_versions_are_refused() {
        let sealed = seal(&kek(1), "k", b"private").unwrap();
        assert!(matches!(
            open(&kek(1), "k", &sealed[..sealed.len() - 1]),
            Err(JoseError::Decryption)
        ));
        assert!(matches!(
            open(&kek(1), "k", &sealed[..10]),
            Err(JoseError::Decryption)
        ));
        assert!(matches!(open(&kek(1), "k", &[]), Err(JoseError::Decryption)));
        let mut v2 = sealed.clone();
        v2[0] = 0x02;
        assert!(matches!(
            open(&kek(1), "k", &v2),
            Err(JoseError::UnknownCiphertextVersion(2))
        ));
    }
}
