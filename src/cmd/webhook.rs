//! `webhook`: the mutating admission webhook ([`crate::webhook`]), with its settings from
//! [`crate::config::plan_webhook`].

use crate::cli::WebhookArgs;
use crate::config;
use crate::error::Error;
use crate::webhook;

/// Runs the webhook until SIGTERM/SIGINT.
pub(crate) async fn run(args: WebhookArgs) -> Result<(), Error> {
    let settings = config::plan_webhook(&args)?;
    webhook::run(settings).await?;
    Ok(())
}
