//! `serve`'s side of the sidecar: what it serves and from what. The sidecar hands out the
//! credentials that the refresh loop ([`crate::source::refresh`]) delivers to it ([`Endpoints`]);
//! binding, connections, limits and shutdown are the shared skeleton's ([`crate::server`]).
//!
//! - On `--listen` (IPv4 or IPv6): `GET /v1/credentials` ([`ecs`]), IMDSv2 under `/latest/`
//!   with `--imds` ([`imds`]), and the health endpoints.
//! - Health endpoints, also alone on `--health-listen` (for the kubelet's probes, which connect
//!   to the pod IP while the credentials stay on loopback): `GET /healthz` (process alive),
//!   `GET /readyz` (200 only while valid credentials exist: the native sidecar's
//!   `startupProbe`), `GET /metrics` ([`metrics`]).
//! - Credentials are served only until they expire ([`State::valid`]): past that, `503`, and
//!   `/readyz` says not ready, whatever the refresh loop is doing.
//! - Every accepted connection answers with IP TTL (IPv6: hop limit) `--hop-limit`
//!   ([`crate::server::hop_limit`]); `--port N` is `--listen 127.0.0.1:N` with IMDSv2, as
//!   `aws_signing_helper serve`. Port 0 binds a port the kernel picks; the `serving` log line
//!   names the address actually bound.
//! - A client that does not finish its headers within 10 s is dropped; a request body (none of
//!   these routes takes one) over [`crate::limits::MAX_SERVE_BODY`] is `413`.
//! - SIGTERM or SIGINT: stop accepting, finish requests in flight, exit 0.

mod body;
pub(crate) mod ecs;
pub(crate) mod imds;
pub(crate) mod metrics;

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::request::Parts;
use http::{Method, StatusCode};
use time::OffsetDateTime;

use crate::aws::credentials_file::FileSink;
use crate::credentials::Credentials;
use crate::server::{self, Handler, Limits, Listener, Reply, ServerError};
use crate::source::Obtained;
use crate::source::refresh::{Feed, Refresh, Sink};

/// What a connection and a request to the sidecar may take.
const LIMITS: Limits = Limits {
    header_timeout: Duration::from_secs(10),
    max_body: crate::limits::MAX_SERVE_BODY,
    body_timeout: Duration::from_secs(10),
};

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
    /// An address could not be bound, or the signal handlers not installed.
    Server(ServerError),
    /// The ECS token file could not be written.
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Server(e) => e.fmt(f),
            ServeError::TokenFile { path, source } => write!(
                f,
                "cannot use the auth token file {}: {source}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for ServeError {}

impl From<ServerError> for ServeError {
    fn from(e: ServerError) -> Self {
        ServeError::Server(e)
    }
}

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

    /// Stops serving any credentials (until the next `set`); whether some were there.
    pub(crate) fn clear(&self) -> bool {
        self.current
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .is_some()
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

/// Where `serve`'s refresh loop delivers: the endpoints' [`State`], and `--credentials-file`
/// when asked for (a failed rewrite is logged; the endpoints still get the new credentials).
pub(crate) struct Endpoints {
    state: Arc<State>,
    file: Option<FileSink>,
}

impl Sink for Endpoints {
    type Error = Infallible;
    const DELIVERED: &'static str = "credentials refreshed";

    fn deliver(
        &self,
        got: &Obtained,
        issued: OffsetDateTime,
        deadline: Instant,
    ) -> Result<(), Infallible> {
        if let Some(file) = &self.file
            && let Err(e) = file.deliver(got, issued, deadline)
        {
            tracing::warn!(error = %e, "could not rewrite the credentials file");
        }
        self.state.set(Current {
            creds: got.credentials.clone(),
            cert_not_after: got.cert_not_after,
            updated: issued,
        });
        self.state.metrics.refreshes.fetch_add(1, Relaxed);
        Ok(())
    }

    fn failed(&self) {
        self.state.metrics.failures.fetch_add(1, Relaxed);
    }

    /// Served no longer: 503 until credentials from a usable identity arrive.
    fn withdrawn(&self) {
        self.state.clear();
    }
}

/// Which routes a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Routes {
    All,
    HealthOnly,
}

/// One listener's routes over the shared state.
struct Listen {
    state: Arc<State>,
    routes: Routes,
}

impl Handler for Listen {
    fn handle(&self, req: &Parts, _body: Bytes) -> Reply {
        route(req, &self.state, self.routes)
    }
}

/// Writes the ECS token file and binds the listeners (failing fast, before any credentials
/// exist), then serves until SIGTERM/SIGINT while `refresh` delivers credentials to the
/// endpoints (and to `file`).
pub(crate) async fn run(
    settings: Settings,
    refresh: Refresh<impl Feed>,
    file: Option<FileSink>,
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
    let state = Arc::new(State::new(token, settings.imds, settings.role_name));
    let listen = |routes| -> Arc<dyn Handler> {
        Arc::new(Listen {
            state: state.clone(),
            routes,
        })
    };
    let main = Listener::bind(settings.listen, settings.listen_flag, listen(Routes::All))
        .await?
        .with_hop_limit(settings.hop_limit);
    let health = match settings.health_listen {
        Some(a) => Some(
            Listener::bind(a, "--health-listen", listen(Routes::HealthOnly))
                .await?
                .with_hop_limit(settings.hop_limit),
        ),
        None => None,
    };
    let shutdown = server::signals()?;
    let listen_addr = main.addr();
    let health_addr = health.as_ref().map(Listener::addr);
    tracing::info!(listen = %listen_addr, health_listen = ?health_addr, imds = settings.imds, ecs = state.token.is_some(), hop_limit = settings.hop_limit, "serving");

    let sink = Endpoints {
        state: state.clone(),
        file,
    };
    let serving = server::run(
        std::iter::once(main).chain(health).collect(),
        LIMITS,
        shutdown,
    );
    // The loop runs beside the server and stops with it.
    tokio::select! {
        () = serving => {}
        () = refresh.run(&sink) => {}
    }
    Ok(())
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
            s.metrics.render(
                cur.as_ref().map(|c| c.creds.seconds_left(now)),
                cur.as_ref()
                    .map(|c| (c.cert_not_after - now).whole_seconds()),
            )
        }
        (_, "/healthz" | "/readyz" | "/metrics") => Reply::method_not_allowed("GET"),
        _ if routes == Routes::HealthOnly => Reply::text(StatusCode::NOT_FOUND, "not found\n"),
        (&Method::GET, "/v1/credentials") => ecs::handle(req, s),
        (_, "/v1/credentials") => Reply::method_not_allowed("GET"),
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
    (r.status, r.body_text())
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
