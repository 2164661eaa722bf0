//! The document checker behind `steward cimd check <url>`: fetch and validate
//! exactly as the resolver would, then explain every problem so a client
//! developer can fix the whole document in one pass.

use crate::client_id::ClientIdUrl;
use crate::fetcher::DocumentFetcher;
use crate::problem::{Problem, ValidationFailure};
use crate::validate::{ClientMetadata, ValidationPolicy, validate_document};
use serde::Serialize;
use std::fmt;
use steward_egress::{FetchRequest, FetchStatus};

/// The checker's verdict.
#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    pub url: String,
    pub ok: bool,
    pub problems: Vec<Problem>,
    /// Legal but inadvisable things (root path, no cache headers, loopback-only redirects).
    pub warnings: Vec<String>,
    pub metadata: Option<ClientMetadata>,
}

/// Checks the document at `raw_url` under `policy`.
pub async fn check(fetcher: &dyn DocumentFetcher, raw_url: &str, policy: &ValidationPolicy) -> CheckReport {
    let mut report = CheckReport {
        url: raw_url.to_owned(),
        ok: false,
        problems: Vec::new(),
        warnings: Vec::new(),
        metadata: None,
    };
    let id = match ClientIdUrl::parse(raw_url, &policy.url_rules()) {
        Ok(id) => id,
        Err(e) => {
            report
                .problems
                .push(Problem::with_rule(ValidationFailure::ClientIdUrl, e.reason(), e.to_string()));
            return report;
        }
    };
    if id.has_root_path() {
        report
            .warnings
            .push("the path is \"/\": allowed, but CIMD §3 says NOT RECOMMENDED".to_owned());
    }
    let response = match fetcher.fetch(&FetchRequest::metadata_document(id.url().clone())).await {
        Ok(r) => r,
        Err(e) => {
            report
                .problems
                .push(Problem::with_rule(ValidationFailure::Fetch, e.reason(), e.to_string()));
            return report;
        }
    };
    if matches!(response.status, FetchStatus::NotModified) {
        report.problems.push(Problem::with_rule(
            ValidationFailure::Fetch,
            "unexpected_not_modified",
            "the server answered 304 to an unconditional request",
        ));
        return report;
    }
    let cache = &response.cache;
    if cache.cache_control.is_none() && cache.expires.is_none() {
        report.warnings.push(
            "no Cache-Control or Expires header: Steward caches for its minimum lifetime".to_owned(),
        );
    }
    if cache
        .cache_control
        .as_deref()
        .is_some_and(|cc| cc.to_ascii_lowercase().contains("no-store"))
    {
        report.warnings.push(
            "Cache-Control: no-store makes every authorization fetch the document again".to_owned(),
        );
    }
    match validate_document(&id, &response.body, policy) {
        Ok(metadata) => {
            if metadata.loopback_only() {
                report.warnings.push(
                    "every redirect URI is a loopback URI: any local program can receive codes, \
                     so consent screens warn about this client"
                        .to_owned(),
                );
            }
            if metadata.client_uri.is_some() && !metadata.client_uri_same_origin {
                report.warnings.push(
                    "client_uri is on a different origin than client_id; it is shown as unverified".to_owned(),
                );
            }
            report.ok = true;
            report.metadata = Some(metadata);
        }
        Err(problems) => report.problems = problems,
    }
    report
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ok {
            writeln!(f, "OK: {} is a valid Client ID Metadata Document", self.url)?;
        } else {
            let n = self.problems.len();
            let plural = if n == 1 { "" } else { "s" };
            writeln!(
                f,
                "INVALID: {} is not a valid Client ID Metadata Document ({n} problem{plural})",
                self.url
            )?;
        }
        for p in &self.problems {
            writeln!(f, "- {p}")?;
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}
