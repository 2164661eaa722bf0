//! Proxy environment variables are ignored: egress connects only to the
//! addresses it vetted itself, never to an `HTTPS_PROXY` / `ALL_PROXY`.
//!
//! Environment variables are process-global (and setting them is `unsafe`
//! in this edition), so the test runs the fetch in a child process — this
//! same test binary, re-executed with the proxy variables set and only the
//! `child_` test selected — while the parent holds the "proxy" listener and
//! afterwards counts every connection the kernel queued for it. All traffic
//! stays on 127.0.0.0/8.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, TcpListener};
use std::process::Command;

use steward_egress::{Egress, EgressConfig, FetchError, FetchRequest};
use steward_testkit::{DocumentHost, TestCa, TestNameserver, TestResponse};
use url::Url;

const CHILD_MARKER: &str = "STEWARD_EGRESS_PROXY_ENV_CHILD";
const PROXY_VARS: &[&str] = &[
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "HTTP_PROXY",
    "http_proxy",
];

#[test]
fn proxy_environment_variables_are_ignored() {
    let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
    proxy.set_nonblocking(true).unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let mut child = Command::new(std::env::current_exe().unwrap());
    child
        .args([
            "--exact",
            "child_fetches_directly_despite_proxy_variables",
            "--include-ignored",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD_MARKER, "1")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy");
    for var in PROXY_VARS {
        child.env(var, &proxy_url);
    }
    let output = child.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("1 passed"),
        "the child test did not run:\n{stdout}"
    );
    // Every connection attempt completes in the listen backlog even though
    // nobody accepted it, so an empty backlog means the proxy was never contacted.
    let mut contacted = 0;
    while proxy.accept().is_ok() {
        contacted += 1;
    }
    assert_eq!(contacted, 0, "the proxy from the environment was contacted");
}

/// Runs only inside [`proxy_environment_variables_are_ignored`]'s child.
#[tokio::test]
#[ignore = "run by proxy_environment_variables_are_ignored in a child process"]
async fn child_fetches_directly_despite_proxy_variables() {
    if std::env::var_os(CHILD_MARKER).is_none() {
        return;
    }
    for var in PROXY_VARS {
        assert!(std::env::var_os(var).is_some(), "{var} is set for the child");
    }
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let ca = TestCa::new();
    let host = DocumentHost::start(ip("127.0.0.2"), &ca, &["cimd.test"]).await;
    let ns = TestNameserver::start(ip("127.0.0.1")).await;
    ns.set("cimd.test", vec![ip("127.0.0.2")]);
    host.set("/doc", TestResponse::json(r#"{"ok":true}"#));
    let egress = Egress::new(EgressConfig {
        allow_networks: vec!["127.0.0.2/32".parse().unwrap()],
        extra_root_certs_pem: vec![ca.cert_pem().into_bytes()],
        dns_servers: vec![ns.addr()],
        ..EgressConfig::default()
    })
    .unwrap();
    let url = Url::parse(&host.url("cimd.test", "/doc")).unwrap();
    let response = egress.fetch(&FetchRequest::metadata_document(url)).await.unwrap();
    assert_eq!(
        response.peer,
        host.addr(),
        "connected to the vetted address itself"
    );
    assert_eq!(host.hits("/doc"), 1);
    // A name nobody can resolve fails as such; a proxy would have been asked instead.
    let unknown = Url::parse(&host.url("nowhere.test", "/doc")).unwrap();
    let err = egress.fetch(&FetchRequest::json(unknown)).await.unwrap_err();
    assert!(matches!(err, FetchError::NoAddresses), "{err:?}");
}
