//! Token signing keys and their rotation.
//!
//! At most one key is current (the newest key, not scheduled for
//! retirement; enforced by a unique partial index), so the first key of an
//! empty database is one decision however many nodes start at once. A
//! rotation publishes the new key at once (`published_at`) but lets it sign
//! only from `activated_at`, once every node must have reloaded and
//! published it; the previous key keeps signing until then and stays
//! published until `retire_after`, so tokens it signed stay verifiable until
//! they expire.

use crate::StoreError;
use async_trait::async_trait;
use std::fmt;
use steward_core::UnixTime;

#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    pub kid: String,
    pub algorithm: String,
    /// Public JWK as JSON text.
    pub public_jwk: String,
    /// The private key, encrypted by the caller. Redacted in `Debug`.
    pub private_key_encrypted: Vec<u8>,
    pub created_at: UnixTime,
    /// From when the public key is in the JWKS (verifiers accept it).
    pub published_at: Option<UnixTime>,
    /// From when the key signs new tokens (newest activated key wins); may
    /// lie in the future for a freshly rotated key.
    pub activated_at: Option<UnixTime>,
    pub retire_after: Option<UnixTime>,
    pub retired_at: Option<UnixTime>,
}

impl SigningKey {
    /// The current key: activated (possibly from a future instant) and not
    /// scheduled for retirement. At most one key is current.
    pub fn is_active(&self) -> bool {
        self.activated_at.is_some() && self.retire_after.is_none() && self.retired_at.is_none()
    }

    /// In the JWKS at `now`: published, and neither retired nor past
    /// `retire_after`. Rows from before `published_at` existed count as
    /// published from their activation.
    pub fn is_published_at(&self, now: UnixTime) -> bool {
        self.published_at.or(self.activated_at).is_some_and(|t| t <= now)
            && self.retired_at.is_none()
            && self.retire_after.is_none_or(|t| t > now)
    }

    /// May sign at `now`: activated by then and still published. Of the
    /// keys that may, the newest activation signs.
    pub fn may_sign_at(&self, now: UnixTime) -> bool {
        self.activated_at.is_some_and(|t| t <= now) && self.is_published_at(now)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("public_jwk", &self.public_jwk)
            .field(
                "private_key_encrypted",
                &format_args!("[{} bytes redacted]", self.private_key_encrypted.len()),
            )
            .field("created_at", &self.created_at)
            .field("published_at", &self.published_at)
            .field("activated_at", &self.activated_at)
            .field("retire_after", &self.retire_after)
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn insert_signing_key(&self, key: &SigningKey) -> Result<(), StoreError>;
    /// All keys, newest (`created_at`) first.
    async fn list_signing_keys(&self) -> Result<Vec<SigningKey>, StoreError>;
    /// In one transaction: the current key (if any) gets `retire_after =
    /// previous_retire_after` and stops being current; `kid` gets
    /// `published_at` and `activated_at` (it signs from then). A key inserted
    /// already current ([`KeyStore::insert_signing_key`] with `activated_at`
    /// set) conflicts with an existing current key instead: that is how the
    /// first key of a database is one decision.
    /// [`StoreError::NotFound`] if `kid` is unknown or retired;
    /// [`StoreError::Conflict`] if a concurrent activation won.
    async fn activate_signing_key(
        &self,
        kid: &str,
        published_at: UnixTime,
        activated_at: UnixTime,
        previous_retire_after: UnixTime,
    ) -> Result<(), StoreError>;
    /// The current key (see [`SigningKey::is_active`]), if any.
    async fn active_signing_key(&self) -> Result<Option<SigningKey>, StoreError>;
    /// Sets `retired_at = now` on keys whose `retire_after <= now`; returns their kids.
    async fn retire_expired_keys(&self, now: UnixTime) -> Result<Vec<String>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey {
            kid: "k1".into(),
            algorithm: "ES256".into(),
            public_jwk: "{}".into(),
            private_key_encrypted: vec![0xAB; 3],
            created_at: UnixTime(0),
            published_at: Some(UnixTime(1)),
            activated_at: Some(UnixTime(1)),
            retire_after: None,
            retired_at: None,
        }
    }

    #[test]
    fn debug_never_prints_private_key_bytes() {
        let shown = format!("{:?}", key());
        assert!(shown.contains("[3 bytes redacted]"));
        assert!(!shown.contains("171"), "0xAB as a decimal byte must not appear");
    }

    #[test]
    fn scheduled_for_retirement_is_not_active() {
        assert!(key().is_active());
        assert!(
            !SigningKey {
                retire_after: Some(UnixTime(5)),
                ..key()
            }
            .is_active()
        );
        assert!(
            !SigningKey {
                activated_at: None,
                ..key()
            }
            .is_active()
        );
    }

    #[test]
    fn a_rotated_key_is_published_before_it_may_sign() {
        let pending = SigningKey {
            published_at: Some(UnixTime(10)),
            activated_at: Some(UnixTime(50)),
            ..key()
        };
        assert!(!pending.is_published_at(UnixTime(9)));
        assert!(pending.is_published_at(UnixTime(10)));
        assert!(!pending.may_sign_at(UnixTime(49)));
        assert!(pending.may_sign_at(UnixTime(50)));
        let retiring = SigningKey {
            retire_after: Some(UnixTime(60)),
            ..pending.clone()
        };
        assert!(retiring.is_published_at(UnixTime(59)));
        assert!(!retiring.is_published_at(UnixTime(60)));
        assert!(!retiring.may_sign_at(UnixTime(60)));
        let legacy = SigningKey {
            published_at: None,
            ..key()
        };
        assert!(
            legacy.is_published_at(UnixTime(1)),
            "published from its activation"
        );
    }
}
