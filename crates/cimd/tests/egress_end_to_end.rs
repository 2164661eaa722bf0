//! The resolver over the real steward-egress against a local HTTPS document
//! host on 127.0.0.2 (trusted test CA, loopback nameserver for `cimd.test`).
//! No traffic leaves 127.0.0.0/8.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;
use steward_cimd::{
    CimdConfig, ClientIdUrl, MemoryVersionStore, ResolveError, Resolver, UrlRules, ValidationPolicy, check,
};
use steward_core::{ManualClock, UnixTime};
use steward_egress::{Egress, EgressConfig};
use steward_testkit::{DocumentHost, TestCa, TestNameserver, TestResponse};

const HOST_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const NS_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));

struct Env {
    host: DocumentHost,
    _ns: TestNameserver,
    egress: Arc<Egress>,
    resolver: Resolver,
    clock: ManualClock,
    versions: Arc<MemoryVersionStore>,
}

async fn env() -> Env {
    let ca = TestCa::new();
    let host = DocumentHost::start(HOST_IP, &ca, &["cimd.test"]).await;
    let ns = TestNameserver::start(NS_IP).await;
    ns.set("cimd.test", vec![HOST_IP]);
    let config = EgressConfig {
        allow_networks: vec!["127.0.0.2/32".parse().unwrap()],
        extra_root_certs_pem: vec![ca.cert_pem().into_bytes()],
        dns_servers: vec![ns.addr()],
        ..EgressConfig::default()
    };
    let egress = Arc::new(Egress::new(config).unwrap());
    let clock = ManualClock::new(UnixTime(1_700_000_000));
    let versions = Arc::new(MemoryVersionStore::new());
    let resolver = Resolver::new(
        egress.clone(),
        versions.clone(),
        Arc::new(clock.clone()),
        CimdConfig::default(),
    );
    Env {
        host,
        _ns: ns,
        egress,
        resolver,
        clock,
        versions,
    }
}

fn document(client_id: &str) -> String {
    serde_json::json!({
        "client_id": client_id,
        "client_name": "End-to-end client",
        "redirect_uris": ["http://localhost/callback"],
    })
    .to_string()
}

fn id(raw: &str) -> ClientIdUrl {
    ClientIdUrl::parse(raw, &UrlRules::default()).unwrap()
}

#[tokio::test]
async fn a_valid_document_resolves_and_is_cached() {
    let e = env().await;
    let url = e.host.url("cimd.test", "/client");
    e.host.set(
        "/client",
        TestResponse::json(document(&url)).with_header("cache-control", "max-age=600"),
    );
    let client = e.resolver.resolve(&id(&url)).await.unwrap();
    assert_eq!(client.metadata.client_id, url);
    assert_eq!(client.metadata.client_name, "End-to-end client");
    assert_eq!(client.peer.ip(), HOST_IP);
    e.resolver.resolve(&id(&url)).await.unwrap();
    assert_eq!(e.host.hits("/client"), 1);
    assert_eq!(e.versions.len(), 1);
}

#[tokio::test]
async fn an_invalid_document_is_refused_with_its_rule() {
    let e = env().await;
    let url = e.host.url("cimd.test", "/client");
    let body = serde_json::json!({
        "client_id": url,
        "client_name": "x",
        "redirect_uris": ["http://localhost/callback"],
        "token_endpoint_auth_method": "client_secret_basic",
    });
    e.host.set("/client", TestResponse::json(body.to_string()));
    let err = e.resolver.resolve(&id(&url)).await.unwrap_err();
    assert!(matches!(err, ResolveError::Invalid(_)));
    assert_eq!(err.reason(), "forbidden_auth_method");
    assert!(!err.is_transient());
    assert!(e.versions.is_empty());
}

#[tokio::test]
async fn a_stale_document_is_revalidated_with_a_304() {
    let e = env().await;
    let url = e.host.url("cimd.test", "/client");
    e.host.set(
        "/client",
        TestResponse::json(document(&url))
            .with_header("cache-control", "max-age=600")
            .with_header("etag", "\"v1\""),
    );
    let first = e.resolver.resolve(&id(&url)).await.unwrap();
    e.clock.advance(601);
    let second = e.resolver.resolve(&id(&url)).await.unwrap();
    assert_eq!(e.host.hits("/client"), 2);
    let headers = e.host.last_request_headers("/client").unwrap();
    assert_eq!(headers.get("if-none-match").unwrap(), "\"v1\"");
    assert_eq!(second.version_id, first.version_id);
    assert_eq!(second.fresh_until, first.fresh_until.plus_secs(601));
    assert_eq!(e.versions.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_resolutions_make_one_request() {
    let e = env().await;
    let url = e.host.url("cimd.test", "/client");
    e.host.set(
        "/client",
        TestResponse::json(document(&url))
            .with_header("cache-control", "max-age=600")
            .delay(Duration::from_millis(300)),
    );
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let r = e.resolver.clone();
        let raw = url.clone();
        tasks.spawn(async move { r.resolve(&id(&raw)).await.map(|c| c.version_id) });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.unwrap().unwrap();
    }
    assert_eq!(e.host.hits("/client"), 1);
}

#[tokio::test]
async fn the_checker_reports_a_good_document_as_good() {
    let e = env().await;
    let url = e.host.url("cimd.test", "/client");
    e.host.set(
        "/client",
        TestResponse::json(document(&url)).with_header("cache-control", "max-age=600"),
    );
    let report = check(e.egress.as_ref(), &url, &ValidationPolicy::default()).await;
    assert!(report.ok, "{report}");
    assert!(report.to_string().starts_with(&format!("OK: {url} is a valid")));
}
