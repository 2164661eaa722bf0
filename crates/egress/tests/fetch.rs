//! End-to-end egress tests against a loopback HTTPS host and nameserver.
//! All traffic stays on 127.0.0.0/8: the "public" host is 127.0.0.2 (made
//! reachable through `allow_networks`), the "internal" victim is 127.0.0.1.
// Test timers measure elapsed monotonic time (disallowed_methods).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use steward_egress::{Egress, EgressConfig, FetchError, FetchRequest, FetchStatus, Validators};
use steward_testkit::{DocumentHost, TestCa, TestNameserver, TestResponse};
use url::Url;

const DOC: &str = r#"{"client_id":"https://cimd.test/doc","client_name":"Test"}"#;
const NAMES: &[&str] = &["cimd.test", "rebind.test", "mixed.test", "127.0.0.2"];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

struct Env {
    ca: TestCa,
    host: DocumentHost,
    ns: TestNameserver,
}

impl Env {
    async fn start() -> Env {
        let ca = TestCa::new();
        let host = DocumentHost::start(ip("127.0.0.2"), &ca, NAMES).await;
        let ns = TestNameserver::start(ip("127.0.0.1")).await;
        ns.set("cimd.test", vec![ip("127.0.0.2")]);
        Env { ca, host, ns }
    }

    fn config(&self) -> EgressConfig {
        EgressConfig {
            allow_networks: vec!["127.0.0.2/32".parse().unwrap()],
            extra_root_certs_pem: vec![self.ca.cert_pem().into_bytes()],
            dns_servers: vec![self.ns.addr()],
            ..EgressConfig::default()
        }
    }

    fn egress(&self) -> Egress {
        Egress::new(self.config()).unwrap()
    }

    fn url(&self, host: &str, path: &str) -> Url {
        Url::parse(&self.host.url(host, path)).unwrap()
    }
}

async fn fetch_err(egress: &Egress, request: FetchRequest) -> FetchError {
    match egress.fetch(&request).await {
        Ok(response) => panic!("expected an error, got {:?} for {}", response.status, request.url),
        Err(e) => e,
    }
}

#[tokio::test]
async fn fetches_a_document_through_own_dns_and_pinned_tls() {
    let env = Env::start().await;
    env.host.set(
        "/doc",
        TestResponse::json(DOC)
            .with_header("cache-control", "max-age=300")
            .with_header("etag", "\"v1\"")
            .with_header("last-modified", "Sat, 21 Nov 2026 10:00:00 GMT"),
    );
    let response = env
        .egress()
        .fetch(&FetchRequest::metadata_document(env.url("cimd.test", "/doc")))
        .await
        .unwrap();
    assert_eq!(response.status, FetchStatus::Ok);
    assert_eq!(&response.body[..], DOC.as_bytes());
    assert_eq!(response.content_type.as_deref(), Some("application/json"));
    assert_eq!(response.peer, env.host.addr());
    assert_eq!(response.cache.cache_control.as_deref(), Some("max-age=300"));
    assert_eq!(response.cache.etag.as_deref(), Some("\"v1\""));
    assert_eq!(
        response.cache.last_modified.as_deref(),
        Some("Sat, 21 Nov 2026 10:00:00 GMT")
    );
    assert!(env.ns.queries("cimd.test") >= 1);
}

#[tokio::test]
async fn sends_only_the_expected_headers() {
    let env = Env::start().await;
    env.host.set("/doc", TestResponse::json(DOC));
    env.egress()
        .fetch(&FetchRequest::metadata_document(env.url("cimd.test", "/doc")))
        .await
        .unwrap();
    let headers = env.host.last_request_headers("/doc").unwrap();
    assert_eq!(headers["accept"], "application/cimd+json, application/json;q=0.9");
    assert_eq!(headers["accept-encoding"], "identity");
    assert_eq!(
        headers["host"],
        format!("cimd.test:{}", env.host.addr().port()).as_str()
    );
    let ua = headers["user-agent"].to_str().unwrap();
    assert!(ua.starts_with("Steward/"), "{ua}");
    for absent in [
        "cookie",
        "authorization",
        "if-none-match",
        "if-modified-since",
        "x-forwarded-for",
        "referer",
    ] {
        assert!(!headers.contains_key(absent), "{absent} must not be sent");
    }
    let mut names: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["accept", "accept-encoding", "host", "user-agent"]);
}

