//! Steward's settings: the one typed description of every configuration
//! key, with its default. `steward` (the CLI) fills it from the embedded
//! defaults, a TOML file and `STEWARD_…` environment variables; every key is
//! documented in docs/configuration.md.
//!
//! Unknown keys are refused (`deny_unknown_fields`) so that a typo never
//! silently leaves a security setting at its default.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The issuer identifier (RFC 8414 §2), used byte for byte in metadata,
    /// the `iss` response parameter and JWTs. Empty means `http://{listen}`.
    pub issuer: String,
    /// The socket address to listen on.
    pub listen: SocketAddr,
    /// Serve HTTPS directly (rustls) when set.
    pub tls: Option<TlsSettings>,
    pub database: DatabaseSettings,
    pub keys: KeySettings,
    pub egress: EgressSettings,
    pub cimd: CimdSettings,
    pub http: HttpSettings,
    pub metrics: MetricsSettings,
    pub tokens: TokenSettings,
    pub admin: AdminSettings,
    /// RFC 8707 resource used when a request names none.
    pub default_resource: Option<String>,
    /// Scopes granted when a request names none (OAuth 2.1 §1.4.1).
    pub default_scopes: Vec<String>,
    /// The protected resources (MCP servers) Steward issues tokens for.
    pub resources: Vec<ResourceSettings>,
    /// Pre-registered clients, and settings for allow-listed metadata-document URLs.
    pub clients: Vec<ClientSettings>,
    pub login: LoginSettings,
    pub purge: PurgeSettings,
    pub governance: GovernanceConfig,
    /// Dynamic Client Registration (RFC 7591/7592).
    pub dcr: DcrSettings,
    pub dev: DevSettings,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceSettings {
    /// The resource's canonical URI; tokens for it carry it as `aud`.
    pub uri: String,
    /// Shown on the consent page.
    pub name: String,
    /// Scopes this resource understands, each with the description users see.
    #[serde(default)]
    pub scopes: std::collections::BTreeMap<String, String>,
    /// Confidential clients (the resource server's own credentials) allowed
    /// to introspect tokens issued for this resource (RFC 7662 §4).
    #[serde(default)]
    pub introspection_clients: Vec<String>,
    /// What a client nobody approved may get here (issue 13 item 5).
    /// Unset: those of `scopes` that are in `default_scopes`.
    #[serde(default)]
    pub self_service_scopes: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSettings {
    /// Issued ids must not start with `https://`; an `https://` id names a
    /// metadata-document URL and makes this entry its allow-list settings.
    pub client_id: String,
    /// Display name (pre-registered clients).
    #[serde(default)]
    pub name: Option<String>,
    /// Environment variable holding the client secret.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// The keyed hash of the client secret, as printed by `steward clients create`.
    #[serde(default)]
    pub secret_hash: Option<String>,
    /// Grant types this client may use. Empty means `["authorization_code"]`
    /// for a pre-registered client and, on an allow-list entry for a
    /// metadata-document URL, whatever the document asks for.
    #[serde(default)]
    pub grant_types: Vec<String>,
    /// Scopes this client may obtain; empty means every scope of the resource.
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// The accountable organisation (issue 13 item 3).
    #[serde(default)]
    pub organization: Option<String>,
    /// Owners, `"username:business"` or `"username:technical"`; each must be
    /// a Steward user. Without any the client is active and unowned, with the
    /// operator accountable.
    #[serde(default)]
    pub owners: Vec<String>,
}

impl ClientSettings {
    /// The grant types of a pre-registered client (empty means the code grant).
    pub fn effective_grant_types(&self) -> Vec<String> {
        if self.grant_types.is_empty() {
            vec!["authorization_code".to_owned()]
        } else {
            self.grant_types.clone()
        }
    }
}

/// A `sqlite:` URL's path and query (without the `?`): `sqlite://PATH?Q`
/// or `sqlite:PATH?Q`.
pub fn split_sqlite_url(url: &str) -> Option<(&str, &str)> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    Some(rest.split_once('?').unwrap_or((rest, "")))
}

/// `[governance]`: who decides what each client may get (issue 13).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GovernanceConfig {
    /// A single-person installation may approve its own requests; every
    /// such approval is marked in the audit trail.
    pub allow_self_approval: bool,
    /// Days an access request waits for a decision before it expires.
    pub request_expiry_days: u32,
    /// Which clients need owners to be active: `above_self_service`,
    /// `all_undeclared` or `never`.
    pub owners_required: String,
    /// Operator Cedar policy files, added to (or replacing) the default set.
    pub policy_files: Vec<PathBuf>,
    /// Start from the default policy set.
    pub include_default_policies: bool,
    pub domains: DomainSettings,
}

