//! Vault login (`docs/vault-openbao.md` §4): `POST auth/<mount>/login` with
//! `{"role","jwt"}` (kubernetes, jwt) or `{"role_id","secret_id"}` (approle); the answer's
//! `auth.client_token` is the token, `auth.metadata.service_account_{name,namespace}` name the
//! ServiceAccount. The token file is re-read at every login (the kubelet rotates it) and an
//! empty one is refused. `--vault-auth token` uses `VAULT_TOKEN` as is and never revokes it.
//! `auth.token_type` tells a service token (stored, leased: revoke it when done) from a batch
//! token (nothing stored, cannot be revoked: the revoke is skipped).
//!
//! Retries are not free of effects (`client`): a login retried after an attempt that may have
//! run is logged once as a possible orphan token (never for a batch token, which leaves
//! nothing behind), and a revoke answered 403 after such an attempt is taken as done.

use std::time::Instant;

use serde_json::{Value, json};

use super::client::{Call, VaultClient, VaultError};
use super::{Auth, JwtMethod};
use crate::limits::{MAX_SECRET_ID_FILE, MAX_TOKEN_FILE};
use crate::secret::Secret;

/// A ServiceAccount, as Vault or the token names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceAccount {
    pub(crate) name: String,
    pub(crate) namespace: String,
}

/// A logged-in session with Vault.
#[derive(Debug)]
pub(crate) struct Login {
    pub(crate) token: Secret,
    /// Whether it must be revoked when done: a service token we created. A given token
    /// (`--vault-auth token`) is not ours; a batch token cannot be revoked and leaves nothing
    /// behind (no storage entry, no lease), so revoking it would be a wasted, failing request.
    pub(crate) revocable: bool,
    /// `auth.token_type` (`service` or `batch`), for the logs.
    pub(crate) token_type: String,
    /// The ServiceAccount behind it, when known.
    pub(crate) service_account: Option<ServiceAccount>,
}

/// Reads a token or secret id file: at most `cap` bytes, before `deadline`, without blocking
/// the runtime (a FIFO with no writer, `/dev/zero`; `serve` keeps answering meanwhile).
async fn read_secret_file(
    path: &std::path::Path,
    what: &str,
    fix: &str,
    cap: u64,
    deadline: Instant,
) -> Result<Secret, VaultError> {
    let read = crate::bounded::read_file_async(path, cap, deadline).await;
    secret_from(read, path, what, fix)
}

/// The ServiceAccount token (or JWT) file of `auth`, read now (blocking the thread, at most
/// until `deadline`): the credential-process cache keys on who the token names, and the login
/// that follows reuses this read ([`login`]'s `preread`), so a pipe is read once. `None` for
/// the other methods.
pub(crate) fn read_jwt_now(auth: &Auth, deadline: Instant) -> Result<Option<Secret>, VaultError> {
    let Auth::Jwt {
        method, token_file, ..
    } = auth
    else {
        return Ok(None);
    };
    let (what, fix) = jwt_file_words(*method);
    let read = crate::bounded::read_file(token_file, MAX_TOKEN_FILE, deadline);
    secret_from(read, token_file, what, fix).map(Some)
}

/// What the token file is called, and what to do when it cannot be used.
fn jwt_file_words(method: JwtMethod) -> (&'static str, &'static str) {
    match method {
        JwtMethod::Kubernetes => (
            "ServiceAccount token",
            "mount a ServiceAccount token or pass --service-account-token-file",
        ),
        JwtMethod::Jwt => ("JWT", "pass --service-account-token-file"),
    }
}

