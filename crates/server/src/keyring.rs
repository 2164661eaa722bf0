//! The signing key ring: which key signs, which keys are published.
//!
//! Keys live in the database (private halves sealed with the key-encryption
//! key), so every node sharing the database agrees on them. Three rules make
//! several nodes behave as one issuer:
//!
//! - The first key of an empty database is one decision: it is inserted
//!   already current, the unique index on the current key lets one insert
//!   win, and every other node adopts the winner's key.
//! - Publish before signing: a rotation publishes the new key at once and
//!   lets it sign only from [`activates_at`], when every node must have
//!   reloaded (and so publishes it and accepts it at introspection). Every
//!   node applies the same rule at every signature: the newest key whose
//!   activation time has passed signs.
//! - The previous key stays in the JWKS until every token it could have
//!   signed, on any node, has expired ([`retire_after`]), then is retired.
//!
//! Running servers reload the set every `keys.reload_seconds`.

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

/// A key that signs from `activates_at` on, once that instant has passed.
struct Pending {
    activates_at: UnixTime,
    key: Arc<SigningKey>,
}

/// A consistent snapshot: the signing key, keys about to take over, and what
/// is published.
struct KeySet {
    /// The key that signed when the set was loaded.
    active: Arc<SigningKey>,
    /// Published keys whose activation lies ahead, newest activation first.
    pending: Vec<Pending>,
    jwks: Bytes,
    verifier: Arc<Verifier>,
}

