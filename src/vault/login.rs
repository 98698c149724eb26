//! Vault login (`docs/vault-openbao.md` §4): `POST auth/<mount>/login` with
//! `{"role","jwt"}` (kubernetes, jwt) or `{"role_id","secret_id"}` (approle); the answer's
//! `auth.client_token` is the token, `auth.metadata.service_account_{name,namespace}` name the
//! ServiceAccount. The token file is re-read at every login (the kubelet rotates it) and an
//! empty one is refused. `--vault-auth token` uses `VAULT_TOKEN` as is and never revokes it.

use serde_json::{Value, json};

use super::client::{VaultClient, VaultError};
use crate::config::AuthConfig;
use crate::secret::Secret;

/// A ServiceAccount, as Vault or the token names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
}

/// A logged-in session with Vault.
#[derive(Debug)]
pub struct Login {
    /// The Vault token.
    pub token: Secret,
    /// Whether we created it (and so should revoke it).
    pub created: bool,
    /// The ServiceAccount behind it, when known.
    pub service_account: Option<ServiceAccount>,
}

fn read_secret_file(path: &std::path::Path, what: &str, fix: &str) -> Result<Secret, VaultError> {
    let raw = std::fs::read_to_string(path).map_err(|e| {
        VaultError::Input(format!(
            "cannot read the {what} file {}: {e}; {fix}",
            path.display()
        ))
    })?;
    let v = raw.trim();
    if v.is_empty() {
        return Err(VaultError::Input(format!(
            "the {what} file {} is empty; {fix}",
            path.display()
        )));
    }
    Ok(Secret::new(v))
}

/// Logs in per `auth`.
pub async fn login(client: &VaultClient, auth: &AuthConfig) -> Result<Login, VaultError> {
    let (op, path, body, hint, jwt) = match auth {
        AuthConfig::Token { token } => {
            return Ok(Login {
                token: token.clone(),
                created: false,
                service_account: None,
            });
        }
        AuthConfig::Kubernetes {
            mount,
            role,
            token_file,
        } => {
            let jwt = read_secret_file(
                token_file,
                "ServiceAccount token",
                "mount a ServiceAccount token or pass --service-account-token-file",
            )?;
            (
                format!("kubernetes login (auth/{mount}/login, role {role})"),
                format!("auth/{mount}/login"),
                json!({"role": role, "jwt": jwt.expose()}),
                format!(
                    "usual causes: Vault's TokenReview call to the Kubernetes API failed (its reviewer needs the system:auth-delegator ClusterRole), the token's audience does not match the role's audience, or this ServiceAccount or namespace is not bound to role {role}"
                ),
                Some(jwt),
            )
        }
        AuthConfig::Jwt {
            mount,
            role,
            token_file,
        } => {
            let jwt = read_secret_file(token_file, "JWT", "pass --service-account-token-file")?;
            (
                format!("jwt login (auth/{mount}/login, role {role})"),
                format!("auth/{mount}/login"),
                json!({"role": role, "jwt": jwt.expose()}),
                format!(
                    "usual causes: the JWT's issuer, audience or subject does not match role {role}, or it expired"
                ),
                Some(jwt),
            )
        }
        AuthConfig::AppRole {
            mount,
            role_id,
            secret_id_file,
        } => {
            let secret_id = read_secret_file(
                secret_id_file,
                "AppRole secret id",
                "pass --approle-secret-id-file",
            )?;
            (
                format!("approle login (auth/{mount}/login)"),
                format!("auth/{mount}/login"),
                json!({"role_id": role_id, "secret_id": secret_id.expose()}),
                "usual causes: a wrong role id, or a secret id that expired or was used up"
                    .to_string(),
                None,
            )
        }
    };
    let answer = client.post(&op, &path, None, &body, Some(&hint)).await?;
    let token = answer["auth"]["client_token"]
        .as_str()
        .ok_or_else(|| VaultError::BadResponse {
            op: op.clone(),
            why: "no auth.client_token".into(),
        })?;
    let meta = &answer["auth"]["metadata"];
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
    Ok(Login {
        token: Secret::new(token),
        created: true,
        service_account,
    })
}

/// `POST auth/token/revoke-self`.
pub async fn revoke_self(client: &VaultClient, token: &Secret) -> Result<(), VaultError> {
    client
        .post(
            "token revoke (auth/token/revoke-self)",
            "auth/token/revoke-self",
            Some(token),
            &json!({}),
            None,
        )
        .await
        .map(|_| ())
}

/// The ServiceAccount in a projected token's claims (`kubernetes.io`), in legacy flat
/// claims, or in `sub` = `system:serviceaccount:<ns>:<name>`. The signature is not checked:
/// this only names the certificate; Vault decides who the token belongs to.
pub fn service_account_from_jwt(jwt: &str) -> Option<ServiceAccount> {
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
pub fn default_common_name(sa: &ServiceAccount) -> String {
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
