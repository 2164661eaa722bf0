//! `steward dcr tokens …`: initial access tokens for protected dynamic
//! registration (RFC 7591 §3, issue 14), and `steward dcr list`, the
//! registered clients with where they came from.
//!
//! A token is shown once, when it is created; the database keeps only its
//! SHA-256 (it has 256 random bits, so a fast hash suffices and lets the
//! registration endpoint find it).

use anyhow::{Result, bail};
use serde_json::{Value, json};
use std::process::ExitCode;
use steward_core::secret::token_hash;
use steward_core::{Clock, SystemClock, TrustTier};
use steward_server::settings::Settings;
use steward_store::{InitialToken, NewAuditEvent};

use super::room::{self, Output};

/// `steward dcr tokens create [--max-uses N] [--expires-in D] [--tier T]`.
pub async fn create_token(
    settings: Settings,
    max_uses: Option<u32>,
    expires_in: Option<&str>,
    tier: &str,
    output: Output,
) -> Result<ExitCode> {
    let tier: TrustTier = match tier.parse() {
        Ok(TrustTier::Trusted) | Err(_) => bail!(
            "--tier {tier:?}: use unverified or verified (trusted is for clients an operator declares in configuration)"
        ),
        Ok(t) => t,
    };
    if max_uses == Some(0) {
        bail!("--max-uses must be at least 1");
    }
    let expires_in = expires_in.map(room::parse_duration).transpose()?;
    let store = room::store_or_create(&settings).await?;
    let now = SystemClock.now();
    let token = steward_dcr::registered::new_initial_token();
    let hash = token_hash(token.expose());
    let id = steward_dcr::registered::initial_token_id(&hash);
    let record = InitialToken {
        id: id.clone(),
        token_hash: hash,
        tier,
        max_uses,
        uses: 0,
        expires_at: expires_in.map(|s| now.plus_secs(s)),
        created_at: now,
        created_by: "system:cli".to_owned(),
        revoked_at: None,
    };
    let event = NewAuditEvent {
        at: now,
        actor: "system:cli".to_owned(),
        action: "dcr.initial_token_created".to_owned(),
        client_id: None,
        subject: Some(id.clone()),
        detail: json!({ "tier": tier.as_str(), "max_uses": max_uses, "expires_at": record.expires_at.map(|t| t.0) })
            .to_string(),
    };
    store.create_initial_token(&record, &event).await?;
    if output == Output::Json {
        let mut v = token_json(&record);
        v["token"] = json!(token.expose());
        room::print_json(&v)?;
    } else {
        println!("initial access token {id} (tier {}):", tier.as_str());
        println!("{}", token.expose());
        println!(
            "shown once: give it to the registering party, who sends it as `Authorization: Bearer` to /register"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn token_json(t: &InitialToken) -> Value {
    json!({
        "id": t.id,
        "tier": t.tier.as_str(),
        "max_uses": t.max_uses,
        "uses": t.uses,
        "expires_at": t.expires_at.map(room::time_json),
        "created_at": room::time_json(t.created_at),
        "revoked_at": t.revoked_at.map(room::time_json),
    })
}

/// `steward dcr tokens list`.
pub async fn list_tokens(settings: Settings, output: Output) -> Result<ExitCode> {
    let store = room::store(&settings).await?;
    let tokens = store.list_initial_tokens().await?;
    if output == Output::Json {
        room::print_json(&Value::Array(tokens.iter().map(token_json).collect()))?;
        return Ok(ExitCode::SUCCESS);
    }
    let now = SystemClock.now();
    println!(
        "{:<22} {:<11} {:<9} {:<10} EXPIRES",
        "ID", "TIER", "USES", "STATE"
    );
    for t in &tokens {
        let state = if t.revoked_at.is_some() {
            "revoked"
        } else if t.usable(now) {
            "usable"
        } else {
            "spent"
        };
        println!(
            "{:<22} {:<11} {:<9} {:<10} {}",
            t.id,
            t.tier.as_str(),
            match t.max_uses {
                Some(m) => format!("{}/{m}", t.uses),
                None => t.uses.to_string(),
            },
            state,
            t.expires_at.map_or_else(|| "never".to_owned(), super::date)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `steward dcr tokens revoke ID`.
pub async fn revoke_token(settings: Settings, id: &str) -> Result<ExitCode> {
    let store = room::store(&settings).await?;
    let now = SystemClock.now();
    let event = NewAuditEvent {
        at: now,
        actor: "system:cli".to_owned(),
        action: "dcr.initial_token_revoked".to_owned(),
        client_id: None,
        subject: Some(id.to_owned()),
        detail: "{}".to_owned(),
    };
    if !store.revoke_initial_token(id, now, &event).await? {
        bail!("no usable initial access token {id:?} (see `steward dcr tokens list`)");
    }
    println!("revoked {id}: registrations presenting it are refused from now on, on every node");
    Ok(ExitCode::SUCCESS)
}

/// `steward dcr list`: every registered client with its source, software
/// id, backing and last use (the inventory's DCR view, issue 14 §3).
pub async fn list_registrations(settings: Settings, output: Output) -> Result<ExitCode> {
    let store = room::store(&settings).await?;
    let regs = store.list_dcr_registrations().await?;
    let mut rows = Vec::with_capacity(regs.len());
    for r in &regs {
        let client = store.get_client(&r.client_id).await?;
        rows.push((r, client));
    }
    if output == Output::Json {
        let v: Vec<Value> = rows
            .iter()
            .map(|(r, c)| {
                json!({
                    "client_id": r.client_id,
                    "client_name": c.as_ref().and_then(|c| c.display_name.clone()),
                    "state": c.as_ref().map(|c| c.state.as_str()),
                    "source_address": r.source_address,
                    "software_id": r.software_id,
                    "statement_issuer": r.statement_issuer,
                    "initial_token_id": r.initial_token_id,
                    "registered_at": room::time_json(r.registered_at),
                    "last_authorized_at": r.last_authorized_at.map(room::time_json),
                    "last_token_at": r.last_token_at.map(room::time_json),
                })
            })
            .collect();
        room::print_json(&Value::Array(v))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<28} {:<9} {:<16} {:<20} {:<22} LAST TOKEN",
        "CLIENT_ID", "STATE", "SOURCE", "SOFTWARE_ID", "BACKED BY"
    );
    for (r, c) in rows {
        println!(
            "{:<28} {:<9} {:<16} {:<20} {:<22} {}",
            r.client_id,
            c.as_ref().map_or("-", |c| c.state.as_str()),
            r.source_address.as_deref().unwrap_or("-"),
            r.software_id.as_deref().unwrap_or("-"),
            r.initial_token_id
                .as_deref()
                .or(r.statement_issuer.as_deref())
                .unwrap_or("anonymous"),
            r.last_token_at.map_or_else(|| "never".to_owned(), super::date)
        );
    }
    Ok(ExitCode::SUCCESS)
}
