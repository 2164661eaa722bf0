//! The signing key ring: which key signs, which keys are published.
//!
//! Keys live in the database (private halves sealed with the key-encryption
//! key), so every node sharing the database agrees on them. A rotation makes
//! a new key active at once; the previous key stays in the JWKS until every
//! token it signed has expired (`retire_after`), then is retired. Running
//! servers reload the set every `keys.reload_seconds`.

use bytes::Bytes;
use std::sync::{Arc, RwLock};
use steward_core::{Clock, UnixTime};
use steward_jose::{Algorithm, Jwks, Kek, SigningKey, Verifier, generate_signing_key};
use steward_store::Store;
use steward_store::keys::SigningKey as StoredKey;

use crate::settings::Settings;

#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    #[error("signing key storage: {0}")]
    Store(#[from] steward_store::StoreError),
    #[error("signing key {kid}: {source}")]
    Key {
        kid: String,
        source: steward_jose::JoseError,
    },
    #[error("signing keys: {0}")]
    Jose(#[from] steward_jose::JoseError),
    #[error("stored signing key {kid} has unknown algorithm {alg:?}")]
    UnknownAlgorithm { kid: String, alg: String },
    #[error("no active signing key")]
    NoActiveKey,
}

/// A consistent snapshot: the active key and what is published.
struct KeySet {
    active: Arc<SigningKey>,
    jwks: Bytes,
    verifier: Arc<Verifier>,
}

pub struct KeyRing {
    current: RwLock<Arc<KeySet>>,
    store: Arc<dyn Store>,
    kek: Kek,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("active", &self.active().kid().to_owned())
            .finish()
    }
}

/// What happened when the key ring was opened, for the start-up summary.
#[derive(Debug, Clone)]
pub struct KeyRingStart {
    pub active_kid: String,
    pub algorithm: Algorithm,
    pub created: bool,
}

