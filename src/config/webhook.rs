//! `webhook`'s flags ([`WebhookArgs`]) as [`crate::webhook::Settings`]: the serving files, and
//! the defaults an annotated pod gets.

use super::ConfigError;
use crate::arn::{Arn, ArnKind};
use crate::cli::{InjectMode, InjectSource, WebhookArgs};
use crate::limits::quote;
use crate::webhook::{CertSource, Defaults, Mode, Settings};

/// `webhook`'s flags as [`crate::webhook::Settings`]: every required one present, the ARNs
/// valid and in one region.
pub(super) fn settings(a: &WebhookArgs) -> Result<Settings, ConfigError> {
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
    let source = match a.default_source {
        InjectSource::Vault => CertSource::Vault,
        InjectSource::Spiffe => CertSource::Spiffe,
    };
    // Vault's settings: required when Vault is the default, checked whenever given.
    let vault_addr = match (&a.vault_addr, source) {
        (None, CertSource::Spiffe) => None,
        (v, _) => Some(need(v, "--vault-addr", "IAMRA_VAULT_ADDR")?),
    };
    if let Some(vault_addr) = vault_addr {
        url::Url::parse(vault_addr)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                ConfigError(format!(
                    "invalid --vault-addr {}: expected https://HOST:PORT",
                    quote(vault_addr)
                ))
            })?;
    }
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
    Ok(Settings {
        listen: a.listen,
        tls_cert: need(&a.tls_cert, "--tls-cert", "IAMRA_TLS_CERT")?.clone(),
        tls_key: need(&a.tls_key, "--tls-key", "IAMRA_TLS_KEY")?.clone(),
        defaults: Defaults {
            image: nonempty(&a.image, "--image", "IAMRA_IMAGE")?,
            trust_anchor,
            profile,
            source,
            vault_addr: vault_addr.map(|v| v.trim_end_matches('/').to_string()),
            pki_role: match (&a.pki_role, source) {
                (None, CertSource::Spiffe) => None,
                (v, _) => Some(nonempty(v, "--pki-role", "IAMRA_PKI_ROLE")?),
            },
            vault_role: a
                .vault_role
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from),
            mode: match a.default_mode {
                InjectMode::Init => Mode::Init,
                InjectMode::Sidecar => Mode::Sidecar,
            },
            token_audience: a.token_audience.trim().to_string(),
        },
        namespace_policy: a
            .namespace_policy
            .as_deref()
            .map(|p| crate::webhook::policy::Watched::load(p).map(std::sync::Arc::new))
            .transpose()
            .map_err(ConfigError)?,
    })
}
