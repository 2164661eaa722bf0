//! Client key sets published at a `jwks_uri`, held for the token endpoint.
//!
//! The token endpoint verifies `private_key_jwt` assertions and never
//! touches the network (ARCHITECTURE: "POST /token never touches the
//! network"). Fetching the key set there — on every request, before the
//! assertion is verified — let junk assertions drive outbound fetches, and
//! once the per-host egress budget was spent the real client got 503. So key
//! sets are fetched off the request path and held here:
//!
//! - when a client's document is resolved at the authorization endpoint
//!   ([`KeySets::prefetch`], awaited there: that endpoint may fetch);
//! - in the background, when the token endpoint finds a held set stale or
//!   finds none ([`KeySets::for_token`] starts the fetch and answers from what
//!   is held);
//! - in the background, at most once per cache lifetime, when an assertion
//!   names a `kid` the held set lacks — the client may have rotated its keys
//!   ([`KeySets::unknown_kid`]).
//!
//! Lifetimes follow the metadata cache's rules: RFC 9111 caching headers,
//! clamped to `[min_cache_seconds, max_cache_seconds]`; one fetch per URL at
//! a time (single-flight); failures back off exponentially (the negative
//! cache). Two differences, both because the token endpoint can only use a
//! set it holds: `no-store` and `no-cache` get the floor rather than no
//! caching; and a stale set keeps serving while its refresh runs, but never
//! longer than `max_cache_seconds` after the origin last confirmed it — past
//! that the client is answered `temporarily_unavailable` until a refresh
//! succeeds. A definitive failure (404, not a JWK set, refused address) of
//! a stale set's refresh drops it: the client has withdrawn its keys.

use crate::fetcher::DocumentFetcher;
use crate::freshness::{CachingHeaders, Freshness, freshness};
use crate::negative::NegativeCache;
use crate::resolver::CimdConfig;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use steward_core::{Clock, UnixTime};
use steward_egress::{FetchRequest, FetchResponse, FetchStatus, Validators};
use tokio::sync::watch;
use url::Url;

/// Largest key set accepted (a JWK set of a few RSA keys is a few KiB).
pub const KEY_SET_MAX_BYTES: usize = 64 * 1024;

/// Fixed per-entry overhead added to the body size when weighing entries.
const ENTRY_OVERHEAD: u64 = 512;

/// What the token endpoint may use for a `jwks_uri`, now, without fetching.
#[derive(Clone, Debug, PartialEq)]
pub enum KeySetLookup {
    /// A held key set, fresh or stale within the hard bound.
    Ready(Arc<Value>),
    /// Nothing usable is held; a background fetch is under way or backing
    /// off. Worth retrying after `retry_after_secs`.
    Pending { retry_after_secs: u64 },
    /// The last fetch failed definitively (404, not a JWK set, refused
    /// address); nothing is held. `reason` is the stable failure reason.
    Failed { reason: &'static str },
}

/// Held key sets. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct KeySets {
    inner: Arc<Inner>,
}

struct Inner {
    fetcher: Arc<dyn DocumentFetcher>,
    clock: Arc<dyn Clock>,
    min_secs: u64,
    max_secs: u64,
    cache_max_entries: u64,
    cache_max_bytes: u64,
    cache: moka::sync::Cache<String, Arc<Held>>,
    negative: NegativeCache,
    inflight: Mutex<HashMap<String, watch::Receiver<bool>>>,
    /// When an unknown `kid` last started a refetch, per URL.
    kid_refetched: moka::sync::Cache<String, UnixTime>,
}

struct Held {
    keys: Arc<Value>,
    weight: u32,
    fresh_until: UnixTime,
    /// Last time the origin confirmed this set (200 or 304).
    validated_at: UnixTime,
    etag: Option<String>,
    last_modified: Option<String>,
}

impl Held {
    /// The lifetime the origin granted at the last confirmation, at least one second.
    fn lifetime(&self) -> i64 {
        self.validated_at.until(self.fresh_until).max(1)
    }
}

/// Why a fetched body is not a key set.
const NOT_A_KEY_SET: &str = "jwks_not_a_key_set";

impl KeySets {
    pub fn new(fetcher: Arc<dyn DocumentFetcher>, clock: Arc<dyn Clock>, config: &CimdConfig) -> Self {
        let max_entries = config.cache_max_entries.max(1);
        let cache = moka::sync::Cache::builder()
            .max_capacity(config.cache_max_bytes.max(1))
            .weigher(|_k: &String, h: &Arc<Held>| h.weight)
            .build();
        Self {
            inner: Arc::new(Inner {
                fetcher,
                clock,
                min_secs: config.min_cache_seconds,
                max_secs: config.max_cache_seconds.max(config.min_cache_seconds),
                cache_max_entries: max_entries,
                cache_max_bytes: config.cache_max_bytes.max(1),
                cache,
                negative: NegativeCache::new(
                    max_entries,
                    config.negative_cache_seconds,
                    config.negative_cache_max_seconds,
                ),
                inflight: Mutex::new(HashMap::new()),
                kid_refetched: moka::sync::Cache::new(max_entries),
            }),
        }
    }

