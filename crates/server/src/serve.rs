//! The listener: plain HTTP or HTTPS (rustls), HTTP/1.1, with limits on the
//! request head and its arrival time, and graceful shutdown — on SIGTERM or
//! Ctrl-C the listener closes, in-flight requests finish (up to a grace
//! period), then `serve` returns.
//!
//! One code path for both transports, written on hyper directly because
//! `axum::serve` neither terminates TLS nor bounds header size.
//!
//! Open connections are capped globally (`http.max_connections`) and per
//! client address (`http.max_connections_per_address`, IPv6 by /64): each
//! connection holds a file descriptor for as long as its peer keeps it
//! open, and a few hundred half-sent requests used to exhaust the process's
//! descriptors so that even a health check timed out (issue 11 item 14). A
//! connection over a cap is closed at once, counted in
//! `steward_connections_refused_total{cap}`; `steward_connections_open`
//! shows the open ones.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::settings::{HttpSettings, TlsSettings};

/// Why the TLS configuration cannot be used, naming the setting.
#[derive(Debug, thiserror::Error)]
pub enum TlsLoadError {
    #[error("tls.cert_file: cannot read {path}: {source}")]
    ReadCert { path: String, source: std::io::Error },
    #[error("tls.cert_file: {path} holds no PEM certificate")]
    NoCert { path: String },
    #[error("tls.key_file: cannot read {path}: {source}")]
    ReadKey { path: String, source: std::io::Error },
    #[error("tls.key_file: {path} holds no PEM private key")]
    NoKey { path: String },
    #[error("tls: certificate and key do not form a usable pair: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Builds the rustls server configuration from PEM files.
pub fn load_tls(tls: &TlsSettings) -> Result<Arc<rustls::ServerConfig>, TlsLoadError> {
    let cert_path = tls.cert_file.display().to_string();
    let key_path = tls.key_file.display().to_string();
    let certs = {
        let pem = read(&tls.cert_file).map_err(|source| TlsLoadError::ReadCert {
            path: cert_path.clone(),
            source,
        })?;
        rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| TlsLoadError::ReadCert {
                path: cert_path.clone(),
                source,
            })?
    };
    if certs.is_empty() {
        return Err(TlsLoadError::NoCert { path: cert_path });
    }
    let key = {
        let pem = read(&tls.key_file).map_err(|source| TlsLoadError::ReadKey {
            path: key_path.clone(),
            source,
        })?;
        rustls_pemfile::private_key(&mut pem.as_slice())
            .map_err(|source| TlsLoadError::ReadKey {
                path: key_path.clone(),
                source,
            })?
            .ok_or(TlsLoadError::NoKey { path: key_path })?
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    std::fs::read(path)
}

/// Open connections, in total and per address key.
struct ConnectionCaps {
    total: usize,
    per_address: usize,
    /// Reverse proxies carry every client's connections: held to the total
    /// cap only, or one busy proxy would be refused for everyone.
    proxies: crate::client_address::TrustedProxies,
    open: std::sync::Mutex<(usize, std::collections::HashMap<String, usize>)>,
}

/// One admitted connection; its slot is given back on drop.
struct ConnectionSlot {
    caps: Arc<ConnectionCaps>,
    address: String,
}

impl ConnectionCaps {
    fn lock(&self) -> std::sync::MutexGuard<'_, (usize, std::collections::HashMap<String, usize>)> {
        // Counters only: a poisoned lock leaves them usable.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a connection from `peer`, or names the cap it would exceed.
    fn admit(self: &Arc<Self>, peer: std::net::IpAddr) -> Result<ConnectionSlot, &'static str> {
        let address = crate::oauth::limits::address_key(peer);
        let mut open = self.lock();
        if open.0 >= self.total {
            return Err("total");
        }
        let from_address = open.1.get(&address).copied().unwrap_or(0);
        if from_address >= self.per_address && !self.proxies.contains(peer) {
            return Err("per_address");
        }
        open.0 += 1;
        open.1.insert(address.clone(), from_address + 1);
        metrics::gauge!("steward_connections_open").set(open.0 as f64);
        Ok(ConnectionSlot {
            caps: Arc::clone(self),
            address,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.caps.lock();
        open.0 = open.0.saturating_sub(1);
        if let Some(n) = open.1.get_mut(&self.address) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.1.remove(&self.address);
            }
        }
        metrics::gauge!("steward_connections_open").set(open.0 as f64);
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets
/// in-flight requests finish for up to `http.shutdown_grace_ms`.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Router,
    http: &HttpSettings,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let acceptor = tls.map(TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(http.header_timeout_ms))
        .max_buf_size(http.max_header_bytes.max(8192))
        .keep_alive(true);
    let builder = Arc::new(builder);
    let caps = Arc::new(ConnectionCaps {
        total: http.max_connections.max(1),
        per_address: http.max_connections_per_address.max(1),
        proxies: crate::client_address::TrustedProxies::parse(&http.trusted_proxies, http.forwarded_header)
            .unwrap_or_default(),
        open: std::sync::Mutex::default(),
    });
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off, never exit.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let slot = match caps.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(cap) => {
                metrics::counter!("steward_connections_refused_total", "cap" => cap).increment(1);
                tracing::debug!(%peer, cap, "connection refused: over the connection cap");
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(req)
        });
        let builder = builder.clone();
        match &acceptor {
            None => {
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _slot = slot;
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, %peer, "connection ended with an error");
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                let handshake_timeout = Duration::from_millis(http.header_timeout_ms);
                tokio::spawn(async move {
                    let _slot = slot;
                    let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, %peer, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let conn = builder.serve_connection(TokioIo::new(tls), service);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(error = %e, %peer, "connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    let grace = Duration::from_millis(http.shutdown_grace_ms);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!("shutdown grace period over; closing remaining connections"),
    }
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C (SIGINT).
///
/// The handlers are installed when this is called, not when the future is
/// first polled: the serve loop's `select!` may accept a queued connection
/// before it ever polls the shutdown future, and a SIGTERM arriving in that
/// window would otherwise meet the default action and kill the process
/// instead of draining it.
#[cfg(unix)]
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    async fn recv(s: Option<Signal>) {
        match s {
            Some(mut s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }
    let interrupt = signal(SignalKind::interrupt()).ok();
    let terminate = signal(SignalKind::terminate()).ok();
    async move {
        tokio::select! {
            () = recv(interrupt) => tracing::info!("Ctrl-C received; shutting down"),
            () = recv(terminate) => tracing::info!("SIGTERM received; shutting down"),
        }
    }
}

/// Completes on Ctrl-C.
#[cfg(not(unix))]
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    async {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("Ctrl-C received; shutting down");
        } else {
            std::future::pending::<()>().await;
        }
    }
}

/// The peer's socket address, for handlers that need it (rate limits).
pub fn peer(req_ext: &http::Extensions) -> Option<SocketAddr> {
    req_ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_address::TrustedProxies;
    use crate::settings::ForwardedHeader;

    fn caps(proxies: &[&str]) -> Arc<ConnectionCaps> {
        let proxies: Vec<String> = proxies.iter().map(|p| (*p).to_owned()).collect();
        Arc::new(ConnectionCaps {
            total: 10,
            per_address: 2,
            proxies: TrustedProxies::parse(&proxies, ForwardedHeader::XForwardedFor).unwrap(),
            open: std::sync::Mutex::default(),
        })
    }

    #[test]
    fn a_trusted_proxy_is_held_to_the_total_cap_only() {
        let proxy: std::net::IpAddr = "10.0.0.5".parse().unwrap();
        let other: std::net::IpAddr = "192.0.2.1".parse().unwrap();
        let c = caps(&["10.0.0.5"]);
        let mut slots = Vec::new();
        for _ in 0..2 {
            slots.push(c.admit(other).unwrap());
        }
        assert_eq!(c.admit(other).err(), Some("per_address"));
        for _ in 0..8 {
            slots.push(c.admit(proxy).unwrap());
        }
        assert_eq!(c.admit(proxy).err(), Some("total"));
        // Without the proxy in the list, it is an address like any other.
        let c = caps(&[]);
        let _a = c.admit(proxy).unwrap();
        let _b = c.admit(proxy).unwrap();
        assert_eq!(c.admit(proxy).err(), Some("per_address"));
    }
}
