//! `serve`: the sidecar. Obtains credentials from Vault or from certificate files (re-read at
//! every refresh, their rotation watched: [`crate::source::files`]), keeps them fresh for as
//! long as the pod runs ([`crate::serve::refresh`]), hands them out ([`crate::serve`]) and
//! rewrites `--credentials-file` at every refresh when asked to. `--port`/`--hop-limit` and
//! the certificate flags make it `aws_signing_helper serve`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::aws::credentials_file::{self, Output};
use crate::cli::ServeArgs;
use crate::config::{self, Env};
use crate::error::{Error, one_line};
use crate::rolesanywhere::session::SessionClient;
use crate::serve::{self, refresh};
use crate::source::Source;
use crate::source::files::Fingerprint;

/// Runs the sidecar until SIGTERM/SIGINT.
pub(crate) async fn run(args: ServeArgs, env: &dyn Env) -> Result<(), Error> {
    let plan = config::plan_serve(&args, env)?;
    let refresher = Refresher {
        client: plan.ra.client(None).map_err(Error::Other)?,
        region: plan.ra.target.region.clone(),
        source: plan.source,
        output: plan.output,
        timeout: plan.timeout,
        watch_from: Mutex::new(None),
    };
    serve::run(plan.serve, refresher).await?;
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
    /// What the certificate files held when the last refresh started (files only).
    watch_from: Mutex<Option<Fingerprint>>,
}

impl refresh::Refresh for Refresher {
    async fn refresh(&self) -> Result<refresh::Fresh, String> {
        // Before reading them: a rotation during the refresh still ends the next wait.
        *self.watch_from.lock().unwrap_or_else(|p| p.into_inner()) =
            self.source.files().map(|f| f.fingerprint());
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

    async fn pause(&self, wait: Duration, watch: bool) {
        let before = *self.watch_from.lock().unwrap_or_else(|p| p.into_inner());
        match (self.source.files(), before) {
            (Some(files), Some(before)) if watch => files.sleep_unless_changed(wait, before).await,
            _ => tokio::time::sleep(wait).await,
        }
    }
}
