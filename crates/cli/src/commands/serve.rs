//! `steward serve`.

use anyhow::Result;
use std::process::ExitCode;
use std::sync::Arc;
use steward_core::SystemClock;
use steward_server::settings::Settings;
use steward_server::startup;

pub async fn run(settings: Settings) -> Result<ExitCode> {
    let prepared = match startup::prepare(settings, Arc::new(SystemClock)).await {
        Ok(p) => p,
        Err(e) => {
            // One line naming the setting at fault.
            eprintln!("steward: cannot start: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let s = &prepared.summary;
    let scheme = if s.tls { "https" } else { "http" };
    println!(
        "Steward {} listening on {scheme}://{}",
        env!("CARGO_PKG_VERSION"),
        s.listen
    );
    println!("  issuer:   {}", s.issuer);
    println!(
        "  database: {} ({}, migrations applied)",
        s.database,
        if s.database_created { "created" } else { "opened" }
    );
    println!(
        "  key-encryption key: {} ({})",
        s.kek_path,
        if s.kek_created {
            "created, mode 0600"
        } else {
            "loaded"
        }
    );
    println!(
        "  signing key: {} kid={} ({})",
        s.key.algorithm,
        s.key.active_kid,
        if s.key.created { "created" } else { "loaded" }
    );
    if let Some(m) = s.metrics_listen {
        println!("  metrics:  http://{m}/metrics (private listener; not served on the main one)");
    }
    println!("  metadata: {}", metadata_url(&s.issuer));
    startup::run(prepared, steward_server::serve::shutdown_signal()).await?;
    println!("Steward stopped.");
    Ok(ExitCode::SUCCESS)
}

/// Where the RFC 8414 metadata is served: `/.well-known/oauth-authorization-server`
/// inserted between the issuer's host and its path (RFC 8414 §3.1).
fn metadata_url(issuer: &str) -> String {
    let origin = url::Url::parse(issuer)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| issuer.to_owned());
    format!(
        "{origin}{}",
        steward_server::routes::discovery::well_known_path(issuer)
    )
}

#[cfg(test)]
mod tests {
    use super::metadata_url;

    #[test]
    fn metadata_url_inserts_the_well_known_before_the_issuer_path() {
        assert_eq!(
            metadata_url("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            metadata_url("https://auth.example.com/tenant1"),
            "https://auth.example.com/.well-known/oauth-authorization-server/tenant1"
        );
        assert_eq!(
            metadata_url("https://auth.example.com/a/b/"),
            "https://auth.example.com/.well-known/oauth-authorization-server/a/b"
        );
    }
}
