//! The one HTTP/1.1 server skeleton under `serve` and `webhook`: bind, accept, limits,
//! shutdown. The routes are theirs (a [`Handler`] per listener); everything a connection goes
//! through before and around a route is here.
//!
//! Contract:
//! - Listeners are bound before anything else starts: a busy or foreign address fails the
//!   command (exit 2) naming the flag it came from. [`Listener::addr`] is the address actually
//!   bound (the port the kernel picked for port 0), and that is the address the commands log.
//! - Each accepted connection gets `TCP_NODELAY`, its listener's IP TTL / hop limit when it has
//!   one ([`hop_limit`]; a connection where it cannot be set is closed, never answered with
//!   another), and the TLS handshake when the listener is HTTPS (rustls, `tokio-rustls`). The
//!   handshake, then each request's headers, must arrive within [`Limits::header_timeout`], or
//!   the connection is dropped.
//! - Each request's body is read before its handler runs: at most [`Limits::max_body`] bytes,
//!   all of it within [`Limits::body_timeout`]. Larger is `413` (a body up to
//!   [`crate::limits::BODY_DRAIN_FACTOR`] times the limit is read and dropped first, so that a client still sending
//!   gets its 413 and not a reset; a `Content-Length` beyond that is refused at once), slower is
//!   `408`, a broken one `400`. [`Handler::refused`] is told (the webhook counts them).
//! - Every answer carries `content-type` and `cache-control: no-store` ([`Reply`]).
//! - Shutdown (the future given to [`run`]; [`signals`] is SIGTERM or SIGINT): stop accepting,
//!   close idle keep-alive connections, give requests in flight up to [`SHUTDOWN_GRACE`], return.
//! - No limit on the number of connections (each is a small task; `tests/test_serve.py` runs
//!   200 concurrent clients).
//!
//! `/metrics` pages are written with [`metrics::Page`], the one Prometheus renderer.

pub(crate) mod hop_limit;
pub(crate) mod metrics;

use std::convert::Infallible;
use std::fmt;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// How long requests in flight may take to finish once shutdown starts.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// What a connection and a request may take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// The TLS handshake, then each request's headers, within this.
    pub(crate) header_timeout: Duration,
    /// The largest body, in bytes.
    pub(crate) max_body: u64,
    /// The whole body within this.
    pub(crate) body_timeout: Duration,
}

/// A response before it becomes hyper's.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) content_type: &'static str,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Bytes,
}

impl Reply {
    /// A `text/plain` answer.
    pub(crate) fn text(status: StatusCode, body: impl Into<Bytes>) -> Reply {
        Reply {
            status,
            content_type: "text/plain",
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// An `application/json` answer.
    pub(crate) fn json(status: StatusCode, body: impl Into<Bytes>) -> Reply {
        Reply::text(status, body).with_content_type("application/json")
    }

    /// `405` naming the methods the path takes (`Allow`).
    pub(crate) fn method_not_allowed(allow: &'static str) -> Reply {
        Reply::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
            .with_header("allow", allow.to_string())
    }

    pub(crate) fn with_header(mut self, name: &'static str, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }

    pub(crate) fn with_content_type(mut self, content_type: &'static str) -> Reply {
        self.content_type = content_type;
        self
    }

    /// The body as text (tests and the fuzz door).
    pub(crate) fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut b = Response::builder()
            .status(self.status)
            .header("content-type", self.content_type)
            .header("cache-control", "no-store");
        for (k, v) in self.headers {
            b = b.header(k, v);
        }
        b.body(Full::new(self.body)).expect("static response parts")
    }
}

/// The routes of one listener.
pub(crate) trait Handler: Send + Sync + 'static {
    /// Answers one request, its body read within the [`Limits`].
    fn handle(&self, req: &Parts, body: Bytes) -> Reply;

    /// A request refused before [`Handler::handle`] (its body: `400`, `408`, `413`).
    fn refused(&self, _status: StatusCode) {}
}

/// Why serving could not start.
#[derive(Debug)]
pub(crate) enum ServerError {
    /// An address could not be bound (in use, not local).
    Bind {
        addr: SocketAddr,
        /// The flag the address came from.
        flag: &'static str,
        source: std::io::Error,
    },
    /// The signal handlers could not be installed.
    Signal(std::io::Error),
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Bind { addr, flag, source } => {
                write!(f, "cannot listen on {addr}: {source}; pick another {flag}")
            }
            ServerError::Signal(e) => write!(f, "cannot install the SIGTERM handler: {e}"),
        }
    }
}

