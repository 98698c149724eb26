//! A small Vault HTTP client with the Go client's conventions (`docs/ecosystem-contracts.md`
//! §5, `docs/vault-openbao.md` §5): `X-Vault-Token`, `X-Vault-Namespace`,
//! `X-Vault-Request: true`, TLS 1.2+, roots from `VAULT_CACERT`/`VAULT_CAPATH`. Redirects are
//! not followed: a 3xx is retried against `VAULT_ADDR` (below).
//!
//! Every error is `{"errors":["…"]}`. Each answer is classified ([`classify`]) and retried with
//! capped exponential backoff and full jitter until the overall deadline, with the cap that fits
//! the fault (`src/retry.rs`):
//! - **failover** (short cap, [`FAILOVER_CAP`]): connection errors (Vault not up yet, a node
//!   that just died), 3xx (a standby that could not forward to the active node answers
//!   `307 Location: <the active>`; in a failover that address is the node that just died, so we
//!   go back to `VAULT_ADDR`, which the load balancer points at a live node), 500 "local node
//!   not active but active cluster node not found" (a step-down), 502, 503 (sealed, standby, or
//!   a load balancer with no healthy node), 504, 412;
//! - **busy** (long cap, [`BUSY_CAP`]): 429 (its `Retry-After` honoured), other 5xx, a body over
//!   [`MAX_VAULT_BODY`];
//! - **fatal**: 400, 403, 404 and other 4xx, with Vault's own text, and a refused TLS
//!   certificate.
//!
//! `VAULT_ADDR` may list several addresses (comma-separated, [`super::parse_addrs`]) where no
//! load balancer stands in front of Vault: every call starts at the address that answered last,
//! and a failover answer moves it to the next one.
//!
//! A retried request may have run the first time (the answer, not the request, was lost: a
//! standby falls back to a 307 when forwarding fails, a proxy answers 502/504): the client
//! tells its caller ([`Posted::may_have_repeated`]) so a login can name the token it may have
//! orphaned, and a revoke can take a 403 after such an attempt as done ([`Call::done_if_403_on_repeat`]).
//! The final error says what was seen in words, never an HTML error page.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Settings;
use crate::bounded::{BodyError, read_body};
use crate::http::ClientOptions;
use crate::limits::MAX_VAULT_BODY;
use crate::retry::{self, Failure, Outcome, Policy, parse_retry_after};
use crate::secret::Secret;

/// A failed Vault call.
#[derive(Debug)]
pub(crate) enum VaultError {
    /// Vault answered with an error that retrying will not fix.
    Refused {
        /// What we were doing, with mount and role.
        op: String,
        status: u16,
        /// Vault's `errors`, joined.
        errors: String,
        /// Usual causes, when known.
        hint: Option<String>,
    },
    /// Retryable failures until the deadline.
    GaveUp {
        op: String,
        attempts: u32,
        /// What the last attempt saw, in words.
        last: String,
    },
    /// A 2xx without what we needed.
    BadResponse {
        op: String,
        /// What is missing.
        why: String,
    },
    /// Vault's TLS certificate was refused.
    Tls { url: String, why: String },
    /// A local input (token file, secret id file) could not be used.
    Input(String),
}

