//! A minimal keep-alive HTTP/1.1 client on hyper's connection API.
//!
//! Each load worker owns exactly one connection and sends its requests on it
//! one after another, so "concurrency N" means N persistent connections — the
//! shape of real OAuth clients and resource servers, and the only way to know
//! how many sockets the server is holding. A pooled client (reqwest) would hide
//! that and would cost the driver more CPU per request than the server spends
//! answering a metadata GET.

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Where the server is and how to talk to it.
#[derive(Clone)]
pub struct Endpoint {
    /// Loopback socket address of the server.
    pub addr: SocketAddr,
    /// The `Host` header value (`127.0.0.1:PORT`).
    pub authority: String,
    /// Path prefix of the issuer (empty for an issuer at the root).
    pub prefix: String,
    /// TLS client configuration trusting the server's CA; `None` for plain HTTP.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Endpoint {
    /// Parses a base URL such as `http://127.0.0.1:8080` or
    /// `https://127.0.0.1:8443/tenant`. Refuses anything but a loopback IP
    /// literal: this tool generates heavy load and must never aim it at a
    /// machine it was not meant for.
    pub fn from_url(base: &str, ca_pem: Option<&[u8]>) -> Result<Endpoint> {
        let url = url::Url::parse(base).with_context(|| format!("target {base:?} is not a URL"))?;
        let ip: std::net::IpAddr = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.into(),
            Some(url::Host::Ipv6(ip)) => ip.into(),
            _ => bail!("target host must be a loopback IP literal (127.0.0.0/8 or ::1)"),
        };
        if !ip.is_loopback() {
            bail!("target {ip} is not a loopback address; steward-loadgen only drives loopback servers");
        }
        let port = url
            .port_or_known_default()
            .ok_or_else(|| anyhow!("target has no port"))?;
        let addr = SocketAddr::new(ip, port);
        let tls = match url.scheme() {
            "http" => None,
            "https" => {
                let pem = ca_pem.ok_or_else(|| anyhow!("an https target needs --ca-file"))?;
                Some(client_tls(pem)?)
            }
            other => bail!("unsupported scheme {other:?}"),
        };
        Ok(Endpoint {
            addr,
            authority: addr.to_string(),
            prefix: url.path().trim_end_matches('/').to_owned(),
            tls,
        })
    }
}

/// A rustls client configuration that trusts only the PEM certificates given
/// (the test CA); verification of chain and name stays on.
pub fn client_tls(ca_pem: &[u8]) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &ca_pem[..]) {
        roots.add(cert.context("reading CA PEM")?).context("adding CA")?;
    }
    if roots.is_empty() {
        bail!("the CA file holds no certificate");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A response, fully read.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// One persistent connection.
pub struct Conn {
    endpoint: Endpoint,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// Connections opened, including reconnects after errors.
    pub opened: u64,
}

impl Conn {
    pub fn new(endpoint: Endpoint) -> Conn {
        Conn {
            endpoint,
            sender: None,
            opened: 0,
        }
    }

    async fn connect(&mut self) -> Result<&mut SendRequest<Full<Bytes>>> {
        let tcp = TcpStream::connect(self.endpoint.addr)
            .await
            .with_context(|| format!("connecting to {}", self.endpoint.addr))?;
        tcp.set_nodelay(true)?;
        let sender = match &self.endpoint.tls {
            None => {
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                sender
            }
            Some(tls) => {
                let name = ServerName::from(self.endpoint.addr.ip());
                let stream = TlsConnector::from(Arc::clone(tls))
                    .connect(name, tcp)
                    .await
                    .context("TLS handshake")?;
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                sender
            }
        };
        self.opened += 1;
        Ok(self.sender.insert(sender))
    }

    /// Drops the connection so the next request opens a fresh one (after an
    /// error the connection's state is unknown).
    pub fn reset(&mut self) {
        self.sender = None;
    }

    /// Sends one request on the connection (opening it if needed) and reads
    /// the whole response.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(header::HeaderName, HeaderValue)],
        body: Option<String>,
    ) -> Result<Reply> {
        let uri = format!("{}{}", self.endpoint.prefix, path);
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, self.endpoint.authority.as_str());
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let body = body.map(Bytes::from).unwrap_or_default();
        if !body.is_empty() && !headers.iter().any(|(k, _)| k == header::CONTENT_TYPE) {
            req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        let req = req.body(Full::new(body))?;
        let sender = match self.sender.as_mut() {
            Some(s) if !s.is_closed() => s,
            _ => self.connect().await?,
        };
        let result = async {
            sender.ready().await?;
            let res = sender.send_request(req).await?;
            let (parts, body) = res.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, hyper::Error>(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        }
        .await;
        match result {
            Ok(r) => Ok(r),
            Err(e) => {
                self.reset();
                Err(anyhow!(e).context("HTTP exchange"))
            }
        }
    }
}
