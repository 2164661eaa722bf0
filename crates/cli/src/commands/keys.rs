//! `steward keys list|rotate`: signing keys in the shared database, so a
//! rotation on one node reaches every node at its next reload.

use anyhow::{Context, Result};
use std::process::ExitCode;
use steward_core::{Clock, SystemClock};

use super::date;
use steward_jose::Algorithm;
use steward_server::keyring;
use steward_server::settings::Settings;
use steward_server::startup;

pub async fn list(settings: Settings) -> Result<ExitCode> {
    let store = super::room::store(&settings).await?;
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
        let state = if k.is_active() && k.may_sign_at(now) {
            "active"
        } else if k.is_active() && k.is_published_at(now) {
            "pending"
        } else if k.is_published_at(now) {
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
    let store = super::room::store_or_create(&settings).await?;
    let (kek, _) = startup::open_kek(&settings, store.as_ref()).await?;
    let algorithm: Algorithm = settings
        .keys
        .algorithm
        .parse()
        .map_err(|_| anyhow::anyhow!("keys.algorithm: unknown algorithm"))?;
    let now = SystemClock.now();
    let rotation = keyring::rotate(store.as_ref(), &kek, algorithm, now, &settings)
        .await
        .context("rotating the signing key")?;
    println!("new signing key: {algorithm} kid={}", rotation.kid);
    println!(
        "published now; it signs from {}, once every server has reloaded \
         (keys.reload_seconds {} s + keys.activation_margin_seconds {} s)",
        date(rotation.activates_at),
        settings.keys.reload_seconds,
        settings.keys.activation_margin_seconds
    );
    println!(
        "the previous key signs until then and stays published until {}, when every token it signed has expired",
        date(rotation.previous_retire_after)
    );
    Ok(ExitCode::SUCCESS)
}
