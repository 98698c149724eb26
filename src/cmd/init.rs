//! `init`: the initContainer flow. Vault login, key in memory, certificate from PKI,
//! CreateSession, then the credentials file (and the region in the config file); the Vault
//! token is revoked unless `--keep-vault-token`. Exit 0 only when the file is written.

use std::time::Instant;

use crate::aws::credentials::Credentials;
use crate::aws::{credentials_file, sts};
use crate::cli::{InitArgs, RolesAnywhereArgs, VaultArgs};
use crate::config::{Env, OutputConfig, RolesAnywhereConfig, VaultConfig};
use crate::error::Error;
use crate::source::{self, ms_since};
use crate::vault::VaultClient;

/// Where credentials come from, validated: Vault, then Roles Anywhere (shared with `serve`).
#[derive(Debug)]
pub struct InitConfig {
    /// Session.
    pub ra: RolesAnywhereConfig,
    /// Vault.
    pub vault: VaultConfig,
}

impl InitConfig {
    /// Validates everything before any network call.
    pub fn new(ra: &RolesAnywhereArgs, vault: &VaultArgs, env: &dyn Env) -> Result<Self, Error> {
        Ok(InitConfig {
            ra: RolesAnywhereConfig::new(ra, env)?,
            vault: VaultConfig::new(vault, env)?,
        })
    }
}

/// One round of the flow's result.
#[derive(Debug)]
pub struct Obtained {
    /// The credentials.
    pub credentials: Credentials,
    /// `assumedRoleUser.arn`.
    pub assumed_role_arn: Option<String>,
    /// The certificate's notAfter.
    pub cert_not_after: time::OffsetDateTime,
}

/// Obtains one set of credentials: Vault, then Roles Anywhere, then the token revoked.
pub async fn obtain(cfg: &InitConfig, deadline: Instant) -> Result<Obtained, Error> {
    let client = cfg.ra.session_client()?;
    let vault = VaultClient::new(&cfg.vault, deadline).map_err(Error::Other)?;
    let got = source::from_vault(&cfg.vault, &vault).await?;
    let t = Instant::now();
    let result = client.create_session(&got.identity, deadline).await;
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
        source::revoke(&vault, tok).await;
    }
    let s = result?;
    Ok(Obtained {
        credentials: s.credentials,
        assumed_role_arn: s.assumed_role_arn,
        cert_not_after: got.identity.not_after,
    })
}

/// Writes the credentials file (and config file) per `out`.
pub fn write_output(out: &OutputConfig, region: &str, creds: &Credentials) -> Result<(), Error> {
    let t = Instant::now();
    credentials_file::write_credentials(&out.credentials_file, &out.profile, creds).map_err(
        |source| Error::Output {
            what: "credentials file",
            path: out.credentials_file.clone(),
            source,
        },
    )?;
    if let Some(cf) = &out.config_file {
        credentials_file::write_region(cf, &out.profile, region).map_err(|source| {
            Error::Output {
                what: "config file",
                path: cf.clone(),
                source,
            }
        })?;
    }
    tracing::info!(
        step = "write",
        duration_ms = ms_since(t),
        path = %out.credentials_file.display(),
        profile = %out.profile,
        "wrote the credentials file"
    );
    Ok(())
}

/// Runs the command.
pub async fn run(args: InitArgs, env: &dyn Env) -> Result<(), Error> {
    let start = Instant::now();
    let cfg = InitConfig::new(&args.ra, &args.vault, env)?;
    let output = OutputConfig::new(&args.output, env)?;
    let deadline = start + cfg.vault.timeout;
    let got = obtain(&cfg, deadline).await?;
    let (creds, assumed) = (got.credentials, got.assumed_role_arn);
    write_output(&output, &cfg.ra.target.region, &creds)?;
    if args.verify {
        let t = Instant::now();
        let endpoint = args.sts_endpoint.clone().unwrap_or_else(|| {
            let suffix = crate::arn::dns_suffix(&cfg.ra.target.trust_anchor.partition)
                .unwrap_or("amazonaws.com");
            format!("https://sts.{}.{suffix}", cfg.ra.target.region)
        });
        let http = cfg.ra.session_client()?.http;
        let who = sts::get_caller_identity(&http, &endpoint, &cfg.ra.target.region, &creds)
            .await
            .map_err(Error::Verify)?;
        tracing::info!(step = "verify", duration_ms = ms_since(t), arn = %who.arn, account = %who.account, "STS GetCallerIdentity");
    }
    tracing::info!(
        total_ms = ms_since(start),
        network_ms = crate::http::network_ms(),
        assumed_role = assumed.as_deref().unwrap_or("-"),
        expiration = %creds.expiration_rfc3339(),
        "credentials ready"
    );
    Ok(())
}