    /// The key set the token endpoint may verify with, from what is held.
    /// Never waits on the network: a stale or missing set starts one
    /// background fetch (unless one is running or the URL is backing off).
    pub fn for_token(&self, uri: &str) -> KeySetLookup {
        let now = self.inner.clock.now();
        if let Some(held) = self.inner.cache.get(uri) {
            if now < held.fresh_until {
                return KeySetLookup::Ready(Arc::clone(&held.keys));
            }
            let bound = i64::try_from(self.inner.max_secs).unwrap_or(i64::MAX);
            self.refresh_in_background(uri, now);
            if now < held.validated_at.plus_secs(bound) {
                return KeySetLookup::Ready(Arc::clone(&held.keys));
            }
        }
        if let Some(failure) = self.inner.negative.get(uri)
            && failure.is_active(now)
        {
            if !failure.transient {
                return KeySetLookup::Failed {
                    reason: failure.reason,
                };
            }
            return KeySetLookup::Pending {
                retry_after_secs: u64::try_from(now.until(failure.until)).unwrap_or(0).max(1),
            };
        }
        self.refresh_in_background(uri, now);
        KeySetLookup::Pending { retry_after_secs: 1 }
    }

    /// An assertion named a `kid` the held set lacks: the client may have
    /// rotated. Starts one background refetch, at most once per cache
    /// lifetime of the held set, so junk `kid`s cannot drive fetches.
    /// Returns whether a refetch was started.
    pub fn unknown_kid(&self, uri: &str) -> bool {
        let now = self.inner.clock.now();
        let Some(held) = self.inner.cache.get(uri) else {
            return false;
        };
        let lifetime = held
            .lifetime()
            .max(i64::try_from(self.inner.min_secs).unwrap_or(i64::MAX));
        if let Some(last) = self.inner.kid_refetched.get(uri)
            && now < last.plus_secs(lifetime)
        {
            return false;
        }
        if self.backing_off(uri, now) {
            return false;
        }
        self.inner.kid_refetched.insert(uri.to_owned(), now);
        self.start(uri).is_some()
    }

    /// Fetches the key set unless a fresh one is held, and waits for the
    /// fetch. For the authorization endpoint, which may touch the network, so
    /// that the token request that follows finds the keys held.
    pub async fn prefetch(&self, uri: &str) {
        let now = self.inner.clock.now();
        if self
            .inner
            .cache
            .get(uri)
            .is_some_and(|held| now < held.fresh_until)
            || self.backing_off(uri, now)
        {
            return;
        }
        if let Some(mut done) = self.start(uri) {
            // An error only means the fetching task ended without saying so
            // (its runtime is shutting down); nothing is left to wait for.
            let _ = done.wait_for(|finished| *finished).await;
        }
    }

    /// Forgets the held set and failures for `uri` (admin "refresh now").
    pub fn invalidate(&self, uri: &str) {
        self.inner.cache.invalidate(uri);
        self.inner.negative.clear(uri);
        self.inner.kid_refetched.invalidate(uri);
    }

    fn backing_off(&self, uri: &str, now: UnixTime) -> bool {
        self.inner
            .negative
            .get(uri)
            .is_some_and(|failure| failure.is_active(now))
    }

    fn refresh_in_background(&self, uri: &str, now: UnixTime) {
        if !self.backing_off(uri, now) {
            self.start(uri);
        }
    }