impl Default for GovernanceConfig {
    fn default() -> Self {
        Self {
            allow_self_approval: false,
            request_expiry_days: 14,
            owners_required: "above_self_service".to_owned(),
            policy_files: Vec::new(),
            include_default_policies: true,
            domains: DomainSettings::default(),
        }
    }
}

/// `[governance.domains]`: exact hosts or `*.example.com` suffixes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DomainSettings {
    /// Non-empty: metadata-document hosts outside it are refused.
    pub allow: Vec<String>,
    /// Refused before any DNS lookup or fetch.
    pub deny: Vec<String>,
    /// Accepted only as `pending`: every scope needs an approval.
    pub quarantine: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginSettings {
    /// Lifetime of a login session.
    pub session_lifetime_secs: u64,
    /// Failed logins allowed per account from one client address within
    /// `window_secs` (IPv6 addresses count by their /64).
    pub max_failures_per_account: u32,
    /// Failed logins allowed per client address, over all accounts.
    pub max_failures_per_address: u32,
    /// Failed logins allowed per account over all addresses: the ceiling a
    /// distributed attack meets. Much higher than `max_failures_per_account`
    /// so that one stranger cannot lock the real user out.
    pub max_failures_per_account_total: u32,
    /// Length of the fixed window the failure limits count in.
    pub window_secs: u64,
}

impl Default for LoginSettings {
    fn default() -> Self {
        Self {
            session_lifetime_secs: 8 * 3600,
            max_failures_per_account: 5,
            max_failures_per_address: 20,
            max_failures_per_account_total: 100,
            window_secs: 900,
        }
    }
}

/// The scheduled purge (issue 11 item 12): what anonymous requests and
/// expiry leave behind is deleted on a schedule, a bounded number of rows
/// per table per pass. Safe on several nodes at once: every delete is
/// idempotent.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PurgeSettings {
    /// Seconds between purge passes; 0 disables the scheduled purge.
    pub interval_secs: u64,
    /// Most rows deleted per table per pass; a pass that hits the bound is
    /// followed at once by another (up to ten in a row).
    pub max_rows_per_table: u32,
    /// How long refused-document audit events are kept.
    pub refusal_retention_secs: u64,
    /// Logos not fetched again for this long are deleted (a consent page
    /// fetches and stores them again when needed).
    pub logo_retention_secs: u64,
    /// Metadata-document clients nobody ever used (no grant, no token, no
    /// owner, still active) are deleted, with their versions, this long
    /// after they were first seen.
    pub unused_client_retention_secs: u64,
}

impl Default for PurgeSettings {
    fn default() -> Self {
        Self {
            interval_secs: 300,
            max_rows_per_table: 1000,
            refusal_retention_secs: 30 * 86_400,
            logo_retention_secs: 7 * 86_400,
            unused_client_retention_secs: 86_400,
        }
    }
}

/// Dynamic Client Registration (issue 14): `POST /register` and the RFC
/// 7592 client configuration endpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DcrSettings {
    /// `off` (no endpoint, none advertised), `open` (anyone may register a
    /// public client) or `protected` (an initial access token or a software
    /// statement from a trusted issuer is required).
    pub mode: steward_dcr::Mode,
    /// A registration with the same software id (or name, redirect URIs and
    /// auth method) from the same address within this many seconds returns
    /// the existing client instead of creating another.
    pub dedupe_window_secs: u64,
    /// A registered client never used for an authorization this long after
    /// registering is deleted by the sweep.
    pub unused_ttl_secs: u64,
    /// A registered client issued no token for this long expires.
    pub idle_ttl_secs: u64,
    pub rate_limit: DcrRateLimit,
    /// Issuers whose software statements (RFC 7591 §2.3) back a
    /// registration, with the tier and scope ceiling each may grant.
    pub trusted_issuers: Vec<steward_dcr::TrustedIssuer>,
}

impl Default for DcrSettings {
    fn default() -> Self {
        Self {
            mode: steward_dcr::Mode::Open,
            dedupe_window_secs: 3600,
            unused_ttl_secs: 86_400,
            idle_ttl_secs: 30 * 86_400,
            rate_limit: DcrRateLimit::default(),
            trusted_issuers: Vec::new(),
        }
    }
}