#[tokio::test]
async fn loopback_literals_in_every_spelling_are_refused_without_connecting() {
    let env = Env::start().await;
    // A victim on 127.0.0.1; the attacker's URLs all point at its port.
    let victim = DocumentHost::start(ip("127.0.0.1"), &env.ca, &["localhost", "127.0.0.1"]).await;
    victim.set("/admin", TestResponse::json(DOC));
    let port = victim.addr().port();
    let egress = env.egress();
    for host in [
        "127.0.0.1",
        "localhost",
        "LocalHost.",
        "app.localhost",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "2130706433",
        "0x7f.1",
        "017700000001",
        "127.1",
    ] {
        let url = Url::parse(&format!("https://{host}:{port}/admin")).unwrap();
        match fetch_err(&egress, FetchRequest::json(url)).await {
            FetchError::BlockedAddress { ip, range } => {
                assert!(
                    ip.is_loopback() || range == "IPv4-mapped" || range == "loopback",
                    "{host}: {ip} {range}"
                );
            }
            other => panic!("{host}: expected BlockedAddress, got {other:?}"),
        }
    }
    assert_eq!(victim.connections(), 0, "nothing may reach the victim");
    assert_eq!(env.ns.queries("localhost"), 0, "localhost is never asked of DNS");
}

#[tokio::test]
async fn allowed_ip_literal_is_fetched_and_tls_checks_the_ip_san() {
    let env = Env::start().await;
    env.host.set("/doc", TestResponse::json(DOC));
    let response = env
        .egress()
        .fetch(&FetchRequest::json(env.url("127.0.0.2", "/doc")))
        .await
        .unwrap();
    assert_eq!(&response.body[..], DOC.as_bytes());
}

