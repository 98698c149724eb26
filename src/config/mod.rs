//! Validation and planning: raw flags ([`crate::cli`]) and the environment in, one plan per
//! command out ([`plan_init`], [`plan_credential_process`], [`plan_serve`], [`plan_update`],
//! [`plan_webhook`], [`plan_sign_string`], [`plan_read_certificate_data`]), each holding the
//! settings types of the modules that consume them (`rolesanywhere::Settings`, a `Source`, the
//! credentials-file `Output`, the cache, `serve::Settings`, `webhook::Settings`). Every field
//! is already usable (ARNs parsed, regions agree, durations in range, files named, Vault's
//! client built) before any network call. This is the only module that knows both clap's types
//! and the domain's; it is split by consumer: [`rolesanywhere`], [`vault`], [`source`] (SPIFFE,
//! files or Vault, the key's password), [`output`] (credentials file, cache), [`serve`],
//! [`webhook`].
//!
//! Environment precedence for each option: flag, then `IAMRA_*` (read by clap), then the
//! legacy names a pod spec for the python init container used (`ANCHOR_ARN`, `PROFILE_ARN`,
//! `ROLE_ARN`, `VAULT_ADDR`, `VAULT_ROLE`, `VAULT_CERT_CN`), read here through [`Env`] (the one
//! reader of the process environment: `clippy.toml` refuses `std::env::var` elsewhere) so tests
//! never touch the process environment. Vault's own variables follow its Go client
//! (`docs/ecosystem-contracts.md` §5). Values quoted in errors go through [`limits::quote`].

mod output;
mod rolesanywhere;
mod serve;
mod source;
mod vault;
mod webhook;

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use crate::aws::cache::Cache;
use crate::aws::credentials_file::Output;
use std::path::PathBuf;

use crate::cli::{
    self, CredentialProcessArgs, InitArgs, LogFormat, ReadCertificateDataArgs, ServeArgs,
    SignFormat, SignStringArgs, TimeoutArgs, UpdateArgs, WebhookArgs,
};
use crate::keys::Digest;
use crate::limits;
use crate::logging;
use crate::secret::Secret;
use crate::source::Source;

/// Reads environment variables (empty values count as unset).
pub(crate) trait Env {
    /// The value of `name`, if set and not empty.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProcessEnv;

impl Env for ProcessEnv {
    #[allow(clippy::disallowed_methods)] // the one place the process environment is read
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.is_empty()).cloned()
    }
}

/// A configuration problem, as one line that says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// Parses `90`, `90s`, `2m`, `1h`, `1h30m`, `500ms`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num
            .parse()
            .map_err(|_| format!("invalid duration {}", limits::quote(s)))?;
        num.clear();
        let unit = match c {
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                Duration::from_millis(1)
            }
            'h' => Duration::from_secs(3600),
            'm' => Duration::from_secs(60),
            's' => Duration::from_secs(1),
            _ => {
                return Err(format!(
                    "invalid duration {}: use e.g. 90s, 2m or 1h",
                    limits::quote(s)
                ));
            }
        };
        total += unit * n as u32;
        any = true;
    }
    if !num.is_empty() || !any {
        return Err(format!(
            "invalid duration {}: use e.g. 90s, 2m or 1h",
            limits::quote(s)
        ));
    }
    Ok(total)
}

/// Go's `strconv.ParseBool`, as Vault reads `VAULT_SKIP_VERIFY`.
fn parse_go_bool(name: &str, v: &str) -> Result<bool, ConfigError> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => err(format!(
            "{name}={} is not a boolean; use true or false",
            limits::quote(v)
        )),
    }
}

/// `--timeout`: the deadline of the whole run; more than zero.
pub(crate) fn timeout(a: &TimeoutArgs) -> Result<Duration, ConfigError> {
    let d = parse_duration(&a.timeout).map_err(|e| ConfigError(format!("--timeout: {e}")))?;
    if d.is_zero() {
        return err(format!(
            "--timeout {} must be more than zero, e.g. 90s or 2m",
            limits::quote(&a.timeout)
        ));
    }
    Ok(d)
}

/// `init`, planned: everything it runs with.
#[derive(Debug)]
pub(crate) struct InitPlan {
    /// The session to create.
    pub(crate) ra: crate::rolesanywhere::Settings,
    /// `--timeout` from now: the whole run's deadline.
    pub(crate) deadline: Instant,
    /// Vault or the SPIFFE Workload API.
    pub(crate) source: Source,
    /// The credentials file (and config file) to write.
    pub(crate) output: Output,
    /// `--verify`: the STS endpoint to call after writing.
    pub(crate) verify: Option<String>,
}

