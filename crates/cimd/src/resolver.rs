//! Resolving a metadata-document client: cache, revalidate, fetch, validate, record.
//!
//! Policy, in the order `resolve` applies it:
//! 1. A fresh cached entry is served (only validated documents are ever
//!    cached, CIMD -01 §4.4). If it is in the last tenth of its life, one
//!    background refresh starts so users rarely wait on a fetch.
//! 2. A stale entry is revalidated with `If-None-Match` / `If-Modified-Since`;
//!    a 304 extends its freshness and creates no new version.
//! 3. Concurrent resolutions of one URL share one fetch (single-flight), so a
//!    burst of authorizations cannot amplify into a burst of fetches.
//! 4. Failures enter a short negative cache with exponential backoff
//!    ([`crate::negative`]), consulted only when no fresh entry exists.
//!
//! Failed revalidation: a transient failure (timeout, 5xx, DNS) keeps serving
//! the cached document as long as it was last confirmed less than
//! `max_cache_seconds` ago — the same bound Steward puts on any cache
//! lifetime, so an outage never stretches trust in old metadata past it. A
//! definitive answer (404, invalid document, refused address) to a stale
//! entry's revalidation drops the entry at once: the client's owner has
//! withdrawn or broken it. A definitive answer to the early background
//! refresh of a still-fresh entry does not: the entry keeps the lifetime its
//! origin granted (the negative cache never hides a valid entry), and the
//! failure is remembered, so once the entry goes stale the next resolution
//! meets the failure instead of the old document.
//!
//! The token endpoint, which never fetches, asks [`Resolver::for_token`]
//! instead (module `token_view`): held and stored data only, bounded by
//! `max_cache_seconds`, with revalidation started in the background.

use crate::client_id::ClientIdUrl;
use crate::fetcher::DocumentFetcher;
use crate::freshness::{CachingHeaders, Freshness, freshness};
use crate::negative::NegativeCache;
use crate::problem::Problem;
use crate::resolve_error::ResolveError;
use crate::validate::{ClientMetadata, ValidationPolicy, validate_document};
use crate::versions::{NewVersion, VersionStore, VersionStoreError, content_hash};
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use steward_core::{Clock, UnixTime};
use steward_egress::{FetchError, FetchRequest, FetchResponse, FetchStatus, Validators};
use tokio::sync::watch;

/// Resolver settings (`cimd.*` in the configuration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CimdConfig {
    /// Floor on cache lifetime (SPEC_CHECKLIST §20.7).
    pub min_cache_seconds: u64,
    /// Ceiling on cache lifetime, and on serving a stale document through a
    /// transient revalidation failure.
    pub max_cache_seconds: u64,
    /// Accept a query in client ids (SPEC_CHECKLIST §20.1).
    pub allow_query: bool,
    /// Accept reverse-domain private-use redirect schemes.
    pub allow_private_use_schemes: bool,
    /// Bound on cached documents (and on remembered failures).
    pub cache_max_entries: u64,
    /// Bound on the approximate bytes held by cached documents.
    pub cache_max_bytes: u64,
    /// First negative-cache delay; doubles per consecutive failure.
    pub negative_cache_seconds: u64,
    /// Longest negative-cache delay.
    pub negative_cache_max_seconds: u64,
}

impl Default for CimdConfig {
    fn default() -> Self {
        Self {
            min_cache_seconds: 300,
            max_cache_seconds: 86_400,
            allow_query: false,
            allow_private_use_schemes: false,
            cache_max_entries: 10_000,
            cache_max_bytes: 64 * 1024 * 1024,
            negative_cache_seconds: 5,
            negative_cache_max_seconds: 300,
        }
    }
}

impl CimdConfig {
    pub fn policy(&self) -> ValidationPolicy {
        ValidationPolicy {
            allow_query: self.allow_query,
            allow_private_use_schemes: self.allow_private_use_schemes,
        }
    }
}

