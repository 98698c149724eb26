//! Validation: raw flags ([`crate::cli`]) and the environment in, each module's settings out
//! (`rolesanywhere::Settings`, a `Source`, the credentials-file `Output`, `serve::Settings`).
//! Every field is already usable (ARNs parsed, regions agree, durations in range, files named,
//! Vault's client built). This is the only module that knows both clap's types and the domain's.
//!
//! Environment precedence for each option: flag, then `IAMRA_*` (read by clap), then the
//! legacy names a pod spec for the python init container used (`ANCHOR_ARN`, `PROFILE_ARN`,
//! `ROLE_ARN`, `VAULT_ADDR`, `VAULT_ROLE`, `VAULT_CERT_CN`), read here through [`Env`] so tests
//! never touch the process environment. Vault's own variables follow its Go client
//! (`docs/ecosystem-contracts.md` §5).

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::arn::{Arn, ArnKind, Target};
use crate::aws::cache::Cache;
use crate::aws::credentials_file::Output;
use crate::cli::{
    self, AuthMethod, CertificateFileArgs, CredentialProcessArgs, LogFormat, OutputArgs,
    RolesAnywhereArgs, ServeArgs, TimeoutArgs, VaultArgs,
};
use crate::endpoints::{EndpointSettings, Service};
use crate::http::Roots;
use crate::keygen::KeyType;
use crate::limits::{self, MAX_CA_FILE};
use crate::rolesanywhere::sign::{Endpoint, SessionParams};
use crate::secret::Secret;
use crate::source::Source;
use crate::source::files::FileSource;
use crate::source::vault::{PkiMode, VaultSource};
use crate::vault::{self, Auth, JwtMethod, VaultClient};
use crate::{logging, rolesanywhere, serve};

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
            "--timeout {:?} must be more than zero, e.g. 90s or 2m",
            a.timeout
        ));
    }
    Ok(d)
}

fn required(flag: &str, value: Option<String>, envs: &str) -> Result<String, ConfigError> {
    value.ok_or_else(|| ConfigError(format!("missing {flag}: pass it or set {envs}")))
}

/// The Roles Anywhere flags, validated.
pub(crate) fn rolesanywhere(
    a: &RolesAnywhereArgs,
    env: &dyn Env,
) -> Result<rolesanywhere::Settings, ConfigError> {
    let ta = required(
        "--trust-anchor-arn",
        a.trust_anchor_arn.clone().or_else(|| env.var("ANCHOR_ARN")),
        "IAMRA_TRUST_ANCHOR_ARN (or ANCHOR_ARN)",
    )?;
    let pr = required(
        "--profile-arn",
        a.profile_arn.clone().or_else(|| env.var("PROFILE_ARN")),
        "IAMRA_PROFILE_ARN (or PROFILE_ARN)",
    )?;
    let role = required(
        "--role-arn",
        a.role_arn.clone().or_else(|| env.var("ROLE_ARN")),
        "IAMRA_ROLE_ARN (or ROLE_ARN)",
    )?;
    let arn = |k, v: &str| Arn::parse(k, v).map_err(|e| ConfigError(e.to_string()));
    let target = Target::new(
        arn(ArnKind::TrustAnchor, &ta)?,
        arn(ArnKind::Profile, &pr)?,
        arn(ArnKind::Role, &role)?,
        a.region.as_deref(),
    )
    .map_err(|e| ConfigError(e.to_string()))?;
    if !(900..=43200).contains(&a.session_duration) {
        return err(format!(
            "--session-duration {} is out of range: it must be between 900 and 43200 seconds",
            a.session_duration
        ));
    }
    let endpoint_raw = match &a.endpoint {
        Some(e) => e.clone(),
        None => target
            .endpoint(Service::RolesAnywhere, &endpoints(env)?)
            .map_err(|e| ConfigError(e.0))?,
    };
    let endpoint = Endpoint::parse(&endpoint_raw).map_err(ConfigError)?;
    if let Some(n) = &a.role_session_name {
        limits::check_role_session_name(n).map_err(ConfigError)?;
    }
    Ok(rolesanywhere::Settings {
        target,
        endpoint,
        params: SessionParams {
            duration_seconds: a.session_duration,
            role_session_name: a.role_session_name.clone(),
        },
        no_verify_ssl: a.no_verify_ssl,
        with_proxy: a.with_proxy,
        debug: a.debug,
    })
}