/// Registration rate limits, counted in the database so every node on one
/// PostgreSQL database shares them (fixed one-minute windows).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DcrRateLimit {
    /// Registrations per client address per minute (IPv6 by its /64).
    pub per_address_per_minute: u32,
    /// Registrations per minute over all addresses.
    pub global_per_minute: u32,
}

impl Default for DcrRateLimit {
    fn default() -> Self {
        Self {
            per_address_per_minute: 20,
            global_per_minute: 600,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevSettings {
    /// Sign every authorization request in as this user and approve it. For
    /// demos and load tests only: refused unless every listen address is loopback.
    pub auto_approve_user: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tls: None,
            database: DatabaseSettings::default(),
            keys: KeySettings::default(),
            egress: EgressSettings::default(),
            cimd: CimdSettings::default(),
            http: HttpSettings::default(),
            metrics: MetricsSettings::default(),
            tokens: TokenSettings::default(),
            admin: AdminSettings::default(),
            default_resource: None,
            default_scopes: Vec::new(),
            resources: Vec::new(),
            clients: Vec::new(),
            login: LoginSettings::default(),
            purge: PurgeSettings::default(),
            governance: GovernanceConfig::default(),
            dcr: DcrSettings::default(),
            dev: DevSettings::default(),
        }
    }
}

#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSettings {
    /// Bearer token for the admin HTTP API (`/admin/…`). Unset: the admin
    /// API is disabled. Secret: prefer `STEWARD_ADMIN__TOKEN_FILE`.
    pub token: Option<String>,
}

impl std::fmt::Debug for AdminSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSettings")
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://PATH` (created if missing) or `postgres://user@host/db`.
    pub url: String,
    /// PostgreSQL: how long a request waits for a pooled connection before
    /// it is answered 503 `temporarily_unavailable`. Short, so that an
    /// unreachable database is an immediate, retryable answer, not a stall.
    pub acquire_timeout_ms: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://./steward-data/steward.db".to_owned(),
            acquire_timeout_ms: steward_store::PoolSettings::default()
                .acquire_timeout
                .as_millis()
                .try_into()
                .unwrap_or(1_000),
        }
    }
}