#[tokio::test]
async fn dns_rebinding_to_loopback_is_refused_and_never_connects() {
    let env = Env::start().await;
    // The "internal" service listens on 127.0.0.1 at the same port as the public host.
    let mut internal = None;
    let mut public = None;
    for _ in 0..20 {
        let candidate = DocumentHost::start(ip("127.0.0.2"), &env.ca, NAMES).await;
        let same_port = SocketAddr::new(ip("127.0.0.1"), candidate.addr().port());
        if let Ok(host) = DocumentHost::try_start_at(same_port, &env.ca, NAMES).await {
            internal = Some(host);
            public = Some(candidate);
            break;
        }
    }
    let (internal, public) = (internal.unwrap(), public.unwrap());
    public.set("/doc", TestResponse::json(DOC));
    internal.set("/doc", TestResponse::json(r#"{"secret":true}"#));
    env.ns
        .set_sequence("rebind.test", vec![vec![ip("127.0.0.2")], vec![ip("127.0.0.1")]]);

    let egress = env.egress();
    let url = Url::parse(&public.url("rebind.test", "/doc")).unwrap();
    let first = egress.fetch(&FetchRequest::json(url.clone())).await.unwrap();
    assert_eq!(&first.body[..], DOC.as_bytes());
    match fetch_err(&egress, FetchRequest::json(url)).await {
        FetchError::BlockedAddress { ip: blocked, range } => {
            assert_eq!(blocked, ip("127.0.0.1"));
            assert_eq!(range, "loopback");
        }
        other => panic!("expected BlockedAddress, got {other:?}"),
    }
    assert_eq!(public.hits("/doc"), 1);
    assert_eq!(
        internal.connections(),
        0,
        "the rebinding target must never see a connection"
    );
}

#[tokio::test]
async fn one_forbidden_answer_refuses_the_whole_name() {
    let env = Env::start().await;
    env.host.set("/doc", TestResponse::json(DOC));
    let egress = env.egress();
    for forbidden in ["10.0.0.1", "::1", "169.254.169.254", "fd00::1"] {
        env.ns.set("mixed.test", vec![ip("127.0.0.2"), ip(forbidden)]);
        match fetch_err(&egress, FetchRequest::json(env.url("mixed.test", "/doc"))).await {
            FetchError::BlockedAddress { ip: blocked, .. } => assert_eq!(blocked, ip(forbidden)),
            other => panic!("{forbidden}: expected BlockedAddress, got {other:?}"),
        }
    }
    assert_eq!(env.host.hits("/doc"), 0);
    assert_eq!(env.host.connections(), 0);
}

#[tokio::test]
async fn unknown_names_have_no_addresses() {
    let env = Env::start().await;
    let err = fetch_err(&env.egress(), FetchRequest::json(env.url("nowhere.test", "/doc"))).await;
    assert!(matches!(err, FetchError::NoAddresses), "{err:?}");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn a_dead_nameserver_is_a_transient_dns_failure() {
    let env = Env::start().await;
    // A UDP port nobody answers on: bind and drop to get a free one.
    let dead = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = EgressConfig {
        dns_servers: vec![dead],
        timeout: Duration::from_millis(1000),
        ..env.config()
    };
    let err = fetch_err(
        &Egress::new(config).unwrap(),
        FetchRequest::json(env.url("cimd.test", "/doc")),
    )
    .await;
    assert!(matches!(err, FetchError::DnsFailure(_)), "{err:?}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn redirects_are_errors_and_never_followed() {
    let env = Env::start().await;
    let egress = env.egress();
    for status in [301u16, 302, 303, 307, 308] {
        let target = env.host.url("cimd.test", "/target");
        env.host.set(
            "/doc",
            TestResponse::redirect(status, &target).with_header("content-type", "application/json"),
        );
        match fetch_err(&egress, FetchRequest::json(env.url("cimd.test", "/doc"))).await {
            FetchError::Redirect { status: got } => assert_eq!(got, status),
            other => panic!("{status}: expected Redirect, got {other:?}"),
        }
    }
    assert_eq!(env.host.hits("/doc"), 5);
    assert_eq!(env.host.hits("/target"), 0);
}

#[tokio::test]
async fn a_redirect_to_a_loopback_victim_is_refused_and_the_victim_never_connected() {
    let env = Env::start().await;
    let victim = DocumentHost::start(ip("127.0.0.1"), &env.ca, &["127.0.0.1", "internal.test"]).await;
    victim.set("/admin", TestResponse::json(DOC));
    // A name that resolves to the victim: refused too, and never even looked up.
    env.ns.set("internal.test", vec![ip("127.0.0.1")]);
    let egress = env.egress();
    let targets = [
        victim.url("127.0.0.1", "/admin"),
        victim.url("internal.test", "/admin"),
        format!("https://[::ffff:127.0.0.1]:{}/admin", victim.addr().port()),
    ];
    for (n, location) in targets.iter().enumerate() {
        let path = format!("/hop{n}");
        env.host.set(&path, TestResponse::redirect(302, location));
        match fetch_err(
            &egress,
            FetchRequest::metadata_document(env.url("cimd.test", &path)),
        )
        .await
        {
            FetchError::Redirect { status } => assert_eq!(status, 302),
            other => panic!("{location}: expected Redirect, got {other:?}"),
        }
        assert_eq!(env.host.hits(&path), 1);
    }
    assert_eq!(
        victim.connections(),
        0,
        "the redirect target must never see a connection"
    );
    assert_eq!(victim.hits("/admin"), 0);
    assert_eq!(
        env.ns.queries("internal.test"),
        0,
        "the redirect target is never resolved"
    );
}

#[tokio::test]
async fn every_fetch_opens_its_own_connection() {
    let env = Env::start().await;
    env.host.set(
        "/doc",
        TestResponse::json(DOC).with_header("connection", "keep-alive"),
    );
    env.ns.set("rebind.test", vec![ip("127.0.0.2")]);
    let egress = env.egress();
    let request = FetchRequest::metadata_document(env.url("cimd.test", "/doc"));
    for n in 1..=3 {
        egress.fetch(&request).await.unwrap();
        assert_eq!(env.host.connections(), n, "no connection is reused");
    }
    // Another name for the same address does not share one either.
    egress
        .fetch(&FetchRequest::metadata_document(env.url("rebind.test", "/doc")))
        .await
        .unwrap();
    assert_eq!(env.host.connections(), 4);
    assert_eq!(env.host.hits("/doc"), 4);
}

#[tokio::test]
async fn fetch_outcomes_are_counted_by_reason() {
    let counters = steward_testkit::CountingRecorder::default();
    let _local = metrics::set_default_local_recorder(&counters);
    let env = Env::start().await;
    let egress = env.egress();
    env.host.set("/doc", TestResponse::json(DOC));
    env.host
        .set("/moved", TestResponse::redirect(301, "https://cimd.test/doc"));
    egress
        .fetch(&FetchRequest::metadata_document(env.url("cimd.test", "/doc")))
        .await
        .unwrap();
    for path in ["/missing", "/moved", "/moved"] {
        fetch_err(
            &egress,
            FetchRequest::metadata_document(env.url("cimd.test", path)),
        )
        .await;
    }
    let url = Url::parse(&format!("https://127.0.0.1:{}/", env.host.addr().port())).unwrap();
    fetch_err(&egress, FetchRequest::json(url)).await;
    assert_eq!(counters.get("steward_egress_fetch_total", "outcome=ok"), 1);
    assert_eq!(
        counters.get("steward_egress_fetch_total", "outcome=bad_status"),
        1
    );
    assert_eq!(counters.get("steward_egress_fetch_total", "outcome=redirect"), 2);
    assert_eq!(
        counters.get("steward_egress_fetch_total", "outcome=blocked_address"),
        1
    );
}

#[tokio::test]
async fn body_cap_is_enforced_by_content_length_and_while_streaming() {
    let env = Env::start().await;
    let egress = env.egress();
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(6000));

    env.host.set("/announced", TestResponse::json(big.clone()));
    let err = fetch_err(&egress, FetchRequest::json(env.url("cimd.test", "/announced"))).await;
    assert!(matches!(err, FetchError::TooLarge { limit: 5120 }), "{err:?}");

    env.host
        .set("/chunked", TestResponse::json(big.clone()).drip(Duration::ZERO));
    let err = fetch_err(&egress, FetchRequest::json(env.url("cimd.test", "/chunked"))).await;
    assert!(matches!(err, FetchError::TooLarge { limit: 5120 }), "{err:?}");

    // An announced length over the cap is refused before reading: the body
    // below would take a minute to drip, far past the deadline.
    let slow_big = TestResponse::json(big.clone())
        .with_header("content-length", big.len().to_string())
        .drip(Duration::from_millis(10));
    env.host.set("/announced-slow", slow_big);
    let started = Instant::now();
    let err = fetch_err(
        &egress,
        FetchRequest::json(env.url("cimd.test", "/announced-slow")),
    )
    .await;
    assert!(matches!(err, FetchError::TooLarge { limit: 5120 }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));

    // Exactly at the cap is fine; a per-request override raises it.
    let exact = format!("\"{}\"", "y".repeat(5118));
    env.host
        .set("/exact", TestResponse::json(exact.clone()).drip(Duration::ZERO));
    assert_eq!(
        egress
            .fetch(&FetchRequest::json(env.url("cimd.test", "/exact")))
            .await
            .unwrap()
            .body
            .len(),
        5120
    );
    let raised = FetchRequest::json(env.url("cimd.test", "/chunked")).with_max_bytes(10_000);
    assert_eq!(egress.fetch(&raised).await.unwrap().body.len(), big.len());
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let env = Env::start().await;
    env.host.set(
        "/doc",
        TestResponse::json(DOC).with_header("x-padding", "p".repeat(20_000)),
    );
    let err = fetch_err(&env.egress(), FetchRequest::json(env.url("cimd.test", "/doc"))).await;
    assert!(matches!(err, FetchError::HeadersTooLarge), "{err:?}");
}

#[tokio::test]
async fn one_deadline_covers_slow_headers_and_slow_bodies() {
    let env = Env::start().await;
    let config = EgressConfig {
        timeout: Duration::from_millis(400),
        ..env.config()
    };
    let egress = Egress::new(config).unwrap();

    // Each byte arrives well within any per-read timeout, but the total is too slow.
    env.host
        .set("/drip", TestResponse::json(DOC).drip(Duration::from_millis(30)));
    let started = Instant::now();
    let err = fetch_err(&egress, FetchRequest::json(env.url("cimd.test", "/drip"))).await;
    assert!(matches!(err, FetchError::Timeout), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert!(err.is_transient());

    env.host
        .set("/late", TestResponse::json(DOC).delay(Duration::from_secs(5)));
    let started = Instant::now();
    let err = fetch_err(&egress, FetchRequest::json(env.url("cimd.test", "/late"))).await;
    assert!(matches!(err, FetchError::Timeout), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(1500));
}

#[tokio::test]
async fn compressed_bodies_are_refused() {
    let env = Env::start().await;
    env.host.set(
        "/doc",
        TestResponse::json(vec![0x1f, 0x8b, 0x08, 0x00]).with_header("content-encoding", "gzip"),
    );
    let err = fetch_err(&env.egress(), FetchRequest::json(env.url("cimd.test", "/doc"))).await;
    assert!(matches!(err, FetchError::Compressed), "{err:?}");
}

#[tokio::test]
async fn content_type_must_match_the_expectation() {
    let env = Env::start().await;
    let egress = env.egress();
    env.host.set(
        "/html",
        TestResponse::new(200)
            .with_header("content-type", "text/html")
            .with_body("<p>"),
    );
    let err = fetch_err(&egress, FetchRequest::json(env.url("cimd.test", "/html"))).await;
    assert!(
        matches!(&err, FetchError::BadContentType { content_type: Some(ct) } if ct == "text/html"),
        "{err:?}"
    );

    env.host.set("/none", TestResponse::new(200).with_body(DOC));
    let err = fetch_err(&egress, FetchRequest::json(env.url("cimd.test", "/none"))).await;
    assert!(
        matches!(err, FetchError::BadContentType { content_type: None }),
        "{err:?}"
    );

    env.host.set(
        "/cimd",
        TestResponse::new(200)
            .with_header("content-type", "application/cimd+json")
            .with_body(DOC),
    );
    assert!(
        egress
            .fetch(&FetchRequest::metadata_document(env.url("cimd.test", "/cimd")))
            .await
            .is_ok()
    );

    env.host.set(
        "/logo.svg",
        TestResponse::new(200)
            .with_header("content-type", "image/svg+xml")
            .with_body("<svg/>"),
    );
    let err = fetch_err(&egress, FetchRequest::image(env.url("cimd.test", "/logo.svg"))).await;
    assert!(matches!(err, FetchError::BadContentType { .. }), "{err:?}");

    env.host.set(
        "/logo.png",
        TestResponse::new(200)
            .with_header("content-type", "image/png")
            .with_body(vec![0x89, b'P']),
    );
    assert!(
        egress
            .fetch(&FetchRequest::image(env.url("cimd.test", "/logo.png")))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn only_200_counts() {
    let env = Env::start().await;
    let egress = env.egress();
    let err = fetch_err(&egress, FetchRequest::json(env.url("cimd.test", "/missing"))).await;
    assert!(matches!(err, FetchError::BadStatus { status: 404 }), "{err:?}");
    assert!(!err.is_transient());
    for status in [201u16, 203, 204, 500, 503] {
        env.host.set("/doc", TestResponse::json(DOC).status(status));
        let err = fetch_err(&egress, FetchRequest::json(env.url("cimd.test", "/doc"))).await;
        assert!(
            matches!(err, FetchError::BadStatus { status: s } if s == status),
            "{err:?}"
        );
        assert_eq!(err.is_transient(), status >= 500, "{status}");
    }
}

#[tokio::test]
async fn only_https_is_fetched() {
    let env = Env::start().await;
    env.host.set("/doc", TestResponse::json(DOC));
    let url = Url::parse(&format!("http://cimd.test:{}/doc", env.host.addr().port())).unwrap();
    let err = fetch_err(&env.egress(), FetchRequest::json(url)).await;
    assert!(matches!(err, FetchError::NotHttps), "{err:?}");
    assert_eq!(env.ns.queries("cimd.test"), 0, "refused before any DNS query");
    assert_eq!(env.host.connections(), 0);
}

#[tokio::test]
async fn tls_verifies_the_host_name_and_the_trust_anchor() {
    let env = Env::start().await;
    env.host.set("/doc", TestResponse::json(DOC));
    env.ns.set("other.test", vec![ip("127.0.0.2")]);
    let err = fetch_err(&env.egress(), FetchRequest::json(env.url("other.test", "/doc"))).await;
    assert!(matches!(err, FetchError::Tls(_)), "{err:?}");

    let untrusting = Egress::new(EgressConfig {
        extra_root_certs_pem: Vec::new(),
        ..env.config()
    })
    .unwrap();
    let err = fetch_err(&untrusting, FetchRequest::json(env.url("cimd.test", "/doc"))).await;
    assert!(matches!(err, FetchError::Tls(_)), "{err:?}");
    assert_eq!(env.host.hits("/doc"), 0);
}

#[tokio::test]
async fn per_host_rate_limit_refuses_excess_fetches() {
    let env = Env::start().await;
    env.host.set("/doc", TestResponse::json(DOC));
    env.ns.set("rebind.test", vec![ip("127.0.0.2")]);
    let egress = Egress::new(EgressConfig {
        per_host_per_minute: 2,
        ..env.config()
    })
    .unwrap();
    let request = FetchRequest::json(env.url("cimd.test", "/doc"));
    egress.fetch(&request).await.unwrap();
    egress.fetch(&request).await.unwrap();
    let err = fetch_err(&egress, request.clone()).await;
    assert!(matches!(err, FetchError::RateLimited), "{err:?}");
    assert_eq!(env.host.hits("/doc"), 2, "the refused fetch never left");
    // Other hosts keep their own budget.
    egress
        .fetch(&FetchRequest::json(env.url("rebind.test", "/doc")))
        .await
        .unwrap();
}

#[tokio::test]
async fn per_host_concurrency_limit_refuses_while_slow_fetches_are_in_flight() {
    let env = Env::start().await;
    env.host
        .set("/slow", TestResponse::json(DOC).delay(Duration::from_millis(300)));
    let egress = Egress::new(EgressConfig {
        per_host_concurrency: 1,
        ..env.config()
    })
    .unwrap();
    let slow = FetchRequest::json(env.url("cimd.test", "/slow"));
    let background = {
        let egress = egress.clone();
        let slow = slow.clone();
        tokio::spawn(async move { egress.fetch(&slow).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = fetch_err(&egress, slow.clone()).await;
    assert!(matches!(err, FetchError::RateLimited), "{err:?}");
    background.await.unwrap().unwrap();
    // The slot is released once the slow fetch finishes.
    egress.fetch(&slow).await.unwrap();
}

#[tokio::test]
async fn last_modified_alone_is_sent_as_if_modified_since() {
    let env = Env::start().await;
    // The host answers 304 to anything: only a conditional request may accept it.
    env.host.set(
        "/doc",
        TestResponse::new(304).with_header("last-modified", "Sat, 21 Nov 2026 10:00:00 GMT"),
    );
    let validators = Validators {
        etag: None,
        last_modified: Some("Sat, 21 Nov 2026 10:00:00 GMT".into()),
    };
    let request = FetchRequest::metadata_document(env.url("cimd.test", "/doc")).with_validators(validators);
    let response = env.egress().fetch(&request).await.unwrap();
    assert_eq!(response.status, FetchStatus::NotModified);
    assert_eq!(
        response.cache.last_modified.as_deref(),
        Some("Sat, 21 Nov 2026 10:00:00 GMT")
    );
    let headers = env.host.last_request_headers("/doc").unwrap();
    assert_eq!(headers["if-modified-since"], "Sat, 21 Nov 2026 10:00:00 GMT");
    assert!(!headers.contains_key("if-none-match"));
}

#[tokio::test]
async fn conditional_requests_return_not_modified() {
    let env = Env::start().await;
    env.host.set(
        "/doc",
        TestResponse::json(DOC)
            .with_header("etag", "\"v1\"")
            .with_header("cache-control", "max-age=60"),
    );
    let egress = env.egress();
    let validators = Validators {
        etag: Some("\"v1\"".into()),
        last_modified: Some("Sat, 21 Nov 2026 10:00:00 GMT".into()),
    };
    let request = FetchRequest::metadata_document(env.url("cimd.test", "/doc")).with_validators(validators);
    let response = egress.fetch(&request).await.unwrap();
    assert_eq!(response.status, FetchStatus::NotModified);
    assert!(response.body.is_empty());
    assert_eq!(response.cache.etag.as_deref(), Some("\"v1\""));
    let headers = env.host.last_request_headers("/doc").unwrap();
    assert_eq!(headers["if-none-match"], "\"v1\"");
    assert_eq!(headers["if-modified-since"], "Sat, 21 Nov 2026 10:00:00 GMT");

    // A stale validator gets the full document.
    let stale = Validators {
        etag: Some("\"v0\"".into()),
        last_modified: None,
    };
    let request = FetchRequest::metadata_document(env.url("cimd.test", "/doc")).with_validators(stale);
    assert_eq!(egress.fetch(&request).await.unwrap().status, FetchStatus::Ok);

    // A 304 nobody asked for is not success.
    env.host.set("/unasked", TestResponse::new(304));
    let err = fetch_err(&egress, FetchRequest::json(env.url("cimd.test", "/unasked"))).await;
    assert!(matches!(err, FetchError::BadStatus { status: 304 }), "{err:?}");
}

#[test]
fn egress_is_clone_send_sync_and_validates_config() {
    fn assert_traits<T: Clone + Send + Sync + 'static>() {}
    assert_traits::<Egress>();
    let zero = EgressConfig {
        per_host_concurrency: 0,
        dns_servers: vec!["127.0.0.1:53".parse().unwrap()],
        ..EgressConfig::default()
    };
    assert!(Egress::new(zero).is_err());
    let bad_pem = EgressConfig {
        extra_root_certs_pem: vec![b"garbage".to_vec()],
        dns_servers: vec!["127.0.0.1:53".parse().unwrap()],
        ..EgressConfig::default()
    };
    assert!(Egress::new(bad_pem).is_err());
    // Construction needs no runtime and sends nothing.
    let ok = EgressConfig {
        dns_servers: vec!["127.0.0.1:53".parse().unwrap()],
        ..EgressConfig::default()
    };
    assert!(Egress::new(ok).is_ok());
}
