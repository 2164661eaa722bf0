use super::*;
use crate::client_id::UrlRules;
use crate::versions::MemoryVersionStore;
use async_trait::async_trait;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;
use steward_core::ManualClock;
use steward_egress::CacheHeaders;

const ID: &str = "https://client.example/oauth/client.json";
const T0: UnixTime = UnixTime(1_700_000_000);

fn id() -> ClientIdUrl {
    ClientIdUrl::parse(ID, &UrlRules::default()).unwrap()
}

fn doc(name: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "client_id": ID,
        "client_name": name,
        "redirect_uris": ["http://localhost/callback"],
    }))
    .unwrap()
}

#[derive(Clone)]
enum Reply {
    Doc {
        body: Vec<u8>,
        cache_control: Option<&'static str>,
        expires: Option<String>,
        etag: Option<&'static str>,
    },
    Transient,
    Definitive,
    /// Validated by `Last-Modified` alone: 304 when `If-Modified-Since` matches.
    Dated {
        body: Vec<u8>,
        last_modified: &'static str,
    },
    /// A valid document for whatever URL is asked, padded with `padding`
    /// bytes, so tests can fill the cache with many clients.
    Any {
        padding: usize,
    },
}

/// A document server in memory: answers 304 when `If-None-Match` matches,
/// counts fetches, and can be slowed down to provoke concurrency.
struct FakeFetcher {
    reply: Mutex<Reply>,
    fetches: AtomicUsize,
    conditional: AtomicUsize,
    by_url: Mutex<HashMap<String, usize>>,
    delay: Duration,
}

impl FakeFetcher {
    fn new(reply: Reply) -> Arc<Self> {
        Self::slow(reply, Duration::ZERO)
    }

    fn slow(reply: Reply, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            reply: Mutex::new(reply),
            fetches: AtomicUsize::new(0),
            conditional: AtomicUsize::new(0),
            by_url: Mutex::new(HashMap::new()),
            delay,
        })
    }

    fn set(&self, reply: Reply) {
        *self.reply.lock().unwrap() = reply;
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    fn fetches_of(&self, url: &str) -> usize {
        self.by_url.lock().unwrap().get(url).copied().unwrap_or(0)
    }
}

fn ok_response(body: Vec<u8>, cache: CacheHeaders, peer: SocketAddr) -> FetchResponse {
    FetchResponse {
        status: FetchStatus::Ok,
        body: bytes::Bytes::from(body),
        content_type: Some("application/json".into()),
        cache,
        peer,
    }
}

fn headers(cache_control: Option<&str>, expires: Option<String>, etag: Option<&str>) -> CacheHeaders {
    CacheHeaders {
        cache_control: cache_control.map(str::to_owned),
        expires,
        date: None,
        age: None,
        etag: etag.map(str::to_owned),
        last_modified: None,
    }
}

#[async_trait]
impl DocumentFetcher for FakeFetcher {
    async fn fetch(&self, req: &FetchRequest) -> Result<FetchResponse, FetchError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        *self
            .by_url
            .lock()
            .unwrap()
            .entry(req.url.as_str().to_owned())
            .or_default() += 1;
        let reply = self.reply.lock().unwrap().clone();
        if !matches!(reply, Reply::Any { .. }) {
            assert_eq!(req.url.as_str(), ID);
        }
        let peer: SocketAddr = "127.0.0.2:443".parse().unwrap();
        match reply {
            Reply::Any { padding } => {
                let body = serde_json::to_vec(&serde_json::json!({
                    "client_id": req.url.as_str(),
                    "client_name": "Many",
                    "redirect_uris": ["http://localhost/callback"],
                    "padding": "p".repeat(padding),
                }))
                .unwrap();
                Ok(ok_response(body, headers(Some("max-age=600"), None, None), peer))
            }
            Reply::Dated { body, last_modified } => {
                let sent = req.validators.as_ref().and_then(|v| v.last_modified.as_deref());
                if sent.is_some() {
                    self.conditional.fetch_add(1, Ordering::SeqCst);
                }
                let cache = CacheHeaders {
                    last_modified: Some(last_modified.to_owned()),
                    ..headers(None, None, None)
                };
                if sent == Some(last_modified) {
                    return Ok(FetchResponse {
                        status: FetchStatus::NotModified,
                        body: bytes::Bytes::new(),
                        content_type: None,
                        cache,
                        peer,
                    });
                }
                Ok(ok_response(body, cache, peer))
            }
            Reply::Doc {
                body,
                cache_control,
                expires,
                etag,
            } => {
                let sent = req.validators.as_ref().and_then(|v| v.etag.as_deref());
                if sent.is_some() {
                    self.conditional.fetch_add(1, Ordering::SeqCst);
                }
                let not_modified = sent.is_some() && sent == etag;
                Ok(FetchResponse {
                    status: if not_modified {
                        FetchStatus::NotModified
                    } else {
                        FetchStatus::Ok
                    },
                    body: if not_modified {
                        bytes::Bytes::new()
                    } else {
                        bytes::Bytes::from(body)
                    },
                    content_type: Some("application/json".into()),
                    cache: headers(cache_control, expires, etag),
                    peer,
                })
            }
            Reply::Transient => Err(transient_error()),
            Reply::Definitive => Err(definitive_error()),
        }
    }
}

