//! CI smoke run of the load driver: every scenario, a handful of operations
//! each, against an in-process Steward on loopback (SQLite in a temporary
//! directory, the metadata document served by the testkit on 127.0.0.2).
//! It asserts that every operation succeeded and nothing about timing:
//! benchmarks are not timed tests. It exists so the driver cannot rot
//! silently as the endpoints change.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use steward_core::{Clock, SystemClock};
use steward_loadgen::http::Endpoint;
use steward_loadgen::{Clients, Load, Scenario, Target, run};
use steward_server::oauth::{client_auth, users};
use steward_server::settings::{ClientSettings, ResourceSettings, Settings};
use steward_testkit::{DocumentHost, TestCa, TestNameserver, TestResponse};

const KEK: [u8; 32] = [9; 32];
const SECRET: &str = "smoke-secret-0123456789abcdef";
const REDIRECT: &str = "https://app.example/cb";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_without_errors() {
    let ca = TestCa::new();
    let host = DocumentHost::start("127.0.0.2".parse::<IpAddr>().unwrap(), &ca, &["cimd.test"]).await;
    let ns = TestNameserver::start("127.0.0.1".parse::<IpAddr>().unwrap()).await;
    ns.set("cimd.test", vec!["127.0.0.2".parse().unwrap()]);
    let cimd_id = host.url("cimd.test", "/client.json");
    let doc = serde_json::json!({
        "client_id": cimd_id, "client_name": "Smoke", "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
    });
    host.set(
        "/client.json",
        TestResponse::json(doc.to_string()).with_header("cache-control", "max-age=3600"),
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).unwrap();
    std::fs::write(
        dir.path().join("kek"),
        base64::engine::general_purpose::STANDARD.encode(KEK) + "\n",
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path().join("kek"), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut s = Settings {
        listen: format!("127.0.0.1:{port}").parse().unwrap(),
        ..Settings::default()
    };
    s.database.url = format!("sqlite://{}/steward.db", dir.path().display());
    s.keys.encryption_key_file = dir.path().join("kek");
    s.egress.allow_networks = vec!["127.0.0.2/32".parse().unwrap()];
    s.egress.extra_root_certs = vec![dir.path().join("ca.pem")];
    s.egress.dns_servers = vec![ns.addr()];
    s.dev.auto_approve_user = Some("alice".to_owned());
    // As the bench does for its register scenario: the anti-sprawl limits
    // would otherwise answer 429 after 20 registrations a minute.
    s.dcr.rate_limit.per_address_per_minute = 1_000_000;
    s.dcr.rate_limit.global_per_minute = 1_000_000;
    s.resources = vec![ResourceSettings {
        uri: "https://mcp.example.com/mcp".to_owned(),
        name: "Smoke MCP".to_owned(),
        scopes: BTreeMap::from([("mcp:tools".to_owned(), "Tools".to_owned())]),
        introspection_clients: vec!["bench".to_owned()],
        ..Default::default()
    }];
    s.default_resource = Some("https://mcp.example.com/mcp".to_owned());
    s.default_scopes = vec!["mcp:tools".to_owned()];
    let key = steward_jose::Kek::from_bytes(KEK).derive_key("steward/client-secret/v1");
    s.clients = vec![
        ClientSettings {
            client_id: "public-app".to_owned(),
            name: None,
            secret_env: None,
            secret_hash: None,
            grant_types: vec!["authorization_code".to_owned(), "refresh_token".to_owned()],
            scopes: vec![],
            redirect_uris: vec![REDIRECT.to_owned()],
            ..Default::default()
        },
        ClientSettings {
            client_id: "bench".to_owned(),
            name: None,
            secret_env: None,
            secret_hash: Some(client_auth::hash_client_secret(&key, SECRET)),
            grant_types: vec!["client_credentials".to_owned()],
            scopes: vec!["mcp:tools".to_owned()],
            redirect_uris: vec![],
            ..Default::default()
        },
    ];
    // The dev auto-approve user must exist before start-up, as with `steward users add`.
    let store = steward_store::connect(&s.database.url).await.unwrap();
    let hash = users::hash_password("smoke-password-0123").unwrap();
    users::create_user(store.as_ref(), "alice", hash, SystemClock.now())
        .await
        .unwrap();
    drop(store);

    let prepared = steward_server::startup::prepare(s, Arc::new(SystemClock))
        .await
        .unwrap();
    let base = format!("http://{}", prepared.summary.listen);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(steward_server::startup::run(prepared, async move {
        let _ = stopped.await;
    }));

    let target = Arc::new(
        Target::new(
            Endpoint::from_url(&base, None).unwrap(),
            Clients {
                confidential_id: "bench".to_owned(),
                confidential_secret: SECRET.to_owned(),
                public_id: "public-app".to_owned(),
                public_redirect: REDIRECT.to_owned(),
                cimd_id: Some(cimd_id),
                cimd_redirect: REDIRECT.to_owned(),
            },
        )
        .unwrap(),
    );
    let load = Load {
        concurrency: 3,
        duration: None,
        count: Some(30),
        rate: None,
        warmup: Duration::ZERO,
    };
    for scenario in Scenario::ALL {
        let r = run(Arc::clone(&target), scenario, &load, Some(std::process::id()))
            .await
            .unwrap();
        assert_eq!(r.errors, 0, "{scenario:?}: {:?}", r.first_error);
        assert_eq!(r.ops, 30, "{scenario:?}");
        assert!(r.server_peak_rss_kib.is_some());
    }
    // A paced run completes too (its latency is measured from the schedule).
    let paced = Load {
        rate: Some(200.0),
        ..load
    };
    let r = run(Arc::clone(&target), Scenario::Metadata, &paced, None)
        .await
        .unwrap();
    assert_eq!(r.errors, 0, "{:?}", r.first_error);
    assert_eq!(r.ops, 30);
    // Only the document's first fetch left this process's loopback fixtures.
    assert_eq!(host.hits("/client.json"), 1);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
