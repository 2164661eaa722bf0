//! `steward`: the Steward authorization server binary.

mod commands;
mod config;
mod logging;

use clap::{Parser, Subcommand, ValueEnum};
use commands::clients::Move;
use commands::room::OutputArg;
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
    /// Manage local user accounts (who can sign in at the authorization
    /// endpoint) and their governance roles.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Manage clients: create pre-registered clients, list and inspect every
    /// client Steward knows (pre-registered, metadata-document, dynamic),
    /// suspend, resume or revoke them and name their owners.
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Client ID Metadata Document tools.
    #[command(subcommand)]
    Cimd(CimdCommand),
    /// Access requests: scopes the policy gives a client only with an
    /// approver's decision.
    #[command(subcommand)]
    Requests(RequestsCommand),
    /// The Cedar policy set that decides what each client may get
    /// (docs/policy.md).
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Dynamic Client Registration (RFC 7591): initial access tokens and
    /// the registered clients.
    #[command(subcommand)]
    Dcr(DcrCommand),
}

#[derive(Debug, Subcommand)]
enum DcrCommand {
    /// Initial access tokens, needed to register in `dcr.mode = "protected"`
    /// and for confidential clients in any mode.
    #[command(subcommand)]
    Tokens(DcrTokensCommand),
    /// Every dynamically registered client: source address, software id,
    /// what backed it, last token.
    List {
        #[command(flatten)]
        out: OutputArg,
    },
}