impl std::error::Error for ServerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServerError::Bind { source, .. } | ServerError::Signal(source) => Some(source),
        }
    }
}

/// A bound address and what it serves.
pub(crate) struct Listener {
    tcp: TcpListener,
    addr: SocketAddr,
    tls: Option<TlsAcceptor>,
    hop_limit: Option<u32>,
    handler: Arc<dyn Handler>,
}

impl Listener {
    /// Binds `addr` (given by `flag`) for `handler`'s routes, over plain TCP.
    pub(crate) async fn bind(
        addr: SocketAddr,
        flag: &'static str,
        handler: Arc<dyn Handler>,
    ) -> Result<Listener, ServerError> {
        let bind_error = |source| ServerError::Bind { addr, flag, source };
        let tcp = TcpListener::bind(addr).await.map_err(bind_error)?;
        let addr = tcp.local_addr().map_err(bind_error)?;
        Ok(Listener {
            tcp,
            addr,
            tls: None,
            hop_limit: None,
            handler,
        })
    }

    /// Serves HTTPS through `acceptor`.
    pub(crate) fn with_tls(mut self, acceptor: TlsAcceptor) -> Listener {
        self.tls = Some(acceptor);
        self
    }

    /// Answers every connection with this IP TTL / hop limit.
    pub(crate) fn with_hop_limit(mut self, hops: u32) -> Listener {
        self.hop_limit = Some(hops);
        self
    }

    /// The address bound (with the port the kernel picked when asked for port 0).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// SIGTERM or SIGINT, installed now (so that a failure stops the command before it serves).
pub(crate) fn signals() -> Result<impl Future<Output = ()> + Send + 'static, ServerError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(ServerError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServerError::Signal)?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// Serves `listeners` until `shutdown` resolves, then drains as the module docs say.
pub(crate) async fn run(
    listeners: Vec<Listener>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accept = poll_fn(|cx| {
            for (i, l) in listeners.iter().enumerate() {
                if let Poll::Ready(r) = l.tcp.poll_accept(cx) {
                    return Poll::Ready((i, r));
                }
            }
            Poll::Pending
        });
        let (i, accepted) = tokio::select! {
            a = accept => a,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of file descriptors, most likely: do not spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let l = &listeners[i];
        let _ = stream.set_nodelay(true);
        if let Some(hops) = l.hop_limit
            && let Err(e) = hop_limit::apply(&stream, hops)
        {
            tracing::warn!(error = %e, "cannot set the hop limit; closing the connection");
            continue;
        }
        let conn = Connection {
            tls: l.tls.clone(),
            handler: l.handler.clone(),
            limits,
        };
        tokio::spawn(conn.serve(stream, graceful.watcher()));
    }
    if let Some(first) = listeners.first() {
        tracing::info!(listen = %first.addr, "shutting down");
    }
    drop(listeners);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_s = SHUTDOWN_GRACE.as_secs(),
            "requests still in flight at the end of the shutdown grace period were cut"
        );
    }
}

/// One accepted connection.
struct Connection {
    tls: Option<TlsAcceptor>,
    handler: Arc<dyn Handler>,
    limits: Limits,
}

impl Connection {
    async fn serve(self, stream: TcpStream, watcher: Watcher) {
        match self.tls.clone() {
            None => self.http(TokioIo::new(stream), watcher).await,
            Some(acceptor) => {
                let tls =
                    tokio::time::timeout(self.limits.header_timeout, acceptor.accept(stream)).await;
                match tls {
                    Ok(Ok(s)) => self.http(TokioIo::new(s), watcher).await,
                    Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!("TLS handshake timed out"),
                }
            }
        }
    }

