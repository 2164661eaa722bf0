//! `steward issuer show|adopt`: the issuer recorded in the shared database.
//!
//! `steward serve` refuses to start when its issuer differs from the
//! recorded one (every node must mint tokens with the same `iss`). Moving a
//! deployment to a new issuer is a deliberate act: stop every node, adopt
//! the new issuer with the new configuration, start the nodes again.

use anyhow::{Context, Result};
use std::process::ExitCode;
use steward_server::settings::Settings;

pub async fn show(settings: Settings) -> Result<ExitCode> {
    let store = super::room::store(&settings).await?;
    let configured = settings.effective_issuer();
    // Reading goes through the claim: a database with none yet records the
    // configured one, exactly as the first `steward serve` would.
    let recorded = store
        .claim_issuer(&configured)
        .await
        .context("reading the issuer")?;
    println!("recorded issuer:   {recorded}");
    println!("configured issuer: {configured}");
    if recorded == configured {
        Ok(ExitCode::SUCCESS)
    } else {
        println!("they differ: `steward serve` with this configuration refuses to start");
        Ok(ExitCode::FAILURE)
    }
}

pub async fn adopt(settings: Settings) -> Result<ExitCode> {
    let store = super::room::store_or_create(&settings).await?;
    let issuer = settings.effective_issuer();
    let previous = store
        .replace_issuer(&issuer)
        .await
        .context("recording the issuer")?;
    match previous {
        Some(p) if p == issuer => println!("issuer unchanged: {issuer}"),
        Some(p) => {
            println!("issuer is now {issuer} (was {p})");
            println!(
                "tokens issued as {p} are no longer this deployment's; start every node with the new issuer"
            );
        }
        None => println!("issuer recorded: {issuer}"),
    }
    Ok(ExitCode::SUCCESS)
}