#[derive(Debug, Subcommand)]
enum DcrTokensCommand {
    /// Create a token; it is shown once.
    Create {
        /// Registrations it may back (default: unlimited).
        #[arg(long, value_name = "N")]
        max_uses: Option<u32>,
        /// Lifetime, like 7d, 12h or 30m (default: no expiry).
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
        /// Tier of the clients registered with it: unverified or verified.
        #[arg(long, default_value = "unverified")]
        tier: String,
        #[command(flatten)]
        out: OutputArg,
    },
    /// List tokens (never their values).
    List {
        #[command(flatten)]
        out: OutputArg,
    },
    /// Revoke a token at once.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
enum RequestsCommand {
    /// List access requests, newest first.
    List {
        /// Only requests in this state: pending, approved, denied, expired.
        #[arg(long)]
        state: Option<String>,
        /// Only requests for this client.
        #[arg(long = "client", value_name = "ID")]
        client: Option<String>,
        #[command(flatten)]
        out: OutputArg,
    },
    /// Show one access request.
    Show {
        id: String,
        #[command(flatten)]
        out: OutputArg,
    },
    /// Approve a pending request (an approver who neither made it nor owns
    /// the client), optionally narrowing its scopes, ending the approval
    /// and assigning owners.
    Approve {
        id: String,
        /// The approver, by username.
        #[arg(long = "as", value_name = "USER")]
        actor: String,
        /// Why (kept in the audit trail).
        #[arg(long)]
        justification: String,
        /// Grant only these of the requested scopes (repeatable).
        #[arg(long = "scopes", alias = "scope", value_name = "SCOPE", num_args = 1..)]
        scopes: Vec<String>,
        /// The approval lapses after this long: 90d, 12h, 30m, 3600s.
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
        /// Assign an owner, USER:business or USER:technical (repeatable).
        #[arg(long = "owner", value_name = "USER:KIND")]
        owners: Vec<String>,
        #[command(flatten)]
        out: OutputArg,
    },
    /// Deny a pending request (an approver, with a justification).
    Deny {
        id: String,
        /// The approver, by username.
        #[arg(long = "as", value_name = "USER")]
        actor: String,
        /// Why (kept in the audit trail).
        #[arg(long)]
        justification: String,
        #[command(flatten)]
        out: OutputArg,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Print the default policy set shipped in the binary.
    ShowDefault {
        #[command(flatten)]
        out: OutputArg,
    },
    /// Validate policy files against the schema (the default set included
    /// unless governance.include_default_policies = false). Without FILES,
    /// the configured governance.policy_files. Errors name file, line and
    /// column; exit 1 on any.
    Check {
        files: Vec<PathBuf>,
        #[command(flatten)]
        out: OutputArg,
    },
    /// The decision for a client and the policies that made it, with no
    /// side effect.
    Explain {
        #[arg(long = "client", value_name = "ID")]
        client: String,
        /// The resource URI; may be left out when only one is configured.
        #[arg(long, value_name = "URI")]
        resource: Option<String>,
        /// A scope to decide (repeatable).
        #[arg(long = "scope", value_name = "SCOPE", required = true)]
        scopes: Vec<String>,
        /// authorize, redeem_code, refresh, client_credentials or register.
        #[arg(long)]
        action: String,
        /// The signed-in user, by username (authorize).
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        #[command(flatten)]
        out: OutputArg,
    },
    /// Which clients would gain or lose which scopes with a candidate set
    /// (the default set included unless excluded, plus FILES).
    Impact {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        out: OutputArg,
    },
    /// Validate the configured policy set and ask every node sharing the
    /// database to reload it. An invalid set is refused and nothing changes.
    Reload {
        #[command(flatten)]
        out: OutputArg,
    },
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
    List {
        #[command(flatten)]
        out: OutputArg,
    },
    /// Show one client's inventory record, registration, lifecycle state,
    /// organization, owners and ownership status (owned, unowned, orphaned).
    Show {
        client_id: String,
        #[command(flatten)]
        out: OutputArg,
    },
    /// Delete a client with its grants, codes and tokens.
    Delete { client_id: String },
    /// Suspend a client at once on every node (reversible: refresh
    /// families are kept for `resume`).
    Suspend(LifecycleArgs),
    /// Resume a suspended client.
    Resume(LifecycleArgs),
    /// Revoke a client for good, with its refresh families and tokens.
    Revoke(LifecycleArgs),
    /// List a client's owners, organization and ownership status; with
    /// --add or --remove, change them first.
    Owners {
        client_id: String,
        /// Add an owner, USER:business or USER:technical (repeatable).
        #[arg(long = "add", value_name = "USER:KIND")]
        add: Vec<String>,
        /// Remove an owner, USER (every kind) or USER:KIND (repeatable).
        #[arg(long = "remove", value_name = "USER")]
        remove: Vec<String>,
        /// Who makes the change, by username (required with --add/--remove).
        #[arg(long = "as", value_name = "USER")]
        actor: Option<String>,
        #[command(flatten)]
        out: OutputArg,
    },
}

#[derive(Debug, clap::Args)]
struct LifecycleArgs {
    client_id: String,
    /// Who makes the move, by username.
    #[arg(long = "as", value_name = "USER")]
    actor: String,
    /// Why (kept in the audit trail).
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    out: OutputArg,
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
    /// `printf '%s\n' "$PASSWORD" | steward users add alice --role approver`
    Add {
        name: String,
        /// A governance role: operator, approver, auditor (repeatable).
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        #[command(flatten)]
        out: OutputArg,
    },
    /// Replace a user's roles (operator, approver, auditor); without --role
    /// or --clear, show them.
    Roles {
        name: String,
        /// A role to hold (repeatable); the user's other roles are dropped.
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// Remove every role.
        #[arg(long)]
        clear: bool,
        /// Who assigns, by username (must be an operator); without it the
        /// local CLI assigns as system:cli.
        #[arg(long = "as", value_name = "USER")]
        actor: Option<String>,
        #[command(flatten)]
        out: OutputArg,
    },
    /// List users with their roles.
    List {
        #[command(flatten)]
        out: OutputArg,
    },
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

/// `steward clients suspend|resume|revoke`.
async fn lifecycle(
    settings: steward_server::settings::Settings,
    a: LifecycleArgs,
    mv: Move,
) -> anyhow::Result<ExitCode> {
    commands::clients::lifecycle(settings, &a.client_id, mv, &a.actor, &a.reason, a.out.output).await
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
            Command::Clients(ClientsCommand::List { out }) => {
                commands::clients::list(settings, out.output).await
            }
            Command::Clients(ClientsCommand::Show { client_id, out }) => {
                commands::clients::show(settings, &client_id, out.output).await
            }
            Command::Clients(ClientsCommand::Delete { client_id }) => {
                commands::clients::delete(settings, &client_id).await
            }
            Command::Clients(ClientsCommand::Suspend(a)) => lifecycle(settings, a, Move::Suspend).await,
            Command::Clients(ClientsCommand::Resume(a)) => lifecycle(settings, a, Move::Resume).await,
            Command::Clients(ClientsCommand::Revoke(a)) => lifecycle(settings, a, Move::Revoke).await,
            Command::Clients(ClientsCommand::Owners {
                client_id,
                add,
                remove,
                actor,
                out,
            }) => {
                commands::clients::owners(settings, &client_id, &add, &remove, actor.as_deref(), out.output)
                    .await
            }
            Command::Cimd(CimdCommand::Check { url }) => commands::cimd::check(settings, &url).await,
            Command::Users(UsersCommand::Add { name, roles, out }) => {
                commands::users::add(settings, &name, &roles, out.output).await
            }
            Command::Users(UsersCommand::Roles {
                name,
                roles,
                clear,
                actor,
                out,
            }) => commands::users::roles(settings, &name, &roles, clear, actor.as_deref(), out.output).await,
            Command::Users(UsersCommand::List { out }) => commands::users::list(settings, out.output).await,
            Command::Users(UsersCommand::Delete { name }) => commands::users::delete(settings, &name).await,
            Command::Requests(RequestsCommand::List { state, client, out }) => {
                commands::requests::list(settings, state, client, out.output).await
            }
            Command::Requests(RequestsCommand::Show { id, out }) => {
                commands::requests::show(settings, &id, out.output).await
            }
            Command::Requests(RequestsCommand::Approve {
                id,
                actor,
                justification,
                scopes,
                expires_in,
                owners,
                out,
            }) => {
                let args = commands::requests::ApproveArgs {
                    id,
                    actor,
                    justification,
                    scopes,
                    expires_in,
                    owners,
                };
                commands::requests::approve(settings, args, out.output).await
            }
            Command::Requests(RequestsCommand::Deny {
                id,
                actor,
                justification,
                out,
            }) => commands::requests::deny(settings, &id, &actor, &justification, out.output).await,
            Command::Dcr(DcrCommand::Tokens(DcrTokensCommand::Create {
                max_uses,
                expires_in,
                tier,
                out,
            })) => {
                commands::dcr::create_token(settings, max_uses, expires_in.as_deref(), &tier, out.output)
                    .await
            }
            Command::Dcr(DcrCommand::Tokens(DcrTokensCommand::List { out })) => {
                commands::dcr::list_tokens(settings, out.output).await
            }
            Command::Dcr(DcrCommand::Tokens(DcrTokensCommand::Revoke { id })) => {
                commands::dcr::revoke_token(settings, &id).await
            }
            Command::Dcr(DcrCommand::List { out }) => {
                commands::dcr::list_registrations(settings, out.output).await
            }
            Command::Policy(PolicyCommand::ShowDefault { out }) => commands::policy::show_default(out.output),
            Command::Policy(PolicyCommand::Check { files, out }) => {
                commands::policy::check(&settings, files, out.output)
            }
            Command::Policy(PolicyCommand::Explain {
                client,
                resource,
                scopes,
                action,
                user,
                out,
            }) => {
                let args = commands::policy::ExplainArgs {
                    client,
                    resource,
                    scopes,
                    action,
                    user,
                };
                commands::policy::explain(settings, args, out.output).await
            }
            Command::Policy(PolicyCommand::Impact { files, out }) => {
                commands::policy::impact(settings, files, out.output).await
            }
            Command::Policy(PolicyCommand::Reload { out }) => {
                commands::policy::reload(settings, out.output).await
            }
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
