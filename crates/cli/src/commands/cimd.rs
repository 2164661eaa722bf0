//! `steward cimd check URL`: the checker for client developers and operators.

use anyhow::Result;
use std::process::ExitCode;
use steward_server::settings::Settings;
use steward_server::startup;
use steward_server::state::cimd_policy;

pub async fn check(settings: Settings, url: &str) -> Result<ExitCode> {
    let egress = match startup::egress_from(&settings) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("steward: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let report = steward_cimd::check(&egress, url, &cimd_policy(&settings)).await;
    println!("{report}");
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
