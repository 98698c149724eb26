//! A small Vault HTTP client with the Go client's conventions (`docs/ecosystem-contracts.md`
//! §5, `docs/vault-openbao.md` §5): `X-Vault-Token`, `X-Vault-Namespace`,
//! `X-Vault-Request: true`, no redirects, TLS 1.2+, roots from `VAULT_CACERT`/`VAULT_CAPATH`.
//!
//! Every error is `{"errors":["…"]}`. Retried with capped exponential backoff and full
//! jitter until the overall deadline: connection failures (Vault not up yet, DNS not ready),
//! 5xx (503 = sealed or standby), 412 and 429 (its `Retry-After` honoured). Not retried:
//! 400, 403, 404 and other 4xx, which fail at once with Vault's own text, nor a refused TLS
//! certificate. A body is read up to [`MAX_VAULT_BODY`]; a longer one is retried like a 5xx.

use std::fmt;
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
                "Vault {op} failed after {attempts} attempts until the deadline ({last}); check that Vault is reachable and unsealed, or raise --timeout"
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

/// A client for one Vault; built once, reused for every call (and every refresh).
#[derive(Debug, Clone)]
pub(crate) struct VaultClient {
    http: reqwest::Client,
    addr: String,
    namespace: Option<String>,
}

const POLICY: Policy = Policy {
    base: Duration::from_millis(250),
    cap: Duration::from_secs(10),
    max_attempts: None,
};

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
            addr: cfg.addr.clone(),
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
        let url = format!("{}/v1/{}", self.addr, path.trim_start_matches('/'));
        let attempt = || async {
            let mut rb = self
                .http
                .post(&url)
                .header("X-Vault-Request", "true")
                .json(body);
            if let Some(t) = token {
                rb = rb.header("X-Vault-Token", t.expose());
            }
            if let Some(ns) = &self.namespace {
                rb = rb.header("X-Vault-Namespace", ns);
            }
            let sent = crate::http::timed(async {
                let resp = rb.send().await.map_err(BodyError::Http)?;
                let status = resp.status().as_u16();
                let retry_after = parse_retry_after(resp.headers().get(http::header::RETRY_AFTER));
                let body = read_body(resp, MAX_VAULT_BODY, deadline).await?;
                let text = String::from_utf8_lossy(&body).into_owned();
                Ok::<_, BodyError>((status, retry_after, text))
            })
            .await;
            self.classify(op, &url, sent, hint_403)
        };
        retry::run("Vault call", op, POLICY, deadline, attempt)
            .await
            .map_err(|f| match f {
                Failure::Fatal(e) => e,
                Failure::GaveUp { attempts, last } => VaultError::GaveUp {
                    op: op.to_string(),
                    attempts,
                    last,
                },
            })
    }

    /// Vault's classification: 2xx done; connection errors, 5xx, 412 and 429 retried; a refused
    /// TLS certificate and other 4xx fatal.
    fn classify(
        &self,
        op: &str,
        url: &str,
        sent: Result<(u16, Option<Duration>, String), BodyError>,
        hint_403: Option<&str>,
    ) -> Outcome<Value, VaultError> {
        let (status, after, text) = match sent {
            // Over the cap or past the deadline: retried like a 5xx while time is left.
            Err(e @ BodyError::Read(_)) => {
                return Outcome::Retry {
                    why: format!("{url}: {e}"),
                    after: None,
                };
            }
            Err(BodyError::Http(e)) => {
                if let Some(why) = crate::http::certificate_failure(&e) {
                    return Outcome::Fatal(VaultError::Tls {
                        url: url.to_string(),
                        why,
                    });
                }
                return Outcome::Retry {
                    why: format!("{url}: {}", crate::http::describe(&e)),
                    after: None,
                };
            }
            Ok(s) => s,
        };
        if (200..300).contains(&status) {
            if text.trim().is_empty() {
                return Outcome::Done(Value::Null);
            }
            return match serde_json::from_str(&text) {
                Ok(v) => Outcome::Done(v),
                Err(e) => Outcome::Fatal(VaultError::BadResponse {
                    op: op.to_string(),
                    why: format!("not JSON ({e})"),
                }),
            };
        }
        let errors = vault_errors(&text);
        if status >= 500 || status == 429 || status == 412 {
            return Outcome::Retry {
                why: format!("HTTP {status}: {errors}"),
                after,
            };
        }
        Outcome::Fatal(VaultError::Refused {
            op: op.to_string(),
            status,
            errors,
            hint: (status == 403)
                .then(|| hint_403.map(str::to_string))
                .flatten(),
        })
    }
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
        let t: String = body.chars().take(200).collect();
        let t = t.replace(['\n', '\r'], " ");
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
        // Found by fuzz/fuzz_targets/vault_response.rs: a lone CR inside a message.
        let crash = include_bytes!("../../fuzz/corpus/vault_response/crash-lone-cr.json");
        let line = vault_errors(&String::from_utf8_lossy(crash));
        assert!(!line.contains(['\r', '\n']), "{line:?}");
    }
}
