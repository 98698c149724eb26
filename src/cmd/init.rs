//! `init`: the initContainer flow. Vault login, key in memory, certificate from PKI (or an
//! X.509-SVID from the SPIFFE Workload API), CreateSession, then the credentials file (and the region in the config file); the Vault
//! token is revoked unless `--keep-vault-token`. Exit 0 only when the file is written.

use std::time::Instant;

use crate::aws::{credentials_file, sts};
use crate::cli::InitArgs;
use crate::config::{self, Env};
use crate::error::Error;
use crate::logging::ms_since;

/// Runs the command.
pub(crate) async fn run(args: InitArgs, env: &dyn Env) -> Result<(), Error> {
    let start = Instant::now();
    let plan = config::plan_init(&args, env)?;
    let (ra, deadline) = (&plan.ra, plan.deadline);
    let client = ra.client(None).map_err(Error::Other)?;

    let got = plan.source.obtain(&client, deadline).await?;
    let creds = got.credentials;
    credentials_file::write_output(&plan.output, &ra.target.region, &creds, deadline)?;
    if let Some(endpoint) = &plan.verify {
        let t = Instant::now();
        let who =
            sts::get_caller_identity(&client.http, endpoint, &ra.target.region, &creds, deadline)
                .await
                .map_err(Error::Verify)?;
        tracing::info!(step = "verify", duration_ms = ms_since(t), arn = %who.arn, account = %who.account, "STS GetCallerIdentity");
    }
    tracing::info!(
        total_ms = ms_since(start),
        network_ms = crate::http::network_ms(),
        assumed_role = got.assumed_role_arn.as_deref().unwrap_or("-"),
        expiration = %creds.expiration_rfc3339(),
        "credentials ready"
    );
    Ok(())
}