    async fn http<I>(self, io: I, watcher: Watcher)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let Connection {
            handler, limits, ..
        } = self;
        let svc = service_fn(move |req: http::Request<Incoming>| {
            let handler = handler.clone();
            let (parts, body) = req.into_parts();
            // A request without a body is answered here and now, and dropped: its headers
            // share hyper's read buffer, which hyper then reuses for the next request instead of
            // allocating another (8 KiB, and a page-mapping round trip in musl's allocator,
            // at every request).
            let pending = if body.is_end_stream() {
                Pending::Answered(handler.handle(&parts, Bytes::new()))
            } else {
                Pending::Body(parts, body)
            };
            async move {
                let reply = match pending {
                    Pending::Answered(reply) => reply,
                    Pending::Body(parts, body) => answer(&parts, body, &*handler, limits).await,
                };
                Ok::<_, Infallible>(reply.into_response())
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(io, svc);
        let _ = watcher.watch(conn).await;
    }
}

/// A request as the service takes it.
enum Pending {
    /// Without a body: answered at once.
    Answered(Reply),
    /// With one still to read.
    Body(Parts, Incoming),
}

/// Reads the body within the limits, then hands the request to its route.
async fn answer(parts: &Parts, body: Incoming, handler: &dyn Handler, limits: Limits) -> Reply {
    match read_body(parts, body, limits).await {
        Ok(body) => handler.handle(parts, body),
        Err(e) => {
            let status = e.status();
            tracing::warn!(status = status.as_u16(), path = %crate::limits::field(parts.uri.path()), error = %e, "request refused");
            handler.refused(status);
            Reply::text(status, format!("{e}\n"))
        }
    }
}

/// Why a body was not read.
#[derive(Debug)]
enum BodyError {
    TooLarge(u64),
    Slow(Duration),
    Broken(hyper::Error),
}

impl BodyError {
    fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Slow(_) => StatusCode::REQUEST_TIMEOUT,
            BodyError::Broken(_) => StatusCode::BAD_REQUEST,
        }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::TooLarge(max) => write!(f, "request body over {max} bytes"),
            BodyError::Slow(t) => {
                write!(f, "the body did not arrive within {}s", t.as_secs())
            }
            BodyError::Broken(e) => write!(f, "cannot read the body: {e}"),
        }
    }
}

