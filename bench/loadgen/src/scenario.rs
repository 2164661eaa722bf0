//! What one "operation" is in each scenario, and what counts as success.
//!
//! A response is an error unless it is exactly what a correct client would
//! accept (status, and the fields it would go on to use), so a server that
//! answers fast with 400s can never look fast here.

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use http::{HeaderValue, Method, StatusCode, header};
use serde::Deserialize;
use std::sync::Arc;
use steward_core::pkce::s256_challenge;
use steward_core::secret::random_token;

use crate::http::{Conn, Endpoint, Reply};

/// The load scenarios.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// POST /token grant_type=client_credentials (client_secret_basic): one JWT access token.
    ClientCredentials,
    /// GET /authorize (dev auto-approve) then POST /token with PKCE, for a pre-registered public client.
    CodePreregistered,
    /// The same flow for a metadata-document client (https client_id), its document cached.
    CodeCimd,
    /// POST /token grant_type=refresh_token; each worker follows its own rotation chain.
    Refresh,
    /// POST /introspect of a JWT access token by the resource's introspection client.
    Introspect,
    /// GET /.well-known/oauth-authorization-server.
    Metadata,
    /// POST /register (RFC 7591, open mode): a new public client each time.
    Register,
}

impl Scenario {
    pub const ALL: [Scenario; 7] = [
        Scenario::ClientCredentials,
        Scenario::CodePreregistered,
        Scenario::CodeCimd,
        Scenario::Refresh,
        Scenario::Introspect,
        Scenario::Metadata,
        Scenario::Register,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::ClientCredentials => "client_credentials",
            Scenario::CodePreregistered => "code flow (pre-registered)",
            Scenario::CodeCimd => "code flow (metadata document)",
            Scenario::Refresh => "refresh rotation",
            Scenario::Introspect => "introspection",
            Scenario::Metadata => "metadata GET",
            Scenario::Register => "registration (DCR)",
        }
    }

    /// What one operation is, for the report's unit.
    pub fn unit(self) -> &'static str {
        match self {
            Scenario::CodePreregistered | Scenario::CodeCimd => "flows/s",
            Scenario::ClientCredentials | Scenario::Refresh => "tokens/s",
            Scenario::Introspect | Scenario::Metadata => "req/s",
            Scenario::Register => "registrations/s",
        }
    }
}

/// The clients the scenarios use, as configured on the server.
#[derive(Clone, Debug)]
pub struct Clients {
    /// Confidential client allowed `client_credentials` and to introspect.
    pub confidential_id: String,
    pub confidential_secret: String,
    /// Pre-registered public client with `authorization_code` and `refresh_token`.
    pub public_id: String,
    pub public_redirect: String,
    /// Metadata-document client id (an https URL), when one is served.
    pub cimd_id: Option<String>,
    pub cimd_redirect: String,
}

/// The server under load and the clients it knows.
#[derive(Clone)]
pub struct Target {
    pub endpoint: Endpoint,
    pub clients: Clients,
    basic: HeaderValue,
    token_path: String,
    authorize_path: String,
    introspect_path: String,
    metadata_path: String,
    register_path: String,
}

impl Target {
    pub fn new(endpoint: Endpoint, clients: Clients) -> Result<Target> {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            enc(&clients.confidential_id),
            enc(&clients.confidential_secret)
        ));
        let basic = HeaderValue::from_str(&format!("Basic {basic}"))?;
        let p = endpoint.prefix.clone();
        Ok(Target {
            basic,
            token_path: format!("{p}/token"),
            authorize_path: format!("{p}/authorize"),
            introspect_path: format!("{p}/introspect"),
            register_path: format!("{p}/register"),
            // RFC 8414 §3.1: the well-known segment goes before the issuer's path.
            metadata_path: format!("/.well-known/oauth-authorization-server{p}"),
            endpoint,
            clients,
        })
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
}

