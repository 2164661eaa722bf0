//! An HTTPS server on a loopback address serving programmable responses.
//!
//! Each test scripts the routes (status, headers, body, delays, slow drips)
//! and afterwards asks how often a path was hit and which headers arrived,
//! which is how tests prove a redirect target or a rebinding target was never
//! contacted, and that the client sent no identifying headers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::TestCa;

/// A scripted HTTP response.
#[derive(Clone, Debug)]
pub struct TestResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Wait this long before sending the response head.
    pub delay: Duration,
    /// If set, the body is streamed (chunked, no Content-Length) one byte per
    /// interval. `Some(Duration::ZERO)` gives a chunked body without delay.
    pub drip: Option<Duration>,
}

impl TestResponse {
    /// 200 with `Content-Type: application/json`.
    pub fn json(body: impl Into<Vec<u8>>) -> Self {
        TestResponse::new(200)
            .with_header("content-type", "application/json")
            .with_body(body)
    }

    /// A bare response with the given status, no headers and no body.
    pub fn new(status: u16) -> Self {
        TestResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: Duration::ZERO,
            drip: None,
        }
    }

    /// A 3xx redirect to `location`.
    pub fn redirect(status: u16, location: &str) -> Self {
        TestResponse::new(status).with_header("location", location)
    }

    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    pub fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn drip(mut self, interval: Duration) -> Self {
        self.drip = Some(interval);
        self
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Route {
    response: Option<TestResponse>,
    hits: usize,
    last_headers: Option<HeaderMap>,
}

#[derive(Default)]
struct State {
    routes: Mutex<HashMap<String, Route>>,
    connections: AtomicUsize,
}

impl State {
    fn routes(&self) -> MutexGuard<'_, HashMap<String, Route>> {
        // A panicking test thread may poison the lock; the map is still usable.
        self.routes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// An HTTPS server on a loopback IP (e.g. 127.0.0.2).
pub struct DocumentHost {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl DocumentHost {
    /// Listen on `ip` with an OS-chosen port, presenting a certificate for `hostnames`.
    pub async fn start(ip: IpAddr, ca: &TestCa, hostnames: &[&str]) -> DocumentHost {
        DocumentHost::start_at(SocketAddr::new(ip, 0), ca, hostnames).await
    }

    /// Like [`DocumentHost::start`], on a fixed socket address. Rebinding tests
    /// use this to run an "internal" host on the same port as the public one.
    pub async fn start_at(addr: SocketAddr, ca: &TestCa, hostnames: &[&str]) -> DocumentHost {
        DocumentHost::try_start_at(addr, ca, hostnames)
            .await
            .expect("bind document host")
    }

    /// Like [`DocumentHost::start_at`], returning the bind error instead of panicking.
    pub async fn try_start_at(
        addr: SocketAddr,
        ca: &TestCa,
        hostnames: &[&str],
    ) -> std::io::Result<DocumentHost> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(ca.server_config(hostnames));
        let state = Arc::new(State::default());
        let task = tokio::spawn(accept_loop(listener, acceptor, Arc::clone(&state)));
        Ok(DocumentHost { addr, state, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://hostname:port/path` (a leading `/` on `path` is optional).
    pub fn url(&self, hostname: &str, path: &str) -> String {
        let path = path.strip_prefix('/').unwrap_or(path);
        format!("https://{hostname}:{}/{path}", self.addr.port())
    }

    /// Replace the response for `path`.
    pub fn set(&self, path: &str, response: TestResponse) {
        self.state.routes().entry(path.to_owned()).or_default().response = Some(response);
    }

    /// Requests received for `path` (including 304 and 404 answers).
    pub fn hits(&self, path: &str) -> usize {
        self.state.routes().get(path).map_or(0, |r| r.hits)
    }

    /// Headers of the most recent request for `path`.
    pub fn last_request_headers(&self, path: &str) -> Option<HeaderMap> {
        self.state.routes().get(path).and_then(|r| r.last_headers.clone())
    }

    /// TCP connections accepted so far (counted before TLS), so a test can
    /// prove that nothing ever connected to this host.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }
}

impl Drop for DocumentHost {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, state: Arc<State>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        state.connections.fetch_add(1, Ordering::SeqCst);
        let acceptor = acceptor.clone();
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = service_fn(move |request| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(respond(&state, request).await) }
            });
            // Errors here are the client hanging up (deadline, cap): expected in tests.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

async fn respond(state: &State, request: Request<Incoming>) -> Response<TestBody> {
    let path = request.uri().path().to_owned();
    let scripted = {
        let mut routes = state.routes();
        let route = routes.entry(path).or_default();
        route.hits += 1;
        route.last_headers = Some(request.headers().clone());
        route.response.clone()
    };
    let Some(scripted) = scripted else {
        return plain(StatusCode::NOT_FOUND);
    };
    if !scripted.delay.is_zero() {
        tokio::time::sleep(scripted.delay).await;
    }
    if let Some(etag) = scripted.header("etag")
        && let Some(inm) = request.headers().get(http::header::IF_NONE_MATCH)
        && inm.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        let mut response = plain(StatusCode::NOT_MODIFIED);
        if let Ok(value) = HeaderValue::from_str(etag) {
            response.headers_mut().insert(http::header::ETAG, value);
        }
        return response;
    }
    let body = match scripted.drip {
        None => TestBody::full(scripted.body),
        Some(interval) => TestBody::drip(scripted.body, interval),
    };
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(scripted.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in &scripted.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

fn plain(status: StatusCode) -> Response<TestBody> {
    let mut response = Response::new(TestBody::full(Vec::new()));
    *response.status_mut() = status;
    response
}

/// Response body: either all at once (with Content-Length) or streamed from a
/// task (chunked, length unknown to hyper).
enum TestBody {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl TestBody {
    fn full(body: Vec<u8>) -> Self {
        TestBody::Full(Some(Bytes::from(body)))
    }

    fn drip(body: Vec<u8>, interval: Duration) -> Self {
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            for byte in body {
                if !interval.is_zero() {
                    tokio::time::sleep(interval).await;
                }
                if tx.send(Bytes::from(vec![byte])).await.is_err() {
                    return;
                }
            }
        });
        TestBody::Stream(rx)
    }
}

impl Body for TestBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            TestBody::Full(body) => Poll::Ready(body.take().map(|b| Ok(Frame::data(b)))),
            TestBody::Stream(rx) => rx.poll_recv(cx).map(|chunk| chunk.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, TestBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            TestBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            TestBody::Full(None) => SizeHint::with_exact(0),
            TestBody::Stream(_) => SizeHint::default(),
        }
    }
}
