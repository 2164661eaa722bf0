//! A deliberately small HTTP(S) GET for the authorization server's metadata
//! (RFC 8414) and its JWKS (RFC 7517).
//!
//! # Why this is not `steward-egress`
//!
//! `steward-egress` is Steward's fetcher for URLs that an *attacker* chooses:
//! a `client_id` metadata document, a client's `jwks_uri`, a `logo_uri`. It
//! therefore refuses loopback, private and other special-purpose addresses
//! and plain `http`, which is exactly right for SSRF defence inside the
//! authorization server. Here the URL comes from the operator who deploys the
//! resource server (the `--issuer` they configure, with the same trust as the
//! rest of its configuration), and a resource server very often reaches its
//! authorization server on loopback or a private network (same host, sidecar,
//! cluster-internal name). Egress would refuse those by design. What still
//! matters for an operator-chosen URL is kept here:
//!
//! - `https` is required, except for a loopback host (the same rule Steward
//!   applies to its own issuer, RFC 8414 §2), because keys fetched over an
//!   unauthenticated channel could be replaced in transit (RFC 8414 §6.1 and
//!   RFC 7517 §9.3 require TLS);
//! - redirects are not followed (a 3xx is a failure): the metadata and key
//!   locations are the ones the issuer states, nothing else;
//! - one deadline covers connect, TLS, headers and body, and the body is
//!   capped, so a misbehaving server cannot stall or exhaust the guard.

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use url::{Host, Url};

/// Why a fetch failed. Logged by the key cache; never shown to clients.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}: http is allowed only for a loopback host; use https")]
    InsecureScheme(String),
    #[error("{0}: unsupported URL")]
    BadUrl(String),
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("tls: {0}")]
    Tls(std::io::Error),
    #[error("http: {0}")]
    Http(String),
    #[error("status {0} (redirects are not followed)")]
    Status(StatusCode),
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("not JSON: {0}")]
    Json(serde_json::Error),
}

/// Whether `url` may be fetched: https anywhere, http only on loopback.
pub(crate) fn check_scheme(url: &Url) -> Result<(), FetchError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err(FetchError::InsecureScheme(url.to_string())),
        _ => Err(FetchError::BadUrl(url.to_string())),
    }
}

/// `localhost`, 127.0.0.0/8 or ::1.
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[derive(Clone)]
pub(crate) struct Fetcher {
    tls: tokio_rustls::TlsConnector,
    timeout: Duration,
    max_bytes: usize,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("timeout", &self.timeout)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    /// `roots`: trusted CAs for https; the Mozilla set (webpki-roots) when `None`.
    pub(crate) fn new(
        roots: Option<rustls::RootCertStore>,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<Fetcher, rustls::Error> {
        let roots = roots.unwrap_or_else(|| rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        });
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Fetcher {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            timeout,
            max_bytes,
        })
    }

    /// GETs `url` and parses the body as JSON, within the deadline and cap.
    pub(crate) async fn get_json(&self, url: &Url) -> Result<serde_json::Value, FetchError> {
        check_scheme(url)?;
        let body = tokio::time::timeout(self.timeout, self.get(url))
            .await
            .map_err(|_| FetchError::Timeout(self.timeout))??;
        serde_json::from_slice(&body).map_err(FetchError::Json)
    }

    async fn get(&self, url: &Url) -> Result<Bytes, FetchError> {
        let port = url
            .port_or_known_default()
            .ok_or_else(|| FetchError::BadUrl(url.to_string()))?;
        let tcp = match url.host() {
            Some(Host::Ipv4(ip)) => TcpStream::connect(SocketAddr::new(IpAddr::V4(ip), port)).await,
            Some(Host::Ipv6(ip)) => TcpStream::connect(SocketAddr::new(IpAddr::V6(ip), port)).await,
            Some(Host::Domain(d)) => TcpStream::connect((d, port)).await,
            None => return Err(FetchError::BadUrl(url.to_string())),
        }
        .map_err(FetchError::Connect)?;
        let _ = tcp.set_nodelay(true);

        let authority = &url[url::Position::BeforeHost..url::Position::AfterPort];
        let target = &url[url::Position::BeforePath..url::Position::AfterQuery];
        let request = Request::get(target)
            .header(header::HOST, authority)
            .header(header::ACCEPT, "application/json")
            .header(
                header::USER_AGENT,
                concat!("steward-guard/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::<Bytes>::new())
            .map_err(|e| FetchError::Http(e.to_string()))?;

        if url.scheme() == "https" {
            let name = url
                .host_str()
                .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
                .and_then(|h| rustls::pki_types::ServerName::try_from(h).ok())
                .ok_or_else(|| FetchError::BadUrl(url.to_string()))?;
            let tls = self.tls.connect(name, tcp).await.map_err(FetchError::Tls)?;
            self.exchange(TokioIo::new(tls), request).await
        } else {
            self.exchange(TokioIo::new(tcp), request).await
        }
    }

    async fn exchange<I>(&self, io: I, request: Request<Empty<Bytes>>) -> Result<Bytes, FetchError>
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| FetchError::Http(e.to_string()))?;
        // The connection future drives the socket; it ends when the response
        // body is read or dropped and `sender` is gone.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| FetchError::Http(e.to_string()))?;
        if response.status() != StatusCode::OK {
            return Err(FetchError::Status(response.status()));
        }
        let declared = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_bytes as u64) {
            return Err(FetchError::TooLarge(self.max_bytes));
        }
        let body = Limited::new(response.into_body(), self.max_bytes)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                    FetchError::TooLarge(self.max_bytes)
                } else {
                    FetchError::Http(e.to_string())
                }
            })?;
        Ok(body.to_bytes())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn http_only_on_loopback() {
        let ok = [
            "https://as.example/",
            "http://127.0.0.1:8080/",
            "http://localhost/",
            "http://[::1]:1/",
        ];
        for u in ok {
            assert!(check_scheme(&Url::parse(u).unwrap()).is_ok(), "{u}");
        }
        let refused = ["http://as.example/", "http://10.0.0.1/", "ftp://127.0.0.1/"];
        for u in refused {
            assert!(check_scheme(&Url::parse(u).unwrap()).is_err(), "{u}");
        }
    }
}
