//! `webhook`: a mutating admission webhook that gives annotated pods AWS credentials, by
//! injecting `iamra-bootstrap init` (or `serve` as a native sidecar) into them.
//!
//! - HTTPS on `--listen` ([`tls`]: rustls, the certificate re-read when its files change),
//!   served by the shared skeleton ([`crate::server`]: handshake and headers within 10 s,
//!   graceful shutdown); port 0 binds a port the kernel picks, and the log names it.
//! - `POST /mutate` (the API server adds `?timeout=10s`): an `admission.k8s.io/v1`
//!   `AdmissionReview` for a Pod ([`review`]) in; the same `uid`, `allowed`, and a base64 JSON
//!   Patch ([`patch`]) when the pod's annotations ([`annotations`]) ask for credentials. A pod
//!   without them is allowed unchanged; an invalid annotation is denied with a message naming
//!   it (each value quoted and bounded: [`crate::limits::quote`]). With `--namespace-policy`
//!   ([`policy`]), a pod asking for a role its namespace may not have, or overriding defaults it
//!   may not, is denied with a message naming the namespace and the role. A body that is not a
//!   review is HTTP 400, one over [`crate::limits::MAX_WEBHOOK_BODY`] HTTP 413 (one not sent
//!   within 10 s, 408).
//! - `GET /healthz` (alive), `GET /readyz` (a certificate is loaded), `GET /metrics`
//!   (Prometheus text: admissions by result, bad requests, certificate reloads and expiry).
//!   A known path with the wrong method is 405 with `Allow`.
//! - SIGTERM or SIGINT: stop accepting, finish requests in flight, exit 0.
//!
//! The webhook calls no Kubernetes API and needs no RBAC.

pub(crate) mod annotations;
pub(crate) mod patch;
pub(crate) mod pod;
pub(crate) mod policy;
pub(crate) mod review;
pub(crate) mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{Method, StatusCode};
use tokio_rustls::TlsAcceptor;

use crate::arn::Arn;
use crate::limits::field;
use crate::server::metrics::Page;
use crate::server::{self, Handler, Limits, Listener, Reply, ServerError};

/// What a connection and a request to the webhook may take. The API server caps objects near
/// 3 MiB; a review of one is a little larger.
const LIMITS: Limits = Limits {
    header_timeout: Duration::from_secs(10),
    max_body: crate::limits::MAX_WEBHOOK_BODY,
    body_timeout: Duration::from_secs(10),
};

/// `init` (credentials file before the app starts) or `sidecar` (`serve`, refreshed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Mode {
    /// A one-shot init container writes a credentials file.
    #[default]
    Init,
    /// A native sidecar serves the ECS credentials endpoint.
    Sidecar,
}

/// The cluster defaults an annotated pod gets unless it overrides them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Defaults {
    /// Image of the injected container.
    pub(crate) image: String,
    /// Trust anchor ARN.
    pub(crate) trust_anchor: Arn,
    /// Profile ARN.
    pub(crate) profile: Arn,
    /// Where the certificate comes from when the pod does not say.
    pub(crate) source: CertSource,
    /// Vault address (`None`: only SPIFFE pods can be injected).
    pub(crate) vault_addr: Option<String>,
    /// Vault PKI role (`None`: each Vault pod must name one).
    pub(crate) pki_role: Option<String>,
    /// Vault auth role; `None`: the pod's ServiceAccount name.
    pub(crate) vault_role: Option<String>,
    /// Mode when the pod does not say.
    pub(crate) mode: Mode,
    /// Audience of the projected ServiceAccount token.
    pub(crate) token_audience: String,
}

/// Where the injected container gets its certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CertSource {
    /// Vault login with a projected ServiceAccount token, Vault PKI.
    Vault,
    /// The SPIFFE Workload API on the SPIFFE CSI driver's socket volume.
    Spiffe,
}

/// Everything `webhook` runs with (built from flags and environment by `config`).
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Where to listen (HTTPS).
    pub(crate) listen: SocketAddr,
    /// Serving certificate chain (PEM).
    pub(crate) tls_cert: PathBuf,
    /// Its private key (PEM).
    pub(crate) tls_key: PathBuf,
    /// The injection defaults.
    pub(crate) defaults: Defaults,
    /// `--namespace-policy`, loaded (re-read when it changes).
    pub(crate) namespace_policy: Option<Arc<policy::Watched>>,
}

/// Why the webhook could not start (mapped to exit codes in `crate::error`).
#[derive(Debug)]
pub(crate) enum WebhookError {
    /// The serving certificate or key cannot be used (exit 2).
    Tls(tls::TlsError),
    /// `--listen` cannot be bound (exit 2), the signal handlers not installed (exit 1).
    Server(ServerError),
}