fn transient_error() -> FetchError {
    FetchError::Timeout
}

fn definitive_error() -> FetchError {
    FetchError::BadStatus { status: 404 }
}

fn cached(cache_control: &'static str) -> Reply {
    Reply::Doc {
        body: doc("Example"),
        cache_control: Some(cache_control),
        expires: None,
        etag: None,
    }
}

fn tagged(cache_control: &'static str, etag: &'static str) -> Reply {
    Reply::Doc {
        body: doc("Example"),
        cache_control: Some(cache_control),
        expires: None,
        etag: Some(etag),
    }
}

struct Harness {
    resolver: Resolver,
    fetcher: Arc<FakeFetcher>,
    versions: Arc<MemoryVersionStore>,
    clock: ManualClock,
}

fn harness(fetcher: Arc<FakeFetcher>) -> Harness {
    let versions = Arc::new(MemoryVersionStore::new());
    let clock = ManualClock::new(T0);
    let resolver = Resolver::new(
        fetcher.clone(),
        versions.clone(),
        Arc::new(clock.clone()),
        CimdConfig::default(),
    );
    Harness {
        resolver,
        fetcher,
        versions,
        clock,
    }
}

#[tokio::test]
async fn a_fresh_entry_is_served_from_cache() {
    let h = harness(FakeFetcher::new(cached("max-age=600")));
    let first = h.resolver.resolve(&id()).await.unwrap();
    let second = h.resolver.resolve(&id()).await.unwrap();
    assert_eq!(h.fetcher.fetches(), 1);
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(first.metadata.client_name, "Example");
    assert_eq!(first.peer.to_string(), "127.0.0.2:443");
}

#[tokio::test]
async fn max_age_below_the_floor_is_raised_to_300() {
    let h = harness(FakeFetcher::new(cached("max-age=10")));
    let c = h.resolver.resolve(&id()).await.unwrap();
    assert_eq!(c.fresh_until, T0.plus_secs(300));
    h.clock.advance(299);
    h.resolver.resolve(&id()).await.unwrap();
    assert_eq!(h.fetcher.fetches(), 1);
    h.clock.advance(1);
    h.resolver.resolve(&id()).await.unwrap();
    assert_eq!(h.fetcher.fetches(), 2);
}

#[tokio::test]
async fn max_age_above_the_ceiling_is_cut_to_86400() {
    let h = harness(FakeFetcher::new(cached("max-age=10000000")));
    let c = h.resolver.resolve(&id()).await.unwrap();
    assert_eq!(c.fresh_until, T0.plus_secs(86_400));
}

#[tokio::test]
async fn expires_sets_the_lifetime() {
    let at = std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(T0.0 + 7_200).unwrap());
    let h = harness(FakeFetcher::new(Reply::Doc {
        body: doc("Example"),
        cache_control: None,
        expires: Some(httpdate::fmt_http_date(at)),
        etag: None,
    }));
    let c = h.resolver.resolve(&id()).await.unwrap();
    assert_eq!(c.fresh_until, T0.plus_secs(7_200));
}

#[tokio::test]
async fn no_store_is_served_but_never_cached() {
    let h = harness(FakeFetcher::new(cached("no-store, max-age=600")));
    let a = h.resolver.resolve(&id()).await.unwrap();
    let b = h.resolver.resolve(&id()).await.unwrap();
    assert_eq!(h.fetcher.fetches(), 2);
    assert_eq!(a.version_id, b.version_id);
    assert_eq!(h.versions.len(), 1);
}

#[tokio::test]
async fn not_modified_extends_freshness_without_a_new_version() {
    let h = harness(FakeFetcher::new(tagged("max-age=600", "\"v1\"")));
    let first = h.resolver.resolve(&id()).await.unwrap();
    h.clock.advance(601);
    let second = h.resolver.resolve(&id()).await.unwrap();
    assert_eq!(h.fetcher.fetches(), 2);
    assert_eq!(h.fetcher.conditional.load(Ordering::SeqCst), 1);
    assert_eq!(second.version_id, first.version_id);
    assert_eq!(second.fresh_until, T0.plus_secs(601 + 600));
    assert_eq!(second.fetched_at, T0);
    assert_eq!(h.versions.len(), 1);
    h.clock.advance(599);
    h.resolver.resolve(&id()).await.unwrap();
    assert_eq!(h.fetcher.fetches(), 2);
}

