//! Start-up: turn validated settings into a running server. Every failure
//! names the setting at fault, so `steward serve` can stop with one clear
//! line.

use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use steward_cimd::{CimdConfig, DocumentFetcher, Resolver};
use steward_core::Clock;
use steward_egress::{Egress, EgressConfig};
use steward_jose::{Algorithm, Kek};
use tokio::net::TcpListener;

use crate::cimd::DbVersionStore;
use crate::keyring::{KeyRing, KeyRingStart};
use crate::settings::Settings;
use crate::state::{AppState, AppStateInner};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database.url: {}", with_causes(.0))]
    Database(#[source] steward_store::StoreError),
    #[error("database.url: {0}")]
    DatabaseUrl(&'static str),
    #[error(
        "issuer: this node is configured with {configured:?} but the database records {recorded:?}; \
         every node sharing a database must use the one issuer (to move it on purpose: steward issuer adopt)"
    )]
    IssuerMismatch { configured: String, recorded: String },
    #[error("keys.encryption_key_file: {0}")]
    Kek(#[source] steward_jose::JoseError),
    #[error(
        "keys.encryption_key_file: {path} does not exist, but the database holds signing keys sealed \
         with a key-encryption key; restore that file (from a backup, or copy it from another node \
         sharing this database) rather than letting a new one be created"
    )]
    KekMissing { path: String },
    #[error(
        "keys.encryption_key_file: {path} cannot decrypt the stored signing key {kid}: it is not the \
         key-encryption key this database's keys were sealed with (likely another node's file, or the \
         file was replaced or recreated); use the original file, the same bytes on every node"
    )]
    KekMismatch { path: String, kid: String },
    #[error("keys: {0}")]
    Keys(#[from] crate::keyring::KeyRingError),
    #[error("keys.algorithm: {0}")]
    Algorithm(String),
    #[error("egress.extra_root_certs: cannot read {path}: {source}")]
    RootCert { path: String, source: std::io::Error },
    #[error("egress: {0}")]
    Egress(String),
    #[error("{0}")]
    Tls(#[from] crate::serve::TlsLoadError),
    #[error("clients: {0}")]
    Clients(String),
    #[error("governance: {0}")]
    Governance(String),
    #[error("dev.auto_approve_user: {0}")]
    Dev(String),
    #[error("{key}: cannot bind {addr}: {source}{hint}", hint = bind_hint(.source))]
    Bind {
        key: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What start-up did, for the summary the CLI prints.
#[derive(Debug, Clone)]
pub struct StartSummary {
    pub issuer: String,
    pub listen: SocketAddr,
    pub tls: bool,
    pub database: String,
    /// The SQLite file did not exist before this start (PostgreSQL: never).
    pub database_created: bool,
    pub kek_path: String,
    pub kek_created: bool,
    pub key: KeyRingStart,
    /// The private operations listener (`metrics.listen`), as bound.
    pub metrics_listen: Option<SocketAddr>,
}

/// A server ready to accept connections.
pub struct Prepared {
    pub state: AppState,
    pub listener: TcpListener,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Bound when `metrics.listen` is set: `/metrics`, `/readyz`, `/healthz`.
    pub metrics_listener: Option<TcpListener>,
    pub summary: StartSummary,
}

/// The guarded fetcher configured from the settings.
pub fn egress_from(settings: &Settings) -> Result<Egress, StartError> {
    let mut extra_root_certs_pem = Vec::new();
    for path in &settings.egress.extra_root_certs {
        let pem = std::fs::read(path).map_err(|source| StartError::RootCert {
            path: path.display().to_string(),
            source,
        })?;
        extra_root_certs_pem.push(pem);
    }
    let config = EgressConfig {
        allow_networks: settings.egress.allow_networks.clone(),
        extra_root_certs_pem,
        dns_servers: settings.egress.dns_servers.clone(),
        timeout: Duration::from_millis(settings.egress.timeout_ms),
        max_document_bytes: settings.egress.max_document_bytes,
        per_host_concurrency: settings.egress.per_host_concurrency,
        per_host_per_minute: settings.egress.per_host_per_minute,
        total_concurrency: settings.egress.total_concurrency,
        ..EgressConfig::default()
    };
    Egress::new(config).map_err(|e| StartError::Egress(e.to_string()))
}

/// The CIMD resolver configuration from the settings.
pub fn cimd_config(settings: &Settings) -> CimdConfig {
    let c = &settings.cimd;
    CimdConfig {
        min_cache_seconds: c.min_cache_seconds,
        max_cache_seconds: c.max_cache_seconds,
        allow_query: c.allow_query,
        allow_private_use_schemes: c.allow_private_use_schemes,
        cache_max_entries: c.cache_max_entries,
        cache_max_bytes: c.cache_max_bytes,
        negative_cache_seconds: c.negative_cache_seconds,
        ..CimdConfig::default()
    }
}

/// Opens the database, the key-encryption key and the key ring, builds the
/// state and binds the listener. Nothing is served yet.
pub async fn prepare(settings: Settings, clock: Arc<dyn Clock>) -> Result<Prepared, StartError> {
    let settings = Arc::new(settings);
    let issuer = settings.effective_issuer();
    let tls = settings.tls.as_ref().map(crate::serve::load_tls).transpose()?;

    if sqlite_names_no_file(&settings.database.url) {
        // SQLite would give each pooled connection its own empty temporary
        // database, and start-up would fail later, far from the cause.
        return Err(StartError::DatabaseUrl(
            "names no database file (write sqlite://PATH, e.g. sqlite://./steward-data/steward.db)",
        ));
    }
    // The listeners first: a start that cannot serve (a port in use) must
    // stop before it creates a database, a key-encryption key or a signing
    // key, or it leaves state behind that the next, corrected start would
    // mistake for its own.
    let listener = bind(settings.listen, "listen").await?;
    let listen = listener.local_addr().map_err(|source| StartError::Bind {
        key: "listen",
        addr: settings.listen,
        source,
    })?;
    let metrics_listener = match settings.metrics.listen {
        Some(addr) => Some(bind(addr, "metrics.listen").await?),
        None => None,
    };
    let metrics_listen = match &metrics_listener {
        Some(l) => Some(l.local_addr().map_err(|source| StartError::Bind {
            key: "metrics.listen",
            addr: settings.metrics.listen.unwrap_or(listen),
            source,
        })?),
        None => None,
    };

    let database_created = settings.database.sqlite_file().is_some_and(|f| !f.exists());
    let store = steward_store::connect_pooled(&settings.database.url, settings.database.pool())
        .await
        .map_err(StartError::Database)?;
    // Tokens carry the issuer as `iss` and resource servers compare it byte
    // for byte: a node with its own issuer would mint tokens the others'
    // resource servers reject. The first node records it; the rest match it.
    let recorded = store.claim_issuer(&issuer).await.map_err(StartError::Database)?;
    if recorded != issuer {
        return Err(StartError::IssuerMismatch {
            configured: issuer,
            recorded,
        });
    }
    let (kek, kek_created) = open_kek(&settings, store.as_ref()).await?;
    let algorithm: Algorithm = settings
        .keys
        .algorithm
        .parse()
        .map_err(|_| StartError::Algorithm(settings.keys.algorithm.clone()))?;
    let secret_key = kek.derive_key("steward/client-secret/v1");
    let (keys, key_start) = KeyRing::open(store.clone(), kek, clock.clone(), algorithm)
        .await
        .map_err(|e| match e {
            crate::keyring::KeyRingError::Key {
                kid,
                source: steward_jose::JoseError::Decryption,
            } => StartError::KekMismatch {
                path: settings.keys.encryption_key_file.display().to_string(),
                kid,
            },
            other => StartError::Keys(other),
        })?;
    let mut oauth = crate::oauth::OAuth::new(&settings, secret_key);
    if let Some(name) = &settings.dev.auto_approve_user {
        oauth.dev_user_id = Some(dev_user(store.as_ref(), name, clock.now()).await?);
        tracing::warn!(user = %name, "[dev] auto_approve_user is set: every authorization request is approved as this user");
    }

    // Before anything else is created: an invalid policy set or domain list
    // refuses the start, naming the file and position.
    let governance = Arc::new(
        crate::governance::build(&settings, store.clone(), clock.clone()).map_err(StartError::Governance)?,
    );
    let egress = egress_from(&settings)?;
    let fetcher: Arc<dyn DocumentFetcher> = Arc::new(egress.clone());
    let versions = Arc::new(DbVersionStore::new(
        store.clone(),
        clock.clone(),
        crate::cimd::UnusedLimits {
            max_clients: settings.cimd.max_unused_clients,
            max_versions: settings.cimd.max_unused_versions,
        },
        governance.settings().domains.clone(),
    ));
    let cimd = Arc::new(Resolver::new(
        fetcher,
        versions,
        clock.clone(),
        cimd_config(&settings),
    ));

    let metadata = crate::routes::discovery::metadata_document(
        &issuer,
        settings.cimd.enabled,
        settings.dcr.mode != steward_dcr::Mode::Off,
        &crate::oauth::resources::Resources::from_settings(&settings).all_scopes(),
    );
    let metadata = Bytes::from(metadata.to_string());

    let summary = StartSummary {
        metrics_listen,
        issuer: issuer.clone(),
        listen,
        tls: tls.is_some(),
        database: redact_url(&settings.database.url),
        database_created,
        kek_path: settings.keys.encryption_key_file.display().to_string(),
        kek_created,
        key: key_start,
    };
    let state = AppState::new(AppStateInner {
        issuer: Arc::from(issuer.as_str()),
        admin_token_digest: crate::routes::admin::token_digest(settings.admin.token.as_deref()),
        oauth: Arc::new(oauth),
        governance,
        refusals: crate::cimd::RefusalAudit::new(
            settings.cimd.refusal_audit_window_secs,
            settings.cimd.refusal_audit_max_hosts,
        ),
        settings,
        store,
        clock,
        keys: Arc::new(keys),
        egress,
        cimd,
        metadata,
    });
    crate::oauth::clients::sync_configured_clients(&state, &|var| std::env::var(var).ok())
        .await
        .map_err(|e| StartError::Clients(e.to_string()))?;
    Ok(Prepared {
        state,
        listener,
        tls,
        metrics_listener,
        summary,
    })
}

/// Binds `addr` for the setting `key`.
async fn bind(addr: SocketAddr, key: &'static str) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { key, addr, source })
}

/// What to try when a bind fails for a common reason.
fn bind_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => " (another process listens there: stop it or choose another port)",
        std::io::ErrorKind::AddrNotAvailable => " (no interface of this machine has that address)",
        std::io::ErrorKind::PermissionDenied => {
            " (ports below 1024 need privileges: use a higher port behind a proxy)"
        }
        _ => "",
    }
}

/// The key-encryption key, created only when the database holds no signing
/// key yet. A missing file beside a database full of sealed keys means the
/// original was lost or is elsewhere: creating a new one would not open
/// those keys, and every secret hash or key made with it afterwards would
/// be tied to the wrong file. Shared by `serve` and the CLI commands that
/// need the key (`keys rotate`, `clients create`).
pub async fn open_kek(
    settings: &Settings,
    store: &dyn steward_store::Store,
) -> Result<(Kek, bool), StartError> {
    let path = &settings.keys.encryption_key_file;
    if !path.exists()
        && !store
            .list_signing_keys()
            .await
            .map_err(StartError::Database)?
            .is_empty()
    {
        return Err(StartError::KekMissing {
            path: path.display().to_string(),
        });
    }
    Kek::load_or_create(path).map_err(StartError::Kek)
}

/// The user `[dev] auto_approve_user` names, created (with no usable
/// password) when it does not exist yet.
async fn dev_user(
    store: &dyn steward_store::Store,
    name: &str,
    now: steward_core::UnixTime,
) -> Result<String, StartError> {
    let dev = |e: String| StartError::Dev(e);
    if let Some(u) = store
        .get_user_by_name(name)
        .await
        .map_err(|e| dev(e.to_string()))?
    {
        return Ok(u.id);
    }
    let hash = crate::oauth::users::dummy_hash();
    let user = crate::oauth::users::create_user(store, name, hash, now)
        .await
        .map_err(|e| dev(e.to_string()))?;
    Ok(user.id)
}

/// Serves until `shutdown` completes; background upkeep (key reload and
/// retirement) runs alongside.
pub async fn run(prepared: Prepared, shutdown: impl std::future::Future<Output = ()>) -> std::io::Result<()> {
    let Prepared {
        state,
        listener,
        tls,
        metrics_listener,
        ..
    } = prepared;
    // The exporter keeps every histogram sample until they are folded into
    // buckets, which happens at a scrape or an upkeep; without a scraper the
    // samples of every request piled up (15 MB over a minute at 70,000
    // requests/s in docs/benchmarks.md). Fold them every few seconds.
    let metrics_upkeep = crate::metrics::handle().map(|handle| {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        })
    });
    let keys = state.keys.clone();
    let every = Duration::from_secs(state.settings.keys.reload_seconds.max(1));
    let upkeep = tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = keys.reload().await {
                tracing::warn!(error = %e, "signing key reload failed; keeping the current set");
            }
        }
    });
    let purge = crate::purge::spawn(state.clone());
    let reload = spawn_policy_reload(state.clone());
    let http = state.settings.http.clone();
    // One shutdown for both listeners: the operations listener stops when
    // the main one is told to, so a draining node reports itself unready
    // for no longer than the main listener still serves.
    let (stopping, stop) = tokio::sync::watch::channel(false);
    let operations = metrics_listener.map(|listener| {
        let app = crate::operations_router(state.clone());
        let http = http.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = crate::serve::serve(listener, None, app, &http, stopped).await {
                tracing::error!(error = %e, "the metrics listener failed");
            }
        })
    });
    let app = crate::router(state);
    let shutdown = async move {
        shutdown.await;
        let _ = stopping.send(true);
    };
    let result = crate::serve::serve(listener, tls, app, &http, shutdown).await;
    if let Some(task) = operations {
        let _ = task.await;
    }
    upkeep.abort();
    if let Some(task) = reload {
        task.abort();
    }
    if let Some(task) = purge {
        task.abort();
    }
    if let Some(task) = metrics_upkeep {
        task.abort();
    }
    result
}