/// A secret file's contents, trimmed; an unreadable, non-UTF-8 or empty file is an input error.
fn secret_from(
    read: Result<Vec<u8>, crate::bounded::ReadError>,
    path: &std::path::Path,
    what: &str,
    fix: &str,
) -> Result<Secret, VaultError> {
    let cannot = |e: &dyn std::fmt::Display| {
        VaultError::Input(format!(
            "cannot read the {what} file {}: {e}; {fix}",
            path.display()
        ))
    };
    let bytes = read.map_err(|e| cannot(&e))?;
    let raw = Secret::new(String::from_utf8(bytes).map_err(|_| cannot(&"it is not UTF-8 text"))?);
    let v = raw.expose().trim();
    if v.is_empty() {
        return Err(VaultError::Input(format!(
            "the {what} file {} is empty; {fix}",
            path.display()
        )));
    }
    Ok(Secret::new(v))
}

/// Logs in per `auth`, retrying until `deadline`. `preread`: the token file's contents as
/// [`read_jwt_now`] just read them (used instead of reading the file again).
pub(crate) async fn login(
    client: &VaultClient,
    auth: &Auth,
    preread: Option<Secret>,
    deadline: Instant,
) -> Result<Login, VaultError> {
    let (op, mount, body, hint, jwt) = match auth {
        Auth::Token { token } => {
            return Ok(Login {
                token: token.clone(),
                revocable: false,
                token_type: "given".into(),
                service_account: None,
            });
        }
        Auth::Jwt {
            method,
            mount,
            role,
            token_file,
        } => {
            // The role comes from a flag, or from a pod's ServiceAccount name (the webhook).
            let role_q = crate::limits::quote(role);
            let (what, fix) = jwt_file_words(*method);
            let hint = match method {
                JwtMethod::Kubernetes => format!(
                    "usual causes: Vault's TokenReview call to the Kubernetes API failed (its reviewer needs the system:auth-delegator ClusterRole), the token's audience does not match the role's audience, or this ServiceAccount or namespace is not bound to role {role_q}"
                ),
                JwtMethod::Jwt => format!(
                    "usual causes: the JWT's issuer, audience or subject does not match role {role_q}, or it expired"
                ),
            };
            let jwt = match preread {
                Some(jwt) => jwt,
                None => read_secret_file(token_file, what, fix, MAX_TOKEN_FILE, deadline).await?,
            };
            (
                format!(
                    "{} login (auth/{mount}/login, role {role_q})",
                    method.name()
                ),
                mount,
                json!({"role": role, "jwt": jwt.expose()}),
                hint,
                Some(jwt),
            )
        }
        Auth::AppRole {
            mount,
            role_id,
            secret_id_file,
        } => {
            let secret_id = read_secret_file(
                secret_id_file,
                "AppRole secret id",
                "pass --approle-secret-id-file",
                MAX_SECRET_ID_FILE,
                deadline,
            )
            .await?;
            (
                format!("approle login (auth/{mount}/login)"),
                mount,
                json!({"role_id": role_id, "secret_id": secret_id.expose()}),
                "usual causes: a wrong role id, or a secret id that expired or was used up"
                    .to_string(),
                None,
            )
        }
    };
    let path = format!("auth/{mount}/login");
    let posted = client
        .call(
            Call {
                op: &op,
                path: &path,
                token: None,
                body: &body,
                hint_403: Some(&hint),
                done_if_403_on_repeat: false,
            },
            deadline,
        )
        .await?;
    let answer = posted.value;
    let auth = &answer["auth"];
    let token = auth["client_token"]
        .as_str()
        .ok_or_else(|| VaultError::BadResponse {
            op: op.clone(),
            why: "no auth.client_token".into(),
        })?;
    let token_type = auth["token_type"].as_str().unwrap_or("service").to_string();
    let meta = &auth["metadata"];
    let service_account = match (
        meta["service_account_name"].as_str(),
        meta["service_account_namespace"].as_str(),
    ) {
        (Some(n), Some(ns)) => Some(ServiceAccount {
            name: n.into(),
            namespace: ns.into(),
        }),
        _ => jwt
            .as_ref()
            .and_then(|j| service_account_from_jwt(j.expose())),
    };
    if posted.may_have_repeated && token_type != "batch" {
        // An earlier attempt may have logged in and lost its answer: that token is held by
        // nobody and cannot be revoked by us (we never saw it). It lives until its TTL ends.
        tracing::warn!(
            op = %op,
            token_type = %crate::limits::field(&token_type),
            "an earlier login attempt may have created a Vault token whose answer was lost (a possible orphan token, valid until the role's token_ttl ends; batch tokens leave none: vault/README.md, \"Vault HA\")"
        );
    }
    Ok(Login {
        token: Secret::new(token),
        revocable: token_type != "batch",
        token_type,
        service_account,
    })
}

