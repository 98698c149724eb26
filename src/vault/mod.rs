//! Vault (or OpenBao): the HTTP client with Vault's conventions ([`client`]), login
//! ([`login`]) and the PKI call that turns a CSR into a certificate ([`pki`]), configured by
//! [`Settings`] (built from flags and Vault's own environment variables by `config`).

pub(crate) mod client;
pub(crate) mod login;
pub(crate) mod pki;

use std::path::PathBuf;
use std::time::Duration;

pub(crate) use client::{VaultClient, VaultError};

use crate::http::Roots;
use crate::secret::Secret;

/// Everything needed to talk to one Vault.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Base address, no trailing slash; several comma-separated when no load balancer stands
    /// in front of Vault (as [`parse_addrs`] returns them; [`Settings::addrs`] lists them).
    pub(crate) addr: String,
    /// `X-Vault-Namespace`.
    pub(crate) namespace: Option<String>,
    pub(crate) roots: Roots,
    /// `VAULT_SKIP_VERIFY`.
    pub(crate) insecure: bool,
    /// Per-request timeout (`VAULT_CLIENT_TIMEOUT`, default 60 s), within the run's deadline.
    pub(crate) client_timeout: Duration,
    pub(crate) auth: Auth,
    pub(crate) pki: Pki,
}

/// How to log in.
#[derive(Debug, Clone)]
pub(crate) enum Auth {
    /// `auth/<mount>/login` with `{"role","jwt"}`: the kubernetes and jwt methods alike.
    Jwt {
        method: JwtMethod,
        mount: String,
        role: String,
        /// Re-read at every login (the kubelet rotates it).
        token_file: PathBuf,
    },
    /// `auth/<mount>/login` with `{"role_id","secret_id"}`.
    AppRole {
        mount: String,
        role_id: String,
        secret_id_file: PathBuf,
    },
    /// A token given in `VAULT_TOKEN`, used as is and never revoked.
    Token { token: Secret },
}

/// The two JWT login methods; they differ in their name and in what usually goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JwtMethod {
    /// `auth/kubernetes`: Vault checks the token with the TokenReview API.
    Kubernetes,
    /// `auth/jwt`: Vault checks the signature against the issuer's keys.
    Jwt,
}

impl JwtMethod {
    /// The method's name, which is also its default mount.
    pub(crate) fn name(self) -> &'static str {
        match self {
            JwtMethod::Kubernetes => "kubernetes",
            JwtMethod::Jwt => "jwt",
        }
    }
}

/// PKI: which mount and role sign, for how long.
#[derive(Debug, Clone)]
pub(crate) struct Pki {
    pub(crate) mount: String,
    pub(crate) role: String,
    /// Requested TTL, as Vault reads it (`1h`).
    pub(crate) ttl: String,
}

impl Settings {
    /// The addresses in [`Settings::addr`], in order.
    pub(crate) fn addrs(&self) -> impl Iterator<Item = &str> {
        self.addr.split(',')
    }

    /// A short description for cache keys and logs (no secrets).
    pub(crate) fn describe(&self) -> String {
        let auth = match &self.auth {
            Auth::Jwt {
                method,
                mount,
                role,
                token_file,
            } => format!("{}:{mount}:{role}:{}", method.name(), token_file.display()),
            Auth::AppRole { mount, role_id, .. } => format!("approle:{mount}:{role_id}"),
            Auth::Token { .. } => "token".into(),
        };
        format!(
            "{} ns={} auth={auth} pki={}/{} ttl={}",
            self.addr,
            self.namespace.as_deref().unwrap_or(""),
            self.pki.mount,
            self.pki.role,
            self.pki.ttl
        )
    }
}

/// Checks `VAULT_ADDR` (or `--vault-addr`): one `http(s)://HOST[:PORT]` URL, or several
/// separated by commas, tried in turn when one does not answer or has no active node (the
/// second choice after a load balancer or Kubernetes Service: vault/README.md, "Vault HA").
/// Returns them joined by commas, each without a trailing slash, for [`Settings::addr`].
pub(crate) fn parse_addrs(raw: &str) -> Result<String, String> {
    let mut out = Vec::new();
    for one in raw.split(',').map(str::trim) {
        if one.is_empty() && raw.contains(',') {
            return Err(format!(
                "invalid Vault address list {}: an empty entry; separate full URLs with commas, e.g. https://vault-0:8200,https://vault-1:8200",
                crate::limits::quote(raw)
            ));
        }
        let url = url::Url::parse(one).map_err(|e| {
            format!(
                "invalid Vault address {}: {e}; expected e.g. https://vault.example:8200",
                crate::limits::quote(one)
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!(
                "invalid Vault address {}: expected http(s)://HOST[:PORT]",
                crate::limits::quote(one)
            ));
        }
        out.push(one.trim_end_matches('/').to_string());
    }
    Ok(out.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_or_several() {
        assert_eq!(
            parse_addrs("https://vault:8200/").unwrap(),
            "https://vault:8200"
        );
        assert_eq!(
            parse_addrs("http://10.0.0.1:8200, http://10.0.0.2:8200/").unwrap(),
            "http://10.0.0.1:8200,http://10.0.0.2:8200"
        );
        for bad in [
            "vault:8200",
            "ftp://vault",
            "http://a:1,,http://b:2",
            "http://a:1,",
            "",
        ] {
            let e = parse_addrs(bad).unwrap_err();
            assert!(e.contains("invalid Vault address"), "{bad}: {e}");
        }
    }
}
