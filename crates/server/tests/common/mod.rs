//! Shared support for the server's integration tests: a real Steward,
//! in-process, on 127.0.0.1 with an ephemeral port, a fresh SQLite database
//! and key files in a temporary directory, and a manual clock.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;

pub mod flows;
use steward_core::{ManualClock, UnixTime};
use steward_server::settings::Settings;
use steward_server::startup;
use steward_server::state::AppState;
use tokio::sync::oneshot;

pub struct TestServer {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub state: AppState,
    pub clock: ManualClock,
    pub dir: Arc<tempfile::TempDir>,
    /// The private operations listener, when `metrics.listen` is set.
    pub metrics_addr: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// Settings for a test server: loopback, ephemeral port, files under `dir`.
pub fn test_settings(dir: &std::path::Path) -> Settings {
    let mut s = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Settings::default()
    };
    s.database.url = format!("sqlite://{}/steward.db", dir.display());
    s.keys.encryption_key_file = dir.join("kek");
    s
}

impl TestServer {
    /// Starts a server with default test settings.
    pub async fn start() -> TestServer {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let settings = test_settings(dir.path());
        Self::start_with(settings, dir).await
    }

    /// Starts a server with `settings` (listen should be 127.0.0.1:0). The
    /// issuer, when empty, becomes `http://127.0.0.1:PORT`.
    pub async fn start_with(mut settings: Settings, dir: Arc<tempfile::TempDir>) -> TestServer {
        let clock = ManualClock::new(UnixTime(1_800_000_000));
        // Bind first so the issuer can name the real port.
        let probe = std::net::TcpListener::bind(settings.listen).unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        settings.listen = addr;
        let prepared = startup::prepare(settings, Arc::new(clock.clone()))
            .await
            .expect("server prepares");
        let addr = prepared.summary.listen;
        let metrics_addr = prepared.summary.metrics_listen;
        let state = prepared.state.clone();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(startup::run(prepared, async move {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            base: format!("http://{addr}"),
            state,
            clock,
            dir,
            metrics_addr,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends the shutdown signal and waits for the server to finish.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(t) => t.await.unwrap(),
            None => Ok(()),
        }
    }
}

/// An HTTP client that never uses a proxy and never follows redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A URL to a fresh, empty PostgreSQL schema on the server at `base`, or
/// `None` (after saying why) when no server answers — unless `CI=true`,
/// where an unreachable PostgreSQL fails the test.
pub async fn postgres_schema_url(base: &str) -> Option<String> {
    use sqlx::Connection;
    let mut conn = match sqlx::PgConnection::connect(base).await {
        Ok(c) => c,
        Err(e) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true but PostgreSQL at {base} is unreachable: {e}");
            }
            eprintln!("skipping: PostgreSQL at {base} is unreachable ({e}); set STEWARD_TEST_POSTGRES_URL");
            return None;
        }
    };
    let schema = format!(
        "srv_{}",
        steward_core::secret::random_token().expose()[..12]
            .to_ascii_lowercase()
            .replace('-', "_")
    );
    sqlx::query(&format!("CREATE SCHEMA \"{schema}\""))
        .execute(&mut conn)
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
}

/// Drops the schema a [`postgres_schema_url`] URL names.
pub async fn drop_schema(base: &str, url: &str) {
    use sqlx::Connection;
    let schema = url
        .rsplit_once("search_path%3D")
        .map(|(_, s)| s.split('&').next().unwrap_or(s))
        .unwrap();
    assert!(schema.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    let mut conn = sqlx::PgConnection::connect(base).await.unwrap();
    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&mut conn)
        .await
        .unwrap();
}