impl KeyRing {
    /// Loads the keys, generating the first one when the database has none.
    pub async fn open(
        store: Arc<dyn Store>,
        kek: Kek,
        clock: Arc<dyn Clock>,
        algorithm: Algorithm,
    ) -> Result<(KeyRing, KeyRingStart), KeyRingError> {
        let created = match store.active_signing_key().await? {
            Some(_) => false,
            None => {
                let now = clock.now();
                let new = generate_signing_key(algorithm, &kek)?;
                store.insert_signing_key(&to_stored(&new, now)).await?;
                match store.activate_signing_key(&new.kid, now, now).await {
                    Ok(()) => true,
                    // Another node created and activated a key at the same moment: use theirs.
                    Err(steward_store::StoreError::Conflict) => false,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let set = load_set(store.as_ref(), &kek, clock.now()).await?;
        let start = KeyRingStart {
            active_kid: set.active.kid().to_owned(),
            algorithm: set.active.algorithm(),
            created,
        };
        Ok((
            KeyRing {
                current: RwLock::new(Arc::new(set)),
                store,
                kek,
                clock,
            },
            start,
        ))
    }

    /// Re-reads the keys (after a rotation on any node) and retires keys
    /// whose tokens have all expired.
    pub async fn reload(&self) -> Result<(), KeyRingError> {
        let now = self.clock.now();
        let retired = self.store.retire_expired_keys(now).await?;
        for kid in retired {
            tracing::info!(%kid, "signing key retired: every token it signed has expired");
        }
        let set = load_set(self.store.as_ref(), &self.kek, now).await?;
        if let Ok(mut guard) = self.current.write() {
            *guard = Arc::new(set);
        }
        Ok(())
    }

    fn snapshot(&self) -> Arc<KeySet> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The key that signs new tokens.
    pub fn active(&self) -> Arc<SigningKey> {
        self.snapshot().active.clone()
    }

    /// The serialized public JWKS (`{"keys":[…]}`).
    pub fn jwks_bytes(&self) -> Bytes {
        self.snapshot().jwks.clone()
    }

    /// Verifies tokens signed by any published key.
    pub fn verifier(&self) -> Arc<Verifier> {
        self.snapshot().verifier.clone()
    }

    /// A key ring always holds an active key once opened.
    pub fn is_loaded(&self) -> bool {
        !self.snapshot().jwks.is_empty()
    }
}

/// When a key rotated out at `rotated_at` may leave the JWKS. Nodes keep
/// signing with it until their next reload (up to `keys.reload_seconds`
/// after the rotation, at least 1 s as the reload loop runs), each token it
/// signs lives `tokens.access_token_lifetime_secs`, and verifiers allow
/// [`steward_jose::rotation`]'s clock-skew leeway past `exp`.
pub fn retire_after(rotated_at: UnixTime, settings: &Settings) -> UnixTime {
    let last_signature = settings.keys.reload_seconds.max(1);
    steward_jose::retire_after(
        rotated_at,
        last_signature.saturating_add(settings.tokens.access_token_lifetime_secs),
    )
}

/// Generates a key and makes it the active one. The previous active key is
/// kept published until [`retire_after`]: every token it could have signed,
/// on any node, has expired.
pub async fn rotate(
    store: &dyn Store,
    kek: &Kek,
    algorithm: Algorithm,
    now: UnixTime,
    settings: &Settings,
) -> Result<String, KeyRingError> {
    let new = generate_signing_key(algorithm, kek)?;
    store.insert_signing_key(&to_stored(&new, now)).await?;
    store
        .activate_signing_key(&new.kid, now, retire_after(now, settings))
        .await?;
    Ok(new.kid)
}

fn to_stored(new: &steward_jose::NewKey, now: UnixTime) -> StoredKey {
    StoredKey {
        kid: new.kid.clone(),
        algorithm: new.algorithm.as_str().to_owned(),
        public_jwk: new.public_jwk.to_string(),
        private_key_encrypted: new.encrypted_private.clone(),
        created_at: now,
        activated_at: None,
        retire_after: None,
        retired_at: None,
    }
}

/// Is this stored key still published at `now`?
pub fn is_published(key: &StoredKey, now: UnixTime) -> bool {
    key.activated_at.is_some() && key.retired_at.is_none() && key.retire_after.is_none_or(|t| t > now)
}

async fn load_set(store: &dyn Store, kek: &Kek, now: UnixTime) -> Result<KeySet, KeyRingError> {
    let keys = store.list_signing_keys().await?;
    let active_row = keys
        .iter()
        .find(|k| k.is_active())
        .ok_or(KeyRingError::NoActiveKey)?;
    let alg: Algorithm = active_row
        .algorithm
        .parse()
        .map_err(|_| KeyRingError::UnknownAlgorithm {
            kid: active_row.kid.clone(),
            alg: active_row.algorithm.clone(),
        })?;
    let active = SigningKey::decrypt(&active_row.kid, alg, &active_row.private_key_encrypted, kek).map_err(
        |source| KeyRingError::Key {
            kid: active_row.kid.clone(),
            source,
        },
    )?;
    let mut public = Vec::new();
    for k in keys.iter().filter(|k| is_published(k, now)) {
        let jwk: serde_json::Value = serde_json::from_str(&k.public_jwk).map_err(|e| KeyRingError::Key {
            kid: k.kid.clone(),
            source: e.into(),
        })?;
        public.push(jwk);
    }
    let jwks = Jwks::from_public_jwks(&public)?;
    let verifier = Verifier::new(&jwks)?;
    let body = serde_json::to_vec(&jwks.to_json()).map_err(steward_jose::JoseError::from)?;
    Ok(KeySet {
        active: Arc::new(active),
        jwks: Bytes::from(body),
        verifier: Arc::new(verifier),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_old_key_outlives_every_token_any_node_could_sign_with_it() {
        let mut settings = Settings::default();
        settings.tokens.access_token_lifetime_secs = 600;
        settings.keys.reload_seconds = 30;
        let rotated = UnixTime(1_000_000);
        // A node that reloads just before the rotation signs with the old key
        // for up to 30 s more; that token is valid 600 s, plus the leeway.
        let last_exp = rotated.plus_secs(30 + 600);
        let retire = retire_after(rotated, &settings);
        assert_eq!(
            retire,
            last_exp.plus_secs(steward_jose::rotation::RETIREMENT_LEEWAY_SECS)
        );
        settings.keys.reload_seconds = 0; // the reload loop still waits 1 s
        assert_eq!(
            retire_after(rotated, &settings),
            rotated.plus_secs(1 + 600 + steward_jose::rotation::RETIREMENT_LEEWAY_SECS)
        );
    }
}