/// FIPS, dual-stack and configured endpoints from the environment and the shared config file,
/// as the AWS SDKs read them ([`crate::endpoints`]).
pub(crate) fn endpoints(env: &dyn Env) -> Result<EndpointSettings, ConfigError> {
    EndpointSettings::from_env(&|name| env.var(name)).map_err(|e| ConfigError(e.0))
}

/// The STS endpoint of `init --verify`: `--sts-endpoint`, else resolved as the SDKs do.
pub(crate) fn sts_endpoint(
    flag: Option<&str>,
    target: &Target,
    env: &dyn Env,
) -> Result<String, ConfigError> {
    match flag {
        Some(url) => Ok(url.to_string()),
        None => target
            .endpoint(Service::Sts, &endpoints(env)?)
            .map_err(|e| ConfigError(e.0)),
    }
}

/// The Vault flags and Vault's own environment variables, validated, as a ready source (its
/// client built once).
pub(crate) fn vault_source(
    a: &VaultArgs,
    env: &dyn Env,
    deadline: Instant,
) -> Result<VaultSource, ConfigError> {
    let addr = a
        .vault_addr
        .clone()
        .or_else(|| env.var("VAULT_ADDR"))
        .unwrap_or_else(|| "https://127.0.0.1:8200".into());
    let url = url::Url::parse(&addr).map_err(|e| {
        ConfigError(format!(
            "invalid Vault address {}: {e}; expected e.g. https://vault.example:8200",
            limits::quote(&addr)
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return err(format!(
            "invalid Vault address {}: expected http(s)://HOST[:PORT]",
            limits::quote(&addr)
        ));
    }
    let insecure = match env.var("VAULT_SKIP_VERIFY") {
        Some(v) => parse_go_bool("VAULT_SKIP_VERIFY", &v)?,
        None => false,
    };
    let roots = if let Some(f) = env.var("VAULT_CACERT") {
        Roots::Custom(read_pem_certs(Path::new(&f), "VAULT_CACERT", deadline)?)
    } else if let Some(d) = env.var("VAULT_CAPATH") {
        let mut certs = Vec::new();
        let entries = std::fs::read_dir(&d)
            .map_err(|e| ConfigError(format!("cannot read VAULT_CAPATH folder {d}: {e}")))?;
        for entry in entries.flatten() {
            if entry.path().is_file() {
                certs.extend(
                    read_pem_certs(&entry.path(), "VAULT_CAPATH", deadline).unwrap_or_default(),
                );
            }
        }
        if certs.is_empty() {
            return err(format!("VAULT_CAPATH folder {d} holds no PEM certificates"));
        }
        Roots::Custom(certs)
    } else {
        Roots::Public
    };
    let client_timeout = match env.var("VAULT_CLIENT_TIMEOUT") {
        Some(v) => {
            parse_duration(&v).map_err(|e| ConfigError(format!("VAULT_CLIENT_TIMEOUT: {e}")))?
        }
        None => Duration::from_secs(60),
    };
    let mount = |default: &str| {
        a.vault_auth_mount
            .clone()
            .unwrap_or_else(|| default.to_string())
            .trim_matches('/')
            .to_string()
    };
    let role = a.vault_role.clone().or_else(|| env.var("VAULT_ROLE"));
    let jwt = |method: JwtMethod| -> Result<Auth, ConfigError> {
        Ok(Auth::Jwt {
            method,
            mount: mount(method.name()),
            role: role.clone().ok_or_else(|| {
                ConfigError(format!("missing --vault-role for {} auth: pass it or set IAMRA_VAULT_ROLE (or VAULT_ROLE)", method.name()))
            })?,
            token_file: a.service_account_token_file.clone(),
        })
    };
    let auth = match a.vault_auth {
        AuthMethod::Kubernetes => jwt(JwtMethod::Kubernetes)?,
        AuthMethod::Jwt => jwt(JwtMethod::Jwt)?,
        AuthMethod::Approle => Auth::AppRole {
            mount: mount("approle"),
            role_id: a.approle_role_id.clone().ok_or_else(|| {
                ConfigError("missing --approle-role-id for approle auth (or IAMRA_APPROLE_ROLE_ID)".into())
            })?,
            secret_id_file: a.approle_secret_id_file.clone().ok_or_else(|| {
                ConfigError("missing --approle-secret-id-file for approle auth (or IAMRA_APPROLE_SECRET_ID_FILE)".into())
            })?,
        },
        AuthMethod::Token => Auth::Token {
            token: Secret::new(env.var("VAULT_TOKEN").ok_or_else(|| {
                ConfigError("--vault-auth token needs VAULT_TOKEN set".into())
            })?),
        },
    };
    let common_name = a.common_name.clone().or_else(|| env.var("VAULT_CERT_CN"));
    if let Some(cn) = &common_name
        && (cn.is_empty()
            || cn.len() > limits::MAX_COMMON_NAME_LEN
            || cn.chars().any(char::is_control))
    {
        return err(format!(
            "--common-name {} is invalid: 1-{} characters, no line breaks",
            limits::quote(cn),
            limits::MAX_COMMON_NAME_LEN
        ));
    }
    if common_name.is_none() && matches!(auth, Auth::AppRole { .. } | Auth::Token { .. }) {
        return err(
            "missing --common-name: with approle or token auth there is no ServiceAccount to derive it from (or set IAMRA_COMMON_NAME / VAULT_CERT_CN)",
        );
    }
    let pki_role = a.pki_role.clone().ok_or_else(|| {
        ConfigError(
            "missing --pki-role: the Vault PKI role that signs the certificate (or IAMRA_PKI_ROLE)"
                .into(),
        )
    })?;
    parse_duration(&a.cert_ttl).map_err(|e| ConfigError(format!("--cert-ttl: {e}")))?;
    let settings = vault::Settings {
        addr: addr.trim_end_matches('/').to_string(),
        namespace: env.var("VAULT_NAMESPACE"),
        roots,
        insecure,
        client_timeout,
        auth,
        pki: vault::Pki {
            mount: a.pki_mount.trim_matches('/').to_string(),
            role: pki_role,
            ttl: a.cert_ttl.clone(),
        },
    };
    let client = VaultClient::new(&settings).map_err(|e| {
        ConfigError(format!(
            "cannot use Vault's TLS settings: {e}; check VAULT_CACERT / VAULT_CAPATH"
        ))
    })?;
    Ok(VaultSource {
        client,
        settings,
        mode: match a.pki_mode {
            cli::PkiMode::Sign => PkiMode::Sign,
            cli::PkiMode::Issue => PkiMode::Issue,
        },
        key_type: match a.key_type {
            cli::KeyType::EcP256 => KeyType::EcP256,
            cli::KeyType::EcP384 => KeyType::EcP384,
            cli::KeyType::Rsa2048 => KeyType::Rsa2048,
            cli::KeyType::Rsa3072 => KeyType::Rsa3072,
            cli::KeyType::Rsa4096 => KeyType::Rsa4096,
        },
        common_name,
        keep_token: a.keep_vault_token,
    })
}

/// `credential-process`'s source: the certificate files when given, else Vault.
pub(crate) fn file_or_vault_source(
    a: &CredentialProcessArgs,
    env: &dyn Env,
    deadline: Instant,
) -> Result<Source, ConfigError> {
    let files = CertificateFileArgs {
        certificate: a.certificate.clone(),
        private_key: a.private_key.clone(),
        pkcs8_password: a.pkcs8_password.clone(),
        pkcs8_password_file: a.pkcs8_password_file.clone(),
        intermediates: a.intermediates.clone(),
    };
    files_or_vault(&files, &a.vault, env, deadline)
}

/// Certificate files when `--certificate` is given (with `--private-key`, or a PKCS#12 or
/// key + certificate PEM file alone), else Vault (when its flags say where).
pub(crate) fn files_or_vault(
    a: &CertificateFileArgs,
    vault: &VaultArgs,
    env: &dyn Env,
    deadline: Instant,
) -> Result<Source, ConfigError> {
    match (&a.certificate, &a.private_key) {
        // Without --private-key the certificate file may be a PKCS#12 file or hold the key.
        (Some(certificate), private_key) => Ok(Source::Files(FileSource {
            certificate: certificate.clone(),
            private_key: private_key.clone(),
            intermediates: a.intermediates.clone(),
            password: key_password(
                a.pkcs8_password.as_ref(),
                a.pkcs8_password_file.as_deref(),
                deadline,
            )?,
            loaded: Default::default(),
        })),
        (None, Some(_)) => err("missing --certificate for --private-key"),
        (None, None) if a.intermediates.is_some() => err("--intermediates needs --certificate"),
        (None, None) => {
            if vault.pki_role.is_none()
                && vault.vault_addr.is_none()
                && env.var("VAULT_ADDR").is_none()
            {
                return err(
                    "missing --certificate and --private-key (or the Vault flags --vault-addr and --pki-role to get a certificate from Vault)",
                );
            }
            Ok(Source::Vault(Box::new(vault_source(vault, env, deadline)?)))
        }
    }
}

/// `credential-process`'s cache folder: `--cache-dir`, else `$XDG_CACHE_HOME/iamra-bootstrap`,
/// else `~/.cache/iamra-bootstrap`; `None` with `--no-cache` or nowhere to put it.
pub(crate) fn cache(a: &CredentialProcessArgs, env: &dyn Env) -> Option<Cache> {
    if a.no_cache {
        return None;
    }
    let dir = match &a.cache_dir {
        Some(d) => d.clone(),
        None => env
            .var("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| env.var("HOME").map(|h| Path::new(&h).join(".cache")))?
            .join("iamra-bootstrap"),
    };
    Some(Cache { dir })
}

/// A CA file: at most [`MAX_CA_FILE`] bytes, read before `deadline`.
fn read_pem_certs(
    path: &Path,
    what: &str,
    deadline: Instant,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let bytes = crate::bounded::read_file(path, MAX_CA_FILE, deadline)
        .map_err(|e| ConfigError(format!("cannot read {what} file {}: {e}", path.display())))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| ConfigError(format!("{what} file {} is not PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return err(format!(
            "{what} file {} holds no CERTIFICATE",
            path.display()
        ));
    }
    Ok(certs)
}

/// Where `init` and `serve` write: `--credentials-file`/`IAMRA_CREDENTIALS_FILE`, then
/// `AWS_SHARED_CREDENTIALS_FILE`, then `~/.aws/credentials`.
pub(crate) fn output(a: &OutputArgs, env: &dyn Env) -> Result<Output, ConfigError> {
    let credentials_file = match a
        .credentials_file
        .clone()
        .or_else(|| env.var("AWS_SHARED_CREDENTIALS_FILE").map(PathBuf::from))
    {
        Some(p) => p,
        None => match env.var("HOME") {
            Some(h) => Path::new(&h).join(".aws/credentials"),
            None => {
                return err(
                    "no credentials file: pass --credentials-file or set AWS_SHARED_CREDENTIALS_FILE (HOME is not set)",
                );
            }
        },
    };
    let p = a.profile.as_str();
    limits::check_profile_name(p).map_err(ConfigError)?;
    Ok(Output {
        credentials_file,
        profile: p.to_string(),
        config_file: a.config_file.clone(),
    })
}

/// `serve`'s listeners and endpoints; `role` names the role IMDS lists. `--port N` is IMDSv2
/// on `127.0.0.1:N` (`aws_signing_helper serve`); so is a `serve` from certificate files with
/// nothing else asked for (no ECS token, no credentials file), on `--listen`. Otherwise at
/// least one of the three must be asked for.
pub(crate) fn serve(
    a: &ServeArgs,
    role: &Arn,
    from_files: bool,
    writes_file: bool,
) -> Result<serve::Settings, ConfigError> {
    let (listen, listen_flag) = match a.port {
        Some(port) => (SocketAddr::from(([127, 0, 0, 1], port)), "--port"),
        None => (a.listen, "--listen"),
    };
    let helper_style =
        a.auth_token_file.is_none() && !writes_file && (a.port.is_some() || from_files);
    let imds = a.imds || helper_style;
    if a.auth_token_file.is_none() && !imds && !writes_file {
        return err(
            "nothing to serve: pass --auth-token-file (ECS endpoint), --imds, or --credentials-file",
        );
    }
    Ok(serve::Settings {
        listen,
        listen_flag,
        hop_limit: a.hop_limit,
        health_listen: a.health_listen,
        auth_token_file: a.auth_token_file.clone(),
        imds,
        role_name: role.raw.rsplit('/').next().unwrap_or("role").to_string(),
    })
}

/// The log format flag as the logger takes it.
pub(crate) fn log_format(f: LogFormat) -> logging::Format {
    match f {
        LogFormat::Text => logging::Format::Text,
        LogFormat::Json => logging::Format::Json,
    }
}

/// The password of an encrypted PKCS#8 key or a PKCS#12 file: `--pkcs8-password-file` (or
/// `IAMRA_PKCS8_PASSWORD_FILE`), or `--pkcs8-password` (or `IAMRA_PKCS8_PASSWORD`), not both.
/// From a file, one trailing newline (`\n` or `\r\n`) is dropped and nothing else: spaces may
/// be part of a password. Neither the value nor the file's content ever goes in a message.
pub(crate) fn key_password(
    value: Option<&Secret>,
    file: Option<&std::path::Path>,
    deadline: Instant,
) -> Result<Option<Secret>, ConfigError> {
    match (value, file) {
        (Some(_), Some(_)) => err(
            "both --pkcs8-password (or IAMRA_PKCS8_PASSWORD) and --pkcs8-password-file are set: give the password once",
        ),
        (Some(v), None) => Ok(Some(v.clone())),
        (None, Some(path)) => {
            let raw = zeroize::Zeroizing::new(
                crate::bounded::read_file(path, limits::MAX_PASSWORD_FILE, deadline).map_err(
                    |e| {
                        ConfigError(format!(
                            "cannot read the --pkcs8-password-file {}: {e}",
                            path.display()
                        ))
                    },
                )?,
            );
            let mut v: &[u8] = &raw;
            if let Some(rest) = v.strip_suffix(b"\n") {
                v = rest.strip_suffix(b"\r").unwrap_or(rest);
            }
            let s = std::str::from_utf8(v).map_err(|_| {
                ConfigError(format!(
                    "the --pkcs8-password-file {} is not UTF-8 text",
                    path.display()
                ))
            })?;
            Ok(Some(Secret::new(s)))
        }
        (None, None) => Ok(None),
    }
}

/// `webhook`'s flags as [`crate::webhook::Settings`]: every required one present, the ARNs
/// valid and in one region.
pub(crate) fn webhook_settings(
    a: &crate::cli::WebhookArgs,
) -> Result<crate::webhook::Settings, ConfigError> {
    use crate::arn::{Arn, ArnKind};
    fn need<'a, T>(v: &'a Option<T>, flag: &str, env: &str) -> Result<&'a T, ConfigError> {
        v.as_ref()
            .ok_or_else(|| ConfigError(format!("missing {flag}: pass it or set {env}")))
    }
    let arn = |kind, v: &str| Arn::parse(kind, v).map_err(|e| ConfigError(e.to_string()));
    let trust_anchor = arn(
        ArnKind::TrustAnchor,
        need(
            &a.trust_anchor_arn,
            "--trust-anchor-arn",
            "IAMRA_TRUST_ANCHOR_ARN",
        )?,
    )?;
    let profile = arn(
        ArnKind::Profile,
        need(&a.profile_arn, "--profile-arn", "IAMRA_PROFILE_ARN")?,
    )?;
    if trust_anchor.region != profile.region || trust_anchor.partition != profile.partition {
        return Err(ConfigError(format!(
            "region mismatch: the trust anchor ARN is in {} but the profile ARN is in {}; both must be in the same region",
            trust_anchor.region, profile.region
        )));
    }
    let vault_addr = need(&a.vault_addr, "--vault-addr", "IAMRA_VAULT_ADDR")?;
    url::Url::parse(vault_addr)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| {
            ConfigError(format!(
                "invalid --vault-addr {vault_addr:?}: expected https://HOST:PORT"
            ))
        })?;
    let nonempty = |v: &Option<String>, flag: &str, env: &str| -> Result<String, ConfigError> {
        let s = need(v, flag, env)?.trim();
        if s.is_empty() {
            return Err(ConfigError(format!(
                "{flag} is empty: pass it or set {env}"
            )));
        }
        Ok(s.to_string())
    };
    if a.token_audience.trim().is_empty() {
        return Err(ConfigError(
            "--token-audience is empty: pass the audience Vault's kubernetes role expects".into(),
        ));
    }
    Ok(crate::webhook::Settings {
        listen: a.listen,
        tls_cert: need(&a.tls_cert, "--tls-cert", "IAMRA_TLS_CERT")?.clone(),
        tls_key: need(&a.tls_key, "--tls-key", "IAMRA_TLS_KEY")?.clone(),
        defaults: crate::webhook::Defaults {
            image: nonempty(&a.image, "--image", "IAMRA_IMAGE")?,
            trust_anchor,
            profile,
            vault_addr: vault_addr.trim_end_matches('/').to_string(),
            pki_role: nonempty(&a.pki_role, "--pki-role", "IAMRA_PKI_ROLE")?,
            vault_role: a
                .vault_role
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from),
            mode: match a.default_mode {
                crate::cli::InjectMode::Init => crate::webhook::Mode::Init,
                crate::cli::InjectMode::Sidecar => crate::webhook::Mode::Sidecar,
            },
            token_audience: a.token_audience.trim().to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    fn vault_source_soon(a: &VaultArgs, env: &dyn Env) -> Result<VaultSource, ConfigError> {
        vault_source(a, env, soon())
    }

    const TA: &str = "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/a";
    const PR: &str = "arn:aws:rolesanywhere:us-east-1:123456789012:profile/b";
    const ROLE: &str = "arn:aws:iam::123456789012:role/R";

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

    #[test]
    fn legacy_env_names_are_fallbacks() {
        let a = RolesAnywhereArgs {
            session_duration: 3600,
            ..Default::default()
        };
        let e = env(&[("ANCHOR_ARN", TA), ("PROFILE_ARN", PR), ("ROLE_ARN", ROLE)]);
        let c = rolesanywhere(&a, &e).unwrap();
        assert_eq!(c.target.role.raw, ROLE);
        assert_eq!(c.endpoint.host, "rolesanywhere.us-east-1.amazonaws.com");
        let a = RolesAnywhereArgs {
            role_arn: Some("arn:aws:iam::123456789012:role/Flag".into()),
            ..a
        };
        assert_eq!(
            rolesanywhere(&a, &e).unwrap().target.role.raw,
            "arn:aws:iam::123456789012:role/Flag"
        );
    }

    #[test]
    fn missing_and_out_of_range() {
        let a = RolesAnywhereArgs {
            session_duration: 3600,
            ..Default::default()
        };
        let e = rolesanywhere(&a, &env(&[])).unwrap_err().0;
        assert!(e.contains("--trust-anchor-arn"), "{e}");
        let all = env(&[("ANCHOR_ARN", TA), ("PROFILE_ARN", PR), ("ROLE_ARN", ROLE)]);
        for d in [899, 43201] {
            let a = RolesAnywhereArgs {
                session_duration: d,
                ..Default::default()
            };
            let e = rolesanywhere(&a, &all).unwrap_err().0;
            assert!(e.contains("between 900 and 43200"), "{e}");
        }
        let a = RolesAnywhereArgs {
            session_duration: 3600,
            ..Default::default()
        };
        let mut e2 = all.clone();
        e2.insert(
            "AWS_ENDPOINT_URL_ROLESANYWHERE".into(),
            "http://127.0.0.1:9/p".into(),
        );
        assert_eq!(rolesanywhere(&a, &e2).unwrap().endpoint.path, "/p/sessions");
    }

    #[test]
    fn key_password_from_flag_or_file_never_both() {
        let dir = std::env::temp_dir().join(format!("iamra-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pw");
        std::fs::write(&f, "pass phrase \r\n").unwrap();
        let got = key_password(None, Some(&f), soon()).unwrap().unwrap();
        assert_eq!(got.expose(), "pass phrase ");
        let flag = Secret::new("x");
        assert_eq!(
            key_password(Some(&flag), None, soon())
                .unwrap()
                .unwrap()
                .expose(),
            "x"
        );
        let e = key_password(Some(&flag), Some(&f), soon()).unwrap_err().0;
        assert!(e.contains("give the password once"), "{e}");
        let e = key_password(None, Some(&dir.join("missing")), soon())
            .unwrap_err()
            .0;
        assert!(e.contains("cannot read the --pkcs8-password-file"), "{e}");
        assert!(key_password(None, None, soon()).unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn vault_env_conventions() {
        let a = VaultArgs {
            vault_role: None,
            pki_role: Some("r".into()),
            pki_mount: "pki_int".into(),
            cert_ttl: "1h".into(),
            ..Default::default()
        };
        let e = vault_source_soon(&a, &env(&[("VAULT_ROLE", "app")])).unwrap();
        assert!(
            matches!(e.settings.auth, Auth::Jwt { method: JwtMethod::Kubernetes, ref role, ref mount, .. } if role == "app" && mount == "kubernetes")
        );
        assert_eq!(e.settings.addr, "https://127.0.0.1:8200");
        let bad = vault_source_soon(
            &a,
            &env(&[("VAULT_ROLE", "app"), ("VAULT_SKIP_VERIFY", "yes")]),
        )
        .unwrap_err()
        .0;
        assert!(bad.contains("VAULT_SKIP_VERIFY"), "{bad}");
        let ok = vault_source_soon(
            &a,
            &env(&[("VAULT_ROLE", "app"), ("VAULT_SKIP_VERIFY", "T")]),
        )
        .unwrap();
        assert!(ok.settings.insecure);
        let a2 = VaultArgs {
            vault_auth: AuthMethod::Approle,
            approle_role_id: Some("x".into()),
            approle_secret_id_file: Some("f".into()),
            ..a.clone()
        };
        assert!(
            vault_source_soon(&a2, &env(&[]))
                .unwrap_err()
                .0
                .contains("--common-name")
        );
        let t = vault_source_soon(
            &a,
            &env(&[("VAULT_ROLE", "app"), ("VAULT_CLIENT_TIMEOUT", "30s")]),
        )
        .unwrap();
        assert_eq!(t.settings.client_timeout, Duration::from_secs(30));
        let bad_ca = vault_source_soon(
            &a,
            &env(&[
                ("VAULT_ROLE", "app"),
                ("VAULT_CACERT", "/nonexistent/ca.pem"),
            ]),
        )
        .unwrap_err()
        .0;
        assert!(bad_ca.contains("VAULT_CACERT"), "{bad_ca}");
    }
}
