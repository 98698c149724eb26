//! `serve`: the sidecar. The refresh loop ([`crate::source::refresh`]) keeps credentials from
//! Vault or from certificate files (re-read at every refresh, their rotation watched:
//! [`crate::source::files`]) fresh for as long as the pod runs, and delivers them to the
//! endpoints ([`crate::serve`]) and, when asked to, to `--credentials-file`.
//! `--port`/`--hop-limit` and the certificate flags make it `aws_signing_helper serve`.

use crate::aws::credentials_file::FileSink;
use crate::cli::ServeArgs;
use crate::config::{self, Env};
use crate::error::Error;
use crate::serve;
use crate::source::refresh::{Refresh, Upstream};

/// Runs the sidecar until SIGTERM/SIGINT.
pub(crate) async fn run(args: ServeArgs, env: &dyn Env) -> Result<(), Error> {
    let plan = config::plan_serve(&args, env)?;
    let file = plan.output.map(|output| FileSink {
        output,
        region: plan.ra.target.region.clone(),
    });
    let refresh = Refresh {
        feed: Upstream {
            source: plan.source,
            client: plan.ra.client(None).map_err(Error::Other)?,
        },
        timeout: plan.timeout,
    };
    serve::run(plan.serve, refresh, file).await?;
    Ok(())
}
