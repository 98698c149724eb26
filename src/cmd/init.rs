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
    let cfg = InitConfig::new(&args.flow.ra, &args.flow.vault, env)?;
    let output = OutputConfig::new(&args.flow.output, env)?;
    let deadline = start + cfg.vault.timeout;
    let session = cfg.ra.session_client()?;
    let got = source::session_from_vault(&session, &cfg.vault, deadline).await?;
    let (creds, assumed) = (got.credentials, got.assumed_role_arn);
    write_output(&output, &cfg.ra.target.region, &creds)?;
    if args.verify {
        let t = Instant::now();
        let endpoint = args
            .sts_endpoint
            .clone()
            .unwrap_or_else(|| cfg.ra.target.service_endpoint("sts"));
        let who = sts::get_caller_identity(&session.http, &endpoint, &cfg.ra.target.region, &creds)
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
