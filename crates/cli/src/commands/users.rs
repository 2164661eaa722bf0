//! `steward users add|roles|list|delete`: local accounts and their
//! governance roles (operator, approver, auditor; set through the room). Passwords are read from
//! standard input (one line) or a terminal prompt without echo, never from
//! argv, where they would land in shell history and `ps` output.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;
use steward_core::{Clock, SystemClock};
use steward_governance::lifecycle::SystemCause;
use steward_governance::model::{GovernanceUser, Role};
use steward_governance::port::GovernanceStore;
use steward_governance::{By, Governance, GovernanceError};
use steward_server::oauth::users;
use steward_server::settings::Settings;

use super::room::{self, Output};

/// The new user's password: from a prompt without echo when standard input
/// is a terminal (asked twice), else one line of standard input.
fn read_password() -> Result<String> {
    let stdin = std::io::stdin();
    let password = if stdin.is_terminal() {
        let first = rpassword::prompt_password("Password: ").context("reading the password")?;
        let again = rpassword::prompt_password("Password again: ").context("reading the password")?;
        if first != again {
            bail!("the passwords do not match");
        }
        first
    } else {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if password.chars().count() < 12 {
        bail!("the password must be at least 12 characters");
    }
    Ok(password)
}

/// The room's role names, parsed before anything is created, so an unknown
/// role refuses the whole command.
fn parse_roles(roles: &[String]) -> Result<Vec<Role>> {
    roles
        .iter()
        .map(|r| Governance::parse_role(r).map_err(Into::into))
        .collect()
}

fn role_names(roles: &[Role]) -> Vec<&'static str> {
    roles.iter().map(|r| r.as_str()).collect()
}

fn user_json(u: &GovernanceUser) -> Value {
    json!({
        "username": u.username,
        "id": u.id,
        "disabled": u.disabled,
        "roles": role_names(&u.roles),
    })
}

async fn governance_user(store: &dyn GovernanceStore, name: &str) -> Result<GovernanceUser> {
    store
        .user_by_name(name)
        .await?
        .ok_or_else(|| GovernanceError::UnknownUser(name.to_owned()).into())
}

/// Who assigns roles: a person named with `--as` (the room requires the
/// operator role), else the local CLI itself, a trusted operator on the
/// database (`system:cli`; how the first operator is made).
fn by(actor: Option<&str>) -> By<'_> {
    match actor {
        Some(a) => By::User(a),
        None => By::System(SystemCause::Cli),
    }
}

pub async fn add(settings: Settings, name: &str, roles: &[String], output: Output) -> Result<ExitCode> {
    if !users::valid_username(name) {
        bail!("usernames are 1-64 characters of letters, digits, '.', '_', '-' and '@'");
    }
    let roles = parse_roles(roles)?;
    let password = read_password()?;
    let hash = tokio::task::spawn_blocking(move || users::hash_password(&password)).await??;
    // The room is opened before the account is created, so a configuration
    // it refuses leaves nothing behind; without roles it is not needed.
    let (store, room) = if roles.is_empty() {
        (room::store_or_create(&settings).await?, None)
    } else {
        let (store, room) = room::open_or_create(&settings).await?;
        (store, Some(room))
    };
    let user = users::create_user(store.as_ref(), name, hash, SystemClock.now()).await?;
    if let Some(room) = room {
        room.set_roles(By::System(SystemCause::Cli), name, &roles).await?;
    }
    let u = governance_user(store.as_ref(), name).await?;
    match output {
        Output::Json => room::print_json(&user_json(&u))?,
        Output::Text => {
            println!("created user {} (id {})", user.username, user.id);
            if !u.roles.is_empty() {
                println!("roles: {}", role_names(&u.roles).join(" "));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `steward users roles NAME [--role R ...] [--clear] [--as USER]`: replaces
/// the user's roles; with neither `--role` nor `--clear`, shows them.
pub async fn roles(
    settings: Settings,
    name: &str,
    roles: &[String],
    clear: bool,
    actor: Option<&str>,
    output: Output,
) -> Result<ExitCode> {
    let roles = parse_roles(roles)?;
    if clear && !roles.is_empty() {
        bail!("--clear and --role exclude each other");
    }
    let (store, room) = room::open(&settings).await?;
    let before = governance_user(store.as_ref(), name).await?;
    if clear || !roles.is_empty() {
        room.set_roles(by(actor), name, &roles).await?;
    }
    let after = governance_user(store.as_ref(), name).await?;
    match output {
        Output::Json => room::print_json(&user_json(&after))?,
        Output::Text => {
            let show = |r: &[Role]| {
                if r.is_empty() {
                    "none".to_owned()
                } else {
                    role_names(r).join(" ")
                }
            };
            if clear || !roles.is_empty() {
                println!(
                    "roles of {name}: {} (were {})",
                    show(&after.roles),
                    show(&before.roles)
                );
            } else {
                println!("roles of {name}: {}", show(&after.roles));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn list(settings: Settings, output: Output) -> Result<ExitCode> {
    let store = room::store(&settings).await?;
    let all = store.list_users().await?;
    let mut rows = Vec::with_capacity(all.len());
    for u in &all {
        rows.push(governance_user(store.as_ref(), &u.username).await?);
    }
    if output == Output::Json {
        room::print_json(&Value::Array(rows.iter().map(user_json).collect()))?;
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!("no users yet: `steward users add NAME`");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<24} {:<28} {:<9} ROLES", "USERNAME", "ID", "STATE");
    for u in rows {
        println!(
            "{:<24} {:<28} {:<9} {}",
            u.username,
            u.id,
            if u.disabled { "disabled" } else { "active" },
            if u.roles.is_empty() {
                "-".to_owned()
            } else {
                role_names(&u.roles).join(" ")
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Deletes a user. First the room passes each of their ownerships to the
/// next owner of the same kind, or marks the client orphaned (issue 13
/// item 3), each step audited.
pub async fn delete(settings: Settings, name: &str) -> Result<ExitCode> {
    let (store, room) = room::open(&settings).await?;
    let Some(user) = store.get_user_by_name(name).await? else {
        return Err(GovernanceError::UnknownUser(name.to_owned()).into());
    };
    for s in room.on_user_disabled(name).await? {
        match s.successor {
            Some(next) => println!("{}: {} owner is now {next}", s.client_id, s.kind),
            None => println!(
                "{}: no {} owner left: the client is orphaned",
                s.client_id, s.kind
            ),
        }
    }
    store.delete_user(&user.id).await?;
    println!("deleted user {name} (sessions, grants and tokens removed)");
    Ok(ExitCode::SUCCESS)
}
