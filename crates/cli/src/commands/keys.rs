//! `steward keys list|rotate`: signing keys in the shared database, so a
//! rotation on one node reaches every node at its next reload.

use anyhow::{Context, Result};
use std::process::ExitCode;
use steward_core::{Clock, SystemClock};

use super::date;
use steward_jose::{Algorithm, Kek};
use steward_server::keyring;
use steward_server::settings::Settings;

pub async fn list(settings: Settings) -> Result<ExitCode> {
    let store = steward_store::connect(&settings.database.url)
        .await
        .context("database.url")?;
    let now = SystemClock.now();
    let keys = store.list_signing_keys().await.context("listing signing keys")?;
    if keys.is_empty() {
        println!("no signing keys yet: `steward serve` creates the first one");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<44} {:<6} {:<10} {:<30} RETIRE AFTER",
        "KID", "ALG", "STATE", "CREATED"
    );
    for k in keys {
        let state = if k.is_active() {
            "active"
        } else if keyring::is_published(&k, now) {
            "published"
        } else if k.activated_at.is_none() {
            "inactive"
        } else {
            "retired"
        };
        println!(
            "{:<44} {:<6} {:<10} {:<30} {}",
            k.kid,
            k.algorithm,
            state,
            date(k.created_at),
            k.retire_after.map(date).unwrap_or_else(|| "-".to_owned())
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn rotate(settings: Settings) -> Result<ExitCode> {
    let store = steward_store::connect(&settings.database.url)
        .await
        .context("database.url")?;
    let (kek, _) =
        Kek::load_or_create(&settings.keys.encryption_key_file).context("keys.encryption_key_file")?;
    let algorithm: Algorithm = settings
        .keys
        .algorithm
        .parse()
        .map_err(|_| anyhow::anyhow!("keys.algorithm: unknown algorithm"))?;
    let now = SystemClock.now();
    let kid = keyring::rotate(store.as_ref(), &kek, algorithm, now, &settings)
        .await
        .context("rotating the signing key")?;
    println!("new active signing key: {algorithm} kid={kid}");
    println!(
        "the previous key stays published until {}, when every token it signed has expired",
        date(keyring::retire_after(now, &settings))
    );
    println!(
        "running servers pick the new key up within keys.reload_seconds ({} s)",
        settings.keys.reload_seconds
    );
    Ok(ExitCode::SUCCESS)
}
