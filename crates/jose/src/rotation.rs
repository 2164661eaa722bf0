//! Key rotation timing.
//!
//! Rotation: a new key is generated and published, becomes the signing key,
//! and the old key stops signing at `rotated_at`. Resource servers verify by
//! `kid` against `/jwks.json`, so the old public key must stay published
//! until the last token it signed can no longer be accepted anywhere:
//! that token was signed at the latest at `rotated_at`, lives at most
//! `max_token_lifetime_secs`, and verifiers may accept it for a further
//! [`RETIREMENT_LEEWAY_SECS`] of clock skew. Removing the key earlier would
//! make still-valid tokens fail verification.

use steward_core::UnixTime;

/// Clock skew that verifiers are expected to allow past `exp`.
pub const RETIREMENT_LEEWAY_SECS: i64 = 60;

/// The earliest time the rotated-out key may be removed from the JWKS.
pub fn retire_after(rotated_at: UnixTime, max_token_lifetime_secs: u64) -> UnixTime {
    let lifetime = i64::try_from(max_token_lifetime_secs).unwrap_or(i64::MAX);
    rotated_at.plus_secs(lifetime).plus_secs(RETIREMENT_LEEWAY_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_key_outlives_the_last_token_it_signed_plus_leeway() {
        let rotated = UnixTime(1_000_000);
        let retire = retire_after(rotated, 3_600);
        assert_eq!(retire, UnixTime(1_000_000 + 3_600 + RETIREMENT_LEEWAY_SECS));
        // A token signed at the last moment expires before the key disappears.
        let last_exp = rotated.plus_secs(3_600);
        assert!(retire.seconds() >= last_exp.seconds() + RETIREMENT_LEEWAY_SECS);
    }

    #[test]
    fn absurd_lifetimes_saturate_instead_of_wrapping() {
        assert_eq!(retire_after(UnixTime(10), u64::MAX), UnixTime(i64::MAX));
    }
}
