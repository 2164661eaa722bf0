//! `steward clients …`: the inventory of every client Steward knows
//! (pre-registered ones kept in the database, configuration `[[clients]]`
//! entries synced there at start, metadata-document and dynamic clients),
//! and its governance — lifecycle moves and owners — through the room
//! (`Governance::suspend`, `resume`, `revoke`, `add_owner`, `remove_owner`).
//!
//! A confidential client's secret is generated here, printed once, and only
//! its keyed hash (HMAC-SHA256 under a key derived from the key-encryption
//! key, see `client_auth`) is stored: the database never holds the secret.

use anyhow::{Result, bail};
use std::process::ExitCode;
use steward_core::secret::random_token;
use steward_core::{Clock, RedirectUriRules, SystemClock};

use super::date;
use super::room::{self, Output, time_json, words};
use serde_json::{Value, json};
use steward_governance::model::ClientView;
use steward_governance::ownership::OwnershipStatus;
use steward_governance::port::GovernanceStore;
use steward_governance::{Governance, GovernanceError};
use steward_server::oauth::client_auth::hash_client_secret;
use steward_server::oauth::clients::{Registration, pre_registered_record};
use steward_server::settings::{ClientSettings, Settings};
use steward_store::ClientFilter;

/// What `steward clients create` was asked for.
pub struct CreateRequest {
    pub client_id: Option<String>,
    pub name: Option<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub redirect_uris: Vec<String>,
    pub public: bool,
}