async fn read_body(parts: &Parts, body: Incoming, limits: Limits) -> Result<Bytes, BodyError> {
    let drain_max = limits
        .max_body
        .saturating_mul(crate::limits::BODY_DRAIN_FACTOR);
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > drain_max) {
        return Err(BodyError::TooLarge(limits.max_body));
    }
    let read = async {
        let mut body = body;
        let mut buf = Vec::new();
        let mut total = 0u64;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.map_err(BodyError::Broken)?.into_data() {
                total = total.saturating_add(data.len() as u64);
                if total > drain_max {
                    return Err(BodyError::TooLarge(limits.max_body));
                }
                if total <= limits.max_body {
                    buf.extend_from_slice(&data);
                }
            }
        }
        if total > limits.max_body {
            return Err(BodyError::TooLarge(limits.max_body));
        }
        Ok(Bytes::from(buf))
    };
    tokio::time::timeout(limits.body_timeout, read)
        .await
        .unwrap_or(Err(BodyError::Slow(limits.body_timeout)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Echoes the body's length; counts refusals.
    #[derive(Default)]
    struct Echo {
        refused: AtomicU64,
    }

    impl Handler for Echo {
        fn handle(&self, req: &Parts, body: Bytes) -> Reply {
            Reply::text(StatusCode::OK, format!("{} {}", req.uri.path(), body.len()))
        }
        fn refused(&self, _status: StatusCode) {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
    }

    const LIMITS: Limits = Limits {
        header_timeout: Duration::from_millis(300),
        max_body: 1000,
        body_timeout: Duration::from_millis(500),
    };

    /// A server on 127.0.0.1:0 and the sender that stops it.
    async fn start() -> (
        SocketAddr,
        Arc<Echo>,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let echo = Arc::new(Echo::default());
        let l = Listener::bind("127.0.0.1:0".parse().unwrap(), "--listen", echo.clone())
            .await
            .unwrap();
        let addr = l.addr();
        assert_ne!(addr.port(), 0, "the real port is known");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run(vec![l], LIMITS, async move {
            let _ = rx.await;
        }));
        (addr, echo, tx, task)
    }

    /// Sends `raw`, returns everything read until the server closes (or 5 s).
    async fn exchange(addr: SocketAddr, raw: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(raw).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    fn post(len: usize) -> Vec<u8> {
        let mut r = format!(
            "POST /p HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {len}\r\n\r\n"
        )
        .into_bytes();
        r.extend(std::iter::repeat_n(b'a', len));
        r
    }

    #[tokio::test(flavor = "current_thread")]
    async fn bodies_within_the_limit_reach_the_handler_and_larger_ones_are_413() {
        let (addr, echo, _stop, _t) = start().await;
        let ok = exchange(addr, &post(1000)).await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.contains("cache-control: no-store"), "{ok}");
        assert!(ok.ends_with("/p 1000"), "{ok}");
        // Over the limit but within the drain size: read, dropped, 413.
        let big = exchange(addr, &post(1001)).await;
        assert!(big.starts_with("HTTP/1.1 413"), "{big}");
        assert!(big.contains("request body over 1000 bytes"), "{big}");
        // A declared length past the drain size: refused before reading.
        let huge = exchange(
            addr,
            b"POST /p HTTP/1.1\r\nhost: x\r\ncontent-length: 99999999\r\n\r\n",
        )
        .await;
        assert!(huge.starts_with("HTTP/1.1 413"), "{huge}");
        // Chunked, no length: counted while reading.
        let mut chunked =
            b"POST /p HTTP/1.1\r\nhost: x\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n"
                .to_vec();
        for _ in 0..3 {
            chunked.extend_from_slice(b"200\r\n");
            chunked.extend(std::iter::repeat_n(b'a', 0x200));
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let c = exchange(addr, &chunked).await;
        assert!(c.starts_with("HTTP/1.1 413"), "{c}");
        assert_eq!(echo.refused.load(Ordering::Relaxed), 3);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_body_that_does_not_arrive_is_408() {
        let (addr, echo, _stop, _t) = start().await;
        let started = std::time::Instant::now();
        // Says 10 bytes, sends 2, then waits.
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /p HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nab")
            .await
            .unwrap();
        let mut out = vec![0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut out))
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&out[..n]);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(started.elapsed() >= LIMITS.body_timeout);
        assert_eq!(echo.refused.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_client_that_never_finishes_its_headers_is_dropped() {
        let (addr, _echo, _stop, _t) = start().await;
        let started = std::time::Instant::now();
        let out = exchange(addr, b"GET / HTTP/1.1\r\nhost: x\r\n").await;
        let took = started.elapsed();
        // Closed (hyper may answer 408 first) after the header timeout, not at the 5 s cap.
        assert!(!out.contains("200 OK"), "{out}");
        assert!(took >= LIMITS.header_timeout, "{took:?}");
        assert!(took < Duration::from_secs(4), "{took:?}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn shutdown_stops_accepting_closes_idle_connections_and_lets_requests_finish() {
        let (addr, _echo, stop, task) = start().await;
        // An idle keep-alive connection.
        let mut idle = TcpStream::connect(addr).await.unwrap();
        idle.write_all(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 1024];
        let n = idle.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        // A request in flight: its headers in, its body still coming.
        let mut busy = TcpStream::connect(addr).await.unwrap();
        busy.write_all(b"POST /b HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nab")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = std::time::Instant::now();
        stop.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        busy.write_all(b"cdefghij").await.unwrap();
        let n = busy.read(&mut buf).await.unwrap();
        let answered = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
        assert!(answered.ends_with("/b 10"), "{answered}");
        tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(1), task)
            .await
            .expect("run returns within the grace period")
            .unwrap();
        assert!(
            started.elapsed() < SHUTDOWN_GRACE,
            "{:?}",
            started.elapsed()
        );
        // The idle connection was closed, and nothing listens any more.
        let n = tokio::time::timeout(Duration::from_secs(1), idle.read(&mut buf))
            .await
            .expect("closed, not left open")
            .unwrap_or(0);
        assert_eq!(n, 0);
        assert!(TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_busy_address_names_the_flag() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap();
        let e = Listener::bind(addr, "--health-listen", Arc::new(Echo::default()))
            .await
            .err()
            .unwrap();
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("cannot listen on {addr}: ")),
            "{msg}"
        );
        assert!(msg.ends_with("pick another --health-listen"), "{msg}");
    }
}