impl DatabaseSettings {
    /// The file a `sqlite://PATH` (or `sqlite:PATH`) URL names; `None` for
    /// an in-memory SQLite database, a URL without a file and PostgreSQL.
    ///
    /// Start-up reads it to say whether it created or opened the database,
    /// and the read-only commands to refuse to create one.
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        let (path, query) = split_sqlite_url(&self.url)?;
        (!path.is_empty() && path != ":memory:" && !query.contains("mode=memory"))
            .then(|| PathBuf::from(path))
    }

    /// The store's pool settings.
    pub fn pool(&self) -> steward_store::PoolSettings {
        steward_store::PoolSettings {
            acquire_timeout: std::time::Duration::from_millis(self.acquire_timeout_ms),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeySettings {
    /// `ES256`, `EdDSA` or `RS256`: the algorithm of newly generated signing keys.
    pub algorithm: String,
    /// The key-encryption key that protects private signing keys at rest.
    /// Created (mode 0600) when missing.
    pub encryption_key_file: PathBuf,
    /// How often a running server reloads the key set from the database, so a
    /// `steward keys rotate` on any node takes effect everywhere.
    pub reload_seconds: u64,
    /// How much longer than `reload_seconds` a rotated key waits, published,
    /// before it signs: time for a slow or failed reload on some node. Read
    /// by `steward keys rotate`.
    pub activation_margin_seconds: u64,
}

impl Default for KeySettings {
    fn default() -> Self {
        Self {
            algorithm: "ES256".to_owned(),
            encryption_key_file: PathBuf::from("./steward-data/kek"),
            reload_seconds: 30,
            activation_margin_seconds: 10,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EgressSettings {
    /// CIDRs exempt from the special-purpose address block (internal clients, tests).
    pub allow_networks: Vec<IpNet>,
    /// Extra PEM root certificates trusted for outbound fetches.
    pub extra_root_certs: Vec<PathBuf>,
    /// Nameservers (`ip:port`); empty means the system resolver configuration.
    pub dns_servers: Vec<SocketAddr>,
    /// One deadline for DNS, connect, TLS, headers and body.
    pub timeout_ms: u64,
    /// Cap on a fetched document's size, checked from Content-Length and while reading.
    pub max_document_bytes: usize,
    /// Concurrent fetches allowed to one host.
    pub per_host_concurrency: usize,
    /// Fetches per minute allowed to one host.
    pub per_host_per_minute: u32,
    /// Concurrent fetches allowed over all hosts together.
    pub total_concurrency: usize,
}

impl Default for EgressSettings {
    fn default() -> Self {
        Self {
            allow_networks: Vec::new(),
            extra_root_certs: Vec::new(),
            dns_servers: Vec::new(),
            timeout_ms: 3000,
            max_document_bytes: 5120,
            per_host_concurrency: 4,
            per_host_per_minute: 60,
            total_concurrency: 64,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CimdSettings {
    /// Accept Client ID Metadata Document clients (https `client_id`s).
    pub enabled: bool,
    /// Accept client_id URLs with a query string (CIMD -02: SHOULD NOT).
    pub allow_query: bool,
    /// Accept private-use redirect URI schemes in reverse-domain form.
    pub allow_private_use_schemes: bool,
    /// Lower bound on how long a fetched document is considered fresh.
    pub min_cache_seconds: u64,
    /// Upper bound on how long a fetched document is considered fresh.
    pub max_cache_seconds: u64,
    /// Documents held in memory at most.
    pub cache_max_entries: u64,
    /// Bytes of documents held in memory at most.
    pub cache_max_bytes: u64,
    /// First back-off after a failed fetch; doubles on each further failure.
    pub negative_cache_seconds: u64,
    /// Accept only the metadata-document URLs listed in `[[clients]]` (an
    /// allow-list); other https `client_id`s are unknown clients.
    pub require_listed: bool,
    /// Most metadata-document clients kept that nobody has used yet (no
    /// grant). A new document beyond it is refused as temporarily
    /// unavailable until the purge reaps unused ones.
    pub max_unused_clients: u64,
    /// Most document versions kept for a client nobody has used yet.
    pub max_unused_versions: u32,
    /// Refusals of metadata documents are audited per host and window of
    /// this many seconds: the first in full, the rest as a count.
    pub refusal_audit_window_secs: u64,
    /// Most hosts whose refusals are audited separately per window; the rest
    /// share one `*` aggregate.
    pub refusal_audit_max_hosts: u64,
}

impl Default for CimdSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            allow_query: false,
            allow_private_use_schemes: false,
            min_cache_seconds: 300,
            max_cache_seconds: 86_400,
            cache_max_entries: 10_000,
            cache_max_bytes: 64 * 1024 * 1024,
            negative_cache_seconds: 5,
            require_listed: false,
            max_unused_clients: 10_000,
            max_unused_versions: 10,
            refusal_audit_window_secs: 300,
            refusal_audit_max_hosts: 1000,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Largest request head (request line and headers) accepted.
    pub max_header_bytes: usize,
    /// Time allowed to receive a request head.
    pub header_timeout_ms: u64,
    /// Time allowed to handle one request.
    pub request_timeout_ms: u64,
    /// Time in-flight requests get to finish after SIGTERM or Ctrl-C.
    pub shutdown_grace_ms: u64,
    /// Open connections allowed at once; further ones are closed on accept.
    /// Keep it below the process's file-descriptor limit, with room for the
    /// database, outbound fetches and logs.
    pub max_connections: usize,
    /// Open connections allowed at once from one client address (IPv6: /64).
    /// A trusted proxy's connections are not held to it (they carry everyone's).
    pub max_connections_per_address: usize,
    /// Reverse proxies (addresses or CIDR ranges) whose forwarded-address
    /// header is believed; from any other peer it is ignored
    /// (crates/server/src/client_address.rs).
    pub trusted_proxies: Vec<String>,
    /// The header a trusted proxy reports the client in.
    pub forwarded_header: ForwardedHeader,
}

/// Which header carries the client address from a trusted proxy. Exactly
/// one is read: a proxy that appends to one usually passes the other through
/// untouched, and that one is whatever the client wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For` (nginx `$proxy_add_x_forwarded_for`, HAProxy `option forwardfor`).
    #[default]
    XForwardedFor,
    /// `Forwarded` (RFC 7239).
    Forwarded,
}

impl ForwardedHeader {
    pub fn name(self) -> &'static str {
        match self {
            ForwardedHeader::XForwardedFor => "x-forwarded-for",
            ForwardedHeader::Forwarded => "forwarded",
        }
    }
}

/// `[metrics]`: where Prometheus scrapes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// A separate, private listener for `/metrics`, `/readyz` and `/healthz`
    /// (plain HTTP). When set, the main listener no longer serves `/metrics`.
    pub listen: Option<SocketAddr>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            max_header_bytes: 16 * 1024,
            header_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            shutdown_grace_ms: 10_000,
            max_connections: 1024,
            max_connections_per_address: 256,
            trusted_proxies: Vec::new(),
            forwarded_header: ForwardedHeader::XForwardedFor,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenSettings {
    /// Access token lifetime in seconds.
    pub access_token_lifetime_secs: u64,
    /// Authorization code lifetime (OAuth 2.1 §4.1.2: short; 10 min at most).
    pub code_lifetime_secs: u64,
    /// Refresh token lifetime; each rotation issues a token with a fresh lifetime.
    pub refresh_token_lifetime_secs: u64,
    /// `jwt` (RFC 9068) or `opaque` (random, validated by introspection).
    pub format: String,
    /// Failed client authentications (wrong secret, rejected assertion)
    /// allowed per client from one address within `client_auth_window_secs`;
    /// past it that address is refused for the client without checking
    /// (OAuth 2.1 §2.4.1: brute force).
    pub client_auth_max_failures: u32,
    /// Failed client authentications allowed per address over all clients.
    pub client_auth_max_failures_per_address: u32,
    /// Failed client authentications allowed per client over all addresses.
    pub client_auth_max_failures_total: u32,
    /// Length of the fixed window the client-authentication limits count in.
    pub client_auth_window_secs: u64,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            access_token_lifetime_secs: 600,
            code_lifetime_secs: 60,
            refresh_token_lifetime_secs: 30 * 86_400,
            format: "jwt".to_owned(),
            client_auth_max_failures: 20,
            client_auth_max_failures_per_address: 100,
            client_auth_max_failures_total: 1000,
            client_auth_window_secs: 300,
        }
    }
}

/// A setting that cannot be used, named by its dotted key.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct SettingError {
    pub key: &'static str,
    pub reason: String,
}

impl Settings {
    /// The issuer in force: the configured one, or `http://{listen}`.
    pub fn effective_issuer(&self) -> String {
        if self.issuer.is_empty() {
            let scheme = if self.tls.is_some() { "https" } else { "http" };
            format!("{scheme}://{}", self.listen)
        } else {
            self.issuer.clone()
        }
    }

    /// Checks what serde cannot: the issuer's form (RFC 8414 §2), the key
    /// algorithm, TLS files, the database URL scheme, numeric bounds.
    pub fn validate(&self) -> Result<(), SettingError> {
        let issuer = self.effective_issuer();
        validate_issuer(&issuer).map_err(|reason| SettingError {
            key: "issuer",
            // An operator who never wrote `issuer` must learn where the
            // refused value came from, or the error names a setting they
            // cannot find in their file.
            reason: if self.issuer.is_empty() {
                format!(
                    "{reason} (issuer is not set, so it is derived from listen = {} as {issuer}; set issuer \
                     to the URL clients reach, e.g. https://auth.example.com)",
                    self.listen
                )
            } else {
                reason
            },
        })?;
        if !matches!(self.keys.algorithm.as_str(), "ES256" | "EdDSA" | "RS256") {
            return Err(SettingError {
                key: "keys.algorithm",
                reason: format!("{:?} is not one of ES256, EdDSA, RS256", self.keys.algorithm),
            });
        }
        if let Some(tls) = &self.tls {
            if !tls.cert_file.is_file() {
                return Err(SettingError {
                    key: "tls.cert_file",
                    reason: format!("{} does not exist or is not a file", tls.cert_file.display()),
                });
            }
            if !tls.key_file.is_file() {
                return Err(SettingError {
                    key: "tls.key_file",
                    reason: format!("{} does not exist or is not a file", tls.key_file.display()),
                });
            }
        }
        if let Err(reason) = crate::client_address::TrustedProxies::parse(
            &self.http.trusted_proxies,
            self.http.forwarded_header,
        ) {
            return Err(SettingError {
                key: "http.trusted_proxies",
                reason,
            });
        }
        if self
            .metrics
            .listen
            .is_some_and(|m| m == self.listen && m.port() != 0)
        {
            return Err(SettingError {
                key: "metrics.listen",
                reason: format!(
                    "{} is the main listen address; give the metrics listener its own",
                    self.listen
                ),
            });
        }
        for issuer in &self.dcr.trusted_issuers {
            issuer.validate().map_err(|reason| SettingError {
                key: "dcr.trusted_issuers",
                reason,
            })?;
        }
        let db = &self.database.url;
        if !(db.starts_with("sqlite:") || db.starts_with("postgres://") || db.starts_with("postgresql://")) {
            return Err(SettingError {
                key: "database.url",
                reason: "must start with sqlite:// or postgres://".to_owned(),
            });
        }
        if db.starts_with("postgres") && url::Url::parse(db).is_err() {
            return Err(SettingError {
                key: "database.url",
                reason: "not a parsable URL".to_owned(),
            });
        }
        if !(1..=60_000).contains(&self.database.acquire_timeout_ms) {
            return Err(SettingError {
                key: "database.acquire_timeout_ms",
                reason: "must be between 1 and 60000".to_owned(),
            });
        }
        if self.keys.activation_margin_seconds > 86_400 {
            return Err(SettingError {
                key: "keys.activation_margin_seconds",
                reason: "must be at most 86400 (a day)".to_owned(),
            });
        }
        for path in &self.egress.extra_root_certs {
            if !path.is_file() {
                return Err(SettingError {
                    key: "egress.extra_root_certs",
                    reason: format!("{} does not exist or is not a file", path.display()),
                });
            }
        }
        for (key, value) in [
            (
                "login.max_failures_per_account",
                u64::from(self.login.max_failures_per_account),
            ),
            (
                "login.max_failures_per_address",
                u64::from(self.login.max_failures_per_address),
            ),
            (
                "login.max_failures_per_account_total",
                u64::from(self.login.max_failures_per_account_total),
            ),
            (
                "tokens.client_auth_max_failures",
                u64::from(self.tokens.client_auth_max_failures),
            ),
            (
                "tokens.client_auth_max_failures_per_address",
                u64::from(self.tokens.client_auth_max_failures_per_address),
            ),
            (
                "tokens.client_auth_max_failures_total",
                u64::from(self.tokens.client_auth_max_failures_total),
            ),
            ("http.max_connections", self.http.max_connections as u64),
            (
                "http.max_connections_per_address",
                self.http.max_connections_per_address as u64,
            ),
            ("egress.total_concurrency", self.egress.total_concurrency as u64),
            (
                "purge.max_rows_per_table",
                u64::from(self.purge.max_rows_per_table),
            ),
            (
                "cimd.max_unused_versions",
                u64::from(self.cimd.max_unused_versions),
            ),
        ] {
            if value == 0 {
                return Err(SettingError {
                    key,
                    reason: "must be positive".to_owned(),
                });
            }
        }
        if self.egress.timeout_ms == 0 {
            return Err(SettingError {
                key: "egress.timeout_ms",
                reason: "must be positive".to_owned(),
            });
        }
        if self.cimd.min_cache_seconds > self.cimd.max_cache_seconds {
            return Err(SettingError {
                key: "cimd.min_cache_seconds",
                reason: "must not exceed cimd.max_cache_seconds".to_owned(),
            });
        }
        if self.admin.token.as_ref().is_some_and(|t| t.len() < 32) {
            return Err(SettingError {
                key: "admin.token",
                reason: "must be at least 32 characters".to_owned(),
            });
        }
        if !matches!(self.tokens.format.as_str(), "jwt" | "opaque") {
            return Err(SettingError {
                key: "tokens.format",
                reason: "must be \"jwt\" or \"opaque\"".to_owned(),
            });
        }
        if self.tokens.code_lifetime_secs == 0 || self.tokens.code_lifetime_secs > 600 {
            return Err(SettingError {
                key: "tokens.code_lifetime_secs",
                reason: "must be between 1 and 600 (OAuth 2.1 §4.1.2)".to_owned(),
            });
        }
        for r in &self.resources {
            validate_resource_uri(&r.uri).map_err(|reason| SettingError {
                key: "resources.uri",
                reason,
            })?;
        }
        if let Some(d) = &self.default_resource
            && !self.resources.iter().any(|r| &r.uri == d)
        {
            return Err(SettingError {
                key: "default_resource",
                reason: format!("{d:?} is not the uri of any [[resources]] entry"),
            });
        }
        for c in &self.clients {
            if c.client_id.is_empty() {
                return Err(SettingError {
                    key: "clients.client_id",
                    reason: "must not be empty".to_owned(),
                });
            }
            if steward_cimd::looks_like_metadata_document_id(&c.client_id)
                && (c.secret_env.is_some() || c.secret_hash.is_some() || !c.redirect_uris.is_empty())
            {
                return Err(SettingError {
                    key: "clients.redirect_uris",
                    reason: format!(
                        "client {:?} names a metadata document: its redirect URIs and keys come from the \
                         document, so an allow-list entry takes only grant_types, scopes and name",
                        c.client_id
                    ),
                });
            }
            if c.secret_env.is_some() && c.secret_hash.is_some() {
                return Err(SettingError {
                    key: "clients.secret_env",
                    reason: format!(
                        "client {:?}: set secret_env or secret_hash, not both",
                        c.client_id
                    ),
                });
            }
        }
        if self.dev.auto_approve_user.is_some() && !self.listen.ip().is_loopback() {
            return Err(SettingError {
                key: "dev.auto_approve_user",
                reason: "refused: the listen address is not loopback".to_owned(),
            });
        }
        if self.tokens.access_token_lifetime_secs == 0 {
            return Err(SettingError {
                key: "tokens.access_token_lifetime_secs",
                reason: "must be positive".to_owned(),
            });
        }
        Ok(())
    }
}

/// RFC 8707 §2: an absolute URI without a fragment.
pub fn validate_resource_uri(uri: &str) -> Result<(), String> {
    if uri.contains('#') {
        return Err(format!("{uri:?} has a fragment"));
    }
    let url = url::Url::parse(uri).map_err(|_| format!("{uri:?} is not an absolute URI"))?;
    if url.cannot_be_a_base() {
        return Err(format!("{uri:?} is not a hierarchical URI"));
    }
    Ok(())
}

/// RFC 8414 §2: the issuer is an https URL with no query and no fragment.
/// Plain http is accepted only for a loopback host, for development.
fn validate_issuer(issuer: &str) -> Result<(), String> {
    let url = url::Url::parse(issuer).map_err(|e| format!("{issuer:?} is not a URL ({e})"))?;
    if url.query().is_some() || issuer.contains('?') {
        return Err("must not have a query".to_owned());
    }
    if url.fragment().is_some() || issuer.contains('#') {
        return Err("must not have a fragment".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not have userinfo".to_owned());
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Domain(d)) => d == "localhost",
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if loopback {
                Ok(())
            } else {
                Err("must use https (http is allowed only on a loopback host)".to_owned())
            }
        }
        other => Err(format!("scheme {other:?} is not https")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issuer_derived_from_listen_says_so_when_refused() {
        let mut s = Settings {
            listen: "0.0.0.0:8080".parse().unwrap(),
            ..Settings::default()
        };
        let e = s.validate().unwrap_err();
        assert_eq!(e.key, "issuer");
        assert!(
            e.reason
                .contains("issuer is not set, so it is derived from listen = 0.0.0.0:8080"),
            "{}",
            e.reason
        );
        s.issuer = "http://0.0.0.0:8080".to_owned();
        assert!(!s.validate().unwrap_err().reason.contains("derived"));
    }

    #[test]
    fn default_issuer_is_derived_from_listen() {
        let s = Settings::default();
        assert_eq!(s.effective_issuer(), "http://127.0.0.1:8080");
        s.validate().unwrap();
    }

    #[test]
    fn dev_auto_approve_is_refused_off_loopback() {
        let mut s = Settings {
            issuer: "https://auth.example.com".to_owned(),
            ..Settings::default()
        };
        s.dev.auto_approve_user = Some("alice".to_owned());
        s.validate().unwrap();
        s.listen = "0.0.0.0:8080".parse().unwrap();
        let e = s.validate().unwrap_err();
        assert_eq!(e.key, "dev.auto_approve_user");
        s.listen = "[::1]:8080".parse().unwrap();
        s.validate().unwrap();
    }

    #[test]
    fn an_allow_list_entry_for_a_document_takes_no_redirect_uris_or_secrets() {
        let mut s = Settings::default();
        s.clients.push(ClientSettings {
            client_id: "https://app.example/client.json".to_owned(),
            name: None,
            secret_env: None,
            secret_hash: None,
            grant_types: vec![],
            scopes: vec!["mcp:tools".to_owned()],
            redirect_uris: vec![],
            ..Default::default()
        });
        s.validate().unwrap();
        s.clients[0].redirect_uris = vec!["https://evil.example/cb".to_owned()];
        assert_eq!(s.validate().unwrap_err().key, "clients.redirect_uris");
        s.clients[0].redirect_uris.clear();
        s.clients[0].secret_env = Some("X".to_owned());
        assert_eq!(s.validate().unwrap_err().key, "clients.redirect_uris");
    }

    #[test]
    fn issuer_rules() {
        assert!(validate_issuer("https://auth.example.com").is_ok());
        assert!(validate_issuer("https://auth.example.com/tenant1").is_ok());
        assert!(validate_issuer("http://auth.example.com").is_err());
        assert!(validate_issuer("https://auth.example.com?x=1").is_err());
        assert!(validate_issuer("https://auth.example.com#").is_err());
        assert!(validate_issuer("not a url").is_err());
        assert!(validate_issuer("http://localhost:8080").is_ok());
    }

    #[test]
    fn missing_tls_file_names_the_setting() {
        let s = Settings {
            tls: Some(TlsSettings {
                cert_file: "/nonexistent/c.pem".into(),
                key_file: "/nonexistent/k".into(),
            }),
            ..Settings::default()
        };
        let err = s.validate().unwrap_err();
        assert_eq!(err.key, "tls.cert_file");
    }

    /// Every key of `Settings`, dotted (`database.url`, `clients.secret_env`):
    /// the keys of `Settings::default()`, of a `[tls]` section and of one
    /// `[[resources]]` and one `[[clients]]` entry (built field by field, so
    /// a new field cannot be missed).
    fn every_key() -> Vec<String> {
        fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
            if let serde_json::Value::Object(map) = v {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                    out.push(key);
                }
            }
        }
        let mut s = Settings {
            tls: Some(TlsSettings {
                cert_file: "c.pem".into(),
                key_file: "k.pem".into(),
            }),
            ..Settings::default()
        };
        s.resources.push(ResourceSettings {
            uri: String::new(),
            name: String::new(),
            scopes: std::collections::BTreeMap::new(),
            introspection_clients: Vec::new(),
            self_service_scopes: Some(Vec::new()),
        });
        s.clients.push(ClientSettings {
            client_id: String::new(),
            name: None,
            secret_env: None,
            secret_hash: None,
            grant_types: Vec::new(),
            scopes: Vec::new(),
            redirect_uris: Vec::new(),
            organization: Some(String::new()),
            owners: Vec::new(),
        });
        let mut value = serde_json::to_value(&s).unwrap();
        // Lists of tables: document their entries' fields as `resources.uri`.
        for list in ["resources", "clients"] {
            let first = value[list][0].take();
            value[list] = first;
        }
        let mut out = Vec::new();
        walk("", &value, &mut out);
        out
    }

    #[test]
    fn every_setting_is_documented_in_configuration_md() {
        let doc = include_str!("../../../docs/configuration.md");
        let keys = every_key();
        assert!(keys.len() > 60, "{keys:?}");
        let missing: Vec<&String> = keys
            .iter()
            .filter(|k| !doc.contains(&format!("| `{k}` |")) && !doc.contains(&format!("[{k}]")))
            .collect();
        assert!(
            missing.is_empty(),
            "settings missing from docs/configuration.md (a table row `| `key` |`): {missing:?}"
        );
    }

    #[test]
    fn a_trusted_proxy_that_is_not_an_address_names_the_setting() {
        let mut s = Settings::default();
        s.http.trusted_proxies = vec!["10.0.0.0/8".into(), "proxy.internal".into()];
        let e = s.validate().unwrap_err();
        assert_eq!(e.key, "http.trusted_proxies");
        assert!(e.to_string().contains("proxy.internal"), "{e}");
    }

    #[test]
    fn the_metrics_listener_needs_its_own_address() {
        let mut s = Settings::default();
        s.metrics.listen = Some(s.listen);
        assert_eq!(s.validate().unwrap_err().key, "metrics.listen");
        s.metrics.listen = Some("127.0.0.1:9090".parse().unwrap());
        s.validate().unwrap();
    }

    #[test]
    fn bad_algorithm_names_the_setting() {
        let mut s = Settings::default();
        s.keys.algorithm = "HS256".into();
        assert_eq!(s.validate().unwrap_err().key, "keys.algorithm");
    }
}
