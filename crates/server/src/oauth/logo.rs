//! Client logos on the consent page: fetched through the guarded fetcher,
//! stored, and served from Steward's own origin — never hot-linked.
//!
//! Hot-linking `logo_uri` would tell the client's host who is consenting and
//! when (RFC 9700 §4.2.4 referrer leaks, CIMD -02 §8 privacy), would let the
//! host swap the picture after review, and would need a CSP open to any
//! origin. So the image is fetched once per URL (with the same SSRF rules as
//! the document, CIMD -02 §8.6), checked to really be a PNG, JPEG, GIF or
//! WebP by its leading bytes (never SVG, which can carry script), stored by
//! content hash, and served at `{issuer}/logo/{sha256}` with a CSP that
//! forbids everything.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use steward_egress::FetchRequest;
use steward_store::Logo;

use crate::state::AppState;

/// Largest logo accepted.
pub const MAX_LOGO_BYTES: usize = 64 * 1024;

/// The image type the bytes really are, by signature.
fn sniff(body: &[u8]) -> Option<&'static str> {
    if body.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if body.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if body.starts_with(b"GIF87a") || body.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if body.len() >= 12 && &body[..4] == b"RIFF" && &body[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// Fetches and stores the logo; the content hash, or `None` when it cannot
/// be used (the consent page then shows no logo — the logo is decoration,
/// never a reason to fail the flow).
async fn fetch_and_store(state: &AppState, logo_uri: &str) -> Option<String> {
    let url = url::Url::parse(logo_uri).ok().filter(|u| u.scheme() == "https")?;
    let res = match state
        .egress
        .fetch(&FetchRequest::image(url).with_max_bytes(MAX_LOGO_BYTES))
        .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(reason = e.reason(), "logo_uri fetch failed");
            return None;
        }
    };
    let Some(content_type) = sniff(&res.body) else {
        tracing::info!("logo_uri is not a PNG, JPEG, GIF or WebP image");
        return None;
    };
    let hash = hex::encode(Sha256::digest(&res.body));
    let logo = Logo {
        hash: hash.clone(),
        content_type: content_type.to_owned(),
        body: res.body.to_vec(),
        fetched_at: state.clock.now(),
    };
    if let Err(e) = state.store.put_logo(&logo).await {
        tracing::warn!(error = %e, "could not store a logo");
        return None;
    }
    Some(hash)
}

/// The URL of the stored copy of `logo_uri`, fetching it on first sight.
/// Concurrent consent pages for one logo share one fetch; failures are
/// remembered for the cache's lifetime so a broken logo costs one fetch.
pub async fn logo_url(state: &AppState, logo_uri: &str) -> Option<String> {
    let hash = state
        .oauth
        .logos
        .get_with(logo_uri.to_owned(), fetch_and_store(state, logo_uri))
        .await?;
    Some(format!("{}/logo/{hash}", state.issuer.trim_end_matches('/')))
}

/// `GET /logo/{sha256}`: a stored logo, immutable by construction.
pub async fn serve(State(state): State<AppState>, Path(hash): Path<String>) -> Response {
    let valid = hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let logo = if valid {
        match state.store.get_logo(&hash).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "reading a logo");
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
        }
    } else {
        None
    };
    let Some(logo) = logo else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut res = logo.body.into_response();
    let h = res.headers_mut();
    if let Ok(ct) = HeaderValue::from_str(&logo.content_type) {
        h.insert(header::CONTENT_TYPE, ct);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::sniff;

    #[test]
    fn only_raster_images_pass_the_signature_check() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(sniff(b"GIF89a...."), Some("image/gif"));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(
            sniff(b"<svg xmlns='http://www.w3.org/2000/svg'><script/></svg>"),
            None
        );
        assert_eq!(sniff(b"<html>"), None);
        assert_eq!(sniff(b""), None);
    }
}
