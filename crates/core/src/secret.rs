//! Secrets: generating unguessable values, storing only their hashes, and
//! keeping them out of `Debug` output and logs.
//!
//! OAuth 2.1 §7.7: guessing a code or token MUST have probability ≤ 2^-128
//! and SHOULD ≤ 2^-160. Steward uses 256 random bits.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;

/// A value that must never be printed: `Debug` and `Display` show `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself, for the one place that needs it (a response body,
    /// a hash computation). Named so that every use is easy to find.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// 256 random bits, base64url without padding (43 characters).
pub fn random_token() -> Secret {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    Secret(URL_SAFE_NO_PAD.encode(bytes))
}

/// A unique identifier that sorts by creation: 10 hex digits of `now`
/// (seconds), 8 of a process-wide sequence, then 96 random bits (16
/// base64url characters), 34 characters in all.
///
/// For the ids that are primary keys of busy tables (access-token `jti`,
/// refresh families, grants). A random key lands each insert on a random
/// B-tree page, and every page a transaction touches is written out again
/// (a 4 KiB WAL frame in SQLite, a WAL record and a later checkpoint in
/// PostgreSQL); ids that grow with time append to the same rightmost pages,
/// so a batch of inserts shares them. Uniqueness rests on the random part;
/// these ids are identifiers, not secrets (the creation time they reveal is
/// the token's `iat` anyway).
pub fn ordered_id(now: crate::UnixTime) -> String {
    static SEQUENCE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let seq = SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    // Seconds since 1970 fit in 10 hex digits until the year 36812.
    let secs = u64::try_from(now.seconds()).unwrap_or(0) & 0xff_ffff_ffff;
    format!("{secs:010x}{seq:08x}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The storage form of a high-entropy secret (code, token, session id):
/// lowercase hex SHA-256. A fast unkeyed hash suffices because the input has
/// 256 bits of entropy; it lets the database look a token up by its hash.
pub fn token_hash(token: &str) -> String {
    hex_lower(&Sha256::digest(token.as_bytes()))
}

fn hex_lower(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_ids_sort_by_creation_and_are_unique() {
        let t = crate::UnixTime(1_800_000_000);
        let ids: Vec<String> = (0..1000)
            .map(|i| ordered_id(if i < 500 { t } else { t.plus_secs(1) }))
            .collect();
        assert!(ids.iter().all(|id| id.len() == 34));
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "sorted by time, then sequence"
        );
        let mut unique = ids.clone();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
        // The random tail differs even for equal time and sequence prefixes.
        assert_ne!(ordered_id(t)[18..], ordered_id(t)[18..]);
    }

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn random_tokens_are_long_and_distinct() {
        let a = random_token();
        let b = random_token();
        assert_eq!(a.expose().len(), 43);
        assert_ne!(a, b);
    }

    #[test]
    fn token_hash_is_sha256_hex() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