/// `init`'s flags and environment, validated.
pub(crate) fn plan_init(a: &InitArgs, env: &dyn Env) -> Result<InitPlan, ConfigError> {
    let ra = rolesanywhere::settings(&a.flow.ra, env)?;
    let deadline = Instant::now() + timeout(&a.flow.deadline)?;
    let source = source::init_source(&a.flow, env, deadline)?;
    let output = output::credentials_file(&a.flow.output, env)?;
    let verify = if a.verify {
        let flag = a.sts_endpoint.as_deref();
        Some(rolesanywhere::sts_endpoint(flag, &ra.target, env)?)
    } else {
        None
    };
    Ok(InitPlan {
        ra,
        deadline,
        source,
        output,
        verify,
    })
}

/// `credential-process`, planned.
#[derive(Debug)]
pub(crate) struct CredentialProcessPlan {
    /// The session to create.
    pub(crate) ra: crate::rolesanywhere::Settings,
    /// `--timeout` from now: the whole run's deadline.
    pub(crate) deadline: Instant,
    /// SPIFFE, certificate files or Vault.
    pub(crate) source: Source,
    /// `None` with `--no-cache` (or nowhere to put it).
    pub(crate) cache: Option<Cache>,
}

/// `credential-process`'s flags and environment, validated.
pub(crate) fn plan_credential_process(
    a: &CredentialProcessArgs,
    env: &dyn Env,
) -> Result<CredentialProcessPlan, ConfigError> {
    let ra = rolesanywhere::settings(&a.ra, env)?;
    let deadline = Instant::now() + timeout(&a.deadline)?;
    let source = source::source(&a.files, &a.spiffe, &a.vault, env, deadline)?;
    Ok(CredentialProcessPlan {
        ra,
        deadline,
        source,
        cache: output::cache(a, env),
    })
}

/// `serve`, planned.
#[derive(Debug)]
pub(crate) struct ServePlan {
    /// The session to create at every refresh.
    pub(crate) ra: crate::rolesanywhere::Settings,
    /// `--timeout`: each refresh's deadline, from its start.
    pub(crate) timeout: Duration,
    /// SPIFFE, certificate files or Vault.
    pub(crate) source: Source,
    /// The credentials file rewritten at every refresh, when asked for explicitly (flag or
    /// `IAMRA_CREDENTIALS_FILE`).
    pub(crate) output: Option<Output>,
    /// Listeners and endpoints.
    pub(crate) serve: crate::serve::Settings,
}

/// `serve`'s flags and environment, validated.
pub(crate) fn plan_serve(a: &ServeArgs, env: &dyn Env) -> Result<ServePlan, ConfigError> {
    let ra = rolesanywhere::settings(&a.flow.ra, env)?;
    let timeout = timeout(&a.flow.deadline)?;
    let source = source::source(
        &a.files,
        &a.flow.spiffe,
        &a.flow.vault,
        env,
        Instant::now() + timeout,
    )?;
    let output = match a.flow.output.credentials_file {
        Some(_) => Some(output::credentials_file(&a.flow.output, env)?),
        None => None,
    };
    let serve = serve::settings(
        a,
        &ra.target.role,
        source.files().is_some(),
        output.is_some(),
    )?;
    Ok(ServePlan {
        ra,
        timeout,
        source,
        output,
        serve,
    })
}

/// `update`, planned.
#[derive(Debug)]
pub(crate) struct UpdatePlan {
    /// The session to create at every refresh.
    pub(crate) ra: crate::rolesanywhere::Settings,
    /// `--timeout`: each refresh's deadline, from its start.
    pub(crate) timeout: Duration,
    /// SPIFFE, certificate files or Vault.
    pub(crate) source: Source,
    /// The profile of the credentials file to keep fresh.
    pub(crate) output: Output,
    /// `--once`.
    pub(crate) once: bool,
}

/// `update`'s flags and environment, validated.
pub(crate) fn plan_update(a: &UpdateArgs, env: &dyn Env) -> Result<UpdatePlan, ConfigError> {
    let ra = rolesanywhere::settings(&a.flow.ra, env)?;
    let timeout = timeout(&a.flow.deadline)?;
    let source = source::source(
        &a.files,
        &a.flow.spiffe,
        &a.flow.vault,
        env,
        Instant::now() + timeout,
    )?;
    let output = output::credentials_file(&a.flow.output, env)?;
    Ok(UpdatePlan {
        ra,
        timeout,
        source,
        output,
        once: a.once,
    })
}

