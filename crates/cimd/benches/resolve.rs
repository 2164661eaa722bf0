//! Cache-hit resolution (target: under 20 µs) and client id parsing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use async_trait::async_trait;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::Arc;
use steward_cimd::{CimdConfig, ClientIdUrl, DocumentFetcher, MemoryVersionStore, Resolver, UrlRules};
use steward_core::{ManualClock, UnixTime};
use steward_egress::{CacheHeaders, FetchError, FetchRequest, FetchResponse, FetchStatus};

const ID: &str = "https://client.example/oauth/client.json";

struct Static;

#[async_trait]
impl DocumentFetcher for Static {
    async fn fetch(&self, _req: &FetchRequest) -> Result<FetchResponse, FetchError> {
        let body = serde_json::json!({
            "client_id": ID,
            "client_name": "Bench client",
            "redirect_uris": ["http://localhost/callback", "http://127.0.0.1/callback"],
        });
        Ok(FetchResponse {
            status: FetchStatus::Ok,
            body: bytes::Bytes::from(serde_json::to_vec(&body).unwrap()),
            content_type: Some("application/json".into()),
            cache: CacheHeaders {
                cache_control: Some("max-age=3600".into()),
                expires: None,
                date: None,
                age: None,
                etag: None,
                last_modified: None,
            },
            peer: "127.0.0.2:443".parse().unwrap(),
        })
    }
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let resolver = Resolver::new(
        Arc::new(Static),
        Arc::new(MemoryVersionStore::new()),
        Arc::new(ManualClock::new(UnixTime(1_700_000_000))),
        CimdConfig::default(),
    );
    let id = ClientIdUrl::parse(ID, &UrlRules::default()).unwrap();
    rt.block_on(resolver.resolve(&id)).unwrap();
    c.bench_function("resolve_cache_hit", |b| {
        b.to_async(&rt)
            .iter(|| async { resolver.resolve(black_box(&id)).await.unwrap() });
    });
    let rules = UrlRules::default();
    c.bench_function("client_id_parse", |b| {
        b.iter(|| ClientIdUrl::parse(black_box(ID), &rules).unwrap());
    });
}

criterion_group!(resolve, benches);
criterion_main!(resolve);
