//! `aws-spiffe-workload-helper`'s X.509 command lines, so that its users switch by changing
//! the binary's name: `x509-credential-process`, `x509-credential-file` and
//! `x509-credential-file-oneshot`, with its flags unchanged ([`crate::cli::SpiffeHelperArgs`]).
//!
//! Contract (the helper's `cmd/cli/*.go` and `internal/aws_credentials_file.go`, read not
//! copied): the SVID comes from `--workload-api-addr`, else `SPIFFE_ENDPOINT_SOCKET`, and is
//! the default (first) one; `x509-credential-process` prints credential_process JSON (no
//! cache); `x509-credential-file-oneshot` writes the `default` profile of
//! `--aws-credentials-path` once, merged into the file unless `--replace` (the file holds only
//! that profile) or `--force` (a file that cannot be read is overwritten);
//! `x509-credential-file` does so again at every SVID rotation and before the credentials
//! expire. These are the SPIFFE source's `credential-process` and `update` ([`super`]),
//! with one difference: a failed exchange in `x509-credential-file` is retried with backoff
//! (the helper exits).

use std::path::PathBuf;

use crate::cli::{
    CredentialProcessArgs, ExistingFile, FlowArgs, LogArgs, LogFormat, OutputArgs,
    RolesAnywhereArgs, SpiffeArgs, SpiffeHelperArgs, SpiffeHelperFileArgs, UpdateArgs,
};
use crate::config::{ConfigError, Env};
use crate::error::Error;

/// The SPIFFE and Roles Anywhere flags as ours; the Workload API address must be named.
fn ours(a: &SpiffeHelperArgs, env: &dyn Env) -> Result<(SpiffeArgs, RolesAnywhereArgs), Error> {
    let endpoint = a
        .workload_api_addr
        .clone()
        .or_else(|| env.var("SPIFFE_ENDPOINT_SOCKET"))
        .ok_or_else(|| {
            ConfigError(
                "no Workload API address: pass --workload-api-addr or set SPIFFE_ENDPOINT_SOCKET"
                    .into(),
            )
        })?;
    let spiffe = SpiffeArgs {
        spiffe_endpoint: Some(endpoint),
        spiffe_id: None,
        spiffe_hint: None,
    };
    let ra = RolesAnywhereArgs {
        trust_anchor_arn: a.trust_anchor_arn.clone(),
        profile_arn: a.profile_arn.clone(),
        role_arn: a.role_arn.clone(),
        session_duration: a.session_duration,
        region: a.region.clone(),
        endpoint: a.endpoint.clone(),
        role_session_name: a.role_session_name.clone(),
        no_verify_ssl: false,
        with_proxy: false,
        debug: a.debug,
    };
    Ok((spiffe, ra))
}

/// `x509-credential-process`: `credential-process` from the SVID, without the cache.
pub(crate) async fn credential_process(a: SpiffeHelperArgs, env: &dyn Env) -> Result<(), Error> {
    let (spiffe, ra) = ours(&a, env)?;
    let args = CredentialProcessArgs {
        files: Default::default(),
        no_cache: true,
        cache_dir: None,
        spiffe,
        ra,
        vault: Default::default(),
        deadline: a.deadline,
    };
    super::credential_process::run(args, env).await
}

/// `x509-credential-file[-oneshot]`: `update [--once]` on the `default` profile.
pub(crate) async fn credential_file(
    a: SpiffeHelperFileArgs,
    once: bool,
    env: &dyn Env,
) -> Result<(), Error> {
    let (spiffe, ra) = ours(&a.common, env)?;
    let args = UpdateArgs {
        once,
        files: Default::default(),
        flow: FlowArgs {
            output: OutputArgs {
                credentials_file: Some(a.aws_credentials_path),
                profile: "default".into(),
                config_file: None,
                termination_log: PathBuf::from("/dev/termination-log"),
                existing: if a.replace {
                    ExistingFile::Replace
                } else if a.force {
                    ExistingFile::MergeOrOverwrite
                } else {
                    ExistingFile::Merge
                },
            },
            log: LogArgs {
                log_format: LogFormat::Text,
                log_level: "info".into(),
            },
            ra,
            spiffe,
            vault: Default::default(),
            deadline: a.common.deadline,
        },
    };
    super::update::run(args, env).await
}
