//! One module per subcommand.

pub mod cimd;
pub mod clients;
pub mod dcr;
pub mod issuer;
pub mod keys;
pub mod policy;
pub mod requests;
pub mod room;
pub mod serve;
pub mod users;

use steward_core::UnixTime;

/// An HTTP-date rendering of a stored time (a pure conversion, no clock read).
pub fn date(t: UnixTime) -> String {
    let secs = u64::try_from(t.seconds()).unwrap_or(0);
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}