fn expect(reply: &Reply, status: StatusCode, what: &str) -> Result<()> {
    if reply.status != status {
        let body = String::from_utf8_lossy(&reply.body[..reply.body.len().min(300)]).into_owned();
        bail!("{what}: expected {status}, got {}: {body}", reply.status);
    }
    Ok(())
}

fn token_response(reply: &Reply, what: &str) -> Result<TokenResponse> {
    expect(reply, StatusCode::OK, what)?;
    let t: TokenResponse = serde_json::from_slice(&reply.body).with_context(|| format!("{what}: body"))?;
    if t.access_token.is_empty() {
        bail!("{what}: empty access_token");
    }
    Ok(t)
}

/// One worker's connection and the state its scenario carries between operations.
pub struct Worker {
    pub conn: Conn,
    target: Arc<Target>,
    /// The worker's current refresh token (refresh scenario).
    refresh: Option<String>,
    /// An access token to introspect (introspection scenario).
    access: Option<String>,
}

impl Worker {
    pub fn new(target: Arc<Target>) -> Worker {
        Worker {
            conn: Conn::new(target.endpoint.clone()),
            target,
            refresh: None,
            access: None,
        }
    }

    /// Prepares what the scenario needs before it is timed: the first
    /// refresh token of the worker's chain, or a token to introspect.
    pub async fn setup(&mut self, scenario: Scenario) -> Result<()> {
        match scenario {
            Scenario::Refresh => {
                let (id, redirect) = self.public();
                let t = self.code_flow(&id, &redirect).await?;
                self.refresh = Some(
                    t.refresh_token
                        .ok_or_else(|| anyhow!("no refresh_token issued"))?,
                );
            }
            Scenario::Introspect => {
                self.access = Some(self.client_credentials().await?.access_token);
            }
            Scenario::CodeCimd if self.target.clients.cimd_id.is_none() => {
                bail!("the code-cimd scenario needs a metadata-document client id (--cimd-client-id)")
            }
            _ => {}
        }
        Ok(())
    }

    fn public(&self) -> (String, String) {
        let c = &self.target.clients;
        (c.public_id.clone(), c.public_redirect.clone())
    }

    /// One operation of `scenario`.
    pub async fn op(&mut self, scenario: Scenario) -> Result<()> {
        match scenario {
            Scenario::ClientCredentials => self.client_credentials().await.map(drop),
            Scenario::CodePreregistered => {
                let (id, redirect) = self.public();
                self.code_flow(&id, &redirect).await.map(drop)
            }
            Scenario::CodeCimd => {
                let c = &self.target.clients;
                let id = c
                    .cimd_id
                    .clone()
                    .ok_or_else(|| anyhow!("no metadata-document client"))?;
                let redirect = c.cimd_redirect.clone();
                self.code_flow(&id, &redirect).await.map(drop)
            }
            Scenario::Refresh => self.refresh().await,
            Scenario::Introspect => self.introspect().await,
            Scenario::Register => self.register().await,
            Scenario::Metadata => {
                let path = self.target.metadata_path.clone();
                let reply = self.conn.send(Method::GET, &path, &[], None).await?;
                expect(&reply, StatusCode::OK, "metadata")?;
                if !contains(&reply.body, b"\"token_endpoint\"") {
                    bail!("metadata: no token_endpoint");
                }
                Ok(())
            }
        }
    }

    async fn client_credentials(&mut self) -> Result<TokenResponse> {
        let headers = [(header::AUTHORIZATION, self.target.basic.clone())];
        let path = self.target.token_path.clone();
        let reply = self
            .conn
            .send(
                Method::POST,
                &path,
                &headers,
                Some("grant_type=client_credentials".to_owned()),
            )
            .await?;
        token_response(&reply, "client_credentials")
    }