/// A validated client and the document version it came from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResolvedClient {
    pub metadata: ClientMetadata,
    /// The [`crate::VersionRecord`] id; authorization codes remember it.
    pub version_id: i64,
    pub content_hash: String,
    /// When this content was last fetched with a 200.
    #[serde(serialize_with = "ser_time")]
    pub fetched_at: UnixTime,
    /// Until when it may be used without revalidation. Equal to the fetch time
    /// for `no-store` / `no-cache` documents and for stored versions.
    #[serde(serialize_with = "ser_time")]
    pub fresh_until: UnixTime,
    /// The address the document came from (audit).
    pub peer: SocketAddr,
}

fn ser_time<S: serde::Serializer>(t: &UnixTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i64(t.seconds())
}

/// Resolves metadata-document clients. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
}

struct Inner {
    fetcher: Arc<dyn DocumentFetcher>,
    versions: Arc<dyn VersionStore>,
    clock: Arc<dyn Clock>,
    config: CimdConfig,
    policy: ValidationPolicy,
    cache: moka::sync::Cache<String, Arc<Entry>>,
    negative: NegativeCache,
    inflight: Mutex<HashMap<String, watch::Receiver<Option<Shared>>>>,
    /// Stored versions already re-validated, by version id. A version
    /// record never changes (it is addressed by its content hash) and the
    /// policy is fixed for the process, so re-validating the same version at
    /// every token request would only repeat a database read, a SHA-256 and
    /// a JSON parse. At most `cache_max_entries` versions.
    stored: moka::sync::Cache<i64, Arc<ResolvedClient>>,
    /// Documents whose origin answered definitively (404, invalid, refused)
    /// and that have not been fetched successfully since: the failure's
    /// reason and until when the token endpoint refuses the client without
    /// looking at stored versions (see `token_view`).
    withdrawn: moka::sync::Cache<String, (UnixTime, &'static str)>,
    /// When the token endpoint last started a background revalidation, per
    /// client id (see `token_view`).
    background: moka::sync::Cache<String, UnixTime>,
    /// Key sets published at `jwks_uri`, held for the token endpoint.
    key_sets: crate::key_sets::KeySets,
}

struct Entry {
    client: Arc<ResolvedClient>,
    weight: u32,
    freshness: Freshness,
    etag: Option<String>,
    last_modified: Option<String>,
    /// Last time the origin confirmed this content (200 or 304).
    validated_at: UnixTime,
    refreshing: AtomicBool,
}

/// What single-flight followers receive: errors are summarised because a
/// fetch error is not `Clone`.
type Shared = Result<Arc<ResolvedClient>, SharedFailure>;

#[derive(Clone, Debug)]
struct SharedFailure {
    reason: &'static str,
    transient: bool,
    problems: Option<Vec<Problem>>,
}

/// Why a fetch is attempted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flight {
    /// No usable entry: fetch unless one appeared meanwhile.
    Needed,
    /// The entry is fresh but near its end: fetch anyway.
    EarlyRefresh,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Fetched,
    CacheHit,
    Revalidated,
    /// Served stale through a transient revalidation failure.
    Stale,
}

impl Outcome {
    const fn label(self) -> &'static str {
        match self {
            Self::Fetched => "ok",
            Self::CacheHit => "cache_hit",
            Self::Revalidated => "revalidated",
            Self::Stale => "stale",
        }
    }
}

/// Fixed per-entry overhead added to the body size when weighing entries.
const ENTRY_OVERHEAD: u64 = 512;

