//! Logging through `tracing`: readable by default, JSON on request. The
//! level comes from `STEWARD_LOG` (e.g. `info`, `steward_server=debug`).
//! Nothing logs a secret or token: such values are `Secret`s whose Debug is
//! redacted, and handlers log client ids and reasons, never credentials.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

use crate::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("STEWARD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
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