    /// GET /authorize, take the code from the redirect, redeem it with the
    /// PKCE verifier. A fresh verifier per flow, as a real client would.
    async fn code_flow(&mut self, client_id: &str, redirect_uri: &str) -> Result<TokenResponse> {
        let verifier = random_token();
        let verifier = verifier.expose();
        let state_token = random_token();
        let state = &state_token.expose()[..16];
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("code_challenge", &s256_challenge(verifier))
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", state)
            .finish();
        let path = format!("{}?{query}", self.target.authorize_path);
        let reply = self.conn.send(Method::GET, &path, &[], None).await?;
        expect(&reply, StatusCode::FOUND, "authorize")?;
        let location = reply
            .headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| anyhow!("authorize: no Location"))?;
        let rest = location
            .strip_prefix(redirect_uri)
            .and_then(|r| r.strip_prefix('?'))
            .ok_or_else(|| anyhow!("authorize: redirected elsewhere: {location}"))?;
        let mut code = None;
        let mut echoed_state = None;
        for (k, v) in url::form_urlencoded::parse(rest.as_bytes()) {
            match &*k {
                "code" => code = Some(v.into_owned()),
                "state" => echoed_state = Some(v.into_owned()),
                "error" => bail!("authorize: error {v} in {location}"),
                _ => {}
            }
        }
        let code = code.ok_or_else(|| anyhow!("authorize: no code in {location}"))?;
        if echoed_state.as_deref() != Some(state) {
            bail!("authorize: state not echoed");
        }
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", &code)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("client_id", client_id)
            .append_pair("code_verifier", verifier)
            .finish();
        let path = self.target.token_path.clone();
        let reply = self.conn.send(Method::POST, &path, &[], Some(body)).await?;
        token_response(&reply, "authorization_code")
    }

    async fn refresh(&mut self) -> Result<()> {
        let Some(current) = self.refresh.take() else {
            // The chain broke on an earlier error: start a new one (untimed
            // work counted inside this operation, which is already an error case).
            self.setup(Scenario::Refresh).await?;
            bail!("refresh: chain restarted after an earlier failure");
        };
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", &current)
            .append_pair("client_id", &self.target.clients.public_id)
            .finish();
        let path = self.target.token_path.clone();
        let reply = self.conn.send(Method::POST, &path, &[], Some(body)).await?;
        let t = token_response(&reply, "refresh_token")?;
        self.refresh = Some(
            t.refresh_token
                .ok_or_else(|| anyhow!("refresh: no new refresh_token"))?,
        );
        Ok(())
    }

    /// One open-mode registration of a public client. The name is new each
    /// time, so deduplication (same name, redirect URIs and method from one
    /// address) never answers with an existing client: every operation
    /// stores a client, its registration and its audit event.
    async fn register(&mut self) -> Result<()> {
        let name = format!("Bench agent {}", &random_token().expose()[..12]);
        let body = serde_json::json!({
            "client_name": name,
            "redirect_uris": [self.target.clients.public_redirect],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        })
        .to_string();
        let headers = [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))];
        let path = self.target.register_path.clone();
        let reply = self.conn.send(Method::POST, &path, &headers, Some(body)).await?;
        expect(&reply, StatusCode::CREATED, "register")?;
        if !contains(&reply.body, b"\"client_id\":\"dcr_")
            || !contains(&reply.body, b"registration_access_token")
        {
            bail!("register: no client_id or registration_access_token");
        }
        Ok(())
    }

    async fn introspect(&mut self) -> Result<()> {
        let token = self
            .access
            .clone()
            .ok_or_else(|| anyhow!("introspect: no token"))?;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("token", &token)
            .finish();
        let headers = [(header::AUTHORIZATION, self.target.basic.clone())];
        let path = self.target.introspect_path.clone();
        let reply = self.conn.send(Method::POST, &path, &headers, Some(body)).await?;
        expect(&reply, StatusCode::OK, "introspect")?;
        if !contains(&reply.body, b"\"active\":true") {
            bail!(
                "introspect: token not active: {}",
                String::from_utf8_lossy(&reply.body)
            );
        }
        Ok(())
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
