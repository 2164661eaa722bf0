//! `steward cimd check URL`: the checker for client developers and operators.

use anyhow::Result;
use std::process::ExitCode;
use steward_cimd::CheckReport;
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
    print!("{report}");
    for hint in hints(url, &report) {
        println!("hint: {hint}");
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What would change the verdict, for the problems a setting or a rewrite of
/// the URL decides, naming the host and the setting: the checker's rules say
/// what is wrong, these say what the operator or the client developer can do.
fn hints(url: &str, report: &CheckReport) -> Vec<String> {
    let parsed = url::Url::parse(url).ok();
    let host = parsed
        .as_ref()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| url.to_owned());
    let mut hints = Vec::new();
    for p in &report.problems {
        let hint = match p.rule {
            "blocked_address" => format!(
                "{host} resolves to a special-purpose address (private, loopback, link-local, …), which \
                 Steward never fetches from by default; for an internal client you trust, add its network \
                 to egress.allow_networks (e.g. egress.allow_networks = [\"10.20.0.0/16\"])"
            ),
            "client_id_not_canonical" => match &parsed {
                Some(u) => format!(
                    "the canonical form of this URL is {u}: publish the document there and use exactly \
                     that string as client_id"
                ),
                None => continue,
            },
            "client_id_query" => {
                format!("{host}: set cimd.allow_query = true to accept client_id URLs with a query string")
            }
            "dns_failure" | "no_addresses" => format!(
                "{host} did not resolve; check the name, or egress.dns_servers if Steward should ask \
                 another nameserver"
            ),
            _ => continue,
        };
        if !hints.contains(&hint) {
            hints.push(hint);
        }
    }
    hints
}

#[cfg(test)]
mod tests {
    use super::*;
    use steward_cimd::{Problem, ValidationFailure};

    fn report(rule: &'static str) -> CheckReport {
        CheckReport {
            url: String::new(),
            ok: false,
            problems: vec![Problem {
                rule,
                kind: ValidationFailure::Fetch,
                member: None,
                message: "x".to_owned(),
            }],
            warnings: Vec::new(),
            metadata: None,
        }
    }

    #[test]
    fn a_blocked_address_names_the_host_and_egress_allow_networks() {
        let h = hints("https://agent.internal/c.json", &report("blocked_address"));
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(
            h[0].starts_with("agent.internal resolves to a special-purpose address"),
            "{h:?}"
        );
        assert!(h[0].contains("egress.allow_networks"), "{h:?}");
    }

    #[test]
    fn a_non_canonical_url_gets_its_canonical_form() {
        let h = hints("https://Agent.Example/c.json", &report("client_id_not_canonical"));
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h[0].contains("https://agent.example/c.json"), "{h:?}");
    }

    #[test]
    fn a_problem_no_setting_changes_gets_no_hint() {
        assert!(hints("https://a.example/c", &report("client_name_required")).is_empty());
    }
}
