//! `steward cimd check URL` as a process, against a local HTTPS document host
//! on 127.0.0.2 named `cimd.test` by a loopback nameserver. The binary is
//! configured the way an operator would: a TOML file for the test CA and the
//! nameserver, and a `STEWARD_EGRESS__…` variable allowing 127.0.0.2.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;
use std::process::{Command, Output};
use steward_testkit::{DocumentHost, TestCa, TestNameserver, TestResponse};

struct Env {
    _ca: TestCa,
    host: DocumentHost,
    _ns: TestNameserver,
    dir: tempfile::TempDir,
}

async fn env() -> Env {
    let ca = TestCa::new();
    let host = DocumentHost::start("127.0.0.2".parse::<IpAddr>().unwrap(), &ca, &["cimd.test"]).await;
    let ns = TestNameserver::start("127.0.0.1".parse::<IpAddr>().unwrap()).await;
    ns.set("cimd.test", vec!["127.0.0.2".parse().unwrap()]);
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.cert_pem()).unwrap();
    let toml = format!(
        "[egress]\nextra_root_certs = [{:?}]\ndns_servers = [\"{}\"]\n",
        ca_path.display().to_string(),
        ns.addr()
    );
    std::fs::write(dir.path().join("steward.toml"), toml).unwrap();
    Env {
        _ca: ca,
        host,
        _ns: ns,
        dir,
    }
}

/// Runs `steward cimd check url` off the runtime, so the document host and
/// nameserver keep answering while the child waits on them.
async fn run_check(env: &Env, url: &str, allow_loopback_host: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_steward"));
    cmd.current_dir(env.dir.path())
        .arg("--config")
        .arg(env.dir.path().join("steward.toml"))
        .args(["cimd", "check", url])
        .env_remove("STEWARD_CONFIG");
    if allow_loopback_host {
        cmd.env("STEWARD_EGRESS__ALLOW_NETWORKS", "[\"127.0.0.2/32\"]");
    } else {
        cmd.env_remove("STEWARD_EGRESS__ALLOW_NETWORKS");
    }
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_document_gets_a_clear_ok_verdict() {
    let env = env().await;
    let url = env.host.url("cimd.test", "/client.json");
    let doc = serde_json::json!({
        "client_id": url,
        "client_name": "Good Client",
        "redirect_uris": ["https://app.example/cb"],
    });
    env.host.set(
        "/client.json",
        TestResponse::json(doc.to_string()).with_header("cache-control", "max-age=600"),
    );
    let out = run_check(&env, &url, true).await;
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = text.lines().next().unwrap();
    assert_eq!(first, format!("OK: {url} is a valid Client ID Metadata Document"));
    assert!(
        !text.lines().any(|l| l.starts_with("- ")),
        "no problems listed: {text}"
    );
    assert_eq!(env.host.hits("/client.json"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_document_gets_one_line_per_problem() {
    let env = env().await;
    let url = env.host.url("cimd.test", "/bad.json");
    let doc = serde_json::json!({
        "client_id": "https://someone-else.example/client.json",
        "client_secret": "s3cret",
        "redirect_uris": ["http://evil.example/cb"],
    });
    env.host.set("/bad.json", TestResponse::json(doc.to_string()));
    let out = run_check(&env, &url, true).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with(&format!(
            "INVALID: {url} is not a valid Client ID Metadata Document ("
        )),
        "{text}"
    );
    let problems: Vec<&str> = lines.iter().copied().filter(|l| l.starts_with("- ")).collect();
    assert!(problems.len() >= 4, "one line per problem: {text}");
    assert!(
        lines[0].contains(&format!("({} problems)", problems.len())),
        "the verdict counts the lines: {text}"
    );
    for rule in [
        "client_id_mismatch",
        "client_name_required",
        "forbidden_member",
        "invalid_redirect_uri",
    ] {
        assert_eq!(
            problems.iter().filter(|l| l.contains(rule)).count(),
            1,
            "{rule} on exactly one line: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_allow_list_the_loopback_host_is_refused_unfetched() {
    let env = env().await;
    let url = env.host.url("cimd.test", "/client.json");
    env.host.set("/client.json", TestResponse::json("{}"));
    let out = run_check(&env, &url, false).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.starts_with("INVALID: "), "{text}");
    assert!(text.contains("blocked_address"), "{text}");
    assert!(
        text.contains("fetching from cimd.test: "),
        "the problem names the host: {text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("hint: cimd.test ") && l.contains("egress.allow_networks")),
        "the hint names the host and the setting that would change the outcome: {text}"
    );
    assert_eq!(env.host.connections(), 0);
}

/// Issue 11 item 4: a document whose redirect URIs Steward partly will not
/// use is OK, and the checker names each dropped entry and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_redirect_uris_are_reported_one_line_each() {
    let env = env().await;
    let url = env.host.url("cimd.test", "/inspector.json");
    let doc = serde_json::json!({
        "client_id": url,
        "client_name": "MCP Inspector",
        "redirect_uris": [
            "cursor://anysphere.cursor-retrieval/cb",
            "com.example.inspector:/cb",
            "http://localhost:6274/oauth/callback",
        ],
    });
    env.host.set(
        "/inspector.json",
        TestResponse::json(doc.to_string()).with_header("cache-control", "max-age=600"),
    );
    let out = run_check(&env, &url, true).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.starts_with(&format!("OK: {url} ")), "{text}");
    let dropped: Vec<&str> = text.lines().filter(|l| l.contains("is not used")).collect();
    assert_eq!(dropped.len(), 2, "{text}");
    assert!(
        dropped[0].contains("entry 0 (\"cursor://anysphere.cursor-retrieval/cb\")"),
        "{text}"
    );
    assert!(
        dropped[1].contains("entry 1 (\"com.example.inspector:/cb\")"),
        "{text}"
    );
    assert!(dropped.iter().all(|l| l.contains("private-use")), "{text}");
}