pub async fn create(settings: Settings, req: CreateRequest) -> Result<ExitCode> {
    let now = SystemClock.now();
    cli_rules(&req)?;
    // Issued ids are opaque and never start with `https://`, so they can never
    // be mistaken for a metadata-document URL.
    let named = req.client_id.is_some();
    let client_id = req
        .client_id
        .unwrap_or_else(|| format!("stw_{}", &random_token().expose()[..22]));
    let entry = ClientSettings {
        client_id: client_id.clone(),
        name: req.name,
        secret_env: None,
        secret_hash: None,
        grant_types: req.grant_types,
        scopes: req.scopes,
        redirect_uris: req.redirect_uris,
        ..Default::default()
    };
    let rules = RedirectUriRules {
        allow_private_use_schemes: settings.cimd.allow_private_use_schemes,
    };
    // Checked before anything is opened or created, and with a placeholder
    // hash (only its presence matters to the checks): a refused request
    // leaves no database or key-encryption key behind, and the error never
    // names a generated id that was not created.
    let placeholder = (!req.public).then(String::new);
    if let Err(e) = pre_registered_record(&entry, placeholder, rules, now) {
        if named {
            bail!("client {client_id:?}: {}", e.reason);
        }
        bail!("{}", e.reason);
    }
    let store = room::store_or_create(&settings).await?;
    if store.get_client(&client_id).await?.is_some() {
        bail!("a client with id {client_id:?} already exists");
    }
    let secret = (!req.public).then(random_token);
    let secret_hash = match &secret {
        Some(s) => {
            let (kek, _) = steward_server::startup::open_kek(&settings, store.as_ref()).await?;
            let key = kek.derive_key("steward/client-secret/v1");
            Some(hash_client_secret(&key, s.expose()))
        }
        None => None,
    };
    let record = pre_registered_record(&entry, secret_hash.clone(), rules, now)?;
    store.upsert_client(&record).await?;
    println!("created client {client_id}");
    match (secret, secret_hash) {
        (Some(secret), Some(hash)) => {
            println!("client_secret: {}", secret.expose());
            println!("  shown once: Steward keeps only its keyed hash");
            println!("secret_hash: {hash}");
            println!("  for a [[clients]] entry in configuration; valid with this key-encryption key only");
        }
        _ => println!("public client: it authenticates with client_id alone and must use PKCE"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The rules `clients create` can state in its own flags, so the operator
/// reads what to type rather than a configuration file's terms.
fn cli_rules(req: &CreateRequest) -> Result<()> {
    if let Some(id) = &req.client_id
        && steward_cimd::looks_like_metadata_document_id(id)
    {
        bail!(
            "--client-id {id:?} is an https URL, which names a Client ID Metadata Document, never a \
             pre-registered client (leave --client-id out for a generated id)"
        );
    }
    let authorization_code =
        req.grant_types.is_empty() || req.grant_types.iter().any(|g| g == "authorization_code");
    if authorization_code && req.redirect_uris.is_empty() {
        bail!(
            "--redirect-uri is required for authorization_code{} (add --redirect-uri URI, or choose \
             another --grant-type, e.g. client_credentials)",
            if req.grant_types.is_empty() {
                ", the default grant type"
            } else {
                ""
            }
        );
    }
    if req.public && req.grant_types.iter().any(|g| g == "client_credentials") {
        bail!("client_credentials needs a client secret: drop --public (the secret is printed once)");
    }
    Ok(())
}

pub async fn list(settings: Settings, output: Output) -> Result<ExitCode> {
    let store = room::store(&settings).await?;
    let all = store.list_clients(&ClientFilter::default()).await?;
    if output == Output::Json {
        let rows: Vec<Value> = all
            .iter()
            .map(|c| {
                json!({
                    "client_id": c.client_id,
                    "kind": c.kind.to_string(),
                    "state": c.state.to_string(),
                    "trust_tier": c.trust_tier.to_string(),
                    "name": c.display_name,
                })
            })
            .collect();
        room::print_json(&Value::Array(rows))?;
        return Ok(ExitCode::SUCCESS);
    }
    if all.is_empty() {
        println!("no clients yet: `steward clients create --help`");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<48} {:<18} {:<10} {:<11} NAME",
        "CLIENT ID", "KIND", "STATE", "TRUST"
    );
    for c in all {
        println!(
            "{:<48} {:<18} {:<10} {:<11} {}",
            c.client_id,
            c.kind.to_string(),
            c.state.to_string(),
            c.trust_tier.to_string(),
            c.display_name.as_deref().unwrap_or("-")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Who answers for a client, as JSON: organization, contact, owners by
/// username, and the room's verdict (owned / unowned / orphaned).
fn ownership_json(view: &ClientView, status: &OwnershipStatus) -> Value {
    let missing: Vec<&str> = match status {
        OwnershipStatus::Orphaned { missing } => missing.iter().map(|k| k.as_str()).collect(),
        _ => Vec::new(),
    };
    json!({
        "organization": view.ownership.organization,
        "contact": view.ownership.contact,
        "owners": view
            .ownership
            .owners
            .iter()
            .map(|o| json!({ "username": o.username, "kind": o.kind.as_str() }))
            .collect::<Vec<_>>(),
        "status": status.as_str(),
        "orphaned": matches!(status, OwnershipStatus::Orphaned { .. }),
        "missing": missing,
    })
}

/// The ownership status in words, for text output.
fn status_text(status: &OwnershipStatus) -> String {
    match status {
        OwnershipStatus::Owned => "owned (a business and a technical owner)".to_owned(),
        OwnershipStatus::Unowned => "unowned: the operator is accountable".to_owned(),
        OwnershipStatus::Orphaned { missing } => {
            let kinds: Vec<&str> = missing.iter().map(|k| k.as_str()).collect();
            format!("ORPHANED: no {} owner", kinds.join(" or "))
        }
    }
}

fn print_ownership(view: &ClientView, status: &OwnershipStatus) {
    println!(
        "organization:   {}",
        view.ownership.organization.as_deref().unwrap_or("-")
    );
    println!(
        "contact:        {}",
        view.ownership.contact.as_deref().unwrap_or("-")
    );
    if view.ownership.owners.is_empty() {
        println!("owners:         -");
    }
    for (i, o) in view.ownership.owners.iter().enumerate() {
        let label = if i == 0 { "owners:" } else { "" };
        println!("{label:<15} {} ({})", o.username, o.kind);
    }
    println!("ownership:      {}", status_text(status));
}

async fn view(
    room: &Governance,
    store: &dyn GovernanceStore,
    client_id: &str,
) -> Result<(ClientView, OwnershipStatus)> {
    let view = store
        .client_view(client_id)
        .await?
        .ok_or_else(|| GovernanceError::UnknownClient(client_id.to_owned()))?;
    let status = room.ownership_status(&view);
    Ok((view, status))
}

pub async fn show(settings: Settings, client_id: &str, output: Output) -> Result<ExitCode> {
    let (store, room) = room::open(&settings).await?;
    let Some(c) = store.get_client(client_id).await? else {
        return Err(GovernanceError::UnknownClient(client_id.to_owned()).into());
    };
    let (view, status) = view(&room, store.as_ref(), client_id).await?;
    let reg: Registration = serde_json::from_str(&c.registration).unwrap_or_default();
    let authentication = if c.secret_hash.is_some() {
        "client secret (keyed hash stored)"
    } else {
        "none (public client)"
    };
    if output == Output::Json {
        let approvals: Vec<Value> = view
            .approvals
            .iter()
            .map(|a| {
                json!({
                    "id": a.id,
                    "resource": a.resource,
                    "scopes": a.scopes,
                    "metadata_digest": a.metadata_digest,
                    "approved_at": time_json(a.approved_at),
                    "expires_at": a.expires_at.map(time_json),
                    "request_id": a.request_id,
                    "self_approved": a.self_approved,
                })
            })
            .collect();
        room::print_json(&json!({
            "client_id": c.client_id,
            "kind": c.kind.to_string(),
            "name": c.display_name,
            "state": view.state.to_string(),
            "trust_tier": c.trust_tier.to_string(),
            "authentication": authentication,
            "first_seen": time_json(c.first_seen),
            "last_seen": time_json(c.last_seen),
            "grant_types": reg.grant_types,
            "scopes": reg.scopes,
            "redirect_uris": reg.redirect_uris,
            "metadata_digest": view.metadata_digest,
            "ownership": ownership_json(&view, &status),
            "approvals": approvals,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("client_id:      {}", c.client_id);
    println!("kind:           {}", c.kind);
    println!("name:           {}", c.display_name.as_deref().unwrap_or("-"));
    println!("state:          {}", view.state);
    println!("trust tier:     {}", c.trust_tier);
    println!("authentication: {authentication}");
    println!("first seen:     {}", date(c.first_seen));
    println!("last seen:      {}", date(c.last_seen));
    println!("grant types:    {}", words(&reg.grant_types));
    println!("scopes:         {}", words(&reg.scopes));
    println!("redirect URIs:  {}", words(&reg.redirect_uris));
    print_ownership(&view, &status);
    for a in &view.approvals {
        println!(
            "approval:       {} {} on {} (ends {})",
            a.id,
            words(&a.scopes),
            a.resource,
            a.expires_at.map(date).unwrap_or_else(|| "never".to_owned())
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The lifecycle moves an operator makes from the CLI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Move {
    Suspend,
    Resume,
    Revoke,
}

/// `steward clients suspend|resume|revoke ID --as USER --reason TEXT`:
/// the room checks that the move is legal from the client's state and that
/// `actor` may make it, then makes it compare-and-set with its audit event.
pub async fn lifecycle(
    settings: Settings,
    client_id: &str,
    mv: Move,
    actor: &str,
    reason: &str,
    output: Output,
) -> Result<ExitCode> {
    let (store, room) = room::open(&settings).await?;
    let before = store.client_view(client_id).await?.map(|v| v.state);
    match mv {
        Move::Suspend => room.suspend(client_id, actor, reason).await?,
        Move::Resume => room.resume(client_id, actor, reason).await?,
        Move::Revoke => room.revoke(client_id, actor, reason).await?,
    }
    let (view, _) = view(&room, store.as_ref(), client_id).await?;
    match output {
        Output::Json => room::print_json(&json!({
            "client_id": client_id,
            "previous_state": before.map(|s| s.to_string()),
            "state": view.state.to_string(),
            "by": actor,
            "reason": reason.trim(),
        }))?,
        Output::Text => {
            let was = before.map(|s| format!(" (was {s})")).unwrap_or_default();
            println!("client {client_id} is now {}{was}", view.state);
            match mv {
                Move::Suspend => println!(
                    "no authorization, code, refresh or client_credentials on any node from the next request; \
                     refresh families are kept for `steward clients resume`"
                ),
                Move::Revoke => {
                    println!("its refresh families and access tokens are revoked; revoked is final")
                }
                Move::Resume => {}
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `steward clients owners ID [--add USER:KIND ...] [--remove USER[:KIND] ...] --as USER`.
/// Every change is checked before any is made (`Governance::change_owners`),
/// so a bad argument anywhere changes nothing; each is audited on its own.
pub async fn owners(
    settings: Settings,
    client_id: &str,
    add: &[String],
    remove: &[String],
    actor: Option<&str>,
    output: Output,
) -> Result<ExitCode> {
    let adds = add
        .iter()
        .map(|o| room::parse_owner(o))
        .collect::<Result<Vec<_>>>()?;
    let removes = remove
        .iter()
        .map(|r| match r.rsplit_once(':') {
            Some(_) => room::parse_owner(r).map(|(u, k)| (u, Some(k))),
            None => Ok((r.clone(), None)),
        })
        .collect::<Result<Vec<_>>>()?;
    let (store, room) = room::open(&settings).await?;
    if !adds.is_empty() || !removes.is_empty() {
        let actor = actor.ok_or_else(|| anyhow::anyhow!("--as USER is required to change owners"))?;
        room.change_owners(client_id, &adds, &removes, actor).await?;
        if output == Output::Text {
            for (user, kind) in &adds {
                println!("added {user} as {kind} owner of {client_id}");
            }
            for (user, kind) in &removes {
                match kind {
                    Some(k) => println!("removed {user} as {k} owner of {client_id}"),
                    None => println!("removed {user} as owner of {client_id}"),
                }
            }
        }
    }
    let (view, status) = view(&room, store.as_ref(), client_id).await?;
    match output {
        Output::Json => {
            let mut v = ownership_json(&view, &status);
            v["client_id"] = Value::from(client_id);
            room::print_json(&v)?;
        }
        Output::Text => {
            println!("client_id:      {client_id}");
            print_ownership(&view, &status);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn delete(settings: Settings, client_id: &str) -> Result<ExitCode> {
    let store = room::store(&settings).await?;
    if !store.delete_client(client_id).await? {
        eprintln!("no client with id {client_id:?}");
        return Ok(ExitCode::FAILURE);
    }
    println!("deleted client {client_id} (its grants, codes and tokens removed)");
    if settings.clients.iter().any(|c| c.client_id == client_id) {
        println!(
            "note: a [[clients]] entry in the configuration names it; it returns at the next start \
             unless the entry is removed"
        );
    }
    if steward_cimd::looks_like_metadata_document_id(client_id) {
        println!(
            "note: a metadata-document client is met again at its next authorization request; \
             set `cimd.require_listed` to keep unlisted documents out"
        );
    }
    Ok(ExitCode::SUCCESS)
}