/// How often a node looks for a `steward policy reload` made elsewhere.
const POLICY_GENERATION_POLL: Duration = Duration::from_secs(2);

/// Rereads `governance.policy_files` on SIGHUP, and when `steward policy
/// reload` (run on any host) has bumped the deployment's policy generation,
/// which every node sharing the database sees within
/// [`POLICY_GENERATION_POLL`] (issue 13 item 5). A valid set replaces the
/// running one at once; an invalid one is refused with its error and the
/// running set stays. Both outcomes are audited by the room.
fn spawn_policy_reload(state: crate::state::AppState) -> Option<tokio::task::JoinHandle<()>> {
    Some(tokio::spawn(async move {
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(|e| tracing::warn!(error = %e, "cannot listen for SIGHUP"))
            .ok();
        let mut seen = state.store.policy_generation().await.unwrap_or(0);
        let mut tick = tokio::time::interval(POLICY_GENERATION_POLL);
        tick.tick().await;
        loop {
            #[cfg(unix)]
            let cause = match hup.as_mut() {
                Some(h) => tokio::select! {
                    _ = h.recv() => "system:sighup",
                    _ = tick.tick() => "system:policy_reload",
                },
                None => {
                    tick.tick().await;
                    "system:policy_reload"
                }
            };
            #[cfg(not(unix))]
            let cause = {
                tick.tick().await;
                "system:policy_reload"
            };
            if cause == "system:policy_reload" {
                match state.store.policy_generation().await {
                    Ok(g) if g != seen => seen = g,
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not read the policy generation");
                        continue;
                    }
                }
            }
            match state.governance.reload(cause).await {
                Ok(ids) => tracing::info!(policies = ids.len(), cause, "policy set reloaded"),
                Err(e) => tracing::error!(error = %e, cause, "policy reload refused; the running set stays"),
            }
        }
    }))
}

/// `sqlite://` or `sqlite:` with no file name (and not `:memory:`).
fn sqlite_names_no_file(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return false;
    };
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or_default();
    path.is_empty() && !url.contains("mode=memory")
}

/// An error and its causes on one line, each cause once.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !line.contains(&text) {
            line = format!("{line}: {text}");
        }
        cause = c.source();
    }
    line.replace('\n', " ")
}

/// A database URL for display: any password is replaced.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("REDACTED"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sqlite_url_without_a_file_is_refused() {
        assert!(sqlite_names_no_file("sqlite://"));
        assert!(sqlite_names_no_file("sqlite:"));
        assert!(sqlite_names_no_file("sqlite://?mode=rwc"));
        assert!(!sqlite_names_no_file("sqlite://./steward-data/steward.db"));
        assert!(!sqlite_names_no_file("sqlite::memory:"));
        assert!(!sqlite_names_no_file("postgres://h/db"));
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:REDACTED@h/db"
        );
        assert_eq!(redact_url("sqlite://./x.db"), "sqlite://./x.db");
    }
}
