//! The shared fixture of the OAuth flow tests: a server with a protected
//! resource, a public client with loopback and https redirect URIs, a
//! confidential `bench` client, and helpers for forms, cookies and redirects.

use super::{TestServer, client, test_settings};
use base64::Engine;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use steward_core::pkce::s256_challenge;
use steward_server::settings::{ClientSettings, ResourceSettings, Settings};
use steward_testkit::{DocumentHost, TestCa, TestNameserver};

pub const RESOURCE: &str = "https://mcp.example.com/mcp";
pub const OTHER_RESOURCE: &str = "https://other.example.com/mcp";
pub const VERIFIER: &str = "a-verifier-that-is-long-enough-to-be-valid-0123456789";
pub const BENCH_SECRET: &str = "bench-secret-0123456789abcdef";
pub const KEK: [u8; 32] = [42; 32];

pub fn base_settings(dir: &std::path::Path) -> Settings {
    let mut s = test_settings(dir);
    let mut scopes = BTreeMap::new();
    scopes.insert("mcp:tools".to_owned(), "Use the server's tools".to_owned());
    scopes.insert("mcp:admin".to_owned(), "Administer the server".to_owned());
    s.resources = vec![
        ResourceSettings {
            uri: RESOURCE.to_owned(),
            name: "Example MCP".to_owned(),
            introspection_clients: vec!["bench".to_owned()],
            scopes: scopes.clone(),
            ..Default::default()
        },
        // A second resource whose tokens `bench` may not introspect.
        ResourceSettings {
            uri: OTHER_RESOURCE.to_owned(),
            name: "Other MCP".to_owned(),
            introspection_clients: vec![],
            scopes,
            ..Default::default()
        },
    ];
    s.default_resource = Some(RESOURCE.to_owned());
    s.default_scopes = vec!["mcp:tools".to_owned()];
    // A known KEK, so the test can compute the keyed hash of the bench secret.
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
    let key = steward_jose::Kek::from_bytes(KEK).derive_key("steward/client-secret/v1");
    s.clients = vec![
        ClientSettings {
            client_id: "public-app".to_owned(),
            name: Some("Public App".to_owned()),
            secret_env: None,
            secret_hash: None,
            grant_types: vec!["authorization_code".to_owned(), "refresh_token".to_owned()],
            scopes: vec![],
            redirect_uris: vec![
                "http://127.0.0.1/cb".to_owned(),
                "https://app.example/cb".to_owned(),
            ],
            ..Default::default()
        },
        // Every redirect URI is loopback: consent is asked every time.
        ClientSettings {
            client_id: "loopback-app".to_owned(),
            name: Some("Loopback App".to_owned()),
            secret_env: None,
            secret_hash: None,
            grant_types: vec!["authorization_code".to_owned(), "refresh_token".to_owned()],
            scopes: vec![],
            redirect_uris: vec!["http://localhost/callback".to_owned()],
            ..Default::default()
        },
        ClientSettings {
            client_id: "bench".to_owned(),
            name: None,
            secret_env: None,
            secret_hash: Some(steward_server::oauth::client_auth::hash_client_secret(
                &key,
                BENCH_SECRET,
            )),
            grant_types: vec!["client_credentials".to_owned()],
            scopes: vec!["mcp:tools".to_owned()],
            redirect_uris: vec![],
            ..Default::default()
        },
    ];
    s
}

pub async fn start(dev: bool) -> TestServer {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut s = base_settings(dir.path());
    if dev {
        s.dev.auto_approve_user = Some("alice".to_owned());
    }
    TestServer::start_with(s, dir).await
}

pub fn authorize_url(server: &TestServer, client_id: &str, redirect_uri: &str, extra: &str) -> String {
    let challenge = s256_challenge(VERIFIER);
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", "xyz")
        .finish();
    server.url(&format!("/authorize?{q}{extra}"))
}

/// The query of a redirect's Location, as a map.
pub fn location_params(res: &reqwest::Response) -> (String, HashMap<String, String>) {
    let loc = res.headers()["location"].to_str().unwrap().to_owned();
    let url = url::Url::parse(&loc).unwrap();
    let params = url.query_pairs().into_owned().collect();
    (loc, params)
}

pub async fn token(server: &TestServer, form: &[(&str, &str)]) -> reqwest::Response {
    client()
        .post(server.url("/token"))
        .form(form)
        .send()
        .await
        .unwrap()
}

pub async fn code_for(server: &TestServer, client_id: &str, redirect_uri: &str) -> String {
    let res = client()
        .get(authorize_url(server, client_id, redirect_uri, ""))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302, "{}", res.text().await.unwrap());
    let (_, p) = location_params(&res);
    p["code"].clone()
}

pub fn cookie_header(res: &reqwest::Response, jar: &mut HashMap<String, String>) {
    for v in res.headers().get_all("set-cookie") {
        let s = v.to_str().unwrap();
        let kv = s.split(';').next().unwrap();
        let (k, v) = kv.split_once('=').unwrap();
        jar.insert(k.to_owned(), v.to_owned());
    }
}

