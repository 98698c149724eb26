//! `serve`: the sidecar. Obtains credentials exactly as `init` does, keeps them fresh for as
//! long as the pod runs, and hands them out.
//!
//! - Refresh: the whole flow (Vault login re-reading the ServiceAccount token, a new key and
//!   certificate, CreateSession) at the time [`schedule::next_refresh`] picks; a failure is
//!   retried with backoff while the current credentials keep being served, never past their
//!   expiry. `--credentials-file` is rewritten atomically at every refresh.
//! - HTTP on `--listen` (IPv4 or IPv6): `GET /v1/credentials` ([`ecs`]), `GET /healthz`
//!   (process alive), `GET /readyz` (200 only while valid credentials exist: the native
//!   sidecar's `startupProbe`), `GET /metrics` ([`metrics`]), and IMDSv2 with `--imds`
//!   ([`imds`]).
//! - SIGTERM or SIGINT: stop accepting, finish, exit 0.

pub mod ecs;
pub mod imds;
pub mod metrics;
pub mod schedule;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use time::OffsetDateTime;
use tokio::net::TcpListener;

use crate::aws::credentials::Credentials;
use crate::cli::ServeArgs;
use crate::cmd::init::{InitConfig, write_output};
use crate::config::{ConfigError, Env, OutputConfig};
use crate::error::Error;
use crate::fsutil;
use crate::retry::{full_jitter, random_unit};
use crate::rolesanywhere::session::SessionClient;
use crate::source::session_from_vault;

/// The credentials being served.
#[derive(Debug, Clone)]
struct Current {
    creds: Credentials,
    cert_not_after: OffsetDateTime,
    updated: OffsetDateTime,
}

/// State shared by the refresher and the HTTP handlers.
#[derive(Debug)]
struct Shared {
    current: RwLock<Option<Current>>,
    token: Option<String>,
    imds: Option<imds::Tokens>,
    role_name: String,
    metrics: metrics::Metrics,
}

impl Shared {
    /// The current credentials if they are still valid.
    fn valid(&self) -> Option<Current> {
        let cur = self.current.read().unwrap_or_else(|p| p.into_inner());
        cur.as_ref()
            .filter(|c| c.creds.seconds_left(OffsetDateTime::now_utc()) > 0)
            .cloned()
    }
}

/// Runs the sidecar until SIGTERM/SIGINT.
pub async fn run(args: ServeArgs, env: &dyn Env) -> Result<(), Error> {
    let cfg = InitConfig::new(&args.flow.ra, &args.flow.vault, env)?;
    let session = cfg.ra.session_client()?;
    // The file is rewritten only when asked for explicitly (flag or IAMRA_CREDENTIALS_FILE).
    let output = match args.flow.output.credentials_file {
        Some(_) => Some(OutputConfig::new(&args.flow.output, env)?),
        None => None,
    };
    if args.auth_token_file.is_none() && !args.imds && output.is_none() {
        return Err(ConfigError(
            "nothing to serve: pass --auth-token-file (ECS endpoint), --imds, or --credentials-file".into(),
        )
        .into());
    }
    let token = match &args.auth_token_file {
        Some(path) => {
            let t = ecs::new_token();
            fsutil::write_atomic(path, t.as_bytes()).map_err(|source| Error::Output {
                what: "auth token file",
                path: path.clone(),
                source,
            })?;
            Some(t)
        }
        None => None,
    };
    let listener = TcpListener::bind(args.listen).await.map_err(|e| {
        Error::Config(ConfigError(format!(
            "cannot listen on {}: {e}; pick another --listen",
            args.listen
        )))
    })?;
    let role_name = cfg
        .ra
        .target
        .role
        .raw
        .rsplit('/')
        .next()
        .unwrap_or("role")
        .to_string();
    let shared = Arc::new(Shared {
        current: RwLock::new(None),
        token,
        imds: args.imds.then(imds::Tokens::default),
        role_name,
        metrics: metrics::Metrics::default(),
    });
    tracing::info!(listen = %args.listen, imds = args.imds, ecs = shared.token.is_some(), "serving");

    let refresher = tokio::spawn(refresh_loop(cfg, session, output, shared.clone()));
    let result = accept_loop(listener, shared, args.listen).await;
    refresher.abort();
    result
}

/// Backoff between failed refreshes: full jitter, from 1 s doubling up to 60 s.
const RETRY_BASE: Duration = Duration::from_secs(1);
const RETRY_CAP: Duration = Duration::from_secs(60);

