//! `serve`'s HTTP side: bind, route, shut down. The sidecar hands out the credentials that
//! [`refresh`] keeps fresh.
//!
//! - On `--listen` (IPv4 or IPv6): `GET /v1/credentials` ([`ecs`]), IMDSv2 under `/latest/`
//!   with `--imds` ([`imds`]), and the health endpoints.
//! - Health endpoints, also alone on `--health-listen` (for the kubelet's probes, which connect
//!   to the pod IP while the credentials stay on loopback): `GET /healthz` (process alive),
//!   `GET /readyz` (200 only while valid credentials exist: the native sidecar's
//!   `startupProbe`), `GET /metrics` ([`metrics`]).
//! - Every accepted connection answers with IP TTL (IPv6: hop limit) `--hop-limit`
//!   ([`hop_limit`]); `--port N` is `--listen 127.0.0.1:N` with IMDSv2, as `aws_signing_helper serve`.
//! - A client that does not finish its headers within 10 s is dropped.
//! - SIGTERM or SIGINT: stop accepting, exit 0.

mod body;
pub(crate) mod ecs;
pub(crate) mod hop_limit;
pub(crate) mod imds;
pub(crate) mod metrics;
pub(crate) mod refresh;

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use time::OffsetDateTime;
use tokio::net::TcpListener;

use crate::credentials::Credentials;

/// What to serve and where, validated.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) listen: SocketAddr,
    /// The flag `listen` came from (`--listen` or `--port`), for the bind error.
    pub(crate) listen_flag: &'static str,
    /// IP TTL / hop limit of every response.
    pub(crate) hop_limit: u32,
    /// A second address serving only the health endpoints.
    pub(crate) health_listen: Option<SocketAddr>,
    /// Where the ECS endpoint's token is kept; `None` = no ECS endpoint.
    pub(crate) auth_token_file: Option<PathBuf>,
    pub(crate) imds: bool,
    /// The role name IMDS lists (the role ARN's last path segment).
    pub(crate) role_name: String,
}

/// Why serving could not start.
#[derive(Debug)]
pub(crate) enum ServeError {
    /// An address could not be bound (in use, not local).
    Bind {
        addr: SocketAddr,
        flag: &'static str,
        source: std::io::Error,
    },
    /// The ECS token file could not be written.
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The signal handlers could not be installed.
    Signal(std::io::Error),
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Bind { addr, flag, source } => {
                write!(f, "cannot listen on {addr}: {source}; pick another {flag}")
            }
            ServeError::TokenFile { path, source } => write!(
                f,
                "cannot write the auth token file {}: {source}; check that the folder exists or can be created and is writable",
                path.display()
            ),
            ServeError::Signal(e) => write!(f, "cannot install the SIGTERM handler: {e}"),
        }
    }
}

impl std::error::Error for ServeError {}

/// The credentials being served.
#[derive(Debug, Clone)]
pub(crate) struct Current {
    pub(crate) creds: Credentials,
    pub(crate) cert_not_after: OffsetDateTime,
    pub(crate) updated: OffsetDateTime,
}

/// State shared by the refresher and the HTTP handlers.
#[derive(Debug)]
pub(crate) struct State {
    current: RwLock<Option<Current>>,
    /// The ECS endpoint's token, when enabled.
    pub(crate) token: Option<String>,
    pub(crate) imds: Option<imds::Tokens>,
    pub(crate) role_name: String,
    pub(crate) metrics: metrics::Metrics,
}

impl State {
    fn new(token: Option<String>, imds: bool, role_name: String) -> State {
        State {
            current: RwLock::new(None),
            token,
            imds: imds.then(imds::Tokens::default),
            role_name,
            metrics: metrics::Metrics::default(),
        }
    }

    /// Replaces the credentials being served.
    pub(crate) fn set(&self, c: Current) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(c);
    }

    fn current(&self) -> Option<Current> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The current credentials if they are still valid.
    pub(crate) fn valid(&self) -> Option<Current> {
        self.current()
            .filter(|c| c.creds.seconds_left(OffsetDateTime::now_utc()) > 0)
    }
}

/// A response before it becomes hyper's.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    content_type: &'static str,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) fn text(status: StatusCode, body: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: "text/plain",
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub(crate) fn json(status: StatusCode, body: String) -> Reply {
        Reply {
            content_type: "application/json",
            ..Reply::text(status, body)
        }
    }

    pub(crate) fn with_header(mut self, name: &'static str, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut b = Response::builder()
            .status(self.status)
            .header("content-type", self.content_type)
            .header("cache-control", "no-store");
        for (k, v) in self.headers {
            b = b.header(k, v);
        }
        b.body(Full::new(Bytes::from(self.body)))
            .expect("static response parts")
    }
}

/// Which routes a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Routes {
    All,
    HealthOnly,
}