pub fn jar_string(jar: &HashMap<String, String>) -> String {
    jar.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn hidden_value(html: &str, name: &str) -> String {
    let needle = format!("name=\"{name}\" value=\"");
    let start = html.find(&needle).unwrap() + needle.len();
    let end = start + html[start..].find('"').unwrap();
    // Named or numeric (askama writes `&#38;`, `&#34;` …); `&` last.
    html[start..end]
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&#60;", "<")
        .replace("&gt;", ">")
        .replace("&#62;", ">")
        .replace("&amp;", "&")
        .replace("&#38;", "&")
}

/// A Steward that trusts a test CA and reaches an HTTPS document host on
/// 127.0.0.2, named `cimd.test` by a loopback nameserver; `tune` adjusts the
/// settings (it sees the host, to name its URLs).
pub struct DocWorld {
    pub server: TestServer,
    pub host: DocumentHost,
    _ns: TestNameserver,
}

pub async fn doc_world(
    tune: impl FnOnce(&mut steward_server::settings::Settings, &DocumentHost),
) -> DocWorld {
    let ca = TestCa::new();
    let host = DocumentHost::start("127.0.0.2".parse::<IpAddr>().unwrap(), &ca, &["cimd.test"]).await;
    let ns = TestNameserver::start("127.0.0.1".parse::<IpAddr>().unwrap()).await;
    ns.set("cimd.test", vec!["127.0.0.2".parse().unwrap()]);
    let dir = Arc::new(tempfile::tempdir().unwrap());
    std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).unwrap();
    let mut s = base_settings(dir.path());
    s.egress.allow_networks = vec!["127.0.0.2/32".parse().unwrap()];
    s.egress.extra_root_certs = vec![dir.path().join("ca.pem")];
    s.egress.dns_servers = vec![ns.addr()];
    tune(&mut s, &host);
    let server = TestServer::start_with(s, dir).await;
    DocWorld {
        server,
        host,
        _ns: ns,
    }
}

/// Introspects `token` as `bench`, the resource's introspection client; the
/// answer is always 200 and never cached (RFC 7662 §2.2).
pub async fn introspect(server: &TestServer, token: &str) -> Value {
    let res = client()
        .post(server.url("/introspect"))
        .form(&[
            ("token", token),
            ("client_id", "bench"),
            ("client_secret", BENCH_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    res.json().await.unwrap()
}

pub const PASSWORD: &str = "a-long-enough-password";

/// A browser: a cookie jar, and optional headers sent with every request.
pub struct Browser<'a> {
    pub server: &'a TestServer,
    pub jar: HashMap<String, String>,
}

impl<'a> Browser<'a> {
    pub fn new(server: &'a TestServer) -> Self {
        Browser {
            server,
            jar: HashMap::new(),
        }
    }

    pub async fn get(&mut self, url: &str) -> reqwest::Response {
        let res = client()
            .get(url)
            .header("cookie", jar_string(&self.jar))
            .send()
            .await
            .unwrap();
        cookie_header(&res, &mut self.jar);
        res
    }

    pub async fn post_with(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = client()
            .post(self.server.url(path))
            .header("cookie", jar_string(&self.jar))
            .form(form);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.unwrap();
        cookie_header(&res, &mut self.jar);
        res
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.post_with(path, form, &[]).await
    }

    pub async fn login(&mut self, html: &str, user: &str) -> reqwest::Response {
        let (csrf, request) = (hidden_value(html, "csrf"), hidden_value(html, "request"));
        self.post(
            "/authorize/login",
            &[
                ("username", user),
                ("password", PASSWORD),
                ("csrf", &csrf),
                ("request", &request),
            ],
        )
        .await
    }

    pub async fn decide(&mut self, html: &str, decision: &str) -> reqwest::Response {
        let (csrf, request) = (hidden_value(html, "csrf"), hidden_value(html, "request"));
        self.post(
            "/authorize/consent",
            &[("decision", decision), ("csrf", &csrf), ("request", &request)],
        )
        .await
    }

    /// Opens `url` (signed out: the login page), signs in; returns the consent page.
    pub async fn sign_in_to_consent(&mut self, url: &str, user: &str) -> String {
        let html = self.get(url).await.text().await.unwrap();
        assert!(html.contains("name=\"password\""), "{html}");
        let res = self.login(&html, user).await;
        assert_eq!(res.status(), 200, "consent page");
        let html = res.text().await.unwrap();
        assert!(html.contains("name=\"decision\""), "{html}");
        html
    }

    pub fn session(&self) -> String {
        self.jar["steward_session"].clone()
    }
}

pub async fn add_user(server: &TestServer, name: &str) {
    let hash = steward_server::oauth::users::hash_password(PASSWORD).unwrap();
    let now = server.state.clock.now();
    steward_server::oauth::users::create_user(server.state.store.as_ref(), name, hash, now)
        .await
        .unwrap();
}

/// With `STEWARD_PAGE_DUMP=DIR`, keeps a page's HTML for a browser
/// screenshot (the pages are checked by eye in headless Chromium).
pub fn dump_page(name: &str, html: &str) {
    if let Ok(dir) = std::env::var("STEWARD_PAGE_DUMP") {
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.html")), html).unwrap();
    }
}
