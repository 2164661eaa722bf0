//! `steward clients create|list|show|delete`: pre-registered clients kept in
//! the database (configuration `[[clients]]` entries are synced there at
//! start and show up here too).
//!
//! A confidential client's secret is generated here, printed once, and only
//! its keyed hash (HMAC-SHA256 under a key derived from the key-encryption
//! key, see `client_auth`) is stored: the database never holds the secret.

use anyhow::{Context, Result, bail};
use std::process::ExitCode;
use steward_core::secret::random_token;
use steward_core::{Clock, RedirectUriRules, SystemClock};

use super::date;
use steward_jose::Kek;
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
    // Issued ids are opaque and never start with `https://`, so they can never
    // be mistaken for a metadata-document URL.
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
    let secret = (!req.public).then(random_token);
    let secret_hash = match &secret {
        Some(s) => {
            let (kek, _) = Kek::load_or_create(&settings.keys.encryption_key_file)
                .context("keys.encryption_key_file")?;
            let key = kek.derive_key("steward/client-secret/v1");
            Some(hash_client_secret(&key, s.expose()))
        }
        None => None,
    };
    let rules = RedirectUriRules {
        allow_private_use_schemes: settings.cimd.allow_private_use_schemes,
    };
    let record = pre_registered_record(&entry, secret_hash.clone(), rules, now)?;
    let store = steward_store::connect(&settings.database.url)
        .await
        .context("database.url")?;
    if store.get_client(&client_id).await?.is_some() {
        bail!("a client with id {client_id:?} already exists");
    }
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

pub async fn list(settings: Settings) -> Result<ExitCode> {
    let store = steward_store::connect(&settings.database.url)
        .await
        .context("database.url")?;
    let all = store.list_clients(&ClientFilter::default()).await?;
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

pub async fn show(settings: Settings, client_id: &str) -> Result<ExitCode> {
    let store = steward_store::connect(&settings.database.url)
        .await
        .context("database.url")?;
    let Some(c) = store.get_client(client_id).await? else {
        eprintln!("no client with id {client_id:?}");
        return Ok(ExitCode::FAILURE);
    };
    let reg: Registration = serde_json::from_str(&c.registration).unwrap_or_default();
    println!("client_id:      {}", c.client_id);
    println!("kind:           {}", c.kind);
    println!("name:           {}", c.display_name.as_deref().unwrap_or("-"));
    println!("state:          {}", c.state);
    println!("trust tier:     {}", c.trust_tier);
    println!(
        "authentication: {}",
        if c.secret_hash.is_some() {
            "client secret (keyed hash stored)"
        } else {
            "none (public client)"
        }
    );
    println!("first seen:     {}", date(c.first_seen));
    println!("last seen:      {}", date(c.last_seen));
    let list = |v: &[String]| if v.is_empty() { "-".to_owned() } else { v.join(" ") };
    println!("grant types:    {}", list(&reg.grant_types));
    println!("scopes:         {}", list(&reg.scopes));
    println!("redirect URIs:  {}", list(&reg.redirect_uris));
    let owner = [
        ("organization", &c.owner_organization),
        ("business owner", &c.owner_business),
        ("technical owner", &c.owner_technical),
        ("contact", &c.owner_contact),
    ];
    for (label, value) in owner {
        if let Some(v) = value {
            println!("{label:<15} {v}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn delete(settings: Settings, client_id: &str) -> Result<ExitCode> {
    let store = steward_store::connect(&settings.database.url)
        .await
        .context("database.url")?;
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
