//! The scheduled purge (issue 11 item 12): `purge_expired` had no caller, so
//! expired codes, sessions and tokens, and everything anonymous requests
//! leave behind, stayed forever.
//!
//! Every `purge.interval_secs` a pass deletes, at most
//! `purge.max_rows_per_table` rows per table: expired codes, sessions,
//! access tokens, refresh tokens and empty families, assertion jtis and
//! attempt counters; refused-document audit events older than
//! `purge.refusal_retention_secs`; logos not fetched for
//! `purge.logo_retention_secs`; metadata-document clients nobody used,
//! first seen more than `purge.unused_client_retention_secs` ago, with
//! their versions. A pass that hits the bound is followed at once by
//! another, up to [`MAX_PASSES_IN_A_ROW`].
//!
//! Several nodes on one database may purge at the same time: each delete
//! removes rows matching a condition and a row already gone is no error, so
//! concurrent passes only share the work.

use std::time::Duration;

use steward_store::{PurgePlan, PurgeReport, StoreError};

use crate::settings::PurgeSettings;
use crate::state::AppState;

/// Back-to-back passes allowed when each hits its bound.
pub const MAX_PASSES_IN_A_ROW: usize = 10;

/// The plan of a pass at `now`.
pub fn plan(s: &PurgeSettings, now: steward_core::UnixTime) -> PurgePlan {
    let ago = |secs: u64| now.plus_secs(-i64::try_from(secs).unwrap_or(i64::MAX));
    PurgePlan {
        now,
        refusals_before: ago(s.refusal_retention_secs),
        logos_before: ago(s.logo_retention_secs),
        unused_clients_before: ago(s.unused_client_retention_secs),
        max_rows_per_table: s.max_rows_per_table.max(1),
    }
}

/// Runs passes until one finds less than its bound (or the cap on passes),
/// after writing the refused-document aggregates whose window is over.
/// Counted in `steward_purge_rows_total{kind}`.
pub async fn purge_now(state: &AppState) -> Result<PurgeReport, StoreError> {
    crate::cimd::flush_refusals(state).await;
    let mut total = PurgeReport::default();
    for _ in 0..MAX_PASSES_IN_A_ROW {
        let report = state
            .store
            .purge(&plan(&state.settings.purge, state.clock.now()))
            .await?;
        for (kind, n) in [
            ("expired", report.expired),
            ("refusal_events", report.refusal_events),
            ("logos", report.logos),
            ("unused_clients", report.unused_clients),
        ] {
            metrics::counter!("steward_purge_rows_total", "kind" => kind).increment(n);
        }
        total.expired += report.expired;
        total.refusal_events += report.refusal_events;
        total.logos += report.logos;
        total.unused_clients += report.unused_clients;
        total.more = report.more;
        if !report.more {
            break;
        }
    }
    Ok(total)
}

/// Starts the schedule, unless `purge.interval_secs` is 0.
pub fn spawn(state: AppState) -> Option<tokio::task::JoinHandle<()>> {
    let every = state.settings.purge.interval_secs;
    if every == 0 {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(every));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match purge_now(&state).await {
                Ok(r) if r.total() > 0 => tracing::info!(
                    expired = r.expired,
                    refusal_events = r.refusal_events,
                    logos = r.logos,
                    unused_clients = r.unused_clients,
                    "purge pass"
                ),
                Ok(_) => {}
                Err(e) => {
                    metrics::counter!("steward_purge_failures_total").increment(1);
                    tracing::warn!(error = %e, "purge pass failed; retrying at the next interval");
                }
            }
            // Registrations made while `dcr.mode` was on still age out after it is off.
            {
                match crate::oauth::registration::sweep(&state, every).await {
                    Ok(r) if !r.deleted.is_empty() || !r.expired.is_empty() => tracing::info!(
                        deleted_unused = r.deleted.len(),
                        expired_idle = r.expired.len(),
                        "registration sweep"
                    ),
                    Ok(_) => {}
                    Err(e) => {
                        metrics::counter!("steward_purge_failures_total").increment(1);
                        tracing::warn!(error = ?e, "registration sweep failed; retrying at the next interval");
                    }
                }
            }
        }
    }))
}
