//! Validation: raw flags and environment in, checked configuration out. Every field of a
//! `*Config` is already usable (ARNs parsed, regions agree, durations in range, files named).
//!
//! Environment precedence for each option: flag, then `IAMRA_*` (read by clap), then the
//! legacy names a pod spec for the python init container used (`ANCHOR_ARN`, `PROFILE_ARN`,
//! `ROLE_ARN`, `VAULT_ADDR`, `VAULT_ROLE`, `VAULT_CERT_CN`), read here through [`Env`] so tests
//! never touch the process environment. Vault's own variables follow its Go client
//! (`docs/ecosystem-contracts.md` §5).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::arn::{Arn, ArnKind, Target};
use crate::cli::{AuthMethod, KeyType, OutputArgs, PkiMode, RolesAnywhereArgs, VaultArgs};
use crate::http::{ClientOptions, Roots};
use crate::rolesanywhere::session::SessionClient;
use crate::rolesanywhere::sign::{Endpoint, SessionParams};
use crate::secret::Secret;

/// Reads environment variables (empty values count as unset).
pub trait Env {
    /// The value of `name`, if set and not empty.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy)]
pub struct ProcessEnv;

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
pub struct ConfigError(pub String);

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
pub fn parse_duration(s: &str) -> Result<Duration, String> {
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
        let n: u64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
        num.clear();
        let unit = match c {
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                Duration::from_millis(1)
            }
            'h' => Duration::from_secs(3600),
            'm' => Duration::from_secs(60),
            's' => Duration::from_secs(1),
            _ => return Err(format!("invalid duration {s:?}: use e.g. 90s, 2m or 1h")),
        };
        total += unit * n as u32;
        any = true;
    }
    if !num.is_empty() || !any {
        return Err(format!("invalid duration {s:?}: use e.g. 90s, 2m or 1h"));
    }
    Ok(total)
}

impl VaultArgs {
    /// `--timeout`: the overall deadline for retries, Vault and Roles Anywhere alike.
    pub fn deadline_after(&self) -> Result<Duration, ConfigError> {
        parse_duration(&self.timeout).map_err(|e| ConfigError(format!("--timeout: {e}")))
    }
}

/// Go's `strconv.ParseBool`, as Vault reads `VAULT_SKIP_VERIFY`.
fn parse_go_bool(name: &str, v: &str) -> Result<bool, ConfigError> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => err(format!("{name}={v:?} is not a boolean; use true or false")),
    }
}

/// The session to create and where.
#[derive(Debug, Clone)]
pub struct RolesAnywhereConfig {
    /// ARNs and region.
    pub target: Target,
    /// Endpoint.
    pub endpoint: Endpoint,
    /// Duration and session name.
    pub params: SessionParams,
    /// `--no-verify-ssl`.
    pub no_verify_ssl: bool,
    /// `--with-proxy`.
    pub with_proxy: bool,
    /// `--debug`.
    pub debug: bool,
}

fn required(flag: &str, value: Option<String>, envs: &str) -> Result<String, ConfigError> {
    value.ok_or_else(|| ConfigError(format!("missing {flag}: pass it or set {envs}")))
}