impl KeySet {
    /// The newest key activated by `now`: a pending key takes over at its
    /// activation instant on every node that loaded it, not at the next
    /// reload, so all nodes switch together.
    fn signer_at(&self, now: UnixTime) -> &Arc<SigningKey> {
        self.pending
            .iter()
            .find(|p| p.activates_at <= now)
            .map_or(&self.active, |p| &p.key)
    }
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
    ///
    /// Nodes started together on an empty database each find no key; each
    /// inserts its own as the current one, the unique index lets exactly one
    /// insert win, and the others adopt the winner's key. (Creating it and
    /// then activating it, as before, let each activation retire the key
    /// another node was already signing with.)
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
                // Valid from the skew leeway before now: a node whose clock
                // runs behind this one's adopts it at once instead of finding
                // a key that signs only in its future.
                let from = skew_tolerant(now);
                let first = StoredKey {
                    published_at: Some(from),
                    activated_at: Some(from),
                    ..to_stored(&new, now)
                };
                match store.insert_signing_key(&first).await {
                    Ok(()) => true,
                    // Another node's first key won: adopt it.
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

    /// The key that signs new tokens now.
    pub fn active(&self) -> Arc<SigningKey> {
        self.snapshot().signer_at(self.clock.now()).clone()
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

/// When a key published at `published_at` starts signing: once every node
/// must have reloaded and published it. A node reloads every
/// `keys.reload_seconds` (at least 1 s, as the reload loop runs);
/// `keys.activation_margin_seconds` covers a slow or failed reload.
pub fn activates_at(published_at: UnixTime, settings: &Settings) -> UnixTime {
    let reload = i64::try_from(settings.keys.reload_seconds.max(1)).unwrap_or(i64::MAX);
    let margin = i64::try_from(settings.keys.activation_margin_seconds).unwrap_or(i64::MAX);
    published_at.plus_secs(reload).plus_secs(margin)
}

/// When a key that stops signing at `stops_signing_at` (its successor's
/// activation) may leave the JWKS. A node that missed the successor at its
/// last reload keeps signing with it for up to `keys.reload_seconds` more
/// (at least 1 s, as the reload loop runs), each token it signs lives
/// `tokens.access_token_lifetime_secs`, and verifiers allow
/// [`steward_jose::rotation`]'s clock-skew leeway past `exp`.
pub fn retire_after(stops_signing_at: UnixTime, settings: &Settings) -> UnixTime {
    let last_signature = settings.keys.reload_seconds.max(1);
    steward_jose::retire_after(
        stops_signing_at,
        last_signature.saturating_add(settings.tokens.access_token_lifetime_secs),
    )
}

/// `now` minus the clock-skew leeway verifiers allow: when a public key
/// (never a secret) may be published from, so that a node whose clock runs
/// behind publishes it as soon as it loads it.
fn skew_tolerant(now: UnixTime) -> UnixTime {
    now.plus_secs(-steward_jose::rotation::RETIREMENT_LEEWAY_SECS)
}

/// What a rotation scheduled.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub kid: String,
    /// When the new key starts signing (it is published at once).
    pub activates_at: UnixTime,
    /// When the previous key leaves the JWKS.
    pub previous_retire_after: UnixTime,
}

/// Generates a key, publishes it now (see [`skew_tolerant`]) and schedules it to sign from
/// [`activates_at`]. The previous key keeps signing until then and stays
/// published until [`retire_after`]: every token it could have signed, on
/// any node, has expired.
pub async fn rotate(
    store: &dyn Store,
    kek: &Kek,
    algorithm: Algorithm,
    now: UnixTime,
    settings: &Settings,
) -> Result<Rotation, KeyRingError> {
    // With no current key no node is serving (none could start), so there
    // is nobody to wait for: the key signs at once.
    let first = store.active_signing_key().await?.is_none();
    let new = generate_signing_key(algorithm, kek)?;
    store.insert_signing_key(&to_stored(&new, now)).await?;
    let activates_at = if first {
        skew_tolerant(now)
    } else {
        activates_at(now, settings)
    };
    let previous_retire_after = retire_after(activates_at, settings);
    store
        .activate_signing_key(&new.kid, skew_tolerant(now), activates_at, previous_retire_after)
        .await?;
    Ok(Rotation {
        kid: new.kid,
        activates_at,
        previous_retire_after,
    })
}

fn to_stored(new: &steward_jose::NewKey, now: UnixTime) -> StoredKey {
    StoredKey {
        kid: new.kid.clone(),
        algorithm: new.algorithm.as_str().to_owned(),
        public_jwk: new.public_jwk.to_string(),
        private_key_encrypted: new.encrypted_private.clone(),
        created_at: now,
        published_at: None,
        activated_at: None,
        retire_after: None,
        retired_at: None,
    }
}

fn decrypt(row: &StoredKey, kek: &Kek) -> Result<SigningKey, KeyRingError> {
    let alg: Algorithm = row
        .algorithm
        .parse()
        .map_err(|_| KeyRingError::UnknownAlgorithm {
            kid: row.kid.clone(),
            alg: row.algorithm.clone(),
        })?;
    SigningKey::decrypt(&row.kid, alg, &row.private_key_encrypted, kek).map_err(|source| KeyRingError::Key {
        kid: row.kid.clone(),
        source,
    })
}

async fn load_set(store: &dyn Store, kek: &Kek, now: UnixTime) -> Result<KeySet, KeyRingError> {
    let keys = store.list_signing_keys().await?;
    // The signer now: the newest activation that has passed.
    let active_row = keys
        .iter()
        .filter(|k| k.may_sign_at(now))
        .max_by_key(|k| (k.activated_at, k.created_at))
        .ok_or(KeyRingError::NoActiveKey)?;
    let active = Arc::new(decrypt(active_row, kek)?);
    let mut pending = Vec::new();
    for k in keys.iter().filter(|k| k.is_published_at(now)) {
        if let Some(at) = k.activated_at.filter(|t| *t > now) {
            pending.push(Pending {
                activates_at: at,
                key: Arc::new(decrypt(k, kek)?),
            });
        }
    }
    pending.sort_by_key(|p| std::cmp::Reverse(p.activates_at));
    let mut public = Vec::new();
    for k in keys.iter().filter(|k| k.is_published_at(now)) {
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
        active,
        pending,
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

    #[test]
    fn a_rotated_key_signs_only_after_every_node_must_have_reloaded() {
        let mut settings = Settings::default();
        settings.keys.reload_seconds = 30;
        settings.keys.activation_margin_seconds = 10;
        let published = UnixTime(1_000_000);
        assert_eq!(activates_at(published, &settings), published.plus_secs(40));
        settings.keys.reload_seconds = 0; // the reload loop still waits 1 s
        settings.keys.activation_margin_seconds = 0;
        assert_eq!(activates_at(published, &settings), published.plus_secs(1));
    }
}