    /// Starts the fetch of `uri` on the current runtime unless one is under
    /// way (single-flight); returns a receiver that turns `true` when it ends.
    fn start(&self, uri: &str) -> Option<watch::Receiver<bool>> {
        let mut inflight = self.lock_inflight();
        if let Some(rx) = inflight.get(uri) {
            return Some(rx.clone());
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (tx, rx) = watch::channel(false);
        inflight.insert(uri.to_owned(), rx.clone());
        drop(inflight);
        let this = self.clone();
        let uri = uri.to_owned();
        runtime.spawn(async move {
            let _leader = InflightGuard {
                sets: this.clone(),
                uri: uri.clone(),
            };
            this.fetch_and_update(&uri).await;
            tx.send_replace(true);
        });
        Some(rx)
    }

    fn lock_inflight(&self) -> MutexGuard<'_, HashMap<String, watch::Receiver<bool>>> {
        // Only channel ends live in the map; a poisoned lock is safe to reuse.
        self.inner.inflight.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn fetch_and_update(&self, uri: &str) {
        let now = self.inner.clock.now();
        let url = match Url::parse(uri) {
            Ok(url) if url.scheme() == "https" => url,
            _ => {
                self.definitive(uri, None, now, "jwks_uri_invalid");
                return;
            }
        };
        let prior = self.inner.cache.get(uri);
        let mut request = FetchRequest::json(url).with_max_bytes(KEY_SET_MAX_BYTES);
        if let Some(held) = &prior
            && (held.etag.is_some() || held.last_modified.is_some())
        {
            request.validators = Some(Validators {
                etag: held.etag.clone(),
                last_modified: held.last_modified.clone(),
            });
        }
        let response = self.inner.fetcher.fetch(&request).await;
        let now = self.inner.clock.now();
        match response {
            Ok(resp) => match resp.status {
                FetchStatus::Ok => match parse_key_set(&resp.body) {
                    Some(keys) => {
                        let weight = u64::try_from(resp.body.len())
                            .unwrap_or(u64::MAX)
                            .saturating_mul(2)
                            .saturating_add(ENTRY_OVERHEAD);
                        let lifetime = self.lifetime_of(&resp, now);
                        self.hold(uri, Arc::new(keys), weight, lifetime, &resp, None, now);
                    }
                    None => self.definitive(uri, prior.as_deref(), now, NOT_A_KEY_SET),
                },
                FetchStatus::NotModified => match prior {
                    Some(held) if request.validators.is_some() => {
                        let has_new = resp.cache.cache_control.is_some() || resp.cache.expires.is_some();
                        let lifetime = if has_new {
                            self.lifetime_of(&resp, now)
                        } else {
                            u64::try_from(held.lifetime()).unwrap_or(0)
                        };
                        let weight = u64::from(held.weight);
                        self.hold(
                            uri,
                            Arc::clone(&held.keys),
                            weight,
                            lifetime,
                            &resp,
                            Some(&held),
                            now,
                        );
                    }
                    _ => self.definitive(uri, prior.as_deref(), now, "unexpected_not_modified"),
                },
            },
            Err(e) if e.is_transient() => {
                tracing::info!(
                    reason = e.reason(),
                    "jwks_uri fetch failed; the held key set stays"
                );
                self.inner.negative.note(uri, now, e.reason(), true, None);
            }
            Err(e) => {
                tracing::info!(reason = e.reason(), "jwks_uri fetch failed");
                self.definitive(uri, prior.as_deref(), now, e.reason());
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn hold(
        &self,
        uri: &str,
        keys: Arc<Value>,
        weight: u64,
        lifetime: u64,
        resp: &FetchResponse,
        prior: Option<&Held>,
        now: UnixTime,
    ) {
        let floor = self.inner.cache_max_bytes.div_ceil(self.inner.cache_max_entries);
        let held = Held {
            keys,
            weight: u32::try_from(weight.max(floor)).unwrap_or(u32::MAX),
            fresh_until: now.plus_secs(i64::try_from(lifetime).unwrap_or(i64::MAX)),
            validated_at: now,
            etag: resp
                .cache
                .etag
                .clone()
                .or_else(|| prior.and_then(|p| p.etag.clone())),
            last_modified: resp
                .cache
                .last_modified
                .clone()
                .or_else(|| prior.and_then(|p| p.last_modified.clone())),
        };
        self.inner.negative.clear(uri);
        self.inner.cache.insert(uri.to_owned(), Arc::new(held));
    }

    /// A definitive failure: remembered (with backoff); a stale held set is
    /// dropped, a still-fresh one keeps the lifetime its origin granted.
    fn definitive(&self, uri: &str, prior: Option<&Held>, now: UnixTime, reason: &'static str) {
        self.inner.negative.note(uri, now, reason, false, None);
        if prior.is_none_or(|held| now >= held.fresh_until) {
            self.inner.cache.invalidate(uri);
        }
    }

    /// Seconds the set may be used without revalidation: the metadata
    /// cache's clamp, with `no-store` / `no-cache` raised to the floor (the
    /// token endpoint can verify only with a set it holds).
    fn lifetime_of(&self, resp: &FetchResponse, now: UnixTime) -> u64 {
        let c = &resp.cache;
        let headers = CachingHeaders {
            cache_control: c.cache_control.as_deref(),
            expires: c.expires.as_deref(),
            date: c.date.as_deref(),
            age: c.age.as_deref(),
        };
        match freshness(&headers, now, self.inner.min_secs, self.inner.max_secs) {
            Freshness::Fresh(secs) => secs,
            Freshness::NoStore | Freshness::AlwaysRevalidate => self.inner.min_secs,
        }
    }
}

/// A JWK set (RFC 7517 §5): an object whose `keys` is an array of objects.
/// Which keys are usable is decided at verification.
fn parse_key_set(body: &[u8]) -> Option<Value> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let keys = v.get("keys")?.as_array()?;
    keys.iter().all(Value::is_object).then_some(v)
}

/// Removes the in-flight marker when the fetching task ends or is dropped.
struct InflightGuard {
    sets: KeySets,
    uri: String,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.sets.lock_inflight().remove(&self.uri);
    }
}
