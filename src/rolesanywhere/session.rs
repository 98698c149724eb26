//! The `CreateSession` call: send the signed request, retry what is worth retrying, parse the
//! 201 response, and turn AWS errors into short messages that say what to do.
//!
//! Contract (`docs/rolesanywhere-protocol.md` §4): success is `201` with
//! `credentialSet[0].credentials{accessKeyId, secretAccessKey, sessionToken, expiration}`; an
//! error's code comes from `X-Amzn-ErrorType`, else the body's `__type`/`code`, its text from
//! `message`/`Message`. Retried, with capped exponential backoff and full jitter until the
//! deadline: connection errors and timeouts, 5xx, 429 and throttling codes, a body over
//! [`MAX_ROLESANYWHERE_BODY`], and a 2xx whose credentials fail [`check_credentials`] (expired,
//! a lifetime longer than asked for, a value outside its alphabet or length): those never reach
//! a sink. Never retried: any other 4xx.

use crate::bounded::{BodyError, read_body};
use crate::limits::{MAX_ROLESANYWHERE_BODY, check_credentials};
use std::fmt;
use std::time::{Duration, Instant};

use serde::Deserialize;
use time::OffsetDateTime;

use super::sign::{Endpoint, SessionParams, SignedRequest, sign_create_session};
use crate::arn::Target;
use crate::credentials::Credentials;
use crate::material::Identity;
use crate::retry::{self, Failure, Outcome, Policy, parse_retry_after};
use crate::secret::Secret;
use crate::timefmt::parse_rfc3339;

/// Why CreateSession failed.
#[derive(Debug)]
pub(crate) enum SessionError {
    /// Roles Anywhere refused the request (a 4xx that retrying will not fix).
    Refused {
        status: u16,
        /// AWS error code, e.g. `AccessDeniedException`.
        code: String,
        /// AWS's message.
        message: String,
        /// What to do about it.
        hint: String,
    },
    /// Retryable failures until the deadline.
    GaveUp {
        attempts: u32,
        last: String,
        url: String,
    },
    /// The endpoint's TLS certificate was refused.
    Tls { url: String, why: String },
    /// A 2xx that is not a usable CreateSession response.
    BadResponse(String),
    /// The key could not sign the request (a key store failed): why.
    Signing(String),
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::Refused {
                status,
                code,
                message,
                hint,
            } => write!(
                f,
                "Roles Anywhere refused CreateSession (HTTP {status} {code}: {message}): {hint}"
            ),
            SessionError::GaveUp {
                attempts,
                last,
                url,
            } => write!(
                f,
                "Roles Anywhere CreateSession at {url} failed after {attempts} attempts ({last}); check network access to the endpoint and retry later"
            ),
            SessionError::Tls { url, why } => write!(
                f,
                "the TLS certificate of {url} was refused ({why}); check --endpoint and any TLS-intercepting proxy (--no-verify-ssl only for tests)"
            ),
            SessionError::BadResponse(why) => {
                write!(f, "unexpected CreateSession response: {why}")
            }
            SessionError::Signing(why) => {
                write!(f, "cannot sign CreateSession: {why}")
            }
        }
    }
}

impl std::error::Error for SessionError {}

