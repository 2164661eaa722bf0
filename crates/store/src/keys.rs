//! Token signing keys and their rotation.
//!
//! At most one key is active (signs new tokens; enforced by a unique partial
//! index). Activating a new key does not drop the old one: it keeps being
//! published in the JWKS until `retire_after`, so tokens it signed stay
//! verifiable until they expire.

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
    pub activated_at: Option<UnixTime>,
    pub retire_after: Option<UnixTime>,
    pub retired_at: Option<UnixTime>,
}

impl SigningKey {
    /// Signs new tokens: activated and not yet scheduled for retirement.
    pub fn is_active(&self) -> bool {
        self.activated_at.is_some() && self.retire_after.is_none() && self.retired_at.is_none()
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
    /// In one transaction: the currently active key (if any) gets
    /// `retire_after = previous_retire_after` and stops being active; `kid`
    /// gets `activated_at = now`. [`StoreError::NotFound`] if `kid` is unknown
    /// or retired; [`StoreError::Conflict`] if a concurrent activation won.
    async fn activate_signing_key(
        &self,
        kid: &str,
        now: UnixTime,
        previous_retire_after: UnixTime,
    ) -> Result<(), StoreError>;
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
}
