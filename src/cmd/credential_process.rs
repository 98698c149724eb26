//! `credential-process`: print credential_process JSON on stdout, from local certificate files
//! or from Vault, through the cache unless `--no-cache`. Flag-compatible with
//! `aws_signing_helper credential-process`.

use std::io::Write;
use time::OffsetDateTime;

use crate::aws::cache::KeyBuilder;
use crate::aws::process_json;
use crate::cli::CredentialProcessArgs;
use crate::config::{self, Env};
use crate::error::Error;

/// CreateSession attempts before giving up (AWS SDKs' standard retryer makes 3): an SDK is
/// waiting (Go v2 kills the process after a minute), so a few quick retries only.
const MAX_ATTEMPTS: u32 = 5;

/// Runs the command.
pub(crate) async fn run(args: CredentialProcessArgs, env: &dyn Env) -> Result<(), Error> {
    let config::CredentialProcessPlan {
        ra,
        deadline,
        source,
        cache,
    } = config::plan_credential_process(&args, env)?;
    let client = ra.client(Some(MAX_ATTEMPTS)).map_err(Error::Other)?;

    let fresh = || async { Ok::<_, Error>(source.obtain(&client, deadline).await?.credentials) };
    let creds = match cache {
        None => fresh().await?,
        Some(cache) => {
            let mut key = KeyBuilder::new()
                .add("trust_anchor", ra.target.trust_anchor.raw.as_bytes())
                .add("profile", ra.target.profile.raw.as_bytes())
                .add("role", ra.target.role.raw.as_bytes())
                .add("region", ra.target.region.as_bytes())
                .add("endpoint", ra.endpoint.sessions_url().as_bytes())
                .add("duration", &ra.params.duration_seconds.to_be_bytes())
                .add(
                    "session_name",
                    ra.params
                        .role_session_name
                        .as_deref()
                        .unwrap_or("")
                        .as_bytes(),
                );
            for (name, value) in source.key_parts(deadline)? {
                key = key.add(name, &value);
            }
            cache
                .get_or_create(&key.finish(), OffsetDateTime::now_utc, deadline, fresh)
                .await?
        }
    };
    let mut out = std::io::stdout().lock();
    out.write_all(process_json::to_json(&creds).as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| Error::Other(format!("cannot write to stdout: {e}")))
}