/// A created session.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) credentials: Credentials,
    /// `assumedRoleUser.arn`, when present.
    pub(crate) assumed_role_arn: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Response {
    #[serde(default)]
    credential_set: Vec<CredentialSet>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CredentialSet {
    credentials: WireCredentials,
    assumed_role_user: Option<AssumedRoleUser>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCredentials {
    access_key_id: String,
    secret_access_key: Secret,
    session_token: Secret,
    expiration: String,
}

#[derive(Deserialize)]
struct AssumedRoleUser {
    arn: Option<String>,
}

/// Everything needed to create sessions; built once, reused for every session.
#[derive(Debug, Clone)]
pub(crate) struct SessionClient {
    /// The HTTP client (public roots, or per `--no-verify-ssl`).
    pub(crate) http: reqwest::Client,
    pub(crate) endpoint: Endpoint,
    pub(crate) target: Target,
    pub(crate) params: SessionParams,
    /// Print the canonical request and string to sign (`--debug`).
    pub(crate) debug: bool,
    /// Give up after this many attempts even before the deadline (`credential-process`:
    /// SDKs wait on it; `init` and `serve` retry until the deadline).
    pub(crate) max_attempts: Option<u32>,
}

const BASE_DELAY: Duration = Duration::from_millis(200);
const MAX_DELAY: Duration = Duration::from_secs(5);

impl SessionClient {
    /// Creates a session with `identity`, retrying until `deadline`.
    pub(crate) async fn create_session(
        &self,
        identity: &Identity,
        deadline: Instant,
    ) -> Result<Session, SessionError> {
        let policy = Policy {
            base: BASE_DELAY,
            cap: MAX_DELAY,
            failover_cap: MAX_DELAY,
            max_attempts: self.max_attempts,
        };
        let attempt = || async {
            // Signed afresh each attempt: X-Amz-Date must be current.
            let req = match sign_create_session(
                &self.endpoint,
                &self.target,
                &self.params,
                identity,
                OffsetDateTime::now_utc(),
            ) {
                Ok(req) => req,
                Err(e) => return Outcome::Fatal(SessionError::Signing(e.to_string())),
            };
            if self.debug {
                tracing::debug!(
                    canonical_request = ?req.canonical_request,
                    string_to_sign = ?req.string_to_sign,
                    "signed CreateSession"
                );
            }
            self.send(&req, deadline).await
        };
        retry::run("CreateSession", "", policy, deadline, attempt)
            .await
            .map_err(|f| match f {
                Failure::Fatal(e) => e,
                Failure::GaveUp { attempts, last } => SessionError::GaveUp {
                    attempts,
                    last,
                    url: self.endpoint.sessions_url(),
                },
            })
    }

    /// One attempt, classified: 2xx parsed; connection errors, 5xx, 429 and throttling codes
    /// retried; a refused TLS certificate and other 4xx fatal.
    async fn send(&self, req: &SignedRequest, deadline: Instant) -> Outcome<Session, SessionError> {
        let mut rb = self.http.post(&req.url);
        for (k, v) in &req.headers {
            rb = rb.header(*k, v);
        }
        let sent = crate::http::timed(async {
            let resp = rb
                .body(req.body.clone())
                .send()
                .await
                .map_err(BodyError::Http)?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = read_body(resp, MAX_ROLESANYWHERE_BODY, deadline).await?;
            Ok::<_, BodyError>((status, headers, body))
        })
        .await;
        let (status, headers, body) = match sent {
            Ok(s) => s,
            // Over the cap or past the deadline: retried like a 5xx while time is left.
            Err(e @ BodyError::Read(_)) => {
                return Outcome::Retry {
                    why: e.to_string(),
                    after: None,
                };
            }
            Err(BodyError::Http(e)) => {
                if let Some(why) = crate::http::certificate_failure(&e) {
                    return Outcome::Fatal(SessionError::Tls {
                        url: self.endpoint.sessions_url(),
                        why,
                    });
                }
                return Outcome::Retry {
                    why: crate::http::describe(&e),
                    after: None,
                };
            }
        };
        if status.is_success() {
            // An answer that does not parse, or whose credentials are expired, implausible or
            // malformed, never reaches a sink: retried like a 5xx (a proxy or a bad node may
            // have mangled it), it ends as exit 4 when time runs out.
            return match parse_success(&body).and_then(|s| self.check(s)) {
                Ok(s) => Outcome::Done(s),
                Err(e) => Outcome::Retry {
                    why: e.to_string(),
                    after: None,
                },
            };
        }
        let (code, message) = parse_error(&headers, &body);
        let throttled = status.as_u16() == 429
            || code.contains("Throttling")
            || code.contains("TooManyRequests");
        if status.is_server_error() || throttled {
            let what = if throttled {
                format!("throttled: HTTP {} {code}", status.as_u16())
            } else {
                format!("HTTP {} {code} {message}", status.as_u16())
            };
            return Outcome::Retry {
                why: what.trim().to_string(),
                after: parse_retry_after(headers.get(http::header::RETRY_AFTER)),
            };
        }
        Outcome::Fatal(SessionError::Refused {
            status: status.as_u16(),
            hint: hint(&code, &message, &self.target),
            code,
            message,
        })
    }
}

impl SessionClient {
    /// The credentials' shape and lifetime ([`check_credentials`]) for the requested duration.
    fn check(&self, s: Session) -> Result<Session, SessionError> {
        let c = &s.credentials;
        check_credentials(
            &c.access_key_id,
            c.secret_access_key.expose(),
            c.session_token.expose(),
            c.expiration,
            OffsetDateTime::now_utc(),
            Some(self.params.duration_seconds),
        )
        .map_err(|e| SessionError::BadResponse(e.0))?;
        Ok(s)
    }
}

pub(crate) fn parse_success(body: &[u8]) -> Result<Session, SessionError> {
    let r: Response = serde_json::from_slice(body)
        .map_err(|e| SessionError::BadResponse(format!("not a CreateSession JSON body ({e})")))?;
    let set = r
        .credential_set
        .into_iter()
        .next()
        .ok_or_else(|| SessionError::BadResponse("credentialSet is empty".into()))?;
    let c = set.credentials;
    let expiration = parse_rfc3339(&c.expiration).ok_or_else(|| {
        SessionError::BadResponse(format!(
            "expiration {} is not RFC 3339",
            crate::limits::quote(&c.expiration)
        ))
    })?;
    Ok(Session {
        credentials: Credentials {
            access_key_id: c.access_key_id,
            secret_access_key: c.secret_access_key,
            session_token: c.session_token,
            expiration,
        },
        assumed_role_arn: set.assumed_role_user.and_then(|u| u.arn),
    })
}

/// The AWS error code and message of a failed response.
pub(crate) fn parse_error(headers: &http::HeaderMap, body: &[u8]) -> (String, String) {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let field = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| json.get(*n).and_then(|v| v.as_str()))
            .map(str::to_string)
    };
    let raw_code = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| field(&["__type", "code", "Code"]))
        .unwrap_or_else(|| "UnknownError".into());
    let code = raw_code.split(':').next().unwrap_or_default();
    let code = code.rsplit('#').next().unwrap_or(code).to_string();
    let message = field(&["message", "Message"]).unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        text.chars()
            .take(200)
            .collect::<String>()
            .trim()
            .to_string()
    });
    (
        crate::limits::remote_text(&code),
        crate::limits::remote_text(&message),
    )
}

