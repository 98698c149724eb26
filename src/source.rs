//! The identity step shared by every command that uses Vault: login, key generated in memory,
//! CSR signed by PKI, a checked [`Identity`], then the Roles Anywhere session and the token
//! revoked; each step timed in the logs.

use std::time::Instant;

use time::OffsetDateTime;

use crate::aws::credentials::Credentials;
use crate::cli::PkiMode;
use crate::config::VaultConfig;
use crate::error::Error;
use crate::keygen;
use crate::material::Identity;
use crate::rolesanywhere::session::SessionClient;
use crate::secret::Secret;
use crate::vault::login::{self, default_common_name};
use crate::vault::{VaultClient, pki};

/// Milliseconds since `t`, for step logs.
pub fn ms_since(t: Instant) -> f64 {
    (t.elapsed().as_secs_f64() * 1e6).round() / 1e3
}

/// One round of the whole flow.
#[derive(Debug)]
pub struct Obtained {
    /// The credentials.
    pub credentials: Credentials,
    /// `assumedRoleUser.arn`.
    pub assumed_role_arn: Option<String>,
    /// The certificate's notAfter.
    pub cert_not_after: OffsetDateTime,
}

/// Vault, then Roles Anywhere through `session`, then the Vault token revoked (whatever the
/// session's outcome), all before `deadline`.
pub async fn session_from_vault(
    session: &SessionClient,
    vault_cfg: &VaultConfig,
    deadline: Instant,
) -> Result<Obtained, Error> {
    let vault = VaultClient::new(vault_cfg, deadline).map_err(Error::Other)?;
    let got = from_vault(vault_cfg, &vault).await?;
    let t = Instant::now();
    let result = session.create_session(&got.identity, deadline).await;
    if let Ok(s) = &result {
        tracing::info!(
            step = "create_session",
            duration_ms = ms_since(t),
            expiration = %s.credentials.expiration_rfc3339(),
            access_key_id = %s.credentials.access_key_id,
            "created the Roles Anywhere session"
        );
    }
    if let Some(tok) = &got.token_to_revoke {
        revoke(&vault, tok).await;
    }
    let s = result?;
    Ok(Obtained {
        credentials: s.credentials,
        assumed_role_arn: s.assumed_role_arn,
        cert_not_after: got.identity.not_after,
    })
}

/// A certificate from Vault and the token that obtained it.
#[derive(Debug)]
struct FromVault {
    /// The checked identity.
    identity: Identity,
    /// The token to revoke when done (`None` when it was given to us).
    token_to_revoke: Option<Secret>,
}

/// Logs in to Vault and obtains a certificate per `cfg`.
async fn from_vault(cfg: &VaultConfig, client: &VaultClient) -> Result<FromVault, Error> {
    let t = Instant::now();
    let login = login::login(client, &cfg.auth).await?;
    tracing::info!(
        step = "login",
        duration_ms = ms_since(t),
        created_token = login.created,
        "logged in to Vault"
    );
    let token_to_revoke = (login.created && !cfg.keep_token).then(|| login.token.clone());
    let result = certificate(cfg, client, &login).await;
    if result.is_err() {
        // Do not leave a token behind when the run fails half-way.
        if let Some(tok) = &token_to_revoke {
            revoke(client, tok).await;
        }
    }
    result.map(|identity| FromVault {
        identity,
        token_to_revoke,
    })
}

async fn certificate(
    cfg: &VaultConfig,
    client: &VaultClient,
    login: &login::Login,
) -> Result<Identity, Error> {
    let cn = match (&cfg.pki.common_name, &login.service_account) {
        (Some(cn), _) => cn.clone(),
        (None, Some(sa)) => default_common_name(sa),
        (None, None) => {
            return Err(Error::Config(crate::config::ConfigError(
                "cannot derive the common name: the login named no ServiceAccount; pass --common-name (or VAULT_CERT_CN)".into(),
            )));
        }
    };
    let (key, csr) = match cfg.pki.mode {
        PkiMode::Sign => {
            let t = Instant::now();
            let g = keygen::generate(cfg.pki.key_type, &cn).map_err(Error::Other)?;
            tracing::info!(step = "keygen", duration_ms = ms_since(t), key = %g.key.describe(), "generated key in memory");
            (Some(g.key), Some(g.csr_pem))
        }
        PkiMode::Issue => (None, None),
    };
    let t = Instant::now();
    let issued = pki::obtain(client, &login.token, &cfg.pki, &cn, csr.as_deref()).await?;
    let key = match (key, issued.key) {
        (Some(k), _) | (None, Some(k)) => k,
        (None, None) => {
            return Err(Error::Vault(crate::vault::VaultError::BadResponse {
                op: "PKI issue".into(),
                why: "no private_key in the answer".into(),
            }));
        }
    };
    let identity = Identity::new(
        issued.leaf_der,
        issued.chain_der,
        key,
        OffsetDateTime::now_utc(),
    )?;
    tracing::info!(
        step = "sign",
        duration_ms = ms_since(t),
        mode = ?cfg.pki.mode,
        common_name = %cn,
        serial = %identity.serial_decimal,
        not_after = %crate::material::fmt_time(identity.not_after),
        chain = identity.chain_der.len(),
        "certificate from Vault PKI"
    );
    Ok(identity)
}

/// Revokes `token`, logging (not failing) on error.
async fn revoke(client: &VaultClient, token: &Secret) {
    let t = Instant::now();
    match login::revoke_self(client, token).await {
        Ok(()) => tracing::info!(
            step = "revoke",
            duration_ms = ms_since(t),
            "revoked the Vault token"
        ),
        Err(e) => tracing::warn!(error = %e, "could not revoke the Vault token"),
    }
}