#[tokio::test]
async fn no_cache_revalidates_on_every_use() {
    let h = harness(FakeFetcher::new(tagged("no-cache", "\"v1\"")));
    for _ in 0..3 {
        h.resolver.resolve(&id()).await.unwrap();
    }
    assert_eq!(h.fetcher.fetches(), 3);
    assert_eq!(h.fetcher.conditional.load(Ordering::SeqCst), 2);
    assert_eq!(h.versions.len(), 1);
}

#[tokio::test]
async fn a_no_cache_document_is_not_served_through_a_failure() {
    let h = harness(FakeFetcher::new(tagged("no-cache", "\"v1\"")));
    h.resolver.resolve(&id()).await.unwrap();
    h.fetcher.set(Reply::Transient);
    let err = h.resolver.resolve(&id()).await.unwrap_err();
    assert!(matches!(err, ResolveError::Fetch { .. }));
    assert!(h.resolver.resolve(&id()).await.is_err());
}

#[tokio::test]
async fn a_version_is_recorded_once_per_content_hash() {
    let h = harness(FakeFetcher::new(cached("max-age=300")));
    let a = h.resolver.resolve(&id()).await.unwrap();
    h.clock.advance(301);
    let same = h.resolver.resolve(&id()).await.unwrap();
    assert_eq!(a.version_id, same.version_id);
    assert_eq!(h.versions.len(), 1);
    h.fetcher.set(Reply::Doc {
        body: doc("Renamed"),
        cache_control: Some("max-age=300"),
        expires: None,
        etag: None,
    });
    h.clock.advance(301);
    let changed = h.resolver.resolve(&id()).await.unwrap();
    assert_ne!(changed.version_id, a.version_id);
    assert_eq!(changed.metadata.client_name, "Renamed");
    assert_eq!(h.versions.len(), 2);
    let latest = h.versions.latest(ID).await.unwrap().unwrap();
    assert_eq!(latest.id, changed.version_id);
    assert_eq!(latest.content_hash, content_hash(&doc("Renamed")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_resolutions_share_one_fetch() {
    let h = harness(FakeFetcher::slow(
        cached("max-age=600"),
        Duration::from_millis(200),
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let r = h.resolver.clone();
        tasks.spawn(async move { r.resolve(&id()).await.map(|c| c.version_id) });
    }
    let mut ids = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        ids.push(joined.unwrap().unwrap());
    }
    assert_eq!(ids.len(), 50);
    assert!(ids.iter().all(|v| *v == ids[0]));
    assert_eq!(h.fetcher.fetches(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_failures_share_one_fetch_too() {
    let h = harness(FakeFetcher::slow(Reply::Transient, Duration::from_millis(200)));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let r = h.resolver.clone();
        tasks.spawn(async move { r.resolve(&id()).await.map(|_| ()) });
    }
    while let Some(joined) = tasks.join_next().await {
        let err = joined.unwrap().unwrap_err();
        assert!(err.is_transient());
        assert_eq!(err.reason(), transient_error().reason());
    }
    assert_eq!(h.fetcher.fetches(), 1);
}

#[tokio::test]
async fn a_cancelled_leader_hands_over_to_a_waiter() {
    let h = harness(FakeFetcher::slow(
        cached("max-age=600"),
        Duration::from_millis(100),
    ));
    let leader = {
        let r = h.resolver.clone();
        tokio::spawn(async move { r.resolve(&id()).await.map(|_| ()) })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let waiter = {
        let r = h.resolver.clone();
        tokio::spawn(async move { r.resolve(&id()).await.map(|_| ()) })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    leader.abort();
    waiter.await.unwrap().unwrap();
    assert_eq!(h.fetcher.fetches(), 2);
}

#[tokio::test]
async fn failures_back_off_exponentially() {
    let h = harness(FakeFetcher::new(Reply::Transient));
    let first = h.resolver.resolve(&id()).await.unwrap_err();
    assert!(matches!(first, ResolveError::Fetch { .. }));
    assert!(first.is_transient());
    let again = h.resolver.resolve(&id()).await.unwrap_err();
    assert!(matches!(
        again,
        ResolveError::RecentFailure {
            retry_after_secs: 5,
            ..
        }
    ));
    assert_eq!(again.reason(), first.reason());
    assert!(again.is_transient());
    assert_eq!(h.fetcher.fetches(), 1);
    h.clock.advance(5);
    h.resolver.resolve(&id()).await.unwrap_err();
    assert_eq!(h.fetcher.fetches(), 2);
    h.clock.advance(9);
    h.resolver.resolve(&id()).await.unwrap_err();
    assert_eq!(h.fetcher.fetches(), 2, "second failure waits 10 s");
    h.clock.advance(1);
    h.resolver.resolve(&id()).await.unwrap_err();
    assert_eq!(h.fetcher.fetches(), 3);
    // Recovery clears the backoff.
    h.fetcher.set(cached("max-age=600"));
    h.clock.advance(20);
    h.resolver.resolve(&id()).await.unwrap();
    assert_eq!(h.fetcher.fetches(), 4);
}

#[tokio::test]
async fn negative_cache_never_hides_a_valid_entry() {
    let h = harness(FakeFetcher::new(tagged("max-age=600", "\"v1\"")));
    let good = h.resolver.resolve(&id()).await.unwrap();
    h.fetcher.set(Reply::Transient);
    h.clock.advance(601);
    let stale = h.resolver.resolve(&id()).await.unwrap();
    assert_eq!(stale.version_id, good.version_id);
    assert_eq!(h.fetcher.fetches(), 2);
    // While the failure is remembered the stale entry keeps being served, without fetching.
    let again = h.resolver.resolve(&id()).await.unwrap();
    assert_eq!(again.version_id, good.version_id);
    assert_eq!(h.fetcher.fetches(), 2);
    // But never past max_cache_seconds after the origin last confirmed it.
    h.clock.set(T0.plus_secs(86_400));
    let err = h.resolver.resolve(&id()).await.unwrap_err();
    assert!(err.is_transient());
}

#[tokio::test]
async fn a_definitive_failure_drops_the_cached_entry() {
    let h = harness(FakeFetcher::new(cached("max-age=600")));
    h.resolver.resolve(&id()).await.unwrap();
    h.fetcher.set(Reply::Definitive);
    h.clock.advance(601);
    let err = h.resolver.resolve(&id()).await.unwrap_err();
    assert!(!err.is_transient());
    assert!(matches!(err, ResolveError::Fetch { .. }));
    // After the backoff the fetch is retried and the cache does not resurrect the old entry.
    h.clock.advance(5);
    assert!(h.resolver.resolve(&id()).await.is_err());
    assert_eq!(h.fetcher.fetches(), 3);
}

#[tokio::test]
async fn an_invalid_document_is_never_cached() {
    let h = harness(FakeFetcher::new(cached("max-age=600")));
    h.resolver.resolve(&id()).await.unwrap();
    h.fetcher.set(Reply::Doc {
        body: br#"{"client_id":"https://client.example/oauth/client.json","client_secret":"x"}"#.to_vec(),
        cache_control: Some("max-age=600"),
        expires: None,
        etag: None,
    });
    h.clock.advance(601);
    let err = h.resolver.resolve(&id()).await.unwrap_err();
    assert_eq!(err.reason(), "client_name_required");
    let ResolveError::Invalid(problems) = &err else {
        panic!("expected Invalid, got {err:?}");
    };
    assert!(problems.iter().any(|p| p.rule == "forbidden_member"));
    // The repeat within the backoff gets the same problems without a fetch.
    let again = h.resolver.resolve(&id()).await.unwrap_err();
    assert!(matches!(again, ResolveError::Invalid(ref p) if p == problems));
    assert_eq!(h.fetcher.fetches(), 2);
    assert_eq!(h.versions.len(), 1);
}

#[tokio::test]
async fn a_document_in_use_is_refreshed_in_the_background() {
    let h = harness(FakeFetcher::new(cached("max-age=1000")));
    h.resolver.resolve(&id()).await.unwrap();
    h.clock.advance(850);
    h.resolver.resolve(&id()).await.unwrap();
    tokio::task::yield_now().await;
    assert_eq!(h.fetcher.fetches(), 1, "not yet in the last tenth");
    h.clock.advance(100);
    let hit = h.resolver.resolve(&id()).await.unwrap();
    assert_eq!(hit.fresh_until, T0.plus_secs(1_000), "served at once from cache");
    for _ in 0..100 {
        if h.fetcher.fetches() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(h.fetcher.fetches(), 2);
    // Several hits near expiry start only one refresh.
    h.resolver.resolve(&id()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(h.fetcher.fetches(), 2);
    // Past the old expiry the refreshed entry is still fresh.
    h.clock.advance(100);
    let refreshed = h.resolver.resolve(&id()).await.unwrap();
    assert_eq!(refreshed.fresh_until, T0.plus_secs(950 + 1_000));
    assert_eq!(h.fetcher.fetches(), 2);
}

#[tokio::test]
async fn stored_versions_are_revalidated_without_fetching() {
    let h = harness(FakeFetcher::new(cached("max-age=600")));
    let live = h.resolver.resolve(&id()).await.unwrap();
    let fresh_resolver = Resolver::new(
        FakeFetcher::new(Reply::Definitive),
        h.versions.clone(),
        Arc::new(h.clock.clone()),
        CimdConfig::default(),
    );
    let stored = fresh_resolver
        .stored(&id(), live.version_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.metadata, live.metadata);
    assert_eq!(stored.content_hash, live.content_hash);
    let latest = fresh_resolver.latest_stored(&id()).await.unwrap().unwrap();
    assert_eq!(latest.version_id, live.version_id);
    let other = ClientIdUrl::parse("https://other.example/c", &UrlRules::default()).unwrap();
    assert!(
        fresh_resolver
            .stored(&other, live.version_id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(fresh_resolver.stored(&id(), 999).await.unwrap().is_none());
}

#[tokio::test]
async fn a_stored_version_must_still_pass_current_policy() {
    let versions = Arc::new(MemoryVersionStore::new());
    let body = r#"{"client_id":"https://client.example/oauth/client.json","client_name":"x","redirect_uris":["com.example.app:/cb"]}"#;
    let lax = CimdConfig {
        allow_private_use_schemes: true,
        ..CimdConfig::default()
    };
    let clock = Arc::new(ManualClock::new(T0));
    let lax_resolver = Resolver::new(
        FakeFetcher::new(Reply::Doc {
            body: body.as_bytes().to_vec(),
            cache_control: None,
            expires: None,
            etag: None,
        }),
        versions.clone(),
        clock.clone(),
        lax,
    );
    let v = lax_resolver.resolve(&id()).await.unwrap().version_id;
    let strict = Resolver::new(
        FakeFetcher::new(Reply::Definitive),
        versions,
        clock,
        CimdConfig::default(),
    );
    let err = strict.stored(&id(), v).await.unwrap_err();
    assert_eq!(err.reason(), "invalid_redirect_uri");
}

#[tokio::test]
async fn the_cache_is_bounded_by_entries() {
    let versions = Arc::new(MemoryVersionStore::new());
    let config = CimdConfig {
        cache_max_entries: 2,
        cache_max_bytes: 2 * 4096,
        ..CimdConfig::default()
    };
    let r = Resolver::new(
        FakeFetcher::new(cached("max-age=600")),
        versions,
        Arc::new(ManualClock::new(T0)),
        config,
    );
    assert_eq!(r.weigh(10), 4096);
    assert_eq!(r.weigh(10_000), 10_000);
    r.resolve(&id()).await.unwrap();
    r.inner.cache.run_pending_tasks();
    assert_eq!(r.inner.cache.weighted_size(), 4096);
}

fn many_resolver(fetcher: Arc<FakeFetcher>, entries: u64, bytes: u64) -> Resolver {
    Resolver::new(
        fetcher,
        Arc::new(MemoryVersionStore::new()),
        Arc::new(ManualClock::new(T0)),
        CimdConfig {
            cache_max_entries: entries,
            cache_max_bytes: bytes,
            ..CimdConfig::default()
        },
    )
}

fn nth_id(n: usize) -> ClientIdUrl {
    ClientIdUrl::parse(
        &format!("https://client{n}.example/oauth/client.json"),
        &UrlRules::default(),
    )
    .unwrap()
}

/// Resolves `count` distinct clients twice over and returns how many of the
/// second round had to fetch again (their entry was evicted).
async fn refetched_after_filling(r: &Resolver, fetcher: &FakeFetcher, count: usize) -> usize {
    for n in 0..count {
        r.resolve(&nth_id(n)).await.unwrap();
        r.inner.cache.run_pending_tasks();
    }
    assert_eq!(fetcher.fetches(), count);
    let before = fetcher.fetches();
    for n in 0..count {
        r.resolve(&nth_id(n)).await.unwrap();
    }
    fetcher.fetches() - before
}

#[tokio::test]
async fn the_cache_evicts_by_entry_count() {
    let fetcher = FakeFetcher::new(Reply::Any { padding: 10 });
    // Plenty of bytes: only the entry bound can bite.
    let r = many_resolver(fetcher.clone(), 3, 3 * 4096);
    let refetched = refetched_after_filling(&r, &fetcher, 12).await;
    r.inner.cache.run_pending_tasks();
    assert!(
        r.inner.cache.entry_count() <= 3,
        "{}",
        r.inner.cache.entry_count()
    );
    assert!(r.inner.cache.weighted_size() <= 3 * 4096);
    assert!(
        refetched >= 12 - 3,
        "evicted entries are fetched again: {refetched}"
    );
}

#[tokio::test]
async fn the_cache_evicts_by_bytes() {
    // ~4 KB documents weigh ~8.5 KB each: 20 KB holds two, whatever the entry bound.
    let fetcher = FakeFetcher::new(Reply::Any { padding: 4_000 });
    let r = many_resolver(fetcher.clone(), 10_000, 20_000);
    let refetched = refetched_after_filling(&r, &fetcher, 8).await;
    r.inner.cache.run_pending_tasks();
    assert!(
        r.inner.cache.weighted_size() <= 20_000,
        "{}",
        r.inner.cache.weighted_size()
    );
    assert!(
        r.inner.cache.entry_count() <= 2,
        "{}",
        r.inner.cache.entry_count()
    );
    assert!(
        refetched >= 8 - 2,
        "evicted entries are fetched again: {refetched}"
    );
    assert!(fetcher.fetches_of(nth_id(0).as_str()) >= 1);
}

#[tokio::test]
async fn last_modified_alone_revalidates_with_if_modified_since() {
    const LM: &str = "Sat, 21 Nov 2026 10:00:00 GMT";
    let h = harness(FakeFetcher::new(Reply::Dated {
        body: doc("Example"),
        last_modified: LM,
    }));
    let first = h.resolver.resolve(&id()).await.unwrap();
    // No Cache-Control or Expires: the floor applies.
    assert_eq!(first.fresh_until, T0.plus_secs(300));
    h.clock.advance(301);
    let second = h.resolver.resolve(&id()).await.unwrap();
    assert_eq!(h.fetcher.fetches(), 2);
    assert_eq!(
        h.fetcher.conditional.load(Ordering::SeqCst),
        1,
        "If-Modified-Since was sent"
    );
    assert_eq!(second.version_id, first.version_id);
    assert_eq!(second.fetched_at, T0);
    assert_eq!(second.fresh_until, T0.plus_secs(301 + 300));
    assert_eq!(h.versions.len(), 1, "a 304 makes no new version");
    h.clock.advance(299);
    h.resolver.resolve(&id()).await.unwrap();
    assert_eq!(h.fetcher.fetches(), 2);
}

#[tokio::test]
async fn the_first_transient_failure_reports_the_backoff_as_retry_after() {
    let h = harness(FakeFetcher::new(Reply::Transient));
    let first = h.resolver.resolve(&id()).await.unwrap_err();
    assert!(matches!(first, ResolveError::Fetch { .. }));
    assert!(first.is_transient());
    // The negative cache will not fetch again for 5 s: the first answer says so.
    assert_eq!(first.retry_after_secs(), Some(5));
    h.clock.advance(2);
    let repeat = h.resolver.resolve(&id()).await.unwrap_err();
    assert_eq!(repeat.retry_after_secs(), Some(3));
    h.clock.advance(3);
    let second = h.resolver.resolve(&id()).await.unwrap_err();
    assert!(matches!(second, ResolveError::Fetch { .. }));
    assert_eq!(second.retry_after_secs(), Some(10), "the backoff doubled");
    assert_eq!(h.fetcher.fetches(), 2);
}

/// Waits (in real time) for the background refresh to have fetched.
async fn wait_for_fetches(fetcher: &FakeFetcher, n: usize) {
    for _ in 0..200 {
        if fetcher.fetches() >= n {
            // Let the refresh task finish handling its answer.
            tokio::time::sleep(Duration::from_millis(20)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("expected {n} fetches, saw {}", fetcher.fetches());
}

#[tokio::test]
async fn a_definitive_failure_of_an_early_refresh_keeps_the_fresh_entry() {
    let invalid = Reply::Doc {
        body: br#"{"client_id":"https://client.example/oauth/client.json"}"#.to_vec(),
        cache_control: Some("max-age=1000"),
        expires: None,
        etag: None,
    };
    for failure in [Reply::Definitive, invalid] {
        let h = harness(FakeFetcher::new(cached("max-age=1000")));
        let good = h.resolver.resolve(&id()).await.unwrap();
        h.fetcher.set(failure);
        h.clock.advance(950);
        // In the last tenth of its life: served, and a background refresh starts.
        h.resolver.resolve(&id()).await.unwrap();
        wait_for_fetches(&h.fetcher, 2).await;
        // The refresh failed definitively, but the entry is still fresh: kept.
        h.clock.advance(40);
        let still = h.resolver.resolve(&id()).await.unwrap();
        assert_eq!(still.version_id, good.version_id);
        assert_eq!(still.fresh_until, T0.plus_secs(1_000));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(h.fetcher.fetches(), 2, "one refresh per entry");
        // Once stale, the failure is met instead of the old document.
        h.clock.advance(10);
        assert!(h.resolver.resolve(&id()).await.is_err());
        assert_eq!(h.fetcher.fetches(), 3);
        // The entry is gone: after the backoff, a transient failure has no
        // stale copy to fall back on.
        h.fetcher.set(Reply::Transient);
        h.clock.advance(11);
        let err = h.resolver.resolve(&id()).await.unwrap_err();
        assert!(matches!(err, ResolveError::Fetch { .. }), "{err:?}");
    }
}

#[tokio::test]
async fn resolutions_are_counted_by_outcome_and_reason() {
    const NAME: &str = "steward_cimd_resolutions_total";
    let counters = steward_testkit::CountingRecorder::default();
    let _local = metrics::set_default_local_recorder(&counters);
    let h = harness(FakeFetcher::new(cached("max-age=600")));
    h.resolver.resolve(&id()).await.unwrap();
    h.resolver.resolve(&id()).await.unwrap();
    assert_eq!(counters.get(NAME, "outcome=ok"), 1);
    assert_eq!(counters.get(NAME, "outcome=cache_hit"), 1);

    h.fetcher.set(Reply::Definitive);
    h.clock.advance(601);
    h.resolver.resolve(&id()).await.unwrap_err();
    // From the negative cache: the same reason, counted again.
    h.resolver.resolve(&id()).await.unwrap_err();
    assert_eq!(counters.get(NAME, "outcome=bad_status"), 2);

    h.fetcher.set(Reply::Transient);
    h.clock.advance(600);
    h.resolver.resolve(&id()).await.unwrap_err();
    assert_eq!(
        counters.get(NAME, &format!("outcome={}", transient_error().reason())),
        1
    );

    h.fetcher.set(Reply::Doc {
        body: br#"{"client_id":"https://client.example/oauth/client.json","client_name":"x"}"#.to_vec(),
        cache_control: None,
        expires: None,
        etag: None,
    });
    h.clock.advance(600);
    h.resolver.resolve(&id()).await.unwrap_err();
    assert_eq!(counters.get(NAME, "outcome=redirect_uris_required"), 1);
    // No counter carries the client id.
    assert!(counters.keys().iter().all(|k| !k.contains("client.example")));
}

// ---- the token endpoint's view (token_view) and held key sets (key_sets) ----

fn bounded_harness(fetcher: Arc<FakeFetcher>, max_cache_seconds: u64) -> Harness {
    let versions = Arc::new(MemoryVersionStore::new());
    let clock = ManualClock::new(T0);
    let resolver = Resolver::new(
        fetcher.clone(),
        versions.clone(),
        Arc::new(clock.clone()),
        CimdConfig {
            max_cache_seconds,
            ..CimdConfig::default()
        },
    );
    Harness {
        resolver,
        fetcher,
        versions,
        clock,
    }
}

#[tokio::test]
async fn token_view_refuses_a_document_gone_once_revalidated_in_the_background() {
    let h = bounded_harness(FakeFetcher::new(cached("max-age=600")), 3_600);
    h.resolver.resolve(&id()).await.unwrap();
    assert!(h.resolver.for_token(&id()).await.unwrap().is_some());
    assert_eq!(h.fetcher.fetches(), 1, "a fresh entry needs no fetch");
    h.fetcher.set(Reply::Definitive);
    h.clock.advance(700);
    // Stale but confirmed within the bound: served from what is held, and
    // one revalidation starts off the request path.
    assert!(h.resolver.for_token(&id()).await.unwrap().is_some());
    wait_for_fetches(&h.fetcher, 2).await;
    let err = h.resolver.for_token(&id()).await.unwrap_err();
    assert!(matches!(err, ResolveError::Withdrawn { .. }), "{err:?}");
    assert!(!err.is_transient());
    // Long after, the withdrawal still holds without any new fetch driving it.
    h.clock.advance(3_000);
    assert!(h.resolver.for_token(&id()).await.is_err());
}

#[tokio::test]
async fn token_view_fails_closed_past_max_cache_seconds() {
    let h = bounded_harness(FakeFetcher::new(cached("max-age=600")), 3_600);
    h.resolver.resolve(&id()).await.unwrap();
    h.fetcher.set(Reply::Transient);
    h.clock.advance(3_600);
    let err = h.resolver.for_token(&id()).await.unwrap_err();
    assert!(matches!(err, ResolveError::Unconfirmed { .. }), "{err:?}");
    assert!(err.is_transient());
    wait_for_fetches(&h.fetcher, 2).await;
    // The origin answers again: the revalidation (after the backoff) restores trust.
    h.fetcher.set(cached("max-age=600"));
    h.clock.advance(60);
    assert!(h.resolver.for_token(&id()).await.is_err(), "still unconfirmed");
    wait_for_fetches(&h.fetcher, 3).await;
    assert!(h.resolver.for_token(&id()).await.unwrap().is_some());
}

#[tokio::test]
async fn token_view_without_an_entry_trusts_stored_versions_within_the_bound() {
    let h = bounded_harness(FakeFetcher::new(cached("max-age=600")), 3_600);
    let live = h.resolver.resolve(&id()).await.unwrap();
    // Another node (or this one after a restart): nothing cached, a fetcher that fails.
    let fetcher = FakeFetcher::new(Reply::Transient);
    let other = Resolver::new(
        fetcher.clone(),
        h.versions.clone(),
        Arc::new(h.clock.clone()),
        CimdConfig {
            max_cache_seconds: 3_600,
            ..CimdConfig::default()
        },
    );
    h.clock.advance(100);
    let got = other.for_token(&id()).await.unwrap().unwrap();
    assert_eq!(got.version_id, live.version_id);
    wait_for_fetches(&fetcher, 1).await;
    h.clock.advance(3_500);
    let err = other.for_token(&id()).await.unwrap_err();
    assert!(matches!(err, ResolveError::Unconfirmed { .. }), "{err:?}");
    let unknown = ClientIdUrl::parse("https://other.example/c", &UrlRules::default()).unwrap();
    assert!(other.for_token(&unknown).await.unwrap().is_none());
}

/// A key-set host in memory: counts fetches, serves `keys` with `max-age`.
struct KeyHost {
    keys: Mutex<Option<serde_json::Value>>,
    fetches: AtomicUsize,
}

#[async_trait]
impl DocumentFetcher for KeyHost {
    async fn fetch(&self, _req: &FetchRequest) -> Result<FetchResponse, FetchError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let peer: SocketAddr = "127.0.0.2:443".parse().unwrap();
        match self.keys.lock().unwrap().clone() {
            Some(keys) => Ok(ok_response(
                serde_json::to_vec(&keys).unwrap(),
                headers(Some("max-age=600"), None, None),
                peer,
            )),
            None => Err(definitive_error()),
        }
    }
}

async fn wait_for_key_fetches(host: &KeyHost, n: usize) {
    for _ in 0..200 {
        if host.fetches.load(Ordering::SeqCst) >= n {
            tokio::time::sleep(Duration::from_millis(20)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("expected {n} key-set fetches");
}

#[tokio::test]
async fn key_sets_are_held_and_refetched_only_off_the_request_path() {
    const URI: &str = "https://client.example/jwks.json";
    let host = Arc::new(KeyHost {
        keys: Mutex::new(Some(serde_json::json!({"keys": [{"kty": "OKP", "kid": "k1"}]}))),
        fetches: AtomicUsize::new(0),
    });
    let clock = ManualClock::new(T0);
    let sets = crate::key_sets::KeySets::new(host.clone(), Arc::new(clock.clone()), &CimdConfig::default());
    // Nothing held: the token endpoint is told to retry, and a fetch starts in the background.
    assert!(matches!(sets.for_token(URI), crate::KeySetLookup::Pending { .. }));
    wait_for_key_fetches(&host, 1).await;
    for _ in 0..50 {
        assert!(matches!(sets.for_token(URI), crate::KeySetLookup::Ready(_)));
    }
    assert_eq!(
        host.fetches.load(Ordering::SeqCst),
        1,
        "held: no fetch per request"
    );
    // An unknown kid refetches once per cache lifetime, however often it is presented.
    host.keys
        .lock()
        .unwrap()
        .replace(serde_json::json!({"keys": [{"kty": "OKP", "kid": "k2"}]}));
    assert!(sets.unknown_kid(URI));
    wait_for_key_fetches(&host, 2).await;
    for _ in 0..20 {
        assert!(!sets.unknown_kid(URI));
    }
    assert_eq!(host.fetches.load(Ordering::SeqCst), 2);
    let crate::KeySetLookup::Ready(keys) = sets.for_token(URI) else {
        panic!("the refetched set is held");
    };
    assert_eq!(keys["keys"][0]["kid"], "k2");
    // Gone (404) once stale: dropped, and the client's keys are refused.
    host.keys.lock().unwrap().take();
    clock.advance(700);
    assert!(
        matches!(sets.for_token(URI), crate::KeySetLookup::Ready(_)),
        "stale, within the bound"
    );
    wait_for_key_fetches(&host, 3).await;
    assert!(matches!(sets.for_token(URI), crate::KeySetLookup::Failed { .. }));
}

#[tokio::test]
async fn held_key_sets_expire_at_max_cache_seconds() {
    const URI: &str = "https://client.example/jwks.json";
    let host = Arc::new(KeyHost {
        keys: Mutex::new(Some(serde_json::json!({"keys": []}))),
        fetches: AtomicUsize::new(0),
    });
    let clock = ManualClock::new(T0);
    let config = CimdConfig {
        max_cache_seconds: 1_000,
        ..CimdConfig::default()
    };
    let sets = crate::key_sets::KeySets::new(host.clone(), Arc::new(clock.clone()), &config);
    sets.prefetch(URI).await;
    assert_eq!(host.fetches.load(Ordering::SeqCst), 1);
    assert!(matches!(sets.for_token(URI), crate::KeySetLookup::Ready(_)));
    clock.advance(1_000);
    assert!(
        matches!(sets.for_token(URI), crate::KeySetLookup::Pending { .. }),
        "past the bound nothing stale is used"
    );
}
