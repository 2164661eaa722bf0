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
    /// Legal but inadvisable things (root path, no cache headers, loopback-only
    /// redirects), and each redirect URI Steward drops as unusable.
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
            report.problems.push(Problem::with_rule(
                ValidationFailure::ClientIdUrl,
                e.reason(),
                e.to_string(),
            ));
            return report;
        }
    };
    if id.has_root_path() {
        report
            .warnings
            .push("the path is \"/\": allowed, but CIMD §3 says NOT RECOMMENDED".to_owned());
    }
    let response = match fetcher
        .fetch(&FetchRequest::metadata_document(id.url().clone()))
        .await
    {
        Ok(r) => r,
        Err(e) => {
            // Named, because the operator reading it must know which host
            // (and so which DNS answer or network) to look at.
            let host = id.url().host_str().unwrap_or_default();
            report.problems.push(Problem::with_rule(
                ValidationFailure::Fetch,
                e.reason(),
                format!("fetching from {host}: {e}"),
            ));
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
        report
            .warnings
            .push("no Cache-Control or Expires header: Steward caches for its minimum lifetime".to_owned());
    }
    if cache
        .cache_control
        .as_deref()
        .is_some_and(|cc| cc.to_ascii_lowercase().contains("no-store"))
    {
        report
            .warnings
            .push("Cache-Control: no-store makes every authorization fetch the document again".to_owned());
    }
    match validate_document(&id, &response.body, policy) {
        Ok(metadata) => {
            // Each entry Steward will not use, so the developer learns why a
            // redirect URI they listed never works (the rest still do).
            for d in &metadata.dropped_redirect_uris {
                report.warnings.push(d.to_string());
            }
            if metadata.loopback_only() {
                report.warnings.push(
                    "every redirect URI is a loopback URI: any local program can receive codes, \
                     so consent screens warn about this client"
                        .to_owned(),
                );
            }
            if metadata.client_uri.is_some() && !metadata.client_uri_same_origin {
                report.warnings.push(
                    "client_uri is on a different origin than client_id; it is shown as unverified"
                        .to_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use steward_egress::{CacheHeaders, FetchError, FetchResponse};

    const URL: &str = "https://client.example/oauth/client.json";

    /// Serves one fixed answer.
    struct Fixed {
        body: &'static str,
        cache_control: Option<&'static str>,
        fail: bool,
    }

    #[async_trait]
    impl DocumentFetcher for Fixed {
        async fn fetch(&self, req: &FetchRequest) -> Result<FetchResponse, FetchError> {
            assert!(req.validators.is_none(), "the checker never sends validators");
            if self.fail {
                return Err(FetchError::BadStatus { status: 404 });
            }
            Ok(FetchResponse {
                status: FetchStatus::Ok,
                body: bytes::Bytes::from_static(self.body.as_bytes()),
                content_type: Some("application/json".into()),
                cache: CacheHeaders {
                    cache_control: self.cache_control.map(str::to_owned),
                    expires: None,
                    date: None,
                    age: None,
                    etag: None,
                    last_modified: None,
                },
                peer: "127.0.0.2:443".parse().unwrap(),
            })
        }
    }

    const GOOD: &str = r#"{"client_id":"https://client.example/oauth/client.json","client_name":"Example","redirect_uris":["https://client.example/cb"]}"#;

    #[tokio::test]
    async fn a_good_document_is_reported_good() {
        let f = Fixed {
            body: GOOD,
            cache_control: Some("max-age=3600"),
            fail: false,
        };
        let report = check(&f, URL, &ValidationPolicy::default()).await;
        assert!(report.ok, "{report}");
        assert!(report.problems.is_empty());
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        assert_eq!(
            report.to_string(),
            format!("OK: {URL} is a valid Client ID Metadata Document\n")
        );
        assert_eq!(report.metadata.unwrap().client_name, "Example");
    }

    #[tokio::test]
    async fn every_problem_is_explained_with_its_rule() {
        let f = Fixed {
            body: r#"{"client_id":"https://evil.example/c","client_secret":"x","redirect_uris":["http://localhost/cb"]}"#,
            cache_control: None,
            fail: false,
        };
        let report = check(&f, URL, &ValidationPolicy::default()).await;
        assert!(!report.ok);
        let text = report.to_string();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some(format!("INVALID: {URL} is not a valid Client ID Metadata Document (3 problems)").as_str())
        );
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("- [client_id_mismatch] client_id: ")
        );
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("- [client_name_required] client_name: ")
        );
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("- [forbidden_member] client_secret: ")
        );
        assert!(lines.next().unwrap().starts_with("warning: no Cache-Control"));
    }

    #[tokio::test]
    async fn url_and_fetch_failures_are_problems_too() {
        let f = Fixed {
            body: GOOD,
            cache_control: None,
            fail: true,
        };
        let bad_url = check(&f, "https://client.example/c#x", &ValidationPolicy::default()).await;
        assert_eq!(bad_url.problems[0].rule, "client_id_fragment");
        assert!(bad_url.to_string().contains("- [client_id_fragment] "));
        let not_found = check(&f, URL, &ValidationPolicy::default()).await;
        assert_eq!(not_found.problems[0].rule, "bad_status");
        assert!(
            not_found.problems[0]
                .message
                .starts_with("fetching from client.example: "),
            "{not_found}"
        );
        assert!(!not_found.ok);
    }

    /// Issue 11 item 4: the MCP inspector's document (two private-use
    /// schemes and one loopback URI) is usable, and the report names each
    /// entry Steward will not use and why.
    #[tokio::test]
    async fn dropped_redirect_uris_are_reported_each_with_its_reason() {
        const INSPECTOR: &str = r#"{"client_id":"https://client.example/oauth/client.json","client_name":"Inspector","redirect_uris":["cursor://anysphere.cursor-retrieval/cb","com.example.inspector:/cb","http://localhost:6274/oauth/callback"]}"#;
        let f = Fixed {
            body: INSPECTOR,
            cache_control: Some("max-age=3600"),
            fail: false,
        };
        let report = check(&f, URL, &ValidationPolicy::default()).await;
        assert!(report.ok, "{report}");
        let metadata = report.metadata.as_ref().unwrap();
        assert_eq!(metadata.redirect_uris.len(), 1);
        assert_eq!(
            metadata.redirect_uris[0].as_str(),
            "http://localhost:6274/oauth/callback"
        );
        let text = report.to_string();
        let dropped: Vec<&str> = text.lines().filter(|l| l.contains("is not used")).collect();
        assert_eq!(dropped.len(), 2, "{text}");
        assert!(
            dropped[0].starts_with(
                "warning: redirect_uris entry 0 (\"cursor://anysphere.cursor-retrieval/cb\") is not used: "
            ),
            "{text}"
        );
        assert!(
            dropped[0].contains("private-use URI schemes are not allowed"),
            "{text}"
        );
        assert!(
            dropped[1]
                .starts_with("warning: redirect_uris entry 1 (\"com.example.inspector:/cb\") is not used: "),
            "{text}"
        );
    }

    #[tokio::test]
    async fn legal_but_inadvisable_choices_are_warned_about() {
        const ROOT: &str = r#"{"client_id":"https://client.example/","client_name":"x","redirect_uris":["http://127.0.0.1/cb"],"client_uri":"https://elsewhere.example/"}"#;
        let f = Fixed {
            body: ROOT,
            cache_control: Some("no-store"),
            fail: false,
        };
        let report = check(&f, "https://client.example/", &ValidationPolicy::default()).await;
        assert!(report.ok, "{report}");
        let w = report.warnings.join("\n");
        assert!(w.contains("path is \"/\""));
        assert!(w.contains("no-store"));
        assert!(w.contains("loopback"));
        assert!(w.contains("different origin"));
    }
}
