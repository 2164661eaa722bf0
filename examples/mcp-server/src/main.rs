//! An MCP server protected by Steward.
//!
//! It serves MCP over the streamable HTTP transport at `/mcp` (the official
//! Rust SDK, rmcp), behind `steward-guard`: every request needs a Steward
//! access token for this server's resource URI with the required scope, and
//! the RFC 9728 metadata that tells clients where to get one is published at
//! `/.well-known/oauth-protected-resource` and its path-inserted form.
//!
//! Contract with the interop harness (tests/interop): the CLI below, and one
//! line `listening on http://ADDR` on stdout once the socket accepts
//! connections. Logs go to stderr.

use anyhow::Context;
use clap::Parser;
use rmcp::handler::server::common::Extension;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, schemars, tool, tool_handler, tool_router};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use steward_guard::{AccessClaims, Guard};
use tower::Layer;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "An MCP server (streamable HTTP at /mcp) protected by Steward"
)]
struct Cli {
    /// Socket address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Steward's issuer identifier, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    issuer: String,
    /// This server's canonical resource URI; must equal Steward's `[[resources]] uri`
    /// (it is the `aud` of the tokens). Default: http://{listen}/mcp with the real port.
    #[arg(long)]
    resource: Option<String>,
    /// Scope every MCP request needs (space-separated for several).
    #[arg(long, default_value = "mcp:tools")]
    scope: String,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    /// The text to send back.
    text: String,
}

#[derive(Debug, Clone)]
struct Tools {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Tools {
    fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "Returns the given text unchanged.")]
    fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        text
    }

    #[tool(description = "Returns who the access token was issued for: its sub and client_id.")]
    fn whoami(&self, Extension(parts): Extension<http::request::Parts>) -> Result<CallToolResult, ErrorData> {
        // steward-guard put the validated claims into the HTTP request's
        // extensions; rmcp hands the request parts to the tool.
        let claims = parts
            .extensions
            .get::<AccessClaims>()
            .ok_or_else(|| ErrorData::internal_error("request was not authenticated", None))?;
        Ok(CallToolResult::structured(serde_json::json!({
            "sub": claims.sub,
            "client_id": claims.client_id,
            "scope": claims.scope(),
        })))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "steward-example-mcp-server",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions("Example MCP server protected by Steward: tools echo and whoami.")
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs on stderr only: stdout carries the one "listening on" line.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STEWARD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rmcp=warn")),
        )
        .init();
    let cli = Cli::parse();

    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("binding {}", cli.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let resource = cli.resource.unwrap_or_else(|| format!("http://{addr}/mcp"));
    let resource_host = url::Url::parse(&resource)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .context("--resource is not a URL with a host")?;
    let scopes: Vec<&str> = cli.scope.split_whitespace().collect();

    let guard = Guard::builder(cli.issuer.clone(), resource.clone())
        .required_scopes(scopes)
        .resource_name("Steward example MCP server")
        .build()
        .context("configuring steward-guard")?;

    // Stateless streamable HTTP with JSON responses: each POST is answered
    // with application/json, no session to keep. Host validation (DNS
    // rebinding defence) accepts loopback and the resource URI's host.
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_allowed_hosts([
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
            resource_host,
        ]);
    let mcp = StreamableHttpService::new(
        || Ok(Tools::new()),
        Arc::new(LocalSessionManager::default()),
        config,
    );

    let app = axum::Router::new()
        .route_service("/mcp", guard.layer().layer(mcp))
        .merge(guard.metadata_router());

    tracing::info!(%resource, issuer = %cli.issuer, metadata = %guard.metadata_url(), "ready");
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{addr}").context("writing to stdout")?;
        out.flush().context("flushing stdout")?;
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving")?;
    Ok(())
}
