//! The example binary, run exactly as the interop harness runs it, against a
//! real Steward started in-process; every socket is on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use steward_core::SystemClock;
use steward_server::settings::{ClientSettings, ResourceSettings, Settings};
use steward_server::startup;

const KEK: [u8; 32] = [9; 32];
const SECRET: &str = "example-test-secret-0123456789abcdef";
const OTHER_RESOURCE: &str = "http://127.0.0.1:1/other";

/// The example process; killed when the test ends, pass or fail.
struct Example {
    child: Child,
    base: String,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary with `--listen 127.0.0.1:0` and waits for its one line.
async fn start_example(issuer: &str) -> Example {
    let mut child = Command::new(env!("CARGO_BIN_EXE_steward-example-mcp-server"))
        .args(["--listen", "127.0.0.1:0", "--issuer", issuer])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufReader::new(stdout).read_line(&mut line).unwrap();
            line
        }),
    )
    .await
    .expect("the example printed its address in time")
    .unwrap();
    let base = line
        .trim_end()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(
        base.starts_with("http://127.0.0.1:") && !base.ends_with(":0"),
        "{base}"
    );
    Example { child, base }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Steward on `listen`, issuing tokens for `resource` to two confidential
/// clients: `svc` (mcp:tools) and `narrow` (mcp:other only).
async fn start_steward(
    dir: &std::path::Path,
    listen: std::net::SocketAddr,
    resource: &str,
) -> tokio::sync::oneshot::Sender<()> {
    std::fs::write(
        dir.join("kek"),
        base64::engine::general_purpose::STANDARD.encode(KEK) + "\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("kek"), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let hash_key = steward_jose::Kek::from_bytes(KEK).derive_key("steward/client-secret/v1");
    let confidential = |id: &str, scope: &str| ClientSettings {
        client_id: id.to_owned(),
        name: Some(id.to_owned()),
        secret_env: None,
        secret_hash: Some(steward_server::oauth::client_auth::hash_client_secret(
            &hash_key, SECRET,
        )),
        grant_types: vec!["client_credentials".to_owned()],
        scopes: vec![scope.to_owned()],
        redirect_uris: vec![],
        ..Default::default()
    };
    let mut scopes = BTreeMap::new();
    scopes.insert("mcp:tools".to_owned(), "Use the example's tools".to_owned());
    scopes.insert("mcp:other".to_owned(), "Something else".to_owned());
    let mut s = Settings {
        listen,
        ..Settings::default()
    };
    s.database.url = format!("sqlite://{}/steward.db", dir.display());
    s.keys.encryption_key_file = dir.join("kek");
    s.resources = vec![
        ResourceSettings {
            uri: resource.to_owned(),
            name: "Example MCP server".to_owned(),
            scopes: scopes.clone(),
            introspection_clients: vec![],
            ..Default::default()
        },
        ResourceSettings {
            uri: OTHER_RESOURCE.to_owned(),
            name: "Another server".to_owned(),
            scopes,
            introspection_clients: vec![],
            ..Default::default()
        },
    ];
    s.clients = vec![
        confidential("svc", "mcp:tools"),
        confidential("narrow", "mcp:other"),
    ];
    // The example's guard reads the system clock, so Steward must too.
    let prepared = startup::prepare(s, Arc::new(SystemClock))
        .await
        .expect("steward prepares");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(startup::run(prepared, async move {
        let _ = rx.await;
    }));
    tx
}

async fn token(issuer: &str, client_id: &str, resource: &str, scope: &str) -> String {
    let res = client()
        .post(format!("{issuer}/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", SECRET),
            ("resource", resource),
            ("scope", scope),
        ])
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// One JSON-RPC request over the streamable HTTP transport.
async fn rpc(mcp: &str, token: &str, id: u64, method: &str, params: Value) -> Value {
    let res = client()
        .post(mcp)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }))
        .send()
        .await
        .unwrap();
    let status = res.status();
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    let text = res.text().await.unwrap();
    assert_eq!(status, 200, "{method}: {text}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}: {text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["id"], id, "{body}");
    assert!(body.get("error").is_none(), "{method}: {body}");
    body["result"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_server_is_protected_by_steward() {
    let dir = tempfile::tempdir().unwrap();
    // Steward's address first, so the example can be told its issuer.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let steward_addr = probe.local_addr().unwrap();
    drop(probe);
    let issuer = format!("http://{steward_addr}");

    let example = start_example(&issuer).await;
    let resource = format!("{}/mcp", example.base);
    let _stop = start_steward(dir.path(), steward_addr, &resource).await;
    let http = client();

    // RFC 9728 metadata, path-inserted and root forms.
    let port = example.base.rsplit(':').next().unwrap();
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let doc: Value = http
            .get(format!("{}{path}", example.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            doc,
            json!({
                "resource": format!("http://127.0.0.1:{port}/mcp"),
                "authorization_servers": [issuer],
                "scopes_supported": ["mcp:tools"],
                "bearer_methods_supported": ["header"],
                "resource_name": "Steward example MCP server",
            }),
            "{path}"
        );
    }
    let prm = format!("{}/.well-known/oauth-protected-resource/mcp", example.base);

    // No token: 401 pointing at the metadata.
    let res = http
        .post(&resource)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()["www-authenticate"],
        format!("Bearer resource_metadata=\"{prm}\"").as_str()
    );

    // A garbage token: invalid_token.
    let res = http
        .post(&resource)
        .bearer_auth("abc.def.ghi")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()["www-authenticate"],
        format!("Bearer error=\"invalid_token\", resource_metadata=\"{prm}\"").as_str()
    );

    // A real Steward token without mcp:tools: 403 insufficient_scope.
    let narrow = token(&issuer, "narrow", &resource, "mcp:other").await;
    let res = http
        .post(&resource)
        .bearer_auth(&narrow)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(
        res.headers()["www-authenticate"],
        format!("Bearer error=\"insufficient_scope\", scope=\"mcp:tools\", resource_metadata=\"{prm}\"")
            .as_str()
    );

    // A Steward token with the right scope for another resource: wrong aud.
    let elsewhere = token(&issuer, "svc", OTHER_RESOURCE, "mcp:tools").await;
    let res = http.post(&resource).bearer_auth(&elsewhere).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()["www-authenticate"],
        format!("Bearer error=\"invalid_token\", resource_metadata=\"{prm}\"").as_str()
    );

    let good = token(&issuer, "svc", &resource, "mcp:tools").await;
    let init = rpc(
        &resource,
        &good,
        1,
        "initialize",
        json!({
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "0"},
        }),
    )
    .await;
    assert_eq!(init["serverInfo"]["name"], "steward-example-mcp-server", "{init}");

    let res = http
        .post(&resource)
        .bearer_auth(&good)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202, "a notification is accepted without a body");

    let list = rpc(&resource, &good, 2, "tools/list", json!({})).await;
    let mut names: Vec<&str> = list["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["echo", "whoami"], "{list}");

    let echo = rpc(
        &resource,
        &good,
        3,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "hello, steward"}}),
    )
    .await;
    assert_eq!(echo["content"][0]["type"], "text", "{echo}");
    assert_eq!(echo["content"][0]["text"], "hello, steward", "{echo}");

    let who = rpc(
        &resource,
        &good,
        4,
        "tools/call",
        json!({"name": "whoami", "arguments": {}}),
    )
    .await;
    assert_eq!(who["structuredContent"]["sub"], "svc", "{who}");
    assert_eq!(who["structuredContent"]["client_id"], "svc", "{who}");
}
