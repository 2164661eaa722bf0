//! `steward users add|list|delete`: local accounts. Passwords are read from
//! standard input (one line) or a terminal prompt without echo, never from
//! argv, where they would land in shell history and `ps` output.

use anyhow::{Context, Result, bail};
use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;
use steward_core::{Clock, SystemClock};
use steward_server::oauth::users;
use steward_server::settings::Settings;

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

pub async fn add(settings: Settings, name: &str) -> Result<ExitCode> {
    if !users::valid_username(name) {
        bail!("usernames are 1-64 characters of letters, digits, '.', '_', '-' and '@'");
    }
    let password = read_password()?;
    let hash = tokio::task::spawn_blocking(move || users::hash_password(&password)).await??;
    let store = steward_store::connect(&settings.database.url)
        .await
        .context("database.url")?;
    let user = users::create_user(store.as_ref(), name, hash, SystemClock.now()).await?;
    println!("created user {} (id {})", user.username, user.id);
    Ok(ExitCode::SUCCESS)
}

pub async fn list(settings: Settings) -> Result<ExitCode> {
    let store = steward_store::connect(&settings.database.url)
        .await
        .context("database.url")?;
    let all = store.list_users().await?;
    if all.is_empty() {
        println!("no users yet: `steward users add NAME`");
    }
    for u in all {
        println!(
            "{:<24} {:<28} {}",
            u.username,
            u.id,
            if u.disabled { "disabled" } else { "active" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn delete(settings: Settings, name: &str) -> Result<ExitCode> {
    let store = steward_store::connect(&settings.database.url)
        .await
        .context("database.url")?;
    let Some(user) = store.get_user_by_name(name).await? else {
        eprintln!("no user named {name:?}");
        return Ok(ExitCode::FAILURE);
    };
    store.delete_user(&user.id).await?;
    println!("deleted user {name} (sessions, grants and tokens removed)");
    Ok(ExitCode::SUCCESS)
}
