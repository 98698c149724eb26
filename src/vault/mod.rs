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
    /// Base address, no trailing slash.
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