/// `webhook`'s flags, validated: every required one present, the ARNs valid and in one
/// region (the webhook reads no other environment).
pub(crate) fn plan_webhook(a: &WebhookArgs) -> Result<crate::webhook::Settings, ConfigError> {
    webhook::settings(a)
}

/// `sign-string`, planned (offline: no environment but the flags' own variables).
#[derive(Debug)]
pub(crate) struct SignStringPlan {
    /// `--private-key` (a file or a `pkcs11:` URI); `None` only with `--certificate pkcs11:…`
    /// (the key beside the certificate in the token).
    pub(crate) private_key: Option<PathBuf>,
    /// `--certificate`, which must hold the key's public key.
    pub(crate) certificate: Option<PathBuf>,
    /// The key's password, read from its file when given as one.
    pub(crate) password: Option<Secret>,
    /// `--timeout` from now: reads and key derivation end by then.
    pub(crate) deadline: Instant,
    /// `--digest`.
    pub(crate) digest: Digest,
    /// `--format`.
    pub(crate) format: SignFormat,
    /// `--debug`.
    pub(crate) debug: bool,
    /// How to reach a key in a token or a TPM.
    pub(crate) stores: crate::keys::StoreOptions,
}

/// `sign-string`'s flags, validated.
pub(crate) fn plan_sign_string(a: &SignStringArgs) -> Result<SignStringPlan, ConfigError> {
    let token_certificate = a
        .cert
        .certificate
        .as_ref()
        .and_then(|p| p.to_str())
        .is_some_and(crate::keys::pkcs11_uri::is_pkcs11);
    let private_key = a.key.private_key.clone();
    if private_key.is_none() && !token_certificate {
        return Err(ConfigError(
            "missing --private-key: the key file (or pkcs11: URI) to sign the helper's test string with".into(),
        ));
    }
    let deadline = Instant::now() + timeout(&a.deadline)?;
    Ok(SignStringPlan {
        private_key,
        certificate: a.cert.certificate.clone(),
        password: source::key_password(&a.key, deadline)?,
        deadline,
        digest: match a.digest {
            cli::SignDigest::Sha256 => Digest::Sha256,
            cli::SignDigest::Sha384 => Digest::Sha384,
            cli::SignDigest::Sha512 => Digest::Sha512,
        },
        format: a.format,
        debug: a.debug,
        stores: source::store_options(&a.hardware, &ProcessEnv, deadline)?,
    })
}

/// `read-certificate-data`, planned.
#[derive(Debug)]
pub(crate) struct ReadCertificateDataPlan {
    /// `--certificate`.
    pub(crate) certificate: PathBuf,
    /// `--timeout` from now: the read ends by then.
    pub(crate) deadline: Instant,
    /// How to reach a token (`--certificate pkcs11:…`).
    pub(crate) stores: crate::keys::StoreOptions,
}

/// `read-certificate-data`'s flags, validated.
pub(crate) fn plan_read_certificate_data(
    a: &ReadCertificateDataArgs,
) -> Result<ReadCertificateDataPlan, ConfigError> {
    let certificate =
        a.cert.certificate.clone().ok_or_else(|| {
            ConfigError("missing --certificate: the certificate file to read".into())
        })?;
    let deadline = Instant::now() + timeout(&a.deadline)?;
    Ok(ReadCertificateDataPlan {
        certificate,
        deadline,
        stores: source::store_options(&a.hardware, &ProcessEnv, deadline)?,
    })
}

/// The log format flag as the logger takes it.
pub(crate) fn log_format(f: LogFormat) -> logging::Format {
    match f {
        LogFormat::Text => logging::Format::Text,
        LogFormat::Json => logging::Format::Json,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    pub(crate) fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[test]
    fn timeout_must_be_more_than_zero() {
        let t = |v: &str| timeout(&TimeoutArgs { timeout: v.into() });
        assert_eq!(t("90s").unwrap(), Duration::from_secs(90));
        assert!(t("0s").unwrap_err().0.contains("more than zero"));
        assert!(t("0").is_err());
        assert!(t("soon").unwrap_err().0.contains("--timeout"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("2x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5m3").is_err());
    }
}
