//! `serve`: the sidecar. Obtains credentials exactly as `init` does, keeps them fresh for as
//! long as the pod runs ([`crate::serve::refresh`]), hands them out ([`crate::serve`]) and
//! rewrites `--credentials-file` at every refresh when asked to.

use std::time::{Duration, Instant};

use crate::aws::credentials_file::{self, Output};
use crate::cli::ServeArgs;
use crate::config::{self, ConfigError, Env};
use crate::error::{Error, one_line};
use crate::rolesanywhere::session::SessionClient;
use crate::serve::{self, refresh};
use crate::source::Source;

/// Runs the sidecar until SIGTERM/SIGINT.
pub(crate) async fn run(args: ServeArgs, env: &dyn Env) -> Result<(), Error> {
    let ra = config::rolesanywhere(&args.flow.ra, env)?;
    let timeout = config::timeout(&args.flow.deadline)?;
    let source = Source::Vault(Box::new(config::vault_source(
        &args.flow.vault,
        env,
        Instant::now() + timeout,
    )?));
    // The file is rewritten only when asked for explicitly (flag or IAMRA_CREDENTIALS_FILE).
    let output = match args.flow.output.credentials_file {
        Some(_) => Some(config::output(&args.flow.output, env)?),
        None => None,
    };
    if args.auth_token_file.is_none() && !args.imds && output.is_none() {
        return Err(ConfigError(
            "nothing to serve: pass --auth-token-file (ECS endpoint), --imds, or --credentials-file".into(),
        )
        .into());
    }
    let refresher = Refresher {
        client: ra.client(None).map_err(Error::Other)?,
        region: ra.target.region.clone(),
        source,
        output,
        timeout,
    };
    serve::run(config::serve(&args, &ra.target.role), refresher).await?;
    Ok(())
}

/// One refresh: the source's flow within `--timeout`, then the file rewritten (a failed
/// rewrite is logged; the endpoints still get the new credentials).
struct Refresher {
    source: Source,
    client: SessionClient,
    output: Option<Output>,
    region: String,
    timeout: Duration,
}

impl refresh::Obtain for Refresher {
    async fn obtain(&self) -> Result<refresh::Fresh, String> {
        let deadline = Instant::now() + self.timeout;
        let got = self
            .source
            .obtain(&self.client, deadline)
            .await
            .map_err(|e| one_line(&e))?;
        if let Some(out) = &self.output
            && let Err(e) =
                credentials_file::write_output(out, &self.region, &got.credentials, deadline)
        {
            tracing::warn!(error = %e, "could not rewrite the credentials file");
        }
        Ok(refresh::Fresh {
            credentials: got.credentials,
            cert_not_after: got.cert_not_after,
        })
    }
}