impl std::fmt::Display for WebhookError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WebhookError::Tls(e) => e.fmt(f),
            WebhookError::Server(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for WebhookError {}

impl From<ServerError> for WebhookError {
    fn from(e: ServerError) -> Self {
        WebhookError::Server(e)
    }
}

#[derive(Debug, Default)]
struct Metrics {
    patched: AtomicU64,
    unchanged: AtomicU64,
    denied: AtomicU64,
    bad_requests: AtomicU64,
}

struct Shared {
    defaults: Defaults,
    policy: Option<Arc<policy::Watched>>,
    tls: Arc<tls::Store>,
    metrics: Metrics,
}

/// Runs the webhook until SIGTERM/SIGINT.
pub(crate) async fn run(settings: Settings) -> Result<(), WebhookError> {
    let store =
        tls::Store::open(&settings.tls_cert, &settings.tls_key).map_err(WebhookError::Tls)?;
    let acceptor = TlsAcceptor::from(store.server_config().map_err(WebhookError::Tls)?);
    let shared = Arc::new(Shared {
        defaults: settings.defaults,
        policy: settings.namespace_policy.clone(),
        tls: store.clone(),
        metrics: Metrics::default(),
    });
    let listener = Listener::bind(settings.listen, "--listen", shared.clone())
        .await?
        .with_tls(acceptor);
    let shutdown = server::signals()?;
    tracing::info!(listen = %listener.addr(), image = %shared.defaults.image, "webhook serving");
    let watcher = tokio::spawn(tls::watch(store));
    let policy_watcher = settings
        .namespace_policy
        .map(|p| tokio::spawn(policy::watch(p)));
    server::run(vec![listener], LIMITS, shutdown).await;
    watcher.abort();
    if let Some(w) = policy_watcher {
        w.abort();
    }
    Ok(())
}

impl Handler for Shared {
    fn handle(&self, req: &Parts, body: Bytes) -> Reply {
        match (&req.method, req.uri.path()) {
            (&Method::GET, "/healthz") => Reply::text(StatusCode::OK, "ok\n"),
            (&Method::GET, "/readyz") => Reply::text(StatusCode::OK, "ready\n"),
            (&Method::GET, "/metrics") => self.metrics_page(),
            (&Method::POST, "/mutate") => self.mutate(&body),
            (_, "/mutate") => Reply::method_not_allowed("POST"),
            (_, "/healthz" | "/readyz" | "/metrics") => Reply::method_not_allowed("GET"),
            _ => Reply::text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    /// A body over the limit, too slow or broken (the skeleton answered and logged it).
    fn refused(&self, _status: StatusCode) {
        self.metrics.bad_requests.fetch_add(1, Ordering::Relaxed);
    }
}

impl Shared {
    fn mutate(&self, body: &[u8]) -> Reply {
        let policy = self.policy.as_ref().map(|p| p.current());
        let out = match admit_with(body, &self.defaults, policy.as_deref()) {
            Ok(o) => o,
            Err(e) => {
                self.metrics.bad_requests.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(status = 400, error = %e.0, "bad admission request");
                return Reply::text(StatusCode::BAD_REQUEST, format!("{}\n", e.0));
            }
        };
        let counter = match out.result {
            Outcome::Patched => &self.metrics.patched,
            Outcome::Unchanged => &self.metrics.unchanged,
            Outcome::Denied => &self.metrics.denied,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Reply::json(StatusCode::OK, out.body)
    }

    fn metrics_page(&self) -> Reply {
        let (m, tls) = (&self.metrics, &self.tls);
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut page = Page::default();
        page.counter_by(
            "iamra_webhook_admissions_total",
            "Admission reviews answered, by result.",
            "result",
            &[
                ("patched", n(&m.patched)),
                ("unchanged", n(&m.unchanged)),
                ("denied", n(&m.denied)),
            ],
        )
        .counter(
            "iamra_webhook_bad_requests_total",
            "Requests answered 400, 408 or 413.",
            n(&m.bad_requests),
        )
        .counter(
            "iamra_webhook_certificate_reloads_total",
            "Serving certificate reloads after a file change.",
            n(&tls.reloads),
        )
        .counter(
            "iamra_webhook_certificate_reload_failures_total",
            "Changed serving certificate files that did not load.",
            n(&tls.reload_failures),
        )
        .gauge(
            "iamra_webhook_certificate_expiry_seconds",
            "Seconds until the serving certificate expires.",
            Some(tls.not_after.load(Ordering::Relaxed) - now),
        );
        page.reply()
    }
}

/// What happened to one review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Allowed with a patch.
    Patched,
    /// Allowed as it was.
    Unchanged,
    /// Denied.
    Denied,
}

/// One review answered: the response body and what it was.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The `AdmissionReview` response.
    pub(crate) body: Vec<u8>,
    /// Its outcome.
    pub(crate) result: Outcome,
}

/// Answers one request body (no I/O) with no namespace policy.
#[cfg(test)]
pub(crate) fn admit(body: &[u8], defaults: &Defaults) -> Result<Answer, review::Malformed> {
    admit_with(body, defaults, None)
}

/// Answers one request body (no I/O): the whole `/mutate` logic.
pub(crate) fn admit_with(
    body: &[u8],
    defaults: &Defaults,
    policy: Option<&policy::NamespacePolicy>,
) -> Result<Answer, review::Malformed> {
    let a = review::parse(body)?;
    let Some(pod) = &a.pod else {
        return Ok(Answer {
            body: review::allow(&a.uid, None, &[]),
            result: Outcome::Unchanged,
        });
    };
    let deny = |msg: String| {
        // `msg` quotes what it echoes; the review's own names go through the door here.
        tracing::info!(namespace = %field(&a.namespace), pod = %field(&a.name), reason = %msg, "denied");
        Answer {
            body: review::deny(&a.uid, &msg),
            result: Outcome::Denied,
        }
    };
    let request = match annotations::parse(pod.metadata.annotations.as_ref(), defaults) {
        Ok(annotations::Parsed::Inject(r)) => r,
        Ok(annotations::Parsed::NotOurs) => {
            return Ok(Answer {
                body: review::allow(&a.uid, None, &[]),
                result: Outcome::Unchanged,
            });
        }
        Ok(annotations::Parsed::Skipped(warning)) => {
            return Ok(Answer {
                body: review::allow(&a.uid, None, &[warning]),
                result: Outcome::Unchanged,
            });
        }
        Err(e) => return Ok(deny(e.to_string())),
    };
    if let Some(p) = policy {
        let annotations = pod.metadata.annotations.as_ref();
        let overrides: Vec<&str> = policy::OVERRIDES
            .into_iter()
            .filter(|k| annotations.is_some_and(|m| m.contains_key(*k)))
            .collect();
        if let Err(msg) = p.check(&a.namespace, &request.target.role.raw, &overrides) {
            return Ok(deny(msg));
        }
    }
    let m = match patch::build(pod, &request, defaults) {
        Ok(m) => m,
        Err(e) => return Ok(deny(e.0)),
    };
    if m.patch.0.is_empty() {
        return Ok(Answer {
            body: review::allow(&a.uid, None, &m.warnings),
            result: Outcome::Unchanged,
        });
    }
    let json = serde_json::to_vec(&m.patch).expect("a patch serializes");
    tracing::info!(namespace = %field(&a.namespace), pod = %field(&a.name), mode = ?request.mode, role = %field(&request.target.role.raw), operations = m.patch.0.len(), "injected");
    Ok(Answer {
        body: review::allow(&a.uid, Some(&json), &m.warnings),
        result: Outcome::Patched,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::arn::ArnKind;

    pub(crate) fn defaults() -> Defaults {
        Defaults {
            image: "iamra-bootstrap:test".into(),
            trust_anchor: Arn::parse(
                ArnKind::TrustAnchor,
                "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/11111111-2222-3333-4444-555555555555",
            )
            .unwrap(),
            profile: Arn::parse(
                ArnKind::Profile,
                "arn:aws:rolesanywhere:us-east-1:123456789012:profile/66666666-7777-8888-9999-000000000000",
            )
            .unwrap(),
            source: CertSource::Vault,
            vault_addr: Some("https://vault.example:8200".into()),
            pki_role: Some("workload".into()),
            vault_role: None,
            mode: Mode::Init,
            token_audience: "vault".into(),
        }
    }

    fn review(annotations: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "u1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                        "operation": "CREATE", "namespace": "ns",
                        "object": {"metadata": {"name": "p", "annotations": annotations},
                                   "spec": {"containers": [{"name": "app"}]}}}
        }))
        .unwrap()
    }

    /// Runs `f` with the log lines (text format, as `--log-format text` writes them) captured.
    fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
        #[derive(Clone, Default)]
        struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        // Another test thread may have hit the same callsites first, with no subscriber alive, and
        // tracing caches that "never" per callsite: rebuild the cache once ours is in place, or
        // the capture can come back empty when the tests run in parallel.
        let out = tracing::subscriber::with_default(subscriber, || {
            tracing::callsite::rebuild_interest_cache();
            f()
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        (out, text)
    }

    #[test]
    fn a_megabyte_annotation_is_echoed_short_in_the_denial_and_the_log() {
        let mb = "x".repeat(1 << 20);
        let arn = format!("arn:aws:iam::123456789012:role/{mb}");
        let role = "arn:aws:iam::123456789012:role/r";
        for annotations in [
            serde_json::json!({ "iamra-bootstrap/role-arn": mb }),
            serde_json::json!({ "iamra-bootstrap/role-arn": arn }),
            serde_json::json!({ "iamra-bootstrap/role-arn": role, "iamra-bootstrap/mode": mb }),
            serde_json::json!({ "iamra-bootstrap/role-arn": role, "iamra-bootstrap/vault-role": mb }),
            serde_json::json!({ "iamra-bootstrap/role-arn": role, "iamra-bootstrap/session-duration": mb }),
            serde_json::json!({ "iamra-bootstrap/role-arn": role, "iamra-bootstrap/containers": mb }),
            serde_json::json!({ "iamra-bootstrap/role-arn": role, format!("iamra-bootstrap/{mb}"): "1" }),
            serde_json::json!({ "iamra-bootstrap/mode": "init", "iam.amazonaws.com/role": mb }),
        ] {
            let mut body: serde_json::Value = serde_json::from_slice(&review(annotations)).unwrap();
            body["request"]["namespace"] = serde_json::json!(format!("ns\n{mb}"));
            body["request"]["object"]["metadata"]["name"] = serde_json::json!(mb);
            let body = serde_json::to_vec(&body).unwrap();
            let (a, log) = logged(|| admit(&body, &defaults()).unwrap());
            assert_eq!(a.result, Outcome::Denied);
            let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
            let msg = v["response"]["status"]["message"].as_str().unwrap();
            assert!(msg.len() < 600, "{} bytes: {}", msg.len(), &msg[..200]);
            assert!(msg.contains("(1048") && !msg.contains('\n'), "{msg}");
            assert!(a.body.len() < 1000, "{} bytes", a.body.len());
            assert_eq!(log.lines().count(), 1, "{}", &log[..log.len().min(300)]);
            assert!(log.len() < 1200, "{} bytes: {}", log.len(), &log[..300]);
            assert!(log.contains("denied"), "{log}");
        }
        // A warning (a kube2iam role name we cannot use) is as short.
        let (a, _) = logged(|| {
            admit(
                &review(serde_json::json!({ "iam.amazonaws.com/role": mb })),
                &defaults(),
            )
            .unwrap()
        });
        let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        let w = v["response"]["warnings"][0].as_str().unwrap();
        assert!(w.len() < 300 && w.contains("(1048576 characters)"), "{w}");
        // A body the parser refuses is named in one short line, whatever it holds.
        let bad = format!(
            r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u","kind":{{"group":"","version":"v1","kind":"Pod"}},"operation":"CREATE","object":{{"spec":{{"containers":"{mb}"}}}}}}}}"#
        );
        let e = admit(bad.as_bytes(), &defaults()).unwrap_err();
        assert!(
            e.0.len() < 700 && e.0.contains("not an AdmissionReview"),
            "{}",
            &e.0[..200]
        );
        let e = admit(
            format!(r#"{{"apiVersion":"{mb}","kind":"AdmissionReview"}}"#).as_bytes(),
            &defaults(),
        )
        .unwrap_err();
        assert!(e.0.len() < 300, "{}", &e.0[..200]);
    }

    #[test]
    fn admit_outcomes() {
        let d = defaults();
        assert_eq!(
            admit(&review(serde_json::json!({})), &d).unwrap().result,
            Outcome::Unchanged
        );
        let a = admit(
            &review(
                serde_json::json!({"iamra-bootstrap/role-arn": "arn:aws:iam::123456789012:role/r"}),
            ),
            &d,
        )
        .unwrap();
        assert_eq!(a.result, Outcome::Patched);
        let a = admit(
            &review(serde_json::json!({"iamra-bootstrap/role-arn": "nope"})),
            &d,
        )
        .unwrap();
        assert_eq!(a.result, Outcome::Denied);
        let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        assert!(
            v["response"]["status"]["message"]
                .as_str()
                .unwrap()
                .contains("iamra-bootstrap/role-arn")
        );
        assert!(admit(b"{}", &d).is_err());
    }
}