impl fmt::Display for VaultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VaultError::Refused {
                op,
                status,
                errors,
                hint,
            } => {
                write!(f, "Vault {op} failed: HTTP {status}: {errors}")?;
                if let Some(h) = hint {
                    write!(f, "; {h}")?;
                }
                Ok(())
            }
            VaultError::GaveUp { op, attempts, last } => write!(
                f,
                "Vault {op} failed after {attempts} attempts until the deadline; last: {last}; check that Vault is reachable, unsealed and has an active node, or raise --timeout (a failover needs election time + health-check rise + about 1 s: see vault/README.md, \"Vault HA\")"
            ),
            VaultError::BadResponse { op, why } => {
                write!(f, "Vault {op}: unexpected answer: {why}")
            }
            VaultError::Tls { url, why } => write!(
                f,
                "Vault's TLS certificate at {url} was refused ({why}); set VAULT_CACERT or VAULT_CAPATH to Vault's CA (VAULT_SKIP_VERIFY=true only for tests)"
            ),
            VaultError::Input(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for VaultError {}

/// A client for one Vault (one or several addresses); built once, reused for every call (and
/// every refresh).
#[derive(Debug, Clone)]
pub(crate) struct VaultClient {
    http: reqwest::Client,
    /// `VAULT_ADDR`'s addresses, in order, no trailing slash.
    addrs: Arc<[String]>,
    /// The address to use next: the one that answered last (shared by every clone).
    current: Arc<AtomicUsize>,
    namespace: Option<String>,
}

/// The first delay's bound; it doubles per attempt up to the cap that fits the fault.
const BASE_DELAY: Duration = Duration::from_millis(250);
/// The cap for a busy Vault (quotas, overload): spread a fleet out.
pub(crate) const BUSY_CAP: Duration = Duration::from_secs(10);
/// The cap for a Vault between nodes (election, a load balancer without a healthy node,
/// connection refused): a fleet is done within about this long of a new active node.
pub(crate) const FAILOVER_CAP: Duration = Duration::from_secs(1);

const POLICY: Policy = Policy {
    base: BASE_DELAY,
    cap: BUSY_CAP,
    failover_cap: FAILOVER_CAP,
    max_attempts: None,
};

/// One call: what to send and how to read a refusal.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call<'a> {
    /// What we are doing, with mount and role (for logs and errors).
    pub(crate) op: &'a str,
    /// Under `/v1/`.
    pub(crate) path: &'a str,
    pub(crate) token: Option<&'a Secret>,
    pub(crate) body: &'a Value,
    /// Usual causes of a 403.
    pub(crate) hint_403: Option<&'a str>,
    /// A 403 after an attempt that may have run means that attempt did the work (a revoke: the
    /// token is gone, so Vault no longer accepts it).
    pub(crate) done_if_403_on_repeat: bool,
}

/// A call's answer.
#[derive(Debug)]
pub(crate) struct Posted {
    /// The JSON answer (`Value::Null` for 204, or when [`Posted::already_done`]).
    pub(crate) value: Value,
    /// An earlier attempt may have run on Vault and lost its answer.
    pub(crate) may_have_repeated: bool,
    /// A 403 after such an attempt, taken as done ([`Call::done_if_403_on_repeat`]).
    pub(crate) already_done: bool,
}

/// What one attempt got back: an answer, or a transport failure.
type Sent = Result<Answer, BodyError>;

/// An HTTP answer, before classification.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) retry_after: Option<Duration>,
    /// `Location`, on a 3xx.
    pub(crate) location: Option<String>,
    pub(crate) body: String,
}

/// What an attempt came to, and whether the request may have run on Vault.
#[derive(Debug)]
pub(crate) struct Verdict {
    pub(crate) outcome: Outcome<Posted, VaultError>,
    /// The request may have reached the active node and run there, its answer lost.
    pub(crate) may_have_run: bool,
}

impl VaultClient {
    /// Builds a client; fails only on unusable TLS settings (e.g. a `VAULT_CACERT` that is not a
    /// CA certificate).
    pub(crate) fn new(cfg: &Settings) -> Result<VaultClient, String> {
        let http = crate::http::client(&ClientOptions {
            roots: cfg.roots.clone(),
            insecure: cfg.insecure,
            proxy_from_env: true,
            connect_timeout: Duration::from_secs(5).min(cfg.client_timeout),
            request_timeout: cfg.client_timeout,
        })?;
        Ok(VaultClient {
            http,
            addrs: cfg.addrs().map(str::to_string).collect(),
            current: Arc::new(AtomicUsize::new(0)),
            namespace: cfg.namespace.clone(),
        })
    }

    /// `POST /v1/<path>` with a JSON body, retrying per the module contract until `deadline`;
    /// returns the JSON answer (`Value::Null` for 204).
    pub(crate) async fn post(
        &self,
        op: &str,
        path: &str,
        token: Option<&Secret>,
        body: &Value,
        hint_403: Option<&str>,
        deadline: Instant,
    ) -> Result<Value, VaultError> {
        let call = Call {
            op,
            path,
            token,
            body,
            hint_403,
            done_if_403_on_repeat: false,
        };
        self.call(call, deadline).await.map(|p| p.value)
    }