/// How a revoke ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Revoked {
    /// Vault revoked the token.
    Now,
    /// An earlier attempt may have revoked it (its answer was lost) and Vault now refuses the
    /// token (403): it is gone.
    Earlier,
}

/// `POST auth/token/revoke-self`, retried like every call (a 307 from a standby included); a
/// 403 after an attempt that may have run is [`Revoked::Earlier`].
pub(crate) async fn revoke_self(
    client: &VaultClient,
    token: &Secret,
    deadline: Instant,
) -> Result<Revoked, VaultError> {
    let posted = client
        .call(
            Call {
                op: "token revoke (auth/token/revoke-self)",
                path: "auth/token/revoke-self",
                token: Some(token),
                body: &json!({}),
                hint_403: None,
                done_if_403_on_repeat: true,
            },
            deadline,
        )
        .await?;
    Ok(if posted.already_done {
        Revoked::Earlier
    } else {
        Revoked::Now
    })
}

/// The ServiceAccount in a projected token's claims (`kubernetes.io`), in legacy flat
/// claims, or in `sub` = `system:serviceaccount:<ns>:<name>`. The signature is not checked:
/// this only names the certificate; Vault decides who the token belongs to.
pub(crate) fn service_account_from_jwt(jwt: &str) -> Option<ServiceAccount> {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    let k8s = &claims["kubernetes.io"];
    if let (Some(ns), Some(n)) = (
        k8s["namespace"].as_str(),
        k8s["serviceaccount"]["name"].as_str(),
    ) {
        return Some(ServiceAccount {
            name: n.into(),
            namespace: ns.into(),
        });
    }
    if let (Some(ns), Some(n)) = (
        claims["kubernetes.io/serviceaccount/namespace"].as_str(),
        claims["kubernetes.io/serviceaccount/service-account.name"].as_str(),
    ) {
        return Some(ServiceAccount {
            name: n.into(),
            namespace: ns.into(),
        });
    }
    let sub = claims["sub"].as_str()?;
    let rest = sub.strip_prefix("system:serviceaccount:")?;
    let (ns, n) = rest.split_once(':')?;
    Some(ServiceAccount {
        name: n.into(),
        namespace: ns.into(),
    })
}

/// The default common name: `<name>.<namespace>.workload.internal`.
pub(crate) fn default_common_name(sa: &ServiceAccount) -> String {
    format!("{}.{}.workload.internal", sa.name, sa.namespace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn jwt(claims: &str) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.sig",
            e.encode(r#"{"alg":"RS256"}"#),
            e.encode(claims)
        )
    }

    #[test]
    fn service_account_from_projected_legacy_and_sub_claims() {
        let want = Some(ServiceAccount {
            name: "app".into(),
            namespace: "payments".into(),
        });
        assert_eq!(
            service_account_from_jwt(&jwt(
                r#"{"kubernetes.io":{"namespace":"payments","serviceaccount":{"name":"app","uid":"u"}}}"#
            )),
            want
        );
        assert_eq!(
            service_account_from_jwt(&jwt(
                r#"{"kubernetes.io/serviceaccount/namespace":"payments","kubernetes.io/serviceaccount/service-account.name":"app"}"#
            )),
            want
        );
        assert_eq!(
            service_account_from_jwt(&jwt(r#"{"sub":"system:serviceaccount:payments:app"}"#)),
            want
        );
        assert_eq!(service_account_from_jwt("garbage"), None);
        assert_eq!(
            default_common_name(want.as_ref().unwrap()),
            "app.payments.workload.internal"
        );
    }
}
