//! Logging through `tracing`: readable by default, JSON on request. The
//! level comes from `STEWARD_LOG` (e.g. `info`, `steward_server=debug`).
//! Nothing logs a secret or token: such values are `Secret`s whose Debug is
//! redacted, and handlers log client ids and reasons, never credentials.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

use crate::LogFormat;

/// The default filter. PostgreSQL's informational notices (sqlx logs them
/// at info) are held back: the migrator's `CREATE TABLE IF NOT EXISTS`
/// made every start and every CLI command print `relation
/// "_sqlx_migrations" already exists, skipping` (issue 15 item 4).
/// Notices of warning level and above still show.
const DEFAULT_FILTER: &str = "info,sqlx::postgres::notice=warn";

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("STEWARD_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        // Colour only for a terminal: escape codes in a log file or journal are noise.
        LogFormat::Human => builder
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