    /// [`VaultClient::post`], telling whether an earlier attempt may have run.
    pub(crate) async fn call(
        &self,
        call: Call<'_>,
        deadline: Instant,
    ) -> Result<Posted, VaultError> {
        let path = call.path.trim_start_matches('/');
        // Set once an attempt may have run on Vault with its answer lost.
        let ran = AtomicBool::new(false);
        let attempt = || async {
            let i = self.current.load(Ordering::Relaxed) % self.addrs.len();
            let addr = &self.addrs[i];
            let url = format!("{addr}/v1/{path}");
            let mut rb = self
                .http
                .post(&url)
                .header("X-Vault-Request", "true")
                .json(call.body);
            if let Some(t) = call.token {
                rb = rb.header("X-Vault-Token", t.expose());
            }
            if let Some(ns) = &self.namespace {
                rb = rb.header("X-Vault-Namespace", ns);
            }
            let sent = crate::http::timed(async {
                let resp = rb.send().await.map_err(BodyError::Http)?;
                let status = resp.status().as_u16();
                let header = |h| resp.headers().get(h);
                let retry_after = parse_retry_after(header(http::header::RETRY_AFTER));
                let location = header(http::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body = read_body(resp, MAX_VAULT_BODY, deadline).await?;
                let body = String::from_utf8_lossy(&body).into_owned();
                Ok::<_, BodyError>(Answer {
                    status,
                    retry_after,
                    location,
                    body,
                })
            })
            .await;
            // Name the address only when there is a choice of them (a connection error names
            // its URL anyway).
            let at = (self.addrs.len() > 1).then_some(addr.as_str());
            let v = classify(&call, &url, at, sent, ran.load(Ordering::Relaxed));
            if v.may_have_run && !matches!(v.outcome, Outcome::Done(_)) {
                ran.store(true, Ordering::Relaxed);
            }
            if matches!(v.outcome, Outcome::Failover { .. }) && self.addrs.len() > 1 {
                // Next address; a concurrent call that moved it already wins.
                let _ = self.current.compare_exchange(
                    i,
                    (i + 1) % self.addrs.len(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
            v.outcome
        };
        let mut posted = retry::run("Vault call", call.op, POLICY, deadline, attempt)
            .await
            .map_err(|f| match f {
                Failure::Fatal(e) => e,
                Failure::GaveUp { attempts, last } => VaultError::GaveUp {
                    op: call.op.to_string(),
                    attempts,
                    last,
                },
            })?;
        posted.may_have_repeated = ran.load(Ordering::Relaxed);
        Ok(posted)
    }
}

/// Vault's classification of one attempt (see the module contract). `at` names the address
/// when `VAULT_ADDR` lists several; `repeat`: an earlier attempt may have run.
pub(crate) fn classify(
    call: &Call<'_>,
    url: &str,
    at: Option<&str>,
    sent: Sent,
    repeat: bool,
) -> Verdict {
    let failover = |why: String, may_have_run: bool| Verdict {
        outcome: Outcome::Failover { why },
        may_have_run,
    };
    let a = match sent {
        // Over the cap or past the deadline: retried like a busy server while time is left.
        Err(e @ BodyError::Read(_)) => {
            return Verdict {
                outcome: Outcome::Retry {
                    why: format!("{url}: {e}"),
                    after: None,
                },
                may_have_run: true,
            };
        }
        Err(BodyError::Http(e)) => {
            if let Some(why) = crate::http::certificate_failure(&e) {
                return Verdict {
                    outcome: Outcome::Fatal(VaultError::Tls {
                        url: url.to_string(),
                        why,
                    }),
                    may_have_run: false,
                };
            }
            // Refused or unreachable: nothing was sent. Anything later (a reset, a timeout)
            // may have come after Vault ran the request.
            return failover(
                format!("{url}: {}", crate::http::describe(&e)),
                !e.is_connect(),
            );
        }
        Ok(a) => a,
    };
    let status = a.status;
    if (200..300).contains(&status) {
        let value = if a.body.trim().is_empty() {
            Value::Null
        } else {
            match serde_json::from_str(&a.body) {
                Ok(v) => v,
                Err(e) => {
                    return Verdict {
                        outcome: Outcome::Fatal(VaultError::BadResponse {
                            op: call.op.to_string(),
                            why: format!("not JSON ({e})"),
                        }),
                        may_have_run: true,
                    };
                }
            }
        };
        return Verdict {
            outcome: Outcome::Done(Posted {
                value,
                may_have_repeated: false,
                already_done: false,
            }),
            may_have_run: true,
        };
    }
    let from_vault = is_vault_error(&a.body);
    let errors = vault_errors(&a.body);
    let at = at.map(|a| format!(" at {a}")).unwrap_or_default();
    let lb = |what: &str| format!("{what} ({status} from the load balancer{at})");
    match status {
        // A standby that could not forward (Vault falls back to a redirect when forwarding
        // fails, so the request may have run on the old active node).
        300..=399 => {
            let to = a
                .location
                .as_deref()
                .map(origin)
                .unwrap_or_else(|| "no Location".into());
            failover(
                format!("a standby could not reach the active node ({status} to {to}{at})"),
                true,
            )
        }
        429 => Verdict {
            outcome: Outcome::Retry {
                why: format!("Vault is rate-limiting (HTTP 429{at}: {errors})"),
                after: a.retry_after,
            },
            may_have_run: false,
        },
        412 => failover(format!("HTTP 412{at}: {errors}"), false),
        500 if from_vault && no_active_node(&errors) => failover(
            format!("no active Vault node (a leader election; 500{at}: {errors})"),
            true,
        ),
        502 | 504 if !from_vault => failover(
            lb(if status == 502 {
                "the load balancer could not reach a Vault node"
            } else {
                "a Vault node did not answer the load balancer in time"
            }),
            true,
        ),
        503 if !from_vault => failover(lb("no Vault node available behind VAULT_ADDR"), false),
        502..=504 => failover(format!("HTTP {status}{at}: {errors}"), status != 503),
        500.. => Verdict {
            outcome: Outcome::Retry {
                why: format!("HTTP {status}{at}: {errors}"),
                after: a.retry_after,
            },
            may_have_run: true,
        },
        403 if call.done_if_403_on_repeat && repeat => Verdict {
            outcome: Outcome::Done(Posted {
                value: Value::Null,
                may_have_repeated: true,
                already_done: true,
            }),
            may_have_run: false,
        },
        _ => Verdict {
            outcome: Outcome::Fatal(VaultError::Refused {
                op: call.op.to_string(),
                status,
                errors,
                hint: (status == 403)
                    .then(|| call.hint_403.map(str::to_string))
                    .flatten(),
            }),
            may_have_run: false,
        },
    }
}

/// A 500 from a node that is not active and knows no active node (a step-down, an election).
fn no_active_node(errors: &str) -> bool {
    errors.contains("local node not active but active cluster node not found")
        || errors.contains("active cluster node not found")
}

/// `scheme://host:port` of a `Location` (its path is ours), or the value itself, bounded.
fn origin(location: &str) -> String {
    match url::Url::parse(location) {
        Ok(u) if u.host_str().is_some() => u.origin().ascii_serialization(),
        _ => crate::limits::quote(location),
    }
}

/// Whether a body is Vault's own `{"errors":[…]}` (else a proxy or load balancer answered).
fn is_vault_error(body: &str) -> bool {
    serde_json::from_str::<Value>(body).is_ok_and(|v| v["errors"].is_array())
}

/// Vault's `errors` array as one line.
pub(crate) fn vault_errors(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_default();
    let list: Vec<String> = v["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e.as_str())
                .map(|s| {
                    // Multierror text: "1 error occurred:\n\t* permission denied\n\n".
                    s.lines()
                        .map(|l| l.trim().trim_start_matches("* ").trim())
                        .filter(|l| {
                            !l.is_empty()
                                && !l.ends_with("error occurred:")
                                && !l.ends_with("errors occurred:")
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .collect()
        })
        .unwrap_or_default();
    if list.is_empty() {
        let t = body.trim_start();
        if t.starts_with('<') {
            // An error page from a proxy or load balancer: never pasted into the line.
            return "an HTML page, not Vault's JSON (a proxy or load balancer answered)".into();
        }
        let t: String = t.chars().take(200).collect();
        let t = crate::limits::remote_text(t.trim());
        if t.trim().is_empty() {
            "no error text".into()
        } else {
            t.trim().to_string()
        }
    } else {
        // Vault's own text, as one bounded line (a control character inside a message, such
        // as a lone CR, must not split it: found by the vault_response fuzz target).
        crate::limits::remote_text(&list.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://vault:8200/v1/auth/kubernetes/login";

    fn call(done_if_403_on_repeat: bool) -> Call<'static> {
        static BODY: Value = Value::Null;
        Call {
            op: "kubernetes login",
            path: "auth/kubernetes/login",
            token: None,
            body: &BODY,
            hint_403: Some("usual causes: …"),
            done_if_403_on_repeat,
        }
    }

    fn answer(status: u16, body: &str) -> Sent {
        Ok(Answer {
            status,
            retry_after: None,
            location: None,
            body: body.into(),
        })
    }

    /// (kind, why, may_have_run) of one answer: kind is "done", "failover", "busy", "fatal".
    fn seen(sent: Sent) -> (&'static str, String, bool) {
        let v = classify(&call(false), URL, None, sent, false);
        let (kind, why) = match v.outcome {
            Outcome::Done(p) => ("done", p.value.to_string()),
            Outcome::Failover { why } => ("failover", why),
            Outcome::Retry { why, after } => ("busy", format!("{why} after={after:?}")),
            Outcome::Fatal(e) => ("fatal", e.to_string()),
        };
        (kind, why, v.may_have_run)
    }

    const HTML: &str = "<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.\n</body></html>\n";

    #[test]
    fn every_vault_answer_is_classified() {
        assert_eq!(seen(answer(200, r#"{"auth":{}}"#)).0, "done");
        assert_eq!(seen(answer(204, "")), ("done", "null".into(), true));
        // A standby that could not forward: 307 to the (dead) active node; its path is ours.
        let (kind, why, ran) = seen(Ok(Answer {
            status: 307,
            retry_after: None,
            location: Some("http://10.0.0.7:8200/v1/auth/kubernetes/login".into()),
            body: String::new(),
        }));
        assert_eq!(kind, "failover");
        assert_eq!(
            why,
            "a standby could not reach the active node (307 to http://10.0.0.7:8200)"
        );
        assert!(
            ran,
            "Vault redirects when forwarding fails: the request may have run"
        );
        for status in [301, 302, 308] {
            assert_eq!(seen(answer(status, "")).0, "failover", "{status}");
        }
        // 429: a busy Vault, with and without Retry-After.
        let (kind, why, ran) = seen(answer(429, r#"{"errors":["rate limit quota exceeded"]}"#));
        assert_eq!(kind, "busy");
        assert!(
            why.contains("rate-limiting") && why.ends_with("after=None"),
            "{why}"
        );
        assert!(!ran);
        let (kind, why, _) = seen(Ok(Answer {
            status: 429,
            retry_after: Some(Duration::from_secs(2)),
            location: None,
            body: r#"{"errors":["rate limit quota exceeded"]}"#.into(),
        }));
        assert_eq!(kind, "busy");
        assert!(why.ends_with("after=Some(2s)"), "{why}");
        // 5xx kinds.
        let (kind, why, ran) = seen(answer(
            500,
            r#"{"errors":["local node not active but active cluster node not found"]}"#,
        ));
        assert_eq!(kind, "failover");
        assert!(why.starts_with("no active Vault node"), "{why}");
        assert!(ran);
        let (kind, why, _) = seen(answer(
            500,
            r#"{"errors":["could not load backend configuration"]}"#,
        ));
        assert_eq!(kind, "busy");
        assert!(
            why.contains("could not load backend configuration"),
            "{why}"
        );
        assert_eq!(
            seen(answer(503, HTML)),
            (
                "failover",
                "no Vault node available behind VAULT_ADDR (503 from the load balancer)".into(),
                false
            )
        );
        assert_eq!(
            seen(answer(503, r#"{"errors":["Vault is sealed"]}"#)),
            ("failover", "HTTP 503: Vault is sealed".into(), false)
        );
        let (kind, why, ran) = seen(answer(502, HTML));
        assert_eq!(kind, "failover");
        assert_eq!(
            why,
            "the load balancer could not reach a Vault node (502 from the load balancer)"
        );
        assert!(ran);
        let (kind, why, ran) = seen(answer(504, ""));
        assert_eq!(kind, "failover");
        assert!(why.ends_with("(504 from the load balancer)"), "{why}");
        assert!(ran);
        assert_eq!(seen(answer(412, r#"{"errors":["x"]}"#)).0, "failover");
        assert_eq!(seen(answer(501, "")).0, "busy");
        // 4xx: fatal with Vault's own text (and the hint on a 403); HTML never pasted.
        let (kind, why, _) = seen(answer(403, r#"{"errors":["permission denied"]}"#));
        assert_eq!(kind, "fatal");
        assert!(
            why.contains("HTTP 403: permission denied; usual causes"),
            "{why}"
        );
        let (kind, why, _) = seen(answer(404, HTML));
        assert_eq!(kind, "fatal");
        assert!(!why.contains('<') && why.contains("an HTML page"), "{why}");
        assert_eq!(
            seen(answer(400, r#"{"errors":["missing jwt"]}"#)).0,
            "fatal"
        );
        // The address is named when VAULT_ADDR lists several.
        let v = classify(
            &call(false),
            URL,
            Some("http://vault-1:8200"),
            answer(503, HTML),
            false,
        );
        match v.outcome {
            Outcome::Failover { why } => assert_eq!(
                why,
                "no Vault node available behind VAULT_ADDR (503 from the load balancer at http://vault-1:8200)"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_revoke_refused_after_a_lost_answer_is_done() {
        let denied = || answer(403, r#"{"errors":["permission denied"]}"#);
        // The first attempt: a real refusal.
        let v = classify(&call(true), URL, None, denied(), false);
        assert!(matches!(
            v.outcome,
            Outcome::Fatal(VaultError::Refused { status: 403, .. })
        ));
        // After an attempt that may have run: the token is gone.
        let v = classify(&call(true), URL, None, denied(), true);
        assert!(matches!(
            v.outcome,
            Outcome::Done(Posted {
                already_done: true,
                ..
            })
        ));
        // Not for other calls (a login refused is refused).
        let v = classify(&call(false), URL, None, denied(), true);
        assert!(matches!(v.outcome, Outcome::Fatal(_)));
    }

    #[tokio::test]
    async fn connection_errors_are_a_failover_that_did_not_run() {
        // A port nobody listens on: bound, then closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/v1/sys/health");
        let e = reqwest::Client::new().post(&url).send().await.unwrap_err();
        let v = classify(&call(false), &url, None, Err(BodyError::Http(e)), false);
        match v.outcome {
            Outcome::Failover { why } => {
                assert!(
                    why.starts_with(&url) && why.contains("connection failed"),
                    "{why}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(!v.may_have_run);
    }

    #[test]
    fn backoff_caps_fit_the_fault() {
        // Quotas keep the long cap; a failover is retried within about a second.
        assert_eq!(POLICY.cap, Duration::from_secs(10));
        assert!(POLICY.failover_cap >= Duration::from_millis(500));
        assert!(POLICY.failover_cap <= Duration::from_secs(2));
        let longest = |cap| retry::full_jitter(POLICY.base, cap, 30, 0.999_999);
        assert!(longest(POLICY.failover_cap) <= Duration::from_secs(1));
        assert!(longest(POLICY.cap) > Duration::from_secs(9));
    }

    #[test]
    fn multierror_text_becomes_one_line() {
        assert_eq!(
            vault_errors(r#"{"errors":["1 error occurred:\n\t* permission denied\n\n"]}"#),
            "permission denied"
        );
        assert_eq!(
            vault_errors(r#"{"errors":["Vault is sealed"]}"#),
            "Vault is sealed"
        );
        assert_eq!(vault_errors("oops\n"), "oops");
        assert_eq!(
            vault_errors("\n<!DOCTYPE html><html><body>Bad Gateway</body></html>"),
            "an HTML page, not Vault's JSON (a proxy or load balancer answered)"
        );
        // Found by fuzz/fuzz_targets/vault_response.rs: a lone CR inside a message.
        let crash = include_bytes!("../../fuzz/corpus/vault_response/crash-lone-cr.json");
        let line = vault_errors(&String::from_utf8_lossy(crash));
        assert!(!line.contains(['\r', '\n']), "{line:?}");
    }
}
