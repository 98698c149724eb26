//! `update`: `aws_signing_helper update`. Keeps one profile of the credentials file fresh: the
//! refresh loop ([`crate::source::refresh`]) over the source (certificate files re-read every
//! time, or Vault) into the file ([`FileSink`]: the profile rewritten atomically, 0600, other
//! profiles kept), as `serve` does. `--once` writes once and exits 0 only when the file is
//! written.
//!
//! Unlike the helper, a failed refresh is not fatal: it is retried with backoff (the
//! credentials already in the file stay until they expire), and rotated certificate files are
//! picked up as [`crate::source::files`] says. The helper's `--profile` (default `default`)
//! and `AWS_SHARED_CREDENTIALS_FILE` / `~/.aws/credentials` are ours already.

use crate::aws::credentials_file::FileSink;
use crate::cli::UpdateArgs;
use crate::config::{self, Env};
use crate::error::Error;
use crate::source::refresh::{Once, Refresh, Upstream};

/// Runs the command.
pub(crate) async fn run(args: UpdateArgs, env: &dyn Env) -> Result<(), Error> {
    let config::UpdatePlan {
        ra,
        timeout,
        source,
        output,
        once,
    } = config::plan_update(&args, env)?;
    let client = ra.client(None).map_err(Error::Other)?;
    let sink = FileSink {
        output,
        region: ra.target.region.clone(),
    };
    let refresh = Refresh {
        feed: Upstream { source, client },
        timeout,
    };
    if once {
        return refresh.once(&sink).await.map_err(|e| match e {
            Once::Source(e) => Error::from(e),
            Once::Sink(e) => Error::from(e),
        });
    }
    refresh.run(&sink).await;
    Ok(())
}
