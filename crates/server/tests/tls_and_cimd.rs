//! Steward's own TLS listener, and the metadata-document checker over the
//! admin API against a local HTTPS document host (loopback only).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{TestServer, client, test_settings};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use steward_egress::{Egress, EgressConfig, FetchRequest};
use steward_server::settings::TlsSettings;
use steward_testkit::{DocumentHost, TestCa, TestNameserver, TestResponse};

const ADMIN_TOKEN: &str = "an-admin-token-that-is-long-enough-0123456789";

#[tokio::test]
async fn serves_https_with_its_own_tls_listener() {
    let ca = TestCa::new();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let (cert, key) = ca.leaf_pem(&["127.0.0.1"]);
    std::fs::write(dir.path().join("tls.pem"), cert).unwrap();
    std::fs::write(dir.path().join("tls.key"), key).unwrap();
    let mut settings = test_settings(dir.path());
    settings.tls = Some(TlsSettings {
        cert_file: dir.path().join("tls.pem"),
        key_file: dir.path().join("tls.key"),
    });
    let server = TestServer::start_with(settings, dir).await;
    assert!(server.state.issuer.starts_with("https://127.0.0.1:"));

    // Steward's guarded fetcher as the client: it verifies the chain and the
    // name, and reaches loopback only because this test allows it.
    let egress = Egress::new(EgressConfig {
        allow_networks: vec!["127.0.0.1/32".parse().unwrap()],
        extra_root_certs_pem: vec![ca.cert_pem().into_bytes()],
        max_document_bytes: 64 * 1024,
        ..EgressConfig::default()
    })
    .unwrap();
    let url = format!("https://{}/.well-known/oauth-authorization-server", server.addr);
    let res = egress
        .fetch(&FetchRequest::json(url.parse().unwrap()))
        .await
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&res.body).unwrap();
    assert_eq!(doc["issuer"].as_str().unwrap(), &*server.state.issuer);
    server.stop().await.unwrap();
}

struct DocSetup {
    _ca: TestCa,
    host: DocumentHost,
    _ns: TestNameserver,
    server: TestServer,
}

/// A Steward that trusts the test CA and reaches the document host on
/// 127.0.0.2 (named `cimd.test` by a nameserver on 127.0.0.1).
async fn with_document_host() -> DocSetup {
    let ca = TestCa::new();
    let host = DocumentHost::start("127.0.0.2".parse::<IpAddr>().unwrap(), &ca, &["cimd.test"]).await;
    let ns = TestNameserver::start("127.0.0.1".parse::<IpAddr>().unwrap()).await;
    ns.set("cimd.test", vec!["127.0.0.2".parse().unwrap()]);
    let dir = Arc::new(tempfile::tempdir().unwrap());
    std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).unwrap();
    let mut settings = test_settings(dir.path());
    settings.egress.allow_networks = vec!["127.0.0.2/32".parse().unwrap()];
    settings.egress.extra_root_certs = vec![dir.path().join("ca.pem")];
    settings.egress.dns_servers = vec![ns.addr()];
    settings.admin.token = Some(ADMIN_TOKEN.to_owned());
    let server = TestServer::start_with(settings, dir).await;
    DocSetup {
        _ca: ca,
        host,
        _ns: ns,
        server,
    }
}

async fn admin_check(server: &TestServer, url: &str) -> serde_json::Value {
    let res = client()
        .post(server.url("/admin/cimd/check"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({ "url": url }))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test]
async fn admin_checker_reports_a_good_document_as_good() {
    let s = with_document_host().await;
    let id = s.host.url("cimd.test", "/client.json");
    let doc = serde_json::json!({
        "client_id": id,
        "client_name": "Test Client",
        "redirect_uris": ["http://localhost/callback"],
    });
    s.host.set("/client.json", TestResponse::json(doc.to_string()));
    let report = admin_check(&s.server, &id).await;
    assert_eq!(report["ok"], true, "{report}");
    assert!(report["problems"].as_array().unwrap().is_empty());
    assert!(report["verdict"].as_str().unwrap().starts_with("OK"));
}

#[tokio::test]
async fn admin_checker_explains_every_problem() {
    let s = with_document_host().await;
    let id = s.host.url("cimd.test", "/bad.json");
    let doc = serde_json::json!({
        "client_id": "https://someone-else.example/client.json",
        "client_secret": "s3cret",
        "redirect_uris": ["http://evil.example/cb"],
    });
    s.host.set("/bad.json", TestResponse::json(doc.to_string()));
    let report = admin_check(&s.server, &id).await;
    assert_eq!(report["ok"], false);
    let rules: Vec<&str> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["rule"].as_str().unwrap())
        .collect();
    assert!(rules.len() >= 3, "one line per problem: {rules:?}");
}

