//! `update`: `aws_signing_helper update`. Keeps one profile of the credentials file fresh:
//! CreateSession (from certificate files re-read every time, or from Vault), the profile
//! rewritten atomically (0600, other profiles kept), again when [`refresh::next_refresh`]
//! says, as `serve` does. `--once` writes once and exits 0 only when the file is written.
//!
//! Unlike the helper, a failed refresh is not fatal: it is retried with backoff (the
//! credentials already in the file stay until they expire), and rotated certificate files are
//! picked up as [`crate::source::files`] says. The helper's `--profile` (default `default`)
//! and `AWS_SHARED_CREDENTIALS_FILE` / `~/.aws/credentials` are ours already.

use std::time::Instant;

use time::OffsetDateTime;

use crate::aws::credentials_file;
use crate::cli::UpdateArgs;
use crate::config::{self, Env};
use crate::error::{Error, one_line};
use crate::retry::{full_jitter, random_unit};
use crate::serve::refresh::{self, RETRY_BASE, RETRY_CAP};
use crate::timefmt::{self, Style};

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
    if once {
        let deadline = Instant::now() + timeout;
        let got = source.obtain(&client, deadline).await?;
        credentials_file::write_output(&output, &ra.target.region, &got.credentials, deadline)?;
        return Ok(());
    }
    // Consecutive failed refreshes, for the backoff between retries.
    let mut failures: u32 = 0;
    loop {
        let started = OffsetDateTime::now_utc();
        let watch_from = source.files().map(|f| f.fingerprint());
        let deadline = Instant::now() + timeout;
        let result = match source.obtain(&client, deadline).await {
            Ok(got) => credentials_file::write_output(
                &output,
                &ra.target.region,
                &got.credentials,
                deadline,
            )
            .map(|()| got)
            .map_err(Error::from),
            Err(e) => Err(Error::from(e)),
        };
        let (wait, watch) = match result {
            Ok(got) => {
                failures = 0;
                let expires = got.credentials.expiration;
                let wait = refresh::next_refresh(
                    started,
                    expires,
                    OffsetDateTime::now_utc(),
                    random_unit(),
                );
                tracing::info!(
                    expiration = %timefmt::format(expires, Style::Rfc3339),
                    next_refresh_s = wait.as_secs(),
                    "credentials file updated"
                );
                (wait, got.cert_not_after < expires)
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::warn!(error = %one_line(&e), "update failed, will retry");
                (
                    full_jitter(RETRY_BASE, RETRY_CAP, failures - 1, random_unit()),
                    true,
                )
            }
        };
        match (source.files(), watch_from) {
            (Some(files), Some(before)) if watch => files.sleep_unless_changed(wait, before).await,
            _ => tokio::time::sleep(wait).await,
        }
    }
}