impl Resolver {
    pub fn new(
        fetcher: Arc<dyn DocumentFetcher>,
        versions: Arc<dyn VersionStore>,
        clock: Arc<dyn Clock>,
        config: CimdConfig,
    ) -> Self {
        // moka bounds one weighted capacity. Weighing every entry at least
        // `max_bytes / max_entries` bounds the byte total and the count at once.
        let max_entries = config.cache_max_entries.max(1);
        let max_bytes = config.cache_max_bytes.max(1);
        let cache = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_k: &String, e: &Arc<Entry>| e.weight)
            .build();
        let negative = NegativeCache::new(
            max_entries,
            config.negative_cache_seconds,
            config.negative_cache_max_seconds,
        );
        let policy = config.policy();
        // Each entry is at most one document (size-capped when fetched).
        let stored = moka::sync::Cache::new(max_entries);
        let key_sets = crate::key_sets::KeySets::new(Arc::clone(&fetcher), Arc::clone(&clock), &config);
        Self {
            inner: Arc::new(Inner {
                fetcher,
                versions,
                clock,
                config,
                policy,
                cache,
                negative,
                inflight: Mutex::new(HashMap::new()),
                stored,
                withdrawn: moka::sync::Cache::new(max_entries),
                background: moka::sync::Cache::new(max_entries),
                key_sets,
            }),
        }
    }

    pub fn config(&self) -> &CimdConfig {
        &self.inner.config
    }

    /// The key sets of `private_key_jwt` clients that publish a `jwks_uri`.
    pub fn key_sets(&self) -> &crate::key_sets::KeySets {
        &self.inner.key_sets
    }

    /// Resolves `id` to a validated client, fetching only when the cache
    /// cannot answer (see the module documentation for the policy).
    pub async fn resolve(&self, id: &ClientIdUrl) -> Result<Arc<ResolvedClient>, ResolveError> {
        let result = self.resolve_counted(id).await;
        let label = match &result {
            Ok((_, outcome)) => outcome.label(),
            Err(e) => e.reason(),
        };
        // Never the client id as a label: unbounded cardinality, and it is
        // attacker-chosen.
        metrics::counter!("steward_cimd_resolutions_total", "outcome" => label).increment(1);
        result.map(|(client, _)| client)
    }

    /// Forgets the cached document and failures for `id` (admin "refresh now").
    pub fn invalidate(&self, id: &ClientIdUrl) {
        self.inner.cache.invalidate(id.as_str());
        self.inner.negative.clear(id.as_str());
    }

    /// Re-reads a recorded version without fetching, for the token endpoint
    /// (which never touches the network) and for restarts. The stored body is
    /// validated again under the current policy, and its hash checked.
    pub async fn stored(
        &self,
        id: &ClientIdUrl,
        version_id: i64,
    ) -> Result<Option<ResolvedClient>, ResolveError> {
        if let Some(client) = self.inner.stored.get(&version_id) {
            // The same check as below: a version id names one client's version.
            return Ok((client.metadata.client_id == id.as_str()).then(|| (*client).clone()));
        }
        match self.inner.versions.get(version_id).await? {
            Some(record) if record.client_id == id.as_str() => self.validated(id, record).map(Some),
            _ => Ok(None),
        }
    }

    /// The most recent recorded version of `id`, re-validated, without fetching.
    pub async fn latest_stored(&self, id: &ClientIdUrl) -> Result<Option<ResolvedClient>, ResolveError> {
        match self.inner.versions.latest(id.as_str()).await? {
            Some(record) => self.validated(id, record).map(Some),
            None => Ok(None),
        }
    }

    /// A recorded version, validated once per process: later reads of the
    /// same version (same id and content hash) come from the cache.
    fn validated(
        &self,
        id: &ClientIdUrl,
        record: crate::VersionRecord,
    ) -> Result<ResolvedClient, ResolveError> {
        if let Some(client) = self.inner.stored.get(&record.id)
            && client.content_hash == record.content_hash
            && client.metadata.client_id == id.as_str()
        {
            return Ok((*client).clone());
        }
        let version_id = record.id;
        let client = self.client_from_record(id, record)?;
        self.inner.stored.insert(version_id, Arc::new(client.clone()));
        Ok(client)
    }

    fn client_from_record(
        &self,
        id: &ClientIdUrl,
        record: crate::VersionRecord,
    ) -> Result<ResolvedClient, ResolveError> {
        if content_hash(record.body.as_bytes()) != record.content_hash {
            return Err(VersionStoreError::Corrupt(record.id).into());
        }
        let peer = record
            .peer_addr
            .parse()
            .map_err(|_| VersionStoreError::Corrupt(record.id))?;
        let metadata = validate_document(id, record.body.as_bytes(), &self.inner.policy)
            .map_err(ResolveError::Invalid)?;
        Ok(ResolvedClient {
            metadata,
            version_id: record.id,
            content_hash: record.content_hash,
            fetched_at: record.fetched_at,
            fresh_until: record.fetched_at,
            peer,
        })
    }

    async fn resolve_counted(
        &self,
        id: &ClientIdUrl,
    ) -> Result<(Arc<ResolvedClient>, Outcome), ResolveError> {
        let key = id.as_str();
        let now = self.inner.clock.now();
        let cached = self.inner.cache.get(key);
        if let Some(entry) = &cached
            && now < entry.client.fresh_until
        {
            self.maybe_refresh_early(id, entry, now);
            return Ok((Arc::clone(&entry.client), Outcome::CacheHit));
        }
        if let Some(failure) = self.inner.negative.get(key)
            && failure.is_active(now)
        {
            if let Some(entry) = &cached
                && failure.transient
                && self.within_grace(entry, now)
            {
                return Ok((Arc::clone(&entry.client), Outcome::Stale));
            }
            return Err(failure.to_error(now));
        }
        self.single_flight(id, Flight::Needed).await
    }

    /// Spawns one refresh when a hit lands in the last tenth of the entry's life.
    fn maybe_refresh_early(&self, id: &ClientIdUrl, entry: &Entry, now: UnixTime) {
        let life = entry.validated_at.until(entry.client.fresh_until);
        let left = now.until(entry.client.fresh_until);
        if life <= 0 || left.saturating_mul(10) > life {
            return;
        }
        if entry.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let this = self.clone();
        let id = id.clone();
        runtime.spawn(async move {
            let result = this.single_flight(&id, Flight::EarlyRefresh).await;
            let label = match &result {
                Ok((_, outcome)) => outcome.label(),
                Err(e) => e.reason(),
            };
            metrics::counter!("steward_cimd_resolutions_total", "outcome" => label).increment(1);
        });
    }

    /// May a stale entry be served after a transient revalidation failure?
    /// Never for `no-cache` documents: the origin demanded a successful
    /// revalidation before every use (RFC 9111 §5.2.2.4).
    fn within_grace(&self, entry: &Entry, now: UnixTime) -> bool {
        if entry.freshness == Freshness::AlwaysRevalidate {
            return false;
        }
        let max = i64::try_from(self.inner.config.max_cache_seconds).unwrap_or(i64::MAX);
        now < entry.validated_at.plus_secs(max)
    }

    /// One fetch per URL at a time; everyone else waits for its outcome. If
    /// the leader is cancelled (its request dropped), a waiter takes over.
    async fn single_flight(
        &self,
        id: &ClientIdUrl,
        flight: Flight,
    ) -> Result<(Arc<ResolvedClient>, Outcome), ResolveError> {
        let key = id.as_str();
        loop {
            let role = {
                let mut inflight = self.lock_inflight();
                match inflight.get(key) {
                    Some(rx) => Err(rx.clone()),
                    None => {
                        let (tx, rx) = watch::channel(None);
                        inflight.insert(key.to_owned(), rx);
                        Ok(tx)
                    }
                }
            };
            match role {
                Ok(tx) => {
                    let _leader = InflightGuard { resolver: self, key };
                    let result = self.fetch_and_update(id, flight).await;
                    tx.send_replace(Some(share(&result)));
                    return result;
                }
                Err(mut rx) => {
                    let shared = match rx.wait_for(Option::is_some).await {
                        Ok(value) => value.clone(),
                        Err(_) => continue,
                    };
                    if let Some(shared) = shared {
                        return self.unshare(key, shared);
                    }
                }
            }
        }
    }

    fn unshare(&self, key: &str, shared: Shared) -> Result<(Arc<ResolvedClient>, Outcome), ResolveError> {
        match shared {
            Ok(client) => Ok((client, Outcome::Fetched)),
            Err(SharedFailure {
                problems: Some(problems),
                ..
            }) => Err(ResolveError::Invalid(problems)),
            Err(f) => {
                let now = self.inner.clock.now();
                let retry_after_secs = self
                    .inner
                    .negative
                    .get(key)
                    .map_or(self.inner.config.negative_cache_seconds, |n| {
                        u64::try_from(now.until(n.until)).unwrap_or(0)
                    })
                    .max(1);
                Err(ResolveError::RecentFailure {
                    reason: f.reason,
                    transient: f.transient,
                    retry_after_secs,
                })
            }
        }
    }

    fn lock_inflight(&self) -> MutexGuard<'_, HashMap<String, watch::Receiver<Option<Shared>>>> {
        // The map holds only channel ends; a panic elsewhere cannot leave it
        // half-updated, so a poisoned lock is safe to reuse.
        self.inner.inflight.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn fetch_and_update(
        &self,
        id: &ClientIdUrl,
        flight: Flight,
    ) -> Result<(Arc<ResolvedClient>, Outcome), ResolveError> {
        let key = id.as_str();
        let prior = self.inner.cache.get(key);
        // A caller that missed the previous leader's insert must not fetch again.
        if flight == Flight::Needed
            && let Some(entry) = &prior
            && self.inner.clock.now() < entry.client.fresh_until
        {
            return Ok((Arc::clone(&entry.client), Outcome::CacheHit));
        }
        let mut request = FetchRequest::metadata_document(id.url().clone());
        if let Some(entry) = &prior
            && (entry.etag.is_some() || entry.last_modified.is_some())
        {
            request.validators = Some(Validators {
                etag: entry.etag.clone(),
                last_modified: entry.last_modified.clone(),
            });
        }
        let response = self.inner.fetcher.fetch(&request).await;
        // Every metadata-document fetch, by how the origin answered (before
        // the document is validated: `steward_cimd_resolutions_total` says that).
        let fetched = match &response {
            Ok(r) if r.status == FetchStatus::Ok => "ok",
            Ok(_) => "not_modified",
            Err(e) => e.reason(),
        };
        metrics::counter!("steward_cimd_fetches_total", "outcome" => fetched).increment(1);
        let now = self.inner.clock.now();
        match response {
            Ok(resp) => match resp.status {
                FetchStatus::Ok => self.accept(id, resp, prior.as_deref(), now).await,
                FetchStatus::NotModified => match prior {
                    Some(entry) if request.validators.is_some() => {
                        Ok(self.revalidated(key, &entry, &resp, now))
                    }
                    _ => {
                        self.withdraw(key, prior.as_deref(), now, "unexpected_not_modified");
                        let err = ResolveError::UnexpectedNotModified;
                        self.inner.negative.note(key, now, err.reason(), false, None);
                        Err(err)
                    }
                },
            },
            Err(e) => self.failed(key, e, prior.as_deref(), now),
        }
    }

    /// After a definitive failure: drops the cached entry unless it is still
    /// fresh (an early background refresh failed), which keeps its lifetime.
    fn withdraw(&self, key: &str, prior: Option<&Entry>, now: UnixTime, reason: &'static str) {
        if prior.is_some_and(|entry| now < entry.client.fresh_until) {
            tracing::warn!(
                "an early refresh of a metadata document failed; the cached copy stays until it goes stale"
            );
            return;
        }
        self.inner.cache.invalidate(key);
        self.mark_withdrawn(key, now, reason);
    }

    /// The origin answered definitively and nothing fresh is held: the
    /// token endpoint stops trusting stored versions of this client until a
    /// fetch succeeds. Kept for `max_cache_seconds`: by then every stored
    /// version's own confirmation is older than the bound as well.
    fn mark_withdrawn(&self, key: &str, now: UnixTime, reason: &'static str) {
        let max = i64::try_from(self.inner.config.max_cache_seconds).unwrap_or(i64::MAX);
        self.inner
            .withdrawn
            .insert(key.to_owned(), (now.plus_secs(max), reason));
    }

    fn failed(
        &self,
        key: &str,
        error: FetchError,
        prior: Option<&Entry>,
        now: UnixTime,
    ) -> Result<(Arc<ResolvedClient>, Outcome), ResolveError> {
        let transient = error.is_transient();
        let failure = self
            .inner
            .negative
            .note(key, now, error.reason(), transient, None);
        match prior {
            // An early background refresh failed: the entry keeps the
            // lifetime its origin granted, and the failure goes to the
            // refresh task (metrics) only.
            Some(entry) if now < entry.client.fresh_until => {}
            Some(entry) if transient && self.within_grace(entry, now) => {
                tracing::warn!(
                    reason = error.reason(),
                    "serving a stale metadata document after a transient failure"
                );
                return Ok((Arc::clone(&entry.client), Outcome::Stale));
            }
            _ if !transient => {
                self.inner.cache.invalidate(key);
                self.mark_withdrawn(key, now, error.reason());
            }
            _ => {}
        }
        Err(ResolveError::Fetch {
            error,
            retry_after_secs: Some(u64::try_from(now.until(failure.until)).unwrap_or(0).max(1)),
        })
    }

    /// A 200: validate, record the version, cache according to the headers.
    async fn accept(
        &self,
        id: &ClientIdUrl,
        resp: FetchResponse,
        prior: Option<&Entry>,
        now: UnixTime,
    ) -> Result<(Arc<ResolvedClient>, Outcome), ResolveError> {
        let key = id.as_str();
        let metadata = match validate_document(id, &resp.body, &self.inner.policy) {
            Ok(m) => m,
            Err(problems) => {
                // MUST NOT cache invalid documents (CIMD -01 §4.4), and the
                // previous version is withdrawn by its owner's new one —
                // once it stops being fresh (see `withdraw`).
                let reason = problems.first().map_or("invalid_document", |p| p.rule);
                self.withdraw(key, prior, now, reason);
                self.inner
                    .negative
                    .note(key, now, reason, false, Some(problems.clone()));
                return Err(ResolveError::Invalid(problems));
            }
        };
        let hash = content_hash(&resp.body);
        let version_id = match prior.filter(|p| p.client.content_hash == hash) {
            Some(p) => p.client.version_id,
            None => {
                let record = self
                    .inner
                    .versions
                    .record(NewVersion {
                        client_id: key.to_owned(),
                        content_hash: hash.clone(),
                        body: String::from_utf8_lossy(&resp.body).into_owned(),
                        fetched_at: now,
                        etag: resp.cache.etag.clone(),
                        last_modified: resp.cache.last_modified.clone(),
                        peer_addr: resp.peer.to_string(),
                        dropped_redirect_uris: metadata.dropped_redirect_uris.clone(),
                    })
                    .await?;
                record.id
            }
        };
        let fresh = self.freshness_of(&resp, now);
        let client = Arc::new(ResolvedClient {
            metadata,
            version_id,
            content_hash: hash,
            fetched_at: now,
            fresh_until: fresh_until(fresh, now),
            peer: resp.peer,
        });
        self.inner.negative.clear(key);
        self.inner.withdrawn.invalidate(key);
        if fresh == Freshness::NoStore {
            // Used for this flow only (RFC 9111 §5.2.2.5); an older copy is superseded.
            self.inner.cache.invalidate(key);
        } else {
            let weight = u64::try_from(resp.body.len())
                .unwrap_or(u64::MAX)
                .saturating_mul(2)
                .saturating_add(ENTRY_OVERHEAD);
            self.insert(
                key,
                Entry {
                    client: Arc::clone(&client),
                    weight: self.weigh(weight),
                    freshness: fresh,
                    etag: resp.cache.etag.clone(),
                    last_modified: resp.cache.last_modified.clone(),
                    validated_at: now,
                    refreshing: AtomicBool::new(false),
                },
            );
        }
        Ok((client, Outcome::Fetched))
    }

    /// A 304: same content, new freshness (RFC 9111 §4.3.4: the 304's
    /// caching headers replace the stored ones; absent ones are kept).
    fn revalidated(
        &self,
        key: &str,
        prior: &Entry,
        resp: &FetchResponse,
        now: UnixTime,
    ) -> (Arc<ResolvedClient>, Outcome) {
        let has_new_freshness = resp.cache.cache_control.is_some() || resp.cache.expires.is_some();
        let fresh = if has_new_freshness {
            self.freshness_of(resp, now)
        } else {
            match prior.freshness {
                Freshness::Fresh(_) => {
                    let life = prior.validated_at.until(prior.client.fresh_until);
                    Freshness::Fresh(u64::try_from(life).unwrap_or(0))
                }
                other => other,
            }
        };
        let mut client = (*prior.client).clone();
        client.fresh_until = fresh_until(fresh, now);
        let client = Arc::new(client);
        self.inner.negative.clear(key);
        self.inner.withdrawn.invalidate(key);
        if fresh == Freshness::NoStore {
            self.inner.cache.invalidate(key);
        } else {
            self.insert(
                key,
                Entry {
                    client: Arc::clone(&client),
                    weight: prior.weight,
                    freshness: fresh,
                    etag: resp.cache.etag.clone().or_else(|| prior.etag.clone()),
                    last_modified: resp
                        .cache
                        .last_modified
                        .clone()
                        .or_else(|| prior.last_modified.clone()),
                    validated_at: now,
                    refreshing: AtomicBool::new(false),
                },
            );
        }
        (client, Outcome::Revalidated)
    }

    fn freshness_of(&self, resp: &FetchResponse, now: UnixTime) -> Freshness {
        let c = &resp.cache;
        let headers = CachingHeaders {
            cache_control: c.cache_control.as_deref(),
            expires: c.expires.as_deref(),
            date: c.date.as_deref(),
            age: c.age.as_deref(),
        };
        freshness(
            &headers,
            now,
            self.inner.config.min_cache_seconds,
            self.inner.config.max_cache_seconds,
        )
    }

    fn weigh(&self, bytes: u64) -> u32 {
        let c = &self.inner.config;
        let floor = c.cache_max_bytes.max(1).div_ceil(c.cache_max_entries.max(1));
        u32::try_from(bytes.max(floor)).unwrap_or(u32::MAX)
    }

    fn insert(&self, key: &str, entry: Entry) {
        self.inner.cache.insert(key.to_owned(), Arc::new(entry));
    }
}

fn fresh_until(fresh: Freshness, now: UnixTime) -> UnixTime {
    match fresh {
        Freshness::Fresh(secs) => now.plus_secs(i64::try_from(secs).unwrap_or(i64::MAX)),
        Freshness::NoStore | Freshness::AlwaysRevalidate => now,
    }
}

fn share(result: &Result<(Arc<ResolvedClient>, Outcome), ResolveError>) -> Shared {
    match result {
        Ok((client, _)) => Ok(Arc::clone(client)),
        Err(e) => Err(SharedFailure {
            reason: e.reason(),
            transient: e.is_transient(),
            problems: match e {
                ResolveError::Invalid(p) => Some(p.clone()),
                _ => None,
            },
        }),
    }
}

/// Removes the in-flight marker when the leader finishes or is dropped.
struct InflightGuard<'a> {
    resolver: &'a Resolver,
    key: &'a str,
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.resolver.lock_inflight().remove(self.key);
    }
}

mod token_view;

#[cfg(test)]
mod tests;