fn hint(code: &str, message: &str, target: &Target) -> String {
    let m = message.to_ascii_lowercase();
    if code.contains("AccessDenied") {
        if m.contains("untrusted") {
            "the certificate does not chain to the trust anchor: register its issuing CA in the trust anchor, or pass the intermediates (--intermediates)".into()
        } else if m.contains("signature") {
            "the signature was not accepted: check the system clock, that the key matches the certificate, and any proxy that rewrites requests (--debug shows the canonical request)".into()
        } else if m.contains("rolesessionname") {
            "the profile does not accept --role-session-name: set acceptRoleSessionName on the profile or drop the flag".into()
        } else {
            "check that the trust anchor and profile are enabled and that the role's trust policy allows rolesanywhere.amazonaws.com for this certificate".into()
        }
    } else if code.contains("Validation") {
        "check the ARNs and --session-duration (900-43200 s, and at most the role's maximum session duration)".into()
    } else if code.contains("ResourceNotFound") {
        format!(
            "check that the trust anchor, profile and role exist in {} and belong to account {}",
            target.region, target.trust_anchor.account
        )
    } else {
        "see the AWS message above".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_code_from_header_or_body() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "x-amzn-errortype",
            "AccessDeniedException:http://internal".parse().unwrap(),
        );
        let (c, m) = parse_error(&h, br#"{"message":"Invalid signature"}"#);
        assert_eq!(
            (c.as_str(), m.as_str()),
            ("AccessDeniedException", "Invalid signature")
        );
        let (c, m) = parse_error(
            &http::HeaderMap::new(),
            br#"{"__type":"com.amazonaws#ValidationException","Message":"bad"}"#,
        );
        assert_eq!((c.as_str(), m.as_str()), ("ValidationException", "bad"));
    }

    #[test]
    fn parses_the_documented_response() {
        let body = br#"{"credentialSet":[{"assumedRoleUser":{"arn":"arn:aws:sts::1:assumed-role/R/s","assumedRoleId":"x"},
          "credentials":{"accessKeyId":"ASIA1","secretAccessKey":"sk","sessionToken":"st","expiration":"2025-12-11T16:34:25Z"},
          "packedPolicySize":0,"roleArn":"r","sourceIdentity":"s"}],"subjectArn":"x"}"#;
        let s = parse_success(body).unwrap();
        assert_eq!(s.credentials.access_key_id, "ASIA1");
        assert_eq!(s.credentials.secret_access_key.expose(), "sk");
        assert_eq!(
            s.assumed_role_arn.as_deref(),
            Some("arn:aws:sts::1:assumed-role/R/s")
        );
        assert!(matches!(
            parse_success(br#"{"credentialSet":[]}"#),
            Err(SessionError::BadResponse(_))
        ));
    }
}
