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
    println!("  database: {} (migrations applied)", s.database);
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
    println!(
        "  metadata: {}/.well-known/oauth-authorization-server",
        origin_of(&s.issuer)
    );
    startup::run(prepared, steward_server::serve::shutdown_signal()).await?;
    println!("Steward stopped.");
    Ok(ExitCode::SUCCESS)
}

fn origin_of(issuer: &str) -> String {
    match url::Url::parse(issuer) {
        Ok(u) => u.origin().ascii_serialization(),
        Err(_) => issuer.to_owned(),
    }
}
