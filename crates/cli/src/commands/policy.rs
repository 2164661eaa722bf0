//! `steward policy show-default|check|explain|impact|reload`: the Cedar
//! policy set above identity (issue 13 item 5, docs/policy.md). Validation,
//! decisions and impact are the room's (`PolicyEngine`, `Governance`); this
//! module picks the files, calls and prints.

use anyhow::{Result, anyhow};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use steward_core::{Clock, SystemClock};
use steward_governance::lifecycle::SystemCause;
use steward_governance::model::system_actor;
use steward_governance::policy::{PolicyConfig, PolicyError};
use steward_governance::{Action, DecideRequest, GovernanceError, PolicyEngine, UserContext};
use steward_server::settings::Settings;

use super::room::{self, Output, words};

pub fn show_default(output: Output) -> Result<ExitCode> {
    let text = PolicyEngine::show_default();
    match output {
        Output::Json => room::print_json(&json!({ "source": "<default>", "text": text }))?,
        Output::Text => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `steward policy check [FILES]`: the default set (unless
/// `governance.include_default_policies = false`) plus `files`, or the
/// configured `governance.policy_files` when none are given, validated
/// against the schema. Needs no database. Every error is printed as
/// `file:line:column: message`; any error exits 1.
pub fn check(settings: &Settings, files: Vec<PathBuf>, output: Output) -> Result<ExitCode> {
    let files = if files.is_empty() {
        settings.governance.policy_files.clone()
    } else {
        files
    };
    let config = PolicyConfig {
        include_default: settings.governance.include_default_policies,
        files,
    };
    let engine = PolicyEngine::with_default_set().map_err(|e| anyhow!("{e}"))?;
    let result = config.sources().and_then(|sources| engine.check(sources));
    match result {
        Ok(set) => {
            let ids = set.policy_ids();
            match output {
                Output::Json => room::print_json(&json!({
                    "valid": true,
                    "policies": ids
                        .iter()
                        .map(|id| json!({ "id": id, "source": set.origin_of(id) }))
                        .collect::<Vec<_>>(),
                }))?,
                Output::Text => {
                    println!("policy set valid: {} policies", ids.len());
                    for id in &ids {
                        println!("  {id:<40} {}", set.origin_of(id).unwrap_or("-"));
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(PolicyError::Malformed(diags)) => {
            match output {
                Output::Json => room::print_json(&json!({
                    "valid": false,
                    "errors": diags
                        .iter()
                        .map(|d| json!({ "file": d.file, "line": d.line, "column": d.column, "message": d.message }))
                        .collect::<Vec<_>>(),
                }))?,
                Output::Text => {
                    for d in &diags {
                        eprintln!("{d}");
                    }
                }
            }
            eprintln!(
                "steward: malformed policy: {} error{}",
                diags.len(),
                if diags.len() == 1 { "" } else { "s" }
            );
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}

/// What `steward policy explain` was asked.
pub struct ExplainArgs {
    pub client: String,
    pub resource: Option<String>,
    pub scopes: Vec<String>,
    pub action: String,
    pub user: Option<String>,
}

/// The decision for one (client, resource, scopes, action) and the
/// policies that made it, from the room, with no side effect: no request is
/// opened, nothing is written.
pub async fn explain(settings: Settings, args: ExplainArgs, output: Output) -> Result<ExitCode> {
    let action: Action = args.action.parse().map_err(|_| {
        anyhow!(
            "unknown action {:?} (authorize, redeem_code, refresh, client_credentials, register)",
            args.action
        )
    })?;
    let (store, room) = room::open(&settings).await?;
    let resource = match args.resource {
        Some(r) => r,
        None => match room.settings().resources.as_slice() {
            [only] => only.uri.clone(),
            _ => {
                return Err(anyhow!(
                    "--resource is required: several resources are configured"
                ));
            }
        },
    };
    let user = match &args.user {
        Some(name) => {
            let u = store
                .user_by_name(name)
                .await?
                .ok_or_else(|| GovernanceError::UnknownUser(name.clone()))?;
            Some(UserContext {
                id: u.id,
                username: u.username,
            })
        }
        None => None,
    };
    let e = room
        .explain(&DecideRequest {
            client_id: &args.client,
            action,
            resource: &resource,
            scopes: &args.scopes,
            user: user.as_ref(),
            address: None,
            facts: None,
        })
        .await?;
    if output == Output::Json {
        room::print_json(&json!({
            "client_id": args.client,
            "resource": resource,
            "action": action.as_str(),
            "user": args.user,
            "granted": e.decision.granted,
            "scopes": e.scopes.iter().map(|t| json!({
                "scope": t.scope,
                "granted": t.granted,
                "reason": t.reason.map(|r| r.as_str()),
                "policy_ids": t.policy_ids,
            })).collect::<Vec<_>>(),
            "approval_needed": e.decision.approval.as_ref().map(|a| json!({
                "scopes": a.scopes,
                "metadata_digest": a.against,
            })),
            "policy_errors": e.decision.policy_errors.iter().map(|f| json!({
                "scope": f.scope, "policy_id": f.policy_id, "message": f.message,
            })).collect::<Vec<_>>(),
            "policies": e.origins.iter().map(|(id, src)| json!({ "id": id, "source": src })).collect::<Vec<_>>(),
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("client:   {}", args.client);
    println!("resource: {resource}");
    println!("action:   {action}");
    if let Some(u) = &args.user {
        println!("user:     {u}");
    }
    println!("granted:  {}", words(&e.decision.granted));
    println!();
    println!("{:<24} {:<9} {:<16} POLICIES", "SCOPE", "DECISION", "REASON");
    for t in &e.scopes {
        println!(
            "{:<24} {:<9} {:<16} {}",
            t.scope,
            if t.granted { "granted" } else { "refused" },
            t.reason.map(|r| r.as_str()).unwrap_or("-"),
            words(&t.policy_ids)
        );
    }
    if let Some(a) = &e.decision.approval {
        println!();
        println!(
            "an approval would grant: {} (bound to metadata digest {})",
            words(&a.scopes),
            a.against.as_deref().unwrap_or("-")
        );
    }
    for f in &e.decision.policy_errors {
        println!("policy error on {}: {} {}", f.scope, f.policy_id, f.message);
    }
    if !e.origins.is_empty() {
        println!();
        println!("{:<40} SOURCE", "POLICY");
        for (id, src) in &e.origins {
            println!("{id:<40} {src}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `steward policy impact FILES`: the candidate set (the default set unless
/// excluded, plus `files`) against the running one, for every client in
/// the inventory, every configured resource and every action.
pub async fn impact(settings: Settings, files: Vec<PathBuf>, output: Output) -> Result<ExitCode> {
    let (_store, room) = room::open(&settings).await?;
    let rows = room.impact(&files).await?;
    if output == Output::Json {
        room::print_json(&Value::Array(
            rows.iter()
                .map(|r| {
                    json!({
                        "client_id": r.client_id,
                        "resource": r.resource,
                        "action": r.action.as_str(),
                        "gained": r.gained,
                        "lost": r.lost,
                    })
                })
                .collect(),
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<48} {:<30} {:<18} {:<24} LOST",
        "CLIENT ID", "RESOURCE", "ACTION", "GAINED"
    );
    for r in &rows {
        println!(
            "{:<48} {:<30} {:<18} {:<24} {}",
            r.client_id,
            r.resource,
            r.action.as_str(),
            words(&r.gained),
            words(&r.lost)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `steward policy reload`: validates the configured set through the room
/// (an invalid set is refused with its error, exit 1, nothing changed), then
/// bumps the policy generation in the database, which every running node
/// sharing it polls and answers by reloading its own set.
pub async fn reload(settings: Settings, output: Output) -> Result<ExitCode> {
    let (store, room) = room::open_or_create(&settings).await?;
    let ids = room.reload(&system_actor(SystemCause::Cli.as_str())).await?;
    let generation = store.request_policy_reload(SystemClock.now()).await?;
    match output {
        Output::Json => room::print_json(&json!({
            "valid": true,
            "policies": ids,
            "generation": generation,
        }))?,
        Output::Text => {
            println!("policy set valid: {} policies", ids.len());
            println!(
                "reload requested (policy generation {generation}): every node sharing the database reloads at its next poll"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
