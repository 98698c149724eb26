//! A small Vault HTTP client with the Go client's conventions (`docs/ecosystem-contracts.md`
//! §5, `docs/vault-openbao.md` §5): `X-Vault-Token`, `X-Vault-Namespace`,
//! `X-Vault-Request: true`, no redirects, TLS 1.2+, roots from `VAULT_CACERT`/`VAULT_CAPATH`.
//!
//! Every error is `{"errors":["…"]}`. Retried with capped exponential backoff and full
//! jitter until the overall deadline: connection failures (Vault not up yet, DNS not ready),
//! 5xx (503 = sealed or standby), 412 and 429 (its `Retry-After` honoured). Not retried:
//! 400, 403, 404 and other 4xx, which fail at once with Vault's own text, nor a refused TLS
//! certificate.

use std::fmt;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::config::VaultConfig;
use crate::http::ClientOptions;
use crate::retry::{Backoff, parse_retry_after};
use crate::secret::Secret;

/// A failed Vault call.
#[derive(Debug)]
pub enum VaultError {
    /// Vault answered with an error that retrying will not fix.
    Refused {
        /// What we were doing, with mount and role.
        op: String,
        /// HTTP status.
        status: u16,
        /// Vault's `errors`, joined.
        errors: String,
        /// Usual causes, when known.
        hint: Option<String>,
    },
    /// Retryable failures until the deadline.
    GaveUp {
        /// What we were doing.
        op: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// A 2xx without what we needed.
    BadResponse {
        /// What we were doing.
        op: String,
        /// What is missing.
        why: String,
    },
    /// Vault's TLS certificate was refused.
    Tls {
        /// The URL.
        url: String,
        /// What rustls said.
        why: String,
    },
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

/// A client bound to one Vault and one deadline.
#[derive(Debug, Clone)]
pub struct VaultClient {
    http: reqwest::Client,
    addr: String,
    namespace: Option<String>,
    deadline: Instant,
}

const BASE_DELAY: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(10);

impl VaultClient {
    /// Builds a client; retries stop at `deadline`.
    pub fn new(cfg: &VaultConfig, deadline: Instant) -> Result<VaultClient, String> {
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
            deadline,
        })
    }

    /// The deadline.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// `POST /v1/<path>` with a JSON body, retrying per the module contract; returns the
    /// JSON answer (`Value::Null` for 204).
    pub async fn post(
        &self,
        op: &str,
        path: &str,
        token: Option<&Secret>,
        body: &Value,
        hint_403: Option<&str>,
    ) -> Result<Value, VaultError> {
        let url = format!("{}/v1/{}", self.addr, path.trim_start_matches('/'));
        let mut backoff = Backoff::new(BASE_DELAY, MAX_DELAY, self.deadline);
        loop {
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
                let resp = rb.send().await?;
                let status = resp.status().as_u16();
                let retry_after = parse_retry_after(resp.headers().get(http::header::RETRY_AFTER));
                let text = resp.text().await?;
                Ok::<_, reqwest::Error>((status, retry_after, text))
            })
            .await;
            let (failure, retry_after) = match sent {
                Err(e) => {
                    if let Some(why) = crate::http::certificate_failure(&e) {
                        return Err(VaultError::Tls { url, why });
                    }
                    (format!("{url}: {}", crate::http::describe(&e)), None)
                }
                Ok((status, retry_after, text)) => {
                    if (200..300).contains(&status) {
                        if text.trim().is_empty() {
                            return Ok(Value::Null);
                        }
                        return serde_json::from_str(&text).map_err(|e| VaultError::BadResponse {
                            op: op.to_string(),
                            why: format!("not JSON ({e})"),
                        });
                    }
                    let errors = vault_errors(&text);
                    if status >= 500 || status == 429 || status == 412 {
                        (format!("HTTP {status}: {errors}"), retry_after)
                    } else {
                        return Err(VaultError::Refused {
                            op: op.to_string(),
                            status,
                            errors,
                            hint: (status == 403)
                                .then(|| hint_403.map(str::to_string))
                                .flatten(),
                        });
                    }
                }
            };
            tracing::warn!(op, attempt = backoff.attempts(), error = %failure, "Vault call failed, will retry");
            if !backoff.wait(retry_after).await {
                return Err(VaultError::GaveUp {
                    op: op.to_string(),
                    attempts: backoff.attempts(),
                    last: failure,
                });
            }
        }
    }
}

/// Vault's `errors` array as one line.
fn vault_errors(body: &str) -> String {
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
        list.join("; ")
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
    }
}