impl RolesAnywhereConfig {
    /// Validates the Roles Anywhere flags.
    pub fn new(a: &RolesAnywhereArgs, env: &dyn Env) -> Result<Self, ConfigError> {
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
        let arn = |k, v: &str| Arn::parse(k, v.trim()).map_err(|e| ConfigError(e.to_string()));
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
        let endpoint_raw = a
            .endpoint
            .clone()
            .or_else(|| env.var("AWS_ENDPOINT_URL_ROLESANYWHERE"))
            .unwrap_or_else(|| target.default_endpoint());
        let endpoint = Endpoint::parse(&endpoint_raw).map_err(ConfigError)?;
        if let Some(n) = &a.role_session_name {
            let ok = (2..=64).contains(&n.len())
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"=,.@-_".contains(&b));
            if !ok {
                return err(format!(
                    "--role-session-name {n:?} is invalid: 2-64 characters of A-Z a-z 0-9 =,.@-_"
                ));
            }
        }
        Ok(RolesAnywhereConfig {
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

    /// A client for this configuration (public roots built in).
    pub fn session_client(&self) -> Result<SessionClient, ConfigError> {
        let http = crate::http::client(&ClientOptions {
            roots: Roots::Public,
            insecure: self.no_verify_ssl,
            proxy_from_env: self.with_proxy,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
        })
        .map_err(ConfigError)?;
        Ok(SessionClient {
            http,
            endpoint: self.endpoint.clone(),
            target: self.target.clone(),
            params: self.params.clone(),
            debug: self.debug,
            max_attempts: None,
        })
    }
}

/// How to log in to Vault.
#[derive(Debug, Clone)]
pub enum AuthConfig {
    /// `auth/<mount>/login` with the ServiceAccount token.
    Kubernetes {
        /// Mount path.
        mount: String,
        /// Role.
        role: String,
        /// Token file, re-read at every login.
        token_file: PathBuf,
    },
    /// `auth/<mount>/login` with a JWT.
    Jwt {
        /// Mount path.
        mount: String,
        /// Role.
        role: String,
        /// JWT file, re-read at every login.
        token_file: PathBuf,
    },
    /// `auth/<mount>/login` with role id and secret id.
    AppRole {
        /// Mount path.
        mount: String,
        /// Role id.
        role_id: String,
        /// File holding the secret id.
        secret_id_file: PathBuf,
    },
    /// A token given in `VAULT_TOKEN`.
    Token {
        /// The token.
        token: Secret,
    },
}

/// Vault PKI settings.
#[derive(Debug, Clone)]
pub struct PkiConfig {
    /// Mount.
    pub mount: String,
    /// Role.
    pub role: String,
    /// sign or issue.
    pub mode: PkiMode,
    /// Common name; `None` = derived from the ServiceAccount at login.
    pub common_name: Option<String>,
    /// Generated key type.
    pub key_type: KeyType,
    /// Requested TTL, as Vault reads it.
    pub ttl: String,
}

/// Everything needed to get a certificate from Vault.
#[derive(Debug, Clone)]
pub struct VaultConfig {
    /// Base address, no trailing slash.
    pub addr: String,
    /// `X-Vault-Namespace`.
    pub namespace: Option<String>,
    /// TLS trust.
    pub roots: Roots,
    /// `VAULT_SKIP_VERIFY`.
    pub insecure: bool,
    /// Per-request timeout (`VAULT_CLIENT_TIMEOUT`, default 60 s).
    pub client_timeout: Duration,
    /// Login.
    pub auth: AuthConfig,
    /// PKI.
    pub pki: PkiConfig,
    /// Keep the token after use.
    pub keep_token: bool,
    /// Overall deadline for retries.
    pub timeout: Duration,
}

impl VaultConfig {
    /// Validates the Vault flags and Vault's environment variables.
    pub fn new(a: &VaultArgs, env: &dyn Env) -> Result<Self, ConfigError> {
        let addr = a
            .vault_addr
            .clone()
            .or_else(|| env.var("VAULT_ADDR"))
            .unwrap_or_else(|| "https://127.0.0.1:8200".into());
        let url = url::Url::parse(&addr).map_err(|e| {
            ConfigError(format!(
                "invalid Vault address {addr:?}: {e}; expected e.g. https://vault.example:8200"
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return err(format!(
                "invalid Vault address {addr:?}: expected http(s)://HOST[:PORT]"
            ));
        }
        let insecure = match env.var("VAULT_SKIP_VERIFY") {
            Some(v) => parse_go_bool("VAULT_SKIP_VERIFY", &v)?,
            None => false,
        };
        let roots = if let Some(f) = env.var("VAULT_CACERT") {
            Roots::Custom(read_pem_certs(Path::new(&f), "VAULT_CACERT")?)
        } else if let Some(d) = env.var("VAULT_CAPATH") {
            let mut certs = Vec::new();
            let entries = std::fs::read_dir(&d)
                .map_err(|e| ConfigError(format!("cannot read VAULT_CAPATH folder {d}: {e}")))?;
            for entry in entries.flatten() {
                if entry.path().is_file() {
                    certs.extend(read_pem_certs(&entry.path(), "VAULT_CAPATH").unwrap_or_default());
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
        let timeout = a.deadline_after()?;
        let mount = |default: &str| {
            a.vault_auth_mount
                .clone()
                .unwrap_or_else(|| default.to_string())
                .trim_matches('/')
                .to_string()
        };
        let role = a.vault_role.clone().or_else(|| env.var("VAULT_ROLE"));
        let need_role = |m: &str| {
            role.clone().ok_or_else(|| {
                ConfigError(format!("missing --vault-role for {m} auth: pass it or set IAMRA_VAULT_ROLE (or VAULT_ROLE)"))
            })
        };
        let auth = match a.vault_auth {
            AuthMethod::Kubernetes => AuthConfig::Kubernetes {
                mount: mount("kubernetes"),
                role: need_role("kubernetes")?,
                token_file: a.service_account_token_file.clone(),
            },
            AuthMethod::Jwt => AuthConfig::Jwt {
                mount: mount("jwt"),
                role: need_role("jwt")?,
                token_file: a.service_account_token_file.clone(),
            },
            AuthMethod::Approle => AuthConfig::AppRole {
                mount: mount("approle"),
                role_id: a.approle_role_id.clone().ok_or_else(|| {
                    ConfigError("missing --approle-role-id for approle auth (or IAMRA_APPROLE_ROLE_ID)".into())
                })?,
                secret_id_file: a.approle_secret_id_file.clone().ok_or_else(|| {
                    ConfigError("missing --approle-secret-id-file for approle auth (or IAMRA_APPROLE_SECRET_ID_FILE)".into())
                })?,
            },
            AuthMethod::Token => AuthConfig::Token {
                token: Secret::new(env.var("VAULT_TOKEN").ok_or_else(|| {
                    ConfigError("--vault-auth token needs VAULT_TOKEN set".into())
                })?),
            },
        };
        let common_name = a.common_name.clone().or_else(|| env.var("VAULT_CERT_CN"));
        if common_name.is_none()
            && matches!(auth, AuthConfig::AppRole { .. } | AuthConfig::Token { .. })
        {
            return err(
                "missing --common-name: with approle or token auth there is no ServiceAccount to derive it from (or set IAMRA_COMMON_NAME / VAULT_CERT_CN)",
            );
        }
        let pki_role = a.pki_role.clone().ok_or_else(|| {
            ConfigError("missing --pki-role: the Vault PKI role that signs the certificate (or IAMRA_PKI_ROLE)".into())
        })?;
        parse_duration(&a.cert_ttl).map_err(|e| ConfigError(format!("--cert-ttl: {e}")))?;
        Ok(VaultConfig {
            addr: addr.trim_end_matches('/').to_string(),
            namespace: env.var("VAULT_NAMESPACE"),
            roots,
            insecure,
            client_timeout,
            auth,
            pki: PkiConfig {
                mount: a.pki_mount.trim_matches('/').to_string(),
                role: pki_role,
                mode: a.pki_mode,
                common_name,
                key_type: a.key_type,
                ttl: a.cert_ttl.clone(),
            },
            keep_token: a.keep_vault_token,
            timeout,
        })
    }

    /// A short description of the source, for cache keys and logs (no secrets).
    pub fn describe(&self) -> String {
        let auth = match &self.auth {
            AuthConfig::Kubernetes {
                mount,
                role,
                token_file,
            } => {
                format!("kubernetes:{mount}:{role}:{}", token_file.display())
            }
            AuthConfig::Jwt {
                mount,
                role,
                token_file,
            } => format!("jwt:{mount}:{role}:{}", token_file.display()),
            AuthConfig::AppRole { mount, role_id, .. } => format!("approle:{mount}:{role_id}"),
            AuthConfig::Token { .. } => "token".into(),
        };
        format!(
            "{} ns={} auth={auth} pki={}/{} mode={:?} cn={} key={:?} ttl={}",
            self.addr,
            self.namespace.as_deref().unwrap_or(""),
            self.pki.mount,
            self.pki.role,
            self.pki.mode,
            self.pki
                .common_name
                .as_deref()
                .unwrap_or("<from service account>"),
            self.pki.key_type,
            self.pki.ttl
        )
    }
}

fn read_pem_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let bytes = std::fs::read(path)
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

/// Where `init`/`serve` write.
#[derive(Debug, Clone)]
pub struct OutputConfig {
    /// Credentials file.
    pub credentials_file: PathBuf,
    /// Profile.
    pub profile: String,
    /// Config file for the region.
    pub config_file: Option<PathBuf>,
    /// Termination log.
    pub termination_log: PathBuf,
}

impl OutputConfig {
    /// Resolves the credentials file: flag/`IAMRA_CREDENTIALS_FILE`, then
    /// `AWS_SHARED_CREDENTIALS_FILE`, then `~/.aws/credentials`.
    pub fn new(a: &OutputArgs, env: &dyn Env) -> Result<Self, ConfigError> {
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
        let p = a.profile.trim();
        if p.is_empty() || p.contains(['[', ']', '\n', '\r']) {
            return err(format!(
                "invalid --profile {:?}: use a plain name such as default",
                a.profile
            ));
        }
        Ok(OutputConfig {
            credentials_file,
            profile: p.to_string(),
            config_file: a.config_file.clone(),
            termination_log: a.termination_log.clone(),
        })
    }
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

    const TA: &str = "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/a";
    const PR: &str = "arn:aws:rolesanywhere:us-east-1:123456789012:profile/b";
    const ROLE: &str = "arn:aws:iam::123456789012:role/R";

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
        let c = RolesAnywhereConfig::new(&a, &e).unwrap();
        assert_eq!(c.target.role.raw, ROLE);
        assert_eq!(c.endpoint.host, "rolesanywhere.us-east-1.amazonaws.com");
        let a = RolesAnywhereArgs {
            role_arn: Some("arn:aws:iam::123456789012:role/Flag".into()),
            ..a
        };
        assert_eq!(
            RolesAnywhereConfig::new(&a, &e).unwrap().target.role.raw,
            "arn:aws:iam::123456789012:role/Flag"
        );
    }

    #[test]
    fn missing_and_out_of_range() {
        let a = RolesAnywhereArgs {
            session_duration: 3600,
            ..Default::default()
        };
        let e = RolesAnywhereConfig::new(&a, &env(&[])).unwrap_err().0;
        assert!(e.contains("--trust-anchor-arn"), "{e}");
        let all = env(&[("ANCHOR_ARN", TA), ("PROFILE_ARN", PR), ("ROLE_ARN", ROLE)]);
        for d in [899, 43201] {
            let a = RolesAnywhereArgs {
                session_duration: d,
                ..Default::default()
            };
            let e = RolesAnywhereConfig::new(&a, &all).unwrap_err().0;
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
        assert_eq!(
            RolesAnywhereConfig::new(&a, &e2).unwrap().endpoint.path,
            "/p/sessions"
        );
    }

    #[test]
    fn vault_env_conventions() {
        let a = VaultArgs {
            vault_role: None,
            pki_role: Some("r".into()),
            pki_mount: "pki_int".into(),
            cert_ttl: "1h".into(),
            timeout: "2m".into(),
            ..Default::default()
        };
        let e = VaultConfig::new(&a, &env(&[("VAULT_ROLE", "app")])).unwrap();
        assert!(
            matches!(e.auth, AuthConfig::Kubernetes { ref role, ref mount, .. } if role == "app" && mount == "kubernetes")
        );
        assert_eq!(e.addr, "https://127.0.0.1:8200");
        let bad = VaultConfig::new(
            &a,
            &env(&[("VAULT_ROLE", "app"), ("VAULT_SKIP_VERIFY", "yes")]),
        )
        .unwrap_err()
        .0;
        assert!(bad.contains("VAULT_SKIP_VERIFY"), "{bad}");
        let ok = VaultConfig::new(
            &a,
            &env(&[("VAULT_ROLE", "app"), ("VAULT_SKIP_VERIFY", "T")]),
        )
        .unwrap();
        assert!(ok.insecure);
        let a2 = VaultArgs {
            vault_auth: AuthMethod::Approle,
            approle_role_id: Some("x".into()),
            approle_secret_id_file: Some("f".into()),
            ..a.clone()
        };
        assert!(
            VaultConfig::new(&a2, &env(&[]))
                .unwrap_err()
                .0
                .contains("--common-name")
        );
        let t = VaultConfig::new(
            &a,
            &env(&[("VAULT_ROLE", "app"), ("VAULT_CLIENT_TIMEOUT", "30s")]),
        )
        .unwrap();
        assert_eq!(t.client_timeout, Duration::from_secs(30));
    }
}
