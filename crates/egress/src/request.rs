//! What a caller asks for and what it gets back.

use std::net::SocketAddr;

use bytes::Bytes;
use url::Url;

/// `Accept` for Client ID Metadata Documents: the pending `application/cimd+json`
/// (CIMD PR #63) with plain JSON as a fallback (SPEC_CHECKLIST §0.2 item 8, §20.12).
pub const METADATA_DOCUMENT_ACCEPT: &str = "application/cimd+json, application/json;q=0.9";
const JSON_ACCEPT: &str = "application/json";
/// No SVG: it is active content (scripts) and a consent-screen XSS vector.
const IMAGE_ACCEPT: &str = "image/png, image/jpeg, image/gif, image/webp";

/// Which media types the response must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// `application/json` or `application/*+json` (CIMD -01 §4.1).
    Json,
    /// `image/png`, `image/jpeg`, `image/gif` or `image/webp`.
    Image,
}

impl Expect {
    /// Whether a `Content-Type` value is acceptable (parameters ignored).
    pub fn accepts(self, content_type: &str) -> bool {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match self {
            Expect::Json => {
                essence == "application/json"
                    || essence.strip_prefix("application/").is_some_and(|sub| {
                        sub.len() > "+json".len() && sub.ends_with("+json") && !sub.contains('/')
                    })
            }
            Expect::Image => matches!(
                essence.as_str(),
                "image/png" | "image/jpeg" | "image/gif" | "image/webp"
            ),
        }
    }
}

/// Cache validators from an earlier response, for a conditional GET.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

impl Validators {
    fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}

/// One GET.
#[derive(Clone, Debug)]
pub struct FetchRequest {
    pub url: Url,
    pub accept: String,
    pub expect: Expect,
    pub validators: Option<Validators>,
    /// Overrides [`crate::EgressConfig::max_document_bytes`].
    pub max_bytes: Option<usize>,
}

impl FetchRequest {
    /// A Client ID Metadata Document fetch.
    pub fn metadata_document(url: Url) -> Self {
        FetchRequest::new(url, METADATA_DOCUMENT_ACCEPT, Expect::Json)
    }

    /// A JSON fetch (e.g. `jwks_uri`).
    pub fn json(url: Url) -> Self {
        FetchRequest::new(url, JSON_ACCEPT, Expect::Json)
    }

    /// An image fetch (e.g. `logo_uri`).
    pub fn image(url: Url) -> Self {
        FetchRequest::new(url, IMAGE_ACCEPT, Expect::Image)
    }

    fn new(url: Url, accept: &str, expect: Expect) -> Self {
        FetchRequest {
            url,
            accept: accept.to_owned(),
            expect,
            validators: None,
            max_bytes: None,
        }
    }

    /// Make this a conditional request.
    pub fn with_validators(mut self, validators: Validators) -> Self {
        self.validators = Some(validators);
        self
    }

    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = Some(max_bytes);
        self
    }

    /// Validators, if any are actually present.
    pub(crate) fn conditional(&self) -> Option<&Validators> {
        self.validators.as_ref().filter(|v| !v.is_empty())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchStatus {
    /// 200 with a body.
    Ok,
    /// 304 to a conditional request: the caller's cached copy is still valid
    /// (the body is empty).
    NotModified,
}

/// The caching-relevant response headers, verbatim, for the caller's cache policy.
#[derive(Clone, Debug, Default)]
pub struct CacheHeaders {
    pub cache_control: Option<String>,
    pub expires: Option<String>,
    pub date: Option<String>,
    pub age: Option<String>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

#[derive(Clone, Debug)]
pub struct FetchResponse {
    pub status: FetchStatus,
    pub body: Bytes,
    pub content_type: Option<String>,
    pub cache: CacheHeaders,
    /// The vetted address actually connected to (for audit).
    pub peer: SocketAddr,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_accepts_json_and_structured_suffix_types_only() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/cimd+json",
            "application/vnd.example+json;v=1",
        ] {
            assert!(Expect::Json.accepts(ok), "{ok}");
        }
        for bad in [
            "text/json",
            "text/html",
            "application/+json",
            "application/jsonx",
            "",
            "application/xml",
        ] {
            assert!(!Expect::Json.accepts(bad), "{bad}");
        }
    }

    #[test]
    fn image_accepts_raster_types_but_never_svg() {
        for ok in [
            "image/png",
            "image/jpeg",
            "image/gif",
            "image/webp",
            "image/png; q=1",
        ] {
            assert!(Expect::Image.accepts(ok), "{ok}");
        }
        for bad in ["image/svg+xml", "image/bmp", "text/html", "application/json"] {
            assert!(!Expect::Image.accepts(bad), "{bad}");
        }
    }

    #[test]
    fn constructors_set_accept_and_expectation() {
        let url = Url::parse("https://client.example/cimd").unwrap();
        let doc = FetchRequest::metadata_document(url.clone());
        assert_eq!(doc.accept, "application/cimd+json, application/json;q=0.9");
        assert_eq!(doc.expect, Expect::Json);
        assert_eq!(FetchRequest::image(url.clone()).expect, Expect::Image);
        assert!(!FetchRequest::image(url.clone()).accept.contains("svg"));
        assert_eq!(FetchRequest::json(url.clone()).accept, "application/json");
        assert!(
            FetchRequest::json(url)
                .with_validators(Validators::default())
                .conditional()
                .is_none()
        );
    }
}
