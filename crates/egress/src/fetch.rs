//! One pinned, capped HTTPS GET.
//!
//! Order matters: the URL is checked, the per-host budget taken, the name
//! resolved and vetted, and only then a socket opened, to a vetted address,
//! with TLS verifying the name. Everything from DNS to the last body byte
//! runs under one deadline (the caller wraps this in `tokio::time::timeout`).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use url::{Host, Url};

use crate::error::FetchError;
use crate::request::{CacheHeaders, FetchRequest, FetchResponse, FetchStatus};
use crate::resolve::Resolver;

/// Identifies Steward and nothing else about the deployment (SPEC_CHECKLIST §20.12).
pub(crate) const USER_AGENT: &str = concat!(
    "Steward/",
    env!("CARGO_PKG_VERSION"),
    " (+https://github.com/steward-auth/steward)"
);

/// hyper's http1 client refuses read buffers below this size.
const HYPER_MIN_BUF: usize = 8192;

/// Where the request goes, checked before anything touches the network.
pub(crate) struct Target<'a> {
    pub(crate) host: Host<&'a str>,
    pub(crate) port: u16,
    /// The limiter key and `Host` header value.
    pub(crate) authority: String,
    pub(crate) path_and_query: String,
}

/// Validate the URL: https only, a host, no userinfo (no ambient or embedded credentials).
pub(crate) fn target(url: &Url) -> Result<Target<'_>, FetchError> {
    if url.scheme() != "https" {
        return Err(FetchError::NotHttps);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(FetchError::InvalidUrl("credentials in URL"));
    }
    let host = url.host().ok_or(FetchError::InvalidUrl("no host"))?;
    let port = url
        .port_or_known_default()
        .ok_or(FetchError::InvalidUrl("no port"))?;
    let host_str = url.host_str().ok_or(FetchError::InvalidUrl("no host"))?;
    let authority = match url.port() {
        Some(port) => format!("{host_str}:{port}"),
        None => host_str.to_owned(),
    };
    let mut path_and_query = url.path().to_owned();
    if let Some(query) = url.query() {
        path_and_query.push('?');
        path_and_query.push_str(query);
    }
    Ok(Target {
        host,
        port,
        authority,
        path_and_query,
    })
}

pub(crate) struct Limits {
    pub(crate) max_body: usize,
    pub(crate) max_header: usize,
}

/// Resolve, connect, handshake and GET. The caller holds the host permit and the deadline.
pub(crate) async fn fetch(
    resolver: &Resolver,
    tls: &Arc<rustls::ClientConfig>,
    allow: &[ipnet::IpNet],
    target: &Target<'_>,
    request: &FetchRequest,
    limits: &Limits,
) -> Result<FetchResponse, FetchError> {
    let addrs = resolver.vetted(&target.host, target.port, allow).await?;
    let (tcp, peer) = connect(&addrs).await?;
    let tls_stream = handshake(tls, &target.host, tcp).await?;

    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(limits.max_header.max(HYPER_MIN_BUF))
        .handshake::<_, Empty<Bytes>>(TokioIo::new(tls_stream))
        .await
        .map_err(FetchError::Protocol)?;
    // Abort the connection task when this fetch ends or is cancelled by the
    // deadline: no pooling, nothing outlives the fetch.
    let _connection = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));

    let http_request = build_request(target, request)?;
    let response = sender.send_request(http_request).await.map_err(|e| {
        if e.is_parse_too_large() {
            FetchError::HeadersTooLarge
        } else {
            FetchError::Protocol(e)
        }
    })?;
    let status = response.status();
    let headers = response.headers();
    let cache = cache_headers(headers);

    if status == StatusCode::NOT_MODIFIED && request.conditional().is_some() {
        return Ok(FetchResponse {
            status: FetchStatus::NotModified,
            body: Bytes::new(),
            content_type: None,
            cache,
            peer,
        });
    }
    // CIMD -01 §4: redirects are never followed; a 3xx is a failure.
    if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
        return Err(FetchError::Redirect {
            status: status.as_u16(),
        });
    }
    // CIMD -01 §4.1: only 200 is success (not 203, 204, 206...).
    if status != StatusCode::OK {
        return Err(FetchError::BadStatus {
            status: status.as_u16(),
        });
    }
    if let Some(encoding) = headers.get(header::CONTENT_ENCODING)
        && !encoding.as_bytes().eq_ignore_ascii_case(b"identity")
    {
        return Err(FetchError::Compressed);
    }
    let content_type = text(headers, header::CONTENT_TYPE);
    if !content_type
        .as_deref()
        .is_some_and(|ct| request.expect.accepts(ct))
    {
        return Err(FetchError::BadContentType { content_type });
    }
    let too_large = FetchError::TooLarge {
        limit: limits.max_body,
    };
    // Refuse early when the server announces too much; hyper has already
    // rejected malformed lengths, and the streaming cap below does not trust
    // this header anyway (CIMD -02 item 7: "do not trust Content-Length").
    let announced: Option<u64> = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|l| l.to_str().ok())
        .and_then(|l| l.parse().ok());
    if announced.is_some_and(|length| length > limits.max_body as u64) {
        return Err(too_large);
    }
    let body = read_capped(response.into_body(), limits.max_body).await?;
    Ok(FetchResponse {
        status: FetchStatus::Ok,
        body,
        content_type,
        cache,
        peer,
    })
}