/// Binds the listeners and writes the ECS token file (failing fast, before any credentials
/// exist), then serves until SIGTERM/SIGINT while `refresher` keeps the credentials fresh.
pub(crate) async fn run(
    settings: Settings,
    refresher: impl refresh::Refresh,
) -> Result<(), ServeError> {
    let token = match &settings.auth_token_file {
        Some(path) => {
            Some(
                ecs::load_or_create_token(path).map_err(|source| ServeError::TokenFile {
                    path: path.clone(),
                    source,
                })?,
            )
        }
        None => None,
    };
    let bind = |addr: SocketAddr, flag: &'static str| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, flag, source })
    };
    let main = bind(settings.listen, settings.listen_flag).await?;
    let health = match settings.health_listen {
        Some(a) => Some(bind(a, "--health-listen").await?),
        None => None,
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(ServeError::Signal)?;
    let state = Arc::new(State::new(token, settings.imds, settings.role_name));
    tracing::info!(listen = %settings.listen, health_listen = ?settings.health_listen, imds = settings.imds, ecs = state.token.is_some(), hop_limit = settings.hop_limit, "serving");

    let refresh = tokio::spawn(refresh::run(refresher, state.clone()));
    let hops = settings.hop_limit;
    let mut tasks = vec![tokio::spawn(accept(main, state.clone(), Routes::All, hops))];
    if let Some(h) = health {
        tasks.push(tokio::spawn(accept(
            h,
            state.clone(),
            Routes::HealthOnly,
            hops,
        )));
    }
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!(listen = %settings.listen, "shutting down");
    refresh.abort();
    for t in tasks {
        t.abort();
    }
    Ok(())
}

async fn accept(listener: TcpListener, state: Arc<State>, routes: Routes, hop_limit: u32) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        if let Err(e) = hop_limit::apply(&stream, hop_limit) {
            // Never answer with a TTL other than the one asked for.
            tracing::warn!(error = %e, "cannot set the hop limit; closing the connection");
            continue;
        }
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let (parts, _) = req.into_parts();
                let reply = route(&parts, &state, routes);
                async move { Ok::<_, Infallible>(reply.into_response()) }
            });
            // A client that never finishes its headers does not hold a task forever.
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn route(req: &Parts, s: &State, routes: Routes) -> Reply {
    let path = req.uri.path();
    match (&req.method, path) {
        (&Method::GET, "/healthz") => Reply::text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") => match s.valid() {
            Some(_) => Reply::text(StatusCode::OK, "ready\n"),
            None => Reply::text(
                StatusCode::SERVICE_UNAVAILABLE,
                "no valid credentials yet\n",
            ),
        },
        (&Method::GET, "/metrics") => {
            let now = OffsetDateTime::now_utc();
            let cur = s.current();
            let body = s.metrics.render(
                cur.as_ref().map(|c| c.creds.seconds_left(now)),
                cur.as_ref()
                    .map(|c| (c.cert_not_after - now).whole_seconds()),
            );
            Reply {
                content_type: "text/plain; version=0.0.4",
                ..Reply::text(StatusCode::OK, body)
            }
        }
        _ if routes == Routes::HealthOnly => Reply::text(StatusCode::NOT_FOUND, "not found\n"),
        (&Method::GET, "/v1/credentials") => ecs::handle(req, s),
        _ if path.starts_with("/latest/") => imds::handle(req, s),
        _ => Reply::text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// The secret key [`route_for_fuzzing`]'s credentials carry.
pub(crate) const FUZZ_SECRET: &str = "FuzzSecretKeyFuzzSecretKeyFuzzSecretKey0";

/// Routes `req` on the main listener of a sidecar with valid credentials, ECS token
/// `fuzz-token` and IMDS on ([`crate::fuzzing::serve_request`]): the status and the body.
pub(crate) fn route_for_fuzzing(req: &Parts) -> (StatusCode, String) {
    static STATE: std::sync::OnceLock<State> = std::sync::OnceLock::new();
    let s = STATE.get_or_init(|| {
        let s = State::new(Some("fuzz-token".into()), true, "FuzzRole".into());
        let now = OffsetDateTime::now_utc();
        s.set(Current {
            creds: Credentials {
                access_key_id: "ASIAFUZZFUZZFUZZFUZZ".into(),
                secret_access_key: crate::secret::Secret::new(FUZZ_SECRET),
                session_token: crate::secret::Secret::new("RnV6elRva2VuRnV6elRva2Vu"),
                expiration: now + time::Duration::days(3650),
            },
            cert_not_after: now + time::Duration::days(3650),
            updated: now,
        });
        s
    });
    let r = route(req, s, Routes::All);
    (r.status, r.body)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A state for handler tests: role `R`, an ECS token, IMDS on or off.
    pub(crate) fn state(token: Option<&str>, imds: bool) -> State {
        State::new(token.map(str::to_string), imds, "R".into())
    }

    /// Serves the fixture credentials, expiring `seconds` from now.
    pub(crate) fn with_creds(s: &State, seconds: i64) {
        let now = OffsetDateTime::now_utc();
        s.set(Current {
            creds: crate::credentials::fixture(now + time::Duration::seconds(seconds)),
            cert_not_after: now,
            updated: now,
        });
    }

    fn get(path: &str) -> Parts {
        http::Request::get(path).body(()).unwrap().into_parts().0
    }

    #[test]
    fn health_routes_and_the_health_only_listener() {
        let s = state(Some("t"), true);
        let r = |path, routes| route(&get(path), &s, routes).status;
        assert_eq!(r("/healthz", Routes::All), StatusCode::OK);
        assert_eq!(
            r("/readyz", Routes::HealthOnly),
            StatusCode::SERVICE_UNAVAILABLE
        );
        with_creds(&s, 60);
        assert_eq!(r("/readyz", Routes::HealthOnly), StatusCode::OK);
        assert_eq!(r("/metrics", Routes::HealthOnly), StatusCode::OK);
        assert_eq!(
            r("/v1/credentials", Routes::HealthOnly),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            r(
                "/latest/meta-data/iam/security-credentials/",
                Routes::HealthOnly
            ),
            StatusCode::NOT_FOUND
        );
        assert_eq!(r("/v1/credentials", Routes::All), StatusCode::UNAUTHORIZED);
        assert_eq!(r("/nope", Routes::All), StatusCode::NOT_FOUND);
    }
}
