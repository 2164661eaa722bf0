//! A minimal HTTP/1.1 client for plain-http loopback URLs (Steward, the
//! clients' callback listeners), built on hyper's connection API so the
//! harness needs no HTTP client crate of its own. One connection per request;
//! redirects are never followed here (the browser decides what to do).

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::time::Duration;
use tokio::net::TcpStream;
use url::Url;

const TIMEOUT: Duration = Duration::from_secs(20);

pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends one request to an `http://` URL on loopback.
pub async fn send(
    method: Method,
    url: &Url,
    headers: &[(&str, String)],
    body: Option<String>,
) -> Result<Response> {
    tokio::time::timeout(TIMEOUT, send_inner(method, url, headers, body))
        .await
        .with_context(|| format!("timed out: {url}"))?
}

async fn send_inner(
    method: Method,
    url: &Url,
    headers: &[(&str, String)],
    body: Option<String>,
) -> Result<Response> {
    if url.scheme() != "http" {
        bail!("the harness browser only speaks plain http to loopback, not {url}");
    }
    let host = url.host_str().context("URL without host")?;
    let port = url.port_or_known_default().context("URL without port")?;
    let literal = if host == "localhost" { "127.0.0.1" } else { host };
    let ip: std::net::IpAddr = literal
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .with_context(|| format!("{host} is not a loopback address literal"))?;
    if !ip.is_loopback() {
        bail!("refusing to contact non-loopback {ip}");
    }
    let stream = TcpStream::connect((ip, port))
        .await
        .with_context(|| format!("connect {ip}:{port}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake")?;
    tokio::spawn(async move {
        // The peer closing after the response is the normal end here.
        let _ = conn.await;
    });
    let mut path = url.path().to_owned();
    if let Some(q) = url.query() {
        path.push('?');
        path.push_str(q);
    }
    let authority = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, authority)
        .header(http::header::USER_AGENT, "steward-interop-browser/1")
        .header(http::header::CONNECTION, "close");
    for (name, value) in headers {
        builder = builder.header(*name, value.as_str());
    }
    let request = builder
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .context("building request")?;
    let response = sender.send_request(request).await.context("sending request")?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .context("reading response body")?
        .to_bytes();
    Ok(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// GET a URL; true when it answers 200 (readiness probes).
pub async fn is_ok(url: &Url) -> bool {
    matches!(send(Method::GET, url, &[], None).await, Ok(r) if r.status == 200)
}