async fn refresh_loop(
    cfg: InitConfig,
    session: SessionClient,
    output: Option<OutputConfig>,
    shared: Arc<Shared>,
) {
    // Consecutive failed refreshes, for the backoff between retries.
    let mut failures: u32 = 0;
    loop {
        let started = OffsetDateTime::now_utc();
        let wait = match session_from_vault(
            &session,
            &cfg.vault,
            Instant::now() + cfg.vault.timeout,
        )
        .await
        {
            Ok(got) => {
                if let Some(out) = &output
                    && let Err(e) = write_output(out, &cfg.ra.target.region, &got.credentials)
                {
                    tracing::warn!(error = %e, "could not rewrite the credentials file");
                }
                let expires = got.credentials.expiration;
                *shared.current.write().unwrap_or_else(|p| p.into_inner()) = Some(Current {
                    creds: got.credentials,
                    cert_not_after: got.cert_not_after,
                    updated: started,
                });
                shared
                    .metrics
                    .refreshes
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                failures = 0;
                let wait = schedule::next_refresh(
                    started,
                    expires,
                    OffsetDateTime::now_utc(),
                    random_unit(),
                );
                tracing::info!(expiration = %crate::aws::credentials::rfc3339(expires), next_refresh_s = wait.as_secs(), "credentials refreshed");
                wait
            }
            Err(e) => {
                shared
                    .metrics
                    .failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let still_valid = shared.valid().map(|c| c.creds.expiration_rfc3339());
                tracing::warn!(error = %crate::error::one_line(&e), serving_until = still_valid.as_deref().unwrap_or("nothing valid"), "refresh failed, will retry");
                failures = failures.saturating_add(1);
                full_jitter(RETRY_BASE, RETRY_CAP, failures - 1, random_unit())
            }
        };
        tokio::time::sleep(wait).await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    addr: SocketAddr,
) -> Result<(), Error> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::Other(format!("cannot install the SIGTERM handler: {e}")))?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(handle(&req, &shared)) }
                    });
                    // A client that never finishes its headers does not hold a task forever.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(10))
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    tracing::info!(listen = %addr, "shutting down");
    Ok(())
}

fn respond(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("cache-control", "no-store")
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts")
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    respond(status, "application/json", body)
}

fn handle(req: &Request<Incoming>, s: &Shared) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    match (req.method(), path) {
        (&Method::GET, "/healthz") => respond(StatusCode::OK, "text/plain", "ok\n".into()),
        (&Method::GET, "/readyz") => match s.valid() {
            Some(_) => respond(StatusCode::OK, "text/plain", "ready\n".into()),
            None => respond(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "no valid credentials yet\n".into(),
            ),
        },
        (&Method::GET, "/metrics") => {
            let now = OffsetDateTime::now_utc();
            let cur = s.current.read().unwrap_or_else(|p| p.into_inner()).clone();
            let body = s.metrics.render(
                cur.as_ref().map(|c| c.creds.seconds_left(now)),
                cur.as_ref()
                    .map(|c| (c.cert_not_after - now).whole_seconds()),
            );
            respond(StatusCode::OK, "text/plain; version=0.0.4", body)
        }
        (&Method::GET, "/v1/credentials") => {
            use std::sync::atomic::Ordering::Relaxed;
            let Some(token) = &s.token else {
                return json(
                    StatusCode::NOT_FOUND,
                    ecs::error_body(
                        "NotEnabled",
                        "start serve with --auth-token-file to enable this endpoint",
                    ),
                );
            };
            let presented = req
                .headers()
                .get(http::header::AUTHORIZATION)
                .map(|v| v.as_bytes());
            if presented.is_none() {
                s.metrics.refused.fetch_add(1, Relaxed);
                return json(
                    StatusCode::UNAUTHORIZED,
                    ecs::error_body("Unauthorized", "missing Authorization header"),
                );
            }
            if !ecs::authorized(presented, token) {
                s.metrics.refused.fetch_add(1, Relaxed);
                return json(
                    StatusCode::FORBIDDEN,
                    ecs::error_body("AccessDenied", "wrong authorization token"),
                );
            }
            match s.valid() {
                Some(c) => {
                    s.metrics.served.fetch_add(1, Relaxed);
                    json(StatusCode::OK, ecs::body(&c.creds))
                }
                None => {
                    s.metrics.refused.fetch_add(1, Relaxed);
                    json(
                        StatusCode::SERVICE_UNAVAILABLE,
                        ecs::error_body(
                            "CredentialsUnavailable",
                            "no valid credentials: the refresh is failing, see the sidecar's log",
                        ),
                    )
                }
            }
        }
        _ if path.starts_with("/latest/") => match &s.imds {
            None => respond(
                StatusCode::NOT_FOUND,
                "text/plain",
                "IMDS emulation is off (--imds)\n".into(),
            ),
            Some(tokens) => imds_route(req, s, tokens, &header),
        },
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

fn imds_route<'a>(
    req: &'a Request<Incoming>,
    s: &Shared,
    tokens: &imds::Tokens,
    header: &dyn Fn(&str) -> Option<&'a str>,
) -> Response<Full<Bytes>> {
    const CREDS: &str = "/latest/meta-data/iam/security-credentials/";
    let path = req.uri().path();
    if req.method() == Method::PUT && path == "/latest/api/token" {
        if header("x-forwarded-for").is_some() {
            return respond(
                StatusCode::FORBIDDEN,
                "text/plain",
                "forwarded requests are refused\n".into(),
            );
        }
        return match tokens.issue(header("x-aws-ec2-metadata-token-ttl-seconds")) {
            Some(t) => respond(StatusCode::OK, "text/plain", t),
            None => respond(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "X-aws-ec2-metadata-token-ttl-seconds must be 1-21600\n".into(),
            ),
        };
    }
    if req.method() != Method::GET {
        return respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n".into(),
        );
    }
    if !tokens.valid(header("x-aws-ec2-metadata-token")) {
        return respond(
            StatusCode::UNAUTHORIZED,
            "text/plain",
            "missing or expired IMDSv2 token\n".into(),
        );
    }
    match path.strip_prefix(CREDS) {
        Some("") => respond(StatusCode::OK, "text/plain", s.role_name.clone()),
        Some(role) if role.trim_end_matches('/') == s.role_name => match s.valid() {
            Some(c) => respond(
                StatusCode::OK,
                "text/plain",
                imds::credentials_body(&c.creds, c.updated),
            ),
            None => respond(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "no valid credentials\n".into(),
            ),
        },
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}
