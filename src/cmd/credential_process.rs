//! `credential-process`: print credential_process JSON on stdout, from local certificate files
//! or from Vault, through the cache unless `--no-cache`. Flag-compatible with
//! `aws_signing_helper credential-process`.

use std::io::Write;
use std::time::Instant;

use time::OffsetDateTime;

use crate::aws::cache::{Cache, KeyBuilder};
use crate::aws::process_json;
use crate::cli::CredentialProcessArgs;
use crate::config::{ConfigError, Env, RolesAnywhereConfig, VaultConfig};
use crate::error::Error;
use crate::material;
use crate::source;

/// CreateSession attempts before giving up (AWS SDKs' standard retryer makes 3).
const MAX_ATTEMPTS: u32 = 5;

/// Runs the command.
pub async fn run(args: CredentialProcessArgs, env: &dyn Env) -> Result<(), Error> {
    let ra = RolesAnywhereConfig::new(&args.ra, env)?;
    let deadline = Instant::now() + args.vault.deadline_after()?;
    let mut client = ra.session_client()?;
    // An SDK is waiting (Go v2 kills the process after a minute): a few quick retries only.
    client.max_attempts = Some(MAX_ATTEMPTS);

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

    enum Src {
        Files(material::Identity),
        Vault(VaultConfig),
    }
    let src = match (&args.certificate, &args.private_key) {
        (Some(cert), Some(pk)) => {
            let id = material::load_files(
                cert,
                args.intermediates.as_deref(),
                pk,
                OffsetDateTime::now_utc(),
            )?;
            key = key.add("leaf", &id.leaf_der);
            for c in &id.chain_der {
                key = key.add("chain", c);
            }
            key = key.add("public_key", &id.key.public_key_bits());
            Src::Files(id)
        }
        (Some(_), None) => {
            return Err(ConfigError("missing --private-key for --certificate".into()).into());
        }
        (None, Some(_)) => {
            return Err(ConfigError("missing --certificate for --private-key".into()).into());
        }
        (None, None) => {
            if args.vault.pki_role.is_none()
                && args.vault.vault_addr.is_none()
                && env.var("VAULT_ADDR").is_none()
            {
                return Err(ConfigError(
                    "missing --certificate and --private-key (or the Vault flags --vault-addr and --pki-role to get a certificate from Vault)".into(),
                )
                .into());
            }
            let v = VaultConfig::new(&args.vault, env)?;
            key = key.add("vault", v.describe().as_bytes());
            Src::Vault(v)
        }
    };

    let create = || async {
        match &src {
            Src::Files(id) => {
                Ok::<_, Error>(client.create_session(id, deadline).await?.credentials)
            }
            Src::Vault(v) => Ok(source::session_from_vault(&client, v, deadline)
                .await?
                .credentials),
        }
    };
    let creds = if args.no_cache {
        create().await?
    } else {
        match cache_dir(&args, env) {
            Some(dir) => {
                Cache { dir }
                    .get_or_create(&key.finish(), OffsetDateTime::now_utc, create)
                    .await?
            }
            None => create().await?,
        }
    };
    let mut out = std::io::stdout().lock();
    out.write_all(process_json::to_json(&creds).as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| Error::Other(format!("cannot write to stdout: {e}")))
}

fn cache_dir(args: &CredentialProcessArgs, env: &dyn Env) -> Option<std::path::PathBuf> {
    if let Some(d) = &args.cache_dir {
        return Some(d.clone());
    }
    let base = env
        .var("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            env.var("HOME")
                .map(|h| std::path::Path::new(&h).join(".cache"))
        })?;
    Some(base.join("iamra-bootstrap"))
}
