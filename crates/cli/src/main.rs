//! `steward`: the Steward authorization server binary.

mod commands;
mod config;
mod logging;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// Steward — an OAuth 2.1 authorization server for AI agents and MCP clients.
///
/// With no configuration at all, `steward serve` listens on http://127.0.0.1:8080
/// and keeps its state (SQLite database, key-encryption key, signing keys) in
/// ./steward-data/. Settings come from built-in defaults, then the TOML file
/// given with --config (or STEWARD_CONFIG), then STEWARD_… environment
/// variables (STEWARD_DATABASE__URL sets database.url). See docs/configuration.md.
#[derive(Debug, Parser)]
#[command(name = "steward", version, about, long_about, propagate_version = true)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, short, global = true, env = "STEWARD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    /// Readable lines for a terminal.
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the authorization server.
    Serve,
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The issuer recorded in the database, which every node must share.
    #[command(subcommand)]
    Issuer(IssuerCommand),
    /// Manage local user accounts (who can sign in at the authorization endpoint).
    #[command(subcommand)]
    Users(UsersCommand),
    /// Manage clients: create pre-registered clients, list and inspect every
    /// client Steward knows (pre-registered, metadata-document, dynamic).
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Client ID Metadata Document tools.
    #[command(subcommand)]
    Cimd(CimdCommand),
}

#[derive(Debug, Subcommand)]
enum ClientsCommand {
    /// Create a pre-registered client. A confidential client (the default)
    /// gets a generated secret, printed once; Steward stores only its keyed hash.
    /// Example: `steward clients create --name "Nightly job" --grant-type client_credentials --scope mcp:tools`
    Create {
        /// The client_id; generated (`stw_…`) when omitted. Never an https URL:
        /// that form names a metadata document.
        #[arg(long)]
        client_id: Option<String>,
        /// Display name shown to operators and on the consent page.
        #[arg(long)]
        name: Option<String>,
        /// A grant type (repeatable): authorization_code, refresh_token, client_credentials.
        /// Default: authorization_code.
        #[arg(long = "grant-type", value_name = "GRANT")]
        grant_types: Vec<String>,
        /// A scope the client may obtain (repeatable). Default: every scope of the resource.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// A redirect URI (repeatable), required for authorization_code.
        #[arg(long = "redirect-uri", value_name = "URI")]
        redirect_uris: Vec<String>,
        /// A public client (no secret, e.g. a native or browser app).
        #[arg(long)]
        public: bool,
    },
    /// List every client: id, kind, lifecycle state, trust tier, name.
    List,
    /// Show one client's inventory record and registration.
    Show { client_id: String },
    /// Delete a client with its grants, codes and tokens.
    Delete { client_id: String },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// List signing keys: kid, algorithm, state and dates.
    List,
    /// Generate a new signing key: published at once, signing once every
    /// server has reloaded (keys.reload_seconds + keys.activation_margin_seconds).
    /// The previous key stays published until every token it signed has expired.
    Rotate,
}

#[derive(Debug, Subcommand)]
enum IssuerCommand {
    /// Show the recorded issuer and this configuration's; exit 1 when they differ.
    Show,
    /// Record this configuration's issuer as the deployment's (moving every
    /// node to a new issuer: stop them all first).
    Adopt,
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Create a user. The password is read from standard input (one line), never from arguments:
    /// `printf '%s\n' "$PASSWORD" | steward users add alice`
    Add { name: String },
    /// List users.
    List,
    /// Delete a user with their sessions, grants and tokens.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
enum CimdCommand {
    /// Fetch and validate a Client ID Metadata Document exactly as the server
    /// would, and explain every problem found. Exit code 0 when valid, 1 when not.
    Check {
        /// The client_id URL, e.g. https://app.example.com/oauth/client.json
        url: String,
    },
}

/// mimalloc instead of glibc malloc: a token request allocates and frees
/// hundreds of small buffers across the runtime and database threads, and
/// glibc's arena locking and consolidation were 8% of a token request's
/// profile (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match config::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("steward: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    logging::init(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("steward: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve => commands::serve::run(settings).await,
            Command::Keys(KeysCommand::List) => commands::keys::list(settings).await,
            Command::Keys(KeysCommand::Rotate) => commands::keys::rotate(settings).await,
            Command::Issuer(IssuerCommand::Show) => commands::issuer::show(settings).await,
            Command::Issuer(IssuerCommand::Adopt) => commands::issuer::adopt(settings).await,
            Command::Clients(ClientsCommand::Create {
                client_id,
                name,
                grant_types,
                scopes,
                redirect_uris,
                public,
            }) => {
                let req = commands::clients::CreateRequest {
                    client_id,
                    name,
                    grant_types,
                    scopes,
                    redirect_uris,
                    public,
                };
                commands::clients::create(settings, req).await
            }
            Command::Clients(ClientsCommand::List) => commands::clients::list(settings).await,
            Command::Clients(ClientsCommand::Show { client_id }) => {
                commands::clients::show(settings, &client_id).await
            }
            Command::Clients(ClientsCommand::Delete { client_id }) => {
                commands::clients::delete(settings, &client_id).await
            }
            Command::Cimd(CimdCommand::Check { url }) => commands::cimd::check(settings, &url).await,
            Command::Users(UsersCommand::Add { name }) => commands::users::add(settings, &name).await,
            Command::Users(UsersCommand::List) => commands::users::list(settings).await,
            Command::Users(UsersCommand::Delete { name }) => commands::users::delete(settings, &name).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("steward: {e:#}");
            ExitCode::FAILURE
        }
    }
}
