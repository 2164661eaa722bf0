//! What the governance commands share: opening the room over the configured
//! database, the `--output` choice, durations and owner arguments.
//!
//! The CLI works on the database directly as a trusted local operator
//! (issue 13 item 7) and records the `--as` principal; every rule — roles,
//! separation of duties, legal transitions, what an approval may grant — is
//! the room's (`steward_governance::Governance`). Nothing here decides: it
//! parses, calls and prints.

use anyhow::{Context, Result, anyhow, bail};
use clap::ValueEnum;
use serde_json::Value;
use std::sync::Arc;
use steward_core::{SystemClock, UnixTime};
use steward_governance::Governance;
use steward_governance::model::OwnerKind;
use steward_server::settings::Settings;
use steward_store::Store;

/// How a command prints what it found or did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns with a header row, or `label: value` lines.
    #[default]
    Text,
    /// One JSON value: an object, or an array for lists.
    Json,
}

/// The `--output` option every governance command takes.
#[derive(Clone, Copy, Debug, clap::Args)]
pub struct OutputArg {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// The configured database, which must exist already, migrations applied.
///
/// Every command but `serve`, `users add`, `clients create`, `keys rotate`,
/// `issuer adopt` and `policy reload` reads or changes what is already there: run in the
/// wrong directory, or with a mistyped `database.url`, it used to create an
/// empty database (and its directory) and report that it had found nothing.
/// It now says there is nothing there and creates no file.
pub async fn store(settings: &Settings) -> Result<Arc<dyn Store>> {
    let exists = steward_store::database_exists(&settings.database.url)
        .await
        .context("database.url")?;
    if !exists {
        match settings.database.sqlite_file() {
            Some(file) => bail!(
                "database.url: no database at {} yet, so nothing to read there (check --config and \
                 database.url; `steward serve`, `steward users add` and `steward clients create` create it)",
                file.display()
            ),
            None => bail!(
                "database.url: the PostgreSQL database has no Steward tables yet, so nothing to read there \
                 (check --config and database.url; `steward serve`, `steward users add` and `steward clients \
                 create` create them)"
            ),
        }
    }
    store_or_create(settings).await
}

/// The configured database, created when missing (the commands that write
/// the first rows: `users add`, `clients create`, `keys rotate`, `issuer
/// adopt`, `policy reload`).
pub async fn store_or_create(settings: &Settings) -> Result<Arc<dyn Store>> {
    steward_store::connect(&settings.database.url)
        .await
        .context("database.url")
}

/// The governance room over the configured database, as `steward serve`
/// builds it (an invalid configured policy set is refused, naming the file,
/// line and column).
pub async fn open(settings: &Settings) -> Result<(Arc<dyn Store>, Governance)> {
    let store = store(settings).await?;
    with_room(settings, store)
}

/// [`open`] over a database created when missing, for `users add` (the
/// first user usually comes before the first start) and `policy reload`.
pub async fn open_or_create(settings: &Settings) -> Result<(Arc<dyn Store>, Governance)> {
    let store = store_or_create(settings).await?;
    with_room(settings, store)
}

fn with_room(settings: &Settings, store: Arc<dyn Store>) -> Result<(Arc<dyn Store>, Governance)> {
    let room = steward_server::governance::build(settings, store.clone(), Arc::new(SystemClock))
        .map_err(|e| anyhow!("{e}"))?;
    Ok((store, room))
}

/// Prints `value` as pretty JSON on standard output.
pub fn print_json(value: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `90d`, `12h`, `30m`, `3600s` → seconds. A unit is required, so `90`
/// cannot be read as 90 days by one operator and 90 seconds by another.
pub fn parse_duration(text: &str) -> Result<i64> {
    let bad = || anyhow!("duration {text:?}: expected a number with a unit, like 90d, 12h, 30m or 3600s");
    let t = text.trim();
    let unit = t.chars().last().ok_or_else(bad)?;
    let factor = match unit {
        'd' => 86_400,
        'h' => 3_600,
        'm' => 60,
        's' => 1,
        _ => return Err(bad()),
    };
    let n: i64 = t[..t.len() - 1].parse().map_err(|_| bad())?;
    if n <= 0 {
        bail!("duration {text:?} must be positive");
    }
    n.checked_mul(factor)
        .ok_or_else(|| anyhow!("duration {text:?} is too long"))
}

/// `USER:business|technical`, in the form `[[clients]]` owners use.
pub fn parse_owner(text: &str) -> Result<(String, OwnerKind)> {
    steward_server::governance::parse_owner(text).map_err(|e| anyhow!("{e}"))
}

/// A stored time in JSON: seconds since the Unix epoch (text output shows
/// the HTTP date).
pub fn time_json(t: UnixTime) -> Value {
    Value::from(t.0)
}

/// A list rendered for a text column: `-` when empty.
pub fn words(v: &[String]) -> String {
    if v.is_empty() { "-".to_owned() } else { v.join(" ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("90d").unwrap(), 90 * 86_400);
        assert_eq!(parse_duration("12h").unwrap(), 12 * 3_600);
        assert_eq!(parse_duration("30m").unwrap(), 1_800);
        assert_eq!(parse_duration("3600s").unwrap(), 3_600);
        for bad in ["90", "d", "", "-1d", "0h", "1.5d", "1w", "99999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