/// Connect to the first vetted address that accepts. No second lookup happens
/// anywhere: `TcpStream::connect` gets a `SocketAddr`, not a name.
async fn connect(addrs: &[SocketAddr]) -> Result<(TcpStream, SocketAddr), FetchError> {
    let mut last_error = None;
    for addr in addrs {
        match TcpStream::connect(*addr).await {
            Ok(stream) => return Ok((stream, *addr)),
            Err(e) => last_error = Some(e),
        }
    }
    Err(match last_error {
        Some(e) => FetchError::Connect(e),
        None => FetchError::NoAddresses,
    })
}

async fn handshake(
    tls: &Arc<rustls::ClientConfig>,
    host: &Host<&str>,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>, FetchError> {
    let server_name = match host {
        Host::Domain(name) => ServerName::try_from(name.trim_end_matches('.').to_owned())
            .map_err(|_| FetchError::InvalidUrl("host is not a valid TLS server name"))?,
        Host::Ipv4(ip) => ServerName::IpAddress((*ip).into()),
        Host::Ipv6(ip) => ServerName::IpAddress((*ip).into()),
    };
    TlsConnector::from(Arc::clone(tls))
        .connect(server_name, tcp)
        .await
        .map_err(FetchError::Tls)
}

/// GET with only what the fetch needs: no cookies, no credentials, nothing
/// identifying beyond the Steward User-Agent.
fn build_request(target: &Target<'_>, request: &FetchRequest) -> Result<Request<Empty<Bytes>>, FetchError> {
    let value = |v: &str| {
        HeaderValue::from_str(v).map_err(|_| FetchError::InvalidUrl("header value not representable"))
    };
    let mut builder = Request::builder()
        .method(Method::GET)
        .uri(target.path_and_query.as_str())
        .header(header::HOST, value(&target.authority)?)
        .header(header::ACCEPT, value(&request.accept)?)
        .header(header::ACCEPT_ENCODING, HeaderValue::from_static("identity"))
        .header(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
    if let Some(validators) = request.conditional() {
        if let Some(etag) = &validators.etag {
            builder = builder.header(header::IF_NONE_MATCH, value(etag)?);
        }
        if let Some(last_modified) = &validators.last_modified {
            builder = builder.header(header::IF_MODIFIED_SINCE, value(last_modified)?);
        }
    }
    builder
        .body(Empty::new())
        .map_err(|_| FetchError::InvalidUrl("request cannot be built"))
}

/// Read the body, failing as soon as it exceeds `max` bytes.
async fn read_capped(mut body: hyper::body::Incoming, max: usize) -> Result<Bytes, FetchError> {
    let mut buffer = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(FetchError::Protocol)?;
        if let Ok(data) = frame.into_data() {
            if buffer.len().saturating_add(data.len()) > max {
                return Err(FetchError::TooLarge { limit: max });
            }
            buffer.extend_from_slice(&data);
        }
    }
    Ok(buffer.freeze())
}

fn text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn cache_headers(headers: &HeaderMap) -> CacheHeaders {
    CacheHeaders {
        cache_control: text(headers, header::CACHE_CONTROL),
        expires: text(headers, header::EXPIRES),
        date: text(headers, header::DATE),
        age: text(headers, header::AGE),
        etag: text(headers, header::ETAG),
        last_modified: text(headers, header::LAST_MODIFIED),
    }
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_urls_without_credentials_are_targets() {
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(matches!(
            target(&url("http://client.example/doc")),
            Err(FetchError::NotHttps)
        ));
        assert!(matches!(
            target(&url("ftp://client.example/doc")),
            Err(FetchError::NotHttps)
        ));
        assert!(matches!(
            target(&url("https://user:pw@client.example/doc")),
            Err(FetchError::InvalidUrl(_))
        ));
        let ok = url("https://Client.Example:8443/doc?x=1#frag");
        let t = target(&ok).unwrap();
        assert_eq!(t.authority, "client.example:8443");
        assert_eq!(t.path_and_query, "/doc?x=1");
        assert_eq!(t.port, 8443);
        let default_port = url("https://client.example/");
        assert_eq!(target(&default_port).unwrap().authority, "client.example");
        assert_eq!(target(&default_port).unwrap().port, 443);
    }

    #[test]
    fn numeric_ipv4_spellings_arrive_as_addresses() {
        for spelling in ["2130706433", "0x7f.1", "017700000001", "127.1"] {
            let url = Url::parse(&format!("https://{spelling}/")).unwrap();
            let t = target(&url).unwrap();
            assert_eq!(
                t.host,
                Host::<&str>::Ipv4("127.0.0.1".parse().unwrap()),
                "{spelling}"
            );
        }
    }
}