#[tokio::test]
async fn admin_checker_refuses_loopback_targets() {
    let s = with_document_host().await;
    let report = admin_check(&s.server, "https://localhost/client.json").await;
    assert_eq!(report["ok"], false);
    assert_eq!(report["problems"][0]["rule"], "blocked_address", "{report}");
}

#[tokio::test]
async fn resolution_records_a_version_and_an_inventory_record() {
    let s = with_document_host().await;
    let id = s.host.url("cimd.test", "/v.json");
    let body = serde_json::json!({
        "client_id": id, "client_name": "Versioned", "redirect_uris": ["https://app.example/cb"],
    });
    s.host.set(
        "/v.json",
        TestResponse::json(body.to_string()).with_header("cache-control", "max-age=600"),
    );
    let client_id = steward_cimd::ClientIdUrl::parse(&id, &steward_cimd::UrlRules::default()).unwrap();
    let resolved = s.server.state.cimd.resolve(&client_id).await.unwrap();
    assert_eq!(resolved.metadata.client_name, "Versioned");
    let record = s
        .server
        .state
        .store
        .get_client(&id)
        .await
        .unwrap()
        .expect("inventory record");
    assert_eq!(record.kind, steward_core::ClientKind::MetadataDocument);
    assert_eq!(record.display_name.as_deref(), Some("Versioned"));
    let versions = s.server.state.store.list_metadata_versions(&id).await.unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(
        versions[0].peer_addr.as_deref(),
        Some(s.host.addr().to_string().as_str())
    );

    // Drift: a changed document is a new version and an audit event.
    let changed = serde_json::json!({
        "client_id": id, "client_name": "Versioned", "redirect_uris": ["https://elsewhere.example/cb"],
    });
    s.host.set("/v.json", TestResponse::json(changed.to_string()));
    s.server.clock.advance(601);
    s.server.state.cimd.resolve(&client_id).await.unwrap();
    assert_eq!(
        s.server
            .state
            .store
            .list_metadata_versions(&id)
            .await
            .unwrap()
            .len(),
        2
    );
    let events = s
        .server
        .state
        .store
        .list_audit(&steward_store::AuditFilter {
            client_id: Some(id.clone()),
            action: Some("client.metadata_changed".to_owned()),
            limit: None,
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert!(events[0].detail.contains("redirect_uris"), "{}", events[0].detail);
}

#[tokio::test]
async fn refused_documents_are_audited_with_their_reason() {
    let s = with_document_host().await;
    let id = s.host.url("cimd.test", "/secret.json");
    let doc = serde_json::json!({
        "client_id": id, "client_name": "Leaky", "redirect_uris": ["https://app.example/cb"],
        "client_secret": "oops",
    });
    s.host.set("/secret.json", TestResponse::json(doc.to_string()));
    let err = steward_server::cimd::resolve_and_audit(&s.server.state, &id)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "forbidden_member", "{err}");
    // A second attempt is answered by the negative cache: counted, not audited again.
    let again = steward_server::cimd::resolve_and_audit(&s.server.state, &id)
        .await
        .unwrap_err();
    assert!(!again.is_transient());
    let events = s
        .server
        .state
        .store
        .list_audit(&steward_store::AuditFilter {
            client_id: Some(id.clone()),
            action: Some("client.metadata_rejected".to_owned()),
            limit: None,
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        events[0].detail.contains("forbidden_member"),
        "{}",
        events[0].detail
    );
}
